//! The order of a query's inner joins, chosen by their estimated rows.
//!
//! DataFusion joins the tables of a FROM clause in the order they are
//! written: its `eliminate_cross_join` takes each next table that has a
//! join key with those before it. In TPC-H q21 that joined the 3.8 million
//! late line items with their suppliers and then with the orders before
//! the join with `nation` kept the one nation in twenty-five the query
//! asks for:
//!
//! ```text
//!   written                                   reordered
//!   ⋈ s_nationkey = n_nationkey               ⋈ l_orderkey = o_orderkey
//!     ⋈ l_orderkey = o_orderkey                 ⋈ s_suppkey = l_suppkey
//!       ⋈ s_suppkey = l_suppkey      ──►          ⋈ s_nationkey = n_nationkey
//!         supplier                                  nation (1 row)
//!         lineitem (3.8 M rows)                     supplier
//!       orders (0.7 M rows)                       lineitem (3.8 M rows)
//!     nation (1 row)                            orders (0.7 M rows)
//! ```
//!
//! [`ReorderJoins`] takes each tree of inner joins, with the filters
//! between them, apart into its inputs and its conditions, and joins the
//! inputs again greedily: at each step the two parts, connected by a join
//! key, whose join is estimated to give the fewest rows (Greedy Operator
//! Ordering). Each condition joins the first join that has all of its
//! columns. The estimates are PostgreSQL's, without most common values:
//! an input has its table's rows times the share its filters keep
//! ([`crate::selectivity::share`]), and a join on keys keeps
//! `|R| · |S| / max(d(R), d(S))` rows, where `d` is the number of distinct
//! keys on a side (`eqjoinsel`).
//!
//! Where an input's rows cannot be estimated (it is not a stored table's
//! scan, filtered, projected or semi-joined) or the inputs are not all
//! connected by keys, the written order stays.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, ColumnStatistics, DFSchema, NullEquality, Result};
use datafusion::datasource::source_as_provider;
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::utils::{conjunction, split_conjunction_owned};
use datafusion::logical_expr::{
    BinaryExpr, Expr, Filter, Join, JoinConstraint, JoinType, LogicalPlan, Operator, Projection,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::physical_expr::create_physical_expr;

use crate::provider::StoredTable;
use crate::selectivity::{INEQUAL_SHARE_DEFAULT, share};

/// The most inputs a tree of joins is reordered with: a part of the tree
/// is a bit set of its inputs.
const INPUTS_MAX: usize = u64::BITS as usize;

#[derive(Debug, Default)]
pub struct ReorderJoins;

impl OptimizerRule for ReorderJoins {
    fn name(&self) -> &str {
        "ciab_reorder_joins"
    }

    /// The rule walks the plan itself: a tree of joins is reordered as a
    /// whole, from its top join, and the joins below are then parts of
    /// it, not trees of their own.
    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let unknown = f64::from(config.options().optimizer.default_filter_selectivity) / 100.0;
        reorder_all(plan, unknown)
    }
}

/// `plan` with each of its trees of inner joins, in subqueries too,
/// reordered.
fn reorder_all(plan: LogicalPlan, unknown: f64) -> Result<Transformed<LogicalPlan>> {
    plan.transform_down_with_subqueries(|node| {
        if !is_tree(&node) {
            return Ok(Transformed::no(node));
        }
        let mut tree = Tree::default();
        tree.take_apart(node.clone());
        let mut changed = false;
        for input in &mut tree.inputs {
            let reordered = reorder_all(input.clone(), unknown)?;
            changed |= reordered.transformed;
            *input = reordered.data;
        }
        let joined = match tree.inputs.len() >= 3 && tree.inputs.len() <= INPUTS_MAX {
            true => tree.join(node.schema(), unknown)?,
            false => None,
        };
        let (plan, changed) = match joined {
            // The optimizer's next pass finds the order it made, with
            // columns dropped where it chose, and leaves it.
            Some(joined) if shape(&joined) != shape(&node) => {
                (restore_schema(joined, &node)?, true)
            }
            // The written order, with each input's own joins reordered.
            _ if changed => (tree.rejoin_as_written(node)?, true),
            _ => (node, false),
        };
        // The joins below are this tree's; each input was walked above.
        Ok(Transformed::new(plan, changed, TreeNodeRecursion::Jump))
    })
}

