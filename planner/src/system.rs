//! ciab's own views, in the schema `ciab` of every database: what
//! PostgreSQL's catalogs have no place for. `ciab.settings` lists every
//! setting with its cluster-wide value (`ALTER SYSTEM`), its default and
//! when it was changed; `ciab.nodes` the members of the Raft cluster as
//! this node sees them now (what `ciab status` prints).

use std::sync::Arc;

use ciab_storage::DbState;
use datafusion::arrow::datatypes::{DataType, Field, Schema as ArrowSchema, SchemaRef, TimeUnit};
use datafusion::common::{Result as DfResult, ScalarValue};

use crate::pg_catalog::{Rows, Source, ViewSchema, s};
use crate::provider::{CatalogList, ClusterView};
use crate::settings::SETTINGS;

pub const CIAB_SCHEMA: &str = "ciab";

const VIEWS: &[&str] = &["nodes", "settings"];

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
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    let int8 = |n: &str| Field::new(n, DataType::Int64, true);
    if view == "nodes" {
        return Arc::new(ArrowSchema::new(vec![
            // Node ids are unsigned 64-bit numbers: more than bigint holds.
            text("id"),
            text("pg_addr"),
            text("role"),
            text("raft_state"),
            Field::new("this_node", DataType::Boolean, true),
            int8("applied_index"),
            int8("lag"),
        ]));
    }
    debug_assert_eq!(view, "settings");
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

/// Fills a view. `ciab.settings`: `scope` is `cluster` for what ALTER
/// SYSTEM sets, `fixed` for what the build fixed; `changed_at` is NULL for
/// defaults. `ciab.nodes`: one row per member; what this node does not
/// know of another (its state unless it leads, its address) is NULL.
pub(crate) fn fill(
    view: &str,
    rows: &mut Rows,
    state: &DbState,
    cluster: &ClusterView,
) -> DfResult<()> {
    if view == "nodes" {
        let int8 = |v: Option<u64>| ScalarValue::Int64(v.and_then(|v| i64::try_from(v).ok()));
        for node in cluster.store.nodes() {
            let pg_addr = node.this_node.then(|| cluster.pg_addr.clone());
            rows.push_or_null(&[
                ("id", s(&node.id.to_string())),
                ("pg_addr", ScalarValue::Utf8(pg_addr)),
                ("role", s(if node.voter { "voter" } else { "learner" })),
                (
                    "raft_state",
                    ScalarValue::Utf8(node.state.map(String::from)),
                ),
                ("this_node", ScalarValue::Boolean(Some(node.this_node))),
                ("applied_index", int8(node.applied_index)),
                ("lag", int8(node.lag)),
            ])?;
        }
        return Ok(());
    }
    debug_assert_eq!(view, "settings");
    for setting in SETTINGS {
        let system = crate::settings::system(state, setting.name);
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
