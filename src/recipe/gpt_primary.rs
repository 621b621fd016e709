//! The `gpt-primary` recipe: zero the primary GPT header (LBA 1). libfdisk
//! (sfdisk, fdisk), sgdisk and blkid use the backup; parted 3.5 refuses the
//! disk ("unrecognised disk label", exit 1). The repair that restores the
//! disk byte for byte depends on who made the table (see [`super::ptable`]).

use super::ptable::{self, gpt_plan, gpt_prediction, reads, typical_gpt};
use super::select::Found;
use super::{Catalogue, Plan, Prediction, Recipe, Target};
use crate::error::Result;
use crate::image::ReadAt;
use crate::overlay::Patch;

/// `gpt-primary`: zero the primary GPT header.
pub struct GptPrimary;

/// `gpt-primary` takes no parameters: it addresses the whole disk.
#[derive(Debug, Clone, PartialEq, Eq, Default, clap::Args, serde::Serialize)]
pub struct GptPrimaryParams {}

impl Recipe for GptPrimary {
    type Params = GptPrimaryParams;
    const NAME: &'static str = "gpt-primary";
    const ABOUT: &'static str =
        "Zero the primary GPT header (LBA 1): parted refuses the disk, the other tools use the backup";
    const REPEATABLE: bool = false;

    fn catalogue() -> Catalogue {
        Catalogue {
            targets: "disk (gpt)",
            damage: "the primary GPT header (LBA 1) reads as zeros",
            outcomes: typical_gpt(
                [
                    reads("sfdisk", ptable::SFDISK_DUMP, ptable::PRIMARY_CORRUPT),
                    ptable::no_table_readers()[1].clone(),
                ],
                ptable::MAIN_HEADER_ERROR,
            ),
            repair: Some(ptable::GPT_REPAIR),
            preconditions: ptable::GPT_PRECONDITIONS.to_vec(),
        }
    }

    fn plan(_: &GptPrimaryParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        gpt_plan(Self::NAME, disk, |s| {
            let ss = u64::from(s.sector_size);
            Ok(vec![Patch::Zero {
                offset: ss,
                len: ss,
            }])
        })
    }

    fn predict(_: &GptPrimaryParams, _: &Target, damaged: &mut dyn ReadAt) -> Result<Prediction> {
        gpt_prediction(damaged)
    }

    /// One model for every GPT recipe: the whole disk, when its GPT is damaged.
    fn verify(partition: &Found, now: &mut dyn ReadAt) -> Result<Option<Prediction>> {
        ptable::gpt_verify(partition, now)
    }
}
