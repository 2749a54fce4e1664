//! PostgreSQL's json and jsonb: operators, functions and casts.
//!
//! Both types are text in Arrow (`Utf8`), told apart by the field's
//! `ciab.pg_type` tag, which also names them on the wire. jsonb's text is
//! canonical (see [`value`]), so equal documents have equal text and a
//! field is extracted by scanning to it.
//!
//! ```text
//!  doc -> 'a' ->> 'b' ──────────► __ciab_jsonb_steps_text(doc, 'a', 'b')  scans the text
//!  doc @> '{}' ──ExprPlanner──► jsonb_contains(doc, '{}')       parses both
//!  doc @? '$.a' ─ExprPlanner──► jsonb_path_exists, silent     see [`path`]
//!  doc = x     ──ExprPlanner──► jsonb_sort_key(doc) = jsonb_sort_key(x)
//!  '..'::jsonb ──rewrite_plan─► jsonb_in('..')                  checks, canonicalises
//!  ORDER BY doc ─rewrite_plan─► ORDER BY jsonb_sort_key(doc)
//! ```
//!
//! Operators become functions in the SQL planner through an
//! [`ExprPlanner`], the extension point DataFusion offers for operators it
//! does not know. A cast is planned by DataFusion as a cast to a tagged
//! `Utf8`, which would neither check nor canonicalise its input;
//! [`rewrite_plan`] turns it into the type's input function right after
//! planning.

mod agg;
mod build;
mod funcs;
mod numeric;
mod path;
mod shred;
mod srf;
mod value;

use std::sync::Arc;

use ciab_storage::PG_TYPE_METADATA_KEY;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanBuilder, Int32Builder, StringBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::Column as ColumnRef;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result};
use datafusion::execution::FunctionRegistry;
use datafusion::functions_aggregate::first_last::first_value;
use datafusion::logical_expr::expr::{Cast, ScalarFunction, Sort, TryCast};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    Aggregate, BinaryExpr, ColumnarValue, Distinct, Expr, ExprSchemable, LogicalPlan, Operator,
    Projection, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::BinaryOperator;

use crate::with_schemas;

pub use shred::{containment_fields, shreddable};
pub use srf::{Output, SetReturning, set_returning};
pub use value::{Value, parse, validate};

/// Which of PostgreSQL's two JSON types a value has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Json,
    Jsonb,
}

impl Kind {
    pub fn of_field(field: &Field) -> Option<Kind> {
        match field
            .metadata()
            .get(PG_TYPE_METADATA_KEY)
            .map(String::as_str)
        {
            Some("json") => Some(Kind::Json),
            Some("jsonb") => Some(Kind::Jsonb),
            _ => None,
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Kind::Json => "json",
            Kind::Jsonb => "jsonb",
        }
    }

    /// A text field tagged with this type.
    pub fn field(self, name: &str) -> Field {
        Field::new(name, DataType::Utf8, true)
            .with_metadata([(PG_TYPE_METADATA_KEY.to_string(), self.tag().to_string())].into())
    }
}

/// The JSON type of an expression as planned: its field's tag, or the
/// target of a cast to one (DataFusion gives a cast its input's field until
/// [`rewrite_plan`] has run).
fn kind_of(expr: &Expr, schema: &DFSchema) -> Option<Kind> {
    match expr {
        Expr::Cast(Cast { field, .. }) | Expr::TryCast(TryCast { field, .. }) => {
            Kind::of_field(field)
        }
        _ => expr
            .to_field(schema)
            .ok()
            .and_then(|(_, f)| Kind::of_field(&f)),
    }
}

pub fn register(ctx: &SessionContext) {
    for udf in funcs::all()
        .into_iter()
        .chain(build::all())
        .chain(srf::all())
    {
        ctx.register_udf(udf);
    }
    ctx.register_udf(ScalarUDF::new_from_impl(SortKey::default()));
    for udaf in agg::all() {
        ctx.register_udaf(udaf);
    }
    // SessionState's registration cannot fail; the trait allows it to.
    ctx.state_ref()
        .write()
        .register_expr_planner(Arc::new(JsonOperators))
        .expect("registering an expression planner");
}

