//! What a batch produces, as plain data: one overlay ([`ImageJob`]) or one
//! chain ([`crate::chain::ChainBuilder`]) per named [`Entry`].

use crate::apply::OutputFormat;
use crate::chain::ChainBuilder;
use crate::overlay::DEFAULT_CLUSTER_SIZE;
use crate::recipe::Spec;
use std::path::PathBuf;

/// One overlay on a base.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageJob {
    /// The base image (raw, qcow2, VMDK, VHDX, VHD or VDI, with its chain); never written.
    pub base: PathBuf,
    /// The overlay to write.
    pub output: PathBuf,
    /// The change it holds.
    pub recipe: Spec,
    /// Its cluster size.
    pub cluster_size: u64,
    /// Store the base's absolute path instead of a relative one.
    pub absolute_backing: bool,
    /// The kind of file to write (an overlay unless the manifest's
    /// `output_format` says otherwise).
    pub output_format: OutputFormat,
}

impl ImageJob {
    /// An overlay at `output` on `base` holding `recipe`, with the default
    /// cluster size and a relative backing name.
    pub fn new(base: impl Into<PathBuf>, output: impl Into<PathBuf>, recipe: Spec) -> Self {
        ImageJob {
            base: base.into(),
            output: output.into(),
            recipe,
            cluster_size: DEFAULT_CLUSTER_SIZE,
            absolute_backing: false,
            output_format: OutputFormat::Overlay,
        }
    }
}

/// What an entry produces.
#[derive(Debug, Clone)]
pub enum Job {
    /// One overlay.
    Image(ImageJob),
    /// A backing chain.
    Chain(ChainBuilder),
}

/// A named job of a batch (`image[3]`, `chain[0]`).
#[derive(Debug, Clone)]
pub struct Entry {
    /// The entry's name in errors and reports.
    pub name: String,
    /// What it produces.
    pub job: Job,
}
