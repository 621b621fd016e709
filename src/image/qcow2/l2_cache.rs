//! A bounded least-recently-used cache of L2 table slices, keyed by file
//! offset.
//!
//! Like QEMU's `l2-cache-entry-size`, the unit cached is a slice of an L2
//! table ([`slice_bytes`]: 4 KiB, or the whole table when clusters are
//! smaller), not the whole table: a lookup reads only the slice holding
//! its entry, so a chain keeps about 4 KiB per image for the offsets it
//! reads, not a whole table (64 KiB, up to 2 MiB) per image.

use std::collections::{BTreeMap, HashMap};

/// Bytes of L2 slices a whole chain keeps in memory (split across its
/// images, each keeping at least one slice).
pub const L2_CACHE_BYTES: u64 = 16 << 20;
/// Bytes of an L2 slice at most: one page, 512 standard entries or 256
/// extended ones (a multiple of both entry sizes, so no entry straddles
/// two slices).
pub const L2_SLICE_BYTES: u64 = 4096;

/// Bytes of each slice of the L2 tables of an image with `cluster_size`-byte
/// clusters: [`L2_SLICE_BYTES`], or the whole table when it is smaller.
pub fn slice_bytes(cluster_size: u64) -> u64 {
    cluster_size.clamp(1, L2_SLICE_BYTES)
}

/// L2 slices (as big-endian-decoded `u64` words) by file offset.
#[derive(Debug)]
pub struct L2Cache {
    /// Slice by file offset, with the tick it was last used at.
    slices: HashMap<u64, (Box<[u64]>, u64)>,
    /// File offset by last-use tick: the first is the least recently used.
    by_use: BTreeMap<u64, u64>,
    capacity: usize,
    tick: u64,
}

impl L2Cache {
    /// A cache of at most `budget` bytes of `cluster_size`-byte tables' slices
    /// (at least one slice).
    pub fn new(cluster_size: u64, budget: u64) -> Self {
        L2Cache {
            slices: HashMap::new(),
            by_use: BTreeMap::new(),
            capacity: Self::slices_for(cluster_size, budget),
            tick: 0,
        }
    }

    /// Resizes the cache to `budget` bytes (at least one slice), evicting as
    /// needed.
    pub fn set_budget(&mut self, cluster_size: u64, budget: u64) {
        self.capacity = Self::slices_for(cluster_size, budget);
        while self.slices.len() > self.capacity {
            self.evict_one();
        }
    }

    fn slices_for(cluster_size: u64, budget: u64) -> usize {
        let n = budget / slice_bytes(cluster_size);
        usize::try_from(n).unwrap_or(usize::MAX).max(1)
    }

    fn evict_one(&mut self) {
        if let Some((_, victim)) = self.by_use.pop_first() {
            self.slices.remove(&victim);
        }
    }

    /// The words `at` and `at + 1` (the latter 0 past the slice's end) of the
    /// slice at `offset`, if cached (and marks it used).
    pub fn get(&mut self, offset: u64, at: usize) -> Option<(u64, u64)> {
        let (slice, used) = self.slices.get_mut(&offset)?;
        Self::touch(&mut self.by_use, &mut self.tick, used, offset);
        Some(words(slice, at))
    }

    /// Marks the slice at `offset` (last used at `used`) as the most
    /// recently used. A walk asks for the same slice many times in a row
    /// (one lookup per cluster or sub-cluster): when it is already the most
    /// recent, the use order is left as it is.
    fn touch(by_use: &mut BTreeMap<u64, u64>, tick: &mut u64, used: &mut u64, offset: u64) {
        if *used == *tick {
            return;
        }
        *tick += 1;
        by_use.remove(used);
        *used = *tick;
        by_use.insert(*tick, offset);
    }

    /// The whole slice at `offset`, if cached (and marks it used).
    pub fn slice(&mut self, offset: u64) -> Option<&[u64]> {
        let (slice, used) = self.slices.get_mut(&offset)?;
        Self::touch(&mut self.by_use, &mut self.tick, used, offset);
        Some(slice)
    }