/// Whether `join` may be taken apart and joined again in another order:
/// an inner join whose keys never match nulls, and whose other conditions
/// may be tested at another join.
fn reorderable(join: &Join) -> bool {
    join.join_type == JoinType::Inner
        && join.null_equality == NullEquality::NullEqualsNothing
        && !join.null_aware
        && join.filter.as_ref().is_none_or(movable)
}

/// Whether `plan` tops a tree of inner joins: such a join, or a filter
/// of one whose conditions may move into the joins.
fn is_tree(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Join(join) => reorderable(join),
        LogicalPlan::Filter(filter) => {
            movable(&filter.predicate)
                && matches!(filter.input.as_ref(), LogicalPlan::Join(j) if reorderable(j))
        }
        _ => false,
    }
}

/// Whether `projection` only drops columns of a tree of inner joins.
fn prunes_tree(projection: &Projection) -> bool {
    is_tree(&projection.input) && projection.expr.iter().all(|e| matches!(e, Expr::Column(_)))
}

/// The order of `plan`'s joins, as text: two plans with the same shape
/// join the same inputs in the same order, whatever columns they drop and
/// where they test their conditions.
fn shape(plan: &LogicalPlan) -> String {
    match plan {
        LogicalPlan::Join(join) if reorderable(join) => {
            format!("({} ⋈ {})", shape(&join.left), shape(&join.right))
        }
        LogicalPlan::Filter(filter) if is_tree(plan) => shape(&filter.input),
        LogicalPlan::Projection(projection) if prunes_tree(projection) => shape(&projection.input),
        input => input.display_indent().to_string(),
    }
}

/// Whether a filter's condition may be tested at another join: it reads
/// no subquery and gives the same answer wherever it is tested.
fn movable(predicate: &Expr) -> bool {
    !predicate.is_volatile()
        && !predicate
            .exists(|e| {
                Ok(matches!(
                    e,
                    Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
                ))
            })
            .unwrap_or(true)
}

/// A tree of inner joins taken apart.
#[derive(Default)]
struct Tree {
    /// The inputs, in the order written.
    inputs: Vec<LogicalPlan>,
    /// Every join key (as `left = right`) and filter condition.
    conditions: Vec<Expr>,
}

impl Tree {
    fn take_apart(&mut self, plan: LogicalPlan) {
        match plan {
            LogicalPlan::Join(join) if reorderable(&join) => {
                self.take_apart(Arc::unwrap_or_clone(join.left));
                self.take_apart(Arc::unwrap_or_clone(join.right));
                let keys = join.on.into_iter().map(|(l, r)| l.eq(r));
                self.conditions.extend(keys);
                self.conditions
                    .extend(join.filter.map(split_conjunction_owned).unwrap_or_default());
            }
            LogicalPlan::Filter(filter) if is_tree(&LogicalPlan::Filter(filter.clone())) => {
                self.take_apart(Arc::unwrap_or_clone(filter.input));
                self.conditions
                    .extend(split_conjunction_owned(filter.predicate));
            }
            // DataFusion drops the columns no later step reads after each
            // join; the joins made again drop them themselves.
            LogicalPlan::Projection(projection) if prunes_tree(&projection) => {
                self.take_apart(Arc::unwrap_or_clone(projection.input));
            }
            input => self.inputs.push(input),
        }
    }

    /// `written` (the tree as it was) with the inputs it holds now.
    fn rejoin_as_written(self, written: LogicalPlan) -> Result<LogicalPlan> {
        let mut inputs = self.inputs.into_iter();
        rebuild(written, &mut inputs)
    }

