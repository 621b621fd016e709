//! What the NTFS state recipes share: choosing NTFS partitions, the
//! preconditions every one of them checks, and one prediction computed from
//! the volume's state ([`state_prediction`]), so that a recipe's plan, its
//! post-write check and `verify` all read the same model.

use super::select::{self, Found, Selection};
use super::{ntfs_boot, PartitionRef, Plan, Prediction, Range, Role, Skipped, Target};
use crate::error::{Error, Result};
use crate::fs::ntfs::logfile::LogState;
use crate::fs::ntfs::tools::{self, NtfsfixRun};
use crate::fs::ntfs::{AltBoot, HiberState, NtfsState};
use crate::image::{ReadAt, Window};
use crate::overlay::{Patch, Preview};
use crate::recipe::{Outcome, Verdict};

/// Which NTFS partitions a recipe damages (shared by the NTFS recipes).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args, serde::Serialize)]
pub struct NtfsTarget {
    /// The NTFS partition to damage (as `inspect` numbers them; 0 = the
    /// whole disk). Default: the disk's only NTFS partition.
    #[arg(long, value_name = "N", conflicts_with = "all")]
    pub partition: Option<u32>,
    /// Where the partition holds several filesystem signatures (blkid:
    /// "ambivalent result"), act on this one (FS: the recipe's filesystem).
    #[arg(long = "fs", value_name = "FS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs: Option<String>,
    /// Damage every NTFS partition where the recipe applies (others are
    /// skipped and listed).
    #[arg(long)]
    pub all: bool,
}

impl NtfsTarget {
    fn selection(&self) -> Selection {
        match (self.partition, self.all) {
            (Some(n), _) => Selection::Number(n),
            (None, true) => Selection::All,
            (None, false) => Selection::Only,
        }
    }
}

/// How a recipe damages one volume: the partition-relative patches, given
/// the volume's state before the damage; an [`Error::Refused`] when a
/// precondition fails.
pub type Damage<'a> = dyn Fn(&NtfsState, &mut dyn ReadAt) -> Result<Vec<Patch>> + 'a;

/// Plans an NTFS state recipe: for each chosen partition, reads the state,
/// checks the common preconditions (the volume loads, 512-byte sectors),
/// asks `damage` for the patches, predicts on the damaged view and lets
/// `expect` refuse a prediction that is not the recipe's promise.
pub fn plan(
    name: &'static str,
    target: &NtfsTarget,
    disk: &mut dyn ReadAt,
    damage: &Damage,
    expect: &dyn Fn(&Prediction) -> std::result::Result<(), String>,
) -> Result<Plan> {
    let selection = target.selection();
    let chosen = select::choose_named(disk, "ntfs", selection, target.fs.as_deref()).map_err(
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
        match plan_one(name, &f, disk, damage, expect) {
            Ok((target, patches)) => {
                plan.targets.push(target);
                plan.patches.extend(patches);
            }
            Err(Error::Refused(reason)) if selection == Selection::All => {
                plan.skipped.push(Skipped {
                    partition: PartitionRef::from_found(&f),
                    reason,
                })
            }
            Err(Error::Refused(reason)) => {
                return Err(Error::Refused(format!("{}: {reason}", f.describe())))
            }
            Err(e) => return Err(e),
        }
    }
    if plan.targets.is_empty() {
        let reasons: Vec<String> = plan
            .skipped
            .iter()
            .map(|s| format!("{}: {}", s.partition.describe(), s.reason))
            .collect();
        return Err(Error::Refused(format!(
            "no NTFS partition where {name} applies: {}",
            reasons.join("; ")
        )));
    }
    Ok(plan)
}

fn plan_one(
    name: &'static str,
    f: &Found,
    disk: &mut dyn ReadAt,
    damage: &Damage,
    expect: &dyn Fn(&Prediction) -> std::result::Result<(), String>,
) -> Result<(Target, Vec<Patch>)> {
    let part = &f.partition;
    let mut view = Window::new(&mut *disk, part.start, part.size)?;
    let state = NtfsState::read(&mut view)?;
    let Some(params) = state.params else {
        return Err(Error::Refused("its boot sector does not load".into()));
    };
    if params.sector_size != 512 {
        return Err(Error::Refused(format!(
            "it has {}-byte sectors; ntfsfix's repairs assume 512",
            params.sector_size
        )));
    }
    if let Some(c) = &state.corrupt {
        return Err(Error::Refused(format!("the volume does not load: {c}")));
    }
    if let Some(why) = &state.unmodelled {
        return Err(Error::Refused(format!(
            "qfault cannot predict the tools on this volume: its {why}"
        )));
    }
    let local = damage(&state, &mut view)?;
    let patches: Vec<Patch> = local
        .into_iter()
        .map(|p| match p {
            Patch::Zero { offset, len } => Patch::Zero {
                offset: offset + part.start,
                len,
            },
            Patch::Data { offset, bytes } => Patch::Data {
                offset: offset + part.start,
                bytes,
            },
        })
        .collect();
    let prediction = {
        let preview = Preview::new(&mut *disk, patches.as_slice());
        state_prediction(&mut Window::new(preview, part.start, part.size)?)?
    };
    expect(&prediction).map_err(|why| {
        Error::Refused(format!(
            "{name} would not have its effect here: {why} (predicted: {})",
            prediction.one_line()
        ))
    })?;
    let changes = patches
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| Range {
            offset: p.offset(),
            length: p.len(),
        })
        .collect();
    Ok((
        Target {
            recipe: name,
            partition: Some(PartitionRef::from_found(f)),
            changes,
            prediction,
        },
        patches,
    ))
}

