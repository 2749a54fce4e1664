//! A table scan that tells the optimizer what its columns hold.
//!
//! A stored table's rows are in memory, so its scan is DataFusion's
//! [`MemorySourceConfig`]. Alone, that reports row counts and null counts
//! and nothing about values, and DataFusion then assumes every join key
//! distinct: in TPC-H q18 it took the 6-million-row join of customers,
//! orders and line items for the small side of a semi join and built a
//! half-gigabyte hash table from it. [`TableSource`] wraps the memory
//! source and adds, per column, the least and greatest value and an
//! estimate of the distinct values, both worked out once per segment
//! (segments never change; see [`Segment::bounds`] and
//! [`Segment::distinct`]) and merged per scan the first time the optimizer
//! asks.
//!
//! Everything else (reading, repartitioning, limits, projections) is the
//! memory source's; whatever it returns is wrapped again.

use std::fmt;
use std::sync::{Arc, OnceLock};

use ciab_storage::Segment;
use ciab_storage::sketch::DistinctSketch;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{ColumnStatistics, Statistics};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::{DataSource, DataSourceExec};
use datafusion::error::Result as DfResult;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, LexOrdering, PhysicalExpr};
use datafusion::physical_plan::projection::ProjectionExprs;
use datafusion::physical_plan::{
    DisplayFormatType, ExecutionPlan, Partitioning, SendableRecordBatchStream,
};

/// What a scan's segments say about each stored column, shared by every
/// copy of the scan the optimizer makes.
#[derive(Debug)]
struct Columns {
    segments: Vec<Arc<Segment>>,
    /// Stored columns whose values are unique (a one-column unique index):
    /// as many distinct values as non-null rows.
    unique: Vec<usize>,
    statistics: Vec<OnceLock<ColumnStatistics>>,
}

impl Columns {
    fn column(&self, i: usize) -> &ColumnStatistics {
        self.statistics[i].get_or_init(|| column_statistics(&self.segments, &self.unique, i))
    }
}

/// Stored column `i`'s least and greatest value and distinct values over
/// `segments`, of which `unique` lists the columns with a one-column
/// unique index.
pub(crate) fn column_statistics(
    segments: &[Arc<Segment>],
    unique: &[usize],
    i: usize,
) -> ColumnStatistics {
    let mut bounds = segments.iter().map(|s| s.bounds(i));
    // A segment without bounds (all nulls, or a type without an order)
    // leaves the column's range unknown.
    let (min, max) = match bounds.next().flatten() {
        Some(first) => bounds.try_fold((first.min.clone(), first.max.clone()), |(min, max), b| {
            let b = b?;
            let min = if b.min < min { b.min.clone() } else { min };
            let max = if b.max > max { b.max.clone() } else { max };
            Some((min, max))
        }),
        None => None,
    }
    .map_or((Precision::Absent, Precision::Absent), |(min, max)| {
        (Precision::Inexact(min), Precision::Inexact(max))
    });
    let non_null: usize = segments
        .iter()
        .map(|s| s.batch.num_rows() - s.batch.column(i).null_count())
        .sum();
    let distinct = if unique.contains(&i) {
        Some(non_null)
    } else {
        segments
            .iter()
            .try_fold(DistinctSketch::default(), |mut all, s| {
                all.merge(s.distinct(i)?);
                Some(all)
            })
            .map(|sketch| sketch.estimate().min(non_null))
    };
    ColumnStatistics {
        min_value: min,
        max_value: max,
        distinct_count: distinct.map_or(Precision::Absent, Precision::Inexact),
        ..ColumnStatistics::new_unknown()
    }
}

/// A memory scan over a table's segments, with their column statistics.
#[derive(Debug, Clone)]
pub(crate) struct TableSource {
    inner: MemorySourceConfig,
    columns: Arc<Columns>,
}

impl TableSource {
    /// The scan of `inner`, whose batches are `segments`' in the stored
    /// schema (before `inner`'s projection).
    pub(crate) fn exec(
        inner: MemorySourceConfig,
        segments: Vec<Arc<Segment>>,
        unique: Vec<usize>,
    ) -> Arc<dyn ExecutionPlan> {
        let width = inner.original_schema().fields().len();
        let columns = Columns {
            segments,
            unique,
            statistics: (0..width).map(|_| OnceLock::new()).collect(),
        };
        DataSourceExec::from_data_source(TableSource {
            inner,
            columns: Arc::new(columns),
        })
    }

    /// `inner` (a changed copy of this scan's memory source) with this
    /// scan's column statistics.
    fn wrap(&self, inner: Arc<dyn DataSource>) -> Arc<dyn DataSource> {
        match inner.downcast_ref::<MemorySourceConfig>() {
            Some(memory) => Arc::new(TableSource {
                inner: memory.clone(),
                columns: Arc::clone(&self.columns),
            }),
            None => inner,
        }
    }
}

impl DataSource for TableSource {
    fn open(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        self.inner.open(partition, context)
    }

    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        self.inner.fmt_as(t, f)
    }

    fn repartitioned(
        &self,
        target_partitions: usize,
        repartition_file_min_size: usize,
        output_ordering: Option<LexOrdering>,
    ) -> DfResult<Option<Arc<dyn DataSource>>> {
        Ok(self
            .inner
            .repartitioned(
                target_partitions,
                repartition_file_min_size,
                output_ordering,
            )?
            .map(|inner| self.wrap(inner)))
    }

    fn output_partitioning(&self) -> Partitioning {
        self.inner.output_partitioning()
    }

    fn eq_properties(&self) -> EquivalenceProperties {
        self.inner.eq_properties()
    }

    fn scheduling_type(&self) -> datafusion::physical_plan::execution_plan::SchedulingType {
        self.inner.scheduling_type()
    }

    fn partition_statistics(&self, partition: Option<usize>) -> DfResult<Arc<Statistics>> {
        let statistics = self.inner.partition_statistics(partition)?;
        if partition.is_some() {
            return Ok(statistics);
        }
        let mut statistics = Arc::unwrap_or_clone(statistics);
        let stored: Vec<usize> = match self.inner.projection() {
            Some(projection) => projection.clone(),
            None => (0..statistics.column_statistics.len()).collect(),
        };
        assert_eq!(stored.len(), statistics.column_statistics.len());
        for (column, &i) in statistics.column_statistics.iter_mut().zip(&stored) {
            let known = self.columns.column(i);
            column.min_value = known.min_value.clone();
            column.max_value = known.max_value.clone();
            column.distinct_count = known.distinct_count;
        }
        Ok(Arc::new(statistics))
    }

    fn with_fetch(&self, limit: Option<usize>) -> Option<Arc<dyn DataSource>> {
        self.inner.with_fetch(limit).map(|inner| self.wrap(inner))
    }

    fn fetch(&self) -> Option<usize> {
        self.inner.fetch()
    }

    fn try_swapping_with_projection(
        &self,
        projection: &ProjectionExprs,
    ) -> DfResult<Option<Arc<dyn DataSource>>> {
        Ok(self
            .inner
            .try_swapping_with_projection(projection)?
            .map(|inner| self.wrap(inner)))
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        self.inner.apply_expressions(f)
    }
}
