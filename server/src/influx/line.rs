//! InfluxDB's line protocol, as Telegraf and other agents send it:
//!
//! ```text
//! measurement[,tag=value...] field=value[,field=value...] [timestamp]
//! cpu,host=a,region=eu usage_user=12.5,cores=8i,ok=t,name="x y" 1700000000000000000
//! ```
//!
//! Commas, spaces and `=` in names and tag values are escaped with `\`;
//! string fields are double-quoted with `\"` and `\\`. A number is a float
//! unless it ends in `i` (integer) or `u` (unsigned); booleans are `t`,
//! `true`, `f`, `false` in any case the spec allows. The timestamp is an
//! integer in the request's precision (nanoseconds unless told).

use std::fmt;

/// A field's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Float(f64),
    Integer(i64),
    /// Unsigned integers are kept as bigint; one past i64::MAX is refused.
    Unsigned(i64),
    String(String),
    Boolean(bool),
}

impl Value {
    /// The SQL type of a column that holds this value.
    pub fn sql_type(&self) -> &'static str {
        match self {
            Value::Float(_) => "double precision",
            Value::Integer(_) | Value::Unsigned(_) => "bigint",
            Value::String(_) => "text",
            Value::Boolean(_) => "boolean",
        }
    }
}

/// One point: a row of the measurement's table.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub measurement: String,
    pub tags: Vec<(String, String)>,
    pub fields: Vec<(String, Value)>,
    /// Nanoseconds since the Unix epoch, if the line gave a time.
    pub time_ns: Option<i128>,
}

/// What a timestamp counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Nanoseconds,
    Microseconds,
    Milliseconds,
    Seconds,
}

impl Precision {
    /// The `precision` query parameter, in v2's spelling (`ns`, `us`,
    /// `ms`, `s`) or v1's (`n`, `u`, `ms`, `s`).
    pub fn parse(text: &str) -> Option<Precision> {
        Some(match text {
            "ns" | "n" => Precision::Nanoseconds,
            "us" | "u" | "µ" => Precision::Microseconds,
            "ms" => Precision::Milliseconds,
            "s" => Precision::Seconds,
            _ => return None,
        })
    }

    fn nanos(self) -> i128 {
        match self {
            Precision::Nanoseconds => 1,
            Precision::Microseconds => 1_000,
            Precision::Milliseconds => 1_000_000,
            Precision::Seconds => 1_000_000_000,
        }
    }
}

/// A line that does not parse, with its number (from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unable to parse line {}: {}", self.line, self.message)
    }
}

/// Parses a request body; blank lines and `#` comments are skipped.
pub fn parse(body: &str, precision: Precision) -> Result<Vec<Point>, ParseError> {
    let mut points = Vec::new();
    for (n, line) in body.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let point =
            parse_line(line.trim_end_matches('\r'), precision).map_err(|message| ParseError {
                line: n + 1,
                message,
            })?;
        points.push(point);
    }
    Ok(points)
}

/// Splits at the first unescaped `stop` character outside double quotes
/// (quotes count only where `quoted` is set: in the field set).
fn split_unescaped(text: &str, stop: char, quoted: bool) -> (&str, Option<&str>) {
    let mut escaped = false;
    let mut in_quotes = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' if quoted => in_quotes = !in_quotes,
            c if c == stop && !in_quotes => return (&text[..i], Some(&text[i + c.len_utf8()..])),
            _ => {}
        }
    }
    (text, None)
}

/// Every piece between unescaped `sep` characters.
fn split_all(text: &str, sep: char, quoted: bool) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    loop {
        let (part, next) = split_unescaped(rest, sep, quoted);
        parts.push(part);
        match next {
            Some(next) => rest = next,
            None => return parts,
        }
    }
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&next) = chars.peek()
            && matches!(next, ',' | ' ' | '=' | '\\' | '"')
        {
            out.push(next);
            chars.next();
        } else {
            out.push(c);
        }
    }
    out
}

fn parse_line(line: &str, precision: Precision) -> Result<Point, String> {
    let (series, rest) = split_unescaped(line, ' ', false);
    let rest = rest.ok_or("missing fields")?;
    let (fields, time) = split_unescaped(rest.trim_start(), ' ', true);
    let mut parts = split_all(series, ',', false).into_iter();
    let measurement = unescape(parts.next().unwrap_or_default());
    if measurement.is_empty() {
        return Err("missing measurement".into());
    }
    let mut tags = Vec::new();
    for tag in parts {
        let (key, value) = split_unescaped(tag, '=', false);
        let value = value.ok_or_else(|| format!("missing tag value in {tag:?}"))?;
        if key.is_empty() || value.is_empty() {
            return Err(format!("missing tag key or value in {tag:?}"));
        }
        tags.push((unescape(key), unescape(value)));
    }
    let mut parsed_fields = Vec::new();
    for field in split_all(fields, ',', true) {
        let (key, value) = split_unescaped(field, '=', true);
        let value = value.ok_or_else(|| format!("missing field value in {field:?}"))?;
        if key.is_empty() {
            return Err(format!("missing field key in {field:?}"));
        }
        parsed_fields.push((unescape(key), field_value(value)?));
    }
    let time_ns = match time.map(str::trim) {
        None | Some("") => None,
        Some(text) => {
            let t: i64 = text
                .parse()
                .map_err(|_| format!("invalid timestamp {text:?}"))?;
            Some(i128::from(t) * precision.nanos())
        }
    };
    Ok(Point {
        measurement,
        tags,
        fields: parsed_fields,
        time_ns,
    })
}