/// The input function a cast to `kind` becomes.
fn input_function(kind: Kind) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(funcs::input(kind)))
}

/// The functions behind `->` and `->>`, taking any number of steps.
const STEPS: &str = "__ciab_jsonb_steps";
const STEPS_TEXT: &str = "__ciab_jsonb_steps_text";

/// Plans PostgreSQL's JSON operators as the functions behind them.
#[derive(Debug)]
struct JsonOperators;

impl ExprPlanner for JsonOperators {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        let left = kind_of(&expr.left, schema);
        let right = kind_of(&expr.right, schema);
        let either = left.or(right);
        let call = |name: &str, args: Vec<Expr>| {
            Expr::ScalarFunction(ScalarFunction::new_udf(funcs::named(name), args))
        };
        let RawBinaryExpr {
            op,
            left: l,
            right: r,
        } = expr;
        let planned = match op {
            // A chain `doc -> a -> b ->> c` is one scan along its steps.
            BinaryOperator::Arrow | BinaryOperator::LongArrow => {
                let mut args = match l {
                    Expr::ScalarFunction(f)
                        if f.name() == STEPS && f.args.len() < funcs::PATH_ARGS_MAX =>
                    {
                        f.args
                    }
                    l => vec![l],
                };
                args.push(r);
                let text = op == BinaryOperator::LongArrow;
                call(if text { STEPS_TEXT } else { STEPS }, args)
            }
            BinaryOperator::HashArrow => call("__ciab_jsonb_path", vec![l, text_array(r)]),
            BinaryOperator::HashLongArrow => call("__ciab_jsonb_path_text", vec![l, text_array(r)]),
            BinaryOperator::Question => call("jsonb_exists", vec![l, r]),
            BinaryOperator::QuestionPipe => call("jsonb_exists_any", vec![l, text_array(r)]),
            BinaryOperator::QuestionAnd => call("jsonb_exists_all", vec![l, text_array(r)]),
            BinaryOperator::HashMinus => call("jsonb_delete_path", vec![l, text_array(r)]),
            BinaryOperator::AtQuestion => call(funcs::PATH_EXISTS_OPERATOR, vec![l, r]),
            BinaryOperator::AtAt if left == Some(Kind::Jsonb) || untyped(&l) => {
                call(funcs::PATH_MATCH_OPERATOR, vec![l, r])
            }
            BinaryOperator::AtArrow if either.is_some() => call("jsonb_contains", vec![l, r]),
            BinaryOperator::ArrowAt if either.is_some() => call("jsonb_contains", vec![r, l]),
            // jsonb || jsonb, where an untyped literal is read as jsonb;
            // text || jsonb stays text concatenation, as in PostgreSQL.
            BinaryOperator::StringConcat
                if (left == Some(Kind::Jsonb) && (right == Some(Kind::Jsonb) || untyped(&r)))
                    || (right == Some(Kind::Jsonb) && untyped(&l)) =>
            {
                call("jsonb_concat", vec![l, r])
            }
            BinaryOperator::Minus if left == Some(Kind::Jsonb) => call("jsonb_delete", vec![l, r]),
            BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq
                if left == Some(Kind::Jsonb) || right == Some(Kind::Jsonb) =>
            {
                let op = match op {
                    BinaryOperator::Eq => Operator::Eq,
                    BinaryOperator::NotEq => Operator::NotEq,
                    BinaryOperator::Lt => Operator::Lt,
                    BinaryOperator::LtEq => Operator::LtEq,
                    BinaryOperator::Gt => Operator::Gt,
                    _ => Operator::GtEq,
                };
                Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(sort_key(l)),
                    op,
                    Box::new(sort_key(r)),
                ))
            }
            op => {
                return Ok(PlannerResult::Original(RawBinaryExpr {
                    op,
                    left: l,
                    right: r,
                }));
            }
        };
        Ok(PlannerResult::Planned(planned))
    }
}

