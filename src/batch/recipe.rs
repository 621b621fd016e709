//! The recipes a chain link or a manifest entry applies, as plain data.
//!
//! A [`RecipeSpec`] names a change and its parameters; [`RecipeSpec::plan`]
//! turns it into the [`Patch`]es for a given base and a one-line prediction of
//! what the guest will see. [`RecipeSpec::preflight`] checks the parameters
//! against the base without reading or writing anything large, so a whole
//! manifest can be validated before its first output is written.

use crate::error::{Error, Result};
use crate::fs::ntfs::NtfsfixOutcome;
use crate::image::{check_range, Image, ReadAt};
use crate::overlay::Patch;
use crate::recipe::ntfs_boot::{self, NtfsBootOptions};
use crate::recipe::select::Selection;
use std::path::PathBuf;

/// A change to apply on top of a base, with its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecipeSpec {
    /// No change: an empty overlay that reads exactly as its backing file.
    Empty,
    /// Zero `length` guest bytes at `offset`.
    Zero {
        /// First guest byte.
        offset: u64,
        /// Number of bytes.
        length: u64,
    },
    /// Write the bytes of the file `from` at guest byte `offset`.
    Write {
        /// First guest byte.
        offset: u64,
        /// The file whose bytes are written.
        from: PathBuf,
    },
    /// Zero the first `sectors` sectors of an NTFS partition's boot sector
    /// area (`partition` 1-based; `None` = the only NTFS partition).
    NtfsBoot {
        /// 1-based partition number, or `None` for the only NTFS partition.
        partition: Option<u32>,
        /// How many sectors to zero from the partition's first sector.
        sectors: u64,
    },
}

/// What a recipe does to one base: the patches and what the guest will see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The changes, in order.
    pub patches: Vec<Patch>,
    /// What the guest will see, in one line.
    pub prediction: String,
}

impl RecipeSpec {
    /// The recipe's name as written in manifests and `--each`.
    pub fn name(&self) -> &'static str {
        match self {
            RecipeSpec::Empty => "empty",
            RecipeSpec::Zero { .. } => "zero",
            RecipeSpec::Write { .. } => "write",
            RecipeSpec::NtfsBoot { .. } => "ntfs-boot",
        }
    }

    /// The recipe as `--each` would take it, e.g. `zero --offset 1048576 --length 512`.
    pub fn describe(&self) -> String {
        match self {
            RecipeSpec::Empty => "empty".into(),
            RecipeSpec::Zero { offset, length } => {
                format!("zero --offset {offset} --length {length}")
            }
            RecipeSpec::Write { offset, from } => format!(
                "write --offset {offset} --from {}",
                quote(&from.to_string_lossy())
            ),
            RecipeSpec::NtfsBoot { partition, sectors } => match partition {
                Some(p) => format!("ntfs-boot --partition {p} --sectors {sectors}"),
                None => format!("ntfs-boot --sectors {sectors}"),
            },
        }
    }

    /// Checks the parameters against `base` (ranges inside the disk, the
    /// source file readable) without reading the file. An error names the
    /// parameter at fault through [`Error::Context`] (e.g. `offset: …`).
    pub fn preflight(&self, base: &mut Image) -> Result<()> {
        let size = base.size();
        match self {
            RecipeSpec::Empty => Ok(()),
            RecipeSpec::Zero { offset, length } => check_range(*offset, *length, size)
                .map_err(|e| e.context(range_field(*offset, size))),
            RecipeSpec::Write { offset, from } => {
                let meta =
                    std::fs::metadata(from).map_err(|e| Error::io(from, e).context("from"))?;
                if !meta.is_file() {
                    return Err(
                        Error::Usage(format!("{} is not a regular file", from.display()))
                            .context("from"),
                    );
                }
                check_range(*offset, meta.len(), size)
                    .map_err(|e| e.context(range_field(*offset, size)))
            }
            RecipeSpec::NtfsBoot { .. } => self.plan(base).map(|_| ()),
        }
    }

    /// The patches this recipe makes on `base`, and its prediction.
    pub fn plan(&self, base: &mut Image) -> Result<Plan> {
        if let RecipeSpec::NtfsBoot { partition, sectors } = self {
            return ntfs_boot_plan(base, *partition, *sectors);
        }
        self.preflight(base)?;
        Ok(match self {
            RecipeSpec::Empty => Plan {
                patches: Vec::new(),
                prediction: "reads exactly as its backing file".into(),
            },
            RecipeSpec::Zero { offset, length } => Plan {
                patches: vec![Patch::Zero {
                    offset: *offset,
                    len: *length,
                }],
                prediction: format!(
                    "guest bytes {offset}..{} read as zeros, the rest as its backing file",
                    offset + length
                ),
            },
            RecipeSpec::Write { offset, from } => {
                let bytes = std::fs::read(from).map_err(|e| Error::io(from, e).context("from"))?;
                check_range(*offset, bytes.len() as u64, base.size())
                    .map_err(|e| e.context("from"))?;
                let prediction = format!(
                    "guest bytes {offset}..{} hold the bytes of {}, the rest reads as its backing file",
                    offset + bytes.len() as u64,
                    from.display()
                );
                Plan {
                    patches: vec![Patch::Data {
                        offset: *offset,
                        bytes,
                    }],
                    prediction,
                }
            }
            RecipeSpec::NtfsBoot { .. } => unreachable!("planned above"),
        })
    }
}

/// The `ntfs-boot` recipe's plan (see [`crate::recipe::ntfs_boot`]): it
/// refuses (exit 3) when ntfsfix would not repair the damage.
fn ntfs_boot_plan(base: &mut Image, partition: Option<u32>, sectors: u64) -> Result<Plan> {
    let opts = NtfsBootOptions {
        selection: partition.map_or(Selection::Only, Selection::Number),
        sectors,
        allow_unrepairable: false,
    };
    let plan = ntfs_boot::plan(base, &opts).map_err(|e| match e {
        Error::Usage(_) => e.context("partition"),
        other => other,
    })?;
    let prediction = plan
        .targets
        .iter()
        .map(|t| {
            let fix = match t.prediction.ntfsfix.outcome {
                NtfsfixOutcome::Rewritten { lba, .. } => {
                    format!("ntfsfix repairs it from LBA {lba}")
                }
                _ => "ntfsfix: nothing to repair".to_string(),
            };
            format!(
                "partition {}: mount fails (NTFS signature missing), {fix}",
                t.partition.partition.number
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    Ok(Plan {
        patches: plan.patches(),
        prediction,
    })
}

/// The field an out-of-range error is about: the offset itself when it is
/// past the end, the length otherwise.
fn range_field(offset: u64, size: u64) -> &'static str {
    if offset >= size {
        "offset"
    } else {
        "length"
    }
}

/// `text` quoted for `--each` when it holds spaces or quotes.
fn quote(text: &str) -> String {
    if !text.is_empty() && !text.contains(|c: char| c.is_whitespace() || "'\"\\".contains(c)) {
        return text.to_string();
    }
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_quotes_paths() {
        let r = RecipeSpec::Write {
            offset: 0,
            from: PathBuf::from("a b.bin"),
        };
        assert_eq!(r.describe(), "write --offset 0 --from 'a b.bin'");
        assert_eq!(RecipeSpec::Empty.describe(), "empty");
    }
}
