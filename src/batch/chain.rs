//! Backing chains built link by link with qfault's own writer.
//!
//! [`ChainBuilder`] opens the base once, then for each link plans its recipe
//! on the chain so far, writes the overlay backed by the previous link (the
//! base for link 1) and puts it on top of the open chain with
//! [`Image::push_overlay`]. Nothing is reopened, so a link costs the same at
//! depth 1000 as at depth 1. Links name their backing file relative to their
//! own directory, so the directory can move as a whole.

use super::names::NamePattern;
use super::place::place_overlay;
use super::recipe::RecipeSpec;
use super::report::{ChainReport, OutputReport};
use crate::error::{Error, Result};
use crate::image::{open, Image, OpenOptions};
use crate::overlay::{BackingName, OverlayOptions, DEFAULT_CLUSTER_SIZE};
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Builds a backing chain of overlays in a directory.
///
/// ```no_run
/// use qfault::batch::{ChainBuilder, RecipeSpec};
/// let report = ChainBuilder::new("base.qcow2", "chain/")
///     .depth(100, RecipeSpec::Empty)
///     .build()?;
/// println!("top: {:?}", report.top);
/// # Ok::<(), qfault::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ChainBuilder {
    base: PathBuf,
    dir: PathBuf,
    /// Runs of links applying the same recipe, bottom first.
    runs: Vec<(usize, RecipeSpec)>,
    uniform: bool,
    names: NamePattern,
    open: OpenOptions,
    cluster_size: u64,
    absolute_base: bool,
    overwrite: bool,
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
        }
    }

    /// Makes the chain `n` links deep, each applying `recipe` (replacing
    /// any links added before).
    pub fn depth(mut self, n: usize, recipe: RecipeSpec) -> Self {
        self.runs = vec![(n, recipe)];
        self.uniform = true;
        self
    }

    /// Adds one link on top, applying `recipe`.
    pub fn link(mut self, recipe: RecipeSpec) -> Self {
        self.runs.push((1, recipe));
        self.uniform = false;
        self
    }

    /// Names links with `pattern` (see [`NamePattern`]); the default is
    /// [`super::names::DEFAULT_NAME_PATTERN`].
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
    pub fn recipes(&self) -> impl Iterator<Item = &RecipeSpec> {
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

    /// Opens the base and checks everything that can be checked before
    /// writing: each recipe against the base, and that no link would
    /// replace a file of the base's chain. Errors name the link (`links[4]`,
    /// or `each` for a chain made with [`ChainBuilder::depth`]) and the field.
    pub fn check(&self) -> Result<Image> {
        let mut base = open(&self.base, &self.open).map_err(|e| e.context("base"))?;
        let needed = base.layers().len() + self.len() + SPARE_FILES;
        if let Some(limit) = open_file_limit().filter(|&l| (needed as u64) > l) {
            let field = if self.uniform { "depth" } else { "links" };
            return Err(Error::Usage(format!(
                "a chain of {} links keeps {needed} files open while it is built; \
                 the open-file hard limit is {limit}",
                self.len()
            ))
            .context(field));
        }
        let mut checked: HashSet<&RecipeSpec> = HashSet::new();
        let mut i = 0;
        for (n, recipe) in &self.runs {
            i += n;
            if checked.insert(recipe) {
                recipe.preflight(&mut base).map_err(|e| {
                    if self.uniform {
                        super::within("each", e)
                    } else {
                        super::within(&format!("links[{}]", i - n), e)
                    }
                })?;
            }
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
        Ok(base)
    }

    /// Builds the chain (see [`ChainBuilder::build_with`]).
    pub fn build(&self) -> Result<ChainReport> {
        self.build_with(&mut |_, _| {})
    }

    /// Checks ([`ChainBuilder::check`]), then writes link after link, calling
    /// `on_link(i, link)` after link `i` (1-based) is in place. Links that
    /// exist with the right bytes are left alone, so a re-run is a no-op.
    pub fn build_with(&self, on_link: &mut dyn FnMut(usize, &OutputReport)) -> Result<ChainReport> {
        let start = Instant::now();
        let mut image = self.check()?;
        ensure_open_files(image.layers().len() + self.len() + SPARE_FILES);
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let mut prev = self.base.clone();
        let mut links = Vec::with_capacity(self.len());
        for (k, (recipe, out)) in self.recipes().zip(self.outputs()).enumerate() {
            let t = Instant::now();
            let i = k + 1;
            let link_err = |e: Error| e.context(format!("link {i} ({})", out.display()));
            let plan = recipe.plan(&mut image).map_err(link_err)?;
            let opts = OverlayOptions {
                cluster_size: self.cluster_size,
                backing_name: if i == 1 && self.absolute_base {
                    BackingName::Absolute
                } else {
                    BackingName::Relative
                },
                overwrite: false,
            };
            let (report, status) = place_overlay(
                &prev,
                &mut image,
                &plan.patches,
                &out,
                &opts,
                self.overwrite,
            )
            .map_err(link_err)?;
            image.push_overlay(&out, &self.open).map_err(link_err)?;
            let link = OutputReport {
                path: out.clone(),
                recipe: recipe.describe(),
                prediction: plan.prediction,
                backing_file: report.backing_file,
                status,
                file_size: report.file_size,
                allocated_size: report.allocated_size,
                seconds: t.elapsed().as_secs_f64(),
            };
            on_link(i, &link);
            links.push(link);
            prev = out;
        }
        Ok(ChainReport {
            base: self.base.clone(),
            dir: self.dir.clone(),
            top: links.last().map(|l| l.path.clone()),
            links,
            seconds: start.elapsed().as_secs_f64(),
        })
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
