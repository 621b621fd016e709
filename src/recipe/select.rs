//! Choosing the partition(s) a recipe acts on.

use crate::error::{Error, Result};
use crate::fs::{self, FsInfo};
use crate::image::{ReadAt, Window};
use crate::layout::{self, Partition};

/// A partition together with the filesystem found in it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Found {
    /// Where it is.
    pub partition: Partition,
    /// What `blkid -p` would say about it (`None`: nothing recognised, or
    /// an ambivalent result).
    pub filesystem: Option<FsInfo>,
    /// Every signature found when they make blkid's result ambivalent
    /// (`filesystem` is then `None`); empty otherwise.
    #[serde(skip)]
    pub ambivalent: Vec<FsInfo>,
}

impl Found {
    /// blkid's TYPE, if any.
    pub fn fstype(&self) -> Option<&'static str> {
        self.filesystem.as_ref().map(|f| f.fstype)
    }

    /// The filesystem label, if any.
    pub fn label(&self) -> Option<&str> {
        self.filesystem.as_ref().and_then(|f| f.label.as_deref())
    }

    /// Builds a `Found` from every signature in the partition.
    pub fn new(partition: Partition, signatures: fs::Signatures) -> Self {
        if signatures.ambivalent() {
            Found {
                partition,
                filesystem: None,
                ambivalent: signatures.found,
            }
        } else {
            Found {
                partition,
                filesystem: signatures.blkid(),
                ambivalent: Vec::new(),
            }
        }
    }

    /// The partition taken as holding `fstype`, one of its ambivalent
    /// signatures (what `--fs` names); `None` when it holds no such signature.
    fn taken_as(&self, fstype: &str) -> Option<Found> {
        let fs = self.ambivalent.iter().find(|f| f.fstype == fstype)?;
        Some(Found {
            partition: self.partition.clone(),
            filesystem: Some(fs.clone()),
            ambivalent: Vec::new(),
        })
    }

    /// Why a recipe does not act on an ambivalent partition without `--fs`.
    fn ambivalent_reason(&self, fstype: &str) -> String {
        let types: Vec<&str> = self.ambivalent.iter().map(|f| f.fstype).collect();
        format!(
            "{} holds several filesystem signatures ({}): blkid -p reports an ambivalent result and no type; \
             name the filesystem to damage with --fs {fstype}",
            self.describe(),
            types.join(", ")
        )
    }

    /// "partition 2 (47.0 MiB, ntfs "C")" for messages.
    pub fn describe(&self) -> String {
        crate::recipe::PartitionRef::from_found(self).describe()
    }
}

/// Every partition of `disk` (extended containers excluded) with its filesystem.
pub fn partitions(disk: &mut dyn ReadAt) -> Result<Vec<Found>> {
    let mut probed = layout::Probed::default();
    let table = layout::read_layout_probed(disk, &mut probed)?;
    let mut out = Vec::new();
    for p in table.partitions.into_iter().filter(|p| !p.is_extended()) {
        // Probed already when the MBR's sector size was guessed.
        if let Some(signatures) = probed.get(p.start, p.size) {
            out.push(Found::new(p, signatures.clone()));
            continue;
        }
        let signatures = match Window::new(&mut *disk, p.start, p.size) {
            Ok(mut w) => fs::probe_all(&mut w)?,
            // A partition past the end of the disk: report it, probe nothing.
            Err(_) => fs::Signatures::default(),
        };
        out.push(Found::new(p, signatures));
    }
    Ok(out)
}

/// The whole disk as partition 0, whether or not it holds a partition table
/// (partition 0 means the whole disk everywhere: `inject`, `--each`,
/// manifests, `export`).
pub fn whole_disk_partition(disk: &mut dyn ReadAt) -> Partition {
    Partition::whole_disk(disk.size())
}

/// The whole disk as partition 0, with the filesystem found on it, if any.
pub fn whole_disk(disk: &mut dyn ReadAt) -> Result<Found> {
    let signatures = fs::probe_all(disk)?;
    Ok(Found::new(whole_disk_partition(disk), signatures))
}

/// The partitions holding `fstype` that `sel` picks on `disk` (see
/// [`select`]); partition 0 is the whole disk even when it holds a table.
pub fn choose(disk: &mut dyn ReadAt, fstype: &str, sel: Selection) -> Result<Vec<Found>> {
    choose_named(disk, fstype, sel, None)
}

/// [`choose`] with the filesystem a user named with `--fs` (see [`select_named`]).
pub fn choose_named(
    disk: &mut dyn ReadAt,
    fstype: &str,
    sel: Selection,
    named: Option<&str>,
) -> Result<Vec<Found>> {
    let mut found = partitions(disk)?;
    if sel == Selection::Number(0) && !found.iter().any(|f| f.partition.number == 0) {
        found.push(whole_disk(disk)?);
    }
    select_named(&found, fstype, sel, named)
}

