//! The library's error type: one enum, one clear line per failure.
//!
//! Every fallible public function returns [`Result`]. [`Error::kind`] sorts
//! each error into a small, stable [`ErrorKind`] for callers that branch on
//! what went wrong (the CLI maps kinds to its exit codes); the variants
//! themselves may grow, so [`Error`] is `#[non_exhaustive]`.

use std::path::PathBuf;

/// What sort of failure an [`Error`] is, for callers that branch on it.
///
/// Serialized in kebab-case: `not-found`, `malformed-image`, `unsupported`,
/// `usage`, `refused`, `io`. More kinds may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// A named file does not exist.
    NotFound,
    /// An image, or the partition table or filesystem inside it, is broken
    /// or not what the job needs.
    #[serde(rename = "malformed-image")]
    Malformed,
    /// Valid, but uses something qfault does not handle (a feature, a
    /// backing file named through a protocol, ...).
    Unsupported,
    /// The caller asked for something that cannot be done as asked.
    Usage,
    /// A safety check said no (e.g. the damage would not be repairable).
    Refused,
    /// Any other operating-system I/O error.
    Io,
}

/// Everything that can go wrong in qfault.
///
/// Match on [`Error::kind`] rather than on the variants: new variants may
/// be added.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error on a named file (with a hint for the
    /// errors that have an obvious remedy: a full disk, the file size limit).
    #[error("{}: {source}{}", path.display(), io_hint(source))]
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
    /// A safety check refused the job (e.g. the damage would not be
    /// repairable, or the backing gate did not admit a file an image names:
    /// see [`BackingPolicy`](crate::image::BackingPolicy)).
    #[error("refused: {0}")]
    Refused(String),
    /// Another error, said of a named thing (a manifest entry and field, a
    /// chain link); its kind is the inner error's.
    #[error("{context}: {source}")]
    Context {
        /// What the error is about, e.g. `manifest.toml: image[3].offset`.
        context: String,
        /// The error itself.
        #[source]
        source: Box<Error>,
    },
}

/// What to do about an I/O error whose cause is plain, appended to its
/// message; empty for the others.
fn io_hint(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EFBIG) => {
            "; the file size limit (ulimit -f) or the filesystem's largest file size is reached"
        }
        Some(libc::ENOSPC) => "; the filesystem is full",
        Some(libc::EDQUOT) => "; the disk quota is exhausted",
        _ => "",
    }
}

impl Error {
    /// What sort of failure this is:
    ///
    /// | variant | kind |
    /// |---|---|
    /// | [`Io`](Error::Io) | [`NotFound`](ErrorKind::NotFound) when the OS says the file does not exist, else [`Io`](ErrorKind::Io) |
    /// | [`Malformed`](Error::Malformed) | [`Malformed`](ErrorKind::Malformed) |
    /// | [`Unsupported`](Error::Unsupported) | [`Unsupported`](ErrorKind::Unsupported) |
    /// | [`Chain`](Error::Chain) | [`Unsupported`](ErrorKind::Unsupported) when a backing file is named through a protocol or QEMU JSON options (which qfault refuses to open), else [`Malformed`](ErrorKind::Malformed) (loops, missing backing files, chains past the depth or memory limit) |
    /// | [`OutOfRange`](Error::OutOfRange), [`Usage`](Error::Usage) | [`Usage`](ErrorKind::Usage) |
    /// | [`Refused`](Error::Refused) | [`Refused`](ErrorKind::Refused) |
    /// | [`Guest`](Error::Guest) | [`Malformed`](ErrorKind::Malformed): the disk's contents are broken or not what the job needs; `Refused` is kept for qfault's own safety checks |
    /// | [`Context`](Error::Context) | the inner error's kind |
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            Error::Io { .. } => ErrorKind::Io,
            Error::Malformed { .. } | Error::Guest(_) => ErrorKind::Malformed,
            Error::Unsupported { .. } => ErrorKind::Unsupported,
            Error::Chain { reason }
                if reason.ends_with(crate::image::backing::PLAIN_FILES_ONLY) =>
            {
                ErrorKind::Unsupported
            }
            Error::Chain { .. } => ErrorKind::Malformed,
            Error::OutOfRange { .. } | Error::Usage(_) => ErrorKind::Usage,
            Error::Refused(_) => ErrorKind::Refused,
            Error::Context { source, .. } => source.kind(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn io_error(kind: io::ErrorKind) -> Error {
        Error::io("/nowhere/disk.qcow2", io::Error::from(kind))
    }

    #[test]
    fn kind_of_every_variant() {
        let cases = [
            (io_error(io::ErrorKind::NotFound), ErrorKind::NotFound),
            (io_error(io::ErrorKind::PermissionDenied), ErrorKind::Io),
            (io_error(io::ErrorKind::UnexpectedEof), ErrorKind::Io),
            (Error::malformed("a", "bad"), ErrorKind::Malformed),
            (Error::unsupported("a", "feature"), ErrorKind::Unsupported),
            (
                Error::Chain {
                    reason: "loop: a is its own backing file".into(),
                },
                ErrorKind::Malformed,
            ),
            (
                Error::OutOfRange {
                    offset: 10,
                    length: 10,
                    size: 15,
                },
                ErrorKind::Usage,
            ),
            (Error::Usage("no".into()), ErrorKind::Usage),
            (Error::Refused("no".into()), ErrorKind::Refused),
            (Error::Guest("no GPT header".into()), ErrorKind::Malformed),
        ];
        for (e, kind) in cases {
            assert_eq!(e.kind(), kind, "{e}");
        }
    }

    #[test]
    fn chain_refusing_a_protocol_name_is_unsupported() {
        let referrer = std::path::Path::new("top.qcow2");
        for name in [
            "nbd:localhost:10809",
            "http://example.invalid/d.img",
            "json:{}",
        ] {
            let e = crate::image::backing::resolve(name, referrer).unwrap_err();
            assert!(matches!(e, Error::Chain { .. }), "{e}");
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        }
        let e = crate::image::backing::resolve("a\0b", referrer).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Malformed, "{e}");
    }

    #[test]
    fn context_keeps_the_inner_kind() {
        let e = Error::Refused("would not be repairable".into())
            .context("image[2]")
            .context("manifest.toml");
        assert_eq!(e.kind(), ErrorKind::Refused);
        assert_eq!(
            io_error(io::ErrorKind::NotFound).context("base").kind(),
            ErrorKind::NotFound
        );
    }

    #[test]
    fn kinds_serialize_in_kebab_case() {
        let names: Vec<String> = [
            ErrorKind::NotFound,
            ErrorKind::Malformed,
            ErrorKind::Unsupported,
            ErrorKind::Usage,
            ErrorKind::Refused,
            ErrorKind::Io,
        ]
        .iter()
        .map(|k| serde_json::to_string(k).unwrap())
        .collect();
        assert_eq!(
            names,
            [
                "\"not-found\"",
                "\"malformed-image\"",
                "\"unsupported\"",
                "\"usage\"",
                "\"refused\"",
                "\"io\""
            ]
        );
    }
}
