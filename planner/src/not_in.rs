//! `x NOT IN (subquery)` as a plain anti join where neither side can be
//! NULL.
//!
//! NOT IN is three-valued: `x NOT IN (1, NULL)` is never true, and a NULL
//! `x` is never NOT IN a subquery that gives rows. DataFusion therefore
//! plans NOT IN as a null-aware anti join unless the Arrow fields of both
//! keys are non-nullable. ciab's fields are always nullable (NOT NULL is
//! the catalog's rule, see `ColumnDef::field`), so every NOT IN was
//! null-aware, and a null-aware join must build its hash table on the
//! outer side, which it may never swap: TPC-H q16 built it on 120 thousand
//! parts and suppliers to probe with the 4 suppliers that had complaints.
//!
//! Where each key of the join is a column that cannot be NULL there, null
//! awareness changes no answer, and this rule clears it, so the join is an
//! ordinary anti join that the physical planner builds on the smaller
//! side. A column cannot be NULL where it traces, through projections,
//! aliases, filters and joins that keep it, to a table column the catalog
//! declares NOT NULL (a primary key's included), or where a filter below
//! drops its NULLs (`y IS NOT NULL`, `y > 0`).

use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, ExprSchema, Result};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Join, JoinType, LogicalPlan, Operator};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use crate::provider::StoredTable;

#[derive(Debug, Default)]
pub struct PlainNotIn;

impl OptimizerRule for PlainNotIn {
    fn name(&self) -> &str {
        "ciab_plain_not_in"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Join(join) = plan else {
            return Ok(Transformed::no(plan));
        };
        // Without equal keys the join is a nested loop either way.
        let never_null_keys = !join.on.is_empty()
            && join
                .on
                .iter()
                .all(|(l, r)| never_null(l, &join.left) && never_null(r, &join.right));
        if !join.null_aware || !never_null_keys {
            return Ok(Transformed::no(LogicalPlan::Join(join)));
        }
        assert_eq!(
            join.join_type,
            JoinType::LeftAnti,
            "only NOT IN is null-aware"
        );
        let plain = Join::try_new(
            join.left,
            join.right,
            join.on,
            join.filter,
            join.join_type,
            join.join_constraint,
            join.null_equality,
            false,
        )?;
        Ok(Transformed::yes(LogicalPlan::Join(plain)))
    }
}

/// Whether `expr`, over `plan`'s columns, is never NULL.
fn never_null(expr: &Expr, plan: &LogicalPlan) -> bool {
    match expr {
        Expr::Column(column) => column_never_null(column, plan),
        // A cast of a value is a value (or an error), never NULL.
        Expr::Cast(cast) => never_null(&cast.expr, plan),
        Expr::Alias(alias) => never_null(&alias.expr, plan),
        _ => false,
    }
}

fn column_never_null(column: &Column, plan: &LogicalPlan) -> bool {
    let schema = plan.schema();
    if schema
        .field_from_column(column)
        .is_ok_and(|field| !field.is_nullable())
    {
        return true;
    }
    match plan {
        LogicalPlan::TableScan(scan) => source_as_provider(&scan.source).is_ok_and(|provider| {
            provider
                .downcast_ref::<StoredTable>()
                .is_some_and(|table| table.declares_not_null(&column.name))
        }),
        LogicalPlan::Projection(projection) => schema
            .index_of_column(column)
            .is_ok_and(|i| never_null(&projection.expr[i], &projection.input)),
        LogicalPlan::SubqueryAlias(alias) => schema.index_of_column(column).is_ok_and(|i| {
            let below = Column::from(alias.input.schema().qualified_field(i));
            column_never_null(&below, &alias.input)
        }),
        LogicalPlan::Filter(filter) => {
            split_conjunction(&filter.predicate)
                .into_iter()
                .any(|conjunct| drops_nulls_of(conjunct, column))
                || column_never_null(column, &filter.input)
        }
        LogicalPlan::Join(join) => {
            // The sides whose columns the join passes on as they are, not
            // NULL-extended.
            let (left, right) = match join.join_type {
                JoinType::Inner => (true, true),
                JoinType::Left | JoinType::LeftSemi | JoinType::LeftAnti => (true, false),
                JoinType::Right | JoinType::RightSemi | JoinType::RightAnti => (false, true),
                _ => (false, false),
            };
            (left && join.left.schema().has_column(column) && column_never_null(column, &join.left))
                || (right
                    && join.right.schema().has_column(column)
                    && column_never_null(column, &join.right))
        }
        LogicalPlan::Sort(_) | LogicalPlan::Limit(_) => plan
            .inputs()
            .first()
            .is_some_and(|input| column_never_null(column, input)),
        _ => false,
    }
}

