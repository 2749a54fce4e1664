//! A table's rows in memory: copy-on-write segments plus its unique indexes.
//!
//! ```text
//!  TableData ── segments: [Seg(file a.parquet) | Seg(file b.parquet) | Seg(memtable) ]
//!            │             each holds its own row ids; a time series' segments
//!            │             each hold one partition, in partition order
//!            └─ unique indexes: key bytes -> rowid  (shared sorted runs, cheap to clone)
//! ```
//!
//! Every change makes a new `TableData` that shares untouched segments with
//! the old one, so a reader holding the old one keeps a consistent view while
//! writers go on. A delete shares even the segments it touches: their long
//! runs of surviving rows become slices of them ([`DELETE_SLICE_ROWS_MIN`]).
//! A segment without a file is not yet durable in Parquet; the Raft log
//! holds it until the next snapshot writes it out.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder, RecordBatch, UInt32Array,
    UInt64Array,
};
use datafusion::arrow::array::{downcast_primitive_array, make_comparator};
use datafusion::arrow::compute::{
    SortOptions, cast, concat_batches, filter_record_batch, sort_to_indices, take,
    take_record_batch,
};
use datafusion::arrow::datatypes::{
    ArrowNativeTypeOp, DataType, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType, UInt32Type,
};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::ScalarValue;
use datafusion::functions_aggregate::min_max::{MaxAccumulator, MinAccumulator};
use datafusion::logical_expr::Accumulator;
use datafusion::parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use datafusion::parquet::file::metadata::{ParquetMetaData, RowGroupMetaData};

use crate::catalog::{IndexDef, RowId, TableDef, TimeSeriesDef};
use crate::error::{Rejection, RejectionKind, Result};
pub use crate::index::IndexKey;
use crate::index::IndexKeys;
use crate::sketch::DistinctSketch;

/// Memtable segments merge up to this many rows; past it a new segment
/// starts, so one insert never copies more than this many rows.
pub const MEMTABLE_SEGMENT_ROWS_MAX: usize = 1024;
/// A delete leaves a run of at least this many of a segment's rows in
/// place, a slice of it, rather than copying it (see [`Segment::without`]);
/// so the pieces a segment breaks into are this long at least, or the
/// copied stretches between them, until a snapshot merges them.
pub const DELETE_SLICE_ROWS_MIN: usize = 1024;
/// Compaction merges adjacent segments up to this many rows.
pub const SEGMENT_ROWS_TARGET: usize = 128 * 1024;
/// Whether a column's values never fall is checked this many pairs of
/// neighbours at a time, stopping at the first stretch where one does.
const ASCENDING_STRETCH_ROWS: usize = 4096;

#[derive(Debug)]
pub struct Segment {
    /// Rows in the table's stored schema: user columns, row id last.
    pub batch: RecordBatch,
    /// The Parquet file holding exactly these rows, relative to the data
    /// directory, or none while they live only in memory and the log.
    pub file: Option<String>,
    /// Whether `file` holds the user columns only, without the row ids: a
    /// bulk load's staged file that the table took over as it was (see
    /// [`TableData::insert_batches`]). Its row ids are consecutive, from
    /// the first, and the manifest says where they start.
    pub implicit_rowids: bool,
    /// In a time-series table, the start of the partition every row here
    /// belongs to (see [`TimeSeriesDef::partition_of`]).
    pub partition: Option<i64>,
    /// Each column's least and greatest value, worked out the first time a
    /// scan asks (segments never change), so that a scan skips segments
    /// its filters rule out: rows arrive in time order, so a segment of a
    /// time series covers a stretch of time.
    bounds: Vec<OnceLock<Option<Bounds>>>,
    /// Each column's distinct values, sketched the first time the planner
    /// asks, for the same reason.
    distinct: Vec<OnceLock<Option<DistinctSketch>>>,
    /// Where each row id sits, worked out the first time a write names one.
    rowid_index: OnceLock<RowIdIndex>,
    /// Whether each column's values never fall from one row to the next,
    /// worked out the first time a scan asks: see [`Segment::ascending`].
    ascending: Vec<OnceLock<bool>>,
    /// Columns that scans worked out from these rows (a field pulled out of
    /// every document), kept for the next scan: see [`Segment::derived`].
    derived: Mutex<Derived>,
}

/// A segment's derived columns by key, and the bytes they hold.
#[derive(Debug, Default)]
struct Derived {
    columns: HashMap<String, ArrayRef>,
    bytes: usize,
}

/// A column's least and greatest non-null value in one segment.
#[derive(Debug, Clone)]
pub struct Bounds {
    pub min: ScalarValue,
    pub max: ScalarValue,
}

/// One row group's least and greatest value of a column, as its Parquet
/// statistics hold them, if they are there and exact (not cut short).
fn exact_bounds(stats: &StatisticsConverter, row_group: &RowGroupMetaData) -> Option<Bounds> {
    let row_groups = || std::iter::once(row_group);
    let exact = |flags: BooleanArray| flags.is_valid(0) && flags.value(0);
    if !exact(stats.row_group_is_min_value_exact(row_groups()).ok()?)
        || !exact(stats.row_group_is_max_value_exact(row_groups()).ok()?)
    {
        return None;
    }
    let min = ScalarValue::try_from_array(&stats.row_group_mins(row_groups()).ok()?, 0).ok()?;
    let max = ScalarValue::try_from_array(&stats.row_group_maxes(row_groups()).ok()?, 0).ok()?;
    (!min.is_null() && !max.is_null()).then_some(Bounds { min, max })
}

/// A segment's row ids: their range, and the rows in row id order when the
/// batch is in another (a time-series segment sorted by time).
#[derive(Debug)]
struct RowIdIndex {
    min: RowId,
    max: RowId,
    /// Row positions by ascending row id; `None` when the batch is in row
    /// id order already.
    order: Option<Vec<u32>>,
}

impl Segment {
    pub fn new(batch: RecordBatch, file: Option<String>) -> Self {
        Self::in_partition(batch, file, None)
    }

    /// Whether this segment's time-series partition ended at or before
    /// `cutoff_us`, so that retention drops it.
    pub fn expired(&self, ts: &TimeSeriesDef, cutoff_us: i64) -> bool {
        self.partition
            .is_some_and(|p| ts.partition_end(p) <= cutoff_us)
    }

    pub fn in_partition(batch: RecordBatch, file: Option<String>, partition: Option<i64>) -> Self {
        let bounds = (0..batch.num_columns()).map(|_| OnceLock::new()).collect();
        let distinct = (0..batch.num_columns()).map(|_| OnceLock::new()).collect();
        let ascending = (0..batch.num_columns()).map(|_| OnceLock::new()).collect();
        Segment {
            batch,
            file,
            implicit_rowids: false,
            partition,
            bounds,
            distinct,
            ascending,
            rowid_index: OnceLock::new(),
            derived: Mutex::default(),
        }
    }

    /// Rows of `file`, which holds them without their row ids: `batch` has
    /// the row ids appended, consecutive from the first.
    pub fn with_implicit_rowids(batch: RecordBatch, file: String) -> Self {
        let mut segment = Self::new(batch, Some(file));
        let ids = segment.rowids().values();
        assert!(
            ids.windows(2).all(|w| w[1] == w[0] + 1),
            "a file without row ids holds rows numbered consecutively"
        );
        segment.implicit_rowids = true;
        segment
    }

    /// The column `key` names, worked out from this segment's rows by
    /// `compute` the first time and kept: segments never change, so a
    /// derived column never goes stale. The key must say everything the
    /// column depends on (the function, its constants, the column
    /// positions it reads). What a segment keeps never outgrows its own
    /// rows; past that, columns are worked out each time.
    pub fn derived<E>(
        &self,
        key: &str,
        compute: impl FnOnce(&RecordBatch) -> std::result::Result<ArrayRef, E>,
    ) -> std::result::Result<ArrayRef, E> {
        if let Some(column) = self.lock_derived().columns.get(key) {
            return Ok(Arc::clone(column));
        }
        let column = compute(&self.batch)?;
        assert_eq!(
            column.len(),
            self.batch.num_rows(),
            "a derived column has a value for every row"
        );
        let bytes = column.get_array_memory_size();
        let mut derived = self.lock_derived();
        if derived.bytes + bytes <= self.batch.get_array_memory_size()
            && !derived.columns.contains_key(key)
        {
            derived.bytes += bytes;
            derived.columns.insert(key.to_string(), Arc::clone(&column));
        }
        Ok(column)
    }

