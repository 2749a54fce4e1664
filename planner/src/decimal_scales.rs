//! Decimal literals added to or subtracted from a decimal of a larger
//! scale take that scale.
//!
//! Arrow adds two decimals of different scales by bringing each value to
//! the larger scale first: for `1 - l_discount` (scales 0 and 2) that is
//! two checked 128-bit multiplications and a checked subtraction for every
//! row, where equal scales need the subtraction alone. TPC-H computes
//! `l_extendedprice * (1 - l_discount)` in nine of its queries; in q01 the
//! rescaling took a quarter of the query's time.
//!
//! Bringing the literal to the column's scale once, while planning, gives
//! the same sum or difference of the same type: Arrow's result has the
//! larger of the two scales and one more digit than the larger of the two
//! integer parts, and rescaling a literal adds as many digits to its
//! precision as to its scale, so its integer part is unchanged.
//!
//! Arrow multiplies decimals in 128 bits, checking each product for
//! overflow: in q01 `l_extendedprice * (1 - l_discount)` and the charge
//! after it took an eighth of the query's CPU. A decimal of at most 18
//! digits fits 64 bits, so two of them multiply exactly in one widening
//! 64-bit multiplication, which cannot overflow: such products are
//! [`DecimalProduct`]'s, of the same type as Arrow's.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{AsArray, Decimal128Array};
use datafusion::arrow::compute::binary;
use datafusion::arrow::datatypes::{DECIMAL128_MAX_PRECISION, DataType, Decimal128Type};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result, ScalarValue, internal_err};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

#[derive(Debug, Default)]
pub struct RescaleDecimalLiterals;

impl OptimizerRule for RescaleDecimalLiterals {
    fn name(&self) -> &str {
        "ciab_rescale_decimal_literals"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        // A rescaled literal prints differently, and keeps the name it had.
        ciab_extensions::rewrite_node_expressions(plan, &|expr, schema| {
            rescale(expr, schema)?.transform_data(|expr| narrow_product(expr, schema))
        })
    }
}

/// Decimals of at most this many digits fit 64 bits (10^18 < 2^63).
const NARROW_PRECISION_MAX: u8 = 18;

/// `a * b` of two narrow decimals as [`DecimalProduct`], where its type is
/// the one Arrow's product has.
fn narrow_product(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::Multiply,
        right,
    }) = &expr
    else {
        return Ok(Transformed::no(expr));
    };
    let narrow = |e: &Expr| match e.get_type(schema) {
        Ok(DataType::Decimal128(p, s)) if p <= NARROW_PRECISION_MAX => Some((p, s)),
        _ => None,
    };
    let (Some(a), Some(b)) = (narrow(left), narrow(right)) else {
        return Ok(Transformed::no(expr));
    };
    if expr.get_type(schema)? != product_type(a, b) {
        return Ok(Transformed::no(expr));
    }
    let Expr::BinaryExpr(BinaryExpr { left, right, .. }) = expr else {
        unreachable!("matched above")
    };
    Ok(Transformed::yes(Expr::ScalarFunction(
        ScalarFunction::new_udf(Arc::clone(&DECIMAL_PRODUCT), vec![*left, *right]),
    )))
}

/// Arrow's type of the product of decimals of these precisions and scales:
/// every digit of both, and one more.
fn product_type((p1, s1): (u8, i8), (p2, s2): (u8, i8)) -> DataType {
    DataType::Decimal128((p1 + p2 + 1).min(DECIMAL128_MAX_PRECISION), s1 + s2)
}

static DECIMAL_PRODUCT: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::new_from_impl(DecimalProduct::new())));

/// The exact product of two decimals of at most
/// [`NARROW_PRECISION_MAX`] digits, multiplied as 64-bit integers into a
/// 128-bit one.
#[derive(Debug, PartialEq, Eq, Hash)]
struct DecimalProduct {
    signature: Signature,
}

