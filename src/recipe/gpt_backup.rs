//! The `gpt-backup` recipe: zero the backup GPT header (the last LBA). Every
//! tool reads the disk from the primary and warns about the backup; the
//! repair per geometry rewrites it (see [`super::ptable`]).

use super::ptable::{self, gpt_plan, gpt_prediction, reads, typical_gpt};
use super::{Catalogue, Plan, Prediction, Recipe, Target};
use crate::error::Result;
use crate::image::ReadAt;
use crate::overlay::Patch;

/// `gpt-backup`: zero the backup GPT header.
pub struct GptBackup;

/// `gpt-backup` takes no parameters: it addresses the whole disk.
#[derive(Debug, Clone, PartialEq, Eq, Default, clap::Args, serde::Serialize)]
pub struct GptBackupParams {}

impl Recipe for GptBackup {
    type Params = GptBackupParams;
    const NAME: &'static str = "gpt-backup";
    const ABOUT: &'static str =
        "Zero the backup GPT header (last LBA): every tool works and warns about the backup";
    const REPEATABLE: bool = false;

    fn catalogue() -> Catalogue {
        Catalogue {
            targets: "disk (gpt)",
            damage: "the backup GPT header (the last LBA) reads as zeros",
            outcomes: typical_gpt(
                [
                    reads("sfdisk", ptable::SFDISK_DUMP, ptable::BACKUP_CORRUPT),
                    reads("parted", ptable::PARTED_PRINT, ptable::BACKUP_CORRUPT),
                ],
                ptable::BACKUP_HEADER_ERROR,
            ),
            repair: Some(ptable::GPT_REPAIR),
            preconditions: ptable::GPT_PRECONDITIONS.to_vec(),
        }
    }

    fn plan(_: &GptBackupParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        gpt_plan(Self::NAME, disk, |s| {
            let ss = u64::from(s.sector_size);
            Ok(vec![Patch::Zero {
                offset: (s.sectors - 1) * ss,
                len: ss,
            }])
        })
    }

    fn predict(_: &GptBackupParams, _: &Target, damaged: &mut dyn ReadAt) -> Result<Prediction> {
        gpt_prediction(damaged)
    }
}
