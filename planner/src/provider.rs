//! DataFusion's view of the catalog: providers over one pinned [`DbState`].
//!
//! A session pins the store's current state when a statement starts (or its
//! transaction's private state) and every table the statement names is read
//! from that one version, so a query sees one consistent database for its
//! whole run while writers go on making new versions.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use ciab_storage::{Bounds, DbState, RowId, Segment, TableData, TableDef, TableId, encode_keys};
use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{Field, FieldRef, Schema as ArrowSchema, SchemaRef};
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, SchemaProvider, Session, TableProvider,
};
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, ColumnStatistics, DFSchema, ScalarValue};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableType, ViewTable};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, LogicalPlan, TableProviderFilterPushDown};
use datafusion::physical_optimizer::pruning::PruningPredicateBuilder;
use datafusion::physical_plan::ExecutionPlan;
use futures::future::BoxFuture;

use crate::pg_catalog::{INFORMATION_SCHEMA, PG_CATALOG, PgCatalog};
use crate::serializable::Reads;
use crate::system::CIAB_SCHEMA;
use crate::table_source::{Slice, TableSource};

/// What the providers read: the pinned state plus per-statement switches.
pub struct Pinned {
    pub database: String,
    pub state: Arc<DbState>,
    /// UPDATE and DELETE plan over scans that also yield each row's id.
    pub expose_rowid: bool,
    /// Parsed DEFAULT expressions, for the tables of the current statement.
    pub defaults: HashMap<TableId, Arc<HashMap<String, Expr>>>,
    /// Where a serializable transaction's scans record the tables they
    /// read (`serializable.rs`).
    pub(crate) reads: Option<Reads>,
}

/// Plans a view's SQL against the same pinned state.
pub type ViewPlanner = Arc<
    dyn Fn(String, Arc<CatalogList>) -> BoxFuture<'static, DfResult<LogicalPlan>> + Send + Sync,
>;

pub struct CatalogList {
    pub pinned: RwLock<Pinned>,
    view_planner: ViewPlanner,
    /// The live cluster, for `ciab.nodes`.
    pub(crate) cluster: Arc<ClusterView>,
}

/// What `ciab.nodes` shows beside the pinned state: the store's live view
/// of the Raft cluster.
pub struct ClusterView {
    pub store: Arc<ciab_storage::Store>,
}

impl std::fmt::Debug for CatalogList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CatalogList")
    }
}

impl CatalogList {
    pub fn new(pinned: Pinned, view_planner: ViewPlanner, cluster: Arc<ClusterView>) -> Arc<Self> {
        Arc::new(CatalogList {
            pinned: RwLock::new(pinned),
            view_planner,
            cluster,
        })
    }

    pub(crate) fn pin(&self, state: Arc<DbState>, reads: Option<Reads>) {
        let mut p = self.pinned.write().expect("lock poisoned");
        p.state = state;
        p.expose_rowid = false;
        p.reads = reads;
    }

    pub fn state(&self) -> Arc<DbState> {
        self.pinned.read().expect("lock poisoned").state.clone()
    }

    pub fn database(&self) -> String {
        self.pinned.read().expect("lock poisoned").database.clone()
    }

    pub fn set_expose_rowid(&self, on: bool) {
        self.pinned.write().expect("lock poisoned").expose_rowid = on;
    }

    pub(crate) fn exposes_rowid(&self) -> bool {
        self.pinned.read().expect("lock poisoned").expose_rowid
    }

    /// `table` over the rows of its table pinned now, read by the pinned
    /// transaction: a kept plan's scan, re-pointed (`crate::plan_cache`).
    pub(crate) fn repin(&self, table: &StoredTable) -> DfResult<StoredTable> {
        let p = self.pinned.read().expect("lock poisoned");
        let data = p.state.table_data(table.id).ok_or_else(|| {
            DataFusionError::Internal(format!("no data for table {}", table.id.0))
        })?;
        let mut repinned = table.clone();
        repinned.data = data.clone();
        repinned.read_by = p.reads.clone().map(|reads| (reads, table.id));
        Ok(repinned)
    }

