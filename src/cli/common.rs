//! Helpers shared by subcommands: error rendering, exit codes, the shared
//! image options, verbosity (`-q`, `-v`) and progress bars.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use qfault::error::ErrorKind;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

/// Exit code for success.
pub const EXIT_OK: i32 = 0;
/// Exit code for an error (I/O, malformed or unsupported image, ...).
pub const EXIT_ERROR: i32 = 1;
/// Exit code for a usage error (bad arguments, range past the end of the disk).
pub const EXIT_USAGE: i32 = 2;
/// Exit code when a check refused the job (e.g. the damage would not be repairable).
pub const EXIT_REFUSED: i32 = 3;

/// The process exit code for an error of `kind` (the table in `AFTER_HELP`
/// and the README).
pub fn exit_code_for(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::Usage => EXIT_USAGE,
        ErrorKind::Refused => EXIT_REFUSED,
        // NotFound, Malformed, Unsupported, Io, and any kind added later.
        _ => EXIT_ERROR,
    }
}

/// The exit code for an error: by the kind of the first [`qfault::Error`]
/// in its chain, otherwise 1.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    e.chain()
        .find_map(|c| c.downcast_ref::<qfault::Error>())
        .map_or(EXIT_ERROR, |e| exit_code_for(e.kind()))
}

/// The error and its causes on one line, separated by ": ".
pub fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in e.chain() {
        let s = c.to_string();
        // thiserror messages often already embed their source; avoid repeats.
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}

/// Options every subcommand that reads an image accepts.
#[derive(Debug, clap::Args)]
pub struct ImageOpts {
    /// Force the top image's format instead of probing it by its magic
    /// (raw when no known format's magic is found; a format qfault recognises
    /// but cannot read, such as QED or Parallels, is refused with exit 1).
    #[arg(short = 'f', long = "format", value_name = "FORMAT")]
    pub format: Option<qfault::image::Format>,
    /// Most backing files to follow before giving up (loops are always refused).
    #[arg(long, value_name = "N", default_value_t = qfault::image::DEFAULT_MAX_DEPTH)]
    pub max_depth: usize,
    /// Read images even while another process (a running VM) writes them,
    /// like `qemu-img -U`; by default such an image is refused (exit 3).
    #[arg(short = 'U', long)]
    pub force_share: bool,
    #[command(flatten)]
    pub backing: BackingOpts,
}

/// The gate for files named inside images (see
/// [`qfault::image::BackingPolicy`]); every command that opens images has it.
#[derive(Debug, clap::Args)]
pub struct BackingOpts {
    /// Probe a backing file that has no recorded format (qcow2 magic, else
    /// raw) instead of refusing it (exit 3). Only for trusted images: a raw
    /// guest disk that holds a qcow2 header would be read as qcow2 and the
    /// backing file it names (any host file) followed.
    #[arg(long)]
    pub probe_backing: bool,
    /// Every file an image names (backing files, through the whole chain)
    /// must resolve, symlinks and `..` resolved, inside DIR; the image you
    /// name (the top of the chain) is not checked. Otherwise refused (exit 3).
    #[arg(long, value_name = "DIR")]
    pub backing_root: Option<std::path::PathBuf>,
}

impl BackingOpts {
    /// The library's backing policy for these arguments.
    pub fn policy(&self) -> qfault::image::BackingPolicy {
        qfault::image::BackingPolicy {
            probe: self.probe_backing,
            root: self.backing_root.clone(),
        }
    }
}

impl ImageOpts {
    /// The library's open options for these arguments.
    pub fn options(&self) -> qfault::image::OpenOptions {
        qfault::image::OpenOptions {
            format: self.format,
            max_depth: self.max_depth,
            force_share: self.force_share,
            backing: self.backing.policy(),
        }
    }

    /// Opens `path` and its backing chain read-only with these options.
    pub fn open(&self, path: &std::path::Path) -> anyhow::Result<qfault::image::Image> {
        Ok(qfault::image::open(path, &self.options())?)
    }
}

