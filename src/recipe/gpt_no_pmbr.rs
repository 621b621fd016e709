//! The `gpt-no-pmbr` recipe: zero the protective MBR (the first 512 bytes
//! of sector 0). blkid, sfdisk and parted then see no partition table at
//! all; only gdisk/sgdisk find the GPT ("Found valid GPT with corrupt MBR"),
//! and `sgdisk -e` writes a new protective MBR: the base again where the
//! table is sgdisk's (see [`super::ptable`]). fdisk `w` would destroy the GPT.

use super::ptable::{self, gpt_plan, gpt_prediction, typical_gpt};
use super::{Catalogue, Outcome, Plan, Prediction, Recipe, Target};
use crate::error::Result;
use crate::image::ReadAt;
use crate::layout::gpt_tools::MBR_SIZE;
use crate::overlay::Patch;

/// `gpt-no-pmbr`: zero the protective MBR of a GPT disk.
pub struct GptNoPmbr;

/// `gpt-no-pmbr` takes no parameters: it addresses the whole disk.
#[derive(Debug, Clone, PartialEq, Eq, Default, clap::Args, serde::Serialize)]
pub struct GptNoPmbrParams {}

impl Recipe for GptNoPmbr {
    type Params = GptNoPmbrParams;
    const NAME: &'static str = "gpt-no-pmbr";
    const ABOUT: &'static str =
        "Zero a GPT disk's protective MBR: blkid, sfdisk and parted see no table, only sgdisk finds the GPT";
    const REPEATABLE: bool = false;

    fn catalogue() -> Catalogue {
        let mut outcomes = typical_gpt(ptable::no_table_readers(), ptable::CORRUPT_MBR);
        outcomes[0] = Outcome::blkid(None);
        Catalogue {
            targets: "disk (gpt)",
            damage: "the protective MBR (the first 512 bytes of sector 0) reads as zeros",
            outcomes,
            repair: Some(
                "sgdisk -e PART (byte-identical where the base's protective MBR is sgdisk's)",
            ),
            preconditions: [
                &ptable::GPT_PRECONDITIONS[..],
                &["sector 0 is the plain protective MBR the table's maker writes (what sgdisk -e writes back), without boot code or disk signature"],
            ]
            .concat(),
        }
    }

    fn plan(_: &GptNoPmbrParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        gpt_plan(Self::NAME, disk, |_| {
            Ok(vec![Patch::Zero {
                offset: 0,
                len: MBR_SIZE as u64,
            }])
        })
    }

    fn predict(_: &GptNoPmbrParams, _: &Target, damaged: &mut dyn ReadAt) -> Result<Prediction> {
        gpt_prediction(damaged)
    }
}
