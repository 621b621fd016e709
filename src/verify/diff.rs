//! Which guest bytes an overlay changes relative to its backing chain.
//!
//! Only ranges the top image provides itself can differ; those are read from
//! both views and compared byte by byte.

use crate::error::Result;
use crate::image::{Image, ReadAt};

/// Bytes compared per read.
const CHUNK: u64 = 1 << 20;

/// A half-open guest byte range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// The guest ranges where `top` (an overlay) reads differently from `base`
/// (its backing chain opened on its own), merged and in order.
///
/// Past the end of `base`, `base` is taken to read as zeros.
pub fn changed_ranges(top: &mut Image, base: &mut dyn ReadAt) -> Result<Vec<ByteRange>> {
    let size = top.size();
    let mut out: Vec<ByteRange> = Vec::new();
    let mut a = vec![0u8; CHUNK as usize];
    let mut b = vec![0u8; CHUNK as usize];
    let mut pos = 0;
    while pos < size {
        let (provided, mut len) = top.top_extent(pos, size - pos)?;
        if provided {
            len = len.min(CHUNK);
            let n = len as usize;
            top.read_at(pos, &mut a[..n])?;
            read_or_zero(base, pos, &mut b[..n])?;
            for (i, (x, y)) in a[..n].iter().zip(&b[..n]).enumerate() {
                if x != y {
                    push_byte(&mut out, pos + i as u64);
                }
            }
        }
        pos += len;
    }
    Ok(out)
}

/// Reads `buf.len()` bytes at `offset`; the part past the end reads as zeros.
fn read_or_zero(r: &mut dyn ReadAt, offset: u64, buf: &mut [u8]) -> Result<()> {
    let size = r.size();
    let inside = if offset >= size {
        0
    } else {
        (size - offset).min(buf.len() as u64) as usize
    };
    buf[inside..].fill(0);
    if inside > 0 {
        r.read_at(offset, &mut buf[..inside])?;
    }
    Ok(())
}

fn push_byte(out: &mut Vec<ByteRange>, at: u64) {
    match out.last_mut() {
        Some(r) if r.end == at => r.end += 1,
        _ => out.push(ByteRange {
            start: at,
            end: at + 1,
        }),
    }
}
