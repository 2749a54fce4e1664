//! Output column names as PostgreSQL gives them.
//!
//! PostgreSQL names `SELECT 1` `?column?`, `SELECT count(*)` `count`, and
//! allows two output columns with one name. DataFusion names columns after
//! their expression and requires unique names. So before planning, select
//! items whose PostgreSQL name differs or repeats get a unique internal alias,
//! and the output schema is renamed back to PostgreSQL's names.
//!
//! In nested queries (derived tables, WITH queries, subqueries) the names
//! are what outer queries refer to, so unaliased expressions are aliased
//! with their PostgreSQL names, and only repeated names get internal
//! aliases: `(SELECT a::text, a::text FROM t) x` is a table PostgreSQL
//! accepts (naming a repeated column is what is ambiguous), and its columns
//! reach the output under PostgreSQL's names through `*`.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    DataType as SqlType, Expr, Ident, OrderBy, OrderByExpr, OrderByKind, Query, SelectItem,
    SetExpr, Statement, Visit, VisitMut, Visitor, VisitorMut,
};

use crate::error::{Error, Result, sqlstate};

const INTERNAL_PREFIX: &str = "__ciab_col_";
/// Repeated names in nested queries: numbered through the statement, so
/// that two nested queries never give one internal name two meanings, and
/// followed by the name PostgreSQL shows.
const NESTED_PREFIX: &str = "__ciab_nested_col_";

/// The statement with internal aliases where needed, and the final names by
/// internal alias; 42702 for an ORDER BY that names two different output
/// columns ([`check_order_by_names`]).
pub fn unique_output_names(
    statement: &DfStatement,
) -> Result<(DfStatement, HashMap<String, String>)> {
    check_order_by_names(statement)?;
    let mut renames = HashMap::new();
    let DfStatement::Statement(s) = statement else {
        return Ok((statement.clone(), renames));
    };
    let Statement::Query(query) = s.as_ref() else {
        return Ok((statement.clone(), renames));
    };
    let mut query = query.clone();
    rename_nested(&mut query, &mut renames);
    rename_query(&mut query, &mut renames);
    Ok((
        DfStatement::Statement(Box::new(Statement::Query(query))),
        renames,
    ))
}