    /// Caches `slice`, evicting the least recently used one when full, and
    /// returns its words `at` and `at + 1` as [`L2Cache::get`] does.
    pub fn insert(&mut self, offset: u64, slice: Box<[u64]>, at: usize) -> (u64, u64) {
        let found = words(&slice, at);
        if let Some((_, used)) = self.slices.remove(&offset) {
            self.by_use.remove(&used);
        }
        while self.slices.len() >= self.capacity {
            self.evict_one();
        }
        self.tick += 1;
        self.by_use.insert(self.tick, offset);
        self.slices.insert(offset, (slice, self.tick));
        found
    }

    /// Number of slices held.
    pub fn len(&self) -> usize {
        self.slices.len()
    }

    /// Whether no slice is held.
    pub fn is_empty(&self) -> bool {
        self.slices.is_empty()
    }
}

/// Words `at` and `at + 1` of `slice` (0 where past its end).
fn words(slice: &[u64], at: usize) -> (u64, u64) {
    let w = |i: usize| slice.get(i).copied().unwrap_or(0);
    (w(at), w(at + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(k: u64) -> Box<[u64]> {
        vec![k, k + 1].into_boxed_slice()
    }

    #[test]
    fn evicts_least_recently_used() {
        let mut c = L2Cache::new(64 << 10, 4 * L2_SLICE_BYTES); // four slices
        for k in 0..4 {
            c.insert(k, slice(k), 0);
        }
        assert_eq!(c.get(0, 0), Some((0, 1))); // 0 is now the most recent
        c.insert(99, slice(99), 1);
        assert!(c.get(1, 0).is_none(), "1 was least recently used");
        assert_eq!(c.get(0, 1), Some((1, 0)));
        assert_eq!(c.get(99, 0), Some((99, 100)));
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn asking_for_the_most_recent_slice_again_keeps_the_use_order() {
        let mut c = L2Cache::new(64 << 10, 2 * L2_SLICE_BYTES); // two slices
        c.insert(1, slice(1), 0);
        c.insert(2, slice(2), 0);
        for _ in 0..3 {
            assert!(c.get(2, 0).is_some()); // already the most recent
        }
        assert!(c.slice(1).is_some()); // now 1 is the most recent, 2 the least
        assert!(c.get(1, 0).is_some());
        c.insert(3, slice(3), 0);
        assert!(c.get(2, 0).is_none(), "2 was least recently used");
        assert!(c.get(1, 0).is_some() && c.get(3, 0).is_some());
    }

    #[test]
    fn one_slice_at_least_whatever_the_cluster_size() {
        // 1024 images sharing the budget: 16 KiB each.
        let share = L2_CACHE_BYTES / 1024;
        for cs in [512, 64 << 10, 2 << 20] {
            let mut c = L2Cache::new(cs, share.min(1));
            c.insert(1, slice(1), 0);
            c.insert(2, slice(2), 0);
            assert!(c.get(1, 0).is_none() && c.get(2, 0).is_some(), "{cs}");
            assert_eq!(c.len(), 1);
        }
        let mut c = L2Cache::new(2 << 20, share);
        for k in 0..10 {
            c.insert(k, slice(k), 0);
        }
        assert_eq!(c.len(), 4, "16 KiB holds four 4 KiB slices of 2 MiB tables");
    }

    #[test]
    fn shrinking_the_budget_evicts_the_oldest() {
        let mut c = L2Cache::new(64 << 10, 8 * L2_SLICE_BYTES);
        for k in 0..8 {
            c.insert(k, slice(k), 0);
        }
        c.get(0, 0);
        c.set_budget(64 << 10, 2 * L2_SLICE_BYTES);
        assert_eq!(c.len(), 2);
        assert!(c.get(0, 0).is_some() && c.get(7, 0).is_some());
    }

    #[test]
    fn slices_are_a_page_or_the_whole_smaller_table() {
        assert_eq!(slice_bytes(512), 512);
        assert_eq!(slice_bytes(4096), 4096);
        assert_eq!(slice_bytes(64 << 10), 4096);
        assert_eq!(slice_bytes(2 << 20), 4096);
    }
}