    pub fn set_defaults(&self, table: TableId, defaults: Arc<HashMap<String, Expr>>) {
        self.pinned
            .write()
            .expect("lock poisoned")
            .defaults
            .insert(table, defaults);
    }
}

impl CatalogProviderList for CatalogList {
    fn register_catalog(
        &self,
        _name: String,
        _catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        None
    }

    fn catalog_names(&self) -> Vec<String> {
        vec![self.database()]
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        (name == self.database()).then(|| Arc::new(Catalog(self.self_arc())) as _)
    }
}

impl CatalogList {
    fn self_arc(&self) -> Arc<CatalogList> {
        // Providers are short-lived views; they need the list only to plan
        // views, so they take a fresh handle on the same pinned state.
        let p = self.pinned.read().expect("lock poisoned");
        Arc::new(CatalogList {
            pinned: RwLock::new(Pinned {
                database: p.database.clone(),
                state: p.state.clone(),
                expose_rowid: p.expose_rowid,
                defaults: p.defaults.clone(),
                reads: p.reads.clone(),
            }),
            view_planner: self.view_planner.clone(),
            cluster: self.cluster.clone(),
        })
    }
}

#[derive(Debug)]
struct Catalog(Arc<CatalogList>);

impl CatalogProvider for Catalog {
    fn schema_names(&self) -> Vec<String> {
        let p = self.0.pinned.read().expect("lock poisoned");
        let mut names: Vec<String> = p
            .state
            .catalog
            .databases
            .get(&p.database)
            .map(|d| d.schemas.keys().cloned().collect())
            .unwrap_or_default();
        names.push(PG_CATALOG.to_string());
        names.push(INFORMATION_SCHEMA.to_string());
        names.push(CIAB_SCHEMA.to_string());
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == PG_CATALOG {
            // Only fails if PostgreSQL's built-in rows, compiled into the
            // binary, do not parse: a build that could never have passed.
            let catalog = PgCatalog::new(self.0.clone()).expect("built-in pg_catalog rows parse");
            return Some(Arc::new(catalog));
        }
        if name == INFORMATION_SCHEMA {
            return Some(Arc::new(crate::information_schema::schema(self.0.clone())));
        }
        if name == CIAB_SCHEMA {
            return Some(Arc::new(crate::system::schema(self.0.clone())));
        }
        let exists = {
            let p = self.0.pinned.read().expect("lock poisoned");
            p.state.catalog.schema(&p.database, name).is_some()
        };
        exists.then(|| {
            Arc::new(Schema {
                list: self.0.clone(),
                name: name.to_string(),
            }) as _
        })
    }
}

#[derive(Debug)]
struct Schema {
    list: Arc<CatalogList>,
    name: String,
}

#[async_trait]
impl SchemaProvider for Schema {
    fn table_names(&self) -> Vec<String> {
        let p = self.list.pinned.read().expect("lock poisoned");
        p.state
            .catalog
            .schema(&p.database, &self.name)
            .map(|s| s.tables.keys().chain(s.views.keys()).cloned().collect())
            .unwrap_or_default()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let (view_sql, table) = {
            let p = self.list.pinned.read().expect("lock poisoned");
            let Some(schema) = p.state.catalog.schema(&p.database, &self.name) else {
                return Ok(None);
            };
            if let Some(def) = schema.tables.get(name) {
                let data = p
                    .state
                    .table_data(def.id)
                    .ok_or_else(|| DataFusionError::Internal(format!("no data for {name}")))?;
                let mut table = StoredTable::new(
                    def,
                    data.clone(),
                    p.expose_rowid,
                    p.defaults.get(&def.id).cloned().unwrap_or_default(),
                );
                table.read_by = p.reads.clone().map(|reads| (reads, def.id));
                (None, Some(table))
            } else if let Some(view) = schema.views.get(name) {
                (Some(view.def.clone()), None)
            } else {
                return Ok(None);
            }
        };
        if let Some(table) = table {
            return Ok(Some(Arc::new(table)));
        }
        let view = view_sql.expect("a view when not a table");
        let plan = (self.list.view_planner)(view.sql.clone(), self.list.clone()).await?;
        let plan = if view.columns.is_empty() {
            plan
        } else {
            let exprs = plan
                .schema()
                .columns()
                .into_iter()
                .zip(&view.columns)
                .map(|(c, alias)| Expr::Column(c).alias(alias))
                .collect::<Vec<_>>();
            datafusion::logical_expr::LogicalPlanBuilder::from(plan)
                .project(exprs)?
                .build()?
        };
        Ok(Some(Arc::new(ViewTable::new(plan, Some(view.sql)))))
    }

