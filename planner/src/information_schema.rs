//! The SQL standard's `information_schema`, as PostgreSQL 15 shows it,
//! answered from ciab's catalog.
//!
//! DataFusion ships an `information_schema` of its own, but it describes
//! Arrow rather than PostgreSQL: `Int32` for `integer`, positions from 0,
//! every column nullable, no defaults and no constraint views. Tools that
//! reflect through the standard's views (JDBC metadata, Prisma, Metabase,
//! DBeaver, hand-written migrations) read the PostgreSQL spelling, so ciab
//! answers these views itself, from the same pinned state as `pg_catalog`:
//!
//! ```text
//!   information_schema.<view>         built from
//!     schemata                    ──► the database's schemas
//!     tables, views               ──► tables and views
//!     columns                     ──► table columns; a view's planned output
//!     table_constraints,          ──► primary keys, unique constraints,
//!     key_column_usage,               CHECK constraints and foreign keys,
//!     constraint_column_usage,        plus PostgreSQL's NOT NULL pseudo
//!     check_constraints               CHECK constraints
//!     referential_constraints     ──► foreign keys
//!     sequences                   ──► sequences
//!     property_graphs,            ──► property graphs (SQL/PGQ's views)
//!     pg_element_tables,
//!     pg_element_table_labels,
//!     pg_edge_table_components
//! ```
//!
//! Like PostgreSQL's, the views list user schemas and the built-in schemas
//! by name (`schemata`), but not the built-in catalogs' own tables.

use std::sync::Arc;

use ciab_storage::{DbState, PgType};
use datafusion::arrow::datatypes::{DataType, Field, Schema as ArrowSchema, SchemaRef};
use datafusion::common::{Result as DfResult, ScalarValue};

use crate::pg_catalog::{
    Check, ForeignKey, Relation, RelationKind, Rows, Source, ViewSchema, checks, foreign_keys,
    i32v, not_null, relations, s, schemas, view_schema,
};
use crate::provider::CatalogList;

/// The views ciab answers, in PostgreSQL's spelling.
const VIEWS: &[&str] = &[
    "schemata",
    "tables",
    "columns",
    "views",
    "table_constraints",
    "key_column_usage",
    "constraint_column_usage",
    "referential_constraints",
    "check_constraints",
    "sequences",
    "property_graphs",
    "pg_element_tables",
    "pg_element_table_labels",
    "pg_edge_table_components",
];

/// The first columns of every property graph view.
const GRAPH_COLUMNS: [&str; 3] = [
    "property_graph_catalog",
    "property_graph_schema",
    "property_graph_name",
];

/// `character_octet_length` of unbounded text: PostgreSQL's largest value
/// (1 GiB).
const TEXT_OCTETS_MAX: i32 = 1 << 30;
/// Bytes per character of the server encoding (UTF8) at most.
const UTF8_CHAR_BYTES_MAX: i32 = 4;

/// The `information_schema` schema of one session's catalog list.
pub fn schema(list: Arc<CatalogList>) -> ViewSchema {
    ViewSchema {
        source: Source::InformationSchema,
        views: VIEWS,
        columns: view_columns,
        list,
    }
}

