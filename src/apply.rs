//! The one write path, used by `inject`, `chain`, `batch` and the library:
//! plan → write → post-write check → place.
//!
//! The output is an overlay by default, or, with [`OutputFormat`], a
//! standalone file holding the whole damaged guest ([`crate::standalone`]):
//! a raw image or a self-contained qcow2. A standalone output is checked the
//! same way, opened on its own: it must read as the base with the plan's
//! patches applied ([`first_difference`]), and predict as planned.
//!
//! [`Inject`] is the façade for library users: paths in, a typed report out.
//! [`check_top`] is the post-write check: with the written overlay on top
//! of the chain, the guest must read exactly as the base with the plan's
//! patches applied, and every target's prediction, computed again from the
//! written bytes, must equal the plan's. Only then is the overlay renamed
//! into place. An output found with exactly the planned bytes is left
//! alone after that comparison: nothing was written, nothing is checked.
//! [`stage_as`] stops before the commit, so many outputs can share one
//! flush ([`StagedOutput::commit_each`], used by `batch`).

use crate::error::{Error, Result};
use crate::image::qcow2::header::CompressionType;
use crate::image::{self, BlockStore, Image, LayerInfo, OpenOptions, ReadAt, Stored};
use crate::overlay::{stage_overlay, BackingName, OverlayOptions, OverlayReport, Staged, Status};
use crate::recipe::{Plan, Skipped, Spec, Target};
use crate::standalone::{open_qcow2, open_raw, stage_qcow2, stage_raw};
use crate::verify::{differences_stored, first_difference, TopView};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The kind of file an output is (`-O`/`--output-format`, the manifest's
/// `output_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// A qcow2 overlay backed by the untouched base: only the damaged
    /// clusters.
    #[default]
    Overlay,
    /// A raw image of the whole damaged guest.
    Raw,
    /// A qcow2 image of the whole damaged guest with no backing file,
    /// its data clusters compressed when `compression` is given.
    Qcow2Standalone {
        /// How data clusters are compressed, if at all.
        compression: Option<CompressionType>,
    },
}

impl OutputFormat {
    /// The format's name on the command line and in reports: `overlay`,
    /// `raw`, `qcow2-standalone`.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Overlay => "overlay",
            OutputFormat::Raw => "raw",
            OutputFormat::Qcow2Standalone { .. } => "qcow2-standalone",
        }
    }

    /// The format named `name` (see [`OutputFormat::name`]) with
    /// `compression`, which only a standalone qcow2 takes (usage errors
    /// otherwise).
    pub fn parse(name: &str, compression: Option<CompressionType>) -> Result<Self> {
        let f = match name {
            "overlay" => OutputFormat::Overlay,
            "raw" => OutputFormat::Raw,
            "qcow2-standalone" => return Ok(OutputFormat::Qcow2Standalone { compression }),
            other => {
                return Err(Error::Usage(format!(
                    "unknown output format {other:?} (expected overlay, raw or qcow2-standalone)"
                )))
            }
        };
        if compression.is_some() {
            return Err(Error::Usage(format!(
                "compression applies to the qcow2-standalone output format, not to {name}"
            )));
        }
        Ok(f)
    }
}

impl Serialize for OutputFormat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// One output written (or found up to date): what every front-end reports
/// per output file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Output {
    /// The output's path.
    #[serde(flatten, serialize_with = "crate::json_path::path")]
    pub path: PathBuf,
    /// The recipe and its parameters (`{"name", "params"}`).
    pub recipe: Spec,
    /// What happened to the file.
    pub status: Status,
    /// The kind of file written.
    pub output_format: OutputFormat,
    /// The file written (an overlay, or a standalone file: see
    /// [`OverlayReport`]).
    pub overlay: OverlayReport,
    /// What was damaged and what the tools will do.
    pub targets: Vec<Target>,
    /// Candidates the recipe left alone.
    pub skipped: Vec<Skipped>,
    /// Wall-clock seconds (reported under `timings`, never inline).
    #[serde(skip)]
    pub seconds: f64,
}

/// Plans `spec` on `base`, writes the overlay for `out` (or finds it
/// identical), checks it with [`check_top`] and moves it into place.
pub fn apply(
    base: &mut Image,
    spec: &Spec,
    out: &Path,
    opts: &OverlayOptions,
    open: &OpenOptions,
) -> Result<Output> {
    apply_as(base, spec, out, opts, OutputFormat::Overlay, open)
}