    fn table_exist(&self, name: &str) -> bool {
        let p = self.list.pinned.read().expect("lock poisoned");
        p.state
            .catalog
            .schema(&p.database, &self.name)
            .is_some_and(|s| s.has_relation(name))
    }
}

/// One table's rows at the pinned version.
#[derive(Debug, Clone)]
pub struct StoredTable {
    /// The schema DataFusion sees: user columns, plus the row id when
    /// exposed, then the derived columns.
    schema: SchemaRef,
    /// The batches' own schema: user columns and the row id, always.
    stored_schema: SchemaRef,
    /// The table whose rows these are.
    id: TableId,
    data: Arc<TableData>,
    defaults: Arc<HashMap<String, Expr>>,
    /// Columns worked out from the stored ones, which a query's plan asked
    /// for (see [`crate::shred`]); last in `schema`.
    derived: Vec<DerivedColumn>,
    /// Per user column, in `schema`'s order: whether the catalog declares
    /// it NOT NULL, which its always nullable field does not say.
    not_null: Arc<[bool]>,
    /// A serializable transaction's reads, which a scan joins, and the
    /// table's id there.
    read_by: Option<(Reads, TableId)>,
}

/// A column a scan works out from a segment's stored columns, and keeps
/// with the segment for the next scan.
#[derive(Debug, Clone)]
pub(crate) struct DerivedColumn {
    /// What the segment keeps it under: the expression, naming stored
    /// columns by position.
    pub key: String,
    /// The expression over the stored schema's (unqualified) columns.
    pub expr: Expr,
    pub field: FieldRef,
}

impl StoredTable {
    pub fn new(
        def: &TableDef,
        data: Arc<TableData>,
        expose_rowid: bool,
        defaults: Arc<HashMap<String, Expr>>,
    ) -> Self {
        let stored_schema = def.stored_schema();
        StoredTable {
            schema: if expose_rowid {
                stored_schema.clone()
            } else {
                def.schema()
            },
            stored_schema,
            id: def.id,
            data,
            defaults,
            derived: Vec::new(),
            not_null: def.columns.iter().map(|c| !c.nullable).collect(),
            read_by: None,
        }
    }

    /// Whether the table's own column `name` is never NULL: declared NOT
    /// NULL (a primary key's column is), or the row id.
    pub(crate) fn declares_not_null(&self, name: &str) -> bool {
        self.own_column(name).is_some_and(|(i, field)| {
            !field.is_nullable() || self.not_null.get(i).copied().unwrap_or(false)
        })
    }

    /// How many of `schema`'s columns are the table's own, before the
    /// derived ones.
    pub(crate) fn own_len(&self) -> usize {
        self.schema.fields().len() - self.derived.len()
    }

    /// The table's own column `name`: its position and field.
    pub(crate) fn own_column(&self, name: &str) -> Option<(usize, &FieldRef)> {
        let i = self.schema.index_of(name).ok()?;
        (i < self.own_len()).then(|| (i, &self.schema.fields()[i]))
    }

    /// The columns of one-column unique indexes, whose values are all
    /// distinct.
    fn unique_columns(&self) -> Vec<usize> {
        self.data
            .unique
            .iter()
            .filter_map(|index| match index.columns[..] {
                [column] => Some(column),
                _ => None,
            })
            .collect()
    }

