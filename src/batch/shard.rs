//! `--shard I/N`: a deterministic slice of a batch, so several machines can
//! share a manifest with no coordinator.

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// Slice `index` of `count` (0-based): entry `k` (in manifest order) belongs
/// to it when `k % count == index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This slice, from 0 to `count - 1`.
    pub index: usize,
    /// How many slices the manifest is cut into (at least 1).
    pub count: usize,
}

impl Shard {
    /// The whole batch (`0/1`).
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Slice `index` of `count`; a usage error unless `index < count`.
    pub fn new(index: usize, count: usize) -> Result<Self> {
        if count == 0 || index >= count {
            return Err(Error::Usage(format!(
                "shard {index}/{count}: expected I/N with 0 <= I < N"
            )));
        }
        Ok(Shard { index, count })
    }

    /// Whether entry `k` (0-based, manifest order) belongs to this slice.
    pub fn owns(&self, k: usize) -> bool {
        k % self.count == self.index
    }
}

impl Default for Shard {
    fn default() -> Self {
        Shard::ALL
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = Error;

    /// Parses `I/N`, e.g. `0/4`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::Usage(format!(
                "shard '{s}': expected I/N with 0 <= I < N, e.g. 0/4"
            ))
        };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let i = i.trim().parse().map_err(|_| bad())?;
        let n = n.trim().parse().map_err(|_| bad())?;
        Shard::new(i, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_entries() {
        let shards: Vec<Shard> = (0..3).map(|i| format!("{i}/3").parse().unwrap()).collect();
        for k in 0..10 {
            assert_eq!(shards.iter().filter(|s| s.owns(k)).count(), 1);
        }
        for bad in ["1/1", "0/0", "x/2", "1", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
