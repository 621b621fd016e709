//! Checking what an overlay does: how its guest differs from its backing,
//! and what `mount` and `ntfsfix` will do with the partitions it touches.

pub mod diff;
pub mod overlay;

pub use diff::{changed_ranges, differences, differences_stored, first_difference, TopView};
pub use overlay::{verify_overlay, Expectation, OverlayVerification, PartitionVerdict};