/// The two outcomes every NTFS catalogue entry ends with after a working
/// repair: a read-write mount, and `ntfsresize -i` refusing the volume when
/// the repair leaves the dirty flag set (`dirty`), accepting it otherwise.
pub(crate) fn after_repair(dirty: bool) -> [Outcome; 2] {
    let resize = if dirty {
        Outcome::new(
            Role::AfterRepair,
            "ntfsresize",
            "ntfsresize -i PART",
            Verdict::Refused,
            1,
            tools::SCHEDULED_FOR_CHECK,
        )
    } else {
        Outcome::new(
            Role::AfterRepair,
            "ntfsresize",
            "ntfsresize -i PART",
            Verdict::Clean,
            0,
            "",
        )
    };
    [
        Outcome::new(
            Role::AfterRepair,
            "ntfs-3g",
            "ntfs-3g PART MNT",
            Verdict::ReadWrite,
            0,
            "",
        ),
        resize,
    ]
}

/// Refuses a prediction where no repair works (for the recipes that promise
/// one).
pub fn repairable(p: &Prediction) -> std::result::Result<(), String> {
    if p.repairable() {
        Ok(())
    } else {
        Err("no repair would work on this volume".into())
    }
}

/// Every NTFS recipe's `predict`: the state prediction of the target
/// partition in `damaged`.
pub fn predict_target(target: &Target, damaged: &mut dyn ReadAt) -> Result<Prediction> {
    let Some(p) = &target.partition else {
        return Err(Error::Usage(format!(
            "{} targets a partition",
            target.recipe
        )));
    };
    state_prediction(&mut Window::new(damaged, p.offset, p.length)?)
}

/// The tools' outcomes on an NTFS partition as it reads now (`part`): the
/// boot-sector model when sector 0 does not load, else the state model:
/// blkid, the read-write mount request and the mode it ends in (and the
/// other mounts that matter for the state), a checker where one detects the
/// state, the repair that addresses it, and the mount and ntfsresize after
/// that repair.
pub fn state_prediction(part: &mut dyn ReadAt) -> Result<Prediction> {
    let state = NtfsState::read(part)?;
    if state.params.is_none() {
        return ntfs_boot::ntfs_prediction(part);
    }
    let identified = crate::fs::probe(part)?;
    let mut outcomes = vec![Outcome::blkid(identified.as_ref().map(|f| f.fstype))];
    let mut notes = Vec::new();
    if let Some(why) = &state.unmodelled {
        notes.push(format!(
            "qfault does not model this volume's {why}: no mount or repair outcome is predicted"
        ));
        return Ok(Prediction {
            outcomes,
            byte_identical_after_repair: false,
            notes,
        });
    }
    outcomes.push(tools::mount_rw(&state, Role::Mount));
    if let Some(why) = &state.corrupt {
        notes.push(format!(
            "the volume's system records do not load ({why}); qfault does not predict ntfsfix here"
        ));
        return Ok(Prediction {
            outcomes,
            byte_identical_after_repair: false,
            notes,
        });
    }
    let hibernated = matches!(state.hiber, HiberState::Hibernated | HiberState::Short);
    match state.log {
        LogState::WindowsCache { .. } => {
            outcomes.push(tools::mount_remove_hiberfile(&state, Role::Mount))
        }
        LogState::Unclean | LogState::Inconsistent => {
            outcomes.push(tools::mount_ro(&state, Role::Mount))
        }
        LogState::Clean => {}
    }
    let only_dirty = state.dirty
        && state.mirror_mismatch.is_none()
        && state.log == LogState::Clean
        && !hibernated
        && state.alt_boot == AltBoot::Matches;
    if state.alt_boot != AltBoot::Matches || state.mirror_mismatch.is_some() {
        outcomes.extend(tools::ntfsfix_check(&state));
    } else if only_dirty {
        outcomes.push(tools::ntfsresize_info(&state, Role::Check));
    }
    let Some(NtfsfixRun {
        outcome: fix,
        after,
        changes,
    }) = tools::ntfsfix(&state, only_dirty)
    else {
        return Ok(Prediction {
            outcomes,
            byte_identical_after_repair: false,
            notes,
        });
    };
    let fix_works = fix.result != Verdict::CannotRepair;
    outcomes.push(fix);
    let repaired = if fix_works {
        if !changes.is_empty() {
            notes.push(format!("ntfsfix {}", changes.join(", ")));
        }
        Some(after.clone())
    } else {
        if !changes.is_empty() {
            notes.push(format!(
                "ntfsfix writes before it fails: it {}",
                changes.join(", ")
            ));
        }
        if hibernated {
            let remove = tools::mount_remove_hiberfile(&state, Role::Repair);
            let works = remove.exit_code == 0;
            outcomes.push(Outcome {
                result: if works {
                    Verdict::Repairs
                } else {
                    Verdict::CannotRepair
                },
                ..remove
            });
            works.then(|| {
                notes.push("ntfs-3g -o remove_hiberfile deletes hiberfil.sys".into());
                NtfsState {
                    hiber: HiberState::Absent,
                    ..state.clone()
                }
            })
        } else {
            None
        }
    };
    match repaired {
        Some(r) => {
            outcomes.push(tools::mount_rw(&r, Role::AfterRepair));
            outcomes.push(tools::ntfsresize_info(&r, Role::AfterRepair));
            if r.dirty {
                notes.push(
                    "the dirty flag stays set after the repair: ntfsresize and ntfsclone refuse until `ntfsfix -d`"
                        .into(),
                );
            }
        }
        // No repair works: the volume as the last one tried left it.
        None => outcomes.push(tools::mount_rw(&after, Role::AfterRepair)),
    }
    Ok(Prediction {
        outcomes,
        byte_identical_after_repair: false,
        notes,
    })
}

