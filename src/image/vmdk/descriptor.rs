//! The VMDK text descriptor: `createType`, the extent lines, the parent
//! (`parentFileNameHint`) and the content IDs (`CID`, `parentCID`).
//!
//! Spec: VMware "Virtual Disk Format 5.0", "The Descriptor File" and
//! "Extent Descriptions". The text is read the way QEMU's `block/vmdk.c`
//! reads it, so that qfault and QEMU see the same disk: the text ends at the
//! first NUL byte; each line is scanned like QEMU's
//! `sscanf("%10s %ld %10s \"%511[^\n\r\"]\" %ld")`, whose white-space
//! directives also skip line ends (a blank line before an extent line makes
//! QEMU read that extent twice); keys are found by their first occurrence
//! anywhere in the text. Where QEMU silently drops a line that VMware reads
//! (`RDONLY`/`NOACCESS` extents, `ZERO` and raw-device extents), qfault
//! refuses rather than show a disk that one of them disagrees with.

use crate::error::{Error, Result};
use std::path::Path;

/// Most bytes of a descriptor QEMU reads (`vmdk_read_desc`: 1 MiB - 1).
pub const MAX_DESCRIPTOR: u64 = (1 << 20) - 1;
/// Bytes of the descriptor QEMU searches for the parent and the CIDs
/// (`DESC_SIZE`: 20 sectors).
pub const DESC_SIZE: usize = 20 * 512;
/// Where QEMU looks for the embedded descriptor of a sparse file (sector 1).
pub const EMBEDDED_DESC_OFFSET: u64 = 0x200;
/// Most extents a descriptor may name (qfault's bound: a 2 TiB disk split
/// into 2 GiB extents needs 1024).
pub const MAX_EXTENTS: usize = 4096;
/// Longest extent file name QEMU scans (`%511[…]`).
pub const MAX_NAME: usize = 511;
/// Longest `createType` value QEMU accepts (a 128-byte buffer).
const MAX_CREATE_TYPE: usize = 127;
/// Longest parent name QEMU accepts (`PATH_MAX - 1`).
const MAX_PARENT_NAME: usize = 4095;

/// Descriptor `createType` values QEMU opens from a descriptor file.
pub const DESCRIPTOR_CREATE_TYPES: [&str; 6] = [
    "monolithicFlat",
    "vmfs",
    "vmfsSparse",
    "seSparse",
    "twoGbMaxExtentSparse",
    "twoGbMaxExtentFlat",
];

/// How an extent stores its data ("Extent Descriptions": the type column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtentType {
    /// `FLAT` or `VMFS`: the guest bytes, in order, from a start offset.
    Flat,
    /// `SPARSE` or `VMFSSPARSE`: a sparse extent file (`KDMV` or `COWD`).
    Sparse,
}

/// One extent line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtentLine {
    /// Size in sectors (for sparse extents QEMU takes the extent header's).
    pub sectors: u64,
    /// The type as written (`FLAT`, `SPARSE`, `VMFS`, `VMFSSPARSE`).
    pub type_name: String,
    /// How the data is stored.
    pub kind: ExtentType,
    /// The extent file's name, relative to the descriptor's directory.
    pub file: String,
    /// Start of the data in a flat extent file, in sectors.
    pub flat_offset: u64,
}

