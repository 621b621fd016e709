//! The `ntfs-boot` recipe: zero the primary boot sector of an NTFS partition,
//! so `mount` fails ("NTFS signature is missing", ntfs-3g exit 12), while
//! `ntfsfix` restores it from the backup boot sector at the partition's last
//! sector (exit 0, "The alternate bootsector is usable").
//!
//! [`NtfsBoot::plan`] chooses the partitions and checks, before anything is
//! written, that ntfsfix will accept the backup (following its real rules,
//! see [`crate::fs::ntfs::predict_ntfsfix`]) and that the repaired volume
//! opens with a pure-Rust NTFS reader. The tool outcomes are verified in
//! `shared/catalogue/ntfs-boot.sh` and by `tests/ntfs_boot.rs`.

use super::select::{self, Found, Selection};
use super::{
    Catalogue, Outcome, PartitionRef, Plan, Prediction, Range, Recipe, Role, Skipped, Target,
    Verdict,
};
use crate::error::{Error, Result};
use crate::fs::ntfs::bootfix::{predict_ntfs, NtfsPrediction};
use crate::fs::ntfs::tools;
use crate::fs::ntfs::NtfsfixOutcome;
use crate::image::{ReadAt, Window};
use crate::overlay::{Patch, Preview};

/// `ntfs-boot`: zero the NTFS primary boot sector.
pub struct NtfsBoot;

/// Parameters of `ntfs-boot`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args, serde::Serialize)]
pub struct NtfsBootParams {
    /// The NTFS partition to damage (as `inspect` numbers them; 0 = the
    /// whole disk). Default: the disk's only NTFS partition.
    #[arg(long, value_name = "N", conflicts_with = "all")]
    pub partition: Option<u32>,
    /// Where the partition holds several filesystem signatures (blkid:
    /// "ambivalent result"), act on this one (FS: the recipe's filesystem).
    #[arg(long = "fs", value_name = "FS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs: Option<String>,
    /// Damage every NTFS partition that ntfsfix can repair (others are
    /// skipped and listed).
    #[arg(long)]
    pub all: bool,
    /// Sectors to zero at the partition's start, in the volume's bytes per sector.
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub sectors: u64,
    /// Write the damage even when ntfsfix will not repair it (the prediction says so).
    #[arg(long)]
    pub allow_unrepairable: bool,
}

impl Default for NtfsBootParams {
    fn default() -> Self {
        NtfsBootParams {
            partition: None,
            fs: None,
            all: false,
            sectors: 1,
            allow_unrepairable: false,
        }
    }
}

impl NtfsBootParams {
    fn selection(&self) -> Selection {
        match (self.partition, self.all) {
            (Some(n), _) => Selection::Number(n),
            (None, true) => Selection::All,
            (None, false) => Selection::Only,
        }
    }
}

use tools::{BACKUP_USABLE, NO_SIGNATURE, VOLUME_CORRUPT};

impl Recipe for NtfsBoot {
    type Params = NtfsBootParams;
    const NAME: &'static str = "ntfs-boot";
    const ABOUT: &'static str =
        "Zero an NTFS partition's primary boot sector: mount fails, ntfsfix repairs it";
    const REPEATABLE: bool = false;

    fn catalogue() -> Catalogue {
        Catalogue {
            targets: "ntfs",
            damage: "the primary boot sector (partition sector 0) reads as zeros",
            outcomes: vec![
                Outcome::blkid(None),
                mount_refused(),
                util_linux_mount_refused(),
                Outcome::new(
                    Role::Repair,
                    "ntfsfix",
                    "ntfsfix PART",
                    Verdict::Repairs,
                    0,
                    BACKUP_USABLE,
                ),
            ]
            .into_iter()
            .chain(super::ntfs::after_repair(true))
            .collect(),
            repair: Some("ntfsfix PART"),
            preconditions: vec![
                "the partition holds NTFS",
                "ntfsfix accepts the backup boot sector (the partition was not grown after formatting; 512-byte sectors)",
                "the volume opens after the repair",
            ],
        }
    }

