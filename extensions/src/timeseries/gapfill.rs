//! Gap filling: TimescaleDB's `time_bucket_gapfill`, `locf` and
//! `interpolate`.
//!
//! ```text
//!  SELECT time_bucket_gapfill('1 hour', ts, s, f) AS b, host,
//!         avg(v), locf(avg(v)), interpolate(max(v))
//!  FROM m GROUP BY b, host
//!
//!  Projection: b, host, avg(v), fill_0, fill_1       locf/interpolate read
//!    GapFill: time=b groups=[host]                   the filled columns
//!             fills=[fill_0 locf, fill_1 interpolate]
//!      Projection: b, host, avg(v), max(v),          their arguments become
//!                  avg(v) AS fill_0, max(v) AS fill_1  columns
//!        Aggregate: group by time_bucket('1 hour', ts) AS b, host
//! ```
//!
//! [`Gapfill`], an analyzer rule, rewrites the plan as drawn: the bucket is
//! an ordinary `time_bucket`, and a [`GapFill`] node sits on the aggregate's
//! output. [`GapFillExec`] sorts that output by group and time and, for
//! each group, adds a row for every bucket from `start` up to `finish` that
//! has none, as TimescaleDB's gapfill node does: the group's columns are
//! repeated, aggregates are NULL (so `count(*)` is NULL and `coalesce(avg(v),
//! 0)` is 0 on a filled row), `locf` carries the last value of the group
//! forward, and `interpolate` draws a line between the group's rows on
//! either side. Without `start` or `finish` the bounds come from the WHERE
//! clause (`ts >= ...`, `ts < ...`). The aggregate's output, one row per
//! bucket and group, is held in memory.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Float32Array, Float64Array, Int16Array, Int32Array,
    Int64Array, RecordBatch, TimestampMicrosecondArray, UInt32Array,
};
use datafusion::arrow::compute::{SortColumn, cast, concat_batches, lexsort_to_indices, take};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, SchemaRef,
    TimeUnit, TimestampMicrosecondType,
};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{
    Column, DFSchema, DFSchemaRef, Result, ScalarValue, exec_err, internal_err, plan_err,
};
use datafusion::config::ConfigOptions;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Aggregate, Between, BinaryExpr, ColumnarValue, Expr, Extension, Filter, LogicalPlan, Operator,
    Projection, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, UserDefinedLogicalNode,
    UserDefinedLogicalNodeCore, Volatility,
};
use datafusion::optimizer::analyzer::AnalyzerRule;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, Partitioning, PlanProperties,
};
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use futures::TryStreamExt;

use super::bucket::{self, MICROS_PER_DAY, TimeBucket, Width, floor_to, out_of_range};
use crate::error::{Error, sqlstate};

/// The most rows one gap-filled query may make: a width far smaller than
/// the range (one second over fifty years) is a mistake, not a result.
pub const GAPFILL_ROWS_MAX: usize = 10_000_000;

const GAPFILL: &str = "time_bucket_gapfill";

/// How a filled row gets a column's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd)]
pub enum Fill {
    Locf,
    Interpolate,
}

impl Fill {
    fn name(self) -> &'static str {
        match self {
            Fill::Locf => "locf",
            Fill::Interpolate => "interpolate",
        }
    }
}

/// `time_bucket_gapfill(width, ts [, start [, finish]])`. [`Gapfill`]
/// replaces it with `time_bucket` when it groups an aggregate; anywhere
/// else it has no meaning, as in TimescaleDB.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimeBucketGapfill {
    signature: Signature,
}

