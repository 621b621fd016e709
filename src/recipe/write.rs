//! The `write` recipe: write a file's bytes at a guest offset, of the disk
//! or of one partition.

use super::zero::{identify, range_plan};
use super::{Catalogue, Plan, Prediction, Recipe, Target};
use crate::error::{Error, Result};
use crate::image::ReadAt;
use crate::overlay::Patch;
use crate::units::parse_bytes_arg;
use std::path::{Path, PathBuf};

/// `write`: the bytes of `--from` at `--offset`.
pub struct Write;

/// Parameters of `write`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args, serde::Serialize)]
pub struct WriteParams {
    /// Where to write (suffixes K, M, G, T as qemu-img, binary; s=512 bytes); relative to the
    /// partition's start with --partition.
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes_arg)]
    pub offset: u64,
    /// The file whose bytes are written (in a manifest: relative to its directory).
    #[arg(long, value_name = "FILE")]
    #[serde(flatten, serialize_with = "crate::json_path::from")]
    pub from: PathBuf,
    /// Address this partition (as `inspect` numbers them; 0 = the whole
    /// disk): --offset is relative to its start and the change stays inside it.
    #[arg(long, value_name = "N")]
    pub partition: Option<u32>,
}

impl Recipe for Write {
    type Params = WriteParams;
    const NAME: &'static str = "write";
    const ABOUT: &'static str =
        "Write a file's bytes at a guest offset (of the disk, or of one partition)";

    fn catalogue() -> Catalogue {
        Catalogue {
            targets: "disk or partition",
            damage: "the file's bytes replace the guest's at the offset",
            // What blkid says depends on where the bytes land: predicted per target.
            outcomes: Vec::new(),
            repair: None,
            preconditions: vec![
                "the file is a readable regular file",
                "its bytes fit inside the disk (or the partition) at the offset",
            ],
        }
    }

    fn resolve_paths(p: &mut WriteParams, dir: &Path) {
        if p.from.is_relative() {
            p.from = dir.join(&p.from);
        }
    }

    fn plan(p: &WriteParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        let meta = std::fs::metadata(&p.from).map_err(|e| Error::io(&p.from, e).context("from"))?;
        if !meta.is_file() {
            return Err(
                Error::Usage(format!("{} is not a regular file", p.from.display())).context("from"),
            );
        }
        let bytes = std::fs::read(&p.from).map_err(|e| Error::io(&p.from, e).context("from"))?;
        let len = bytes.len() as u64;
        if len == 0 {
            return Err(Error::Usage(format!(
                "{} is empty: there is nothing to write",
                p.from.display()
            ))
            .context("from"));
        }
        range_plan(Self::NAME, disk, p.partition, p.offset, len, |offset| {
            Patch::Data { offset, bytes }
        })
    }

    fn predict(_: &WriteParams, target: &Target, damaged: &mut dyn ReadAt) -> Result<Prediction> {
        identify(target, damaged)
    }
}

#[cfg(test)]
mod tests {
    use crate::recipe::Spec;

    #[test]
    fn describe_quotes_paths_and_round_trips() {
        let s = Spec::parse("write --offset 0 --from 'a b.bin'").unwrap();
        assert_eq!(s.describe(), "write --offset 0 --from 'a b.bin'");
        assert_eq!(Spec::parse(&s.describe()).unwrap(), s);
    }
}