/// Refuses an ORDER BY of a bare name that two output columns computing
/// different things carry (`SELECT a, b AS a FROM t ORDER BY a`), as
/// PostgreSQL does (42702): it resolves such a name against the output
/// columns first, where the renaming above would leave DataFusion to sort
/// by the input column quietly.
fn check_order_by_names(statement: &DfStatement) -> Result<()> {
    struct Check;
    impl Visitor for Check {
        type Break = String;
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<String> {
            let (Some(order_by), SetExpr::Select(select)) = (&query.order_by, query.body.as_ref())
            else {
                return ControlFlow::Continue(());
            };
            let OrderByKind::Expressions(keys) = &order_by.kind else {
                return ControlFlow::Continue(());
            };
            for key in keys {
                let Expr::Identifier(ident) = &key.expr else {
                    continue;
                };
                let name = normalize(ident);
                let mut named = select
                    .projection
                    .iter()
                    .filter(|item| item_name(item).as_deref() == Some(&name))
                    .filter_map(|item| match item {
                        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                            Some(e)
                        }
                        _ => None,
                    });
                if let Some(first) = named.next()
                    && named.any(|other| !may_be_same(first, other))
                {
                    return ControlFlow::Break(name);
                }
            }
            ControlFlow::Continue(())
        }
    }
    match statement {
        DfStatement::Statement(s) => match s.visit(&mut Check) {
            ControlFlow::Break(name) => Err(Error::new(
                sqlstate::AMBIGUOUS_COLUMN,
                format!("ORDER BY \"{name}\" is ambiguous"),
            )),
            ControlFlow::Continue(()) => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Whether two select items may compute the same thing, as far as the
/// syntax tells: equal expressions, or the same column named with and
/// without its table (`a`, `t.a`), which only planning could tell apart.
fn may_be_same(a: &Expr, b: &Expr) -> bool {
    let last = |e: &Expr| match e {
        Expr::Identifier(i) => Some((normalize(i), true)),
        Expr::CompoundIdentifier(parts) => parts.last().map(|i| (normalize(i), false)),
        _ => None,
    };
    match (last(a), last(b)) {
        (Some((x, bare_a)), Some((y, bare_b))) if bare_a || bare_b => x == y,
        _ => a == b,
    }
}

/// Gives the select items of a query feeding an INSERT unique names:
/// rows go into the table's columns by position, so the names are only
/// DataFusion's to see, and `INSERT ... SELECT x, x` must not be refused.
pub(crate) fn unique_source_names(query: &mut Query) {
    let mut renames = HashMap::new();
    rename_nested(query, &mut renames);
    rename_query(query, &mut renames);
}

fn rename_query(query: &mut Query, renames: &mut HashMap<String, String>) {
    let Query { body, order_by, .. } = query;
    let mut body = body.as_mut();
    // The leftmost SELECT of a set operation names its columns.
    while let SetExpr::SetOperation { left, .. } = body {
        body = left.as_mut();
    }
    match body {
        SetExpr::Select(select) => {
            let names: Vec<Option<String>> = select.projection.iter().map(item_name).collect();
            rename_items(&mut select.projection, renames);
            if let Some(OrderBy {
                kind: OrderByKind::Expressions(keys),
                ..
            }) = order_by
            {
                sort_by_renamed(keys, &names, &select.projection);
            }
        }
        SetExpr::Query(inner) => rename_query(inner, renames),
        _ => {}
    }
}

/// Points ORDER BY keys that are a bare output name (`ORDER BY count`,
/// or a name two equal items carry) at the internal alias its column got:
/// PostgreSQL resolves such a name against the output columns first, and
/// DataFusion no longer sees the output name. `names` are the items' names
/// before renaming.
fn sort_by_renamed(keys: &mut [OrderByExpr], names: &[Option<String>], items: &[SelectItem]) {
    for key in keys {
        let Expr::Identifier(ident) = &key.expr else {
            continue;
        };
        let name = normalize(ident);
        let Some(at) = names.iter().position(|n| n.as_deref() == Some(&name)) else {
            continue;
        };
        if let SelectItem::ExprWithAlias { alias, .. } = &items[at]
            && alias.value.starts_with(INTERNAL_PREFIX)
        {
            key.expr = Expr::Identifier(alias.clone());
        }
    }
}

/// Names the columns of every select list but the one naming `query`'s
/// own: those of nested queries, and the later SELECTs of set operations
/// (whose names PostgreSQL ignores, but DataFusion wants unique).
fn rename_nested(query: &mut Query, renames: &mut HashMap<String, String>) {
    struct Nested<'a> {
        renames: &'a mut HashMap<String, String>,
        root: bool,
    }
    impl VisitorMut for Nested<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            let mut lists = vec![];
            select_lists(query.body.as_mut(), &mut lists);
            // The root's leftmost list is named by `rename_query`.
            let skip = usize::from(std::mem::take(&mut self.root));
            for items in lists.into_iter().skip(skip) {
                name_nested_items(items, self.renames);
            }
            ControlFlow::Continue(())
        }
    }
    let _ = query.visit(&mut Nested {
        renames,
        root: true,
    });
}

/// The select lists of a query body, left to right through its set
/// operations (nested queries are visited on their own).
fn select_lists<'a>(body: &'a mut SetExpr, lists: &mut Vec<&'a mut Vec<SelectItem>>) {
    match body {
        SetExpr::SetOperation { left, right, .. } => {
            select_lists(left, lists);
            select_lists(right, lists);
        }
        SetExpr::Select(select) => lists.push(&mut select.projection),
        _ => {}
    }
}

/// Names a nested select list's columns as PostgreSQL does: an unaliased
/// expression gets its PostgreSQL name as alias (`upper(t)` is `upper`, so
/// `x.upper` finds it), and a repeated name an internal alias that still
/// tells the name (see [`shown`]).
fn name_nested_items(items: &mut [SelectItem], renames: &mut HashMap<String, String>) {
    let counts = name_counts(items.iter().filter_map(item_name));
    for item in items.iter_mut() {
        let Some(name) = item_name(item) else {
            continue;
        };
        let (expr, unnamed) = match item {
            SelectItem::UnnamedExpr(expr) => (expr.clone(), true),
            SelectItem::ExprWithAlias { expr, .. } => (expr.clone(), false),
            _ => continue,
        };
        let alias = if counts[&name] > 1 {
            let internal = format!("{NESTED_PREFIX}{}_{name}", renames.len());
            renames.insert(internal.clone(), name);
            internal
        } else if unnamed && !is_plain_column(&expr) {
            name
        } else {
            continue;
        };
        *item = SelectItem::ExprWithAlias {
            expr,
            alias: Ident::with_quote('"', alias),
        };
    }
}

