#!/usr/bin/env bash
# Seed corpora for the fuzz targets, made from the test fixtures and from
# small images built with the same real tools the tests use. Writes only
# fuzz/corpus/<target>/ (git-ignored).
set -euo pipefail
export PATH="$PATH:/sbin:/usr/sbin"
cd "$(dirname "${BASH_SOURCE[0]}")"
root=..
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for t in qcow2_read partition_tables ntfs_boot_sector inspect_pipeline vpc_read vdi_read vhdx_read vmdk_read; do
    mkdir -p "corpus/$t"
done

# qcow2: small images covering the reader's features (kept under 128 KiB).
qemu-img create -q -f raw "$tmp/d.raw" 64K
qemu-io -f raw -c "write -P 0x5a 0 8K" -c "write -P 0x11 20K 4K" "$tmp/d.raw" >/dev/null
qemu-img convert -O qcow2 -o cluster_size=512 "$tmp/d.raw" corpus/qcow2_read/v3-512.qcow2
qemu-img convert -O qcow2 -o compat=0.10,cluster_size=512 "$tmp/d.raw" corpus/qcow2_read/v2-512.qcow2
qemu-img convert -c -O qcow2 -o cluster_size=4096 "$tmp/d.raw" corpus/qcow2_read/zlib-4k.qcow2
qemu-img convert -c -O qcow2 -o cluster_size=4096,compression_type=zstd "$tmp/d.raw" corpus/qcow2_read/zstd-4k.qcow2
qemu-img create -q -f qcow2 -o cluster_size=16K,extended_l2=on "$tmp/e.qcow2" 64K
qemu-io -f qcow2 -c "write -P 7 1K 2K" -c "write -z 8K 1K" "$tmp/e.qcow2" >/dev/null
cp "$tmp/e.qcow2" corpus/qcow2_read/extl2-16k.qcow2
qemu-img create -q -f qcow2 -o cluster_size=512 -b d.raw -F raw "$tmp/o.qcow2"
qemu-io -f qcow2 -c "write -z 512 1K" "$tmp/o.qcow2" >/dev/null
cp "$tmp/o.qcow2" corpus/qcow2_read/overlay-512.qcow2

# Partition tables: MBR with logical partitions, GPT (small disks).
truncate -s 256K "$tmp/mbr.raw"
printf 'label: dos\nstart=8, size=64, type=83\nstart=80, size=400, type=5\nstart=88, size=40, type=83\nstart=136, size=40, type=7\n' \
    | sfdisk -q "$tmp/mbr.raw"
cp "$tmp/mbr.raw" corpus/partition_tables/mbr-logical.raw
truncate -s 128K "$tmp/gpt.raw"
sgdisk -q -o -n 1:40:100 -t 1:0700 -n 2:101:180 -t 2:8300 "$tmp/gpt.raw" >/dev/null
cp "$tmp/gpt.raw" corpus/partition_tables/gpt.raw

# NTFS: the sample's boot sector, as a small "partition" with its backup at the end.
qemu-img convert -O raw "$root/testdata/sample.qcow2" "$tmp/sample.raw"
{ dd if="$tmp/sample.raw" bs=512 skip=34816 count=1 status=none
  head -c $((512 * 6)) /dev/zero
  dd if="$tmp/sample.raw" bs=512 skip=34816 count=1 status=none; } > corpus/ntfs_boot_sector/sample-boot.bin

# The inspect pipeline: the MBR and GPT disks, and the sample's first MiB.
cp "$tmp/mbr.raw" "$tmp/gpt.raw" corpus/inspect_pipeline/
head -c $((1 << 20)) "$tmp/sample.raw" > corpus/inspect_pipeline/sample-head.raw
# VHD (dynamic, fixed, force_size) and VDI (dynamic, static): small images
# with data and holes.
qemu-img create -q -f raw "$tmp/v.raw" 1M
qemu-io -f raw -c "write -P 0x5a 0 8K" -c "write -P 0x11 600K 4K" "$tmp/v.raw" >/dev/null
# (a dynamic VHD's 2 MiB blocks exceed the 1 MiB input limit: holes only)
qemu-img create -q -f vpc corpus/vpc_read/dynamic-empty.vhd 4M
qemu-img convert -O vpc -o subformat=fixed "$tmp/v.raw" corpus/vpc_read/fixed.vhd
qemu-img convert -O vpc -o force_size=on "$tmp/v.raw" corpus/vpc_read/force-size.vhd
qemu-img convert -O vdi "$tmp/v.raw" corpus/vdi_read/dynamic.vdi
qemu-img convert -O vdi -o static=on "$tmp/v.raw" corpus/vdi_read/static.vdi
# VHDX: small dynamic and fixed images with data, zero blocks and holes
# (1 MiB blocks and log, a 4 MiB disk: 10 and 13 MiB files).
qemu-img create -q -f vhdx -o block_size=1M,log_size=1M "$tmp/v.vhdx" 4M
qemu-io -f vhdx -c "write -P 0x5a 0 1M" -c "write -z 2M 1M" "$tmp/v.vhdx" >/dev/null
cp "$tmp/v.vhdx" corpus/vhdx_read/dynamic-1m.vhdx
qemu-img convert -O vhdx -o subformat=fixed,block_size=1M,log_size=1M "$tmp/v.vhdx" corpus/vhdx_read/fixed-1m.vhdx

# VMDK: hosted sparse extents (plain, zeroed grains, stream-optimized)
# holding the qcow2 seeds' 64 KiB disk; descriptor files name extents that
# the fuzz target cannot open, so only their text is parsed.
qemu-img convert -O vmdk -o subformat=monolithicSparse "$tmp/d.raw" corpus/vmdk_read/sparse.vmdk
qemu-img convert -O vmdk -o subformat=monolithicSparse,zeroed_grain=on "$tmp/d.raw" "$tmp/z.vmdk"
qemu-io -f vmdk -c "write -z 0 64K" "$tmp/z.vmdk" >/dev/null
cp "$tmp/z.vmdk" corpus/vmdk_read/zeroed.vmdk
qemu-img convert -O vmdk -o subformat=streamOptimized "$tmp/d.raw" corpus/vmdk_read/stream.vmdk
qemu-img convert -O vmdk -o subformat=twoGbMaxExtentSparse "$tmp/d.raw" "$tmp/split.vmdk"
cp "$tmp/split.vmdk" corpus/vmdk_read/descriptor.vmdk
echo "seeds written under fuzz/corpus/"
