//! A unique index's keys: each key mapped to the row id that holds it.
//!
//! Every write copies the state (readers keep the copy they started with),
//! so copying an index must cost next to nothing; and a bulk load adds
//! millions of keys in one command, so adding a batch must cost little per
//! key. A hash trie (imbl) met the first need but not the second: it
//! allocated a node per few keys and copied every node a command touched,
//! 7 s of a single core for the 6 M keys of TPC-H's lineitem. Here an index
//! is a few immutable sorted runs, newest last, that copies share:
//!
//! ```text
//!   runs: [ 4 M keys ][ 1 M ][ 250 k ][ 1 ]     each sorted by key
//!          oldest                       newest  (a lookup asks newest first)
//! ```
//!
//! A batch is sorted (a bulk load's keys often arrive sorted, which the
//! sort notices), checked against the runs, and becomes a run of its own.
//! A run merges into the one before it while that one is at most
//! `RUN_MERGE_RATIO` times its size, so an index of n keys has O(log n)
//! runs and each key is copied O(log n) times over its life. A removed key
//! becomes a tombstone in a new run; it shadows the key in older runs until
//! a merge into the oldest run drops both.

use std::cmp::Ordering;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::catalog::RowId;

/// A unique index's key: its columns in Arrow's row format, which compares
/// as the values do. Keys of up to 16 bytes (a bigint and an int, a uuid)
/// are held inline, so that the millions of keys of a bulk load cost no
/// allocation each.
pub type IndexKey = SmallVec<[u8; 16]>;

/// A run merges into the run before it while that one holds at most this
/// many times as many entries.
const RUN_MERGE_RATIO: usize = 2;

/// The row id a tombstone carries: no row has it (row ids count up from 0).
const REMOVED: RowId = RowId::MAX;

/// Sorted by key, each key at most once.
type Run = Vec<(IndexKey, RowId)>;

#[derive(Debug, Clone, Default)]
pub struct IndexKeys {
    runs: Vec<Arc<Run>>,
}

impl IndexKeys {
    /// The row id holding `key`, if any.
    pub fn get(&self, key: &[u8]) -> Option<RowId> {
        self.runs
            .iter()
            .rev()
            .find_map(|run| {
                run.binary_search_by(|(k, _)| k.as_slice().cmp(key))
                    .ok()
                    .map(|at| run[at].1)
            })
            .filter(|&rowid| rowid != REMOVED)
    }

    /// Adds every entry, or none of them if a key is already in the index
    /// or twice in `entries`: then the error is the row id of the entry that
    /// repeats a key, the least such row id (the first in input order when
    /// row ids count up in input order).
    pub fn insert(&mut self, mut entries: Vec<(IndexKey, RowId)>) -> Result<(), RowId> {
        assert!(
            entries.iter().all(|&(_, rowid)| rowid != REMOVED),
            "no row has the tombstone's row id"
        );
        // By key, then row id: of equal keys the first keeps it, and every
        // later one repeats it.
        entries.sort_unstable();
        let repeats = entries
            .windows(2)
            .filter(|pair| pair[0].0 == pair[1].0)
            .map(|pair| pair[1].1);
        if let Some(rowid) = repeats.chain(self.taken(&entries)).min() {
            return Err(rowid);
        }
        self.push(entries);
        Ok(())
    }

    /// Takes keys out of the index. Each must be in it, once.
    pub fn remove(&mut self, keys: Vec<IndexKey>) {
        let mut tombstones: Run = keys.into_iter().map(|key| (key, REMOVED)).collect();
        tombstones.sort_unstable();
        debug_assert!(
            tombstones.iter().all(|(key, _)| self.get(key).is_some()),
            "only keys in the index are removed"
        );
        self.push(tombstones);
    }

    /// The row ids of those of `sorted` whose key the index holds.
    fn taken(&self, sorted: &[(IndexKey, RowId)]) -> Vec<RowId> {
        let (Some((low, _)), Some((high, _))) = (sorted.first(), sorted.last()) else {
            return Vec::new();
        };
        // Runs whose keys all lie outside the batch's range are never
        // searched: a load in key order (serial ids, time) searches none.
        let runs: Vec<&Run> = self
            .runs
            .iter()
            .rev()
            .map(|run| run.as_ref())
            .filter(|run| {
                run.first().is_some_and(|(first, _)| first <= high)
                    && run.last().is_some_and(|(last, _)| last >= low)
            })
            .collect();
        // A cursor per run: the batch is sorted, so each search starts where
        // the one before ended.
        let mut from = vec![0; runs.len()];
        let mut taken = Vec::new();
        for (key, rowid) in sorted {
            for (run, from) in runs.iter().zip(from.iter_mut()) {
                *from += run[*from..].partition_point(|(k, _)| k < key);
                if let Some((k, holder)) = run.get(*from)
                    && k == key
                {
                    // The newest run holding the key decides.
                    if *holder != REMOVED {
                        taken.push(*rowid);
                    }
                    break;
                }
            }
        }
        taken
    }

