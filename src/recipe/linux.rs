//! What the Linux filesystem recipes (ext4, XFS, btrfs, LUKS2) share: the
//! `--partition` parameter, choosing the one target, planning a single
//! target from its damaged preview, and the kernel-mount outcomes (a loop
//! device, as root, observed with `mount`'s exit code 32 and messages as
//! util-linux 2.38 prints them).

use super::select::{self, Found, Selection};
use super::{Outcome, PartitionRef, Plan, Prediction, Role, Target, Verdict};
use crate::error::{Error, Result};
use crate::image::{ReadAt, Window};
use crate::overlay::{Patch, Preview};

/// Parameters of a recipe acting on one partition holding its filesystem.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args, serde::Serialize)]
pub struct PartitionParams {
    /// The partition holding the filesystem (as `inspect` numbers them;
    /// 0 = the whole disk). Default: the disk's only partition holding it.
    #[arg(long, value_name = "N")]
    pub partition: Option<u32>,
    /// Where the partition holds several filesystem signatures (blkid:
    /// "ambivalent result"), act on this one (FS: the recipe's filesystem).
    #[arg(long = "fs", value_name = "FS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs: Option<String>,
}

/// The kernel mount, read-write, through a loop device.
pub const MOUNT_RW: &str = "mount -o loop PART MNT";
/// The kernel mount, read-only: `mount` attaches a read-only loop device.
pub const MOUNT_RO: &str = "mount -o loop,ro PART MNT";
/// `mount`'s message when no filesystem driver accepts the device (exit 32).
pub const BAD_SUPERBLOCK: &str = "wrong fs type, bad option, bad superblock";
/// `mount`'s exit code for a failed mount ("mount failure").
pub const MOUNT_FAILURE: i32 = 32;

/// The one partition holding `fstype` that `params` selects on `disk`.
pub fn choose(params: &PartitionParams, disk: &mut dyn ReadAt, fstype: &str) -> Result<Found> {
    let sel = params.partition.map_or(Selection::Only, Selection::Number);
    let mut found =
        select::choose_named(disk, fstype, sel, params.fs.as_deref()).map_err(|e| match e {
            Error::Usage(_) => e.context("partition"),
            e => e,
        })?;
    found
        .pop()
        .ok_or_else(|| Error::Refused(format!("no {fstype} partition chosen")))
}

/// A refusal naming the partition: "partition 1 (…): `why`".
pub fn refuse(found: &Found, why: impl std::fmt::Display) -> Error {
    Error::Refused(format!("{}: {why}", found.describe()))
}

/// The plan of `patches` (offsets relative to the partition) on `found`,
/// with the prediction `predict` makes on the damaged partition (a preview:
/// nothing is written).
pub fn plan_one(
    name: &'static str,
    disk: &mut dyn ReadAt,
    found: &Found,
    patches: Vec<Patch>,
    predict: impl FnOnce(&mut dyn ReadAt) -> Result<Prediction>,
) -> Result<Plan> {
    let start = found.partition.start;
    let patches: Vec<Patch> = patches
        .into_iter()
        .map(|p| match p {
            Patch::Zero { offset, len } => Patch::Zero {
                offset: start + offset,
                len,
            },
            Patch::Data { offset, bytes } => Patch::Data {
                offset: start + offset,
                bytes,
            },
        })
        .collect();
    let prediction = {
        let preview = Preview::new(&mut *disk, patches.clone());
        let mut part = Window::new(preview, start, found.partition.size)?;
        predict(&mut part)?
    };
    Ok(Plan::single(
        name,
        Some(PartitionRef::from_found(found)),
        patches,
        prediction,
    ))
}

/// Runs `predict` on the target's partition of the damaged guest.
pub fn predict_target(
    name: &str,
    target: &Target,
    damaged: &mut dyn ReadAt,
    predict: impl FnOnce(&mut dyn ReadAt) -> Result<Prediction>,
) -> Result<Prediction> {
    let Some(p) = &target.partition else {
        return Err(Error::Usage(format!("{name} targets a partition")));
    };
    let mut part = Window::new(damaged, p.offset, p.length)?;
    predict(&mut part)
}

