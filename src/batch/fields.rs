//! Reading one manifest table field by field, so every error names the
//! entry and the field (`image[3].offset: …`) and unknown fields are refused.

use crate::error::{Error, Result};
use crate::units::parse_bytes;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use toml::{Table, Value};

/// The fields of one table (`image[3]`, `chain[0].links[2]`), consumed one
/// by one; [`Fields::finish`] refuses whatever was not consumed.
pub(crate) struct Fields<'a> {
    table: &'a Table,
    at: String,
    seen: BTreeSet<&'a str>,
}

impl<'a> Fields<'a> {
    /// The fields of `value`, which must be a table, at `at`.
    pub fn new(value: &'a Value, at: impl Into<String>) -> Result<Self> {
        let at = at.into();
        let table = value.as_table().ok_or_else(|| {
            Error::Usage(format!("expected a table, found {}", kind(value))).context(at.clone())
        })?;
        Ok(Fields {
            table,
            at,
            seen: BTreeSet::new(),
        })
    }

    /// The table itself.
    pub fn table(&self) -> &'a Table {
        self.table
    }

    /// Where this table is, e.g. `image[3]`.
    pub fn at(&self) -> &str {
        &self.at
    }

    /// An error about `key`.
    pub fn error(&self, key: &str, msg: impl Into<String>) -> Error {
        Error::Usage(msg.into()).context(format!("{}.{key}", self.at))
    }

    /// Whether `key` is present (without consuming it).
    pub fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    fn take(&mut self, key: &str) -> Option<&'a Value> {
        let (k, v) = self.table.get_key_value(key)?;
        self.seen.insert(k.as_str());
        Some(v)
    }

    /// An optional string.
    pub fn string(&mut self, key: &str) -> Result<Option<&'a str>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.error(key, format!("expected a string, found {}", kind(v)))),
        }
    }

    /// An optional path, resolved against `dir` when relative.
    pub fn path(&mut self, key: &str, dir: &Path) -> Result<Option<PathBuf>> {
        Ok(self.string(key)?.map(|s| {
            let p = Path::new(s);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                dir.join(p)
            }
        }))
    }

    /// A required path, resolved against `dir` when relative.
    pub fn required_path(&mut self, key: &str, dir: &Path) -> Result<PathBuf> {
        self.path(key, dir)?
            .ok_or_else(|| self.error(key, "missing (required)"))
    }

    /// An optional byte count: a non-negative integer or a string like `"1M"`.
    pub fn bytes(&mut self, key: &str) -> Result<Option<u64>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Integer(n)) => u64::try_from(*n)
                .map(Some)
                .map_err(|_| self.error(key, format!("{n} is negative"))),
            Some(Value::String(s)) => parse_bytes(s)
                .map(Some)
                .map_err(|e| super::within(&format!("{}.{key}", self.at), e)),
            Some(v) => Err(self.error(
                key,
                format!("expected a byte count (4096 or \"1M\"), found {}", kind(v)),
            )),
        }
    }

    /// An optional non-negative integer.
    pub fn integer(&mut self, key: &str) -> Result<Option<u64>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Integer(n)) => u64::try_from(*n)
                .map(Some)
                .map_err(|_| self.error(key, format!("{n} is negative"))),
            Some(v) => Err(self.error(key, format!("expected an integer, found {}", kind(v)))),
        }
    }

    /// An optional boolean.
    pub fn boolean(&mut self, key: &str) -> Result<Option<bool>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Boolean(b)) => Ok(Some(*b)),
            Some(v) => Err(self.error(key, format!("expected true or false, found {}", kind(v)))),
        }
    }

    /// An optional array.
    pub fn array(&mut self, key: &str) -> Result<Option<&'a [Value]>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(v) => Err(self.error(key, format!("expected an array, found {}", kind(v)))),
        }
    }

    /// An optional value of any type (for nested tables).
    pub fn value(&mut self, key: &str) -> Option<&'a Value> {
        self.take(key)
    }

    /// Refuses every field not consumed; `expected` lists the valid ones.
    pub fn finish(self, expected: &[&str]) -> Result<()> {
        match self.table.keys().find(|k| !self.seen.contains(k.as_str())) {
            None => Ok(()),
            Some(k) => Err(self.error(
                k,
                format!("unknown field (expected one of: {})", expected.join(", ")),
            )),
        }
    }
}

/// A TOML value's type, for error messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}