/// Patches writing `bytes` at the start of a non-resident stream with
/// `runs`, one patch per cluster-contiguous piece, refused where the stream
/// is sparse or too short.
pub fn stream_patches(
    state: &NtfsState,
    runs: &[crate::fs::ntfs::record::Run],
    bytes: &[u8],
) -> Result<Vec<Patch>> {
    let cs = state
        .params
        .map(|p| u64::from(p.cluster_size))
        .ok_or_else(|| Error::Refused("the boot sector does not load".into()))?;
    let mut out: Vec<Patch> = Vec::new();
    let mut pos = 0u64;
    while pos < bytes.len() as u64 {
        let at = crate::fs::ntfs::record::run_offset(runs, cs, pos).ok_or_else(|| {
            Error::Refused(format!(
                "the stream has no stored cluster at byte {pos} (sparse, or past its runs)"
            ))
        })?;
        let n = (cs - pos % cs).min(bytes.len() as u64 - pos);
        let piece = bytes[pos as usize..(pos + n) as usize].to_vec();
        match out.last_mut() {
            Some(Patch::Data { offset, bytes }) if *offset + bytes.len() as u64 == at => {
                bytes.extend(piece)
            }
            _ => out.push(Patch::Data {
                offset: at,
                bytes: piece,
            }),
        }
        pos += n;
    }
    Ok(out)
}

/// Patches writing `bytes` over the volume ranges `ranges` (in order; their
/// lengths must add up to `bytes.len()`).
pub fn range_patches(ranges: &[(u64, usize)], bytes: &[u8]) -> Result<Vec<Patch>> {
    let mut out = Vec::new();
    let mut i = 0;
    for &(at, n) in ranges {
        let piece = bytes
            .get(i..i + n)
            .ok_or_else(|| Error::Guest("the structure is not where the model expects".into()))?;
        out.push(Patch::Data {
            offset: at,
            bytes: piece.to_vec(),
        });
        i += n;
    }
    if i != bytes.len() {
        return Err(Error::Guest(
            "the structure is not where the model expects".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::recipe::Spec;

    /// The NTFS state recipes' parameters (shared [`super::NtfsTarget`])
    /// round-trip through `describe`, and `--partition` excludes `--all`.
    #[test]
    fn every_ntfs_state_recipe_describes_itself_back() {
        for name in [
            "ntfs-fast-startup",
            "ntfs-unclean-journal",
            "ntfs-hibernated",
            "ntfs-dirty",
            "ntfs-mftmirr",
            "ntfs-boot-both",
            "ntfs-backup-boot",
        ] {
            for text in [
                name.to_string(),
                format!("{name} --partition 2"),
                format!("{name} --all"),
            ] {
                let s = Spec::parse(&text).unwrap();
                assert_eq!(Spec::parse(&s.describe()).unwrap(), s, "{text}");
            }
            assert!(Spec::parse(&format!("{name} --partition 2 --all")).is_err());
        }
    }
}