    fn push(&mut self, run: Run) {
        debug_assert!(
            run.windows(2).all(|pair| pair[0].0 < pair[1].0),
            "a run is sorted, each key once"
        );
        if run.is_empty() {
            return;
        }
        self.runs.push(Arc::new(run));
        while let [.., older, newer] = self.runs.as_slice()
            && older.len() <= RUN_MERGE_RATIO * newer.len()
        {
            let newer = self.runs.pop().expect("two runs");
            let older = self.runs.pop().expect("two runs");
            let merged = merge(owned(older), owned(newer), self.runs.is_empty());
            if !merged.is_empty() {
                self.runs.push(Arc::new(merged));
            }
        }
    }
}

/// A run's entries, taken from the `Arc` when no copy of the state shares it.
fn owned(run: Arc<Run>) -> Run {
    Arc::try_unwrap(run).unwrap_or_else(|shared| shared.as_ref().clone())
}

/// One run of two, the newer's entry winning for a key in both. Into the
/// oldest run, tombstones have nothing left to shadow and are dropped.
fn merge(older: Run, newer: Run, oldest: bool) -> Run {
    let mut merged = Vec::with_capacity(older.len() + newer.len());
    let mut older = older.into_iter().peekable();
    let mut newer = newer.into_iter().peekable();
    loop {
        let next = match (older.peek(), newer.peek()) {
            (None, None) => break,
            (Some(_), None) => older.next(),
            (None, Some(_)) => newer.next(),
            (Some((a, _)), Some((b, _))) => match a.cmp(b) {
                Ordering::Less => older.next(),
                Ordering::Greater => newer.next(),
                Ordering::Equal => {
                    older.next();
                    newer.next()
                }
            },
        };
        let (key, rowid) = next.expect("peeked");
        if !(oldest && rowid == REMOVED) {
            merged.push((key, rowid));
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> IndexKey {
        IndexKey::from_slice(&n.to_be_bytes())
    }

    fn entries(keys: impl IntoIterator<Item = u32>, first: RowId) -> Vec<(IndexKey, RowId)> {
        keys.into_iter()
            .zip(first..)
            .map(|(k, rowid)| (key(k), rowid))
            .collect()
    }

    #[test]
    fn finds_keys_across_runs_and_merges_them() {
        let mut index = IndexKeys::default();
        for k in 0..1000u32 {
            index
                .insert(entries([k * 7 % 1000], RowId::from(k)))
                .unwrap();
        }
        assert!(index.runs.len() <= 11, "{} runs", index.runs.len());
        for k in 0..1000u32 {
            assert_eq!(index.get(&key(k * 7 % 1000)), Some(RowId::from(k)));
        }
        assert_eq!(index.get(&key(1000)), None);
    }

    #[test]
    fn a_repeated_key_refuses_the_whole_batch() {
        let mut index = IndexKeys::default();
        index.insert(entries([10, 20, 30], 0)).unwrap();
        // 20 is taken; 5 repeats within the batch at row ids 4 and 6.
        assert_eq!(index.insert(entries([1, 5, 20, 5], 3)), Err(5));
        assert_eq!(index.insert(entries([1, 5, 2, 5], 3)), Err(6));
        assert_eq!(index.get(&key(1)), None, "nothing of a refused batch lands");
        index.insert(entries([1, 5], 3)).unwrap();
        assert_eq!(index.get(&key(5)), Some(4));
    }

    #[test]
    fn a_removed_key_is_free_until_added_again() {
        let mut index = IndexKeys::default();
        index.insert(entries(0..100, 0)).unwrap();
        index.remove(vec![key(42), key(7)]);
        assert_eq!(index.get(&key(42)), None);
        assert_eq!(index.get(&key(43)), Some(43));
        index.insert(entries([42], 100)).unwrap();
        assert_eq!(index.get(&key(42)), Some(100));
        assert_eq!(index.insert(entries([42], 101)), Err(101));
        // Merging everything into one run drops the tombstone and keeps the
        // newer entry.
        index.insert(entries(1000..1200, 200)).unwrap();
        assert_eq!(index.runs.len(), 1);
        assert_eq!(index.get(&key(42)), Some(100));
        assert_eq!(index.get(&key(7)), None);
        assert_eq!(index.runs[0].len(), 99 + 200);
    }

    #[test]
    fn a_copy_keeps_its_keys_while_the_original_changes() {
        let mut index = IndexKeys::default();
        index.insert(entries(0..10, 0)).unwrap();
        let copy = index.clone();
        index.remove(vec![key(3)]);
        index.insert(entries([3, 10], 10)).unwrap();
        assert_eq!(copy.get(&key(3)), Some(3));
        assert_eq!(copy.get(&key(10)), None);
        assert_eq!(index.get(&key(3)), Some(10));
    }
}
