//! PostgreSQL's text input for types whose syntax Arrow does not parse:
//! intervals (`1 day 02:03:04`, `3 hours ago`, `1.5 months`), bytea
//! (`\xdeadbeef`, or the escape format `a\000b`) and numerics with an
//! exponent (`1e1`). An analyzer rule sends every cast from text to these
//! types through `pg_interval_in`, `pg_bytea_in` and `pg_numeric_in`, so
//! literals, inserted values, COPY's fields and parameters all parse as
//! PostgreSQL parses them. Timestamps are Arrow's to parse, once their
//! text has the seconds PostgreSQL lets it leave out.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayBuilder, ArrayRef, AsArray, BinaryBuilder, Decimal128Builder,
    IntervalMonthDayNanoBuilder, ListArray, StringArray, StringBuilder,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{
    DECIMAL128_MAX_PRECISION, DataType, Field, IntervalMonthDayNano, IntervalUnit,
};
use datafusion::arrow::util::display::FormatOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::expr::{Cast, TryCast};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

const NANOS_PER_MICRO: i64 = 1_000;
const MICROS_PER_SECOND: f64 = 1_000_000.0;
const SECONDS_PER_DAY: f64 = 86_400.0;
const DAYS_PER_MONTH: f64 = 30.0;

/// Parses PostgreSQL interval input into months, days and nanoseconds.
pub fn parse_interval(text: &str) -> Option<IntervalMonthDayNano> {
    let (mut months, mut days, mut micros) = (0f64, 0f64, 0f64);
    let lower = text.trim().to_ascii_lowercase();
    let mut tokens: Vec<&str> = lower.split_whitespace().collect();
    let ago = tokens.last() == Some(&"ago");
    if ago {
        tokens.pop();
    }
    if tokens.first() == Some(&"@") {
        tokens.remove(0);
    }
    if tokens.is_empty() {
        return None;
    }
    let mut i = 0;
    while i < tokens.len() {
        let token = tokens[i];
        if token.contains(':') {
            micros += parse_clock(token)?;
            i += 1;
            continue;
        }
        // A number, with its unit either attached (`3h`) or the next token.
        let split = token
            .find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(token.len());
        let (number, unit) = if split < token.len() {
            (&token[..split], &token[split..])
        } else {
            i += 1;
            // A bare number at the end is seconds, as in `'90'::interval`.
            (token, tokens.get(i).copied().unwrap_or(""))
        };
        let n: f64 = number.parse().ok()?;
        match unit.trim_end_matches('s') {
            "microsecond" | "u" | "usec" | "mic" => micros += n,
            "millisecond" | "m" if unit.starts_with("ms") || unit.starts_with("milli") => {
                micros += n * 1_000.0
            }
            "m" | "min" | "minute" | "mins" => micros += n * 60.0 * MICROS_PER_SECOND,
            "second" | "sec" | "" => micros += n * MICROS_PER_SECOND,
            "hour" | "h" | "hr" => micros += n * 3_600.0 * MICROS_PER_SECOND,
            "day" | "d" => days += n,
            "week" | "w" => days += n * 7.0,
            "month" | "mon" => months += n,
            "year" | "y" | "yr" => months += n * 12.0,
            "decade" => months += n * 120.0,
            "century" | "centurie" => months += n * 1_200.0,
            "millennium" | "millennia" => months += n * 12_000.0,
            _ => return None,
        }
        i += 1;
    }
    // PostgreSQL carries fractions down: months to days, days to time.
    let whole_months = months.trunc();
    days += (months - whole_months) * DAYS_PER_MONTH;
    let whole_days = days.trunc();
    micros += (days - whole_days) * SECONDS_PER_DAY * MICROS_PER_SECOND;
    let sign = if ago { -1 } else { 1 };
    Some(IntervalMonthDayNano::new(
        sign * whole_months as i32,
        sign * whole_days as i32,
        sign as i64 * micros.round() as i64 * NANOS_PER_MICRO,
    ))
}

/// `[-]HH:MM[:SS[.frac]]` in microseconds.
fn parse_clock(token: &str) -> Option<f64> {
    let (negative, body) = match token.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, token.strip_prefix('+').unwrap_or(token)),
    };
    let parts: Vec<&str> = body.split(':').collect();
    let (h, m, s): (f64, f64, f64) = match parts.as_slice() {
        [h, m] => (h.parse().ok()?, m.parse().ok()?, 0.0),
        [h, m, s] => (h.parse().ok()?, m.parse().ok()?, s.parse().ok()?),
        _ => return None,
    };
    let micros = ((h * 60.0 + m) * 60.0 + s) * MICROS_PER_SECOND;
    Some(if negative { -micros } else { micros })
}

