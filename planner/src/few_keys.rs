//! Partial aggregations that group by a few short keys find each row's
//! group by one integer comparison instead of hashing and comparing strings.
//!
//! DataFusion finds the group of a row of several columns, strings among
//! them, by hashing each column, then comparing each column's value with
//! the group's, a string's byte by byte (`GroupValuesColumn`): for TPC-H
//! q01, which groups six million rows by two one-letter columns into four
//! groups, that was a third of the query's CPU time, about 18 ns a row.
//! Here a row's key columns are packed into one `u128`, each column in
//! bits of its own (a string of up to 7 bytes in 64, its length and
//! bytes; an integer in its width), and its group is found in a small
//! table of packed keys, about 6 ns a row:
//!
//! ```text
//!   batch ─► pack each row's keys ─► u128 ─► few-groups table ─► group index
//!                                                       ─► DataFusion's accumulators
//!   a key that does not pack, or too many groups:
//!   emit the partial results so far ─► hand the batch and the rest of the
//!   input to DataFusion's own AggregateExec
//! ```
//!
//! Only partial aggregations take this path: they may emit a group more
//! than once (the final aggregation merges the parts), which lets a stream
//! hand over mid-way without losing or repeating a row. The accumulators,
//! and with them every aggregate's semantics, are DataFusion's own.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, OffsetSizeTrait, RecordBatch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{ScalarValue, internal_datafusion_err};
use datafusion::error::Result;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputDistributionRequirements, InputOrderMode,
    PlanProperties,
};
use futures::{Stream, StreamExt, stream};

/// Groups a partition keeps in its table before it hands over to
/// DataFusion: the table and the groups' values stay in the L1/L2 caches.
const GROUPS_MAX: usize = 1024;
/// Slots of the table: twice the groups, so that probes stay short.
const SLOTS_BITS: u32 = 11;
const _: () = assert!(1 << SLOTS_BITS >= 2 * GROUPS_MAX);
/// The longest string a key packs: with its length byte, it fills the
/// 64 bits a string column takes. One load of 8 bytes and a mask read it.
const STRING_BYTES_MAX: usize = 7;
/// A NULL string's packed bits: no length a packed string has.
const NULL_STRING: u64 = 0xFF;
/// Bits of a packed key.
const KEY_BITS: u32 = u128::BITS;
/// The low `n` bytes of a word, for each `n` a packed string has.
const BYTE_MASKS: [u64; STRING_BYTES_MAX + 1] = [
    0,
    0xFF,
    0xFFFF,
    0xFF_FFFF,
    0xFFFF_FFFF,
    0xFF_FFFF_FFFF,
    0xFFFF_FFFF_FFFF,
    0xFF_FFFF_FFFF_FFFF,
];

/// Replaces partial aggregations that group by strings (and integers
/// beside them) with [`FewKeysExec`].
#[derive(Debug, Default)]
pub struct FewKeysGrouping;

impl PhysicalOptimizerRule for FewKeysGrouping {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(aggregate) = node.downcast_ref::<AggregateExec>() else {
                return Ok(Transformed::no(node));
            };
            let Some(columns) = packable(aggregate)? else {
                return Ok(Transformed::no(node));
            };
            Ok(Transformed::yes(Arc::new(FewKeysExec {
                aggregate: Arc::clone(&node),
                columns,
                metrics: ExecutionPlanMetricsSet::new(),
            })))
        })
        .data()
    }

    fn name(&self) -> &str {
        "ciab_few_keys_grouping"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// How each group column packs, if `aggregate` is a partial aggregation
/// this module runs: plain grouping by columns whose bits fit in a key,
/// at least one a string (DataFusion's path for one integer column is
/// fast already), and aggregates with grouped accumulators and nothing
/// that needs the rows in an order or filtered.
fn packable(aggregate: &AggregateExec) -> Result<Option<Vec<Packing>>> {
    let group_by = aggregate.group_expr();
    if *aggregate.mode() != AggregateMode::Partial
        || group_by.is_empty()
        || group_by.has_grouping_set()
        || aggregate.limit_options().is_some()
        || !aggregate.dynamic_expressions_produced().is_empty()
        || *aggregate.input_order_mode() != InputOrderMode::Linear
        || aggregate.filter_expr().iter().any(Option::is_some)
    {
        return Ok(None);
    }
    let plain = |expr: &Arc<AggregateFunctionExpr>| {
        expr.groups_accumulator_supported() && !expr.is_distinct() && expr.order_bys().is_empty()
    };
    if !aggregate.aggr_expr().iter().all(plain) {
        return Ok(None);
    }
    let schema = aggregate.input_schema();
    let mut columns = Vec::with_capacity(group_by.expr().len());
    for (expr, _) in group_by.expr() {
        let nullable = expr.nullable(&schema)?;
        let packing = match expr.data_type(&schema)? {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Packing::String,
            t if t.is_integer()
                || matches!(
                    t,
                    DataType::Date32
                        | DataType::Date64
                        | DataType::Time32(_)
                        | DataType::Time64(_)
                        | DataType::Timestamp(..)
                ) =>
            {
                let bytes = t.primitive_width().expect("a primitive type has a width");
                Packing::Fixed { bytes, nullable }
            }
            _ => return Ok(None),
        };
        columns.push(packing);
    }
    let bits: u32 = columns.iter().map(Packing::bits).sum();
    Ok((columns.contains(&Packing::String) && bits <= KEY_BITS).then_some(columns))
}

/// How a group column's value goes into its bits of a packed key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Packing {
    /// A length byte, then the bytes; `NULL_STRING` for NULL.
    String,
    /// The value's bytes, after a bit that tells NULL (0) from a value
    /// (1) where the column may hold NULLs.
    Fixed { bytes: usize, nullable: bool },
}

