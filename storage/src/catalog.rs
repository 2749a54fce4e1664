//! The catalog: databases, schemas, tables, views, indexes and property graphs.
//!
//! The catalog is plain data. Its types travel inside log entries, which
//! are encoded with bincode: no field may be skipped when serializing, or
//! the entry cannot be read back.
//!
//! The catalog is plain data. It is changed only by applying [`Command`]s in the
//! state machine, and it is written to the manifest as JSON so that a person can
//! read what the database holds with `cat`.
//!
//! [`Command`]: crate::Command

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

/// The database every node starts with, and the one clients get by default.
pub const DEFAULT_DATABASE: &str = "ciab";
/// The schema every database starts with.
pub const DEFAULT_SCHEMA: &str = "public";
/// The hidden column that gives each stored row its identity. Updates and
/// deletes name rows by it, so the log records exactly which rows changed.
pub const ROWID_COLUMN: &str = "__ciab_rowid";
/// Field metadata key carrying the PostgreSQL type of a column, so the wire
/// layer can announce `uuid` or `jsonb` where Arrow only knows `Utf8`.
pub const PG_TYPE_METADATA_KEY: &str = "ciab.pg_type";
/// Field metadata key carrying the `n` of `char(n)` and `varchar(n)`: what
/// a cast to them cuts at. ciab keeps `char(n)` values without trailing
/// blanks, which PostgreSQL's comparisons, `length` and casts to text ignore
/// anyway, and the wire layer pads them back to `n`.
pub const PG_CHAR_LENGTH_METADATA_KEY: &str = "ciab.char_length";
/// What follows an element type's tag in its array's field (`varchar[]`).
pub const ARRAY_TAG_SUFFIX: &str = "[]";
/// How many indexes a table may have. The PostgreSQL catalogs number each
/// index and its constraint within a fixed block of OIDs per table.
pub const INDEXES_PER_TABLE_MAX: usize = 200;
/// The most foreign keys one table may have (each takes one of the OIDs
/// the PostgreSQL catalogs give a table).
pub const FOREIGN_KEYS_PER_TABLE_MAX: usize = 24;
/// The most CHECK constraints one table may have (OIDs too).
pub const CHECKS_PER_TABLE_MAX: usize = 22;

/// Stable identity of a table: survives renames, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TableId(pub u64);

/// Identity of a stored row within its table. Assigned at apply time, in log
/// order, so every replica assigns the same ids.
pub type RowId = u64;

/// A PostgreSQL column type as the user declared it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PgType {
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// `numeric(p, s)`; unconstrained `numeric` is stored with
    /// [`NUMERIC_DEFAULT_PRECISION`] and [`NUMERIC_DEFAULT_SCALE`].
    Numeric {
        precision: Option<u8>,
        scale: Option<i8>,
    },
    Text,
    Varchar(Option<u32>),
    /// `char(n)`: blank-padded to n characters.
    Bpchar(u32),
    Bool,
    Bytea,
    Date,
    Time,
    Timestamp,
    Timestamptz,
    Interval,
    Uuid,
    Json,
    Jsonb,
    /// An array of the element type, which is never an array itself: as in
    /// PostgreSQL, `int[][]` is the same type as `int[]`. ciab holds arrays
    /// of one dimension (an Arrow list).
    Array(Box<PgType>),
}

pub const NUMERIC_DEFAULT_PRECISION: u8 = 38;
pub const NUMERIC_DEFAULT_SCALE: i8 = 10;

