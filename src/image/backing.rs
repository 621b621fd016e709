//! The policy for opening files named inside images.
//!
//! A backing file name is untrusted text. qfault opens plain files only:
//! names QEMU would hand to a protocol driver (`nbd:`, `http://`, `file:`,
//! `json:{…}`, …) are refused, never guessed at. A relative name is relative
//! to the directory of the image that names it, as in QEMU.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// How every refusal of a protocol or JSON backing name ends; [`Error::kind`]
/// tells these (unsupported) from other chain errors (malformed) by it.
pub(crate) const PLAIN_FILES_ONLY: &str = "qfault opens plain files only";

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
