//! What a chain or a batch produced: one row per output, with its recipe,
//! its prediction, its size and the time it took.

use crate::error::Error;
use serde::{Serialize, Serializer};
use std::path::PathBuf;

/// What happened to one output file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The output did not exist and was written.
    Written,
    /// The output existed with exactly the bytes it would get: left alone.
    Unchanged,
    /// The output existed with other bytes and was replaced (`overwrite`).
    Replaced,
    /// The entry failed (see its error).
    Failed,
}

impl Status {
    /// The status as one lowercase word.
    pub fn word(self) -> &'static str {
        match self {
            Status::Written => "written",
            Status::Unchanged => "unchanged",
            Status::Replaced => "replaced",
            Status::Failed => "failed",
        }
    }
}

/// One overlay written (or found up to date).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputReport {
    /// The overlay's path.
    pub path: PathBuf,
    /// The recipe, as `--each` would take it.
    pub recipe: String,
    /// What the guest will see, in one line.
    pub prediction: String,
    /// Backing file name as stored in the overlay.
    pub backing_file: String,
    /// What happened to the file.
    pub status: Status,
    /// Apparent file size in bytes.
    pub file_size: u64,
    /// Bytes the file occupies on disk.
    pub allocated_size: u64,
    /// Wall-clock seconds spent on this output.
    pub seconds: f64,
}

/// A backing chain built link by link.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChainReport {
    /// The base the first link is backed by.
    pub base: PathBuf,
    /// The directory holding the links.
    pub dir: PathBuf,
    /// The top link (the image to use), or `None` for a chain of no links.
    pub top: Option<PathBuf>,
    /// Every link, bottom (link 1) first.
    pub links: Vec<OutputReport>,
    /// Wall-clock seconds for the whole chain, base opening included.
    pub seconds: f64,
}

impl ChainReport {
    /// Sum of the links' apparent file sizes.
    pub fn file_size(&self) -> u64 {
        self.links.iter().map(|l| l.file_size).sum()
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
    pub outputs: Vec<OutputReport>,
    /// `written`, `unchanged` or `replaced` when every output agrees, the
    /// strongest otherwise (replaced > written > unchanged); `failed` on error.
    pub status: Status,
    /// Wall-clock seconds for the entry.
    pub seconds: f64,
    /// Why the entry failed.
    #[serde(serialize_with = "error_text")]
    pub error: Option<Error>,
}

/// What a batch run did, entries in manifest order.
#[derive(Debug, Serialize)]
pub struct BatchReport {
    /// The manifest.
    pub manifest: PathBuf,
    /// The shard that ran, as `I/N`.
    pub shard: String,
    /// Worker threads used.
    pub jobs: usize,
    /// The entries of this shard, in manifest order.
    pub entries: Vec<EntryReport>,
    /// Wall-clock seconds for the run, validation included.
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
pub(crate) fn combined_status(outputs: &[OutputReport]) -> Status {
    let has = |s: Status| outputs.iter().any(|o| o.status == s);
    if has(Status::Replaced) {
        Status::Replaced
    } else if has(Status::Written) {
        Status::Written
    } else {
        Status::Unchanged
    }
}

fn error_text<S: Serializer>(e: &Option<Error>, s: S) -> Result<S::Ok, S::Error> {
    match e {
        Some(e) => s.serialize_some(&e.to_string()),
        None => s.serialize_none(),
    }
}