/// [`apply`] writing a file of `format`: an overlay (as [`apply`]), or a
/// standalone file of the whole damaged guest, checked by
/// [`check_standalone`]. A standalone qcow2 takes `opts.cluster_size`;
/// `opts.backing_name` applies to overlays only.
pub fn apply_as(
    base: &mut Image,
    spec: &Spec,
    out: &Path,
    opts: &OverlayOptions,
    format: OutputFormat,
    open: &OpenOptions,
) -> Result<Output> {
    stage_as(base, spec, out, opts, format, open)?.commit()
}

/// [`apply_as`] up to the commit: plans, writes the file to a temporary
/// beside `out` and checks it (an output found with exactly the planned
/// bytes is left as it is, its bytes compared, not checked again), without
/// moving it into place: [`StagedOutput::commit`], or
/// [`StagedOutput::commit_each`] for many outputs with one flush.
pub fn stage_as(
    base: &mut Image,
    spec: &Spec,
    out: &Path,
    opts: &OverlayOptions,
    format: OutputFormat,
    open: &OpenOptions,
) -> Result<StagedOutput> {
    // What the plan reads of the base serves the post-write check again.
    let mut base_blocks = BlockStore::new();
    let plan = spec.plan(&mut Stored::new(&mut *base, &mut base_blocks))?;
    stage_with(base, spec, plan, out, opts, format, open, &mut base_blocks)
}

/// [`stage_as`] with `plan`, already made by `spec.plan(base)` (a batch
/// plans every entry while validating it, and entries that apply the same
/// recipe to the same base share one plan), the post-write check reading
/// the base through `base_blocks`: blocks of `base` already read, kept by
/// the caller across every output it stages on that same base (it must
/// hold nothing read from any other image).
#[allow(clippy::too_many_arguments)]
pub fn stage_planned(
    base: &mut Image,
    base_blocks: &mut BlockStore,
    spec: &Spec,
    plan: Plan,
    out: &Path,
    opts: &OverlayOptions,
    format: OutputFormat,
    open: &OpenOptions,
) -> Result<StagedOutput> {
    stage_with(base, spec, plan, out, opts, format, open, base_blocks)
}

