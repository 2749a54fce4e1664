//! How many distinct values a column holds, estimated.
//!
//! The planner orders joins and sizes aggregations by the number of
//! distinct values in their key columns: the build side of a hash join
//! should be the smaller one, and `o_orderkey` joined to lineitem's
//! `l_orderkey` yields about four rows per order, not one per line item.
//! DataFusion assumes every value distinct when it is told nothing.
//!
//! Counting exactly would keep every value; a HyperLogLog sketch (Flajolet
//! et al., 2007) keeps `REGISTERS` bytes per column of a segment and
//! merges: a table's sketch is the register-wise maximum of its segments',
//! so a write that adds a segment costs one sketch, not a recount. With
//! 256 registers the standard error is 1.04 / √256 ≈ 6.5 %, plenty for
//! choosing a join order.

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::common::hash_utils::{HLL_RANDOM_STATE, create_hashes};

/// Registers per sketch; a power of two, indexed by a hash's top bits.
const REGISTERS: usize = 256;
const INDEX_BITS: u32 = REGISTERS.trailing_zeros();
/// Rows hashed at a time.
const HASH_CHUNK_ROWS: usize = 8 * 1024;

/// A HyperLogLog sketch of the values of one column.
#[derive(Debug, Clone)]
pub struct DistinctSketch {
    /// For each register, the most leading zeros (plus one) seen in the
    /// hash bits below the index, among the values that fell to it.
    registers: Box<[u8; REGISTERS]>,
}

impl Default for DistinctSketch {
    fn default() -> Self {
        Self {
            registers: Box::new([0; REGISTERS]),
        }
    }
}

impl DistinctSketch {
    /// The sketch of `column`'s non-null values, or `None` for a type
    /// DataFusion cannot hash.
    pub fn of(column: &ArrayRef) -> Option<Self> {
        let mut sketch = Self::default();
        // Hashed a slice at a time, into one small buffer: a buffer for all
        // of a segment's rows (a million in a bulk load's) was fresh memory
        // for each column, which the kernel had to zero first.
        let mut hashes = Vec::with_capacity(column.len().min(HASH_CHUNK_ROWS));
        let mut offset = 0;
        loop {
            let rows = (column.len() - offset).min(HASH_CHUNK_ROWS);
            let chunk = column.slice(offset, rows);
            hashes.clear();
            hashes.resize(rows, 0);
            create_hashes([&chunk], &HLL_RANDOM_STATE, &mut hashes).ok()?;
            match chunk.nulls() {
                Some(nulls) => nulls
                    .valid_indices()
                    .for_each(|i| sketch.insert_hash(hashes[i])),
                None => hashes.iter().for_each(|&h| sketch.insert_hash(h)),
            }
            offset += rows;
            if offset == column.len() {
                return Some(sketch);
            }
        }
    }

    /// The registers as text (two hex digits each), as a snapshot keeps
    /// them in a Parquet file's metadata.
    pub fn to_hex(&self) -> String {
        self.registers.iter().map(|r| format!("{r:02x}")).collect()
    }

