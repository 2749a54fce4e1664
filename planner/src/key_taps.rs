//! A hash join's build-side keys, handed to the scan of its probe side.
//!
//! A hash join reads its build side whole, then probes it with every row
//! of its probe side. Where the probe side is the scan of a large stored
//! table and the build side holds few of its keys (TPC-H q21: 75 thousand
//! line items of one nation's late suppliers, probed with all 6 million
//! line items twice, for EXISTS and NOT EXISTS), most probe rows find
//! nothing, and the scan, the repartition and the probe are spent on them.
//! The scan could look the keys up instead ([`crate::lookups`]), if it
//! knew them.
//!
//! DataFusion hands a scan its join's keys through a dynamic filter, but
//! as a list of literals only up to a few keys; past that, the filter
//! probes the join's hash table, which holds hashes and row numbers, not
//! keys. Long lists cost as much as they save: DataFusion makes a literal
//! expression per key, and rewrites the list each time the filter is
//! remapped to a scan's columns.
//!
//! So ciab taps the keys as the build side streams by:
//!
//! ```text
//!              HashJoinExec (filter F)
//!             ╱                      ╲
//!   KeyTapExec ── keys ──► TappedKeys ◄── TableSource (holds F)
//!       │                                     reads the keys once every
//!   build side                                build partition has ended
//! ```
//!
//! [`TapJoinKeys`] puts a [`KeyTapExec`] above the build side of a hash
//! join for each of its keys whose column a stored table's scan holds in
//! the join's dynamic filter, and gives the scan the [`TappedKeys`]; a
//! scan looks up the first of its taps whose keys are few enough. A join
//! of several keys is looked up by one of them: a row whose value there
//! is no build row's cannot match, whatever its other keys (TPC-H q09's
//! partsupp, joined on part and supplier, by the 11 thousand parts of
//! 320 thousand build rows). DataFusion pushes a join's
//! filter only to where dropping rows without a key changes nothing, and
//! holds each partition's probe until every build partition is done while
//! a scan holds the filter, so when the scan starts the keys are complete.
//! Where they are not (a partition never ran), the scan reads every row,
//! as it would without them.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch};
use datafusion::arrow::compute::concat;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::NullEquality;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::joins::HashJoinExec;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
};
use futures::{Stream, StreamExt};

use ciab_storage::sketch::DistinctSketch;

use crate::lookups::{self, Keys};
use crate::table_source;

/// A tap keeps at most this many build rows' keys; past it, it drops
/// them and the scan reads every row: the scan waits while the keys are
/// sorted, which for this many rows already takes a large part of what
/// a lookup could save.
const TAPPED_ROWS_MAX: usize = 1 << 20;
/// Nor does a tap keep keys once the build rows hold more distinct ones
/// than this, as a sketch of them estimates while they pass: a lookup
/// pays only for keys far fewer than the column's distinct values, so
/// many keys would be sorted for nothing.
const TAPPED_KEYS_MAX: usize = 1 << 18;
/// Up to this many build rows, the keys are sorted for a scan however
/// many of the column's values they may be: it costs well under a
/// millisecond.
const SORTED_ANYWAY_ROWS_MAX: usize = 1 << 14;

/// The keys of one join's build side, filled in by its [`KeyTapExec`]'s
/// partitions and read by the scans that hold the join's filter.
#[derive(Debug)]
pub(crate) struct TappedKeys {
    data_type: DataType,
    /// Build partitions that end the tap.
    partitions: usize,
    state: Mutex<Tapped>,
    /// The keys, sorted and each once, worked out by the first scan to
    /// ask once the tap is complete; `None` where it holds none.
    keys: OnceLock<Option<Keys>>,
}

#[derive(Debug, Default)]
struct Tapped {
    arrays: Vec<ArrayRef>,
    rows: usize,
    /// The keys' distinct values so far, estimated: a build side may hold
    /// a key in many rows.
    distinct: DistinctSketch,
    ended: usize,
    /// More than [`TAPPED_ROWS_MAX`] rows or [`TAPPED_KEYS_MAX`] keys
    /// came by, or the keys may not be those of the build side the
    /// scan's join reads now (see [`KeyTapExec::reset_state`]).
    unknown: bool,
}

