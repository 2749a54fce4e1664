//! PostgreSQL's system catalogs (`pg_catalog`), answered from ciab's catalog.
//!
//! Clients learn what a database holds by querying PostgreSQL's catalogs:
//! psql's `\d` joins `pg_class`, `pg_namespace`, `pg_attribute`, `pg_index`
//! and `pg_constraint`; drivers read `pg_type`; ORMs reflect tables through
//! `pg_attrdef` and `pg_constraint`. Two kinds of tables answer them:
//!
//! ```text
//!   pg_catalog.<name>
//!     ├─ describes user objects ──► built here from the pinned DbState
//!     │    pg_namespace pg_class pg_attribute pg_index pg_constraint
//!     │    pg_attrdef pg_database pg_tables pg_views pg_indexes pg_roles pg_user
//!     └─ everything else ─────────► PostgreSQL 15's own rows, shipped by the
//!          pg_type pg_proc pg_am      datafusion-pg-catalog crate (parsed, and
//!          pg_operator pg_cast ...    their OID columns typed oid, once per
//!                                     process)
//! ```
//!
//! OIDs are derived from ciab's object ids, so they are stable across
//! restarts and the same on every node: each object owns a block of
//! [`OIDS_PER_OBJECT`] OIDs (see [`Oid`]). Built-in objects keep
//! PostgreSQL's OIDs (`pg_catalog` is 11, `integer` is 23).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use ciab_extensions::text_format::quote_ident;
use ciab_storage::{
    CHECKS_PER_TABLE_MAX, CheckDef, ColumnDef, DbState, FOREIGN_KEYS_PER_TABLE_MAX, ForeignKeyDef,
    INDEXES_PER_TABLE_MAX, PgType, RefAction, SequenceDef, TableDef, TableId,
};
use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema as ArrowSchema, SchemaRef};
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::datasource::{MemTable, TableType};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::oid_field;
use datafusion_pg_catalog::pg_catalog::{
    PgCatalogSchemaProvider, PgCatalogStaticTables, PgCatalogTable,
};

use crate::provider::CatalogList;
use crate::settings::{SETTINGS, SessionFacts};

pub const PG_CATALOG: &str = "pg_catalog";
pub const INFORMATION_SCHEMA: &str = "information_schema";
/// PostgreSQL's OIDs for its built-in schemas. information_schema's is
/// assigned by initdb; this is the one in the PostgreSQL catalog rows
/// ciab serves (datafusion-pg-catalog's pg_proc), so that its functions'
/// pronamespace finds the schema.
const PG_CATALOG_OID: i32 = 11;
const INFORMATION_SCHEMA_OID: i32 = 13_283;
/// The OID of the role that owns everything. ciab has no roles yet: every
/// connection acts as this superuser, under the name it connected with.
pub const OWNER_OID: i32 = 10;
/// PostgreSQL 15's `pg_database_owner` role, which owns `public`.
pub const DATABASE_OWNER_OID: i32 = 6171;
/// Access methods, as PostgreSQL numbers them.
const HEAP_AM_OID: i32 = 2;
const BTREE_AM_OID: i32 = 403;
/// `pg_database.encoding` for UTF8.
const UTF8_ENCODING: i32 = 6;
/// The collation text columns use ("default").
const DEFAULT_COLLATION_OID: i32 = 100;

/// How ciab holds PostgreSQL's `oid` type: an unsigned 32-bit integer, as
/// PostgreSQL does. A type of its own rather than int4, so that an OID
/// stays one through expressions, `array_agg` and unions, and clients are
/// told the type PostgreSQL tells them: asyncpg's type introspection reads
/// `oid[]` columns, which it decodes by heart, where `int4[]` would need
/// introspecting in turn.
pub const OID_TYPE: DataType = DataType::UInt32;
/// The OID of the `oid` type itself.
pub const OID_OID: u32 = 26;

/// First OID PostgreSQL gives user objects.
const OID_USER_BASE: i64 = 16_384;
/// OIDs owned by each object: the relation itself, its row type, then its
/// indexes, their constraints and its column defaults (see [`Oid`]).
pub const OIDS_PER_OBJECT: i64 = 2_048;
/// Column defaults fill the rest of the block; PostgreSQL allows 1600 columns.
const DEFAULT_SLOT_BASE: i64 = 2 + 2 * INDEXES_PER_TABLE_MAX as i64;
/// Foreign keys take the slots after the defaults, by their place among
/// the table's keys.
const FOREIGN_KEY_SLOT_BASE: i64 = DEFAULT_SLOT_BASE + 1_600;
/// CHECK constraints take the slots after the foreign keys'.
const CHECK_SLOT_BASE: i64 = FOREIGN_KEY_SLOT_BASE + FOREIGN_KEYS_PER_TABLE_MAX as i64;
const _: () = assert!(CHECK_SLOT_BASE + CHECKS_PER_TABLE_MAX as i64 <= OIDS_PER_OBJECT);

/// A PostgreSQL object identifier, derived from a ciab object id.
///
/// Object `id` owns OIDs `16384 + id * OIDS_PER_OBJECT ..` up to the next
/// block. PostgreSQL's OIDs are 32-bit and wrap around; so do these, after
/// about a million objects have been created, as the catalogs type them
/// `integer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oid(pub i32);

impl Oid {
    fn slot(id: u64, slot: i64) -> Oid {
        debug_assert!((0..OIDS_PER_OBJECT).contains(&slot));
        let span = i64::from(i32::MAX) - OID_USER_BASE;
        let offset = (id as i64).wrapping_mul(OIDS_PER_OBJECT).wrapping_add(slot);
        Oid((OID_USER_BASE + offset.rem_euclid(span)) as i32)
    }

    pub fn object(id: u64) -> Oid {
        Oid::slot(id, 0)
    }

    fn row_type(id: u64) -> Oid {
        Oid::slot(id, 1)
    }

    pub fn index(table: u64, position: usize) -> Oid {
        assert!(position < INDEXES_PER_TABLE_MAX);
        Oid::slot(table, 2 + 2 * position as i64)
    }

    pub fn constraint(table: u64, position: usize) -> Oid {
        assert!(position < INDEXES_PER_TABLE_MAX);
        Oid::slot(table, 3 + 2 * position as i64)
    }

    pub fn foreign_key(table: u64, ordinal: usize) -> Oid {
        assert!(ordinal < FOREIGN_KEYS_PER_TABLE_MAX);
        Oid::slot(table, FOREIGN_KEY_SLOT_BASE + ordinal as i64)
    }

    pub fn check(table: u64, ordinal: usize) -> Oid {
        assert!(ordinal < CHECKS_PER_TABLE_MAX);
        Oid::slot(table, CHECK_SLOT_BASE + ordinal as i64)
    }

    fn default(table: u64, column: usize) -> Oid {
        Oid::slot(table, DEFAULT_SLOT_BASE + column as i64)
    }
}

/// PostgreSQL 15's built-in catalog rows, parsed once per process.
pub fn builtin_tables() -> DfResult<Arc<PgCatalogStaticTables>> {
    static TABLES: OnceLock<Arc<PgCatalogStaticTables>> = OnceLock::new();
    if let Some(t) = TABLES.get() {
        return Ok(t.clone());
    }
    let tables = Arc::new(PgCatalogStaticTables::try_new()?);
    Ok(TABLES.get_or_init(|| tables).clone())
}

