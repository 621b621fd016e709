//! A bounded least-recently-used cache of L2 tables, keyed by file offset.

use std::collections::HashMap;
use std::rc::Rc;

/// Bytes of L2 tables a whole chain keeps in memory (split across its images).
pub const L2_CACHE_BYTES: u64 = 32 << 20;
/// Never keep more tables than this (eviction scans the map).
const MAX_TABLES: usize = 1024;
/// Always keep at least this many tables.
const MIN_TABLES: usize = 1;

/// L2 tables (as big-endian-decoded `u64` words) by file offset.
#[derive(Debug)]
pub struct L2Cache {
    tables: HashMap<u64, (Rc<[u64]>, u64)>,
    capacity: usize,
    tick: u64,
}

impl L2Cache {
    /// A cache of at most `budget` bytes of `cluster_size`-byte tables (at
    /// least one table, at most 1024).
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
        (budget / cluster_size).clamp(MIN_TABLES as u64, MAX_TABLES as u64) as usize
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
}
