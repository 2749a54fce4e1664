//! Sums, averages and counts over few groups add each batch up in lanes
//! before the group's running total takes it.
//!
//! DataFusion's grouped `sum`, `avg` and `count` add each row straight into
//! its group's running total in memory: `sums[group[i]] += value[i]`. With
//! few groups, neighbouring rows mostly go to the same total, so each
//! addition waits for the store of the one before it to reach the load
//! (store-to-load forwarding, about five cycles): TPC-H q01, eight such
//! aggregates over four groups, spent 120 ms of CPU there. Here a batch is
//! first added up in `LANES` interleaved copies of the group totals, so
//! that neighbouring rows land in different copies and the additions
//! overlap; the copies are then folded and handed to DataFusion's own
//! accumulator as partial results (`merge_batch`), which keeps all state,
//! emits the results and handles every other case:
//!
//! ```text
//!   rows ─► lane i % 4: totals[lane][group] += value ─► fold lanes ─► merge_batch
//!                                                  (groups the batch touched)
//! ```
//!
//! Only wrapping integer additions are pre-added (64-bit integers and
//! 128-bit decimals): they give the same totals in any order, where
//! floating-point ones would round differently. Rows with NULLs, an
//! aggregate's FILTER, DISTINCT and many groups take DataFusion's path.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, BooleanArray, Int64Array, PrimitiveArray,
    UInt64Array,
};
use datafusion::arrow::datatypes::{
    ArrowNativeTypeOp, DataType, Decimal128Type, FieldRef, Int64Type, SchemaRef,
};
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{Result, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::functions_aggregate::average::Avg;
use datafusion::functions_aggregate::count::Count;
use datafusion::functions_aggregate::sum::Sum;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, ReversedUDAF,
    SetMonotonicity, Signature, StatisticsArgs,
};
use datafusion::physical_expr::aggregate::{AggregateExprBuilder, AggregateFunctionExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};

/// Interleaved copies of the group totals a batch is added up in: enough
/// that the rows between two additions to one copy cover the forwarding
/// latency.
const LANES: usize = 4;
/// Groups up to which a batch is added up in lanes: the lanes' totals
/// (16 bytes each for decimals) stay in the L1 cache.
const GROUPS_MAX: usize = 128;
/// A batch is added up in lanes only if it holds at least this many rows a
/// group; otherwise clearing and folding the lanes costs more than it saves.
const ROWS_PER_GROUP_MIN: usize = 8;

/// Gives the grouped sums, averages and counts of aggregations that read
/// rows (not partial results) [`FewGroups`]' accumulator.
#[derive(Debug, Default)]
pub struct FewGroupsAggregates;

