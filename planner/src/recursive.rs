//! WITH RECURSIVE's SEARCH and CYCLE clauses (SQL:1999, PostgreSQL 14),
//! which sqlparser does not read.
//!
//! ```text
//!  WITH RECURSIVE t(id, parent) AS (SELECT ... UNION ALL SELECT ... FROM t ...)
//!    SEARCH DEPTH FIRST BY id SET ord
//!    CYCLE id SET is_cycle USING path
//!  SELECT ...
//!
//!  text ── extract: the clauses are cut out, token by token ──► sqlparser
//!  AST  ── rewrite: each becomes columns of the query's two SELECTs
//! ```
//!
//! The rewrite is the one the standard defines and PostgreSQL performs, so
//! the columns hold what PostgreSQL's do and print as its records do:
//! - `SEARCH DEPTH FIRST BY c SET ord`: `ord` is the array of the rows
//!   `ROW(c)` on the way to this one; ordering by it walks depth first.
//! - `SEARCH BREADTH FIRST BY c SET ord`: `ord` is `ROW(depth, c)`.
//! - `CYCLE c SET mark [TO v DEFAULT d] USING path`: `path` is the array of
//!   the rows `ROW(c)` on the way, `mark` says whether this row's `ROW(c)`
//!   was on it before; a marked row is kept but not followed, so a walk
//!   over a cycle ends.
//!
//! The recursive SELECT's rows are built from its own expressions, whose
//! types may differ from the first SELECT's (an `int` column against the
//! `bigint` literal 1) where PostgreSQL would convert them to the WITH
//! query's column types. [`CastLike`] converts them to the type of the row
//! they extend.
//!
//! A bare NULL in the first SELECT (or VALUES) of a recursive WITH query
//! is typed text, as PostgreSQL resolves a value of unknown type there;
//! DataFusion's Null type is one no row of the recursive SELECT converts to.

use std::ops::ControlFlow;

use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result as DfResult, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    CastKind, Cte, DataType as SqlDataType, Expr, Ident, Parens, Query, Select, SelectItem,
    SetExpr, SetOperator, TableAlias, TableAliasColumnDef, TableFactor, Value, VisitMut,
    VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::{Keyword, RESERVED_FOR_COLUMN_ALIAS};
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Span, Token, TokenWithSpan, Tokenizer};

use crate::error::{Error, Result, sqlstate};
use crate::names::{contains_ignore_ascii_case, normalize, pg_name};
use crate::session::Parsed;

/// The SEARCH and CYCLE clauses of one recursive query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Clauses {
    /// The WITH query's name.
    cte: String,
    search: Option<Search>,
    cycle: Option<Cycle>,
}

#[derive(Debug, Clone, PartialEq)]
struct Search {
    breadth_first: bool,
    columns: Vec<Ident>,
    set: Ident,
}

#[derive(Debug, Clone, PartialEq)]
struct Cycle {
    columns: Vec<Ident>,
    mark: Ident,
    /// The mark's values for a cycle and otherwise, as SQL text.
    values: (String, String),
    path: Ident,
}

