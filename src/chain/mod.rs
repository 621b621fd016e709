//! Backing chains: N overlays on a base, each backed by the previous one,
//! written by qfault's own writer, all or nothing.
//!
//! [`ChainBuilder::check`] opens the base once and plans every link against
//! the base with the earlier links' patches applied in memory (a
//! [`Preview`]), so a chain that cannot be built is refused before its first
//! link is written. [`ChainBuilder::build`] then writes every link to a
//! temporary file beside its final name, puts it on top of the open chain
//! ([`Image::push_staged`]) and checks it ([`crate::apply::check_top`]);
//! only when every link passed are they flushed together (one sync for the
//! whole chain) and renamed into place, so a failure leaves nothing behind. Links name their backing file relative to their
//! own directory, so the directory can move as a whole.

mod names;

pub use names::{NamePattern, DEFAULT_NAME_PATTERN};

use crate::apply::{check_top, Output};
use crate::error::{Error, Result};
use crate::image::{open, Image, OpenOptions};
use crate::overlay::{
    stage_overlay, BackingName, OverlayOptions, Patch, Preview, Staged, DEFAULT_CLUSTER_SIZE,
};
use crate::recipe::{Plan, Spec};
use serde::Serialize;
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Builds a backing chain of overlays in a directory.
///
/// ```no_run
/// use qfault::chain::ChainBuilder;
/// use qfault::recipe::Spec;
/// let report = ChainBuilder::new("base.qcow2", "chain/")
///     .depth(100, Spec::parse("empty")?)
///     .build()?;
/// println!("top: {:?}", report.top);
/// # Ok::<(), qfault::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ChainBuilder {
    base: PathBuf,
    dir: PathBuf,
    /// Runs of links applying the same recipe, bottom first.
    runs: Vec<(usize, Spec)>,
    uniform: bool,
    names: NamePattern,
    open: OpenOptions,
    cluster_size: u64,
    absolute_base: bool,
    overwrite: bool,
    sync: bool,
}

/// A backing chain built link by link.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChainReport {
    /// The base the first link is backed by.
    #[serde(flatten, serialize_with = "crate::json_path::base")]
    pub base: PathBuf,
    /// The directory holding the links.
    #[serde(flatten, serialize_with = "crate::json_path::dir")]
    pub dir: PathBuf,
    /// The top link (the image to use), or `None` for a chain of no links.
    #[serde(flatten, serialize_with = "crate::json_path::top")]
    pub top: Option<PathBuf>,
    /// Every link, bottom (link 1) first.
    pub links: Vec<Output>,
    /// Wall-clock seconds for the whole chain (reported under `timings`).
    #[serde(skip)]
    pub seconds: f64,
}

impl ChainReport {
    /// Sum of the links' apparent file sizes.
    pub fn file_size(&self) -> u64 {
        self.links.iter().map(|l| l.overlay.file_size).sum()
    }
}

/// A chain checked and planned, not yet written: see [`ChainBuilder::check`].
#[derive(Debug)]
pub struct CheckedChain {
    base: Image,
    /// Each link's plan, bottom first; a run of identical repeatable links
    /// shares one plan from its second link on.
    plans: Vec<std::sync::Arc<Plan>>,
}

impl ChainBuilder {
    /// A chain of no links on `base`, to be written in `dir` (created if
    /// missing).
    pub fn new(base: impl Into<PathBuf>, dir: impl Into<PathBuf>) -> Self {
        ChainBuilder {
            base: base.into(),
            dir: dir.into(),
            runs: Vec::new(),
            uniform: false,
            names: NamePattern::default(),
            open: OpenOptions::default(),
            cluster_size: DEFAULT_CLUSTER_SIZE,
            absolute_base: false,
            overwrite: false,
            sync: true,
        }
    }

    /// Makes the chain `n` links deep, each applying `recipe` (replacing
    /// any links added before).
    pub fn depth(mut self, n: usize, recipe: Spec) -> Self {
        self.runs = vec![(n, recipe)];
        self.uniform = true;
        self
    }

