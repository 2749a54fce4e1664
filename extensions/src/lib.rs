//! SQL functions beyond DataFusion's own, registered on every session.
//!
//! Today: the PostgreSQL session functions clients call. JSON, time-series,
//! graph and object functions join here as DataFusion UDFs.

use datafusion::prelude::SessionContext;

mod pg;

/// Registers ciab's functions on a session.
pub fn register(ctx: &SessionContext) {
    pg::register(ctx);
}
