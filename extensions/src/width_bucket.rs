//! PostgreSQL's `width_bucket(operand, low, high, count)`: which of `count`
//! equal-width buckets between `low` and `high` the operand falls in, 0
//! before the first and `count + 1` past the last (the buckets run
//! downwards when `low > high`).
//!
//! PostgreSQL has a numeric version, exact, and a float8 version; it picks
//! the numeric one only when no argument is a float and one is numeric
//! (integers alone resolve to float8, its preferred numeric type). ciab
//! computes the numeric version with exact integer arithmetic on the
//! decimals' unscaled values, and the float8 version step for step as
//! PostgreSQL 15's `width_bucket_float8` does, so that a value on a
//! bucket's edge lands where PostgreSQL puts it.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Array};
use datafusion::arrow::datatypes::{
    DECIMAL128_MAX_PRECISION, DataType, Decimal128Type, Float64Type, Int64Type, i256,
};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::error::{Error, sqlstate};

pub(crate) fn width_bucket() -> ScalarUDF {
    ScalarUDF::new_from_impl(WidthBucket {
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct WidthBucket {
    signature: Signature,
}

fn invalid(message: &str) -> Error {
    Error::new(
        sqlstate::INVALID_ARGUMENT_FOR_WIDTH_BUCKET_FUNCTION,
        message,
    )
}

fn out_of_range() -> Error {
    Error::new(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, "integer out of range")
}

impl ScalarUDFImpl for WidthBucket {
    fn name(&self) -> &str {
        "width_bucket"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let [values @ .., count] = args else {
            unreachable!("a slice has a last element or is empty")
        };
        let numbers = values.len() == 3
            && values.iter().all(|t| t.is_numeric() || t.is_null())
            && (count.is_integer() || count.is_null());
        if !numbers {
            return Err(Error::undefined_function(self.name(), args).into());
        }
        let float = values.iter().any(|t| t.is_floating());
        let numeric = !float && values.iter().any(|t| t.is_decimal());
        let mut types: Vec<DataType> = values
            .iter()
            .map(|t| match (numeric, t) {
                (true, DataType::Decimal32(p, s) | DataType::Decimal64(p, s)) => {
                    DataType::Decimal128(*p, *s)
                }
                (true, DataType::Decimal128(..)) => t.clone(),
                (true, _) => DataType::Decimal128(DECIMAL128_MAX_PRECISION, 0),
                (false, _) => DataType::Float64,
            })
            .collect();
        // A count that does not fit an int4 is refused when it is read.
        types.push(DataType::Int64);
        Ok(types)
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(args.number_rows))
            .collect::<Result<Vec<ArrayRef>>>()?;
        let [operand, low, high, count] = arrays.as_slice() else {
            unreachable!("coerced to four arguments")
        };
        let count = count.as_primitive::<Int64Type>();
        let mut buckets = Int32Array::builder(args.number_rows);
        for row in 0..args.number_rows {
            let nulls = [operand, low, high].iter().any(|a| a.is_null(row)) || count.is_null(row);
            if nulls {
                buckets.append_null();
                continue;
            }
            let count: i32 = count.value(row).try_into().map_err(|_| out_of_range())?;
            if count <= 0 {
                return Err(invalid("count must be greater than zero").into());
            }
            let bucket = match operand.data_type() {
                DataType::Decimal128(..) => {
                    let value = |a: &ArrayRef| -> (i128, i8) {
                        let DataType::Decimal128(_, s) = a.data_type() else {
                            unreachable!("coerced to decimals alike")
                        };
                        (a.as_primitive::<Decimal128Type>().value(row), *s)
                    };
                    numeric_bucket(value(operand), value(low), value(high), count)?
                }
                _ => {
                    let value = |a: &ArrayRef| a.as_primitive::<Float64Type>().value(row);
                    float_bucket(value(operand), value(low), value(high), count)?
                }
            };
            buckets.append_value(bucket);
        }
        let buckets: ArrayRef = Arc::new(buckets.finish());
        Ok(ColumnarValue::Array(buckets))
    }
}

/// The bucket past the last one.
fn past_last(count: i32) -> Result<i32, Error> {
    count.checked_add(1).ok_or_else(out_of_range)
}

/// PostgreSQL's `width_bucket_numeric`: `(operand - low) · count ÷
/// (high - low)`, truncated, plus one; exact, on values brought to one scale.
fn numeric_bucket(
    operand: (i128, i8),
    low: (i128, i8),
    high: (i128, i8),
    count: i32,
) -> Result<i32, Error> {
    let scale = operand.1.max(low.1).max(high.1);
    // Scales are at most 38 apart and values below 10^38: the product fits.
    let aligned = |(v, s): (i128, i8)| {
        i256::from_i128(v) * i256::from_i128(10).wrapping_pow((scale - s) as u32)
    };
    let (operand, low, high) = (aligned(operand), aligned(low), aligned(high));
    let (before, past, from, width) = match low.cmp(&high) {
        std::cmp::Ordering::Equal => return Err(invalid("lower bound cannot equal upper bound")),
        std::cmp::Ordering::Less => (operand < low, operand >= high, operand - low, high - low),
        std::cmp::Ordering::Greater => (operand > low, operand <= high, low - operand, low - high),
    };
    if before {
        return Ok(0);
    }
    if past {
        return past_last(count);
    }
    // 0 <= from < width, so the quotient is below count.
    let bucket = (from * i256::from_i128(count as i128)) / width;
    Ok(bucket.as_i128() as i32 + 1)
}

/// PostgreSQL 15's `width_bucket_float8`, step for step: `count ·
/// (operand - low) ÷ (high - low) + 1`, truncated, in that order, since the
/// order decides where a value on a bucket's edge lands.
fn float_bucket(operand: f64, low: f64, high: f64, count: i32) -> Result<i32, Error> {
    if operand.is_nan() || low.is_nan() || high.is_nan() {
        return Err(invalid(
            "operand, lower bound, and upper bound cannot be NaN",
        ));
    }
    // An infinite operand is allowed.
    if low.is_infinite() || high.is_infinite() {
        return Err(invalid("lower and upper bounds must be finite"));
    }
    let count_f = count as f64;
    let bucket = if low < high {
        if operand < low {
            return Ok(0);
        }
        if operand >= high {
            return past_last(count);
        }
        count_f * (operand - low) / (high - low) + 1.0
    } else if low > high {
        if operand > low {
            return Ok(0);
        }
        if operand <= high {
            return past_last(count);
        }
        count_f * (low - operand) / (low - high) + 1.0
    } else {
        return Err(invalid("lower bound cannot equal upper bound"));
    };
    // C's conversion to int truncates.
    Ok(bucket as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_buckets_are_postgresqls() {
        // select width_bucket(5.35::float8, 0.024, 10.06, 5), ... on PostgreSQL 15
        assert_eq!(float_bucket(5.35, 0.024, 10.06, 5).unwrap(), 3);
        assert_eq!(float_bucket(-1.0, 0.0, 10.0, 5).unwrap(), 0);
        assert_eq!(float_bucket(10.0, 0.0, 10.0, 5).unwrap(), 6);
        assert_eq!(float_bucket(0.0, 0.0, 10.0, 5).unwrap(), 1);
        assert_eq!(float_bucket(9.0, 10.0, 0.0, 5).unwrap(), 1);
        assert_eq!(float_bucket(0.0, 10.0, 0.0, 5).unwrap(), 6);
        assert_eq!(float_bucket(f64::INFINITY, 0.0, 10.0, 5).unwrap(), 6);
        assert!(float_bucket(1.0, 1.0, 1.0, 5).is_err());
        assert!(float_bucket(1.0, 0.0, 10.0, i32::MAX).is_ok());
        assert!(float_bucket(11.0, 0.0, 10.0, i32::MAX).is_err());
    }

    #[test]
    fn numeric_buckets_are_exact() {
        // 1.49 starts the seventh of seven buckets over 1.01..1.57 (7 ·
        // 0.48 ÷ 0.56 is exactly 6); in float8 the quotient falls short.
        assert_eq!(numeric_bucket((149, 2), (101, 2), (157, 2), 7).unwrap(), 7);
        assert_eq!(float_bucket(1.49, 1.01, 1.57, 7).unwrap(), 6);
        assert_eq!(numeric_bucket((535, 2), (24, 3), (1006, 2), 5).unwrap(), 3);
        assert_eq!(numeric_bucket((5, 0), (10, 0), (0, 0), 5).unwrap(), 3);
        assert_eq!(numeric_bucket((10, 0), (0, 0), (10, 0), 5).unwrap(), 6);
        assert!(numeric_bucket((1, 0), (2, 0), (20, 1), 5).is_err());
    }
}
