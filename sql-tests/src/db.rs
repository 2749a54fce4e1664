//! The database under test, as sqllogictest sees it: a tokio-postgres
//! connection speaking either the simple or the extended protocol.
//!
//! Values are rendered by the column type letter the test expects, as
//! SQLite's own runner does: `I` as an integer, `R` with three decimals,
//! `T` as text, NULL as `NULL` and the empty string as `(empty)`. In the
//! extended protocol results arrive in binary; they are decoded here
//! independently of the server's encoder, so a bug in one is not hidden by
//! the same bug in the other.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};
use tokio_postgres::types::{FromSql, Kind, Type};
use tokio_postgres::{Client, SimpleQueryMessage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Simple,
    Extended,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Simple => "simple",
            Protocol::Extended => "extended",
        })
    }
}

/// The column types the current query record expects, shared with the
/// runner loop that knows them.
pub type ExpectedTypes = Arc<Mutex<Vec<DefaultColumnType>>>;

pub struct PgDb {
    client: Client,
    protocol: Protocol,
    expected: ExpectedTypes,
}

impl PgDb {
    pub fn new(client: Client, protocol: Protocol, expected: ExpectedTypes) -> Self {
        PgDb {
            client,
            protocol,
            expected,
        }
    }
}

#[derive(Debug)]
pub struct DbError(pub tokio_postgres::Error);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_db_error() {
            Some(db) => write!(f, "{} ({})", db.message(), db.code().code()),
            None => write!(f, "{}", self.0),
        }
    }
}

impl std::error::Error for DbError {}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        DbError(e)
    }
}

fn render(value: Option<&str>, letter: Option<&DefaultColumnType>) -> String {
    let Some(text) = value else {
        return "NULL".into();
    };
    if text.is_empty() {
        return "(empty)".into();
    }
    match letter {
        Some(DefaultColumnType::Integer) => match text {
            "t" => "1".into(),
            "f" => "0".into(),
            // Whole numbers as they are: through an f64, bigints past 2^53
            // would lose their last digits.
            _ => match text.parse::<i64>() {
                Ok(whole) => whole.to_string(),
                Err(_) => (numeric_prefix(text).trunc() as i64).to_string(),
            },
        },
        Some(DefaultColumnType::FloatingPoint) => format!("{:.3}", numeric_prefix(text)),
        _ => text.to_string(),
    }
}

/// The number a text starts with, as SQLite's runner reads a value of an
/// `I` or `R` column (`atof`): `12abc` is 12, `apdbu` is 0.
fn numeric_prefix(text: &str) -> f64 {
    let text = text.trim_start();
    let mut end = 0;
    let mut seen_digit = false;
    let mut seen_dot = false;
    for (i, c) in text.char_indices() {
        match c {
            '+' | '-' if i == 0 => {}
            '0'..='9' => seen_digit = true,
            '.' if !seen_dot => seen_dot = true,
            'e' | 'E'
                if seen_digit
                    && text[i + 1..]
                        .starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+') =>
            {
                // An exponent: take the rest if it parses.
                if let Ok(v) = text.parse::<f64>() {
                    return v;
                }
                break;
            }
            _ => break,
        }
        end = i + c.len_utf8();
    }
    text[..end].parse().unwrap_or(0.0)
}

fn letter_of(ty: &Type) -> DefaultColumnType {
    match *ty {
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => DefaultColumnType::Integer,
        Type::FLOAT4 | Type::FLOAT8 | Type::NUMERIC => DefaultColumnType::FloatingPoint,
        _ => DefaultColumnType::Text,
    }
}

