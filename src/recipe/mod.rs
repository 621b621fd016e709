//! Recipes: damage with a known outcome. Each recipe checks before writing
//! that the damage does what it promises, plans the guest bytes to change,
//! and predicts what the real tools will do.
//!
//! - [`select`]: finding the partitions a recipe acts on.
//! - [`predict`]: what `mount` and `ntfsfix` will do with an NTFS partition.
//! - [`ntfs_boot`]: zero the NTFS primary boot sector so `mount` fails and
//!   `ntfsfix` repairs it from the backup.

pub mod ntfs_boot;
pub mod predict;
pub mod select;
