//! SQL functions beyond DataFusion's own, registered on every session.
//!
//! Today: PostgreSQL's json and jsonb ([`json`]), TimescaleDB's time-series
//! functions ([`timeseries`]), Parquet, CSV and newline-delimited JSON
//! files as tables, and files as rows ([`files`]), graph algorithms over edge tables ([`graph`]), the session
//! functions clients call,
//! PostgreSQL's text input rules, and its float output (which the wire
//! shares). Object functions join here as DataFusion UDFs.

use std::sync::Arc;

pub use error::Error;
pub use files::{FileKind, compression_of, list_files, parse_path, read_file, strip_compression};
pub use integer_arithmetic::{integer_literal, integer_literals, numeric_sums};
pub use numeric::{PgNumerics, is_comparison, pg_numerics};

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::planner::ExprPlanner;
use datafusion::logical_expr::{Expr, LogicalPlan, ScalarUDF};
use datafusion::optimizer::AnalyzerRule;
use datafusion::optimizer::analyzer::resolve_grouping_function::ResolveGroupingFunction;
use datafusion::optimizer::analyzer::type_coercion::TypeCoercion;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion::prelude::SessionContext;

mod arrays;
mod date_part;
mod error;
mod files;
mod graph;
mod integer_arithmetic;
pub mod json;
mod numeric;
mod pg;
mod substr;
pub mod text_format;
pub mod text_input;
pub mod text_output;
pub mod timeseries;
mod to_char;
mod width_bucket;

/// DataFusion's default session state with ciab's expression planners and
/// analyzer rules. The planners replace DataFusion's own for the syntax
/// they plan (`substring`, see `substr`; `EXTRACT`, see `date_part`), so
/// they go before DataFusion's, which plan it too.
pub fn state_builder() -> SessionStateBuilder {
    let mut builder = SessionStateBuilder::new().with_default_features();
    let planners: [Arc<dyn ExprPlanner>; 3] = [
        Arc::new(date_part::ExtractPlanner::default()),
        Arc::new(substr::SubstringPlanner::default()),
        Arc::new(numeric::UnknownOperands),
    ];
    builder
        .expr_planners()
        .get_or_insert_default()
        .splice(0..0, planners);
    builder.with_analyzer_rules(analyzer_rules())
}

/// Registers ciab's functions and PostgreSQL input rules on a session.
pub fn register(ctx: &SessionContext) {
    pg::register(ctx);
    arrays::register(ctx);
    text_format::register(ctx);
    integer_arithmetic::register(ctx);
    json::register(ctx);
    timeseries::register(ctx);
    ctx.register_udtf("read_ndjson", Arc::new(files::ReadNdjson));
    ctx.register_udtf(
        "read_parquet",
        Arc::new(files::ReadFiles(FileKind::Parquet)),
    );
    ctx.register_udtf("read_csv", Arc::new(files::ReadFiles(FileKind::Csv)));
    ctx.register_udtf("files", Arc::new(files::ListFiles));
    graph::register(ctx);
    ctx.register_udf(numeric::div());
    ctx.register_udf(numeric::sign());
    ctx.register_udf(width_bucket::width_bucket());
    // Replaces DataFusion's date_part, which gives whole seconds.
    ctx.register_udf(date_part::PgDatePart::float());
    // Replaces DataFusion's to_char, whose templates are strftime's.
    ctx.register_udf(ScalarUDF::new_from_impl(to_char::ToChar::default()));
    let interval_in = Arc::new(ScalarUDF::new_from_impl(text_input::PgIntervalIn::default()));
    let bytea_in = Arc::new(ScalarUDF::new_from_impl(text_input::PgByteaIn::default()));
    ctx.register_udf(interval_in.as_ref().clone());
    ctx.register_udf(bytea_in.as_ref().clone());
    let timestamp_text_in = Arc::new(ScalarUDF::new_from_impl(
        text_input::PgTimestampTextIn::default(),
    ));
    ctx.register_udf(timestamp_text_in.as_ref().clone());
    ctx.add_analyzer_rule(Arc::new(text_input::PgTextInputCasts::new(
        interval_in,
        bytea_in,
        timestamp_text_in,
    )));
    let text_out = Arc::new(ScalarUDF::new_from_impl(text_output::PgTextOut::default()));
    ctx.register_udf(text_out.as_ref().clone());
    ctx.add_analyzer_rule(Arc::new(text_output::PgTextOutputCasts::new(text_out)));
}