    /// The inputs joined in the order of their estimated rows; `None`
    /// where an input cannot be estimated or the inputs are not connected
    /// by keys.
    fn join(&self, output: &DFSchema, unknown: f64) -> Result<Option<LogicalPlan>> {
        // A canonical order of the inputs and conditions, so that the
        // same tree comes out of the same inputs however they were
        // written, and the optimizer's next pass leaves it be.
        let mut inputs: Vec<(String, &LogicalPlan)> = self
            .inputs
            .iter()
            .map(|p| (p.display_indent().to_string(), p))
            .collect();
        inputs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut owner: HashMap<Column, usize> = HashMap::new();
        let mut distinct: HashMap<Column, f64> = HashMap::new();
        let mut parts = Vec::with_capacity(inputs.len());
        for (i, (_, plan)) in inputs.iter().enumerate() {
            let Some((rows, columns)) = estimate(plan, unknown) else {
                return Ok(None);
            };
            for (column, statistics) in plan.schema().columns().into_iter().zip(&columns) {
                if let Some(&d) = statistics.distinct_count.get_value() {
                    distinct.insert(column.clone(), d as f64);
                }
                owner.insert(column, i);
            }
            parts.push(Part {
                plan: (*plan).clone(),
                inputs: 1 << i,
                rows,
            });
        }
        let mut conditions: Vec<Condition> = Vec::new();
        for expr in &self.conditions {
            let Some(condition) = Condition::of(expr, &owner) else {
                return Ok(None);
            };
            conditions.push(condition);
        }
        conditions.sort_by_cached_key(|c| c.expr.to_string());
        conditions.dedup_by(|a, b| a.expr == b.expr);
        let estimates = Estimates {
            distinct: &distinct,
        };
        while parts.len() > 1 {
            let mut best: Option<(f64, usize, usize)> = None;
            for i in 0..parts.len() {
                for j in i + 1..parts.len() {
                    let (a, b) = (&parts[i], &parts[j]);
                    let keys: Vec<&Condition> =
                        conditions.iter().filter(|c| c.joins(a, b)).collect();
                    if keys.is_empty() {
                        continue;
                    }
                    let rows = estimates.joined(a, b, &keys, &conditions);
                    if best.is_none_or(|(least, _, _)| rows < least) {
                        best = Some((rows, i, j));
                    }
                }
            }
            // Inputs no key connects: a cross join the written order has
            // placed on purpose, or by accident; either way it stays.
            let Some((rows, i, j)) = best else {
                return Ok(None);
            };
            let b = parts.remove(j);
            let a = parts.remove(i);
            // The side estimated smaller first: DataFusion builds its hash
            // table from the left input unless its statistics say otherwise.
            let (left, right) = if b.rows < a.rows { (b, a) } else { (a, b) };
            let inputs = left.inputs | right.inputs;
            let mut on = Vec::new();
            let mut filter = Vec::new();
            conditions.retain(|c| {
                if c.inputs & !inputs != 0 {
                    return true;
                }
                match c.oriented(&left, &right) {
                    Some(key) => on.push(key),
                    None => filter.push(c.expr.clone()),
                }
                false
            });
            let join = Join::try_new(
                Arc::new(left.plan),
                Arc::new(right.plan),
                on,
                conjunction(filter),
                JoinType::Inner,
                JoinConstraint::On,
                NullEquality::NullEqualsNothing,
                false,
            )?;
            // Only the columns the tree gives and the conditions still to
            // test go on.
            parts.push(Part {
                plan: pruned(LogicalPlan::Join(join), output, &conditions)?,
                inputs,
                rows,
            });
        }
        assert!(
            conditions.is_empty(),
            "the last join has every input, so every condition"
        );
        Ok(parts.pop().map(|part| part.plan))
    }
}

/// `written` with its inputs replaced, in order, by `inputs`.
fn rebuild(
    written: LogicalPlan,
    inputs: &mut impl Iterator<Item = LogicalPlan>,
) -> Result<LogicalPlan> {
    match written {
        LogicalPlan::Join(join) if reorderable(&join) => {
            let left = rebuild(Arc::unwrap_or_clone(join.left), inputs)?;
            let right = rebuild(Arc::unwrap_or_clone(join.right), inputs)?;
            Ok(LogicalPlan::Join(Join::try_new(
                Arc::new(left),
                Arc::new(right),
                join.on,
                join.filter,
                join.join_type,
                join.join_constraint,
                join.null_equality,
                join.null_aware,
            )?))
        }
        LogicalPlan::Filter(filter) if is_tree(&LogicalPlan::Filter(filter.clone())) => {
            let input = rebuild(Arc::unwrap_or_clone(filter.input), inputs)?;
            Ok(LogicalPlan::Filter(Filter::try_new(
                filter.predicate,
                Arc::new(input),
            )?))
        }
        LogicalPlan::Projection(projection) if prunes_tree(&projection) => {
            let input = rebuild(Arc::unwrap_or_clone(projection.input), inputs)?;
            Ok(LogicalPlan::Projection(Projection::try_new(
                projection.expr,
                Arc::new(input),
            )?))
        }
        _ => Ok(inputs.next().expect("a rebuilt tree has its inputs")),
    }
}