impl PgType {
    /// How values of this type are held in Arrow.
    pub fn arrow_type(&self) -> DataType {
        match self {
            PgType::Int2 => DataType::Int16,
            PgType::Int4 => DataType::Int32,
            PgType::Int8 => DataType::Int64,
            PgType::Float4 => DataType::Float32,
            PgType::Float8 => DataType::Float64,
            PgType::Numeric { precision, scale } => DataType::Decimal128(
                precision.unwrap_or(NUMERIC_DEFAULT_PRECISION),
                scale.unwrap_or(if precision.is_some() {
                    0
                } else {
                    NUMERIC_DEFAULT_SCALE
                }),
            ),
            PgType::Text
            | PgType::Varchar(_)
            | PgType::Bpchar(_)
            | PgType::Uuid
            | PgType::Json
            | PgType::Jsonb => DataType::Utf8,
            PgType::Bool => DataType::Boolean,
            PgType::Bytea => DataType::Binary,
            PgType::Date => DataType::Date32,
            PgType::Time => DataType::Time64(TimeUnit::Microsecond),
            PgType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            PgType::Timestamptz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            PgType::Interval => {
                DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::MonthDayNano)
            }
            // The element's tags go on the array's field (see
            // `PgType::field`): Arrow compares a list's element field,
            // metadata and all, where it checks a batch's types.
            PgType::Array(element) => {
                DataType::List(Arc::new(Field::new("item", element.arrow_type(), true)))
            }
        }
    }

    /// The array type of this element type (an array's own, as in
    /// PostgreSQL, where `int[][]` is `int[]`).
    pub fn array_of(element: PgType) -> PgType {
        match element {
            array @ PgType::Array(_) => array,
            element => PgType::Array(Box::new(element)),
        }
    }

    /// The type's name as PostgreSQL's `format_type` prints it.
    pub fn sql_name(&self) -> String {
        match self {
            PgType::Int2 => "smallint".into(),
            PgType::Int4 => "integer".into(),
            PgType::Int8 => "bigint".into(),
            PgType::Float4 => "real".into(),
            PgType::Float8 => "double precision".into(),
            PgType::Numeric {
                precision: Some(p),
                scale,
            } => format!("numeric({p},{})", scale.unwrap_or(0)),
            PgType::Numeric { .. } => "numeric".into(),
            PgType::Text => "text".into(),
            PgType::Varchar(Some(n)) => format!("character varying({n})"),
            PgType::Varchar(None) => "character varying".into(),
            PgType::Bpchar(n) => format!("character({n})"),
            PgType::Bool => "boolean".into(),
            PgType::Bytea => "bytea".into(),
            PgType::Date => "date".into(),
            PgType::Time => "time without time zone".into(),
            PgType::Timestamp => "timestamp without time zone".into(),
            PgType::Timestamptz => "timestamp with time zone".into(),
            PgType::Interval => "interval".into(),
            PgType::Uuid => "uuid".into(),
            PgType::Json => "json".into(),
            PgType::Jsonb => "jsonb".into(),
            PgType::Array(element) => format!("{}[]", element.sql_name()),
        }
    }

    /// The type's name in PostgreSQL's `pg_type` (`typname`): what psql
    /// shows as a column's name for `SELECT 1::int4`, and information_schema
    /// as `udt_name`.
    pub fn type_name(&self) -> &'static str {
        match self {
            PgType::Int2 => "int2",
            PgType::Int4 => "int4",
            PgType::Int8 => "int8",
            PgType::Float4 => "float4",
            PgType::Float8 => "float8",
            PgType::Numeric { .. } => "numeric",
            PgType::Text => "text",
            PgType::Varchar(_) => "varchar",
            PgType::Bpchar(_) => "bpchar",
            PgType::Bool => "bool",
            PgType::Bytea => "bytea",
            PgType::Date => "date",
            PgType::Time => "time",
            PgType::Timestamp => "timestamp",
            PgType::Timestamptz => "timestamptz",
            PgType::Interval => "interval",
            PgType::Uuid => "uuid",
            PgType::Json => "json",
            PgType::Jsonb => "jsonb",
            PgType::Array(element) => match element.type_name() {
                "int2" => "_int2",
                "int4" => "_int4",
                "int8" => "_int8",
                "float4" => "_float4",
                "float8" => "_float8",
                "numeric" => "_numeric",
                "text" => "_text",
                "varchar" => "_varchar",
                "bpchar" => "_bpchar",
                "bool" => "_bool",
                "bytea" => "_bytea",
                "date" => "_date",
                "time" => "_time",
                "timestamp" => "_timestamp",
                "timestamptz" => "_timestamptz",
                "interval" => "_interval",
                "uuid" => "_uuid",
                "json" => "_json",
                "jsonb" => "_jsonb",
                other => unreachable!("arrays hold no arrays: {other}"),
            },
        }
    }

    /// The type's OID in PostgreSQL's `pg_type`.
    pub fn oid(&self) -> u32 {
        match self {
            PgType::Bool => 16,
            PgType::Bytea => 17,
            PgType::Int8 => 20,
            PgType::Int2 => 21,
            PgType::Int4 => 23,
            PgType::Text => 25,
            PgType::Json => 114,
            PgType::Float4 => 700,
            PgType::Float8 => 701,
            PgType::Bpchar(_) => 1042,
            PgType::Varchar(_) => 1043,
            PgType::Date => 1082,
            PgType::Time => 1083,
            PgType::Timestamp => 1114,
            PgType::Timestamptz => 1184,
            PgType::Interval => 1186,
            PgType::Numeric { .. } => 1700,
            PgType::Uuid => 2950,
            PgType::Jsonb => 3802,
            PgType::Array(element) => match element.oid() {
                16 => 1000,
                17 => 1001,
                20 => 1016,
                21 => 1005,
                23 => 1007,
                25 => 1009,
                114 => 199,
                700 => 1021,
                701 => 1022,
                1042 => 1014,
                1043 => 1015,
                1082 => 1182,
                1083 => 1183,
                1114 => 1115,
                1184 => 1185,
                1186 => 1187,
                1700 => 1231,
                2950 => 2951,
                3802 => 3807,
                other => unreachable!("arrays hold no arrays: {other}"),
            },
        }
    }

    /// The element type's OID of an array type's OID, as `pg_type.typelem`
    /// has it; `None` for an OID that is not an array type's.
    pub fn element_oid(array_oid: u32) -> Option<u32> {
        PgType::all_elements()
            .into_iter()
            .find(|e| PgType::Array(Box::new(e.clone())).oid() == array_oid)
            .map(|e| e.oid())
    }

    /// One type of each OID that an array may hold.
    fn all_elements() -> Vec<PgType> {
        vec![
            PgType::Bool,
            PgType::Bytea,
            PgType::Int8,
            PgType::Int2,
            PgType::Int4,
            PgType::Text,
            PgType::Json,
            PgType::Float4,
            PgType::Float8,
            PgType::Bpchar(1),
            PgType::Varchar(None),
            PgType::Date,
            PgType::Time,
            PgType::Timestamp,
            PgType::Timestamptz,
            PgType::Interval,
            PgType::Numeric {
                precision: None,
                scale: None,
            },
            PgType::Uuid,
            PgType::Jsonb,
        ]
    }

    /// The type modifier PostgreSQL stores beside the OID (`atttypmod`):
    /// declared lengths and precisions, offset by 4 as PostgreSQL does;
    /// -1 for none.
    pub fn typmod(&self) -> i32 {
        const VARHDRSZ: i32 = 4;
        match self {
            // An array's modifier is its element's.
            PgType::Array(element) => element.typmod(),
            PgType::Varchar(Some(n)) | PgType::Bpchar(n) => *n as i32 + VARHDRSZ,
            PgType::Numeric {
                precision: Some(p),
                scale,
            } => ((i32::from(*p) << 16) | i32::from(scale.unwrap_or(0) as u8)) + VARHDRSZ,
            _ => -1,
        }
    }

    /// The type of a column whose Arrow field is `field` (a view's column,
    /// say): the inverse of [`PgType::arrow_type`] plus the wire tag.
    /// `None` for Arrow types no column type maps to.
    pub fn of_field(field: &Field) -> Option<PgType> {
        let tag = field
            .metadata()
            .get(PG_TYPE_METADATA_KEY)
            .map(String::as_str);
        Some(match (field.data_type(), tag) {
            (_, Some("varchar")) => PgType::Varchar(
                field
                    .metadata()
                    .get(PG_CHAR_LENGTH_METADATA_KEY)
                    .and_then(|n| n.parse().ok()),
            ),
            (_, Some("bpchar")) => match field.metadata().get(PG_CHAR_LENGTH_METADATA_KEY) {
                Some(n) => PgType::Bpchar(n.parse().ok()?),
                // `x::bpchar`: blank-padded text of no declared length.
                None => PgType::Text,
            },
            (_, Some("uuid")) => PgType::Uuid,
            (_, Some("json")) => PgType::Json,
            (_, Some("jsonb")) => PgType::Jsonb,
            (_, Some("numeric")) => PgType::Numeric {
                precision: None,
                scale: None,
            },
            (DataType::Int8 | DataType::Int16, _) => PgType::Int2,
            (DataType::Int32, _) => PgType::Int4,
            (DataType::Int64, _) => PgType::Int8,
            // An OID (the catalogs' `oid` columns): ciab stores no oid
            // columns, and a bigint holds every OID.
            (DataType::UInt32, _) => PgType::Int8,
            (DataType::Float32, _) => PgType::Float4,
            (DataType::Float64, _) => PgType::Float8,
            (DataType::Decimal128(p, s), _) => PgType::Numeric {
                precision: Some(*p),
                scale: Some(*s),
            },
            (DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View, _) => PgType::Text,
            (DataType::Boolean, _) => PgType::Bool,
            (DataType::Binary | DataType::LargeBinary | DataType::BinaryView, _) => PgType::Bytea,
            (DataType::Date32, _) => PgType::Date,
            (DataType::Time64(_), _) => PgType::Time,
            (DataType::Timestamp(_, None), _) => PgType::Timestamp,
            (DataType::Timestamp(_, Some(_)), _) => PgType::Timestamptz,
            (DataType::Interval(_), _) => PgType::Interval,
            (DataType::List(element) | DataType::LargeList(element), tag) => {
                // An array's field carries its element's tags, `[]` added.
                let element = match tag.and_then(|t| t.strip_suffix(ARRAY_TAG_SUFFIX)) {
                    Some(element_tag) => {
                        let mut metadata = field.metadata().clone();
                        metadata.insert(PG_TYPE_METADATA_KEY.into(), element_tag.into());
                        element.as_ref().clone().with_metadata(metadata)
                    }
                    None => element.as_ref().clone(),
                };
                match PgType::of_field(&element)? {
                    PgType::Array(_) => return None,
                    element => PgType::Array(Box::new(element)),
                }
            }
            _ => return None,
        })
    }

    /// A nullable field of this type: its Arrow type, and the metadata the
    /// wire layer reads (see [`PG_TYPE_METADATA_KEY`]).
    /// An array's field carries its element's tags with `[]` after the
    /// type's (`varchar[]`), so that rules for the element type's values
    /// never take the array for one of them.
    pub fn field(&self, name: &str) -> Field {
        let (element, suffix) = match self {
            PgType::Array(element) => (element.as_ref(), ARRAY_TAG_SUFFIX),
            scalar => (scalar, ""),
        };
        let mut metadata = std::collections::HashMap::new();
        if let Some(tag) = element.wire_tag() {
            metadata.insert(PG_TYPE_METADATA_KEY.to_string(), format!("{tag}{suffix}"));
        }
        if let PgType::Bpchar(n) | PgType::Varchar(Some(n)) = element {
            metadata.insert(PG_CHAR_LENGTH_METADATA_KEY.to_string(), n.to_string());
        }
        Field::new(name, self.arrow_type(), true).with_metadata(metadata)
    }

    /// Types whose Arrow form does not say what they are on the wire carry
    /// their PostgreSQL name in field metadata.
    fn wire_tag(&self) -> Option<&'static str> {
        match self {
            PgType::Varchar(_) => Some("varchar"),
            PgType::Bpchar(_) => Some("bpchar"),
            PgType::Uuid => Some("uuid"),
            PgType::Json => Some("json"),
            PgType::Jsonb => Some("jsonb"),
            PgType::Numeric {
                precision: None, ..
            } => Some("numeric"),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: PgType,
    pub nullable: bool,
    /// The DEFAULT expression as SQL text, evaluated by the planner at insert.
    pub default: Option<String>,
}