/// A literal or parameter whose type the operator decides, as PostgreSQL
/// types an unknown literal.
fn untyped(expr: &Expr) -> bool {
    matches!(expr, Expr::Literal(..) | Expr::Placeholder(_))
}

/// A path or key list operand: an array stays one; text is PostgreSQL's
/// array literal (`'{a,b}'`), which the planner reads as one.
fn text_array(expr: Expr) -> Expr {
    match &expr {
        Expr::Literal(v, _) if matches!(v.data_type(), DataType::List(_)) => expr,
        Expr::Literal(..) | Expr::Placeholder(_) => Expr::Cast(Cast::new(
            Box::new(expr),
            DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
        )),
        _ => expr,
    }
}

fn sort_key(expr: Expr) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(
        Arc::new(ScalarUDF::new_from_impl(SortKey::default())),
        vec![expr],
    ))
}

/// Gives casts to json and jsonb their input functions, and sorts and
/// groups jsonb values by jsonb's equality and order. Runs on a plan as
/// SQL planning left it.
pub fn rewrite_plan(plan: LogicalPlan) -> Result<LogicalPlan> {
    // Casts first, so that the sort keys see the types the casts give.
    let plan = with_schemas(plan.transform_up_with_subqueries(input_functions)?)?;
    let plan = with_schemas(plan.transform_up_with_subqueries(sort_keys)?)?;
    let plan = with_schemas(plan.transform_up_with_subqueries(distinct_counts)?)?;
    with_schemas(plan.transform_up_with_subqueries(group_keys)?)
}

/// A node's casts to json and jsonb as their input functions.
fn input_functions(node: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    rewrite_expressions(node, |e| match e {
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field })
            if Kind::of_field(&field).is_some() =>
        {
            let kind = Kind::of_field(&field).expect("matched");
            Ok(Transformed::yes(Expr::ScalarFunction(
                ScalarFunction::new_udf(input_function(kind), vec![*expr]),
            )))
        }
        other => Ok(Transformed::no(other)),
    })
}

/// Rewrites a node's expressions bottom up with `f`. The output columns of
/// a Projection or an Aggregate keep their names: a parent refers to them
/// so.
fn rewrite_expressions(
    node: LogicalPlan,
    mut f: impl FnMut(Expr) -> Result<Transformed<Expr>>,
) -> Result<Transformed<LogicalPlan>> {
    let names = matches!(node, LogicalPlan::Projection(_) | LogicalPlan::Aggregate(_))
        .then(NamePreserver::new_for_projection);
    node.map_expressions(|expr| {
        let saved = names.as_ref().map(|n| n.save(&expr));
        let rewritten = expr.transform_up(&mut f)?;
        Ok(match saved {
            Some(saved) if rewritten.transformed => rewritten.update_data(|e| saved.restore(e)),
            _ => rewritten,
        })
    })
}

/// A Sort's jsonb keys as sort keys in jsonb's order.
fn sort_keys(node: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Sort(mut sort) = node else {
        return Ok(Transformed::no(node));
    };
    let schema = Arc::clone(sort.input.schema());
    let mut changed = false;
    for s in &mut sort.expr {
        if kind_of(&s.expr, &schema) == Some(Kind::Jsonb) {
            *s = Sort::new(sort_key(s.expr.clone()), s.asc, s.nulls_first);
            changed = true;
        }
    }
    Ok(Transformed::new_transformed(
        LogicalPlan::Sort(sort),
        changed,
    ))
}

