//! PostgreSQL's numeric where DataFusion has decimals.
//!
//! A literal with a decimal point or an exponent (`1.50`, `2e3`) is numeric
//! in PostgreSQL; in ciab it is a Decimal128 of the literal's own scale
//! (`parse_float_as_decimal`), so `0.1 + 0.2` is `0.3` and `1.50` prints
//! `1.50`, where a float8 gave `0.30000000000000004`. `+`, `-` and `*` of
//! decimals keep PostgreSQL's scales (the larger one, the sum). Where
//! DataFusion's rules for decimals part from PostgreSQL's and give wrong
//! answers, [`PgNumerics`], an analyzer rule that runs before type
//! coercion, plans what PostgreSQL would (and so for casts of floats to
//! integers, which truncated too):
//!
//! ```text
//!                           DataFusion                 PostgreSQL, ciab
//!  1e-20::float8 = 0.5      float8 → decimal(30,15):   numeric → float8
//!  (also CASE, IN,          1e-20 becomes 0, 1e20
//!   BETWEEN, coalesce,      overflows
//!   VALUES, UNION)
//!  1.0 / 3                  scale + 4: 0.33333          16 significant digits or
//!                                                       more: 0.33333333333333333333
//!  2.5::int                 truncates: 2                rounds half away from zero: 3
//!  3.5::float8::int         truncates: 3                rounds half to even: 4
//!  round(2.5::float8)       half away from zero: 3      half to even: 2
//!  2e3                      scale -3, printed as 2      2000
//! ```
//!
//! PostgreSQL's numeric carries a scale in each value; a Decimal128 column
//! has one for all of its values. Division picks its scale from the values
//! in PostgreSQL, so ciab matches it where both operands are constants and
//! otherwise gives the larger of the operands' scales and
//! [`DIVISION_SCALE_MIN`].

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, Float64Array};
use datafusion::arrow::compute::kernels::arity::try_binary;
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{
    DECIMAL128_MAX_PRECISION, DataType, Decimal128Type, Field, Float64Type, i256,
};
use datafusion::arrow::error::ArrowError;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::{Case, Cast, InList, ScalarFunction, TryCast};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::type_coercion::binary::type_union_resolution;
use datafusion::logical_expr::{
    Between, BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder,
    Operator, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Union,
    Values, Volatility, WriteOp,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::sql::sqlparser::ast::BinaryOperator;

use crate::error::{Error, sqlstate};

/// The fewest decimal places of a quotient whose operands are not both
/// constants: PostgreSQL's quotients have at least 16 significant digits
/// (`NUMERIC_MIN_SIG_DIGITS`), which is this many places for a quotient
/// between 1 and 9999.
const DIVISION_SCALE_MIN: i8 = 16;
/// The most places a Decimal128 keeps.
const SCALE_MAX: i8 = DECIMAL128_MAX_PRECISION as i8;

/// Functions whose arguments take one common type, as CASE's branches do.
const COMMON_TYPE_FUNCTIONS: [&str; 5] = ["coalesce", "greatest", "least", "nullif", "make_array"];

/// The analyzer rule; runs before DataFusion's type coercion, which would
/// otherwise settle float-and-decimal mixes as decimals.
#[derive(Debug, Default)]
pub struct PgNumerics;

impl AnalyzerRule for PgNumerics {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        pg_numerics(plan)
    }

    fn name(&self) -> &str {
        "ciab_pg_numerics"
    }
}

/// What [`PgNumerics`] does, for a plan as SQL planning left it: the
/// planner runs it before rules of its own that read types, and the
/// analyzer's run of it after leaves what it made as it is.
pub fn pg_numerics(plan: LogicalPlan) -> Result<LogicalPlan> {
    // DataFusion plans `INSERT ... VALUES` with VALUES typed by the table's
    // columns: those types stay.
    let typed_by_table =
        matches!(&plan, LogicalPlan::Dml(dml) if matches!(dml.op, WriteOp::Insert(_)));
    let plan = plan.transform_up_with_subqueries(|node| {
        let node = match node {
            LogicalPlan::Values(values) => values_as_postgresql_types_them(values, typed_by_table)?,
            LogicalPlan::Union(union) => union_of_floats(union)?,
            node => crate::rewrite_node_expressions(node, &numeric_expr)?,
        };
        // The node above types its expressions by this one's schema.
        match node.transformed {
            true => node.map_data(|n| n.recompute_schema()),
            false => Ok(node),
        }
    })?;
    crate::with_schemas(plan)
}

/// Whether `op` compares its operands (`=`, `<`, `IS DISTINCT FROM`, ...).
pub fn is_comparison(op: Operator) -> bool {
    matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
            | Operator::IsDistinctFrom
            | Operator::IsNotDistinctFrom
    )
}

