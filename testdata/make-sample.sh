#!/usr/bin/env bash
# Regenerate testdata/sample.qcow2 from real tools (see testdata/README.md).
#
# Usage: testdata/make-sample.sh [OUTPUT]   (default: testdata/sample.qcow2)
#
# A 64 MiB MBR disk with two NTFS partitions, compressed into a small qcow2.
# Needs sfdisk (fdisk), mkntfs and ntfscp (ntfs-3g), qemu-img (qemu-utils);
# no root. Works from any directory and leaves nothing behind but OUTPUT.
set -euo pipefail

export PATH="$PATH:/sbin:/usr/sbin"
export LC_ALL=C

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/sample.qcow2}"

for cmd in sfdisk mkntfs ntfslabel ntfscp qemu-img; do
    command -v "$cmd" >/dev/null || { echo "make-sample.sh: missing $cmd (run: make deps)" >&2; exit 1; }
done

# Geometry, in 512-byte sectors.
disk_sectors=131072                    # 64 MiB
p1_start=2048                          # 1 MiB
p1_sectors=32768                       # 16 MiB
p2_start=$((p1_start + p1_sectors))    # 34816 (17 MiB)
p2_sectors=$((disk_sectors - p2_start)) # 96256 (47 MiB), to the end of the disk

tmp="$(mktemp -d "${TMPDIR:-/tmp}/qfault-sample.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# The disk and its MBR.
truncate -s $((disk_sectors * 512)) "$tmp/disk.raw"
sfdisk --quiet --no-reread --no-tell-kernel "$tmp/disk.raw" <<EOF
label: dos
label-id: 0x51a7fa17
unit: sectors

start=$p1_start, size=$p1_sectors, type=7, bootable
start=$p2_start, size=$p2_sectors, type=7
EOF

# One NTFS per partition, each on its own sparse file.
# mkntfs makes the volume one sector shorter than the partition and puts the
# backup boot sector in the partition's last sector.
# With -T mkntfs seeds its random numbers from the fixed time, so every volume
# gets the same serial number (0x34f5ee1202469ff7); give each its own, fixed.
mkfs_part() { # file sectors start label serial
    truncate -s $(($2 * 512)) "$1"
    # -F is needed for a regular file; it then says "not a block device".
    mkntfs -q -Q -F -T -s 512 -p "$3" -H 255 -S 63 -L "$4" "$1" >"$tmp/mkntfs.log" 2>&1 \
        || { cat "$tmp/mkntfs.log" >&2; exit 1; }
    ntfslabel -q --new-serial="$5" "$1" >/dev/null   # rewrites both boot sectors
}
mkfs_part "$tmp/p1.raw" $p1_sectors $p1_start "System Reserved" 51a7fa1700000001
mkfs_part "$tmp/p2.raw" $p2_sectors $p2_start "C" 51a7fa1700000002

# A few small files in C's root (ntfscp copies files, not directories).
printf 'Hello from the qfault sample disk.\n' >"$tmp/hello.txt"
printf 'This volume is partition 2 ("C") of testdata/sample.qcow2.\nIts primary boot sector is at disk sector 34816; the backup is at sector 131071.\n' >"$tmp/readme.txt"
# -t copies the (fixed) modification time; ntfscp sets the other times to now.
touch -d '2024-01-01 00:00:00 UTC' "$tmp/hello.txt" "$tmp/readme.txt"
ntfscp -q -t "$tmp/p2.raw" "$tmp/hello.txt" hello.txt
ntfscp -q -t "$tmp/p2.raw" "$tmp/readme.txt" readme.txt

# Place the partitions; never truncate the disk.
dd if="$tmp/p1.raw" of="$tmp/disk.raw" bs=512 seek=$p1_start conv=notrunc,sparse status=none
dd if="$tmp/p2.raw" of="$tmp/disk.raw" bs=512 seek=$p2_start conv=notrunc,sparse status=none
[ "$(stat -c %s "$tmp/disk.raw")" -eq $((disk_sectors * 512)) ] || { echo "make-sample.sh: disk size changed" >&2; exit 1; }

# Sanity: each partition's last sector holds a copy of its boot sector.
for p in "$p1_start $p1_sectors" "$p2_start $p2_sectors"; do
    set -- $p
    cmp -s <(dd if="$tmp/disk.raw" bs=512 skip="$1" count=1 status=none) \
           <(dd if="$tmp/disk.raw" bs=512 skip=$(($1 + $2 - 1)) count=1 status=none) \
        || { echo "make-sample.sh: no backup boot sector at the end of the partition at $1" >&2; exit 1; }
done

qemu-img convert -q -c -f raw -O qcow2 -o compression_type=zlib "$tmp/disk.raw" "$tmp/sample.qcow2"
qemu-img check -q "$tmp/sample.qcow2"
mv -f "$tmp/sample.qcow2" "$out"
echo "wrote $out ($(stat -c %s "$out") bytes)"
