//! PostgreSQL's integer arithmetic: `+`, `-`, `*` and unary minus on
//! smallint, integer and bigint fail with 22003 ("bigint out of range")
//! where DataFusion's kernels wrap around (`9223372036854775807 + 1` would
//! be `-9223372036854775808`, a wrong answer).
//!
//! An analyzer rule runs after type coercion, when both operands have one
//! integer type, and sends those operators through `pg_int_add`,
//! `pg_int_sub` and `pg_int_mul`, which call Arrow's checked kernels. It
//! runs before the optimizer folds constants, so constant expressions fail
//! as PostgreSQL's do. Division and modulo are checked by DataFusion
//! already.
//!
//! `sum` of bigints is numeric, as in PostgreSQL, where DataFusion's would
//! be a bigint that wraps around: [`numeric_sums`] casts the argument to
//! `numeric(38,0)` in the plan SQL planning makes, before type coercion, so
//! everything above the sum is typed for it. (`sum` of smallints and
//! integers is a bigint in both.)

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::datatypes::FieldRef;
use datafusion::arrow::error::ArrowError;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, Result, ScalarValue, TableReference};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Values, Volatility, WindowFunctionDefinition, lit,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::prelude::SessionContext;

use crate::error::{Error, sqlstate};

/// The integer types PostgreSQL has (smallint, integer, bigint), by their
/// Arrow types.
const PG_INTEGERS: [DataType; 3] = [DataType::Int16, DataType::Int32, DataType::Int64];

/// One checked operator as a function: `pg_int_add(a, b)` is `a + b`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedOp {
    op: Operator,
    signature: Signature,
}

impl CheckedOp {
    fn new(op: Operator) -> Self {
        debug_assert!(matches!(
            op,
            Operator::Plus | Operator::Minus | Operator::Multiply
        ));
        let signature = Signature::one_of(
            PG_INTEGERS
                .iter()
                .map(|t| datafusion::logical_expr::TypeSignature::Exact(vec![t.clone(), t.clone()]))
                .collect(),
            Volatility::Immutable,
        );
        CheckedOp { op, signature }
    }
}

impl ScalarUDFImpl for CheckedOp {
    fn name(&self) -> &str {
        match self.op {
            Operator::Plus => "pg_int_add",
            Operator::Minus => "pg_int_sub",
            _ => "pg_int_mul",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [left, right] = &args.args[..] else {
            unreachable!("the signature takes two arguments")
        };
        let scalar = matches!(
            (left, right),
            (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_))
        );
        let (left, right) = (
            left.to_array(args.number_rows)?,
            right.to_array(args.number_rows)?,
        );
        let kernel = match self.op {
            Operator::Plus => numeric::add,
            Operator::Minus => numeric::sub,
            _ => numeric::mul,
        };
        let result: ArrayRef = kernel(&left, &right).map_err(|e| match e {
            ArrowError::ArithmeticOverflow(_) => out_of_range(left.data_type()).into(),
            other => datafusion::error::DataFusionError::from(other),
        })?;
        Ok(match scalar {
            true => ColumnarValue::Scalar(ScalarValue::try_from_array(&result, 0)?),
            false => ColumnarValue::Array(result),
        })
    }
}

/// PostgreSQL's message for a result its type cannot hold.
fn out_of_range(ty: &DataType) -> Error {
    let name = match ty {
        DataType::Int16 => "smallint",
        DataType::Int32 => "integer",
        _ => "bigint",
    };
    Error::new(
        sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
        format!("{name} out of range"),
    )
}

/// Registers the checked functions and the rule that plans with them.
pub fn register(ctx: &SessionContext) {
    let udf = |op| Arc::new(ScalarUDF::new_from_impl(CheckedOp::new(op)));
    let rule = CheckedIntegerArithmetic {
        add: udf(Operator::Plus),
        sub: udf(Operator::Minus),
        mul: udf(Operator::Multiply),
    };
    for f in [&rule.add, &rule.sub, &rule.mul] {
        ctx.register_udf(f.as_ref().clone());
    }
    ctx.add_analyzer_rule(Arc::new(rule));
}