impl ColumnDef {
    /// The column's Arrow field. Always nullable: NOT NULL is the catalog's
    /// rule, checked where rows are written with PostgreSQL's error, so that
    /// query engines never refuse rows first with an error of their own.
    pub fn field(&self) -> Field {
        self.ty.field(&self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexDef {
    pub name: String,
    pub columns: Vec<String>,
    pub unique: bool,
    /// The index that backs the table's PRIMARY KEY.
    pub primary: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDef {
    pub id: TableId,
    pub columns: Vec<ColumnDef>,
    pub indexes: Vec<IndexDef>,
    /// Bumped by every ALTER TABLE, so a write planned against an older shape
    /// of the table is refused instead of applied to the wrong columns.
    pub version: u64,
    /// Set for a time-series table (`CREATE TABLE ... WITH (time_column
    /// = ...)`): its rows are kept in partitions by time.
    #[serde(default)]
    pub time_series: Option<TimeSeriesDef>,
}

/// How a time-series table splits its rows by time. Partition `p` holds
/// the rows whose time `t` (in microseconds since 1970, UTC) has
/// `p <= t < p + partition_interval_us`, `p` a multiple of the interval:
/// partitions line up with the epoch, as TimescaleDB's chunks do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeSeriesDef {
    /// A `timestamp`, `timestamptz` or `date` column, NOT NULL.
    pub time_column: String,
    pub partition_interval_us: i64,
    /// Partitions that end this long before now are dropped.
    pub retention_us: Option<i64>,
}

impl TimeSeriesDef {
    /// The start of the partition that holds time `t`.
    pub fn partition_of(&self, t_us: i64) -> i64 {
        debug_assert!(self.partition_interval_us > 0);
        t_us.div_euclid(self.partition_interval_us) * self.partition_interval_us
    }

    /// Where the partition starting at `start_us` ends (exclusive).
    pub fn partition_end(&self, start_us: i64) -> i64 {
        start_us.saturating_add(self.partition_interval_us)
    }

    /// With a retention: the time at or before which a partition must end
    /// to be dropped at `now_us`.
    pub fn retention_cutoff(&self, now_us: i64) -> Option<i64> {
        self.retention_us.map(|r| now_us.saturating_sub(r))
    }
}

impl TableDef {
    /// The schema users see.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns.iter().map(|c| c.field()).collect::<Vec<_>>(),
        ))
    }

