//! Checking a whole batch before anything is written: every base opens,
//! every recipe's preflight passes against its base, outputs are unique and
//! none of them is a base or a file of a base's backing chain.

use super::job::{Entry, Job};
use crate::chain::chain_files;
use crate::error::{Error, Result};
use crate::image::{open, Image, OpenOptions};
use crate::overlay::Patch;
use crate::recipe::{Plan, Spec};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Validates every entry (whatever the shard) without writing anything:
/// every base opens, every recipe plans on its base (every chain link on the
/// links below it), outputs are unique and none is a base or a file of a
/// base's chain. The first problem found, in order, is returned, naming the
/// entry and the field (`image[3].offset: …`).
pub fn validate(entries: &[Entry], open_opts: &OpenOptions) -> Result<()> {
    validate_planned(entries, open_opts).map(|_| ())
}

/// The plans [`validate_planned`] made, by base path (as the manifest
/// gives it) and recipe, to be used again when the entries are written.
#[derive(Debug, Default)]
pub(crate) struct Plans {
    plans: HashMap<(PathBuf, String), Arc<Plan>>,
    /// The kept plan of each entry, by its index in the manifest (looked
    /// up once here, not keyed again by every worker).
    by_entry: HashMap<usize, Arc<Plan>>,
    /// Bytes of data patches held.
    bytes: usize,
}

/// Data patch bytes [`Plans`] holds at most (plans beyond it are made again
/// when the entry is written), so a manifest of big `write` payloads does
/// not hold them all in memory.
const PLAN_BYTES: usize = 16 << 20;

/// Bases validation keeps open at a time.
const OPEN_BASES: usize = 64;

/// The key of `spec` on `base` in [`Plans`]: recipes are compared by name
/// and parameters.
fn plan_key(base: &Path, spec: &Spec) -> (PathBuf, String) {
    (
        base.to_path_buf(),
        format!("{} {}", spec.name(), spec.params_json()),
    )
}

impl Plans {
    /// The plan of entry `index` (its position in the manifest), if it
    /// was kept.
    pub(crate) fn get(&self, index: usize) -> Option<Plan> {
        self.by_entry.get(&index).map(|p| Plan::clone(p))
    }
}

/// [`validate`], keeping the plans it made ([`Plans`]). Each base is opened
/// once, and entries applying the same recipe to the same base are planned
/// once (a plan depends on the base's bytes and the recipe only).
pub(crate) fn validate_planned(entries: &[Entry], open_opts: &OpenOptions) -> Result<Plans> {
    // Files of bases' chains: by (device, inode) and by normalized path.
    let mut base_ids: HashMap<(u64, u64), String> = HashMap::new();
    let mut base_paths: HashMap<PathBuf, String> = HashMap::new();
    // Every output: normalized path -> (entry.field).
    let mut outputs: Vec<(PathBuf, PathBuf, String)> = Vec::new();
    // Bases of [[image]] entries, opened once each.
    let mut opened: HashMap<PathBuf, Image> = HashMap::new();
    let mut plans = Plans::default();
    let mut dirs = Dirs::default();
    for (index, entry) in entries.iter().enumerate() {
        let at = |e: Error| super::within(&entry.name, e);
        let chain_image;
        let image: &Image = match &entry.job {
            Job::Image(j) => {
                let new = !opened.contains_key(&j.base);
                if new {
                    if opened.len() >= OPEN_BASES {
                        opened.clear();
                    }
                    let image = open(&j.base, open_opts).map_err(|e| at(e.context("base")))?;
                    opened.insert(j.base.clone(), image);
                }
                let image = opened.get_mut(&j.base).expect("opened above");
                let key = plan_key(&j.base, &j.recipe);
                if !plans.plans.contains_key(&key) {
                    let plan = j.recipe.plan(image).map_err(at)?;
                    let bytes: usize = plan
                        .patches
                        .iter()
                        .map(|p| match p {
                            Patch::Data { bytes, .. } => bytes.len(),
                            Patch::Zero { .. } => 0,
                        })
                        .sum();
                    if plans.bytes + bytes <= PLAN_BYTES {
                        plans.bytes += bytes;
                        plans.plans.insert(key.clone(), Arc::new(plan));
                    }
                }
                if let Some(plan) = plans.plans.get(&key) {
                    plans.by_entry.insert(index, Arc::clone(plan));
                }
                outputs.push((
                    j.output.clone(),
                    dirs.normalize(&j.output),
                    format!("{}.output", entry.name),
                ));
                if !new {
                    // Its chain's files are recorded already.
                    continue;
                }
                &*image
            }
            Job::Chain(c) => {
                chain_image = c
                    .clone()
                    .open_options(open_opts.clone())
                    .check()
                    .map_err(at)?
                    .into_base();
                for out in c.outputs() {
                    outputs.push((out.clone(), normalize(&out), format!("{}.dir", entry.name)));
                }
                &chain_image
            }
        };
        for id in chain_files(image)? {
            base_ids.entry(id).or_insert_with(|| entry.name.clone());
        }
        for layer in image.chain_info() {
            base_paths
                .entry(normalize(&layer.path))
                .or_insert_with(|| entry.name.clone());
        }
    }
    let mut seen: HashMap<&Path, &str> = HashMap::new();
    for (given, norm, field) in &outputs {
        if let Some(other) = seen.insert(norm, field) {
            return Err(
                Error::Usage(format!("{} is also written by {other}", given.display()))
                    .context(field.clone()),
            );
        }
        let id = std::fs::metadata(given).ok().map(|m| (m.dev(), m.ino()));
        let owner = base_paths
            .get(norm)
            .or_else(|| id.and_then(|id| base_ids.get(&id)));
        if let Some(owner) = owner {
            return Err(Error::Usage(format!(
                "{} is the base of {owner} or a file of its backing chain; bases are never written \
                 (stack overlays with a [[chain]] instead)",
                given.display()
            ))
            .context(field.clone()));
        }
    }
    Ok(plans)
}

/// [`normalize`] for many outputs, most of them in a few directories: each
/// directory is resolved once, and an output that is not a symbolic link
/// is its resolved directory joined with its name (one `lstat` instead of a
/// `readlink` per path component).
#[derive(Default)]
struct Dirs {
    resolved: HashMap<PathBuf, PathBuf>,
}

impl Dirs {
    fn normalize(&mut self, path: &Path) -> PathBuf {
        let name = match path.file_name() {
            Some(n)
                if !path
                    .symlink_metadata()
                    .is_ok_and(|m| m.file_type().is_symlink()) =>
            {
                n
            }
            _ => return normalize(path),
        };
        let dir = crate::output::parent_dir(path);
        self.resolved
            .entry(dir)
            .or_insert_with_key(|dir| normalize(dir))
            .join(name)
    }
}

/// An absolute path for comparisons: its longest existing ancestor
/// canonicalized, the rest appended with `.` and `..` applied lexically.
fn normalize(path: &Path) -> PathBuf {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut rest: Vec<Component> = Vec::new();
    let mut head = abs.as_path();
    let base = loop {
        if let Ok(c) = std::fs::canonicalize(head) {
            break c;
        }
        match (head.parent(), head.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                head = parent;
            }
            _ => break PathBuf::from("/"),
        }
    };
    let mut out = base;
    for c in rest.into_iter().rev() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c.as_os_str()),
        }
    }
    out
}
