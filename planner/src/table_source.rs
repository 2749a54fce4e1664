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
//!
//! A scan also knows which columns its segments hold in order, but tells
//! DataFusion only where an aggregation reads it ([`SortedAggregates`]).
//!
//! A hash join offers the scan of its probe side a filter of the keys its
//! build side holds, filled in once that side is built (DataFusion's
//! dynamic filters), and ciab taps the keys themselves
//! ([`crate::key_taps`]). Where they are few of the scan's column's values
//! and the column of many values (a graph's hop from a few vertices along
//! ten million edges), the scan looks them up in each segment
//! ([`crate::lookups`]) instead of giving the join every row to probe.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use ciab_storage::Segment;
use ciab_storage::sketch::DistinctSketch;
use datafusion::arrow::array::{RecordBatch, UInt32Array};
use datafusion::arrow::compute::{SortOptions, take_record_batch};
use datafusion::common::ScalarValue;
use datafusion::common::config::ConfigOptions;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{ColumnStatistics, Statistics};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::{DataSource, DataSourceExec};
use datafusion::error::Result as DfResult;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, PhysicalExpr, PhysicalSortExpr,
};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::InputOrderMode;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::filter_pushdown::{FilterPushdownPropagation, PushedDown};
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExprs};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayFormatType, ExecutionPlan, Partitioning, SendableRecordBatchStream,
};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use crate::key_taps::TappedKeys;
use crate::lookups;

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

/// Whether `segments`, read in order, are sorted by stored column `i`:
/// each segment is ([`Segment::ascending`]) and each starts at or after
/// the greatest value of the one before. A scan's partitions are runs of
/// its segments in order, so each is sorted by it too.
fn sorted_by(segments: &[Arc<Segment>], i: usize) -> bool {
    let follows = |pair: &[Arc<Segment>]| match (pair[0].bounds(i), pair[1].bounds(i)) {
        (Some(before), Some(after)) => before.max <= after.min,
        _ => false,
    };
    !segments.is_empty()
        && segments.iter().all(|s| s.ascending(i))
        && segments.windows(2).all(follows)
}

impl Columns {
    /// The stored columns among `columns` by which the segments are
    /// sorted ([`sorted_by`]).
    fn sorted(&self, columns: impl Iterator<Item = usize>) -> Vec<usize> {
        columns.filter(|&i| sorted_by(&self.segments, i)).collect()
    }

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

/// Rows of one segment that a scan reads as one batch.
#[derive(Debug, Clone)]
pub(crate) struct Slice {
    pub(crate) segment: Arc<Segment>,
    pub(crate) rows: Range<usize>,
}

impl Slice {
    pub(crate) fn batch(&self) -> RecordBatch {
        self.segment.batch.slice(self.rows.start, self.rows.len())
    }