    /// The schema of stored batches: the user columns and the row id last.
    pub fn stored_schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self.columns.iter().map(|c| c.field()).collect();
        fields.push(Field::new(ROWID_COLUMN, DataType::UInt64, false));
        Arc::new(Schema::new(fields))
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    pub fn primary_key(&self) -> Option<&IndexDef> {
        self.indexes.iter().find(|i| i.primary)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewDef {
    /// The view's query, as SQL text.
    pub sql: String,
    /// Column names given in `CREATE VIEW v (a, b)`, if any.
    pub columns: Vec<String>,
}

/// A view as the catalog holds it: its definition and its object id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredView {
    /// Numbered like tables (see [`Catalog::next_table_id`]); 0 in
    /// manifests written before views had ids, until [`Catalog::number_objects`].
    #[serde(default)]
    pub id: u64,
    #[serde(flatten)]
    pub def: ViewDef,
}

/// A property graph (SQL/PGQ, `CREATE PROPERTY GRAPH`): tables seen as
/// vertices and edges. The graph holds no data of its own; `GRAPH_TABLE`
/// reads it as joins of its element tables. Element tables are named by
/// id, so a renamed table stays in the graph, and a table a graph uses is
/// not dropped from under it (see [`Catalog::graphs_using`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphDef {
    pub vertices: Vec<ElementTable>,
    pub edges: Vec<EdgeTable>,
}

