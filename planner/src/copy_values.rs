//! Plain values in COPY's text and CSV data: numbers and dates in the one
//! form nearly every load writes them in, read into their types as the
//! records are split.
//!
//! A bulk load is mostly numbers and dates. Gathered as text, each one is
//! copied into a string column, checked as UTF-8 and read again by a cast
//! (arrow's cast of text to decimal formats strings for every value). A
//! field bound for an integer, numeric or date column instead goes to a
//! [`FieldSink`] of that type, which reads its plain form at once:
//!
//! ```text
//!  field ──► FieldSink::Int/Decimal/Date ──(a value not plain)──► the field turns Text
//!        │                                                        for the rest of the load,
//!        │                                                        its chunk is split again
//!        └─► FieldSink::Text ──► plain_decimals / plain_dates ──► casts
//! ```
//!
//! Only forms every reader takes alike are plain (`[+-]digits[.digits]`,
//! `YYYY-MM-DD`); the rest (blanks, exponents, rounding, other date
//! styles) goes to the casts an INSERT of string literals uses, so both
//! paths accept the same input. The tests check the plain readings against
//! arrow's casts.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, Date32Array, Date32Builder, Decimal128Array,
    Decimal128Builder, Int16Builder, Int32Builder, Int64Builder, PrimitiveBuilder, StringArray,
};
use datafusion::arrow::datatypes::{ArrowPrimitiveType, DataType};

use crate::error::{Error, Result, sqlstate};

/// Digits a plain number may have to be read in a `u64` without
/// overflow (10^18 < 2^63); longer ones are read in an `i128`, or by the
/// cast.
const PLAIN_DIGITS_MAX: usize = 18;

/// The column types whose values are read plainly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum PlainType {
    Int16,
    Int32,
    Int64,
    Decimal { precision: u8, scale: i8 },
    Date,
}

impl PlainType {
    pub(crate) fn of(ty: &DataType) -> Option<Self> {
        match *ty {
            DataType::Int16 => Some(Self::Int16),
            DataType::Int32 => Some(Self::Int32),
            DataType::Int64 => Some(Self::Int64),
            // A negative scale rounds to tens; the cast does that.
            DataType::Decimal128(precision, scale) if scale >= 0 => {
                Some(Self::Decimal { precision, scale })
            }
            DataType::Date32 => Some(Self::Date),
            _ => None,
        }
    }
}

/// Where one input field's values go as a chunk's records are split.
pub(crate) enum FieldSink {
    /// As bytes, to be checked as UTF-8 and cast.
    Text(BinaryBuilder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    /// `scale` decimal places, magnitudes below `bound`.
    Decimal {
        values: Decimal128Builder,
        scale: u32,
        bound: i128,
    },
    Date(Date32Builder),
}

impl FieldSink {
    /// A sink with room for `rows` values (of `bytes` bytes, as text).
    pub(crate) fn new(plain: Option<PlainType>, rows: usize, bytes: usize) -> Self {
        match plain {
            None => Self::Text(BinaryBuilder::with_capacity(rows, bytes)),
            Some(PlainType::Int16) => Self::Int16(Int16Builder::with_capacity(rows)),
            Some(PlainType::Int32) => Self::Int32(Int32Builder::with_capacity(rows)),
            Some(PlainType::Int64) => Self::Int64(Int64Builder::with_capacity(rows)),
            Some(PlainType::Decimal { precision, scale }) => Self::Decimal {
                values: Decimal128Builder::with_capacity(rows)
                    .with_data_type(DataType::Decimal128(precision, scale)),
                scale: u32::try_from(scale).expect("plain decimals have a scale of 0 or more"),
                // A precision above 38 is refused when the table is made.
                bound: 10i128.pow(u32::from(precision)),
            },
            Some(PlainType::Date) => Self::Date(Date32Builder::with_capacity(rows)),
        }
    }

