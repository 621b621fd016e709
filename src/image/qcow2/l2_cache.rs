//! A bounded least-recently-used cache of L2 tables, keyed by file offset.

use std::collections::HashMap;
use std::rc::Rc;

/// Bytes of L2 tables a whole chain keeps in memory (split across its images).
pub const L2_CACHE_BYTES: u64 = 32 << 20;
/// Never keep more tables than this (eviction scans the map).
const MAX_TABLES: usize = 1024;
/// Tables of at most this many bytes (64 KiB clusters and smaller, QEMU's
/// default) are always cached, one at least, whatever the budget's share:
/// a chain of [`DEFAULT_MAX_DEPTH`](crate::image::DEFAULT_MAX_DEPTH) (1024)
/// such images keeps at most 64 MiB beyond [`L2_CACHE_BYTES`]. Bigger
/// tables are cached only within the share; with none, each lookup reads
/// its table and drops it, so memory stays bounded in deep chains of
/// 2 MiB-cluster images.
const ALWAYS_CACHED_TABLE_BYTES: u64 = 64 << 10;

/// L2 tables (as big-endian-decoded `u64` words) by file offset.
#[derive(Debug)]
pub struct L2Cache {
    tables: HashMap<u64, (Rc<[u64]>, u64)>,
    capacity: usize,
    tick: u64,
}

impl L2Cache {
    /// A cache of at most `budget` bytes of `cluster_size`-byte tables (at
    /// most 1024; at least one when tables are at most 64 KiB, else
    /// possibly none).
    pub fn new(cluster_size: u64, budget: u64) -> Self {
        L2Cache {
            tables: HashMap::new(),
            capacity: Self::tables_for(cluster_size, budget),
            tick: 0,
        }
    }

    /// Resizes the cache to `budget` bytes, evicting as needed.
    pub fn set_budget(&mut self, cluster_size: u64, budget: u64) {
        self.capacity = Self::tables_for(cluster_size, budget);
        while self.tables.len() > self.capacity {
            self.evict_one();
        }
    }

    fn tables_for(cluster_size: u64, budget: u64) -> usize {
        let floor = u64::from(cluster_size <= ALWAYS_CACHED_TABLE_BYTES);
        (budget / cluster_size.max(1)).clamp(floor, MAX_TABLES as u64) as usize
    }

    fn evict_one(&mut self) {
        if let Some(&victim) = self
            .tables
            .iter()
            .min_by_key(|(_, (_, used))| *used)
            .map(|(k, _)| k)
        {
            self.tables.remove(&victim);
        }
    }

    /// The table at `offset`, if cached (and marks it used).
    pub fn get(&mut self, offset: u64) -> Option<Rc<[u64]>> {
        self.tick += 1;
        let tick = self.tick;
        self.tables.get_mut(&offset).map(|(t, used)| {
            *used = tick;
            Rc::clone(t)
        })
    }

    /// Caches `table`, evicting the least recently used one when full.
    pub fn insert(&mut self, offset: u64, table: Rc<[u64]>) {
        if self.capacity == 0 {
            return;
        }
        if self.tables.len() >= self.capacity {
            self.evict_one();
        }
        self.tick += 1;
        self.tables.insert(offset, (table, self.tick));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used() {
        let mut c = L2Cache::new(1024, 4 * 1024); // four 1 KiB tables
        for k in 0..4 {
            c.insert(k, Rc::from(vec![k]));
        }
        assert!(c.get(0).is_some()); // 0 is now the most recent
        c.insert(99, Rc::from(vec![99]));
        assert!(c.get(1).is_none(), "1 was least recently used");
        assert!(c.get(0).is_some() && c.get(99).is_some());
    }

    #[test]
    fn small_tables_always_cached_big_ones_only_within_the_budget() {
        // 1024 images sharing 32 MiB: 32 KiB each.
        let share = L2_CACHE_BYTES / 1024;
        let mut small = L2Cache::new(64 << 10, share);
        small.insert(1, Rc::from(vec![1]));
        assert!(small.get(1).is_some(), "one 64 KiB table is kept");
        let mut big = L2Cache::new(2 << 20, share);
        big.insert(1, Rc::from(vec![1]));
        assert!(
            big.get(1).is_none(),
            "a 2 MiB table beyond the share is not kept"
        );
        let mut fits = L2Cache::new(2 << 20, L2_CACHE_BYTES);
        fits.insert(1, Rc::from(vec![1]));
        assert!(fits.get(1).is_some());
    }
}
