//! Arrays in the forms catalog queries write them and DataFusion does not
//! plan: `ARRAY(SELECT ...)`, a subquery's rows as one array (psql's `\du`
//! lists a role's memberships with it); `[pg_catalog.]unnest(a) AS x` in
//! FROM, whose one column PostgreSQL names after the alias (and
//! `generate_series` over columns or parameters, and in a select list, as
//! the unnest of its array); the JSON set-returning functions
//! (`jsonb_array_elements`, `jsonb_object_keys`, ...) in FROM and in select
//! lists, as the unnest of the list a function gives; and array literals
//! written as text (`polroles = '{0}'`, `'{a,b}'::text[]`); arrays
//! compared by order (`<`, `>=`), as PostgreSQL orders them; and `WITH
//! ORDINALITY` on any function in FROM, which DataFusion refuses for unnest
//! and drops for table functions.
//!
//! ```text
//!  ARRAY(SELECT e FROM f WHERE w ORDER BY o)
//!    ──► __ciab_array_or_empty((SELECT array_agg(e ORDER BY o) FROM f WHERE w))
//! ```
//!
//! The rewrite is exact for a plain SELECT of one column: array_agg keeps
//! the order, NULL elements and duplicates, and the wrapper turns the NULL
//! that array_agg gives for no rows into PostgreSQL's empty array. Any other
//! subquery (GROUP BY, DISTINCT, LIMIT, set operations) is left alone, so
//! DataFusion refuses it rather than answering wrongly.

use std::fmt::Write as _;
use std::ops::ControlFlow;
use std::sync::Arc;

use ciab_extensions::is_comparison;
use ciab_extensions::json::{Output, SetReturning};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Array, StringBuilder};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Field, Fields, Time64MicrosecondType, TimeUnit,
};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result, ScalarValue, exec_err, internal_err};
use datafusion::functions_nested::expr_fn::array_has_all;
use datafusion::logical_expr::expr::{Cast, ScalarFunction};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::type_coercion::binary::comparison_coercion;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr as PlanExpr, ExprSchemable, LogicalPlan, Operator,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentClause, FunctionArgumentList,
    FunctionArguments, GroupByExpr, Ident, ObjectName, OrderByKind, Query, SelectItem, SetExpr,
    Statement, TableAlias, TableAliasColumnDef, TableFactor, Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{Error, sqlstate, to_df};
use crate::pg_functions::type_name;

pub(crate) const ARRAY_OR_EMPTY: &str = "__ciab_array_or_empty";
const ARRAY_TEXT: &str = "__ciab_array_text";
const RECORD_TEXT: &str = "__ciab_record_text";
const ARRAY_CMP: &str = "__ciab_array_cmp";

pub fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(ArrayOrEmpty {
        signature: Signature::any(1, Volatility::Immutable),
    }));
}

/// Rewrites every `ARRAY(subquery)` of a statement that can be rewritten,
/// and every `unnest` in FROM.
pub fn rewrite(statement: &mut Statement) {
    let _ = statement.visit(&mut Rewriter);
}

struct Rewriter;