    /// Appends a field's value (`None` is NULL). `Ok(false)` when a value
    /// is not plain and was not appended: the field must go as text. A
    /// date of the plain form that names no day is PostgreSQL's 22008.
    pub(crate) fn append(&mut self, field: Option<&[u8]>) -> Result<bool> {
        let Some(bytes) = field else {
            match self {
                Self::Text(b) => b.append_null(),
                Self::Int16(b) => b.append_null(),
                Self::Int32(b) => b.append_null(),
                Self::Int64(b) => b.append_null(),
                Self::Decimal { values, .. } => values.append_null(),
                Self::Date(b) => b.append_null(),
            }
            return Ok(true);
        };
        let appended = match self {
            Self::Text(b) => {
                b.append_value(bytes);
                true
            }
            Self::Int16(b) => append_int(b, bytes),
            Self::Int32(b) => append_int(b, bytes),
            Self::Int64(b) => append_int(b, bytes),
            Self::Decimal {
                values,
                scale,
                bound,
            } => plain_decimal(bytes, *scale, *bound)
                .map(|value| values.append_value(value))
                .is_some(),
            Self::Date(b) => match plain_date(bytes) {
                PlainDate::Day(day) => {
                    b.append_value(day);
                    true
                }
                PlainDate::NotPlain => false,
                PlainDate::NoSuchDay => return Err(no_such_day(bytes)),
            },
        };
        Ok(appended)
    }

    /// The values appended.
    pub(crate) fn finish(&mut self) -> Finished {
        Finished::Plain(match self {
            Self::Text(b) => return Finished::Text(b.finish()),
            Self::Int16(b) => Arc::new(b.finish()),
            Self::Int32(b) => Arc::new(b.finish()),
            Self::Int64(b) => Arc::new(b.finish()),
            Self::Decimal { values, .. } => Arc::new(values.finish()),
            Self::Date(b) => Arc::new(b.finish()),
        })
    }
}

/// A sink's values: of their type, or text still to check as UTF-8.
pub(crate) enum Finished {
    Plain(ArrayRef),
    Text(BinaryArray),
}

/// Appends a plain integer that fits the column's type.
fn append_int<T>(builder: &mut PrimitiveBuilder<T>, bytes: &[u8]) -> bool
where
    T: ArrowPrimitiveType,
    T::Native: TryFrom<i64>,
{
    match plain_int(bytes).and_then(|n| T::Native::try_from(n).ok()) {
        Some(n) => {
            builder.append_value(n);
            true
        }
        None => false,
    }
}

/// The sign of a number and its digits after it.
fn signed(bytes: &[u8]) -> (bool, &[u8]) {
    match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        _ => (false, bytes),
    }
}

/// The value of at most [`PLAIN_DIGITS_MAX`] decimal digits, if all are.
fn digits_value(digits: &[u8]) -> Option<u64> {
    debug_assert!(digits.len() <= PLAIN_DIGITS_MAX);
    digits.iter().try_fold(0u64, |n, &b| {
        let digit = b.wrapping_sub(b'0');
        (digit <= 9).then(|| n * 10 + u64::from(digit))
    })
}

/// An integer of the plain form `[+-]digits`, of at most
/// [`PLAIN_DIGITS_MAX`] digits.
fn plain_int(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = signed(bytes);
    if digits.is_empty() || digits.len() > PLAIN_DIGITS_MAX {
        return None;
    }
    let magnitude = i64::try_from(digits_value(digits)?).expect("18 digits fit an i64");
    Some(if negative { -magnitude } else { magnitude })
}

/// Text as `Decimal128(precision, scale)` when every value has the plain
/// form (see [`plain_decimal`]). `None` leaves the whole array to arrow's
/// cast, which rounds, trims blanks and words its errors.
pub(crate) fn plain_decimals(
    text: &StringArray,
    precision: u8,
    scale: i8,
) -> Option<Decimal128Array> {
    let scale_digits = u32::try_from(scale).ok()?;
    let bound = 10i128.checked_pow(u32::from(precision))?;
    let mut values = Vec::with_capacity(text.len());
    for value in text.iter() {
        values.push(match value {
            None => 0,
            Some(value) => plain_decimal(value.as_bytes(), scale_digits, bound)?,
        });
    }
    Decimal128Array::try_new(values.into(), text.nulls().cloned())
        .and_then(|a| a.with_precision_and_scale(precision, scale))
        .ok()
}