    /// The value of stored column `column` in row `row` of the segment.
    fn value(&self, column: usize, row: usize) -> Option<ScalarValue> {
        ScalarValue::try_from_array(self.segment.batch.column(column), row).ok()
    }
}

/// `parts` (consecutive runs of a table's slices) with each cut between
/// two of them moved forward past the rows that hold the key the run
/// before ends with, in the first of `columns` whose values ascend across
/// all of `segments`: then no two partitions share a key of it, and an
/// aggregation by it can aggregate each partition whole
/// ([`SortedAggregates`]). A cut is left where the key would take a
/// whole partition.
pub(crate) fn cut_between_keys(
    mut parts: Vec<Vec<Slice>>,
    segments: &[Arc<Segment>],
    columns: &[usize],
) -> Vec<Vec<Slice>> {
    let Some(column) = columns.iter().copied().find(|&i| sorted_by(segments, i)) else {
        return parts;
    };
    for next in 1..parts.len() {
        let (before, after) = parts.split_at_mut(next);
        let (Some(last), Some(first)) = (before[next - 1].last(), after[0].first()) else {
            continue;
        };
        let Some(ends) = last.value(column, last.rows.end - 1) else {
            continue;
        };
        let same = first
            .rows
            .clone()
            .take_while(|&row| first.value(column, row).as_ref() == Some(&ends))
            .count();
        if same == 0 || same == first.rows.len() {
            continue;
        }
        let moved = first.rows.start..first.rows.start + same;
        let segment = Arc::clone(&first.segment);
        after[0][0].rows.start = moved.end;
        let last = before[next - 1].last_mut().expect("a last slice");
        if Arc::ptr_eq(&last.segment, &segment) && last.rows.end == moved.start {
            last.rows.end = moved.end;
        } else {
            before[next - 1].push(Slice {
                segment,
                rows: moved,
            });
        }
    }
    parts
}

/// A memory scan over a table's segments, with their column statistics.
#[derive(Debug, Clone)]
pub(crate) struct TableSource {
    inner: MemorySourceConfig,
    columns: Arc<Columns>,
    /// The slices each of `inner`'s partitions reads, batch by batch;
    /// `None` once `inner` is repartitioned into other batches.
    parts: Option<Arc<[Vec<Slice>]>>,
    /// Joins' dynamic filters on this scan's columns: holding them makes
    /// each join wait for all its build side before it probes.
    keys: Vec<Arc<dyn PhysicalExpr>>,
    /// The keys of joins whose filters are among `keys`, by the stored
    /// column each filter tests.
    taps: Vec<(usize, Arc<TappedKeys>)>,
}

impl TableSource {
    /// The scan of `inner`, whose partitions read `parts` (segments'
    /// rows in the stored schema, before `inner`'s projection).
    pub(crate) fn exec(
        inner: MemorySourceConfig,
        parts: Vec<Vec<Slice>>,
        unique: Vec<usize>,
    ) -> Arc<dyn ExecutionPlan> {
        let width = inner.original_schema().fields().len();
        assert_eq!(inner.partitions().len(), parts.len());
        let mut segments: Vec<Arc<Segment>> = Vec::new();
        for slice in parts.iter().flatten() {
            if !segments
                .last()
                .is_some_and(|s| Arc::ptr_eq(s, &slice.segment))
            {
                segments.push(Arc::clone(&slice.segment));
            }
        }
        let columns = Columns {
            segments,
            unique,
            statistics: (0..width).map(|_| OnceLock::new()).collect(),
        };
        DataSourceExec::from_data_source(TableSource {
            inner,
            columns: Arc::new(columns),
            parts: Some(parts.into()),
            keys: Vec::new(),
            taps: Vec::new(),
        })
    }

    /// This scan declaring that each partition is sorted by each column
    /// its segments hold in order; `None` if there is none.
    ///
    /// Scans do not declare it when planned: DataFusion then keeps every
    /// order it can through repartitions, merging sorted streams, to feed
    /// an aggregation or a join above that could do without (TPC-H q3 and
    /// q18 ran at half their speed). [`SortedAggregates`] asks for it
    /// where an aggregation reads the scan directly.
    fn sorted(&self) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        let sorted = self.columns.sorted(self.stored_columns().into_iter());
        if sorted.is_empty() {
            return Ok(None);
        }
        let schema = self.inner.original_schema();
        let orderings = sorted.into_iter().map(|i| {
            let column = Column::new(schema.field(i).name(), i);
            let ascending = PhysicalSortExpr::new(Arc::new(column), SortOptions::new(false, false));
            LexOrdering::new([ascending]).expect("an ordering by one column")
        });
        let inner = self
            .inner
            .clone()
            .try_with_sort_information(orderings.collect())?;
        Ok(Some(DataSourceExec::from_data_source(TableSource {
            inner,
            ..self.clone()
        })))
    }

    /// The stored columns the scan gives, in its order.
    fn stored_columns(&self) -> Vec<usize> {
        match self.inner.projection() {
            Some(projection) => projection.clone(),
            None => (0..self.inner.original_schema().fields().len()).collect(),
        }
    }