/// One relation of the pinned catalog, as `pg_class` sees it.
pub struct Relation<'a> {
    pub oid: Oid,
    pub schema: &'a str,
    pub schema_oid: Oid,
    pub name: &'a str,
    pub kind: RelationKind<'a>,
}

pub enum RelationKind<'a> {
    Table(&'a TableDef),
    View {
        id: u64,
        sql: &'a str,
    },
    Index {
        table: &'a TableDef,
        table_name: &'a str,
        position: usize,
    },
    Sequence(&'a SequenceDef),
}

/// Every schema of `database` with its OID, the built-in ones first.
pub fn schemas(state: &DbState, database: &str) -> Vec<(String, Oid)> {
    let mut out = vec![
        (PG_CATALOG.to_string(), Oid(PG_CATALOG_OID)),
        (INFORMATION_SCHEMA.to_string(), Oid(INFORMATION_SCHEMA_OID)),
    ];
    if let Some(db) = state.catalog.databases.get(database) {
        out.extend(
            db.schemas
                .iter()
                .map(|(n, s)| (n.clone(), Oid::object(s.id))),
        );
    }
    out
}

/// Every user relation of `database`: tables, views and indexes.
pub fn relations<'a>(state: &'a DbState, database: &str) -> Vec<Relation<'a>> {
    let mut out = Vec::new();
    let Some(db) = state.catalog.databases.get(database) else {
        return out;
    };
    for (schema_name, schema) in &db.schemas {
        let schema_oid = Oid::object(schema.id);
        for (name, table) in &schema.tables {
            out.push(Relation {
                oid: Oid::object(table.id.0),
                schema: schema_name,
                schema_oid,
                name,
                kind: RelationKind::Table(table),
            });
            for (position, index) in table.indexes.iter().enumerate() {
                out.push(Relation {
                    oid: Oid::index(table.id.0, position),
                    schema: schema_name,
                    schema_oid,
                    name: &index.name,
                    kind: RelationKind::Index {
                        table,
                        table_name: name,
                        position,
                    },
                });
            }
        }
        for (name, sequence) in &schema.sequences {
            out.push(Relation {
                oid: Oid::object(sequence.id),
                schema: schema_name,
                schema_oid,
                name,
                kind: RelationKind::Sequence(sequence),
            });
        }
        for (name, view) in &schema.views {
            out.push(Relation {
                oid: Oid::object(view.id),
                schema: schema_name,
                schema_oid,
                name,
                kind: RelationKind::View {
                    id: view.id,
                    sql: &view.def.sql,
                },
            });
        }
    }
    out
}

/// A foreign key with both its tables, as the catalogs show it.
pub struct ForeignKey<'a> {
    pub def: &'a ForeignKeyDef,
    pub oid: Oid,
    pub schema: &'a str,
    pub schema_oid: Oid,
    pub table: &'a TableDef,
    pub parent_schema: &'a str,
    pub parent: &'a TableDef,
    pub parent_name: &'a str,
    /// The parent's unique index the key references, by position.
    pub index: usize,
}

impl ForeignKey<'_> {
    /// `FOREIGN KEY (a) REFERENCES p(id) ON DELETE CASCADE`, as
    /// `pg_get_constraintdef` prints it.
    pub fn definition(&self) -> String {
        let list = |columns: &[String]| {
            columns
                .iter()
                .map(|c| quote_ident(c))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let parent = if self.parent_schema == ciab_storage::DEFAULT_SCHEMA {
            quote_ident(self.parent_name).to_string()
        } else {
            format!(
                "{}.{}",
                quote_ident(self.parent_schema),
                quote_ident(self.parent_name)
            )
        };
        let mut out = format!(
            "FOREIGN KEY ({}) REFERENCES {parent}({})",
            list(&self.def.columns),
            list(&self.def.parent_columns)
        );
        for (clause, action) in [
            ("UPDATE", self.def.on_update),
            ("DELETE", self.def.on_delete),
        ] {
            if action != RefAction::NoAction {
                out.push_str(&format!(" ON {clause} {}", action.sql()));
            }
        }
        out
    }
}

/// The column numbers (from 1) of `columns` in `table`: a constraint's
/// `conkey`.
fn attnums(table: &TableDef, columns: &[String]) -> Vec<usize> {
    columns
        .iter()
        .filter_map(|c| table.column_index(c).map(|i| i + 1))
        .collect()
}

/// Table `id` of `db`: its schema's name and OID, its name, its definition.
fn table_in(
    db: &ciab_storage::catalog::DatabaseDef,
    id: TableId,
) -> Option<(&str, Oid, &str, &TableDef)> {
    db.schemas.iter().find_map(|(schema_name, schema)| {
        let (name, def) = schema.tables.iter().find(|(_, t)| t.id == id)?;
        Some((
            schema_name.as_str(),
            Oid::object(schema.id),
            name.as_str(),
            def,
        ))
    })
}

/// A CHECK constraint with its table, as the catalogs show it.
pub struct Check<'a> {
    pub def: &'a CheckDef,
    pub oid: Oid,
    pub schema_oid: Oid,
    pub table: &'a TableDef,
}

impl Check<'_> {
    /// `CHECK ((expr))`, as `pg_get_constraintdef` prints it (the
    /// condition as written, where PostgreSQL prints its parsed form).
    pub fn definition(&self) -> String {
        format!("CHECK {}", self.clause())
    }

    /// `((expr))`, as `information_schema.check_constraints` shows it.
    pub fn clause(&self) -> String {
        format!("(({}))", self.def.expr)
    }
}

/// The CHECK constraints of `database`.
pub fn checks<'a>(state: &'a DbState, database: &str) -> Vec<Check<'a>> {
    let Some(db) = state.catalog.databases.get(database) else {
        return Vec::new();
    };
    let mut ordinals: HashMap<TableId, usize> = HashMap::new();
    let mut out = Vec::new();
    for def in &db.checks {
        let ordinal = ordinals.entry(def.table).or_default();
        let Some((_, schema_oid, _, table)) = table_in(db, def.table) else {
            continue;
        };
        out.push(Check {
            def,
            oid: Oid::check(def.table.0, *ordinal),
            schema_oid,
            table,
        });
        *ordinal += 1;
    }
    out
}

/// The foreign keys of `database`.
pub fn foreign_keys<'a>(state: &'a DbState, database: &str) -> Vec<ForeignKey<'a>> {
    let Some(db) = state.catalog.databases.get(database) else {
        return Vec::new();
    };
    let mut ordinals: HashMap<TableId, usize> = HashMap::new();
    let mut out = Vec::new();
    for def in &db.foreign_keys {
        let ordinal = ordinals.entry(def.table).or_default();
        let (Some((schema, schema_oid, _, child)), Some((parent_schema, _, parent_name, parent))) =
            (table_in(db, def.table), table_in(db, def.parent))
        else {
            continue;
        };
        let index = parent
            .indexes
            .iter()
            .position(|i| {
                i.unique
                    && i.columns.len() == def.parent_columns.len()
                    && i.columns.iter().all(|c| def.parent_columns.contains(c))
            })
            .unwrap_or(0);
        out.push(ForeignKey {
            def,
            oid: Oid::foreign_key(def.table.0, *ordinal),
            schema,
            schema_oid,
            table: child,
            parent_schema,
            parent,
            parent_name,
            index,
        });
        *ordinal += 1;
    }
    out
}

