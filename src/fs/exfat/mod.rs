//! exFAT: what qfault knows about it, one file per concern:
//!
//! - `probe.rs`, blkid's `exfat` probe ([`probe`]);
//! - [`boot`], the boot regions (Microsoft exFAT specification, section 3:
//!   main boot region sectors 0..=11, backup 12..=23, the boot checksum of
//!   section 3.4) and the checks exfat-fuse 1.3.0 and exfatprogs 1.2.0
//!   `fsck.exfat` make on them ([`BootRegions`]).
//!
//! Sources (read, not copied): exfatprogs 1.2.0 `fsck/fsck.c`
//! (`boot_region_checksum`, `read_boot_region`, `restore_boot_region`,
//! `exfat_boot_region_check`, `exfat_mark_volume_dirty`, `main`),
//! `lib/libexfat.c` (`boot_calc_checksum`); exfat-fuse 1.3.0
//! `libexfat/mount.c` (`verify_vbr_checksum`); `shared/catalogue/exfat-boot-checksum.sh`.

pub mod boot;
mod probe;

pub use boot::{boot_checksum, BootRegion, BootRegions};
pub use probe::probe;
