//! PostgreSQL's text output for values whose text Rust and Arrow print
//! differently: floats, dates, times and timestamps. The wire (text
//! results), JSON (`to_json` of a float) and casts to text
//! ([`PgTextOutputCasts`]) all print them so.

use std::fmt::Write;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, TimeUnit, TimestampMicrosecondType};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::{Cast, TryCast};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

/// Days from 0001-01-01 (chrono's day 1 of the common era) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;
const MICROS_PER_SECOND: i64 = 1_000_000;

/// PostgreSQL switches float output to exponent form at these exponents.
const FLOAT8_EXPONENT_MAX: i32 = 15;
const FLOAT4_EXPONENT_MAX: i32 = 6;
const FLOAT_EXPONENT_MIN: i32 = -4;

/// A float as PostgreSQL prints a float8 (`single`: a float4): the shortest
/// digits that read back the same, in exponent form (`1e+20`) for very
/// large and very small magnitudes; `NaN`, `Infinity`, `-0`.
pub fn write_float<W: Write>(out: &mut W, v: f64, single: bool) -> std::fmt::Result {
    if v.is_nan() {
        return out.write_str("NaN");
    }
    if v.is_infinite() {
        return out.write_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
    }
    if v == 0.0 {
        return out.write_str(if v.is_sign_negative() { "-0" } else { "0" });
    }
    // Rust's `{:e}` gives the shortest round-tripping digits.
    let sci = if single {
        format!("{:e}", v as f32)
    } else {
        format!("{v:e}")
    };
    let (mantissa, exponent) = sci.split_once('e').expect("exponent form");
    let exponent: i32 = exponent.parse().expect("an integer exponent");
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let exponent_max = if single {
        FLOAT4_EXPONENT_MAX
    } else {
        FLOAT8_EXPONENT_MAX
    };
    if negative {
        out.write_char('-')?;
    }
    if exponent < FLOAT_EXPONENT_MIN || exponent >= exponent_max {
        out.write_str(&digits[..1])?;
        if digits.len() > 1 {
            out.write_char('.')?;
            out.write_str(&digits[1..])?;
        }
        write!(
            out,
            "e{}{:02}",
            if exponent < 0 { '-' } else { '+' },
            exponent.abs()
        )
    } else if exponent < 0 {
        out.write_str("0.")?;
        for _ in 0..(-exponent - 1) {
            out.write_char('0')?;
        }
        out.write_str(&digits)
    } else {
        let int_len = exponent as usize + 1;
        if digits.len() <= int_len {
            out.write_str(&digits)?;
            for _ in digits.len()..int_len {
                out.write_char('0')?;
            }
            Ok(())
        } else {
            out.write_str(&digits[..int_len])?;
            out.write_char('.')?;
            out.write_str(&digits[int_len..])
        }
    }
}

/// A date (days since 1970-01-01): `2026-12-01`.
pub fn write_date<W: Write>(out: &mut W, days: i32) -> std::fmt::Result {
    match NaiveDate::from_num_days_from_ce_opt(days + UNIX_EPOCH_DAYS_FROM_CE) {
        Some(d) => write!(out, "{}", d.format("%Y-%m-%d")),
        None => write!(out, "{days}"),
    }
}

/// Fractional seconds as PostgreSQL prints them: none when zero, else
/// without trailing zeros (`.5`, `.000123`).
pub fn write_fraction<W: Write>(out: &mut W, micros: u32) -> std::fmt::Result {
    if micros == 0 {
        return Ok(());
    }
    let text = format!("{micros:06}");
    write!(out, ".{}", text.trim_end_matches('0'))
}

/// A time of day (microseconds since midnight): `10:00:00`, `10:00:00.5`.
pub fn write_time<W: Write>(out: &mut W, micros: i64) -> std::fmt::Result {
    let secs = micros.div_euclid(MICROS_PER_SECOND);
    write!(
        out,
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )?;
    write_fraction(out, micros.rem_euclid(MICROS_PER_SECOND) as u32)
}

/// A timestamp (microseconds since 1970, UTC for timestamptz) as
/// PostgreSQL prints it with TimeZone UTC, ciab's:
/// `2026-12-01 10:00:00[.5][+00]`.
pub fn write_timestamp<W: Write>(out: &mut W, micros: i64, with_zone: bool) -> std::fmt::Result {
    match DateTime::from_timestamp_micros(micros) {
        Some(t) => {
            write!(out, "{}", t.naive_utc().format("%Y-%m-%d %H:%M:%S"))?;
            write_fraction(out, micros.rem_euclid(MICROS_PER_SECOND) as u32)?;
            if with_zone {
                out.write_str("+00")?;
            }
            Ok(())
        }
        None => write!(out, "{micros}"),
    }
}

/// An array element's text as array output writes it: double-quoted (with
/// `"` and `\` escaped) where array input would otherwise misread it.
pub fn array_element(text: &str) -> std::borrow::Cow<'_, str> {
    let null = text.eq_ignore_ascii_case("null");
    quoted(text, &['{', '}', ',', '"', '\\'], null, "\\\"")
}

/// A record field's text as record output writes it: double-quoted (with
/// `"` and `\` doubled) where record input would otherwise misread it.
pub fn record_field(text: &str) -> std::borrow::Cow<'_, str> {
    quoted(text, &['(', ')', ',', '"', '\\'], false, "\"\"")
}

/// `text` as it is, or in double quotes with `\` doubled and `"` written
/// as `quote`: where it is empty, holds one of `special` or white space,
/// or `force`.
fn quoted<'a>(
    text: &'a str,
    special: &[char],
    force: bool,
    quote: &str,
) -> std::borrow::Cow<'a, str> {
    let plain = !force
        && !text.is_empty()
        && !text
            .chars()
            .any(|c| special.contains(&c) || c.is_whitespace());
    if plain {
        return text.into();
    }
    let escaped = text.replace('\\', "\\\\").replace('"', quote);
    format!("\"{escaped}\"").into()
}