/// A decimal of the plain form `[+-]digits[.digits]`, with at most
/// `scale` digits after the point, as an integer of `scale` decimal
/// places, if its magnitude is below `bound`: the values that need no
/// rounding, which arrow's cast gives exactly these numbers for.
fn plain_decimal(bytes: &[u8], scale: u32, bound: i128) -> Option<i128> {
    let (negative, digits) = signed(bytes);
    let (whole, fraction) = match digits.iter().position(|&b| b == b'.') {
        Some(point) => (&digits[..point], &digits[point + 1..]),
        None => (digits, &[][..]),
    };
    let fraction_digits = u32::try_from(fraction.len()).ok()?;
    if (whole.is_empty() && fraction.is_empty()) || fraction_digits > scale {
        return None;
    }
    let value = if whole.len() + fraction.len() <= PLAIN_DIGITS_MAX {
        let shift = 10u64.pow(fraction_digits);
        i128::from(digits_value(whole)? * shift + digits_value(fraction)?)
    } else {
        let mut value: i128 = 0;
        for &b in whole.iter().chain(fraction) {
            if !b.is_ascii_digit() {
                return None;
            }
            value = value.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
            if value >= bound {
                return None;
            }
        }
        value
    };
    let value = match scale - fraction_digits {
        0 => value,
        shift => value.checked_mul(10i128.pow(shift))?,
    };
    if value >= bound {
        return None;
    }
    Some(if negative { -value } else { value })
}

/// Text as `Date32` when every value has the form `YYYY-MM-DD` of a day
/// between the years 1 and 9999 (see [`plain_date`]). `None` leaves the
/// whole array to the cast, which reads the other forms. A value of that
/// form that names no day (February 30th, month 13) is PostgreSQL's
/// 22008, as it says it.
pub(crate) fn plain_dates(text: &StringArray) -> Result<Option<Date32Array>> {
    let mut days = Vec::with_capacity(text.len());
    let mut all_plain = true;
    for value in text.iter() {
        let Some(value) = value else {
            days.push(0);
            continue;
        };
        days.push(match plain_date(value.as_bytes()) {
            PlainDate::Day(day) => day,
            PlainDate::NotPlain => {
                all_plain = false;
                0
            }
            PlainDate::NoSuchDay => return Err(no_such_day(value.as_bytes())),
        });
    }
    Ok(all_plain.then(|| Date32Array::new(days.into(), text.nulls().cloned())))
}

fn no_such_day(bytes: &[u8]) -> Error {
    Error::new(
        sqlstate::DATETIME_FIELD_OVERFLOW,
        format!(
            "date/time field value out of range: \"{}\"",
            String::from_utf8_lossy(bytes)
        ),
    )
}

/// What a date's text reads as in the plain form.
#[derive(Debug, PartialEq)]
enum PlainDate {
    /// Days since 1970-01-01.
    Day(i32),
    NotPlain,
    /// Of the form, but no day of the calendar (or of the year 0).
    NoSuchDay,
}