    fn lock_derived(&self) -> std::sync::MutexGuard<'_, Derived> {
        // The map is only read and inserted into whole, so a panic
        // elsewhere cannot have left it half changed.
        self.derived.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Column `i`'s bounds; `None` for types without an order DataFusion
    /// can take the least of, or a column of nulls only. Also none for
    /// nested types (arrays): min and max order a NULL element above
    /// others, as PostgreSQL does, but the comparisons a scan's filter
    /// runs against the bounds do not, so `nums = '{7,8}'` skipped the
    /// segment holding `{7,8}` beside a `{NULL}`.
    pub fn bounds(&self, i: usize) -> Option<&Bounds> {
        self.bounds[i]
            .get_or_init(|| {
                let column = std::slice::from_ref(self.batch.column(i));
                let data_type = column[0].data_type();
                if data_type.is_nested() {
                    return None;
                }
                let mut min = MinAccumulator::try_new(data_type).ok()?;
                let mut max = MaxAccumulator::try_new(data_type).ok()?;
                min.update_batch(column).ok()?;
                max.update_batch(column).ok()?;
                let (min, max) = (min.evaluate().ok()?, max.evaluate().ok()?);
                (!min.is_null() && !max.is_null()).then_some(Bounds { min, max })
            })
            .as_ref()
    }

    /// Takes column bounds from the statistics of the Parquet file that
    /// holds exactly these rows (`metadata`, written from `schema`) where
    /// the writer worked them out exactly: text, binary and decimal
    /// columns, whose least and greatest values cost a comparison per row
    /// (a memcmp for text) that the writer made already. Parquet orders
    /// these as DataFusion does (bytes unsigned, decimals signed). Other
    /// columns, and text cut short in the statistics, are left to
    /// [`Segment::bounds`]: a fixed-width minimum is cheap, and Parquet
    /// orders floats and unsigned integers in ways of its own.
    pub fn take_bounds(&self, metadata: &ParquetMetaData, schema: &Schema) {
        let [row_group] = metadata.row_groups() else {
            return;
        };
        let parquet_schema = metadata.file_metadata().schema_descr();
        for (i, field) in schema.fields().iter().enumerate().take(self.bounds.len()) {
            if !matches!(
                field.data_type(),
                DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Binary
                    | DataType::LargeBinary
                    | DataType::Decimal128(..)
            ) {
                continue;
            }
            let Ok(stats) = StatisticsConverter::try_new(field.name(), schema, parquet_schema)
            else {
                continue;
            };
            if let Some(bounds) = exact_bounds(&stats, row_group) {
                let _ = self.bounds[i].set(Some(bounds));
            }
        }
    }

    /// A sketch of column `i`'s distinct values; `None` for types
    /// DataFusion cannot hash.
    pub fn distinct(&self, i: usize) -> Option<&DistinctSketch> {
        self.distinct[i]
            .get_or_init(|| DistinctSketch::of(self.batch.column(i)))
            .as_ref()
    }

    /// Whether column `i` holds no null and its values never fall from
    /// one row to the next, in the order DataFusion sorts them: then a
    /// scan of segments that follow each other in order is sorted by it
    /// (rows loaded in key or time order), and DataFusion aggregates and
    /// sorts by it without hashing or sorting all rows. Floating-point
    /// columns are never taken as sorted: NaN compares as no number does.
    pub fn ascending(&self, i: usize) -> bool {
        *self.ascending[i].get_or_init(|| {
            let column = self.batch.column(i);
            let ordered = column.data_type().is_integer()
                || matches!(
                    column.data_type(),
                    DataType::Date32
                        | DataType::Date64
                        | DataType::Timestamp(..)
                        | DataType::Time32(_)
                        | DataType::Time64(_)
                        | DataType::Decimal128(..)
                        | DataType::Utf8
                        | DataType::LargeUtf8
                        | DataType::Utf8View
                );
            if !ordered || column.null_count() > 0 {
                return false;
            }
            // Pairs are compared a stretch at a time, so that a column out
            // of order (most are) is found out within its first stretch,
            // not after comparing every pair of its values.
            let pairs = column.len().saturating_sub(1);
            (0..pairs).step_by(ASCENDING_STRETCH_ROWS).all(|from| {
                let len = ASCENDING_STRETCH_ROWS.min(pairs - from);
                let (before, after) = (column.slice(from, len), column.slice(from + 1, len));
                datafusion::arrow::compute::kernels::cmp::gt(&before, &after)
                    .is_ok_and(|falls| falls.true_count() == 0)
            })
        })
    }

    /// Works out every column's bounds and distinct values now, so that
    /// the first query over these rows need not: a snapshot does this, in
    /// the background, for each segment it writes.
    pub fn analyze(&self) {
        for i in 0..self.batch.num_columns() {
            self.bounds(i);
            self.distinct(i);
            self.ascending(i);
        }
    }

    /// Takes what `other`, whose first columns hold the same values as
    /// this segment's (in any order), has worked out of them already.
    pub fn take_analysis(&self, other: &Segment) {
        let columns = self.bounds.len().min(other.bounds.len());
        for i in 0..columns {
            if let Some(bounds) = other.bounds[i].get() {
                let _ = self.bounds[i].set(bounds.clone());
            }
            if let Some(sketch) = other.distinct[i].get() {
                let _ = self.distinct[i].set(sketch.clone());
            }
        }
    }

    /// The positions of the rows whose column `i` holds one of `values`
    /// (of the column's type), in row order. The first lookup sorts the
    /// column's row positions by value, and its values with them, and the
    /// segment keeps both as derived columns (segments never change), so
    /// that each later lookup binary-searches the sorted values for each
    /// value: a few values found among many rows for the cost of their
    /// logarithm, not of a pass over the rows, in memory read in order
    /// (searching the positions instead jumped about the column, a cache
    /// miss a step). Where the segment keeps nothing more (see
    /// [`Segment::derived`]), each lookup sorts anew.
    pub fn positions_of(&self, i: usize, values: &dyn Array) -> Result<UInt32Array> {
        assert_eq!(
            self.batch.column(i).data_type(),
            values.data_type(),
            "values are looked up as the column holds them"
        );
        let last = SortOptions {
            descending: false,
            nulls_first: false,
        };
        let order = self.derived(&format!("positions of #{i} in order"), |batch| {
            sort_to_indices(batch.column(i), Some(last), None).map(|p| Arc::new(p) as ArrayRef)
        })?;
        let in_order = self.derived(&format!("#{i} in order"), |batch| {
            take(batch.column(i), &order, None)
        })?;
        let order = order.as_primitive::<UInt32Type>().values();
        let mut positions: Vec<u32> = Vec::new();
        equal_ranges(in_order.as_ref(), values, |rows| {
            positions.extend_from_slice(&order[rows]);
        })?;
        positions.sort_unstable();
        // A value listed twice finds its rows twice.
        positions.dedup();
        Ok(UInt32Array::from(positions))
    }

    /// Sets column `i`'s sketch, read back from where a snapshot kept it.
    pub fn set_distinct(&self, i: usize, sketch: DistinctSketch) {
        let _ = self.distinct[i].set(Some(sketch));
    }

    pub fn rowids(&self) -> &UInt64Array {
        let column = self.batch.column(self.batch.num_columns() - 1);
        column
            .as_any()
            .downcast_ref::<UInt64Array>()
            .expect("the last stored column is the row id")
    }