/// A vertex or edge table of a property graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ElementTable {
    /// The name patterns' labels and the graph's catalog know it by, unique
    /// within the graph: the table's name unless `AS alias` gave another.
    pub alias: String,
    pub table: TableId,
    /// Columns that identify an element: `KEY (...)`, or the primary key.
    pub key: Vec<String>,
    pub labels: Vec<GraphLabel>,
}

/// A label of an element table and the properties it exposes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphLabel {
    pub name: String,
    /// `None`: every column of the table, as it is when queried
    /// (`PROPERTIES ARE ALL COLUMNS`, the default).
    pub properties: Option<Vec<GraphProperty>>,
}

/// A property: a name and the SQL expression over the element table's
/// columns that gives its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphProperty {
    pub name: String,
    pub expr: String,
}

/// An edge table: an element table whose rows join two vertices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeTable {
    pub element: ElementTable,
    pub source: EdgeEnd,
    pub destination: EdgeEnd,
}

/// One end of an edge: the edge's columns that hold the key of a vertex
/// table's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeEnd {
    /// The vertex table's alias in the graph.
    pub vertex: String,
    /// Edge columns, in the order of `references`.
    pub columns: Vec<String>,
    /// Vertex columns.
    pub references: Vec<String>,
}

impl GraphDef {
    /// Every table the graph reads.
    pub fn tables(&self) -> impl Iterator<Item = TableId> + '_ {
        let vertices = self.vertices.iter().map(|v| v.table);
        vertices.chain(self.edges.iter().map(|e| e.element.table))
    }

    /// The columns of `table` the graph joins on (keys and edge ends):
    /// dropping one would break it.
    pub fn key_columns(&self, table: TableId) -> Vec<&str> {
        let mut columns = Vec::new();
        for v in self.vertices.iter().filter(|v| v.table == table) {
            columns.extend(v.key.iter().map(String::as_str));
        }
        for e in self.edges.iter().filter(|e| e.element.table == table) {
            columns.extend(e.element.key.iter().map(String::as_str));
            columns.extend(e.source.columns.iter().map(String::as_str));
            columns.extend(e.destination.columns.iter().map(String::as_str));
        }
        for e in &self.edges {
            for end in [&e.source, &e.destination] {
                if self
                    .vertices
                    .iter()
                    .any(|v| v.alias == end.vertex && v.table == table)
                {
                    columns.extend(end.references.iter().map(String::as_str));
                }
            }
        }
        columns
    }
}