/// The partition numbered `number` (as `inspect` numbers them; 0 is the
/// whole disk), for commands that address bytes relative to a partition.
pub fn partition_by_number(disk: &mut dyn ReadAt, number: u32) -> Result<Partition> {
    if number == 0 {
        return Ok(whole_disk_partition(disk));
    }
    let table = layout::read_layout(disk)?;
    let names: Vec<String> = table
        .partitions
        .iter()
        .map(|p| format!("{} ({} bytes at {})", p.number, p.size, p.start))
        .collect();
    let p = table
        .partitions
        .into_iter()
        .find(|p| p.number == number)
        .ok_or_else(|| {
            Error::Usage(format!(
                "there is no partition {number}; the disk has: {}",
                if names.is_empty() {
                    "no partitions".to_string()
                } else {
                    names.join("; ")
                }
            ))
        })?;
    if p.end() > disk.size() {
        return Err(Error::Guest(format!(
            "partition {number} ends at byte {}, past the end of the disk ({} bytes)",
            p.end(),
            disk.size()
        )));
    }
    Ok(p)
}

/// Which partitions to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Selection {
    /// The disk's only partition holding the wanted filesystem.
    #[default]
    Only,
    /// This partition number.
    Number(u32),
    /// Every partition holding the wanted filesystem.
    All,
}

/// Picks the partitions holding `fstype` according to `sel`.
///
/// Errors: an unknown number or an ambiguous choice is a usage error (exit
/// 2, listing the candidates); a chosen partition without that filesystem,
/// or a disk with none, is refused (exit 3).
pub fn select(found: &[Found], fstype: &str, sel: Selection) -> Result<Vec<Found>> {
    select_named(found, fstype, sel, None)
}

/// [`select`], where `named` is the filesystem given with `--fs`: a
/// partition whose signatures are ambivalent (blkid names no type) is
/// refused with that reason (exit 3) unless `named` is `fstype` and
/// `fstype` is among its signatures; it is then taken as holding `fstype`.
/// Naming another filesystem than the recipe's is a usage error.
pub fn select_named(
    found: &[Found],
    fstype: &str,
    sel: Selection,
    named: Option<&str>,
) -> Result<Vec<Found>> {
    if let Some(n) = named.filter(|&n| n != fstype) {
        return Err(Error::Usage(format!(
            "--fs {n}: this recipe acts on {fstype}"
        )));
    }
    let taken: Vec<Found> = found
        .iter()
        .map(|f| match named.and_then(|n| f.taken_as(n)) {
            Some(t) => t,
            None => f.clone(),
        })
        .collect();
    let found = &taken[..];
    let matching: Vec<&Found> = found
        .iter()
        .filter(|f| f.fstype() == Some(fstype))
        .collect();
    let ambivalent = found
        .iter()
        .find(|f| f.ambivalent.iter().any(|s| s.fstype == fstype));
    match sel {
        Selection::Number(n) => {
            let f = found
                .iter()
                .find(|f| f.partition.number == n)
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "there is no partition {n}; the disk has: {}",
                        list(found.iter())
                    ))
                })?;
            if f.fstype() != Some(fstype) && f.ambivalent.iter().any(|s| s.fstype == fstype) {
                return Err(Error::Refused(f.ambivalent_reason(fstype)));
            }
            if f.fstype() != Some(fstype) {
                return Err(Error::Refused(format!(
                    "{} does not hold {fstype}",
                    f.describe()
                )));
            }
            Ok(vec![f.clone()])
        }
        Selection::Only | Selection::All if matching.is_empty() && ambivalent.is_some() => {
            Err(Error::Refused(
                ambivalent
                    .map(|f| f.ambivalent_reason(fstype))
                    .unwrap_or_default(),
            ))
        }
        Selection::Only | Selection::All if matching.is_empty() => Err(Error::Refused(format!(
            "no {fstype} partition on this disk; it has: {}",
            list(found.iter())
        ))),
        Selection::Only if matching.len() > 1 => Err(Error::Usage(format!(
            "several {fstype} partitions; choose one with --partition N (or --all): {}",
            list(matching.iter().copied())
        ))),
        Selection::Only | Selection::All => Ok(matching.into_iter().cloned().collect()),
    }
}

fn list<'a>(it: impl Iterator<Item = &'a Found>) -> String {
    let v: Vec<String> = it.map(Found::describe).collect();
    if v.is_empty() {
        "no partitions".to_string()
    } else {
        v.join("; ")
    }
}