    fn rowid_index(&self) -> &RowIdIndex {
        self.rowid_index.get_or_init(|| {
            let ids = self.rowids().values();
            assert!(!ids.is_empty(), "a table segment holds rows");
            if ids.is_sorted() {
                return RowIdIndex {
                    min: ids[0],
                    max: ids[ids.len() - 1],
                    order: None,
                };
            }
            let mut order: Vec<u32> = (0..ids.len() as u32).collect();
            order.sort_unstable_by_key(|&i| ids[i as usize]);
            RowIdIndex {
                min: ids[order[0] as usize],
                max: ids[order[order.len() - 1] as usize],
                order: Some(order),
            }
        })
    }

    /// The least and greatest row id here.
    pub fn rowid_range(&self) -> (RowId, RowId) {
        let index = self.rowid_index();
        (index.min, index.max)
    }

    /// The position of the row with this id, if it is here.
    fn position(&self, rowid: RowId) -> Option<usize> {
        let ids = self.rowids().values();
        match &self.rowid_index().order {
            None => ids.binary_search(&rowid).ok(),
            Some(order) => order
                .binary_search_by_key(&rowid, |&i| ids[i as usize])
                .ok()
                .map(|i| order[i] as usize),
        }
    }

    /// The positions of those of `sorted` (ascending row ids) that are
    /// here, each paired with its index in `sorted`.
    fn positions(&self, sorted: &[RowId]) -> Vec<(usize, usize)> {
        let (min, max) = self.rowid_range();
        let from = sorted.partition_point(|&r| r < min);
        let to = sorted.partition_point(|&r| r <= max);
        (from..to)
            .filter_map(|i| self.position(sorted[i]).map(|pos| (i, pos)))
            .collect()
    }

    /// This segment's rows but those at `deleted` (ascending positions),
    /// as the segments that take its place. A run of at least
    /// [`DELETE_SLICE_ROWS_MIN`] kept rows stays where it is, a slice
    /// sharing this segment's memory; only the stretches between such runs
    /// are copied. Copying every kept row made an UPDATE of one row in a
    /// segment of 100,000 cost 43 % of the server's CPU.
    fn without(&self, deleted: &[u32]) -> Result<Vec<Segment>> {
        let rows = self.batch.num_rows();
        let mut pieces = Vec::new();
        // Where the stretch to copy, if any, begins: up to the next long run.
        let mut copy_from = 0;
        let mut at = 0;
        for end in deleted.iter().map(|&p| p as usize).chain([rows]) {
            if end - at >= DELETE_SLICE_ROWS_MIN {
                pieces.extend(self.copied(copy_from..at, deleted)?);
                pieces.push(self.piece(self.batch.slice(at, end - at)));
                copy_from = end;
            }
            at = end + 1;
        }
        pieces.extend(self.copied(copy_from..rows, deleted)?);
        Ok(pieces)
    }

    /// The rows of `range` but those at `deleted`, copied; none if none is
    /// left.
    fn copied(&self, range: Range<usize>, deleted: &[u32]) -> Result<Option<Segment>> {
        let from = deleted.partition_point(|&p| (p as usize) < range.start);
        let to = deleted.partition_point(|&p| (p as usize) < range.end);
        let gone = &deleted[from..to];
        if range.len() == gone.len() {
            return Ok(None);
        }
        // The mask in runs: a mask of one bool per row, and its negation,
        // were a sixth of the CPU of a block locking one row of 100,000
        // FOR UPDATE.
        let mut keep = BooleanBufferBuilder::new(range.len());
        let mut at = range.start;
        for &pos in gone {
            keep.append_n(pos as usize - at, true);
            keep.append(false);
            at = pos as usize + 1;
        }
        keep.append_n(range.end - at, true);
        let keep = BooleanArray::new(keep.finish(), None);
        let stretch = self.batch.slice(range.start, range.len());
        Ok(Some(self.piece(filter_record_batch(&stretch, &keep)?)))
    }

    /// A segment of some of these rows, in the same order: what this one
    /// found out and order keeps (row ids in order, columns that never
    /// fall) holds for it too. Bounds and sketches are worked out anew,
    /// being exact for these rows only.
    fn piece(&self, batch: RecordBatch) -> Segment {
        assert!(batch.num_rows() > 0, "a table segment holds rows");
        let piece = Segment::in_partition(batch, None, self.partition);
        for (i, ascending) in self.ascending.iter().enumerate() {
            if ascending.get() == Some(&true) {
                let _ = piece.ascending[i].set(true);
            }
        }
        if let Some(RowIdIndex { order: None, .. }) = self.rowid_index.get() {
            let ids = piece.rowids().values();
            let _ = piece.rowid_index.set(RowIdIndex {
                min: ids[0],
                max: ids[ids.len() - 1],
                order: None,
            });
        }
        piece
    }
}

/// Segments, each marked if a delete just made it, with each of those
/// merged into a neighbour where both are short enough to fit in
/// [`DELETE_SLICE_ROWS_MIN`] rows together: otherwise deletes that chip
/// rows off the same long run one after another would leave a short piece
/// each, and scans would meet ever more of them.
fn merge_short_pieces(segments: Vec<(Arc<Segment>, bool)>) -> Result<Vec<Arc<Segment>>> {
    let mut merged: Vec<(Arc<Segment>, bool)> = Vec::with_capacity(segments.len());
    for (segment, fresh) in segments {
        if let Some((last, last_fresh)) = merged.last_mut()
            && (fresh || *last_fresh)
            && last.file.is_none()
            && segment.file.is_none()
            && last.partition == segment.partition
            && last.batch.num_rows() + segment.batch.num_rows() <= DELETE_SLICE_ROWS_MIN
        {
            let batch = concat_batches(&last.batch.schema(), [&last.batch, &segment.batch])?;
            *last = Arc::new(Segment::in_partition(batch, None, segment.partition));
            *last_fresh = true;
            continue;
        }
        merged.push((segment, fresh));
    }
    Ok(merged.into_iter().map(|(s, _)| s).collect())
}

/// One unique index (or the primary key): encoded key -> row id.
#[derive(Debug, Clone)]
pub struct UniqueIndex {
    pub name: String,
    pub columns: Vec<usize>,
    pub keys: IndexKeys,
}

#[derive(Debug, Clone)]
pub struct TableData {
    pub segments: Vec<Arc<Segment>>,
    pub unique: Vec<UniqueIndex>,
    pub next_rowid: RowId,
    /// The stored schema of the table's definition this data was built
    /// for ([`TableDef::stored_schema`]): every change of a table's
    /// columns builds its data anew. Kept because building it for every
    /// write (a field and its metadata map per column), and the user
    /// columns' schema to check the rows' shape against, was about a fifth
    /// of applying a one-row INSERT.
    pub stored_schema: SchemaRef,
}

impl TableData {
    /// A table's data rebuilt from its segments, unique indexes included.
    pub fn new(def: &TableDef, segments: Vec<Arc<Segment>>, next_rowid: RowId) -> Result<Self> {
        let mut data = TableData {
            segments,
            unique: Vec::new(),
            next_rowid,
            stored_schema: def.stored_schema(),
        };
        for index in def.indexes.iter().filter(|i| i.unique) {
            data.add_unique_index(def, index)?;
        }
        Ok(data)
    }

    pub fn row_count(&self) -> usize {
        self.segments.iter().map(|s| s.batch.num_rows()).sum()
    }

