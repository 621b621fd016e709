//! The `ext4-sb-primary` recipe: zero the primary ext4 superblock (1 KiB at
//! byte 1024). blkid finds nothing, the kernel refuses to mount (exit 32),
//! and e2fsck takes the backup superblock of group 1 ("Superblock invalid,
//! trying backup blocks..."): `e2fsck -n` checks the filesystem through it
//! and exits 4 when the backup group descriptors it comes with are stale
//! (any filesystem written to after mkfs: the kernel never updates them)
//! or have uninitialised groups, else 0; `e2fsck -fy` repairs (exit 1); the
//! second run is clean and the volume mounts.
//!
//! Precondition (e2fsck's `get_backup_sb`): a backup superblock where
//! e2fsck looks for one, block 8 × block size (+1 with 1 KiB blocks), i.e.
//! at least 2 block groups with the default blocks per group. With one
//! group e2fsck fails (exit 8). Verified in
//! `shared/catalogue/ext4-sb-primary.sh` and `tests/linux_recipes.rs`.

use super::linux::{self, e2fsck, PartitionParams};
use super::select::Found;
use super::{Catalogue, Outcome, Plan, Prediction, Recipe, Role, Target, Verdict};
use crate::error::{Error, Result};
use crate::fs::ext4::{self, Superblock, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE};
use crate::image::{ReadAt, Window};
use crate::overlay::Patch;

/// `ext4-sb-primary`: zero the primary ext4 superblock.
pub struct Ext4SbPrimary;

/// e2fsck's line when the primary superblock does not open.
const TRYING_BACKUP: &str = "Superblock invalid, trying backup blocks";
/// e2fsck's line after a repair.
const MODIFIED: &str = "FILE SYSTEM WAS MODIFIED";
/// e2fsck's line when no backup is found either.
const BAD_MAGIC: &str = "Bad magic number in super-block";

impl Recipe for Ext4SbPrimary {
    type Params = PartitionParams;
    const NAME: &'static str = "ext4-sb-primary";
    const ABOUT: &'static str =
        "Zero the primary ext4 superblock: mount fails, e2fsck -fy restores it from a backup";
    const REPEATABLE: bool = false;

    fn catalogue() -> Catalogue {
        Catalogue {
            targets: "ext4",
            damage: "the primary superblock (1 KiB at byte 1024) reads as zeros",
            outcomes: repairable_outcomes(e2fsck::UNCORRECTED),
            repair: Some(e2fsck::REPAIR_YES),
            preconditions: vec![
                linux::EXT4_CLEAN_BASE,
                "a backup superblock where e2fsck looks for it: at least 2 block groups of the default size (8 × block size blocks)",
            ],
        }
    }

    fn plan(p: &PartitionParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        let found = linux::choose(p, disk, "ext4")?;
        let sb = linux::ext4_superblock(&found, disk)?;
        if sb.group_count() < 2 {
            return Err(linux::refuse(
                &found,
                "the filesystem has one block group, so no backup superblock: e2fsck could not repair it (exit 8)",
            ));
        }
        // The backup e2fsck will take must be this filesystem's (a stale
        // superblock of an earlier mkfs would be taken just the same).
        let backup = {
            let mut part = Window::new(&mut *disk, found.partition.start, found.partition.size)?;
            Superblock::e2fsck_backup(&mut part)?
        };
        if let Some((at, b)) = backup.filter(|(_, b)| b.uuid() != sb.uuid()) {
            return Err(linux::refuse(
                &found,
                format!(
                    "the superblock e2fsck would take at byte {at} belongs to another filesystem ({} blocks)",
                    b.blocks_count()
                ),
            ));
        }
        let patch = Patch::Zero {
            offset: SUPERBLOCK_OFFSET,
            len: SUPERBLOCK_SIZE as u64,
        };
        let plan = linux::plan_one(Self::NAME, disk, &found, vec![patch], prediction)?;
        if !plan.targets[0].prediction.repairable() {
            return Err(linux::refuse(
                &found,
                format!(
                    "e2fsck finds no backup superblock where it looks (block 8 × block size; this one has {} blocks per group of {} bytes)",
                    sb.blocks_per_group(),
                    sb.block_size()
                ),
            ));
        }
        Ok(plan)
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
                // The backup e2fsck takes is the base filesystem's.
                Ok(Superblock::e2fsck_backup(now)?
                    .is_some_and(|(_, b)| b.uuid() == base.superblock.uuid()))
            },
            prediction,
        )
    }
}