/// `join` without the columns that neither `output` nor `conditions`
/// read.
fn pruned(join: LogicalPlan, output: &DFSchema, conditions: &[Condition]) -> Result<LogicalPlan> {
    let mut needed: HashSet<Column> = output.columns().into_iter().collect();
    for condition in conditions {
        needed.extend(condition.expr.column_refs().into_iter().cloned());
    }
    let columns = join.schema().columns();
    if columns.iter().all(|c| needed.contains(c)) {
        return Ok(join);
    }
    let kept = columns.into_iter().filter(|c| needed.contains(c));
    Ok(LogicalPlan::Projection(Projection::try_new(
        kept.map(Expr::Column).collect(),
        Arc::new(join),
    )?))
}

/// `joined` with the columns of `written`, in their order.
fn restore_schema(joined: LogicalPlan, written: &LogicalPlan) -> Result<LogicalPlan> {
    if joined.schema() == written.schema() {
        return Ok(joined);
    }
    let columns = written.schema().columns().into_iter().map(Expr::Column);
    Ok(LogicalPlan::Projection(Projection::try_new(
        columns.collect(),
        Arc::new(joined),
    )?))
}

/// A part of the tree being joined again: some inputs, joined.
struct Part {
    plan: LogicalPlan,
    /// The inputs it holds, as bits of their positions.
    inputs: u64,
    rows: f64,
}

/// A join key or filter condition, and the inputs whose columns it reads.
struct Condition {
    expr: Expr,
    inputs: u64,
    /// For a key, `left = right`: the inputs each side reads, none in
    /// common and neither none.
    sides: Option<(u64, u64)>,
}

impl Condition {
    /// `expr` and the inputs it reads; `None` if it reads a column of no
    /// input.
    fn of(expr: &Expr, owner: &HashMap<Column, usize>) -> Option<Self> {
        let reads = |expr: &Expr| -> Option<u64> {
            expr.column_refs()
                .into_iter()
                .try_fold(0, |inputs, column| Some(inputs | 1 << owner.get(column)?))
        };
        let sides = match expr {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Eq,
                right,
            }) => {
                let (l, r) = (reads(left)?, reads(right)?);
                (l != 0 && r != 0 && l & r == 0).then_some((l, r))
            }
            _ => None,
        };
        Some(Condition {
            expr: expr.clone(),
            inputs: reads(expr)?,
            sides,
        })
    }

    /// Whether this is a key that joins `a` with `b`.
    fn joins(&self, a: &Part, b: &Part) -> bool {
        self.sides.is_some_and(|(l, r)| {
            (l & !a.inputs == 0 && r & !b.inputs == 0) || (l & !b.inputs == 0 && r & !a.inputs == 0)
        })
    }

    /// This key as a pair of (`left`'s side, `right`'s side), if it joins
    /// them.
    fn oriented(&self, left: &Part, right: &Part) -> Option<(Expr, Expr)> {
        let Expr::BinaryExpr(BinaryExpr {
            left: l, right: r, ..
        }) = &self.expr
        else {
            return None;
        };
        let (l_inputs, _) = self.sides?;
        if !self.joins(left, right) {
            return None;
        }
        Some(match l_inputs & !left.inputs == 0 {
            true => (l.as_ref().clone(), r.as_ref().clone()),
            false => (r.as_ref().clone(), l.as_ref().clone()),
        })
    }
}

/// The distinct values of the inputs' columns, where known.
struct Estimates<'a> {
    distinct: &'a HashMap<Column, f64>,
}