/// The columns of a view, in PostgreSQL 15's order. Its domains map to
/// text (`sql_identifier`, `character_data`, `yes_or_no`) and integer
/// (`cardinal_number`).
fn view_columns(view: &str) -> SchemaRef {
    let text = |names: &[&'static str]| names.iter().map(|n| (*n, DataType::Utf8)).collect();
    let cols: Vec<(&str, DataType)> = match view {
        "schemata" => text(&[
            "catalog_name",
            "schema_name",
            "schema_owner",
            "default_character_set_catalog",
            "default_character_set_schema",
            "default_character_set_name",
            "sql_path",
        ]),
        "tables" => text(&[
            "table_catalog",
            "table_schema",
            "table_name",
            "table_type",
            "self_referencing_column_name",
            "reference_generation",
            "user_defined_type_catalog",
            "user_defined_type_schema",
            "user_defined_type_name",
            "is_insertable_into",
            "is_typed",
            "commit_action",
        ]),
        "columns" => {
            // cardinal_number columns; the rest are text.
            let number = |n: &'static str| (n, DataType::Int32);
            let mut cols: Vec<_> =
                text(&["table_catalog", "table_schema", "table_name", "column_name"]);
            cols.push(number("ordinal_position"));
            cols.extend(text(&["column_default", "is_nullable", "data_type"]));
            cols.extend(
                [
                    "character_maximum_length",
                    "character_octet_length",
                    "numeric_precision",
                    "numeric_precision_radix",
                    "numeric_scale",
                    "datetime_precision",
                ]
                .map(number),
            );
            cols.extend(text(&["interval_type"]));
            cols.push(number("interval_precision"));
            cols.extend(text(&[
                "character_set_catalog",
                "character_set_schema",
                "character_set_name",
                "collation_catalog",
                "collation_schema",
                "collation_name",
                "domain_catalog",
                "domain_schema",
                "domain_name",
                "udt_catalog",
                "udt_schema",
                "udt_name",
                "scope_catalog",
                "scope_schema",
                "scope_name",
            ]));
            cols.push(number("maximum_cardinality"));
            cols.extend(text(&[
                "dtd_identifier",
                "is_self_referencing",
                "is_identity",
                "identity_generation",
                "identity_start",
                "identity_increment",
                "identity_maximum",
                "identity_minimum",
                "identity_cycle",
                "is_generated",
                "generation_expression",
                "is_updatable",
            ]));
            cols
        }
        "views" => text(&[
            "table_catalog",
            "table_schema",
            "table_name",
            "view_definition",
            "check_option",
            "is_updatable",
            "is_insertable_into",
            "is_trigger_updatable",
            "is_trigger_deletable",
            "is_trigger_insertable_into",
        ]),
        "table_constraints" => text(&[
            "constraint_catalog",
            "constraint_schema",
            "constraint_name",
            "table_catalog",
            "table_schema",
            "table_name",
            "constraint_type",
            "is_deferrable",
            "initially_deferred",
            "enforced",
            "nulls_distinct",
        ]),
        "key_column_usage" => {
            let mut cols: Vec<_> = text(&[
                "constraint_catalog",
                "constraint_schema",
                "constraint_name",
                "table_catalog",
                "table_schema",
                "table_name",
                "column_name",
            ]);
            cols.push(("ordinal_position", DataType::Int32));
            cols.push(("position_in_unique_constraint", DataType::Int32));
            cols
        }
        "constraint_column_usage" => text(&[
            "table_catalog",
            "table_schema",
            "table_name",
            "column_name",
            "constraint_catalog",
            "constraint_schema",
            "constraint_name",
        ]),
        "referential_constraints" => text(&[
            "constraint_catalog",
            "constraint_schema",
            "constraint_name",
            "unique_constraint_catalog",
            "unique_constraint_schema",
            "unique_constraint_name",
            "match_option",
            "update_rule",
            "delete_rule",
        ]),
        "check_constraints" => text(&[
            "constraint_catalog",
            "constraint_schema",
            "constraint_name",
            "check_clause",
        ]),
        "sequences" => {
            let mut cols: Vec<_> = text(&[
                "sequence_catalog",
                "sequence_schema",
                "sequence_name",
                "data_type",
            ]);
            cols.extend([
                ("numeric_precision", DataType::Int32),
                ("numeric_precision_radix", DataType::Int32),
                ("numeric_scale", DataType::Int32),
            ]);
            cols.extend(text(&[
                "start_value",
                "minimum_value",
                "maximum_value",
                "increment",
                "cycle_option",
            ]));
            cols
        }
        "property_graphs" => text(&GRAPH_COLUMNS),
        "pg_element_tables" => text(
            &[
                &GRAPH_COLUMNS[..],
                &[
                    "element_table_alias",
                    "element_table_kind",
                    "table_catalog",
                    "table_schema",
                    "table_name",
                    "element_table_definition",
                ],
            ]
            .concat(),
        ),
        "pg_element_table_labels" => {
            text(&[&GRAPH_COLUMNS[..], &["element_table_alias", "label_name"]].concat())
        }
        "pg_edge_table_components" => {
            let mut cols: Vec<_> = text(
                &[
                    &GRAPH_COLUMNS[..],
                    &[
                        "edge_table_alias",
                        "vertex_table_alias",
                        "edge_end",
                        "edge_table_column_name",
                        "vertex_table_column_name",
                    ],
                ]
                .concat(),
            );
            cols.push(("ordinal_position", DataType::Int32));
            cols
        }
        other => unreachable!("information_schema.{other} is not in VIEWS"),
    };
    Arc::new(ArrowSchema::new(
        cols.into_iter()
            .map(|(n, t)| Field::new(n, t, true))
            .collect::<Vec<_>>(),
    ))
}

/// A SQL NULL of the view's text domains.
fn null() -> ScalarValue {
    ScalarValue::Utf8(None)
}

fn yes_no(yes: bool) -> ScalarValue {
    s(if yes { "YES" } else { "NO" })
}

fn number(v: Option<i32>) -> ScalarValue {
    ScalarValue::Int32(v)
}

/// One constraint of a table, as the constraint views list it.
struct Constraint<'a> {
    relation: &'a Relation<'a>,
    name: String,
    kind: &'static str,
    /// The columns it constrains, in key order.
    columns: Vec<&'a str>,
    /// For CHECK constraints, the condition.
    check: Option<String>,
    /// For foreign keys, the key with its parent.
    foreign: Option<&'a ForeignKey<'a>>,
    /// PostgreSQL's NOT NULL pseudo constraint, listed in the constraint
    /// views but in no `pg_constraint` row, nor as a column's user.
    pseudo: bool,
}

