//! Every base format qfault reads meets one acceptance (issue 17): images
//! made by `qemu-img convert -O FMT` (with each subformat's options) read
//! exactly as QEMU reads them, inspect as blkid sees them, and take `inject
//! ntfs-boot` to an overlay that QEMU accepts and the real ntfsfix repairs
//! as predicted. The checks live in `tests/common/formats.rs`; one line per
//! format and subformat here.

mod common;

/// `base_format!(test_name, "fmt", ["-o", "opts"])`: the acceptance of
/// `common::formats::assert_base_format` for images `qemu-img convert -O
/// fmt opts` makes.
macro_rules! base_format {
    ($name:ident, $fmt:expr, [$($opt:expr),*]) => {
        #[test]
        fn $name() {
            common::formats::assert_base_format($fmt, &[$($opt),*]);
        }
    };
}

// The formats qfault has always read: the harness proves itself on them.
base_format!(raw, "raw", []);
base_format!(qcow2_compressed, "qcow2", ["-c"]);
base_format!(qcow2_v2, "qcow2", ["-o", "compat=0.10"]);
// Formats read by drivers (src/image/driver.rs); one row per subformat.
base_format!(vpc_dynamic, "vpc", []);
base_format!(vpc_dynamic_force_size, "vpc", ["-o", "force_size=on"]);
// A fixed VHD: QEMU's probe reads it as raw (its footer is at the end);
// qfault finds the footer and reads vpc, as QEMU does with `-f vpc`.
base_format!(vpc_fixed, "vpc", ["-o", "subformat=fixed"]);
base_format!(vdi_dynamic, "vdi", []);
base_format!(vdi_static, "vdi", ["-o", "static=on"]);
base_format!(vhdx_dynamic, "vhdx", []);
base_format!(vhdx_fixed, "vhdx", ["-o", "subformat=fixed"]);
base_format!(vhdx_block_1m, "vhdx", ["-o", "block_size=1M,log_size=1M"]);
base_format!(
    vmdk_monolithic_sparse,
    "vmdk",
    ["-o", "subformat=monolithicSparse"]
);
base_format!(
    vmdk_stream_optimized,
    "vmdk",
    ["-o", "subformat=streamOptimized"]
);
base_format!(
    vmdk_monolithic_flat,
    "vmdk",
    ["-o", "subformat=monolithicFlat"]
);
base_format!(
    vmdk_two_gb_sparse,
    "vmdk",
    ["-o", "subformat=twoGbMaxExtentSparse"]
);
base_format!(
    vmdk_two_gb_flat,
    "vmdk",
    ["-o", "subformat=twoGbMaxExtentFlat"]
);