impl VisitorMut for Rewriter {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        // `LATERAL f(...)`: in PostgreSQL every function in FROM may see
        // the tables before it, so the keyword changes nothing.
        if let TableFactor::Function {
            name,
            args,
            with_ordinality,
            alias,
            ..
        } = factor
            && set_returning_function(name).is_some()
        {
            let ordinality = if *with_ordinality {
                " WITH ORDINALITY"
            } else {
                ""
            };
            let alias = alias.as_ref().map(|a| format!(" {a}")).unwrap_or_default();
            let args = args.iter().map(ToString::to_string).collect::<Vec<_>>();
            *factor = parse_query(&format!(
                "SELECT * FROM {name}({}){ordinality}{alias}",
                args.join(", ")
            ))
            .and_then(|q| match *q.body {
                SetExpr::Select(select) => select.from.into_iter().next().map(|t| t.relation),
                _ => None,
            })
            .expect("a function the parser read reads again without LATERAL");
        }
        if let TableFactor::Table {
            name,
            alias,
            args: Some(args),
            with_ordinality,
            ..
        } = factor
            && let Some(function) = set_returning_function(name)
        {
            let exprs = positional(&args.args);
            // generate_series of constants stays DataFusion's streaming
            // table function, which needs its arguments' values while the
            // statement is planned; one over columns (a correlated
            // subquery's) or parameters is the unnest of the array it would
            // produce.
            let mut columns = vec![];
            if let (Some(srf), Some(exprs)) = (set_returning(function), exprs.as_ref())
                && !*with_ordinality
                && let Some(subquery) = json_rows(&srf, exprs)
            {
                let named = alias_or_function(alias, function);
                // A function whose one column has its own name (not
                // `value`) names it after the alias, as unnest does.
                if let [only] = srf.outputs
                    && only.name == function
                {
                    name_column_after_alias(named);
                }
                *factor = TableFactor::Derived {
                    lateral: false,
                    subquery: Box::new(subquery),
                    alias: alias.take(),
                    sample: None,
                };
                return ControlFlow::Continue(());
            }
            let array_exprs = match (function, exprs) {
                ("unnest", Some(exprs)) => Some(exprs),
                (json, Some(exprs)) if let Some(srf) = set_returning(json) => {
                    columns = srf
                        .outputs
                        .iter()
                        .map(|o| TableAliasColumnDef::from_name(o.name))
                        .collect();
                    Some(
                        srf.outputs
                            .iter()
                            .map(|o| call(o.list, exprs.clone(), vec![]))
                            .collect(),
                    )
                }
                ("generate_series", Some(exprs)) if exprs.iter().any(varies) => {
                    Some(vec![call("generate_series", exprs, vec![])])
                }
                _ => None,
            };
            if let Some(array_exprs) = array_exprs {
                let named = alias_or_function(alias, function);
                if named.columns.is_empty() {
                    named.columns = columns;
                }
                *factor = TableFactor::UNNEST {
                    alias: alias.take(),
                    array_exprs,
                    with_offset: false,
                    with_offset_alias: None,
                    with_ordinality: *with_ordinality,
                };
            } else if function == "generate_series" && !*with_ordinality {
                // DataFusion's table function calls its column `value`.
                name_column_after_alias(alias_or_function(alias, function));
            }
        }
        if let TableFactor::UNNEST {
            alias, array_exprs, ..
        } = factor
            && array_exprs.len() == 1
        {
            name_column_after_alias(alias_or_function(alias, "unnest"));
        }
        number_unnested(factor);
        number_function_rows(factor);
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = query.body.as_mut() {
            select
                .projection
                .iter_mut()
                .for_each(select_item_set_returning);
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Function(Function {
            name,
            args: FunctionArguments::Subquery(query),
            ..
        }) = expr
            && name.0.len() == 1
            && name.0[0]
                .as_ident()
                .is_some_and(|i| i.value.eq_ignore_ascii_case("array"))
            && let Some(aggregated) = aggregate(query)
        {
            *expr = call(
                ARRAY_OR_EMPTY,
                vec![Expr::Subquery(Box::new(aggregated))],
                vec![],
            );
        }
        ControlFlow::Continue(())
    }
}

/// `UNNEST(a, ...) WITH ORDINALITY` as DataFusion plans it: one more array,
/// of the numbers from 1 to the longest array's length, unnested beside
/// the others (as PostgreSQL does, the shorter arrays are padded with
/// NULLs). Numbering within the arrays keeps it right where they come from
/// the rows of an outer table. Over several arrays without a column list
/// the columns have no PostgreSQL names here, so that stays DataFusion's
/// refusal (0A000).
fn number_unnested(factor: &mut TableFactor) {
    let TableFactor::UNNEST {
        alias: Some(alias),
        array_exprs,
        with_ordinality: with_ordinality @ true,
        ..
    } = factor
    else {
        return;
    };
    if alias.columns.len() < array_exprs.len() {
        return;
    }
    let lengths: Vec<Expr> = array_exprs
        .iter()
        .map(|a| call("cardinality", vec![a.clone()], vec![]))
        .collect();
    let longest = match <[Expr; 1]>::try_from(lengths) {
        Ok([only]) => only,
        Err(lengths) => call("greatest", lengths, vec![]),
    };
    array_exprs.push(call("generate_series", vec![number(1), longest], vec![]));
    if alias.columns.len() == array_exprs.len() - 1 {
        alias
            .columns
            .push(TableAliasColumnDef::from_name(ORDINALITY));
    }
    *with_ordinality = false;
}

