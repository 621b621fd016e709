//! What a batch produced: one report per entry, with its outputs.

use crate::apply::Output;
use crate::error::Error;
use crate::overlay::Status;
use serde::{Serialize, Serializer};
use std::path::PathBuf;

/// What happened to an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryStatus {
    /// At least one output was written, none replaced.
    Written,
    /// Every output existed with exactly its bytes.
    Unchanged,
    /// At least one output was replaced (`overwrite`).
    Replaced,
    /// The entry failed (see its error).
    Failed,
}

impl EntryStatus {
    /// The status as one lowercase word.
    pub fn word(self) -> &'static str {
        match self {
            EntryStatus::Written => "written",
            EntryStatus::Unchanged => "unchanged",
            EntryStatus::Replaced => "replaced",
            EntryStatus::Failed => "failed",
        }
    }
}

/// One manifest entry's outcome.
#[derive(Debug, Serialize)]
pub struct EntryReport {
    /// The entry, as `image[3]` or `chain[0]`.
    pub entry: String,
    /// Its position in the manifest (images first, then chains; 0-based).
    pub index: usize,
    /// The outputs: one for an image, every link for a chain.
    pub outputs: Vec<Output>,
    /// `written`, `unchanged` or `replaced` when every output agrees, the
    /// strongest otherwise (replaced > written > unchanged); `failed` on error.
    pub status: EntryStatus,
    /// Wall-clock seconds for the entry (reported under `timings`).
    #[serde(skip)]
    pub seconds: f64,
    /// Why the entry failed.
    #[serde(serialize_with = "error_text")]
    pub error: Option<Error>,
}

/// What a batch run did, entries in manifest order.
#[derive(Debug, Serialize)]
pub struct BatchReport {
    /// The manifest.
    #[serde(flatten, serialize_with = "crate::json_path::manifest")]
    pub manifest: PathBuf,
    /// The shard that ran, as `I/N`.
    pub shard: String,
    /// The entries of this shard, in manifest order.
    pub entries: Vec<EntryReport>,
    /// Worker threads used (reported under `timings`).
    #[serde(skip)]
    pub jobs: usize,
    /// Wall-clock seconds for the run, validation included (under `timings`).
    #[serde(skip)]
    pub seconds: f64,
}

impl BatchReport {
    /// The first failed entry's error, in manifest order.
    pub fn first_error(&self) -> Option<(&EntryReport, &Error)> {
        self.entries
            .iter()
            .find_map(|e| e.error.as_ref().map(|err| (e, err)))
    }

    /// Takes the first failed entry's error out of the report (its text
    /// stays in the entry's JSON only until then), e.g. to return it.
    pub fn take_first_error(&mut self) -> Option<Error> {
        self.entries.iter_mut().find_map(|e| e.error.take())
    }

    /// How many entries failed.
    pub fn failed(&self) -> usize {
        self.entries.iter().filter(|e| e.error.is_some()).count()
    }
}

/// The combined status of several outputs.
pub(crate) fn combined_status(outputs: &[Output]) -> EntryStatus {
    let has = |s: Status| outputs.iter().any(|o| o.status == s);
    if has(Status::Replaced) {
        EntryStatus::Replaced
    } else if has(Status::Written) {
        EntryStatus::Written
    } else {
        EntryStatus::Unchanged
    }
}

fn error_text<S: Serializer>(e: &Option<Error>, s: S) -> Result<S::Ok, S::Error> {
    match e {
        Some(e) => s.serialize_some(&e.to_string()),
        None => s.serialize_none(),
    }
}