/// `CREATE [UNIQUE] INDEX name ON schema.table USING btree (cols)`, as
/// `pg_get_indexdef` prints it.
pub fn index_definition(
    schema: &str,
    table: &TableDef,
    table_name: &str,
    position: usize,
) -> String {
    let index = &table.indexes[position];
    format!(
        "CREATE {}INDEX {} ON {}.{} USING btree ({})",
        if index.unique { "UNIQUE " } else { "" },
        quote_ident(&index.name),
        quote_ident(schema),
        quote_ident(table_name),
        index
            .columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The constraint an index backs, as `pg_get_constraintdef` prints it:
/// `PRIMARY KEY (a)` or `UNIQUE (b)`. Plain indexes back none.
pub fn constraint_definition(table: &TableDef, position: usize) -> Option<String> {
    let index = &table.indexes[position];
    let columns = index
        .columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    if index.primary {
        Some(format!("PRIMARY KEY ({columns})"))
    } else if index.unique {
        Some(format!("UNIQUE ({columns})"))
    } else {
        None
    }
}

/// Whether a column refuses NULL (`attnotnull`): declared NOT NULL, or in
/// the primary key, which implies it as in PostgreSQL.
pub fn not_null(table: &TableDef, column: &ColumnDef) -> bool {
    !column.nullable
        || table
            .primary_key()
            .is_some_and(|pk| pk.columns.contains(&column.name))
}

/// The `pg_catalog` schema of one session's catalog list.
#[derive(Debug)]
pub struct PgCatalog {
    list: Arc<CatalogList>,
    builtin: PgCatalogSchemaProvider<
        Arc<dyn datafusion::catalog::CatalogProviderList>,
        EmptyContextProvider,
    >,
}

/// The tables built here from ciab's catalog.
pub(crate) const DYNAMIC_TABLES: &[&str] = &[
    "pg_namespace",
    "pg_class",
    "pg_attribute",
    "pg_index",
    "pg_constraint",
    "pg_attrdef",
    "pg_database",
    "pg_tables",
    "pg_views",
    "pg_indexes",
    "pg_roles",
    "pg_settings",
    "pg_user",
    "pg_authid",
    "pg_policy",
    "pg_statistic_ext",
    "pg_publication_rel",
    "pg_locks",
    "pg_cursors",
];

impl PgCatalog {
    pub fn new(list: Arc<CatalogList>) -> DfResult<PgCatalog> {
        let builtin = PgCatalogSchemaProvider::try_new(
            list.clone() as Arc<dyn datafusion::catalog::CatalogProviderList>,
            builtin_tables()?,
            EmptyContextProvider,
        )?;
        Ok(PgCatalog { list, builtin })
    }
}

#[async_trait]
impl SchemaProvider for PgCatalog {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.builtin.table_names();
        names.extend(DYNAMIC_TABLES.iter().map(|s| s.to_string()));
        names.sort();
        names.dedup();
        names
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if let Some(name) = DYNAMIC_TABLES.iter().find(|n| **n == name) {
            return Ok(Some(Arc::new(DynamicTable {
                source: Source::PgCatalog,
                name,
                list: self.list.clone(),
                schema: dynamic_schema(name)?,
            })));
        }
        Ok(match self.builtin.build_table_by_name(name)? {
            Some(PgCatalogTable::Static(t)) => Some(builtin_rows(name, &t.schema(), t.data())?),
            Some(PgCatalogTable::Empty(t)) => Some(builtin_rows(name, &t.schema(), &[])?),
            Some(table) => Some(table.try_into_table_provider()?),
            None => None,
        })
    }

    fn table_exist(&self, name: &str) -> bool {
        DYNAMIC_TABLES.contains(&name) || self.builtin.table_exist(name)
    }
}

/// PostgreSQL's own rows of a built-in catalog table, with the columns the
/// crate's files mark as OIDs (held there as int4) as [`OID_TYPE`].
/// Converted once per process.
fn builtin_rows(
    name: &str,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> DfResult<Arc<dyn TableProvider>> {
    type Converted = Arc<(SchemaRef, Vec<RecordBatch>)>;
    static CONVERTED: OnceLock<Mutex<HashMap<String, Converted>>> = OnceLock::new();
    let mut converted = CONVERTED
        .get_or_init(Default::default)
        .lock()
        .expect("no panic while holding the lock");
    let rows = match converted.get(name) {
        Some(rows) => rows.clone(),
        None => {
            let rows = Arc::new(oids_typed(schema, batches)?);
            converted.insert(name.to_string(), rows.clone());
            rows
        }
    };
    let (schema, batches) = rows.as_ref();
    Ok(Arc::new(MemTable::try_new(
        schema.clone(),
        vec![batches.clone()],
    )?))
}

/// `batches` with their OID columns cast to [`OID_TYPE`].
fn oids_typed(
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> DfResult<(SchemaRef, Vec<RecordBatch>)> {
    let is_oid = |f: &Field| {
        f.data_type() == &DataType::Int32
            && f.metadata()
                .get(oid_field::OID_ALIAS_KEY)
                .map(String::as_str)
                == Some(oid_field::kind::OID)
    };
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match is_oid(f) {
            true => Field::new(f.name(), OID_TYPE, f.is_nullable()),
            false => f.as_ref().clone(),
        })
        .collect();
    let target = Arc::new(ArrowSchema::new(fields));
    let batches = batches
        .iter()
        .map(|batch| {
            let columns = batch
                .columns()
                .iter()
                .zip(target.fields())
                .map(|(column, field)| cast(column, field.data_type()))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(RecordBatch::try_new(target.clone(), columns)?)
        })
        .collect::<DfResult<Vec<_>>>()?;
    Ok((target, batches))
}

/// A schema of views computed from the pinned state when scanned:
/// `information_schema` and `ciab`.
#[derive(Debug)]
pub(crate) struct ViewSchema {
    pub source: Source,
    pub views: &'static [&'static str],
    /// A view's columns, by its name.
    pub columns: fn(&str) -> SchemaRef,
    pub list: Arc<CatalogList>,
}

#[async_trait]
impl SchemaProvider for ViewSchema {
    fn table_names(&self) -> Vec<String> {
        self.views.iter().map(|v| v.to_string()).collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let Some(name) = self.views.iter().find(|v| **v == name) else {
            return Ok(None);
        };
        Ok(Some(Arc::new(DynamicTable {
            source: self.source,
            name,
            list: self.list.clone(),
            schema: (self.columns)(name),
        })))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.views.contains(&name)
    }
}

/// The schema a [`DynamicTable`] belongs to, which says how to fill it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source {
    PgCatalog,
    InformationSchema,
    System,
}

