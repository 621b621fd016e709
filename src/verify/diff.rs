//! Which guest bytes an overlay changes relative to its backing chain, and
//! whether it holds exactly a plan's patches: one comparison serves
//! `verify` and the post-write check ([`crate::apply::check_top`]).
//!
//! Only ranges the top image provides itself (and, for a plan, the ranges
//! its patches cover) can differ; those are read through the whole chain
//! and through the chain below the top ([`Image::below_top`]) and compared
//! byte by byte.

use crate::error::Result;
use crate::image::{Image, ReadAt};
use crate::overlay::Patch;
use crate::recipe::Range;

/// Bytes compared per read.
const CHUNK: u64 = 1 << 20;

/// The guest ranges where `top` (an overlay on its backing chain) reads
/// differently from that chain, merged and in order.
pub fn changed_ranges(top: &mut Image) -> Result<Vec<Range>> {
    differences(top, &[])
}

/// The guest ranges where `top` reads differently from its backing chain
/// with `patches` applied (in order), merged and in order: empty when the
/// top image holds exactly those patches.
pub fn differences(top: &mut Image, patches: &[Patch]) -> Result<Vec<Range>> {
    let size = top.size();
    // What can differ: every extent the top provides, and every patch.
    let mut spans: Vec<(u64, u64)> = patches
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| (p.offset(), p.offset() + p.len()))
        .collect();
    let mut pos = 0;
    while pos < size {
        let (provided, len) = top.top_extent(pos, size - pos)?;
        if provided {
            spans.push((pos, pos + len));
        }
        pos += len.max(1);
    }
    spans.sort_unstable();
    let mut out: Vec<Range> = Vec::new();
    let mut a = Vec::new();
    let mut b = Vec::new();
    let mut done = 0u64;
    for (s, e) in spans {
        let mut at = s.max(done);
        while at < e {
            let n = (e - at).min(CHUNK) as usize;
            a.resize(n, 0);
            b.resize(n, 0);
            top.read_at(at, &mut a)?;
            top.below_top().read_at(at, &mut b)?;
            for p in patches {
                p.apply(at, &mut b);
            }
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                if x != y {
                    push_byte(&mut out, at + i as u64);
                }
            }
            at += n as u64;
        }
        done = done.max(e);
    }
    Ok(out)
}

/// The first guest byte at which `written` (a standalone image: the whole
/// guest in one file) reads differently from `base` with `patches` applied
/// (in order); `None` when it reads exactly so. Ranges where both read as
/// zeros without reading data, and no patch lies, are skipped; a size
/// difference is a difference at the smaller size.
pub fn first_difference(
    written: &mut Image,
    base: &mut Image,
    patches: &[Patch],
) -> Result<Option<u64>> {
    let size = base.size();
    if written.size() != size {
        return Ok(Some(size.min(written.size())));
    }
    let mut a = Vec::new();
    let mut b = Vec::new();
    let mut pos = 0;
    while pos < size {
        let w = written.extent(pos, CHUNK)?;
        let e = base.extent(pos, w.length)?;
        let n = e.length.min(w.length);
        let patched = patches
            .iter()
            .any(|p| !p.is_empty() && p.offset() < pos + n && p.offset() + p.len() > pos);
        if !(w.zero && e.zero && !patched) {
            a.resize(n as usize, 0);
            b.resize(n as usize, 0);
            written.read_at(pos, &mut a)?;
            base.read_at(pos, &mut b)?;
            for p in patches {
                p.apply(pos, &mut b);
            }
            if let Some(i) = a.iter().zip(&b).position(|(x, y)| x != y) {
                return Ok(Some(pos + i as u64));
            }
        }
        pos += n;
    }
    Ok(None)
}

fn push_byte(out: &mut Vec<Range>, at: u64) {
    match out.last_mut() {
        Some(r) if r.end() == at => r.length += 1,
        _ => out.push(Range {
            offset: at,
            length: 1,
        }),
    }
}