/// A column's name as PostgreSQL shows it: a repeated name in a nested
/// query travels as an internal alias that ends with it.
pub(crate) fn shown(name: &str) -> &str {
    name.strip_prefix(NESTED_PREFIX)
        .map(|rest| rest.trim_start_matches(|c: char| c.is_ascii_digit()))
        .and_then(|rest| rest.strip_prefix('_'))
        .unwrap_or(name)
}

fn is_plain_column(expr: &Expr) -> bool {
    matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
}

/// How often each name occurs.
fn name_counts(names: impl Iterator<Item = String>) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for name in names {
        *counts.entry(name).or_default() += 1;
    }
    counts
}

/// The name PostgreSQL gives a select item's column; None for `*`.
fn item_name(item: &SelectItem) -> Option<String> {
    match item {
        SelectItem::UnnamedExpr(e) => Some(pg_name(e)),
        SelectItem::ExprWithAlias { alias, .. } => Some(normalize(alias)),
        _ => None,
    }
}

fn rename_items(items: &mut [SelectItem], renames: &mut HashMap<String, String>) {
    let mut wanted: Vec<Option<String>> = items.iter().map(item_name).collect();
    let counts = name_counts(wanted.iter().flatten().cloned());
    for (i, item) in items.iter_mut().enumerate() {
        let Some(name) = wanted[i].take() else {
            continue;
        };
        let duplicate = counts[&name] > 1;
        let internal = format!("{INTERNAL_PREFIX}{i}");
        match item {
            SelectItem::UnnamedExpr(e) => {
                if is_plain_column(e) && !duplicate {
                    continue;
                }
                *item = SelectItem::ExprWithAlias {
                    expr: e.clone(),
                    alias: Ident::new(&internal),
                };
            }
            SelectItem::ExprWithAlias { alias, .. } => {
                if !duplicate {
                    continue;
                }
                *alias = Ident::new(&internal);
            }
            _ => continue,
        }
        renames.insert(internal, name);
    }
}

/// A relation's fully qualified name, each part quoted, for SQL that ciab
/// writes itself: `"db"."schema"."name"`.
pub(crate) fn quoted_relation(tref: &ciab_storage::TableRef) -> String {
    [&tref.database, &tref.schema, &tref.name]
        .map(|part| Ident::with_quote('"', part.as_str()).to_string())
        .join(".")
}

