#!/bin/busybox sh
# vm-test's first stage, PID 1 in the initramfs: loads what it takes to reach the host's
# root over 9p, lays a RAM-backed overlay on the root the guest runs (the host's own, or with
# --systemd a Debian root made by debootstrap, which lives inside the host's) so that it can
# write, and hands over to its second stage. Written by `cargo xtask vm-test`; @MODULES@ and
# @ROOTFS@ (the Debian root's path on the host, or nothing) are filled in there.
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
# Bigger than the guest's memory: recorderd's free-space floor (2 GiB by default) reads it.
$B mount -t tmpfs -o mode=0755,size=8g upper /upper
$B mkdir -p /upper/data /upper/work
if ! $B mount -t overlay -o lowerdir=/lower@ROOTFS@,upperdir=/upper/data,workdir=/upper/work overlay /newroot; then
    echo "vm-test: cannot lay the overlay on /lower@ROOTFS@"
    $B poweroff -f
fi
$B umount /proc
$B umount /dev
if [ -e /systemd-check.sh ]; then
    # systemd as PID 1; the check runs as a unit of its own once the system is up, and
    # finds the host's root (the workspace's build) at /host.
    $B mkdir -p /newroot/host /newroot/etc/systemd/system/multi-user.target.wants
    $B mount -o move /lower /newroot/host
    $B cp /systemd-check.sh /newroot/usr/local/sbin/vm-systemd-check
    $B cp /vm-systemd-check.service /newroot/etc/systemd/system/
    $B ln -s ../vm-systemd-check.service /newroot/etc/systemd/system/multi-user.target.wants/
    exec $B switch_root /newroot /lib/systemd/systemd
fi
$B mkdir -p /newroot/vm-test
$B cp /guest.sh /tests.sh /bin/busybox /newroot/vm-test/
exec $B switch_root /newroot /bin/sh /vm-test/guest.sh