    /// Builds a unique index over the current rows; refuses if they already
    /// hold duplicate keys.
    pub fn add_unique_index(&mut self, def: &TableDef, index: &IndexDef) -> Result<()> {
        let columns = index
            .columns
            .iter()
            .map(|c| {
                def.column_index(c).ok_or_else(|| {
                    Rejection::new(
                        RejectionKind::UndefinedColumn,
                        format!("column \"{c}\" does not exist"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut entries = Vec::with_capacity(self.row_count());
        for segment in &self.segments {
            let rowids = segment.rowids();
            let rowids = rowids.values();
            push_index_entries(&segment.batch, &columns, |r| rowids[r], &mut entries)?;
        }
        let mut keys = IndexKeys::default();
        if let Err(rowid) = keys.insert(entries) {
            let (segment, row) = self
                .segments
                .iter()
                .find_map(|s| Some((s, s.position(rowid)?)))
                .expect("a repeated key's row is in a segment");
            return Err(Rejection::new(
                RejectionKind::UniqueViolation,
                format!("could not create unique index \"{}\"", index.name),
            )
            .with_detail(format!(
                "Key ({})=({}) is duplicated.",
                index.columns.join(", "),
                key_text(&segment.batch, &columns, row)
            ))
            .into());
        }
        self.unique.push(UniqueIndex {
            name: index.name.clone(),
            columns,
            keys,
        });
        Ok(())
    }

    /// Appends rows (user schema) after checking NOT NULL and unique keys.
    /// Row ids are assigned here, in apply order.
    pub fn insert(&mut self, def: &TableDef, table_name: &str, rows: RecordBatch) -> Result<u64> {
        self.insert_batches(def, table_name, vec![(rows, None)])
    }

    /// Appends several batches as one insert: their keys are checked and
    /// added to each unique index together, which for the many batches of
    /// a bulk load costs one sort rather than a merge per batch.
    ///
    /// A batch may come with the staged segment that holds it in a file
    /// already (a bulk load's, without row ids): the table takes the file
    /// over as its own, and no snapshot writes those rows again. A time
    /// series sorts its rows into partitions, so it writes files of its own.
    pub fn insert_batches(
        &mut self,
        def: &TableDef,
        table_name: &str,
        batches: Vec<(RecordBatch, Option<Arc<Segment>>)>,
    ) -> Result<u64> {
        // Each batch with the first of its row ids, the staged segment whose
        // file the table takes over (if any) and, in a time series, each
        // row's partition.
        let mut numbered = Vec::with_capacity(batches.len());
        for (rows, staged) in batches {
            let n = rows.num_rows();
            if n == 0 {
                continue;
            }
            check_not_null(def, table_name, &rows)?;
            // A time series keeps each partition's rows in segments of
            // their own: rows of several partitions are grouped by
            // partition first, so that each group's row ids are consecutive.
            let (rows, partitions) = match &def.time_series {
                Some(ts) => by_partition(def, ts, rows)?,
                None => (rows, Vec::new()),
            };
            let adopted = staged.filter(|s| s.file.is_some() && def.time_series.is_none());
            numbered.push((self.next_rowid, rows, adopted, partitions));
            self.next_rowid += n as u64;
        }
        let rows: usize = numbered.iter().map(|(_, rows, _, _)| rows.num_rows()).sum();
        for index in &mut self.unique {
            let mut entries = Vec::with_capacity(rows);
            for (first, rows, _, _) in &numbered {
                let first = *first;
                push_index_entries(rows, &index.columns, |r| first + r as u64, &mut entries)?;
            }
            if let Err(rowid) = index.keys.insert(entries) {
                let (first, rows, _, _) = numbered
                    .iter()
                    .rev()
                    .find(|(first, _, _, _)| *first <= rowid)
                    .expect("a repeated key's row is in a batch");
                return Err(Rejection::new(
                    RejectionKind::UniqueViolation,
                    format!(
                        "duplicate key value violates unique constraint \"{}\"",
                        index.name
                    ),
                )
                .with_detail(format!(
                    "Key ({})=({}) already exists.",
                    index
                        .columns
                        .iter()
                        .map(|&c| def.columns[c].name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    key_text(rows, &index.columns, (rowid - first) as usize)
                ))
                .into());
            }
        }
        let mut inserted = 0;
        for (first, rows, adopted, partitions) in numbered {
            let n = rows.num_rows();
            let rowids: ArrayRef = Arc::new(UInt64Array::from_iter_values(first..first + n as u64));
            let mut columns = rows.columns().to_vec();
            columns.push(rowids);
            let batch = RecordBatch::try_new(Arc::clone(&self.stored_schema), columns)?;
            if let Some(staged) = adopted {
                let path = staged
                    .file
                    .clone()
                    .expect("a staged segment taken over has a file");
                let segment = Segment::with_implicit_rowids(batch, path);
                segment.take_analysis(&staged);
                self.segments.push(Arc::new(segment));
            } else if partitions.is_empty() {
                self.append(batch, None)?;
            } else {
                let mut start = 0;
                for end in 1..=n {
                    if end == n || partitions[end] != partitions[start] {
                        self.append(batch.slice(start, end - start), Some(partitions[start]))?;
                        start = end;
                    }
                }
            }
            inserted += n as u64;
        }
        Ok(inserted)
    }

    /// Adds rows as a memtable segment of their own, at the end of the
    /// table or in a time series after its partition's others (a time
    /// series' segments stay in partition order), then merges it into the
    /// memtable segments before it the way a binary counter carries: while
    /// the one before is no larger and the two fit in
    /// [`MEMTABLE_SEGMENT_ROWS_MAX`] rows. Each row is thus copied about
    /// log2(1,024) = 10 times on its way into a full segment, where copying
    /// every insert's rows onto the last segment copied 512 rows per
    /// single-row insert on average (7 µs of Raft's thread per INSERT), and
    /// a partition's tail holds at most 11 segments.
    fn append(&mut self, batch: RecordBatch, partition: Option<i64>) -> Result<()> {
        let mut at = match partition {
            None => self.segments.len(),
            Some(p) => {
                debug_assert!(
                    self.segments.is_sorted_by_key(|s| s
                        .partition
                        .expect("a time series' segments have partitions")),
                    "a time series' segments are in partition order"
                );
                self.segments.partition_point(|s| s.partition <= Some(p))
            }
        };
        let mut segment = Segment::in_partition(batch, None, partition);
        while let Some(before) = at.checked_sub(1).map(|i| &self.segments[i])
            && before.file.is_none()
            && before.partition == partition
            && before.batch.num_rows() <= segment.batch.num_rows()
            && before.batch.num_rows() + segment.batch.num_rows() <= MEMTABLE_SEGMENT_ROWS_MAX
        {
            let merged = concat_batches(&segment.batch.schema(), [&before.batch, &segment.batch])?;
            segment = Segment::in_partition(merged, None, partition);
            self.segments.remove(at - 1);
            at -= 1;
        }
        self.segments.insert(at, Arc::new(segment));
        Ok(())
    }

    /// Drops a time series' partitions that end at or before `cutoff_us`,
    /// whole; returns how many rows went with them.
    pub fn expire(&mut self, ts: &TimeSeriesDef, cutoff_us: i64) -> Result<u64> {
        let (gone, kept): (Vec<_>, Vec<_>) = self
            .segments
            .drain(..)
            .partition(|s| s.expired(ts, cutoff_us));
        self.segments = kept;
        self.forget_keys(gone.iter().map(|s| &s.batch))?;
        Ok(gone.iter().map(|s| s.batch.num_rows() as u64).sum())
    }

    /// Takes the keys of rows that are going out of the unique indexes.
    fn forget_keys<'a>(
        &mut self,
        batches: impl Iterator<Item = &'a RecordBatch> + Clone,
    ) -> Result<()> {
        for index in &mut self.unique {
            let mut keys = Vec::new();
            for rows in batches.clone() {
                keys.extend(encode_keys(rows, &index.columns)?.into_iter().flatten());
            }
            index.keys.remove(keys);
        }
        Ok(())
    }

    /// Deletes rows by id. A row id that is not there means the command was
    /// planned against a state that has since changed.
    pub fn delete(&mut self, rowids: &[RowId]) -> Result<u64> {
        let mut sorted = rowids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut found = vec![false; sorted.len()];
        let mut segments = Vec::with_capacity(self.segments.len());
        let mut deleted = Vec::new();
        for segment in &self.segments {
            let hits = segment.positions(&sorted);
            if hits.is_empty() {
                segments.push((segment.clone(), false));
                continue;
            }
            let mut positions: Vec<u32> = hits
                .into_iter()
                .map(|(i, pos)| {
                    found[i] = true;
                    pos as u32
                })
                .collect();
            positions.sort_unstable();
            deleted.push(take_record_batch(
                &segment.batch,
                &UInt32Array::from(positions.clone()),
            )?);
            let pieces = segment.without(&positions)?;
            segments.extend(pieces.into_iter().map(|p| (Arc::new(p), true)));
        }
        if let Some(i) = found.iter().position(|f| !f) {
            return Err(missing_row(sorted[i]));
        }
        self.forget_keys(deleted.iter())?;
        self.segments = merge_short_pieces(segments)?;
        Ok(sorted.len() as u64)
    }

    /// The stored rows (row id last) with these ids, in the order given.
    pub fn rows(&self, rowids: &[RowId]) -> Result<RecordBatch> {
        let schema = match self.segments.first() {
            Some(s) => s.batch.schema(),
            None if rowids.is_empty() => {
                return Err(Rejection::new(RejectionKind::Internal, "no rows to read").into());
            }
            None => return Err(missing_row(rowids[0])),
        };
        let mut order: Vec<usize> = (0..rowids.len()).collect();
        order.sort_unstable_by_key(|&i| rowids[i]);
        let sorted: Vec<RowId> = order.iter().map(|&i| rowids[i]).collect();
        let mut parts = vec![None; rowids.len()];
        for segment in &self.segments {
            for (i, pos) in segment.positions(&sorted) {
                parts[order[i]] = Some(segment.batch.slice(pos, 1));
            }
        }
        let parts = parts
            .into_iter()
            .zip(rowids)
            .map(|(part, &rowid)| part.ok_or_else(|| missing_row(rowid)))
            .collect::<Result<Vec<_>>>()?;
        Ok(concat_batches(&schema, &parts)?)
    }

    /// Looks a key up in the unique index over exactly these columns.
    pub fn lookup_unique(&self, columns: &[usize], key: &[u8]) -> Option<RowId> {
        self.unique
            .iter()
            .find(|u| u.columns == columns)
            .and_then(|u| u.keys.get(key))
    }
}

/// Refuses rows with a NULL in a NOT NULL column.
fn check_not_null(def: &TableDef, table_name: &str, rows: &RecordBatch) -> Result<()> {
    for (column, array) in def.columns.iter().zip(rows.columns()) {
        if !column.nullable && array.null_count() > 0 {
            let row = (0..rows.num_rows())
                .find(|&r| array.is_null(r))
                .unwrap_or(0);
            return Err(Rejection::new(
                RejectionKind::NotNullViolation,
                format!(
                    "null value in column \"{}\" of relation \"{table_name}\" violates not-null constraint",
                    column.name
                ),
            )
            .with_detail(format!("Failing row contains ({}).", row_text(rows, row)))
            .into());
        }
    }
    Ok(())
}

/// Rows grouped by their time series partition, in partition order (rows
/// of one partition keep their order), with each row's partition.
fn by_partition(
    def: &TableDef,
    ts: &TimeSeriesDef,
    rows: RecordBatch,
) -> Result<(RecordBatch, Vec<i64>)> {
    let column = def
        .column_index(&ts.time_column)
        .expect("a time series' time column exists");
    let micros = cast(
        rows.column(column),
        &DataType::Timestamp(TimeUnit::Microsecond, None),
    )?;
    let micros = micros.as_primitive::<TimestampMicrosecondType>();
    assert_eq!(micros.null_count(), 0, "the time column is NOT NULL");
    let partitions: Vec<i64> = micros
        .values()
        .iter()
        .map(|&t| ts.partition_of(t))
        .collect();
    if partitions.is_sorted() {
        return Ok((rows, partitions));
    }
    let mut order: Vec<u32> = (0..rows.num_rows() as u32).collect();
    order.sort_by_key(|&i| partitions[i as usize]);
    let partitions = order.iter().map(|&i| partitions[i as usize]).collect();
    let rows = take_record_batch(&rows, &UInt32Array::from(order))?;
    Ok((rows, partitions))
}

fn missing_row(rowid: RowId) -> crate::Error {
    Rejection::new(
        RejectionKind::SerializationFailure,
        "could not serialize access due to concurrent update",
    )
    .with_detail(format!("row {rowid} was changed by another statement"))
    .into()
}

/// Encodes the key columns of each row; `None` for rows with a NULL in the
/// key, which unique indexes do not hold (NULLs are distinct, as in SQL).
pub fn encode_keys(batch: &RecordBatch, columns: &[usize]) -> Result<Vec<Option<IndexKey>>> {
    let arrays: Vec<ArrayRef> = columns.iter().map(|&c| batch.column(c).clone()).collect();
    encode_key_arrays(&arrays, batch.num_rows())
}

/// [`encode_keys`] of arrays of `rows` values each.
pub(crate) fn encode_key_arrays(arrays: &[ArrayRef], rows: usize) -> Result<Vec<Option<IndexKey>>> {
    let mut keys: Vec<Option<IndexKey>> = std::iter::repeat_with(|| None).take(rows).collect();
    for_each_key(arrays, rows, |r, key| keys[r] = Some(key))?;
    Ok(keys)
}

/// Rows whose keys are encoded together on their way into an index entry:
/// the encoder's buffer is reused while it is still in the CPU's cache,
/// instead of a bulk load's millions of keys being encoded at once into
/// memory the process touches for the first time, twice over (the encoded
/// rows, then a key per row), before each is copied into its entry.
const KEY_CHUNK_ROWS: usize = 8192;

/// Appends each row's key and row id to `entries`, skipping rows with a
/// NULL in a key column (NULLs never collide). `rowid` gives the row id of
/// the row at a position in `batch`.
fn push_index_entries(
    batch: &RecordBatch,
    columns: &[usize],
    rowid: impl Fn(usize) -> RowId,
    entries: &mut Vec<(IndexKey, RowId)>,
) -> Result<()> {
    let arrays: Vec<ArrayRef> = columns.iter().map(|&c| batch.column(c).clone()).collect();
    for_each_key(&arrays, batch.num_rows(), |r, key| {
        entries.push((key, rowid(r)))
    })
}

/// Hands `each` the position and key of every row of `arrays` (`rows`
/// values each) without a NULL in the key, keys encoded
/// [`KEY_CHUNK_ROWS`] at a time into one reused buffer.
fn for_each_key(
    arrays: &[ArrayRef],
    rows: usize,
    mut each: impl FnMut(usize, IndexKey),
) -> Result<()> {
    let converter = RowConverter::new(
        arrays
            .iter()
            .map(|a| SortField::new(a.data_type().clone()))
            .collect(),
    )?;
    let mut keys = converter.empty_rows(KEY_CHUNK_ROWS.min(rows), 0);
    for from in (0..rows).step_by(KEY_CHUNK_ROWS) {
        let chunk_rows = KEY_CHUNK_ROWS.min(rows - from);
        let chunk: Vec<ArrayRef> = arrays.iter().map(|a| a.slice(from, chunk_rows)).collect();
        keys.clear();
        converter.append(&mut keys, &chunk)?;
        let nullable: Vec<&ArrayRef> = chunk.iter().filter(|a| a.null_count() > 0).collect();
        for r in (0..chunk_rows).filter(|&r| !nullable.iter().any(|a| a.is_null(r))) {
            each(from + r, IndexKey::from_slice(keys.row(r).as_ref()));
        }
    }
    Ok(())
}

pub(crate) fn key_text(batch: &RecordBatch, columns: &[usize], row: usize) -> String {
    columns
        .iter()
        .map(|&c| value_text(batch.column(c), row))
        .collect::<Vec<_>>()
        .join(", ")
}

fn row_text(batch: &RecordBatch, row: usize) -> String {
    batch
        .columns()
        .iter()
        .map(|a| value_text(a, row))
        .collect::<Vec<_>>()
        .join(", ")
}

fn value_text(array: &ArrayRef, row: usize) -> String {
    if array.is_null(row) {
        return "null".into();
    }
    ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())
        .map(|f| f.value(row).to_string())
        .unwrap_or_default()
}

/// Calls `found` with the range of `sorted` (a column sorted ascending,
/// nulls last) holding each value of `values` (of its type; nulls equal
/// nothing). Values in ascending order (a join's keys, sorted once for
/// all segments) are searched for each from where the one before ended;
/// a value below the one before starts from the beginning again. Types
/// whose values compare natively do so without the dynamic comparator,
/// which cost a call per step.
fn equal_ranges(
    sorted: &dyn Array,
    values: &dyn Array,
    found: impl FnMut(std::ops::Range<usize>),
) -> Result<()> {
    let rows = sorted.len() - sorted.null_count();
    let valid = (0..values.len()).filter(|&v| values.is_valid(v));
    downcast_primitive_array!(
        sorted, values => {
            let (keys, wanted) = (sorted.values(), values.values());
            walk(rows, valid, |k, v| keys[k].compare(wanted[v]), found);
        }
        (DataType::Utf8, DataType::Utf8) => {
            let (keys, wanted) = (sorted.as_string::<i32>(), values.as_string::<i32>());
            walk(rows, valid, |k, v| keys.value(k).cmp(wanted.value(v)), found);
        },
        (DataType::LargeUtf8, DataType::LargeUtf8) => {
            let (keys, wanted) = (sorted.as_string::<i64>(), values.as_string::<i64>());
            walk(rows, valid, |k, v| keys.value(k).cmp(wanted.value(v)), found);
        },
        (DataType::Utf8View, DataType::Utf8View) => {
            let (keys, wanted) = (sorted.as_string_view(), values.as_string_view());
            walk(rows, valid, |k, v| keys.value(k).cmp(wanted.value(v)), found);
        },
        _ => {
            let compare = make_comparator(sorted, values, SortOptions::default())?;
            walk(rows, valid, compare, found);
        }
    );
    Ok(())
}

/// [`equal_ranges`]' search: `compare(k, v)` orders row `k` of the sorted
/// `0..rows` against wanted value `v`. Each value's rows are searched for
/// from where the one before ended, by [`gallop`]: a join's many keys
/// lie a few rows apart, and a binary search over all the rows left
/// took a cache miss a step for each.
fn walk(
    rows: usize,
    values: impl Iterator<Item = usize>,
    compare: impl Fn(usize, usize) -> std::cmp::Ordering,
    mut found: impl FnMut(std::ops::Range<usize>),
) {
    use std::cmp::Ordering::{Greater, Less};
    let mut from = 0;
    for v in values {
        if from > 0 && compare(from - 1, v) != Less {
            from = 0;
        }
        let start = from + gallop(rows - from, |k| compare(from + k, v) == Less);
        let end = start + gallop(rows - start, |k| compare(start + k, v) != Greater);
        found(start..end);
        from = end;
    }
}

/// [`partition_point`] for a point that lies near the start: steps of
/// doubling length from 0 find a range that holds it, and a binary
/// search finds it within that range.
fn gallop(len: usize, below: impl Fn(usize) -> bool) -> usize {
    let mut bound = 1;
    while bound <= len && below(bound - 1) {
        bound *= 2;
    }
    // `below` holds before `low`; the point is at `high` or before.
    let (low, high) = (bound / 2, bound.min(len));
    low + partition_point(high - low, |k| below(low + k))
}

/// The first of `0..len` where `below` turns false, for a `below` that
/// holds up to some point and not after it: a binary search over what is
/// not a slice (an Arrow array's rows).
pub fn partition_point(len: usize, below: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if below(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gallop_finds_what_partition_point_finds() {
        for len in 0..70 {
            for point in 0..=len {
                let below = |k: usize| k < point;
                assert_eq!(gallop(len, below), point, "{len} {point}");
                assert_eq!(partition_point(len, below), point, "{len} {point}");
            }
        }
    }
    use crate::catalog::{ColumnDef, PgType, TableId};
    use datafusion::arrow::array::{Int32Array, StringArray};
    use datafusion::arrow::datatypes::Int32Type;

    fn def() -> TableDef {
        TableDef {
            id: TableId(1),
            columns: vec![
                ColumnDef {
                    name: "id".into(),
                    ty: PgType::Int4,
                    nullable: false,
                    default: None,
                },
                ColumnDef {
                    name: "v".into(),
                    ty: PgType::Text,
                    nullable: true,
                    default: None,
                },
            ],
            indexes: vec![IndexDef {
                name: "t_pkey".into(),
                columns: vec!["id".into()],
                unique: true,
                primary: true,
            }],
            version: 0,
            time_series: None,
        }
    }

    fn rows(ids: &[i32]) -> RecordBatch {
        RecordBatch::try_new(
            def().schema(),
            vec![
                Arc::new(Int32Array::from(ids.to_vec())),
                Arc::new(StringArray::from(
                    ids.iter().map(|i| Some(i.to_string())).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    #[test]
    fn a_column_is_ascending_if_no_value_falls_and_none_is_null() {
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
            datafusion::arrow::datatypes::Field::new("a", DataType::Int32, true),
            datafusion::arrow::datatypes::Field::new("b", DataType::Int32, true),
            datafusion::arrow::datatypes::Field::new("c", DataType::Int32, true),
            datafusion::arrow::datatypes::Field::new("s", DataType::Utf8, false),
            datafusion::arrow::datatypes::Field::new("f", DataType::Float64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![1, 2, 2, 5])),
                Arc::new(Int32Array::from(vec![1, 3, 2, 5])),
                Arc::new(Int32Array::from(vec![Some(1), Some(2), None, Some(5)])),
                Arc::new(StringArray::from(vec!["a", "ab", "b", "b"])),
                Arc::new(datafusion::arrow::array::Float64Array::from(vec![
                    1.0, 2.0, 3.0, 4.0,
                ])),
            ],
        )
        .unwrap();
        let segment = Segment::new(batch, None);
        let ascending: Vec<bool> = (0..5).map(|i| segment.ascending(i)).collect();
        // Ties keep the order; a fall, a null or a float does not.
        assert_eq!(ascending, [true, false, false, true, false]);
        let one = Segment::new(rows(&[7]), None);
        assert!(one.ascending(0));
    }

    /// Bounds taken from a Parquet file's statistics are the ones worked
    /// out from the rows; text the statistics cut short, nulls only and
    /// fixed-width columns are left to be worked out.
    #[test]
    fn bounds_come_from_exact_parquet_statistics() {
        use datafusion::arrow::array::Decimal128Array;
        use datafusion::parquet::arrow::ArrowWriter;
        let long = |c: &str| c.repeat(100);
        let batch = RecordBatch::try_from_iter([
            ("n", Arc::new(Int32Array::from(vec![3, 1, 2])) as ArrayRef),
            (
                "s",
                Arc::new(StringArray::from(vec!["b", "é", "a"])) as ArrayRef,
            ),
            (
                "long",
                Arc::new(StringArray::from(vec![long("x"), long("y"), long("z")])) as ArrayRef,
            ),
            (
                "none",
                Arc::new(StringArray::from(vec![None::<&str>; 3])) as ArrayRef,
            ),
            (
                "d",
                Arc::new(
                    Decimal128Array::from(vec![-150, 2000, 7])
                        .with_precision_and_scale(15, 2)
                        .unwrap(),
                ) as ArrayRef,
            ),
        ])
        .unwrap();
        let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        let metadata = writer.finish().unwrap();

        let taken = Segment::new(batch.clone(), None);
        taken.take_bounds(&metadata, &batch.schema());
        let set: Vec<bool> = taken.bounds.iter().map(|b| b.get().is_some()).collect();
        assert_eq!(set, [false, true, false, false, true]);
        let computed = Segment::new(batch, None);
        for i in 0..5 {
            let (a, b) = (taken.bounds(i), computed.bounds(i));
            assert_eq!(
                a.map(|b| (&b.min, &b.max)),
                b.map(|b| (&b.min, &b.max)),
                "{i}"
            );
        }
        let s = taken.bounds(1).unwrap();
        assert_eq!(
            (&s.min, &s.max),
            (&ScalarValue::from("a"), &ScalarValue::from("é"))
        );
    }

    /// A fall is found wherever it is: at either side of where one stretch
    /// of compared pairs ends and the next begins, and at the very end.
    #[test]
    fn a_fall_is_found_in_any_stretch() {
        let n = 2 * ASCENDING_STRETCH_ROWS as i32 + 3;
        let values: Vec<i32> = (0..n).collect();
        assert!(Segment::new(rows(&values), None).ascending(0));
        let stretch = ASCENDING_STRETCH_ROWS;
        for at in [
            1,
            stretch - 1,
            stretch,
            stretch + 1,
            2 * stretch,
            n as usize - 1,
        ] {
            let mut fallen = values.clone();
            fallen[at] = fallen[at - 1] - 1;
            assert!(!Segment::new(rows(&fallen), None).ascending(0), "{at}");
        }
    }

    #[test]
    fn insert_delete_and_unique_keys() {
        let def = def();
        let mut t = TableData::new(&def, vec![], 0).unwrap();
        assert_eq!(t.insert(&def, "t", rows(&[1, 2, 3])).unwrap(), 3);
        let dup = t.clone().insert(&def, "t", rows(&[4, 2])).unwrap_err();
        assert!(dup.to_string().contains("t_pkey"), "{dup}");
        assert_eq!(t.delete(&[1]).unwrap(), 1);
        // The key of a deleted row is free again.
        assert_eq!(t.insert(&def, "t", rows(&[2])).unwrap(), 1);
        assert_eq!(t.row_count(), 3);
        let again = t.clone().delete(&[1]).unwrap_err();
        assert!(again.to_string().contains("serialize"), "{again}");
    }

    /// Keys go into an index a chunk of rows at a time: each must still
    /// map to its own row's id in every chunk, whether the rows come in one
    /// insert or are indexed anew from segments, and a NULL key is left
    /// out wherever it falls.
    #[test]
    fn keys_of_many_chunks_map_to_their_own_rows() {
        let mut def = def();
        def.indexes.push(IndexDef {
            name: "t_v_key".into(),
            columns: vec!["v".into()],
            unique: true,
            primary: false,
        });
        let n = 2 * KEY_CHUNK_ROWS as i32 + 7;
        let ids: Vec<i32> = (0..n).collect();
        let v: Vec<Option<String>> = ids
            .iter()
            .map(|i| (i % 3 != 0).then(|| i.to_string()))
            .collect();
        let batch = RecordBatch::try_new(
            def.schema(),
            vec![
                Arc::new(Int32Array::from(ids)),
                Arc::new(StringArray::from(v)),
            ],
        )
        .unwrap();
        let first: RowId = 100;
        let mut inserted = TableData::new(&def, vec![], first).unwrap();
        inserted.insert(&def, "t", batch.clone()).unwrap();
        let rebuilt = TableData::new(&def, inserted.segments.clone(), inserted.next_rowid).unwrap();
        let chunk = KEY_CHUNK_ROWS as i32;
        // The whole batch's keys at once, as a uniqueness check encodes them.
        let all = encode_keys(&batch, &[1]).unwrap();
        assert_eq!(all.len(), n as usize);
        for data in [&inserted, &rebuilt] {
            for i in [0, 1, 2, chunk - 1, chunk, chunk + 1, 2 * chunk + 2, n - 1] {
                let key = |column| {
                    encode_keys(&rows(&[i]), &[column]).unwrap()[0]
                        .clone()
                        .unwrap()
                };
                let rowid = first + i as RowId;
                assert_eq!(data.unique[0].keys.get(&key(0)), Some(rowid), "id {i}");
                let expected = (i % 3 != 0).then_some(rowid);
                assert_eq!(data.unique[1].keys.get(&key(1)), expected, "v {i}");
                let alone = encode_keys(&rows(&[i]), &[1]).unwrap().remove(0);
                let want = if i % 3 != 0 { alone } else { None };
                assert_eq!(all[i as usize], want, "v {i} encoded with the rest");
            }
        }
    }

    #[test]
    fn memtable_segments_are_bounded() {
        let def = def();
        let mut t = TableData::new(&def, vec![], 0).unwrap();
        for i in 0..3000 {
            t.insert(&def, "t", rows(&[i])).unwrap();
        }
        // Two full segments and the rest, 952 rows, as a binary counter
        // holds it: 512 + 256 + 128 + 32 + 16 + 8.
        let sizes: Vec<usize> = t.segments.iter().map(|s| s.batch.num_rows()).collect();
        assert_eq!(sizes, [1024, 1024, 512, 256, 128, 32, 16, 8]);
        let ids: Vec<RowId> = t
            .segments
            .iter()
            .flat_map(|s| s.rowids().values().to_vec())
            .collect();
        assert_eq!(
            ids,
            (0..3000).collect::<Vec<RowId>>(),
            "segments keep row ids in order"
        );
        let ids: Vec<RowId> = (0..3000).step_by(7).collect();
        t.delete(&ids).unwrap();
        assert_eq!(t.row_count(), 3000 - ids.len());
    }

    /// A delete keeps long runs of a segment's rows as slices sharing its
    /// memory and copies only the stretches between them; whatever pieces
    /// a segment breaks into, the table keeps exactly its other rows, in
    /// order, found by id and by key.
    #[test]
    fn deletes_slice_long_runs_and_copy_the_rest() {
        let def = def();
        let n = 10 * DELETE_SLICE_ROWS_MIN;
        let ids: Vec<i32> = (0..n as i32).collect();
        let mut t = TableData::new(&def, vec![], 0).unwrap();
        t.insert(&def, "t", rows(&ids)).unwrap();
        assert_eq!(t.segments.len(), 1);
        let values = |s: &Segment| s.batch.column(0).to_data().buffers()[0].data_ptr();
        let shared = values(&t.segments[0]);
        let (_, before) = t.segments[0].rowid_range();

        // One row from the middle: two slices, nothing copied.
        t.delete(&[5000]).unwrap();
        let lengths: Vec<usize> = t.segments.iter().map(|s| s.batch.num_rows()).collect();
        assert_eq!(lengths, [5000, n - 5001]);
        assert!(t.segments.iter().all(|s| values(s) == shared));
        assert_eq!(t.segments[1].rowid_range(), (5001, before));

        // One near an end: the short stretch before it is copied.
        t.delete(&[10]).unwrap();
        let lengths: Vec<usize> = t.segments.iter().map(|s| s.batch.num_rows()).collect();
        assert_eq!(lengths, [10, 4989, n - 5001]);
        assert_ne!(values(&t.segments[0]), shared);
        assert!(t.segments[1..].iter().all(|s| values(s) == shared));

        // Rows chipped off one run one at a time: the short pieces merge.
        let mut gone: Vec<RowId> = vec![5000, 10];
        for id in (5006..5200).step_by(6) {
            t.delete(&[id]).unwrap();
            gone.push(id);
        }
        assert_eq!(t.segments.len(), 4);

        // Many, scattered: no two short pieces that fit in one side by side.
        let mut x: u64 = 7;
        for _ in 0..40 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let id = (x >> 33) % n as u64;
            if !gone.contains(&id) {
                t.delete(&[id]).unwrap();
                gone.push(id);
            }
        }
        t.delete(&[3, 4, 5, 2000, 2001]).unwrap();
        gone.extend([3, 4, 5, 2000, 2001]);
        let kept: Vec<i32> = ids
            .iter()
            .copied()
            .filter(|&i| !gone.contains(&(i as u64)))
            .collect();
        let scanned: Vec<i32> = t
            .segments
            .iter()
            .flat_map(|s| {
                s.batch
                    .column(0)
                    .as_primitive::<Int32Type>()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(scanned, kept);
        for pair in t.segments.windows(2) {
            let rows = pair[0].batch.num_rows() + pair[1].batch.num_rows();
            assert!(rows > DELETE_SLICE_ROWS_MIN, "two short pieces in a row");
        }
        for segment in &t.segments {
            let ids = segment.rowids().values();
            assert_eq!(segment.rowid_range(), (ids[0], ids[ids.len() - 1]));
        }
        assert_eq!(t.rows(&[6, 9999]).unwrap().num_rows(), 2);
        assert!(t.clone().delete(&[5000]).is_err(), "row 5000 is gone");
        // Their keys are free again, the others' are not.
        t.insert(&def, "t", rows(&[5000])).unwrap();
        assert!(t.insert(&def, "t", rows(&[6])).is_err());
    }

    /// A time series over a date column, partitioned by 10 days, keyed by id.
    fn series() -> TableDef {
        TableDef {
            columns: vec![
                def().columns[0].clone(),
                ColumnDef {
                    name: "day".into(),
                    ty: PgType::Date,
                    nullable: false,
                    default: None,
                },
            ],
            time_series: Some(TimeSeriesDef {
                time_column: "day".into(),
                partition_interval_us: 10 * 86_400_000_000,
                retention_us: None,
            }),
            ..def()
        }
    }

    fn days(rows: &[(i32, i32)]) -> RecordBatch {
        RecordBatch::try_new(
            series().schema(),
            vec![
                Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(datafusion::arrow::array::Date32Array::from_iter_values(
                    rows.iter().map(|r| r.1),
                )),
            ],
        )
        .unwrap()
    }

    fn partitions(t: &TableData) -> Vec<(i64, usize)> {
        let day_us = 86_400_000_000;
        t.segments
            .iter()
            .map(|s| (s.partition.unwrap() / day_us, s.batch.num_rows()))
            .collect()
    }

    #[test]
    fn a_time_series_keeps_partitions_apart_and_in_order() {
        let def = series();
        let mut t = TableData::new(&def, vec![], 0).unwrap();
        // Days 25, 3, 12, -1 and 14: partitions 20, 0, 10, -10 and 10.
        t.insert(
            &def,
            "s",
            days(&[(1, 25), (2, 3), (3, 12), (4, -1), (5, 14)]),
        )
        .unwrap();
        assert_eq!(partitions(&t), [(-10, 1), (0, 1), (10, 2), (20, 1)]);
        // Late rows join their partitions; a key is still unique across them.
        t.insert(&def, "s", days(&[(6, 5), (7, 29)])).unwrap();
        assert_eq!(partitions(&t), [(-10, 1), (0, 2), (10, 2), (20, 2)]);
        assert!(t.clone().insert(&def, "s", days(&[(1, 40)])).is_err());
        // A segment sorted by time, as a snapshot writes it: row ids out of
        // order. Rows are still found and deleted by id.
        let sorted = Segment::in_partition(
            concat_batches(&t.segments[3].batch.schema(), [&t.segments[3].batch])
                .map(|b| {
                    let order = UInt32Array::from(vec![1, 0]);
                    datafusion::arrow::compute::take_record_batch(&b, &order).unwrap()
                })
                .unwrap(),
            None,
            t.segments[3].partition,
        );
        // Row ids follow partition order: ids 4, 2, 3, 5, 1 got 0-4.
        assert_eq!(sorted.rowids().values().to_vec(), vec![6, 4]);
        assert_eq!(sorted.rowid_range(), (4, 6));
        t.segments[3] = Arc::new(sorted);
        let found = t.rows(&[6, 0, 2]).unwrap();
        let ids = found
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int32Type>();
        assert_eq!(ids.values().to_vec(), vec![7, 4, 3]);
        assert_eq!(t.delete(&[0, 4]).unwrap(), 2);
        assert!(t.clone().delete(&[4]).is_err(), "row 4 is gone");
        assert_eq!(partitions(&t), [(0, 2), (10, 2), (20, 1)]);
        // Expiry drops whole partitions that end at or before the cutoff,
        // and their keys: partition 0 ends on day 10.
        let day_us = 86_400_000_000;
        let ts = def.time_series.clone().unwrap();
        assert_eq!(t.expire(&ts, 10 * day_us - 1).unwrap(), 0);
        assert_eq!(t.expire(&ts, 10 * day_us).unwrap(), 2);
        assert_eq!(partitions(&t), [(10, 2), (20, 1)]);
        t.insert(&def, "s", days(&[(2, 50), (4, 51)])).unwrap();
        assert_eq!(t.row_count(), 5);
    }

    #[test]
    fn derived_columns_are_kept_while_they_fit() {
        let segment = Segment::new(rows(&[1, 2, 3]), None);
        let computed = std::cell::Cell::new(0);
        let lengths = |batch: &RecordBatch| -> std::result::Result<ArrayRef, ()> {
            computed.set(computed.get() + 1);
            let v = batch.column(1).as_string::<i32>();
            Ok(Arc::new(Int32Array::from_iter_values(
                v.iter().map(|s| s.map_or(0, |s| s.len() as i32)),
            )))
        };
        let first = segment.derived("len(#1)", lengths).unwrap();
        let again = segment.derived("len(#1)", lengths).unwrap();
        assert_eq!(computed.get(), 1, "the second scan reads the kept column");
        assert_eq!(first.as_ref(), again.as_ref());
        // An error is the caller's, and nothing is kept.
        assert!(segment.derived("bad", |_| Err(())).is_err());
        // A column bigger than the segment's own rows is worked out each time.
        let huge = |batch: &RecordBatch| -> std::result::Result<ArrayRef, ()> {
            computed.set(computed.get() + 1);
            let bytes = batch.get_array_memory_size();
            Ok(Arc::new(StringArray::from(vec![
                Some("x".repeat(bytes));
                batch.num_rows()
            ])))
        };
        segment.derived("huge", huge).unwrap();
        segment.derived("huge", huge).unwrap();
        assert_eq!(computed.get(), 3);
    }

    #[test]
    fn lookups_find_the_positions_of_values_in_row_order() {
        let schema = Arc::new(Schema::new(vec![
            datafusion::arrow::datatypes::Field::new("n", DataType::Int64, true),
            datafusion::arrow::datatypes::Field::new("s", DataType::Utf8, true),
        ]));
        let n: ArrayRef = Arc::new(datafusion::arrow::array::Int64Array::from(vec![
            Some(5),
            Some(3),
            None,
            Some(5),
            Some(9),
            Some(3),
        ]));
        let s: ArrayRef = Arc::new(StringArray::from(vec![
            Some("b"),
            None,
            Some("a"),
            Some("b"),
            Some("c"),
            Some("a"),
        ]));
        let segment = Segment::new(RecordBatch::try_new(schema, vec![n, s]).unwrap(), None);
        let looked_up = |i: usize, values: ArrayRef| -> Vec<u32> {
            segment.positions_of(i, &values).unwrap().values().to_vec()
        };
        let numbers = |v: Vec<Option<i64>>| -> ArrayRef {
            Arc::new(datafusion::arrow::array::Int64Array::from(v))
        };
        // A value listed twice, one in no row, and NULL, which equals nothing.
        assert_eq!(
            looked_up(0, numbers(vec![Some(5), Some(3), Some(7), Some(5), None])),
            [0, 1, 3, 5]
        );
        assert_eq!(looked_up(0, numbers(vec![Some(9)])), [4]);
        assert_eq!(
            looked_up(0, numbers(vec![Some(1), Some(10)])),
            [] as [u32; 0]
        );
        let texts: ArrayRef = Arc::new(StringArray::from(vec!["a", "c"]));
        assert_eq!(looked_up(1, texts), [2, 4, 5]);
        // Values in descending order are each searched from the start.
        let texts: ArrayRef = Arc::new(StringArray::from(vec!["c", "b", "a"]));
        assert_eq!(looked_up(1, texts), [0, 2, 3, 4, 5]);
        // The sorted positions and values are kept for the next lookup.
        assert!(segment.lock_derived().columns.len() == 4);
    }
}