/// An identifier as PostgreSQL resolves it: folded to lower case unless quoted.
pub(crate) fn normalize(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

/// A relation's name given as text (`'t'`, `'s.t'`, `'"Odd"'`), as
/// `::regclass` and `nextval` take it: its parts, each resolved as an
/// identifier, or None if the text is not a name.
pub(crate) fn parse_relation_name(text: &str) -> Option<Vec<String>> {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    let mut parser = Parser::new(&PostgreSqlDialect {}).try_with_sql(text).ok()?;
    let name = parser.parse_object_name(false).ok()?;
    if parser.peek_token().token != datafusion::sql::sqlparser::tokenizer::Token::EOF {
        return None;
    }
    name.0.iter().map(|p| p.as_ident().map(normalize)).collect()
}

pub fn ident_list(idents: &[Ident]) -> String {
    idents.iter().map(normalize).collect::<Vec<_>>().join(".")
}

/// Whether `text` contains `word` (ASCII, any case), without a lowercased
/// copy of `text`: it runs on every statement parsed.
pub(crate) fn contains_ignore_ascii_case(text: &str, word: &str) -> bool {
    text.as_bytes()
        .windows(word.len())
        .any(|w| w.eq_ignore_ascii_case(word.as_bytes()))
}

/// The name PostgreSQL gives an unaliased select item.
pub(crate) fn pg_name(expr: &Expr) -> String {
    match expr {
        Expr::Identifier(i) => normalize(i),
        Expr::CompoundIdentifier(parts) => parts.last().map(normalize).unwrap_or_default(),
        Expr::Function(f) => match f.name.0.last().and_then(|p| p.as_ident()).map(normalize) {
            // ARRAY(subquery), as crate::arrays rewrote it.
            Some(name) if name == crate::arrays::ARRAY_OR_EMPTY => "array".into(),
            Some(name) => name,
            None => "?column?".into(),
        },
        Expr::Nested(inner) => pg_name(inner),
        Expr::Cast {
            expr, data_type, ..
        } => match pg_name(expr).as_str() {
            "?column?" => type_name(data_type),
            name => name.to_string(),
        },
        Expr::TypedString(t) => type_name(&t.data_type),
        Expr::Case { .. } => "case".into(),
        // `NOT EXISTS (...)` is one node, named as any operator is.
        Expr::Exists { negated: false, .. } => "exists".into(),
        Expr::Array(_) => "array".into(),
        Expr::Substring {
            shorthand: true, ..
        } => "substr".into(),
        Expr::Substring { .. } => "substring".into(),
        Expr::Trim { .. } => "btrim".into(),
        Expr::Position { .. } => "position".into(),
        Expr::Extract { .. } => "extract".into(),
        Expr::Ceil { .. } => "ceil".into(),
        Expr::Floor { .. } => "floor".into(),
        _ => "?column?".into(),
    }
}

fn type_name(ty: &SqlType) -> String {
    // A name sqlparser does not know is already PostgreSQL's (`bpchar`,
    // `name`, `"timestamp"`).
    if let SqlType::Custom(name, _) = ty
        && let [part] = name.0.as_slice()
        && let Some(ident) = part.as_ident()
    {
        return normalize(ident);
    }
    match crate::types::pg_type(ty) {
        // A cast to an array is named by its element type.
        Ok((ciab_storage::PgType::Array(element), _)) => element.type_name().into(),
        Ok((t, _)) => t.type_name().into(),
        Err(_) => "?column?".into(),
    }
}

/// The output schema with PostgreSQL's names put back.
pub fn rename(schema: &SchemaRef, renames: &HashMap<String, String>) -> SchemaRef {
    if renames.is_empty() {
        return schema.clone();
    }
    Arc::new(Schema::new_with_metadata(
        schema
            .fields()
            .iter()
            .map(|f| match renames.get(f.name()) {
                Some(name) => Arc::new(Field::clone(f).with_name(name)),
                None => f.clone(),
            })
            .collect::<Vec<_>>(),
        schema.metadata().clone(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::parser::DFParser;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;

    fn names(sql: &str) -> (String, Vec<(String, String)>) {
        let stmt = DFParser::parse_sql_with_dialect(sql, &PostgreSqlDialect {})
            .unwrap()
            .pop_front()
            .unwrap();
        let (stmt, renames) = unique_output_names(&stmt).unwrap();
        let mut renames: Vec<_> = renames.into_iter().collect();
        renames.sort();
        (stmt.to_string(), renames)
    }

    #[test]
    fn postgres_names() {
        let (sql, renames) = names("SELECT 1, count(*), a, a AS b, a AS b, x::int FROM t");
        assert_eq!(
            renames,
            vec![
                ("__ciab_col_0".into(), "?column?".into()),
                ("__ciab_col_1".into(), "count".into()),
                ("__ciab_col_3".into(), "b".into()),
                ("__ciab_col_4".into(), "b".into()),
                ("__ciab_col_5".into(), "x".into()),
            ]
        );
        assert!(sql.contains(" a, "), "{sql}");
    }

    #[test]
    fn nested_queries_get_postgres_names() {
        let (sql, renames) =
            names("SELECT * FROM (SELECT a::text, upper(b), c, 1, d AS e, d AS e FROM t) x");
        assert!(
            sql.contains(r#"a::TEXT AS "a", upper(b) AS "upper", c, 1 AS "?column?""#),
            "{sql}"
        );
        assert_eq!(
            renames,
            vec![
                ("__ciab_nested_col_0_e".into(), "e".into()),
                ("__ciab_nested_col_1_e".into(), "e".into()),
            ]
        );
        assert_eq!(shown("__ciab_nested_col_12_?column?"), "?column?");
        assert_eq!(shown("__ciab_nested_col_1_2"), "2");
        assert_eq!(shown("e"), "e");
    }
}