impl PhysicalOptimizerRule for FewGroupsAggregates {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(aggregate) = node.downcast_ref::<AggregateExec>() else {
                return Ok(Transformed::no(node));
            };
            let reads_rows = matches!(
                aggregate.mode(),
                AggregateMode::Partial | AggregateMode::Single | AggregateMode::SinglePartitioned
            );
            if !reads_rows || aggregate.group_expr().is_empty() {
                return Ok(Transformed::no(node));
            }
            let input_schema = aggregate.input_schema();
            let mut changed = false;
            let mut exprs = Vec::with_capacity(aggregate.aggr_expr().len());
            for expr in aggregate.aggr_expr() {
                match wrapped(expr, &input_schema)? {
                    Some(wrapped) => {
                        changed = true;
                        exprs.push(Arc::new(wrapped));
                    }
                    None => exprs.push(Arc::clone(expr)),
                }
            }
            if !changed {
                return Ok(Transformed::no(node));
            }
            Ok(Transformed::yes(Arc::new(
                aggregate.with_new_aggr_exprs(exprs),
            )))
        })
        .data()
    }

    fn name(&self) -> &str {
        "ciab_few_groups_aggregates"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `expr` with its function wrapped in [`FewGroups`], if it is one this
/// module adds up and the rebuilt expression is the same in all else.
fn wrapped(
    expr: &AggregateFunctionExpr,
    input_schema: &SchemaRef,
) -> Result<Option<AggregateFunctionExpr>> {
    let args = expr.expressions();
    let [arg] = args.as_slice() else {
        return Ok(None);
    };
    if expr.is_distinct() || !expr.order_bys().is_empty() {
        return Ok(None);
    }
    // DataFusion's own functions, whose partial results this module makes.
    let fun = expr.fun().inner().as_ref();
    let kind = match arg.data_type(input_schema)? {
        DataType::Int64 if fun.is::<Sum>() => Kind::Sum(Native::Int64),
        DataType::Decimal128(..) if fun.is::<Sum>() => Kind::Sum(Native::Decimal128),
        DataType::Decimal128(..) if fun.is::<Avg>() => Kind::Avg,
        _ if fun.is::<Count>() => Kind::Count,
        _ => return Ok(None),
    };
    let fun = AggregateUDF::new_from_impl(FewGroups {
        inner: Arc::new(expr.fun().clone()),
        kind,
    });
    let mut builder = AggregateExprBuilder::new(Arc::new(fun), args.clone())
        .schema(Arc::clone(input_schema))
        .alias(expr.name())
        .with_ignore_nulls(expr.ignore_nulls())
        .with_reversed(expr.is_reversed());
    if let Some(display) = expr.human_display() {
        builder = builder.human_display(display);
    }
    if let Some(alias) = expr.human_display_alias() {
        builder = builder.human_display_alias(alias);
    }
    let rebuilt = builder.build()?;
    // The same output and partial results, or it is left as it was (a
    // field's metadata, which the builder would not carry over).
    let same = rebuilt.field() == expr.field() && rebuilt.state_fields()? == expr.state_fields()?;
    Ok(same.then_some(rebuilt))
}

/// The aggregate, and the native type a sum adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Sum(Native),
    /// An average of decimals: a count and a sum of the input's values.
    Avg,
    /// A count of the rows, of which none is NULL on this path.
    Count,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Native {
    Int64,
    Decimal128,
}

/// DataFusion's `sum`, `avg` or `count`, whose grouped accumulator adds a
/// batch of few groups up in lanes first. Everything else is the wrapped
/// function's.
#[derive(Debug, PartialEq, Eq, Hash)]
struct FewGroups {
    inner: Arc<AggregateUDF>,
    kind: Kind,
}

impl AggregateUDFImpl for FewGroups {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field(&self, arg_fields: &[FieldRef]) -> Result<FieldRef> {
        self.inner.return_field(arg_fields)
    }

    fn is_nullable(&self) -> bool {
        self.inner.is_nullable()
    }

    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.inner.accumulator(acc_args)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let state = self.inner.state_fields(StateFieldsArgs {
            name: args.name,
            input_fields: args.expr_fields,
            return_field: Arc::clone(&args.return_field),
            ordering_fields: &[],
            is_distinct: args.is_distinct,
        })?;
        let inner = self.inner.create_groups_accumulator(args)?;
        Ok(Box::new(FewGroupsAccumulator {
            inner,
            kind: self.kind,
            sum_type: state.last().expect("a state field").data_type().clone(),
        }))
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.inner.create_sliding_accumulator(args)
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.inner().order_sensitivity()
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        self.inner.reverse_udf()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn is_descending(&self) -> Option<bool> {
        self.inner.is_descending()
    }

    fn value_from_stats(&self, statistics_args: &StatisticsArgs) -> Option<ScalarValue> {
        self.inner.value_from_stats(statistics_args)
    }

    fn default_value(&self, data_type: &DataType) -> Result<ScalarValue> {
        self.inner.default_value(data_type)
    }

    fn set_monotonicity(&self, data_type: &DataType) -> SetMonotonicity {
        self.inner.inner().set_monotonicity(data_type)
    }
}

/// DataFusion's grouped accumulator, fed batches of few groups already
/// added up per group.
struct FewGroupsAccumulator {
    inner: Box<dyn GroupsAccumulator>,
    kind: Kind,
    /// The type of the partial sums (a sum's or an average's state).
    sum_type: DataType,
}

impl GroupsAccumulator for FewGroupsAccumulator {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        if opt_filter.is_some() || !lanes_pay(values, group_indices.len(), total_num_groups) {
            return self
                .inner
                .update_batch(values, group_indices, opt_filter, total_num_groups);
        }
        let (groups, partial): (Vec<usize>, Vec<ArrayRef>) = match self.kind {
            Kind::Count => {
                let counts = count_up(group_indices, total_num_groups);
                let groups = touched(&counts);
                let counts: Int64Array = groups.iter().map(|&g| counts[g] as i64).collect();
                (groups, vec![Arc::new(counts)])
            }
            Kind::Sum(Native::Int64) => {
                let (groups, _, sums) =
                    add_up::<Int64Type>(values, group_indices, total_num_groups);
                (groups, vec![self.typed::<Int64Type>(sums)])
            }
            Kind::Sum(Native::Decimal128) => {
                let (groups, _, sums) =
                    add_up::<Decimal128Type>(values, group_indices, total_num_groups);
                (groups, vec![self.typed::<Decimal128Type>(sums)])
            }
            Kind::Avg => {
                let (groups, counts, sums) =
                    add_up::<Decimal128Type>(values, group_indices, total_num_groups);
                let counts = Arc::new(UInt64Array::from(counts));
                (groups, vec![counts, self.typed::<Decimal128Type>(sums)])
            }
        };
        self.inner.merge_batch(&partial, &groups, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        self.inner.evaluate(emit_to)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        self.inner.state(emit_to)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.inner
            .merge_batch(values, group_indices, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        self.inner.convert_to_state(values, opt_filter)
    }

    fn size(&self) -> usize {
        self.inner.size()
    }
}

impl FewGroupsAccumulator {
    /// Partial sums as an array of the state's type (a decimal's precision
    /// and scale).
    fn typed<T: ArrowPrimitiveType>(&self, sums: Vec<T::Native>) -> ArrayRef {
        let array = PrimitiveArray::<T>::from_iter_values(sums);
        Arc::new(array.with_data_type(self.sum_type.clone()))
    }
}

/// Whether a batch of `rows` rows in `groups` groups is added up in lanes:
/// few groups, enough rows for each, and no NULL (which DataFusion's
/// accumulators track per group).
fn lanes_pay(values: &[ArrayRef], rows: usize, groups: usize) -> bool {
    (1..=GROUPS_MAX).contains(&groups)
        && rows >= ROWS_PER_GROUP_MIN * groups
        && values.iter().all(|v| v.logical_null_count() == 0)
}

/// The groups a batch touched, in order, from their row counts.
fn touched(counts: &[u64]) -> Vec<usize> {
    (0..counts.len()).filter(|&g| counts[g] > 0).collect()
}

/// Each group's rows in the batch.
fn count_up(group_indices: &[usize], groups: usize) -> Vec<u64> {
    let mut lanes = vec![0u64; LANES * groups];
    let mut rows = group_indices.chunks_exact(LANES);
    for chunk in &mut rows {
        for (lane, &group) in chunk.iter().enumerate() {
            lanes[lane * groups + group] += 1;
        }
    }
    for &group in rows.remainder() {
        lanes[group] += 1;
    }
    fold(lanes, groups, |a, b| a + b)
}

/// The groups the batch touched with each one's row count and sum (a
/// wrapping sum, as DataFusion's).
fn add_up<T: ArrowPrimitiveType>(
    values: &[ArrayRef],
    group_indices: &[usize],
    groups: usize,
) -> (Vec<usize>, Vec<u64>, Vec<T::Native>) {
    let values = values[0].as_primitive::<T>().values();
    assert_eq!(values.len(), group_indices.len(), "a group per row");
    let zero = T::Native::ZERO;
    let mut counts = vec![0u64; LANES * groups];
    let mut sums = vec![zero; LANES * groups];
    let mut rows = group_indices.chunks_exact(LANES);
    let mut chunks = values.chunks_exact(LANES);
    for (groups_of, values_of) in (&mut rows).zip(&mut chunks) {
        for (lane, (&group, &value)) in groups_of.iter().zip(values_of).enumerate() {
            let at = lane * groups + group;
            counts[at] += 1;
            sums[at] = sums[at].add_wrapping(value);
        }
    }
    for (&group, &value) in rows.remainder().iter().zip(chunks.remainder()) {
        counts[group] += 1;
        sums[group] = sums[group].add_wrapping(value);
    }
    let counts = fold(counts, groups, |a, b| a + b);
    let sums = fold(sums, groups, |a: T::Native, b| a.add_wrapping(b));
    let touched = touched(&counts);
    let counts = touched.iter().map(|&g| counts[g]).collect();
    let sums = touched.iter().map(|&g| sums[g]).collect();
    (touched, counts, sums)
}

/// Lane 0 of `lanes` with every other lane added in.
fn fold<T: Copy>(mut lanes: Vec<T>, groups: usize, add: impl Fn(T, T) -> T) -> Vec<T> {
    let (first, others) = lanes.split_at_mut(groups);
    for lane in others.chunks_exact(groups) {
        for (total, &value) in first.iter_mut().zip(lane) {
            *total = add(*total, value);
        }
    }
    lanes.truncate(groups);
    lanes
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::functions_aggregate::average::avg_udaf;
    use datafusion::functions_aggregate::count::count_udaf;
    use datafusion::functions_aggregate::sum::sum_udaf;
    use datafusion::physical_expr::expressions::col;

    /// A small deterministic generator (an LCG), so that a failure repeats.
    struct Numbers(u64);

    impl Numbers {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 11
        }
    }

    /// Group indices for `rows` rows of `groups` groups: runs of one group
    /// (as rows in key order often come) mixed with scattered rows.
    fn group_indices(numbers: &mut Numbers, rows: usize, groups: usize) -> Vec<usize> {
        let mut indices = Vec::with_capacity(rows);
        while indices.len() < rows {
            let group = numbers.next() as usize % groups;
            let run = 1 + numbers.next() as usize % 5;
            indices.extend(std::iter::repeat_n(group, run.min(rows - indices.len())));
        }
        indices
    }

    /// Feeds the same batches to DataFusion's accumulator and to the one
    /// [`FewGroupsAggregates`] gives the same expression, and compares
    /// their partial results and their final ones.
    fn check(fun: Arc<AggregateUDF>, values: Vec<ArrayRef>, groups: usize, seed: u64) {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "v",
            values[0].data_type().clone(),
            true,
        )]));
        let expr = AggregateExprBuilder::new(fun, vec![col("v", &schema).unwrap()])
            .schema(Arc::clone(&schema))
            .alias("a")
            .build()
            .unwrap();
        let few = wrapped(&expr, &schema).unwrap().expect("wrapped");
        let mut numbers = Numbers(seed);
        for emit in ["state", "evaluate"] {
            let mut plain = expr.create_groups_accumulator().unwrap();
            let mut lanes = few.create_groups_accumulator().unwrap();
            for (i, batch) in values.iter().enumerate() {
                let indices = group_indices(&mut numbers, batch.len(), groups);
                // Every third batch with an aggregate's FILTER.
                let filter = (i % 3 == 2)
                    .then(|| BooleanArray::from_iter((0..batch.len()).map(|r| Some(r % 4 != 1))));
                for accumulator in [&mut plain, &mut lanes] {
                    accumulator
                        .update_batch(
                            std::slice::from_ref(batch),
                            &indices,
                            filter.as_ref(),
                            groups,
                        )
                        .unwrap();
                }
            }
            if emit == "state" {
                let (a, b) = (plain.state(EmitTo::All), lanes.state(EmitTo::All));
                assert_eq!(a.unwrap(), b.unwrap());
            } else {
                let (a, b) = (plain.evaluate(EmitTo::All), lanes.evaluate(EmitTo::All));
                assert_eq!(format!("{a:?}"), format!("{b:?}"));
            }
        }
    }

    /// Batches of several lengths (none a multiple of the lanes, one too
    /// short to pay) with values from `value`, and NULLs in one of them.
    fn batches<T: ArrowPrimitiveType>(
        data_type: DataType,
        value: impl Fn(u64) -> T::Native,
    ) -> Vec<ArrayRef> {
        let mut numbers = Numbers(7);
        [8193, 3, 1027, 4096, 515]
            .iter()
            .enumerate()
            .map(|(b, &rows)| {
                let array: PrimitiveArray<T> = (0..rows)
                    .map(|r| (b != 3 || r % 7 != 0).then(|| value(numbers.next())))
                    .collect();
                Arc::new(array.with_data_type(data_type.clone())) as ArrayRef
            })
            .collect()
    }

    #[test]
    fn lanes_give_datafusions_sums_averages_and_counts() {
        // Decimals near the type's limit, so that sums wrap.
        let big = |n: u64| (n as i128 - (1 << 52)) * 10i128.pow(22);
        let price = |n: u64| (n % 10_000_000) as i128;
        let decimal = DataType::Decimal128(38, 2);
        let narrow = DataType::Decimal128(15, 2);
        for groups in [1, 4, 17, GROUPS_MAX, GROUPS_MAX + 1] {
            let seed = groups as u64;
            check(
                sum_udaf(),
                batches::<Decimal128Type>(decimal.clone(), big),
                groups,
                seed,
            );
            check(
                sum_udaf(),
                batches::<Decimal128Type>(narrow.clone(), price),
                groups,
                seed,
            );
            check(
                avg_udaf(),
                batches::<Decimal128Type>(narrow.clone(), price),
                groups,
                seed,
            );
            let wide = |n: u64| (n << 12) as i64;
            check(
                sum_udaf(),
                batches::<Int64Type>(DataType::Int64, wide),
                groups,
                seed,
            );
            check(
                count_udaf(),
                batches::<Int64Type>(DataType::Int64, wide),
                groups,
                seed,
            );
        }
    }

    #[test]
    fn only_datafusions_integer_sums_decimal_averages_and_counts_are_wrapped() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("f", DataType::Float64, true),
            Field::new("d", DataType::Decimal128(15, 2), true),
        ]));
        let expr = |fun: Arc<AggregateUDF>, column: &str, distinct: bool| {
            AggregateExprBuilder::new(fun, vec![col(column, &schema).unwrap()])
                .schema(Arc::clone(&schema))
                .alias("a")
                .with_distinct(distinct)
                .build()
                .unwrap()
        };
        let is_wrapped = |e: AggregateFunctionExpr| wrapped(&e, &schema).unwrap().is_some();
        assert!(is_wrapped(expr(sum_udaf(), "d", false)));
        assert!(is_wrapped(expr(count_udaf(), "f", false)));
        // Floating-point sums round differently in another order.
        assert!(!is_wrapped(expr(sum_udaf(), "f", false)));
        assert!(!is_wrapped(expr(avg_udaf(), "f", false)));
        assert!(!is_wrapped(expr(sum_udaf(), "d", true)));
    }
}