/// `count(DISTINCT x)` over jsonb counts values distinct by jsonb's
/// equality: it counts their sort keys.
fn distinct_counts(node: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Aggregate(agg) = &node else {
        return Ok(Transformed::no(node));
    };
    let schema = Arc::clone(agg.input.schema());
    rewrite_expressions(node, |e| match e {
        Expr::AggregateFunction(mut f)
            if f.func.name() == "count"
                && f.params.distinct
                && f.params.args.len() == 1
                && kind_of(&f.params.args[0], &schema) == Some(Kind::Jsonb) =>
        {
            let arg = f.params.args.pop().expect("one argument");
            f.params.args.push(sort_key(arg));
            Ok(Transformed::yes(Expr::AggregateFunction(f)))
        }
        other => Ok(Transformed::no(other)),
    })
}

/// GROUP BY and DISTINCT over jsonb group equal values together, as
/// PostgreSQL does (`1.0` equals `1`, so they are one group): the key is
/// the value's sort key, and the group shows one of its values.
///
/// ```text
///  Aggregate: groupBy=[doc], aggr=[count(*)]
///   ──► Projection: as_jsonb(first) AS doc, count(*)
///        Aggregate: groupBy=[jsonb_sort_key(doc)], aggr=[count(*), first_value(doc) AS first]
/// ```
fn group_keys(node: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let node = match node {
        // DISTINCT is a GROUP BY of every column.
        LogicalPlan::Distinct(Distinct::All(input))
            if input
                .schema()
                .fields()
                .iter()
                .any(|f| Kind::of_field(f) == Some(Kind::Jsonb)) =>
        {
            let every = input
                .schema()
                .columns()
                .into_iter()
                .map(Expr::Column)
                .collect();
            LogicalPlan::Aggregate(Aggregate::try_new(input, every, vec![])?)
        }
        LogicalPlan::Aggregate(agg) => LogicalPlan::Aggregate(agg),
        other => return Ok(Transformed::no(other)),
    };
    let LogicalPlan::Aggregate(agg) = node else {
        unreachable!("an aggregate, made or found");
    };
    let input_schema = Arc::clone(agg.input.schema());
    let jsonb = |e: &Expr| kind_of(e, &input_schema) == Some(Kind::Jsonb);
    if !agg.group_expr.iter().any(jsonb)
        || agg
            .group_expr
            .iter()
            .any(|e| matches!(e, Expr::GroupingSet(_)))
    {
        return Ok(Transformed::no(LogicalPlan::Aggregate(agg)));
    }
    let output = Arc::clone(&agg.schema);
    let mut group = Vec::with_capacity(agg.group_expr.len());
    let mut aggregates = agg.aggr_expr.clone();
    let mut columns = Vec::with_capacity(output.fields().len());
    for (i, e) in agg.group_expr.iter().enumerate() {
        let (qualifier, field) = output.qualified_field(i);
        if jsonb(e) {
            let shown = format!("__ciab_group_value_{i}");
            group.push(sort_key(e.clone()).alias(format!("__ciab_group_key_{i}")));
            aggregates.push(first_value(e.clone(), vec![]).alias(&shown));
            // first_value drops the column's type tag: give it back.
            let tagged = Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::new(srf::tag(Kind::Jsonb)),
                vec![Expr::Column(ColumnRef::from_name(shown))],
            ));
            columns.push(tagged.alias_qualified(qualifier.cloned(), field.name()));
        } else {
            group.push(e.clone());
            columns.push(Expr::Column(ColumnRef::new(
                qualifier.cloned(),
                field.name(),
            )));
        }
    }
    for i in agg.group_expr.len()..output.fields().len() {
        let (qualifier, field) = output.qualified_field(i);
        columns.push(Expr::Column(ColumnRef::new(
            qualifier.cloned(),
            field.name(),
        )));
    }
    let grouped = Aggregate::try_new(Arc::clone(&agg.input), group, aggregates)?;
    let shown = Projection::try_new(columns, Arc::new(LogicalPlan::Aggregate(grouped)))?;
    Ok(Transformed::yes(LogicalPlan::Projection(shown)))
}

