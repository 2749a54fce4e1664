//! Bucketing times: TimescaleDB's `time_bucket` and PostgreSQL's `date_bin`.
//!
//! Both floor a time to the start of its bucket, counted from an origin:
//! `origin + floor((t - origin) / width) * width`. They differ in their
//! defaults and in what they accept. `time_bucket` counts from Monday
//! 2000-01-03 (so week buckets start on Mondays), or from 2000-01-01 for
//! month widths, and takes an origin or an offset; `date_bin` needs an
//! origin and refuses months. Times are microseconds, as in PostgreSQL; a
//! timestamptz is bucketed in UTC, as TimescaleDB does without a time zone.

use std::sync::Arc;

use chrono::{DateTime, Datelike, Months, NaiveDate};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Date32Array, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{
    DataType, Int16Type, Int32Type, Int64Type, IntervalMonthDayNano, IntervalMonthDayNanoType,
    IntervalUnit, TimeUnit,
};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::error::{Error, sqlstate};

pub const MICROS_PER_DAY: i64 = 86_400_000_000;
/// TimescaleDB's default origin, Monday 2000-01-03, in Unix microseconds.
const ORIGIN_MONDAY_MICROS: i64 = 946_857_600_000_000;
/// The origin of month buckets, 2000-01-01, in Unix microseconds.
const ORIGIN_MONTHS_MICROS: i64 = 946_684_800_000_000;

/// A bucket width: a fixed number of microseconds (days count as 24 hours)
/// or a number of calendar months. PostgreSQL's intervals hold both; a
/// width may not mix them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    Micros(i64),
    Months(i32),
}

impl Width {
    pub fn of_interval(interval: IntervalMonthDayNano) -> Result<Width, Error> {
        let IntervalMonthDayNano {
            months,
            days,
            nanoseconds,
        } = interval;
        if months != 0 {
            if days != 0 || nanoseconds != 0 {
                return Err(Error::new(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    "month intervals cannot have day or time component",
                ));
            }
            if months < 0 {
                return Err(period_not_positive());
            }
            return Ok(Width::Months(months));
        }
        let micros = day_time_micros(interval);
        match i64::try_from(micros) {
            Ok(micros) if micros > 0 => Ok(Width::Micros(micros)),
            _ => Err(period_not_positive()),
        }
    }

    /// `t + self`, month-aware, for stepping from bucket to bucket.
    pub fn add_micros(self, t: i64) -> Result<i64, Error> {
        match self {
            Width::Micros(width) => t.checked_add(width).ok_or_else(out_of_range),
            Width::Months(months) => {
                let time = DateTime::from_timestamp_micros(t).ok_or_else(out_of_range)?;
                time.checked_add_months(Months::new(months as u32))
                    .map(|t| t.timestamp_micros())
                    .ok_or_else(out_of_range)
            }
        }
    }
}

/// An interval's days and time in microseconds (a day as 24 hours, as
/// PostgreSQL's `date_bin` and TimescaleDB count them), months left out.
fn day_time_micros(interval: IntervalMonthDayNano) -> i128 {
    i128::from(interval.days) * i128::from(MICROS_PER_DAY) + i128::from(interval.nanoseconds / 1000)
}

fn period_not_positive() -> Error {
    Error::invalid_parameter("period must be greater than 0")
}

pub fn out_of_range() -> Error {
    Error::new(
        sqlstate::DATETIME_VALUE_OUT_OF_RANGE,
        "timestamp out of range",
    )
}

/// `origin + floor((t - origin) / width) * width`, or `None` when that
/// leaves the range of an i64.
pub fn floor_to(t: i64, width: i64, origin: i64) -> Option<i64> {
    debug_assert!(width > 0, "callers check the width");
    let (t, width, origin) = (i128::from(t), i128::from(width), i128::from(origin));
    i64::try_from(origin + (t - origin).div_euclid(width) * width).ok()
}

