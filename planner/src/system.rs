//! ciab's own views, in the schema `ciab` of every database: what
//! PostgreSQL's catalogs have no place for. `ciab.settings` lists every
//! setting with its cluster-wide value (`ALTER SYSTEM`), its default and
//! when it was changed; `ciab.nodes` the members of the Raft cluster as
//! this node sees them now (what `ciab status` prints); `ciab.partitions`
//! the partitions of the database's time-series tables, with their rows
//! and files; `ciab.objects` every object in object storage;
//! `ciab.metrics` this node's counters since it started. The
//! function `ciab_remove_node(id)` removes a member for good;
//! `ciab_force_panic(message)` panics as a bug would.

use std::sync::Arc;

use ciab_storage::{DbState, NodeAddresses, Store};
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema as ArrowSchema, SchemaRef, TimeUnit};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

use crate::error::{Error, sqlstate, to_df};

use crate::pg_catalog::{Rows, Source, ViewSchema, s};
use crate::provider::{CatalogList, ClusterView};
use crate::settings::SETTINGS;

pub const CIAB_SCHEMA: &str = "ciab";

const VIEWS: &[&str] = &["metrics", "nodes", "objects", "partitions", "settings"];

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
            text("peer_addr"),
            text("role"),
            text("raft_state"),
            Field::new("this_node", DataType::Boolean, true),
            Field::new("last_contact", timestamptz(), true),
            int8("applied_index"),
            int8("lag"),
        ]));
    }
    if view == "objects" {
        return Arc::new(ArrowSchema::new(vec![
            text("bucket"),
            text("key"),
            int8("size"),
            text("etag"),
            text("content_type"),
            Field::new("last_modified", timestamptz(), true),
            ciab_extensions::json::Kind::Jsonb.field("metadata"),
        ]));
    }
    if view == "metrics" {
        return Arc::new(ArrowSchema::new(vec![
            text("name"),
            int8("value"),
            text("description"),
        ]));
    }
    if view == "partitions" {
        return Arc::new(ArrowSchema::new(vec![
            text("table_schema"),
            text("table_name"),
            Field::new("partition_start", timestamptz(), true),
            Field::new("partition_end", timestamptz(), true),
            int8("rows"),
            // Segments in memory; those with a file are in Parquet.
            int8("segments"),
            int8("files"),
        ]));
    }
    debug_assert_eq!(view, "settings");
    Arc::new(ArrowSchema::new(vec![
        text("name"),
        text("value"),
        text("default"),
        text("description"),
        text("scope"),
        Field::new("changed_at", timestamptz(), true),
    ]))
}