/// The query string with every SEARCH and CYCLE clause of a recursive query
/// cut out, and the clauses; None where there are none.
pub(crate) fn extract(sql: &str) -> Result<Option<(String, Vec<Clauses>)>> {
    if !contains_ignore_ascii_case(sql, "with")
        || !(contains_ignore_ascii_case(sql, "search") || contains_ignore_ascii_case(sql, "cycle"))
    {
        return Ok(None);
    }
    // Text that does not tokenize is the parser's to report.
    let Ok(spans) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location() else {
        return Ok(None);
    };
    let (tokens, spans): (Vec<Token>, Vec<Span>) = spans
        .into_iter()
        .map(|TokenWithSpan { token, span }| (token, span))
        .unzip();
    let words: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i], Token::Whitespace(_)))
        .collect();
    let mut found = Vec::new();
    // Open parentheses, and for each closed one where it opened; the
    // tokens cut out.
    let mut open = Vec::new();
    let mut opened_at = vec![None; words.len()];
    let mut blanks = vec![false; tokens.len()];
    let mut at = 0;
    while at < words.len() {
        match tokens[words[at]] {
            Token::LParen => open.push(at),
            Token::RParen => {
                if let Some(start) = open.pop() {
                    opened_at[at] = Some(start);
                    let mut cursor = Cursor {
                        sql,
                        tokens: &tokens,
                        spans: &spans,
                        words: &words,
                        at: at + 1,
                    };
                    if cursor.peek_clause()
                        && let Some(cte) = cte_name(&tokens, &words, &opened_at, start)
                    {
                        let (search, cycle) = cursor.clauses()?;
                        let end = cursor.at;
                        for &i in &words[at + 1..end] {
                            blanks[i] = true;
                        }
                        found.push(Clauses { cte, search, cycle });
                        at = end;
                        continue;
                    }
                }
            }
            _ => {}
        }
        at += 1;
    }
    if found.is_empty() {
        return Ok(None);
    }
    Ok(Some((blanked_text(&tokens, &blanks), found)))
}

/// The text of `tokens` with those marked in `blanks` cut out: each as
/// spaces of its width, so that the positions of errors after it still
/// point into the client's text.
pub(crate) fn blanked_text(tokens: &[Token], blanks: &[bool]) -> String {
    debug_assert_eq!(tokens.len(), blanks.len(), "a mark for every token");
    tokens
        .iter()
        .zip(blanks)
        .map(|(token, &blank)| match token.to_string() {
            word if blank => " ".repeat(word.chars().count()),
            text => text,
        })
        .collect()
}

/// The name of the WITH query whose body opens at `words[start]`: after
/// `name [(columns)] AS [[NOT] MATERIALIZED]`.
fn cte_name(
    tokens: &[Token],
    words: &[usize],
    opened_at: &[Option<usize>],
    start: usize,
) -> Option<String> {
    let keyword = |at: usize| match &tokens[words[at]] {
        Token::Word(w) if w.quote_style.is_none() => Some(w.keyword),
        _ => None,
    };
    let mut at = start.checked_sub(1)?;
    if keyword(at) == Some(Keyword::MATERIALIZED) {
        at = at.checked_sub(1)?;
        if keyword(at) == Some(Keyword::NOT) {
            at = at.checked_sub(1)?;
        }
    }
    if keyword(at) != Some(Keyword::AS) {
        return None;
    }
    at = at.checked_sub(1)?;
    if tokens[words[at]] == Token::RParen {
        at = opened_at[at]?.checked_sub(1)?;
    }
    match &tokens[words[at]] {
        Token::Word(w) => Some(normalize(&w.clone().into_ident(Span::empty()))),
        _ => None,
    }
}

/// Reads the clauses, word by word.
struct Cursor<'a> {
    sql: &'a str,
    tokens: &'a [Token],
    spans: &'a [Span],
    words: &'a [usize],
    /// The next word's index in `words`.
    at: usize,
}