/// Parses bytea input: hex format `\\x...`, or the escape format where
/// `\\\\` is a backslash and `\\nnn` an octal byte.
pub fn parse_bytea(text: &str) -> Option<Vec<u8>> {
    if let Some(hex) = text.strip_prefix("\\x") {
        let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if !digits.len().is_multiple_of(2) {
            return None;
        }
        return digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
            .collect();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
        } else if bytes.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let octal = std::str::from_utf8(bytes.get(i + 1..i + 4)?).ok()?;
            out.push(u8::from_str_radix(octal, 8).ok()?);
            i += 4;
        }
    }
    Some(out)
}

/// The most an exponent moves the point, as PostgreSQL's numeric input
/// allows (`NUMERIC_MAX_PRECISION`); a larger one is a syntax error.
const NUMERIC_EXPONENT_MAX: i64 = 1000;

/// PostgreSQL's numeric input (`numeric_in`) as a `Decimal128(precision,
/// scale)`: blanks around, a sign, digits with a point anywhere, an
/// exponent (`1e1`, `-1.5E-1`, `+.5e1`), rounded half away from zero to
/// `scale` places. Arrow's cast reads no exponent. Errors as PostgreSQL's:
/// 22P02 for text of no number, 22003 for a value that does not round to
/// fewer than `precision - scale` whole digits, and 0A000 for NaN and the
/// infinities, which PostgreSQL's numeric holds and a Decimal128 cannot.
pub fn parse_numeric(text: &str, precision: u8, scale: i8) -> crate::error::Result<i128> {
    use crate::error::{Error, sqlstate};
    assert!(
        precision <= DECIMAL128_MAX_PRECISION,
        "a Decimal128's precision"
    );
    let syntax = || {
        Error::new(
            sqlstate::INVALID_TEXT_REPRESENTATION,
            format!("invalid input syntax for type numeric: \"{text}\""),
        )
    };
    // PostgreSQL's isspace: blank, tab, the line ends, vertical tab, form feed.
    let number = text.trim_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let special = [
        "nan",
        "infinity",
        "+infinity",
        "-infinity",
        "inf",
        "+inf",
        "-inf",
    ];
    if special.iter().any(|s| number.eq_ignore_ascii_case(s)) {
        return Err(Error::new(
            sqlstate::FEATURE_NOT_SUPPORTED,
            format!(
                "numeric \"{number}\" is not supported: ciab's numeric holds finite values only"
            ),
        ));
    }
    let (negative, rest) = signed(number.as_bytes());
    let mantissa_len = rest
        .iter()
        .position(|b| !(b.is_ascii_digit() || *b == b'.'))
        .unwrap_or(rest.len());
    let (mantissa, exponent) = rest.split_at(mantissa_len);
    let (whole, fraction) = match mantissa.iter().position(|&b| b == b'.') {
        Some(point) => (&mantissa[..point], &mantissa[point + 1..]),
        None => (mantissa, &[][..]),
    };
    if whole.len() + fraction.len() == 0 || fraction.contains(&b'.') {
        return Err(syntax());
    }
    let exponent: i64 = match exponent {
        [] => 0,
        [b'e' | b'E', digits @ ..] => {
            let (minus, digits) = signed(digits);
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return Err(syntax());
            }
            // Saturates well past the limit, which refuses it.
            let magnitude = digits.iter().fold(0i64, |n, &b| {
                (n * 10 + i64::from(b - b'0')).min(NUMERIC_EXPONENT_MAX + 1)
            });
            if magnitude > NUMERIC_EXPONENT_MAX {
                return Err(syntax());
            }
            if minus { -magnitude } else { magnitude }
        }
        _ => return Err(syntax()),
    };
    // The value is digits × 10^(shift - scale): keep the digits down to
    // 10^-scale, rounding on the first one dropped.
    let digits: Vec<u8> = whole.iter().chain(fraction).map(|b| b - b'0').collect();
    let first = digits.iter().position(|&d| d != 0).unwrap_or(digits.len());
    let significant = &digits[first..];
    if significant.is_empty() {
        return Ok(0);
    }
    let shift = exponent - fraction.len() as i64 + i64::from(scale);
    let kept = (significant.len() as i64 + shift).clamp(0, significant.len() as i64) as usize;
    let overflow = || numeric_field_overflow(i32::from(precision), i32::from(scale));
    let zeros = shift.max(0);
    if kept as i64 + zeros > i64::from(precision) {
        return Err(overflow());
    }
    let mut value = significant[..kept]
        .iter()
        .fold(0i128, |n, &d| n * 10 + i128::from(d));
    value *= 10i128.pow(zeros as u32);
    if significant.get(kept).is_some_and(|&d| d >= 5) && (significant.len() as i64 + shift) >= 0 {
        value += 1;
    }
    if value >= 10i128.pow(u32::from(precision)) {
        return Err(overflow());
    }
    Ok(if negative { -value } else { value })
}