impl Packing {
    fn bits(&self) -> u32 {
        match *self {
            Packing::String => u64::BITS,
            Packing::Fixed { bytes, nullable } => 8 * bytes as u32 + u32::from(nullable),
        }
    }
}

/// A partial aggregation that packs its keys while they pack and its
/// groups are few, and hands over to `aggregate` where they are not.
#[derive(Debug)]
pub(crate) struct FewKeysExec {
    /// The partial `AggregateExec` this replaces: its input, expressions
    /// and properties are this plan's, and it runs what this hands over.
    aggregate: Arc<dyn ExecutionPlan>,
    columns: Vec<Packing>,
    metrics: ExecutionPlanMetricsSet,
}

impl FewKeysExec {
    fn aggregate(&self) -> &AggregateExec {
        self.aggregate
            .downcast_ref::<AggregateExec>()
            .expect("a FewKeysExec wraps an AggregateExec")
    }
}

impl DisplayAs for FewKeysExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "FewKeysExec: ")?;
        self.aggregate.fmt_as(t, f)
    }
}

impl ExecutionPlan for FewKeysExec {
    fn name(&self) -> &str {
        "FewKeysExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.aggregate.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.aggregate.children()
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        self.aggregate.input_distribution_requirements()
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        self.aggregate.benefits_from_input_partitioning()
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.aggregate.apply_expressions(f)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(FewKeysExec {
            aggregate: Arc::clone(&self.aggregate).replace_children(
                children,
                ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
            )?,
            columns: self.columns.clone(),
            metrics: ExecutionPlanMetricsSet::new(),
        }))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let aggregate = self.aggregate();
        let accumulators = aggregate
            .aggr_expr()
            .iter()
            .map(|expr| expr.create_groups_accumulator())
            .collect::<Result<_>>()?;
        let groups = Groups {
            keys: aggregate
                .group_expr()
                .expr()
                .iter()
                .map(|(expr, _)| Arc::clone(expr))
                .collect(),
            columns: self.columns.clone(),
            arguments: aggregate
                .aggr_expr()
                .iter()
                .map(|expr| expr.expressions())
                .collect(),
            accumulators,
            slots: vec![0; 1 << SLOTS_BITS],
            packed: Vec::new(),
            values: vec![Vec::new(); self.columns.len()],
            keys_of_rows: Vec::new(),
            schema: aggregate.schema(),
        };
        let input = aggregate.input().execute(partition, Arc::clone(&context))?;
        Ok(Box::pin(FewKeysStream {
            schema: aggregate.schema(),
            state: State::Packing { input, groups },
            aggregate: Arc::clone(&self.aggregate),
            partition,
            context,
            metrics: BaselineMetrics::new(&self.metrics, partition),
        }))
    }
}

/// One partition's groups while its keys pack.
struct Groups {
    keys: Vec<Arc<dyn PhysicalExpr>>,
    columns: Vec<Packing>,
    /// Each aggregate's argument expressions.
    arguments: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    /// Open addressing over `packed`: a group's index plus one, or 0.
    slots: Vec<u32>,
    /// Each group's packed key.
    packed: Vec<u128>,
    /// Each key column's value, for each group.
    values: Vec<Vec<ScalarValue>>,
    /// The packed keys of a batch's rows, kept to be filled again.
    keys_of_rows: Vec<u128>,
    schema: SchemaRef,
}