impl Cursor<'_> {
    fn token(&self) -> Option<&Token> {
        self.words.get(self.at).map(|&i| &self.tokens[i])
    }

    /// Whether the next word is the unquoted keyword `word`.
    fn is(&self, word: &str) -> bool {
        matches!(self.token(), Some(Token::Word(w)) if w.quote_style.is_none()
            && w.value.eq_ignore_ascii_case(word))
    }

    fn peek_clause(&self) -> bool {
        self.is("SEARCH") || self.is("CYCLE")
    }

    fn syntax_error(&self) -> Error {
        let (message, offset) = match self.words.get(self.at) {
            Some(&i) => (
                format!("syntax error at or near \"{}\"", self.tokens[i]),
                crate::graph::offset(self.sql, self.spans[i].start),
            ),
            None => ("syntax error at end of input".to_string(), self.sql.len()),
        };
        let mut error = Error::new(sqlstate::SYNTAX_ERROR, message);
        error.position = Some(self.sql[..offset].chars().count() + 1);
        error
    }

    fn expect(&mut self, word: &str) -> Result<()> {
        if !self.is(word) {
            return Err(self.syntax_error());
        }
        self.at += 1;
        Ok(())
    }

    /// A column name: a word, quoted or not a reserved one.
    fn ident(&mut self) -> Result<Ident> {
        match self.token() {
            Some(Token::Word(w))
                if w.quote_style.is_some() || !RESERVED_FOR_COLUMN_ALIAS.contains(&w.keyword) =>
            {
                let ident = w.clone().into_ident(Span::empty());
                self.at += 1;
                Ok(ident)
            }
            _ => Err(self.syntax_error()),
        }
    }

    fn idents(&mut self) -> Result<Vec<Ident>> {
        let mut idents = vec![self.ident()?];
        while self.token() == Some(&Token::Comma) {
            self.at += 1;
            idents.push(self.ident()?);
        }
        Ok(idents)
    }

    /// A cycle mark's value: one literal.
    fn value(&mut self) -> Result<String> {
        match self.token() {
            Some(token @ (Token::Number(..) | Token::SingleQuotedString(_) | Token::Word(_))) => {
                let text = token.to_string();
                self.at += 1;
                Ok(text)
            }
            _ => Err(self.syntax_error()),
        }
    }

    /// `[SEARCH ...] [CYCLE ...]`, in that order.
    fn clauses(&mut self) -> Result<(Option<Search>, Option<Cycle>)> {
        let search = if self.is("SEARCH") {
            self.at += 1;
            let breadth_first = self.is("BREADTH");
            if !breadth_first && !self.is("DEPTH") {
                return Err(self.syntax_error());
            }
            self.at += 1;
            self.expect("FIRST")?;
            self.expect("BY")?;
            let columns = self.idents()?;
            self.expect("SET")?;
            Some(Search {
                breadth_first,
                columns,
                set: self.ident()?,
            })
        } else {
            None
        };
        let cycle = if self.is("CYCLE") {
            self.at += 1;
            let columns = self.idents()?;
            self.expect("SET")?;
            let mark = self.ident()?;
            let values = if self.is("TO") {
                self.at += 1;
                let cycle = self.value()?;
                self.expect("DEFAULT")?;
                (cycle, self.value()?)
            } else {
                ("TRUE".to_string(), "FALSE".to_string())
            };
            self.expect("USING")?;
            Some(Cycle {
                columns,
                mark,
                values,
                path: self.ident()?,
            })
        } else {
            None
        };
        Ok((search, cycle))
    }
}

/// Rewrites each recursive query that has clauses, in the order the text
/// gave them.
pub(crate) fn rewrite(statements: &mut [Parsed], clauses: Vec<Clauses>) -> Result<()> {
    let mut rewriter = Rewriter {
        pending: clauses,
        error: None,
    };
    for statement in statements {
        if let Parsed::Sql(DfStatement::Statement(statement)) = statement {
            let _ = statement.visit(&mut rewriter);
        }
        if let Some(error) = rewriter.error.take() {
            return Err(error);
        }
    }
    match rewriter.pending.first() {
        None => Ok(()),
        Some(clauses) => Err(Error::unsupported(format!(
            "a SEARCH or CYCLE clause of WITH query \"{}\" outside a SELECT, INSERT, UPDATE or \
             DELETE of WITH RECURSIVE",
            clauses.cte
        ))),
    }
}

struct Rewriter {
    pending: Vec<Clauses>,
    error: Option<Error>,
}

