#!/usr/bin/env bash
# Profiles recorderd on one `recorder-bench-load` run (docs/BENCHMARKS.md, "Where the
# daemon's CPU goes"). Root; release binaries built by `cargo xtask build`.
#
#   xtask/profile-daemon.sh OUT MODE ARGS...   e.g.  OUT syscalls DIR 64 170000
#
# recorderd attaches to the waiting workload exactly as `cargo xtask bench` attaches it
# (--pid PID --output DIR --max-payload 1MiB); perf then attaches to recorderd and records
# until it exits (it stops when the workload does); PERF=0 runs without perf, PERF_ARGS
# replaces `record ...` (e.g. PERF_ARGS="stat -e probe_libc:malloc"), ARGS adds recorderd
# flags (ARGS="--config FILE"). Leaves in OUT:
# perf.data (cpu-clock, DWARF call graphs), cpu (recorderd's utime+stime in clock ticks:
# once recording, before the go-ahead, at exit; ticks/s), recorderd.log (its closing line
# counts events and lost records) and workload (the workload's report).
set -euo pipefail
out=$1; shift
bin=${BIN:-target/release}
freq=${FREQ:-2000}
rm -rf "$out"; mkdir -p "$out"
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Waits until file $1 says $2, while process $3 lives; fails, with the file, if it ends first.
await() {
    until grep -q "$2" "$1"; do
        kill -0 "$3" 2> /dev/null || { echo "profile-daemon.sh: $1 never said '$2':" >&2; cat "$1" >&2; exit 1; }
        sleep 0.05
    done
}

mkfifo "$out/go"
"$bin/recorder-bench-load" "$@" < "$out/go" > "$out/workload" &
load=$!
trap 'kill "$load" 2> /dev/null || true' EXIT # also when a step below fails
exec 3> "$out/go"
await "$out/workload" '^ready pid=' "$load"

# shellcheck disable=SC2086 # ARGS is split into flags on purpose
"$bin/recorderd" --pid "$load" --output "$out/rec" --max-payload 1MiB ${ARGS:-} 2> "$out/recorderd.log" &
rec=$!
await "$out/recorderd.log" 'recorderd: recording ' "$rec"
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