/// [`stage_planned`], the post-write check reading the base through
/// `base_blocks` (what planning already read of it).
#[allow(clippy::too_many_arguments)]
fn stage_with(
    base: &mut Image,
    spec: &Spec,
    plan: Plan,
    out: &Path,
    opts: &OverlayOptions,
    format: OutputFormat,
    open: &OpenOptions,
    base_blocks: &mut BlockStore,
) -> Result<StagedOutput> {
    let start = Instant::now();
    let dir = crate::output::parent_dir(out);
    // Usually there already (one stat, not a failed mkdir and a stat).
    if !dir.is_dir() {
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    let staged: Staged = match format {
        OutputFormat::Overlay => {
            let s = stage_overlay(base, &plan.patches, out, opts)?;
            if s.status() != Status::Unchanged {
                check_overlay_stored(base, spec, &plan, s.path(), out, open, base_blocks)?;
            }
            s
        }
        OutputFormat::Raw => {
            let s = stage_raw(base, &plan.patches, out, opts.overwrite)?;
            if s.status() != Status::Unchanged {
                let mut written = open_raw(s.path(), out)?;
                check_standalone(&mut written, base, spec, &plan)?;
            }
            s
        }
        OutputFormat::Qcow2Standalone { compression } => {
            let s = stage_qcow2(
                base,
                &plan.patches,
                out,
                opts.cluster_size,
                compression,
                opts.overwrite,
            )?;
            if s.status() != Status::Unchanged {
                let mut written = open_qcow2(s.path(), out)?;
                check_standalone(&mut written, base, spec, &plan)?;
            }
            s
        }
    };
    let mut staged = staged;
    staged.set_sync(opts.sync);
    Ok(StagedOutput {
        staged,
        path: out.to_path_buf(),
        recipe: spec.clone(),
        output_format: format,
        targets: plan.targets,
        skipped: plan.skipped,
        start,
    })
}

/// An output written to its temporary file and checked (or found
/// unchanged), not yet in place: see [`stage_as`]. Dropping it removes the
/// temporary file and leaves the target alone.
#[derive(Debug)]
pub struct StagedOutput {
    staged: Staged,
    path: PathBuf,
    recipe: Spec,
    output_format: OutputFormat,
    targets: Vec<Target>,
    skipped: Vec<Skipped>,
    start: Instant,
}

impl StagedOutput {
    /// What will happen to the target on commit.
    pub fn status(&self) -> Status {
        self.staged.status()
    }

    /// Releases the temporary file's descriptor (see [`Staged::close`]).
    pub fn close(&mut self) {
        self.staged.close();
    }

    /// Flushes the output (unless `--no-sync`), moves it into place and
    /// reports it.
    pub fn commit(self) -> Result<Output> {
        let mut all = StagedOutput::commit_each(vec![self]);
        all.remove(0)
    }

    /// Commits many outputs with one flush for all of them
    /// ([`Staged::commit_each`]): one result per output, in order; one
    /// output's failure leaves the others placed.
    pub fn commit_each(staged: Vec<StagedOutput>) -> Vec<Result<Output>> {
        let (files, rest): (Vec<Staged>, Vec<_>) = staged
            .into_iter()
            .map(|s| {
                let StagedOutput {
                    staged,
                    path,
                    recipe,
                    output_format,
                    targets,
                    skipped,
                    start,
                } = s;
                (
                    staged,
                    (path, recipe, output_format, targets, skipped, start),
                )
            })
            .unzip();
        Staged::commit_each(files)
            .into_iter()
            .zip(rest)
            .map(
                |(r, (path, recipe, output_format, targets, skipped, start))| {
                    let (overlay, status) = r?;
                    Ok(Output {
                        path,
                        recipe,
                        status,
                        output_format,
                        overlay,
                        targets,
                        skipped,
                        seconds: start.elapsed().as_secs_f64(),
                    })
                },
            )
            .collect()
    }
}

/// Puts the overlay held by `file` (to be named `name`) on top of `base`,
/// runs [`check_top`], and takes it off again.
pub fn check_overlay(
    base: &mut Image,
    spec: &Spec,
    plan: &Plan,
    file: &Path,
    name: &Path,
    open: &OpenOptions,
) -> Result<()> {
    check_overlay_stored(base, spec, plan, file, name, open, &mut BlockStore::new())
}

/// [`check_overlay`], reading the base's bytes through `base_blocks`
/// (blocks of `base`'s guest, e.g. those the plan read): see
/// [`check_top_stored`].
pub fn check_overlay_stored(
    base: &mut Image,
    spec: &Spec,
    plan: &Plan,
    file: &Path,
    name: &Path,
    open: &OpenOptions,
    base_blocks: &mut BlockStore,
) -> Result<()> {
    base.push_staged(file, name, open)?;
    let result = check_top_stored(base, spec, plan, base_blocks);
    base.pop_top();
    result
}

/// The post-write check, with the written overlay on top of `image`: the
/// guest reads exactly as the overlay's backing chain with `plan`'s patches
/// applied ([`crate::verify::differences`] is empty), and each target's prediction
/// computed from the written bytes equals the plan's. Fails with
/// [`Error::Refused`] naming the first difference.
pub fn check_top(image: &mut Image, spec: &Spec, plan: &Plan) -> Result<()> {
    check_top_stored(image, spec, plan, &mut BlockStore::new())
}

/// [`check_top`], reading the backing chain's bytes through `below_blocks`
/// (blocks of the guest below the top, e.g. those the plan read of the
/// base). The top image's own bytes are read from its file, each once
/// ([`TopView`]).
pub fn check_top_stored(
    image: &mut Image,
    spec: &Spec,
    plan: &Plan,
    below_blocks: &mut BlockStore,
) -> Result<()> {
    let name = image.path().display().to_string();
    let fail = |why: String| {
        Error::Refused(format!(
            "the written overlay {name} failed its check: {why}"
        ))
    };
    let mut top_blocks = BlockStore::new();
    if let Some(r) =
        differences_stored(image, &plan.patches, &mut top_blocks, below_blocks)?.first()
    {
        return Err(fail(format!(
            "guest bytes {}..{} do not read as the plan says",
            r.offset,
            r.end()
        )));
    }
    check_predictions(
        &mut TopView::new(image, &mut top_blocks, below_blocks),
        spec,
        plan,
        &fail,
    )
}

/// The post-write check of a standalone output, `written` opened on its
/// own: it reads exactly as `base` with `plan`'s patches applied
/// ([`first_difference`]), and each target's prediction computed from the
/// written bytes equals the plan's. Fails with [`Error::Refused`] naming
/// the first difference.
pub fn check_standalone(
    written: &mut Image,
    base: &mut Image,
    spec: &Spec,
    plan: &Plan,
) -> Result<()> {
    let name = written.path().display().to_string();
    let fail =
        |why: String| Error::Refused(format!("the written image {name} failed its check: {why}"));
    if let Some(at) = first_difference(written, base, &plan.patches)? {
        return Err(fail(format!(
            "guest byte {at} does not read as the base with the plan's changes"
        )));
    }
    check_predictions(written, spec, plan, &fail)
}

/// Each target's prediction, computed again from `image`, equals the plan's.
fn check_predictions(
    image: &mut dyn ReadAt,
    spec: &Spec,
    plan: &Plan,
    fail: &dyn Fn(String) -> Error,
) -> Result<()> {
    for t in &plan.targets {
        let now = spec.predict(t, image)?;
        if now != t.prediction {
            let what = t
                .partition
                .as_ref()
                .map_or("the disk".to_string(), |p| p.describe());
            return Err(fail(format!(
                "{what} does not behave as predicted (predicted {}; the written bytes give {})",
                t.prediction.one_line(),
                now.one_line()
            )));
        }
    }
    Ok(())
}

/// The library's façade: one overlay holding one recipe's damage, from
/// paths.
///
/// ```no_run
/// use qfault::apply::Inject;
/// use qfault::recipe::Spec;
///
/// let report = Inject::new("disk.qcow2", Spec::parse("ntfs-boot --partition 2")?, "broken.qcow2")
///     .run()?;
/// for t in &report.output.targets {
///     println!("{:?}: {:?}", t.partition, t.prediction.outcomes);
/// }
/// # Ok::<(), qfault::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Inject {
    base: PathBuf,
    output: PathBuf,
    spec: Spec,
    overlay: OverlayOptions,
    format: OutputFormat,
    open: OpenOptions,
}