/// A property graph as the catalog holds it: its definition and its object id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredGraph {
    pub id: u64,
    #[serde(flatten)]
    pub def: GraphDef,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SchemaDef {
    /// Object id, numbered like tables; 0 until numbered (see [`StoredView::id`]).
    #[serde(default)]
    pub id: u64,
    pub tables: BTreeMap<String, TableDef>,
    pub views: BTreeMap<String, StoredView>,
    #[serde(default)]
    pub sequences: BTreeMap<String, SequenceDef>,
    #[serde(default)]
    pub graphs: BTreeMap<String, StoredGraph>,
}

impl SchemaDef {
    pub fn has_relation(&self, name: &str) -> bool {
        self.tables.contains_key(name)
            || self.views.contains_key(name)
            || self.sequences.contains_key(name)
            || self.graphs.contains_key(name)
    }
}

/// A sequence: PostgreSQL's counter, behind `serial` columns and
/// `nextval()`. Its value moves outside transactions (a rolled-back block
/// keeps the numbers it drew, as in PostgreSQL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequenceDef {
    /// Numbered like tables; assigned at apply time.
    pub id: u64,
    /// smallint, integer or bigint: bounds `min` and `max` by default.
    #[serde(rename = "type")]
    pub ty: PgType,
    pub start: i64,
    pub increment: i64,
    pub min: i64,
    pub max: i64,
    /// The last value handed out or reserved for handing out (nodes draw
    /// values in blocks, so a restart may skip some, as in PostgreSQL).
    pub last_value: i64,
    /// False until the first value is drawn: the next one is then
    /// `last_value` itself, not one increment past it.
    pub is_called: bool,
    /// The column whose DEFAULT draws from the sequence (`serial`): the
    /// sequence is dropped with it.
    pub owner: Option<SequenceOwner>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceOwner {
    pub table: TableId,
    pub column: String,
}

impl SequenceDef {
    /// A sequence of `ty` counting up by one from 1, as `serial` makes.
    pub fn new(ty: PgType) -> Self {
        let max = match ty {
            PgType::Int2 => i64::from(i16::MAX),
            PgType::Int4 => i64::from(i32::MAX),
            _ => i64::MAX,
        };
        SequenceDef {
            id: 0,
            ty,
            start: 1,
            increment: 1,
            min: 1,
            max,
            last_value: 1,
            is_called: false,
            owner: None,
        }
    }

    /// What `nextval` says once the sequence `name` has no value left.
    pub fn exhausted(&self, name: &str) -> String {
        let (bound, value) = if self.increment > 0 {
            ("maximum", self.max)
        } else {
            ("minimum", self.min)
        };
        format!("nextval: reached {bound} value of sequence \"{name}\" ({value})")
    }