/// A catalog table computed from the pinned state when a query scans it.
#[derive(Debug)]
pub(crate) struct DynamicTable {
    pub source: Source,
    pub name: &'static str,
    pub list: Arc<CatalogList>,
    pub schema: SchemaRef,
}

#[async_trait]
impl TableProvider for DynamicTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let mut rows = Rows::new(self.schema.clone());
        let pinned = self.list.state();
        let database = self.list.database();
        let facts = state
            .config_options()
            .extensions
            .get::<SessionFacts>()
            .cloned()
            .unwrap_or_default();
        match self.source {
            Source::PgCatalog => {
                fill(self.name, &mut rows, &pinned, &database, &facts, &self.list).await?
            }
            Source::InformationSchema => {
                crate::information_schema::fill(
                    self.name,
                    &mut rows,
                    &pinned,
                    &database,
                    &facts.user,
                    &self.list,
                )
                .await?
            }
            Source::System => {
                crate::system::fill(self.name, &mut rows, &pinned, &database, &self.list.cluster)?
            }
        }
        let table = MemTable::try_new(self.schema.clone(), vec![vec![rows.finish()?]])?;
        table.scan(state, projection, filters, limit).await
    }
}

/// Columns of a catalog table. Every column is nullable: a value a row does
/// not give is NULL where PostgreSQL's column may be NULL, and the type's
/// zero value (false, 0, '') where it may not, as [`Rows`] fills it.
fn dynamic_schema(name: &str) -> DfResult<SchemaRef> {
    use DataType::*;
    let list = |t: DataType| List(Arc::new(Field::new_list_field(t, true)));
    let cols: Vec<(&str, DataType)> = match name {
        "pg_policy" => vec![
            ("oid", OID_TYPE),
            ("polname", Utf8),
            ("polrelid", OID_TYPE),
            ("polcmd", Utf8),
            ("polpermissive", Boolean),
            ("polroles", list(OID_TYPE)),
            ("polqual", Utf8),
            ("polwithcheck", Utf8),
        ],
        "pg_statistic_ext" => vec![
            ("oid", OID_TYPE),
            ("stxrelid", OID_TYPE),
            ("stxname", Utf8),
            ("stxnamespace", OID_TYPE),
            ("stxowner", OID_TYPE),
            ("stxstattarget", Int32),
            ("stxkeys", list(Int16)),
            ("stxkind", list(Utf8)),
            ("stxexprs", Utf8),
        ],
        "pg_publication_rel" => vec![
            ("oid", OID_TYPE),
            ("prpubid", OID_TYPE),
            ("prrelid", OID_TYPE),
            ("prqual", Utf8),
            ("prattrs", list(Int16)),
        ],
        "pg_namespace" => vec![
            ("oid", OID_TYPE),
            ("nspname", Utf8),
            ("nspowner", OID_TYPE),
            ("nspacl", list(Utf8)),
        ],
        "pg_class" => vec![
            ("oid", OID_TYPE),
            ("relname", Utf8),
            ("relnamespace", OID_TYPE),
            ("reltype", OID_TYPE),
            ("reloftype", OID_TYPE),
            ("relowner", OID_TYPE),
            ("relam", OID_TYPE),
            ("relfilenode", OID_TYPE),
            ("reltablespace", OID_TYPE),
            ("relpages", Int32),
            ("reltuples", Float32),
            ("relallvisible", Int32),
            ("reltoastrelid", OID_TYPE),
            ("relhasindex", Boolean),
            ("relisshared", Boolean),
            ("relpersistence", Utf8),
            ("relkind", Utf8),
            ("relnatts", Int16),
            ("relchecks", Int16),
            ("relhasrules", Boolean),
            ("relhastriggers", Boolean),
            ("relhassubclass", Boolean),
            ("relrowsecurity", Boolean),
            ("relforcerowsecurity", Boolean),
            ("relispopulated", Boolean),
            ("relreplident", Utf8),
            ("relispartition", Boolean),
            ("relrewrite", OID_TYPE),
            ("relfrozenxid", Int32),
            ("relminmxid", Int32),
            ("relacl", list(Utf8)),
            ("reloptions", list(Utf8)),
            ("relpartbound", Utf8),
        ],
        "pg_attribute" => vec![
            ("attrelid", OID_TYPE),
            ("attname", Utf8),
            ("atttypid", OID_TYPE),
            ("attstattarget", Int32),
            ("attlen", Int16),
            ("attnum", Int16),
            ("attndims", Int32),
            ("attcacheoff", Int32),
            ("atttypmod", Int32),
            ("attbyval", Boolean),
            ("attalign", Utf8),
            ("attstorage", Utf8),
            ("attcompression", Utf8),
            ("attnotnull", Boolean),
            ("atthasdef", Boolean),
            ("atthasmissing", Boolean),
            ("attidentity", Utf8),
            ("attgenerated", Utf8),
            ("attisdropped", Boolean),
            ("attislocal", Boolean),
            ("attinhcount", Int32),
            ("attcollation", OID_TYPE),
            ("attacl", list(Utf8)),
            ("attoptions", list(Utf8)),
            ("attfdwoptions", list(Utf8)),
            ("attmissingval", list(Utf8)),
        ],
        "pg_index" => vec![
            ("indexrelid", OID_TYPE),
            ("indrelid", OID_TYPE),
            ("indnatts", Int16),
            ("indnkeyatts", Int16),
            ("indisunique", Boolean),
            ("indnullsnotdistinct", Boolean),
            ("indisprimary", Boolean),
            ("indisexclusion", Boolean),
            ("indimmediate", Boolean),
            ("indisclustered", Boolean),
            ("indisvalid", Boolean),
            ("indcheckxmin", Boolean),
            ("indisready", Boolean),
            ("indislive", Boolean),
            ("indisreplident", Boolean),
            ("indkey", list(Int16)),
            ("indcollation", list(OID_TYPE)),
            ("indclass", list(OID_TYPE)),
            ("indoption", list(Int16)),
            ("indexprs", Utf8),
            ("indpred", Utf8),
        ],
        "pg_constraint" => vec![
            ("oid", OID_TYPE),
            ("conname", Utf8),
            ("connamespace", OID_TYPE),
            ("contype", Utf8),
            ("condeferrable", Boolean),
            ("condeferred", Boolean),
            ("convalidated", Boolean),
            ("conrelid", OID_TYPE),
            ("contypid", OID_TYPE),
            ("conindid", OID_TYPE),
            ("conparentid", OID_TYPE),
            ("confrelid", OID_TYPE),
            ("confupdtype", Utf8),
            ("confdeltype", Utf8),
            ("confmatchtype", Utf8),
            ("conislocal", Boolean),
            ("coninhcount", Int32),
            ("connoinherit", Boolean),
            ("conkey", list(Int16)),
            ("confkey", list(Int16)),
            ("conpfeqop", list(OID_TYPE)),
            ("conppeqop", list(OID_TYPE)),
            ("conffeqop", list(OID_TYPE)),
            ("confdelsetcols", list(Int16)),
            ("conexclop", list(OID_TYPE)),
            ("conbin", Utf8),
        ],
        "pg_attrdef" => vec![
            ("oid", OID_TYPE),
            ("adrelid", OID_TYPE),
            ("adnum", Int16),
            ("adbin", Utf8),
        ],
        "pg_cursors" => vec![
            ("name", Utf8),
            ("statement", Utf8),
            ("is_holdable", Boolean),
            ("is_binary", Boolean),
            ("is_scrollable", Boolean),
            ("creation_time", timestamptz()),
        ],
        "pg_locks" => vec![
            ("locktype", Utf8),
            ("database", OID_TYPE),
            ("relation", OID_TYPE),
            ("page", Int32),
            ("tuple", Int16),
            ("virtualxid", Utf8),
            ("transactionid", Int32),
            ("classid", OID_TYPE),
            ("objid", OID_TYPE),
            ("objsubid", Int16),
            ("virtualtransaction", Utf8),
            ("pid", Int32),
            ("mode", Utf8),
            ("granted", Boolean),
            ("fastpath", Boolean),
            ("waitstart", timestamptz()),
        ],
        "pg_database" => vec![
            ("oid", OID_TYPE),
            ("datname", Utf8),
            ("datdba", OID_TYPE),
            ("encoding", Int32),
            ("datlocprovider", Utf8),
            ("datistemplate", Boolean),
            ("datallowconn", Boolean),
            ("datconnlimit", Int32),
            ("datfrozenxid", Int32),
            ("datminmxid", Int32),
            ("dattablespace", OID_TYPE),
            ("datcollate", Utf8),
            ("datctype", Utf8),
            ("daticulocale", Utf8),
            ("datcollversion", Utf8),
            ("datacl", list(Utf8)),
        ],
        "pg_tables" => vec![
            ("schemaname", Utf8),
            ("tablename", Utf8),
            ("tableowner", Utf8),
            ("tablespace", Utf8),
            ("hasindexes", Boolean),
            ("hasrules", Boolean),
            ("hastriggers", Boolean),
            ("rowsecurity", Boolean),
        ],
        "pg_views" => vec![
            ("schemaname", Utf8),
            ("viewname", Utf8),
            ("viewowner", Utf8),
            ("definition", Utf8),
        ],
        "pg_indexes" => vec![
            ("schemaname", Utf8),
            ("tablename", Utf8),
            ("indexname", Utf8),
            ("tablespace", Utf8),
            ("indexdef", Utf8),
        ],
        "pg_settings" => vec![
            ("name", Utf8),
            ("setting", Utf8),
            ("unit", Utf8),
            ("category", Utf8),
            ("short_desc", Utf8),
            ("extra_desc", Utf8),
            ("context", Utf8),
            ("vartype", Utf8),
            ("source", Utf8),
            ("min_val", Utf8),
            ("max_val", Utf8),
            ("enumvals", list(Utf8)),
            ("boot_val", Utf8),
            ("reset_val", Utf8),
            ("sourcefile", Utf8),
            ("sourceline", Int32),
            ("pending_restart", Boolean),
        ],
        "pg_roles" | "pg_authid" | "pg_user" => {
            let mut cols = vec![
                ("oid", OID_TYPE),
                ("rolname", Utf8),
                ("rolsuper", Boolean),
                ("rolinherit", Boolean),
                ("rolcreaterole", Boolean),
                ("rolcreatedb", Boolean),
                ("rolcanlogin", Boolean),
                ("rolreplication", Boolean),
                ("rolconnlimit", Int32),
                ("rolpassword", Utf8),
                (
                    "rolvaliduntil",
                    Timestamp(
                        datafusion::arrow::datatypes::TimeUnit::Microsecond,
                        Some("UTC".into()),
                    ),
                ),
                ("rolbypassrls", Boolean),
                ("rolconfig", list(Utf8)),
            ];
            if name == "pg_user" {
                cols = vec![
                    ("usename", Utf8),
                    ("usesysid", OID_TYPE),
                    ("usecreatedb", Boolean),
                    ("usesuper", Boolean),
                    ("userepl", Boolean),
                    ("usebypassrls", Boolean),
                    ("passwd", Utf8),
                    (
                        "valuntil",
                        Timestamp(
                            datafusion::arrow::datatypes::TimeUnit::Microsecond,
                            Some("UTC".into()),
                        ),
                    ),
                    ("useconfig", list(Utf8)),
                ];
            }
            cols
        }
        other => {
            return Err(DataFusionError::Internal(format!(
                "no schema for catalog table {other}"
            )));
        }
    };
    Ok(Arc::new(ArrowSchema::new(
        cols.into_iter()
            .map(|(n, t)| {
                let field = Field::new(n, t, true);
                match vector_type(name, n) {
                    Some(tag) => field.with_metadata(
                        [(
                            ciab_storage::PG_TYPE_METADATA_KEY.to_string(),
                            tag.to_string(),
                        )]
                        .into(),
                    ),
                    None => field,
                }
            })
            .collect::<Vec<_>>(),
    )))
}