/// The C-string view QEMU has of `bytes`: everything before the first NUL.
pub fn c_str(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(n) => &bytes[..n],
        None => bytes,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `createType`, found as QEMU's `vmdk_parse_description` finds it: the
/// first occurrence of the key, two characters skipped (`="`), up to `"`.
pub fn create_type(path: &Path, desc: &[u8]) -> Result<String> {
    let invalid = || Error::malformed(path, "invalid VMDK descriptor: no createType=\"…\"");
    let at = find(desc, b"createType").ok_or_else(invalid)?;
    let start = at + "createType".len() + 2;
    if start >= desc.len() {
        return Err(invalid());
    }
    let len = desc[start..]
        .iter()
        .position(|&b| b == b'"')
        .ok_or_else(invalid)?;
    if len > MAX_CREATE_TYPE {
        return Err(invalid());
    }
    Ok(String::from_utf8_lossy(&desc[start..start + len]).into_owned())
}

/// The parent's name (`parentFileNameHint="…"`) in the first [`DESC_SIZE`]
/// bytes `window` of the descriptor, as QEMU's `vmdk_parent_open` reads it;
/// `None` without the key or with an empty name.
pub fn parent_hint(path: &Path, window: &[u8]) -> Result<Option<String>> {
    let window = c_str(window);
    let Some(at) = find(window, b"parentFileNameHint") else {
        return Ok(None);
    };
    let start = at + "parentFileNameHint".len() + 2;
    let rest = window.get(start..).unwrap_or_default();
    let len = rest
        .iter()
        .position(|&b| b == b'"')
        .ok_or_else(|| Error::malformed(path, "parentFileNameHint has no closing quote"))?;
    if len > MAX_PARENT_NAME {
        return Err(Error::malformed(
            path,
            format!("parentFileNameHint is {len} bytes long (at most {MAX_PARENT_NAME})"),
        ));
    }
    if len == 0 {
        return Ok(None);
    }
    let name = std::str::from_utf8(&rest[..len])
        .map_err(|_| Error::unsupported(path, "parentFileNameHint is not UTF-8 text"))?;
    Ok(Some(name.to_string()))
}

/// A content ID (`key` = `CID` or `parentCID`) in the descriptor window, as
/// QEMU's `vmdk_read_cid` reads it (the first occurrence of the key, one
/// character skipped, hexadecimal digits); QEMU refuses to open an image
/// without both.
pub fn cid(path: &Path, window: &[u8], key: &str) -> Result<u32> {
    let window = c_str(window);
    let missing = || Error::malformed(path, format!("the descriptor has no {key}=… line"));
    let at = find(window, key.as_bytes()).ok_or_else(missing)?;
    let mut s = Scanner {
        b: window,
        p: at + key.len() + 1,
    };
    s.skip_ws();
    if s.b.get(s.p) == Some(&b'0') && matches!(s.b.get(s.p + 1), Some(b'x' | b'X')) {
        s.p += 2;
    }
    let digits = s.take_while(|c| c.is_ascii_hexdigit());
    if digits.is_empty() {
        return Err(missing());
    }
    // Like strtoul into a 32-bit value: the low bits.
    Ok(digits.iter().fold(0u32, |v, &c| {
        v.wrapping_mul(16)
            .wrapping_add((c as char).to_digit(16).unwrap_or(0))
    }))
}

/// A cursor over the descriptor, with the scanf conversions QEMU uses.
struct Scanner<'a> {
    b: &'a [u8],
    p: usize,
}

impl<'a> Scanner<'a> {
    /// C `isspace`.
    fn is_space(c: u8) -> bool {
        matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
    }

    fn skip_ws(&mut self) {
        while self.b.get(self.p).is_some_and(|&c| Self::is_space(c)) {
            self.p += 1;
        }
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.p;
        while self.b.get(self.p).is_some_and(|&c| f(c)) {
            self.p += 1;
        }
        &self.b[start..self.p]
    }

    /// `%Ns`: white space skipped, then 1 to `n` other characters.
    fn word(&mut self, n: usize) -> Option<&'a [u8]> {
        self.skip_ws();
        let start = self.p;
        while self.p - start < n && self.b.get(self.p).is_some_and(|&c| !Self::is_space(c)) {
            self.p += 1;
        }
        (self.p > start).then(|| &self.b[start..self.p])
    }

    /// `%ld`: white space skipped, an optional sign, decimal digits.
    /// `Some(None)`: the number does not fit in 64 bits.
    fn number(&mut self) -> Option<Option<i64>> {
        self.skip_ws();
        let start = self.p;
        let neg = match self.b.get(self.p) {
            Some(b'-') => {
                self.p += 1;
                true
            }
            Some(b'+') => {
                self.p += 1;
                false
            }
            _ => false,
        };
        let digits = self.take_while(|c| c.is_ascii_digit());
        if digits.is_empty() {
            self.p = start;
            return None;
        }
        let mut v: i64 = 0;
        for &d in digits {
            let step = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(i64::from(d - b'0')));
            match step {
                Some(n) => v = n,
                None => return Some(None),
            }
        }
        Some(Some(if neg { -v } else { v }))
    }

    /// A literal character.
    fn lit(&mut self, c: u8) -> bool {
        if self.b.get(self.p) == Some(&c) {
            self.p += 1;
            true
        } else {
            false
        }
    }
}

