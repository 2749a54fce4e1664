//! An interval times or divided by a number (`n * interval '1 hour'`,
//! `interval '1 month' / 3`), as PostgreSQL's `interval_mul` and
//! `interval_div` compute it: months and days are multiplied on their own,
//! and what a fractional factor leaves of them cascades down (a month is
//! 30 days, a day 24 hours), never up. DataFusion has no such operators, so
//! an [`ExprPlanner`] plans them as these functions. The same planner makes
//! a date plus or minus an interval a timestamp, as PostgreSQL's is.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, IntervalMonthDayNanoArray};
use datafusion::arrow::compute::cast as cast_array;
use datafusion::arrow::datatypes::{
    DataType, Float64Type, IntervalMonthDayNano, IntervalMonthDayNanoType, IntervalUnit, TimeUnit,
};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility, cast,
};
use datafusion::sql::sqlparser::ast::BinaryOperator;

use crate::error::{Error, sqlstate};

const DAYS_PER_MONTH: f64 = 30.0;
const SECS_PER_DAY: f64 = 86_400.0;
const NANOS_PER_MICRO: i64 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Mul,
    Div,
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct IntervalArithmetic {
    op: Op,
    signature: Signature,
}

impl IntervalArithmetic {
    fn new(op: Op) -> Self {
        IntervalArithmetic {
            op,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }

    pub(super) fn all() -> [ScalarUDF; 2] {
        [
            ScalarUDF::new_from_impl(Self::new(Op::Mul)),
            ScalarUDF::new_from_impl(Self::new(Op::Div)),
        ]
    }
}

impl ScalarUDFImpl for IntervalArithmetic {
    fn name(&self) -> &str {
        match self.op {
            Op::Mul => "__ciab_interval_mul",
            Op::Div => "__ciab_interval_div",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Interval(IntervalUnit::MonthDayNano))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let spans = cast_array(&arrays[0], &DataType::Interval(IntervalUnit::MonthDayNano))?;
        let spans = spans.as_primitive::<IntervalMonthDayNanoType>();
        let factors = cast_array(&arrays[1], &DataType::Float64)?;
        let factors = factors.as_primitive::<Float64Type>();
        let out = (0..args.number_rows)
            .map(|row| {
                if spans.is_null(row) || factors.is_null(row) {
                    return Ok(None);
                }
                let (span, factor) = (spans.value(row), factors.value(row));
                match self.op {
                    Op::Mul => multiply(span, factor).map(Some),
                    Op::Div if factor == 0.0 => {
                        Err(Error::new(sqlstate::DIVISION_BY_ZERO, "division by zero"))
                    }
                    Op::Div => multiply_by(span, |x| x / factor).map(Some),
                }
            })
            .collect::<Result<IntervalMonthDayNanoArray, Error>>()?;
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

fn multiply(span: IntervalMonthDayNano, factor: f64) -> Result<IntervalMonthDayNano, Error> {
    multiply_by(span, |x| x * factor)
}

/// PostgreSQL's `interval_mul`, with `scale` the multiplication (or
/// division) by the factor.
fn multiply_by(
    span: IntervalMonthDayNano,
    scale: impl Fn(f64) -> f64,
) -> Result<IntervalMonthDayNano, Error> {
    let out_of_range = || {
        Error::new(
            sqlstate::DATETIME_VALUE_OUT_OF_RANGE,
            "interval out of range",
        )
    };
    let to_i32 = |x: f64| -> Result<i32, Error> {
        if x.is_nan() || x < f64::from(i32::MIN) || x >= -f64::from(i32::MIN) {
            return Err(out_of_range());
        }
        Ok(x as i32)
    };
    // PostgreSQL's TSROUND: to the microsecond, so that whole numbers come
    // out whole.
    let ts_round = |x: f64| (x * 1e6).round_ties_even() / 1e6;
    let months = to_i32(scale(f64::from(span.months)))?;
    let mut days = to_i32(scale(f64::from(span.days)))?;
    let month_remainder_days =
        ts_round((scale(f64::from(span.months)) - f64::from(months)) * DAYS_PER_MONTH);
    let mut sec_remainder = ts_round(
        (scale(f64::from(span.days)) - f64::from(days) + month_remainder_days
            - month_remainder_days.trunc())
            * SECS_PER_DAY,
    );
    if sec_remainder.abs() >= SECS_PER_DAY {
        let whole_days = (sec_remainder / SECS_PER_DAY).trunc();
        days = days
            .checked_add(whole_days as i32)
            .ok_or_else(out_of_range)?;
        sec_remainder -= whole_days * SECS_PER_DAY;
    }
    days = days
        .checked_add(month_remainder_days as i32)
        .ok_or_else(out_of_range)?;
    let micros = (span.nanoseconds / NANOS_PER_MICRO) as f64;
    let micros = (scale(micros) + sec_remainder * 1e6).round_ties_even();
    if micros.is_nan() || micros.abs() >= (i64::MAX / NANOS_PER_MICRO) as f64 {
        return Err(out_of_range());
    }
    Ok(IntervalMonthDayNano::new(
        months,
        days,
        micros as i64 * NANOS_PER_MICRO,
    ))
}

/// Plans `interval * number`, `number * interval` and `interval / number`.
#[derive(Debug)]
pub(super) struct IntervalOperators;

impl ExprPlanner for IntervalOperators {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        let interval = |e: &Expr| matches!(e.get_type(schema), Ok(DataType::Interval(_)));
        let number = |e: &Expr| e.get_type(schema).is_ok_and(|t| t.is_numeric());
        let date = |e: &Expr| matches!(e.get_type(schema), Ok(DataType::Date32 | DataType::Date64));
        // A date plus or minus an interval is a timestamp in PostgreSQL
        // (`date '2024-03-01' + interval '1 hour'` is 01:00 that day), where
        // DataFusion's stays a date and drops the hours.
        let midnight = |e: Expr| cast(e, DataType::Timestamp(TimeUnit::Microsecond, None));
        let expr = match expr.op {
            BinaryOperator::Plus | BinaryOperator::Minus
                if date(&expr.left) && interval(&expr.right) =>
            {
                return Ok(PlannerResult::Original(RawBinaryExpr {
                    left: midnight(expr.left),
                    ..expr
                }));
            }
            BinaryOperator::Plus if interval(&expr.left) && date(&expr.right) => {
                return Ok(PlannerResult::Original(RawBinaryExpr {
                    right: midnight(expr.right),
                    ..expr
                }));
            }
            _ => expr,
        };
        let (span, factor, op) = match expr.op {
            BinaryOperator::Multiply if interval(&expr.left) && number(&expr.right) => {
                (expr.left, expr.right, Op::Mul)
            }
            BinaryOperator::Multiply if number(&expr.left) && interval(&expr.right) => {
                (expr.right, expr.left, Op::Mul)
            }
            BinaryOperator::Divide if interval(&expr.left) && number(&expr.right) => {
                (expr.left, expr.right, Op::Div)
            }
            _ => return Ok(PlannerResult::Original(expr)),
        };
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(
                Arc::new(ScalarUDF::new_from_impl(IntervalArithmetic::new(op))),
                vec![span, factor],
            ),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(months: i32, days: i32, micros: i64) -> IntervalMonthDayNano {
        IntervalMonthDayNano::new(months, days, micros * NANOS_PER_MICRO)
    }

    #[test]
    fn fractions_cascade_down_as_in_postgres() {
        // SELECT interval '1 month' * 1.5  →  1 mon 15 days
        assert_eq!(multiply(iv(1, 0, 0), 1.5).unwrap(), iv(1, 15, 0));
        // SELECT interval '1 day' * 0.5  →  12:00:00
        assert_eq!(
            multiply(iv(0, 1, 0), 0.5).unwrap(),
            iv(0, 0, 43_200_000_000)
        );
        // SELECT interval '1 month 1 day 1 hour' * 3  →  3 mons 3 days 03:00:00
        assert_eq!(
            multiply(iv(1, 1, 3_600_000_000), 3.0).unwrap(),
            iv(3, 3, 10_800_000_000)
        );
        // SELECT interval '1 month' / 7  →  4 days 06:51:25.6896 (the
        // month's days are rounded to the microsecond before they cascade)
        assert_eq!(
            multiply_by(iv(1, 0, 0), |x| x / 7.0).unwrap(),
            iv(0, 4, 24_685_689_600)
        );
        assert!(multiply(iv(i32::MAX, 0, 0), 2.0).is_err());
    }
}