/// Whether a number's text starts with a minus, and the text after its
/// sign.
fn signed(bytes: &[u8]) -> (bool, &[u8]) {
    match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        _ => (false, bytes),
    }
}

/// PostgreSQL's error for a value too wide for `numeric(precision,
/// scale)`, whose detail names the bound (`10^4`, or `1` with no whole
/// digits).
pub fn numeric_field_overflow(precision: i32, scale: i32) -> crate::error::Error {
    use crate::error::{Error, sqlstate};
    let bound = match precision - scale {
        0 => "1".to_string(),
        n => format!("10^{n}"),
    };
    Error::new(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, "numeric field overflow").with_detail(format!(
        "A field with precision {precision}, scale {scale} must round to an absolute value less than {bound}."
    ))
}

/// [`parse_numeric`] over each text; the first that fails is the error.
pub fn numeric_values(texts: &StringArray, precision: u8, scale: i8) -> Result<ArrayRef> {
    let mut out =
        Decimal128Builder::with_capacity(texts.len()).with_precision_and_scale(precision, scale)?;
    for text in texts.iter() {
        match text {
            None => out.append_null(),
            Some(t) => out.append_value(parse_numeric(t, precision, scale)?),
        }
    }
    Ok(Arc::new(out.finish()))
}

fn parse_error(type_name: &str, text: &str) -> DataFusionError {
    DataFusionError::ArrowError(
        Box::new(datafusion::arrow::error::ArrowError::ParseError(format!(
            "invalid input syntax for type {type_name}: \"{text}\""
        ))),
        None,
    )
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgByteaIn {
    signature: Signature,
}

impl Default for PgByteaIn {
    fn default() -> Self {
        PgByteaIn {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for PgByteaIn {
    fn name(&self) -> &str {
        "pg_bytea_in"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        Ok(ColumnarValue::Array(bytea_values(
            array.as_string::<i32>(),
        )?))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgIntervalIn {
    signature: Signature,
}

impl Default for PgIntervalIn {
    fn default() -> Self {
        PgIntervalIn {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for PgIntervalIn {
    fn name(&self) -> &str {
        "pg_interval_in"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Interval(IntervalUnit::MonthDayNano))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        Ok(ColumnarValue::Array(interval_values(
            array.as_string::<i32>(),
        )?))
    }
}

/// A timestamp's text with the seconds PostgreSQL lets it leave out
/// (`2026-12-01 10:00`, `2026-12-01T10:00+02`) put in, which Arrow's
/// parser needs; None if it has them or is no such text.
pub fn with_seconds(text: &str) -> Option<String> {
    let sep = text.find([' ', 'T'])?;
    let date = &text[..sep];
    if date.matches('-').count() < 2 || !date.trim().starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let time_at = sep + text[sep..].find(|c: char| c.is_ascii_digit())?;
    let time = &text[time_at..];
    let hours = time.find(|c: char| !c.is_ascii_digit())?;
    let minutes = time[hours..].strip_prefix(':')?;
    let digits = minutes
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(minutes.len());
    if hours > 2 || digits != 2 || minutes[digits..].starts_with(':') {
        return None;
    }
    let end = time_at + hours + 1 + digits;
    Some(format!("{}:00{}", &text[..end], &text[end..]))
}

/// `pg_timestamp_text_in(text)`: the text with [`with_seconds`] applied,
/// for a cast to a timestamp type to read.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgTimestampTextIn {
    signature: Signature,
}

impl Default for PgTimestampTextIn {
    fn default() -> Self {
        PgTimestampTextIn {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for PgTimestampTextIn {
    fn name(&self) -> &str {
        "pg_timestamp_text_in"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        let strings = array.as_string::<i32>();
        let out: StringArray = strings
            .iter()
            .map(|t| t.map(|t| with_seconds(t).unwrap_or_else(|| t.to_string())))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// Arrays from PostgreSQL's array text (`{a,"b c",NULL}`), each item
/// read as PostgreSQL reads text of the element type: bytea and intervals
/// by their input functions, timestamps with their seconds completed, the
/// rest by Arrow's strict cast. Arrow alone would read text cast to a list
/// as a list of that one text.
pub fn arrays_from_text(texts: &StringArray, element: &DataType) -> Result<ListArray> {
    let mut offsets = Vec::with_capacity(texts.len() + 1);
    offsets.push(0i32);
    let mut items = StringBuilder::new();
    for text in texts.iter() {
        for item in text.map(pg_array_items).transpose()?.unwrap_or_default() {
            items.append_option(item);
        }
        let end = i32::try_from(items.len())
            .map_err(|_| DataFusionError::Execution("array text too large".into()))?;
        offsets.push(end);
    }
    let values = read_text(&items.finish(), element)?;
    Ok(ListArray::try_new(
        Arc::new(Field::new("item", element.clone(), true)),
        OffsetBuffer::new(offsets.into()),
        values,
        texts.nulls().cloned(),
    )?)
}

/// One array from PostgreSQL's array text, as [`arrays_from_text`] reads it.
pub fn array_from_text(text: &str, element: &DataType) -> Result<ScalarValue> {
    let list = arrays_from_text(&StringArray::from(vec![text]), element)?;
    Ok(ScalarValue::List(Arc::new(list)))
}

/// Text read as values of `ty` the way a cast from text to `ty` reads it
/// once [`PgTextInputCasts`] has rewritten the cast.
fn read_text(texts: &StringArray, ty: &DataType) -> Result<ArrayRef> {
    Ok(match ty {
        DataType::Binary => bytea_values(texts)?,
        DataType::Interval(IntervalUnit::MonthDayNano) => interval_values(texts)?,
        DataType::Decimal128(precision, scale) => numeric_values(texts, *precision, *scale)?,
        DataType::Timestamp(..) => {
            let completed: StringArray = texts
                .iter()
                .map(|t| t.map(|t| with_seconds(t).unwrap_or_else(|| t.to_string())))
                .collect();
            cast_with_options(&completed, ty, &STRICT)?
        }
        _ => cast_with_options(texts, ty, &STRICT)?,
    })
}

/// bytea's input function over each text; the first that is no bytea
/// text is an error.
fn bytea_values(texts: &StringArray) -> Result<ArrayRef> {
    let mut out = BinaryBuilder::with_capacity(texts.len(), texts.value_data().len());
    for text in texts.iter() {
        match text {
            None => out.append_null(),
            Some(t) => out.append_value(parse_bytea(t).ok_or_else(|| parse_error("bytea", t))?),
        }
    }
    Ok(Arc::new(out.finish()))
}

/// interval's input function over each text; the first that is no
/// interval text is an error.
fn interval_values(texts: &StringArray) -> Result<ArrayRef> {
    let mut out = IntervalMonthDayNanoBuilder::with_capacity(texts.len());
    for text in texts.iter() {
        match text {
            None => out.append_null(),
            Some(t) => {
                out.append_value(parse_interval(t).ok_or_else(|| parse_error("interval", t))?)
            }
        }
    }
    Ok(Arc::new(out.finish()))
}

/// Casts that fail on text they cannot read, as SQL's do, rather than
/// giving NULL.
const STRICT: CastOptions = CastOptions {
    safe: false,
    format_options: FormatOptions::new(),
};

/// `pg_array_in(text)`: [`arrays_from_text`] as a function, one per element
/// type, which a cast from text to an array becomes.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgArrayIn {
    signature: Signature,
    element: DataType,
}

impl PgArrayIn {
    pub fn new(element: DataType) -> Self {
        PgArrayIn {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
            element,
        }
    }
}

impl ScalarUDFImpl for PgArrayIn {
    fn name(&self) -> &str {
        "pg_array_in"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new(
            "item",
            self.element.clone(),
            true,
        ))))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        let lists = arrays_from_text(array.as_string::<i32>(), &self.element)?;
        Ok(ColumnarValue::Array(Arc::new(lists)))
    }
}

/// `pg_numeric_in(text)`: [`numeric_values`] as a function, one per
/// precision and scale, which a cast from text to numeric becomes.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgNumericIn {
    signature: Signature,
    precision: u8,
    scale: i8,
}

impl PgNumericIn {
    pub fn new(precision: u8, scale: i8) -> Self {
        PgNumericIn {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
            precision,
            scale,
        }
    }
}

impl ScalarUDFImpl for PgNumericIn {
    fn name(&self) -> &str {
        "pg_numeric_in"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Decimal128(self.precision, self.scale))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        let values = numeric_values(array.as_string::<i32>(), self.precision, self.scale)?;
        Ok(ColumnarValue::Array(values))
    }
}

/// Rewrites casts from text to interval, bytea, numeric and arrays into
/// the PostgreSQL input functions, and has the text of casts to
/// timestamps completed first (see [`with_seconds`]).
#[derive(Debug)]
pub struct PgTextInputCasts {
    interval_in: Arc<ScalarUDF>,
    bytea_in: Arc<ScalarUDF>,
    timestamp_text_in: Arc<ScalarUDF>,
}

impl PgTextInputCasts {
    pub fn new(
        interval_in: Arc<ScalarUDF>,
        bytea_in: Arc<ScalarUDF>,
        timestamp_text_in: Arc<ScalarUDF>,
    ) -> Self {
        PgTextInputCasts {
            interval_in,
            bytea_in,
            timestamp_text_in,
        }
    }

    fn rewrite(&self, expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
        let (inner, target) = match &expr {
            Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
                (expr.as_ref(), field.data_type())
            }
            _ => return Ok(Transformed::no(expr)),
        };
        let is_text = |e: &Expr| {
            matches!(
                e.get_type(schema),
                Ok(DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
            )
        };
        let completed = |e: &Expr| matches!(e, Expr::ScalarFunction(f) if f.func.name() == self.timestamp_text_in.name());
        if matches!(target, DataType::Timestamp(_, _)) {
            if !is_text(inner) || completed(inner) {
                return Ok(Transformed::no(expr));
            }
            let text = inner.clone().cast_to(&DataType::Utf8, schema)?;
            let completed = self.timestamp_text_in.call(vec![text]);
            return Ok(Transformed::yes(match expr {
                Expr::TryCast(_) => {
                    Expr::TryCast(TryCast::new(Box::new(completed), target.clone()))
                }
                _ => completed.cast_to(target, schema)?,
            }));
        }
        if let DataType::List(element) = target
            && is_text(inner)
        {
            let text = inner.clone().cast_to(&DataType::Utf8, schema)?;
            let udf = ScalarUDF::new_from_impl(PgArrayIn::new(element.data_type().clone()));
            let lists = udf.call(vec![text]);
            return Ok(Transformed::yes(match lists.get_type(schema)? == *target {
                true => lists,
                false => lists.cast_to(target, schema)?,
            }));
        }
        // TRY_CAST keeps arrow's reading, which gives NULL for what it
        // cannot read.
        if let (DataType::Decimal128(precision, scale), Expr::Cast(_)) = (target, &expr)
            && is_text(inner)
        {
            let text = inner.clone().cast_to(&DataType::Utf8, schema)?;
            let udf = ScalarUDF::new_from_impl(PgNumericIn::new(*precision, *scale));
            return Ok(Transformed::yes(udf.call(vec![text])));
        }
        let (udf, natural) = match target {
            DataType::Interval(_) => (
                &self.interval_in,
                DataType::Interval(IntervalUnit::MonthDayNano),
            ),
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
                (&self.bytea_in, DataType::Binary)
            }
            _ => return Ok(Transformed::no(expr)),
        };
        if !is_text(inner) {
            return Ok(Transformed::no(expr));
        }
        let text = inner.clone().cast_to(&DataType::Utf8, schema)?;
        let call = udf.call(vec![text]);
        Ok(Transformed::yes(if *target == natural {
            call
        } else {
            call.cast_to(target, schema)?
        }))
    }
}

impl AnalyzerRule for PgTextInputCasts {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        crate::rewrite_expressions(plan, |e, schema| self.rewrite(e, schema)).map(|t| t.data)
    }

    fn name(&self) -> &str {
        "ciab_pg_text_input_casts"
    }
}

/// The items of PostgreSQL's one-dimensional array input syntax: `{1,2}`,
/// `{}`, `{"a b",NULL,"say \"hi\""}`, with PostgreSQL's error (22P02) for
/// text that is not one; arrays of more dimensions are 0A000.
pub fn pg_array_items(text: &str) -> crate::error::Result<Vec<Option<String>>> {
    use crate::error::{Error, sqlstate};
    if text
        .trim_start()
        .strip_prefix('{')
        .is_some_and(|rest| rest.trim_start().starts_with('{'))
    {
        return Err(Error::new(
            sqlstate::FEATURE_NOT_SUPPORTED,
            format!("arrays of more than one dimension are not supported: \"{text}\""),
        ));
    }
    one_dimension(text).ok_or_else(|| {
        Error::new(
            sqlstate::INVALID_TEXT_REPRESENTATION,
            format!("malformed array literal: \"{text}\""),
        )
    })
}

fn one_dimension(text: &str) -> Option<Vec<Option<String>>> {
    let inner = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut items: Vec<Option<String>> = Vec::new();
    if inner.trim().is_empty() {
        return Some(items);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let item = if chars.next_if_eq(&'"').is_some() {
            let mut value = String::new();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
            Some(value)
        } else {
            let mut value = String::new();
            while let Some(c) = chars.next_if(|&c| c != ',') {
                if matches!(c, '{' | '}' | '"') {
                    return None;
                }
                value.push(if c == '\\' { chars.next()? } else { c });
            }
            let value = value.trim_end().to_string();
            (!value.eq_ignore_ascii_case("null")).then_some(value)
        };
        items.push(item);
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.next() {
            None => return Some(items),
            Some(',') => continue,
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_without_seconds_get_them() {
        let cases = [
            ("2026-12-01 10:00", Some("2026-12-01 10:00:00")),
            ("2026-12-01T10:00+02", Some("2026-12-01T10:00:00+02")),
            ("2026-12-01 9:05 UTC", Some("2026-12-01 9:05:00 UTC")),
            ("2026-12-01 10:00:00", None),
            ("2026-12-01 10:00:00.5+00", None),
            ("2026-12-01", None),
            ("10:00", None),
            ("2026-12-01 100:00", None),
        ];
        for (text, want) in cases {
            assert_eq!(with_seconds(text).as_deref(), want, "{text}");
        }
    }

    fn iv(months: i32, days: i32, micros: i64) -> Option<IntervalMonthDayNano> {
        Some(IntervalMonthDayNano::new(
            months,
            days,
            micros * NANOS_PER_MICRO,
        ))
    }

    #[test]
    fn postgres_interval_input() {
        assert_eq!(parse_interval("1 day 02:03:04"), iv(0, 1, 7_384_000_000));
        assert_eq!(parse_interval("1 year 2 mons 3 days"), iv(14, 3, 0));
        assert_eq!(parse_interval("3 hours ago"), iv(0, 0, -10_800_000_000));
        assert_eq!(parse_interval("1.5 months"), iv(1, 15, 0));
        assert_eq!(parse_interval("-01:30"), iv(0, 0, -5_400_000_000));
        assert_eq!(parse_interval("00:00:00.25"), iv(0, 0, 250_000));
        assert_eq!(parse_interval("10 minutes"), iv(0, 0, 600_000_000));
        assert_eq!(parse_interval("2 weeks"), iv(0, 14, 0));
        assert_eq!(parse_interval("0"), iv(0, 0, 0));
        assert_eq!(parse_interval("1 day 90"), iv(0, 1, 90_000_000));
        assert_eq!(parse_interval("nonsense"), None);
        assert_eq!(parse_interval(""), None);
    }

    /// PostgreSQL 15's readings of these texts.
    #[test]
    fn postgres_numeric_input() {
        use crate::error::sqlstate;
        let cases: [(&str, u8, i8, i128); 14] = [
            ("1e1", 6, 2, 1000),
            ("1e1", 38, 10, 10 * 10i128.pow(10)),
            ("-1.5E-1", 6, 3, -150),
            ("+.5e1", 38, 0, 5),
            ("  -1.25e1 ", 5, 1, -125),
            ("1e-20", 38, 20, 1),
            ("1e-3", 38, 2, 0),
            ("1.005", 6, 2, 101),
            ("-1.005", 6, 2, -101),
            ("1.0049", 6, 2, 100),
            ("5.", 3, 1, 50),
            ("0e999", 6, 2, 0),
            ("-0.0", 6, 2, 0),
            (
                "123456789012345678901234567890.5",
                38,
                0,
                123456789012345678901234567891,
            ),
        ];
        for (text, precision, scale, want) in cases {
            assert_eq!(parse_numeric(text, precision, scale), Ok(want), "{text}");
        }
        let errors = [
            ("1_000", sqlstate::INVALID_TEXT_REPRESENTATION),
            ("1e", sqlstate::INVALID_TEXT_REPRESENTATION),
            ("0x1F", sqlstate::INVALID_TEXT_REPRESENTATION),
            ("1..2", sqlstate::INVALID_TEXT_REPRESENTATION),
            (".", sqlstate::INVALID_TEXT_REPRESENTATION),
            ("1 e1", sqlstate::INVALID_TEXT_REPRESENTATION),
            ("1e1001", sqlstate::INVALID_TEXT_REPRESENTATION),
            ("12345.5", sqlstate::NUMERIC_VALUE_OUT_OF_RANGE),
            ("9999.995", sqlstate::NUMERIC_VALUE_OUT_OF_RANGE),
            ("1e400", sqlstate::NUMERIC_VALUE_OUT_OF_RANGE),
            ("NaN", sqlstate::FEATURE_NOT_SUPPORTED),
            ("-Infinity", sqlstate::FEATURE_NOT_SUPPORTED),
        ];
        for (text, state) in errors {
            let e = parse_numeric(text, 6, 2).unwrap_err();
            assert_eq!(e.sqlstate, state, "{text}: {e}");
        }
        let e = parse_numeric("9999.995", 6, 2).unwrap_err();
        assert_eq!(
            e.detail.as_deref(),
            Some(
                "A field with precision 6, scale 2 must round to an absolute value less than 10^4."
            )
        );
        // The largest value a Decimal128 holds, and one past it.
        let nines = "9".repeat(38);
        assert_eq!(parse_numeric(&nines, 38, 0), Ok(10i128.pow(38) - 1));
        assert!(parse_numeric(&format!("{nines}.5"), 38, 0).is_err());
    }

    #[test]
    fn postgres_bytea_input() {
        assert_eq!(
            parse_bytea("\\xDEADbeef"),
            Some(vec![0xde, 0xad, 0xbe, 0xef])
        );
        assert_eq!(parse_bytea("a\\000b\\\\"), Some(vec![b'a', 0, b'b', b'\\']));
        assert_eq!(parse_bytea("\\xabc"), None);
        assert_eq!(parse_bytea("bad\\9"), None);
    }

    /// Items are read by each type's input, failures are errors rather
    /// than NULLs, and NULL texts and NULL items stay NULL.
    #[test]
    fn arrays_read_their_items_as_their_type_does() {
        use datafusion::arrow::array::Int32Array;
        let texts = StringArray::from(vec![Some("{1, NULL ,3}"), None, Some("{}")]);
        let lists = arrays_from_text(&texts, &DataType::Int32).unwrap();
        assert_eq!(lists.value_offsets(), &[0, 3, 3, 3]);
        assert!(lists.is_null(1) && !lists.is_null(2));
        let items = lists
            .values()
            .as_primitive::<datafusion::arrow::datatypes::Int32Type>();
        assert_eq!(items, &Int32Array::from(vec![Some(1), None, Some(3)]));

        let bytes = array_from_text(r#"{"\\x01ff",NULL}"#, &DataType::Binary).unwrap();
        let want = ScalarValue::List(ScalarValue::new_list_nullable(
            &[
                ScalarValue::Binary(Some(vec![1, 0xff])),
                ScalarValue::Binary(None),
            ],
            &DataType::Binary,
        ));
        assert_eq!(bytes, want);

        for (text, element) in [
            ("{1,x}", DataType::Int32),
            ("{99999999999}", DataType::Int32),
            (r#"{"\\xabc"}"#, DataType::Binary),
            ("{1", DataType::Int32),
        ] {
            assert!(array_from_text(text, &element).is_err(), "{text}");
        }
        let deeper = pg_array_items("{{1,2},{3,4}}").unwrap_err();
        assert_eq!(
            deeper.sqlstate,
            crate::error::sqlstate::FEATURE_NOT_SUPPORTED
        );
    }
}
