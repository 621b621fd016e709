//! The `mbr-no-signature` recipe: zero the MBR's 0x55AA boot signature
//! (bytes 510..512). The partition records stay, yet blkid, sfdisk and
//! parted see an empty disk, and no standard tool puts the signature back:
//! a must-fail case (writing `55 aa` back restores the base).

use super::ptable::{self, identify_disk, no_table_readers};
use super::select::Found;
use super::{Catalogue, Outcome, Plan, Prediction, Recipe, Target, Verdict};
use crate::error::{Error, Result};
use crate::image::ReadAt;
use crate::layout::{self, TableKind};
use crate::overlay::{Patch, Preview};

/// `mbr-no-signature`: zero the MBR boot signature.
pub struct MbrNoSignature;

/// `mbr-no-signature` takes no parameters: it addresses the whole disk.
#[derive(Debug, Clone, PartialEq, Eq, Default, clap::Args, serde::Serialize)]
pub struct MbrNoSignatureParams {}

/// Where the signature is (UEFI table 5.1).
const SIGNATURE: (u64, u64) = (510, 2);

impl Recipe for MbrNoSignature {
    type Params = MbrNoSignatureParams;
    const NAME: &'static str = "mbr-no-signature";
    const ABOUT: &'static str =
        "Zero the MBR's 0x55AA signature: no tool sees a partition table, none repairs it";
    const REPEATABLE: bool = false;

    fn catalogue() -> Catalogue {
        let mut outcomes = vec![Outcome::blkid(None)];
        outcomes.extend(no_table_readers());
        Catalogue {
            targets: "disk (dos)",
            damage: "the MBR boot signature (bytes 510..512) reads as zeros",
            outcomes,
            repair: None,
            preconditions: vec![
                "the disk holds an MBR partition table (not a GPT's protective MBR)",
                "without the signature blkid finds nothing else at offset 0",
            ],
        }
    }

    fn plan(_: &MbrNoSignatureParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        ptable::require_512_byte_mbr(disk)?;
        let table = ptable::layout_of(disk)?.map(|l| l.table);
        match table {
            Some(TableKind::Dos) => {}
            Some(TableKind::Gpt) => {
                return Err(Error::Refused(
                    "the disk holds a GPT: its protective MBR is gpt-no-pmbr's damage".into(),
                ))
            }
            _ => {
                return Err(Error::Refused(
                    "the disk holds no MBR partition table".into(),
                ))
            }
        }
        let patches = vec![Patch::Zero {
            offset: SIGNATURE.0,
            len: SIGNATURE.1,
        }];
        let prediction = {
            let mut view = Preview::new(&mut *disk, patches.clone());
            prediction(&mut view)?
        };
        if let Verdict::Identifies(Some(t)) = &prediction.outcomes[0].result {
            return Err(Error::Refused(format!(
                "without the signature blkid finds {t} at offset 0: what the tools do then is not this recipe's"
            )));
        }
        Ok(Plan::single(Self::NAME, None, patches, prediction))
    }

    fn predict(
        _: &MbrNoSignatureParams,
        _: &Target,
        damaged: &mut dyn ReadAt,
    ) -> Result<Prediction> {
        prediction(damaged)
    }

    /// The whole disk, when sector 0 holds MBR partition records but no
    /// signature and nothing else is recognised there.
    fn verify(partition: &Found, now: &mut dyn ReadAt) -> Result<Option<Prediction>> {
        if partition.partition.number != 0 || now.size() < 512 {
            return Ok(None);
        }
        let sector0 = now.read_vec(0, 512)?;
        let records = layout::mbr::MbrRecord::all(&sector0);
        let orphaned = !layout::mbr::has_signature(&sector0)
            && records.iter().any(|r| !r.is_empty())
            && records.iter().all(|r| r.boot_indicator & 0x7F == 0);
        if !orphaned || identify_disk(now)?.result != Verdict::Identifies(None) {
            return Ok(None);
        }
        prediction(now).map(Some)
    }
}

/// blkid and the table readers on the disk as it reads now.
fn prediction(disk: &mut dyn ReadAt) -> Result<Prediction> {
    let mut outcomes = vec![identify_disk(disk)?];
    outcomes.extend(no_table_readers());
    let sector0 = disk.read_vec(0, 512.min(disk.size()) as usize)?;
    let entries = layout::mbr::MbrRecord::all(&sector0)
        .iter()
        .filter(|r| !r.is_empty())
        .count();
    Ok(Prediction {
        outcomes,
        byte_identical_after_repair: false,
        notes: vec![format!(
            "the {entries} partition records are intact, but no standard tool repairs a missing signature: writing 55 aa back at byte 510 restores the base"
        )],
    })
}