impl VisitorMut for Rewriter {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let Some(with) = query.with.as_mut() else {
            return ControlFlow::Continue(());
        };
        for cte in &mut with.cte_tables {
            let Some(next) = self.pending.first() else {
                break;
            };
            if next.cte != normalize(&cte.alias.name) {
                continue;
            }
            let clauses = self.pending.remove(0);
            let applied = match with.recursive {
                true => apply(cte, &clauses),
                false => Err(Error::new(
                    sqlstate::SYNTAX_ERROR,
                    "WITH query is not recursive",
                )),
            };
            if let Err(error) = applied {
                self.error = Some(error);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }
}

fn unsupported_form(what: &str) -> Error {
    Error::new(
        sqlstate::FEATURE_NOT_SUPPORTED,
        format!("with a SEARCH or CYCLE clause, {what}"),
    )
}

/// Adds the clauses' columns to the WITH query.
fn apply(cte: &mut Cte, clauses: &Clauses) -> Result<()> {
    let Some((left, right)) = union_terms(cte.query.body.as_mut()) else {
        return Err(unsupported_form(
            "the WITH query must be a UNION of a SELECT and a SELECT",
        ));
    };
    let Some(mut first) = First::of(left) else {
        return Err(unsupported_form(
            "the left side of the UNION must be a SELECT",
        ));
    };
    let SetExpr::Select(right) = right else {
        return Err(unsupported_form(
            "the right side of the UNION must be a SELECT",
        ));
    };
    let names = first.column_names(&cte.alias)?;
    if cte.alias.columns.is_empty() && matches!(first, First::Values(_)) {
        // VALUES names no columns: the names of the columns added below
        // are given in a column list.
        cte.alias.columns = names
            .iter()
            .map(|name| TableAliasColumnDef {
                name: Ident::new(name),
                data_type: None,
            })
            .collect();
    }
    let reference = self_reference(right, &clauses.cte).ok_or_else(|| {
        unsupported_form(&format!(
            "the recursive reference to WITH query \"{}\" must be at the top level of its \
             right-hand SELECT",
            clauses.cte
        ))
    })?;
    check_added_names(&names, clauses)?;
    // Each added column: its name, its values in the first term (one per
    // row of a VALUES) and its value in the recursive one, as SQL text.
    let mut columns: Vec<(&Ident, Vec<String>, String)> = Vec::new();
    if let Some(search) = &clauses.search {
        let positions = positions(&names, &search.columns, "search")?;
        let (firsts, next) = (first.rows(&positions)?, row(right, &positions)?);
        let set = format!("{reference}.{}", search.set);
        let (firsts, next) = if search.breadth_first {
            (
                firsts
                    .iter()
                    .map(|f| format!("struct(CAST(0 AS bigint), {f})"))
                    .collect(),
                format!("{CAST_LIKE}(struct(get_field({set}, 'c0') + 1, {next}), {set})"),
            )
        } else {
            (
                firsts
                    .iter()
                    .map(|f| format!("make_array(struct({f}))"))
                    .collect(),
                format!("array_append({set}, {CAST_LIKE}(struct({next}), {set}[1]))"),
            )
        };
        columns.push((&search.set, firsts, next));
    }
    if let Some(cycle) = &clauses.cycle {
        let positions = positions(&names, &cycle.columns, "cycle")?;
        let (firsts, next) = (first.rows(&positions)?, row(right, &positions)?);
        let path = format!("{reference}.{}", cycle.path);
        let (yes, no) = &cycle.values;
        let next = format!("{CAST_LIKE}(struct({next}), {path}[1])");
        columns.push((
            &cycle.mark,
            vec![no.clone(); firsts.len()],
            format!("CASE WHEN {next} = ANY({path}) THEN {yes} ELSE {no} END"),
        ));
        columns.push((
            &cycle.path,
            firsts
                .iter()
                .map(|f| format!("make_array(struct({f}))"))
                .collect(),
            format!("array_append({path}, {next})"),
        ));
        // A row that closed a cycle is kept but not followed.
        let followed = parse_expr(&format!("{reference}.{} <> {yes}", cycle.mark))?;
        right.selection = Some(match right.selection.take() {
            Some(selection) => Expr::BinaryOp {
                left: Box::new(Expr::Nested(Box::new(selection))),
                op: datafusion::sql::sqlparser::ast::BinaryOperator::And,
                right: Box::new(followed),
            },
            None => followed,
        });
    }
    for (name, firsts, next) in columns {
        let firsts = firsts
            .iter()
            .map(|f| parse_expr(f))
            .collect::<Result<_>>()?;
        first.push(name, firsts);
        right.projection.push(SelectItem::ExprWithAlias {
            expr: parse_expr(&next)?,
            alias: name.clone(),
        });
        if !cte.alias.columns.is_empty() {
            cte.alias.columns.push(TableAliasColumnDef {
                name: name.clone(),
                data_type: None,
            });
        }
    }
    Ok(())
}

/// The WITH query's first term: a SELECT, or a VALUES list.
enum First<'a> {
    Select(&'a mut Select),
    Values(&'a mut Vec<Parens<Vec<Expr>>>),
}

/// The terms of a WITH query's UNION: the first and the one that may
/// refer to the query itself.
fn union_terms(body: &mut SetExpr) -> Option<(&mut SetExpr, &mut SetExpr)> {
    match body {
        SetExpr::SetOperation {
            op: SetOperator::Union,
            left,
            right,
            ..
        } => Some((left.as_mut(), right.as_mut())),
        _ => None,
    }
}

impl<'a> First<'a> {
    fn of(term: &'a mut SetExpr) -> Option<Self> {
        match term {
            SetExpr::Select(select) => Some(First::Select(select)),
            SetExpr::Values(values) => Some(First::Values(&mut values.rows)),
            _ => None,
        }
    }

    /// The WITH query's column names: its column list's, else the first
    /// term's.
    fn column_names(&self, alias: &TableAlias) -> Result<Vec<String>> {
        if !alias.columns.is_empty() {
            return Ok(alias.columns.iter().map(|c| normalize(&c.name)).collect());
        }
        let select = match self {
            First::Select(select) => select,
            // PostgreSQL's names for the columns of VALUES.
            First::Values(rows) => {
                let width = rows.first().map_or(0, |row| row.content.len());
                return Ok((1..=width).map(|i| format!("column{i}")).collect());
            }
        };
        select
            .projection
            .iter()
            .map(|item| match item {
                SelectItem::ExprWithAlias { alias, .. } => Ok(normalize(alias)),
                SelectItem::UnnamedExpr(Expr::Identifier(ident)) => Ok(normalize(ident)),
                SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => Ok(normalize(
                    parts.last().expect("a compound identifier has parts"),
                )),
                _ => Err(unsupported_form(&format!(
                    "give WITH query \"{}\" a column list or name each of its columns",
                    normalize(&alias.name)
                ))),
            })
            .collect()
    }

    /// The values of the columns at `positions`, as SQL text: one for a
    /// SELECT, one per row for VALUES.
    fn rows(&self, positions: &[usize]) -> Result<Vec<String>> {
        match self {
            First::Select(select) => Ok(vec![row(select, positions)?]),
            First::Values(rows) => rows
                .iter()
                .map(|values| {
                    let exprs = positions
                        .iter()
                        .map(|&at| values.content.get(at).map(ToString::to_string))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| {
                            unsupported_form("each VALUES row must have every column")
                        })?;
                    Ok(exprs.join(", "))
                })
                .collect(),
        }
    }

    /// Adds a column with its values (one per row of VALUES).
    fn push(&mut self, name: &Ident, values: Vec<Expr>) {
        match self {
            First::Select(select) => {
                let [expr] = <[Expr; 1]>::try_from(values).expect("a SELECT has one row");
                select.projection.push(SelectItem::ExprWithAlias {
                    expr,
                    alias: name.clone(),
                });
            }
            First::Values(rows) => {
                assert_eq!(rows.len(), values.len(), "a value per row");
                for (row, value) in rows.iter_mut().zip(values) {
                    row.content.push(value);
                }
            }
        }
    }
}

/// The name the recursive SELECT refers to the WITH query by: its alias or
/// its name, where it is one of the FROM clause's tables or joins.
fn self_reference(right: &Select, cte: &str) -> Option<String> {
    let factors = right
        .from
        .iter()
        .flat_map(|t| std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)));
    factors.into_iter().find_map(|factor| match factor {
        TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } if name.0.len() == 1
            && name.0[0]
                .as_ident()
                .is_some_and(|ident| normalize(ident) == cte) =>
        {
            Some(match alias {
                Some(alias) => alias.name.to_string(),
                None => name.to_string(),
            })
        }
        _ => None,
    })
}

