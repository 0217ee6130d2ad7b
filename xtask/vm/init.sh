#!/bin/busybox sh
# vm-test's first stage, PID 1 in the initramfs: loads what it takes to reach the host's
# root over 9p, lays a RAM-backed overlay on it so the tests can write, and hands over to
# guest.sh in that root. Written by `cargo xtask vm-test`; @MODULES@ is filled in there.
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t devtmpfs dev /dev
for module in @MODULES@; do
    $B insmod "/modules/$module.ko" || echo "vm-test: insmod $module failed"
done
if ! $B mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /lower; then
    echo "vm-test: cannot mount the host's root over 9p"
    $B poweroff -f
fi
$B mount -t tmpfs -o mode=0755 upper /upper
$B mkdir -p /upper/data /upper/work
if ! $B mount -t overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work overlay /newroot; then
    echo "vm-test: cannot lay the overlay on the host's root"
    $B poweroff -f
fi
$B mkdir -p /newroot/vm-test
$B cp /guest.sh /tests.sh /bin/busybox /newroot/vm-test/
$B umount /proc
$B umount /dev
exec $B switch_root /newroot /bin/sh /vm-test/guest.sh