/// A kernel mount outcome: read-only (`mount -o loop,ro`) or read-write.
pub fn mount(role: Role, read_only: bool, result: Verdict, exit_code: i32, msg: &str) -> Outcome {
    Outcome::new(
        role,
        "mount",
        if read_only { MOUNT_RO } else { MOUNT_RW },
        result,
        exit_code,
        msg,
    )
}

/// The kernel refuses the device: no driver recognises it (exit 32).
pub fn mount_unrecognised(read_only: bool) -> Outcome {
    mount(
        Role::Mount,
        read_only,
        Verdict::Refused,
        MOUNT_FAILURE,
        BAD_SUPERBLOCK,
    )
}

/// What blkid identifies in `part` now.
pub fn identify(part: &mut dyn ReadAt) -> Result<Outcome> {
    let found = crate::fs::probe(part)?;
    Ok(Outcome::blkid(found.map(|f| f.fstype)))
}

/// e2fsck as the ext4 recipes run it.
pub mod e2fsck {
    /// The read-only check.
    pub const CHECK: &str = "e2fsck -n PART";
    /// The read-only check, forced even on a clean filesystem.
    pub const CHECK_FORCED: &str = "e2fsck -fn PART";
    /// The automatic repair ("preen").
    pub const PREEN: &str = "e2fsck -p PART";
    /// The forced repair answering yes.
    pub const REPAIR_YES: &str = "e2fsck -fy PART";
    /// Exit 0: no errors.
    pub const OK: i32 = 0;
    /// Exit 1: errors corrected.
    pub const NONDESTRUCT: i32 = 1;
    /// Exit 4: errors left uncorrected.
    pub const UNCORRECTED: i32 = 4;
    /// Exit 8: operational error.
    pub const ERROR: i32 = 8;
}

/// The precondition every ext4 recipe shares (checked by [`ext4_superblock`]).
pub const EXT4_CLEAN_BASE: &str = "the partition holds ext4 whose superblock the kernel accepts, cleanly unmounted (s_state valid without errors, no journal recovery pending, group descriptor 0's checksum correct), with a geometry libext2fs opens that fits the partition; not meta_bg or bigalloc";

/// The primary superblock of the ext4 filesystem in `found`, refused when
/// the tools would not take it as the recipes' models assume (before any
/// damage): a superblock the kernel accepts, a geometry libext2fs opens
/// (`ext2fs_open2`; else e2fsck takes a backup superblock or exits 8) that fits the partition, and a
/// cleanly unmounted state: `s_state` valid without errors (else e2fsck -p
/// forces a full check and the kernel logs errors), the journal needing no
/// recovery (else the kernel refuses a read-only device and e2fsck replays
/// first: a crash-consistent snapshot) and, where descriptors carry a
/// checksum, group descriptor 0's correct (else the kernel refuses a
/// read-write mount).
pub fn ext4_superblock(
    found: &Found,
    disk: &mut dyn ReadAt,
) -> Result<crate::fs::ext4::Superblock> {
    use crate::fs::ext4;
    let mut part = Window::new(&mut *disk, found.partition.start, found.partition.size)?;
    let sb = ext4::Superblock::read(&mut part)?
        .ok_or_else(|| refuse(found, "no ext4 superblock at byte 1024"))?;
    if !sb.checksum_type_ok() || !sb.checksum_ok() {
        return Err(refuse(
            found,
            "the superblock checksum is already wrong (the kernel refuses it as it is)",
        ));
    }
    if sb.ro_compat() & ext4::RO_COMPAT_BIGALLOC != 0 {
        return Err(refuse(found, "bigalloc filesystems are not modelled"));
    }
    if sb.incompat() & ext4::INCOMPAT_META_BG != 0 {
        return Err(refuse(
            found,
            "meta_bg filesystems (descriptor blocks spread over the groups) are not modelled",
        ));
    }
    if let Some(why) = sb.geometry_error() {
        return Err(refuse(
            found,
            format!(
                "the superblock's geometry is inconsistent ({why}): libext2fs calls it corrupt, so e2fsck abandons it for a backup superblock (or exits 8 without one)"
            ),
        ));
    }
    if sb.byte_size() > found.partition.size {
        return Err(refuse(
            found,
            format!(
                "the filesystem ({} bytes) is larger than its partition ({} bytes)",
                sb.byte_size(),
                found.partition.size
            ),
        ));
    }
    let gdt0 = ext4::read_group_desc(&mut part, &sb, sb.gdt_offset(), 0)?;
    if let Some(why) = ext4_unclean_base(&sb, gdt0.as_ref()) {
        return Err(refuse(found, why));
    }
    Ok(sb)
}