/// What [`Inject::run`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InjectReport {
    /// The base's chain, top first.
    pub base_chain: Vec<LayerInfo>,
    /// The overlay.
    pub output: Output,
}

impl Inject {
    /// `spec`'s damage to `base`, as an overlay at `output` (64 KiB
    /// clusters, a relative backing name, not replacing a different file).
    pub fn new(base: impl Into<PathBuf>, spec: Spec, output: impl Into<PathBuf>) -> Self {
        Inject {
            base: base.into(),
            output: output.into(),
            spec,
            overlay: OverlayOptions::default(),
            format: OutputFormat::Overlay,
            open: OpenOptions::default(),
        }
    }

    /// Write a file of `format` instead of an overlay.
    pub fn output_format(mut self, format: OutputFormat) -> Self {
        self.format = format;
        self
    }

    /// The overlay's (or standalone qcow2's) cluster size (a power of two
    /// from 512 to 2 MiB).
    pub fn cluster_size(mut self, bytes: u64) -> Self {
        self.overlay.cluster_size = bytes;
        self
    }

    /// Store the base's absolute path instead of a relative one.
    pub fn absolute_backing(mut self, yes: bool) -> Self {
        self.overlay.backing_name = if yes {
            BackingName::Absolute
        } else {
            BackingName::Relative
        };
        self
    }

    /// Replace an existing output whose bytes differ.
    pub fn overwrite(mut self, yes: bool) -> Self {
        self.overlay.overwrite = yes;
        self
    }

    /// How the base and its chain are opened.
    pub fn open_options(mut self, opts: OpenOptions) -> Self {
        self.open = opts;
        self
    }

    /// Opens the base, plans, writes, checks and places the overlay.
    pub fn run(&self) -> Result<InjectReport> {
        let mut base = image::open(&self.base, &self.open)?;
        let output = apply_as(
            &mut base,
            &self.spec,
            &self.output,
            &self.overlay,
            self.format,
            &self.open,
        )?;
        Ok(InjectReport {
            base_chain: base.chain_info(),
            output,
        })
    }
}