/// How much qfault says on stderr besides errors (`-q`, default, `-v`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// `-q`: no progress and no other chatter; errors only.
    Quiet = 0,
    /// Progress bars when stderr is a terminal.
    Normal = 1,
    /// `-v`: also every file opened, written and renamed (the library's
    /// `log::info!` lines).
    Verbose = 2,
}

static VERBOSITY: AtomicU8 = AtomicU8::new(Verbosity::Normal as u8);
/// The progress bar being drawn, if any: `-v` lines print above it.
static ACTIVE_BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Sets the verbosity for the whole process and, for `-v`, installs the
/// logger that prints the library's `log::info!` lines on stderr.
pub fn set_verbosity(v: Verbosity) {
    VERBOSITY.store(v as u8, Ordering::Relaxed);
    if v == Verbosity::Verbose && log::set_logger(&STDERR_LOG).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

/// The verbosity set by [`set_verbosity`].
pub fn verbosity() -> Verbosity {
    match VERBOSITY.load(Ordering::Relaxed) {
        0 => Verbosity::Quiet,
        1 => Verbosity::Normal,
        _ => Verbosity::Verbose,
    }
}

/// Prints a `-v` line (`qfault: …`) on stderr, above any progress bar.
pub fn verbose_line(line: &str) {
    if verbosity() < Verbosity::Verbose {
        return;
    }
    let bar = ACTIVE_BAR.lock().unwrap_or_else(|p| p.into_inner()).clone();
    match bar {
        Some(b) => b.suspend(|| eprintln!("qfault: {line}")),
        None => eprintln!("qfault: {line}"),
    }
}

/// The `log` sink for `-v`: one `qfault: …` line per record.
struct StderrLog;
static STDERR_LOG: StderrLog = StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Info && m.target().starts_with("qfault")
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            verbose_line(&r.args().to_string());
        }
    }
    fn flush(&self) {}
}

/// A progress bar on stderr: drawn only when stderr is a terminal and
/// not `-q`. A bar stays at its last state when done; a spinner is erased.
pub struct Progress {
    bar: ProgressBar,
    /// Erase the line when done (spinners) instead of leaving the last state.
    clear: bool,
}

impl Progress {
    /// A bar for `total` bytes.
    pub fn bytes(label: &str, total: u64) -> Self {
        Self::with_style(
            label,
            total,
            "{prefix}: [{bar:30}] {percent:>3}% {binary_bytes} of {binary_total_bytes}, {elapsed}, eta {eta}",
        )
    }

    /// A bar for `total` items (`unit` names them: "links", "entries").
    pub fn items(label: &str, total: u64, unit: &str) -> Self {
        Self::with_style(
            label,
            total,
            &format!(
                "{{prefix}}: [{{bar:30}}] {{pos}} of {{len}} {unit}, {{elapsed}}, eta {{eta}}"
            ),
        )
    }