    /// Adds one link on top, applying `recipe`.
    pub fn link(mut self, recipe: Spec) -> Self {
        self.runs.push((1, recipe));
        self.uniform = false;
        self
    }

    /// Names links with `pattern` (see [`NamePattern`]); the default is
    /// [`DEFAULT_NAME_PATTERN`].
    pub fn name_pattern(mut self, pattern: NamePattern) -> Self {
        self.names = pattern;
        self
    }

    /// How the base and its own chain are opened.
    pub fn open_options(mut self, opts: OpenOptions) -> Self {
        self.open = opts;
        self
    }

    /// The links' cluster size (default 64 KiB).
    pub fn cluster_size(mut self, bytes: u64) -> Self {
        self.cluster_size = bytes;
        self
    }

    /// Store the base's absolute path in link 1 (links still name each
    /// other relatively), so the directory can move anywhere on this machine.
    pub fn absolute_base(mut self, yes: bool) -> Self {
        self.absolute_base = yes;
        self
    }

    /// Replace existing links whose bytes differ from what would be written
    /// (equal ones are always left alone); otherwise such a link is an error.
    pub fn overwrite(mut self, yes: bool) -> Self {
        self.overwrite = yes;
        self
    }

    /// Flush the links to stable storage before reporting the chain built
    /// (the default: one flush for the whole chain, not one per link);
    /// `false` is `--no-sync`.
    pub fn sync(mut self, yes: bool) -> Self {
        self.sync = yes;
        self
    }

    /// The base image.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// The directory the links go to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The number of links.
    pub fn len(&self) -> usize {
        self.runs.iter().map(|(n, _)| n).sum()
    }

    /// Whether the chain has no links.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Each link's recipe, bottom first.
    pub fn recipes(&self) -> impl Iterator<Item = &Spec> {
        self.runs
            .iter()
            .flat_map(|(n, r)| std::iter::repeat_n(r, *n))
    }

    /// The path of every link, bottom (link 1) first.
    pub fn outputs(&self) -> Vec<PathBuf> {
        (1..=self.len())
            .map(|i| self.dir.join(self.names.name(i)))
            .collect()
    }

    /// The field errors about link `i` (0-based) are said of: `each` for a
    /// chain made with [`ChainBuilder::depth`], else `links[i]`.
    fn field(&self, i: usize) -> String {
        if self.uniform {
            "each".to_string()
        } else {
            format!("links[{i}]")
        }
    }

