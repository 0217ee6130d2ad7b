# vm-test's second stage, PID 1 in the host's root (read-only, under a RAM overlay): mounts
# what recorderd and the tests expect of a booted machine, runs tests.sh, and powers off.
# The host reads this console; lines starting "vm-test: " are for it.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
export RUST_BACKTRACE=1 CARGO_TERM_COLOR=never
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs shm /dev/shm
mount -t tmpfs -o mode=0755 run /run
# /tmp stays the overlay's: the workspace may live under the host's /tmp (a CI clone does).
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
hostname vm-test
echo "vm-test: guest $(uname -r) up"
sh /vm-test/tests.sh
echo "vm-test: result $?"
/vm-test/busybox poweroff -f