    fn plan(p: &NtfsBootParams, disk: &mut dyn ReadAt) -> Result<Plan> {
        if p.sectors == 0 {
            return Err(Error::Usage("must be at least 1".into()).context("sectors"));
        }
        let selection = p.selection();
        let chosen = select::choose_named(disk, "ntfs", selection, p.fs.as_deref()).map_err(
            |e| match e {
                Error::Usage(_) => e.context("partition"),
                e => e,
            },
        )?;
        let mut plan = Plan {
            targets: Vec::new(),
            skipped: Vec::new(),
            patches: Vec::new(),
        };
        for f in chosen {
            let bps = f
                .filesystem
                .as_ref()
                .and_then(|fs| fs.ntfs.as_ref())
                .map_or(512, |g| u64::from(g.bytes_per_sector));
            let part = &f.partition;
            let len = p
                .sectors
                .checked_mul(bps)
                .filter(|&l| l <= part.size)
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "{} × {bps} bytes does not fit in {}",
                        p.sectors,
                        f.describe()
                    ))
                    .context("sectors")
                })?;
            let patch = Patch::Zero {
                offset: part.start,
                len,
            };
            let prediction = {
                let preview = Preview::new(&mut *disk, vec![patch.clone()]);
                ntfs_prediction(&mut Window::new(preview, part.start, part.size)?)?
            };
            if !prediction.repairable() && !p.allow_unrepairable {
                // Only a refusal needs the undamaged sector 0: it explains
                // why (e.g. the partition was grown after formatting).
                let original = disk.read_vec(part.start, 512)?;
                let preview = Preview::new(&mut *disk, vec![patch.clone()]);
                let mut view = Window::new(preview, part.start, part.size)?;
                let reason = unrepairable_reason(&predict_ntfs(&mut view, Some(&original))?);
                if selection == Selection::All {
                    plan.skipped.push(Skipped {
                        partition: PartitionRef::from_found(&f),
                        reason,
                    });
                    continue;
                }
                return Err(Error::Refused(format!(
                    "{}: {reason} (pass --allow-unrepairable to write it anyway)",
                    f.describe()
                )));
            }
            let target = Target {
                recipe: Self::NAME,
                partition: Some(PartitionRef::from_found(&f)),
                changes: vec![Range {
                    offset: part.start,
                    length: len,
                }],
                prediction,
            };
            plan.targets.push(target);
            plan.patches.push(patch);
        }
        if plan.targets.is_empty() {
            let reasons: Vec<String> = plan
                .skipped
                .iter()
                .map(|s| format!("{}: {}", s.partition.describe(), s.reason))
                .collect();
            return Err(Error::Refused(format!(
                "no NTFS partition can be damaged repairably: {}",
                reasons.join("; ")
            )));
        }
        Ok(plan)
    }

    fn predict(
        _: &NtfsBootParams,
        target: &Target,
        damaged: &mut dyn ReadAt,
    ) -> Result<Prediction> {
        let Some(p) = &target.partition else {
            return Err(Error::Usage("ntfs-boot targets a partition".into()));
        };
        let mut view = Window::new(damaged, p.offset, p.length)?;
        ntfs_prediction(&mut view)
    }

    /// Every NTFS partition, in whatever state the NTFS recipes left it
    /// (the state model delegates to this recipe's boot-sector model when
    /// sector 0 does not load).
    fn verify(partition: &Found, now: &mut dyn ReadAt) -> Result<Option<Prediction>> {
        if partition.fstype() != Some("ntfs") {
            return Ok(None);
        }
        let p = &partition.partition;
        let mut view = Window::new(now, p.start, p.size)?;
        super::ntfs::state_prediction(&mut view).map(Some)
    }
}

/// The tools' outcomes on an NTFS partition as it reads now (`part`).
pub fn ntfs_prediction(part: &mut dyn ReadAt) -> Result<Prediction> {
    let identified = crate::fs::probe(part)?;
    let ntfs = predict_ntfs(part, None)?;
    Ok(outcomes(identified.as_ref().map(|f| f.fstype), &ntfs))
}

pub(crate) fn mount_refused() -> Outcome {
    Outcome::new(
        Role::Mount,
        "ntfs-3g",
        "ntfs-3g PART MNT",
        Verdict::Refused,
        12,
        NO_SIGNATURE,
    )
}

/// util-linux's `mount` on a partition nothing identifies: it tries every
/// kernel filesystem and gives up (util-linux 2.38's message, exit 32).
pub(crate) fn util_linux_mount_refused() -> Outcome {
    Outcome::new(
        Role::Mount,
        "mount",
        "mount PART MNT",
        Verdict::Refused,
        32,
        "wrong fs type, bad option, bad superblock",
    )
}

