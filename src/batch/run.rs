//! A batch: many independent images and chains, validated as a whole, then
//! produced in parallel by a small pool of threads, optionally one shard of it.

use super::job::{Entry, ImageJob, Job};
use super::report::{combined_status, BatchReport, EntryReport, EntryStatus};
use super::shard::Shard;
use super::validate::Plans;
use crate::apply::{stage_planned, StagedOutput};
use crate::chain::ChainBuilder;
use crate::error::{Error, Result};
use crate::image::{open, BlockStore, Image, OpenOptions, Stored};
use crate::overlay::{BackingName, OverlayOptions};
use std::collections::HashMap;
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

    /// Validates, then produces this shard's entries with one flush for the
    /// whole run (see [`Batch::run_with_progress`]).
    pub fn run(&self) -> Result<BatchReport> {
        self.run_with_progress(&|_| {})
    }

    /// Validates the whole batch (an error there writes nothing), then
    /// produces this shard's entries on up to `jobs` threads, calling
    /// `on_entry` as each one finishes, its outputs in place (and, unless
    /// `sync(false)`, flushed on their own: two fsyncs per overlay), so the
    /// report can be streamed. An entry that fails does not stop the
    /// others; its error is in the report ([`BatchReport::first_error`]).
    pub fn run_with(&self, on_entry: &(dyn Fn(&EntryReport) + Sync)) -> Result<BatchReport> {
        self.run_inner(false, &|_, report: Option<&EntryReport>| {
            if let Some(r) = report {
                on_entry(r)
            }
        })
    }

    /// Like [`Batch::run_with`], but durability costs one flush for the
    /// whole run, not two per output: every `[[image]]` output is written to
    /// a temporary file beside its target and checked, and once every entry
    /// is done they are flushed together (one `syncfs` per filesystem) and
    /// moved into place (a chain entry is placed whole when it finishes,
    /// with one flush of its own). `on_staged(k)` is called as entry `k`
    /// (its manifest index) is written and checked, not yet in place: for a
    /// progress bar. An entry that fails, or whose output cannot be flushed
    /// or moved into place, does not stop the others; a process killed
    /// before the end leaves no `[[image]]` output of this run behind.
    pub fn run_with_progress(&self, on_staged: &(dyn Fn(usize) + Sync)) -> Result<BatchReport> {
        self.run_inner(true, &|k, _| on_staged(k))
    }

    /// Runs the shard: with `together`, image outputs are staged and
    /// committed at the end; `done(k, report)` as entry `k` finishes, with
    /// its report when that is final (always, without `together`).
    fn run_inner(
        &self,
        together: bool,
        done: &(dyn Fn(usize, Option<&EntryReport>) + Sync),
    ) -> Result<BatchReport> {
        let start = Instant::now();
        let plans = super::validate::validate_planned(&self.entries, &self.open)
            .map_err(|e| self.in_manifest(e))?;
        let mine: Vec<usize> = (0..self.entries.len())
            .filter(|&k| self.shard.owns(k))
            .collect();
        let jobs = self.jobs.min(mine.len()).max(1);
        if together {
            // Staged outputs wait with their descriptors closed; bases stay
            // open, one per worker and base.
            crate::chain::ensure_open_files(jobs * BASES_PER_WORKER * 4 + 64);
        }
        let next = AtomicUsize::new(0);
        type Slot = (EntryReport, Option<StagedOutput>);
        let slots: Vec<Mutex<Option<Slot>>> = mine.iter().map(|_| Mutex::new(None)).collect();
        std::thread::scope(|s| {
            for _ in 0..jobs {
                s.spawn(|| {
                    let mut bases = Bases::default();
                    loop {
                        let j = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&k) = mine.get(j) else { break };
                        let (report, staged) = self.run_entry(k, together, &mut bases, &plans);
                        done(k, staged.is_none().then_some(&report));
                        *slots[j].lock().unwrap_or_else(|p| p.into_inner()) =
                            Some((report, staged));
                    }
                });
            }
        });
        let mut entries = Vec::with_capacity(slots.len());
        let mut pending = Vec::new();
        for slot in slots {
            if let Some((report, staged)) = slot.into_inner().unwrap_or_else(|p| p.into_inner()) {
                if let Some(staged) = staged {
                    pending.push((entries.len(), staged));
                }
                entries.push(report);
            }
        }
        // One flush for every staged output, then each is moved into place.
        let t = Instant::now();
        let (at, staged): (Vec<usize>, Vec<StagedOutput>) = pending.into_iter().unzip();
        let committed = StagedOutput::commit_each(staged);
        let share = t.elapsed().as_secs_f64() / committed.len().max(1) as f64;
        for (i, result) in at.into_iter().zip(committed) {
            let e: &mut EntryReport = &mut entries[i];
            e.seconds += share;
            match result {
                Ok(mut o) => {
                    o.seconds = e.seconds;
                    e.outputs = vec![o];
                    e.status = combined_status(&e.outputs);
                }
                Err(err) => {
                    e.status = EntryStatus::Failed;
                    e.error = Some(self.in_manifest(err.context(e.entry.clone())));
                }
            }
        }
        Ok(BatchReport {
            manifest: self.manifest.clone().unwrap_or_default(),
            shard: self.shard.to_string(),
            jobs,
            entries,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// Runs entry `k`: its report, and with `together` an image's output
    /// staged (the report's outputs and status are then filled in once it
    /// is committed).
    fn run_entry(
        &self,
        k: usize,
        together: bool,
        bases: &mut Bases,
        plans: &Plans,
    ) -> (EntryReport, Option<StagedOutput>) {
        let entry = &self.entries[k];
        let start = Instant::now();
        let mut staged = None;
        let result = match &entry.job {
            Job::Image(j) => match self.stage_image(k, j, bases, plans) {
                Ok(mut s) if together => {
                    s.close();
                    staged = Some(s);
                    Ok(Vec::new())
                }
                Ok(s) => s.commit().map(|o| vec![o]),
                Err(e) => Err(e),
            },
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
        let report = EntryReport {
            entry: entry.name.clone(),
            index: k,
            outputs,
            status,
            seconds: start.elapsed().as_secs_f64(),
            error,
        };
        (report, staged)
    }

    fn stage_image(
        &self,
        k: usize,
        j: &ImageJob,
        bases: &mut Bases,
        plans: &Plans,
    ) -> Result<StagedOutput> {
        let (base, blocks) = bases.get(&j.base, &self.open)?;
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
        let plan = match plans.get(k) {
            Some(plan) => plan,
            None => j.recipe.plan(&mut Stored::new(&mut *base, blocks))?,
        };
        stage_planned(
            base,
            blocks,
            &j.recipe,
            plan,
            &j.output,
            &opts,
            j.output_format,
            &self.open,
        )
    }
}

/// Bases a worker has open, by the path the manifest gives: entries on the
/// same base share one opened chain (its headers and tables read once)
/// and one [`BlockStore`] of what was read of it (the post-write checks of
/// every entry on that base read the same boot sectors and metadata)
/// instead of opening and reading it again each. At most
/// [`BASES_PER_WORKER`] are kept.
#[derive(Default)]
struct Bases {
    open: HashMap<PathBuf, (Image, BlockStore)>,
}

/// Bases one worker keeps open at a time.
const BASES_PER_WORKER: usize = 16;

/// Blocks of each open base a worker keeps ([`BlockStore::BLOCK`] bytes
/// each): 512 KiB per base, 8 MiB per worker at most.
const BLOCKS_PER_BASE: usize = 1024;

impl Bases {
    fn get(&mut self, path: &Path, opts: &OpenOptions) -> Result<(&mut Image, &mut BlockStore)> {
        if !self.open.contains_key(path) {
            if self.open.len() >= BASES_PER_WORKER {
                self.open.clear();
            }
            let image = open(path, opts)?;
            let blocks = BlockStore::with_limit(BLOCKS_PER_BASE);
            self.open.insert(path.to_path_buf(), (image, blocks));
        }
        let (image, blocks) = self
            .open
            .get_mut(path)
            .expect("inserted above when missing");
        Ok((image, blocks))
    }
}
