//! How file paths appear in qfault's JSON (`docs/json.md`, "Paths").
//!
//! A Unix path is bytes and need not be UTF-8, but a JSON string is text. A
//! path field `KEY` is therefore written as a string with every byte
//! sequence that is not UTF-8 replaced by U+FFFD, and, only when that lost
//! something (the path is not valid UTF-8), a sibling `KEY_hex` holding the
//! path's exact bytes as lowercase hex (`bad\xffname.qcow2` gives
//! `"path": "bad\u{fffd}name.qcow2", "path_hex": "626164ff6e616d652e71636f7732"`).
//! A script uses `KEY_hex` when present (`bytes.fromhex`, `xxd -r -p`), else
//! `KEY`. Serializing a path this way never fails, where serde's own
//! `PathBuf` serialization fails on such paths.
//!
//! Each function here serializes one field name; it is used as
//! `#[serde(flatten, serialize_with = "crate::json_path::path")]` on a
//! `PathBuf` or `Option<PathBuf>` field named `path` (a missing optional
//! path is `null`, with no `_hex`).

use serde::ser::{SerializeMap, Serializer};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The path as text, invalid UTF-8 replaced by U+FFFD (the `KEY` field).
pub fn lossy(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The path's bytes as lowercase hex when it is not valid UTF-8 (the
/// `KEY_hex` field), `None` when `KEY` holds it exactly.
pub fn hex(path: &Path) -> Option<String> {
    if path.to_str().is_some() {
        return None;
    }
    Some(
        path.as_os_str()
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

/// A path field's value: a path, or an optional one.
pub trait PathField {
    /// The path, if any.
    fn path(&self) -> Option<&Path>;
}

impl PathField for PathBuf {
    fn path(&self) -> Option<&Path> {
        Some(self)
    }
}

impl PathField for Option<PathBuf> {
    fn path(&self) -> Option<&Path> {
        self.as_deref()
    }
}

/// Writes `key` (and `key_hex` when needed) into a flattened map.
fn entries<S: Serializer, P: PathField + ?Sized>(
    key: &'static str,
    hex_key: &'static str,
    value: &P,
    s: S,
) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(None)?;
    match value.path() {
        None => m.serialize_entry(key, &())?,
        Some(p) => {
            m.serialize_entry(key, &lossy(p))?;
            if let Some(h) = hex(p) {
                m.serialize_entry(hex_key, &h)?;
            }
        }
    }
    m.end()
}

macro_rules! path_keys {
    ($($key:ident),* $(,)?) => {$(
        #[doc = concat!("Serializes a path field named `", stringify!($key),
            "` (with `", stringify!($key), "_hex` when it is not UTF-8).")]
        pub fn $key<S: Serializer, P: PathField + ?Sized>(value: &P, s: S) -> Result<S::Ok, S::Error> {
            entries(stringify!($key), concat!(stringify!($key), "_hex"), value, s)
        }
    )*};
}

path_keys!(path, from, base, dir, top, output, manifest, file, tried);

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[derive(serde::Serialize)]
    struct T {
        #[serde(flatten, serialize_with = "path")]
        path: PathBuf,
        #[serde(flatten, serialize_with = "top")]
        top: Option<PathBuf>,
        n: u32,
    }

    #[test]
    fn utf8_paths_are_plain_strings_and_others_carry_hex() {
        let t = T {
            path: PathBuf::from("a/b.qcow2"),
            top: None,
            n: 1,
        };
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"path":"a/b.qcow2","top":null,"n":1}"#
        );
        let t = T {
            path: PathBuf::from(OsStr::from_bytes(b"bad\xffname")),
            top: Some(PathBuf::from(OsStr::from_bytes(b"\xfe"))),
            n: 2,
        };
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "{\"path\":\"bad\u{fffd}name\",\"path_hex\":\"626164ff6e616d65\",\
             \"top\":\"\u{fffd}\",\"top_hex\":\"fe\",\"n\":2}"
        );
    }
}
