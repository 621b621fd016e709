//! qfault: disk images with precise, known, repairable damage.
//!
//! The pipeline, one module per stage:
//!
//! - [`image`]: raw and qcow2 images, through their whole backing chain, as
//!   one guest disk ([`image::ReadAt`], plus `Read + Seek` via [`image::Cursor`]).
//! - [`layout`]: partition tables (MBR with logical partitions, GPT).
//! - [`fs`]: filesystem probes and the NTFS boot-sector model.
//! - [`overlay`]: the qcow2 overlay writer (backed by the untouched base).
//! - [`batch`]: many overlays and whole backing chains, from a builder or a
//!   TOML manifest.
//!
//! The base image is never written: every image of a chain is opened read-only.

pub mod batch;
pub mod error;
pub mod export;
pub mod fs;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod image;
pub mod layout;
pub mod output;
pub mod overlay;
pub mod recipe;
pub mod units;
pub mod verify;

pub use error::{Error, Result};