/// Whether a filter's `conjunct` is true of no row where `column` is NULL:
/// `column IS NOT NULL`, or `column` compared with anything.
fn drops_nulls_of(conjunct: &Expr, column: &Column) -> bool {
    match conjunct {
        Expr::IsNotNull(expr) => matches!(expr.as_ref(), Expr::Column(c) if c == column),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            matches!(
                op,
                Operator::Eq
                    | Operator::NotEq
                    | Operator::Lt
                    | Operator::LtEq
                    | Operator::Gt
                    | Operator::GtEq
            ) && [left, right]
                .iter()
                .any(|side| matches!(side.as_ref(), Expr::Column(c) if c == column))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::NullEquality;
    use datafusion::logical_expr::{LogicalPlanBuilder, col, lit, table_scan, when};
    use datafusion::optimizer::{Optimizer, OptimizerContext};

    /// A scan of one Int32 column `k`, nullable or not.
    fn scan(name: &str, nullable: bool) -> LogicalPlanBuilder {
        let schema = Schema::new(vec![Field::new("k", DataType::Int32, nullable)]);
        table_scan(Some(name), &schema, None).unwrap()
    }

    /// `left.k NOT IN (SELECT k FROM right)`, as DataFusion plans it.
    fn not_in(left: LogicalPlanBuilder, right: LogicalPlanBuilder) -> LogicalPlan {
        left.join_detailed_with_options(
            right.build().unwrap(),
            JoinType::LeftAnti,
            (vec![Column::from_name("k")], vec![Column::from_name("k")]),
            None,
            NullEquality::NullEqualsNothing,
            true,
        )
        .unwrap()
        .build()
        .unwrap()
    }

    fn null_aware(plan: LogicalPlan) -> bool {
        let optimizer = Optimizer::with_rules(vec![Arc::new(PlainNotIn)]);
        let plan = optimizer
            .optimize(plan, &OptimizerContext::new(), |_, _| {})
            .unwrap();
        let LogicalPlan::Join(join) = plan else {
            panic!("the join stays on top: {plan}");
        };
        join.null_aware
    }

    #[test]
    fn null_awareness_stays_while_either_key_may_be_null() {
        assert!(null_aware(not_in(scan("a", true), scan("b", false))));
        assert!(null_aware(not_in(scan("a", false), scan("b", true))));
        // A filter that keeps NULLs proves nothing.
        let kept = scan("b", true).filter(col("b.k").is_null()).unwrap();
        assert!(null_aware(not_in(scan("a", false), kept)));
        // A computed key may be NULL.
        let computed = scan("b", false)
            .project(vec![
                when(col("b.k").gt(lit(0)), col("b.k"))
                    .end()
                    .unwrap()
                    .alias("k"),
            ])
            .unwrap();
        assert!(null_aware(not_in(scan("a", false), computed)));
    }

    #[test]
    fn keys_that_are_never_null_make_a_plain_anti_join() {
        assert!(!null_aware(not_in(scan("a", false), scan("b", false))));
        let filtered = |name: &str, predicate: Expr| scan(name, true).filter(predicate).unwrap();
        assert!(!null_aware(not_in(
            filtered("a", col("a.k").is_not_null()),
            filtered("b", col("b.k").gt(lit(3))),
        )));
        // Through an alias and a projection that renames nothing.
        let aliased = scan("b", false)
            .project(vec![col("b.k")])
            .unwrap()
            .alias("sq")
            .unwrap();
        assert!(!null_aware(not_in(scan("a", false), aliased)));
    }
}
