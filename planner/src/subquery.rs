//! Correlated scalar subqueries that DataFusion cannot decorrelate, and
//! EXISTS where DataFusion cannot plan it.
//!
//! DataFusion turns a correlated scalar subquery into a join when the
//! correlation is an equality. One like
//! `(SELECT count(*) FROM t1 AS x WHERE x.c > t1.c)` stays a subquery, and
//! its physical planner refuses it. PostgreSQL runs such a subquery once per
//! outer row; so does ciab. This optimizer rule, run after DataFusion's own,
//! replaces each remaining correlated scalar subquery with a call to
//! [`ApplySubquery`], a scalar function of the outer columns it references
//! that binds them into the subquery and runs it (once per distinct binding).
//!
//! DataFusion also refuses, before optimizing, a correlated scalar subquery
//! that is not an aggregate (`(SELECT d.adbin FROM pg_attrdef d WHERE
//! d.adrelid = a.attrelid)`, which psql's `\d` sends). PostgreSQL accepts it
//! and fails only if it returns more than one row for some outer row;
//! [`UnaggregatedSubqueries`], an analyzer rule, gives such subqueries to
//! [`ApplySubquery`] at once, which checks exactly that. So does a subquery
//! that uses outer columns other than in WHERE, which DataFusion's
//! decorrelation would leave behind.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, ParamValues, Result, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::error::DataFusionError;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::functions::expr_fn::coalesce;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::expr::{Exists, Placeholder};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, Filter, LogicalPlan, LogicalPlanBuilder, Projection, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Subquery, SubqueryAlias, Volatility, col, lit,
};
use datafusion::optimizer::analyzer::AnalyzerRule;
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::error::{Error, sqlstate};

#[derive(Debug, Default)]
pub struct CorrelatedSubqueries;

impl OptimizerRule for CorrelatedSubqueries {
    fn name(&self) -> &str {
        "ciab_correlated_scalar_subqueries"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        plan.map_expressions(|expr| {
            expr.transform_up(|e| match e {
                Expr::ScalarSubquery(subquery) if !subquery.outer_ref_columns.is_empty() => {
                    Ok(Transformed::yes(apply(subquery)?))
                }
                other => Ok(Transformed::no(other)),
            })
        })
    }
}

#[derive(Debug, Default)]
pub struct UnaggregatedSubqueries;

impl AnalyzerRule for UnaggregatedSubqueries {
    fn name(&self) -> &str {
        "ciab_unaggregated_scalar_subqueries"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            plan.map_expressions(|expr| {
                expr.transform_up(|e| match e {
                    Expr::ScalarSubquery(subquery)
                        if !subquery.outer_ref_columns.is_empty()
                            && (!at_most_one_row(&subquery.subquery)
                                || outer_refs_outside_filters(&subquery.subquery)) =>
                    {
                        Ok(Transformed::yes(apply(subquery)?))
                    }
                    other => Ok(Transformed::no(other)),
                })
            })
        })
        .map(|t| t.data)
    }
}

/// EXISTS anywhere but as a condition of WHERE (`SELECT EXISTS (...)`, which
/// SQLAlchemy sends, or `WHERE a OR EXISTS (...)`): DataFusion turns only
/// WHERE's conditions into semi joins, and its physical planner refuses the
/// rest. This analyzer rule makes each such EXISTS the scalar subquery
/// `(SELECT count(*) > 0 FROM (subquery))`, which DataFusion decorrelates
/// or [`CorrelatedSubqueries`] runs per row; NOT EXISTS is its negation.
#[derive(Debug, Default)]
pub struct ExistsAsValues;

impl AnalyzerRule for ExistsAsValues {
    fn name(&self) -> &str {
        "ciab_exists_as_values"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            // WHERE's own conditions stay EXISTS: they become semi joins.
            let conditions: Vec<Expr> = match &plan {
                LogicalPlan::Filter(filter) => split_conjunction(&filter.predicate)
                    .into_iter()
                    .filter(|c| matches!(c, Expr::Exists(_)))
                    .cloned()
                    .collect(),
                _ => vec![],
            };
            plan.map_expressions(|expr| {
                expr.transform_down(|e| match e {
                    Expr::Exists(_) if conditions.contains(&e) => {
                        Ok(Transformed::new(e, false, TreeNodeRecursion::Jump))
                    }
                    Expr::Exists(Exists { subquery, negated }) => {
                        let found = exists_value(subquery)?;
                        Ok(Transformed::yes(if negated { !found } else { found }))
                    }
                    other => Ok(Transformed::no(other)),
                })
            })
        })
        .map(|t| t.data)
    }
}

