//! Helpers shared by subcommands: error rendering, exit codes, the shared
//! image options, verbosity (`-q`, `-v`) and progress bars.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use qfault::error::ErrorKind;
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

/// `outln!` for command output: writes a line to stdout through
/// [`out_line`], which ends the process cleanly when stdout is closed
/// instead of panicking.
macro_rules! outln {
    () => {
        $crate::cli::common::out_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::common::out_line(format_args!($($arg)*))
    };
}

/// Command output not written yet: [`out_line`] gathers lines here and
/// writes them in blocks of [`OUT_BLOCK`] bytes, as C's stdio does when
/// stdout is not a terminal (a terminal gets each line at once): `qfault
/// info` on a 1000-deep chain made one write(2) per line, 11,000 in all.
static PENDING_OUT: Mutex<Vec<u8>> = Mutex::new(Vec::new());
/// Bytes [`PENDING_OUT`] gathers before they are written.
const OUT_BLOCK: usize = 16 << 10;

/// Whether stdout is a terminal (asked once).
fn stdout_is_terminal() -> bool {
    use std::io::IsTerminal;
    static TERMINAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TERMINAL.get_or_init(|| std::io::stdout().is_terminal())
}

/// Writes one line to stdout (buffered, see [`PENDING_OUT`]; the command's
/// end calls [`flush_stdout`]); on failure see [`stdout_failed`].
pub fn out_line(args: std::fmt::Arguments) {
    let mut pending = PENDING_OUT.lock().unwrap_or_else(|p| p.into_inner());
    // Writing into a Vec fails only if a Display impl does.
    if let Err(e) = pending.write_fmt(args) {
        stdout_failed(e);
    }
    pending.push(b'\n');
    if pending.len() >= OUT_BLOCK || stdout_is_terminal() {
        if let Err(e) = write_out(&mut pending) {
            stdout_failed(e);
        }
    }
}

/// Writes `pending` to stdout, flushed, and empties it.
fn write_out(pending: &mut Vec<u8>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let written = out.write_all(pending).and_then(|()| out.flush());
    pending.clear();
    written
}

/// Writes the lines [`out_line`] gathered: before anything writes to
/// stdout other than through it, so the order stays.
pub fn write_pending_out() -> std::io::Result<()> {
    write_out(&mut PENDING_OUT.lock().unwrap_or_else(|p| p.into_inner()))
}

/// Flushes stdout at the end of a command; on failure see [`stdout_failed`].
pub fn flush_stdout() {
    if let Err(e) = write_pending_out() {
        stdout_failed(e);
    }
}

/// Ends the process when stdout cannot be written: any temporary file is
/// removed first; a closed pipe (EPIPE: the reader, such as `head`, has
/// all it wants) exits 0 without a word, any other error prints one error
/// line and exits 1.
pub fn stdout_failed(e: std::io::Error) -> ! {
    qfault::output::remove_live_temporaries();
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(EXIT_OK);
    }
    print_error_line(&format!("cannot write to standard output: {e}"));
    std::process::exit(EXIT_ERROR);
}

/// Prints `qfault: error: MESSAGE` on stderr; a stderr that cannot be
/// written is ignored (there is nowhere left to say it).
pub fn print_error_line(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "qfault: error: {message}");
}

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

/// Handles what clap returns instead of arguments: `--help` and
/// `--version` print as clap prints them (exit 0); a usage error becomes
/// one line, `qfault: error: WHAT; TIP (try 'qfault CMD --help')`, with
/// exit 2. Returns the exit code.
pub fn clap_exit(e: clap::Error) -> i32 {
    use clap::error::ErrorKind as K;
    match e.kind() {
        K::DisplayHelp | K::DisplayVersion => {
            let _ = e.print();
            flush_stdout();
            EXIT_OK
        }
        K::DisplayHelpOnMissingArgumentOrSubcommand => {
            // `qfault` or `qfault inject` alone: the help, on stderr, as a
            // usage error.
            let _ = write!(std::io::stderr().lock(), "{}", e.render());
            EXIT_USAGE
        }
        _ => {
            print_error_line(&clap_error_line(&e));
            EXIT_USAGE
        }
    }
}

