#!/usr/bin/env python3
"""Groups recorderd's perf samples into pipeline stages (docs/BENCHMARKS.md, "Where the
daemon's CPU goes").

    perf script -i OUT/perf.data -F period,ip,sym,dso --no-inline | xtask/profile-stages.py

A sample belongs to the stage of the frame nearest its leaf that matches a rule below; a
library frame (memchr, aho_corasick, hashbrown, libc ...) is charged to the stage that
called it. Samples inside a write/pwrite/fsync syscall are "write". Leaf time in malloc /
free / realloc (libc's allocator) and in memcpy/memmove is also shown per stage.
"""
import re
import sys

# (stage, pattern on the symbol), tried on every frame from the leaf up; first hit wins.
RULES = [
    ("zstd", r"^ZSTD_|^HUF_|^FSE_|^HIST_|zstd_safe::|^zstd::"),
    ("protobuf encode", r"prost::|recorder_proto::"),
    ("redaction", r"recorder_redact::|pipeline::redaction"),
    ("fd table", r"pipeline::fdtable"),
    ("processes", r"pipeline::processes"),
    ("assemble", r"pipeline::assemble"),
    ("decode", r"pipeline::decode|recorder_syscalls::"),
    ("store (other)", r"recorder_store::"),
    ("ring drain (its thread)", r"aya::maps::ring_buf|session::drain"),
    ("loss counters (bpf map reads)", r"Capture::losses"),
    ("pipeline (other)", r"recorder_daemon::pipeline::"),
    ("event loop, tokio, epoll", r"recorder_daemon::session|tokio::|mio::"),
]
WRITE = re.compile(r"^(ksys_write|ksys_pwrite64|__x64_sys_(p?write(64)?|fsync|fdatasync))$")
ALLOC = re.compile(r"^(malloc|_int_malloc|malloc_consolidate|_int_free\w*|cfree\S*|free|"
                   r"realloc|_int_realloc|unlink_chunk\S*|tcache\w*|sysmalloc|"
                   r"__rust_(alloc|dealloc|realloc))$")
COPY = re.compile(r"^__(memmove|memcpy)\w*$")
RULES = [(name, re.compile(p)) for name, p in RULES]


def classify(frames):
    """frames: (sym, dso) from the leaf up -> (stage, leaf kind)."""
    leaf = frames[0][0] if frames else ""
    kind = "alloc" if ALLOC.match(leaf) else "copy" if COPY.match(leaf) else ""
    if any(WRITE.match(sym) for sym, _ in frames):
        return "write syscalls", kind
    for sym, _ in frames:
        for name, rule in RULES:
            if rule.search(sym):
                return name, kind
    return "other (unattributed stacks)", kind


def samples(lines):
    period, frames = None, []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if period is not None:
                yield period, frames
            period, frames = None, []
        elif not line.startswith(("\t", " " * 8)) or period is None and line.strip().isdigit():
            period = int(line.split()[-1]) if line.split()[-1].isdigit() else 1
        else:
            m = re.match(r"\s*[0-9a-f]+ (.*) \((.*)\)$", line)
            if m:
                frames.append((re.sub(r"\+0x[0-9a-f]+$", "", m.group(1)), m.group(2)))
    if period is not None:
        yield period, frames


def main():
    total, stages = 0, {}
    kernel = 0
    for period, frames in samples(sys.stdin):
        stage, kind = classify(frames)
        row = stages.setdefault(stage, {"": 0, "alloc": 0, "copy": 0})
        row[""] += period
        if kind:
            row[kind] += period
        if frames and frames[0][1] == "[kernel.kallsyms]":
            kernel += period
        total += period
    cpu_s = total / 1e9
    print(f"samples: {cpu_s:.3f} CPU-s; in the kernel: {100 * kernel / total:.1f} %")
    print("stage\t% of daemon CPU\tof which malloc/free\tof which memcpy\tCPU-s")
    for stage, row in sorted(stages.items(), key=lambda kv: -kv[1][""]):
        pct = lambda v: f"{100 * v / total:.1f}"
        print(f"{stage}\t{pct(row[''])}\t{pct(row['alloc'])}\t{pct(row['copy'])}\t{row[''] / 1e9:.3f}")
    a = sum(r["alloc"] for r in stages.values())
    c = sum(r["copy"] for r in stages.values())
    print(f"all malloc/free\t{100 * a / total:.1f}\nall memcpy\t{100 * c / total:.1f}")


if __name__ == "__main__":
    main()
