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
use crate::image::{self, Image, LayerInfo, OpenOptions, ReadAt};
use crate::overlay::{stage_overlay, BackingName, OverlayOptions, OverlayReport, Status};
use crate::recipe::{Plan, Skipped, Spec, Target};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One overlay written (or found up to date): what every front-end reports
/// per output file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Output {
    /// The overlay's path.
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
    apply_plan(base, spec, plan, out, opts, open, start)
}

/// [`apply`] with the plan already made (on `base` as it reads now).
pub(crate) fn apply_plan(
    base: &mut Image,
    spec: &Spec,
    plan: Plan,
    out: &Path,
    opts: &OverlayOptions,
    open: &OpenOptions,
    start: Instant,
) -> Result<Output> {
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
/// applied (wherever the overlay provides data, and over every patch), and
/// each target's prediction computed from the written bytes equals the
/// plan's. Fails with [`Error::Refused`] naming the first difference.
pub fn check_top(image: &mut Image, spec: &Spec, plan: &Plan) -> Result<()> {
    let name = image.path().display().to_string();
    let fail = |why: String| {
        Error::Refused(format!(
            "the written overlay {name} failed its check: {why}"
        ))
    };
    // Ranges to compare: what the top provides, and every patch.
    let size = image.size();
    let mut ranges: Vec<(u64, u64)> = plan
        .patches
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| (p.offset(), p.offset() + p.len()))
        .collect();
    let mut pos = 0;
    while pos < size {
        let (provided, len) = image.top_extent(pos, size - pos)?;
        if provided {
            ranges.push((pos, pos + len));
        }
        pos += len.max(1);
    }
    ranges.sort_unstable();
    const CHUNK: u64 = 1 << 20;
    let mut top = vec![0u8; 0];
    let mut below = vec![0u8; 0];
    let mut done = 0u64;
    for (s, e) in ranges {
        let mut at = s.max(done);
        while at < e {
            let n = (e - at).min(CHUNK) as usize;
            top.resize(n, 0);
            below.resize(n, 0);
            image.read_at(at, &mut top)?;
            image.below_top().read_at(at, &mut below)?;
            for p in &plan.patches {
                p.apply(at, &mut below);
            }
            if let Some(i) = top.iter().zip(&below).position(|(a, b)| a != b) {
                return Err(fail(format!(
                    "guest byte {} reads {:#04x}, the plan says {:#04x}",
                    at + i as u64,
                    top[i],
                    below[i]
                )));
            }
            at += n as u64;
        }
        done = done.max(e);
    }
    for t in &plan.targets {
        let now = spec.predict(t, image)?;
        if now != t.prediction {
            let what = t
                .partition
                .as_ref()
                .map_or("the disk".to_string(), |p| p.describe());
            return Err(fail(format!(
                "{what} does not behave as predicted (predicted {}, the written bytes give {})",
                summary(&t.prediction),
                summary(&now)
            )));
        }
    }
    Ok(())
}

/// The outcomes in one line, for error messages.
fn summary(p: &crate::recipe::Prediction) -> String {
    let parts: Vec<String> = p
        .outcomes
        .iter()
        .map(|o| {
            format!(
                "{} {}: {} (exit {})",
                o.role.as_str(),
                o.tool,
                o.result.as_str().unwrap_or("nothing"),
                o.exit_code
            )
        })
        .collect();
    if parts.is_empty() {
        "no tool outcomes".into()
    } else {
        parts.join(", ")
    }
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