    /// The next `count` values, as (first, last), within the bounds: fewer
    /// than `count` near the end, none once it is reached.
    pub fn next_values(&self, count: u64) -> Option<(i64, i64)> {
        assert!(count > 0, "at least one value is drawn");
        assert!(self.increment != 0, "a sequence moves");
        let inc = i128::from(self.increment);
        let first = if self.is_called {
            i128::from(self.last_value) + inc
        } else {
            i128::from(self.last_value)
        };
        let in_bounds = |v: i128| v >= i128::from(self.min) && v <= i128::from(self.max);
        if !in_bounds(first) {
            return None;
        }
        let room = if inc > 0 {
            (i128::from(self.max) - first) / inc
        } else {
            (i128::from(self.min) - first) / inc
        };
        let steps = room.min(i128::from(count) - 1);
        let last = first + steps * inc;
        Some((first as i64, last as i64))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DatabaseDef {
    /// Object id, numbered like tables; 0 until numbered (see [`StoredView::id`]).
    #[serde(default)]
    pub id: u64,
    /// Counts the commands that changed this database's objects (see
    /// [`crate::Command::changes_catalog`]): a transaction block's DDL
    /// replays only onto the generation it was planned on.
    #[serde(default)]
    pub generation: u64,
    pub schemas: BTreeMap<String, SchemaDef>,
    /// The database's foreign keys, between tables of any of its schemas.
    #[serde(default)]
    pub foreign_keys: Vec<ForeignKeyDef>,
    /// The database's CHECK constraints.
    #[serde(default)]
    pub checks: Vec<CheckDef>,
}

/// A CHECK constraint: rows of `table` for which `expr` is false are
/// refused. `expr` is SQL over the table's columns, so the planner
/// evaluates it on the rows it writes; the state machine keeps it and
/// bumps the table's version when it comes, so that no write planned
/// without it applies after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckDef {
    pub name: String,
    pub table: TableId,
    pub expr: String,
    /// The columns `expr` names, in the order they appear.
    pub columns: Vec<String>,
}

/// What a foreign key does to the rows that reference a key that goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefAction {
    /// Refuse (PostgreSQL's default); checked once the command's changes
    /// are all made.
    NoAction,
    /// Refuse; ciab checks it where it checks NO ACTION (see
    /// `foreign_keys.rs`).
    Restrict,
    /// Delete the referencing rows too.
    Cascade,
    /// Set the referencing columns to NULL.
    SetNull,
}

impl RefAction {
    pub fn sql(self) -> &'static str {
        match self {
            RefAction::NoAction => "NO ACTION",
            RefAction::Restrict => "RESTRICT",
            RefAction::Cascade => "CASCADE",
            RefAction::SetNull => "SET NULL",
        }
    }
}

/// A foreign key as `ALTER TABLE ... ADD FOREIGN KEY` asks for it: tables
/// by name, resolved when the command applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForeignKeySpec {
    /// None: PostgreSQL's name, `<table>_<columns>_fkey`.
    pub name: Option<String>,
    pub columns: Vec<String>,
    pub parent: TableRef,
    /// Empty: the parent's primary key.
    pub parent_columns: Vec<String>,
    pub on_delete: RefAction,
    pub on_update: RefAction,
}

/// A foreign key as the catalog keeps it: `table`'s `columns` hold NULL
/// or a key of `parent`'s `parent_columns`, which a unique index of the
/// parent covers (in any order). Both lists are in declared order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForeignKeyDef {
    pub name: String,
    pub table: TableId,
    pub columns: Vec<String>,
    pub parent: TableId,
    pub parent_columns: Vec<String>,
    pub on_delete: RefAction,
    pub on_update: RefAction,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    pub databases: BTreeMap<String, DatabaseDef>,
    /// The next object id. Tables, views, schemas and databases share one
    /// sequence, so every object has an id no other object ever had: the
    /// PostgreSQL catalogs derive stable OIDs from it.
    pub next_table_id: u64,
    /// Session settings' cluster-wide defaults (`ALTER SYSTEM`), by name.
    #[serde(default)]
    pub settings: BTreeMap<String, SystemSetting>,
    /// Where each member of the cluster listens, by node id.
    #[serde(default)]
    pub nodes: BTreeMap<u64, NodeAddresses>,
}

/// Where a node listens: for other nodes, and for PostgreSQL clients.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddresses {
    pub peer_addr: String,
    pub pg_addr: String,
}

/// A value set with `ALTER SYSTEM`, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemSetting {
    pub value: String,
    /// RFC 3339.
    pub changed_at: String,
}

impl Default for Catalog {
    fn default() -> Self {
        let mut catalog = Catalog {
            databases: BTreeMap::new(),
            next_table_id: 1,
            settings: BTreeMap::new(),
            nodes: BTreeMap::new(),
        };
        catalog.create_database(DEFAULT_DATABASE);
        catalog
    }
}

/// A table's place in the catalog: database, schema and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TableRef {
    pub database: String,
    pub schema: String,
    pub name: String,
}

impl std::fmt::Display for TableRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

