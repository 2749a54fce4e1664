//! Semi and anti joins (IN, EXISTS, NOT IN, NOT EXISTS in WHERE) moved
//! down to the input whose rows they filter.
//!
//! DataFusion turns `WHERE x IN (subquery)` into a semi join above the
//! whole FROM clause, so the subquery filters the rows after every join
//! below it. In TPC-H q18 that joined all six million line items with
//! their orders and customers before the subquery kept 57 orders:
//!
//! ```text
//!   LeftSemi o_orderkey = sq.l_orderkey          Inner o_orderkey = l_orderkey
//!     Inner o_orderkey = l_orderkey                Inner c_custkey = o_custkey
//!       Inner c_custkey = o_custkey      ──►         customer
//!         customer                                   LeftSemi o_orderkey = sq.l_orderkey
//!         orders                                       orders
//!       lineitem                                       sq
//!     sq                                           lineitem
//! ```
//!
//! A semi or anti join keeps or drops each row of its left input by that
//! row's own columns alone, as a filter does, so it commutes with an
//! inner join when it reads columns of one side only, and with a
//! projection that passes those columns through.
//!
//! Whether it should move is a question of rows: it tests each row of its
//! input, and a test can be costly (q21's compares each line item with the
//! other lines of its order). Below a join with a whole table the side it
//! filters has no more rows than the join gives, as every row meets its
//! match there. Below a join with a filtered table (q21's suppliers of
//! one nation) the join may keep a small part of that side, which the
//! test would then read in full; so it moves only past joins whose other
//! input is whole tables, joined ([`narrows`]).

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, Result};
use datafusion::logical_expr::{Expr, Join, JoinType, LogicalPlan, Projection};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

#[derive(Debug, Default)]
pub struct PushDownSemiJoins;

impl OptimizerRule for PushDownSemiJoins {
    fn name(&self) -> &str {
        "ciab_push_down_semi_joins"
    }

    /// Top down: a join moved into a child is met again there, and moves
    /// on down as far as it can in one pass.
    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Join(semi) = plan else {
            return Ok(Transformed::no(plan));
        };
        if !matches!(semi.join_type, JoinType::LeftSemi | JoinType::LeftAnti) {
            return Ok(Transformed::no(LogicalPlan::Join(semi)));
        }
        let reads = left_columns(&semi);
        match semi.left.as_ref() {
            LogicalPlan::Projection(projection) if passes_through(projection, &reads) => {
                let below = rejoin(
                    &semi,
                    Arc::clone(&projection.input),
                    Arc::clone(&semi.right),
                )?;
                let moved = Projection::try_new_with_schema(
                    projection.expr.clone(),
                    Arc::new(LogicalPlan::Join(below)),
                    Arc::clone(&projection.schema),
                )?;
                Ok(Transformed::yes(LogicalPlan::Projection(moved)))
            }
            LogicalPlan::Join(inner) if inner.join_type == JoinType::Inner => {
                let within = |side: &LogicalPlan| reads.iter().all(|c| side.schema().has_column(c));
                // The semi join over one side of the inner join.
                let filtered = |side: &Arc<LogicalPlan>| -> Result<Arc<LogicalPlan>> {
                    let below = rejoin(&semi, Arc::clone(side), Arc::clone(&semi.right))?;
                    Ok(Arc::new(LogicalPlan::Join(below)))
                };
                let (left, right) = if within(&inner.left) && !narrows(&inner.right) {
                    (filtered(&inner.left)?, Arc::clone(&inner.right))
                } else if within(&inner.right) && !narrows(&inner.left) {
                    (Arc::clone(&inner.left), filtered(&inner.right)?)
                } else {
                    return Ok(Transformed::no(LogicalPlan::Join(semi)));
                };
                let moved = rejoin(inner, left, right)?;
                // The semi join keeps its input's columns, so the inner
                // join's are as they were.
                assert_eq!(
                    moved.schema, inner.schema,
                    "a semi join keeps its input's schema"
                );
                Ok(Transformed::yes(LogicalPlan::Join(moved)))
            }
            _ => Ok(Transformed::no(LogicalPlan::Join(semi))),
        }
    }
}

/// The columns of the semi join's left input that its keys and its filter
/// read.
fn left_columns(semi: &Join) -> HashSet<Column> {
    let left = semi.left.schema();
    semi.on
        .iter()
        .flat_map(|(l, _)| l.column_refs())
        .chain(semi.filter.iter().flat_map(Expr::column_refs))
        .filter(|c| left.has_column(c))
        .cloned()
        .collect()
}

/// Whether joining with `plan` may drop rows of the other input: it is
/// more than whole tables, projected and joined on equal keys (a filter,
/// an aggregate, a limit, a semi join, VALUES ...).
fn narrows(plan: &LogicalPlan) -> bool {
    plan.exists(|node| {
        Ok(match node {
            LogicalPlan::TableScan(scan) => !scan.filters.is_empty() || scan.fetch.is_some(),
            LogicalPlan::Projection(_) | LogicalPlan::SubqueryAlias(_) => false,
            LogicalPlan::Join(join) => join.join_type != JoinType::Inner || join.filter.is_some(),
            _ => true,
        })
    })
    .expect("the test never fails")
}