/// Why an ext4 volume with superblock `sb` and group descriptor 0 `gdt0`
/// is not in the clean state the recipes' models start from (see
/// [`ext4_superblock`]), or `None`.
pub fn ext4_unclean_base(
    sb: &crate::fs::ext4::Superblock,
    gdt0: Option<&crate::fs::ext4::GroupDesc>,
) -> Option<String> {
    use crate::fs::ext4;
    if sb.state() & ext4::STATE_VALID_FS == 0 || sb.state() & ext4::STATE_ERROR_FS != 0 {
        return Some(format!(
            "the filesystem is already marked unclean or with errors (s_state {:#x}): e2fsck -p would force a full check",
            sb.state()
        ));
    }
    if sb.incompat() & ext4::INCOMPAT_RECOVER != 0 {
        return Some("the journal already needs recovery (a snapshot of a mounted filesystem): the kernel refuses a read-only device and e2fsck replays it first; replay it (mount or e2fsck -p) before injecting".into());
    }
    let d = gdt0?;
    let good = d.computed_checksum(sb)?;
    (good != d.stored_checksum()).then(|| {
        format!(
            "group descriptor 0's checksum is already wrong ({:#06x}, should be {good:#06x}): the kernel refuses a read-write mount",
            d.stored_checksum()
        )
    })
}

/// What an ext4 recipe's `verify` reports for `partition` (as the backing
/// chain has it) read through the overlay as `now`: `predict`'s prediction
/// when the base was ext4 in the clean state the recipes start from (its
/// probe's [`crate::fs::ext4::Snapshot`]) and `modelled(base, now)` says
/// the recipe's damage, and only that, is in the bytes it owns (e.g. the
/// superblock equals the base's but for the recipe's field); else `None`.
/// `verify` is given no changed ranges and no reader of the base: changes
/// outside the recipe's bytes (file data, other metadata) are not seen.
pub fn ext4_verify(
    partition: &Found,
    now: &mut dyn ReadAt,
    modelled: impl FnOnce(&crate::fs::ext4::Snapshot, &mut dyn ReadAt) -> Result<bool>,
    predict: impl FnOnce(&mut dyn ReadAt) -> Result<Prediction>,
) -> Result<Option<Prediction>> {
    let Some(base) = partition
        .filesystem
        .as_ref()
        .filter(|f| f.fstype == "ext4")
        .and_then(|f| f.ext4.as_ref())
    else {
        return Ok(None);
    };
    if ext4_unclean_base(&base.superblock, base.gdt0.as_ref()).is_some() {
        return Ok(None);
    }
    let p = &partition.partition;
    let Ok(mut view) = Window::new(now, p.start, p.size) else {
        return Ok(None);
    };
    if !modelled(base, &mut view)? {
        return Ok(None);
    }
    match predict(&mut view) {
        Ok(pred) => Ok(Some(pred)),
        Err(Error::Guest(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What `verify` reports for `partition` (as the backing chain has it) read
/// through the overlay as `now`: `predict`'s prediction when the backing
/// partition held `fstype` and the damage `predict` models is there now
/// (it fails with [`Error::Guest`] otherwise), else `None`.
pub fn verify_with(
    fstype: &str,
    partition: &Found,
    now: &mut dyn ReadAt,
    predict: impl FnOnce(&mut dyn ReadAt) -> Result<Prediction>,
) -> Result<Option<Prediction>> {
    if partition.fstype() != Some(fstype) {
        return Ok(None);
    }
    let p = &partition.partition;
    let Ok(mut view) = Window::new(now, p.start, p.size) else {
        return Ok(None);
    };
    match predict(&mut view) {
        Ok(pred) => Ok(Some(pred)),
        Err(Error::Guest(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
