//! The backing file name an overlay records: relative to the overlay's
//! directory (so base and overlay can move together) or absolute.

use crate::error::{Error, Result};
use crate::image::canonical_file;
use crate::image::qcow2::header::MAX_BACKING_NAME_LEN;
use crate::output::parent_dir;
use std::path::{Component, Path, PathBuf};

/// How the overlay names its backing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackingName {
    /// Relative to the overlay's directory (the default).
    #[default]
    Relative,
    /// The base's absolute, canonical path.
    Absolute,
}

/// The name to store in an overlay at `overlay` for the backing file `base`.
pub fn backing_name(base: &Path, overlay: &Path, how: BackingName) -> Result<String> {
    backing_name_canonical(canonical_file(base)?, overlay, how)
}

/// [`backing_name`] for a base already made canonical
/// ([`crate::image::Image::canonical_path`]).
pub(crate) fn backing_name_canonical(
    base_abs: PathBuf,
    overlay: &Path,
    how: BackingName,
) -> Result<String> {
    let name: PathBuf = match how {
        BackingName::Absolute => base_abs,
        BackingName::Relative => {
            let dir = parent_dir(overlay);
            let dir_abs = std::fs::canonicalize(&dir).map_err(|e| Error::io(&dir, e))?;
            let rel = relative_path(&dir_abs, &base_abs);
            // "a:b.raw" would read as protocol "a" to QEMU (and to qfault):
            // "./a:b.raw" is a plain file name.
            let first = rel.components().next().map(|c| c.as_os_str().to_owned());
            if first.is_some_and(|c| c.to_string_lossy().contains(':')) {
                Path::new(".").join(rel)
            } else {
                rel
            }
        }
    };
    let text = name.to_str().ok_or_else(|| {
        Error::Usage(format!(
            "the backing file path {} is not valid UTF-8",
            name.display()
        ))
    })?;
    if text.len() > MAX_BACKING_NAME_LEN as usize {
        return Err(Error::Usage(format!(
            "the backing file name is {} bytes long; qcow2 allows at most {MAX_BACKING_NAME_LEN}",
            text.len()
        )));
    }
    Ok(text.to_string())
}

/// `to` expressed relative to the directory `from` (both absolute, canonical).
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to[common..] {
        out.push(c.as_os_str());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        let r = |a: &str, b: &str| relative_path(Path::new(a), Path::new(b));
        assert_eq!(r("/a/b", "/a/b/base.raw"), PathBuf::from("base.raw"));
        assert_eq!(r("/a/b", "/a/c/base.raw"), PathBuf::from("../c/base.raw"));
        assert_eq!(
            r("/x/y/z", "/a/base.raw"),
            PathBuf::from("../../../a/base.raw")
        );
        assert_eq!(r("/", "/base.raw"), PathBuf::from("base.raw"));
    }
}
