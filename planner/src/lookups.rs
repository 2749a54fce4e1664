//! Lookups of a few values of a column of many values (`c = v`,
//! `c IN (...)`) read only the rows that hold them.
//!
//! A scan of a stored table reads every row of every segment its filters'
//! bounds cannot rule out, and the filters then test each row. Where a
//! filter asks for a few of a column's many values (a key, a reference to
//! one, an edge's end), those values sit in a few rows of each segment, and the scan finds them by binary search
//! in the segment's row positions sorted by that column, which the first
//! such lookup sorts and the segment keeps ([`Segment::positions_of`]). A
//! graph function walking out from a vertex asks for each level's edges
//! out this way (`src IN (level)`), so a walk of a few levels over ten
//! million edges reads a few thousand of them. The values are sorted once
//! per scan ([`Keys`]), and each segment looks up only those within its
//! bounds: of a column stored in order (keys or times loaded in order),
//! each segment holds a narrow range, and so a few of many values.
//!
//! ```text
//!   filters ──► c IN (v1, v2, ...) ──► per segment: few of c's rows? ──► yes: their rows
//!                                                                    └─► no: all its rows
//! ```
//!
//! A hash join asks the same of the scan of its probe side, once its
//! build side is built: the keys its build side holds are tapped
//! ([`crate::key_taps`]), and the scan ([`crate::table_source`]) looks
//! them up. A graph's hops are such joins: from a few vertices along ten
//! million edges.
//!
//! The filters stay above the scan, so what the scan gives needs only to
//! hold every row they keep.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ciab_storage::{Segment, partition_point};
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBufferBuilder, UInt32Array, make_comparator,
};
use datafusion::arrow::compute::kernels::cmp::neq;
use datafusion::arrow::compute::{SortOptions, filter, is_not_null, sort, take_record_batch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::{Column as LogicalColumn, ScalarValue};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::DynamicFilterPhysicalExpr;

/// A column is looked up where its values repeat at most this often on
/// average in a segment: a key, or a reference to one (`l_suppkey`
/// repeats 600 times in TPC-H's six million line items). A column of few
/// values (a status, a brand: thousands of rows each) is scanned, however
/// few of them a filter asks for. At 1,024 rather than 8, q21's join of
/// one nation's 411 suppliers to the line items reads 4% of them (q21
/// 136 -> 114 ms, q07 69 -> 55, the 22 queries' CPU 2,282 -> 2,203 ms).
const LOOKUP_ROWS_PER_VALUE_MAX: usize = 1024;
/// A lookup asks for at most one in this many of the column's distinct
/// values in a segment; past that, a pass over the rows costs less. The
/// search for each value starts where the one before ended and gallops,
/// a few steps for values a few rows apart, so a lookup pays for many
/// values: at 4 rather than 16, TPC-H SF1 freshly loaded (segments of
/// tens of thousands of rows, whose bounds hold all of a join's part
/// keys) took 1,103 and 1,107 ms against 1,181 and 1,217 (q19 22 against
/// 41-54 ms, q05 69 against 98, q03 37-45 against 58).
const LOOKUP_DISTINCT_PER_VALUE_MIN: usize = 4;
/// Segments of fewer rows are scanned: a pass over them is cheap, and
/// they are the ones that change (merged into larger ones).
const LOOKUP_SEGMENT_ROWS_MIN: usize = 4_096;

/// Segments whose rows scans found by lookup: `segments_looked_up` in
/// `ciab.metrics`.
pub(crate) static SEGMENTS_LOOKED_UP: AtomicU64 = AtomicU64::new(0);

/// `segments` with each that a lookup among `filters` reads few rows of
/// replaced by those rows; segments where it finds none are left out.
/// `schema` is the segments' (stored) schema, of which the first `own`
/// columns are the ones filters may name.
pub(crate) fn narrow(
    segments: Vec<Arc<Segment>>,
    schema: &SchemaRef,
    own: usize,
    filters: &[Expr],
) -> Result<Vec<Arc<Segment>>> {
    let Some((column, keys)) = filters
        .iter()
        .find_map(|filter| asked_for(filter, schema, own))
    else {
        return Ok(segments);
    };
    let mut narrowed = Vec::with_capacity(segments.len());
    for segment in segments {
        match look_up(&segment, column, &keys)? {
            None => narrowed.push(segment),
            Some(positions) if positions.is_empty() => {}
            Some(positions) => {
                let found = take_record_batch(&segment.batch, &positions)?;
                narrowed.push(Arc::new(Segment::new(found, None)));
            }
        }
    }
    Ok(narrowed)
}

/// Values a lookup asks for: of one type, ascending, each once, and no
/// NULL (which equals nothing). Sorted once for all the segments a scan
/// looks them up in, so that each segment takes those within its bounds
/// by binary search and searches for them in one pass.
#[derive(Debug)]
pub(crate) struct Keys(ArrayRef);

impl Keys {
    /// `None` where no value is left, or the values are not of one type.
    pub(crate) fn new(values: Vec<ScalarValue>) -> Option<Keys> {
        let values = ScalarValue::iter_to_array(values).ok()?;
        Keys::of(&values).ok().flatten()
    }

    /// `values` without NULLs (which equal nothing), sorted as Arrow
    /// sorts, each once; `None` where none is left.
    pub(crate) fn of(values: &ArrayRef) -> Result<Option<Keys>> {
        let values = match values.null_count() {
            0 => Arc::clone(values),
            _ => filter(values, &is_not_null(values)?)?,
        };
        if values.is_empty() {
            return Ok(None);
        }
        let sorted = sort(&values, None)?;
        let n = sorted.len();
        let differs = neq(&sorted.slice(1, n - 1), &sorted.slice(0, n - 1))?;
        let mut first = BooleanBufferBuilder::new(n);
        first.append(true);
        first.append_buffer(differs.values());
        let once = filter(&sorted, &BooleanArray::new(first.finish(), None))?;
        Ok(Some(Keys(once)))
    }

    #[cfg(test)]
    pub(crate) fn as_array(&self) -> &ArrayRef {
        &self.0
    }

    /// How many keys there are, each once.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Those of the keys that lie within column `column`'s bounds in
    /// `segment`: all of them where the bounds are unknown.
    fn within(&self, segment: &Segment, column: usize) -> ArrayRef {
        let Some(bounds) = segment.bounds(column) else {
            return Arc::clone(&self.0);
        };
        let ends = ScalarValue::iter_to_array([bounds.min.clone(), bounds.max.clone()]);
        let Ok(compare) = ends.and_then(|ends| {
            Ok(make_comparator(
                self.0.as_ref(),
                ends.as_ref(),
                SortOptions::default(),
            )?)
        }) else {
            return Arc::clone(&self.0);
        };
        let keys = self.0.len();
        let from = partition_point(keys, |k| compare(k, 0).is_lt());
        let to = partition_point(keys, |k| compare(k, 1).is_le());
        self.0.slice(from, to.saturating_sub(from))
    }
}

/// The positions, in row order, of `segment`'s rows whose column `column`
/// holds one of `keys`; `None` where a pass over its rows costs less than
/// a lookup (a small segment, a column of few values, many of the keys
/// within the segment's bounds). Only keys within the bounds are looked
/// for, so a column stored in order (keys or times loaded in order) has
/// each segment look up its own few of a join's many keys, and a segment
/// whose bounds hold none of them is not read at all.
pub(crate) fn look_up(
    segment: &Segment,
    column: usize,
    keys: &Keys,
) -> Result<Option<UInt32Array>> {
    let values = keys.within(segment, column);
    let rows = segment.batch.num_rows();
    let few = values.is_empty()
        || rows >= LOOKUP_SEGMENT_ROWS_MIN
            && segment.distinct(column).is_some_and(|sketch| {
                let distinct = sketch.estimate();
                distinct * LOOKUP_ROWS_PER_VALUE_MAX >= rows
                    && values.len() * LOOKUP_DISTINCT_PER_VALUE_MIN <= distinct
            });
    if !few {
        return Ok(None);
    }
    let positions = segment
        .positions_of(column, values.as_ref())
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    SEGMENTS_LOOKED_UP.fetch_add(1, Ordering::Relaxed);
    Ok(Some(positions))
}

/// Whether values of `data_type` are looked up by their order: its
/// equality must be its order's (not a float's: -0 = 0, and NaN).
pub(crate) fn orderable(data_type: &DataType) -> bool {
    data_type.is_integer()
        || matches!(
            data_type,
            DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Date32
                | DataType::Timestamp(..)
                | DataType::Decimal128(..)
        )
}

/// The column (by position) and values `filter` keeps rows of, where it
/// is `c = v`, `c IN (v, ...)` or a disjunction of those (DataFusion
/// writes a short IN list as one) over one of the table's own columns,
/// of an [`orderable`] type, with values of the column's own type.
fn asked_for(filter: &Expr, schema: &SchemaRef, own: usize) -> Option<(usize, Keys)> {
    let (column, values) = listed(filter)?;
    let i = schema.index_of(&column.name).ok().filter(|&i| i < own)?;
    let data_type = schema.field(i).data_type();
    if !orderable(data_type) || values.iter().any(|v| v.data_type() != *data_type) {
        return None;
    }
    Some((i, Keys::new(values.into_iter().cloned().collect())?))
}

/// The column and the values `filter` compares it with for equality:
/// `c = v`, `c IN (v, ...)`, or an OR of those over one column.
fn listed(filter: &Expr) -> Option<(&LogicalColumn, Vec<&ScalarValue>)> {
    match filter {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let (column, mut values) = listed(left)?;
            let (other, more) = listed(right)?;
            values.extend(more);
            (column == other).then_some((column, values))
        }
        Expr::InList(InList {
            expr,
            list,
            negated: false,
        }) => match expr.as_ref() {
            Expr::Column(c) => {
                let values = list.iter().map(|v| match v {
                    Expr::Literal(value, _) => Some(value),
                    _ => None,
                });
                Some((c, values.collect::<Option<_>>()?))
            }
            _ => None,
        },
        _ => column_equals(filter).map(|(c, v)| (c, vec![v])),
    }
}

