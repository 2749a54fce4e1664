//! `to_char(date or timestamp, template)` with PostgreSQL's template
//! patterns (`YYYY-MM-DD HH24:MI:SS`), in place of DataFusion's, which reads
//! the template as a strftime format and would print `YYYY` back.
//!
//! The patterns of dates and times are supported, with the `FM` prefix;
//! patterns PostgreSQL knows and ciab does not yet (ISO weeks, Julian days,
//! ordinal suffixes ...) are refused with 0A000 rather than printed wrong.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringBuilder};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToChar {
    signature: Signature,
}

impl Default for ToChar {
    fn default() -> Self {
        let timestamp = |tz: Option<Arc<str>>| {
            TypeSignature::Exact(vec![
                DataType::Timestamp(TimeUnit::Microsecond, tz),
                DataType::Utf8,
            ])
        };
        ToChar {
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Date32, DataType::Utf8]),
                    timestamp(None),
                    timestamp(Some("UTC".into())),
                    TypeSignature::Exact(vec![
                        DataType::Timestamp(TimeUnit::Nanosecond, None),
                        DataType::Utf8,
                    ]),
                    TypeSignature::Exact(vec![
                        DataType::Timestamp(TimeUnit::Nanosecond, Some("+00:00".into())),
                        DataType::Utf8,
                    ]),
                ],
                Volatility::Stable,
            ),
        }
    }
}

impl ScalarUDFImpl for ToChar {
    fn name(&self) -> &str {
        "to_char"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let with_zone = matches!(args.args[0].data_type(), DataType::Timestamp(_, Some(_)));
        let arrays: Vec<ArrayRef> = ColumnarValue::values_to_arrays(&args.args)?;
        let mut out = StringBuilder::new();
        let mut text = String::new();
        for row in 0..args.number_rows {
            let value = ScalarValue::try_from_array(&arrays[0], row)?;
            let template = ScalarValue::try_from_array(&arrays[1], row)?;
            let (Some(at), ScalarValue::Utf8(Some(template))) = (date_time(&value), template)
            else {
                out.append_null();
                continue;
            };
            text.clear();
            format(&mut text, &at, &template, with_zone)?;
            out.append_value(&text);
        }
        let array: ArrayRef = Arc::new(out.finish());
        debug_assert_eq!(array.len(), args.number_rows);
        Ok(ColumnarValue::Array(array))
    }
}

