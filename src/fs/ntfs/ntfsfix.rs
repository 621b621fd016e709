//! ntfsfix's boot-sector repair (`ntfsprogs/ntfsfix.c`: `fix_startup`,
//! `try_alternate_boot`, `try_fix_boot`), predicted: which candidate sector
//! it tries under which rule, and whether it accepts one.

use super::boot::{NtfsBootDefect, NtfsBootSector, BOOT_SECTOR_SIZE, OEM_ID};
use crate::error::Result;
use crate::fs::read_opt;
use crate::image::ReadAt;
use std::fmt;

/// The sector size ntfsfix uses on a regular file or a device that reports
/// none (`DEFAULT_SECTOR_SIZE`); a candidate backup must declare exactly this.
pub const NTFSFIX_DEVICE_SECTOR_SIZE: u32 = 512;

/// Which step of ntfsfix's boot-sector handling (ntfsfix-facts.md rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NtfsfixRule {
    /// Rule 1: sector 0 is valid; ntfsfix does not touch the boot sector.
    SectorZero,
    /// Rule 3a: the partition's last sector, count = device sectors − 1.
    LastSector,
    /// Rule 3b: the sector named by sector 0's count, when 0 < shown < actual.
    ShownSector,
    /// Rule 3c: sector 0 again with its count truncated, when shown > actual.
    TruncatedCount,
}

impl fmt::Display for NtfsfixRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NtfsfixRule::SectorZero => "sector 0",
            NtfsfixRule::LastSector => "the backup boot sector at the partition's last sector",
            NtfsfixRule::ShownSector => "the sector named by sector 0's number of sectors",
            NtfsfixRule::TruncatedCount => "sector 0 with its number of sectors truncated",
        })
    }
}

/// One candidate ntfsfix tried.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NtfsfixAttempt {
    /// Which rule.
    pub rule: NtfsfixRule,
    /// The 512-byte sector read (relative to the partition).
    pub lba: u64,
    /// The number of sectors ntfsfix substitutes before checking.
    pub number_of_sectors: i64,
    /// `None` when accepted, else why not, in one human line.
    pub rejected: Option<String>,
}

/// What ntfsfix will do about the boot sector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum NtfsfixOutcome {
    /// Sector 0 passes; no boot-sector repair happens.
    NoRepairNeeded,
    /// ntfsfix rewrites sector 0 from a candidate.
    Rewritten {
        /// The rule whose candidate was accepted.
        rule: NtfsfixRule,
        /// The sector copied to sector 0.
        lba: u64,
        /// The number of sectors written into the new sector 0.
        number_of_sectors: i64,
    },
    /// No candidate passes: "Volume is corrupt. You should run chkdsk."
    Unrepairable,
}

/// ntfsfix's boot-sector behaviour, predicted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NtfsfixPrediction {
    /// The result.
    pub outcome: NtfsfixOutcome,
    /// Why sector 0 is rejected (`None` when it is valid).
    pub sector0_defect: Option<String>,
    /// Device sectors − 1 ("actual" in ntfsfix).
    pub actual: i64,
    /// Sector 0's number_of_sectors ("shown").
    pub shown: i64,
    /// The candidates tried, in order.
    pub attempts: Vec<NtfsfixAttempt>,
    /// Rules not tried and why.
    pub skipped: Vec<String>,
}

impl NtfsfixPrediction {
    /// True when the volume is valid or ntfsfix repairs its boot sector.
    pub fn repairable(&self) -> bool {
        !matches!(self.outcome, NtfsfixOutcome::Unrepairable)
    }

    /// One paragraph saying what ntfsfix will do and why.
    pub fn summary(&self) -> String {
        match self.outcome {
            NtfsfixOutcome::NoRepairNeeded => {
                "sector 0 is a valid NTFS boot sector; ntfsfix will not rewrite it".to_string()
            }
            NtfsfixOutcome::Rewritten { rule, lba, number_of_sectors } => format!(
                "ntfsfix will find sector 0 invalid ({}), accept {rule} (LBA {lba}) with {number_of_sectors} sectors, and rewrite sector 0 from it",
                self.sector0_defect.as_deref().unwrap_or("?")
            ),
            NtfsfixOutcome::Unrepairable => {
                let mut parts = vec![format!(
                    "ntfsfix cannot repair the boot sector: sector 0 is invalid ({})",
                    self.sector0_defect.as_deref().unwrap_or("?")
                )];
                parts.extend(self.attempts.iter().filter_map(|a| a.rejected.clone()));
                parts.extend(self.skipped.iter().cloned());
                parts.join("; ")
            }
        }
    }
}