/// The column and value of a filter `c = v` (or `v = c`) with `v` a
/// literal.
pub(crate) fn column_equals(filter: &Expr) -> Option<(&LogicalColumn, &ScalarValue)> {
    let Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::Eq,
        right,
    }) = filter
    else {
        return None;
    };
    match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c)) => {
            Some((c, v))
        }
        _ => None,
    }
}

/// Whether `filter` is a dynamic filter: one an operator fills in as the
/// query runs, as a hash join does with its build side's keys.
pub(crate) fn is_dynamic(filter: &Arc<dyn PhysicalExpr>) -> bool {
    filter.downcast_ref::<DynamicFilterPhysicalExpr>().is_some()
}

/// Whether `keys` (at most; repeats included) could be few enough of a
/// column of `distinct` values for a lookup to pay in some segment: the
/// test [`look_up`] makes of each segment, made of the whole scan before
/// the keys are sorted for it.
pub(crate) fn may_pay(keys: usize, distinct: Option<usize>) -> bool {
    distinct.is_none_or(|distinct| keys * LOOKUP_DISTINCT_PER_VALUE_MIN <= distinct)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{Field, Int64Type, Schema};
    use datafusion::logical_expr::{col, lit};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("x", DataType::Float64, true),
            Field::new("v", DataType::Int64, true),
        ]))
    }

    fn looked_up(filter: Expr) -> Option<Vec<i64>> {
        let (i, values) = asked_for(&filter, &schema(), 2)?;
        assert_eq!(i, 0);
        Some(values.0.as_primitive::<Int64Type>().values().to_vec())
    }

    #[test]
    fn lookups_are_equalities_with_literals_of_one_column() {
        assert_eq!(looked_up(col("k").eq(lit(3i64))), Some(vec![3]));
        assert_eq!(looked_up(lit(3i64).eq(col("k"))), Some(vec![3]));
        let listed = col("k").in_list(vec![lit(1i64), lit(2i64)], false);
        assert_eq!(looked_up(listed.clone()), Some(vec![1, 2]));
        let either = col("k").eq(lit(5i64)).or(listed).or(col("k").eq(lit(9i64)));
        // Each value once, in order.
        assert_eq!(looked_up(either), Some(vec![1, 2, 5, 9]));
        // Not lookups: another column in the disjunction, a negated list,
        // a range, a value of another type, a float column, a column past
        // the table's own (a derived one).
        assert_eq!(
            looked_up(col("k").eq(lit(1i64)).or(col("v").eq(lit(2i64)))),
            None
        );
        assert_eq!(looked_up(col("k").in_list(vec![lit(1i64)], true)), None);
        assert_eq!(looked_up(col("k").gt(lit(1i64))), None);
        assert_eq!(looked_up(col("k").eq(lit(1i32))), None);
        assert!(asked_for(&col("x").eq(lit(1.0)), &schema(), 2).is_none());
        assert!(asked_for(&col("v").eq(lit(1i64)), &schema(), 2).is_none());
    }

    #[test]
    fn segments_are_looked_up_where_few_of_their_rows_hold_the_values() {
        let segment = |k: Vec<i64>| {
            let rows = k.len();
            let x: ArrayRef = Arc::new(Float64Array::from(vec![0.0; rows]));
            let v: ArrayRef = Arc::new(Int64Array::from(vec![0; rows]));
            let batch =
                RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(k)), x, v]).unwrap();
            Segment::new(batch, None)
        };
        let values =
            |v: Vec<i64>| Keys::new(v.into_iter().map(ScalarValue::from).collect()).unwrap();
        // Each key in two rows of 8,192.
        let keyed = segment((0..8_192).map(|i| i / 2).collect());
        let found = look_up(&keyed, 0, &values(vec![7, 100, 100_000]))
            .unwrap()
            .unwrap();
        assert_eq!(found.values().to_vec(), [14, 15, 200, 201]);
        // Too many values asked for (twice the most, as the distinct
        // values are estimated), a small segment, a column of few values.
        let many = values((0..4_096 / LOOKUP_DISTINCT_PER_VALUE_MIN as i64 * 2).collect());
        assert!(look_up(&keyed, 0, &many).unwrap().is_none());
        let small = segment((0..100).collect());
        assert!(look_up(&small, 0, &values(vec![1])).unwrap().is_none());
        let few = segment((0..8_192).map(|i| i % 4).collect());
        assert!(look_up(&few, 0, &values(vec![1])).unwrap().is_none());
        // A column of a hundred values, 82 rows each, as a reference to
        // a key: looked up.
        let referring = segment((0..8_192).map(|i| i % 100).collect());
        let found = look_up(&referring, 0, &values(vec![1])).unwrap().unwrap();
        assert_eq!(found.len(), 82);
        // Only the keys within the segment's bounds count, and are
        // searched for: 5 of 512 here, in any order given.
        let spread = values((0..512).rev().map(|k| k * 1_000).collect());
        let found = look_up(&keyed, 0, &spread).unwrap().unwrap();
        assert_eq!(
            found.values().to_vec(),
            [0, 1, 2_000, 2_001, 4_000, 4_001, 6_000, 6_001, 8_000, 8_001]
        );
        // A segment whose bounds hold none of the keys is read not at
        // all, however small.
        let none = look_up(&small, 0, &values(vec![-1, 100])).unwrap().unwrap();
        assert_eq!(none.len(), 0);
        // NULL equals nothing, and no keys are no lookup.
        assert!(Keys::new(vec![ScalarValue::Int64(None)]).is_none());
    }

    #[test]
    fn keys_are_sorted_once_without_nulls() {
        let values: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(9),
            None,
            Some(4),
            Some(9),
            Some(-1),
            Some(4),
        ]));
        let sorted = Keys::of(&values).unwrap().unwrap();
        assert_eq!(sorted.0.as_primitive::<Int64Type>().values(), &[-1, 4, 9]);
        let text: ArrayRef = Arc::new(StringArray::from(vec!["b", "a", "b"]));
        let sorted = Keys::of(&text).unwrap().unwrap();
        assert_eq!(
            sorted
                .0
                .as_string::<i32>()
                .iter()
                .flatten()
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        let nulls: ArrayRef = Arc::new(Int64Array::from(vec![None, None]));
        assert!(Keys::of(&nulls).unwrap().is_none());
        let one: ArrayRef = Arc::new(Int64Array::from(vec![3]));
        assert_eq!(Keys::of(&one).unwrap().unwrap().0.len(), 1);
    }
}