#[async_trait]
impl AsyncDB for PgDb {
    type Error = DbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DbError> {
        let expected = self.expected.lock().expect("lock").clone();
        match self.protocol {
            Protocol::Simple => {
                let messages = self.client.simple_query(sql).await?;
                let mut columns = None;
                let mut rows = Vec::new();
                let mut count = 0;
                for message in messages {
                    match message {
                        SimpleQueryMessage::RowDescription(cols) => columns = Some(cols.len()),
                        SimpleQueryMessage::Row(row) => {
                            rows.push(
                                (0..row.len())
                                    .map(|i| render(row.get(i), expected.get(i)))
                                    .collect(),
                            );
                        }
                        SimpleQueryMessage::CommandComplete(n) => count = n,
                        _ => {}
                    }
                }
                match columns {
                    Some(n) => Ok(DBOutput::Rows {
                        types: (0..n)
                            .map(|i| expected.get(i).cloned().unwrap_or(DefaultColumnType::Any))
                            .collect(),
                        rows,
                    }),
                    None => Ok(DBOutput::StatementComplete(count)),
                }
            }
            Protocol::Extended => {
                let statement = self.client.prepare(sql).await?;
                if statement.columns().is_empty() {
                    let count = self.client.execute(&statement, &[]).await?;
                    return Ok(DBOutput::StatementComplete(count));
                }
                let types: Vec<Type> = statement
                    .columns()
                    .iter()
                    .map(|c| c.type_().clone())
                    .collect();
                let result = self.client.query(&statement, &[]).await?;
                let rows = result
                    .iter()
                    .map(|row| {
                        (0..row.len())
                            .map(|i| {
                                let raw: Raw = row.get(i);
                                let text = raw.0.map(|bytes| binary_text(&types[i], &bytes));
                                render(text.as_deref(), expected.get(i))
                            })
                            .collect()
                    })
                    .collect();
                Ok(DBOutput::Rows {
                    types: types
                        .iter()
                        .enumerate()
                        .map(|(i, t)| expected.get(i).cloned().unwrap_or_else(|| letter_of(t)))
                        .collect(),
                    rows,
                })
            }
        }
    }

    fn engine_name(&self) -> &str {
        "ciab"
    }

    async fn shutdown(&mut self) {}

    fn error_sql_state(err: &DbError) -> Option<String> {
        err.0.code().map(|c| c.code().to_string())
    }
}

/// A column value as the raw bytes the server sent.
struct Raw(Option<Vec<u8>>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(Some(raw.to_vec())))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Renders a binary value as PostgreSQL's text output would show it.
fn binary_text(ty: &Type, b: &[u8]) -> String {
    let be_i64 = |b: &[u8]| i64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
    let pg_epoch = chrono::NaiveDate::from_ymd_opt(2000, 1, 1)
        .expect("valid date")
        .and_hms_opt(0, 0, 0)
        .expect("valid time");
    let fraction = |micros: i64| {
        let m = micros.rem_euclid(1_000_000);
        if m == 0 {
            String::new()
        } else {
            format!(".{}", format!("{m:06}").trim_end_matches('0'))
        }
    };
    match *ty {
        Type::BOOL => if b[0] != 0 { "t" } else { "f" }.into(),
        Type::INT2 => i16::from_be_bytes([b[0], b[1]]).to_string(),
        Type::INT4 => i32::from_be_bytes(b.try_into().unwrap_or([0; 4])).to_string(),
        Type::INT8 => be_i64(b).to_string(),
        Type::OID => u32::from_be_bytes(b.try_into().unwrap_or([0; 4])).to_string(),
        Type::FLOAT4 => f32::from_be_bytes(b.try_into().unwrap_or([0; 4])).to_string(),
        Type::FLOAT8 => f64::from_be_bytes(b.try_into().unwrap_or([0; 8])).to_string(),
        Type::NUMERIC => numeric_text(b),
        Type::BYTEA => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            format!("\\x{hex}")
        }
        Type::DATE => {
            let days = i32::from_be_bytes(b.try_into().unwrap_or([0; 4]));
            (pg_epoch.date() + chrono::Duration::days(days as i64))
                .format("%Y-%m-%d")
                .to_string()
        }
        Type::TIME => {
            let micros = be_i64(b);
            let secs = micros / 1_000_000;
            format!(
                "{:02}:{:02}:{:02}{}",
                secs / 3600,
                secs / 60 % 60,
                secs % 60,
                fraction(micros)
            )
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let micros = be_i64(b);
            let t = pg_epoch + chrono::Duration::microseconds(micros);
            let zone = if *ty == Type::TIMESTAMPTZ { "+00" } else { "" };
            format!(
                "{}{}{zone}",
                t.format("%Y-%m-%d %H:%M:%S"),
                fraction(micros)
            )
        }
        Type::UUID => {
            let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
            format!(
                "{}-{}-{}-{}-{}",
                &h[..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..]
            )
        }
        Type::JSONB => String::from_utf8_lossy(&b[1..]).into_owned(),
        Type::RECORD => record_text(b),
        Type::RECORD_ARRAY => array_text(b),
        _ if matches!(ty.kind(), Kind::Array(_)) => array_text(b),
        Type::INTERVAL => {
            let micros = be_i64(&b[..8]);
            let days = i32::from_be_bytes(b[8..12].try_into().unwrap_or([0; 4]));
            let months = i32::from_be_bytes(b[12..16].try_into().unwrap_or([0; 4]));
            interval_text(months, days, micros)
        }
        _ => String::from_utf8_lossy(b).into_owned(),
    }
}

