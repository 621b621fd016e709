//! The `ext4-gdt-csum` recipe: invert the checksum (`bg_checksum`) of
//! ext4 block group descriptor 0.
//!
//! The kernel refuses a read-write mount ("Structure needs cleaning", exit
//! 32; it logs "ext4_check_descriptors: Checksum for group 0 failed") but
//! mounts read-only. The trap: `e2fsck -n` reports it and exits **0**,
//! `e2fsck -p` fixes it and exits **0** too. Verified in
//! `shared/catalogue/ext4-gdt-csum.sh` and `tests/linux_recipes.rs`.

use super::linux::{self, e2fsck, PartitionParams};
use super::select::Found;
use super::{Catalogue, Outcome, Plan, Prediction, Recipe, Role, Target, Verdict};
use crate::error::{Error, Result};
use crate::fs::ext4::{self, Superblock, BG_CHECKSUM};
use crate::image::ReadAt;
use crate::overlay::Patch;

/// `ext4-gdt-csum`: break group descriptor 0's checksum.
pub struct Ext4GdtCsum;

/// `mount`'s message for EUCLEAN.
const NEEDS_CLEANING: &str = "Structure needs cleaning";
/// e2fsck's first line about it.
const INVALID: &str = "One or more block group descriptor checksums are invalid.";

impl Recipe for Ext4GdtCsum {
    type Params = PartitionParams;
    const NAME: &'static str = "ext4-gdt-csum";
    const ABOUT: &'static str =
        "Break ext4 group descriptor 0's checksum: read-write mount refused, e2fsck exits 0";
    const REPEATABLE: bool = false;

    fn catalogue() -> Catalogue {
        Catalogue {
            targets: "ext4",
            damage: "bg_checksum of group descriptor 0 inverted (2 bytes)",
            outcomes: outcomes(Some("ext4"), INVALID, INVALID),
            repair: Some(e2fsck::PREEN),
            preconditions: vec![
                linux::EXT4_CLEAN_BASE,
                "metadata_csum or gdt_csum (descriptors carry a checksum), and group 0's is correct now",
            ],
        }
    }

    fn plan(p: &PartitionParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        let found = linux::choose(p, disk, "ext4")?;
        let sb = linux::ext4_superblock(&found, disk)?;
        let desc = {
            let mut part =
                crate::image::Window::new(&mut *disk, found.partition.start, found.partition.size)?;
            ext4::read_group_desc(&mut part, &sb, sb.gdt_offset(), 0)?
        }
        .ok_or_else(|| linux::refuse(&found, "group descriptor 0 lies outside the partition"))?;
        let Some(good) = desc.computed_checksum(&sb) else {
            return Err(linux::refuse(
                &found,
                "the filesystem has neither metadata_csum nor gdt_csum: its group descriptors carry no checksum",
            ));
        };
        if good != desc.stored_checksum() {
            return Err(linux::refuse(
                &found,
                format!(
                    "group descriptor 0's checksum is already wrong ({:#06x}, should be {good:#06x})",
                    desc.stored_checksum()
                ),
            ));
        }
        let patch = Patch::Data {
            offset: sb.gdt_offset() + BG_CHECKSUM as u64,
            bytes: (good ^ 0xFFFF).to_le_bytes().to_vec(),
        };
        linux::plan_one(Self::NAME, disk, &found, vec![patch], prediction)
    }

    fn predict(
        _: &PartitionParams,
        target: &Target,
        damaged: &mut dyn ReadAt,
    ) -> Result<Prediction> {
        linux::predict_target(Self::NAME, target, damaged, prediction)
    }

    fn verify(partition: &Found, now: &mut dyn ReadAt) -> Result<Option<Prediction>> {
        linux::ext4_verify(
            partition,
            now,
            |base, now| {
                // The superblock as it was, descriptor 0 as it was but for
                // its checksum.
                let Some(was) = &base.gdt0 else {
                    return Ok(false);
                };
                if Superblock::read(now)?.as_ref() != Some(&base.superblock) {
                    return Ok(false);
                }
                let sb = &base.superblock;
                let Some(d) = ext4::read_group_desc(now, sb, sb.gdt_offset(), 0)? else {
                    return Ok(false);
                };
                let c = BG_CHECKSUM..BG_CHECKSUM + 2;
                Ok(d.raw.len() == was.raw.len()
                    && d.raw[..c.start] == was.raw[..c.start]
                    && d.raw[c.end..] == was.raw[c.end..])
            },
            prediction,
        )
    }
}

fn outcomes(identified: Option<&str>, check_msg: &str, repair_msg: &str) -> Vec<Outcome> {
    vec![
        Outcome::blkid(identified),
        linux::mount(
            Role::Mount,
            false,
            Verdict::Refused,
            linux::MOUNT_FAILURE,
            NEEDS_CLEANING,
        ),
        linux::mount(Role::Mount, true, Verdict::ReadOnly, 0, ""),
        Outcome::new(
            Role::Check,
            "e2fsck",
            e2fsck::CHECK,
            Verdict::ReportsDamage,
            e2fsck::OK,
            check_msg,
        ),
        Outcome::new(
            Role::Repair,
            "e2fsck",
            e2fsck::PREEN,
            Verdict::Repairs,
            e2fsck::OK,
            repair_msg,
        ),
        Outcome::new(
            Role::AfterRepair,
            "e2fsck",
            e2fsck::CHECK_FORCED,
            Verdict::Clean,
            e2fsck::OK,
            "",
        ),
        linux::mount(Role::AfterRepair, false, Verdict::ReadWrite, 0, ""),
    ]
}

fn prediction(part: &mut dyn ReadAt) -> Result<Prediction> {
    let identify = linux::identify(part)?;
    let sb = Superblock::read(part)?
        .ok_or_else(|| Error::Guest("no ext4 superblock at byte 1024".into()))?;
    let desc = ext4::read_group_desc(part, &sb, sb.gdt_offset(), 0)?
        .ok_or_else(|| Error::Guest("group descriptor 0 lies outside the partition".into()))?;
    let good = desc
        .computed_checksum(&sb)
        .ok_or_else(|| Error::Guest("the group descriptors carry no checksum".into()))?;
    let bad = desc.stored_checksum();
    if good == bad {
        return Err(Error::Guest(
            "group descriptor 0's checksum is correct".into(),
        ));
    }
    let line = format!("Group descriptor 0 checksum is {bad:#06x}, should be {good:#06x}.");
    let mut outcomes = outcomes(
        None,
        &format!("{line}  IGNORED."),
        &format!("{line}  FIXED."),
    );
    outcomes[0] = identify;
    Ok(Prediction {
        outcomes,
        byte_identical_after_repair: false,
        notes: vec![
            format!(
                "kernel: \"ext4_check_descriptors: Checksum for group 0 failed ({good}!={bad})\", \"group descriptors corrupted!\" (read-write); the read-only mount logs the first line and mounts"
            ),
            "trap: e2fsck -n and e2fsck -p exit 0 although they report (and -p fixes) the checksum".into(),
            "e2fsck -p restores the 2 checksum bytes but, having forced a full check, also records it in the superblock: not byte-identical to the base".into(),
        ],
    })
}
