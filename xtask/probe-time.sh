#!/usr/bin/env bash
# Time spent in recorderd's probes per run, as the kernel measures it: runs
# `recorder-bench-load ARGS...` under recorderd (attached by pid, as `cargo xtask bench`
# attaches it) with kernel.bpf_stats_enabled=1, and reads run_time_ns and run_cnt of
# recorderd's BPF programs from /proc/PID/fdinfo at the go-ahead and every 50 ms after it,
# until recorderd exits with the workload. Prints, for each program that ran, its runs and
# nanoseconds per run between the go-ahead and the last reading, and the workload's own
# report. docs/BENCHMARKS.md, "One stash per thread". Root; release binaries built by
# `cargo xtask build` (BIN=DIR for others).
#
#   xtask/probe-time.sh OUT syscalls DIR 64 170000
#
# The programs run for every process on the host (a sys_enter program for every syscall),
# so keep the machine otherwise idle. Statistics cost every program a clock read or two; the
# figures are for comparing builds, run after run.
set -euo pipefail
out=$1; shift
bin=${BIN:-target/release}
rm -rf "$out"; mkdir -p "$out"
was=$(cat /proc/sys/kernel/bpf_stats_enabled)
trap 'echo "$was" > /proc/sys/kernel/bpf_stats_enabled' EXIT
echo 1 > /proc/sys/kernel/bpf_stats_enabled

# "tag run_time_ns run_cnt" of each BPF program recorderd holds open (one awk for all of
# its descriptors, so that the readings take little of the CPU the workload runs on).
programs() {
    awk 'FNR == 1 { tag = "" }
         /^prog_tag:/ { tag = $2 } /^run_time_ns:/ { t = $2 }
         /^run_cnt:/ && tag != "" { print tag, t, $2 }' /proc/"$1"/fdinfo/* 2> /dev/null | sort ||
        true # descriptors closing as recorderd exits: a partial reading, set aside below
}

# Each program's name, "tag name", from the kernel's symbol for it (bpf_prog_TAG_NAME in
# /proc/kallsyms), read while the programs are loaded.
names() {
    while read -r tag _; do
        symbol=$(grep -m1 -o "bpf_prog_${tag}_[A-Za-z0-9_]*" /proc/kallsyms || true)
        echo "$tag ${symbol#bpf_prog_"${tag}"_}"
    done < "$1"
}

mkfifo "$out/go"
"$bin/recorder-bench-load" "$@" < "$out/go" > "$out/workload" &
load=$!
exec 3> "$out/go"
until grep -q '^ready pid=' "$out/workload"; do sleep 0.05; done
"$bin/recorderd" --pid "$load" --output "$out/rec" --max-payload 1MiB 2> "$out/recorderd.log" &
rec=$!
until grep -q 'recorderd: recording ' "$out/recorderd.log"; do sleep 0.05; done
programs "$rec" > "$out/before"
names "$out/before" > "$out/names"
echo go >&3
exec 3>&-
while kill -0 "$rec" 2> /dev/null; do
    programs "$rec" > "$out/reading"
    # A reading taken while recorderd closes its descriptors is partial: keep the last whole one.
    [ "$(wc -l < "$out/reading")" -lt "$(wc -l < "$out/before")" ] || mv "$out/reading" "$out/after"
    sleep 0.05
done
wait "$load"
wait "$rec" || true
join "$out/before" "$out/after" | join "$out/names" - | awk '$6 > $4 {
    printf "%s: %d runs, %.0f ns per run\n", $2, $6 - $4, ($5 - $3) / ($6 - $4) }'  | sort
cat "$out/workload"
tail -1 "$out/recorderd.log"