/// Whether some of `types` are floats and some decimals: then all are
/// float8, as PostgreSQL resolves numeric beside float8.
fn float_beside_decimal<'a>(types: impl IntoIterator<Item = &'a DataType> + Clone) -> bool {
    types.clone().into_iter().any(DataType::is_floating)
        && types.into_iter().any(DataType::is_decimal)
}

/// `exprs` with their decimals cast to float8 when floats are among them.
fn floats_over_decimals(exprs: Vec<Expr>, schema: &DFSchema) -> Result<Transformed<Vec<Expr>>> {
    let types: Vec<Option<DataType>> = exprs.iter().map(|e| e.get_type(schema).ok()).collect();
    if !float_beside_decimal(types.iter().flatten()) {
        return Ok(Transformed::no(exprs));
    }
    let exprs = exprs
        .into_iter()
        .zip(&types)
        .map(|(e, ty)| match ty {
            Some(ty) if ty.is_decimal() => Expr::Cast(Cast::new(Box::new(e), DataType::Float64)),
            _ => e,
        })
        .collect();
    Ok(Transformed::yes(exprs))
}

/// A quoted literal beside a number in arithmetic (`a + '5'`, `'3' - 1`,
/// `2.5 * '2'`) is a number of the other operand's type: PostgreSQL types
/// such a literal `unknown` until its neighbour settles it, where
/// DataFusion refuses to add text to a number, and does so while it plans
/// the SQL, before any analyzer rule runs. Text that is no such number
/// fails as PostgreSQL's input does (22P02). Two quoted literals stay as
/// they are: PostgreSQL cannot choose a type for either.
#[derive(Debug, Default)]
pub struct UnknownOperands;

impl ExprPlanner for UnknownOperands {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        let RawBinaryExpr { op, left, right } = expr;
        let arithmetic = matches!(
            op,
            BinaryOperator::Plus
                | BinaryOperator::Minus
                | BinaryOperator::Multiply
                | BinaryOperator::Divide
                | BinaryOperator::Modulo
        );
        let (left, right) = match arithmetic {
            true => match (
                as_number(&left, &right, schema),
                as_number(&right, &left, schema),
            ) {
                (Some(l), None) => (l, right),
                (None, Some(r)) => (left, r),
                _ => (left, right),
            },
            false => (left, right),
        };
        Ok(PlannerResult::Original(RawBinaryExpr { op, left, right }))
    }
}

/// `text`, a quoted literal, cast to the number type of `beside`; None when
/// it is no quoted literal or `beside` no number.
fn as_number(text: &Expr, beside: &Expr, schema: &DFSchema) -> Option<Expr> {
    let Expr::Literal(ScalarValue::Utf8(Some(digits)) | ScalarValue::Utf8View(Some(digits)), _) =
        text
    else {
        return None;
    };
    let ty = match beside.get_type(schema).ok()? {
        ty if ty.is_integer() || ty.is_floating() => ty,
        // A numeric literal keeps its own scale, as `2.5 * 2` does.
        ty if ty.is_decimal() => {
            let places = digits.trim().split_once('.').map_or(0, |(_, fraction)| {
                fraction.chars().take_while(char::is_ascii_digit).count()
            });
            DataType::Decimal128(
                DECIMAL128_MAX_PRECISION,
                places.min(SCALE_MAX as usize) as i8,
            )
        }
        _ => return None,
    };
    Some(Expr::Cast(Cast::new(Box::new(text.clone()), ty)))
}

