//! A table's rows in memory: copy-on-write segments plus its unique indexes.
//!
//! ```text
//!  TableData ── segments: [Seg(file a.parquet) | Seg(file b.parquet) | Seg(memtable) ]
//!            │             rowids ascending across and within segments
//!            └─ unique indexes: key bytes -> rowid  (persistent maps, cheap to clone)
//! ```
//!
//! Every change makes a new `TableData` that shares untouched segments with
//! the old one, so a reader holding the old one keeps a consistent view while
//! writers go on. A segment without a file is not yet durable in Parquet; the
//! Raft log holds it until the next snapshot writes it out.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, UInt64Array};
use datafusion::arrow::compute::{concat_batches, filter_record_batch};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::ScalarValue;
use datafusion::functions_aggregate::min_max::{MaxAccumulator, MinAccumulator};
use datafusion::logical_expr::Accumulator;

use crate::catalog::{IndexDef, RowId, TableDef};
use crate::error::{Rejection, RejectionKind, Result};

/// A memtable segment takes appended rows while smaller than this; past it a
/// new segment starts, so one insert never copies more than this many rows.
pub const MEMTABLE_SEGMENT_ROWS_MAX: usize = 1024;
/// Compaction merges adjacent segments up to this many rows.
pub const SEGMENT_ROWS_TARGET: usize = 128 * 1024;

#[derive(Debug)]
pub struct Segment {
    /// Rows in the table's stored schema: user columns, row id last.
    pub batch: RecordBatch,
    /// The Parquet file holding exactly these rows, relative to the data
    /// directory, or none while they live only in memory and the log.
    pub file: Option<String>,
    /// Each column's least and greatest value, worked out the first time a
    /// scan asks (segments never change), so that a scan skips segments
    /// its filters rule out: rows arrive in time order, so a segment of a
    /// time series covers a stretch of time.
    bounds: Vec<OnceLock<Option<Bounds>>>,
}

/// A column's least and greatest non-null value in one segment.
#[derive(Debug, Clone)]
pub struct Bounds {
    pub min: ScalarValue,
    pub max: ScalarValue,
}

impl Segment {
    pub fn new(batch: RecordBatch, file: Option<String>) -> Self {
        let bounds = (0..batch.num_columns()).map(|_| OnceLock::new()).collect();
        Segment {
            batch,
            file,
            bounds,
        }
    }

    /// Column `i`'s bounds; `None` for types without an order DataFusion
    /// can take the least of, or a column of nulls only.
    pub fn bounds(&self, i: usize) -> Option<&Bounds> {
        self.bounds[i]
            .get_or_init(|| {
                let column = std::slice::from_ref(self.batch.column(i));
                let data_type = column[0].data_type();
                let mut min = MinAccumulator::try_new(data_type).ok()?;
                let mut max = MaxAccumulator::try_new(data_type).ok()?;
                min.update_batch(column).ok()?;
                max.update_batch(column).ok()?;
                let (min, max) = (min.evaluate().ok()?, max.evaluate().ok()?);
                (!min.is_null() && !max.is_null()).then_some(Bounds { min, max })
            })
            .as_ref()
    }

    pub fn rowids(&self) -> &UInt64Array {
        let column = self.batch.column(self.batch.num_columns() - 1);
        column
            .as_any()
            .downcast_ref::<UInt64Array>()
            .expect("the last stored column is the row id")
    }

    fn first_rowid(&self) -> RowId {
        self.rowids().value(0)
    }
}

/// One unique index (or the primary key): encoded key -> row id.
#[derive(Debug, Clone)]
pub struct UniqueIndex {
    pub name: String,
    pub columns: Vec<usize>,
    pub keys: imbl::HashMap<Vec<u8>, RowId>,
}

#[derive(Debug, Clone, Default)]
pub struct TableData {
    pub segments: Vec<Arc<Segment>>,
    pub unique: Vec<UniqueIndex>,
    pub next_rowid: RowId,
}