impl TappedKeys {
    fn new(data_type: DataType, partitions: usize) -> TappedKeys {
        TappedKeys {
            data_type,
            partitions,
            state: Mutex::new(Tapped::default()),
            keys: OnceLock::new(),
        }
    }

    pub(crate) fn data_type(&self) -> &DataType {
        &self.data_type
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Tapped> {
        // A panic elsewhere while the lock was held leaves counts that
        // only undercount; the keys are then never complete, and scans
        // read every row.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, keys: ArrayRef) {
        if self.state().unknown {
            return;
        }
        // Hashed outside the lock, which the other build partitions take.
        let distinct = DistinctSketch::of(&keys);
        let mut state = self.state();
        if state.unknown {
            return;
        }
        state.rows += keys.len();
        let Some(distinct) = distinct else {
            return state.forget();
        };
        state.distinct.merge(&distinct);
        if state.rows > TAPPED_ROWS_MAX || state.distinct.estimate() > TAPPED_KEYS_MAX {
            state.forget();
        } else {
            state.arrays.push(keys);
        }
    }

    fn end_partition(&self) {
        let mut state = self.state();
        state.ended += 1;
        // A partition run twice (DataFusion runs each once) may have
        // read other rows.
        if state.ended > self.partitions {
            state.forget();
        }
    }

    /// Makes the keys unknown for good.
    fn forget(&self) {
        self.state().forget();
    }

    /// The build rows tapped and their keys' estimated distinct values,
    /// once every build partition has ended and while the keys are kept:
    /// known before the keys are sorted.
    fn rows(&self) -> Option<(usize, usize)> {
        let state = self.state();
        let rows = state.complete(self.partitions)?;
        Some((rows, state.distinct.estimate().min(rows)))
    }

    /// The keys for a scan of a column of `distinct` values, where a
    /// lookup of them may pay in some segment, once every build partition
    /// has ended.
    pub(crate) fn keys_for(&self, distinct: Option<usize>) -> Result<Option<&Keys>> {
        let sorted =
            |(rows, keys)| rows <= SORTED_ANYWAY_ROWS_MAX || lookups::may_pay(keys, distinct);
        if !self.rows().is_some_and(sorted) {
            return Ok(None);
        }
        self.keys()
    }

    /// The keys, once [`TappedKeys::rows`] is known.
    fn keys(&self) -> Result<Option<&Keys>> {
        // Worked out under the lock: the scan's partitions ask at once.
        let mut state = self.state();
        if state.complete(self.partitions).is_none() {
            return Ok(None);
        }
        if let Some(keys) = self.keys.get() {
            return Ok(keys.as_ref());
        }
        let keys = match state.arrays.is_empty() {
            true => None,
            false => {
                let arrays: Vec<&dyn Array> = state.arrays.iter().map(|a| a.as_ref()).collect();
                Keys::of(&concat(&arrays)?)?
            }
        };
        state.arrays = Vec::new();
        Ok(self.keys.get_or_init(|| keys).as_ref())
    }
}

impl Tapped {
    /// The rows tapped, once all `partitions` have ended and the keys
    /// are known.
    fn complete(&self, partitions: usize) -> Option<usize> {
        (self.ended == partitions && !self.unknown).then_some(self.rows)
    }

    fn forget(&mut self) {
        self.unknown = true;
        self.arrays = Vec::new();
    }
}

/// The build side of a hash join, passed on unchanged while its join key
/// is kept in a [`TappedKeys`].
#[derive(Debug)]
pub(crate) struct KeyTapExec {
    input: Arc<dyn ExecutionPlan>,
    key: Arc<dyn PhysicalExpr>,
    tapped: Arc<TappedKeys>,
}

impl DisplayAs for KeyTapExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "KeyTapExec: key={}", self.key)
    }
}