/// Where the bucket starts that holds `t` (Unix microseconds). Month
/// buckets start at midnight on the first of a month, counted in months
/// from the origin's month; the origin's day and time do not matter.
pub fn bucket_micros(width: Width, t: i64, origin: Option<i64>) -> Result<i64, Error> {
    match width {
        Width::Micros(width) => {
            floor_to(t, width, origin.unwrap_or(ORIGIN_MONDAY_MICROS)).ok_or_else(out_of_range)
        }
        Width::Months(months) => {
            let month_of = |micros: i64| -> Result<i64, Error> {
                let date = DateTime::from_timestamp_micros(micros)
                    .ok_or_else(out_of_range)?
                    .date_naive();
                Ok(i64::from(date.year()) * 12 + i64::from(date.month0()))
            };
            let origin = month_of(origin.unwrap_or(ORIGIN_MONTHS_MICROS))?;
            let month =
                floor_to(month_of(t)?, i64::from(months), origin).ok_or_else(out_of_range)?;
            let year = i32::try_from(month.div_euclid(12)).map_err(|_| out_of_range())?;
            NaiveDate::from_ymd_opt(year, month.rem_euclid(12) as u32 + 1, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc().timestamp_micros())
                .ok_or_else(out_of_range)
        }
    }
}

/// `t - interval` or `t + interval` as PostgreSQL adds an interval to a
/// timestamp: months on the calendar, then days and time as microseconds.
fn shift_micros(t: i64, interval: IntervalMonthDayNano, sign: i32) -> Result<i64, Error> {
    let mut t = t;
    if interval.months != 0 {
        let time = DateTime::from_timestamp_micros(t).ok_or_else(out_of_range)?;
        let months = interval.months.checked_mul(sign).ok_or_else(out_of_range)?;
        let shifted = if months >= 0 {
            time.checked_add_months(Months::new(months as u32))
        } else {
            time.checked_sub_months(Months::new(months.unsigned_abs()))
        };
        t = shifted.ok_or_else(out_of_range)?.timestamp_micros();
    }
    let micros = day_time_micros(interval);
    i64::try_from(i128::from(t) + i128::from(sign) * micros).map_err(|_| out_of_range())
}

/// The third argument of `time_bucket`.
#[derive(Debug, Clone, Copy)]
enum Anchor {
    Origin(i64),
    Offset(IntervalMonthDayNano),
}

fn bucket_with(width: Width, t: i64, anchor: Option<Anchor>) -> Result<i64, Error> {
    match anchor {
        None => bucket_micros(width, t, None),
        Some(Anchor::Origin(origin)) => bucket_micros(width, t, Some(origin)),
        Some(Anchor::Offset(offset)) => {
            let shifted = shift_micros(t, offset, -1)?;
            shift_micros(bucket_micros(width, shifted, None)?, offset, 1)
        }
    }
}

/// `time_bucket(width, ts [, origin | offset])` for timestamp,
/// timestamptz and date, and `time_bucket(width, ts [, offset])` for
/// integer times.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimeBucket {
    signature: Signature,
}