impl TableData {
    /// A table's data rebuilt from its segments, unique indexes included.
    pub fn new(def: &TableDef, segments: Vec<Arc<Segment>>, next_rowid: RowId) -> Result<Self> {
        let mut data = TableData {
            segments,
            unique: Vec::new(),
            next_rowid,
        };
        for index in def.indexes.iter().filter(|i| i.unique) {
            data.add_unique_index(def, index)?;
        }
        Ok(data)
    }

    pub fn row_count(&self) -> usize {
        self.segments.iter().map(|s| s.batch.num_rows()).sum()
    }

    pub fn batches(&self) -> Vec<RecordBatch> {
        self.segments.iter().map(|s| s.batch.clone()).collect()
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
        let mut unique = UniqueIndex {
            name: index.name.clone(),
            columns,
            keys: imbl::HashMap::new(),
        };
        for segment in &self.segments {
            let keys = encode_keys(&segment.batch, &unique.columns)?;
            let rowids = segment.rowids();
            for (row, key) in keys.into_iter().enumerate() {
                let Some(key) = key else { continue };
                if unique.keys.insert(key, rowids.value(row)).is_some() {
                    return Err(Rejection::new(
                        RejectionKind::UniqueViolation,
                        format!("could not create unique index \"{}\"", index.name),
                    )
                    .with_detail(format!(
                        "Key ({})=({}) is duplicated.",
                        index.columns.join(", "),
                        key_text(&segment.batch, &unique.columns, row)
                    ))
                    .into());
                }
            }
        }
        self.unique.push(unique);
        Ok(())
    }