fn field_value(text: &str) -> Result<Value, String> {
    if let Some(quoted) = text.strip_prefix('"') {
        let inner = quoted
            .strip_suffix('"')
            .ok_or_else(|| format!("unterminated string {text:?}"))?;
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\\'
                && let Some(&next) = chars.peek()
                && matches!(next, '"' | '\\')
            {
                out.push(next);
                chars.next();
            } else {
                out.push(c);
            }
        }
        return Ok(Value::String(out));
    }
    match text {
        "t" | "T" | "true" | "True" | "TRUE" => return Ok(Value::Boolean(true)),
        "f" | "F" | "false" | "False" | "FALSE" => return Ok(Value::Boolean(false)),
        _ => {}
    }
    let invalid = || format!("invalid field value {text:?}");
    if let Some(digits) = text.strip_suffix('i') {
        return digits.parse().map(Value::Integer).map_err(|_| invalid());
    }
    if let Some(digits) = text.strip_suffix('u') {
        let n: u64 = digits.parse().map_err(|_| invalid())?;
        return i64::try_from(n)
            .map(Value::Unsigned)
            .map_err(|_| format!("unsigned value {n} is beyond bigint"));
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() && !text.eq_ignore_ascii_case("inf") => Ok(Value::Float(f)),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Point {
        let mut points = parse(line, Precision::Nanoseconds).expect("parses");
        assert_eq!(points.len(), 1);
        points.remove(0)
    }

    #[test]
    fn a_full_line() {
        let p = one(
            r#"cpu,host=a,region=eu usage=12.5,cores=8i,big=3u,ok=t,name="x y" 1700000000000000000"#,
        );
        assert_eq!(p.measurement, "cpu");
        assert_eq!(
            p.tags,
            vec![("host".into(), "a".into()), ("region".into(), "eu".into())]
        );
        assert_eq!(
            p.fields,
            vec![
                ("usage".into(), Value::Float(12.5)),
                ("cores".into(), Value::Integer(8)),
                ("big".into(), Value::Unsigned(3)),
                ("ok".into(), Value::Boolean(true)),
                ("name".into(), Value::String("x y".into())),
            ]
        );
        assert_eq!(p.time_ns, Some(1_700_000_000_000_000_000));
    }

    #[test]
    fn escapes_and_quotes() {
        let p = one(r#"my\ meas\,ure,tag\=k=v\ 1\,2 msg="say \"hi\", a=b \\ ok",n=1"#);
        assert_eq!(p.measurement, "my meas,ure");
        assert_eq!(p.tags, vec![("tag=k".into(), "v 1,2".into())]);
        assert_eq!(
            p.fields[0],
            ("msg".into(), Value::String(r#"say "hi", a=b \ ok"#.into()))
        );
        assert_eq!(p.fields[1], ("n".into(), Value::Float(1.0)));
        assert_eq!(p.time_ns, None);
    }

    #[test]
    fn precision_scales_the_timestamp() {
        let points = parse("m f=1 1700000000\n", Precision::Seconds).unwrap();
        assert_eq!(points[0].time_ns, Some(1_700_000_000_000_000_000));
        assert_eq!(Precision::parse("u"), Some(Precision::Microseconds));
        assert_eq!(Precision::parse("h"), None);
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let points = parse("# a comment\n\nm f=1i\r\nm f=2i\n", Precision::Nanoseconds).unwrap();
        assert_eq!(points.len(), 2);
    }

    #[test]
    fn bad_lines_say_where() {
        for (body, line) in [
            ("m\n", 1),
            ("m f=1\nm f=\"open\n", 2),
            ("m f=1x", 1),
            ("m f=1 12ab", 1),
            ("m,t f=1", 1),
            ("m f=18446744073709551615u", 1),
            (",t=1 f=1", 1),
        ] {
            let e = parse(body, Precision::Nanoseconds).unwrap_err();
            assert_eq!(e.line, line, "{body:?}: {e}");
        }
    }
}