/// Primary keys, unique constraints, CHECK constraints and foreign keys,
/// then PostgreSQL's
/// pseudo CHECK constraint `col IS NOT NULL` for every NOT NULL column,
/// which it names `<schema oid>_<table oid>_<column number>_not_null`.
fn constraints<'a>(
    relations: &'a [Relation<'a>],
    keys: &'a [ForeignKey<'a>],
    checks: &'a [Check<'a>],
) -> Vec<Constraint<'a>> {
    let mut out = Vec::new();
    for r in relations {
        let RelationKind::Table(table) = &r.kind else {
            continue;
        };
        for check in checks.iter().filter(|c| c.table.id == table.id) {
            out.push(Constraint {
                relation: r,
                name: check.def.name.clone(),
                kind: "CHECK",
                columns: check.def.columns.iter().map(String::as_str).collect(),
                check: Some(check.clause()),
                foreign: None,
                pseudo: false,
            });
        }
        for key in keys.iter().filter(|k| k.table.id == table.id) {
            out.push(Constraint {
                relation: r,
                name: key.def.name.clone(),
                kind: "FOREIGN KEY",
                columns: key.def.columns.iter().map(String::as_str).collect(),
                check: None,
                foreign: Some(key),
                pseudo: false,
            });
        }
        for index in table.indexes.iter().filter(|i| i.unique) {
            out.push(Constraint {
                relation: r,
                name: index.name.clone(),
                kind: if index.primary {
                    "PRIMARY KEY"
                } else {
                    "UNIQUE"
                },
                columns: index.columns.iter().map(String::as_str).collect(),
                check: None,
                foreign: None,
                pseudo: false,
            });
        }
        for (i, column) in table.columns.iter().enumerate() {
            if not_null(table, column) {
                out.push(Constraint {
                    relation: r,
                    name: format!("{}_{}_{}_not_null", r.schema_oid.0, r.oid.0, i + 1),
                    kind: "CHECK",
                    columns: vec![&column.name],
                    check: Some(format!("{} IS NOT NULL", column.name)),
                    foreign: None,
                    pseudo: true,
                });
            }
        }
    }
    out
}