impl Default for TimeBucketGapfill {
    fn default() -> Self {
        TimeBucketGapfill {
            signature: Signature::user_defined(Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for TimeBucketGapfill {
    fn name(&self) -> &str {
        GAPFILL
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        if !(2..=4).contains(&types.len()) {
            return plan_err!("{GAPFILL} takes a width, a time, and optionally start and finish");
        }
        let mut cast = bucket::bucket_arg_types(GAPFILL, &types[..2])?;
        let time = cast[1].clone();
        cast.extend(types[2..].iter().map(|_| time.clone()));
        Ok(cast)
    }

    fn return_type(&self, types: &[DataType]) -> Result<DataType> {
        Ok(types[1].clone())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Err(Error::new(
            sqlstate::FEATURE_NOT_SUPPORTED,
            "time_bucket_gapfill can only be used as a GROUP BY expression of an aggregate query",
        )
        .into())
    }
}

/// `locf(value)` and `interpolate(value)`: markers that [`Gapfill`]
/// replaces with the columns [`GapFillExec`] fills.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FillMarker {
    fill: Fill,
    signature: Signature,
}

impl FillMarker {
    pub fn new(fill: Fill) -> Self {
        FillMarker {
            fill,
            signature: Signature::user_defined(Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for FillMarker {
    fn name(&self) -> &str {
        self.fill.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        match types {
            [one] => Ok(vec![one.clone()]),
            _ => Err(Error::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!(
                    "{} takes one argument in ciab; lookups of values outside the range are not supported",
                    self.fill.name()
                ),
            )
            .into()),
        }
    }

    fn return_type(&self, types: &[DataType]) -> Result<DataType> {
        Ok(types[0].clone())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Err(Error::new(
            sqlstate::FEATURE_NOT_SUPPORTED,
            format!(
                "{} can only be used in an aggregate query with time_bucket_gapfill",
                self.fill.name()
            ),
        )
        .into())
    }
}

/// A GROUP BY expression without the name it may carry from planning (a
/// rewrite that changed it keeps the name: `integer_literals`).
fn unaliased(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(alias) => alias.expr.as_ref(),
        other => other,
    }
}

fn is_call(expr: &Expr, name: &str) -> bool {
    matches!(expr, Expr::ScalarFunction(f) if f.func.name() == name)
}

fn fill_of(expr: &Expr) -> Option<Fill> {
    [Fill::Locf, Fill::Interpolate]
        .into_iter()
        .find(|fill| is_call(expr, fill.name()))
}

/// The analyzer rule that plans gap filling (see the module's docs).
#[derive(Debug, Default)]
pub struct Gapfill;

impl AnalyzerRule for Gapfill {
    fn name(&self) -> &str {
        "ciab_gapfill"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(rewrite).map(|t| t.data)
    }
}

fn rewrite(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Projection(projection) = &plan else {
        return Ok(Transformed::no(plan));
    };
    let (having, aggregate) = match projection.input.as_ref() {
        LogicalPlan::Aggregate(a) => (None, a),
        LogicalPlan::Filter(f) => match f.input.as_ref() {
            LogicalPlan::Aggregate(a) => (Some(f), a),
            _ => return Ok(Transformed::no(plan)),
        },
        _ => return Ok(Transformed::no(plan)),
    };
    let calls: Vec<usize> = (0..aggregate.group_expr.len())
        .filter(|&i| is_call(unaliased(&aggregate.group_expr[i]), GAPFILL))
        .collect();
    let time_index = match calls.as_slice() {
        [] => return Ok(Transformed::no(plan)),
        [one] => *one,
        _ => return Err(unsupported("more than one time_bucket_gapfill in GROUP BY")),
    };
    if aggregate
        .group_expr
        .iter()
        .any(|e| matches!(e, Expr::GroupingSet(_)))
    {
        return Err(unsupported("time_bucket_gapfill with grouping sets"));
    }
    let original = &aggregate.group_expr[time_index];
    let Expr::ScalarFunction(call) = unaliased(original) else {
        unreachable!("is_call matched a function call");
    };
    let [width, ts] = [&call.args[0], &call.args[1]];
    let bounds = |position: usize, start: bool| -> Result<Vec<Bound>> {
        match call.args.get(position) {
            Some(Expr::Literal(v, _)) if v.is_null() => infer_bounds(ts, &aggregate.input, start),
            Some(given) => Ok(vec![Bound {
                expr: given.clone(),
                after: false,
            }]),
            None => infer_bounds(ts, &aggregate.input, start),
        }
    };
    let (start, finish) = (bounds(2, true)?, bounds(3, false)?);
    let time_bucket = Arc::new(ScalarUDF::new_from_impl(TimeBucket::default()));
    let bucket = Expr::ScalarFunction(ScalarFunction::new_udf(
        time_bucket,
        vec![width.clone(), ts.clone()],
    ))
    .alias(original.schema_name().to_string());
    let mut group_expr = aggregate.group_expr.clone();
    group_expr[time_index] = bucket;
    let aggregated = LogicalPlan::Aggregate(Aggregate::try_new(
        aggregate.input.clone(),
        group_expr,
        aggregate.aggr_expr.clone(),
    )?);
    let below = match having {
        Some(f) => LogicalPlan::Filter(Filter::try_new(f.predicate.clone(), Arc::new(aggregated))?),
        None => aggregated,
    };
    let columns = below.schema().columns();
    let time = columns[time_index].clone();
    let groups = (0..aggregate.group_expr.len())
        .filter(|&i| i != time_index)
        .map(|i| columns[i].clone())
        .collect();

    // Each locf(...) and interpolate(...) becomes a column of the
    // projection under the GapFill node, which fills it.
    let mut fill_args: Vec<Expr> = vec![];
    let mut fills: Vec<(Column, Fill)> = vec![];
    let mut exprs = Vec::with_capacity(projection.expr.len());
    for expr in &projection.expr {
        let name = expr.name_for_alias()?;
        let replaced = expr.clone().transform_up(|e| {
            let Some(fill) = fill_of(&e) else {
                return Ok(Transformed::no(e));
            };
            let Expr::ScalarFunction(f) = e else {
                unreachable!("fill_of matched a function call");
            };
            let arg = f
                .args
                .into_iter()
                .next()
                .expect("coerce_types allows one argument");
            if arg.exists(|inner| Ok(fill_of(inner).is_some()))? {
                return Err(unsupported("locf or interpolate inside another one"));
            }
            let column = Column::from_name(format!("__ciab_fill_{}", fills.len()));
            fill_args.push(arg.alias(column.name.clone()));
            fills.push((column.clone(), fill));
            Ok(Transformed::yes(Expr::Column(column)))
        })?;
        exprs.push(if replaced.transformed {
            replaced.data.alias_if_changed(name)?
        } else {
            replaced.data
        });
    }
    let inner_exprs = columns
        .into_iter()
        .map(Expr::Column)
        .chain(fill_args)
        .collect::<Vec<_>>();
    let inner = LogicalPlan::Projection(Projection::try_new(inner_exprs, Arc::new(below))?);
    let node = GapFill::try_new(inner, time, groups, fills, width.clone(), start, finish)?;
    let filled = LogicalPlan::Extension(Extension {
        node: Arc::new(node),
    });
    Ok(Transformed::yes(LogicalPlan::Projection(
        Projection::try_new(exprs, Arc::new(filled))?,
    )))
}

fn unsupported(what: &str) -> datafusion::error::DataFusionError {
    Error::new(
        sqlstate::FEATURE_NOT_SUPPORTED,
        format!("{what} is not supported"),
    )
    .into()
}

/// One bound on the filled range: `start` is the greatest of its bounds,
/// `finish` (exclusive) the least. `after` marks a bound one past the
/// value (`ts > x` starts at `x` plus one unit; `ts <= x` finishes there).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct Bound {
    expr: Expr,
    after: bool,
}

fn strip_casts(mut e: &Expr) -> &Expr {
    while let Expr::Cast(c) = e {
        e = &c.expr;
    }
    while let Expr::TryCast(c) = e {
        e = &c.expr;
    }
    e
}

/// The bounds the WHERE clause under the aggregate puts on `ts`, as
/// TimescaleDB infers a missing start or finish.
fn infer_bounds(ts: &Expr, input: &LogicalPlan, start: bool) -> Result<Vec<Bound>> {
    let ts = strip_casts(ts);
    let is_ts = |e: &Expr| strip_casts(e) == ts;
    let constant = |e: &Expr| e.column_refs().is_empty() && !e.contains_outer();
    let mut bounds = vec![];
    let mut plan = input;
    while let LogicalPlan::Filter(filter) = plan {
        for predicate in datafusion::logical_expr::utils::split_conjunction(&filter.predicate) {
            match predicate {
                Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                    let (op, value) = if is_ts(left) && constant(right) {
                        (*op, right)
                    } else if is_ts(right) && constant(left) {
                        match op.swap() {
                            Some(op) => (op, left),
                            None => continue,
                        }
                    } else {
                        continue;
                    };
                    let bound = |after| Bound {
                        expr: value.as_ref().clone(),
                        after,
                    };
                    match (op, start) {
                        (Operator::GtEq, true) => bounds.push(bound(false)),
                        (Operator::Gt, true) => bounds.push(bound(true)),
                        (Operator::Lt, false) => bounds.push(bound(false)),
                        (Operator::LtEq, false) => bounds.push(bound(true)),
                        _ => {}
                    }
                }
                Expr::Between(Between {
                    expr,
                    negated: false,
                    low,
                    high,
                }) if is_ts(expr) && constant(low) && constant(high) => {
                    bounds.push(if start {
                        Bound {
                            expr: low.as_ref().clone(),
                            after: false,
                        }
                    } else {
                        Bound {
                            expr: high.as_ref().clone(),
                            after: true,
                        }
                    });
                }
                _ => {}
            }
        }
        plan = filter.input.as_ref();
    }
    if bounds.is_empty() {
        let which = if start { "start" } else { "finish" };
        return Err(Error::invalid_parameter(format!(
            "missing time_bucket_gapfill argument: could not infer {which} from WHERE clause"
        ))
        .with_detail("Specify start and finish as arguments or in the WHERE clause.")
        .into());
    }
    Ok(bounds)
}

/// The logical node: fills gaps in its input (see the module's docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GapFill {
    input: LogicalPlan,
    time: Column,
    groups: Vec<Column>,
    fills: Vec<(Column, Fill)>,
    width: Expr,
    start: Vec<Bound>,
    finish: Vec<Bound>,
    /// The input's columns, all nullable: filled rows have NULL aggregates.
    schema: DFSchemaRef,
}

impl GapFill {
    fn try_new(
        input: LogicalPlan,
        time: Column,
        groups: Vec<Column>,
        fills: Vec<(Column, Fill)>,
        width: Expr,
        start: Vec<Bound>,
        finish: Vec<Bound>,
    ) -> Result<Self> {
        let fields = input
            .schema()
            .iter()
            .map(|(q, f)| (q.cloned(), Arc::new(f.as_ref().clone().with_nullable(true))))
            .collect();
        let schema = Arc::new(DFSchema::new_with_metadata(
            fields,
            input.schema().metadata().clone(),
        )?);
        Ok(GapFill {
            input,
            time,
            groups,
            fills,
            width,
            start,
            finish,
            schema,
        })
    }
}

/// A DFSchema has no order; the schema follows from the input anyway.
impl PartialOrd for GapFill {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        let key = |n: &GapFill| {
            (
                n.input.clone(),
                n.time.clone(),
                n.groups.clone(),
                n.fills.clone(),
                n.width.clone(),
                n.start.clone(),
                n.finish.clone(),
            )
        };
        key(self).partial_cmp(&key(other))
    }
}

impl UserDefinedLogicalNodeCore for GapFill {
    fn name(&self) -> &str {
        "GapFill"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        std::iter::once(&self.width)
            .chain(self.start.iter().map(|b| &b.expr))
            .chain(self.finish.iter().map(|b| &b.expr))
            .cloned()
            .collect()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let fills: Vec<String> = self
            .fills
            .iter()
            .map(|(c, fill)| format!("{} {}", c.name, fill.name()))
            .collect();
        write!(
            f,
            "GapFill: time={} groups=[{}] fills=[{}] width={}",
            self.time,
            self.groups
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            fills.join(", "),
            self.width
        )
    }

