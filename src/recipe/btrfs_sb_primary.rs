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
    copy_offsets, csum_name, BtrfsSuperblock, CSUM_TYPE_CRC32C, MIRROR_1_OFFSET, SUPER_INFO_OFFSET,
    SUPER_INFO_SIZE,
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
            let primary = BtrfsSuperblock::read_at(&mut part, SUPER_INFO_OFFSET)?;
            if let Some(t) = primary
                .as_ref()
                .map(|s| s.csum_type())
                .filter(|&t| t != CSUM_TYPE_CRC32C)
            {
                return Err(linux::refuse(
                    &found,
                    format!(
                        "the filesystem's checksum type is {} (mkfs.btrfs --csum): only crc32c superblocks are modelled",
                        csum_name(t)
                    ),
                ));
            }
            let primary = primary
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
        // The mirror super-recover would take must be the base
        // filesystem's (blkid's UUID is the fsid).
        let Some(base_uuid) = partition.filesystem.as_ref().and_then(|f| f.uuid.clone()) else {
            return Ok(None);
        };
        let Some(pred) = linux::verify_with("btrfs", partition, &mut *now, prediction)? else {
            return Ok(None);
        };
        let p = &partition.partition;
        let mut view = Window::new(now, p.start, p.size)?;
        let mirror = BtrfsSuperblock::read_at(&mut view, MIRROR_1_OFFSET)?;
        Ok(mirror
            .is_some_and(|m| uuid_text(m.fsid()) == base_uuid)
            .then_some(pred))
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
    let offsets = copy_offsets(part.size());
    let mut mirrors = Vec::new();
    for &o in offsets.iter().skip(1) {
        if let Some(s) = BtrfsSuperblock::read_at(part, o)?.filter(|s| s.valid_at(o)) {
            mirrors.push((o, s));
        }
    }
    let Some((at, newest)) = mirrors.iter().max_by_key(|(_, s)| s.generation()) else {
        return Err(Error::Guest("no valid btrfs mirror superblock".into()));
    };
    if newest.num_devices() != 1 {
        return Err(Error::Guest(format!(
            "the mirror describes a {}-device filesystem: not modelled",
            newest.num_devices()
        )));
    }
    // super-recover writes the newest copy to every place: the partition
    // is as it was only when every mirror already held that copy (of one
    // filesystem), the primary being rebuilt from it.
    let consistent = mirrors.len() == offsets.len() - 1
        && mirrors
            .iter()
            .all(|(_, s)| s.generation() == newest.generation() && s.fsid() == newest.fsid());
    let mut outcomes = outcomes(None);
    outcomes[0] = identify;
    Ok(Prediction {
        outcomes,
        byte_identical_after_repair: consistent,
        notes: vec![
            format!(
                "super-recover copies the mirror at byte {at} (generation {}) to 64 KiB and the other mirrors with their own bytenr and checksum: {}",
                newest.generation(),
                if consistent {
                    "byte-identical to the base (every mirror holds that copy)"
                } else {
                    "the mirrors differ, so it rewrites some: not byte-identical"
                }
            ),
            "trap: btrfs rescue super-recover exits 2 on success (0: all valid, 1: failure)".into(),
            "btrfs check --super 1 PART reads the mirror and passes (exit 0)".into(),
        ],
    })
}

/// `fsid` as blkid prints a UUID (lower-case 8-4-4-4-12).
fn uuid_text(b: &[u8]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    if h.len() != 32 {
        return h;
    }
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}