impl Default for TimeBucket {
    fn default() -> Self {
        TimeBucket {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

const INTERVAL: DataType = DataType::Interval(IntervalUnit::MonthDayNano);

fn is_integer(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
    )
}

/// Timestamps in microseconds, PostgreSQL's precision, keeping the zone.
pub fn micros_type(t: &DataType) -> Option<DataType> {
    match t {
        DataType::Timestamp(_, zone) => {
            Some(DataType::Timestamp(TimeUnit::Microsecond, zone.clone()))
        }
        _ => None,
    }
}

/// The types `time_bucket`'s arguments are cast to, or why they cannot be.
pub fn bucket_arg_types(name: &str, types: &[DataType]) -> Result<Vec<DataType>> {
    let Some(ts) = types.get(1) else {
        return plan_err!("{name} takes at least a bucket width and a time");
    };
    if is_integer(ts) || ts.is_null() && types.first().is_some_and(is_integer) {
        let ts = match ts {
            DataType::Int16 | DataType::Int8 | DataType::UInt8 => DataType::Int16,
            DataType::Int32 | DataType::UInt16 => DataType::Int32,
            _ => DataType::Int64,
        };
        if !types.iter().all(|t| is_integer(t) || t.is_null()) {
            return plan_err!("{name} over an integer time takes integer widths and offsets");
        }
        return Ok(vec![ts; types.len()]);
    }
    let time = match ts {
        DataType::Date32 | DataType::Date64 => DataType::Date32,
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null => {
            DataType::Timestamp(TimeUnit::Microsecond, None)
        }
        other => match micros_type(other) {
            Some(t) => t,
            None => return plan_err!("{name} does not take a time of type {other}"),
        },
    };
    let mut cast = vec![INTERVAL, time.clone()];
    if let Some(third) = types.get(2) {
        cast.push(match third {
            DataType::Interval(_) => INTERVAL,
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => {
                return Err(Error::new(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    format!("{name} with a time zone is not supported; ciab buckets in UTC"),
                )
                .into());
            }
            _ => time,
        });
    }
    if types.len() > 3 {
        return plan_err!("{name} takes at most three arguments");
    }
    Ok(cast)
}

impl ScalarUDFImpl for TimeBucket {
    fn name(&self) -> &str {
        "time_bucket"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        bucket_arg_types(self.name(), types)
    }

    fn return_type(&self, types: &[DataType]) -> Result<DataType> {
        Ok(types[1].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        row_wise(&args, time_bucket)
    }
}

/// Runs a kernel over the arguments as arrays of equal length; all
/// scalar arguments give a scalar.
fn row_wise(
    args: &ScalarFunctionArgs,
    kernel: fn(&[ArrayRef]) -> Result<ArrayRef>,
) -> Result<ColumnarValue> {
    let all_scalar = args
        .args
        .iter()
        .all(|a| matches!(a, ColumnarValue::Scalar(_)));
    let arrays = ColumnarValue::values_to_arrays(&args.args)?;
    let out = kernel(&arrays)?;
    assert_eq!(out.len(), arrays[0].len(), "a kernel gives a row per row");
    Ok(if all_scalar {
        ColumnarValue::Scalar(datafusion::scalar::ScalarValue::try_from_array(&out, 0)?)
    } else {
        ColumnarValue::Array(out)
    })
}

/// Evaluates `time_bucket` over arrays of equal length.
pub fn time_bucket(arrays: &[ArrayRef]) -> Result<ArrayRef> {
    let rows = arrays[1].len();
    match arrays[1].data_type() {
        DataType::Int16 => int_bucket::<Int16Type>(arrays),
        DataType::Int32 => int_bucket::<Int32Type>(arrays),
        DataType::Int64 => int_bucket::<Int64Type>(arrays),
        DataType::Date32 => {
            let widths = arrays[0].as_primitive::<IntervalMonthDayNanoType>();
            let days = arrays[1].as_primitive::<datafusion::arrow::datatypes::Date32Type>();
            let mut out = Vec::with_capacity(rows);
            for i in 0..rows {
                if widths.is_null(i)
                    || days.is_null(i)
                    || arrays.get(2).is_some_and(|a| a.is_null(i))
                {
                    out.push(None);
                    continue;
                }
                let width = Width::of_interval(widths.value(i))?;
                if let Width::Micros(micros) = width
                    && micros % MICROS_PER_DAY != 0
                {
                    return Err(Error::invalid_parameter(
                        "interval must not have sub-day precision",
                    )
                    .into());
                }
                let anchor = date_anchor(arrays.get(2), i);
                let t = i64::from(days.value(i)) * MICROS_PER_DAY;
                let bucket = bucket_with(width, t, anchor)?;
                out.push(Some(
                    i32::try_from(bucket.div_euclid(MICROS_PER_DAY)).map_err(|_| out_of_range())?,
                ));
            }
            Ok(Arc::new(Date32Array::from(out)))
        }
        DataType::Timestamp(TimeUnit::Microsecond, zone) => {
            let widths = arrays[0].as_primitive::<IntervalMonthDayNanoType>();
            let times =
                arrays[1].as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
            let mut out = Vec::with_capacity(rows);
            // The width is nearly always one literal: check it once.
            let mut last_width: Option<(IntervalMonthDayNano, Width)> = None;
            for i in 0..rows {
                if widths.is_null(i)
                    || times.is_null(i)
                    || arrays.get(2).is_some_and(|a| a.is_null(i))
                {
                    out.push(None);
                    continue;
                }
                let interval = widths.value(i);
                let width = match last_width {
                    Some((seen, width)) if seen == interval => width,
                    _ => {
                        let width = Width::of_interval(interval)?;
                        last_width = Some((interval, width));
                        width
                    }
                };
                let anchor = timestamp_anchor(arrays.get(2), i);
                out.push(Some(bucket_with(width, times.value(i), anchor)?));
            }
            Ok(Arc::new(
                TimestampMicrosecondArray::from(out).with_timezone_opt(zone.clone()),
            ))
        }
        other => exec_err!("time_bucket over {other}"),
    }
}

fn timestamp_anchor(third: Option<&ArrayRef>, i: usize) -> Option<Anchor> {
    let third = third?;
    Some(match third.data_type() {
        DataType::Interval(_) => {
            Anchor::Offset(third.as_primitive::<IntervalMonthDayNanoType>().value(i))
        }
        _ => Anchor::Origin(
            third
                .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
                .value(i),
        ),
    })
}

fn date_anchor(third: Option<&ArrayRef>, i: usize) -> Option<Anchor> {
    let third = third?;
    Some(match third.data_type() {
        DataType::Interval(_) => {
            Anchor::Offset(third.as_primitive::<IntervalMonthDayNanoType>().value(i))
        }
        _ => Anchor::Origin(
            i64::from(
                third
                    .as_primitive::<datafusion::arrow::datatypes::Date32Type>()
                    .value(i),
            ) * MICROS_PER_DAY,
        ),
    })
}

/// TimescaleDB's integer buckets: `offset + floor((t - offset) / width) *
/// width`, in the time's own type.
fn int_bucket<T>(arrays: &[ArrayRef]) -> Result<ArrayRef>
where
    T: datafusion::arrow::datatypes::ArrowPrimitiveType,
    T::Native: Into<i64> + TryFrom<i64>,
    datafusion::arrow::array::PrimitiveArray<T>: From<Vec<Option<T::Native>>>,
{
    let [width, t] = [&arrays[0], &arrays[1]].map(|a| a.as_primitive::<T>());
    let offset = arrays.get(2).map(|a| a.as_primitive::<T>());
    let mut out: Vec<Option<T::Native>> = Vec::with_capacity(t.len());
    for i in 0..t.len() {
        if width.is_null(i) || t.is_null(i) || offset.is_some_and(|o| o.is_null(i)) {
            out.push(None);
            continue;
        }
        let w: i64 = width.value(i).into();
        if w <= 0 {
            return Err(period_not_positive().into());
        }
        let origin: i64 = offset.map_or(0, |o| o.value(i).into());
        let bucket = floor_to(t.value(i).into(), w, origin)
            .and_then(|b| T::Native::try_from(b).ok())
            .ok_or_else(out_of_range)?;
        out.push(Some(bucket));
    }
    Ok(Arc::new(
        datafusion::arrow::array::PrimitiveArray::<T>::from(out),
    ))
}

/// PostgreSQL's `date_bin(stride, source, origin)`, which replaces
/// DataFusion's: PostgreSQL refuses month strides and a missing origin,
/// and bins a date as a timestamptz.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DateBin {
    signature: Signature,
}

impl Default for DateBin {
    fn default() -> Self {
        DateBin {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for DateBin {
    fn name(&self) -> &str {
        "date_bin"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        let [_, source, origin] = types else {
            return plan_err!("date_bin takes a stride, a source time and an origin");
        };
        let time = |t: &DataType| match t {
            DataType::Date32 | DataType::Date64 => Some(DataType::Timestamp(
                TimeUnit::Microsecond,
                Some("UTC".into()),
            )),
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null => None,
            other => micros_type(other),
        };
        // An untyped literal takes the other time's type, as in PostgreSQL.
        let time = match (time(source), time(origin)) {
            (Some(t), _) | (None, Some(t)) => t,
            (None, None) => DataType::Timestamp(TimeUnit::Microsecond, None),
        };
        Ok(vec![INTERVAL, time.clone(), time])
    }

    fn return_type(&self, types: &[DataType]) -> Result<DataType> {
        Ok(types[1].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        row_wise(&args, date_bin)
    }
}

/// Evaluates `date_bin` over arrays of equal length.
fn date_bin(arrays: &[ArrayRef]) -> Result<ArrayRef> {
    let strides = arrays[0].as_primitive::<IntervalMonthDayNanoType>();
    let times = arrays[1].as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
    let origins =
        arrays[2].as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
    let mut out = Vec::with_capacity(times.len());
    for i in 0..times.len() {
        if strides.is_null(i) || times.is_null(i) || origins.is_null(i) {
            out.push(None);
            continue;
        }
        let stride = strides.value(i);
        if stride.months != 0 {
            return Err(Error::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                "timestamps cannot be binned into intervals containing months or years",
            )
            .into());
        }
        let micros = day_time_micros(stride);
        let micros = match i64::try_from(micros) {
            Ok(m) if m > 0 => m,
            // PostgreSQL reports this one as 22008, not 22023.
            _ => {
                return Err(Error::new(
                    sqlstate::DATETIME_VALUE_OUT_OF_RANGE,
                    "stride must be greater than zero",
                )
                .into());
            }
        };
        out.push(Some(
            floor_to(times.value(i), micros, origins.value(i)).ok_or_else(out_of_range)?,
        ));
    }
    let DataType::Timestamp(_, zone) = arrays[1].data_type() else {
        unreachable!("coerce_types made it a timestamp");
    };
    Ok(Arc::new(
        TimestampMicrosecondArray::from(out).with_timezone_opt(zone.clone()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(text: &str) -> i64 {
        chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc()
            .timestamp_micros()
    }

    fn hours(n: i64) -> Width {
        Width::Micros(n * 3_600_000_000)
    }

    #[test]
    fn default_origins_are_timescaledbs() {
        assert_eq!(ORIGIN_MONDAY_MICROS, micros("2000-01-03 00:00:00"));
        assert_eq!(ORIGIN_MONTHS_MICROS, micros("2000-01-01 00:00:00"));
        // A week bucket starts on a Monday: 2020-01-01 was a Wednesday.
        let week = Width::Micros(7 * MICROS_PER_DAY);
        let t = bucket_micros(week, micros("2020-01-01 12:00:00"), None).unwrap();
        assert_eq!(t, micros("2019-12-30 00:00:00"));
    }

    #[test]
    fn buckets_floor_before_the_origin() {
        let t = bucket_micros(hours(1), micros("1999-12-31 23:30:00"), None).unwrap();
        assert_eq!(t, micros("1999-12-31 23:00:00"));
        let t = bucket_micros(hours(5), micros("1970-01-01 00:00:00"), None).unwrap();
        assert!(t <= micros("1970-01-01 00:00:00"));
        assert!(t + 5 * 3_600_000_000 > micros("1970-01-01 00:00:00"));
    }

    #[test]
    fn month_buckets_count_months_from_the_origin_month() {
        let quarter = Width::Months(3);
        let t = bucket_micros(quarter, micros("2021-05-17 08:00:00"), None).unwrap();
        assert_eq!(t, micros("2021-04-01 00:00:00"));
        let from_feb = Some(micros("2000-02-15 13:00:00"));
        let t = bucket_micros(quarter, micros("2021-05-17 08:00:00"), from_feb).unwrap();
        assert_eq!(t, micros("2021-05-01 00:00:00"));
    }

    #[test]
    fn widths_are_checked() {
        let iv = |months, days, nanoseconds| IntervalMonthDayNano {
            months,
            days,
            nanoseconds,
        };
        assert_eq!(
            Width::of_interval(iv(0, 1, 0)),
            Ok(Width::Micros(MICROS_PER_DAY))
        );
        assert_eq!(
            Width::of_interval(iv(1, 1, 0)).unwrap_err().sqlstate,
            sqlstate::FEATURE_NOT_SUPPORTED
        );
        assert_eq!(
            Width::of_interval(iv(0, 0, 0)).unwrap_err().sqlstate,
            sqlstate::INVALID_PARAMETER_VALUE
        );
        assert_eq!(
            Width::of_interval(iv(0, 1, -MICROS_PER_DAY * 1000))
                .unwrap_err()
                .sqlstate,
            sqlstate::INVALID_PARAMETER_VALUE
        );
    }

    #[test]
    fn an_offset_shifts_the_buckets() {
        let offset = IntervalMonthDayNano {
            months: 0,
            days: 0,
            nanoseconds: 30 * 60 * 1_000_000_000,
        };
        let t = bucket_with(
            hours(1),
            micros("2020-01-01 10:10:00"),
            Some(Anchor::Offset(offset)),
        );
        assert_eq!(t.unwrap(), micros("2020-01-01 09:30:00"));
    }

    #[test]
    fn the_edges_of_time_are_errors() {
        assert!(floor_to(i64::MIN, 7, 3).is_none());
        assert_eq!(floor_to(-1, 10, 0), Some(-10));
        assert_eq!(floor_to(10, 10, 0), Some(10));
    }
}