    /// Opens the base and checks everything before writing: every link's
    /// recipe planned against the base with the links below it applied, a
    /// recipe that may not be applied on top of itself used once, and no
    /// link replacing a file of the base's chain. Errors name the link
    /// (`links[4]`, or `each`) and the field.
    pub fn check(&self) -> Result<CheckedChain> {
        let mut base = open(&self.base, &self.open).map_err(|e| e.context("base"))?;
        let needed = base.layers().len() + 2 * self.len() + SPARE_FILES;
        if let Some(limit) = open_file_limit().filter(|&l| (needed as u64) > l) {
            let field = if self.uniform { "depth" } else { "links" };
            return Err(Error::Usage(format!(
                "a chain of {} links keeps {needed} files open while it is built; \
                 the open-file hard limit is {limit}",
                self.len()
            ))
            .context(field));
        }
        let mut seen: HashSet<&Spec> = HashSet::new();
        let mut i = 0;
        for (n, spec) in &self.runs {
            if !spec.repeatable() && (*n > 1 || !seen.insert(spec)) {
                let at = if *n > 1 { i + 1 } else { i };
                return Err(Error::Usage(format!(
                    "recipe '{}' cannot be applied on top of itself (link {}): \
                     the link below already made the damage",
                    spec.name(),
                    at + 1
                ))
                .context(self.field(at)));
            }
            i += n;
        }
        let files = chain_files(&base)?;
        for out in self.outputs() {
            if let Ok(m) = std::fs::metadata(&out) {
                if files.contains(&(m.dev(), m.ino())) {
                    return Err(Error::Usage(format!(
                        "{} is a file of the base's backing chain; it is never written",
                        out.display()
                    ))
                    .context("dir"));
                }
            }
        }
        // Plan every link on the base with the links below it applied.
        let mut patches: Vec<Patch> = Vec::new();
        let mut plans = Vec::with_capacity(self.len());
        let mut i = 0;
        for (n, spec) in &self.runs {
            let mut first: Option<std::sync::Arc<Plan>> = None;
            let mut stable = false;
            for k in 0..*n {
                // Patches are absolute bytes: when the second link of a run
                // plans exactly like the first, applying it again changes
                // nothing, so every later link of the run has that plan too.
                if stable {
                    plans.extend(first.clone());
                    continue;
                }
                let plan = {
                    let mut view = Preview::new(&mut base, &patches[..]);
                    spec.plan(&mut view)
                        .map_err(|e| crate::batch::within(&self.field(i + k), e))?
                };
                if k == 1 && first.as_deref() == Some(&plan) {
                    stable = true;
                    plans.extend(first.clone());
                    continue;
                }
                patches.extend(plan.patches.iter().cloned());
                let plan = std::sync::Arc::new(plan);
                if k == 0 {
                    first = Some(plan.clone());
                }
                plans.push(plan);
            }
            i += n;
        }
        Ok(CheckedChain { base, plans })
    }

    /// Builds the chain (see [`ChainBuilder::build_with`]).
    pub fn build(&self) -> Result<ChainReport> {
        self.build_with(&mut |_, _| {})
    }

    /// Checks ([`ChainBuilder::check`]), then writes every link to a
    /// temporary file, checks it on top of the links below, and once all
    /// passed moves them into place, calling `on_link(i, link)` for link `i`
    /// (1-based). Links that exist with the right bytes are left alone, so
    /// a re-run writes nothing; on failure no link is left behind.
    pub fn build_with(&self, on_link: &mut dyn FnMut(usize, &Output)) -> Result<ChainReport> {
        self.build_observed(&mut |_| {}, on_link)
    }

    /// Builds the chain like [`ChainBuilder::build`], calling `on_staged(i)`
    /// as soon as link `i` (1-based) is written to its temporary file and
    /// checked: the slow part, for a progress bar.
    pub fn build_with_progress(&self, on_staged: &mut dyn FnMut(usize)) -> Result<ChainReport> {
        self.build_observed(on_staged, &mut |_, _| {})
    }