/// The NTFS model's prediction as tool outcomes.
fn outcomes(identified: Option<&str>, n: &NtfsPrediction) -> Prediction {
    let mount = if n.mount.mounts {
        Outcome::new(
            Role::Mount,
            "ntfs-3g",
            "ntfs-3g PART MNT",
            Verdict::ReadWrite,
            0,
            "",
        )
    } else {
        mount_refused()
    };
    // ntfsfix exits 1 whenever the volume does not load after its boot
    // sector step: no usable backup, or a backup that is usable but leads
    // to a broken volume (it rewrites sector 0, then fails on $MFT).
    let repair = match (&n.after_repair, n.ntfsfix.outcome) {
        (None, _) => Outcome::new(
            Role::Repair,
            "ntfsfix",
            "ntfsfix PART",
            Verdict::CannotRepair,
            1,
            VOLUME_CORRUPT,
        ),
        (Some(_), NtfsfixOutcome::NoRepairNeeded) => Outcome::new(
            Role::Repair,
            "ntfsfix",
            "ntfsfix PART",
            Verdict::NotNeeded,
            0,
            "",
        ),
        (Some(_), _) => Outcome::new(
            Role::Repair,
            "ntfsfix",
            "ntfsfix PART",
            Verdict::Repairs,
            0,
            BACKUP_USABLE,
        ),
    };
    let after = match (&n.after_repair, n.ntfsfix.repairable()) {
        (Some(_), _) => Outcome::new(
            Role::AfterRepair,
            "ntfs-3g",
            "ntfs-3g PART MNT",
            Verdict::ReadWrite,
            0,
            "",
        ),
        (None, false) => Outcome {
            role: Role::AfterRepair,
            ..mount_refused()
        },
        (None, true) => Outcome::new(
            Role::AfterRepair,
            "ntfs-3g",
            "ntfs-3g PART MNT",
            Verdict::Refused,
            13,
            "",
        ),
    };
    let mut notes = Vec::new();
    let mut outcomes = vec![Outcome::blkid(identified), mount];
    if identified.is_none() {
        outcomes.push(util_linux_mount_refused());
    }
    outcomes.push(repair);
    outcomes.push(after);
    if n.after_repair.is_some() {
        outcomes.push(Outcome::new(
            Role::AfterRepair,
            "ntfsresize",
            "ntfsresize -i PART",
            Verdict::Refused,
            1,
            tools::SCHEDULED_FOR_CHECK,
        ));
    }
    if let NtfsfixOutcome::Rewritten {
        lba,
        number_of_sectors,
        ..
    } = n.ntfsfix.outcome
    {
        notes.push(format!(
            "ntfsfix rewrites sector 0 from LBA {lba} of the partition ({number_of_sectors} sectors)"
        ));
    }
    match (&n.after_repair, &n.after_repair_problem) {
        (Some(v), _) => notes.push(format!(
            "after the repair: label {}, root: {}",
            v.label
                .as_deref()
                .map_or("(none)".to_string(), |l| format!("\"{l}\"")),
            if v.root_entries.is_empty() {
                "(empty)".to_string()
            } else {
                v.root_entries.join(", ")
            }
        )),
        (None, Some(problem)) => {
            notes.push(format!("the repaired volume does not open: {problem}"))
        }
        (None, None) => notes.push(format!("ntfsfix fails: {}", n.ntfsfix.summary())),
    }
    if n.after_repair.is_some() {
        notes.push(
            "ntfsfix also empties $LogFile, rewrites $MFTMirr's copy of $Volume (and any mirror record that differs) and sets the dirty flag: the repaired partition differs from the base there, and ntfsresize and ntfsclone refuse until `ntfsfix -d`"
                .to_string(),
        );
    }
    Prediction {
        outcomes,
        byte_identical_after_repair: false,
        notes,
    }
}

/// Why a prediction says the damage is not repairable, in one line.
pub fn unrepairable_reason(p: &NtfsPrediction) -> String {
    if !p.ntfsfix.repairable() {
        p.ntfsfix.summary()
    } else {
        format!(
            "ntfsfix would rewrite the boot sector, but the repaired volume does not open: {}",
            p.after_repair_problem
                .as_deref()
                .unwrap_or("unknown problem")
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::recipe::Spec;

    #[test]
    fn describe_round_trips() {
        for text in [
            "ntfs-boot",
            "ntfs-boot --partition 2 --sectors 8",
            "ntfs-boot --all --allow-unrepairable",
            "ntfs-boot --partition 0",
        ] {
            let s = Spec::parse(text).unwrap();
            assert_eq!(Spec::parse(&s.describe()).unwrap(), s, "{text}");
        }
        assert!(Spec::parse("ntfs-boot --partition 2 --all").is_err());
    }
}