    /// A spinner for work of unknown length ("inject: writing and checking").
    pub fn spinner(label: &str, message: &str) -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
            .with_style(
                ProgressStyle::with_template("{prefix}: {spinner} {msg} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            )
            .with_prefix(label.to_string())
            .with_message(message.to_string());
        let mut p = Self::new(bar);
        p.clear = true;
        if !p.bar.is_hidden() {
            p.bar
                .enable_steady_tick(std::time::Duration::from_millis(100));
        }
        p
    }

    fn with_style(label: &str, total: u64, template: &str) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden())
            .with_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            )
            .with_prefix(label.to_string());
        Self::new(bar)
    }

    /// Shows `bar` on stderr when it is a terminal and not `-q`.
    fn new(bar: ProgressBar) -> Self {
        use std::io::IsTerminal;
        if verbosity() > Verbosity::Quiet && std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            *ACTIVE_BAR.lock().unwrap_or_else(|p| p.into_inner()) = Some(bar.clone());
        }
        Progress { bar, clear: false }
    }

    /// Sets how much is done.
    pub fn set(&self, done: u64) {
        self.bar.set_position(done);
    }

    /// One more item done.
    pub fn inc(&self) {
        self.bar.inc(1);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.clear {
            self.bar.finish_and_clear();
        } else if !self.bar.is_hidden() {
            self.bar.abandon();
            // The bar's line stays; what follows starts on the next one.
            eprintln!();
        }
        *ACTIVE_BAR.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// Bytes in binary units with one decimal ("1.5 GiB").
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Prints the backing chain, one image per line (for `inspect` and reports).
pub fn print_chain(chain: &[qfault::image::LayerInfo]) {
    for (depth, l) in chain.iter().enumerate() {
        let indent = "  ".repeat(depth);
        let mut line = format!(
            "{indent}{} ({}, {} virtual, file {}",
            l.path.display(),
            l.format.name(),
            human_size(l.virtual_size),
            human_size(l.file_size)
        );
        if let Some(cs) = l.cluster_size {
            line += &format!(", cluster {}", human_size(cs));
        }
        line.push(')');
        println!("{line}");
    }
}

/// Parses a byte count (see [`qfault::units::parse_bytes`]), with the error
/// as text for clap.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    qfault::units::parse_bytes(text).map_err(|e| e.to_string())
}

/// Raises the open-file soft limit to the hard limit: every image of a
/// backing chain stays open, and chains can be 1000 images deep.
pub fn raise_open_file_limit() {
    // SAFETY: getrlimit/setrlimit read and write the struct we pass.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// A count of at least 1 (`--depth`, `--jobs`): 0 would do nothing and
/// exit 0, which hides a mistake.
pub fn at_least_one(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// The parser of output paths (`-o`, `--output`): any path (non-UTF-8
/// too), except exactly `json` or `human`, which is what qemu-img's habit
/// `--output=json` leaves there (qfault's `-o` is the file written): that
/// is refused with a hint; `./json` writes such a file.
#[derive(Debug, Clone, Copy)]
pub struct OutputPath;

impl clap::builder::TypedValueParser for OutputPath {
    type Value = std::path::PathBuf;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> std::result::Result<Self::Value, clap::Error> {
        let why = if value == "json" || value == "human" {
            Some(format!(
                "'{0}' looks like qemu-img's --output={0}: -o/--output names the file to write \
                 (use --json for JSON); to write a file named {0}, pass ./{0}",
                value.to_string_lossy()
            ))
        } else if value.is_empty() {
            Some("the path is empty".to_string())
        } else {
            None
        };
        match why {
            None => Ok(std::path::PathBuf::from(value)),
            Some(why) => {
                let name = arg.map_or_else(|| "-o".to_string(), |a| a.to_string());
                Err(clap::Error::raw(
                    clap::error::ErrorKind::ValueValidation,
                    format!("invalid value for {name}: {why}\n"),
                )
                .with_cmd(cmd))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_by_kind() {
        assert_eq!(exit_code_for(ErrorKind::Usage), EXIT_USAGE);
        assert_eq!(exit_code_for(ErrorKind::Refused), EXIT_REFUSED);
        for k in [
            ErrorKind::NotFound,
            ErrorKind::Malformed,
            ErrorKind::Unsupported,
            ErrorKind::Io,
        ] {
            assert_eq!(exit_code_for(k), EXIT_ERROR, "{k:?}");
        }
    }

    #[test]
    fn exit_code_looks_through_anyhow_context() {
        let e = anyhow::Error::new(qfault::Error::Refused("no".into()).context("image[1]"))
            .context("3 entries failed; the first");
        assert_eq!(exit_code(&e), EXIT_REFUSED);
        assert_eq!(exit_code(&anyhow::anyhow!("not qfault's")), EXIT_ERROR);
    }
}