/// A clap usage error in one line: its first line without clap's
/// `error: `, its tips, and where to read more.
pub fn clap_error_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("invalid arguments");
    let mut line = first.strip_prefix("error: ").unwrap_or(first).to_string();
    let mut usage = None;
    for l in lines {
        if let Some(tip) = l.strip_prefix("tip: ") {
            line += &format!("; {tip}");
        } else if let Some(u) = l.strip_prefix("Usage: ") {
            usage = Some(u.to_string());
        } else if !l.starts_with("For more information") {
            // The details under the first line (the missing arguments,
            // the possible values).
            line += &format!(" {l}");
        }
    }
    // The command path: from the usage line (`qfault inject zero [OPTIONS]
    // ...`) when clap gives one, else the subcommands named on the command line.
    let cmd: Vec<String> = match usage {
        Some(u) => u
            .split_whitespace()
            .take_while(|w| !w.starts_with(['[', '<', '-']))
            .map(String::from)
            .collect(),
        None => typed_subcommands(),
    };
    let cmd = if cmd.is_empty() {
        "qfault".to_string()
    } else {
        cmd.join(" ")
    };
    format!("{line} (try '{cmd} --help')")
}

/// `qfault` and the subcommands named on this process's command line, in
/// order (`qfault inject zero`), up to the first word that is not one.
fn typed_subcommands() -> Vec<String> {
    use clap::CommandFactory;
    let mut cmd = super::Cli::command();
    let mut path = vec!["qfault".to_string()];
    for arg in std::env::args_os().skip(1) {
        let Some(arg) = arg.to_str() else { break };
        let Some(sub) = cmd.find_subcommand(arg).cloned() else {
            break;
        };
        path.push(arg.to_string());
        cmd = sub;
    }
    path
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

/// Prints the backing chain as a flat table, one image per line, top
/// first, with its depth (0 = the top image; `backing file N` in `info`),
/// so a chain 1000 images deep stays readable (for `inspect` and reports).
pub fn print_chain(chain: &[qfault::image::LayerInfo]) {
    let width = chain.len().saturating_sub(1).to_string().len().max(5);
    outln!("{:>width$}  IMAGE", "DEPTH");
    for (depth, l) in chain.iter().enumerate() {
        let mut line = format!(
            "{depth:>width$}  {} ({}, {} virtual, file {}",
            l.path.display(),
            l.format.name(),
            human_size(l.virtual_size),
            human_size(l.file_size)
        );
        if let Some(cs) = l.cluster_size {
            line += &format!(", cluster {}", human_size(cs));
        }
        line.push(')');
        outln!("{line}");
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

/// File descriptors the kernel's table is sized for at start (see
/// [`reserve_fd_table`]): a chain of
/// [`DEFAULT_MAX_DEPTH`](qfault::image::DEFAULT_MAX_DEPTH) images and the
/// files written beside it.
const RESERVED_FDS: u64 = 2048;

/// Grows the kernel's file-descriptor table to [`RESERVED_FDS`] entries (or
/// the open-file limit) while the process has one thread: once a thread
/// shares the table (batch workers, export's writer thread), Linux waits
/// for an RCU grace period each time the table grows (`expand_fdtable`
/// calls `synchronize_rcu`), 10 ms or more each, which made opening a
/// 1000-deep chain 30 ms slower. Call it after [`raise_open_file_limit`]
/// and before any thread starts. The descriptor used is closed at once;
/// the table keeps its size.
pub fn reserve_fd_table() {
    // SAFETY: getrlimit writes the struct we pass; fcntl(F_DUPFD_CLOEXEC)
    // returns a new descriptor (the lowest free one at or above `top`,
    // never one already open), which we close.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        let top = RESERVED_FDS.min(lim.rlim_cur).saturating_sub(1);
        let Ok(top) = libc::c_int::try_from(top) else {
            return;
        };
        if top < 3 {
            return;
        }
        for fd in 0..3 {
            let d = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, top);
            if d >= 0 {
                libc::close(d);
                return;
            }
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
/// too), except `-` (standard output, which qfault never writes images to;
/// `./-` is a file) and exactly `json` or `human`, which is what qemu-img's habit
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
        } else if value == "-" {
            Some(
                "qfault does not write images to standard output (they are written atomically \
                 beside their name); to write a file named -, pass ./-"
                    .to_string(),
            )
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