    /// Whether no two of this scan's partitions hold the same value of
    /// the column it gives at `index`: the column ascends across its
    /// segments, and each partition ends with a value the next does not
    /// start with (see [`cut_between_keys`]).
    fn keys_apart(&self, index: usize) -> bool {
        let (Some(parts), Some(&column)) = (&self.parts, self.stored_columns().get(index)) else {
            return false;
        };
        if !sorted_by(&self.columns.segments, column) {
            return false;
        }
        let bounds: Vec<(Option<ScalarValue>, Option<ScalarValue>)> = parts
            .iter()
            .filter_map(|part| {
                let (first, last) = (part.first()?, part.last()?);
                Some((
                    first.value(column, first.rows.start),
                    last.value(column, last.rows.end - 1),
                ))
            })
            .collect();
        bounds
            .windows(2)
            .all(|pair| match (&pair[0].1, &pair[1].0) {
                (Some(ends), Some(starts)) => !ends.is_null() && ends != starts,
                _ => false,
            })
    }

    /// `inner` (a changed copy of this scan's memory source) with this
    /// scan's column statistics; `same_parts` where it reads the same
    /// batches in the same partitions.
    fn wrap(&self, inner: Arc<dyn DataSource>, same_parts: bool) -> Arc<dyn DataSource> {
        match inner.downcast_ref::<MemorySourceConfig>() {
            Some(memory) => Arc::new(TableSource {
                inner: memory.clone(),
                columns: Arc::clone(&self.columns),
                parts: self.parts.clone().filter(|_| same_parts),
                keys: self.keys.clone(),
                taps: self.taps.clone(),
            }),
            None => inner,
        }
    }

    /// The rows of `slices` (one partition's) that hold one of `values`
    /// in stored column `column`, in the scan's projection: looked up in
    /// each segment where that pays (see [`lookups::look_up`]), all of
    /// them elsewhere, for the join above to probe.
    fn looked_up(
        &self,
        slices: &[Slice],
        column: usize,
        keys: &lookups::Keys,
    ) -> DfResult<Vec<RecordBatch>> {
        let projection = self.stored_columns();
        let mut batches = Vec::new();
        for run in slices.chunk_by(|a, b| Arc::ptr_eq(&a.segment, &b.segment)) {
            let segment = &run[0].segment;
            let Some(positions) = lookups::look_up(segment, column, keys)? else {
                for slice in run {
                    batches.push(slice.batch().project(&projection)?);
                }
                continue;
            };
            // The partition reads these rows of the segment, in a run.
            let rows = run[0].rows.start..run[run.len() - 1].rows.end;
            let positions = positions.values();
            let from = positions.partition_point(|&p| (p as usize) < rows.start);
            let to = positions.partition_point(|&p| (p as usize) < rows.end);
            if from < to {
                let found = UInt32Array::new(positions.slice(from, to - from), None);
                // Only the columns the scan gives are copied (not a
                // lineitem's comments for a join on its keys).
                let columns = segment.batch.project(&projection)?;
                batches.push(take_record_batch(&columns, &found)?);
            }
        }
        Ok(batches)
    }

    /// The stored column and keys of a join whose keys are tapped, once
    /// the join's build side is complete, where a lookup may pay.
    fn join_keys(&self) -> DfResult<Option<(usize, &lookups::Keys)>> {
        // Of the taps of a join of several keys, the first whose keys are
        // few of their column's values: a few build rows' keys are sorted
        // whatever their column, and a join's 5 keys of 7 values (a
        // status beside an id) are no use.
        let mut first = None;
        for (column, tapped) in &self.taps {
            let distinct = self
                .columns
                .column(*column)
                .distinct_count
                .get_value()
                .copied();
            if let Some(keys) = tapped.keys_for(distinct)? {
                if lookups::may_pay(keys.len(), distinct) {
                    return Ok(Some((*column, keys)));
                }
                first.get_or_insert((*column, keys));
            }
        }
        Ok(first)
    }
}

