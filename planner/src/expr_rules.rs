//! What ciab's optimizer rules that rewrite expressions in place share:
//! each plan node's expressions, rewritten bottom up with the schema they
//! read, under the names they had. DataFusion checks that a rule leaves
//! each node's schema unchanged, and an expression's name is its text, so
//! a rewritten expression keeps its old name.

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, DFSchemaRef, Result};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{Expr, LogicalPlan};

/// `plan` with `rewrite` applied to each of its expressions' parts,
/// innermost first.
pub(crate) fn rewrite_expressions(
    plan: LogicalPlan,
    rewrite: impl Fn(Expr, &DFSchema) -> Result<Transformed<Expr>>,
) -> Result<Transformed<LogicalPlan>> {
    // The expressions of a node read its inputs' columns; a scan's
    // pushed-down filters read its table's.
    let schema: DFSchemaRef = match &plan {
        LogicalPlan::TableScan(scan) => {
            DFSchema::try_from_qualified_schema(scan.table_name.clone(), &scan.source.schema())?
                .into()
        }
        _ if plan.inputs().is_empty() => return Ok(Transformed::no(plan)),
        _ => merge_schema(&plan.inputs()).into(),
    };
    let names = NamePreserver::new(&plan);
    plan.map_expressions(|expr| {
        let name = names.save(&expr);
        let rewritten = expr.transform_up(|e| rewrite(e, &schema))?;
        Ok(rewritten.update_data(|e| name.restore(e)))
    })
}