/// A date of the form `YYYY-MM-DD`, which arrow's cast reads as this day
/// and PostgreSQL in every DateStyle.
fn plain_date(bytes: &[u8]) -> PlainDate {
    let &[y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1] = bytes else {
        return PlainDate::NotPlain;
    };
    let digits = |ds: &[u8]| {
        ds.iter().try_fold(0i32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + i32::from(d - b'0'))
        })
    };
    let (Some(year), Some(month), Some(day)) = (
        digits(&[y0, y1, y2, y3]),
        digits(&[m0, m1]),
        digits(&[d0, d1]),
    ) else {
        return PlainDate::NotPlain;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return PlainDate::NoSuchDay,
    };
    if year == 0 || day == 0 || day > month_days {
        return PlainDate::NoSuchDay;
    }
    // Days from the civil date, counting years from March so that a leap
    // day ends its year (H. Hinnant's days_from_civil).
    let year = if month <= 2 { year - 1 } else { year };
    let (era, year_of_era) = (year / 400, year % 400);
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    PlainDate::Day(era * 146_097 + day_of_era - DAYS_FROM_YEAR_0_TO_1970)
}

/// Days from 0000-03-01 to 1970-01-01, in the proleptic Gregorian calendar.
const DAYS_FROM_YEAR_0_TO_1970: i32 = 719_468;

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::compute::cast;

    use super::*;

    /// Each value through a sink of `plain`: what it appended, or `None`
    /// where a value was not plain.
    fn through_sink(plain: PlainType, values: &[Option<&str>]) -> Option<ArrayRef> {
        let mut sink = FieldSink::new(Some(plain), 0, 0);
        for value in values {
            if !sink.append(value.map(str::as_bytes)).unwrap() {
                return None;
            }
        }
        match sink.finish() {
            Finished::Plain(values) => Some(values),
            Finished::Text(_) => unreachable!("the sink is plain"),
        }
    }

    #[test]
    fn plain_ints_read_as_arrows_cast_does() {
        let accepted = [
            "0",
            "-0",
            "+7",
            "0042",
            "-32768",
            "32767",
            "999999999999999999",
        ];
        for (plain, ty) in [
            (PlainType::Int16, DataType::Int16),
            (PlainType::Int32, DataType::Int32),
            (PlainType::Int64, DataType::Int64),
        ] {
            for value in accepted {
                let text = StringArray::from(vec![Some(value), None]);
                let cast = cast(&text, &ty).unwrap();
                match through_sink(plain, &[Some(value), None]) {
                    Some(fast) => assert_eq!(&fast, &cast, "{value} as {ty}"),
                    // Out of the type's range: the cast says so.
                    None => assert!(cast.is_null(0), "{value} as {ty}"),
                }
            }
        }
        // Left to the cast, which trims blanks or words the error.
        for value in [
            "",
            "-",
            "+",
            " 1",
            "1 ",
            "1.0",
            "1e3",
            "--1",
            "0x10",
            "½",
            "1234567890123456789",
        ] {
            assert!(
                through_sink(PlainType::Int64, &[Some("1"), Some(value)]).is_none(),
                "{value}"
            );
        }
        assert!(through_sink(PlainType::Int16, &[Some("32768")]).is_none());
        assert!(through_sink(PlainType::Int32, &[Some("-2147483649")]).is_none());
    }

    #[test]
    fn plain_decimals_parse_as_arrows_cast_does() {
        let accepted = [
            "0",
            "-0",
            "+7",
            "12.5",
            "-12.50",
            ".5",
            "5.",
            "0007.25",
            "9999999999999.99",
        ];
        let refused = [
            "1.005",
            " 1.5",
            "1.5 ",
            "",
            ".",
            "-",
            "1e3",
            "1,5",
            "1.2.3",
            "10000000000000",
            "--1",
            "½",
        ];
        let ty = DataType::Decimal128(15, 2);
        let plain = PlainType::Decimal {
            precision: 15,
            scale: 2,
        };
        for value in accepted {
            let text = StringArray::from(vec![Some(value), None]);
            let fast = plain_decimals(&text, 15, 2).unwrap_or_else(|| panic!("{value}"));
            let cast = cast(&text, &ty).unwrap();
            assert_eq!(&fast, cast.as_primitive(), "{value}");
            let sunk = through_sink(plain, &[Some(value), None]).unwrap();
            assert_eq!(&sunk, &cast, "{value}");
        }
        for value in refused {
            let text = StringArray::from(vec![Some("1"), Some(value)]);
            assert!(plain_decimals(&text, 15, 2).is_none(), "{value}");
            assert!(through_sink(plain, &[Some("1"), Some(value)]).is_none());
        }
        // Past 18 digits the value is read in an i128, alike.
        let wide = "12345678901234567890123.45678";
        let text = StringArray::from(vec![wide]);
        let cast = cast(&text, &DataType::Decimal128(38, 5)).unwrap();
        assert_eq!(&plain_decimals(&text, 38, 5).unwrap(), cast.as_primitive());
        // The widest precision: digits that overflow i128 are refused, not
        // wrapped.
        let wide = "9".repeat(40);
        let text = StringArray::from(vec![wide.as_str()]);
        assert!(plain_decimals(&text, 38, 0).is_none());
        // A negative scale is left to the cast, which rounds to tens.
        assert_eq!(PlainType::of(&DataType::Decimal128(5, -1)), None);
    }

    #[test]
    fn plain_dates_parse_as_arrows_cast_does() {
        // Every day of a whole 400-year cycle of the calendar (which then
        // repeats), of the years around 1970 and of the last years, in the
        // form COPY data has.
        let date = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let epoch = date(1970, 1, 1);
        let mut texts = Vec::new();
        let mut expected = Vec::new();
        for (first, last) in [
            (date(1, 1, 1), date(401, 3, 1)),
            (date(1899, 1, 1), date(2101, 1, 1)),
            (date(9998, 1, 1), date(9999, 12, 31)),
        ] {
            let mut day = first;
            while day <= last {
                texts.push(day.format("%Y-%m-%d").to_string());
                expected.push((day - epoch).num_days() as i32);
                day = day.succ_opt().unwrap();
            }
        }
        let text = StringArray::from(texts.clone());
        let fast = plain_dates(&text).unwrap().expect("every day is plain");
        assert_eq!(fast.values().as_ref(), expected.as_slice());
        let cast = cast(&text, &DataType::Date32).unwrap();
        assert_eq!(&fast, cast.as_primitive());
        let texts: Vec<Option<&str>> = texts.iter().map(|t| Some(t.as_str())).collect();
        assert_eq!(&through_sink(PlainType::Date, &texts).unwrap(), &cast);
        // Left to the cast, which reads some (2024-1-05) and words the
        // errors of the rest.
        for value in [
            "2024-1-05",
            "2024/01/05",
            " 2024-01-05",
            "20240105",
            "12024-01-05",
            "2024-01-05 BC",
            "2O24-01-05",
            "epoch",
            "",
        ] {
            let text = StringArray::from(vec![Some("2024-02-29"), None, Some(value)]);
            assert!(plain_dates(&text).unwrap().is_none(), "{value}");
            assert!(through_sink(PlainType::Date, &[Some(value)]).is_none());
        }
        // PostgreSQL's 22008, also after a value left to the cast.
        for value in [
            "2024-02-30",
            "2023-02-29",
            "1900-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-01-00",
            "2024-04-31",
            "0000-01-01",
        ] {
            let text = StringArray::from(vec![Some("2024-1-5"), Some(value)]);
            let e = plain_dates(&text).unwrap_err();
            assert_eq!(e.sqlstate, sqlstate::DATETIME_FIELD_OVERFLOW, "{value}");
            assert_eq!(
                e.message,
                format!("date/time field value out of range: \"{value}\"")
            );
            let mut sink = FieldSink::new(Some(PlainType::Date), 0, 0);
            let e = sink.append(Some(value.as_bytes())).unwrap_err();
            assert_eq!(e.sqlstate, sqlstate::DATETIME_FIELD_OVERFLOW, "{value}");
        }
        let text = StringArray::from(vec![Some("2024-02-29"), None]);
        let fast = plain_dates(&text).unwrap().unwrap();
        assert!(fast.is_null(1));
        assert_eq!(fast.value(0), 19_782);
    }
}
