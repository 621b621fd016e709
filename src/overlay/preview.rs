//! A guest view with patches applied in memory: what an overlay will read as,
//! before (or without) writing it.

use super::Patch;
use crate::error::Result;
use crate::image::{check_range, ReadAt};
use std::borrow::Cow;

/// `inner` as it reads after `patches`, applied in order. The patches are
/// owned or borrowed (a chain previews many links over one list).
#[derive(Debug)]
pub struct Preview<'p, R> {
    inner: R,
    patches: Cow<'p, [Patch]>,
}

impl<'p, R: ReadAt> Preview<'p, R> {
    /// Applies `patches` (in order) on top of `inner`.
    pub fn new(inner: R, patches: impl Into<Cow<'p, [Patch]>>) -> Self {
        Preview {
            inner,
            patches: patches.into(),
        }
    }
}

impl<R: ReadAt> ReadAt for Preview<'_, R> {
    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        check_range(offset, buf.len() as u64, self.size())?;
        self.inner.read_at(offset, buf)?;
        for p in self.patches.iter() {
            p.apply(offset, buf);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::MemDisk;

    #[test]
    fn reads_through_patches() {
        let mut p = Preview::new(
            MemDisk(vec![1; 16]),
            vec![Patch::Data {
                offset: 4,
                bytes: vec![7; 4],
            }],
        );
        let mut b = [0u8; 6];
        p.read_at(2, &mut b).unwrap();
        assert_eq!(b, [1, 1, 7, 7, 7, 7]);
    }
}