/// Each value of `array` as PostgreSQL's output function writes it, where
/// that differs from Arrow's cast to text: floats and timestamps. None if
/// Arrow's text is PostgreSQL's.
pub fn pg_text(array: &ArrayRef) -> Result<Option<ArrayRef>> {
    let mut out = StringBuilder::with_capacity(array.len(), array.len() * 16);
    let mut text = String::new();
    let mut each = |write: &dyn Fn(&mut String, usize) -> std::fmt::Result| {
        for i in 0..array.len() {
            if array.is_null(i) {
                out.append_null();
                continue;
            }
            text.clear();
            write(&mut text, i).expect("a String takes any text");
            out.append_value(&text);
        }
    };
    match array.data_type() {
        DataType::Float64 | DataType::Float32 => {
            let single = array.data_type() == &DataType::Float32;
            let values = cast(array, &DataType::Float64)?;
            let values = values.as_primitive::<Float64Type>();
            each(&|out, i| write_float(out, values.value(i), single));
        }
        DataType::Timestamp(_, zone) => {
            let micros = cast(
                array,
                &DataType::Timestamp(TimeUnit::Microsecond, zone.clone()),
            )?;
            let micros = micros.as_primitive::<TimestampMicrosecondType>();
            let with_zone = zone.is_some();
            each(&|out, i| write_timestamp(out, micros.value(i), with_zone));
        }
        _ => return Ok(None),
    }
    Ok(Some(Arc::new(out.finish())))
}

/// `pg_text_out(x)`: what a cast of a float or a timestamp to text gives
/// in PostgreSQL (see [`PgTextOutputCasts`]).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgTextOut {
    signature: Signature,
}

impl Default for PgTextOut {
    fn default() -> Self {
        PgTextOut {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for PgTextOut {
    fn name(&self) -> &str {
        "pg_text_out"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        let text = match pg_text(&array)? {
            Some(text) => text,
            None => cast(&array, &DataType::Utf8)?,
        };
        Ok(ColumnarValue::Array(text))
    }
}

/// Sends every cast of a float or a timestamp to text through
/// `pg_text_out`, so `ts::text`, `ts || 'x'` and `concat(ts)` read
/// `2026-12-01 10:00:00`, as in PostgreSQL, not Arrow's
/// `2026-12-01T10:00:00`, and `1e20::float8::text` is `1e+20`.
#[derive(Debug)]
pub struct PgTextOutputCasts {
    text_out: Arc<ScalarUDF>,
}

impl PgTextOutputCasts {
    pub fn new(text_out: Arc<ScalarUDF>) -> Self {
        PgTextOutputCasts { text_out }
    }

    fn rewrite(&self, expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
        let (inner, target) = match &expr {
            Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
                (expr.as_ref(), field.data_type())
            }
            _ => return Ok(Transformed::no(expr)),
        };
        if !matches!(
            target,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ) {
            return Ok(Transformed::no(expr));
        }
        let differs = matches!(
            inner.get_type(schema),
            Ok(DataType::Float32 | DataType::Float64 | DataType::Timestamp(_, _))
        );
        if !differs {
            return Ok(Transformed::no(expr));
        }
        let call = self.text_out.call(vec![inner.clone()]);
        Ok(Transformed::yes(if *target == DataType::Utf8 {
            call
        } else {
            call.cast_to(target, schema)?
        }))
    }
}

impl AnalyzerRule for PgTextOutputCasts {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        crate::rewrite_expressions(plan, |e, schema| self.rewrite(e, schema)).map(|t| t.data)
    }

    fn name(&self) -> &str {
        "ciab_pg_text_output_casts"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_like_postgres() {
        let text = |micros, zone| {
            let mut out = String::new();
            write_timestamp(&mut out, micros, zone).unwrap();
            out
        };
        assert_eq!(text(1_700_000_000_000_000, false), "2023-11-14 22:13:20");
        assert_eq!(
            text(1_700_000_000_500_000, true),
            "2023-11-14 22:13:20.5+00"
        );
        assert_eq!(text(-1, false), "1969-12-31 23:59:59.999999");
        let mut date = String::new();
        write_date(&mut date, 0).unwrap();
        assert_eq!(date, "1970-01-01");
    }

    fn float(v: f64, single: bool) -> String {
        let mut out = String::new();
        write_float(&mut out, v, single).unwrap();
        out
    }

    #[test]
    fn floats_print_like_postgres() {
        assert_eq!(float(0.1, false), "0.1");
        assert_eq!(float(1e20, false), "1e+20");
        assert_eq!(float(1e15, false), "1e+15");
        assert_eq!(float(1e14, false), "100000000000000");
        assert_eq!(float(0.00001, false), "1e-05");
        assert_eq!(float(0.0001, false), "0.0001");
        assert_eq!(float(-2.5, false), "-2.5");
        assert_eq!(float(123456789012345678.0, false), "1.2345678901234568e+17");
        assert_eq!(float(1e6, true), "1e+06");
        assert_eq!(float(100000.0, true), "100000");
        assert_eq!(float(f64::NAN, false), "NaN");
        assert_eq!(float(1.5, false), "1.5");
        assert_eq!(float(3.0, false), "3");
        assert_eq!(float(1.25e-5, false), "1.25e-05");
        assert_eq!(float(123456789012345.0, false), "123456789012345");
        assert_eq!(float(f64::from(1.1f32), true), "1.1");
    }
}