/// A column's default as PostgreSQL shows it (`column_default`,
/// `pg_get_expr` of `pg_attrdef.adbin`), from the expression as written.
/// PostgreSQL prints the stored expression tree, in which a constant
/// carries its type: a string for a text column is `'x'::text`, for a
/// varchar one `'x'::character varying`, and a negative number is a
/// constant of the literal's type (`'-1'::integer`, `'-1.5'::numeric`).
/// Tools that compare a model's defaults with the database's (Django,
/// Rails, Prisma) read these. PostgreSQL prints other constants (a
/// timestamp's, a uuid's) normalized, which would need their values, and
/// parenthesizes expressions; ciab shows those as written.
pub(crate) fn shown_default(default: &str, ty: &PgType) -> String {
    use datafusion::sql::sqlparser::ast::{Expr, UnaryOperator, Value};
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use crate::pg_functions::format_type;
    let Ok(expr) = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(default)
        .and_then(|mut p| p.parse_expr())
    else {
        return default.to_string();
    };
    let typed = |value: &str, name: &str| format!("'{}'::{name}", value.replace('\'', "''"));
    match expr {
        Expr::Value(v) => match (&v.value, ty) {
            (
                Value::SingleQuotedString(text),
                PgType::Text | PgType::Varchar(_) | PgType::Bpchar(_) | PgType::Json,
            ) => typed(text, &format_type(i64::from(ty.oid()), Some(-1))),
            _ => default.to_string(),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } if matches!(expr.as_ref(), Expr::Value(v) if matches!(v.value, Value::Number(..))) => {
            let n = expr.to_string();
            let name = if n.parse::<i32>().is_ok() {
                "integer"
            } else if n.parse::<i64>().is_ok() {
                "bigint"
            } else {
                "numeric"
            };
            typed(&format!("-{n}"), name)
        }
        _ => default.to_string(),
    }
}

/// The type columns of `columns` for one column: `data_type` without its
/// modifiers, lengths, precisions and the `udt_name`.
fn type_columns(ty: &PgType) -> Vec<(&'static str, ScalarValue)> {
    let data_type = match ty {
        PgType::Varchar(_) => "character varying".to_string(),
        PgType::Bpchar(_) => "character".to_string(),
        PgType::Numeric { .. } => "numeric".to_string(),
        // And no element's lengths or precisions below.
        PgType::Array(_) => "ARRAY".to_string(),
        other => other.sql_name(),
    };
    let length = match ty {
        PgType::Varchar(Some(n)) | PgType::Bpchar(n) => i32::try_from(*n).ok(),
        _ => None,
    };
    let octets = match ty {
        PgType::Varchar(Some(_)) | PgType::Bpchar(_) => {
            length.map(|n| n.saturating_mul(UTF8_CHAR_BYTES_MAX))
        }
        PgType::Varchar(None) | PgType::Text => Some(TEXT_OCTETS_MAX),
        _ => None,
    };
    let (precision, radix, scale) = match ty {
        PgType::Int2 => (Some(16), Some(2), Some(0)),
        PgType::Int4 => (Some(32), Some(2), Some(0)),
        PgType::Int8 => (Some(64), Some(2), Some(0)),
        PgType::Float4 => (Some(24), Some(2), None),
        PgType::Float8 => (Some(53), Some(2), None),
        PgType::Numeric {
            precision: Some(p),
            scale,
        } => (
            Some(i32::from(*p)),
            Some(10),
            Some(i32::from(scale.unwrap_or(0))),
        ),
        PgType::Numeric { .. } => (None, Some(10), None),
        _ => (None, None, None),
    };
    let datetime_precision = match ty {
        PgType::Date => Some(0),
        PgType::Time | PgType::Timestamp | PgType::Timestamptz | PgType::Interval => Some(6),
        _ => None,
    };
    vec![
        ("data_type", s(&data_type)),
        ("character_maximum_length", number(length)),
        ("character_octet_length", number(octets)),
        ("numeric_precision", number(precision)),
        ("numeric_precision_radix", number(radix)),
        ("numeric_scale", number(scale)),
        ("datetime_precision", number(datetime_precision)),
        ("udt_schema", s(crate::pg_catalog::PG_CATALOG)),
        ("udt_name", s(ty.type_name())),
    ]
}

