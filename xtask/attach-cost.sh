#!/usr/bin/env bash
# What each way of attaching to syscalls costs a process, recorded or not (issue 18's
# "cost to the rest of the host"): the classic raw_syscalls tracepoints, fentry/fexit on
# the kernel functions of the syscalls recorderd traces, and kprobes/kretprobes on the same
# functions; then recorderd itself, on BTF tracepoints (bpftrace 0.17 has no raw or BTF
# tracepoints on sys_enter/sys_exit; recorderd's empty programs cost what raw ones do). docs/BENCHMARKS.md,
# "Cost to processes not recorded". Root; bpftrace (`cargo xtask bench` installs it) and
# release binaries (`cargo xtask build`; BIN=DIR for others).
#
#   xtask/attach-cost.sh                      on this kernel
#   cargo xtask vm-test --script xtask/attach-cost.sh    on Debian 12's 6.1, under KVM
#
# Every mechanism runs one bpftrace program of the same shape: at entry, when the process is
# the one recorded, note the time by thread; at exit, drop the note and count. "not
# recorded" filters on a sleeping process, so a loop pays only for the attachment and the
# pid check; "recorded" filters on the loop itself. Each cell is the loop's own CPU time per
# call (recorder-bench-load calls: user + system, time spent waiting for a core left out),
# median of REPS runs, the mechanisms interleaved. attach is bpftrace's start until its
# BEGIN probe fires (parsing and compiling included: compare with "begin", a program of
# nothing else); detach, SIGINT until it exits. MECHANISMS="..." runs some of them (a
# kernel that refuses one stops the run, saying so).
set -euo pipefail
bin=${BIN:-target/release}
reps=${REPS:-5}
iters=${ITERS:-500000}
command -v bpftrace > /dev/null || { echo "attach-cost: bpftrace is missing (apt-get install bpftrace)" >&2; exit 1; }
[ -x "$bin/recorder-bench-load" ] && [ -x "$bin/recorderd" ] ||
    { echo "attach-cost: no release binaries in $bin: run cargo xtask build" >&2; exit 1; }
work=$(mktemp -d)
sleeper= tracer=
cleanup() {
    for pid in $tracer $sleeper; do kill "$pid" 2> /dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# The kernel functions of the syscalls recorderd traces, those this kernel has.
functions=$(grep -o 'row("[a-z0-9_]*"' syscalls/src/table.rs | cut -d'"' -f2 | while read -r name; do
    if grep -q " __x64_sys_${name}\$" /proc/kallsyms; then echo "__x64_sys_$name"; fi
done | sort -u)
list() { echo "$functions" | sed "s/^/$1:/" | paste -sd, -; }

# The bpftrace program of mechanism $1, for process $2.
program() {
    local enter exit
    case $1 in
        classic) enter=tracepoint:raw_syscalls:sys_enter exit=tracepoint:raw_syscalls:sys_exit ;;
        fentry) enter=$(list kfunc) exit=$(list kretfunc) ;;
        kprobe) enter=$(list kprobe) exit=$(list kretprobe) ;;
        begin) echo 'BEGIN { printf("attached\n"); }'; return ;;
    esac
    echo "BEGIN { printf(\"attached\n\"); }
$enter /pid == $2/ { @start[tid] = nsecs; }
$exit /pid == $2/ { delete(@start[tid]); @calls = count(); }"
}

# Waits until file $1 says $2, while process $3 lives; fails if it ends first.
await() {
    until grep -q "$2" "$1" 2> /dev/null; do
        kill -0 "$3" 2> /dev/null || return 1
        sleep 0.02
    done
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

refused() {
    echo "attach-cost: $1 did not attach on this kernel (MECHANISMS=\"...\" leaves it out):" >&2
    tail -5 "$work/tracer" >&2
    exit 1
}

# Starts tracer $1 ("none", "recorderd" or a mechanism) on process $2; notes attach ms.
attach() {
    local started
    started=$(now_ms)
    case $1 in
        none) tracer=; return ;;
        recorderd)
            "$bin/recorderd" --pid "$2" --output "$work/rec" --max-payload 1MiB > "$work/tracer" 2>&1 &
            tracer=$!
            await "$work/tracer" "recorderd: recording" "$tracer" || refused "$1" ;;
        *)
            program "$1" "$2" > "$work/program.bt"
            bpftrace "$work/program.bt" > "$work/tracer" 2>&1 &
            tracer=$!
            # BEGIN fires even when a probe after it failed to attach.
            await "$work/tracer" attached "$tracer" && ! grep -q -e "Error attaching" -e "could not attach" "$work/tracer" ||
                refused "$1" ;;
    esac
    echo "$1 $(($(now_ms) - started))" >> "$work/attach"
}