fn numeric_expr(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let ty = |e: &Expr| e.get_type(schema).ok();
    Ok(match expr {
        Expr::Literal(value, metadata) => match literal(&value) {
            Some(value) => Transformed::yes(Expr::Literal(value, metadata)),
            None => Transformed::no(Expr::Literal(value, metadata)),
        },
        Expr::BinaryExpr(BinaryExpr { left, op, right }) if is_comparison(op) => {
            floats_over_decimals(vec![*left, *right], schema)?.update_data(|mut sides| {
                let right = sides.pop().expect("two sides");
                let left = sides.pop().expect("two sides");
                Expr::BinaryExpr(BinaryExpr::new(Box::new(left), op, Box::new(right)))
            })
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Divide,
            right,
        }) => match (ty(&left), ty(&right)) {
            (Some(l), Some(r))
                if (l.is_decimal() || r.is_decimal())
                    && (l.is_decimal() || l.is_integer())
                    && (r.is_decimal() || r.is_integer()) =>
            {
                Transformed::yes(NUMERIC_DIV.call(vec![*left, *right]))
            }
            _ => Transformed::no(Expr::BinaryExpr(BinaryExpr::new(
                left,
                Operator::Divide,
                right,
            ))),
        },
        Expr::Case(case) => case_of_floats(case, schema)?,
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) => {
            let mut all = vec![*expr];
            all.extend(list);
            floats_over_decimals(all, schema)?.update_data(|mut all| {
                let expr = all.remove(0);
                Expr::InList(InList::new(Box::new(expr), all, negated))
            })
        }
        Expr::Between(Between {
            expr,
            negated,
            low,
            high,
        }) => floats_over_decimals(vec![*expr, *low, *high], schema)?.update_data(|mut all| {
            let high = all.pop().expect("three");
            let low = all.pop().expect("three");
            let expr = all.pop().expect("three");
            Expr::Between(Between::new(
                Box::new(expr),
                negated,
                Box::new(low),
                Box::new(high),
            ))
        }),
        Expr::ScalarFunction(ScalarFunction { func, args })
            if COMMON_TYPE_FUNCTIONS.contains(&func.name()) =>
        {
            floats_over_decimals(args, schema)?
                .update_data(|args| Expr::ScalarFunction(ScalarFunction { func, args }))
        }
        // PostgreSQL's round(float8) is rint, half to even; DataFusion's
        // rounds half away from zero.
        Expr::ScalarFunction(ScalarFunction { func, args })
            if func.name() == "round"
                && matches!(&args[..], [x] if ty(x).is_some_and(|t| t.is_floating())) =>
        {
            Transformed::yes(RINT.call(args))
        }
        Expr::ScalarFunction(f) if matches!(f.func.name(), "ceil" | "floor" | "trunc") => {
            let places = match &f.args[..] {
                [_] => Some(0),
                [_, Expr::Literal(ScalarValue::Int32(Some(n)), _)] => i8::try_from(*n).ok(),
                _ => None,
            };
            match (f.args.first().and_then(ty), places) {
                (Some(DataType::Decimal128(p, s)), Some(places)) if (0..s).contains(&places) => {
                    // PostgreSQL's result keeps the places asked for;
                    // DataFusion's keeps the argument's (ceil(1.2) = 2.0).
                    let call = Expr::ScalarFunction(f);
                    Transformed::yes(Expr::Cast(Cast::new(
                        Box::new(call),
                        DataType::Decimal128(p, places),
                    )))
                }
                _ => Transformed::no(Expr::ScalarFunction(f)),
            }
        }
        // The cast above ceil, floor or trunc that a run of this rule
        // before made, around the one this run made.
        Expr::Cast(Cast { expr, field }) if matches!(expr.as_ref(), Expr::Cast(inner) if inner.field.data_type() == field.data_type()) => {
            Transformed::yes(*expr)
        }
        Expr::Cast(Cast { expr, field }) if rounds_to_integer(ty(&expr), field.data_type()) => {
            let rounded = rounded(*expr, schema);
            Transformed::yes(Expr::Cast(Cast::new_from_field(Box::new(rounded), field)))
        }
        Expr::TryCast(TryCast { expr, field })
            if rounds_to_integer(ty(&expr), field.data_type()) =>
        {
            let rounded = rounded(*expr, schema);
            Transformed::yes(Expr::TryCast(TryCast::new_from_field(
                Box::new(rounded),
                field,
            )))
        }
        other => Transformed::no(other),
    })
}

/// Whether a cast from `from` to `to` must round first, as PostgreSQL's
/// casts to an integer do: a decimal half away from zero, a float half to
/// even (`rint`). Arrow's casts truncate.
fn rounds_to_integer(from: Option<DataType>, to: &DataType) -> bool {
    let fraction = |ty: &DataType| match ty {
        DataType::Decimal32(_, s)
        | DataType::Decimal64(_, s)
        | DataType::Decimal128(_, s)
        | DataType::Decimal256(_, s) => *s > 0,
        ty => ty.is_floating(),
    };
    from.is_some_and(|from| fraction(&from)) && to.is_integer()
}

/// `expr` rounded to a whole number, for a cast to an integer after it
/// ([`rounds_to_integer`]): a decimal by a cast to scale 0, which rounds
/// half away from zero, a float by [`Rint`]. An expression rounded already
/// is left as it is.
fn rounded(expr: Expr, schema: &DFSchema) -> Expr {
    match expr.get_type(schema) {
        Ok(ty) if ty.is_floating() => match &expr {
            Expr::ScalarFunction(f) if f.func.name() == RINT.name() => expr,
            _ => RINT.call(vec![expr]),
        },
        _ => Expr::Cast(Cast::new(
            Box::new(expr),
            DataType::Decimal128(DECIMAL128_MAX_PRECISION, 0),
        )),
    }
}