/// Any other table function `WITH ORDINALITY` (DataFusion would drop the
/// clause): its rows numbered as they come, in a derived table.
/// `generate_series` of constants, which stays a streaming table function,
/// is one. A table function's arguments are constants, so its rows are
/// one run and the numbering is that of its output.
fn number_function_rows(factor: &mut TableFactor) {
    let TableFactor::Table {
        name,
        alias,
        args: Some(_),
        with_ordinality: with_ordinality @ true,
        ..
    } = factor
    else {
        return;
    };
    *with_ordinality = false;
    let function = name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map_or_else(|| name.to_string(), |i| i.value.to_ascii_lowercase());
    let mut outer = alias.take().unwrap_or_else(|| TableAlias {
        explicit: false,
        name: Ident::new(&function),
        columns: vec![],
        at: None,
    });
    // A one-column function's column is named after the alias.
    if function == "generate_series" && outer.columns.is_empty() {
        outer.columns = vec![
            TableAliasColumnDef::from_name(outer.name.value.clone()),
            TableAliasColumnDef::from_name(ORDINALITY),
        ];
    }
    let numbered =
        format!("SELECT *, CAST(row_number() OVER () AS BIGINT) AS {ORDINALITY} FROM {factor}");
    let subquery = parse_query(&numbered).expect("a table function the parser read reads again");
    *factor = TableFactor::Derived {
        lateral: false,
        subquery,
        alias: Some(outer),
        sample: None,
    };
}

/// A query ciab wrote from parts the parser read.
fn parse_query(sql: &str) -> Option<Box<Query>> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_query())
        .ok()
}

/// The column that numbers a function's rows: PostgreSQL's name for it.
const ORDINALITY: &str = "ordinality";

fn number(n: i64) -> Expr {
    Expr::value(Value::Number(n.to_string(), false))
}

/// A function's alias in FROM: the one written, or without one the
/// function's name, which PostgreSQL names it by.
fn alias_or_function<'a>(alias: &'a mut Option<TableAlias>, function: &str) -> &'a mut TableAlias {
    alias.get_or_insert_with(|| TableAlias {
        explicit: false,
        name: Ident::new(function),
        columns: vec![],
        at: None,
    })
}

/// Names a one-column function's column after its alias, as PostgreSQL
/// does, unless the alias names its columns.
fn name_column_after_alias(alias: &mut TableAlias) {
    if alias.columns.is_empty() {
        alias.columns = vec![TableAliasColumnDef::from_name(alias.name.value.clone())];
    }
}

