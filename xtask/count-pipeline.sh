#!/usr/bin/env bash
# Instructions recorderd's pipeline spends per event, exactly: recorder-daemon's
# `pipeline_replay` example (the records of recorder-bench-load's syscall loop, replayed
# through Pipeline::handle into a real recording) under callgrind, counting only its
# `replay` function, at two lengths; the difference over the difference in events is the
# steady state, without set-up. docs/BENCHMARKS.md, "Where the daemon's CPU goes".
#
#   xtask/count-pipeline.sh [SIZE [ITERS]]    e.g.  64 4000 (and three times as many)
#
# CACHE=1 also simulates the caches (callgrind --cache-sim, the last level set to a 512 KiB
# 8-way L2, this machine's per core) and prints the data misses per event there: what the
# frames waiting for redaction cost in memory traffic, which the instruction count misses.
#
# rustix's own vDSO reader faults under valgrind (rustix issue 1559), so the example is
# built with rustix's libc backend, in its own target directory (and without the probes,
# which it does not load). Needs valgrind.
set -euo pipefail
size=${1:-64}; iters=${2:-4000}
command -v valgrind >/dev/null || { echo "count-pipeline: valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
target=$(realpath "${CARGO_TARGET_DIR:-target}")/count-pipeline
RECORDER_EBPF_SKIP=1 CARGO_TARGET_DIR=$target cargo build -q --release -p recorder-daemon --example pipeline_replay \
    --features rustix/use-libc
bin=$target/release/examples/pipeline_replay
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cache=()
[ "${CACHE:-0}" = 0 ] || cache=(--cache-sim=yes --LL=524288,8,64)
count() {
    valgrind --tool=callgrind "${cache[@]}" --toggle-collect='pipeline_replay::replay*' \
        --callgrind-out-file="$out/cg.$1" "$bin" "$size" "$1" > "$out/log.$1" 2>&1
}
# A figure from the log of ITERS: "I *refs" (instructions) or "LLd misses".
figure() { grep -o "$2: *[0-9,]*" "$out/log.$1" | tr -dc 0-9; }
count "$iters"; count $((3 * iters))
events=$((6 * 2 * iters))
per_event() {
    awk -v short="$(figure "$iters" "$1")" -v long="$(figure $((3 * iters)) "$1")" -v n=$events \
        -v format="$2" 'BEGIN { printf format, (long - short) / n }'
}
echo "pipeline, $size-byte payloads: $(per_event "I *refs" %d) instructions per event" \
    "(callgrind, replay of $((6 * iters)) and $((18 * iters)) events)"
[ "${CACHE:-0}" = 0 ] || echo "pipeline, $size-byte payloads: $(per_event 'LLd misses' %.1f) data misses" \
    "per event in a simulated 512 KiB L2"