    /// Appends rows (user schema) after checking NOT NULL and unique keys.
    /// Row ids are assigned here, in apply order.
    pub fn insert(&mut self, def: &TableDef, table_name: &str, rows: RecordBatch) -> Result<u64> {
        let n = rows.num_rows();
        if n == 0 {
            return Ok(0);
        }
        for (column, array) in def.columns.iter().zip(rows.columns()) {
            if !column.nullable && array.null_count() > 0 {
                let row = (0..n).find(|&r| array.is_null(r)).unwrap_or(0);
                return Err(Rejection::new(
                    RejectionKind::NotNullViolation,
                    format!(
                        "null value in column \"{}\" of relation \"{table_name}\" violates not-null constraint",
                        column.name
                    ),
                )
                .with_detail(format!("Failing row contains ({}).", row_text(&rows, row)))
                .into());
            }
        }
        let first = self.next_rowid;
        let rowids: ArrayRef = Arc::new(UInt64Array::from_iter_values(first..first + n as u64));
        for index in &mut self.unique {
            let keys = encode_keys(&rows, &index.columns)?;
            for (row, key) in keys.into_iter().enumerate() {
                let Some(key) = key else { continue };
                if index.keys.insert(key, first + row as u64).is_some() {
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
                        key_text(&rows, &index.columns, row)
                    ))
                    .into());
                }
            }
        }
        let mut columns = rows.columns().to_vec();
        columns.push(rowids);
        let batch = RecordBatch::try_new(def.stored_schema(), columns)?;
        self.next_rowid += n as u64;
        self.append(batch)?;
        Ok(n as u64)
    }

    fn append(&mut self, batch: RecordBatch) -> Result<()> {
        if let Some(last) = self.segments.last()
            && last.file.is_none()
            && last.batch.num_rows() < MEMTABLE_SEGMENT_ROWS_MAX
        {
            let merged = concat_batches(&batch.schema(), [&last.batch, &batch])?;
            *self.segments.last_mut().expect("checked above") =
                Arc::new(Segment::new(merged, None));
        } else {
            self.segments.push(Arc::new(Segment::new(batch, None)));
        }
        Ok(())
    }

    /// Deletes rows by id. A row id that is not there means the command was
    /// planned against a state that has since changed.
    pub fn delete(&mut self, rowids: &[RowId]) -> Result<u64> {
        let mut sorted = rowids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut i = 0;
        while i < sorted.len() {
            let seg_idx = self
                .segments
                .partition_point(|s| s.first_rowid() <= sorted[i])
                .checked_sub(1)
                .ok_or_else(|| missing_row(sorted[i]))?;
            let segment = self.segments[seg_idx].clone();
            let ids = segment.rowids();
            let last_in_segment = ids.value(ids.len() - 1);
            let mut keep = vec![true; ids.len()];
            while i < sorted.len() && sorted[i] <= last_in_segment {
                let pos = ids
                    .values()
                    .binary_search(&sorted[i])
                    .map_err(|_| missing_row(sorted[i]))?;
                keep[pos] = false;
                i += 1;
            }
            let deleted_mask = BooleanArray::from(keep.iter().map(|k| !k).collect::<Vec<_>>());
            let deleted = filter_record_batch(&segment.batch, &deleted_mask)?;
            for index in &mut self.unique {
                for key in encode_keys(&deleted, &index.columns)?.into_iter().flatten() {
                    index.keys.remove(&key);
                }
            }
            let kept = filter_record_batch(&segment.batch, &BooleanArray::from(keep))?;
            if kept.num_rows() == 0 {
                self.segments.remove(seg_idx);
            } else {
                self.segments[seg_idx] = Arc::new(Segment::new(kept, None));
            }
        }
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
        let mut parts = Vec::with_capacity(rowids.len());
        for &rowid in rowids {
            let seg_idx = self
                .segments
                .partition_point(|s| s.first_rowid() <= rowid)
                .checked_sub(1)
                .ok_or_else(|| missing_row(rowid))?;
            let segment = &self.segments[seg_idx];
            let pos = segment
                .rowids()
                .values()
                .binary_search(&rowid)
                .map_err(|_| missing_row(rowid))?;
            parts.push(segment.batch.slice(pos, 1));
        }
        Ok(concat_batches(&schema, &parts)?)
    }

    /// Looks a key up in the unique index over exactly these columns.
    pub fn lookup_unique(&self, columns: &[usize], key: &[u8]) -> Option<RowId> {
        self.unique
            .iter()
            .find(|u| u.columns == columns)
            .and_then(|u| u.keys.get(key).copied())
    }
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
pub fn encode_keys(batch: &RecordBatch, columns: &[usize]) -> Result<Vec<Option<Vec<u8>>>> {
    let arrays: Vec<ArrayRef> = columns.iter().map(|&c| batch.column(c).clone()).collect();
    let converter = RowConverter::new(
        arrays
            .iter()
            .map(|a| SortField::new(a.data_type().clone()))
            .collect(),
    )?;
    let rows = converter.convert_columns(&arrays)?;
    Ok((0..batch.num_rows())
        .map(|r| {
            if arrays.iter().any(|a| a.is_null(r)) {
                None
            } else {
                Some(rows.row(r).as_ref().to_vec())
            }
        })
        .collect())
}

fn key_text(batch: &RecordBatch, columns: &[usize], row: usize) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ColumnDef, PgType, TableId};
    use datafusion::arrow::array::{Int32Array, StringArray};

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

    #[test]
    fn memtable_segments_are_bounded() {
        let def = def();
        let mut t = TableData::new(&def, vec![], 0).unwrap();
        for i in 0..3000 {
            t.insert(&def, "t", rows(&[i])).unwrap();
        }
        assert!(t.segments.len() >= 3000 / MEMTABLE_SEGMENT_ROWS_MAX);
        assert!(
            t.segments
                .iter()
                .all(|s| s.batch.num_rows() <= MEMTABLE_SEGMENT_ROWS_MAX)
        );
        let ids: Vec<RowId> = (0..3000).step_by(7).collect();
        t.delete(&ids).unwrap();
        assert_eq!(t.row_count(), 3000 - ids.len());
    }
}