    fn build_observed(
        &self,
        on_staged: &mut dyn FnMut(usize),
        on_link: &mut dyn FnMut(usize, &Output),
    ) -> Result<ChainReport> {
        let start = Instant::now();
        let CheckedChain {
            base: mut image,
            plans,
        } = self.check()?;
        ensure_open_files(image.layers().len() + 2 * self.len() + SPARE_FILES);
        // The directories this run creates, deepest first.
        let created: Vec<PathBuf> = self
            .dir
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
            .map(Path::to_path_buf)
            .collect();
        if self.dir.exists() && !self.dir.is_dir() {
            return Err(Error::Usage(format!(
                "{} exists and is not a directory; -o names the directory for the links",
                self.dir.display()
            )));
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| {
            let hint = match e.raw_os_error() {
                Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => {
                    "; choose a directory you may write to"
                }
                Some(libc::ENOTDIR) => "; a part of the path is not a directory",
                _ => "",
            };
            Error::io(
                &self.dir,
                std::io::Error::new(e.kind(), format!("cannot create the directory: {e}{hint}")),
            )
        })?;
        let result = self.write_links(&mut image, &plans, on_staged, on_link);
        if result.is_err() {
            // Nothing was placed: leave no directory this run made behind.
            for d in &created {
                let _ = std::fs::remove_dir(d);
            }
        }
        let links = result?;
        Ok(ChainReport {
            base: self.base.clone(),
            dir: self.dir.clone(),
            top: links.last().map(|l| l.path.clone()),
            links,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    fn write_links(
        &self,
        image: &mut Image,
        plans: &[std::sync::Arc<Plan>],
        on_staged: &mut dyn FnMut(usize),
        on_link: &mut dyn FnMut(usize, &Output),
    ) -> Result<Vec<Output>> {
        let mut staged = Vec::with_capacity(self.len());
        for (k, ((spec, out), plan)) in self.recipes().zip(self.outputs()).zip(plans).enumerate() {
            let t = Instant::now();
            let i = k + 1;
            let link_err = |e: Error| e.context(format!("link {i} ({})", out.display()));
            let opts = OverlayOptions {
                cluster_size: self.cluster_size,
                backing_name: if i == 1 && self.absolute_base {
                    BackingName::Absolute
                } else {
                    BackingName::Relative
                },
                overwrite: self.overwrite,
                sync: self.sync,
            };
            let s = stage_overlay(image, &plan.patches, &out, &opts).map_err(link_err)?;
            image
                .push_staged(s.path(), &out, &self.open)
                .map_err(link_err)?;
            check_top(image, spec, plan).map_err(link_err)?;
            staged.push((s, spec, out, t.elapsed().as_secs_f64()));
            on_staged(i);
        }
        // One flush for every link, then all are moved into place.
        let t = Instant::now();
        let mut files = Vec::with_capacity(staged.len());
        let mut rest = Vec::with_capacity(staged.len());
        for (s, spec, out, seconds) in staged {
            files.push(s);
            rest.push((spec, out, seconds));
        }
        let committed = Staged::commit_all(files)?;
        let commit_share = t.elapsed().as_secs_f64() / committed.len().max(1) as f64;
        let mut links = Vec::with_capacity(committed.len());
        for (k, ((overlay, status), (spec, out, seconds))) in
            committed.into_iter().zip(rest).enumerate()
        {
            let plan = &plans[k];
            let link = Output {
                path: out,
                recipe: spec.clone(),
                status,
                output_format: crate::apply::OutputFormat::Overlay,
                overlay,
                targets: plan.targets.clone(),
                skipped: plan.skipped.clone(),
                seconds: seconds + commit_share,
            };
            on_link(k + 1, &link);
            links.push(link);
        }
        Ok(links)
    }
}

impl CheckedChain {
    /// The opened base (with its chain).
    pub fn base(&self) -> &Image {
        &self.base
    }

    /// The opened base, consuming the checked chain.
    pub fn into_base(self) -> Image {
        self.base
    }
}

/// (device, inode) of every file of an open chain.
pub(crate) fn chain_files(image: &Image) -> Result<HashSet<(u64, u64)>> {
    image
        .chain_info()
        .iter()
        .map(|l| {
            std::fs::metadata(&l.path)
                .map(|m| (m.dev(), m.ino()))
                .map_err(|e| Error::io(&l.path, e))
        })
        .collect()
}

/// Descriptors kept free besides the chain's images (stdio, outputs, ...).
const SPARE_FILES: usize = 64;

/// The hard open-file limit, `None` when unlimited or unknown.
fn open_file_limit() -> Option<u64> {
    // SAFETY: getrlimit writes the struct we pass.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        (libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_max != libc::RLIM_INFINITY)
            .then_some(lim.rlim_max)
    }
}

/// Raises the soft open-file limit towards the hard limit when fewer than
/// `needed` descriptors are allowed: every image of an open chain keeps its
/// file open. Best effort; opening then fails with a clear I/O error.
pub fn ensure_open_files(needed: usize) {
    // SAFETY: getrlimit/setrlimit read and write the struct we pass.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0
            && (lim.rlim_cur as u128) < needed as u128
            && lim.rlim_cur < lim.rlim_max
        {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
