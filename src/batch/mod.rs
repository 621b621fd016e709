//! Many overlays and whole backing chains from one description: a builder
//! API ([`Batch`]) and TOML manifests ([`manifest`]).
//!
//! - [`job`]: what an entry produces, as plain data ([`ImageJob`], or a
//!   [`crate::chain::ChainBuilder`]).
//! - [`manifest`]: reading a TOML manifest into entries; every recipe's
//!   fields come from the recipe registry ([`crate::recipe::Spec::from_table`]).
//! - [`validate`]: checking every entry before anything is written.
//! - [`Batch`]: running a shard of the entries on a pool of threads, each
//!   output through the one write path ([`crate::apply`]), every output of
//!   the run flushed once, together, at its end.
//! - Reports ([`BatchReport`]) give each output's recipe, targets and
//!   prediction; timings only under `timings`.

mod fields;
pub mod job;
pub mod manifest;
mod report;
mod run;
mod shard;
pub mod validate;

pub use job::{Entry, ImageJob, Job};
pub use report::{BatchReport, EntryReport, EntryStatus};
pub use run::Batch;
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
