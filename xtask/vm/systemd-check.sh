#!/bin/sh
# `cargo xtask vm-test --systemd`, inside the guest: a Debian root made by debootstrap, booted
# with systemd as PID 1, where this runs as a oneshot unit once the system is up. It installs
# recorderd and its unit the way docs/OPERATIONS.md says, then drives the service as its users
# would. The host reads this console: "vm-test: " lines are for it, and each check prints
# "ok" or "FAIL" with what it checked. Written by xtask; @WORKSPACE@ is the workspace's path
# on the host, whose root is mounted read-only at /host.
set -u
W=/host@WORKSPACE@
TOKEN=vmcheck-payload-5b1e2f
failed=0
echo "vm-test: guest $(uname -r) up"

check() {
    what=$1
    shift
    if "$@"; then
        echo "vm-systemd: ok    $what"
    else
        echo "vm-systemd: FAIL  $what"
        failed=$((failed + 1))
    fi
}
as_member() { setpriv --reuid=alice --regid=alice --init-groups -- "$@"; }
contains() { echo "$1" | grep -q -- "$2"; }
# The segments of recording $1 (files are named TIME-ID12-SEGMENT.rcd).
segments() { find /var/lib/recorderd/recordings -name "*-$(echo "$1" | cut -c1-12)-*.rcd"; }
journal() { journalctl -u recorderd --no-pager -o cat; }
# Waits up to $2 seconds for the journal to hold $1 more times than it held when $3 was taken.
wait_journal() {
    deadline=$(($(date +%s) + $2))
    while [ "$(journal | grep -c "$1")" -le "$3" ]; do
        [ "$(date +%s)" -ge "$deadline" ] && return 1
        sleep 0.2
    done
}
finish() {
    echo "vm-systemd: the journal of recorderd:"
    journal | sed 's/^/vm-systemd:   | /'
    echo "vm-test: result $failed"
    systemctl poweroff --force
    exit 0
}

echo "vm-systemd: systemd $(systemctl --version | head -n1 | cut -d' ' -f2), kernel.perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid)"

# The installation, as docs/OPERATIONS.md gives it ("Install", "The service", "Running under
# systemd"), from this machine's build.
install -m 0755 "$W/target/debug/recorderd" "$W/target/debug/recorder" /usr/local/bin/
install -d /etc/recorderd
install -m 0644 "$W/dist/recorderd.toml" /etc/recorderd/recorderd.toml
# The process the member records is one of [[targets]], by its program name.
cat >>/etc/recorderd/recorderd.toml <<'EOF'

[[targets]]
name = "vmcheck"
comm = "vmcheck-writer"
EOF
groupadd --system recorder
useradd --create-home alice
usermod -aG recorder alice
install -m 0644 "$W/dist/recorderd.service" /etc/systemd/system/
systemctl daemon-reload
check "systemctl enable --now recorderd" systemctl enable --now recorderd
check "recorderd is active" systemctl is-active --quiet recorderd
# The socket appears once the service is listening.
deadline=$(($(date +%s) + 60))
until [ -S /run/recorderd/control.sock ] || [ "$(date +%s)" -ge "$deadline" ]; do sleep 0.2; done
check "the control socket is there" test -S /run/recorderd/control.sock
systemctl is-active --quiet recorderd || finish

# A program of alice's that writes a known line every 100 ms.
cat >/usr/local/bin/vmcheck-writer <<EOF
#!/bin/sh
while :; do echo "$TOKEN \$(date +%s%N)" >>/home/alice/out; sleep 0.1; done
EOF
chmod 0755 /usr/local/bin/vmcheck-writer
# setpriv straight from this shell, not a function, so that $! is the writer's pid.
setpriv --reuid=alice --regid=alice --init-groups -- /usr/local/bin/vmcheck-writer &
writer=$!