/// `plan` with the keys `tapped` given to its scan, where `plan` is a
/// stored table's scan that holds the dynamic filter `filter` names (by
/// its expression id), whose join key number `key` is one of the scan's
/// columns, of the keys' type.
pub(crate) fn with_tap(
    plan: &Arc<dyn ExecutionPlan>,
    filter: u64,
    key: usize,
    tapped: &Arc<TappedKeys>,
) -> Option<Arc<dyn ExecutionPlan>> {
    let source = plan
        .downcast_ref::<DataSourceExec>()?
        .data_source()
        .downcast_ref::<TableSource>()?;
    let held = source
        .keys
        .iter()
        .find(|key| key.expression_id() == Some(filter))?;
    // A join's filter has its probe side's keys as children, in the
    // order of the join's keys.
    let key = held.children().into_iter().nth(key)?;
    let column = *source
        .stored_columns()
        .get(key.downcast_ref::<Column>()?.index())?;
    let data_type = source
        .inner
        .original_schema()
        .field(column)
        .data_type()
        .clone();
    if !lookups::orderable(&data_type) || &data_type != tapped.data_type() {
        return None;
    }
    let mut taps = source.taps.clone();
    taps.push((column, Arc::clone(tapped)));
    Some(DataSourceExec::from_data_source(TableSource {
        taps,
        ..source.clone()
    }))
}

impl DataSource for TableSource {
    fn open(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let scan = self.inner.open(partition, context)?;
        let Some(parts) = &self.parts else {
            return Ok(scan);
        };
        if self.taps.is_empty() || self.inner.fetch().is_some() {
            return Ok(scan);
        }
        let slices = parts[partition].clone();
        let source = self.clone();
        let schema = scan.schema();
        // A join polls its probe side once its build side is complete,
        // every partition of it while this scan holds its filter; keys
        // still unknown then (a build partition that never ran) leave the
        // partition to read all its rows.
        let rows = futures::stream::once(async move {
            let rows: DfResult<BoxStream<'static, DfResult<RecordBatch>>> = match source.join_keys()
            {
                Ok(Some((column, keys))) => source
                    .looked_up(&slices, column, keys)
                    .map(|batches| futures::stream::iter(batches.into_iter().map(Ok)).boxed()),
                Ok(None) => Ok(scan.boxed()),
                Err(e) => Err(e),
            };
            rows
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, rows)))
    }

    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        self.inner.fmt_as(t, f)?;
        if !self.keys.is_empty() {
            let keys: Vec<String> = self.keys.iter().map(|k| k.to_string()).collect();
            write!(f, ", looks up {}", keys.join(", "))?;
        }
        if !self.taps.is_empty() {
            let schema = self.inner.original_schema();
            let columns: Vec<&str> = self
                .taps
                .iter()
                .map(|(c, _)| schema.field(*c).name().as_str())
                .collect();
            write!(f, ", join keys tapped for [{}]", columns.join(", "))?;
        }
        Ok(())
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
            .map(|inner| self.wrap(inner, false)))
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
        let stored = self.stored_columns();
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
        self.inner
            .with_fetch(limit)
            .map(|inner| self.wrap(inner, true))
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
            .map(|inner| self.wrap(inner, true)))
    }

    /// Joins' dynamic filters are kept to look their keys up; every
    /// filter stays where it is, the joins' applied by the joins.
    fn try_pushdown_filters(
        &self,
        filters: Vec<Arc<dyn PhysicalExpr>>,
        _config: &ConfigOptions,
    ) -> DfResult<FilterPushdownPropagation<Arc<dyn DataSource>>> {
        let kept = FilterPushdownPropagation::with_parent_pushdown_result(vec![
            PushedDown::No;
            filters.len()
        ]);
        let dynamic = filters.into_iter().filter(lookups::is_dynamic);
        let keys: Vec<_> = self.keys.iter().cloned().chain(dynamic).collect();
        if self.parts.is_none() || keys.len() == self.keys.len() {
            return Ok(kept);
        }
        Ok(kept.with_updated_node(Arc::new(TableSource {
            keys,
            ..self.clone()
        })))
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        // A join fills its filter in only if a scan below it holds it.
        for key in &self.keys {
            if f(key)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        self.inner.apply_expressions(f)
    }
}

/// Aggregations that read a scan sorted by one of their groups, through
/// filters and projections, aggregate in that order: a group is complete
/// when the next one starts, so the table of groups holds a few at a time
/// instead of all of them. TPC-H q18 sums six million line items by their
/// 1.5 million orders; hashed, its partial aggregation took four-fifths
/// of the query's time.
///
/// It runs after DataFusion has placed its repartitions, so the order is
/// declared only where an aggregation reads it, and every plan above the
/// aggregation is rebuilt, and sees the order it now gives.
#[derive(Debug)]
pub(crate) struct SortedAggregates;