/// The fields one line yields, as QEMU's `sscanf` assigns them.
struct Scanned<'a> {
    matches: usize,
    access: &'a [u8],
    sectors: Option<i64>,
    type_name: &'a [u8],
    file: &'a [u8],
    offset: Option<i64>,
    /// The name reached the 511-character limit without its closing quote.
    long_name: bool,
}

/// Scans the text from `p` like `sscanf(p, "%10s %ld %10s \"%511[^\n\r\"]\" %ld")`.
fn scan<'a>(path: &Path, b: &'a [u8], p: usize) -> Result<Scanned<'a>> {
    let overflow =
        || Error::malformed(path, "an extent line holds a number that overflows 64 bits");
    let mut s = Scanner { b, p };
    let mut out = Scanned {
        matches: 0,
        access: &[],
        sectors: None,
        type_name: &[],
        file: &[],
        offset: None,
        long_name: false,
    };
    let Some(access) = s.word(10) else {
        return Ok(out);
    };
    out.access = access;
    out.matches = 1;
    match s.number() {
        None => return Ok(out),
        Some(None) => return Err(overflow()),
        Some(Some(n)) => out.sectors = Some(n),
    }
    out.matches = 2;
    let Some(t) = s.word(10) else {
        return Ok(out);
    };
    out.type_name = t;
    out.matches = 3;
    s.skip_ws();
    if !s.lit(b'"') {
        return Ok(out);
    }
    let start = s.p;
    while s.p - start < MAX_NAME
        && s.b
            .get(s.p)
            .is_some_and(|&c| !matches!(c, b'\n' | b'\r' | b'"'))
    {
        s.p += 1;
    }
    if s.p == start {
        return Ok(out);
    }
    out.file = &s.b[start..s.p];
    out.matches = 4;
    if !s.lit(b'"') {
        out.long_name = s.p - start == MAX_NAME;
        return Ok(out);
    }
    match s.number() {
        None => {}
        Some(None) => return Err(overflow()),
        Some(Some(n)) => {
            out.offset = Some(n);
            out.matches = 5;
        }
    }
    Ok(out)
}

