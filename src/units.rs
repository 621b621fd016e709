//! Byte counts as people write them: `4096`, `64K`, `1m`, `1.5G`, `1MiB`,
//! `8s`.
//!
//! The rules follow `qemu-img`'s (QEMU's `qemu_strtosz`), so a size that
//! works in `qemu-img create` works here: one suffix letter `K`, `M`, `G`,
//! `T`, `P`, `E` in either case is binary (1K = 1024), `B`/`b` is bytes, and
//! a decimal fraction is allowed when the result is a whole number of bytes
//! (`1.5M`). qfault adds `s`/`S` for 512-byte sectors and the IEC forms
//! `Ki`/`KiB`, `Mi`/`MiB`, ... (the same binary units). `KB`, `MB`, ... are
//! refused, as by `qemu-img`: they read as decimal units to some and binary
//! ones to others. Shared by the command line and by manifests (see
//! [`crate::batch`]).

use crate::error::{Error, Result};

/// Parses a byte count (see the module documentation for the rules).
/// Errors are [`Error::Usage`].
pub fn parse_bytes(text: &str) -> Result<u64> {
    let t = text.trim();
    let not_count = || {
        Error::Usage(format!(
            "'{text}' is not a byte count (e.g. 4096, 64K, 1m, 1.5G, 8s)"
        ))
    };
    let num_end = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, suffix) = t.split_at(num_end);
    let (whole, frac) = match num.split_once('.') {
        Some((w, f)) => (w, f),
        None => (num, ""),
    };
    if whole.is_empty() || (num.contains('.') && frac.is_empty()) || frac.contains('.') {
        return Err(not_count());
    }
    let mult: u64 = match suffix {
        "" | "B" | "b" => 1,
        "s" | "S" => 512,
        "K" | "k" | "Ki" | "KiB" => 1 << 10,
        "M" | "m" | "Mi" | "MiB" => 1 << 20,
        "G" | "g" | "Gi" | "GiB" => 1 << 30,
        "T" | "t" | "Ti" | "TiB" => 1 << 40,
        "P" | "p" | "Pi" | "PiB" => 1 << 50,
        "E" | "e" | "Ei" | "EiB" => 1 << 60,
        s if s.len() == 2 && s.to_ascii_uppercase().ends_with('B') => {
            return Err(Error::Usage(format!(
                "'{text}': '{s}' is ambiguous (1000 or 1024?) and qemu-img refuses it too; \
                 write {}{} for binary units or the number of bytes",
                num,
                &s[..1].to_ascii_uppercase()
            )))
        }
        _ => {
            return Err(Error::Usage(format!(
                "'{text}': unknown unit '{suffix}' (use K, M, G, T, P, E, s or B)"
            )))
        }
    };
    let too_large = || Error::Usage(format!("'{text}' is too large"));
    let whole: u64 = whole.parse().map_err(|_| too_large())?;
    let mut bytes = whole.checked_mul(mult).ok_or_else(too_large)?;
    if !frac.is_empty() {
        // Exact: frac / 10^digits of `mult` must be a whole number of bytes.
        if frac.len() > 18 {
            return Err(not_count());
        }
        let f: u128 = frac.parse().map_err(|_| not_count())?;
        let scale = 10u128.pow(frac.len() as u32);
        let part = f * u128::from(mult);
        if part % scale != 0 {
            return Err(Error::Usage(format!(
                "'{text}' is not a whole number of bytes"
            )));
        }
        let part = u64::try_from(part / scale).map_err(|_| too_large())?;
        bytes = bytes.checked_add(part).ok_or_else(too_large)?;
    }
    Ok(bytes)
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

    /// The same results as `qemu-img create -f raw F SIZE` (QEMU 10.0)
    /// gives, checked against the real tool in tests/cli_robustness.rs.
    #[test]
    fn suffixes_as_qemu_img_reads_them() {
        for (text, bytes) in [
            ("1k", 1 << 10),
            ("1K", 1 << 10),
            ("1m", 1 << 20),
            ("1M", 1 << 20),
            ("1g", 1 << 30),
            ("1T", 1 << 40),
            ("1b", 1),
            ("1B", 1),
            ("1.5M", 3 << 19),
            ("1Mi", 1 << 20),
            ("2Ki", 2048),
            ("1P", 1 << 50),
        ] {
            assert_eq!(parse_bytes(text).unwrap(), bytes, "{text}");
        }
        for bad in ["1KB", "1kb", "1MB", "1.", ".5K", "1.3b", "1..5M", "1X"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        let e = parse_bytes("1KB").unwrap_err().to_string();
        assert!(e.contains("ambiguous") && e.contains("1K"), "{e}");
    }
}
