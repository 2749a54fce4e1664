//! ciab's own views, in the schema `ciab` of every database: what
//! PostgreSQL's catalogs have no place for. `ciab.settings` lists every
//! setting with its cluster-wide value (`ALTER SYSTEM`), its default and
//! when it was changed.

use std::sync::Arc;

use ciab_storage::DbState;
use datafusion::arrow::datatypes::{DataType, Field, Schema as ArrowSchema, SchemaRef, TimeUnit};
use datafusion::common::{Result as DfResult, ScalarValue};

use crate::pg_catalog::{Rows, Source, ViewSchema, s};
use crate::provider::CatalogList;
use crate::settings::SETTINGS;

pub const CIAB_SCHEMA: &str = "ciab";

const VIEWS: &[&str] = &["settings"];

/// The `ciab` schema of one session's catalog list.
pub fn schema(list: Arc<CatalogList>) -> ViewSchema {
    ViewSchema {
        source: Source::System,
        views: VIEWS,
        columns: view_columns,
        list,
    }
}

fn view_columns(view: &str) -> SchemaRef {
    debug_assert_eq!(view, "settings", "the only view");
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    Arc::new(ArrowSchema::new(vec![
        text("name"),
        text("value"),
        text("default"),
        text("description"),
        text("scope"),
        Field::new(
            "changed_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]))
}

/// Fills `ciab.settings`: `scope` is `cluster` for what ALTER SYSTEM sets,
/// `fixed` for what the build fixed; `changed_at` is NULL for defaults.
pub(crate) fn fill(view: &str, rows: &mut Rows, state: &DbState) -> DfResult<()> {
    debug_assert_eq!(view, "settings", "the only view");
    for setting in SETTINGS {
        let system = state
            .catalog
            .settings
            .get(&setting.name.to_ascii_lowercase());
        let changed_at = match system {
            Some(s) => ScalarValue::Utf8(Some(s.changed_at.clone())).cast_to(
                &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            )?,
            None => ScalarValue::TimestampMicrosecond(None, Some("UTC".into())),
        };
        rows.push_or_null(&[
            ("name", s(setting.name)),
            ("value", s(system.map_or(setting.default, |s| &s.value))),
            ("default", s(setting.default)),
            ("description", s(setting.description)),
            ("scope", s(if setting.fixed { "fixed" } else { "cluster" })),
            ("changed_at", changed_at),
        ])?;
    }
    Ok(())
}