    /// The table's rows and the statistics of the columns of `projection`
    /// (positions in `schema`), for planning before a scan: see
    /// [`crate::join_order`]. A derived column's are unknown.
    pub(crate) fn estimates(&self, projection: &[usize]) -> (usize, Vec<ColumnStatistics>) {
        let unique = self.unique_columns();
        let segments = &self.data.segments;
        let columns = projection
            .iter()
            .map(|&i| match i < self.own_len() {
                // The table's own columns are stored in `schema`'s order.
                true => crate::table_source::column_statistics(segments, &unique, i),
                false => ColumnStatistics::new_unknown(),
            })
            .collect();
        (self.data.row_count(), columns)
    }

    pub(crate) fn stored_schema(&self) -> &SchemaRef {
        &self.stored_schema
    }

    pub(crate) fn derived(&self) -> &[DerivedColumn] {
        &self.derived
    }

    /// This table with `more` derived columns after those it has (each
    /// once).
    pub(crate) fn with_derived(&self, more: Vec<DerivedColumn>) -> StoredTable {
        let mut table = self.clone();
        for column in more {
            if table.derived.iter().all(|d| d.key != column.key) {
                table.derived.push(column);
            }
        }
        let fields: Vec<FieldRef> = self.schema.fields()[..self.own_len()]
            .iter()
            .cloned()
            .chain(table.derived.iter().map(|d| Arc::clone(&d.field)))
            .collect();
        table.schema = Arc::new(ArrowSchema::new_with_metadata(
            fields,
            self.schema.metadata().clone(),
        ));
        table
    }

    /// `column = literal` filters, by column position.
    fn equalities(&self, filters: &[Expr]) -> HashMap<usize, ScalarValue> {
        let mut out = HashMap::new();
        for (column, value) in filters.iter().filter_map(crate::lookups::column_equals) {
            if let Ok(i) = self.schema.index_of(&column.name) {
                out.insert(i, value.clone());
            }
        }
        out
    }

    /// The rows a unique index finds for equality filters on all of its
    /// columns; `None` when no index applies.
    fn lookup(&self, filters: &[Expr]) -> DfResult<Option<Vec<RecordBatch>>> {
        let equalities = self.equalities(filters);
        for index in &self.data.unique {
            let Some(values) = index
                .columns
                .iter()
                .map(|c| equalities.get(c))
                .collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            let mut key = Vec::with_capacity(values.len());
            for (value, &c) in values.iter().zip(&index.columns) {
                let target = self.stored_schema.field(c).data_type();
                let Ok(value) = value.cast_to(target) else {
                    // Not representable in the column's type: let the scan decide.
                    return Ok(None);
                };
                key.push(value);
            }
            let rows = match unique_lookup(&self.data, &index.columns, key)
                .map_err(|e| DataFusionError::External(Box::new(e)))?
            {
                Some(rowid) => vec![
                    self.data
                        .rows(&[rowid])
                        .map_err(|e| DataFusionError::External(Box::new(e)))?,
                ],
                None => vec![],
            };
            return Ok(Some(rows));
        }
        Ok(None)
    }
}

/// The segments' column bounds, as DataFusion's pruning reads statistics:
/// one container per segment.
struct SegmentBounds<'a> {
    segments: &'a [Arc<Segment>],
    schema: &'a SchemaRef,
}

impl SegmentBounds<'_> {
    fn bound(&self, column: &Column, pick: fn(&Bounds) -> &ScalarValue) -> Option<ArrayRef> {
        let i = self.schema.index_of(&column.name).ok()?;
        let unknown = ScalarValue::try_from(self.schema.field(i).data_type()).ok()?;
        let values = self.segments.iter().map(|s| {
            s.bounds(i)
                .map(|b| pick(b).clone())
                .unwrap_or_else(|| unknown.clone())
        });
        ScalarValue::iter_to_array(values).ok()
    }
}