impl Groups {
    /// Adds `batch` up, or returns false, having added nothing, if a key
    /// does not pack or the groups would be too many.
    fn add(&mut self, batch: &RecordBatch) -> Result<bool> {
        let rows = batch.num_rows();
        let arrays = self
            .keys
            .iter()
            .map(|expr| expr.evaluate(batch)?.into_array(rows))
            .collect::<Result<Vec<_>>>()?;
        let mut keys = std::mem::take(&mut self.keys_of_rows);
        let packed = pack(&arrays, &self.columns, &mut keys);
        let indices = match packed {
            true => self.groups_of(&keys, &arrays)?,
            false => None,
        };
        self.keys_of_rows = keys;
        let Some(indices) = indices else {
            return Ok(false);
        };
        for (accumulator, arguments) in self.accumulators.iter_mut().zip(&self.arguments) {
            let values = arguments
                .iter()
                .map(|expr| expr.evaluate(batch)?.into_array(rows))
                .collect::<Result<Vec<_>>>()?;
            accumulator.update_batch(&values, &indices, None, self.packed.len())?;
        }
        Ok(true)
    }

    /// Each row's group, new ones made of the row's `arrays` values, or
    /// `None`, and no new group, if the groups would be too many.
    fn groups_of(&mut self, keys: &[u128], arrays: &[ArrayRef]) -> Result<Option<Vec<usize>>> {
        let groups_before = self.packed.len();
        let mut indices = Vec::with_capacity(keys.len());
        for (row, &key) in keys.iter().enumerate() {
            match self.find(key, arrays, row)? {
                Some(group) => indices.push(group),
                None => {
                    self.forget_groups_from(groups_before);
                    return Ok(None);
                }
            }
        }
        Ok(Some(indices))
    }

    /// The group of `key`, a new one of `row`'s values if it has none, or
    /// `None` if the groups are as many as they may be.
    #[inline]
    fn find(&mut self, key: u128, arrays: &[ArrayRef], row: usize) -> Result<Option<usize>> {
        let slot = match self.probe(key) {
            Ok(group) => return Ok(Some(group)),
            Err(free) => free,
        };
        if self.packed.len() == GROUPS_MAX {
            return Ok(None);
        }
        for (values, array) in self.values.iter_mut().zip(arrays) {
            values.push(ScalarValue::try_from_array(array, row)?);
        }
        self.packed.push(key);
        self.slots[slot] = self.packed.len() as u32;
        Ok(Some(self.packed.len() - 1))
    }