/// The value as a date and time (UTC for a timestamp with time zone, as
/// ciab's sessions run in UTC).
fn date_time(value: &ScalarValue) -> Option<NaiveDateTime> {
    match value {
        ScalarValue::Date32(Some(days)) => {
            DateTime::from_timestamp(i64::from(*days) * 86_400, 0).map(|d| d.naive_utc())
        }
        ScalarValue::TimestampMicrosecond(Some(us), _) => {
            DateTime::from_timestamp_micros(*us).map(|d| d.naive_utc())
        }
        ScalarValue::TimestampNanosecond(Some(ns), _) => {
            Some(DateTime::from_timestamp_nanos(*ns).naive_utc())
        }
        _ => None,
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Patterns PostgreSQL knows that ciab does not print yet, longest first.
const UNSUPPORTED: &[&str] = &[
    "IYYY", "iyyy", "SSSSS", "sssss", "SSSS", "ssss", "Y,YYY", "y,yyy", "IYY", "iyy", "IW", "iw",
    "ID", "id", "IY", "iy", "CC", "cc", "WW", "ww", "TH", "th", "RM", "rm", "OF", "TZH", "TZM",
    "FF1", "FF2", "FF3", "FF4", "FF5", "FF6", "ff1", "ff2", "ff3", "ff4", "ff5", "ff6", "FX", "fx",
    "SP", "sp", "BC", "AD", "B.C.", "A.D.", "bc", "ad", "b.c.", "a.d.", "J", "j", "W", "w", "I",
    "i",
];

fn format(out: &mut String, at: &NaiveDateTime, template: &str, with_zone: bool) -> Result<()> {
    let mut rest = template;
    while !rest.is_empty() {
        // "quoted text" is copied; a backslash escapes the next character.
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            out.push_str(&quoted[..end]);
            rest = quoted.get(end + 1..).unwrap_or("");
            continue;
        }
        if let Some(escaped) = rest.strip_prefix('\\') {
            let mut chars = escaped.chars();
            if let Some(c) = chars.next() {
                out.push(c);
            }
            rest = chars.as_str();
            continue;
        }
        let (fill, body) = match rest.strip_prefix("FM").or_else(|| rest.strip_prefix("fm")) {
            Some(body) => (true, body),
            None => (false, rest),
        };
        // Before the supported ones: SSSS must not print as SS twice.
        if let Some(p) = UNSUPPORTED.iter().find(|p| body.starts_with(**p)) {
            return Err(DataFusionError::NotImplemented(format!(
                "to_char's template pattern {p} is not supported yet"
            )));
        }
        match pattern(body, at, fill, with_zone) {
            Some((text, len)) => {
                out.push_str(&text);
                rest = &body[len..];
            }
            None => {
                let mut chars = body.chars();
                if let Some(c) = chars.next() {
                    out.push(c);
                }
                rest = chars.as_str();
            }
        }
    }
    Ok(())
}

/// The pattern at the start of `body`, formatted, and its length.
fn pattern(body: &str, at: &NaiveDateTime, fill: bool, with_zone: bool) -> Option<(String, usize)> {
    let num = |value: i64, width: usize| {
        if fill {
            value.to_string()
        } else {
            format!("{value:0width$}")
        }
    };
    let name = |full: &str, upper: bool, lower: bool, pad: usize| {
        let text = if upper {
            full.to_uppercase()
        } else if lower {
            full.to_lowercase()
        } else {
            full.to_string()
        };
        if fill { text } else { format!("{text:<pad$}") }
    };
    let month = MONTHS[at.month0() as usize];
    let day = DAYS[at.weekday().num_days_from_sunday() as usize];
    let hour12 = match at.hour() % 12 {
        0 => 12,
        h => h,
    };
    let pm = at.hour() >= 12;
    let hour24 = || num(i64::from(at.hour()), 2);
    let hour = || num(i64::from(hour12), 2);
    let minute = || num(i64::from(at.minute()), 2);
    let second = || num(i64::from(at.second()), 2);
    let millis = || num(i64::from(at.nanosecond() / 1_000_000), 3);
    let micros = || num(i64::from(at.nanosecond() / 1_000), 6);
    let year4 = || num(i64::from(at.year()), 4);
    let year3 = || num(i64::from(at.year() % 1000), 3);
    let year2 = || num(i64::from(at.year() % 100), 2);
    let year1 = || num(i64::from(at.year() % 10), 1);
    let month_number = || num(i64::from(at.month()), 2);
    let day_of_year = || num(i64::from(at.ordinal()), 3);
    let day_of_month = || num(i64::from(at.day()), 2);
    let quarter = || num(i64::from(at.month0() / 3 + 1), 1);
    // Longer patterns first where one begins another.
    let candidates: [(&str, &dyn Fn() -> String); 47] = [
        ("HH24", &hour24),
        ("hh24", &hour24),
        ("HH12", &hour),
        ("hh12", &hour),
        ("HH", &hour),
        ("hh", &hour),
        ("MI", &minute),
        ("mi", &minute),
        ("SS", &second),
        ("ss", &second),
        ("MS", &millis),
        ("ms", &millis),
        ("US", &micros),
        ("us", &micros),
        ("AM", &|| (if pm { "PM" } else { "AM" }).into()),
        ("PM", &|| (if pm { "PM" } else { "AM" }).into()),
        ("am", &|| (if pm { "pm" } else { "am" }).into()),
        ("pm", &|| (if pm { "pm" } else { "am" }).into()),
        ("A.M.", &|| (if pm { "P.M." } else { "A.M." }).into()),
        ("P.M.", &|| (if pm { "P.M." } else { "A.M." }).into()),
        ("a.m.", &|| (if pm { "p.m." } else { "a.m." }).into()),
        ("p.m.", &|| (if pm { "p.m." } else { "a.m." }).into()),
        ("YYYY", &year4),
        ("yyyy", &year4),
        ("YYY", &year3),
        ("yyy", &year3),
        ("YY", &year2),
        ("yy", &year2),
        ("Y", &year1),
        ("y", &year1),
        ("MONTH", &|| name(month, true, false, 9)),
        ("Month", &|| name(month, false, false, 9)),
        ("month", &|| name(month, false, true, 9)),
        ("MON", &|| month[..3].to_uppercase()),
        ("Mon", &|| month[..3].to_string()),
        ("mon", &|| month[..3].to_lowercase()),
        ("MM", &month_number),
        ("mm", &month_number),
        ("DAY", &|| name(day, true, false, 9)),
        ("Day", &|| name(day, false, false, 9)),
        ("day", &|| name(day, false, true, 9)),
        ("DY", &|| day[..3].to_uppercase()),
        ("Dy", &|| day[..3].to_string()),
        ("dy", &|| day[..3].to_lowercase()),
        ("DDD", &day_of_year),
        ("ddd", &day_of_year),
        ("DD", &day_of_month),
    ];
    let more: [(&str, &dyn Fn() -> String); 3] =
        [("dd", &day_of_month), ("Q", &quarter), ("q", &quarter)];
    if let Some(rest) = body.strip_prefix(['D', 'd'])
        && !rest.starts_with(['D', 'd', 'A', 'a', 'Y', 'y'])
    {
        return Some((num(i64::from(at.weekday().number_from_sunday()), 1), 1));
    }
    if body.starts_with("TZ") || body.starts_with("tz") {
        let zone = if with_zone { "UTC" } else { "" };
        let zone = if body.starts_with("tz") {
            zone.to_lowercase()
        } else {
            zone.to_string()
        };
        return Some((zone, 2));
    }
    candidates
        .iter()
        .chain(more.iter())
        .find(|(p, _)| body.starts_with(p))
        .map(|(p, f)| (f(), p.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap()
    }

    fn render(template: &str) -> String {
        let mut out = String::new();
        format(&mut out, &at("2024-02-29 13:04:05.123456"), template, false).unwrap();
        out
    }

    #[test]
    fn postgresql_patterns() {
        // Each expected text is what PostgreSQL 15 prints.
        assert_eq!(render("YYYY-MM-DD HH24:MI:SS"), "2024-02-29 13:04:05");
        assert_eq!(render("HH12:MI AM MS US"), "01:04 PM 123 123456");
        assert_eq!(render("Day, DD Month YYYY"), "Thursday , 29 February  2024");
        assert_eq!(render("FMDay, FMDD FMMonth"), "Thursday, 29 February");
        assert_eq!(render("Dy Mon DDD D Q"), "Thu Feb 060 5 1");
        assert_eq!(render("\"Year\" YYYY"), "Year 2024");
        assert_eq!(render("yyyy-mm-dd hh24:mi:ss"), "2024-02-29 13:04:05");
    }

    #[test]
    fn unsupported_patterns_are_refused() {
        let mut out = String::new();
        let e = format(&mut out, &at("2024-02-29 13:04:05"), "IYYY-IW", false).unwrap_err();
        assert!(matches!(e, DataFusionError::NotImplemented(_)), "{e}");
    }
}