/// The arguments of a call, when all are positional expressions.
pub(crate) fn positional(args: &[FunctionArg]) -> Option<Vec<Expr>> {
    args.iter()
        .map(|arg| match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// `unnest`, `generate_series` or one of ciab's set-returning functions,
/// maybe qualified with pg_catalog: its name.
fn set_returning_function(name: &ObjectName) -> Option<&'static str> {
    let qualified_ok = name.0.len() == 1
        || (name.0.len() == 2
            && name.0[0]
                .as_ident()
                .is_some_and(|i| i.value.eq_ignore_ascii_case("pg_catalog")));
    let last = name.0.last()?.as_ident()?.value.to_ascii_lowercase();
    match last.as_str() {
        "unnest" if qualified_ok => Some("unnest"),
        "generate_series" if qualified_ok => Some("generate_series"),
        name if qualified_ok => set_returning(name).map(|_| {
            // The function's own name, for the alias.
            SET_RETURNING_NAMES
                .iter()
                .find(|n| **n == name)
                .copied()
                .expect("set_returning knows it")
        }),
        _ => None,
    }
}

/// ciab's set-returning functions beyond unnest and generate_series, as
/// UNNEST of the list a scalar function gives: the JSON ones
/// (`ciab_extensions::json`) and `pg_listening_channels`.
fn set_returning(name: &str) -> Option<SetReturning> {
    match name {
        "pg_listening_channels" => Some(SetReturning {
            outputs: &[Output {
                list: crate::notify::LISTENING_CHANNELS_LIST,
                name: "pg_listening_channels",
                tag: None,
            }],
        }),
        name => ciab_extensions::json::set_returning(name),
    }
}

/// The names [`set_returning`] knows.
const SET_RETURNING_NAMES: &[&str] = &[
    "pg_listening_channels",
    "jsonb_array_elements",
    "json_array_elements",
    "jsonb_array_elements_text",
    "json_array_elements_text",
    "jsonb_object_keys",
    "json_object_keys",
    "jsonb_each",
    "jsonb_each_text",
    "json_each",
    "json_each_text",
    "jsonb_path_query",
];

/// The rows of a JSON set-returning function as a derived table over
/// UNNEST, its columns named as PostgreSQL names them and typed (UNNEST
/// leaves json values untyped while the query is planned):
/// `(SELECT u0 AS key, tag(u1) AS value FROM UNNEST(keys(doc), values(doc)) AS _rows(u0, u1))`.
fn json_rows(srf: &SetReturning, args: &[Expr]) -> Option<Query> {
    let args: Vec<String> = args.iter().map(ToString::to_string).collect();
    let args = args.join(", ");
    let mut columns = Vec::new();
    let mut lists = Vec::new();
    let mut names = Vec::new();
    for (i, output) in srf.outputs.iter().enumerate() {
        let value = match output.tag {
            Some(tag) => format!("{tag}(u{i})"),
            None => format!("u{i}"),
        };
        columns.push(format!("{value} AS {}", output.name));
        lists.push(format!("{}({args})", output.list));
        names.push(format!("u{i}"));
    }
    let sql = format!(
        "SELECT {} FROM UNNEST({}) AS _rows({})",
        columns.join(", "),
        lists.join(", "),
        names.join(", ")
    );
    parse_query(&sql).map(|q| *q)
}

/// A select list's set-returning call, `f(args)`, as `unnest(list(args))`
/// named as PostgreSQL names it.
fn select_item_set_returning(item: &mut SelectItem) {
    let (expr, alias) = match item {
        SelectItem::UnnamedExpr(e) => (e, None),
        SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.clone())),
        _ => return,
    };
    let Expr::Function(Function {
        name,
        args: FunctionArguments::List(list),
        ..
    }) = expr
    else {
        return;
    };
    let Some(function) = set_returning_function(name) else {
        return;
    };
    if function == "generate_series"
        && let Some(args) = positional(&list.args)
    {
        // DataFusion's scalar generate_series is the array of the rows.
        *item = SelectItem::ExprWithAlias {
            expr: call("unnest", vec![call(function, args, vec![])], vec![]),
            alias: alias.unwrap_or_else(|| Ident::new(function)),
        };
        return;
    }
    let (Some(srf), Some(args)) = (set_returning(function), positional(&list.args)) else {
        return;
    };
    // A record of several columns (jsonb_each) has no select-list form here.
    let [output] = srf.outputs else {
        return;
    };
    let mut unnest = call("unnest", vec![call(output.list, args, vec![])], vec![]);
    if let Some(tag) = output.tag {
        unnest = call(tag, vec![unnest], vec![]);
    }
    *item = SelectItem::ExprWithAlias {
        expr: unnest,
        alias: alias.unwrap_or_else(|| Ident::new(function)),
    };
}

/// Whether an expression reads a column or a parameter.
fn varies(expr: &Expr) -> bool {
    let mut found = false;
    let _ = datafusion::sql::sqlparser::ast::visit_expressions(expr, |e| {
        found |= matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
            || matches!(e, Expr::Value(v) if matches!(v.value, Value::Placeholder(_)));
        ControlFlow::<()>::Continue(())
    });
    found
}

/// `SELECT e FROM ... ORDER BY o` as `SELECT array_agg(e ORDER BY o) FROM ...`,
/// if the query is that simple.
fn aggregate(query: &Query) -> Option<Query> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let plain = query.with.is_none()
        && query.limit_clause.is_none()
        && query.fetch.is_none()
        && select.distinct.is_none()
        && select.having.is_none()
        && matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty())
        && select.projection.len() == 1;
    if !plain {
        return None;
    }
    let element = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e.clone(),
        _ => return None,
    };
    let order = match &query.order_by {
        None => vec![],
        Some(order_by) => match &order_by.kind {
            OrderByKind::Expressions(exprs) => vec![FunctionArgumentClause::OrderBy(exprs.clone())],
            OrderByKind::All(_) => return None,
        },
    };
    let mut aggregated = query.clone();
    aggregated.order_by = None;
    let SetExpr::Select(select) = aggregated.body.as_mut() else {
        unreachable!("checked above")
    };
    select.projection = vec![SelectItem::UnnamedExpr(call(
        "array_agg",
        vec![element],
        order,
    ))];
    Some(aggregated)
}