    /// The group of `key`, or the free slot where it would go.
    #[inline]
    fn probe(&self, key: u128) -> std::result::Result<usize, usize> {
        let mask = (1 << SLOTS_BITS) - 1;
        let mut slot = slot_of(key);
        loop {
            match self.slots[slot] as usize {
                0 => return Err(slot),
                taken if self.packed[taken - 1] == key => return Ok(taken - 1),
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    /// Drops the groups from `first` on, which no accumulator has seen.
    fn forget_groups_from(&mut self, first: usize) {
        self.packed.truncate(first);
        for values in &mut self.values {
            values.truncate(first);
        }
        self.slots.fill(0);
        for group in 0..first {
            let slot = self
                .probe(self.packed[group])
                .expect_err("a group's key is in the table once");
            self.slots[slot] = group as u32 + 1;
        }
    }

    /// The partial results of every group so far, if there is a group.
    fn emit(&mut self) -> Result<Option<RecordBatch>> {
        if self.packed.is_empty() {
            return Ok(None);
        }
        let mut columns = self
            .values
            .iter_mut()
            .map(|values| ScalarValue::iter_to_array(std::mem::take(values)))
            .collect::<Result<Vec<_>>>()?;
        for accumulator in &mut self.accumulators {
            columns.extend(accumulator.state(EmitTo::All)?);
        }
        self.packed.clear();
        self.slots.fill(0);
        Ok(Some(RecordBatch::try_new(
            Arc::clone(&self.schema),
            columns,
        )?))
    }
}

fn slot_of(key: u128) -> usize {
    let folded = (key as u64) ^ ((key >> 64) as u64);
    (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (u64::BITS - SLOTS_BITS)) as usize
}

/// Fills `keys` with each row's key columns packed, each column in its
/// own bits; false if a string is too long to pack.
fn pack(arrays: &[ArrayRef], columns: &[Packing], keys: &mut Vec<u128>) -> bool {
    keys.clear();
    keys.resize(arrays.first().map_or(0, |a| a.len()), 0);
    let mut shift = 0;
    let mut fits = true;
    for (array, packing) in arrays.iter().zip(columns) {
        debug_assert!(
            shift + packing.bits() <= KEY_BITS,
            "the rule checks the bits"
        );
        fits &= match (packing, array.data_type()) {
            (Packing::String, DataType::Utf8) => pack_strings::<i32>(keys, array, shift),
            (Packing::String, DataType::LargeUtf8) => pack_strings::<i64>(keys, array, shift),
            (Packing::String, DataType::Utf8View) => pack_views(keys, array, shift),
            (&Packing::Fixed { bytes, nullable }, _) => {
                pack_fixed(keys, array, bytes, nullable, shift);
                true
            }
            (Packing::String, other) => unreachable!("a string key column of type {other}"),
        };
        shift += packing.bits();
    }
    fits
}

/// Puts a string into its bits of `key`: its bytes, read as the low
/// `length` bytes of `word`, above its length, or `NULL_STRING`; false if
/// it is too long to pack.
fn put_string(key: &mut u128, shift: u32, null: bool, word: u64, length: usize) -> bool {
    let piece = match null {
        true => NULL_STRING,
        false => ((word & BYTE_MASKS[length & STRING_BYTES_MAX]) << 8) | length as u64,
    };
    *key |= u128::from(piece) << shift;
    null || length <= STRING_BYTES_MAX
}

fn pack_strings<O: OffsetSizeTrait>(keys: &mut [u128], array: &ArrayRef, shift: u32) -> bool {
    let strings = array.as_string::<O>();
    let data = strings.values().as_slice();
    let mut fits = true;
    for (row, (key, ends)) in keys
        .iter_mut()
        .zip(strings.value_offsets().windows(2))
        .enumerate()
    {
        let (start, end) = (ends[0].as_usize(), ends[1].as_usize());
        let length = end - start;
        // One load of 8 bytes, past the string's end where the data has
        // them; the mask keeps the string's.
        let word = match data.get(start..start + 8) {
            Some(bytes) => u64::from_le_bytes(bytes.try_into().expect("8 bytes")),
            None => {
                let mut bytes = [0; 8];
                bytes[..data.len() - start].copy_from_slice(&data[start..]);
                u64::from_le_bytes(bytes)
            }
        };
        fits &= put_string(key, shift, strings.is_null(row), word, length);
    }
    fits
}

fn pack_views(keys: &mut [u128], array: &ArrayRef, shift: u32) -> bool {
    let strings = array.as_string_view();
    let mut fits = true;
    for (row, (key, &view)) in keys.iter_mut().zip(strings.views()).enumerate() {
        // A short string's view holds its length (32 bits), then its bytes.
        let length = view as u32 as usize;
        fits &= put_string(
            key,
            shift,
            strings.is_null(row),
            (view >> 32) as u64,
            length,
        );
    }
    fits
}

fn pack_fixed(keys: &mut [u128], array: &ArrayRef, bytes: usize, nullable: bool, shift: u32) {
    // One loop for each width, so that each value is one load.
    match bytes {
        1 => pack_width::<1>(keys, array, nullable, shift),
        2 => pack_width::<2>(keys, array, nullable, shift),
        4 => pack_width::<4>(keys, array, nullable, shift),
        8 => pack_width::<8>(keys, array, nullable, shift),
        other => unreachable!("a primitive key of {other} bytes"),
    }
}

fn pack_width<const BYTES: usize>(keys: &mut [u128], array: &ArrayRef, nullable: bool, shift: u32) {
    let data = array.to_data();
    let values = &data.buffers()[0].as_slice()[data.offset() * BYTES..];
    for (row, (key, value)) in keys.iter_mut().zip(values.chunks_exact(BYTES)).enumerate() {
        let mut word = [0; 8];
        word[..BYTES].copy_from_slice(value);
        let value = u128::from(u64::from_le_bytes(word));
        let piece = if !nullable {
            value
        } else if array.is_null(row) {
            0
        } else {
            (value << 1) | 1
        };
        *key |= piece << shift;
    }
}

enum State {
    /// Keys pack and groups are few so far.
    Packing {
        input: SendableRecordBatchStream,
        groups: Groups,
    },
    /// DataFusion's aggregation runs the rest.
    HandedOver(SendableRecordBatchStream),
    Done,
}

struct FewKeysStream {
    schema: SchemaRef,
    state: State,
    aggregate: Arc<dyn ExecutionPlan>,
    partition: usize,
    context: Arc<TaskContext>,
    metrics: BaselineMetrics,
}

impl FewKeysStream {
    /// Starts DataFusion's aggregation over `batch` and the rest of
    /// `input`, and returns the partial results so far.
    fn hand_over(
        &mut self,
        batch: RecordBatch,
        input: SendableRecordBatchStream,
        mut groups: Groups,
    ) -> Result<Option<RecordBatch>> {
        let rest = Box::pin(RecordBatchStreamAdapter::new(
            input.schema(),
            stream::once(async { Ok(batch) }).chain(input),
        ));
        let handed = Arc::new(Handover {
            properties: Arc::clone(self.aggregate.children()[0].properties()),
            stream: Mutex::new(Some(rest)),
        });
        let keep = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Keep);
        let aggregate = Arc::clone(&self.aggregate).replace_children(vec![handed], keep)?;
        self.state =
            State::HandedOver(aggregate.execute(self.partition, Arc::clone(&self.context))?);
        groups.emit()
    }

    fn next_batch(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<RecordBatch>>> {
        loop {
            let State::Packing { input, groups } = &mut self.state else {
                return match &mut self.state {
                    State::HandedOver(stream) => stream.poll_next_unpin(cx),
                    _ => Poll::Ready(None),
                };
            };
            let batch = match futures::ready!(input.poll_next_unpin(cx)) {
                Some(Ok(batch)) => batch,
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    let last = groups.emit();
                    self.state = State::Done;
                    return Poll::Ready(last.transpose());
                }
            };
            let timer = self.metrics.elapsed_compute().timer();
            let added = groups.add(&batch);
            timer.done();
            match added {
                Ok(true) => continue,
                Ok(false) => {
                    let State::Packing { input, groups } =
                        std::mem::replace(&mut self.state, State::Done)
                    else {
                        unreachable!("the state was Packing a moment ago")
                    };
                    match self.hand_over(batch, input, groups) {
                        Ok(Some(parts)) => return Poll::Ready(Some(Ok(parts))),
                        Ok(None) => continue,
                        Err(e) => return Poll::Ready(Some(Err(e))),
                    }
                }
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
    }
}

impl Stream for FewKeysStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.next_batch(cx);
        self.metrics.record_poll(polled)
    }
}

impl RecordBatchStream for FewKeysStream {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

/// The rest of one partition's input, as the input of the aggregation a
/// [`FewKeysStream`] hands over to.
struct Handover {
    properties: Arc<PlanProperties>,
    stream: Mutex<Option<SendableRecordBatchStream>>,
}

impl fmt::Debug for Handover {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("Handover").finish_non_exhaustive()
    }
}

impl DisplayAs for Handover {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "Handover")
    }
}

