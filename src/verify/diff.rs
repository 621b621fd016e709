//! Which guest bytes an overlay changes relative to its backing chain, and
//! whether it holds exactly a plan's patches: one comparison serves
//! `verify` and the post-write check ([`crate::apply::check_top`]).
//!
//! Only ranges the top image provides itself (and, for a plan, the ranges
//! its patches cover) can differ; those are read through the whole chain
//! and through the chain below the top ([`Image::below_top`]) and compared
//! byte by byte.

use crate::error::Result;
use crate::image::{check_range, BlockStore, Image, ReadAt};
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
    differences_stored(top, patches, &mut BlockStore::new(), &mut BlockStore::new())
}

/// [`differences`], reading the guest through `top_store` and the backing
/// chain through `below_store` (see [`TopView`]).
pub fn differences_stored(
    top: &mut Image,
    patches: &[Patch],
    top_store: &mut BlockStore,
    below_store: &mut BlockStore,
) -> Result<Vec<Range>> {
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
            top_store.read(top, at, &mut a)?;
            below_store.read(&mut top.below_top(), at, &mut b)?;
            for p in patches {
                p.apply(at, &mut b);
            }
            // Equal chunks (the usual case) cost one memcmp.
            if a != b {
                for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                    if x != y {
                        push_byte(&mut out, at + i as u64);
                    }
                }
            }
            at += n as u64;
        }
        done = done.max(e);
    }
    Ok(out)
}

/// The guest as `top` (an overlay on its backing chain) reads it, for the
/// post-write check: ranges the top image provides are read through the
/// whole chain by way of `top_store`, which holds only what this check read
/// (the overlay's own bytes come from its file, read once); the rest is read
/// from the backing chain by way of `below_store`, which may hold what the
/// plan read of the base before the overlay existed.
#[derive(Debug)]
pub struct TopView<'a> {
    top: &'a mut Image,
    top_store: &'a mut BlockStore,
    below_store: &'a mut BlockStore,
}

impl<'a> TopView<'a> {
    /// `top` read through `top_store` and `below_store`.
    pub fn new(
        top: &'a mut Image,
        top_store: &'a mut BlockStore,
        below_store: &'a mut BlockStore,
    ) -> Self {
        TopView {
            top,
            top_store,
            below_store,
        }
    }
}

impl ReadAt for TopView<'_> {
    fn size(&self) -> u64 {
        self.top.size()
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        check_range(offset, buf.len() as u64, self.size())?;
        let end = offset + buf.len() as u64;
        let mut pos = offset;
        while pos < end {
            let (provided, len) = self.top.top_extent(pos, end - pos)?;
            let stop = end.min(pos + len.max(1));
            let part = &mut buf[(pos - offset) as usize..(stop - offset) as usize];
            if provided {
                self.top_store.read(self.top, pos, part)?;
            } else {
                self.below_store
                    .read(&mut self.top.below_top(), pos, part)?;
            }
            pos = stop;
        }
        Ok(())
    }
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
