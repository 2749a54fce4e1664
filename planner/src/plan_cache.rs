//! Generic plans for the queries a session runs again and again.
//!
//! DataFusion plans a query in three steps: SQL to a logical plan, some
//! thirty optimizer rules over it, and the physical plan with its own
//! rules. The first two took half the planning CPU of `SELECT abs($1)` and
//! depend only on the statement, the catalog, the session's settings and
//! the parameters' types: not on the parameters' values, nor on the rows.
//! So a query that runs a second time keeps its optimized logical plan with
//! the parameters still `$n` (PostgreSQL's generic plan, which
//! `plan_cache_mode` governs as there), and each later run only re-points
//! its scans at the rows pinned now, puts the values in, simplifies the
//! expressions that hold them, and plans physically; a query of no table
//! whose expressions simplified to literals is its row already:
//!
//! ```text
//!   query, parameter types ──► kept for these catalogs and settings?
//!      │ no: plan it as always (a custom plan); the second time, keep
//!      │     its generic plan
//!      ▼ yes
//!   generic plan ─► scans over the pinned rows ─► $n := values
//!                ─► simplify (`k = CAST($1 AS int)` becomes `k = 7`, which
//!                   a scan looks up by key) ─► physical plan ─► rows
//!                              └─ literals over no table ─► their row
//! ```
//!
//! Only plans that stay true are kept: every scan one of a stored table
//! (whose provider holds the rows pinned when it was planned, and is
//! re-pointed), no function but immutable ones (the optimizer folds `now()`
//! into a constant), no plan node of an extension. A catalog change (DDL)
//! or a setting changed makes every kept plan stale (see
//! [`crate::remembered::Basis`]).

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ParamValues;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::logical_expr::{EmptyRelation, Expr, LogicalPlan, Volatility};
use datafusion::optimizer::Optimizer;
use datafusion::optimizer::simplify_expressions::SimplifyExpressions;
use datafusion::sql::parser::Statement as DfStatement;

use crate::error::Result;
use crate::names;
use crate::provider::StoredTable;
use crate::remembered::Basis;
use crate::session::{Output, Session, rows_output};

/// Queries a session keeps plans for; past this, the oldest goes.
const PLANS_MAX: usize = 32;

/// `plan_cache_mode`'s values, as PostgreSQL names them.
pub(crate) const MODES: [&str; 3] = ["auto", "force_custom_plan", "force_generic_plan"];

/// What a session knows of one query.
#[derive(Clone)]
enum Kept {
    /// Run once, with a custom plan.
    Seen,
    /// Its generic plan, and the columns it answers with.
    Generic {
        plan: LogicalPlan,
        schema: SchemaRef,
    },
    /// Its plan would not stay true: it is planned each time.
    Custom,
}

struct Entry {
    statement: DfStatement,
    types: Vec<DataType>,
    basis: Basis,
    kept: Kept,
}

/// The queries a session ran lately, newest last.
#[derive(Default)]
pub(crate) struct PlanCache {
    entries: Vec<Entry>,
}

impl Entry {
    fn is_for(&self, statement: &DfStatement, types: &[DataType]) -> bool {
        self.types == types && self.statement == *statement
    }
}

impl PlanCache {
    fn find(&self, statement: &DfStatement, types: &[DataType]) -> Option<&Entry> {
        self.entries.iter().find(|e| e.is_for(statement, types))
    }

    fn insert(&mut self, entry: Entry) {
        self.entries
            .retain(|e| !e.is_for(&entry.statement, &entry.types));
        if self.entries.len() >= PLANS_MAX {
            self.entries.remove(0);
        }
        self.entries.push(entry);
    }
}

impl Session {
    /// Runs a query through its generic plan, keeping one the second time
    /// it runs (the first, under `force_generic_plan`); None where the
    /// query goes the usual way, with a custom plan.
    pub(crate) async fn query_generic(
        &mut self,
        statement: &DfStatement,
        params: Option<&ParamValues>,
    ) -> Result<Option<Output>> {
        let mode = self.setting("plan_cache_mode");
        if mode.as_deref() == Some("force_custom_plan") || self.catalogs.exposes_rowid() {
            return Ok(None);
        }
        let types: Vec<DataType> = match params {
            None => Vec::new(),
            Some(ParamValues::List(values)) => values.iter().map(|v| v.value.data_type()).collect(),
            Some(ParamValues::Map(_)) => return Ok(None),
        };
        let read = self.catalogs.state().catalog.clone();
        let latest = self.engine.store.snapshot().catalog.clone();
        let settings = self.settings_generation;
        let found = match self.plans.find(statement, &types) {
            Some(entry) if entry.basis.holds(&read, &latest, settings) => Some(entry.kept.clone()),
            _ => None,
        };
        let kept = match found {
            Some(kept) if !matches!(kept, Kept::Seen) => kept,
            found => {
                let kept = match found.is_none() && mode.as_deref() != Some("force_generic_plan") {
                    true => Kept::Seen,
                    // What fails to plan without values (a `$n` only a
                    // value types) is planned with them, which reports its
                    // errors.
                    false => self.generic_plan(statement).await.unwrap_or(Kept::Custom),
                };
                self.plans.insert(Entry {
                    statement: statement.clone(),
                    types,
                    basis: Basis::new(&read, &latest, settings),
                    kept: kept.clone(),
                });
                kept
            }
        };
        let Kept::Generic { plan, schema } = kept else {
            return Ok(None);
        };
        let plan = self.over_pinned_rows(plan)?;
        let plan = match params {
            Some(params) => plan.with_param_values(params.clone())?,
            None => plan,
        };
        // The values went where each `$n` was; one left (in a node whose
        // expressions DataFusion does not show) is the planner's to report.
        if has_placeholders(&plan)? {
            return Ok(None);
        }
        let simplify = Optimizer::with_rules(vec![Arc::new(SimplifyExpressions::new())]);
        // Borrowed: a copy of the session's state (every function's entry)
        // was about 6% of running `SELECT abs($1)` this way.
        let plan = simplify.optimize(plan, &*self.ctx.state_ref().read(), |_, _| {})?;
        if let Some(row) = one_row_of_literals(&plan, &schema) {
            return Ok(Some(rows_output(schema, vec![row], None)));
        }
        let state = self.ctx.state();
        let physical = state
            .query_planner()
            .create_physical_plan(&plan, &state)
            .await?;
        let stream = datafusion::physical_plan::execute_stream(physical, state.task_ctx())?;
        Ok(Some(Output::Rows {
            schema,
            stream,
            tag: None,
        }))
    }