impl Estimates<'_> {
    /// The rows `a` joined with `b` on `keys` gives, with the other
    /// conditions that join tests.
    fn joined(&self, a: &Part, b: &Part, keys: &[&Condition], conditions: &[Condition]) -> f64 {
        let inputs = a.inputs | b.inputs;
        let mut share = 1.0;
        let (mut a_keys, mut b_keys) = (Vec::new(), Vec::new());
        for key in keys {
            if let Some((l, r)) = key.oriented(a, b) {
                a_keys.push(l);
                b_keys.push(r);
            }
        }
        // Each side's distinct keys: the product of its columns', as they
        // are taken independent, but never more than its rows.
        let a_distinct = self.distinct_keys(&a_keys, a.rows);
        let b_distinct = self.distinct_keys(&b_keys, b.rows);
        share /= a_distinct.max(b_distinct).max(1.0);
        let others = conditions.iter().filter(|c| {
            c.inputs & !inputs == 0
                && c.inputs & !a.inputs != 0
                && c.inputs & !b.inputs != 0
                && !c.joins(a, b)
        });
        for _ in others {
            share *= INEQUAL_SHARE_DEFAULT;
        }
        (a.rows * b.rows * share).max(1.0)
    }

    fn distinct_keys(&self, keys: &[Expr], rows: f64) -> f64 {
        let product: f64 = keys
            .iter()
            .map(|key| match key {
                Expr::Column(column) => self.distinct.get(column).copied().unwrap_or(rows),
                // An expression's values are unknown: taken as all distinct.
                _ => rows,
            })
            .product();
        product.min(rows)
    }
}

