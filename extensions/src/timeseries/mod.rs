//! Time series: TimescaleDB's functions in ciab's SQL.
//!
//! - [`bucket`]: `time_bucket`, and PostgreSQL's `date_bin` in place of
//!   DataFusion's (which accepts months and a missing origin that
//!   PostgreSQL refuses). `date_trunc` is DataFusion's.
//! - [`agg`]: `first(value, time)`, `last(value, time)` and
//!   `percentile_disc`; DataFusion brings `percentile_cont` and
//!   `approx_percentile_cont`, both with WITHIN GROUP.
//! - [`gapfill`]: `time_bucket_gapfill` with `locf` and `interpolate`, an
//!   analyzer rule and a plan node of its own.
//! - [`interval`]: an interval times or divided by a number.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::Schema;
use datafusion::common::{Result, ScalarValue};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{AggregateUDF, ColumnarValue, ScalarUDF};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_planner::ExtensionPlanner;
use datafusion::prelude::SessionContext;

mod agg;
mod bucket;
mod gapfill;
mod interval;

pub fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(bucket::TimeBucket::default()));
    ctx.register_udf(ScalarUDF::new_from_impl(bucket::DateBin::default()));
    ctx.register_udf(ScalarUDF::new_from_impl(
        gapfill::TimeBucketGapfill::default(),
    ));
    for fill in [gapfill::Fill::Locf, gapfill::Fill::Interpolate] {
        ctx.register_udf(ScalarUDF::new_from_impl(gapfill::FillMarker::new(fill)));
    }
    ctx.register_udaf(AggregateUDF::new_from_impl(agg::Bookend::first()));
    ctx.register_udaf(AggregateUDF::new_from_impl(agg::Bookend::last()));
    ctx.register_udaf(AggregateUDF::new_from_impl(agg::PercentileDisc::default()));
    ctx.add_analyzer_rule(Arc::new(gapfill::Gapfill));
    for udf in interval::IntervalArithmetic::all() {
        ctx.register_udf(udf);
    }
    // SessionState's registration cannot fail; the trait allows it to.
    ctx.state_ref()
        .write()
        .register_expr_planner(Arc::new(interval::IntervalOperators))
        .expect("registering an expression planner");
}

/// Plans the nodes the time-series rules put in logical plans.
pub fn extension_planners() -> Vec<Arc<dyn ExtensionPlanner + Send + Sync>> {
    vec![Arc::new(gapfill::GapFillPlanner)]
}

/// The value of an expression without columns (a literal, or one the
/// optimizer folded), or `None` if it is not one.
fn constant(expr: &Arc<dyn PhysicalExpr>) -> Result<Option<ScalarValue>> {
    let no_rows = RecordBatch::new_empty(Arc::new(Schema::empty()));
    Ok(match expr.evaluate(&no_rows)? {
        ColumnarValue::Scalar(value) => Some(value),
        ColumnarValue::Array(_) => None,
    })
}