/// DataFusion's analyzer rules with ciab's that must run before type
/// coercion.
fn analyzer_rules() -> Vec<Arc<dyn AnalyzerRule + Send + Sync>> {
    vec![
        Arc::new(ResolveGroupingFunction::new()),
        Arc::new(PgNumerics),
        Arc::new(TypeCoercion::new()),
    ]
}

/// Runs `future` to its end from inside one of DataFusion's synchronous
/// calls (a table function's planning, a scalar function's body): it parks
/// this worker thread, which the multi-threaded runtime makes up for. None
/// on a runtime that cannot, where the caller says what it needed.
pub fn block_on<F: std::future::Future>(future: F) -> Option<F::Output> {
    let handle = tokio::runtime::Handle::current();
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return None;
    }
    Some(tokio::task::block_in_place(|| handle.block_on(future)))
}

/// Rewrites every expression of a plan and its subqueries bottom-up with
/// `rewrite`, which sees the schema of the expression's inputs. Output
/// names stay as they were: a function call is named unlike the operator
/// or cast it replaces, and columns above an Aggregate refer to the old
/// name.
pub fn rewrite_expressions(
    plan: LogicalPlan,
    rewrite: impl Fn(Expr, &DFSchema) -> Result<Transformed<Expr>>,
) -> Result<Transformed<LogicalPlan>> {
    plan.transform_up_with_subqueries(|plan| rewrite_node_expressions(plan, &rewrite))
}

/// [`rewrite_expressions`] for one plan node, not its inputs.
pub fn rewrite_node_expressions(
    plan: LogicalPlan,
    rewrite: &impl Fn(Expr, &DFSchema) -> Result<Transformed<Expr>>,
) -> Result<Transformed<LogicalPlan>> {
    // A node's expressions read its inputs' columns; the filters an
    // optimizer pushed into a scan read its table's.
    let schema = match &plan {
        LogicalPlan::TableScan(scan) => {
            DFSchema::try_from_qualified_schema(scan.table_name.clone(), &scan.source.schema())?
        }
        _ => {
            let mut schema = DFSchema::empty();
            for input in plan.inputs() {
                schema.merge(input.schema());
            }
            schema
        }
    };
    let names = NamePreserver::new(&plan);
    plan.map_expressions(|e| {
        let name = names.save(&e);
        e.transform_up(|e| rewrite(e, &schema))
            .map(|t| t.update_data(|e| name.restore(e)))
    })
}

/// A rewritten plan, its schemas recomputed if anything in it changed
/// (most plans are left as they are).
pub fn with_schemas(plan: Transformed<LogicalPlan>) -> Result<LogicalPlan> {
    if !plan.transformed {
        return Ok(plan.data);
    }
    plan.data
        .transform_up_with_subqueries(|node| node.recompute_schema().map(Transformed::yes))
        .map(|t| t.data)
}

/// DataFusion's physical planner, with the plan nodes of the extensions
/// (a session is built with it: `SessionStateBuilder::with_query_planner`).
#[derive(Debug, Default)]
pub struct ExtensionsQueryPlanner;

#[async_trait]
impl QueryPlanner for ExtensionsQueryPlanner {
    async fn create_physical_plan(
        &self,
        plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(timeseries::extension_planners())
            .create_physical_plan(plan, session)
            .await
    }
}
