//! Byte counts as people write them: `4096`, `64K`, `1MiB`, `8s`.
//!
//! Shared by the command line and by manifests (see [`crate::batch`]).

use crate::error::{Error, Result};

/// Parses a byte count: a plain number, or one with a binary suffix
/// (`K`, `M`, `G`, `T`, optionally followed by `iB`, e.g. `64K`, `1MiB`), or
/// `s`/`S` for 512-byte sectors. Errors are [`Error::Usage`].
pub fn parse_bytes(text: &str) -> Result<u64> {
    let t = text.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits_end);
    let n: u64 = num.parse().map_err(|_| {
        Error::Usage(format!(
            "'{text}' is not a byte count (e.g. 4096, 64K, 1M, 8s)"
        ))
    })?;
    let mult: u64 = match suffix {
        "" | "B" => 1,
        "s" | "S" => 512,
        "K" | "k" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "T" | "TiB" => 1 << 40,
        _ => {
            return Err(Error::Usage(format!(
                "'{text}': unknown unit '{suffix}' (use K, M, G, T or s)"
            )))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| Error::Usage(format!("'{text}' is too large")))
}

/// [`parse_bytes`] as a clap value parser (the error as text).
pub fn parse_bytes_arg(text: &str) -> std::result::Result<u64, String> {
    parse_bytes(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn byte_counts() {
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_bytes("64K").unwrap(), 65536);
        assert_eq!(parse_bytes("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_bytes("3s").unwrap(), 1536);
        assert!(parse_bytes("-1").is_err());
        assert!(parse_bytes("1X").is_err());
        assert!(parse_bytes("99999999999T").is_err());
    }
}
