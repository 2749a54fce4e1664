//! SQL functions beyond DataFusion's own, registered on every session.
//!
//! Today: PostgreSQL's json and jsonb ([`json`]), the session functions
//! clients call, PostgreSQL's text input rules, and its float output (which
//! the wire shares). Time-series, graph and object functions join here as
//! DataFusion UDFs.

use std::sync::Arc;

pub use error::Error;

use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;

mod error;
pub mod json;
mod pg;
pub mod text_input;
pub mod text_output;
mod to_char;

/// Registers ciab's functions and PostgreSQL input rules on a session.
pub fn register(ctx: &SessionContext) {
    pg::register(ctx);
    json::register(ctx);
    // Replaces DataFusion's to_char, whose templates are strftime's.
    ctx.register_udf(ScalarUDF::new_from_impl(to_char::ToChar::default()));
    let interval_in = Arc::new(ScalarUDF::new_from_impl(text_input::PgIntervalIn::default()));
    let bytea_in = Arc::new(ScalarUDF::new_from_impl(text_input::PgByteaIn::default()));
    ctx.register_udf(interval_in.as_ref().clone());
    ctx.register_udf(bytea_in.as_ref().clone());
    ctx.add_analyzer_rule(Arc::new(text_input::PgTextInputCasts::new(
        interval_in,
        bytea_in,
    )));
}