impl ExecutionPlan for Handover {
    fn name(&self) -> &str {
        "Handover"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        assert!(children.is_empty(), "a handover has no inputs");
        Ok(self)
    }

    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.stream
            .lock()
            .expect("the handover's lock")
            .take()
            .ok_or_else(|| internal_datafusion_err!("a handover's rows are read once"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, Int64Array, StringArray, StringViewArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};

    fn context(few_keys: bool) -> SessionContext {
        let mut state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(
                SessionConfig::new()
                    .with_target_partitions(2)
                    .with_batch_size(64),
            );
        if few_keys {
            state = state.with_physical_optimizer_rule(Arc::new(FewKeysGrouping));
        }
        SessionContext::new_with_state(state.build())
    }

    /// Rows of `(s, n, v, w)`: a short string key with NULLs, an integer
    /// key with NULLs, an integer and a string to aggregate.
    fn batch(rows: &[(Option<&str>, Option<i32>, i64, &str)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("n", DataType::Int32, true),
            Field::new("v", DataType::Int64, false),
            Field::new("w", DataType::Utf8View, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(rows.iter().map(|r| r.0).collect::<StringArray>()),
                Arc::new(rows.iter().map(|r| r.1).collect::<Int32Array>()),
                Arc::new(rows.iter().map(|r| r.2).collect::<Int64Array>()),
                Arc::new(rows.iter().map(|r| Some(r.3)).collect::<StringViewArray>()),
            ],
        )
        .unwrap()
    }

    /// The query's rows, sorted, and whether its plan ran a FewKeysExec.
    async fn run(few_keys: bool, partitions: Vec<Vec<RecordBatch>>, sql: &str) -> (String, bool) {
        let ctx = context(few_keys);
        let schema = partitions[0][0].schema();
        ctx.register_table(
            "t",
            Arc::new(MemTable::try_new(schema, partitions).unwrap()),
        )
        .unwrap();
        let frame = ctx.sql(sql).await.unwrap();
        let plan = frame.clone().create_physical_plan().await.unwrap();
        let planned = datafusion::physical_plan::displayable(plan.as_ref())
            .indent(true)
            .to_string();
        let mut batches = frame.collect().await.unwrap();
        batches.retain(|b| b.num_rows() > 0);
        let text = pretty_format_batches(&batches).unwrap().to_string();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort();
        (lines.join("\n"), planned.contains("FewKeysExec"))
    }

    async fn same_as_datafusion(partitions: Vec<Vec<RecordBatch>>) {
        let sql = "SELECT s, n, count(*), sum(v), min(w), max(n) FROM t GROUP BY s, n";
        let (expected, _) = run(false, partitions.clone(), sql).await;
        let (actual, ran) = run(true, partitions, sql).await;
        assert!(ran, "the plan groups by a string and an integer");
        assert_eq!(actual, expected);
    }

    /// A generator of rows whose keys come from `strings` (None for NULL).
    fn rows(
        count: usize,
        strings: &[Option<&'static str>],
        numbers: usize,
    ) -> Vec<(Option<&'static str>, Option<i32>, i64, &'static str)> {
        (0..count)
            .map(|i| {
                let n = (i * 7 + i / 3) % (numbers + 1);
                (
                    strings[(i * 5 + i / 11) % strings.len()],
                    (n < numbers).then_some(n as i32),
                    i as i64,
                    ["x", "y", "z"][i % 3],
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn few_short_keys_group_as_datafusion_groups_them() {
        let keys = [
            Some("A"),
            Some("N"),
            Some("R"),
            Some(""),
            None,
            Some("7 bytes"),
        ];
        let all = rows(1_000, &keys, 3);
        let batches = all.chunks(100).map(batch).collect::<Vec<_>>();
        same_as_datafusion(vec![batches[..6].to_vec(), batches[6..].to_vec()]).await;
    }

    #[tokio::test]
    async fn a_key_too_long_or_too_many_groups_hand_over_mid_stream() {
        let keys = [Some("a"), Some("b"), None];
        let mut first = rows(300, &keys, 2);
        first.push((Some("sixteen bytes..."), Some(1), 7, "w"));
        first.extend(rows(300, &keys, 2));
        let long = first.chunks(64).map(batch).collect::<Vec<_>>();
        same_as_datafusion(vec![long.clone(), long[..2].to_vec()]).await;

        let many = rows(GROUPS_MAX * 6, &keys, GROUPS_MAX);
        let many = many.chunks(500).map(batch).collect::<Vec<_>>();
        same_as_datafusion(vec![many.clone(), many[..1].to_vec()]).await;
    }

    #[test]
    fn packed_keys_tell_apart_what_a_concatenation_would_not() {
        let pack = |arrays: &[ArrayRef], columns: &[Packing]| {
            let mut keys = Vec::new();
            pack(arrays, columns, &mut keys).then_some(keys)
        };
        let strings = |values: Vec<Option<&str>>| Arc::new(StringArray::from(values)) as ArrayRef;
        let columns = [Packing::String, Packing::String];
        let keys = pack(
            &[
                strings(vec![Some("a"), Some("ab"), Some(""), None, Some("")]),
                strings(vec![Some("bc"), Some("c"), None, Some(""), Some("")]),
            ],
            &columns,
        )
        .unwrap();
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // A string view packs as the string does.
        let views = Arc::new(StringViewArray::from(vec![Some("ab"), None])) as ArrayRef;
        assert_eq!(
            pack(&[views], &[Packing::String]),
            pack(&[strings(vec![Some("ab"), None])], &[Packing::String])
        );
        let numbers = Arc::new(Int32Array::from(vec![Some(0), None, Some(256)])) as ArrayRef;
        let nullable = Packing::Fixed {
            bytes: 4,
            nullable: true,
        };
        assert_eq!(pack(&[numbers], &[nullable]).unwrap(), [1, 0, 0x201]);
        // Seven bytes pack, eight do not.
        assert!(pack(&[strings(vec![Some("7 bytes")])], &[Packing::String]).is_some());
        assert!(pack(&[strings(vec![Some("8 bytes!")])], &[Packing::String]).is_none());
    }
}
