#!/usr/bin/env bash
# Profiles recorderd recording nginx under wrk, as the HTTP row of `cargo xtask bench` runs
# them (docs/BENCHMARKS.md, "Where the daemon's CPU goes"). Root; release binaries built by
# `cargo xtask build`; nginx (`cargo xtask setup`), wrk and perf (`cargo xtask bench`) installed.
#
#   xtask/profile-http.sh OUT
#
# nginx answers POST /orders on a loopback port; recorderd attaches to it (--pid PID
# --max-payload 1MiB); perf attaches to recorderd; wrk runs 5 s (-t1 -c16, the bench's
# request with its Authorization header and JSON body). PERF=0 runs without perf; ARGS adds
# recorderd flags (ARGS="--threads 0"); PINNED=1 runs wrk on CPU 0 and nginx and recorderd on
# CPU 1, as the bench's pinned row does. Prints wrk's rate and recorderd's CPU during the
# run, and leaves perf.data and recorderd.log in OUT. UNTRACED=1 runs nginx under wrk with
# no recorderd (the baseline the ratios divide by). BPF_STATS=1 turns on the kernel's
# per-program counters (sysctl kernel.bpf_stats_enabled, restored after) and prints the time
# recorderd's programs ran during wrk, in every task on the host; the counting itself adds
# two clock reads to each run, so that time is an upper bound, and the rate of such a run is
# not the one to quote.
set -euo pipefail
tools="nginx wrk"
[ "${PERF:-1}" = 0 ] || tools="$tools perf"
for tool in $tools; do
    command -v "$tool" > /dev/null || {
        echo "profile-http.sh: $tool is not installed; cargo xtask bench installs it (or apt-get install nginx wrk linux-perf)" >&2
        exit 1
    }
done
out=$(realpath -m "$1")
bin=${BIN:-target/release}
rm -rf "$out"; mkdir -p "$out/tmp"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Waits until file $1 says $2, while process $3 lives; fails, with the file, if it ends first.
await() {
    until grep -q "$2" "$1"; do
        kill -0 "$3" 2> /dev/null || { echo "profile-http.sh: $1 never said '$2':" >&2; cat "$1" >&2; exit 1; }
        sleep 0.05
    done
}

cat > "$out/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; pid $out/nginx.pid;
error_log $out/error.log warn;
events { worker_connections 1024; }
http {
  access_log off; client_body_temp_path $out/tmp;
  server {
    listen 127.0.0.1:$port; keepalive_requests 1000000;
    location /orders {
      default_type application/json;
      return 201 '{"id":"ord_7f3a91c2","status":"created","items":[{"sku":"A-1177","qty":3,"price":"19.90"},{"sku":"B-2044","qty":1,"price":"4.50"}],"total":"64.20","currency":"EUR"}';
    }
  }
}
CONF
cat > "$out/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJl"
wrk.body = '{"customer":{"id":"cus_4411","email":"ada@example.com"},"items":[{"sku":"A-1177","qty":3,"price":"19.90"},{"sku":"B-2044","qty":1,"price":"4.50"}],"shipping":{"street":"1 Loop Road","city":"Localhost","zip":"12700"},"note":"leave at the door"}'
LUA

server_cpus=0-1 client_cpus=0-1
[ "${PINNED:-0}" = 0 ] || { server_cpus=1; client_cpus=0; }
taskset -c "$server_cpus" nginx -c "$out/nginx.conf" -p "$out" 2> "$out/nginx.stderr" &
server=$!
trap 'kill -QUIT "$server" 2> /dev/null || true' EXIT # also when a step below fails
until (echo > "/dev/tcp/127.0.0.1/$port") 2> /dev/null; do
    kill -0 "$server" 2> /dev/null || { echo "profile-http.sh: nginx exited:" >&2; cat "$out/nginx.stderr" >&2; exit 1; }
    sleep 0.05
done

if [ "${UNTRACED:-0}" != 0 ]; then
    taskset -c "$client_cpus" wrk -t1 -c16 -d5s -s "$out/post.lua" "http://127.0.0.1:$port/orders" > "$out/wrk"
    grep 'Requests/sec' "$out/wrk"
    exit 0
fi

if [ "${BPF_STATS:-0}" != 0 ]; then
    stats_was=$(sysctl -n kernel.bpf_stats_enabled)
    trap 'kill -QUIT "$server" 2> /dev/null || true; sysctl -qw kernel.bpf_stats_enabled="$stats_was"' EXIT
    sysctl -qw kernel.bpf_stats_enabled=1
fi
# The run count and run time of each of process $1's BPF programs, one "runs ns" line each.
prog_stats() {
    for info in /proc/"$1"/fdinfo/*; do
        awk '/^run_time_ns:/ {ns = $2} /^run_cnt:/ {runs = $2} END {if (runs != "") print runs, ns}' "$info" 2> /dev/null
    done | awk '{runs += $1; ns += $2} END {printf "%.0f %.0f\n", runs, ns}' # no 3e+09 from mawk
}

# shellcheck disable=SC2086 # ARGS is split into flags on purpose
taskset -c "$server_cpus" "$bin/recorderd" --pid "$server" --output "$out/rec" --max-payload 1MiB ${ARGS:-} 2> "$out/recorderd.log" &
rec=$!
await "$out/recorderd.log" 'recorderd: recording ' "$rec"

perf=
if [ "${PERF:-1}" != 0 ]; then
    perf record -e cpu-clock -F 2000 -g --call-graph dwarf,16384 -p "$rec" \
        -o "$out/perf.data" 2> "$out/perf.log" &
    perf=$!
    sleep 1 # perf has attached
fi
start=$(ticks "$rec")
read -r runs_before ns_before < <(prog_stats "$rec")
taskset -c "$client_cpus" wrk -t1 -c16 -d5s -s "$out/post.lua" "http://127.0.0.1:$port/orders" > "$out/wrk"
end=$(ticks "$rec")
read -r runs_after ns_after < <(prog_stats "$rec")
kill -QUIT "$server"; wait "$server" || true
wait "$rec" || true
[ -z "$perf" ] || wait "$perf" || true

grep 'Requests/sec' "$out/wrk"
echo "recorderd CPU during wrk: $(( end - start )) ticks of 1/$(getconf CLK_TCK) s"
if [ "${BPF_STATS:-0}" != 0 ]; then
    runs=$(( runs_after - runs_before )) ns=$(( ns_after - ns_before ))
    echo "recorderd's programs during wrk: $runs runs, $ns ns ($(( ns / (runs > 0 ? runs : 1) )) ns a run)"
fi
tail -1 "$out/recorderd.log"