/// `rint(x)`: the float8 `x` rounded half to even.
static RINT: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::new_from_impl(Rint::default())));

#[derive(Debug, PartialEq, Eq, Hash)]
struct Rint {
    signature: Signature,
}

impl Default for Rint {
    fn default() -> Self {
        Rint {
            signature: Signature::exact(vec![DataType::Float64], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Rint {
    fn name(&self) -> &str {
        "rint"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match &args.args[0] {
            ColumnarValue::Scalar(ScalarValue::Float64(v)) => Ok(ColumnarValue::Scalar(
                ScalarValue::Float64(v.map(f64::round_ties_even)),
            )),
            ColumnarValue::Scalar(other) => {
                unreachable!("the signature takes float8, not {other:?}")
            }
            ColumnarValue::Array(a) => {
                let rounded: Float64Array =
                    a.as_primitive::<Float64Type>().unary(f64::round_ties_even);
                Ok(ColumnarValue::Array(Arc::new(rounded)))
            }
        }
    }
}

fn case_of_floats(case: Case, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Case {
        expr,
        when_then_expr,
        else_expr,
    } = case;
    let (whens, thens): (Vec<Expr>, Vec<Expr>) =
        when_then_expr.into_iter().map(|(w, t)| (*w, *t)).unzip();
    let branches = thens.len();
    let mut results = thens;
    results.extend(else_expr.map(|e| *e));
    let results = floats_over_decimals(results, schema)?;
    let (whens, expr, compared) = match expr {
        // CASE x WHEN v: x is compared with each v.
        Some(expr) => {
            let mut compared = vec![*expr];
            compared.extend(whens);
            let compared = floats_over_decimals(compared, schema)?;
            let changed = compared.transformed;
            let mut compared = compared.data;
            let expr = compared.remove(0);
            (compared, Some(Box::new(expr)), changed)
        }
        None => (whens, None, false),
    };
    let transformed = results.transformed || compared;
    let mut results = results.data;
    let else_expr = (results.len() > branches).then(|| Box::new(results.pop().expect("else")));
    let when_then_expr = whens
        .into_iter()
        .zip(results)
        .map(|(w, t)| (Box::new(w), Box::new(t)))
        .collect();
    let case = Expr::Case(Case {
        expr,
        when_then_expr,
        else_expr,
    });
    Ok(Transformed::new_transformed(case, transformed))
}

/// A numeric literal as PostgreSQL reads it, where DataFusion's differs:
/// `2e3` has scale 0 (DataFusion's has scale -3, which Arrow prints as
/// `2`). A literal of more digits than a Decimal128 holds is float8, as
/// every literal with a decimal point was before ciab read them as
/// numeric.
fn literal(value: &ScalarValue) -> Option<ScalarValue> {
    match value {
        ScalarValue::Decimal128(v, p, s) if *s < 0 => {
            let places = s.unsigned_abs();
            let precision = *p as u16 + places as u16;
            let scaled = v.map(|v| {
                10i128
                    .checked_pow(places as u32)
                    .and_then(|f| v.checked_mul(f))
            });
            match scaled {
                Some(Some(v)) if precision <= DECIMAL128_MAX_PRECISION as u16 => {
                    Some(ScalarValue::Decimal128(Some(v), precision as u8, 0))
                }
                None if precision <= DECIMAL128_MAX_PRECISION as u16 => {
                    Some(ScalarValue::Decimal128(None, precision as u8, 0))
                }
                _ => Some(float(v.map(|v| v.to_string()), *s)),
            }
        }
        ScalarValue::Decimal256(v, _, s) => Some(float(v.map(|v| v.to_string()), *s)),
        _ => None,
    }
}

/// The float8 nearest `digits · 10^-scale` (Arrow's cast multiplies by a
/// rounded power of ten: `1e100` would be `1.0000000000000002e100`).
fn float(digits: Option<String>, scale: i8) -> ScalarValue {
    let value = digits.map(|d| {
        format!("{d}e{}", -(scale as i32))
            .parse::<f64>()
            .expect("digits and an exponent are a float")
    });
    ScalarValue::Float64(value)
}

/// A VALUES column is typed from its rows, as PostgreSQL types it: float8
/// where floats and decimals meet. DataFusion has typed it already and cast
/// every row to that type. The rows' own expressions are made PostgreSQL's
/// first (a quotient's scale, an exponent literal's), and a numeric column
/// they changed is typed again from them. A VALUES `typed_by_table` keeps
/// its columns' types.
fn values_as_postgresql_types_them(
    values: Values,
    typed_by_table: bool,
) -> Result<Transformed<LogicalPlan>> {
    let Values { schema, values } = values;
    let empty = DFSchema::empty();
    let columns = schema.fields().len();
    // Each row's value without DataFusion's cast to the column's type, and
    // which columns the rewrite changed.
    let mut cells: Vec<Vec<Expr>> = Vec::with_capacity(values.len());
    let mut changed = vec![false; columns];
    for row in values {
        let mut inner = Vec::with_capacity(columns);
        for (column, (cell, field)) in row.into_iter().zip(schema.fields()).enumerate() {
            let cell = match cell {
                Expr::Cast(Cast { expr, field: to }) if to.data_type() == field.data_type() => {
                    *expr
                }
                other => other,
            };
            let cell = cell.transform_up(|e| numeric_expr(e, &empty))?;
            changed[column] |= cell.transformed;
            inner.push(cell.data);
        }
        cells.push(inner);
    }
    let mut types = Vec::with_capacity(columns);
    for (column, field) in schema.fields().iter().enumerate() {
        // A NULL has no say in the column's type, as in DataFusion's typing
        // of VALUES (which gave it the column's type already).
        let column_types = cells
            .iter()
            .filter(|row| !matches!(&row[column], Expr::Literal(v, _) if v.is_null()))
            .map(|row| row[column].get_type(&empty))
            .collect::<Result<Vec<_>>>()?;
        let numeric = column_types.iter().all(|t| t.is_null() || t.is_numeric());
        // DataFusion typed this column from its rows (a decimal, were
        // there floats among them), not from a table's column; an INSERT
        // whose plan this rule saw with the table before keeps it so.
        let inferred = || type_union_resolution(&column_types).as_ref() == Some(field.data_type());
        let ty = match (typed_by_table, float_beside_decimal(&column_types)) {
            (true, _) => field.data_type().clone(),
            (false, true) if inferred() => DataType::Float64,
            (false, true) => field.data_type().clone(),
            (false, false) if numeric && changed[column] => {
                let known: Vec<DataType> =
                    column_types.into_iter().filter(|t| !t.is_null()).collect();
                type_union_resolution(&known).unwrap_or_else(|| field.data_type().clone())
            }
            (false, false) => field.data_type().clone(),
        };
        types.push(ty);
    }
    let transformed = changed.contains(&true)
        || types
            .iter()
            .zip(schema.fields())
            .any(|(ty, f)| ty != f.data_type());
    let rows = cells
        .into_iter()
        .map(|row| {
            row.into_iter()
                .zip(&types)
                .map(|(cell, ty)| match cell {
                    Expr::Literal(ScalarValue::Null, metadata) => {
                        Ok(Expr::Literal(ScalarValue::try_from(ty)?, metadata))
                    }
                    // Rounded where the column is an integer's, as a
                    // cast is.
                    cell if rounds_to_integer(cell.get_type(&empty).ok(), ty) => {
                        rounded(cell, &empty).cast_to(ty, &empty)
                    }
                    cell => cell.cast_to(ty, &empty),
                })
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    if !transformed {
        return Ok(Transformed::no(LogicalPlan::Values(Values {
            schema,
            values: rows,
        })));
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .zip(&types)
        .map(|(f, ty)| f.as_ref().clone().with_data_type(ty.clone()))
        .collect();
    let qualified = schema
        .iter()
        .zip(fields)
        .map(|((q, _), f)| (q.cloned(), Arc::new(f)))
        .collect();
    let schema = DFSchema::new_with_metadata(qualified, schema.metadata().clone())?;
    Ok(Transformed::yes(LogicalPlan::Values(Values {
        schema: Arc::new(schema),
        values: rows,
    })))
}

/// A UNION's column of floats in some inputs and decimals in others is
/// float8, as PostgreSQL resolves it: the decimal inputs are cast.
fn union_of_floats(union: Union) -> Result<Transformed<LogicalPlan>> {
    let columns = union.schema.fields().len();
    let float8: Vec<bool> = (0..columns)
        .map(|c| {
            let types: Vec<DataType> = union
                .inputs
                .iter()
                .map(|i| i.schema().field(c).data_type().clone())
                .collect();
            float_beside_decimal(&types)
        })
        .collect();
    if !float8.contains(&true) {
        return Ok(Transformed::no(LogicalPlan::Union(union)));
    }
    let inputs = union
        .inputs
        .into_iter()
        .map(|input| {
            let exprs: Vec<Expr> = input
                .schema()
                .iter()
                .zip(&float8)
                .map(|((qualifier, field), float8)| {
                    let column = Expr::Column((qualifier, field).into());
                    match *float8 && field.data_type().is_decimal() {
                        true => Expr::Cast(Cast::new(Box::new(column), DataType::Float64))
                            .alias_qualified(qualifier.cloned(), field.name()),
                        false => column,
                    }
                })
                .collect();
            LogicalPlanBuilder::from(Arc::unwrap_or_clone(input))
                .project(exprs)?
                .build()
                .map(Arc::new)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Transformed::yes(LogicalPlan::Union(
        Union::try_new_with_loose_types(inputs)?,
    )))
}

/// `numeric_div(a, b)`: `a / b` for decimals and integers, at least one of
/// them a decimal, with PostgreSQL's scale and rounding.
static NUMERIC_DIV: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::new_from_impl(NumericDiv::new(Quotient::Rounded))));

/// PostgreSQL's `div(a, b)`: the integral part of `a / b`, a numeric.
pub(crate) fn div() -> ScalarUDF {
    ScalarUDF::new_from_impl(NumericDiv::new(Quotient::Integral))
}

/// Which quotient a [`NumericDiv`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Quotient {
    /// `/`: PostgreSQL's scale, the last place rounded half away from zero.
    Rounded,
    /// `div`: no places, truncated towards zero.
    Integral,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct NumericDiv {
    quotient: Quotient,
    signature: Signature,
}

impl NumericDiv {
    fn new(quotient: Quotient) -> Self {
        NumericDiv {
            quotient,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// The scale of a decimal or integer type: integers have none.
fn scale_of(ty: &DataType) -> Option<i8> {
    match ty {
        DataType::Decimal128(_, s) => Some(*s),
        ty if ty.is_integer() => Some(0),
        _ => None,
    }
}

/// A constant operand as PostgreSQL's numeric sees it: its digits and
/// scale. None for NULL.
fn constant(value: &ScalarValue) -> Option<(i128, i8)> {
    match value {
        ScalarValue::Decimal128(Some(v), _, s) => Some((*v, *s)),
        ScalarValue::Int8(Some(v)) => Some((*v as i128, 0)),
        ScalarValue::Int16(Some(v)) => Some((*v as i128, 0)),
        ScalarValue::Int32(Some(v)) => Some((*v as i128, 0)),
        ScalarValue::Int64(Some(v)) => Some((*v as i128, 0)),
        ScalarValue::UInt8(Some(v)) => Some((*v as i128, 0)),
        ScalarValue::UInt16(Some(v)) => Some((*v as i128, 0)),
        ScalarValue::UInt32(Some(v)) => Some((*v as i128, 0)),
        ScalarValue::UInt64(Some(v)) => Some((*v as i128, 0)),
        _ => None,
    }
}

/// The weight of `v / 10^scale`'s first base-10000 digit, and that digit,
/// as PostgreSQL's numeric holds them (digits are grouped by four from the
/// decimal point). Zero has weight 0 and digit 0.
fn first_digit(v: i128, scale: i8) -> (i32, u128) {
    let x = v.unsigned_abs();
    if x == 0 {
        return (0, 0);
    }
    // floor(log10(|value|))
    let magnitude = x.ilog10() as i32 - scale as i32;
    let weight = magnitude.div_euclid(4);
    let shift = 4 * weight + scale as i32;
    let digit = match shift >= 0 {
        true => x / 10u128.pow(shift as u32),
        // Only for a value below 1, whose digit is below 10000.
        false => x * 10u128.pow(shift.unsigned_abs()),
    };
    debug_assert!((1..10_000).contains(&digit), "{v}e-{scale}: {digit}");
    (weight, digit)
}

/// PostgreSQL's scale of a quotient of two values (`select_div_scale`):
/// enough places for 16 significant digits, and no fewer than either
/// operand has.
fn division_scale(dividend: (i128, i8), divisor: (i128, i8)) -> i8 {
    let (w1, d1) = first_digit(dividend.0, dividend.1);
    let (w2, d2) = first_digit(divisor.0, divisor.1);
    let mut weight = w1 - w2;
    if d1 <= d2 {
        weight -= 1;
    }
    let scale = (DIVISION_SCALE_MIN as i32 - 4 * weight)
        .max(dividend.1 as i32)
        .max(divisor.1 as i32)
        .max(0);
    scale.min(SCALE_MAX as i32) as i8
}

impl ScalarUDFImpl for NumericDiv {
    fn name(&self) -> &str {
        match self.quotient {
            Quotient::Rounded => "numeric_div",
            Quotient::Integral => "div",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        args.iter()
            .map(|ty| match ty {
                DataType::Decimal32(p, s) | DataType::Decimal64(p, s) => {
                    Ok(DataType::Decimal128(*p, *s))
                }
                ty if scale_of(ty).is_some() => Ok(ty.clone()),
                other => Err(Error::new(
                    sqlstate::UNDEFINED_FUNCTION,
                    format!("numeric division of {other}"),
                )
                .into()),
            })
            .collect()
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        unreachable!("return_field_from_args is implemented")
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<Arc<Field>> {
        let [dividend, divisor] = args.arg_fields else {
            unreachable!("planned with two arguments")
        };
        let constants = match args.scalar_arguments {
            [Some(a), Some(b)] => constant(a).zip(constant(b)),
            _ => None,
        };
        let scale = match constants {
            _ if self.quotient == Quotient::Integral => 0,
            Some((a, b)) => division_scale(a, b),
            None => {
                let s1 = scale_of(dividend.data_type()).unwrap_or(0);
                let s2 = scale_of(divisor.data_type()).unwrap_or(0);
                s1.max(s2).clamp(DIVISION_SCALE_MIN, SCALE_MAX)
            }
        };
        let nullable = dividend.is_nullable() || divisor.is_nullable();
        Ok(Arc::new(Field::new(
            self.name(),
            DataType::Decimal128(DECIMAL128_MAX_PRECISION, scale),
            nullable,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let DataType::Decimal128(_, scale) = args.return_field.data_type() else {
            unreachable!("the quotient is a Decimal128")
        };
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let decimals = |a: &ColumnarValue| -> Result<(Decimal128Array, i8)> {
            let array = a.to_array(args.number_rows)?;
            let array = match array.data_type() {
                DataType::Decimal128(..) => array,
                _ => cast_with_options(
                    &array,
                    &DataType::Decimal128(DECIMAL128_MAX_PRECISION, 0),
                    &CastOptions::default(),
                )?,
            };
            let DataType::Decimal128(_, s) = array.data_type() else {
                unreachable!("cast above")
            };
            Ok((array.as_primitive::<Decimal128Type>().clone(), *s))
        };
        let (a, s1) = decimals(&args.args[0])?;
        let (b, s2) = decimals(&args.args[1])?;
        // a / 10^s1 ÷ b / 10^s2 = (a · 10^(scale - s1 + s2) ÷ b) / 10^scale
        let shift = *scale as i32 - s1 as i32 + s2 as i32;
        let quotient: Decimal128Array =
            try_binary(&a, &b, |a, b| divide(a, b, shift, self.quotient)).map_err(|e| match e {
                ArrowError::DivideByZero => {
                    Error::new(sqlstate::DIVISION_BY_ZERO, "division by zero").into()
                }
                ArrowError::ArithmeticOverflow(_) => Error::new(
                    sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
                    "value overflows numeric format",
                )
                .into(),
                other => datafusion::error::DataFusionError::from(other),
            })?;
        let quotient: ArrayRef =
            Arc::new(quotient.with_precision_and_scale(DECIMAL128_MAX_PRECISION, *scale)?);
        Ok(match scalar {
            true => ColumnarValue::Scalar(ScalarValue::try_from_array(&quotient, 0)?),
            false => ColumnarValue::Array(quotient),
        })
    }
}

/// `a · 10^shift ÷ b`, rounded half away from zero as PostgreSQL rounds a
/// quotient's last place (or truncated, for `div`); an error where it has
/// more than 38 digits.
fn divide(
    a: i128,
    b: i128,
    shift: i32,
    quotient: Quotient,
) -> std::result::Result<i128, ArrowError> {
    if b == 0 {
        return Err(ArrowError::DivideByZero);
    }
    let overflow = || ArrowError::ArithmeticOverflow("numeric".into());
    let ten = i256::from_i128(10);
    let (a, b) = match shift >= 0 {
        true => (
            i256::from_i128(a)
                .checked_mul(ten.checked_pow(shift as u32).ok_or_else(overflow)?)
                .ok_or_else(overflow)?,
            i256::from_i128(b),
        ),
        // The dividend has more places than the quotient keeps.
        false => (
            i256::from_i128(a),
            i256::from_i128(b)
                .checked_mul(ten.checked_pow(shift.unsigned_abs()).ok_or_else(overflow)?)
                .ok_or_else(overflow)?,
        ),
    };
    let (q, r) = (a.wrapping_div(b), a.wrapping_rem(b));
    let half_or_more = r.wrapping_abs().wrapping_mul(i256::from_i128(2)) >= b.wrapping_abs();
    let q = match (half_or_more, a.is_negative() != b.is_negative()) {
        _ if quotient == Quotient::Integral => q,
        (false, _) => q,
        (true, false) => q.wrapping_add(i256::ONE),
        (true, true) => q.wrapping_sub(i256::ONE),
    };
    let max = i256::from_i128(10i128.pow(DECIMAL128_MAX_PRECISION as u32));
    match q.to_i128() {
        Some(q) if i256::from_i128(q).wrapping_abs() < max => Ok(q),
        _ => Err(overflow()),
    }
}

/// PostgreSQL's `sign(x)`: -1, 0 or 1, a numeric for a numeric and a
/// float8 for anything else numeric (integers resolve to the float8
/// version, as PostgreSQL's preferred numeric type). DataFusion's `signum`
/// is float only, and gives -1 for -0.
pub(crate) fn sign() -> ScalarUDF {
    ScalarUDF::new_from_impl(Sign {
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Sign {
    signature: Signature,
}

impl ScalarUDFImpl for Sign {
    fn name(&self) -> &str {
        "sign"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        match args {
            [
                DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s),
            ] => Ok(vec![DataType::Decimal128(*p, *s)]),
            [ty] if ty.is_numeric() || ty.is_null() => Ok(vec![DataType::Float64]),
            _ => Err(Error::undefined_function(self.name(), args).into()),
        }
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(match args[0] {
            DataType::Decimal128(..) => DataType::Decimal128(DECIMAL128_MAX_PRECISION, 0),
            _ => DataType::Float64,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        let signs: ArrayRef = match array.data_type() {
            DataType::Decimal128(..) => {
                let values: Decimal128Array = array
                    .as_primitive::<Decimal128Type>()
                    .unary(|v: i128| v.signum());
                Arc::new(values.with_precision_and_scale(DECIMAL128_MAX_PRECISION, 0)?)
            }
            _ => {
                let values: datafusion::arrow::array::Float64Array =
                    array.as_primitive::<Float64Type>().unary(|v: f64| match v {
                        v if v > 0.0 => 1.0,
                        v if v < 0.0 => -1.0,
                        // Zero, negative zero and NaN, as PostgreSQL's.
                        _ => 0.0,
                    });
                Arc::new(values)
            }
        };
        Ok(ColumnarValue::Array(signs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn division_scales_are_postgresqls() {
        // select 1.0/3, 10.0/4, 100000.0/3, 1/30000.0, 0/3.0, 1.50/2
        assert_eq!(division_scale((10, 1), (3, 0)), 20);
        assert_eq!(division_scale((100, 1), (4, 0)), 16);
        assert_eq!(division_scale((1_000_000, 1), (3, 0)), 12);
        assert_eq!(division_scale((1, 0), (300_000, 1)), 24);
        assert_eq!(division_scale((0, 0), (30, 1)), 20);
        assert_eq!(division_scale((150, 2), (2, 0)), 20);
    }

    #[test]
    fn quotients_round_half_away_from_zero() {
        // 2.0 / 3 at scale 20: 0.66666666666666666667
        assert_eq!(
            divide(20, 3, 19, Quotient::Rounded).unwrap(),
            66_666_666_666_666_666_667
        );
        assert_eq!(
            divide(-20, 3, 19, Quotient::Rounded).unwrap(),
            -66_666_666_666_666_666_667
        );
        assert_eq!(divide(1, 8, 2, Quotient::Rounded).unwrap(), 13);
        assert_eq!(divide(-1, 8, 2, Quotient::Rounded).unwrap(), -13);
        assert_eq!(divide(1, -8, 2, Quotient::Rounded).unwrap(), -13);
        // 12.345 / 1 at scale 2 rounds the dividend's extra place.
        assert_eq!(divide(12_345, 1, -1, Quotient::Rounded).unwrap(), 1_235);
        assert!(matches!(
            divide(1, 0, 0, Quotient::Rounded),
            Err(ArrowError::DivideByZero)
        ));
        assert!(matches!(
            divide(i128::MAX / 10, 1, 5, Quotient::Rounded),
            Err(ArrowError::ArithmeticOverflow(_))
        ));
    }

    #[test]
    fn div_truncates_towards_zero() {
        // select div(7, 2), div(-7, 2), div(2.99, 1), div(-0.5, 0.3)
        assert_eq!(divide(7, 2, 0, Quotient::Integral).unwrap(), 3);
        assert_eq!(divide(-7, 2, 0, Quotient::Integral).unwrap(), -3);
        assert_eq!(divide(299, 1, -2, Quotient::Integral).unwrap(), 2);
        assert_eq!(divide(-5, 3, 0, Quotient::Integral).unwrap(), -1);
        assert!(matches!(
            divide(1, 0, 0, Quotient::Integral),
            Err(ArrowError::DivideByZero)
        ));
    }

    #[test]
    fn exponent_literals_have_no_negative_scale() {
        let literal = |v, p, s| literal(&ScalarValue::Decimal128(Some(v), p, s));
        assert_eq!(
            literal(2, 1, -3),
            Some(ScalarValue::Decimal128(Some(2000), 4, 0))
        );
        assert_eq!(literal(15, 2, 1), None);
        assert_eq!(literal(1, 1, -100), Some(ScalarValue::Float64(Some(1e100))));
    }
}