/// `(SELECT count(*) > 0 FROM (subquery))`, false when it finds nothing.
fn exists_value(subquery: Subquery) -> Result<Expr> {
    let Subquery {
        subquery: plan,
        outer_ref_columns,
        spans,
    } = subquery;
    let mut rows = LogicalPlanBuilder::from(Arc::unwrap_or_clone(plan));
    if outer_ref_columns.is_empty() {
        // Uncorrelated, it runs once: one row is enough.
        rows = rows.limit(0, Some(1))?;
    }
    let counted = rows
        .aggregate(Vec::<Expr>::new(), vec![count(lit(1)).alias("count")])?
        .project(vec![col("count").gt(lit(0i64)).alias("exists")])?
        .build()?;
    let value = Expr::ScalarSubquery(Subquery {
        subquery: Arc::new(counted),
        outer_ref_columns,
        spans,
    });
    Ok(coalesce(vec![value, lit(false)]))
}

/// Whether a subquery uses outer columns other than in WHERE: DataFusion
/// decorrelates by pulling filters up into a join, and would leave such a
/// use (`unnest(outer.array)` in FROM, say) dangling.
fn outer_refs_outside_filters(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply(|node| {
        if !matches!(node, LogicalPlan::Filter(_)) {
            node.apply_expressions(|e| {
                found |= e.exists(|x| Ok(matches!(x, Expr::OuterReferenceColumn(..))))?;
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// Whether DataFusion can see that a subquery yields at most one row: an
/// aggregate without GROUP BY (maybe under HAVING), or a plan with a LIMIT 1.
fn at_most_one_row(plan: &LogicalPlan) -> bool {
    let mut inner = plan;
    while let LogicalPlan::Projection(Projection { input, .. })
    | LogicalPlan::SubqueryAlias(SubqueryAlias { input, .. }) = inner
    {
        inner = input;
    }
    if let LogicalPlan::Filter(Filter { input, .. }) = inner
        && matches!(input.as_ref(), LogicalPlan::Aggregate(_))
    {
        inner = input;
    }
    match inner {
        LogicalPlan::Aggregate(agg) => !agg.aggr_expr.is_empty(),
        _ => plan.max_rows().is_some_and(|rows| rows <= 1),
    }
}

/// The call that replaces a correlated scalar subquery.
fn apply(subquery: Subquery) -> Result<Expr> {
    let mut outer: Vec<(Column, DataType)> = Vec::new();
    for e in &subquery.outer_ref_columns {
        if let Expr::OuterReferenceColumn(field, column) = e
            && !outer.iter().any(|(c, _)| c == column)
        {
            outer.push((column.clone(), field.data_type().clone()));
        }
    }
    let return_type = match subquery.subquery.schema().fields().as_ref() {
        [field] => field.data_type().clone(),
        _ => {
            return Err(DataFusionError::Plan(
                "subquery must return only one column".into(),
            ));
        }
    };
    static NEXT_ID: AtomicU64 = AtomicU64::new(0);
    let udf = ApplySubquery {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        plan: Arc::unwrap_or_clone(subquery.subquery),
        signature: Signature::exact(
            outer.iter().map(|(_, t)| t.clone()).collect(),
            Volatility::Volatile,
        ),
        return_type,
        prepared: OnceLock::new(),
        outer: outer.iter().map(|(c, _)| c.clone()).collect(),
    };
    let args = outer.into_iter().map(|(c, _)| Expr::Column(c)).collect();
    Ok(ScalarUDF::new_from_impl(udf).call(args))
}

struct ApplySubquery {
    /// Identity for equality: each rewritten subquery is its own function.
    id: u64,
    plan: LogicalPlan,
    outer: Vec<Column>,
    signature: Signature,
    return_type: DataType,
    /// Where the subquery runs, and its optimized parameterized plan;
    /// made on first use.
    prepared: OnceLock<(SessionContext, LogicalPlan)>,
}

impl std::fmt::Debug for ApplySubquery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplySubquery")
            .field("id", &self.id)
            .field("outer", &self.outer)
            .finish()
    }
}

impl PartialEq for ApplySubquery {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for ApplySubquery {}

impl Hash for ApplySubquery {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl ApplySubquery {
    /// The subquery with its outer columns as parameters `$1..$n`, optimized
    /// once; each evaluation only binds values and plans it physically.
    fn prepared(&self) -> Result<&(SessionContext, LogicalPlan)> {
        if let Some(p) = self.prepared.get() {
            return Ok(p);
        }
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(SessionConfig::new().with_target_partitions(1))
            .with_analyzer_rule(Arc::new(UnaggregatedSubqueries))
            .with_optimizer_rule(Arc::new(CorrelatedSubqueries))
            .build();
        let parameterized = self
            .plan
            .clone()
            .transform_up_with_subqueries(|plan| {
                // A relation that used outer columns (`unnest(outer.a)` in
                // FROM) is planned as a Subquery node, which only
                // decorrelation removes; with its outer columns bound it is
                // a plain relation.
                let plan = match plan {
                    LogicalPlan::Subquery(s) => Arc::unwrap_or_clone(s.subquery),
                    other => other,
                };
                plan.map_expressions(|expr| {
                    expr.transform(|e| match e {
                        Expr::OuterReferenceColumn(field, column) => {
                            match self.outer.iter().position(|c| c == &column) {
                                Some(i) => Ok(Transformed::yes(Expr::Placeholder(
                                    Placeholder::new_with_field(format!("${}", i + 1), Some(field)),
                                ))),
                                None => {
                                    Ok(Transformed::no(Expr::OuterReferenceColumn(field, column)))
                                }
                            }
                        }
                        other => Ok(Transformed::no(other)),
                    })
                })
            })?
            .data;
        let optimized = state.optimize(&parameterized)?;
        Ok(self
            .prepared
            .get_or_init(|| (SessionContext::new_with_state(state), optimized)))
    }

    fn evaluate(&self, values: &[ScalarValue]) -> Result<ScalarValue> {
        let (ctx, plan) = self.prepared()?;
        let bound = plan.clone().with_param_values(ParamValues::List(
            values.iter().cloned().map(Into::into).collect(),
        ))?;
        // Scalar functions are synchronous; the subquery runs to completion
        // on this worker thread, which tokio lets hand its other tasks off.
        let batches = ciab_extensions::block_on(async {
            let state = ctx.state();
            let physical = state
                .query_planner()
                .create_physical_plan(&bound, &state)
                .await?;
            datafusion::physical_plan::collect(physical, ctx.task_ctx()).await
        })
        .unwrap_or_else(|| {
            Err(DataFusionError::Internal(
                "correlated subqueries need the multi-threaded runtime".into(),
            ))
        })?;
        let mut rows = batches.iter().filter(|b| b.num_rows() > 0);
        let Some(batch) = rows.next() else {
            return ScalarValue::try_from(&self.return_type);
        };
        if batch.num_rows() > 1 || rows.next().is_some() {
            return Err(DataFusionError::External(Box::new(Error::new(
                sqlstate::CARDINALITY_VIOLATION,
                "more than one row returned by a subquery used as an expression",
            ))));
        }
        ScalarValue::try_from_array(batch.column(0), 0)
    }
}

impl ScalarUDFImpl for ApplySubquery {
    fn name(&self) -> &str {
        "__ciab_apply_subquery"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.return_type.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = args
            .args
            .into_iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<Vec<_>>>()?;
        let mut cache: HashMap<Vec<ScalarValue>, ScalarValue> = HashMap::new();
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            let key = arrays
                .iter()
                .map(|a| ScalarValue::try_from_array(a, row))
                .collect::<Result<Vec<_>>>()?;
            let value = match cache.get(&key) {
                Some(v) => v.clone(),
                None => {
                    let v = self.evaluate(&key)?;
                    cache.insert(key, v.clone());
                    v
                }
            };
            out.push(value);
        }
        if out.is_empty() {
            return Ok(ColumnarValue::Array(
                datafusion::arrow::array::new_empty_array(&self.return_type),
            ));
        }
        Ok(ColumnarValue::Array(ScalarValue::iter_to_array(out)?))
    }
}