pub(crate) fn call(name: &str, args: Vec<Expr>, clauses: Vec<FunctionArgumentClause>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses,
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// An array, or the empty array of its type where it is NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ArrayOrEmpty {
    signature: Signature,
}

impl ScalarUDFImpl for ArrayOrEmpty {
    fn name(&self) -> &str {
        ARRAY_OR_EMPTY
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match &args[0] {
            t @ DataType::List(_) => Ok(t.clone()),
            // No rows and no type: array_agg of a NULL literal.
            DataType::Null => Ok(DataType::new_list(DataType::Null, true)),
            other => exec_err!("{ARRAY_OR_EMPTY} of {other}"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let DataType::List(field) = args.return_field.data_type() else {
            unreachable!("return_type gives a list")
        };
        let empty = ScalarValue::List(ScalarValue::new_list_nullable(&[], field.data_type()));
        let fill = |v: ScalarValue| if v.is_null() { empty.clone() } else { v };
        match &args.args[0] {
            ColumnarValue::Scalar(v) => Ok(ColumnarValue::Scalar(fill(v.clone()))),
            ColumnarValue::Array(a) => {
                let values = (0..a.len())
                    .map(|row| ScalarValue::try_from_array(a, row).map(fill))
                    .collect::<Result<Vec<_>>>()?;
                if values.is_empty() {
                    return Ok(ColumnarValue::Array(a.clone()));
                }
                Ok(ColumnarValue::Array(ScalarValue::iter_to_array(values)?))
            }
        }
    }
}

/// `array::text` as PostgreSQL prints it: `{1,2}`, `{a,"b c",NULL}`, or
/// for int2vector and oidvector (`vector`) `1 2`. Arrays of the types whose
/// element text ciab gives as PostgreSQL does (integers, text, booleans,
/// floats, dates, times and timestamps); the others (numeric, whose
/// unconstrained scale the array's type does not keep; interval, bytea)
/// are refused (0A000) rather than printed as Arrow would.
pub(crate) fn array_text(array: PlanExpr, element: &DataType, vector: bool) -> Result<PlanExpr> {
    if !printable(element) {
        return Err(datafusion::error::DataFusionError::External(Box::new(
            crate::Error::unsupported(format!("casting an array of {element} to text")),
        )));
    }
    let udf = Arc::new(ScalarUDF::new_from_impl(ArrayText {
        signature: Signature::any(2, Volatility::Immutable),
    }));
    let style = PlanExpr::Literal(ScalarValue::Boolean(Some(vector)), None);
    Ok(PlanExpr::ScalarFunction(ScalarFunction::new_udf(
        udf,
        vec![array, style],
    )))
}

/// Whether ciab prints values of `ty` inside an array or record as
/// PostgreSQL does.
fn printable(ty: &DataType) -> bool {
    ty.is_integer()
        || matches!(
            ty,
            DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Boolean
                | DataType::Float32
                | DataType::Float64
                | DataType::Date32
                | DataType::Time64(_)
                | DataType::Timestamp(..)
        )
}

/// `record::text` as PostgreSQL prints it: `(1,"a b",)`, each field its
/// type's output, quoted where record input would otherwise misread it, a
/// NULL left empty. Records of the fields [`printable`] allows; others are
/// refused (0A000).
pub(crate) fn record_text(record: PlanExpr, fields: &Fields) -> Result<PlanExpr> {
    if let Some(field) = fields.iter().find(|f| !printable(f.data_type())) {
        return Err(datafusion::error::DataFusionError::External(Box::new(
            crate::Error::unsupported(format!(
                "casting a record with a field of {} to text",
                field.data_type()
            )),
        )));
    }
    let udf = Arc::new(ScalarUDF::new_from_impl(RecordText {
        signature: Signature::any(1, Volatility::Immutable),
    }));
    Ok(PlanExpr::ScalarFunction(ScalarFunction::new_udf(
        udf,
        vec![record],
    )))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct RecordText {
    signature: Signature,
}

impl ScalarUDFImpl for RecordText {
    fn name(&self) -> &str {
        RECORD_TEXT
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let records = args.args[0].to_array(args.number_rows)?;
        let records = records.as_struct();
        let fields = records
            .columns()
            .iter()
            .map(value_texts)
            .collect::<Result<Vec<_>>>()?;
        let mut out = StringBuilder::new();
        let mut text = String::new();
        for row in 0..records.len() {
            if records.is_null(row) {
                out.append_null();
                continue;
            }
            text.clear();
            text.push('(');
            for (i, values) in fields.iter().enumerate() {
                if i > 0 {
                    text.push(',');
                }
                if let Some(value) = &values[row] {
                    text.push_str(&ciab_extensions::text_output::record_field(value));
                }
            }
            text.push(')');
            out.append_value(&text);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ArrayText {
    signature: Signature,
}

impl ScalarUDFImpl for ArrayText {
    fn name(&self) -> &str {
        ARRAY_TEXT
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let ColumnarValue::Scalar(ScalarValue::Boolean(Some(vector))) = args.args[1] else {
            return exec_err!("{ARRAY_TEXT}: the style is a boolean literal");
        };
        let lists = args.args[0].to_array(args.number_rows)?;
        let lists = lists.as_list::<i32>();
        let elements = element_texts(lists.values())?;
        let offsets = lists.value_offsets();
        let mut out = StringBuilder::new();
        for row in 0..lists.len() {
            if lists.is_null(row) {
                out.append_null();
                continue;
            }
            let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
            let texts: Vec<&str> = elements[start..end].iter().map(String::as_str).collect();
            if vector {
                out.append_value(texts.join(" "));
            } else {
                out.append_value(format!("{{{}}}", texts.join(",")));
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// Each element as PostgreSQL's array text has it: its type's output,
/// quoted where array input would otherwise misread it, or `NULL`.
fn element_texts(elements: &ArrayRef) -> Result<Vec<String>> {
    Ok(value_texts(elements)?
        .into_iter()
        .map(|text| match text {
            None => "NULL".to_string(),
            Some(text) => ciab_extensions::text_output::array_element(&text).into_owned(),
        })
        .collect())
}

/// Each value as its type's output function writes it; None for NULL.
fn value_texts(elements: &ArrayRef) -> Result<Vec<Option<String>>> {
    use ciab_extensions::text_output::{pg_text, write_date, write_time};
    let written = |write: &dyn Fn(&mut String, usize) -> std::fmt::Result| {
        (0..elements.len())
            .map(|i| {
                let mut text = String::new();
                write(&mut text, i).expect("a String takes any text");
                text
            })
            .collect::<Vec<_>>()
    };
    let texts = match elements.data_type() {
        DataType::Boolean => {
            let bools = elements.as_boolean();
            written(&|out, i| out.write_str(if bools.value(i) { "t" } else { "f" }))
        }
        DataType::Date32 => {
            let days = elements.as_primitive::<Date32Type>();
            written(&|out, i| write_date(out, days.value(i)))
        }
        DataType::Time64(_) => {
            let micros = cast(elements, &DataType::Time64(TimeUnit::Microsecond))?;
            let micros = micros.as_primitive::<Time64MicrosecondType>();
            written(&|out, i| write_time(out, micros.value(i)))
        }
        _ => {
            let texts = match pg_text(elements)? {
                Some(texts) => texts,
                None => cast(elements, &DataType::Utf8)?,
            };
            let texts = texts.as_string::<i32>();
            written(&|out, i| out.write_str(texts.value(i)))
        }
    };
    Ok(texts
        .into_iter()
        .enumerate()
        .map(|(i, text)| (!elements.is_null(i)).then_some(text))
        .collect())
}

/// Functions that count in arrays, which return an integer in PostgreSQL
/// and an unsigned bigint in DataFusion: the wire can describe that only
/// as numeric, and drivers read a decimal (psycopg a `Decimal`).
const COUNTS: [&str; 4] = [
    "array_length",
    "cardinality",
    "array_ndims",
    "array_position",
];

/// Casts the calls of [`COUNTS`] to integer, keeping their names.
pub fn integer_counts(plan: LogicalPlan) -> Result<LogicalPlan> {
    let counted = plan.transform_up_with_subqueries(|node| {
        let names = NamePreserver::new(&node);
        node.map_expressions(|expr| {
            let name = names.save(&expr);
            expr.transform_up(|e| match e {
                PlanExpr::ScalarFunction(f) if COUNTS.contains(&f.func.name()) => {
                    let call = Box::new(PlanExpr::ScalarFunction(f));
                    Ok(Transformed::yes(PlanExpr::Cast(Cast::new(
                        call,
                        DataType::Int32,
                    ))))
                }
                other => Ok(Transformed::no(other)),
            })
            .map(|t| t.update_data(|e| name.restore(e)))
        })
    })?;
    ciab_extensions::with_schemas(counted)
}

/// Turns text literals that stand for arrays into array literals: compared
/// with an array (`polroles = '{0}'`) or cast to one (`'{1,2}'::int[]`).
/// Runs on the plan as SQL planning left it, before type coercion, which
/// would refuse to compare an array with text.
pub fn array_literals(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| {
        let inputs = node.inputs();
        let schema = match inputs.as_slice() {
            [input] => Arc::clone(input.schema()),
            _ => Arc::clone(node.schema()),
        };
        let names = NamePreserver::new(&node);
        node.map_expressions(|expr| {
            let name = names.save(&expr);
            expr.transform_up(|e| literal_for(e, &schema)?.transform_data(|e| ordered(e, &schema)))
                .map(|t| t.update_data(|e| name.restore(e)))
        })
    })
    .map(|t| t.data)
}

/// `a < b`, `<=`, `>`, `>=` of two arrays as `__ciab_array_cmp(a, b) < 0`
/// and so on: PostgreSQL orders a NULL element above every value, as
/// ORDER BY, min and max here do, but DataFusion's comparison of lists put
/// it below (`'{1,NULL}' > '{1,2}'` was false). Equality needs no help.
/// Arrays whose elements type coercion cannot compare are left for it to
/// refuse, and arrays of different kinds of elements are refused here
/// ([`same_kinds`]).
fn ordered(expr: PlanExpr, schema: &DFSchema) -> Result<Transformed<PlanExpr>> {
    let PlanExpr::BinaryExpr(BinaryExpr { left, op, right }) = expr else {
        return Ok(Transformed::no(expr));
    };
    // Only comparisons ask for their operands' types.
    let lists = match is_comparison(op) {
        true => match (left.get_type(schema), right.get_type(schema)) {
            (Ok(l @ DataType::List(_)), Ok(r @ DataType::List(_))) => Some((l, r)),
            _ => None,
        },
        false => None,
    };
    let Some((l, r)) = lists else {
        return Ok(Transformed::no(PlanExpr::BinaryExpr(BinaryExpr {
            left,
            op,
            right,
        })));
    };
    if !same_kinds(&l, &r) {
        let op = match op {
            Operator::NotEq => "<>".to_string(),
            // What PostgreSQL looks for to tell whether they are distinct.
            Operator::IsDistinctFrom | Operator::IsNotDistinctFrom => "=".to_string(),
            op => op.to_string(),
        };
        // An array's type has no dimensions in PostgreSQL: integer[], not
        // integer[][].
        let type_name = |ty| {
            format!(
                "{}[]",
                type_name(&Field::new("", ty, true)).trim_end_matches("[]")
            )
        };
        return Err(to_df(Error::new(
            sqlstate::UNDEFINED_FUNCTION,
            format!(
                "operator does not exist: {} {op} {}",
                type_name(l),
                type_name(r)
            ),
        )));
    }
    let by_order = matches!(
        op,
        Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq
    );
    if !by_order || comparison_coercion(&l, &r).is_none() {
        return Ok(Transformed::no(PlanExpr::BinaryExpr(BinaryExpr {
            left,
            op,
            right,
        })));
    }
    let udf = Arc::new(ScalarUDF::new_from_impl(ArrayCmp {
        signature: Signature::any(2, Volatility::Immutable),
    }));
    let cmp = PlanExpr::ScalarFunction(ScalarFunction::new_udf(udf, vec![*left, *right]));
    let zero = PlanExpr::Literal(ScalarValue::Int32(Some(0)), None);
    Ok(Transformed::yes(PlanExpr::BinaryExpr(BinaryExpr::new(
        Box::new(cmp),
        op,
        Box::new(zero),
    ))))
}

/// Whether two types' values are of one kind, element by element for
/// arrays. PostgreSQL compares arrays of one type only, where DataFusion
/// coerces any two it can: `ARRAY[1] < ARRAY['a'::text]` was answered,
/// compared as text. Types of one kind still compare, widened by type
/// coercion: PostgreSQL refuses integer[] against bigint[] too, but the
/// answer compares the same values either way. A NULL, and a type of no
/// kind here, is left to type coercion.
fn same_kinds(left: &DataType, right: &DataType) -> bool {
    #[derive(PartialEq)]
    enum Kind {
        Number,
        Text,
        Boolean,
        Time,
        Interval,
    }
    let kind = |ty: &DataType| match ty {
        t if t.is_numeric() => Some(Kind::Number),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(Kind::Text),
        DataType::Boolean => Some(Kind::Boolean),
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) => Some(Kind::Time),
        DataType::Interval(_) | DataType::Duration(_) => Some(Kind::Interval),
        _ => None,
    };
    match (left, right) {
        (DataType::List(l), DataType::List(r)) => same_kinds(l.data_type(), r.data_type()),
        (l, r) => match (kind(l), kind(r)) {
            (Some(l), Some(r)) => l == r,
            _ => true,
        },
    }
}

/// -1, 0 or 1 as PostgreSQL orders two arrays: element by element, a NULL
/// element above every value, a shorter array below a longer one it begins;
/// NULL if either array is. Arrow's row format orders lists so, with
/// nulls last.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ArrayCmp {
    signature: Signature,
}

impl ScalarUDFImpl for ArrayCmp {
    fn name(&self) -> &str {
        ARRAY_CMP
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let left = args.args[0].to_array(rows)?;
        let right = args.args[1].to_array(rows)?;
        let Some(common) = comparison_coercion(left.data_type(), right.data_type()) else {
            // `ordered` calls this only for arrays that compare.
            return internal_err!(
                "{ARRAY_CMP} of arrays of {} and {}",
                left.data_type(),
                right.data_type()
            );
        };
        let (left, right) = (cast(&left, &common)?, cast(&right, &common)?);
        let nulls_last = SortOptions {
            descending: false,
            nulls_first: false,
        };
        let converter = RowConverter::new(vec![SortField::new_with_options(common, nulls_last)])?;
        let left_rows = converter.convert_columns(&[Arc::clone(&left)])?;
        let right_rows = converter.convert_columns(&[Arc::clone(&right)])?;
        let order: Int32Array = (0..rows)
            .map(|i| {
                (left.is_valid(i) && right.is_valid(i))
                    .then(|| left_rows.row(i).cmp(&right_rows.row(i)) as i32)
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(order)))
    }
}

fn literal_for(expr: PlanExpr, schema: &DFSchema) -> Result<Transformed<PlanExpr>> {
    let array_type = |e: &PlanExpr| match e.get_type(schema) {
        Ok(DataType::List(field)) => Some(field.data_type().clone()),
        _ => None,
    };
    let text = |e: &PlanExpr| match e {
        PlanExpr::Literal(ScalarValue::Utf8(Some(t)), _) => Some(t.clone()),
        _ => None,
    };
    Ok(match expr {
        PlanExpr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let left_array = text(&right).and_then(|_| array_type(&left));
            let right_array = text(&left).and_then(|_| array_type(&right));
            let (left, right) = match (left_array, right_array) {
                (Some(element), _) => {
                    let literal = parse_array_literal(&text(&right).expect("checked"), &element)?;
                    (left, Box::new(literal))
                }
                (None, Some(element)) => {
                    let literal = parse_array_literal(&text(&left).expect("checked"), &element)?;
                    (Box::new(literal), right)
                }
                (None, None) => {
                    return Ok(Transformed::no(PlanExpr::BinaryExpr(BinaryExpr {
                        left,
                        op,
                        right,
                    })));
                }
            };
            // SQL planning made containment of arrays a function call
            // where both sides were arrays; here one has just become one.
            Transformed::yes(match op {
                Operator::AtArrow => array_has_all(*left, *right),
                Operator::ArrowAt => array_has_all(*right, *left),
                op => PlanExpr::BinaryExpr(BinaryExpr { left, op, right }),
            })
        }
        PlanExpr::Cast(Cast { expr, field })
            if text(&expr).is_some() && matches!(field.data_type(), DataType::List(_)) =>
        {
            let DataType::List(element) = field.data_type() else {
                unreachable!("matched above")
            };
            Transformed::yes(parse_array_literal(
                &text(&expr).expect("checked"),
                element.data_type(),
            )?)
        }
        other => Transformed::no(other),
    })
}

/// PostgreSQL's array input syntax, one dimension: `{1,2}`, `{}`,
/// `{"a b",NULL,"say \"hi\""}`; each element as the element type's text
/// input.
fn parse_array_literal(text: &str, element: &DataType) -> Result<PlanExpr> {
    Ok(PlanExpr::Literal(
        ciab_extensions::text_input::array_from_text(text, element)?,
        None,
    ))
}
