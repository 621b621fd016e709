//! Many overlays and whole backing chains: a builder API and TOML manifests.
//!
//! - [`ChainBuilder`] writes an N-link backing chain on a base, each link an
//!   overlay applying a [`RecipeSpec`], backed by the previous link, with
//!   relative names so the directory can move. The chain is opened once and
//!   grown with [`crate::image::Image::push_overlay`], so each link costs O(1).
//! - [`Batch`] produces many independent images and chains: built in code or
//!   read from a manifest ([`Batch::from_manifest`], format in [`manifest`]),
//!   validated as a whole before anything is written, run on a pool of
//!   threads, optionally as one [`Shard`] of several.
//! - Every output is written idempotently: an existing file with exactly the
//!   bytes it would get is left alone, one with other bytes is an error
//!   unless `overwrite`. Reports ([`ChainReport`], [`BatchReport`]) give each
//!   output's recipe, prediction, size and time.

mod chain;
mod each;
mod fields;
pub mod manifest;
mod names;
mod place;
mod recipe;
mod report;
mod run;
mod shard;
mod validate;

pub use chain::{ensure_open_files, ChainBuilder};
pub use each::parse_each;
pub use names::{NamePattern, DEFAULT_NAME_PATTERN};
pub use recipe::{Plan, RecipeSpec};
pub use report::{BatchReport, ChainReport, EntryReport, OutputReport, Status};
pub use run::{Batch, Entry, ImageJob, Job};
pub use shard::Shard;

use crate::error::Error;

/// `e` said of `prefix`, joining field paths with dots: `image[3]` and an
/// error about `offset` become `image[3].offset: …`.
pub(crate) fn within(prefix: &str, e: Error) -> Error {
    match e {
        Error::Context { context, source } => Error::Context {
            context: format!("{prefix}.{context}"),
            source,
        },
        e => e.context(prefix),
    }
}
