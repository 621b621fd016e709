//! The one write path, used by `inject`, `chain`, `batch` and the library:
//! plan → write → post-write check → place.
//!
//! [`Inject`] is the façade for library users: paths in, a typed report out.
//! [`check_top`] is the post-write check: with the written overlay on top
//! of the chain, the guest must read exactly as the base with the plan's
//! patches applied, and every target's prediction, computed again from the
//! written bytes, must equal the plan's. Only then is the overlay renamed
//! into place.

use crate::error::{Error, Result};
use crate::image::{self, Image, LayerInfo, OpenOptions};
use crate::overlay::{stage_overlay, BackingName, OverlayOptions, OverlayReport, Status};
use crate::recipe::{Plan, Skipped, Spec, Target};
use crate::verify::differences;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One overlay written (or found up to date): what every front-end reports
/// per output file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Output {
    /// The overlay's path.
    #[serde(flatten, serialize_with = "crate::json_path::path")]
    pub path: PathBuf,
    /// The recipe and its parameters (`{"name", "params"}`).
    pub recipe: Spec,
    /// What happened to the file.
    pub status: Status,
    /// The overlay file.
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
    let start = Instant::now();
    let plan = spec.plan(base)?;
    let dir = crate::output::parent_dir(out);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let staged = stage_overlay(base, &plan.patches, out, opts)?;
    check_overlay(base, spec, &plan, staged.path(), out, open)?;
    let (overlay, status) = staged.commit()?;
    Ok(Output {
        path: out.to_path_buf(),
        recipe: spec.clone(),
        status,
        overlay,
        targets: plan.targets,
        skipped: plan.skipped,
        seconds: start.elapsed().as_secs_f64(),
    })
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
    base.push_staged(file, name, open)?;
    let result = check_top(base, spec, plan);
    base.pop_top();
    result
}

/// The post-write check, with the written overlay on top of `image`: the
/// guest reads exactly as the overlay's backing chain with `plan`'s patches
/// applied ([`differences`] is empty), and each target's prediction
/// computed from the written bytes equals the plan's. Fails with
/// [`Error::Refused`] naming the first difference.
pub fn check_top(image: &mut Image, spec: &Spec, plan: &Plan) -> Result<()> {
    let name = image.path().display().to_string();
    let fail = |why: String| {
        Error::Refused(format!(
            "the written overlay {name} failed its check: {why}"
        ))
    };
    if let Some(r) = differences(image, &plan.patches)?.first() {
        return Err(fail(format!(
            "guest bytes {}..{} do not read as the plan says",
            r.offset,
            r.end()
        )));
    }
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
            open: OpenOptions::default(),
        }
    }

    /// The overlay's cluster size (a power of two from 512 to 2 MiB).
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
        let output = apply(
            &mut base,
            &self.spec,
            &self.output,
            &self.overlay,
            &self.open,
        )?;
        Ok(InjectReport {
            base_chain: base.chain_info(),
            output,
        })
    }
}