    fn with_exprs_and_inputs(
        &self,
        mut exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        if exprs.len() != 1 + self.start.len() + self.finish.len() || inputs.len() != 1 {
            return internal_err!("GapFill rebuilt with other expressions or inputs");
        }
        let finish = exprs.split_off(1 + self.start.len());
        let start = exprs.split_off(1);
        let rebound = |bounds: &[Bound], exprs: Vec<Expr>| {
            bounds
                .iter()
                .zip(exprs)
                .map(|(b, expr)| Bound {
                    expr,
                    after: b.after,
                })
                .collect()
        };
        GapFill::try_new(
            inputs.remove(0),
            self.time.clone(),
            self.groups.clone(),
            self.fills.clone(),
            exprs.remove(0),
            rebound(&self.start, start),
            rebound(&self.finish, finish),
        )
    }

    fn prevent_predicate_push_down_columns(&self) -> HashSet<String> {
        // A filter over filled rows must see them: nothing moves below.
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }
}

/// Plans [`GapFill`] nodes as [`GapFillExec`].
#[derive(Debug, Default)]
pub struct GapFillPlanner;

#[async_trait::async_trait]
impl ExtensionPlanner for GapFillPlanner {
    async fn plan_extension(
        &self,
        planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<GapFill>() else {
            return Ok(None);
        };
        let input_schema = logical_inputs[0].schema();
        let empty = DFSchema::empty();
        let constant = |e: &Expr| planner.create_physical_expr(e, &empty, session, planning_ctx);
        let bounds = |bounds: &[Bound]| -> Result<Vec<(Arc<dyn PhysicalExpr>, bool)>> {
            bounds
                .iter()
                .map(|b| Ok((constant(&b.expr)?, b.after)))
                .collect()
        };
        let spec = Spec {
            time: input_schema.index_of_column(&node.time)?,
            groups: node
                .groups
                .iter()
                .map(|c| input_schema.index_of_column(c))
                .collect::<Result<_>>()?,
            fills: node
                .fills
                .iter()
                .map(|(c, fill)| Ok((input_schema.index_of_column(c)?, *fill)))
                .collect::<Result<_>>()?,
            width: constant(&node.width)?,
            start: bounds(&node.start)?,
            finish: bounds(&node.finish)?,
            schema: Arc::new(node.schema.as_arrow().clone()),
        };
        Ok(Some(Arc::new(GapFillExec::new(
            physical_inputs[0].clone(),
            Arc::new(spec),
        ))))
    }
}

/// What [`GapFillExec`] fills: column positions in its input, and the
/// constant expressions of the width and the bounds.
#[derive(Debug)]
struct Spec {
    time: usize,
    groups: Vec<usize>,
    fills: Vec<(usize, Fill)>,
    width: Arc<dyn PhysicalExpr>,
    start: Vec<(Arc<dyn PhysicalExpr>, bool)>,
    finish: Vec<(Arc<dyn PhysicalExpr>, bool)>,
    schema: SchemaRef,
}

#[derive(Debug)]
pub struct GapFillExec {
    input: Arc<dyn ExecutionPlan>,
    spec: Arc<Spec>,
    properties: Arc<PlanProperties>,
}

impl GapFillExec {
    fn new(input: Arc<dyn ExecutionPlan>, spec: Arc<Spec>) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(spec.schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        GapFillExec {
            input,
            spec,
            properties: Arc::new(properties),
        }
    }
}

impl DisplayAs for GapFillExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "GapFillExec: time={} groups={:?}",
            self.spec.time, self.spec.groups
        )
    }
}