/// `jsonb_sort_key(x)`: bytes that order as jsonb values order, so jsonb
/// comparisons and ORDER BY run as byte comparisons.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SortKey {
    signature: Signature,
}

impl Default for SortKey {
    fn default() -> Self {
        SortKey {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for SortKey {
    fn name(&self) -> &str {
        "jsonb_sort_key"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let texts = cast(&args.args[0].to_array(args.number_rows)?, &DataType::Utf8)?;
        let texts = texts.as_string::<i32>();
        let mut out = BinaryBuilder::with_capacity(texts.len(), texts.value_data().len());
        for text in texts.iter() {
            match text {
                Some(t) => out.append_value(parse(t)?.sort_key()),
                None => out.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// Text as canonical jsonb text, row by row.
pub(super) fn canonical_texts(texts: &ArrayRef) -> Result<ArrayRef> {
    let texts = cast(texts, &DataType::Utf8)?;
    let mut out = StringBuilder::new();
    for text in texts.as_string::<i32>().iter() {
        match text {
            Some(t) => out.append_value(parse(t)?.to_jsonb_text()),
            None => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

/// One row's argument to a strict JSON function, in the form it is used.
#[derive(Debug, Clone)]
enum Arg<'a> {
    Text(&'a str),
    Int(i64),
    Bool(bool),
    Texts(Vec<Option<String>>),
}

impl<'a> Arg<'a> {
    fn type_name(&self) -> &'static str {
        match self {
            Arg::Text(_) => "text",
            Arg::Int(_) => "integer",
            Arg::Bool(_) => "boolean",
            Arg::Texts(_) => "text[]",
        }
    }

    fn mismatch(&self, expected: &str) -> crate::error::Error {
        crate::error::Error::new(
            crate::error::sqlstate::DATATYPE_MISMATCH,
            format!(
                "argument of type {} where {expected} was expected",
                self.type_name()
            ),
        )
    }

    fn text(&self) -> crate::error::Result<&'a str> {
        match self {
            Arg::Text(t) => Ok(t),
            other => Err(other.mismatch("text")),
        }
    }

    /// A text array, given as one or in PostgreSQL's array text (`{a,b}`).
    fn texts(&self) -> crate::error::Result<Vec<Option<String>>> {
        match self {
            Arg::Texts(items) => Ok(items.clone()),
            Arg::Text(t) => crate::text_input::pg_array_items(t),
            other => Err(other.mismatch("text[]")),
        }
    }
}

/// An argument column, converted once to the form its rows are read in.
enum Column {
    Text(ArrayRef),
    Int(ArrayRef),
    Bool(ArrayRef),
    Texts(ArrayRef),
}

impl Column {
    fn new(array: ArrayRef) -> Result<Column> {
        Ok(match array.data_type() {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => Column::Int(cast(&array, &DataType::Int64)?),
            DataType::Boolean => Column::Bool(array),
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
                let list = DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)));
                Column::Texts(cast(&array, &list)?)
            }
            _ => Column::Text(cast(&array, &DataType::Utf8)?),
        })
    }

    /// One row's arguments, read into `args`; false if one is NULL, which
    /// makes a strict function's result NULL.
    fn row_args<'c>(columns: &'c [Column], row: usize, args: &mut Vec<Arg<'c>>) -> bool {
        args.clear();
        args.extend(columns.iter().map_while(|c| c.get(row)));
        args.len() == columns.len()
    }

    fn get(&self, row: usize) -> Option<Arg<'_>> {
        let array = match self {
            Column::Text(a) | Column::Int(a) | Column::Bool(a) | Column::Texts(a) => a,
        };
        if array.is_null(row) {
            return None;
        }
        Some(match self {
            Column::Text(a) => Arg::Text(a.as_string::<i32>().value(row)),
            Column::Int(a) => Arg::Int(
                a.as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                    .value(row),
            ),
            Column::Bool(a) => Arg::Bool(a.as_boolean().value(row)),
            Column::Texts(a) => {
                let items = a.as_list::<i32>().value(row);
                let items = items.as_string::<i32>();
                Arg::Texts(items.iter().map(|s| s.map(str::to_string)).collect())
            }
        })
    }
}

/// What a strict JSON function returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Returns {
    /// The JSON type of its first argument.
    SameKind,
    Json,
    Jsonb,
    Text,
    Bool,
    Int,
}

/// One row's result.
enum Out {
    Text(String),
    Bool(bool),
    Int(i32),
}

/// A strict function's work on one row: `kind` is the JSON type of the
/// first argument.
type Kernel = fn(kind: Kind, args: &[Arg<'_>]) -> crate::error::Result<Option<Out>>;

/// A strict JSON function: NULL in, NULL out; otherwise `kernel` per row.
#[derive(Debug)]
struct JsonFn {
    name: &'static str,
    /// The JSON type assumed for a first argument that is untagged text.
    default_kind: Kind,
    /// The first argument is a document (not text to read one from).
    document_first: bool,
    signature: Signature,
    returns: Returns,
    kernel: Kernel,
}

impl PartialEq for JsonFn {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for JsonFn {}

impl std::hash::Hash for JsonFn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl JsonFn {
    fn kind(&self, first: Option<&FieldRef>) -> Kind {
        first
            .and_then(|f| Kind::of_field(f))
            .unwrap_or(self.default_kind)
    }
}

impl ScalarUDFImpl for JsonFn {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(match self.returns {
            Returns::SameKind | Returns::Json | Returns::Jsonb | Returns::Text => DataType::Utf8,
            Returns::Bool => DataType::Boolean,
            Returns::Int => DataType::Int32,
        })
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(match self.returns {
            Returns::SameKind => self.kind(args.arg_fields.first()).field(self.name),
            Returns::Json => Kind::Json.field(self.name),
            Returns::Jsonb => Kind::Jsonb.field(self.name),
            _ => Field::new(self.name, self.return_type(&[])?, true),
        }))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let first = args.arg_fields.first();
        let kind = self.kind(first);
        let rows = args.number_rows;
        let mut arrays = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<Vec<_>>>()?;
        // Kernels read jsonb documents as canonical text, which stored and
        // computed jsonb is; text given for jsonb (a literal) is made so.
        if self.document_first
            && kind == Kind::Jsonb
            && first.and_then(|f| Kind::of_field(f)).is_none()
            && let Some(texts) = arrays.first_mut()
        {
            *texts = canonical_texts(texts)?;
        }
        let columns = arrays
            .into_iter()
            .map(Column::new)
            .collect::<Result<Vec<_>>>()?;
        let mut texts = StringBuilder::new();
        let mut bools = BooleanBuilder::new();
        let mut ints = Int32Builder::new();
        let mut row_args = Vec::with_capacity(columns.len());
        for row in 0..rows {
            let out = if Column::row_args(&columns, row, &mut row_args) {
                (self.kernel)(kind, &row_args)?
            } else {
                None
            };
            match (self.returns, out) {
                (Returns::Bool, Some(Out::Bool(b))) => bools.append_value(b),
                (Returns::Bool, None) => bools.append_null(),
                (Returns::Int, Some(Out::Int(i))) => ints.append_value(i),
                (Returns::Int, None) => ints.append_null(),
                (_, Some(Out::Text(t))) => texts.append_value(t),
                (_, None) => texts.append_null(),
                (returns, Some(_)) => unreachable!("{} returns {returns:?}", self.name),
            }
        }
        let array: ArrayRef = match self.returns {
            Returns::Bool => Arc::new(bools.finish()),
            Returns::Int => Arc::new(ints.finish()),
            _ => Arc::new(texts.finish()),
        };
        debug_assert_eq!(array.len(), rows);
        Ok(ColumnarValue::Array(array))
    }
}
