//! What ntfs-3g, ntfsfix and ntfsresize do with an [`NtfsState`] whose
//! primary boot sector loads (a broken boot sector is
//! [`super::predict_ntfsfix`]'s model), as tool outcomes.
//!
//! The rules follow ntfs-3g 2022.10.3: `libntfs-3g/volume.c`
//! (`ntfs_device_mount`: `$MFTMirr` compared before anything else, then on
//! read-write mounts `hiberfil.sys` and the journal; the `ntfs-3g` front end
//! falls back to read-only and exits 0 when those refuse), and
//! `ntfsprogs/ntfsfix.c` (`main`: a read-write mount without `recover`;
//! on failure `fix_mount` rewrites `$MFTMirr`, sets the dirty flag, empties
//! the journal and mounts again; then the alternate boot sector check; the
//! dirty flag is left set unless `-d`). Each rule is proven by
//! `tests/ntfs_recipes.rs` against the real tools.

use super::logfile::LogState;
use super::state::{AltBoot, HiberState, NtfsState};
use crate::recipe::{Outcome, Role, Verdict};

/// ntfs-3g's message when sector 0 is not NTFS (exit 12).
pub const NO_SIGNATURE: &str = "NTFS signature is missing";
/// ntfsfix's message when it accepts the backup boot sector.
pub const BACKUP_USABLE: &str = "The alternate bootsector is usable";
/// ntfs-3g's message for a fast-startup journal.
pub const WINDOWS_CACHE: &str = "Metadata kept in Windows cache, refused to mount.";
/// ntfs-3g's message for a hibernated volume.
pub const HIBERNATED: &str = "Windows is hibernated, refused to mount.";
/// ntfs-3g's message for a `hiberfil.sys` under 4096 bytes.
pub const HIBERNATED_SHORT: &str = "Hibernated non-system partition, refused to mount.";
/// ntfs-3g's message when its read-write mount resets an unclean journal.
pub const FIXING_JOURNAL: &str = "The file system wasn't safely closed on Windows. Fixing.";
/// ntfsfix's line when it empties the journal.
pub const EMPTY_JOURNAL: &str = "Going to empty the journal ($LogFile)... OK";
/// ntfsfix's line when the second mount is refused (hibernation).
pub const REMOUNT_FAILED: &str = "Remount failed: Operation not permitted";
/// ntfsfix's line when the volume does not load at all.
pub const VOLUME_CORRUPT: &str = "Volume is corrupt. You should run chkdsk.";
/// ntfsfix's line when it rewrites the alternate boot sector.
pub const ALT_BOOT_FIXED: &str = "Checking the alternate boot sector... FIXED";
/// ntfsfix's line when the partition has no sector past the volume (it
/// exits 1, also with `-n`, and writes nothing of its own check).
pub const ALT_BOOT_FAILED: &str = "Error: Failed to fix the alternate boot sector";
/// `ntfsfix -n`'s line when the alternate boot sector differs.
pub const ALT_BOOT_BAD: &str = "Checking the alternate boot sector... BAD";
/// ntfsresize's refusal of a dirty volume.
pub const SCHEDULED_FOR_CHECK: &str = "ERROR: Volume is scheduled for check.";

const MNT: &str = "ntfs-3g PART MNT";

/// Why ntfs-3g refuses the volume even read-only (exit 13), if it does: its
/// key line, empty when the model does not know it exactly.
fn inconsistent(s: &NtfsState) -> Option<String> {
    if s.corrupt.is_some() {
        return Some(String::new());
    }
    s.mirror_mismatch
        .map(|r| format!("$MFTMirr does not match $MFT (record {r})."))
}

/// Why a read-write mount is refused (EPERM or a journal that needs
/// recovery), in the order ntfs-3g checks: hiberfil.sys, then the journal.
fn rw_blocker(s: &NtfsState, remove_hiberfile: bool) -> Option<&'static str> {
    if !remove_hiberfile {
        match s.hiber {
            HiberState::Hibernated => return Some(HIBERNATED),
            HiberState::Short => return Some(HIBERNATED_SHORT),
            _ => {}
        }
    }
    match s.log {
        LogState::WindowsCache { .. } => Some(WINDOWS_CACHE),
        _ => None,
    }
}

/// `ntfs-3g PART MNT`: a read-write request, and the mode it ends in.
pub fn mount_rw(s: &NtfsState, role: Role) -> Outcome {
    if let Some(msg) = inconsistent(s) {
        return Outcome::new(role, "ntfs-3g", MNT, Verdict::Refused, 13, &msg);
    }
    if let Some(msg) = rw_blocker(s, false) {
        return Outcome::new(role, "ntfs-3g", MNT, Verdict::ReadOnly, 0, msg);
    }
    let msg = match s.log {
        LogState::Unclean | LogState::Inconsistent => FIXING_JOURNAL,
        _ => "",
    };
    Outcome::new(role, "ntfs-3g", MNT, Verdict::ReadWrite, 0, msg)
}

/// `ntfs-3g -o remove_hiberfile PART MNT`: read-write or refused (exit 14).
pub fn mount_remove_hiberfile(s: &NtfsState, role: Role) -> Outcome {
    let cmd = "ntfs-3g -o remove_hiberfile PART MNT";
    if let Some(msg) = inconsistent(s) {
        return Outcome::new(role, "ntfs-3g", cmd, Verdict::Refused, 13, &msg);
    }
    match rw_blocker(s, true) {
        Some(msg) => Outcome::new(role, "ntfs-3g", cmd, Verdict::Refused, 14, msg),
        None => Outcome::new(role, "ntfs-3g", cmd, Verdict::ReadWrite, 0, ""),
    }
}