# A member records it for 5 s, and the deadline finishes the recording.
before=$(date +%s%N)
started=$(as_member recorder start --pid "$writer" --for 5s 2>&1)
echo "vm-systemd: recorder start: $started"
echo "vm-systemd: recorder start answered in $((($(date +%s%N) - before) / 1000000)) ms (the probes loaded and attached)"
id=$(echo "$started" | sed -n 's/^recording \([0-9a-f]*\).*/\1/p')
check "a member's recorder start --pid N --for 5s is accepted" test -n "$id"
segment=$(segments "${id:-none}" | head -n1)
deadline=$(($(date +%s) + 60))
until recorder verify "$segment" >/dev/null 2>&1 || [ "$(date +%s)" -ge "$deadline" ]; do sleep 0.5; done
check "its deadline finishes it: the segment verifies (trailer and checksums)" recorder verify "$segment"
check "the recording holds the writer's lines" contains "$(recorder inspect "$segment" 2>&1)" "$TOKEN"

# Another, which the member sees in status and stops.
started=$(as_member recorder start --pid "$writer" --for 60s 2>&1)
id=$(echo "$started" | sed -n 's/^recording \([0-9a-f]*\).*/\1/p')
status=$(as_member recorder status 2>&1)
echo "vm-systemd: recorder status: $status"
check "recorder status lists the recording" contains "$status" "${id:-none}"
stopped=$(as_member recorder stop "${id:-none}" 2>&1)
echo "vm-systemd: recorder stop: $stopped"
check "recorder stop finishes it" contains "$stopped" "stopped on request"
check "the stopped segment verifies" recorder verify "$(segments "${id:-none}" | head -n1)"

# A reload re-reads the file: a lower max_duration refuses what was accepted before.
sed -i -e 's/^max_duration = .*/max_duration = "30s"/' \
    -e 's/^default_duration = .*/default_duration = "10s"/' /etc/recorderd/recorderd.toml
reloads=$(journal | grep -c "recorderd: reloaded")
check "systemctl reload recorderd" systemctl reload recorderd
check "recorderd says it reloaded" wait_journal "recorderd: reloaded" 30 "$reloads"
refused=$(as_member recorder start --pid "$writer" --for 5m 2>&1)
echo "vm-systemd: after the reload, recorder start --for 5m: $refused"
check "after the reload, --for 5m is past max_duration" contains "$refused" "max_duration"

# The exposure systemd computes for the loaded unit.
echo "vm-systemd: systemd-analyze security recorderd:"
systemd-analyze security --no-pager recorderd 2>&1 | sed 's/^/vm-systemd:   | /'
score=$(systemd-analyze security --no-pager recorderd 2>&1 | sed -n 's/.*Overall exposure level for recorderd.service: \([0-9.]*\).*/\1/p')
echo "vm-systemd: live exposure score: ${score:-none}"
check "systemd-analyze security scores the loaded unit" test -n "$score"

# systemctl stop finishes a running recording with its trailer.
started=$(as_member recorder start --pid "$writer" --for 20s 2>&1)
id=$(echo "$started" | sed -n 's/^recording \([0-9a-f]*\).*/\1/p')
check "a second recording starts" test -n "$id"
check "systemctl stop recorderd" systemctl stop recorderd
check "recorderd stopped cleanly" sh -c '[ "$(systemctl show -p Result --value recorderd)" = success ]'
last=$(segments "${id:-none}" | sort | tail -n1)
check "the recording stopped by systemctl stop verifies" recorder verify "$last"
check "its trailer says the service stopped it" contains "$(recorder inspect "$last" 2>&1 | tail -n1)" "terminated"
kill "$writer"

check "the journal holds recorderd's lines" contains "$(journal)" "recorderd: reloaded"
check "the ring's drain runs real-time under the unit" sh -c "! journalctl -u recorderd -o cat | grep -q 'drain runs at normal priority'"
check "no journal line holds a payload byte" sh -c "! journalctl --no-pager -o cat | grep -q $TOKEN"
finish