/// PostgreSQL's vector types (`int2vector`, `oidvector`) among catalog
/// columns: arrays that print as space-separated numbers, which clients
/// (SQLAlchemy's index reflection) parse as such.
fn vector_type(table: &str, column: &str) -> Option<&'static str> {
    match (table, column) {
        ("pg_index", "indkey" | "indoption") => Some("int2vector"),
        ("pg_index", "indclass" | "indcollation") => Some("oidvector"),
        _ => None,
    }
}

/// Rows of a catalog table, given column by name.
pub(crate) struct Rows {
    schema: SchemaRef,
    columns: Vec<Vec<ScalarValue>>,
}

impl Rows {
    fn new(schema: SchemaRef) -> Rows {
        let columns = vec![Vec::new(); schema.fields().len()];
        Rows { schema, columns }
    }

    /// Adds a row. Columns not named get their type's zero value (false, 0,
    /// ''), or NULL for lists, as PostgreSQL shows for objects without them.
    pub fn push(&mut self, values: &[(&str, ScalarValue)]) -> DfResult<()> {
        self.push_with(values, zero)
    }

    /// Adds a row whose columns not named are NULL.
    pub fn push_or_null(&mut self, values: &[(&str, ScalarValue)]) -> DfResult<()> {
        self.push_with(values, |ty| ScalarValue::try_from(ty))
    }

    fn push_with(
        &mut self,
        values: &[(&str, ScalarValue)],
        missing: fn(&DataType) -> DfResult<ScalarValue>,
    ) -> DfResult<()> {
        for (name, _) in values {
            assert!(
                self.schema.index_of(name).is_ok(),
                "catalog column {name} is not in the table"
            );
        }
        for (i, field) in self.schema.fields().iter().enumerate() {
            let value = match values.iter().find(|(n, _)| n == field.name()) {
                Some((_, v)) => v.cast_to(field.data_type())?,
                None => missing(field.data_type())?,
            };
            self.columns[i].push(value);
        }
        Ok(())
    }