/// Text columns of `columns` that PostgreSQL fills alike for every column
/// ciab has (no domains, identities or generated columns), and NULL for the
/// rest.
fn column_row(
    database: &str,
    r: &Relation,
    position: usize,
    name: &str,
    ty: &PgType,
) -> Vec<(&'static str, ScalarValue)> {
    let position = i32::try_from(position).expect("columns per table fit i32");
    let mut row = vec![
        ("table_catalog", s(database)),
        ("table_schema", s(r.schema)),
        ("table_name", s(r.name)),
        ("column_name", s(name)),
        ("ordinal_position", i32v(position)),
        ("udt_catalog", s(database)),
        ("dtd_identifier", s(&position.to_string())),
        ("is_self_referencing", s("NO")),
        ("is_identity", s("NO")),
        ("identity_cycle", s("NO")),
        ("is_generated", s("NEVER")),
        ("interval_type", null()),
        ("interval_precision", number(None)),
        ("maximum_cardinality", number(None)),
    ];
    row.extend(type_columns(ty));
    row
}

/// Fills one view from the pinned state. Columns a row does not name are
/// NULL.
pub(crate) async fn fill(
    view: &str,
    rows: &mut Rows,
    state: &DbState,
    database: &str,
    user: &str,
    list: &Arc<CatalogList>,
) -> DfResult<()> {
    let relations = relations(state, database);
    let keys = foreign_keys(state, database);
    let checks = checks(state, database);
    // The standard's views show NULL, not a zero, for what does not apply.
    let mut push = |values: Vec<(&'static str, ScalarValue)>| rows.push_or_null(&values);
    match view {
        "schemata" => {
            for (name, _) in schemas(state, database) {
                // As in PostgreSQL 15: the database's owner owns public.
                let owner = if name == ciab_storage::DEFAULT_SCHEMA {
                    "pg_database_owner"
                } else {
                    user
                };
                push(vec![
                    ("catalog_name", s(database)),
                    ("schema_name", s(&name)),
                    ("schema_owner", s(owner)),
                ])?;
            }
        }
        "tables" => {
            for r in &relations {
                let table_type = match r.kind {
                    RelationKind::Table(_) => "BASE TABLE",
                    RelationKind::View { .. } => "VIEW",
                    RelationKind::Index { .. } | RelationKind::Sequence(_) => continue,
                };
                push(vec![
                    ("table_catalog", s(database)),
                    ("table_schema", s(r.schema)),
                    ("table_name", s(r.name)),
                    ("table_type", s(table_type)),
                    // ciab's views are read-only.
                    ("is_insertable_into", yes_no(table_type == "BASE TABLE")),
                    ("is_typed", s("NO")),
                ])?;
            }
        }
        "columns" => {
            for r in &relations {
                match &r.kind {
                    RelationKind::Table(table) => {
                        for (i, c) in table.columns.iter().enumerate() {
                            let mut row = column_row(database, r, i + 1, &c.name, &c.ty);
                            row.extend([
                                (
                                    "column_default",
                                    c.default
                                        .as_deref()
                                        .map_or_else(null, |d| s(&shown_default(d, &c.ty))),
                                ),
                                ("is_nullable", yes_no(!not_null(table, c))),
                                ("is_updatable", s("YES")),
                            ]);
                            push(row)?;
                        }
                    }
                    RelationKind::View { .. } => {
                        let Some(columns) = view_schema(list, r.schema, r.name).await else {
                            continue;
                        };
                        for (i, field) in columns.fields().iter().enumerate() {
                            let ty = PgType::of_field(field).unwrap_or(PgType::Text);
                            let mut row = column_row(database, r, i + 1, field.name(), &ty);
                            row.extend([("is_nullable", s("YES")), ("is_updatable", s("NO"))]);
                            push(row)?;
                        }
                    }
                    RelationKind::Index { .. } | RelationKind::Sequence(_) => {}
                }
            }
        }
        "views" => {
            for r in &relations {
                if let RelationKind::View { sql, .. } = &r.kind {
                    push(vec![
                        ("table_catalog", s(database)),
                        ("table_schema", s(r.schema)),
                        ("table_name", s(r.name)),
                        ("view_definition", s(sql)),
                        ("check_option", s("NONE")),
                        ("is_updatable", s("NO")),
                        ("is_insertable_into", s("NO")),
                        ("is_trigger_updatable", s("NO")),
                        ("is_trigger_deletable", s("NO")),
                        ("is_trigger_insertable_into", s("NO")),
                    ])?;
                }
            }
        }
        "table_constraints" => {
            for c in constraints(&relations, &keys, &checks) {
                let nulls_distinct = match c.kind {
                    "UNIQUE" => s("YES"),
                    _ => null(),
                };
                push(vec![
                    ("constraint_catalog", s(database)),
                    ("constraint_schema", s(c.relation.schema)),
                    ("constraint_name", s(&c.name)),
                    ("table_catalog", s(database)),
                    ("table_schema", s(c.relation.schema)),
                    ("table_name", s(c.relation.name)),
                    ("constraint_type", s(c.kind)),
                    ("is_deferrable", s("NO")),
                    ("initially_deferred", s("NO")),
                    ("enforced", s("YES")),
                    ("nulls_distinct", nulls_distinct),
                ])?;
            }
        }
        "key_column_usage" | "constraint_column_usage" => {
            for c in constraints(&relations, &keys, &checks) {
                // A CHECK's columns are used, not keys; PostgreSQL's NOT
                // NULL pseudo constraints are neither.
                if c.pseudo || (c.kind == "CHECK" && view == "key_column_usage") {
                    continue;
                }
                // constraint_column_usage shows the columns a foreign key
                // references, in its parent.
                let (schema, table, columns) = match c.foreign {
                    Some(key) if view == "constraint_column_usage" => (
                        key.parent_schema,
                        key.parent_name,
                        key.def.parent_columns.iter().map(String::as_str).collect(),
                    ),
                    _ => (c.relation.schema, c.relation.name, c.columns.clone()),
                };
                for (i, column) in columns.iter().enumerate() {
                    let mut row = vec![
                        ("constraint_catalog", s(database)),
                        ("constraint_schema", s(c.relation.schema)),
                        ("constraint_name", s(&c.name)),
                        ("table_catalog", s(database)),
                        ("table_schema", s(schema)),
                        ("table_name", s(table)),
                        ("column_name", s(column)),
                    ];
                    if view == "key_column_usage" {
                        let position = i32::try_from(i + 1).expect("key columns fit i32");
                        row.push(("ordinal_position", i32v(position)));
                        if let Some(key) = c.foreign {
                            // Where the referenced column is in the parent's
                            // unique constraint.
                            let index = &key.parent.indexes[key.index];
                            let referenced = &key.def.parent_columns[i];
                            let at = index.columns.iter().position(|c| c == referenced);
                            let at = i32::try_from(at.unwrap_or(i) + 1).expect("fits i32");
                            row.push(("position_in_unique_constraint", i32v(at)));
                        }
                    }
                    push(row)?;
                }
            }
        }
        "referential_constraints" => {
            for key in &keys {
                let index = &key.parent.indexes[key.index];
                push(vec![
                    ("constraint_catalog", s(database)),
                    ("constraint_schema", s(key.schema)),
                    ("constraint_name", s(&key.def.name)),
                    ("unique_constraint_catalog", s(database)),
                    ("unique_constraint_schema", s(key.parent_schema)),
                    ("unique_constraint_name", s(&index.name)),
                    ("match_option", s("NONE")),
                    ("update_rule", s(key.def.on_update.sql())),
                    ("delete_rule", s(key.def.on_delete.sql())),
                ])?;
            }
        }
        "check_constraints" => {
            for c in constraints(&relations, &keys, &checks) {
                if let Some(check) = &c.check {
                    push(vec![
                        ("constraint_catalog", s(database)),
                        ("constraint_schema", s(c.relation.schema)),
                        ("constraint_name", s(&c.name)),
                        ("check_clause", s(check)),
                    ])?;
                }
            }
        }
        "sequences" => {
            for r in &relations {
                let RelationKind::Sequence(sequence) = &r.kind else {
                    continue;
                };
                let precision = match sequence.ty {
                    PgType::Int2 => 16,
                    PgType::Int4 => 32,
                    _ => 64,
                };
                push(vec![
                    ("sequence_catalog", s(database)),
                    ("sequence_schema", s(r.schema)),
                    ("sequence_name", s(r.name)),
                    ("data_type", s(&sequence.ty.sql_name())),
                    ("numeric_precision", i32v(precision)),
                    ("numeric_precision_radix", i32v(2)),
                    ("numeric_scale", i32v(0)),
                    ("start_value", s(&sequence.start.to_string())),
                    ("minimum_value", s(&sequence.min.to_string())),
                    ("maximum_value", s(&sequence.max.to_string())),
                    ("increment", s(&sequence.increment.to_string())),
                    ("cycle_option", s("NO")),
                ])?;
            }
        }
        "property_graphs"
        | "pg_element_tables"
        | "pg_element_table_labels"
        | "pg_edge_table_components" => {
            let Some(db) = state.catalog.databases.get(database) else {
                return Ok(());
            };
            for (schema, graph_schema) in &db.schemas {
                for (name, graph) in &graph_schema.graphs {
                    let graph_row = |more: Vec<(&'static str, ScalarValue)>| {
                        let mut row = vec![
                            ("property_graph_catalog", s(database)),
                            ("property_graph_schema", s(schema)),
                            ("property_graph_name", s(name)),
                        ];
                        row.extend(more);
                        row
                    };
                    let def = &graph.def;
                    let vertices = def.vertices.iter().map(|v| (v, "VERTEX"));
                    let elements: Vec<_> = vertices
                        .chain(def.edges.iter().map(|e| (&e.element, "EDGE")))
                        .collect();
                    match view {
                        "property_graphs" => push(graph_row(vec![]))?,
                        "pg_element_tables" => {
                            for (element, kind) in &elements {
                                let Some((tref, _)) = state.catalog.table_by_id(element.table)
                                else {
                                    continue;
                                };
                                push(graph_row(vec![
                                    ("element_table_alias", s(&element.alias)),
                                    ("element_table_kind", s(kind)),
                                    ("table_catalog", s(&tref.database)),
                                    ("table_schema", s(&tref.schema)),
                                    ("table_name", s(&tref.name)),
                                ]))?;
                            }
                        }
                        "pg_element_table_labels" => {
                            for (element, _) in &elements {
                                for label in &element.labels {
                                    push(graph_row(vec![
                                        ("element_table_alias", s(&element.alias)),
                                        ("label_name", s(&label.name)),
                                    ]))?;
                                }
                            }
                        }
                        _ => {
                            for edge in &def.edges {
                                let ends =
                                    [("SOURCE", &edge.source), ("DESTINATION", &edge.destination)];
                                for (which, end) in ends {
                                    let pairs = end.columns.iter().zip(&end.references);
                                    for (i, (column, reference)) in pairs.enumerate() {
                                        push(graph_row(vec![
                                            ("edge_table_alias", s(&edge.element.alias)),
                                            ("vertex_table_alias", s(&end.vertex)),
                                            ("edge_end", s(which)),
                                            ("edge_table_column_name", s(column)),
                                            ("vertex_table_column_name", s(reference)),
                                            ("ordinal_position", i32v(i as i32 + 1)),
                                        ]))?;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        other => unreachable!("information_schema.{other} is not in VIEWS"),
    }
    Ok(())
}
