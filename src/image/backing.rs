//! The policy for opening files named inside images.
//!
//! A backing file name is untrusted text: a guest that can write its own
//! disk can write a qcow2 header naming any file into it. Every file opened
//! because an image names it passes the gate here; the file the caller names
//! (the top image) does not, as in imago's implicit-open gate.
//!
//! - qfault opens plain files only: names QEMU would hand to a protocol
//!   driver (`nbd:`, `http://`, `file:`, `json:{…}`, …) are refused, never
//!   guessed at. A relative name is relative to the directory of the image
//!   that names it, as in QEMU.
//! - A backing file must have a recorded format (the backing-format header
//!   extension, which `qemu-img create` has required since QEMU 6.1); one
//!   without is refused unless [`BackingPolicy::probe`] allows probing its
//!   magic. Probing is the classic hole: a raw guest that writes a qcow2
//!   header into its first sector would be read as qcow2, and its backing
//!   name (an absolute host path, say) followed.
//! - With [`BackingPolicy::root`], every file an image names must resolve,
//!   symlinks and `..` resolved first, inside that directory tree.

use crate::error::{Error, Result};
use crate::image::Format;
use std::path::{Path, PathBuf};

/// What may be opened because an image names it (the gate every backing
/// file passes; the top image, named by the caller, is not gated).
///
/// The default is strict: a backing file must have a recorded format, and
/// files may be anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackingPolicy {
    /// Open a backing file with no recorded format by probing its magic
    /// (qcow2, else raw), as QEMU before 6.1 did. Off by default: a backing
    /// file without a recorded format is refused ([`Error::Refused`]).
    /// Only for images from a trusted source (CLI: `--probe-backing`).
    pub probe: bool,
    /// Confine every file an image names to this directory tree: the
    /// resolved path, with every symlink and `..` resolved
    /// ([`std::fs::canonicalize`]), must lie inside the resolved root, or it
    /// is refused ([`Error::Refused`]). The top image itself is not checked:
    /// the caller names it. `None` (the default): no confinement (CLI:
    /// `--backing-root DIR`).
    pub root: Option<PathBuf>,
}

impl BackingPolicy {
    /// The root resolved once for a whole chain (`None` without a root).
    pub(crate) fn resolved_root(&self) -> Result<Option<PathBuf>> {
        let Some(root) = &self.root else {
            return Ok(None);
        };
        let canon = std::fs::canonicalize(root)
            .map_err(|e| Error::Usage(format!("backing root {}: {e}", root.display())))?;
        if !canon.is_dir() {
            return Err(Error::Usage(format!(
                "backing root {} is not a directory",
                root.display()
            )));
        }
        Ok(Some(canon))
    }

    /// The format to open the backing file `name` of `referrer` with:
    /// `recorded` (the header's backing format) when there is one, `None`
    /// (probe it) when probing is allowed, otherwise a refusal that says how
    /// to record the format or allow probing.
    pub fn format(
        &self,
        name: &str,
        referrer: &Path,
        recorded: Option<&str>,
    ) -> Result<Option<Format>> {
        match recorded {
            Some(f) => Format::from_name(f).map(Some).ok_or_else(|| {
                Error::unsupported(
                    referrer,
                    format!(
                        "backing format '{f}' (qfault reads {}); convert the backing file \
                         with `qemu-img convert -O qcow2` and rebase onto it",
                        READABLE_FORMATS
                    ),
                )
            }),
            None if self.probe => Ok(None),
            None => Err(Error::Refused(format!(
                "{} names backing file '{}' without recording its format, and qfault does not \
                 probe backing files (a guest can write any header into its disk): record it \
                 with `qemu-img rebase -u -F FMT -b {} {}` (FMT raw, qcow2, …), or allow probing \
                 with --probe-backing",
                referrer.display(),
                shorten(name),
                shell_word(name),
                shell_word(&referrer.display().to_string()),
            ))),
        }
    }

    /// Checks that `path`, the backing file `name` of `referrer` resolved by
    /// [`resolve`], lies inside `root` (already resolved by
    /// [`BackingPolicy::resolved_root`]); returns the path to open: `path`
    /// itself without a root, its canonical form with one.
    pub(crate) fn confine(
        root: Option<&Path>,
        name: &str,
        path: &Path,
        referrer: &Path,
    ) -> Result<PathBuf> {
        let Some(root) = root else {
            return Ok(path.to_path_buf());
        };
        let canon = std::fs::canonicalize(path).map_err(|e| Error::Chain {
            reason: format!("cannot open backing file {}: {e}", path.display()),
        })?;
        if !canon.starts_with(root) {
            return Err(Error::Refused(format!(
                "{} names backing file '{}', which resolves to {}, outside the backing root {}",
                referrer.display(),
                shorten(name),
                canon.display(),
                root.display()
            )));
        }
        Ok(canon)
    }
}

/// `s` quoted for a POSIX shell when it holds anything but plain characters.
pub(crate) fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:=@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", shorten(s).replace('\'', r"'\''"))
    }
}

/// How every refusal of a protocol or JSON backing name ends; [`Error::kind`]
/// tells these (unsupported) from other chain errors (malformed) by it.
pub(crate) const PLAIN_FILES_ONLY: &str = "qfault opens plain files only";

/// The format names a recorded backing format may have, for messages.
const READABLE_FORMATS: &str = "raw, qcow2, vmdk, vhdx, vpc and vdi";