/// `ntfs-3g -o ro PART MNT`.
pub fn mount_ro(s: &NtfsState, role: Role) -> Outcome {
    let cmd = "ntfs-3g -o ro PART MNT";
    match inconsistent(s) {
        Some(msg) => Outcome::new(role, "ntfs-3g", cmd, Verdict::Refused, 13, &msg),
        None => Outcome::new(role, "ntfs-3g", cmd, Verdict::ReadOnly, 0, ""),
    }
}

/// What one ntfsfix run does: its outcome and the state it leaves.
#[derive(Debug, Clone)]
pub struct NtfsfixRun {
    /// The tool outcome.
    pub outcome: Outcome,
    /// The state afterwards (ntfsfix writes even when it then fails).
    pub after: NtfsState,
    /// What it changed, for people.
    pub changes: Vec<String>,
}

/// `ntfsfix PART` (`clear_dirty`: `ntfsfix -d PART`); `None` on a volume
/// whose system records do not load ([`NtfsState::corrupt`]): ntfsfix's
/// path there depends on details the model does not follow.
pub fn ntfsfix(s: &NtfsState, clear_dirty: bool) -> Option<NtfsfixRun> {
    if s.corrupt.is_some() {
        return None;
    }
    let cmd = if clear_dirty {
        "ntfsfix -d PART"
    } else {
        "ntfsfix PART"
    };
    let mut after = s.clone();
    let mut changes = Vec::new();
    let fail = |after: NtfsState, changes: Vec<String>, msg: &str| NtfsfixRun {
        outcome: Outcome::new(Role::Repair, "ntfsfix", cmd, Verdict::CannotRepair, 1, msg),
        after,
        changes,
    };
    // The first mount: read-write, without `recover`.
    let first_ok = s.mirror_mismatch.is_none()
        && rw_blocker(s, false).is_none()
        && matches!(s.log, LogState::Clean);
    let mut message = String::new();
    if !first_ok {
        // fix_mount: fix_mftmirr, set_dirty_flag, empty_journal, remount.
        if let Some(r) = s.mirror_mismatch {
            message = format!("Correcting differences in $MFTMirr record {r}...OK");
            after.mirror_mismatch = None;
            changes.push("copies the differing $MFT records to $MFTMirr".to_string());
        }
        after.dirty = true;
        after.log = LogState::Clean;
        changes.push("empties $LogFile".to_string());
        changes.push("sets the dirty flag".to_string());
        if message.is_empty() && s.log != LogState::Clean {
            message = EMPTY_JOURNAL.to_string();
        }
        if rw_blocker(&after, false).is_some() {
            return Some(fail(after, changes, REMOUNT_FAILED));
        }
    }
    match s.alt_boot {
        AltBoot::Matches => {}
        AltBoot::Differs => {
            after.alt_boot = AltBoot::Matches;
            changes.push("rewrites the alternate boot sector from sector 0".to_string());
            if message.is_empty() {
                message = ALT_BOOT_FIXED.to_string();
            }
        }
        AltBoot::Overflow => return Some(fail(after, changes, ALT_BOOT_FAILED)),
    }
    after.dirty = !clear_dirty;
    if clear_dirty && s.dirty {
        changes.push("clears the dirty flag".to_string());
    } else if !clear_dirty && !s.dirty && first_ok {
        changes.push("sets the dirty flag".to_string());
    }
    let damaged = !first_ok || s.alt_boot != AltBoot::Matches || (clear_dirty && s.dirty);
    let verdict = if damaged {
        Verdict::Repairs
    } else {
        Verdict::NotNeeded
    };
    Some(NtfsfixRun {
        outcome: Outcome::new(Role::Repair, "ntfsfix", cmd, verdict, 0, &message),
        after,
        changes,
    })
}

/// `ntfsfix -n PART`: it mounts read-only, so it sees only `$MFTMirr` and
/// the alternate boot sector (not hibernation, the journal or the dirty
/// flag); `None` where [`ntfsfix`] is not predicted.
pub fn ntfsfix_check(s: &NtfsState) -> Option<Outcome> {
    let cmd = "ntfsfix -n PART";
    if s.corrupt.is_some() {
        return None;
    }
    // With -n ntfsfix still goes through fix_mount: it prints the mirror
    // correction (writing nothing), then fails to mount again.
    Some(if let Some(r) = s.mirror_mismatch {
        Outcome::new(
            Role::Check,
            "ntfsfix",
            cmd,
            Verdict::ReportsDamage,
            1,
            &format!("Correcting differences in $MFTMirr record {r}...OK"),
        )
    } else {
        match s.alt_boot {
            AltBoot::Matches => Outcome::new(Role::Check, "ntfsfix", cmd, Verdict::Clean, 0, ""),
            AltBoot::Differs => Outcome::new(
                Role::Check,
                "ntfsfix",
                cmd,
                Verdict::ReportsDamage,
                1,
                ALT_BOOT_BAD,
            ),
            AltBoot::Overflow => Outcome::new(
                Role::Check,
                "ntfsfix",
                cmd,
                Verdict::ReportsDamage,
                1,
                ALT_BOOT_FAILED,
            ),
        }
    })
}

/// `ntfsresize -i PART` (and ntfsclone likewise): refuses a dirty volume.
pub fn ntfsresize_info(s: &NtfsState, role: Role) -> Outcome {
    let cmd = "ntfsresize -i PART";
    if s.corrupt.is_some() || s.mirror_mismatch.is_some() {
        return Outcome::new(role, "ntfsresize", cmd, Verdict::Refused, 1, "");
    }
    if s.dirty {
        Outcome::new(
            role,
            "ntfsresize",
            cmd,
            Verdict::Refused,
            1,
            SCHEDULED_FOR_CHECK,
        )
    } else {
        Outcome::new(role, "ntfsresize", cmd, Verdict::Clean, 0, "")
    }
}