/// The positions of a clause's columns among the WITH query's.
fn positions(names: &[String], columns: &[Ident], clause: &str) -> Result<Vec<usize>> {
    columns
        .iter()
        .map(|column| {
            let name = normalize(column);
            names.iter().position(|n| *n == name).ok_or_else(|| {
                Error::new(
                    sqlstate::SYNTAX_ERROR,
                    format!("{clause} column \"{name}\" not in WITH query column list"),
                )
            })
        })
        .collect()
}

/// The expressions a SELECT gives the columns at `positions`, as SQL text.
fn row(select: &Select, positions: &[usize]) -> Result<String> {
    let exprs = positions
        .iter()
        .map(|&at| match select.projection.get(at) {
            Some(SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. }) => {
                Ok(expr.to_string())
            }
            _ => Err(unsupported_form(
                "each SELECT of the WITH query must list its columns (no *)",
            )),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(exprs.join(", "))
}

/// PostgreSQL's checks of the names the clauses add.
fn check_added_names(names: &[String], clauses: &Clauses) -> Result<()> {
    // PostgreSQL reports these as syntax errors.
    let duplicate = |message: String| Err(Error::new(sqlstate::SYNTAX_ERROR, message));
    let used = |ident: &Ident| names.contains(&normalize(ident));
    if let Some(search) = &clauses.search
        && used(&search.set)
    {
        return duplicate(format!(
            "search sequence column name \"{}\" already used in WITH query column list",
            normalize(&search.set)
        ));
    }
    let Some(cycle) = &clauses.cycle else {
        return Ok(());
    };
    if used(&cycle.mark) {
        return duplicate(format!(
            "cycle mark column name \"{}\" already used in WITH query column list",
            normalize(&cycle.mark)
        ));
    }
    if used(&cycle.path) {
        return duplicate(format!(
            "cycle path column name \"{}\" already used in WITH query column list",
            normalize(&cycle.path)
        ));
    }
    if normalize(&cycle.mark) == normalize(&cycle.path) {
        return duplicate("cycle mark column name and cycle path column name are the same".into());
    }
    if let Some(search) = &clauses.search {
        let set = normalize(&search.set);
        if set == normalize(&cycle.mark) {
            return duplicate(
                "search sequence column name and cycle mark column name are the same".into(),
            );
        }
        if set == normalize(&cycle.path) {
            return duplicate(
                "search sequence column name and cycle path column name are the same".into(),
            );
        }
    }
    Ok(())
}

/// Gives each bare NULL of a recursive WITH query's first SELECT (or
/// VALUES) the type text, as PostgreSQL resolves a value of unknown type
/// there. DataFusion would type the column as its Null type, which no
/// row of the recursive SELECT converts to.
pub(crate) fn type_first_nulls(statement: &mut DfStatement) {
    struct Typer;
    impl VisitorMut for Typer {
        type Break = ();
        fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            let Some(with) = query.with.as_mut().filter(|w| w.recursive) else {
                return ControlFlow::Continue(());
            };
            for cte in &mut with.cte_tables {
                let name = normalize(&cte.alias.name);
                let Some((left, right)) = union_terms(cte.query.body.as_mut()) else {
                    continue;
                };
                let recursive = matches!(right, SetExpr::Select(select)
                    if self_reference(select, &name).is_some());
                if !recursive {
                    continue;
                }
                match First::of(left) {
                    Some(First::Select(select)) => {
                        for item in &mut select.projection {
                            match item {
                                SelectItem::ExprWithAlias { expr, .. } => as_text_if_null(expr),
                                SelectItem::UnnamedExpr(expr) if is_null(expr) => {
                                    let alias = Ident::with_quote('"', pg_name(expr));
                                    let mut expr = expr.clone();
                                    as_text_if_null(&mut expr);
                                    *item = SelectItem::ExprWithAlias { expr, alias };
                                }
                                _ => {}
                            }
                        }
                    }
                    Some(First::Values(rows)) => rows
                        .iter_mut()
                        .flat_map(|r| &mut r.content)
                        .for_each(as_text_if_null),
                    None => {}
                }
            }
            ControlFlow::Continue(())
        }
    }
    if let DfStatement::Statement(statement) = statement {
        let _ = statement.visit(&mut Typer);
    }
}