/// Resolves `name`, found in `referrer`'s header, to a path to open.
pub fn resolve(name: &str, referrer: &Path) -> Result<PathBuf> {
    if name.starts_with("json:") {
        return Err(Error::Chain {
            reason: format!(
                "{} names its backing file with QEMU JSON options ('{}'); {PLAIN_FILES_ONLY}",
                referrer.display(),
                shorten(name)
            ),
        });
    }
    if let Some(protocol) = protocol_prefix(name) {
        return Err(Error::Chain {
            reason: format!(
                "{} names its backing file through the '{protocol}:' protocol ('{}'); {PLAIN_FILES_ONLY}",
                referrer.display(),
                shorten(name)
            ),
        });
    }
    if name.contains('\0') {
        return Err(Error::Chain {
            reason: format!(
                "{}: backing file name contains a NUL byte",
                referrer.display()
            ),
        });
    }
    let path = Path::new(name);
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let dir = referrer.parent().unwrap_or(Path::new(""));
    Ok(dir.join(path))
}

/// The protocol of a name like QEMU's `path_has_protocol`: a `:` that comes
/// before any `/`, with a plausible protocol name in front of it.
fn protocol_prefix(name: &str) -> Option<&str> {
    let colon = name.find(':')?;
    if name.find('/').is_some_and(|slash| slash < colon) {
        return None;
    }
    let proto = &name[..colon];
    let plausible = !proto.is_empty()
        && proto
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | '_'));
    // Any colon before the first slash is a protocol to QEMU; report the
    // prefix when it looks like one, the whole head otherwise.
    Some(if plausible {
        proto
    } else {
        name.split(':').next().unwrap_or("")
    })
}

/// A name cut to a readable length for error messages.
fn shorten(name: &str) -> String {
    const MAX: usize = 80;
    if name.chars().count() <= MAX {
        name.to_string()
    } else {
        format!("{}…", name.chars().take(MAX).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_protocols_and_json() {
        let r = Path::new("/images/top.qcow2");
        for n in [
            "nbd:localhost:10809",
            "http://example/x.img",
            "file:base.img",
            "json:{\"driver\":\"raw\"}",
            "nbd+unix:///x?socket=/s",
        ] {
            let e = resolve(n, r).unwrap_err().to_string();
            assert!(e.contains("plain files only"), "{n}: {e}");
        }
    }

    #[test]
    fn a_backing_file_without_a_recorded_format_is_refused_unless_probing() {
        let r = Path::new("/images/top.qcow2");
        let strict = BackingPolicy::default();
        let e = strict.format("base img", r, None).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Refused, "{e}");
        let msg = e.to_string();
        for want in [
            "/images/top.qcow2",
            "'base img'",
            "qemu-img rebase -u -F FMT -b 'base img' /images/top.qcow2",
            "--probe-backing",
        ] {
            assert!(msg.contains(want), "{want}: {msg}");
        }
        assert!(!msg.contains('\n'));
        assert_eq!(
            strict.format("b", r, Some("raw")).unwrap(),
            Some(Format::Raw)
        );
        assert_eq!(
            strict.format("b", r, Some("qcow2")).unwrap(),
            Some(Format::Qcow2)
        );
        assert_eq!(
            strict.format("b", r, Some("vpc")).unwrap(),
            Some(Format::Vpc)
        );
        let e = strict.format("b", r, Some("qed")).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Unsupported, "{e}");
        let probing = BackingPolicy {
            probe: true,
            root: None,
        };
        assert_eq!(probing.format("b", r, None).unwrap(), None);
    }

    #[test]
    fn confinement_resolves_dots_and_symlinks_first() {
        let d = std::env::temp_dir().join(format!("qfault-gate-{}", std::process::id()));
        let root = d.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(d.join("outside.raw"), b"x").unwrap();
        std::fs::write(root.join("sub/in.raw"), b"x").unwrap();
        std::os::unix::fs::symlink(d.join("outside.raw"), root.join("link.raw")).unwrap();
        let policy = BackingPolicy {
            probe: false,
            root: Some(root.join("sub/..")),
        };
        let canon_root = policy.resolved_root().unwrap().unwrap();
        let top = root.join("top.qcow2");
        let at = |name: &str| {
            let p = resolve(name, &top).unwrap();
            BackingPolicy::confine(Some(&canon_root), name, &p, &top)
        };
        assert_eq!(
            at("sub/../sub/in.raw").unwrap(),
            canon_root.join("sub/in.raw")
        );
        for name in ["../outside.raw", "link.raw"] {
            let e = at(name).unwrap_err();
            assert_eq!(e.kind(), crate::error::ErrorKind::Refused, "{e}");
            assert!(e.to_string().contains("outside the backing root"), "{e}");
        }
        let missing = at("gone.raw").unwrap_err();
        assert_eq!(
            missing.kind(),
            crate::error::ErrorKind::Malformed,
            "{missing}"
        );
        let not_dir = BackingPolicy {
            probe: false,
            root: Some(root.join("sub/in.raw")),
        };
        assert_eq!(
            not_dir.resolved_root().unwrap_err().kind(),
            crate::error::ErrorKind::Usage
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn relative_to_the_referrer() {
        assert_eq!(
            resolve("base.raw", Path::new("/a/b/top.qcow2")).unwrap(),
            PathBuf::from("/a/b/base.raw")
        );
        assert_eq!(
            resolve("../x/base.raw", Path::new("top.qcow2")).unwrap(),
            PathBuf::from("../x/base.raw")
        );
        assert_eq!(
            resolve("/abs/base.raw", Path::new("/a/top.qcow2")).unwrap(),
            PathBuf::from("/abs/base.raw")
        );
        // A colon after a slash is a plain file name.
        assert_eq!(
            resolve("./odd:name", Path::new("/a/t")).unwrap(),
            PathBuf::from("/a/./odd:name")
        );
    }
}