impl PhysicalOptimizerRule for SortedAggregates {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(aggregate) = node.downcast_ref::<AggregateExec>() else {
                return Ok(Transformed::no(node));
            };
            if let Some(whole) = whole_partitions(aggregate)? {
                return Ok(Transformed::yes(whole));
            }
            if aggregate.group_expr().is_empty()
                || *aggregate.input_order_mode() != InputOrderMode::Linear
            {
                return Ok(Transformed::no(node));
            }
            let Some(input) = sorted_input(aggregate.input())? else {
                return Ok(Transformed::no(node));
            };
            let sorted = Arc::clone(&node).replace_children(vec![input], recompute())?;
            let ordered = sorted
                .downcast_ref::<AggregateExec>()
                .is_some_and(|a| *a.input_order_mode() != InputOrderMode::Linear);
            Ok(match ordered {
                true => Transformed::yes(sorted),
                false => Transformed::no(node),
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "ciab_sorted_aggregates"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `aggregate`, a final aggregation of a sorted partial one whose
/// partitions share no key of one of its groups, as one aggregation of
/// each partition whole, hashed into partitions as before for the plan
/// above. A group's rows then all sit in one partition, so the partial
/// groups are final: hashing them all again, q18's 1.5 million orders in
/// one table, took half of the query's CPU.
///
/// DataFusion knows no partitioning by ranges, so its sanity check, which
/// runs after this rule, would refuse to aggregate partitions whole
/// without a hash partitioning below; the cuts between keys are what
/// make it right.
fn whole_partitions(aggregate: &AggregateExec) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
    if *aggregate.mode() != AggregateMode::FinalPartitioned || aggregate.limit_options().is_some() {
        return Ok(None);
    }
    let Some(repartition) = aggregate.input().downcast_ref::<RepartitionExec>() else {
        return Ok(None);
    };
    let Some(partial) = repartition.input().downcast_ref::<AggregateExec>() else {
        return Ok(None);
    };
    let sorted_partial = *partial.mode() == AggregateMode::Partial
        && *partial.input_order_mode() != InputOrderMode::Linear
        && partial.group_expr().is_single();
    // Only then are the partitions' bounds worth reading.
    let apart = || {
        partial.group_expr().expr().iter().any(|(group, _)| {
            group
                .downcast_ref::<Column>()
                .is_some_and(|c| keys_apart(partial.input(), c.index()))
        })
    };
    if !sorted_partial || !apart() {
        return Ok(None);
    }
    let whole = AggregateExec::try_new(
        AggregateMode::SinglePartitioned,
        partial.group_expr().clone(),
        partial.aggr_expr().to_vec(),
        partial.filter_expr().to_vec(),
        Arc::clone(partial.input()),
        partial.input_schema(),
    )?;
    if whole.schema() != aggregate.schema() {
        return Ok(None);
    }
    let hashed = RepartitionExec::try_new(Arc::new(whole), repartition.partitioning().clone())?;
    Ok(Some(Arc::new(hashed)))
}

/// Whether no two partitions of `plan` hold the same value of its column
/// at `index`: a scan whose partitions are cut between keys, under
/// filters and projections, which keep each row in its partition.
fn keys_apart(plan: &Arc<dyn ExecutionPlan>, index: usize) -> bool {
    if let Some(scan) = plan.downcast_ref::<DataSourceExec>() {
        return scan
            .data_source()
            .downcast_ref::<TableSource>()
            .is_some_and(|source| source.keys_apart(index));
    }
    if let Some(projection) = plan.downcast_ref::<ProjectionExec>() {
        return projection.expr().get(index).is_some_and(|e| {
            e.expr
                .downcast_ref::<Column>()
                .is_some_and(|c| keys_apart(projection.input(), c.index()))
        });
    }
    if let Some(filter) = plan.downcast_ref::<FilterExec>() {
        let index = match filter.projection() {
            Some(projection) => match projection.get(index) {
                Some(&i) => i,
                None => return false,
            },
            None => index,
        };
        return keys_apart(filter.input(), index);
    }
    false
}

/// Children replaced so that the plan works out its order anew.
fn recompute() -> ReplaceChildrenOptions {
    ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute)
}

/// `plan` over a [`TableSource`] that declares its sort orders, if it is
/// one under operators that keep their input's order.
fn sorted_input(plan: &Arc<dyn ExecutionPlan>) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
    if let Some(scan) = plan.downcast_ref::<DataSourceExec>() {
        return match scan.data_source().downcast_ref::<TableSource>() {
            Some(source) => source.sorted(),
            None => Ok(None),
        };
    }
    let children = plan.children();
    let [child] = children[..] else {
        return Ok(None);
    };
    if !plan.maintains_input_order()[0] {
        return Ok(None);
    }
    match sorted_input(child)? {
        Some(sorted) => Ok(Some(
            Arc::clone(plan).replace_children(vec![sorted], recompute())?,
        )),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn columns(segments: Vec<Arc<Segment>>) -> Columns {
        Columns {
            segments,
            unique: vec![],
            statistics: vec![],
        }
    }

    #[test]
    fn a_scan_is_sorted_by_a_column_its_segments_hold_in_order() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Int64, false),
        ]));
        let segment = |k: Vec<i64>, v: Vec<i64>| {
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int64Array::from(k)), Arc::new(Int64Array::from(v))],
            )
            .unwrap();
            Arc::new(Segment::new(batch, None))
        };
        // k ascends within and across the segments; v within each only.
        let first = segment(vec![1, 2, 2], vec![5, 6, 7]);
        let second = segment(vec![2, 4], vec![1, 9]);
        let in_order = columns(vec![first.clone(), second.clone()]);
        assert_eq!(in_order.sorted(0..2), [0]);
        // In the other order, k falls from 4 to 1 between them.
        let swapped = columns(vec![second, first]);
        assert_eq!(swapped.sorted(0..2), Vec::<usize>::new());
        assert_eq!(columns(vec![]).sorted(0..2), Vec::<usize>::new());
    }

    #[test]
    fn partitions_are_cut_between_keys() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 1, 2, 2, 2, 3, 3, 4, 5, 5])),
                Arc::new(Int64Array::from(vec![9, 8, 7, 6, 5, 4, 3, 2, 1, 0])),
            ],
        )
        .unwrap();
        let segment = Arc::new(Segment::new(batch, None));
        let slice = |rows: Range<usize>| Slice {
            segment: Arc::clone(&segment),
            rows,
        };
        // Each partition's slices as (first row, row past the last).
        let rows = |parts: &[Vec<Slice>]| -> Vec<Vec<(usize, usize)>> {
            parts
                .iter()
                .map(|p| p.iter().map(|s| (s.rows.start, s.rows.end)).collect())
                .collect()
        };
        let parts = || {
            vec![
                vec![slice(0..3), slice(3..6)],
                vec![slice(6..8), slice(8..10)],
            ]
        };
        // Key 3 ends the first partition and starts the second: its row
        // moves over, and the slices it joins become one.
        let cut = cut_between_keys(parts(), std::slice::from_ref(&segment), &[0, 1]);
        assert_eq!(rows(&cut), [vec![(0, 3), (3, 7)], vec![(7, 8), (8, 10)]]);
        // v falls: nothing to cut by.
        let cut = cut_between_keys(parts(), std::slice::from_ref(&segment), &[1]);
        assert_eq!(rows(&cut), [vec![(0, 3), (3, 6)], vec![(6, 8), (8, 10)]]);
        // Keys already apart stay so; a key that would take the next
        // partition's whole first slice stays where it is.
        let parts = vec![vec![slice(0..8)], vec![slice(8..10)]];
        let whole = vec![vec![slice(0..9)], vec![slice(9..10)]];
        let cut = cut_between_keys(parts, std::slice::from_ref(&segment), &[0]);
        assert_eq!(rows(&cut), [[(0, 8)], [(8, 10)]]);
        let cut = cut_between_keys(whole, std::slice::from_ref(&segment), &[0]);
        assert_eq!(rows(&cut), [[(0, 9)], [(9, 10)]]);
    }
}