    fn finish(self) -> DfResult<RecordBatch> {
        let arrays = self
            .columns
            .into_iter()
            .zip(self.schema.fields())
            .map(|(values, field)| {
                if values.is_empty() {
                    Ok(datafusion::arrow::array::new_empty_array(field.data_type()))
                } else {
                    ScalarValue::iter_to_array(values)
                }
            })
            .collect::<DfResult<Vec<ArrayRef>>>()?;
        Ok(RecordBatch::try_new(self.schema, arrays)?)
    }
}

fn zero(ty: &DataType) -> DfResult<ScalarValue> {
    Ok(match ty {
        DataType::Utf8 => ScalarValue::Utf8(Some(String::new())),
        DataType::Boolean => ScalarValue::Boolean(Some(false)),
        DataType::Int16 | DataType::Int32 | DataType::Float32 => ScalarValue::new_zero(ty)?,
        oid if *oid == OID_TYPE => ScalarValue::new_zero(ty)?,
        other => ScalarValue::try_from(other)?,
    })
}

/// `timestamptz`, as Arrow holds it.
fn timestamptz() -> DataType {
    DataType::Timestamp(
        datafusion::arrow::datatypes::TimeUnit::Microsecond,
        Some("UTC".into()),
    )
}

pub(crate) fn s(v: &str) -> ScalarValue {
    ScalarValue::Utf8(Some(v.to_string()))
}
pub(crate) fn i32v(v: i32) -> ScalarValue {
    ScalarValue::Int32(Some(v))
}
fn i16v(v: usize) -> ScalarValue {
    ScalarValue::Int16(Some(v as i16))
}
fn b(v: bool) -> ScalarValue {
    ScalarValue::Boolean(Some(v))
}
fn i16_list(v: impl IntoIterator<Item = usize>) -> ScalarValue {
    let values: Vec<ScalarValue> = v.into_iter().map(i16v).collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Int16))
}
fn i32_list(v: impl IntoIterator<Item = i32>) -> ScalarValue {
    let values: Vec<ScalarValue> = v.into_iter().map(i32v).collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Int32))
}

/// `attlen`, `attbyval` and `attalign` of a type, as `pg_type` has them.
fn storage_of(ty: &PgType) -> (i16, bool, &'static str) {
    match ty {
        PgType::Bool => (1, true, "c"),
        PgType::Int2 => (2, true, "s"),
        PgType::Int4 | PgType::Float4 | PgType::Date => (4, true, "i"),
        PgType::Int8 | PgType::Float8 | PgType::Time | PgType::Timestamp | PgType::Timestamptz => {
            (8, true, "d")
        }
        PgType::Interval => (16, false, "d"),
        PgType::Uuid => (16, false, "c"),
        PgType::Numeric { .. } => (-1, false, "i"),
        PgType::Text
        | PgType::Varchar(_)
        | PgType::Bpchar(_)
        | PgType::Bytea
        | PgType::Json
        | PgType::Jsonb => (-1, false, "i"),
        // Arrays are varlena, aligned as their widest element needs.
        PgType::Array(element) => match storage_of(element).2 {
            "d" => (-1, false, "d"),
            _ => (-1, false, "i"),
        },
    }
}

/// `typstorage` of a type: how PostgreSQL would TOAST its values.
fn storage_strategy(ty: &PgType) -> &'static str {
    match ty {
        PgType::Numeric { .. } => "m",
        PgType::Text
        | PgType::Varchar(_)
        | PgType::Bpchar(_)
        | PgType::Bytea
        | PgType::Json
        | PgType::Jsonb
        | PgType::Array(_) => "x",
        _ => "p",
    }
}

/// Whether a column of this type is collatable: text, or an array of it.
fn is_text(ty: &PgType) -> bool {
    match ty {
        PgType::Array(element) => is_text(element),
        ty => matches!(ty, PgType::Text | PgType::Varchar(_) | PgType::Bpchar(_)),
    }
}

/// A time-series table's options, as `pg_class.reloptions` holds storage
/// parameters; NULL for everything else.
fn reloptions(kind: &RelationKind) -> ScalarValue {
    let options = match kind {
        RelationKind::Table(t) => t.time_series.as_ref().map(crate::time_series::reloptions),
        _ => None,
    };
    match options {
        Some(options) => {
            let values: Vec<ScalarValue> = options.iter().map(|o| s(o)).collect();
            ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Utf8))
        }
        None => ScalarValue::new_null_list(DataType::Utf8, true, 1),
    }
}

fn attribute(
    relid: Oid,
    num: usize,
    name: &str,
    ty: &PgType,
    not_null: bool,
    has_default: bool,
) -> Vec<(&'static str, ScalarValue)> {
    let (len, byval, align) = storage_of(ty);
    vec![
        ("attrelid", i32v(relid.0)),
        ("attname", s(name)),
        ("atttypid", i32v(ty.oid() as i32)),
        ("attstattarget", i32v(-1)),
        ("attlen", ScalarValue::Int16(Some(len))),
        ("attnum", i16v(num)),
        ("attcacheoff", i32v(-1)),
        ("atttypmod", i32v(ty.typmod())),
        ("attbyval", b(byval)),
        ("attalign", s(align)),
        ("attstorage", s(storage_strategy(ty))),
        ("attnotnull", b(not_null)),
        ("atthasdef", b(has_default)),
        ("attndims", i32v(i32::from(matches!(ty, PgType::Array(_))))),
        ("attislocal", b(true)),
        (
            "attcollation",
            i32v(if is_text(ty) {
                DEFAULT_COLLATION_OID
            } else {
                0
            }),
        ),
    ]
}

