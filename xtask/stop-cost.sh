#!/usr/bin/env bash
# What stopping a recording costs recorderd, apart from any event: recorderd records an idle
# `sleep`, perf stat counts recorderd's CPU (task-clock, every thread) from half a second
# after it says it is recording to its exit, and the sleep is ended after another half
# second. Prints that CPU and the wall time from the target's end to recorderd's exit (the
# probes' detach, the trailer, freeing memory). docs/BENCHMARKS.md, "CPU per event in
# steady state". Root; release binaries built by `cargo xtask build` (BIN=DIR for others);
# perf installed (`cargo xtask bench` installs it).
#
#   xtask/stop-cost.sh [RECORDERD FLAGS...]      e.g.  xtask/stop-cost.sh --tls off
set -euo pipefail
bin=${BIN:-target/release}
out=$(mktemp -d)
sleep 3600 &
target=$!
trap 'kill "$target" 2> /dev/null || true; rm -rf "$out"' EXIT
"$bin/recorderd" --pid "$target" --output "$out/rec" "$@" > /dev/null 2> "$out/recorderd.log" &
rec=$!
until grep -qs 'recorderd: recording ' "$out/recorderd.log"; do
    kill -0 "$rec" 2> /dev/null || { cat "$out/recorderd.log" >&2; exit 1; }
    sleep 0.05
done
sleep 0.5
perf stat -x, -e task-clock -p "$rec" -o "$out/stat" &
perf=$!
sleep 0.5 # perf has attached; the half second idle is in its count too
start=$(date +%s%N)
kill "$target"
wait "$rec" || true
end=$(date +%s%N)
wait "$perf" || true
cpu_ms=$(awk -F, '/task-clock/ {printf "%.1f", $1}' "$out/stat")
echo "stop-cost: recorderd's CPU, last half second idle and the stop: ${cpu_ms} ms;" \
    "wall time from the target's end to recorderd's exit: $(( (end - start) / 1000000 )) ms"
