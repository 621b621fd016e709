//! A bounded least-recently-used cache of L2 tables, keyed by file offset.

use std::collections::HashMap;
use std::rc::Rc;

/// Total bytes of L2 tables kept in memory per image.
pub const L2_CACHE_BYTES: u64 = 32 << 20;
/// Never keep more tables than this (eviction scans the map).
const MAX_TABLES: usize = 1024;
/// Always keep at least this many tables.
const MIN_TABLES: usize = 4;

/// L2 tables (as big-endian-decoded `u64` words) by file offset.
#[derive(Debug)]
pub struct L2Cache {
    tables: HashMap<u64, (Rc<[u64]>, u64)>,
    capacity: usize,
    tick: u64,
}

impl L2Cache {
    /// A cache sized for tables of `cluster_size` bytes.
    pub fn new(cluster_size: u64) -> Self {
        let capacity = (L2_CACHE_BYTES / cluster_size).clamp(MIN_TABLES as u64, MAX_TABLES as u64);
        L2Cache {
            tables: HashMap::new(),
            capacity: capacity as usize,
            tick: 0,
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
            if let Some(&victim) = self
                .tables
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k)
            {
                self.tables.remove(&victim);
            }
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
        let mut c = L2Cache::new(L2_CACHE_BYTES); // capacity clamps to MIN_TABLES
        for k in 0..MIN_TABLES as u64 {
            c.insert(k, Rc::from(vec![k]));
        }
        assert!(c.get(0).is_some()); // 0 is now the most recent
        c.insert(99, Rc::from(vec![99]));
        assert!(c.get(1).is_none(), "1 was least recently used");
        assert!(c.get(0).is_some() && c.get(99).is_some());
    }
}
