//! Whole-row references: PostgreSQL lets the name of a FROM item stand for
//! its row (`SELECT row_to_json(t) FROM (SELECT ...) t`), which DataFusion
//! cannot resolve. Before planning, such an argument of the JSON functions
//! that take a record becomes the row's columns, as keys and values:
//!
//! ```text
//!  row_to_json(t), to_json(t) ──► __ciab_row_to_json('a', t.a, 'b', t.b)
//!  row_to_json(t, true)       ──► __ciab_row_to_json_pretty('a', t.a, 'b', t.b)
//!  to_jsonb(t)                ──► jsonb_build_object('a', t.a, 'b', t.b)
//!  json_agg(t)                ──► json_agg(__ciab_record('a', t.a, 'b', t.b))
//!  jsonb_agg(t)               ──► jsonb_agg(jsonb_build_object('a', t.a, 'b', t.b))
//! ```
//!
//! Elsewhere in a SELECT list, a FROM item's name that no column of the
//! SELECT's FROM items has is its row as a record, as in PostgreSQL:
//!
//! ```text
//!  SELECT t FROM t          ──► SELECT ROW(t.a, t.b) AS t FROM t       (1,x)
//!  SELECT t::text FROM t    ──► SELECT ROW(t.a, t.b)::text FROM t
//! ```
//!
//! A row's columns are those `SELECT * FROM <the FROM item>` has, planned
//! with the statement's WITH clause.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use datafusion::execution::session_state::SessionState;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, Query, Select,
    SelectItem, SetExpr, Statement, TableFactor, Value, VisitMut, VisitorMut, With,
    visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::Result;

/// The statement with its whole-row references spelled out; unchanged when
/// it has none (or the FROM item's columns cannot be planned alone, as a
/// LATERAL subquery's cannot: then planning reports the unknown column).
pub(crate) async fn whole_rows(
    state: &SessionState,
    statement: DfStatement,
) -> Result<DfStatement> {
    let DfStatement::Statement(mut boxed) = statement else {
        return Ok(statement);
    };
    let Statement::Query(query) = boxed.as_mut() else {
        return Ok(DfStatement::Statement(boxed));
    };
    let mut wanted = Wanted::default();
    let _ = query.visit(&mut wanted);
    if wanted.items.is_empty() {
        return Ok(DfStatement::Statement(boxed));
    }
    let mut columns = HashMap::new();
    for item in wanted.items {
        let sql = format!("{}SELECT * FROM {item}", with_text(&query.with));
        let Ok(statement) = state.sql_to_statement(&sql, &datafusion::config::Dialect::PostgreSQL)
        else {
            continue;
        };
        if let Ok(plan) = state.statement_to_plan(statement).await {
            let names = plan
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            columns.insert(item, names);
        }
    }
    let _ = query.visit(&mut SpellOut { columns });
    Ok(DfStatement::Statement(boxed))
}

fn with_text(with: &Option<With>) -> String {
    with.as_ref().map(|w| format!("{w} ")).unwrap_or_default()
}

/// The FROM items of a query's SELECTs whose names calls take as records.
#[derive(Default)]
struct Wanted {
    /// Each FROM item as SQL text.
    items: Vec<String>,
}

// A visitor that only reads, over the same mutable walk as [`SpellOut`]'s.
impl VisitorMut for Wanted {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        for select in selects_mut(&mut query.body) {
            let from = from_items(select);
            let mut want = |item: &String| {
                if !self.items.contains(item) {
                    self.items.push(item.clone());
                }
            };
            let mut rows = false;
            let _ = visit_expressions_mut(&mut select.projection, |e| {
                if let Some((_, item)) = record_call(e, &from) {
                    want(&item);
                }
                rows |= matches!(e, Expr::Identifier(name) if from.contains_key(&fold(name)));
                ControlFlow::<()>::Continue(())
            });
            // Whether a name is a row or a column depends on the columns
            // of every FROM item.
            if rows {
                from.values().for_each(&mut want);
            }
        }
        ControlFlow::Continue(())
    }
}

/// Rewrites the calls whose FROM item's columns are known.
struct SpellOut {
    columns: HashMap<String, Vec<String>>,
}

impl VisitorMut for SpellOut {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        for select in selects_mut(&mut query.body) {
            let from = from_items(select);
            let _ = visit_expressions_mut(&mut select.projection, |e| {
                if let Some((name, item)) = record_call(e, &from)
                    && let Some(columns) = self.columns.get(&item)
                    && let Some(spelled) = spell_out(e, &name, columns)
                {
                    *e = spelled;
                }
                ControlFlow::<()>::Continue(())
            });
            self.rows(select, &from);
        }
        ControlFlow::Continue(())
    }
}

impl SpellOut {
    /// The SELECT list's names of FROM items that are no column of them,
    /// as the items' rows.
    fn rows(&self, select: &mut Select, from: &HashMap<String, String>) {
        let mut columns = HashSet::new();
        for item in from.values() {
            match self.columns.get(item) {
                Some(names) => columns.extend(names.iter().map(String::as_str)),
                // Which names are columns is not known.
                None => return,
            }
        }
        let row = |name: &Ident| -> Option<Expr> {
            let folded = fold(name);
            if columns.contains(folded.as_str()) {
                return None;
            }
            let fields: Vec<String> = self.columns[from.get(&folded)?]
                .iter()
                .map(|c| format!("{name}.\"{}\"", c.replace('"', "\"\"")))
                .collect();
            parse(&format!("ROW({})", fields.join(", ")))
        };
        for item in &mut select.projection {
            // A row alone in the list is named as its FROM item.
            if let SelectItem::UnnamedExpr(Expr::Identifier(name)) = item
                && let Some(expr) = row(name)
            {
                *item = SelectItem::ExprWithAlias {
                    expr,
                    alias: name.clone(),
                };
                continue;
            }
            let _ = item.visit(&mut RowRefs {
                row: &row,
                subqueries: 0,
                path_root: false,
            });
        }
    }
}

