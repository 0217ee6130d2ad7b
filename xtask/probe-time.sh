#!/usr/bin/env bash
# Time spent in recorderd's probes per run, as the kernel measures it: runs
# `recorder-bench-load ARGS...` under recorderd (attached by pid, as `cargo xtask bench`
# attaches it) with kernel.bpf_stats_enabled=1, and reads run_time_ns and run_cnt of
# recorderd's BPF programs from /proc/PID/fdinfo at the go-ahead and every 50 ms after it,
# until recorderd exits with the workload. Prints, for each program that ran, its runs and
# nanoseconds per run between the go-ahead and the last reading, and the workload's own
# report. docs/BENCHMARKS.md, "The probes' own time". Root; release binaries built by
# `cargo xtask build` (BIN=DIR for others).
#
#   xtask/probe-time.sh OUT syscalls DIR 64 50000
#
# The programs run for every process on the host (a sys_enter program for every syscall),
# so keep the machine otherwise idle, and compare builds at the same arguments: the average
# mixes the workload's runs with everyone else's. Statistics cost every program a clock
# read or two; the figures are for comparing builds, run after run.
set -euo pipefail
out=$1; shift
bin=${BIN:-target/release}
rm -rf "$out"; mkdir -p "$out"
load= rec=
was=$(cat /proc/sys/kernel/bpf_stats_enabled)
cleanup() {
    echo "$was" > /proc/sys/kernel/bpf_stats_enabled
    for pid in $load $rec; do kill "$pid" 2> /dev/null || true; done
}
trap cleanup EXIT
echo 1 > /proc/sys/kernel/bpf_stats_enabled

# "prog_id run_time_ns run_cnt tag" of each BPF program recorderd holds open (one awk for all
# of its descriptors, so that the readings take little of the CPU the workload runs on).
programs() {
    awk 'FNR == 1 { id = "" }
         /^prog_id:/ { id = $2 } /^run_time_ns:/ { t = $2 } /^prog_tag:/ { tag = $2 }
         /^run_cnt:/ && id != "" { print id, t, $2, tag }' /proc/"$1"/fdinfo/* 2> /dev/null | sort ||
        true # descriptors closing as recorderd exits: a partial reading, set aside below
}

# "prog_id name" for each program of a reading: the kernel's symbol for it
# (bpf_prog_TAG_NAME in /proc/kallsyms, cut to 15 characters), read while it is loaded.
names() {
    while read -r id _ _ tag; do
        symbol=$(grep -m1 -o "bpf_prog_${tag}_[A-Za-z0-9_]*" /proc/kallsyms || true)
        name=${symbol#bpf_prog_"${tag}"_}
        echo "$id ${name:-tag-$tag}"
    done < "$1"
}

# Waits until `$2` matches in file `$1`, while process `$3` lives.
await() {
    until grep -q "$2" "$1"; do
        kill -0 "$3" 2> /dev/null || { echo "probe-time: $1 never said '$2'" >&2; exit 1; }
        sleep 0.05
    done
}

mkfifo "$out/go"
"$bin/recorder-bench-load" "$@" < "$out/go" > "$out/workload" &
load=$!
exec 3> "$out/go"
await "$out/workload" '^ready pid=' "$load"
"$bin/recorderd" --pid "$load" --output "$out/rec" --max-payload 1MiB 2> "$out/recorderd.log" &
rec=$!
await "$out/recorderd.log" 'recorderd: recording ' "$rec"
programs "$rec" > "$out/before"
names "$out/before" > "$out/names"
cp "$out/before" "$out/after"
echo go >&3
exec 3>&-
while kill -0 "$rec" 2> /dev/null; do
    programs "$rec" > "$out/reading"
    # A reading taken while recorderd closes its descriptors is partial: keep the last whole one.
    [ "$(wc -l < "$out/reading")" -lt "$(wc -l < "$out/before")" ] || mv "$out/reading" "$out/after"
    sleep 0.05
done
wait "$load" || echo "probe-time: the workload failed" >&2
wait "$rec" || echo "probe-time: recorderd failed (see $out/recorderd.log)" >&2
load= rec=
join "$out/before" "$out/after" | join "$out/names" - | awk '$7 > $4 {
    printf "%s: %d runs, %.0f ns per run\n", $2, $7 - $4, ($6 - $3) / ($7 - $4) }' | sort
cat "$out/workload"
tail -1 "$out/recorderd.log"