/// Whether `projection` hands each of `columns` on unchanged from its
/// input, and computes nothing volatile (which filtering first would run
/// on fewer rows).
fn passes_through(projection: &Projection, columns: &HashSet<Column>) -> bool {
    let schema = &projection.schema;
    !projection.expr.iter().any(Expr::is_volatile)
        && columns.iter().all(|c| {
            schema
                .index_of_column(c)
                .is_ok_and(|i| matches!(&projection.expr[i], Expr::Column(own) if own == c))
        })
}

/// `join` over other inputs with the same columns, or (a semi join's left
/// input) every column it reads.
fn rejoin(join: &Join, left: Arc<LogicalPlan>, right: Arc<LogicalPlan>) -> Result<Join> {
    Join::try_new(
        left,
        right,
        join.on.clone(),
        join.filter.clone(),
        join.join_type,
        join.join_constraint,
        join.null_equality,
        join.null_aware,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::logical_expr::{LogicalPlanBuilder, col, lit, table_scan};
    use datafusion::optimizer::{Optimizer, OptimizerContext};

    fn scan(name: &str, columns: &[&str]) -> LogicalPlanBuilder {
        let fields: Vec<Field> = columns
            .iter()
            .map(|c| Field::new(*c, DataType::Int32, true))
            .collect();
        table_scan(Some(name), &Schema::new(fields), None).unwrap()
    }

    /// customers ⋈ orders on c.id = o.c
    fn customers_orders() -> LogicalPlanBuilder {
        let orders = scan("o", &["k", "c"]).build().unwrap();
        scan("c", &["id"])
            .join(orders, JoinType::Inner, (vec!["c.id"], vec!["o.c"]), None)
            .unwrap()
    }

    fn semi(
        left: LogicalPlanBuilder,
        join_type: JoinType,
        key: &str,
        filter: Option<Expr>,
    ) -> LogicalPlan {
        let subquery = scan("s", &["k"]).build().unwrap();
        left.join(subquery, join_type, (vec![key], vec!["s.k"]), filter)
            .unwrap()
            .build()
            .unwrap()
    }

    fn optimized(plan: LogicalPlan) -> String {
        let optimizer = Optimizer::with_rules(vec![Arc::new(PushDownSemiJoins)]);
        let plan = optimizer
            .optimize(plan, &OptimizerContext::new(), |_, _| {})
            .unwrap();
        plan.display_indent().to_string()
    }

    #[test]
    fn a_semi_or_anti_join_filters_the_side_it_reads() {
        for (join_type, name) in [
            (JoinType::LeftSemi, "LeftSemi"),
            (JoinType::LeftAnti, "LeftAnti"),
        ] {
            let plan = semi(customers_orders(), join_type, "o.k", None);
            assert_eq!(
                optimized(plan),
                format!(
                    "Inner Join: c.id = o.c\
                     \n  TableScan: c\
                     \n  {name} Join: o.k = s.k\
                     \n    TableScan: o\
                     \n    TableScan: s"
                )
            );
        }
        let plan = semi(customers_orders(), JoinType::LeftSemi, "c.id", None);
        assert_eq!(
            optimized(plan),
            "Inner Join: c.id = o.c\
             \n  LeftSemi Join: c.id = s.k\
             \n    TableScan: c\
             \n    TableScan: s\
             \n  TableScan: o"
        );
    }

    #[test]
    fn it_passes_a_projection_of_the_columns_it_reads() {
        let projected = customers_orders()
            .project(vec![col("o.k"), col("c.id")])
            .unwrap();
        let plan = semi(projected, JoinType::LeftSemi, "o.k", None);
        assert_eq!(
            optimized(plan),
            "Projection: o.k, c.id\
             \n  Inner Join: c.id = o.c\
             \n    TableScan: c\
             \n    LeftSemi Join: o.k = s.k\
             \n      TableScan: o\
             \n      TableScan: s"
        );
    }

    #[test]
    fn it_stays_where_it_reads_both_sides_or_a_computed_column() {
        // The condition reads the customer, the key the order.
        let both = semi(
            customers_orders(),
            JoinType::LeftSemi,
            "o.k",
            Some(col("s.k").gt(col("c.id"))),
        );
        let before = both.display_indent().to_string();
        assert_eq!(optimized(both), before);
        let computed = customers_orders()
            .project(vec![(col("o.k") + col("c.id")).alias("k")])
            .unwrap();
        let plan = semi(computed, JoinType::LeftAnti, "k", None);
        let before = plan.display_indent().to_string();
        assert_eq!(optimized(plan), before);
    }

    #[test]
    fn it_stays_above_a_join_with_a_filtered_table() {
        // Orders of some customers: the join may keep few of the orders,
        // which the semi join would otherwise test every one of.
        let some = scan("c", &["id"])
            .filter(col("c.id").lt(lit(10)))
            .unwrap()
            .build()
            .unwrap();
        let joined = scan("o", &["k", "c"])
            .join(some, JoinType::Inner, (vec!["o.c"], vec!["c.id"]), None)
            .unwrap();
        let plan = semi(joined, JoinType::LeftSemi, "o.k", None);
        let before = plan.display_indent().to_string();
        assert_eq!(optimized(plan), before);
    }
}