    /// A query's optimized plan with its parameters left as `$n`, if that
    /// plan stays true for any rows and values.
    async fn generic_plan(&mut self, statement: &DfStatement) -> Result<Kept> {
        let (statement, output_names) = names::unique_output_names(statement)?;
        let plan = self.plan(statement, None).await?;
        // The schema Describe announced: optimizing may tighten nullability.
        let schema = names::rename(plan.schema().inner(), &output_names);
        let state = self.ctx.state();
        let analyzed =
            state
                .analyzer()
                .execute_and_check(plan, state.config_options(), |_, _| {})?;
        if !stays_true(&analyzed)? {
            return Ok(Kept::Custom);
        }
        let optimized = state.optimizer().optimize(analyzed, &state, |_, _| {})?;
        if !scans_stored_tables(&optimized)? {
            return Ok(Kept::Custom);
        }
        Ok(Kept::Generic {
            plan: optimized,
            schema,
        })
    }

    /// The plan with each scan over the rows of its table pinned now.
    fn over_pinned_rows(&self, plan: LogicalPlan) -> Result<LogicalPlan> {
        let plan = plan.transform_up_with_subqueries(|node| {
            let LogicalPlan::TableScan(mut scan) = node else {
                return Ok(Transformed::no(node));
            };
            let provider = source_as_provider(&scan.source)?;
            let table = provider
                .downcast_ref::<StoredTable>()
                .expect("a generic plan scans stored tables only");
            scan.source = provider_as_source(Arc::new(self.catalogs.repin(table)?));
            Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
        })?;
        Ok(plan.data)
    }
}

/// The one row of a plan its values simplified to literals over no table
/// (`SELECT abs($1)` once `$1` is 7): answered as it stands, without the
/// physical plan and its optimizer rules, over a third of such a query's
/// CPU. None for any other plan, and where a literal is not of the type
/// Describe announced: that one goes the usual way.
fn one_row_of_literals(plan: &LogicalPlan, schema: &SchemaRef) -> Option<RecordBatch> {
    let LogicalPlan::Projection(projection) = plan else {
        return None;
    };
    let LogicalPlan::EmptyRelation(EmptyRelation {
        produce_one_row: true,
        ..
    }) = projection.input.as_ref()
    else {
        return None;
    };
    if projection.expr.len() != schema.fields().len() {
        return None;
    }
    let literal = |expr: &Expr| match expr {
        Expr::Alias(alias) => match alias.expr.as_ref() {
            Expr::Literal(value, _) => Some(value.clone()),
            _ => None,
        },
        Expr::Literal(value, _) => Some(value.clone()),
        _ => None,
    };
    let columns = projection
        .expr
        .iter()
        .zip(schema.fields())
        .map(|(expr, field)| {
            let value = literal(expr).filter(|v| v.data_type() == *field.data_type())?;
            value.to_array().ok()
        })
        .collect::<Option<Vec<_>>>()?;
    RecordBatch::try_new(Arc::clone(schema), columns).ok()
}

/// Whether a plan's meaning is the same whenever it runs: no function that
/// may answer differently for the same arguments, no session variable, no
/// extension's node, no recursion (whose work table is no stored table).
fn stays_true(plan: &LogicalPlan) -> Result<bool> {
    let mut stays = true;
    plan.apply_with_subqueries(|node| {
        if matches!(
            node,
            LogicalPlan::Extension(_) | LogicalPlan::RecursiveQuery(_)
        ) {
            stays = false;
            return Ok(TreeNodeRecursion::Stop);
        }
        node.apply_expressions(|expr| {
            stays &= !expr.exists(|e| {
                Ok(match e {
                    Expr::ScalarFunction(f) => {
                        f.func.signature().volatility != Volatility::Immutable
                    }
                    Expr::ScalarVariable(..) => true,
                    _ => false,
                })
            })?;
            Ok(TreeNodeRecursion::Continue)
        })?;
        Ok(match stays {
            true => TreeNodeRecursion::Continue,
            false => TreeNodeRecursion::Stop,
        })
    })?;
    Ok(stays)
}

/// Whether every scan of a plan reads a stored table.
fn scans_stored_tables(plan: &LogicalPlan) -> Result<bool> {
    let mut stored = true;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let provider = source_as_provider(&scan.source)?;
            if provider.downcast_ref::<StoredTable>().is_none() {
                stored = false;
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(stored)
}

fn has_placeholders(plan: &LogicalPlan) -> Result<bool> {
    let mut found = false;
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            found |= expr.exists(|e| Ok(matches!(e, Expr::Placeholder(_))))?;
            Ok(TreeNodeRecursion::Continue)
        })?;
        Ok(match found {
            true => TreeNodeRecursion::Stop,
            false => TreeNodeRecursion::Continue,
        })
    })?;
    Ok(found)
}
