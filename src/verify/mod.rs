//! Checking what an overlay does: how its guest differs from its backing,
//! and what `mount` and `ntfsfix` will do with the partitions it touches.

pub mod diff;
pub mod overlay;

pub use diff::{changed_ranges, differences, first_difference};
pub use overlay::{verify_overlay, Expectation, OverlayVerification, PartitionVerdict};