/// The outcomes when e2fsck finds a backup; `check_exit` is `e2fsck -n`'s.
fn repairable_outcomes(check_exit: i32) -> Vec<Outcome> {
    vec![
        Outcome::blkid(None),
        linux::mount_unrecognised(false),
        Outcome::new(
            Role::Check,
            "e2fsck",
            e2fsck::CHECK,
            Verdict::ReportsDamage,
            check_exit,
            TRYING_BACKUP,
        ),
        Outcome::new(
            Role::Repair,
            "e2fsck",
            e2fsck::REPAIR_YES,
            Verdict::Repairs,
            e2fsck::NONDESTRUCT,
            TRYING_BACKUP,
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

/// The tools' outcomes on the partition `part` as it reads now.
fn prediction(part: &mut dyn ReadAt) -> Result<Prediction> {
    let identify = linux::identify(part)?;
    if crate::fs::read_opt(part, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE)?.is_some_and(|sb| {
        sb[ext4::S_MAGIC..ext4::S_MAGIC + 2] == ext4::EXT4_SUPER_MAGIC.to_le_bytes()
    }) {
        return Err(Error::Guest(
            "the primary ext4 superblock still has its magic".into(),
        ));
    }
    let Some((at, backup)) = Superblock::e2fsck_backup(part)? else {
        return Ok(Prediction {
            outcomes: vec![
                identify,
                linux::mount_unrecognised(false),
                Outcome::new(
                    Role::Repair,
                    "e2fsck",
                    e2fsck::REPAIR_YES,
                    Verdict::CannotRepair,
                    e2fsck::ERROR,
                    BAD_MAGIC,
                ),
            ],
            byte_identical_after_repair: false,
            notes: vec!["e2fsck finds no backup superblock where it looks".into()],
        });
    };
    let stale = stale_backup_group(part, at, &backup)?;
    let check_exit = if stale.is_some() {
        e2fsck::UNCORRECTED
    } else {
        e2fsck::OK
    };
    let mut outcomes = repairable_outcomes(check_exit);
    outcomes[0] = identify;
    Ok(Prediction {
        outcomes,
        byte_identical_after_repair: false,
        notes: vec![
            format!(
                "e2fsck uses the backup superblock at byte {at} (block {} of {} bytes); \"{MODIFIED}\"",
                at / backup.block_size(),
                backup.block_size()
            ),
            "the backup superblock is marked not clean, so e2fsck checks the whole filesystem".into(),
            match stale {
                Some(why) => format!("e2fsck -n exits 4: {why}; pass 5 reports it per group and -n leaves it unfixed"),
                None => "the backup group descriptors equal the primary ones (as mkfs left them): pass 5 finds nothing, e2fsck -n exits 0".into(),
            },
        ],
    })
}

/// Why pass 5 finds the group descriptors that follow the backup
/// superblock at byte `at` wrong (`None`: it does not). The kernel never
/// updates the backup descriptors, so once the filesystem has been written
/// to their free block, free inode and directory counts (and, with
/// metadata_csum, bitmap checksums) are stale: e2fsck recounts them
/// ("Free blocks count wrong for group #N", `PR_5_FREE_BLOCK_COUNT_GROUP`
/// and its siblings, which lack `PR_NO_OK`), so `-n` exits 4. From a
/// backup, libext2fs also clears every group's `INODE_UNINIT` and
/// `BLOCK_UNINIT` (`ext2fs_open2` with descriptor checksums), so such a
/// group's never-initialised bitmaps differ from what pass 5 counts.
/// Compares the backup's table with the primary table it stands in for
/// (both laid out by the backup superblock's geometry).
fn stale_backup_group(
    part: &mut dyn ReadAt,
    at: u64,
    backup: &Superblock,
) -> Result<Option<String>> {
    if let Some(why) = backup.geometry_error() {
        return Err(Error::Guest(format!(
            "the backup superblock at byte {at} has an inconsistent geometry ({why})"
        )));
    }
    if backup.byte_size() > part.size() {
        return Err(Error::Guest(format!(
            "the backup superblock at byte {at} describes a filesystem larger than the partition"
        )));
    }
    if backup.incompat() & ext4::INCOMPAT_META_BG != 0 {
        return Err(Error::Guest("meta_bg filesystems are not modelled".into()));
    }
    let copy = ext4::read_group_table(part, backup, at + backup.block_size())?;
    let primary = ext4::read_group_table(part, backup, backup.gdt_offset())?;
    let (Some(copy), Some(primary)) = (copy, primary) else {
        return Err(Error::Guest(
            "the group descriptor tables lie outside the partition".into(),
        ));
    };
    let csum = backup.metadata_csum() || backup.gdt_csum();
    for (b, p) in copy.iter().zip(&primary) {
        if csum && b.flags() & (ext4::BG_INODE_UNINIT | ext4::BG_BLOCK_UNINIT) != 0 {
            return Ok(Some(format!(
                "group {} is uninitialised in the backup descriptors (libext2fs clears the flag)",
                b.group
            )));
        }
        if b.pass5_fields() != p.pass5_fields() {
            return Ok(Some(format!(
                "the backup descriptor of group {} is stale (free blocks/inodes, directories or bitmap checksums differ from the primary's)",
                b.group
            )));
        }
    }
    Ok(None)
}
