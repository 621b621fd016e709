//! The library's error type: one enum, one clear line per failure.
//!
//! Every fallible public function returns [`Result`]. Each variant maps to a
//! process exit code through [`Error::exit_code`], so the CLI can stay thin.

use std::path::PathBuf;

/// Exit code for success.
pub const EXIT_OK: i32 = 0;
/// Exit code for an error (I/O, malformed or unsupported image, ...).
pub const EXIT_ERROR: i32 = 1;
/// Exit code for a usage error (bad arguments, range past the end of the disk).
pub const EXIT_USAGE: i32 = 2;
/// Exit code when a check refused the job (e.g. the damage would not be repairable).
pub const EXIT_REFUSED: i32 = 3;

/// Everything that can go wrong in qfault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system I/O error on a named file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file being read or written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The image violates its format's specification.
    #[error("{}: malformed image: {reason}", path.display())]
    Malformed {
        /// The offending image file.
        path: PathBuf,
        /// What is wrong, in one line.
        reason: String,
    },
    /// The image is valid but uses a feature qfault does not handle.
    #[error("{}: unsupported: {reason}", path.display())]
    Unsupported {
        /// The offending image file.
        path: PathBuf,
        /// Which feature, in one line.
        reason: String,
    },
    /// The backing chain cannot be followed (loop, too deep, protocol name, missing file).
    #[error("backing chain: {reason}")]
    Chain {
        /// What is wrong, in one line.
        reason: String,
    },
    /// A guest byte range lies (partly) past the end of the disk.
    #[error("range {offset}+{length} is past the end of the disk ({size} bytes)")]
    OutOfRange {
        /// Start of the requested range in bytes.
        offset: u64,
        /// Length of the requested range in bytes.
        length: u64,
        /// Size of the disk or partition in bytes.
        size: u64,
    },
    /// The partition table or a filesystem inside the guest is not what the job needs.
    #[error("{0}")]
    Guest(String),
    /// The caller asked for something that cannot be done as asked.
    #[error("{0}")]
    Usage(String),
    /// A safety check refused the job (e.g. the damage would not be repairable).
    #[error("refused: {0}")]
    Refused(String),
    /// Another error, said of a named thing (a manifest entry and field, a
    /// chain link); the exit code is the inner error's.
    #[error("{context}: {source}")]
    Context {
        /// What the error is about, e.g. `manifest.toml: image[3].offset`.
        context: String,
        /// The error itself.
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// The process exit code this error maps to (see the README's table).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::OutOfRange { .. } => EXIT_USAGE,
            Error::Refused(_) => EXIT_REFUSED,
            Error::Context { source, .. } => source.exit_code(),
            _ => EXIT_ERROR,
        }
    }

    /// Shorthand for an [`Error::Io`] on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// This error said of `context` (see [`Error::Context`]).
    pub fn context(self, context: impl Into<String>) -> Self {
        Error::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }

    /// Shorthand for an [`Error::Malformed`] on `path`.
    pub fn malformed(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Malformed {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for an [`Error::Unsupported`] on `path`.
    pub fn unsupported(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Unsupported {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// `Result` with qfault's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