# Stops the tracer; notes detach ms.
detach() {
    [ -n "$tracer" ] || return 0
    local started
    started=$(now_ms)
    kill -INT "$tracer" 2> /dev/null || true # recorderd stops by itself when its target exits
    wait "$tracer" || true
    echo "$1 $(($(now_ms) - started))" >> "$work/detach"
    tracer=
    rm -rf "$work/rec"
}

# Starts a loop of call $1, waiting for its go-ahead; sets loop_pid.
start_loop() {
    rm -f "$work/go"; mkfifo "$work/go"
    "$bin/recorder-bench-load" calls "$1" "$iters" < "$work/go" > "$work/loop" &
    loop_pid=$!
    exec 3> "$work/go"
    await "$work/loop" "ready pid=" "$loop_pid" || { echo "attach-cost: the loop did not start:" >&2; cat "$work/loop" >&2; exit 1; }
}

# Lets the loop go and notes its CPU ns per call under key $2.
finish_loop() {
    echo go >&3
    exec 3>&-
    wait "$loop_pid"
    echo "$2 $(($(sed -n 's/^cpu_ns=//p' "$work/loop") / iters))" >> "$work/cells"
}

sleep 100000 &
sleeper=$!
mechanisms=${MECHANISMS:-none classic fentry kprobe recorderd}
calls="write getppid stat"
for rep in $(seq "$reps"); do
    for mechanism in $mechanisms begin; do
        attach "$mechanism" "$sleeper"
        if [ "$mechanism" != begin ]; then
            for call in $calls; do
                start_loop "$call"
                finish_loop "$call" "$mechanism not $call"
            done
        fi
        detach "$mechanism"
    done
    for mechanism in $mechanisms; do
        [ "$mechanism" != none ] || continue
        for call in $calls; do
            start_loop "$call"
            attach "$mechanism" "$loop_pid" > /dev/null
            finish_loop "$call" "$mechanism rec $call"
            detach "$mechanism"
        done
    done
    echo "attach-cost: round $rep of $reps done"
done

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR ? v[int((NR + 1) / 2)] : "-") }'; }
cell() { { grep "^$1 " "$work/$2" 2> /dev/null || true; } | awk '{ print $NF }' | median; }
echo
echo "kernel $(uname -r); $(echo "$functions" | wc -l) syscall functions; ns of CPU per call, median of $reps; $iters calls a loop"
echo
echo "| attachment | write 64 B, not recorded | getppid, not recorded | stat, not recorded | write 64 B, recorded | getppid, recorded | stat, recorded | attach ms | detach ms |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for mechanism in $mechanisms begin; do
    row="| $mechanism"
    for scope in not rec; do
        for call in $calls; do
            row="$row | $(cell "$mechanism $scope $call" cells)"
        done
    done
    echo "$row | $(cell "$mechanism" attach) | $(cell "$mechanism" detach) |"
done
echo
echo "bpftrace's kprobe support here: $(bpftrace --info 2>&1 | grep -E 'kprobe_multi|kfunc' | tr -s ' \n' ' ')"
# Whether fentry programs of different functions can share one program by tail calls.
floor=${FLOOR:-$(dirname "$bin")/ebpf/bpfel-unknown-none/release/recorder-floor}
if [ -f "$floor" ]; then
    RUST_BACKTRACE=0 "$bin/recorder-bench-floor" --object "$floor" --tail-call-check 2>&1 || true
else
    echo "no floor object at $floor (cargo xtask bench builds it): the tail-call check did not run"
fi
