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

use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use datafusion::arrow::datatypes::{DECIMAL128_MAX_PRECISION, DataType};

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
        ciab_extensions::rewrite_node_expressions(plan, &rescale)
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
