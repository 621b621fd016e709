//! A batch: many independent images and chains, validated as a whole, then
//! produced in parallel by a small pool of threads, optionally one shard of it.

use super::job::{Entry, ImageJob, Job};
use super::report::{combined_status, BatchReport, EntryReport, EntryStatus};
use super::shard::Shard;
use crate::apply::{apply_as, Output};
use crate::chain::ChainBuilder;
use crate::error::{Error, Result};
use crate::image::{open, OpenOptions};
use crate::overlay::{BackingName, OverlayOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// A set of images and chains to produce.
///
/// ```no_run
/// use qfault::batch::{Batch, ImageJob};
/// use qfault::chain::ChainBuilder;
/// use qfault::recipe::Spec;
/// let report = Batch::new()
///     .image(ImageJob::new("base.qcow2", "out/zero.qcow2",
///         Spec::parse("zero --offset 1M --length 512")?))
///     .chain(ChainBuilder::new("base.qcow2", "out/chain").depth(10, Spec::parse("empty")?))
///     .jobs(2)
///     .run()?;
/// assert_eq!(report.failed(), 0);
/// # Ok::<(), qfault::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Batch {
    manifest: Option<PathBuf>,
    entries: Vec<Entry>,
    jobs: usize,
    shard: Shard,
    overwrite: bool,
    sync: bool,
    open: OpenOptions,
}

impl Default for Batch {
    fn default() -> Self {
        Batch::new()
    }
}

impl Batch {
    /// An empty batch using every core, the whole of it, not overwriting.
    pub fn new() -> Self {
        Batch {
            manifest: None,
            entries: Vec::new(),
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            shard: Shard::ALL,
            overwrite: false,
            sync: true,
            open: OpenOptions::default(),
        }
    }

    /// The batch a TOML manifest describes (see [`super::manifest`]);
    /// relative paths resolve against the manifest's directory.
    pub fn from_manifest(path: &Path) -> Result<Self> {
        let mut b = Batch::new();
        b.entries = super::manifest::load(path)?;
        b.manifest = Some(path.to_path_buf());
        Ok(b)
    }

    /// Adds an overlay, named `image[K]` (K counts images).
    pub fn image(mut self, job: ImageJob) -> Self {
        let k = self.count(|j| matches!(j, Job::Image(_)));
        self.entries.push(Entry {
            name: format!("image[{k}]"),
            job: Job::Image(job),
        });
        self
    }

    /// Adds a chain, named `chain[K]` (K counts chains).
    pub fn chain(mut self, chain: ChainBuilder) -> Self {
        let k = self.count(|j| matches!(j, Job::Chain(_)));
        self.entries.push(Entry {
            name: format!("chain[{k}]"),
            job: Job::Chain(chain),
        });
        self
    }

    fn count(&self, f: impl Fn(&Job) -> bool) -> usize {
        self.entries.iter().filter(|e| f(&e.job)).count()
    }

    /// Runs at most `n` entries at a time (at least 1).
    pub fn jobs(mut self, n: usize) -> Self {
        self.jobs = n.max(1);
        self
    }

    /// Runs only `shard`'s entries (validation still covers every entry).
    pub fn shard(mut self, shard: Shard) -> Self {
        self.shard = shard;
        self
    }

    /// Replace outputs that exist with other bytes instead of failing.
    pub fn overwrite(mut self, yes: bool) -> Self {
        self.overwrite = yes;
        self
    }

    /// Flush every output to stable storage before reporting it (the
    /// default); `false` is `--no-sync`.
    pub fn sync(mut self, yes: bool) -> Self {
        self.sync = yes;
        self
    }

    /// How every base (and chain) is opened.
    pub fn open_options(mut self, opts: OpenOptions) -> Self {
        self.open = opts;
        self
    }

    /// The entries, in manifest order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The manifest this batch was read from, if any.
    pub fn manifest(&self) -> Option<&Path> {
        self.manifest.as_deref()
    }

    /// An error said of the manifest (its path first), if there is one.
    pub(crate) fn in_manifest(&self, e: Error) -> Error {
        match &self.manifest {
            Some(m) => e.context(m.display().to_string()),
            None => e,
        }
    }

    /// Checks every entry (not only this shard's) without writing anything:
    /// every base opens, every recipe's preflight passes against its base,
    /// no two entries write the same file, and no output is a base or a
    /// file of a base's backing chain. The first problem, in manifest order,
    /// is returned naming the entry and the field (`m.toml: image[3].offset: …`).
    pub fn validate(&self) -> Result<()> {
        super::validate::validate(&self.entries, &self.open).map_err(|e| self.in_manifest(e))
    }

    /// Validates, then produces this shard's entries (see [`Batch::run_with`]).
    pub fn run(&self) -> Result<BatchReport> {
        self.run_with(&|_| {})
    }

    /// Validates the whole batch (an error there writes nothing), then
    /// produces this shard's entries on up to `jobs` threads, calling
    /// `on_entry` as each one finishes. An entry that fails does not stop
    /// the others; its error is in the report ([`BatchReport::first_error`]).
    pub fn run_with(&self, on_entry: &(dyn Fn(&EntryReport) + Sync)) -> Result<BatchReport> {
        let start = Instant::now();
        self.validate()?;
        let mine: Vec<usize> = (0..self.entries.len())
            .filter(|&k| self.shard.owns(k))
            .collect();
        let jobs = self.jobs.min(mine.len()).max(1);
        let next = AtomicUsize::new(0);
        let slots: Vec<Mutex<Option<EntryReport>>> =
            mine.iter().map(|_| Mutex::new(None)).collect();
        std::thread::scope(|s| {
            for _ in 0..jobs {
                s.spawn(|| loop {
                    let j = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&k) = mine.get(j) else { break };
                    let report = self.run_entry(k);
                    on_entry(&report);
                    *slots[j].lock().unwrap_or_else(|p| p.into_inner()) = Some(report);
                });
            }
        });
        let entries = slots
            .into_iter()
            .filter_map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
            .collect();
        Ok(BatchReport {
            manifest: self.manifest.clone().unwrap_or_default(),
            shard: self.shard.to_string(),
            jobs,
            entries,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    fn run_entry(&self, k: usize) -> EntryReport {
        let entry = &self.entries[k];
        let start = Instant::now();
        let result = match &entry.job {
            Job::Image(j) => self.run_image(j).map(|o| vec![o]),
            Job::Chain(c) => c
                .clone()
                .overwrite(self.overwrite)
                .sync(self.sync)
                .open_options(self.open.clone())
                .build()
                .map(|r| r.links),
        };
        let (outputs, status, error) = match result {
            Ok(outputs) => {
                let status = combined_status(&outputs);
                (outputs, status, None)
            }
            Err(e) => (
                Vec::new(),
                EntryStatus::Failed,
                Some(self.in_manifest(e.context(entry.name.clone()))),
            ),
        };
        EntryReport {
            entry: entry.name.clone(),
            index: k,
            outputs,
            status,
            seconds: start.elapsed().as_secs_f64(),
            error,
        }
    }

    fn run_image(&self, j: &ImageJob) -> Result<Output> {
        let mut base = open(&j.base, &self.open)?;
        let opts = OverlayOptions {
            cluster_size: j.cluster_size,
            backing_name: if j.absolute_backing {
                BackingName::Absolute
            } else {
                BackingName::Relative
            },
            overwrite: self.overwrite,
            sync: self.sync,
        };
        apply_as(
            &mut base,
            &j.recipe,
            &j.output,
            &opts,
            j.output_format,
            &self.open,
        )
    }
}
