//! The `btrfs-sb-primary` recipe: zero the primary btrfs superblock (4 KiB
//! at 64 KiB). blkid finds nothing and the kernel refuses to mount (exit
//! 32; it never falls back to a mirror); `btrfs check` exits 1 ("No valid
//! Btrfs found"); `btrfs rescue super-recover -y` restores it from the
//! mirror at 64 MiB and reports success with exit **2**; a second run
//! exits 0 ("All supers are valid"), `btrfs check` is clean, it mounts.
//!
//! Preconditions: a single-device filesystem on a partition of at least
//! 64 MiB + 4 KiB (super-recover needs the mirror wholly inside the device;
//! exactly that size works) whose mirror at 64 MiB is valid (magic, its own bytenr,
//! crc32c) and of the same filesystem. Verified in
//! `shared/catalogue/btrfs-sb-primary.sh` and `tests/linux_recipes.rs`.

use super::linux::{self, PartitionParams};
use super::select::Found;
use super::{Catalogue, Outcome, Plan, Prediction, Recipe, Role, Target, Verdict};
use crate::error::{Error, Result};
use crate::fs::btrfs::{
    copy_offsets, BtrfsSuperblock, MIRROR_1_OFFSET, SUPER_INFO_OFFSET, SUPER_INFO_SIZE,
};
use crate::image::{ReadAt, Window};
use crate::overlay::Patch;

/// `btrfs-sb-primary`: zero the primary btrfs superblock.
pub struct BtrfsSbPrimary;

/// `btrfs check`'s line without a primary superblock.
const NO_VALID: &str = "No valid Btrfs found";
/// super-recover's success line (exit 2).
const RECOVERED: &str = "Recovered bad superblocks successful";
/// super-recover's line when nothing is to do (exit 0).
const ALL_VALID: &str = "All supers are valid";

impl Recipe for BtrfsSbPrimary {
    type Params = PartitionParams;
    const NAME: &'static str = "btrfs-sb-primary";
    const ABOUT: &'static str =
        "Zero the primary btrfs superblock: mount fails, btrfs rescue super-recover restores it (exit 2)";
    const REPEATABLE: bool = false;

    fn catalogue() -> Catalogue {
        Catalogue {
            targets: "btrfs",
            damage: "the primary superblock (4 KiB at 64 KiB) reads as zeros",
            outcomes: outcomes(None),
            repair: Some("btrfs rescue super-recover -y PART"),
            preconditions: vec![
                "the partition holds a single-device btrfs",
                "it is at least 64 MiB + 4 KiB (the mirror wholly inside) and its mirror superblock at 64 MiB is valid and current",
            ],
        }
    }

    fn plan(p: &PartitionParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        let found = linux::choose(p, disk, "btrfs")?;
        let size = found.partition.size;
        if size < MIRROR_1_OFFSET + SUPER_INFO_SIZE as u64 {
            return Err(linux::refuse(
                &found,
                format!("{size} bytes: smaller than 64 MiB + 4 KiB, so no mirror superblock fits, nothing could restore the primary"),
            ));
        }
        {
            let mut part = Window::new(&mut *disk, found.partition.start, size)?;
            let primary = BtrfsSuperblock::read_at(&mut part, SUPER_INFO_OFFSET)?
                .filter(|s| s.valid_at(SUPER_INFO_OFFSET))
                .ok_or_else(|| {
                    linux::refuse(
                        &found,
                        "the primary superblock is not valid (crc32c checksum)",
                    )
                })?;
            if primary.num_devices() != 1 {
                return Err(linux::refuse(
                    &found,
                    format!(
                        "a {}-device filesystem: not modelled",
                        primary.num_devices()
                    ),
                ));
            }
            let mirror = BtrfsSuperblock::read_at(&mut part, MIRROR_1_OFFSET)?;
            if !mirror
                .as_ref()
                .is_some_and(|m| m.valid_at(MIRROR_1_OFFSET) && m.fsid() == primary.fsid())
            {
                return Err(linux::refuse(
                    &found,
                    "the mirror superblock at 64 MiB is missing or invalid",
                ));
            }
            if let Some(m) = mirror.filter(|m| m.generation() != primary.generation()) {
                return Err(linux::refuse(
                    &found,
                    format!(
                        "the mirror at 64 MiB is of generation {}, the primary of {}: restoring it would roll the filesystem back",
                        m.generation(),
                        primary.generation()
                    ),
                ));
            }
        }
        let patch = Patch::Zero {
            offset: SUPER_INFO_OFFSET,
            len: SUPER_INFO_SIZE as u64,
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
        linux::verify_with("btrfs", partition, now, prediction)
    }
}

fn outcomes(identified: Option<&str>) -> Vec<Outcome> {
    vec![
        Outcome::blkid(identified),
        linux::mount_unrecognised(false),
        Outcome::new(
            Role::Check,
            "btrfs",
            "btrfs check PART",
            Verdict::ReportsDamage,
            1,
            NO_VALID,
        ),
        Outcome::new(
            Role::Repair,
            "btrfs",
            "btrfs rescue super-recover -y PART",
            Verdict::Repairs,
            2,
            RECOVERED,
        ),
        Outcome::new(
            Role::AfterRepair,
            "btrfs",
            "btrfs rescue super-recover -y PART",
            Verdict::NotNeeded,
            0,
            ALL_VALID,
        ),
        Outcome::new(
            Role::AfterRepair,
            "btrfs",
            "btrfs check PART",
            Verdict::Clean,
            0,
            "no error found",
        ),
        linux::mount(Role::AfterRepair, false, Verdict::ReadWrite, 0, ""),
    ]
}

fn prediction(part: &mut dyn ReadAt) -> Result<Prediction> {
    let identify = linux::identify(part)?;
    if BtrfsSuperblock::read_at(part, SUPER_INFO_OFFSET)?.is_some() {
        return Err(Error::Guest(
            "the primary btrfs superblock is intact".into(),
        ));
    }
    let mirrors: Vec<(u64, BtrfsSuperblock)> = copy_offsets(part.size())
        .into_iter()
        .skip(1)
        .filter_map(|o| match BtrfsSuperblock::read_at(part, o) {
            Ok(Some(s)) if s.valid_at(o) => Some(Ok((o, s))),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<_>>()?;
    let Some((at, newest)) = mirrors.iter().max_by_key(|(_, s)| s.generation()) else {
        return Err(Error::Guest("no valid btrfs mirror superblock".into()));
    };
    let mut outcomes = outcomes(None);
    outcomes[0] = identify;
    Ok(Prediction {
        outcomes,
        byte_identical_after_repair: true,
        notes: vec![
            format!(
                "super-recover copies the mirror at byte {at} (generation {}) to 64 KiB with its own bytenr and checksum: byte-identical to the base when the mirror is current",
                newest.generation()
            ),
            "trap: btrfs rescue super-recover exits 2 on success (0: all valid, 1: failure)".into(),
            "btrfs check --super 1 PART reads the mirror and passes (exit 0)".into(),
        ],
    })
}