fn timestamptz() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Fills a view. `ciab.settings`: `scope` is `cluster` for what ALTER
/// SYSTEM sets, `fixed` for what the build fixed; `changed_at` is NULL for
/// defaults. `ciab.nodes`: one row per member; what this node does not
/// know of another (its state unless it leads, its address) is NULL.
pub(crate) fn fill(
    view: &str,
    rows: &mut Rows,
    state: &DbState,
    database: &str,
    cluster: &ClusterView,
) -> DfResult<()> {
    if view == "partitions" {
        return fill_partitions(rows, state, database);
    }
    if view == "metrics" {
        return fill_metrics(rows);
    }
    if view == "objects" {
        return fill_objects(rows, state);
    }
    if view == "nodes" {
        let int8 = |v: Option<u64>| ScalarValue::Int64(v.and_then(|v| i64::try_from(v).ok()));
        for node in cluster.store.nodes() {
            let address = |a: fn(&NodeAddresses) -> &String| {
                let known = node.addresses.as_ref().map(a).filter(|a| !a.is_empty());
                ScalarValue::Utf8(known.cloned())
            };
            let last_contact = node.last_contact.and_then(|t| {
                let micros = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_micros();
                i64::try_from(micros).ok()
            });
            rows.push_or_null(&[
                ("id", s(&node.id.to_string())),
                ("pg_addr", address(|a| &a.pg_addr)),
                ("peer_addr", address(|a| &a.peer_addr)),
                ("role", s(if node.voter { "voter" } else { "learner" })),
                (
                    "raft_state",
                    ScalarValue::Utf8(node.state.map(String::from)),
                ),
                ("this_node", ScalarValue::Boolean(Some(node.this_node))),
                (
                    "last_contact",
                    ScalarValue::TimestampMicrosecond(last_contact, Some("UTC".into())),
                ),
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
            Some(s) => ScalarValue::Utf8(Some(s.changed_at.clone())).cast_to(&timestamptz())?,
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

/// This node's counters, each with what it counts.
fn fill_metrics(rows: &mut Rows) -> DfResult<()> {
    use crate::lookups::SEGMENTS_LOOKED_UP;
    use crate::provider::{SEGMENTS_READ, SEGMENTS_SKIPPED};
    use crate::shred::{SHREDDED_BUILT, SHREDDED_REUSED};
    use std::sync::atomic::Ordering;
    let metrics = [
        (
            "segments_read",
            SEGMENTS_READ.load(Ordering::Relaxed),
            "table segments (a file each once written) that scans read",
        ),
        (
            "segments_skipped",
            SEGMENTS_SKIPPED.load(Ordering::Relaxed),
            "table segments that scans skipped: their bounds ruled out the filters",
        ),
        (
            "segments_looked_up",
            SEGMENTS_LOOKED_UP.load(Ordering::Relaxed),
            "table segments of which scans read only the rows holding a few of a column's many values",
        ),
        (
            "shredded_columns_built",
            SHREDDED_BUILT.load(Ordering::Relaxed),
            "document fields that scans worked out for a segment and kept (or could not keep)",
        ),
        (
            "shredded_columns_reused",
            SHREDDED_REUSED.load(Ordering::Relaxed),
            "document fields that scans read where a segment kept them",
        ),
    ];
    for (name, value, description) in metrics {
        rows.push_or_null(&[
            ("name", s(name)),
            ("value", ScalarValue::Int64(i64::try_from(value).ok())),
            ("description", s(description)),
        ])?;
    }
    Ok(())
}

/// One row per object of every bucket (buckets belong to the cluster, not
/// to a database), in bucket and key order.
fn fill_objects(rows: &mut Rows, state: &DbState) -> DfResult<()> {
    for (bucket, b) in &state.objects.buckets {
        for (key, object) in &b.objects {
            let meta = &object.meta;
            let metadata = serde_json::to_string(&meta.metadata).expect("maps serialize");
            let metadata = ciab_extensions::json::parse(&metadata)
                .expect("serde_json writes JSON")
                .to_jsonb_text();
            rows.push_or_null(&[
                ("bucket", s(bucket)),
                ("key", s(key)),
                ("size", ScalarValue::Int64(i64::try_from(meta.size).ok())),
                ("etag", s(&meta.etag)),
                ("content_type", ScalarValue::Utf8(meta.content_type.clone())),
                (
                    "last_modified",
                    ScalarValue::TimestampMicrosecond(Some(meta.modified_us), Some("UTC".into())),
                ),
                ("metadata", s(&metadata)),
            ])?;
        }
    }
    Ok(())
}

/// One row per partition of each time-series table in `database`, in
/// partition order.
fn fill_partitions(rows: &mut Rows, state: &DbState, database: &str) -> DfResult<()> {
    let Some(db) = state.catalog.databases.get(database) else {
        return Ok(());
    };
    let time = |us: i64| ScalarValue::TimestampMicrosecond(Some(us), Some("UTC".into()));
    for (schema_name, schema) in &db.schemas {
        for (name, def) in &schema.tables {
            let Some(ts) = &def.time_series else {
                continue;
            };
            let Some(data) = state.table_data(def.id) else {
                continue;
            };
            let segments = &data.segments;
            let mut start = 0;
            while start < segments.len() {
                let partition = segments[start].partition;
                let end = start + segments[start..].partition_point(|s| s.partition == partition);
                let run = &segments[start..end];
                let p = partition.expect("a time series' segments have partitions");
                let count = |n: usize| ScalarValue::Int64(Some(n as i64));
                rows.push_or_null(&[
                    ("table_schema", s(schema_name)),
                    ("table_name", s(name)),
                    ("partition_start", time(p)),
                    ("partition_end", time(ts.partition_end(p))),
                    ("rows", count(run.iter().map(|s| s.batch.num_rows()).sum())),
                    ("segments", count(run.len())),
                    (
                        "files",
                        count(run.iter().filter(|s| s.file.is_some()).count()),
                    ),
                ])?;
                start = end;
            }
        }
    }
    Ok(())
}

/// Registers `ciab_remove_node` and `ciab_force_panic` on a session's
/// context.
pub(crate) fn register(ctx: &SessionContext, store: &Arc<Store>) {
    ctx.register_udf(ScalarUDF::new_from_impl(RemoveNode {
        store: store.clone(),
        signature: Signature::exact(vec![DataType::Utf8], Volatility::Volatile),
    }));
    ctx.register_udf(ScalarUDF::new_from_impl(ForcePanic {
        signature: Signature::exact(vec![DataType::Utf8], Volatility::Volatile),
    }));
}

/// `ciab_force_panic(message text) → text`: panics in the executor with
/// that message, as a bug would, once it sees a row that is not NULL.
/// It shows that a panic fails only its own statement, with XX000, and
/// leaves the session and the server running (CockroachDB has
/// `crdb_internal.force_panic` for the same reason). Volatile, so the
/// planner never folds it into a constant: it panics while rows stream.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ForcePanic {
    signature: Signature,
}

impl ScalarUDFImpl for ForcePanic {
    fn name(&self) -> &str {
        "ciab_force_panic"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let messages = ColumnarValue::values_to_arrays(&args.args)?;
        let messages = messages[0]
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("the signature takes text");
        if let Some(message) = messages.iter().flatten().next() {
            panic!("{message}");
        }
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))
    }
}

/// `ciab_remove_node(id text) → boolean`: removes the node with that id
/// (as `ciab.nodes` shows it) from the cluster for good, through the
/// leader; true once the membership without it is committed. NULL gives
/// NULL.
struct RemoveNode {
    store: Arc<Store>,
    signature: Signature,
}

bound_udf_identity!(RemoveNode, bound: store);

impl ScalarUDFImpl for RemoveNode {
    fn name(&self) -> &str {
        "ciab_remove_node"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let ids = ColumnarValue::values_to_arrays(&args.args)?;
        let ids = ids[0]
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("the signature takes text");
        let mut out = Vec::with_capacity(ids.len());
        for i in 0..ids.len() {
            if ids.is_null(i) {
                out.push(None);
                continue;
            }
            let id = ids.value(i).trim().parse::<u64>().map_err(|_| {
                to_df(Error::new(
                    sqlstate::INVALID_TEXT_REPRESENTATION,
                    format!("invalid node id: \"{}\"", ids.value(i)),
                ))
            })?;
            crate::session::block_on_store(self.store.remove_node(id)).map_err(to_df)?;
            out.push(Some(true));
        }
        Ok(ColumnarValue::Array(
            Arc::new(BooleanArray::from(out)) as ArrayRef
        ))
    }
}