/// Replaces names that [`RowRefs::row`] takes for rows, outside the
/// subqueries of the expression it walks (whose names are theirs) and
/// where a name is not the start of a path (`c.path[1]`, the column of a
/// FROM item).
struct RowRefs<'a> {
    row: &'a dyn Fn(&Ident) -> Option<Expr>,
    subqueries: usize,
    /// The next expression is the root of a path.
    path_root: bool,
}

impl VisitorMut for RowRefs<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.subqueries += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.subqueries -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        // Fields are visited in order: a path's root comes right after it.
        let root = std::mem::replace(
            &mut self.path_root,
            matches!(expr, Expr::CompoundFieldAccess { .. }),
        );
        if self.subqueries == 0
            && !root
            && let Expr::Identifier(name) = expr
            && let Some(row) = (self.row)(name)
        {
            *expr = row;
        }
        ControlFlow::Continue(())
    }
}

/// The SELECTs of a query body, through its set operations.
fn selects_mut(body: &mut SetExpr) -> Vec<&mut Select> {
    match body {
        SetExpr::Select(select) => vec![select],
        SetExpr::SetOperation { left, right, .. } => {
            let mut all = selects_mut(left);
            all.extend(selects_mut(right));
            all
        }
        _ => vec![],
    }
}

/// A SELECT's FROM items by the name a query refers to them by: their
/// alias, else a table's own name.
fn from_items(select: &Select) -> HashMap<String, String> {
    let mut items = HashMap::new();
    let factors = select
        .from
        .iter()
        .flat_map(|t| std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)));
    for factor in factors {
        let name = match factor {
            TableFactor::Table { alias: Some(a), .. }
            | TableFactor::Derived { alias: Some(a), .. } => fold(&a.name),
            TableFactor::Table {
                name, alias: None, ..
            } => match name.0.last().and_then(|p| p.as_ident()) {
                Some(ident) => fold(ident),
                None => continue,
            },
            _ => continue,
        };
        items.insert(name, factor.to_string());
    }
    items
}

/// An identifier as PostgreSQL compares it: folded to lower case unless
/// quoted.
fn fold(ident: &datafusion::sql::sqlparser::ast::Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_lowercase(),
    }
}

/// `(function name, FROM item)` when `expr` is a call of a function that
/// takes a record, whose first argument is the name of a FROM item.
fn record_call(expr: &Expr, from: &HashMap<String, String>) -> Option<(String, String)> {
    let Expr::Function(Function {
        name,
        args: FunctionArguments::List(list),
        ..
    }) = expr
    else {
        return None;
    };
    let function = name.0.last()?.as_ident()?.value.to_ascii_lowercase();
    let arity = match function.as_str() {
        "row_to_json" => 1..=2,
        "to_json" | "to_jsonb" | "json_agg" | "jsonb_agg" => 1..=1,
        _ => return None,
    };
    if !arity.contains(&list.args.len()) {
        return None;
    }
    let FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(ident))) = &list.args[0] else {
        return None;
    };
    Some((function, from.get(&fold(ident))?.clone()))
}

/// The call with its record spelled out as `columns`; `None` when it
/// cannot be (a `pretty` argument that is not a constant).
fn spell_out(call: &Expr, function: &str, columns: &[String]) -> Option<Expr> {
    let Expr::Function(Function {
        args: FunctionArguments::List(list),
        ..
    }) = call
    else {
        return None;
    };
    let FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(row))) = &list.args[0] else {
        return None;
    };
    let pretty = match list.args.get(1) {
        None => false,
        Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v)))) => match &v.value {
            Value::Boolean(b) => *b,
            _ => return None,
        },
        Some(_) => return None,
    };
    let pairs: Vec<String> = columns
        .iter()
        .map(|c| {
            format!(
                "'{}', {row}.\"{}\"",
                crate::names::shown(c).replace('\'', "''"),
                c.replace('"', "\"\"")
            )
        })
        .collect();
    let pairs = pairs.join(", ");
    let json = if pretty {
        format!("__ciab_row_to_json_pretty({pairs})")
    } else {
        format!("__ciab_row_to_json({pairs})")
    };
    let jsonb = format!("jsonb_build_object({pairs})");
    // json_agg sets records apart from json values.
    let record = format!("__ciab_record({pairs})");
    let text = match function {
        "row_to_json" | "to_json" => json,
        "to_jsonb" => jsonb,
        // The aggregates keep their ORDER BY and FILTER: only the argument
        // changes.
        aggregate => {
            let record = parse(if aggregate == "json_agg" {
                &record
            } else {
                &jsonb
            })?;
            let mut call = call.clone();
            if let Expr::Function(Function {
                args: FunctionArguments::List(list),
                ..
            }) = &mut call
            {
                list.args[0] = FunctionArg::Unnamed(FunctionArgExpr::Expr(record));
            }
            return Some(call);
        }
    };
    parse(&text)
}

fn parse(text: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
        .ok()
}