/// PostgreSQL types an integer literal that fits in 32 bits `integer`,
/// and a larger one `bigint`; DataFusion types every one bigint. The
/// literals of a plan as SQL planning left it, before type coercion, are
/// narrowed as PostgreSQL types them, so that `SELECT 1` describes an
/// integer column to clients, `1 + 1` is an integer sum (and `2147483647 +
/// 1` fails as there), and `CREATE TABLE t AS SELECT 1 AS a` makes an
/// integer column. Left as they are: a LIMIT's and an OFFSET's (DataFusion
/// reads only bigints there), `count(*)`'s 1 (which optimizer rules look
/// for), a VALUES column unless all its rows are such literals, and a
/// recursive query's (its recursive part was typed against the first part
/// as planned, so both keep their types).
pub fn integer_literals(plan: LogicalPlan) -> Result<LogicalPlan> {
    let narrowed = plan.transform_down_with_subqueries(|node| match node {
        LogicalPlan::RecursiveQuery(_) => {
            Ok(Transformed::new(node, false, TreeNodeRecursion::Jump))
        }
        LogicalPlan::Limit(_) => Ok(Transformed::no(node)),
        LogicalPlan::Values(values) => narrow_values(values),
        node => {
            let names = NamePreserver::new(&node);
            node.map_expressions(|e| {
                let name = names.save(&e);
                e.transform_down(narrow_literal)
                    .map(|t| t.update_data(|e| name.restore(e)))
            })
        }
    })?;
    crate::with_schemas(narrowed)
}

fn narrow_literal(expr: Expr) -> Result<Transformed<Expr>> {
    let count = match &expr {
        Expr::AggregateFunction(f) => f.func.name() == "count",
        Expr::WindowFunction(w) => w.fun.name() == "count",
        _ => false,
    };
    if count {
        return Ok(Transformed::new(expr, false, TreeNodeRecursion::Jump));
    }
    Ok(match expr {
        Expr::Literal(ScalarValue::Int64(Some(v)), metadata) => {
            let value = integer_literal(v);
            let narrowed = matches!(value, ScalarValue::Int32(_));
            Transformed::new_transformed(Expr::Literal(value, metadata), narrowed)
        }
        other => Transformed::no(other),
    })
}

/// The integer literal `v` in PostgreSQL's type: integer if it fits in 32
/// bits, else bigint. The fast path types the literals it reads so too.
pub fn integer_literal(v: i64) -> ScalarValue {
    match i32::try_from(v) {
        Ok(v) => ScalarValue::Int32(Some(v)),
        Err(_) => ScalarValue::Int64(Some(v)),
    }
}

/// A VALUES column whose rows are all integer literals that fit (or
/// NULLs) becomes an integer column; a column with any other row keeps the
/// type planning gave it.
fn narrow_values(values: Values) -> Result<Transformed<LogicalPlan>> {
    let narrowable = |column: usize| {
        let cells = values.values.iter().map(|row| &row[column]);
        let mut any = false;
        let all = cells.into_iter().all(|cell| match cell {
            Expr::Literal(ScalarValue::Int64(Some(v)), _) => {
                any = true;
                i32::try_from(*v).is_ok()
            }
            Expr::Literal(ScalarValue::Int64(None) | ScalarValue::Null, _) => true,
            _ => false,
        });
        all && any
    };
    let columns: Vec<bool> = (0..values.schema.fields().len()).map(narrowable).collect();
    if !columns.contains(&true) {
        return Ok(Transformed::no(LogicalPlan::Values(values)));
    }
    let rows = values
        .values
        .into_iter()
        .map(|row| {
            row.into_iter()
                .zip(&columns)
                .map(|(cell, narrow)| match cell {
                    Expr::Literal(ScalarValue::Int64(v), metadata) if *narrow => {
                        let v = v.map(|v| i32::try_from(v).expect("checked to fit"));
                        Expr::Literal(ScalarValue::Int32(v), metadata)
                    }
                    Expr::Literal(ScalarValue::Null, metadata) if *narrow => {
                        Expr::Literal(ScalarValue::Int32(None), metadata)
                    }
                    other => other,
                })
                .collect()
        })
        .collect();
    let fields: Vec<(Option<TableReference>, FieldRef)> = values
        .schema
        .iter()
        .zip(&columns)
        .map(|((qualifier, field), narrow)| {
            let field = match narrow {
                true => Arc::new(field.as_ref().clone().with_data_type(DataType::Int32)),
                false => field.clone(),
            };
            (qualifier.cloned(), field)
        })
        .collect();
    let metadata = values.schema.metadata().clone();
    let schema = DFSchema::new_with_metadata(fields, metadata)?;
    Ok(Transformed::yes(LogicalPlan::Values(Values {
        schema: Arc::new(schema),
        values: rows,
    })))
}