fn is_null(expr: &Expr) -> bool {
    matches!(expr, Expr::Value(v) if v.value == Value::Null)
}

fn as_text_if_null(expr: &mut Expr) {
    if is_null(expr) {
        *expr = Expr::Cast {
            kind: CastKind::DoubleColon,
            expr: Box::new(expr.clone()),
            data_type: SqlDataType::Text,
            array: false,
            format: None,
        };
    }
}

/// `__ciab_cast_like(value, like)`: the value converted to the type of
/// `like`, whose value does not matter.
const CAST_LIKE: &str = "__ciab_cast_like";

pub(crate) fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(CastLike {
        signature: Signature::any(2, Volatility::Immutable),
    }));
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CastLike {
    signature: Signature,
}

impl ScalarUDFImpl for CastLike {
    fn name(&self) -> &str {
        CAST_LIKE
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        Ok(args[1].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [value, _] = args.args.as_slice() else {
            return exec_err!("{CAST_LIKE} takes two arguments");
        };
        let target = args.return_field.data_type();
        Ok(match value {
            ColumnarValue::Scalar(v) => ColumnarValue::Scalar(v.cast_to(target)?),
            ColumnarValue::Array(a) => ColumnarValue::Array(cast(a, target)?),
        })
    }
}

fn parse_expr(sql: &str) -> Result<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut parser| parser.parse_expr())
        .map_err(|e| Error::new(sqlstate::SYNTAX_ERROR, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clauses_are_cut_out_of_the_text() {
        let (sql, clauses) = extract(
            "WITH RECURSIVE t(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM t) \
             SEARCH BREADTH FIRST BY id SET ord CYCLE id SET seen TO 'y' DEFAULT 'n' USING \
             path SELECT * FROM t",
        )
        .unwrap()
        .unwrap();
        assert!(!sql.contains("SEARCH") && !sql.contains("CYCLE") && sql.contains("FROM t"));
        assert_eq!(clauses.len(), 1);
        let Clauses { cte, search, cycle } = &clauses[0];
        assert_eq!(cte, "t");
        let search = search.as_ref().unwrap();
        assert!(search.breadth_first);
        assert_eq!(search.set.value, "ord");
        let cycle = cycle.as_ref().unwrap();
        assert_eq!(cycle.values, ("'y'".to_string(), "'n'".to_string()));
        assert_eq!(cycle.path.value, "path");
    }

    #[test]
    fn only_clauses_after_a_with_querys_body_are_read() {
        assert_eq!(
            extract("WITH RECURSIVE t AS (SELECT 'search' AS cycle) SELECT * FROM t").unwrap(),
            None
        );
        // A clause cut short is a syntax error.
        let error = extract("WITH RECURSIVE t AS MATERIALIZED (SELECT 1) CYCLE x SET y SELECT 1")
            .unwrap_err();
        assert_eq!(error.sqlstate, sqlstate::SYNTAX_ERROR);
        assert_eq!(error.message, "syntax error at or near \"SELECT\"");
    }
}