impl PruningStatistics for SegmentBounds<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.bound(column, |b| &b.min)
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.bound(column, |b| &b.max)
    }

    fn num_containers(&self) -> usize {
        self.segments.len()
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        let i = self.schema.index_of(&column.name).ok()?;
        let counts: UInt64Array = self
            .segments
            .iter()
            .map(|s| Some(s.batch.column(i).null_count() as u64))
            .collect();
        Some(Arc::new(counts))
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        let counts: UInt64Array = self
            .segments
            .iter()
            .map(|s| Some(s.batch.num_rows() as u64))
            .collect();
        Some(Arc::new(counts))
    }

    fn contained(&self, _column: &Column, _values: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        None
    }
}

/// `items` in `target` runs (fewer when there are fewer items), each in
/// table order; one empty run when there are none.
fn spread<T: Clone>(items: &[T], target: usize) -> Vec<Vec<T>> {
    if items.is_empty() {
        return vec![vec![]];
    }
    let per_run = items.len().div_ceil(target.max(1));
    items.chunks(per_run).map(<[T]>::to_vec).collect()
}

/// `batch` in consecutive zero-copy slices of at most `rows_max` rows.
pub(crate) fn slices(batch: &RecordBatch, rows_max: usize) -> impl Iterator<Item = RecordBatch> {
    ranges(batch.num_rows(), rows_max).map(|rows| batch.slice(rows.start, rows.len()))
}

/// `rows` rows in consecutive ranges of at most `rows_max`.
fn ranges(rows: usize, rows_max: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let rows_max = rows_max.max(1);
    (0..rows)
        .step_by(rows_max)
        .map(move |offset| offset..rows.min(offset + rows_max))
}

/// Table segments that scans planned in this process read, and those they
/// skipped by their bounds: `ciab.metrics` shows them.
pub(crate) static SEGMENTS_READ: AtomicU64 = AtomicU64::new(0);
pub(crate) static SEGMENTS_SKIPPED: AtomicU64 = AtomicU64::new(0);

impl StoredTable {
    /// The batches of the segments that the filters do not rule out by
    /// their columns' bounds (`ts >= x` skips segments that end before
    /// x). The filters stay above the scan, so keeping a segment is always
    /// safe: a filter pruning cannot read keeps everything.
    fn unpruned(&self, state: &dyn Session, filters: &[Expr]) -> Vec<Arc<Segment>> {
        let segments = &self.data.segments;
        // Derived columns have no bounds: their filters prune nothing.
        let stored = filters.iter().filter(|f| {
            f.column_refs()
                .iter()
                .all(|c| self.stored_schema.index_of(&c.name).is_ok())
        });
        let keep = conjunction(stored.cloned())
            .and_then(|predicate| self.prune(state, predicate, segments).ok());
        let kept: Vec<Arc<Segment>> = match keep {
            Some(keep) => segments
                .iter()
                .zip(keep)
                .filter(|(_, keep)| *keep)
                .map(|(s, _)| Arc::clone(s))
                .collect(),
            None => segments.clone(),
        };
        SEGMENTS_READ.fetch_add(kept.len() as u64, Ordering::Relaxed);
        SEGMENTS_SKIPPED.fetch_add((segments.len() - kept.len()) as u64, Ordering::Relaxed);
        kept
    }

    fn prune(
        &self,
        state: &dyn Session,
        predicate: Expr,
        segments: &[Arc<Segment>],
    ) -> DfResult<Vec<bool>> {
        // Filters name columns as the query did (`t.ts`); the stored
        // schema's are unqualified.
        let predicate = predicate
            .transform(|e| {
                Ok(match e {
                    Expr::Column(c) => {
                        Transformed::yes(Expr::Column(Column::new_unqualified(c.name)))
                    }
                    e => Transformed::no(e),
                })
            })?
            .data;
        let schema = DFSchema::try_from(self.stored_schema.as_ref().clone())?;
        let physical = state.create_physical_expr(predicate, &schema)?;
        let pruning = PruningPredicateBuilder::new()
            .with_file_schema(self.stored_schema.clone())
            .try_build(physical)?;
        if pruning.always_true() {
            return Ok(vec![true; segments.len()]);
        }
        pruning.prune(&SegmentBounds {
            segments,
            schema: &self.stored_schema,
        })
    }
}