/// The text of the line at `p`, for messages.
fn line_at(b: &[u8], p: usize) -> String {
    let end = b[p..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(b.len(), |n| p + n);
    let line = String::from_utf8_lossy(&b[p..end]);
    let line = line.trim_end_matches('\r');
    if line.chars().count() > 120 {
        format!("{}…", line.chars().take(120).collect::<String>())
    } else {
        line.to_string()
    }
}

/// The extent lines of the descriptor `desc` (already cut at its first NUL),
/// in order, as QEMU's `vmdk_parse_extents` finds them.
pub fn extents(path: &Path, desc: &[u8]) -> Result<Vec<ExtentLine>> {
    let mut out = Vec::new();
    let mut p = 0;
    while p < desc.len() {
        let sc = scan(path, desc, p)?;
        let line = || line_at(desc, p);
        let invalid = || Error::malformed(path, format!("invalid extent line: {}", line()));
        let next = desc[p..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(desc.len(), |n| p + n + 1);
        let known = matches!(
            sc.type_name,
            b"FLAT" | b"SPARSE" | b"VMFS" | b"VMFSSPARSE" | b"SESPARSE"
        );
        let vmware_access = matches!(sc.access, b"RW" | b"RDONLY" | b"NOACCESS");
        if sc.matches >= 3 && vmware_access && sc.sectors.is_some_and(|n| n > 0) {
            if sc.access != b"RW" || !known {
                // QEMU drops these lines (and ZERO, VMFSRDM, VMFSRAW…
                // extents) from the disk; VMware reads them.
                return Err(Error::unsupported(
                    path,
                    format!(
                        "extent line `{}`: QEMU skips this extent while VMware reads it, \
                         so the two disagree on the disk",
                        line()
                    ),
                ));
            }
            if sc.matches == 3 {
                return Err(Error::malformed(
                    path,
                    format!("extent line without a quoted file name: {}", line()),
                ));
            }
        }
        if sc.matches < 4 || sc.access != b"RW" {
            p = next;
            continue;
        }
        if sc.long_name {
            return Err(Error::malformed(
                path,
                format!("extent file name longer than {MAX_NAME} bytes: {}", line()),
            ));
        }
        let flat_offset = match sc.type_name {
            b"FLAT" => match sc.offset {
                Some(o) if sc.matches == 5 && o >= 0 => o as u64,
                _ => return Err(invalid()),
            },
            b"VMFS" if sc.matches == 4 => 0,
            b"VMFS" => return Err(invalid()),
            _ if sc.matches != 4 => return Err(invalid()),
            _ => 0,
        };
        let sectors = sc.sectors.unwrap_or(0);
        if sectors <= 0 || !known {
            p = next;
            continue;
        }
        if sc.type_name == b"SESPARSE" {
            return Err(Error::unsupported(
                path,
                "seSparse extents (ESXi space-efficient sparse), which qfault does not read",
            ));
        }
        let file = std::str::from_utf8(sc.file)
            .map_err(|_| {
                Error::unsupported(
                    path,
                    format!("extent file name is not UTF-8 text: {}", line()),
                )
            })?
            .to_string();
        let kind = match sc.type_name {
            b"FLAT" | b"VMFS" => ExtentType::Flat,
            _ => ExtentType::Sparse,
        };
        if out.len() >= MAX_EXTENTS {
            return Err(Error::unsupported(
                path,
                format!("the descriptor names more than {MAX_EXTENTS} extents"),
            ));
        }
        out.push(ExtentLine {
            sectors: sectors as u64,
            type_name: String::from_utf8_lossy(sc.type_name).into_owned(),
            kind,
            file,
            flat_offset,
        });
        p = next;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("d.vmdk")
    }

    #[test]
    fn qemu_made_descriptor() {
        let d = b"# Disk DescriptorFile\nversion=1\nCID=52482a67\nparentCID=ffffffff\n\
createType=\"twoGbMaxExtentFlat\"\n\n# Extent description\n\
RW 4194304 FLAT \"a-f001.vmdk\" 0\nRW 2048 FLAT \"a-f002.vmdk\" 0\n\n# The Disk Data Base\n#DDB\n";
        assert_eq!(create_type(p(), d).unwrap(), "twoGbMaxExtentFlat");
        assert_eq!(cid(p(), d, "CID").unwrap(), 0x5248_2a67);
        assert_eq!(cid(p(), d, "parentCID").unwrap(), 0xffff_ffff);
        assert_eq!(parent_hint(p(), d).unwrap(), None);
        let e = extents(p(), d).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].sectors, 4_194_304);
        assert_eq!(e[1].file, "a-f002.vmdk");
        assert_eq!(e[1].kind, ExtentType::Flat);
    }

    #[test]
    fn qemu_quirks_are_kept() {
        // A blank line before an extent line: QEMU's sscanf skips the line
        // end and reads that extent twice.
        let d = b"createType=\"monolithicFlat\"\n\nRW 8 FLAT \"f\" 0\n";
        assert_eq!(extents(p(), d).unwrap().len(), 2);
        // The offset of a flat extent is required; a sparse one has none.
        assert!(extents(p(), b"RW 8 FLAT \"f\"\n").is_err());
        assert!(extents(p(), b"RW 8 SPARSE \"f\" 3\n").is_err());
        assert!(extents(p(), b"RW -8 FLAT \"f\" -1\n").is_err());
        // Non-extent lines are skipped.
        assert!(extents(p(), b"ddb.geometry = \"1\"\nRW x\n")
            .unwrap()
            .is_empty());
        assert!(parent_hint(p(), b"parentFileNameHint=\"x").is_err());
        assert_eq!(
            parent_hint(p(), b"parentFileNameHint=\"../b.vmdk\"\n").unwrap(),
            Some("../b.vmdk".into())
        );
        assert!(cid(p(), b"version=1\n", "CID").is_err());
    }

    #[test]
    fn lines_qemu_and_vmware_disagree_on_are_refused() {
        for d in [
            b"RDONLY 8 FLAT \"f\" 0\n".as_slice(),
            b"NOACCESS 8 SPARSE \"f\"\n",
            b"RW 8 ZERO\n",
            b"RW 8 VMFSRDM \"f\"\n",
        ] {
            let err = extents(p(), d).unwrap_err();
            assert!(err.to_string().contains("disagree"), "{err}");
        }
        let err = extents(p(), b"RW 99999999999999999999 FLAT \"f\" 0\n").unwrap_err();
        assert!(err.to_string().contains("overflows"), "{err}");
        let long = format!("RW 8 SPARSE \"{}\"\n", "a".repeat(600));
        assert!(extents(p(), long.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("longer"));
        let many = "RW 1 FLAT \"f\" 0\n".repeat(MAX_EXTENTS + 1);
        assert!(extents(p(), many.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("more than"));
    }
}