/// The type PostgreSQL's `sum(bigint)` returns: numeric, here with the
/// most digits a Decimal128 holds.
const SUM_OF_BIGINTS: DataType = DataType::Decimal128(38, 0);

/// `sum(bigint)`, as an aggregate or over a window, sums numerics. Runs on
/// a plan as SQL planning left it (after [`integer_literals`]), before type
/// coercion, so everything above the sum is typed for it, and the
/// statement's described columns are the ones it returns.
pub fn numeric_sums(plan: LogicalPlan) -> Result<LogicalPlan> {
    crate::with_schemas(crate::rewrite_expressions(plan, numeric_sum)?)
}

fn numeric_sum(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let is_bigint = |args: &[Expr]| match args {
        [arg] => is_pg_bigint(arg, schema),
        _ => false,
    };
    Ok(match expr {
        Expr::AggregateFunction(mut sum)
            if sum.func.name() == "sum" && is_bigint(&sum.params.args) =>
        {
            let arg = sum.params.args.remove(0);
            sum.params.args.push(arg.cast_to(&SUM_OF_BIGINTS, schema)?);
            Transformed::yes(Expr::AggregateFunction(sum))
        }
        Expr::WindowFunction(mut window)
            if matches!(&window.fun, WindowFunctionDefinition::AggregateUDF(f) if f.name() == "sum")
                && is_bigint(&window.params.args) =>
        {
            let arg = window.params.args.remove(0);
            window
                .params
                .args
                .push(arg.cast_to(&SUM_OF_BIGINTS, schema)?);
            Transformed::yes(Expr::WindowFunction(window))
        }
        other => Transformed::no(other),
    })
}

/// Whether PostgreSQL would type `expr` bigint: once [`integer_literals`]
/// typed the literals as PostgreSQL does, whether it is a bigint (`sum(22)`
/// sums integers, `sum(3000000000)` bigints).
fn is_pg_bigint(expr: &Expr, schema: &DFSchema) -> bool {
    expr.get_type(schema).is_ok_and(|t| t == DataType::Int64)
}

/// Rewrites integer `+`, `-`, `*` and negation into the checked functions.
#[derive(Debug)]
struct CheckedIntegerArithmetic {
    add: Arc<ScalarUDF>,
    sub: Arc<ScalarUDF>,
    mul: Arc<ScalarUDF>,
}

impl CheckedIntegerArithmetic {
    fn rewrite(&self, expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
        let integer = |e: &Expr| e.get_type(schema).ok().filter(|t| PG_INTEGERS.contains(t));
        match &expr {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let udf = match op {
                    Operator::Plus => &self.add,
                    Operator::Minus => &self.sub,
                    Operator::Multiply => &self.mul,
                    _ => return Ok(Transformed::no(expr)),
                };
                match (integer(left), integer(right)) {
                    (Some(l), Some(r)) if l == r => Ok(Transformed::yes(
                        udf.call(vec![left.as_ref().clone(), right.as_ref().clone()]),
                    )),
                    _ => Ok(Transformed::no(expr)),
                }
            }
            Expr::Negative(inner) => match integer(inner) {
                Some(ty) => {
                    let zero = ScalarValue::new_zero(&ty)?;
                    Ok(Transformed::yes(
                        self.sub.call(vec![lit(zero), inner.as_ref().clone()]),
                    ))
                }
                None => Ok(Transformed::no(expr)),
            },
            _ => Ok(Transformed::no(expr)),
        }
    }
}

impl AnalyzerRule for CheckedIntegerArithmetic {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        crate::rewrite_expressions(plan, |e, schema| self.rewrite(e, schema)).map(|t| t.data)
    }

    fn name(&self) -> &str {
        "ciab_checked_integer_arithmetic"
    }
}