/// The row whose key in the unique index over `columns` is `values`, each
/// already of its column's type.
pub(crate) fn unique_lookup(
    data: &TableData,
    columns: &[usize],
    values: Vec<ScalarValue>,
) -> crate::Result<Option<RowId>> {
    let arrays = values
        .iter()
        .map(|v| v.to_array())
        .collect::<DfResult<Vec<_>>>()?;
    let key_batch = RecordBatch::try_new(
        Arc::new(datafusion::arrow::datatypes::Schema::new(
            arrays
                .iter()
                .enumerate()
                .map(|(i, a)| Field::new(format!("k{i}"), a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        )),
        arrays,
    )?;
    let positions: Vec<usize> = (0..columns.len()).collect();
    let key = encode_keys(&key_batch, &positions)?.pop().flatten();
    Ok(key.and_then(|k| data.lookup_unique(columns, &k)))
}

#[async_trait]
impl TableProvider for StoredTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.defaults.get(column)
    }

    /// Equality filters may be answered by a unique index. They stay
    /// `Inexact`: DataFusion applies them again above the scan.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if let Some((reads, table)) = &self.read_by {
            reads.record(*table);
        }
        // The batches carry the row id last; without a projection the
        // caller wants exactly the columns of `self.schema`.
        let projection = projection
            .cloned()
            .unwrap_or_else(|| (0..self.schema.fields().len()).collect());
        let (segments, target) = match self.lookup(filters)? {
            // The rows a key found, as one segment of their own.
            Some(rows) => (
                rows.into_iter()
                    .map(|rows| Arc::new(Segment::new(rows, None)))
                    .collect(),
                1,
            ),
            None => (
                crate::lookups::narrow(
                    self.unpruned(state, filters),
                    &self.stored_schema,
                    self.own_len(),
                    filters,
                )?,
                state.config().target_partitions().max(1),
            ),
        };
        if projection.iter().any(|&i| i >= self.own_len()) {
            return crate::shred::scan(state, self, spread(&segments, target), &projection);
        }
        // Operators work best on batches of the session's size; a
        // segment merged by a snapshot or adopted from a bulk load holds
        // up to 128 Ki rows. Slicing is zero-copy.
        let batch_rows = state.config().batch_size();
        let slices: Vec<Slice> = segments
            .iter()
            .flat_map(|s| {
                ranges(s.batch.num_rows(), batch_rows).map(|rows| Slice {
                    segment: Arc::clone(s),
                    rows,
                })
            })
            .collect();
        let parts =
            crate::table_source::cut_between_keys(spread(&slices, target), &segments, &projection);
        let batches: Vec<Vec<RecordBatch>> = parts
            .iter()
            .map(|part| part.iter().map(Slice::batch).collect())
            .collect();
        let memory =
            MemorySourceConfig::try_new(&batches, self.stored_schema.clone(), Some(projection))?;
        Ok(TableSource::exec(memory, parts, self.unique_columns()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::DataType;

    #[test]
    fn slices_cover_the_batch_in_order() {
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(vec![Field::new(
            "n",
            DataType::Int64,
            false,
        )]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(0..20))])
                .unwrap();
        let parts: Vec<RecordBatch> = slices(&batch, 8).collect();
        let rows: Vec<usize> = parts.iter().map(RecordBatch::num_rows).collect();
        assert_eq!(rows, [8, 8, 4]);
        let joined = datafusion::arrow::compute::concat_batches(&batch.schema(), &parts).unwrap();
        assert_eq!(joined, batch);
        assert_eq!(slices(&batch.slice(0, 0), 8).count(), 0);
    }

    #[test]
    fn spread_keeps_table_order_in_at_most_target_runs() {
        assert_eq!(spread(&[1, 2, 3, 4, 5], 2), [vec![1, 2, 3], vec![4, 5]]);
        assert_eq!(spread(&[1], 4), [vec![1]]);
        assert_eq!(spread::<i32>(&[], 4), [Vec::<i32>::new()]);
    }
}