impl Catalog {
    /// Takes the next object id.
    pub fn allocate_id(&mut self) -> u64 {
        let id = self.next_table_id;
        self.next_table_id += 1;
        id
    }

    /// Adds a database with its `public` schema.
    pub fn create_database(&mut self, name: &str) {
        let mut db = DatabaseDef {
            id: self.allocate_id(),
            generation: 0,
            schemas: BTreeMap::new(),
            foreign_keys: Vec::new(),
            checks: Vec::new(),
        };
        db.schemas.insert(
            DEFAULT_SCHEMA.to_string(),
            SchemaDef {
                id: self.allocate_id(),
                ..SchemaDef::default()
            },
        );
        self.databases.insert(name.to_string(), db);
    }

    /// Gives an id to every database, schema and view that has none: those
    /// of manifests written before they were numbered. Visits them in name
    /// order, so every node that loads the same manifest numbers them alike.
    pub fn number_objects(&mut self) {
        let mut next = self.next_table_id;
        let mut take = |id: &mut u64| {
            if *id == 0 {
                *id = next;
                next += 1;
            }
        };
        for db in self.databases.values_mut() {
            take(&mut db.id);
            for schema in db.schemas.values_mut() {
                take(&mut schema.id);
                for view in schema.views.values_mut() {
                    take(&mut view.id);
                }
            }
        }
        self.next_table_id = next;
    }

    pub fn schema(&self, database: &str, schema: &str) -> Option<&SchemaDef> {
        self.databases.get(database)?.schemas.get(schema)
    }

    /// The property graphs of `database` that read `table`, as (schema, name).
    pub fn graphs_using(&self, database: &str, table: TableId) -> Vec<(String, String)> {
        let Some(db) = self.databases.get(database) else {
            return Vec::new();
        };
        let mut graphs = Vec::new();
        for (schema_name, schema) in &db.schemas {
            for (name, graph) in &schema.graphs {
                if graph.def.tables().any(|t| t == table) {
                    graphs.push((schema_name.clone(), name.clone()));
                }
            }
        }
        graphs
    }

    pub fn table(&self, r: &TableRef) -> Option<&TableDef> {
        self.schema(&r.database, &r.schema)?.tables.get(&r.name)
    }

    /// Finds a table by id; ids are unique across databases.
    pub fn table_by_id(&self, id: TableId) -> Option<(TableRef, &TableDef)> {
        self.databases.iter().find_map(|(db, d)| {
            d.schemas.iter().find_map(|(s, sd)| {
                sd.tables.iter().find(|(_, t)| t.id == id).map(|(n, t)| {
                    (
                        TableRef {
                            database: db.clone(),
                            schema: s.clone(),
                            name: n.clone(),
                        },
                        t,
                    )
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An array type's names and OIDs are PostgreSQL's, and its field
    /// (element tags on the array's field) reads back as the same type.
    #[test]
    fn array_types_are_named_and_read_back_as_postgresql_has_them() {
        let codes = PgType::array_of(PgType::Varchar(Some(3)));
        assert_eq!(PgType::array_of(codes.clone()), codes, "int[][] is int[]");
        assert_eq!(codes.sql_name(), "character varying(3)[]");
        assert_eq!(
            (codes.type_name(), codes.oid(), codes.typmod()),
            ("_varchar", 1015, 7)
        );
        assert_eq!(PgType::element_oid(1015), Some(1043));
        assert_eq!(PgType::element_oid(1043), None);
        for ty in PgType::all_elements()
            .into_iter()
            .chain([PgType::Bpchar(4), PgType::Varchar(Some(3))])
        {
            let array = PgType::array_of(ty.clone());
            assert_eq!(PgType::element_oid(array.oid()), Some(ty.oid()));
            assert_eq!(array.type_name(), format!("_{}", ty.type_name()));
            let field = array.field("a");
            let DataType::List(item) = field.data_type() else {
                panic!("{array:?} is a list")
            };
            assert!(
                item.metadata().is_empty(),
                "{array:?}: tags on the array's field"
            );
            let read_back = match ty {
                // Unconstrained, numeric reads back as the storage type.
                PgType::Numeric { .. } => PgType::array_of(PgType::Numeric {
                    precision: None,
                    scale: None,
                }),
                _ => array.clone(),
            };
            assert_eq!(PgType::of_field(&field), Some(read_back), "{array:?}");
        }
    }
}