/// Splits off a big-endian 32-bit integer.
fn take_i32(b: &mut &[u8]) -> i32 {
    let (head, rest) = b.split_at(4.min(b.len()));
    *b = rest;
    i32::from_be_bytes(head.try_into().unwrap_or([0; 4]))
}

/// A length-prefixed field of an array or record: its text, None for NULL.
fn take_field(ty: &Type, b: &mut &[u8]) -> Option<String> {
    let len = take_i32(b);
    if len < 0 {
        return None;
    }
    let (value, rest) = b.split_at((len as usize).min(b.len()));
    *b = rest;
    Some(binary_text(ty, value))
}

/// A binary one-dimensional array as PostgreSQL's text output shows it:
/// `{1,NULL,"a b"}`.
fn array_text(mut b: &[u8]) -> String {
    let dimensions = take_i32(&mut b);
    let _has_nulls = take_i32(&mut b);
    let element = Type::from_oid(take_i32(&mut b) as u32).unwrap_or(Type::TEXT);
    let mut count = 0;
    for _ in 0..dimensions {
        count = take_i32(&mut b);
        let _lower_bound = take_i32(&mut b);
    }
    let items: Vec<String> = (0..count)
        .map(|_| match take_field(&element, &mut b) {
            None => "NULL".to_string(),
            Some(text) => {
                let null = text.eq_ignore_ascii_case("null");
                quoted(text, "{},\"\\", null, false)
            }
        })
        .collect();
    format!("{{{}}}", items.join(","))
}

/// A binary record as PostgreSQL's text output shows it: `(1,,"a b")`.
fn record_text(mut b: &[u8]) -> String {
    let count = take_i32(&mut b);
    let fields: Vec<String> = (0..count)
        .map(|_| {
            let ty = Type::from_oid(take_i32(&mut b) as u32).unwrap_or(Type::TEXT);
            match take_field(&ty, &mut b) {
                None => String::new(),
                Some(text) => quoted(text, "(),\"\\", false, true),
            }
        })
        .collect();
    format!("({})", fields.join(","))
}