/// Why a candidate sector is unusable for ntfsfix, or `None` if it is usable.
fn candidate_defect(sector: &[u8], fix_sectors: i64) -> Option<String> {
    if sector.iter().all(|&b| b == 0) {
        return Some(NtfsBootDefect::AllZero.to_string());
    }
    let mut bs = NtfsBootSector::parse(sector).ok()?;
    bs.number_of_sectors = fix_sectors;
    if u32::from(bs.bytes_per_sector) != NTFSFIX_DEVICE_SECTOR_SIZE {
        // ntfsfix compares before the validity check, so even a sector that
        // is not NTFS at all is reported here first when its field differs.
        if &bs.oem_id != OEM_ID {
            return Some(NtfsBootDefect::OemId.to_string());
        }
        return Some(format!(
            "bytes per sector is {}, the device's is {NTFSFIX_DEVICE_SECTOR_SIZE}",
            bs.bytes_per_sector
        ));
    }
    bs.check().err().map(|d| d.to_string())
}

/// Reads LBA `lba` (512-byte sectors) of the partition as ntfsfix would,
/// with LBA 0 taken from `sector0`.
fn read_sector(part: &mut dyn ReadAt, sector0: &[u8], lba: u64) -> Result<Option<Vec<u8>>> {
    if lba == 0 {
        return Ok(Some(sector0[..BOOT_SECTOR_SIZE].to_vec()));
    }
    let Some(off) = lba.checked_mul(u64::from(NTFSFIX_DEVICE_SECTOR_SIZE)) else {
        return Ok(None);
    };
    read_opt(part, off, BOOT_SECTOR_SIZE)
}

/// The volume size a readable boot sector records, for explaining failures:
/// from `original` (the undamaged sector 0, when the caller knows it), else
/// from `sector0` if it is still NTFS, else from the partition's own LBA 0.
fn volume_sectors_hint(
    part: &mut dyn ReadAt,
    sector0: &[u8],
    original: Option<&[u8]>,
) -> Result<Option<VolumeHint>> {
    let from = |b: &[u8]| {
        NtfsBootSector::parse(b)
            .ok()
            .filter(|bs| bs.check_is_ntfs().is_ok() && bs.number_of_sectors > 0)
            .map(|bs| VolumeHint {
                sectors: bs.number_of_sectors,
                bytes_per_sector: bs.bytes_per_sector,
            })
    };
    if let Some(n) = original.and_then(from).or_else(|| from(sector0)) {
        return Ok(Some(n));
    }
    Ok(read_opt(part, 0, BOOT_SECTOR_SIZE)?.and_then(|b| from(&b)))
}

/// Predicts what ntfsfix does with a partition whose sector 0 is `sector0`.
///
/// `part` is the partition as ntfsfix will see it (a regular file, so a
/// 512-byte device sector size), except that its LBA 0 is replaced by
/// `sector0` (the first 512 bytes are used). Follows ntfsfix-facts.md rules
/// 1–4 and the code behind them: sector 0 valid → nothing to do; else the
/// last sector with count = actual; else sector `shown` if 0 < shown <
/// actual; else sector 0 with count = actual if shown > actual. A candidate
/// must declare 512 bytes per sector and pass both ntfs-3g checks.
pub fn predict_ntfsfix(sector0: &[u8], part: &mut dyn ReadAt) -> Result<NtfsfixPrediction> {
    predict_ntfsfix_explained(sector0, part, None)
}

