//! File names of chain links: a pattern with one `{i}` (1-based link number),
//! optionally zero-padded as `{i:04}`.

use crate::error::{Error, Result};

/// The default link name pattern.
pub const DEFAULT_NAME_PATTERN: &str = "link-{i:04}.qcow2";

/// A parsed link name pattern such as `link-{i:04}.qcow2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern {
    prefix: String,
    width: usize,
    suffix: String,
}

impl NamePattern {
    /// Parses a pattern: exactly one `{i}` or `{i:0W}` (W digits, zero
    /// padded), no `/`, and not a name that could be `.` or `..`.
    pub fn parse(pattern: &str) -> Result<Self> {
        let bad = |why: &str| Error::Usage(format!("name pattern '{pattern}': {why}"));
        if pattern.contains('/') || pattern.contains('\0') {
            return Err(bad(
                "names a file inside the chain directory; no '/' allowed",
            ));
        }
        let open = pattern.find("{i").ok_or_else(|| {
            bad("needs one {i} (the 1-based link number), e.g. link-{i:04}.qcow2")
        })?;
        let close = pattern[open..]
            .find('}')
            .map(|c| open + c)
            .ok_or_else(|| bad("unclosed {i"))?;
        let spec = &pattern[open + 2..close];
        let width = match spec {
            "" => 0,
            s => s
                .strip_prefix(":0")
                .and_then(|w| w.parse::<usize>().ok())
                .filter(|w| *w <= 20)
                .ok_or_else(|| bad("write the number as {i} or {i:0W} with W at most 20"))?,
        };
        let (prefix, suffix) = (&pattern[..open], &pattern[close + 1..]);
        if prefix.contains(['{', '}']) || suffix.contains(['{', '}']) {
            return Err(bad("only one {i} is allowed"));
        }
        Ok(NamePattern {
            prefix: prefix.to_string(),
            width,
            suffix: suffix.to_string(),
        })
    }

    /// The file name of link `i` (1-based).
    pub fn name(&self, i: usize) -> String {
        format!("{}{:0w$}{}", self.prefix, i, self.suffix, w = self.width)
    }
}

impl Default for NamePattern {
    fn default() -> Self {
        NamePattern::parse(DEFAULT_NAME_PATTERN).expect("the default pattern is valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert_eq!(NamePattern::default().name(7), "link-0007.qcow2");
        assert_eq!(NamePattern::default().name(12345), "link-12345.qcow2");
        assert_eq!(NamePattern::parse("{i}").unwrap().name(3), "3");
        assert_eq!(
            NamePattern::parse("l{i:02}.img").unwrap().name(3),
            "l03.img"
        );
        for bad in ["x.qcow2", "a/{i}", "{i:4}", "{i}{i}", "{i", "{i:0x}"] {
            assert!(NamePattern::parse(bad).is_err(), "{bad}");
        }
    }
}