/// An array element's or a record field's text, in double quotes where it
/// is empty, holds one of `special` or white space, or `force`; inside the
/// quotes `"` and `\` are `doubled` (records) or follow a backslash
/// (arrays).
fn quoted(text: String, special: &str, force: bool, doubled: bool) -> String {
    let quote = force
        || text.is_empty()
        || text
            .chars()
            .any(|c| special.contains(c) || c.is_whitespace());
    if !quote {
        return text;
    }
    let mut out = String::from('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push(if doubled { c } else { '\\' });
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// An interval in PostgreSQL's default output style.
fn interval_text(months: i32, days: i32, micros: i64) -> String {
    let unit = |n: i64, name: &str| format!("{n} {name}{}", if n.abs() == 1 { "" } else { "s" });
    let mut parts = Vec::new();
    if months / 12 != 0 {
        parts.push(unit((months / 12) as i64, "year"));
    }
    if months % 12 != 0 {
        parts.push(unit((months % 12) as i64, "mon"));
    }
    if days != 0 {
        parts.push(unit(days as i64, "day"));
    }
    if micros != 0 || parts.is_empty() {
        let sign = if micros < 0 { "-" } else { "" };
        let abs = micros.abs();
        let secs = abs / 1_000_000;
        let frac = abs % 1_000_000;
        let frac = if frac == 0 {
            String::new()
        } else {
            format!(".{}", format!("{frac:06}").trim_end_matches('0'))
        };
        parts.push(format!(
            "{sign}{:02}:{:02}:{:02}{frac}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        ));
    }
    parts.join(" ")
}

/// PostgreSQL's binary numeric (base-10000 digits) as decimal text.
fn numeric_text(b: &[u8]) -> String {
    let word = |i: usize| i16::from_be_bytes([b[i], b[i + 1]]);
    let (ndigits, weight, sign, dscale) = (
        word(0) as i32,
        word(2) as i32,
        word(4) as u16,
        word(6) as usize,
    );
    if sign == 0xC000 {
        return "NaN".into();
    }
    let digit = |k: i32| -> i32 {
        if k >= 0 && k < ndigits {
            word(8 + 2 * k as usize) as i32
        } else {
            0
        }
    };
    let mut int_part = String::new();
    for k in 0..=weight.max(-1) {
        let d = digit(k);
        if int_part.is_empty() {
            if d != 0 || k == weight {
                int_part = d.to_string();
            }
        } else {
            int_part.push_str(&format!("{d:04}"));
        }
    }
    if int_part.is_empty() {
        int_part.push('0');
    }
    let mut frac = String::new();
    let mut k = weight + 1;
    while frac.len() < dscale {
        frac.push_str(&format!("{:04}", digit(k)));
        k += 1;
    }
    frac.truncate(dscale);
    let sign = if sign == 0x4000 { "-" } else { "" };
    if frac.is_empty() {
        format!("{sign}{int_part}")
    } else {
        format!("{sign}{int_part}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_render_by_type_letter() {
        assert_eq!(render(Some("3.7"), Some(&DefaultColumnType::Integer)), "3");
        assert_eq!(
            render(
                Some("-9223372036854775807"),
                Some(&DefaultColumnType::Integer)
            ),
            "-9223372036854775807"
        );
        assert_eq!(
            render(Some("-12"), Some(&DefaultColumnType::Integer)),
            "-12"
        );
        assert_eq!(
            render(Some("apdbu"), Some(&DefaultColumnType::Integer)),
            "0"
        );
        assert_eq!(
            render(Some("12abc"), Some(&DefaultColumnType::Integer)),
            "12"
        );
        assert_eq!(
            render(Some("1.5e3"), Some(&DefaultColumnType::FloatingPoint)),
            "1500.000"
        );
        assert_eq!(
            render(Some("2"), Some(&DefaultColumnType::FloatingPoint)),
            "2.000"
        );
        assert_eq!(render(Some(""), None), "(empty)");
        assert_eq!(render(None, Some(&DefaultColumnType::Text)), "NULL");
    }

    #[test]
    fn binary_numeric() {
        // 123456.78: weight 1, digits [12, 3456, 7800], dscale 2.
        let bytes: Vec<u8> = [3i16, 1, 0, 2, 12, 3456, 7800]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert_eq!(numeric_text(&bytes), "123456.78");
        // -0.005: weight -1, digits [50], dscale 3.
        let bytes: Vec<u8> = [1i16, -1, 0x4000u16 as i16, 3, 50]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert_eq!(numeric_text(&bytes), "-0.005");
    }
}