/// [`predict_ntfsfix`], with the partition's undamaged sector 0 (`original`)
/// used only to explain failures (e.g. where the volume ends, to say the
/// partition was grown after formatting). The prediction itself depends only
/// on `sector0` and `part`, which is what ntfsfix sees.
pub fn predict_ntfsfix_explained(
    sector0: &[u8],
    part: &mut dyn ReadAt,
    original: Option<&[u8]>,
) -> Result<NtfsfixPrediction> {
    let bs0 = NtfsBootSector::parse(sector0)?;
    let device_sectors = part.size() / u64::from(NTFSFIX_DEVICE_SECTOR_SIZE);
    let actual = i64::try_from(device_sectors).unwrap_or(i64::MAX) - 1;
    let shown = bs0.number_of_sectors;
    let mut pred = NtfsfixPrediction {
        outcome: NtfsfixOutcome::Unrepairable,
        sector0_defect: None,
        actual,
        shown,
        attempts: Vec::new(),
        skipped: Vec::new(),
    };
    let sector0_defect = if sector0[..BOOT_SECTOR_SIZE].iter().all(|&b| b == 0) {
        Some(NtfsBootDefect::AllZero)
    } else {
        bs0.check().err()
    };
    let Some(defect) = sector0_defect else {
        pred.outcome = NtfsfixOutcome::NoRepairNeeded;
        return Ok(pred);
    };
    pred.sector0_defect = Some(defect.to_string());

    // (rule, sector read, count substituted)
    let mut plan: Vec<(NtfsfixRule, i64, i64)> = Vec::new();
    if actual > 0 {
        plan.push((NtfsfixRule::LastSector, actual, actual));
    } else {
        pred.skipped.push(format!(
            "the partition has {device_sectors} sectors, too few for a backup boot sector"
        ));
    }
    if shown > 0 && shown < actual {
        plan.push((NtfsfixRule::ShownSector, shown, shown));
    } else if shown <= 0 {
        pred.skipped.push(format!(
            "sector 0's number of sectors is {shown}, so ntfsfix does not look for a backup there"
        ));
    }
    if shown > actual {
        plan.push((NtfsfixRule::TruncatedCount, 0, actual));
    }
    let hint = volume_sectors_hint(part, sector0, original)?;
    for (rule, lba, count) in plan {
        let lba = lba as u64; // every planned sector is > 0 or exactly 0
        let rejected = match read_sector(part, sector0, lba)? {
            None => Some(format!("sector {lba} cannot be read")),
            Some(s) => candidate_defect(&s, count),
        };
        let rejected = rejected.map(|why| explain(rule, lba, &why, hint, actual));
        let accepted = rejected.is_none();
        pred.attempts.push(NtfsfixAttempt {
            rule,
            lba,
            number_of_sectors: count,
            rejected,
        });
        if accepted {
            pred.outcome = NtfsfixOutcome::Rewritten {
                rule,
                lba,
                number_of_sectors: count,
            };
            break;
        }
    }
    Ok(pred)
}

/// What a readable boot sector says about the volume, for explanations.
#[derive(Debug, Clone, Copy)]
struct VolumeHint {
    /// number_of_sectors, in the volume's own sectors.
    sectors: i64,
    /// The volume's bytes per sector.
    bytes_per_sector: u16,
}

/// Turns a candidate's defect into the sentence the prediction reports.
fn explain(
    rule: NtfsfixRule,
    lba: u64,
    why: &str,
    hint: Option<VolumeHint>,
    actual: i64,
) -> String {
    match rule {
        NtfsfixRule::LastSector => {
            let mut s = format!(
                "no usable backup boot sector at the partition's last sector (LBA {lba}): {why}"
            );
            match hint {
                Some(h) if u32::from(h.bytes_per_sector) != NTFSFIX_DEVICE_SECTOR_SIZE => {
                    s.push_str(&format!(
                        "; the volume uses {}-byte sectors, so its backup is the partition's last {} bytes, and ntfsfix, reading a file in {NTFSFIX_DEVICE_SECTOR_SIZE}-byte sectors, rejects boot sectors that declare {} bytes per sector",
                        h.bytes_per_sector, h.bytes_per_sector, h.bytes_per_sector
                    ));
                }
                Some(h) if h.sectors < actual => {
                    s.push_str(&format!(
                        "; the volume ends at LBA {}, so the partition was grown after formatting",
                        h.sectors
                    ));
                }
                _ => {}
            }
            s
        }
        NtfsfixRule::ShownSector => format!(
            "no usable backup boot sector at LBA {lba} (the sector named by sector 0's number of sectors): {why}"
        ),
        NtfsfixRule::TruncatedCount => format!(
            "sector 0 is unusable even with its number of sectors truncated to {actual}: {why}"
        ),
        NtfsfixRule::SectorZero => why.to_string(),
    }
}

/// Why the partition's last 512-byte sector is not a backup ntfsfix would
/// accept under rule 3a, or `None` when it is.
pub fn backup_boot_sector_problem(part: &mut dyn ReadAt) -> Result<Option<String>> {
    let sectors = part.size() / u64::from(NTFSFIX_DEVICE_SECTOR_SIZE);
    if sectors < 2 {
        return Ok(Some(
            "the partition is too small to hold a backup".to_string(),
        ));
    }
    let lba = sectors - 1;
    let Some(s) = read_sector(part, &[0; BOOT_SECTOR_SIZE], lba)? else {
        return Ok(Some(format!("sector {lba} cannot be read")));
    };
    Ok(candidate_defect(&s, lba as i64))
}
