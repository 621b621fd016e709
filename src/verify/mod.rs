//! Checking what an overlay does: how its guest differs from its backing,
//! and whether a repaired volume opens with a pure-Rust reader.

pub mod diff;
pub mod ntfs_volume;

pub use diff::{changed_ranges, ByteRange};
pub use ntfs_volume::{read_volume, VolumeSummary};