async fn fill(
    name: &str,
    rows: &mut Rows,
    state: &DbState,
    database: &str,
    facts: &SessionFacts,
    list: &Arc<CatalogList>,
) -> DfResult<()> {
    let user = facts.user.as_str();
    match name {
        // No row-level security, extended statistics or publications yet:
        // these are ciab's own only to give their array columns array types
        // (the built-in copies have them as text).
        "pg_policy" | "pg_statistic_ext" | "pg_publication_rel" => {}
        "pg_namespace" => {
            for (schema, oid) in schemas(state, database) {
                // As in PostgreSQL 15, whoever owns the database owns public.
                let owner = if schema == ciab_storage::DEFAULT_SCHEMA {
                    DATABASE_OWNER_OID
                } else {
                    OWNER_OID
                };
                rows.push(&[
                    ("oid", i32v(oid.0)),
                    ("nspname", s(&schema)),
                    ("nspowner", i32v(owner)),
                ])?;
            }
        }
        "pg_class" => {
            for r in relations(state, database) {
                let (kind, natts, has_index, am, replident) = match &r.kind {
                    RelationKind::Table(t) => (
                        "r",
                        t.columns.len(),
                        !t.indexes.is_empty(),
                        HEAP_AM_OID,
                        "d",
                    ),
                    RelationKind::View { .. } => ("v", 0, false, 0, "n"),
                    // PostgreSQL's sequences have three columns: last_value,
                    // log_cnt and is_called.
                    RelationKind::Sequence(_) => ("S", 3, false, 0, "n"),
                    RelationKind::Index {
                        table, position, ..
                    } => (
                        "i",
                        table.indexes[*position].columns.len(),
                        false,
                        BTREE_AM_OID,
                        "n",
                    ),
                };
                let row_type = match &r.kind {
                    RelationKind::Table(t) => Oid::row_type(t.id.0).0,
                    RelationKind::View { id, .. } => Oid::row_type(*id).0,
                    RelationKind::Index { .. } | RelationKind::Sequence(_) => 0,
                };
                rows.push(&[
                    ("oid", i32v(r.oid.0)),
                    ("relname", s(r.name)),
                    ("relnamespace", i32v(r.schema_oid.0)),
                    ("reltype", i32v(row_type)),
                    ("relowner", i32v(OWNER_OID)),
                    ("relam", i32v(am)),
                    ("relfilenode", i32v(if kind == "v" { 0 } else { r.oid.0 })),
                    ("reltuples", ScalarValue::Float32(Some(-1.0))),
                    ("relhasindex", b(has_index)),
                    ("relpersistence", s("p")),
                    ("relkind", s(kind)),
                    ("relnatts", i16v(natts)),
                    ("relhasrules", b(kind == "v")),
                    ("relispopulated", b(true)),
                    ("relreplident", s(replident)),
                    ("relpartbound", ScalarValue::Utf8(None)),
                    ("reloptions", reloptions(&r.kind)),
                ])?;
            }
        }
        "pg_attribute" => {
            for r in relations(state, database) {
                match &r.kind {
                    RelationKind::Table(t) => {
                        for (i, c) in t.columns.iter().enumerate() {
                            rows.push(&attribute(
                                r.oid,
                                i + 1,
                                &c.name,
                                &c.ty,
                                not_null(t, c),
                                c.default.is_some(),
                            ))?;
                        }
                    }
                    RelationKind::Index {
                        table, position, ..
                    } => {
                        for (i, column) in table.indexes[*position].columns.iter().enumerate() {
                            let Some(c) = table.columns.iter().find(|c| &c.name == column) else {
                                continue;
                            };
                            rows.push(&attribute(r.oid, i + 1, column, &c.ty, false, false))?;
                        }
                    }
                    RelationKind::Sequence(_) => {}
                    RelationKind::View { .. } => {
                        // A view's columns are what its query returns now.
                        let Some(schema) = view_schema(list, r.schema, r.name).await else {
                            continue;
                        };
                        for (i, field) in schema.fields().iter().enumerate() {
                            let ty = PgType::of_field(field).unwrap_or(PgType::Text);
                            rows.push(&attribute(r.oid, i + 1, field.name(), &ty, false, false))?;
                        }
                    }
                }
            }
        }
        "pg_index" => {
            for r in relations(state, database) {
                let RelationKind::Index {
                    table, position, ..
                } = &r.kind
                else {
                    continue;
                };
                let index = &table.indexes[*position];
                let keys: Vec<usize> = index
                    .columns
                    .iter()
                    .filter_map(|c| table.column_index(c).map(|i| i + 1))
                    .collect();
                let n = keys.len();
                rows.push(&[
                    ("indexrelid", i32v(r.oid.0)),
                    ("indrelid", i32v(Oid::object(table.id.0).0)),
                    ("indnatts", i16v(n)),
                    ("indnkeyatts", i16v(n)),
                    ("indisunique", b(index.unique)),
                    ("indisprimary", b(index.primary)),
                    ("indimmediate", b(true)),
                    ("indisvalid", b(true)),
                    ("indisready", b(true)),
                    ("indislive", b(true)),
                    ("indkey", i16_list(keys.iter().copied())),
                    (
                        "indcollation",
                        i32_list(index.columns.iter().map(|c| {
                            let text = table
                                .columns
                                .iter()
                                .find(|d| &d.name == c)
                                .is_some_and(|d| is_text(&d.ty));
                            if text { DEFAULT_COLLATION_OID } else { 0 }
                        })),
                    ),
                    ("indclass", i32_list(std::iter::repeat_n(0, n))),
                    ("indoption", i16_list(std::iter::repeat_n(0, n))),
                    ("indexprs", ScalarValue::Utf8(None)),
                    ("indpred", ScalarValue::Utf8(None)),
                ])?;
            }
        }
        "pg_constraint" => {
            for r in relations(state, database) {
                let RelationKind::Index {
                    table, position, ..
                } = &r.kind
                else {
                    continue;
                };
                let index = &table.indexes[*position];
                if !index.unique {
                    continue;
                }
                let keys = attnums(table, &index.columns);
                rows.push(&[
                    ("oid", i32v(Oid::constraint(table.id.0, *position).0)),
                    ("conname", s(&index.name)),
                    ("connamespace", i32v(r.schema_oid.0)),
                    ("contype", s(if index.primary { "p" } else { "u" })),
                    ("convalidated", b(true)),
                    ("conrelid", i32v(Oid::object(table.id.0).0)),
                    ("conindid", i32v(r.oid.0)),
                    ("confupdtype", s(" ")),
                    ("confdeltype", s(" ")),
                    ("confmatchtype", s(" ")),
                    ("conislocal", b(true)),
                    ("connoinherit", b(true)),
                    ("conkey", i16_list(keys)),
                    ("conbin", ScalarValue::Utf8(None)),
                ])?;
            }
            for check in checks(state, database) {
                rows.push(&[
                    ("oid", i32v(check.oid.0)),
                    ("conname", s(&check.def.name)),
                    ("connamespace", i32v(check.schema_oid.0)),
                    ("contype", s("c")),
                    ("convalidated", b(true)),
                    ("conrelid", i32v(Oid::object(check.table.id.0).0)),
                    ("confupdtype", s(" ")),
                    ("confdeltype", s(" ")),
                    ("confmatchtype", s(" ")),
                    ("conislocal", b(true)),
                    ("connoinherit", b(false)),
                    ("conkey", i16_list(attnums(check.table, &check.def.columns))),
                    ("conbin", s(&check.def.expr)),
                ])?;
            }
            for key in foreign_keys(state, database) {
                let code = |action: RefAction| match action {
                    RefAction::NoAction => "a",
                    RefAction::Restrict => "r",
                    RefAction::Cascade => "c",
                    RefAction::SetNull => "n",
                };
                let columns = attnums(key.table, &key.def.columns);
                let parent_columns = attnums(key.parent, &key.def.parent_columns);
                rows.push(&[
                    ("oid", i32v(key.oid.0)),
                    ("conname", s(&key.def.name)),
                    ("connamespace", i32v(key.schema_oid.0)),
                    ("contype", s("f")),
                    ("convalidated", b(true)),
                    ("conrelid", i32v(Oid::object(key.table.id.0).0)),
                    ("conindid", i32v(Oid::index(key.parent.id.0, key.index).0)),
                    ("confrelid", i32v(Oid::object(key.parent.id.0).0)),
                    ("confupdtype", s(code(key.def.on_update))),
                    ("confdeltype", s(code(key.def.on_delete))),
                    ("confmatchtype", s("s")),
                    ("conislocal", b(true)),
                    ("connoinherit", b(true)),
                    ("conkey", i16_list(columns)),
                    ("confkey", i16_list(parent_columns)),
                    ("conbin", ScalarValue::Utf8(None)),
                ])?;
            }
        }
        "pg_attrdef" => {
            for r in relations(state, database) {
                let RelationKind::Table(t) = &r.kind else {
                    continue;
                };
                for (i, c) in t.columns.iter().enumerate() {
                    if let Some(default) = &c.default {
                        rows.push(&[
                            ("oid", i32v(Oid::default(t.id.0, i).0)),
                            ("adrelid", i32v(r.oid.0)),
                            ("adnum", i16v(i + 1)),
                            (
                                "adbin",
                                s(&crate::information_schema::shown_default(default, &c.ty)),
                            ),
                        ])?;
                    }
                }
            }
        }
        "pg_database" => {
            for (name, db) in &state.catalog.databases {
                rows.push(&[
                    ("oid", i32v(Oid::object(db.id).0)),
                    ("datname", s(name)),
                    ("datdba", i32v(OWNER_OID)),
                    ("encoding", i32v(UTF8_ENCODING)),
                    ("datlocprovider", s("c")),
                    ("datallowconn", b(true)),
                    ("datconnlimit", i32v(-1)),
                    ("datcollate", s("C.UTF-8")),
                    ("datctype", s("C.UTF-8")),
                    ("daticulocale", ScalarValue::Utf8(None)),
                    ("datcollversion", ScalarValue::Utf8(None)),
                ])?;
            }
        }
        // The advisory locks of every database, held (one row per
        // session and mode) and waited for, as in PostgreSQL.
        "pg_locks" => {
            let locks = &state.locks;
            let held: std::collections::BTreeSet<_> = locks
                .held()
                .map(|h| (h.key, h.hold.session, h.hold.mode, true))
                .collect();
            let waiting = locks.waiting().map(|w| (w.key, w.session, w.mode, false));
            for (key, session, mode, granted) in held.into_iter().chain(waiting) {
                let mode = match mode {
                    ciab_storage::LockMode::Exclusive => "ExclusiveLock",
                    ciab_storage::LockMode::Shared => "ShareLock",
                };
                rows.push_or_null(&[
                    ("locktype", s("advisory")),
                    ("database", i32v(Oid::object(key.database).0)),
                    ("classid", ScalarValue::Int64(Some(key.classid.into()))),
                    ("objid", ScalarValue::Int64(Some(key.objid.into()))),
                    ("objsubid", i16v(key.objsubid.into())),
                    ("pid", ScalarValue::Int32(i32::try_from(session.pid()).ok())),
                    ("mode", s(mode)),
                    ("granted", b(granted)),
                    ("fastpath", b(false)),
                ])?;
            }
        }
        // The session's open cursors (`cursors.rs`), as in PostgreSQL.
        "pg_cursors" => {
            for cursor in &facts.cursors {
                rows.push_or_null(&[
                    ("name", s(&cursor.name)),
                    ("statement", s(&cursor.statement)),
                    ("is_holdable", b(false)),
                    ("is_binary", b(false)),
                    ("is_scrollable", b(false)),
                    (
                        "creation_time",
                        ScalarValue::TimestampMicrosecond(
                            Some(cursor.created_us),
                            Some("UTC".into()),
                        ),
                    ),
                ])?;
            }
        }
        "pg_tables" => {
            for r in relations(state, database) {
                if let RelationKind::Table(t) = &r.kind {
                    rows.push(&[
                        ("schemaname", s(r.schema)),
                        ("tablename", s(r.name)),
                        ("tableowner", s(user)),
                        ("tablespace", ScalarValue::Utf8(None)),
                        ("hasindexes", b(!t.indexes.is_empty())),
                    ])?;
                }
            }
        }
        "pg_views" => {
            for r in relations(state, database) {
                if let RelationKind::View { sql, .. } = &r.kind {
                    rows.push(&[
                        ("schemaname", s(r.schema)),
                        ("viewname", s(r.name)),
                        ("viewowner", s(user)),
                        ("definition", s(sql)),
                    ])?;
                }
            }
        }
        "pg_indexes" => {
            for r in relations(state, database) {
                if let RelationKind::Index {
                    table,
                    table_name,
                    position,
                } = &r.kind
                {
                    rows.push(&[
                        ("schemaname", s(r.schema)),
                        ("tablename", s(table_name)),
                        ("indexname", s(r.name)),
                        ("tablespace", ScalarValue::Utf8(None)),
                        (
                            "indexdef",
                            s(&index_definition(r.schema, table, table_name, *position)),
                        ),
                    ])?;
                }
            }
        }
        "pg_roles" | "pg_authid" => {
            rows.push(&[
                ("oid", i32v(OWNER_OID)),
                ("rolname", s(user)),
                ("rolsuper", b(true)),
                ("rolinherit", b(true)),
                ("rolcreaterole", b(true)),
                ("rolcreatedb", b(true)),
                ("rolcanlogin", b(true)),
                ("rolreplication", b(true)),
                ("rolconnlimit", i32v(-1)),
                ("rolpassword", ScalarValue::Utf8(None)),
                ("rolbypassrls", b(true)),
            ])?;
        }
        "pg_settings" => {
            for setting in SETTINGS {
                let name = setting.name.to_ascii_lowercase();
                let system = crate::settings::system(state, &name).map(|s| s.value.as_str());
                // RESET goes back to the cluster's value (ALTER SYSTEM).
                let reset = system.unwrap_or(setting.default);
                let transaction = facts.transaction.iter().find(|(n, _)| *n == name);
                let (value, source) = match (facts.settings.get(&name), system) {
                    _ if let Some((_, v)) = transaction => (*v, "override"),
                    (Some(v), _) => (v.as_str(), "session"),
                    (None, Some(v)) => (v, "configuration file"),
                    (None, None) => (setting.default, "default"),
                };
                rows.push_or_null(&[
                    ("name", s(setting.name)),
                    ("setting", s(value)),
                    ("short_desc", s(setting.description)),
                    (
                        "context",
                        s(if setting.fixed { "internal" } else { "user" }),
                    ),
                    ("vartype", s(setting.vartype)),
                    ("source", s(source)),
                    ("boot_val", s(setting.default)),
                    ("reset_val", s(reset)),
                    ("pending_restart", b(false)),
                ])?;
            }
        }
        "pg_user" => {
            rows.push(&[
                ("usename", s(user)),
                ("usesysid", i32v(OWNER_OID)),
                ("usecreatedb", b(true)),
                ("usesuper", b(true)),
                ("userepl", b(true)),
                ("usebypassrls", b(true)),
                ("passwd", s("********")),
            ])?;
        }
        other => {
            return Err(DataFusionError::Internal(format!(
                "no rows for catalog table {other}"
            )));
        }
    }
    Ok(())
}

/// The columns a view returns, planned over the same pinned state. A view
/// that no longer plans (a table it reads was dropped) has none, as
/// PostgreSQL would have refused the drop.
pub(crate) async fn view_schema(
    list: &Arc<CatalogList>,
    schema: &str,
    name: &str,
) -> Option<SchemaRef> {
    use datafusion::catalog::CatalogProviderList;
    let catalog = list.catalog(&list.database())?;
    let provider = catalog.schema(schema)?;
    let table = provider.table(name).await.ok()??;
    Some(table.schema())
}
