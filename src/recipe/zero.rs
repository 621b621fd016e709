//! The `zero` recipe: zero a guest byte range, of the disk or of one
//! partition.

use super::select::{self, Found};
use super::{Catalogue, Outcome, PartitionRef, Plan, Prediction, Recipe, Target};
use crate::error::{Error, Result};
use crate::image::{check_range, ReadAt, Window};
use crate::overlay::{Patch, Preview};
use crate::units::parse_bytes_arg;

/// `zero`: zero `--length` bytes at `--offset`.
pub struct Zero;

/// Parameters of `zero`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args, serde::Serialize)]
pub struct ZeroParams {
    /// First byte to zero (suffixes K, M, G, T as qemu-img, binary; s=512 bytes); relative to
    /// the partition's start with --partition.
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes_arg)]
    pub offset: u64,
    /// Number of bytes to zero, at least 1 (suffixes as for --offset).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes_arg)]
    pub length: u64,
    /// Address this partition (as `inspect` numbers them; 0 = the whole
    /// disk): --offset is relative to its start and the change stays inside it.
    #[arg(long, value_name = "N")]
    pub partition: Option<u32>,
}

impl Recipe for Zero {
    type Params = ZeroParams;
    const NAME: &'static str = "zero";
    const ABOUT: &'static str = "Zero a guest byte range (of the disk, or of one partition)";

    fn catalogue() -> Catalogue {
        Catalogue {
            targets: "disk or partition",
            damage: "the given byte range reads as zeros",
            // What blkid says depends on where the bytes land: predicted per target.
            outcomes: Vec::new(),
            repair: None,
            preconditions: vec!["the range lies inside the disk (or the partition)"],
        }
    }

    fn plan(p: &ZeroParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        if p.length == 0 {
            // An overlay that changes nothing is `empty`'s job.
            return Err(Error::Usage(
                "must be at least 1 byte (for no change, use the empty recipe)".into(),
            )
            .context("length"));
        }
        let patch = |offset| Patch::Zero {
            offset,
            len: p.length,
        };
        range_plan(Self::NAME, disk, p.partition, p.offset, p.length, patch)
    }

    fn predict(_: &ZeroParams, target: &Target, damaged: &mut dyn ReadAt) -> Result<Prediction> {
        identify(target, damaged)
    }
}

/// The plan of a change of `length` bytes at `offset` (relative to
/// `partition` when given): range checks, the patch, and what blkid will
/// identify in the partition afterwards. Shared by `zero` and `write`.
pub(crate) fn range_plan(
    name: &'static str,
    disk: &mut dyn ReadAt,
    partition: Option<u32>,
    offset: u64,
    length: u64,
    make: impl FnOnce(u64) -> Patch,
) -> Result<Plan> {
    let size = disk.size();
    let (found, start) = match partition {
        None => {
            check_range(offset, length, size).map_err(|e| e.context(range_field(offset, size)))?;
            (None, offset)
        }
        Some(n) => {
            let p = select::partition_by_number(disk, n).map_err(|e| e.context("partition"))?;
            if check_range(offset, length, p.size).is_err() {
                return Err(Error::Usage(format!(
                    "range {offset}+{length} is past the end of partition {n} ({} bytes)",
                    p.size
                ))
                .context(range_field(offset, p.size)));
            }
            let signatures = {
                let mut w = Window::new(&mut *disk, p.start, p.size)?;
                crate::fs::probe_all(&mut w)?
            };
            let found = Found::new(p, signatures);
            let start = found.partition.start + offset;
            (Some(found), start)
        }
    };
    let patches = vec![make(start)];
    let partition = found.as_ref().map(PartitionRef::from_found);
    let mut plan = Plan::single(name, partition, patches.clone(), Prediction::default());
    let mut view = Preview::new(&mut *disk, patches);
    plan.targets[0].prediction = identify(&plan.targets[0], &mut view)?;
    Ok(plan)
}

/// For a change inside a partition: what `blkid -p` reports for it now.
pub(crate) fn identify(target: &Target, damaged: &mut dyn ReadAt) -> Result<Prediction> {
    let Some(p) = &target.partition else {
        return Ok(Prediction::default());
    };
    let mut w = Window::new(damaged, p.offset, p.length)?;
    let now = crate::fs::probe(&mut w)?;
    Ok(Prediction {
        outcomes: vec![Outcome::blkid(now.as_ref().map(|f| f.fstype))],
        byte_identical_after_repair: false,
        notes: Vec::new(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::MemDisk;
    use crate::recipe::Spec;

    #[test]
    fn describe_round_trips() {
        for text in [
            "zero --offset 1M --length 512",
            "zero --offset 0 --length 1 --partition 2",
            "zero --offset 8s --length 1 --partition 0",
        ] {
            let s = Spec::parse(text).unwrap();
            assert_eq!(Spec::parse(&s.describe()).unwrap(), s, "{text}");
        }
        assert_eq!(
            Spec::parse("zero --offset 1M --length 512")
                .unwrap()
                .describe(),
            "zero --offset 1048576 --length 512"
        );
    }

    #[test]
    fn plans_one_zero_patch_inside_the_disk() {
        let p = ZeroParams {
            offset: 512,
            length: 512,
            partition: None,
        };
        let mut d = MemDisk(vec![1; 4096]);
        let plan = Zero::plan(&p, &mut d).unwrap();
        assert_eq!(
            plan.patches,
            [Patch::Zero {
                offset: 512,
                len: 512
            }]
        );
        assert_eq!(plan.targets[0].changes[0].offset, 512);
        let past = ZeroParams { offset: 4096, ..p };
        let e = Zero::plan(&past, &mut d).unwrap_err();
        assert!(e.to_string().starts_with("offset: "), "{e}");
    }
}