    /// A sketch from [`DistinctSketch::to_hex`]'s text; `None` for text
    /// that is not one.
    pub fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 2 * REGISTERS {
            return None;
        }
        let mut sketch = Self::default();
        for (register, digits) in sketch.registers.iter_mut().zip(text.as_bytes().chunks(2)) {
            let value = u8::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()?;
            // A rank never passes the hash bits below the index, plus one.
            if u32::from(value) > u64::BITS - INDEX_BITS + 1 {
                return None;
            }
            *register = value;
        }
        Some(sketch)
    }

    fn insert_hash(&mut self, hash: u64) {
        let index = (hash >> (u64::BITS - INDEX_BITS)) as usize;
        // A sentinel bit below the remaining bits caps the rank, so an
        // all-zero remainder cannot count past the hash's width.
        let rest = (hash << INDEX_BITS) | (1 << (INDEX_BITS - 1));
        let rank = rest.leading_zeros() as u8 + 1;
        let register = &mut self.registers[index];
        *register = (*register).max(rank);
    }

    /// Adds `other`'s values to this sketch's.
    pub fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.registers.iter_mut().zip(other.registers.iter()) {
            *mine = (*mine).max(*theirs);
        }
    }

    /// The estimated number of distinct values.
    pub fn estimate(&self) -> usize {
        let m = REGISTERS as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = self.registers.iter().map(|&r| (-f64::from(r)).exp2()).sum();
        let raw = alpha * m * m / sum;
        let empty = self.registers.iter().filter(|&&r| r == 0).count();
        // Few values leave registers empty; counting those (linear
        // counting) is the better estimate there.
        let estimate = if raw <= 2.5 * m && empty > 0 {
            m * (m / empty as f64).ln()
        } else {
            raw
        };
        estimate.round() as usize
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};

    use super::*;

    fn within(estimate: usize, exact: usize, error: f64) -> bool {
        (estimate as f64 - exact as f64).abs() <= error * exact as f64
    }

    #[test]
    fn estimates_small_and_large_counts() {
        for exact in [1usize, 10, 100, 1_000, 100_000, 1_000_000] {
            let column: ArrayRef = Arc::new(Int64Array::from_iter_values(0..exact as i64));
            let estimate = DistinctSketch::of(&column).unwrap().estimate();
            // Four standard errors.
            assert!(within(estimate, exact, 0.26), "{estimate} for {exact}");
        }
    }

    #[test]
    fn repeats_and_nulls_do_not_count() {
        let values = (0..100_000).map(|i| (i % 3 != 0).then(|| format!("v{}", i % 500)));
        let column: ArrayRef = Arc::new(StringArray::from_iter(values));
        let estimate = DistinctSketch::of(&column).unwrap().estimate();
        assert!(within(estimate, 500, 0.26), "{estimate}");
        let empty: ArrayRef = Arc::new(Int64Array::from(vec![None, None]));
        assert_eq!(DistinctSketch::of(&empty).unwrap().estimate(), 0);
    }

    #[test]
    fn hashing_in_slices_sketches_what_hashing_at_once_does() {
        let values = (0..3 * HASH_CHUNK_ROWS + 17).map(|i| (i % 7 != 0).then(|| format!("v{i}")));
        let whole: ArrayRef = Arc::new(StringArray::from_iter(values));
        // A slice of a larger array too: its first row is not the array's.
        for column in [whole.clone(), whole.slice(5, 2 * HASH_CHUNK_ROWS + 3)] {
            let mut hashes = vec![0; column.len()];
            create_hashes([&column], &HLL_RANDOM_STATE, &mut hashes).unwrap();
            let mut at_once = DistinctSketch::default();
            let nulls = column.nulls().expect("every seventh value is null");
            nulls
                .valid_indices()
                .for_each(|i| at_once.insert_hash(hashes[i]));
            assert_eq!(
                DistinctSketch::of(&column).unwrap().to_hex(),
                at_once.to_hex()
            );
        }
    }

    #[test]
    fn sketches_read_back_from_their_text() {
        let column: ArrayRef = Arc::new(Int64Array::from_iter_values(0..5_000));
        let sketch = DistinctSketch::of(&column).unwrap();
        let text = sketch.to_hex();
        let back = DistinctSketch::from_hex(&text).unwrap();
        assert_eq!(back.estimate(), sketch.estimate());
        assert_eq!(back.to_hex(), text);
        assert!(DistinctSketch::from_hex(&text[2..]).is_none());
        assert!(DistinctSketch::from_hex(&"zz".repeat(REGISTERS)).is_none());
        assert!(DistinctSketch::from_hex(&"ff".repeat(REGISTERS)).is_none());
    }

    #[test]
    fn merged_sketches_count_the_union() {
        let a: ArrayRef = Arc::new(Int64Array::from_iter_values(0..60_000));
        let b: ArrayRef = Arc::new(Int64Array::from_iter_values(40_000..100_000));
        let mut sketch = DistinctSketch::of(&a).unwrap();
        sketch.merge(&DistinctSketch::of(&b).unwrap());
        assert!(
            within(sketch.estimate(), 100_000, 0.26),
            "{}",
            sketch.estimate()
        );
    }
}