/// The rows `plan` gives and its columns' statistics, if it is a stored
/// table's scan under filters, projections, aliases and semi joins.
fn estimate(plan: &LogicalPlan, unknown: f64) -> Option<(f64, Vec<ColumnStatistics>)> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let provider = source_as_provider(&scan.source).ok()?;
            let table = provider.downcast_ref::<StoredTable>()?;
            let all: Vec<usize> = (0..scan.source.schema().fields().len()).collect();
            let (rows, columns) = table.estimates(scan.projection.as_ref().unwrap_or(&all));
            let rows = scan.fetch.map_or(rows, |fetch| rows.min(fetch));
            Some((rows as f64, columns))
        }
        LogicalPlan::Filter(filter) => {
            let (rows, columns) = estimate(&filter.input, unknown)?;
            let predicate = create_physical_expr(
                &filter.predicate,
                filter.input.schema(),
                &ExecutionProps::new(),
                &PhysicalPlanningContext::default(),
            );
            let kept = predicate.map_or(unknown, |p| share(&p, &columns, Some(rows), unknown));
            let rows = (rows * kept).max(1.0);
            // A filter keeps no more distinct values than rows.
            let columns = columns
                .into_iter()
                .map(|mut column| {
                    if let Some(&d) = column.distinct_count.get_value() {
                        column.distinct_count = Precision::Inexact(d.min(rows.ceil() as usize));
                    }
                    column
                })
                .collect();
            Some((rows, columns))
        }
        LogicalPlan::SubqueryAlias(alias) => estimate(&alias.input, unknown),
        LogicalPlan::Projection(projection) => {
            let (rows, columns) = estimate(&projection.input, unknown)?;
            let input = projection.input.schema();
            let projected = projection
                .expr
                .iter()
                .map(|expr| match expr {
                    Expr::Column(column) => input.index_of_column(column).ok(),
                    Expr::Alias(alias) => match alias.expr.as_ref() {
                        Expr::Column(column) => input.index_of_column(column).ok(),
                        _ => None,
                    },
                    _ => None,
                })
                .map(|i| i.map_or_else(ColumnStatistics::new_unknown, |i| columns[i].clone()))
                .collect();
            Some((rows, projected))
        }
        // A semi or anti join keeps at most its input's rows.
        LogicalPlan::Join(join) => match join.join_type {
            JoinType::LeftSemi | JoinType::LeftAnti => estimate(&join.left, unknown),
            JoinType::RightSemi | JoinType::RightAnti => estimate(&join.right, unknown),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::col;

    /// Columns `a.x`, `a.w`, `b.y` and `c.z`, of inputs 0, 0, 1 and 2.
    fn owners() -> HashMap<Column, usize> {
        [("a.x", 0), ("a.w", 0), ("b.y", 1), ("c.z", 2)]
            .into_iter()
            .map(|(name, input)| (Column::from_qualified_name(name), input))
            .collect()
    }

    fn part(inputs: u64, rows: f64) -> Part {
        Part {
            plan: LogicalPlan::EmptyRelation(datafusion::logical_expr::EmptyRelation {
                produce_one_row: false,
                schema: Arc::new(DFSchema::empty()),
            }),
            inputs,
            rows,
        }
    }

    #[test]
    fn a_key_joins_the_parts_that_hold_its_sides() {
        let owners = owners();
        let key = Condition::of(&col("a.x").eq(col("b.y")), &owners).unwrap();
        assert_eq!(key.sides, Some((0b1, 0b10)));
        let (a, b, c, ac) = (
            part(0b1, 1.0),
            part(0b10, 1.0),
            part(0b100, 1.0),
            part(0b101, 1.0),
        );
        assert!(key.joins(&a, &b) && key.joins(&b, &a) && key.joins(&ac, &b));
        assert!(!key.joins(&a, &c));
        // Oriented to the join's sides, whichever way it was written.
        assert_eq!(key.oriented(&b, &ac), Some((col("b.y"), col("a.x"))));
        assert_eq!(key.oriented(&a, &b), Some((col("a.x"), col("b.y"))));
        // A side may read several inputs, all on one side of the join.
        let wide = Condition::of(&(col("a.x") + col("b.y")).eq(col("c.z")), &owners).unwrap();
        assert_eq!(wide.sides, Some((0b11, 0b100)));
        assert!(wide.joins(&part(0b11, 1.0), &c) && !wide.joins(&a, &c));
    }

    #[test]
    fn conditions_that_are_no_keys_are_tested_where_their_inputs_meet() {
        let owners = owners();
        // Both sides of one input, an inequality, a column of no input.
        let same = Condition::of(&col("a.x").eq(col("a.w")), &owners).unwrap();
        assert_eq!((same.sides, same.inputs), (None, 0b1));
        let less = Condition::of(&col("a.x").lt(col("c.z")), &owners).unwrap();
        assert_eq!((less.sides, less.inputs), (None, 0b101));
        assert!(Condition::of(&col("d.v").eq(col("a.x")), &owners).is_none());
    }

    #[test]
    fn a_join_keeps_rows_by_the_more_varied_side_of_its_keys() {
        let distinct: HashMap<Column, f64> = [("a.x", 100.0), ("b.y", 10.0), ("c.z", 5.0)]
            .into_iter()
            .map(|(name, d)| (Column::from_qualified_name(name), d))
            .collect();
        let estimates = Estimates {
            distinct: &distinct,
        };
        let owners = owners();
        let key = Condition::of(&col("a.x").eq(col("b.y")), &owners).unwrap();
        // 1,000 × 50 rows, 100 distinct keys on the larger side.
        let (a, b) = (part(0b1, 1000.0), part(0b10, 50.0));
        assert_eq!(estimates.joined(&a, &b, &[&key], &[]), 500.0);
        // A side never has more distinct keys than rows.
        let few = part(0b1, 4.0);
        assert_eq!(estimates.joined(&few, &b, &[&key], &[]), 20.0);
        // Another condition between the two keeps a third.
        let less = Condition::of(&col("a.w").lt(col("b.y")), &owners).unwrap();
        let rows = estimates.joined(&a, &b, &[&key], &[less]);
        assert!((rows - 500.0 / 3.0).abs() < 1e-9, "{rows}");
        // Two keys: their product of distinct values, up to the rows.
        let second = Condition::of(&col("b.y").eq(col("c.z")), &owners).unwrap();
        let (ab, c) = (part(0b11, 10_000.0), part(0b100, 20.0));
        assert_eq!(estimates.distinct_keys(&[col("b.y")], ab.rows), 10.0);
        assert_eq!(
            estimates.joined(&ab, &c, &[&second], &[]),
            10_000.0 * 20.0 / 10.0
        );
    }
}
