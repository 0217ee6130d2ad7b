#!/usr/bin/env bash
# Profiles recorderd on one `recorder-bench-load` run (docs/BENCHMARKS.md, "Where the
# daemon's CPU goes"). Root; release binaries built by `cargo xtask build`.
#
#   xtask/profile-daemon.sh OUT MODE ARGS...   e.g.  OUT syscalls DIR 64 170000
#
# recorderd attaches to the waiting workload exactly as `cargo xtask bench` attaches it
# (--pid PID --output DIR --max-payload 1MiB); perf then attaches to recorderd and records
# until it exits (it stops when the workload does); PERF=0 runs without perf, PERF_ARGS
# replaces `record ...` (e.g. PERF_ARGS="stat -e probe_libc:malloc"). Leaves in OUT:
# perf.data (cpu-clock, DWARF call graphs), cpu (recorderd's utime+stime in clock ticks:
# once recording, before the go-ahead, at exit; ticks/s), recorderd.log (its closing line
# counts events and lost records) and workload (the workload's report).
set -euo pipefail
out=$1; shift
bin=${BIN:-target/release}
freq=${FREQ:-2000}
rm -rf "$out"; mkdir -p "$out"
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

mkfifo "$out/go"
"$bin/recorder-bench-load" "$@" < "$out/go" > "$out/workload" &
load=$!
exec 3> "$out/go"
until grep -q '^ready pid=' "$out/workload"; do sleep 0.05; done

"$bin/recorderd" --pid "$load" --output "$out/rec" --max-payload 1MiB 2> "$out/recorderd.log" &
rec=$!
until grep -q 'recorderd: recording ' "$out/recorderd.log"; do sleep 0.05; done
started=$(ticks "$rec")

perf=
[ "${PERF:-1}" = 0 ] || perf ${PERF_ARGS:-record -e cpu-clock -F $freq -g --call-graph dwarf,16384} \
    -p "$rec" -o "$out/perf.data" 2> "$out/perf.log" &
[ "${PERF:-1}" = 0 ] || perf=$!
sleep 1 # perf has attached
start=$(ticks "$rec")
# The last sample of recorderd's CPU before it is reaped: poll while it runs.
( last=$start; while [ -e "/proc/$rec/stat" ]; do
    last=$(ticks "$rec" 2>/dev/null || echo "$last"); sleep 0.02; done
  echo "started=$started go=$start end=$last hz=$(getconf CLK_TCK)" > "$out/cpu" ) &
poll=$!
echo go >&3; exec 3>&-
wait "$load"; wait "$rec"; [ -z "$perf" ] || wait "$perf" || true; wait "$poll"

cat "$out/workload" "$out/cpu"; tail -1 "$out/recorderd.log"
