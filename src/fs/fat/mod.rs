//! FAT: what qfault knows about FAT12/16/32, one file per concern:
//!
//! - `probe.rs`, blkid's `vfat` probe ([`probe`], [`is_fat`]);
//! - [`boot`], the on-disk structures: the boot sector and BPB, the FAT32
//!   extension and the layout derived from them ([`Fat32Boot`]), spec
//!   constants named with their section of the Microsoft FAT specification
//!   ("Microsoft Extensible Firmware Initiative FAT32 File System
//!   Specification", version 1.03);
//! - [`fsck`], the checker's rules: what dosfstools 4.2 `fsck.fat` reports
//!   and repairs in the boot sector, its backup, the FATs and the dirty
//!   flags ([`check_fat32`], [`FsckFat`]).
//!
//! Sources (read, not copied): dosfstools 4.2 `src/boot.c` (`read_boot`,
//! `check_backup_boot`), `src/fat.c` (`read_fat`), `src/check.c`
//! (`check_dirty_bits`), `src/fsck.fat.c` (`main`: exit codes);
//! `shared/catalogue/fat32-*.sh` for the observed messages.

pub mod boot;
pub mod fsck;
mod probe;

pub use boot::{Fat32Boot, FatBootError};
pub use fsck::{check_fat32, BackupBoot, FatsState, FsckFat};
pub use probe::{is_fat, probe};