impl DecimalProduct {
    fn new() -> Self {
        DecimalProduct {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for DecimalProduct {
    fn name(&self) -> &str {
        "decimal_product"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [DataType::Decimal128(p1, s1), DataType::Decimal128(p2, s2)]
                if *p1 <= NARROW_PRECISION_MAX && *p2 <= NARROW_PRECISION_MAX =>
            {
                Ok(product_type((*p1, *s1), (*p2, *s2)))
            }
            other => internal_err!("decimal_product of {other:?}"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let DataType::Decimal128(precision, scale) = *args.return_field.data_type() else {
            unreachable!("the product is a Decimal128")
        };
        let [a, b] = args.args.as_slice() else {
            unreachable!("planned with two arguments")
        };
        let (a, b) = (a.to_array(args.number_rows)?, b.to_array(args.number_rows)?);
        // Each value is below 10^18 in magnitude, so it is its low 64 bits
        // (a NULL's slot may hold anything; its product is dropped).
        let product: Decimal128Array = binary(
            a.as_primitive::<Decimal128Type>(),
            b.as_primitive::<Decimal128Type>(),
            |x, y| i128::from(x as i64) * i128::from(y as i64),
        )?;
        let product = product.with_precision_and_scale(precision, scale)?;
        Ok(ColumnarValue::Array(Arc::new(product)))
    }
}

/// `literal ± decimal` (or the other way round) with the literal brought
/// to the decimal's larger scale.
fn rescale(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr {
        mut left,
        op: op @ (Operator::Plus | Operator::Minus),
        mut right,
    }) = expr
    else {
        return Ok(Transformed::no(expr));
    };
    let transformed = if let Some(literal) = at_scale_of(&left, &right, schema) {
        left = Box::new(literal);
        true
    } else if let Some(literal) = at_scale_of(&right, &left, schema) {
        right = Box::new(literal);
        true
    } else {
        false
    };
    let expr = Expr::BinaryExpr(BinaryExpr { left, op, right });
    Ok(Transformed::new_transformed(expr, transformed))
}

/// `literal`, if it is a decimal literal, at the scale of `other`, a
/// decimal of a larger scale.
fn at_scale_of(literal: &Expr, other: &Expr, schema: &DFSchema) -> Option<Expr> {
    let Expr::Literal(value, _) = literal else {
        return None;
    };
    match other.get_type(schema) {
        Ok(DataType::Decimal128(_, scale)) => at_scale(value, scale),
        _ => None,
    }
}

/// `value`, a decimal of a smaller scale than `scale`, at `scale`, where
/// its precision grows by as much and still fits a Decimal128.
fn at_scale(value: &ScalarValue, scale: i8) -> Option<Expr> {
    let ScalarValue::Decimal128(Some(v), precision, s) = *value else {
        return None;
    };
    let more = u8::try_from(scale.checked_sub(s)?)
        .ok()
        .filter(|&d| d > 0)?;
    let precision = precision.checked_add(more)?;
    if precision > DECIMAL128_MAX_PRECISION {
        return None;
    }
    // |v| < 10^p, so |v| * 10^more < 10^precision <= 10^38 < i128::MAX.
    let v = v * 10i128.pow(u32::from(more));
    Some(Expr::Literal(
        ScalarValue::Decimal128(Some(v), precision, scale),
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, ArrayRef};
    use datafusion::arrow::compute::kernels::numeric::mul;
    use datafusion::arrow::datatypes::Field;
    use datafusion::common::config::ConfigOptions;

    /// The product of two decimal columns as `decimal_product` computes it.
    fn product(a: &Decimal128Array, b: &Decimal128Array) -> ArrayRef {
        let field = |a: &Decimal128Array| Arc::new(Field::new("x", a.data_type().clone(), true));
        let return_type = DECIMAL_PRODUCT
            .return_type(&[a.data_type().clone(), b.data_type().clone()])
            .unwrap();
        let args = ScalarFunctionArgs {
            args: vec![
                ColumnarValue::Array(Arc::new(a.clone())),
                ColumnarValue::Array(Arc::new(b.clone())),
            ],
            arg_fields: vec![field(a), field(b)],
            number_rows: a.len(),
            return_field: Arc::new(Field::new("p", return_type, true)),
            config_options: Arc::new(ConfigOptions::default()),
        };
        let ColumnarValue::Array(product) = DECIMAL_PRODUCT.invoke_with_args(args).unwrap() else {
            panic!("an array")
        };
        product
    }

    #[test]
    fn narrow_products_are_arrows_exactly() {
        let largest = 10i128.pow(18) - 1;
        let values = [0, 1, -1, 7, -12_345, largest, -largest, 999_999_999_999];
        let a: Decimal128Array = values.iter().map(|&v| Some(v)).chain([None]).collect();
        let b: Decimal128Array = values
            .iter()
            .rev()
            .map(|&v| Some(v))
            .chain([Some(3)])
            .collect();
        for (pa, sa, pb, sb) in [(18, 2, 18, 0), (15, 2, 16, 2), (18, 18, 18, 17)] {
            let a = a.clone().with_precision_and_scale(pa, sa).unwrap();
            let b = b.clone().with_precision_and_scale(pb, sb).unwrap();
            let arrows = mul(&a, &b).unwrap();
            assert_eq!(
                product(&a, &b).as_ref(),
                arrows.as_ref(),
                "({pa},{sa}) * ({pb},{sb})"
            );
        }
    }

    #[test]
    fn only_products_of_narrow_decimals_are_rewritten() {
        let schema = DFSchema::try_from(datafusion::arrow::datatypes::Schema::new(vec![
            Field::new("a", DataType::Decimal128(15, 2), false),
            Field::new("b", DataType::Decimal128(18, 4), false),
            Field::new("w", DataType::Decimal128(19, 2), false),
            Field::new("i", DataType::Int64, false),
        ]))
        .unwrap();
        let times = |l: &str, r: &str| {
            Expr::BinaryExpr(BinaryExpr::new(
                Box::new(datafusion::prelude::col(l)),
                Operator::Multiply,
                Box::new(datafusion::prelude::col(r)),
            ))
        };
        let rewritten = |e: Expr| narrow_product(e, &schema).unwrap().transformed;
        assert!(rewritten(times("a", "b")));
        assert!(rewritten(times("b", "b")));
        assert!(!rewritten(times("a", "w")));
        assert!(!rewritten(times("i", "i")));
        let product = narrow_product(times("a", "b"), &schema).unwrap().data;
        assert_eq!(
            product.get_type(&schema).unwrap(),
            times("a", "b").get_type(&schema).unwrap()
        );
    }

    #[test]
    fn a_literal_takes_the_larger_scale_and_keeps_its_integer_digits() {
        let one = ScalarValue::Decimal128(Some(1), 10, 0);
        let Some(Expr::Literal(rescaled, _)) = at_scale(&one, 2) else {
            panic!("rescaled");
        };
        assert_eq!(rescaled, ScalarValue::Decimal128(Some(100), 12, 2));
        let negative = ScalarValue::Decimal128(Some(-15), 3, 1);
        let Some(Expr::Literal(rescaled, _)) = at_scale(&negative, 4) else {
            panic!("rescaled");
        };
        assert_eq!(rescaled, ScalarValue::Decimal128(Some(-15_000), 6, 4));
    }

    #[test]
    fn literals_that_would_not_fit_or_need_no_change_stay() {
        let wide = ScalarValue::Decimal128(Some(1), 37, 0);
        assert!(at_scale(&wide, 2).is_none());
        let same = ScalarValue::Decimal128(Some(1), 10, 2);
        assert!(at_scale(&same, 2).is_none());
        let finer = ScalarValue::Decimal128(Some(1), 10, 4);
        assert!(at_scale(&finer, 2).is_none());
        let null = ScalarValue::Decimal128(None, 10, 0);
        assert!(at_scale(&null, 2).is_none());
        assert!(at_scale(&ScalarValue::Int64(Some(1)), 2).is_none());
    }
}