impl ExecutionPlan for KeyTapExec {
    fn name(&self) -> &str {
        "KeyTapExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        f(&self.key)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        assert_eq!(children.len(), 1, "a key tap has one input");
        let input = children.remove(0);
        let partitions = input.output_partitioning().partition_count();
        // An input of other partitions gets a tap of its own, which the
        // scans do not hold: they then read every row, which is right.
        let tapped = match partitions == self.tapped.partitions {
            true => Arc::clone(&self.tapped),
            false => Arc::new(TappedKeys::new(self.tapped.data_type.clone(), partitions)),
        };
        Ok(Arc::new(KeyTapExec {
            input,
            key: Arc::clone(&self.key),
            tapped,
        }))
    }

    /// A plan run again (a recursive query's term, once per round) reads
    /// other build rows than the scans' tap holds, and DataFusion then
    /// drops the join's filter, so no join waits for its build side
    /// before the scans start: the old tap's keys become unknown, and
    /// the new plan taps into a tap no scan holds.
    fn reset_state(self: Arc<Self>) -> Result<Arc<dyn ExecutionPlan>> {
        self.tapped.forget();
        let tapped = TappedKeys::new(self.tapped.data_type.clone(), self.tapped.partitions);
        Ok(Arc::new(KeyTapExec {
            input: Arc::clone(&self.input),
            key: Arc::clone(&self.key),
            tapped: Arc::new(tapped),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        Ok(Box::pin(TapStream {
            input: self.input.execute(partition, context)?,
            key: Arc::clone(&self.key),
            tapped: Some(Arc::clone(&self.tapped)),
        }))
    }
}

/// One build partition's rows, their keys added to the tap as they pass;
/// its end ends the partition's part of the tap.
struct TapStream {
    input: SendableRecordBatchStream,
    key: Arc<dyn PhysicalExpr>,
    /// `None` once the input has ended.
    tapped: Option<Arc<TappedKeys>>,
}

impl Stream for TapStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(tapped) = &this.tapped else {
            return Poll::Ready(None);
        };
        match this.input.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(batch))) => {
                let keys = this
                    .key
                    .evaluate(&batch)
                    .and_then(|keys| keys.into_array(batch.num_rows()));
                match keys {
                    Ok(keys) => {
                        tapped.add(keys);
                        Poll::Ready(Some(Ok(batch)))
                    }
                    Err(e) => Poll::Ready(Some(Err(e))),
                }
            }
            Poll::Ready(None) => {
                tapped.end_partition();
                this.tapped = None;
                Poll::Ready(None)
            }
            other => other,
        }
    }
}

impl RecordBatchStream for TapStream {
    fn schema(&self) -> SchemaRef {
        self.input.schema()
    }
}

/// Taps the build side of each hash join for each of its keys that a
/// stored table's scan holds in the join's dynamic filter (see the
/// module's doc). Runs last, once DataFusion has pushed its filters down.
#[derive(Debug)]
pub(crate) struct TapJoinKeys;