impl ExecutionPlan for GapFillExec {
    fn name(&self) -> &str {
        "GapFillExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        let bounds = self
            .spec
            .start
            .iter()
            .chain(&self.spec.finish)
            .map(|(e, _)| e);
        for expr in std::iter::once(&self.spec.width).chain(bounds) {
            if f(expr)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return internal_err!("GapFillExec has one input");
        }
        Ok(Arc::new(GapFillExec::new(
            children.remove(0),
            self.spec.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("GapFillExec has one partition, not {partition}");
        }
        let input = self.input.execute(0, context)?;
        let spec = self.spec.clone();
        let stream = futures::stream::once(async move {
            let batches: Vec<RecordBatch> = input.try_collect().await?;
            let input_schema = batches
                .first()
                .map(|b| b.schema())
                .unwrap_or_else(|| spec.schema.clone());
            spec.fill(&concat_batches(&input_schema, &batches)?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.spec.schema.clone(),
            stream,
        )))
    }
}

/// How the bucketed column holds time, and its one-unit step for bounds
/// such as `ts > x`. Timestamps and dates are handled as microseconds.
#[derive(Debug, Clone, Copy)]
enum TimeKind {
    Micros,
    Date,
    Integer,
}

impl TimeKind {
    fn of(t: &DataType) -> Result<TimeKind> {
        Ok(match t {
            DataType::Timestamp(TimeUnit::Microsecond, _) => TimeKind::Micros,
            DataType::Date32 => TimeKind::Date,
            DataType::Int16 | DataType::Int32 | DataType::Int64 => TimeKind::Integer,
            other => return exec_err!("time_bucket_gapfill over {other}"),
        })
    }

    fn unit(self) -> i64 {
        match self {
            TimeKind::Date => MICROS_PER_DAY,
            TimeKind::Micros | TimeKind::Integer => 1,
        }
    }

    fn values(self, array: &ArrayRef) -> Result<Vec<Option<i64>>> {
        Ok(match self {
            TimeKind::Micros => array
                .as_primitive::<TimestampMicrosecondType>()
                .iter()
                .collect(),
            TimeKind::Date => array
                .as_primitive::<Date32Type>()
                .iter()
                .map(|d| d.map(|d| i64::from(d) * MICROS_PER_DAY))
                .collect(),
            TimeKind::Integer => cast(array, &DataType::Int64)?
                .as_primitive::<Int64Type>()
                .iter()
                .collect(),
        })
    }

    fn array(self, values: Vec<i64>, t: &DataType) -> Result<ArrayRef> {
        Ok(match self {
            TimeKind::Micros => {
                let DataType::Timestamp(_, zone) = t else {
                    unreachable!("TimeKind::of checked the type")
                };
                Arc::new(TimestampMicrosecondArray::from(values).with_timezone_opt(zone.clone()))
            }
            TimeKind::Date => Arc::new(Date32Array::from(
                values
                    .into_iter()
                    .map(|t| {
                        i32::try_from(t.div_euclid(MICROS_PER_DAY)).map_err(|_| out_of_range())
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            )),
            TimeKind::Integer => cast(&(Arc::new(Int64Array::from(values)) as ArrayRef), t)?,
        })
    }
}

/// One output row: a row of the input, or a filled one.
#[derive(Debug, Clone, Copy)]
enum Out {
    Row(usize),
    Gap {
        time: i64,
        /// A row of the group, for its group columns.
        group: Option<usize>,
        /// The group's rows before and after, for locf and interpolate.
        prev: Option<usize>,
        next: Option<usize>,
    },
}

impl Spec {
    fn constant(expr: &Arc<dyn PhysicalExpr>) -> Result<ScalarValue> {
        match super::constant(expr)? {
            Some(value) => Ok(value),
            None => internal_err!("the planner made gap filling's bounds constants"),
        }
    }

    fn width(&self, kind: TimeKind) -> Result<Width> {
        let invalid = || {
            Error::invalid_parameter(
                "invalid time_bucket_gapfill argument: bucket_width cannot be NULL",
            )
        };
        Ok(match (kind, Self::constant(&self.width)?) {
            (TimeKind::Integer, v) => {
                let ScalarValue::Int64(Some(w)) = v.cast_to(&DataType::Int64)? else {
                    return Err(invalid().into());
                };
                if w <= 0 {
                    return Err(Error::invalid_parameter(
                        "invalid time_bucket_gapfill argument: bucket_width must be greater than 0",
                    )
                    .into());
                }
                Width::Micros(w)
            }
            (_, ScalarValue::IntervalMonthDayNano(Some(iv))) => Width::of_interval(iv)?,
            _ => return Err(invalid().into()),
        })
    }

    /// The greatest (start) or least (finish) of the bounds, in the
    /// time's units.
    fn bound(
        &self,
        bounds: &[(Arc<dyn PhysicalExpr>, bool)],
        kind: TimeKind,
        t: &DataType,
        start: bool,
    ) -> Result<i64> {
        let mut best: Option<i64> = None;
        for (expr, after) in bounds {
            let value = Self::constant(expr)?.cast_to(t)?;
            let which = if start { "start" } else { "finish" };
            if value.is_null() {
                return Err(Error::invalid_parameter(format!(
                    "invalid time_bucket_gapfill argument: {which} cannot be NULL"
                ))
                .into());
            }
            let value = kind.values(&value.to_array()?)?[0].expect("checked for NULL");
            let value = if *after {
                value.checked_add(kind.unit()).ok_or_else(out_of_range)?
            } else {
                value
            };
            best = Some(match best {
                None => value,
                Some(b) if start => b.max(value),
                Some(b) => b.min(value),
            });
        }
        Ok(best.expect("the rule found at least one bound"))
    }

    fn fill(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let time_type = batch.schema().field(self.time).data_type().clone();
        let kind = TimeKind::of(&time_type)?;
        let width = self.width(kind)?;
        if let (TimeKind::Date, Width::Micros(w)) = (kind, width)
            && w % MICROS_PER_DAY != 0
        {
            return Err(
                Error::invalid_parameter("interval must not have sub-day precision").into(),
            );
        }
        let step = |t: i64| -> Result<i64> {
            Ok(match (kind, width) {
                (TimeKind::Integer, Width::Micros(w)) => {
                    t.checked_add(w).ok_or_else(out_of_range)?
                }
                _ => width.add_micros(t)?,
            })
        };
        let start = self.bound(&self.start, kind, &time_type, true)?;
        let start = match (kind, width) {
            (TimeKind::Integer, Width::Micros(w)) => {
                floor_to(start, w, 0).ok_or_else(out_of_range)?
            }
            _ => bucket::bucket_micros(width, start, None)?,
        };
        let finish = self.bound(&self.finish, kind, &time_type, false)?;

        let times = kind.values(batch.column(self.time))?;
        let mut sort: Vec<SortColumn> = self
            .groups
            .iter()
            .map(|&g| SortColumn {
                values: batch.column(g).clone(),
                options: None,
            })
            .collect();
        sort.push(SortColumn {
            values: batch.column(self.time).clone(),
            options: None,
        });
        let order = lexsort_to_indices(&sort, None)?;
        let group_rows = match self.groups.is_empty() {
            true => None,
            false => {
                let fields = self
                    .groups
                    .iter()
                    .map(|&g| SortField::new(batch.schema().field(g).data_type().clone()))
                    .collect();
                let converter = RowConverter::new(fields)?;
                let columns: Vec<ArrayRef> = self
                    .groups
                    .iter()
                    .map(|&g| batch.column(g).clone())
                    .collect();
                Some(converter.convert_columns(&columns)?)
            }
        };

        let mut out: Vec<Out> = Vec::with_capacity(batch.num_rows());
        let push = |row: Out, out: &mut Vec<Out>| -> Result<()> {
            if out.len() >= GAPFILL_ROWS_MAX {
                return Err(Error::new(
                    sqlstate::PROGRAM_LIMIT_EXCEEDED,
                    format!("time_bucket_gapfill would make more than {GAPFILL_ROWS_MAX} rows"),
                )
                .into());
            }
            out.push(row);
            Ok(())
        };
        let order: Vec<usize> = order.values().iter().map(|&i| i as usize).collect();
        // One pass per group, as TimescaleDB's node steps through its input.
        let mut k = 0;
        let single_empty_group = order.is_empty() && self.groups.is_empty();
        while k < order.len() || single_empty_group && out.is_empty() {
            let first = order.get(k).copied();
            let mut end = k;
            while end < order.len()
                && match (&group_rows, first) {
                    (Some(rows), Some(first)) => rows.row(order[end]) == rows.row(first),
                    _ => true,
                }
            {
                end += 1;
            }
            let mut next_time = start;
            let mut prev: Option<usize> = None;
            for &i in &order[k..end] {
                let t = times[i].ok_or_else(|| {
                    Error::invalid_parameter(
                        "invalid time_bucket_gapfill argument: ts cannot be NULL",
                    )
                })?;
                loop {
                    if t < start {
                        break;
                    }
                    if t == next_time {
                        next_time = step(next_time)?;
                        break;
                    }
                    if next_time < finish {
                        push(
                            Out::Gap {
                                time: next_time,
                                group: Some(i),
                                prev,
                                next: Some(i),
                            },
                            &mut out,
                        )?;
                        next_time = step(next_time)?;
                        continue;
                    }
                    break;
                }
                push(Out::Row(i), &mut out)?;
                prev = Some(i);
            }
            while next_time < finish {
                push(
                    Out::Gap {
                        time: next_time,
                        group: first,
                        prev,
                        next: None,
                    },
                    &mut out,
                )?;
                next_time = step(next_time)?;
            }
            if end == k {
                break;
            }
            k = end;
        }
        self.build(batch, &out, &times, kind, &time_type)
    }

    fn build(
        &self,
        batch: &RecordBatch,
        out: &[Out],
        times: &[Option<i64>],
        kind: TimeKind,
        time_type: &DataType,
    ) -> Result<RecordBatch> {
        let indices = |pick: &dyn Fn(&Out) -> Option<usize>| -> UInt32Array {
            out.iter().map(|o| pick(o).map(|i| i as u32)).collect()
        };
        let rows = indices(&|o| match o {
            Out::Row(i) => Some(*i),
            Out::Gap { .. } => None,
        });
        let group_rows = indices(&|o| match o {
            Out::Row(i) => Some(*i),
            Out::Gap { group, .. } => *group,
        });
        let locf_rows = indices(&|o| match o {
            Out::Row(i) => Some(*i),
            Out::Gap { prev, .. } => *prev,
        });
        let mut columns = Vec::with_capacity(batch.num_columns());
        for (c, column) in batch.columns().iter().enumerate() {
            let filled = if c == self.time {
                let values = out
                    .iter()
                    .map(|o| match o {
                        Out::Row(i) => times[*i].expect("checked while filling"),
                        Out::Gap { time, .. } => *time,
                    })
                    .collect();
                kind.array(values, time_type)?
            } else if self.groups.contains(&c) {
                take(column, &group_rows, None)?
            } else {
                match self
                    .fills
                    .iter()
                    .find(|(f, _)| *f == c)
                    .map(|(_, fill)| *fill)
                {
                    Some(Fill::Locf) => take(column, &locf_rows, None)?,
                    Some(Fill::Interpolate) => interpolate(column, out, times)?,
                    None => take(column, &rows, None)?,
                }
            };
            columns.push(filled);
        }
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// `interpolate`: a filled row's value on the line between the group's
/// rows before and after it; NULL without both, or if either is NULL.
/// Integers are computed exactly and rounded half away from zero, as
/// TimescaleDB's numeric arithmetic does.
fn interpolate(column: &ArrayRef, out: &[Out], times: &[Option<i64>]) -> Result<ArrayRef> {
    let line = |o: &Out| -> Option<(i64, i64, i64, usize, usize)> {
        match *o {
            Out::Gap {
                time,
                prev: Some(p),
                next: Some(n),
                ..
            } if column.is_valid(p) && column.is_valid(n) => {
                Some((time, times[p]?, times[n]?, p, n))
            }
            _ => None,
        }
    };
    let own = |o: &Out| match o {
        Out::Row(i) => Some(*i),
        Out::Gap { .. } => None,
    };
    macro_rules! floats {
        ($t:ty, $array:ty) => {{
            let values = column.as_primitive::<$t>();
            let result: $array = out
                .iter()
                .map(|o| match own(o) {
                    Some(i) => values.is_valid(i).then(|| values.value(i)),
                    None => line(o).map(|(x, x0, x1, p, n)| {
                        let (y0, y1) = (f64::from(values.value(p)), f64::from(values.value(n)));
                        if y0 == y1 {
                            values.value(p)
                        } else {
                            ((y0 * (x1 - x) as f64 + y1 * (x - x0) as f64) / (x1 - x0) as f64) as _
                        }
                    }),
                })
                .collect();
            Arc::new(result) as ArrayRef
        }};
    }
    macro_rules! integers {
        ($t:ty, $array:ty) => {{
            let values = column.as_primitive::<$t>();
            let result: Result<$array> = out
                .iter()
                .map(|o| match own(o) {
                    Some(i) => Ok(values.is_valid(i).then(|| values.value(i))),
                    None => line(o)
                        .map(|(x, x0, x1, p, n)| {
                            let (y0, y1) =
                                (i128::from(values.value(p)), i128::from(values.value(n)));
                            let (x, x0, x1) = (i128::from(x), i128::from(x0), i128::from(x1));
                            let v = round_half_away(y0 * (x1 - x) + y1 * (x - x0), x1 - x0);
                            v.try_into().map_err(|_| {
                                Error::new(
                                    sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
                                    "interpolated value out of range",
                                )
                                .into()
                            })
                        })
                        .transpose(),
                })
                .collect();
            Arc::new(result?) as ArrayRef
        }};
    }
    Ok(match column.data_type() {
        DataType::Float64 => floats!(Float64Type, Float64Array),
        DataType::Float32 => floats!(Float32Type, Float32Array),
        DataType::Int16 => integers!(Int16Type, Int16Array),
        DataType::Int32 => integers!(Int32Type, Int32Array),
        DataType::Int64 => integers!(Int64Type, Int64Array),
        other => {
            return Err(Error::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!("unsupported datatype for interpolate: {other}"),
            )
            .into());
        }
    })
}

/// `numerator / denominator` rounded half away from zero.
fn round_half_away(numerator: i128, denominator: i128) -> i128 {
    assert!(denominator > 0, "times after a row are later than it");
    let (q, r) = (
        numerator.div_euclid(denominator),
        numerator.rem_euclid(denominator),
    );
    let round_up = if numerator >= 0 {
        2 * r >= denominator
    } else {
        2 * r > denominator
    };
    q + i128::from(round_up)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(round_half_away(5, 2), 3);
        assert_eq!(round_half_away(-5, 2), -3);
        assert_eq!(round_half_away(4, 3), 1);
        assert_eq!(round_half_away(-4, 3), -1);
        assert_eq!(round_half_away(-2, 3), -1);
        assert_eq!(round_half_away(7, 7), 1);
    }
}