impl PhysicalOptimizerRule for TapJoinKeys {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else {
                return Ok(Transformed::no(node));
            };
            let produced = join.dynamic_expressions_produced();
            let [filter] = &produced[..] else {
                return Ok(Transformed::no(node));
            };
            // Under NULL = NULL, or in a NOT IN (null-aware), a probe row
            // whose key is NULL matters, and the build side holds no key
            // for it.
            if join.null_equality() != NullEquality::NullEqualsNothing || join.null_aware {
                return Ok(Transformed::no(node));
            }
            let Some(id) = filter.expression_id() else {
                return Ok(Transformed::no(node));
            };
            let partitions = join.left().output_partitioning().partition_count();
            let (mut left, mut right) = (Arc::clone(join.left()), Arc::clone(join.right()));
            let mut transformed = false;
            for (key, (build_key, _)) in join.on().iter().enumerate() {
                let data_type = build_key.data_type(&join.left().schema())?;
                let tapped = Arc::new(TappedKeys::new(data_type, partitions));
                let tapped_right = right.transform_down(|scan| {
                    Ok(match table_source::with_tap(&scan, id, key, &tapped) {
                        Some(tapped_scan) => Transformed::yes(tapped_scan),
                        None => Transformed::no(scan),
                    })
                })?;
                right = tapped_right.data;
                if tapped_right.transformed {
                    transformed = true;
                    left = Arc::new(KeyTapExec {
                        input: left,
                        key: Arc::clone(build_key),
                        tapped,
                    });
                }
            }
            if !transformed {
                return Ok(Transformed::no(node));
            }
            let keep = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Keep);
            let tapped_join = Arc::clone(&node).replace_children(vec![left, right], keep)?;
            Ok(Transformed::yes(tapped_join))
        })
        .data()
    }

    fn name(&self) -> &str {
        "ciab_tap_join_keys"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, Int64Array};
    use datafusion::arrow::datatypes::Int64Type;

    fn numbers(keys: &Keys) -> Vec<i64> {
        keys.as_array()
            .as_primitive::<Int64Type>()
            .values()
            .to_vec()
    }

    #[test]
    fn keys_are_known_once_every_build_partition_has_ended() {
        let tapped = TappedKeys::new(DataType::Int64, 2);
        let keys = |v: Vec<i64>| Arc::new(Int64Array::from(v)) as ArrayRef;
        tapped.add(keys(vec![5, 1]));
        tapped.end_partition();
        assert_eq!(tapped.rows(), None);
        assert!(tapped.keys().unwrap().is_none());
        tapped.add(keys(vec![1, 3]));
        tapped.end_partition();
        assert_eq!(tapped.rows(), Some((4, 3)));
        assert_eq!(numbers(tapped.keys().unwrap().unwrap()), [1, 3, 5]);
        // Worked out once, for every scan that asks.
        assert_eq!(numbers(tapped.keys().unwrap().unwrap()), [1, 3, 5]);

        // A build side with no rows has no keys; one of too many rows,
        // a partition that ends twice, a plan reset: none that are known.
        let empty = TappedKeys::new(DataType::Int64, 1);
        empty.end_partition();
        assert_eq!(empty.rows(), Some((0, 0)));
        assert!(empty.keys().unwrap().is_none());
        let many_rows = TappedKeys::new(DataType::Int64, 1);
        many_rows.add(keys(vec![7; TAPPED_ROWS_MAX]));
        many_rows.add(keys(vec![7]));
        many_rows.end_partition();
        assert_eq!(many_rows.rows(), None);
        assert!(many_rows.keys().unwrap().is_none());
        // Twice the most keys kept, as the sketch's estimate may be low.
        let many_keys = TappedKeys::new(DataType::Int64, 1);
        many_keys.add(keys((0..2 * TAPPED_KEYS_MAX as i64).collect()));
        many_keys.end_partition();
        assert_eq!(many_keys.rows(), None);
        let twice = TappedKeys::new(DataType::Int64, 1);
        twice.end_partition();
        twice.end_partition();
        assert_eq!(twice.rows(), None);
        let reset = TappedKeys::new(DataType::Int64, 1);
        reset.end_partition();
        reset.forget();
        assert_eq!(reset.rows(), None);
    }

    #[test]
    fn keys_are_sorted_for_a_scan_where_a_lookup_may_pay() {
        let tapped = |rows: i64, values: i64| {
            let tapped = TappedKeys::new(DataType::Int64, 1);
            tapped.add(Arc::new(Int64Array::from(
                (0..rows).map(|k| k % values).collect::<Vec<_>>(),
            )));
            tapped.end_partition();
            tapped
        };
        // A few rows: sorted, and counted once, whatever the column.
        let few = tapped(SORTED_ANYWAY_ROWS_MAX as i64, 1_000);
        assert_eq!(
            few.keys_for(Some(1)).unwrap().unwrap().as_array().len(),
            1_000
        );
        // More keys than a quarter of the column's values: left unsorted,
        // unless the column's values are unknown.
        let more = tapped(20_000, 20_000);
        assert!(more.keys_for(Some(60_000)).unwrap().is_none());
        assert!(more.keys_for(Some(1_000_000)).unwrap().is_some());
        assert!(more.keys_for(None).unwrap().is_some());
        // Many rows of few keys (TPC-H q09's parts, each in many build
        // rows): the keys, not the rows, decide.
        let repeated = tapped(300_000, 1_000);
        assert_eq!(
            repeated
                .keys_for(Some(60_000))
                .unwrap()
                .unwrap()
                .as_array()
                .len(),
            1_000
        );
    }
}
