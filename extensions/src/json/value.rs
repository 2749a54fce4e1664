//! JSON text as PostgreSQL reads, stores and prints it.
//!
//! `json` keeps the text it was given; `jsonb` is stored as its canonical
//! text: object keys once each (the last duplicate wins) ordered by length
//! then bytes, numbers as `numeric` prints them (`1e2` is `100`, `0.10`
//! keeps its scale), `", "` and `": "` between items. Because that text is
//! canonical, the text of any part of a jsonb value is that part's
//! canonical text, so extracting a field ([`locate`]) scans the text and
//! returns a slice of it without building a tree, and `?` and `@>`
//! ([`has_key_text`], [`contains_text`]) scan too, parsing only the scalars
//! they compare. Operators that order or rebuild documents parse them into
//! a [`Value`].

use std::cmp::Ordering;
use std::fmt::Write;

use crate::error::{Error, Result, sqlstate};

/// Nesting deeper than this is refused (54001) rather than risking the
/// stack: parsing, printing and comparing recurse once per level, on query
/// threads with tokio's 2 MiB stacks.
pub const JSON_DEPTH_MAX: usize = 256;
/// `numeric`'s limits: digits before and after the decimal point.
const NUMERIC_INTEGER_DIGITS_MAX: usize = 131_072;
const NUMERIC_SCALE_MAX: usize = 16_383;

/// Where a value sits in a document's text: byte offsets, start and end.
pub type Span = (usize, usize);

/// A parsed jsonb value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// Canonical numeric text: plain digits, never an exponent.
    Number(String),
    String(String),
    Array(Vec<Value>),
    /// Keys unique, in jsonb's order (see [`key_order`]).
    Object(Vec<(String, Value)>),
}

/// jsonb's order of object keys: shorter first, then bytewise.
pub fn key_order(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl Value {
    /// An object from members in any order; a later duplicate replaces an
    /// earlier one, as jsonb input does.
    pub fn object(mut members: Vec<(String, Value)>) -> Value {
        // A stable sort keeps duplicates in input order; keep the last.
        members.sort_by(|a, b| key_order(&a.0, &b.0));
        let mut out: Vec<(String, Value)> = Vec::with_capacity(members.len());
        for (k, v) in members {
            match out.last_mut() {
                Some(last) if last.0 == k => last.1 = v,
                _ => out.push((k, v)),
            }
        }
        Value::Object(out)
    }

    pub fn is_scalar(&self) -> bool {
        !matches!(self, Value::Array(_) | Value::Object(_))
    }

    /// The canonical jsonb text.
    pub fn to_jsonb_text(&self) -> String {
        let mut out = String::new();
        self.write_jsonb(&mut out);
        out
    }

    pub fn write_jsonb(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => out.push_str(n),
            Value::String(s) => write_string(out, s),
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.write_jsonb(out);
                }
                out.push(']');
            }
            Value::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_string(out, k);
                    out.push_str(": ");
                    v.write_jsonb(out);
                }
                out.push('}');
            }
        }
    }

    /// `jsonb_pretty`: one item per line, four spaces per level.
    pub fn write_pretty(&self, out: &mut String, level: usize) {
        let indent = |out: &mut String, level: usize| {
            for _ in 0..level {
                out.push_str("    ");
            }
        };
        // Empty containers too open a line: `{` newline, indent, `}`.
        match self {
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    out.push_str(if i > 0 { ",\n" } else { "\n" });
                    indent(out, level + 1);
                    v.write_pretty(out, level + 1);
                }
                out.push('\n');
                indent(out, level);
                out.push(']');
            }
            Value::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    out.push_str(if i > 0 { ",\n" } else { "\n" });
                    indent(out, level + 1);
                    write_string(out, k);
                    out.push_str(": ");
                    v.write_pretty(out, level + 1);
                }
                out.push('\n');
                indent(out, level);
                out.push('}');
            }
            other => other.write_jsonb(out),
        }
    }

    /// Bytes whose order is jsonb's order (`Object > Array > Boolean >
    /// Number > String > Null`; containers by size first, then item by
    /// item; a top-level scalar is a one-item array that sorts before real
    /// arrays of one item, so `[]` sorts before `null`, as in PostgreSQL).
    pub fn sort_key(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.is_scalar() {
            out.push(TAG_ARRAY);
            out.extend_from_slice(&1u32.to_be_bytes());
            out.push(0);
            self.write_sort_key(&mut out);
        } else {
            self.write_sort_key(&mut out);
        }
        out
    }

    fn write_sort_key(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.push(TAG_NULL),
            Value::String(s) => {
                out.push(TAG_STRING);
                write_escaped(out, s.as_bytes());
            }
            Value::Number(n) => {
                out.push(TAG_NUMBER);
                write_numeric_key(out, n);
            }
            Value::Bool(b) => out.extend_from_slice(&[TAG_BOOL, u8::from(*b)]),
            Value::Array(items) => {
                out.push(TAG_ARRAY);
                out.extend_from_slice(&(items.len() as u32).to_be_bytes());
                // Sorts after the marker of a top-level scalar.
                out.push(1);
                for v in items {
                    v.write_sort_key(out);
                }
            }
            Value::Object(members) => {
                out.push(TAG_OBJECT);
                out.extend_from_slice(&(members.len() as u32).to_be_bytes());
                for (k, v) in members {
                    write_escaped(out, k.as_bytes());
                    v.write_sort_key(out);
                }
            }
        }
    }

    /// Equality as jsonb compares: numbers by value (`1.0` equals `1`).
    pub fn equals(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Number(a), Value::Number(b)) => numeric_cmp(a, b) == Ordering::Equal,
            (Value::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.equals(y))
            }
            (Value::Object(a), Value::Object(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|((ka, va), (kb, vb))| ka == kb && va.equals(vb))
            }
            (a, b) => a == b,
        }
    }
}

const TAG_NULL: u8 = 1;
const TAG_STRING: u8 = 2;
const TAG_NUMBER: u8 = 3;
const TAG_BOOL: u8 = 4;
const TAG_ARRAY: u8 = 5;
const TAG_OBJECT: u8 = 6;

/// Bytes with 0x00 escaped as 0x00 0xFF and a 0x00 0x00 end, so a prefix
/// sorts before what extends it.
fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// A canonical numeric as sign, decimal exponent and significant digits
/// (no leading or trailing zeros): `-12.50` is (true, 2, "125"), that is
/// -0.125 × 10². Zero has no digits.
fn significant_digits(n: &str) -> (bool, i64, Vec<u8>) {
    let (negative, n) = match n.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, n),
    };
    let point = n.find('.').unwrap_or(n.len()) as i64;
    let digits: Vec<u8> = n.bytes().filter(|b| *b != b'.').collect();
    let lead = digits.iter().take_while(|b| **b == b'0').count();
    let end = digits
        .iter()
        .rposition(|b| *b != b'0')
        .map_or(lead, |i| i + 1);
    (negative, point - lead as i64, digits[lead..end].to_vec())
}

pub(super) fn numeric_cmp(a: &str, b: &str) -> Ordering {
    let mut ka = Vec::new();
    let mut kb = Vec::new();
    write_numeric_key(&mut ka, a);
    write_numeric_key(&mut kb, b);
    ka.cmp(&kb)
}

/// Bytes whose order is the numbers' order: a class byte (negative, zero,
/// positive), then exponent and digits, inverted for negatives so larger
/// magnitudes sort first.
fn write_numeric_key(out: &mut Vec<u8>, n: &str) {
    let (negative, exponent, digits) = significant_digits(n);
    if digits.is_empty() {
        out.push(1);
        return;
    }
    let biased = (exponent as i32 as u32) ^ 0x8000_0000;
    if negative {
        out.push(0);
        out.extend_from_slice(&(!biased).to_be_bytes());
        out.extend(digits.iter().map(|d| b'9' - d + b'0'));
        out.push(0xFF);
    } else {
        out.push(2);
        out.extend_from_slice(&biased.to_be_bytes());
        out.extend_from_slice(&digits);
        out.push(0);
    }
}

/// `s` as a JSON string, escaped as PostgreSQL escapes it.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Parses jsonb input into its canonical value.
pub fn parse(text: &str) -> Result<Value> {
    let mut p = Parser::new(text);
    let v = p.value()?;
    p.end()?;
    Ok(v)
}

/// Checks json input, which is then kept as it is.
pub fn validate(text: &str) -> Result<()> {
    let mut p = Parser::new(text);
    p.skip()?;
    p.end()
}

/// One step of a path: a key in an object or a position in an array
/// (negative counts from the end). A path given as text (`#>`) tries each
/// element as either.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    Key(&'a str),
    Index(i64),
    /// A text path element: a key in an object, a position in an array if
    /// it reads as an integer.
    Text(&'a str),
}

/// Where the value at `path` sits in `text`, as byte offsets, without
/// parsing anything but the path to it. `None` when the path leads
/// nowhere. `last_duplicate` picks the last of repeated keys, as json's
/// operators do; jsonb text has no repeats and stops at the first.
pub fn locate(text: &str, path: &[Step<'_>], unique_keys: bool) -> Result<Option<Span>> {
    let mut p = Parser::new(text);
    p.ws();
    let mut span = (p.pos, text.len());
    for step in path {
        p.pos = span.0;
        p.ws();
        let found = match p.peek() {
            Some(b'{') => {
                let key = match step {
                    Step::Key(k) | Step::Text(k) => *k,
                    Step::Index(_) => return Ok(None),
                };
                p.find_member(key, unique_keys)?
            }
            Some(b'[') => {
                let index = match step {
                    Step::Index(i) => *i,
                    Step::Text(t) => match t.trim().parse::<i64>() {
                        Ok(i) => i,
                        Err(_) => return Ok(None),
                    },
                    Step::Key(_) => return Ok(None),
                };
                p.find_item(index)?
            }
            _ => return Ok(None),
        };
        match found {
            Some(s) => span = s,
            None => return Ok(None),
        }
    }
    if path.is_empty() {
        let mut end = text.len();
        while end > span.0 && text.as_bytes()[end - 1].is_ascii_whitespace() {
            end -= 1;
        }
        span.1 = end;
    }
    Ok(Some(span))
}

/// The JSON text of a located value as `->>` gives it: a string's
/// contents unescaped, `null` as SQL NULL, anything else as its text.
pub fn as_text(json: &str) -> Result<Option<String>> {
    let mut p = Parser::new(json);
    p.ws();
    match p.peek() {
        Some(b'"') => Ok(Some(p.string()?)),
        Some(b'n') if json.trim() == "null" => Ok(None),
        _ => Ok(Some(json.to_string())),
    }
}

/// The type `jsonb_typeof` names, read off the first character.
pub fn type_of(json: &str) -> &'static str {
    match json.trim_start().as_bytes().first() {
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b'"') => "string",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        _ => "number",
    }
}

/// `?` on canonical jsonb text, scanning instead of parsing: a top-level
/// key, a string among a top-level array's items, or the string a scalar is.
pub fn has_key_text(text: &str, key: &str) -> Result<bool> {
    let mut p = Parser::new(text);
    p.ws();
    match p.peek() {
        Some(b'{') => Ok(p.find_member(key, true)?.is_some()),
        Some(b'[') => {
            let mut found = false;
            p.each(b']', |p, _| {
                p.ws();
                if p.peek() == Some(b'"') {
                    found = p.string_equals(key)?;
                } else {
                    p.skip()?;
                }
                Ok(found)
            })?;
            Ok(found)
        }
        Some(b'"') => p.string_equals(key),
        _ => Ok(false),
    }
}

/// `@>` with the contained side parsed and the containing side canonical
/// jsonb text, which is scanned: only the values under the keys and in the
/// arrays that `want` names are looked at, and only scalars are parsed.
pub fn contains_text(text: &str, want: &Value) -> Result<bool> {
    let first = text.trim_start().as_bytes().first().copied();
    if want.is_scalar() && first == Some(b'[') {
        // A top-level array contains a scalar it has.
        let items = array_items(text)?.expect("starts with [");
        for (start, end) in items {
            let item = &text[start..end];
            if !matches!(item.as_bytes()[0], b'[' | b'{') && parse(item)?.equals(want) {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    contains_nested_text(text, want)
}

fn contains_nested_text(text: &str, want: &Value) -> Result<bool> {
    let text = text.trim();
    match (text.as_bytes().first(), want) {
        (Some(b'{'), Value::Object(wanted)) => {
            // One pass over the members, noting those `want` names.
            let mut spans: Vec<Option<(usize, usize)>> = vec![None; wanted.len()];
            let mut p = Parser::new(text);
            p.each(b'}', |p, _| {
                let key = p.string()?;
                p.expect(b':')?;
                let start = p.skip()?;
                if let Ok(i) = wanted.binary_search_by(|(k, _)| key_order(k, &key)) {
                    spans[i] = Some((start, p.pos));
                }
                Ok(false)
            })?;
            for ((_, want), span) in wanted.iter().zip(spans) {
                let Some((start, end)) = span else {
                    return Ok(false);
                };
                if !contains_nested_text(&text[start..end], want)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        (Some(b'['), Value::Array(wanted)) => {
            let items = array_items(text)?.expect("starts with [");
            for want in wanted {
                let mut found = false;
                for &(start, end) in &items {
                    if contains_nested_text(&text[start..end], want)? {
                        found = true;
                        break;
                    }
                }
                if !found {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        (Some(b'{' | b'['), _) => Ok(false),
        (_, want) if want.is_scalar() => Ok(parse(text)?.equals(want)),
        _ => Ok(false),
    }
}

/// The members of a top-level object, each key (unescaped) with its
/// value's span in `text`; `None` if it is not an object.
pub fn object_members(text: &str) -> Result<Option<Vec<(String, Span)>>> {
    let mut p = Parser::new(text);
    p.ws();
    if p.peek() != Some(b'{') {
        return Ok(None);
    }
    let mut members = Vec::new();
    p.each(b'}', |p, _| {
        let key = p.string()?;
        p.expect(b':')?;
        let start = p.skip()?;
        members.push((key, (start, p.pos)));
        Ok(false)
    })?;
    Ok(Some(members))
}

/// The items of a top-level array, as spans of `text`; `None` if it is not
/// an array.
pub fn array_items(text: &str) -> Result<Option<Vec<Span>>> {
    let mut p = Parser::new(text);
    p.ws();
    if p.peek() != Some(b'[') {
        return Ok(None);
    }
    p.items().map(Some)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            depth: 0,
        }
    }

    fn invalid(&self, detail: impl Into<String>) -> Error {
        Error::new(
            sqlstate::INVALID_TEXT_REPRESENTATION,
            "invalid input syntax for type json",
        )
        .with_detail(detail)
    }

    fn unexpected(&self) -> Error {
        match self.peek() {
            None => self.invalid("The input string ended unexpectedly."),
            Some(_) => {
                let rest = &self.text[self.pos..];
                let token: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let token = if token.is_empty() {
                    rest.chars().next().map(String::from).unwrap_or_default()
                } else {
                    token
                };
                self.invalid(format!("Token \"{token}\" is invalid."))
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, b: u8) -> Result<()> {
        self.ws();
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn end(&mut self) -> Result<()> {
        self.ws();
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.unexpected()),
        }
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > JSON_DEPTH_MAX {
            return Err(Error::new(
                sqlstate::STATEMENT_TOO_COMPLEX,
                format!("JSON nests deeper than {JSON_DEPTH_MAX} levels"),
            ));
        }
        Ok(())
    }

    fn value(&mut self) -> Result<Value> {
        self.ws();
        match self.peek() {
            Some(b'{') => {
                let mut members = Vec::new();
                self.each(b'}', |p, _| {
                    let key = p.string()?;
                    p.expect(b':')?;
                    members.push((key, p.value()?));
                    Ok(false)
                })?;
                Ok(Value::object(members))
            }
            Some(b'[') => {
                let mut items = Vec::new();
                self.each(b']', |p, _| {
                    items.push(p.value()?);
                    Ok(false)
                })?;
                Ok(Value::Array(items))
            }
            Some(b'"') => {
                let s = self.string()?;
                if s.contains('\0') {
                    return Err(Error::new(
                        sqlstate::UNTRANSLATABLE_CHARACTER,
                        "unsupported Unicode escape sequence",
                    )
                    .with_detail("\\u0000 cannot be converted to text."));
                }
                Ok(Value::String(s))
            }
            Some(b'-' | b'0'..=b'9') => {
                let raw = self.number()?;
                Ok(Value::Number(canonical_numeric(raw)?))
            }
            _ => {
                for (word, v) in [
                    ("true", Value::Bool(true)),
                    ("false", Value::Bool(false)),
                    ("null", Value::Null),
                ] {
                    if self.literal(word) {
                        return Ok(v);
                    }
                }
                Err(self.unexpected())
            }
        }
    }

    /// Checks and steps over one value; returns where it started.
    fn skip(&mut self) -> Result<usize> {
        self.ws();
        let start = self.pos;
        match self.peek() {
            Some(b'{') => {
                self.each(b'}', |p, _| {
                    p.skip_string()?;
                    p.expect(b':')?;
                    p.skip()?;
                    Ok(false)
                })?;
            }
            Some(b'[') => {
                self.items()?;
            }
            Some(b'"') => self.skip_string()?,
            Some(b'-' | b'0'..=b'9') => {
                self.number()?;
            }
            _ => {
                if !(self.literal("true") || self.literal("false") || self.literal("null")) {
                    return Err(self.unexpected());
                }
            }
        }
        Ok(start)
    }

    /// At `{` or `[`: walks the members or items to `close`, calling
    /// `visit` with the parser at each one (at a member's key) and its
    /// position; `visit` returning true stops the walk there. Returns
    /// whether it stopped early.
    fn each(
        &mut self,
        close: u8,
        mut visit: impl FnMut(&mut Self, usize) -> Result<bool>,
    ) -> Result<bool> {
        self.enter()?;
        self.pos += 1;
        self.ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            self.depth -= 1;
            return Ok(false);
        }
        for i in 0.. {
            self.ws();
            if close == b'}' && self.peek() != Some(b'"') {
                return Err(self.unexpected());
            }
            if visit(self, i)? {
                self.depth -= 1;
                return Ok(true);
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(c) if c == close => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.unexpected()),
            }
        }
        self.depth -= 1;
        Ok(false)
    }

    /// At `[`: steps over the array, returning each item's span.
    fn items(&mut self) -> Result<Vec<(usize, usize)>> {
        let mut spans = Vec::new();
        self.each(b']', |p, _| {
            let start = p.skip()?;
            spans.push((start, p.pos));
            Ok(false)
        })?;
        Ok(spans)
    }

    /// At `{`: the span of the value under `key`.
    fn find_member(&mut self, key: &str, unique_keys: bool) -> Result<Option<(usize, usize)>> {
        let mut found = None;
        self.each(b'}', |p, _| {
            let matches = p.string_equals(key)?;
            p.expect(b':')?;
            let start = p.skip()?;
            if matches {
                found = Some((start, p.pos));
            }
            Ok(matches && unique_keys)
        })?;
        Ok(found)
    }

    /// At `[`: the span of the item at `index` (negative from the end).
    fn find_item(&mut self, index: i64) -> Result<Option<(usize, usize)>> {
        if index < 0 {
            let items = self.items()?;
            let from_end = index.unsigned_abs() as usize;
            return Ok(items.len().checked_sub(from_end).map(|i| items[i]));
        }
        let mut found = None;
        self.each(b']', |p, i| {
            let start = p.skip()?;
            if i as i64 == index {
                found = Some((start, p.pos));
            }
            Ok(found.is_some())
        })?;
        Ok(found)
    }

    fn literal(&mut self, word: &str) -> bool {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            let after = self.bytes.get(self.pos + word.len());
            if !after.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_') {
                self.pos += word.len();
                return true;
            }
        }
        false
    }

    /// A number's text, checked against JSON's grammar.
    fn number(&mut self) -> Result<&'a str> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let from = p.pos;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.pos += 1;
            }
            p.pos - from
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let int_start = self.pos;
        let int_digits = digits(self);
        let bad = |p: &mut Self| {
            while p
                .peek()
                .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-'))
            {
                p.pos += 1;
            }
            p.invalid(format!("Token \"{}\" is invalid.", &p.text[start..p.pos]))
        };
        if int_digits == 0 || (int_digits > 1 && self.bytes[int_start] == b'0') {
            return Err(bad(self));
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if digits(self) == 0 {
                return Err(bad(self));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err(bad(self));
            }
        }
        if self.peek().is_some_and(|b| b.is_ascii_alphanumeric()) {
            return Err(bad(self));
        }
        Ok(&self.text[start..self.pos])
    }

    fn hex4(&mut self) -> Result<u32> {
        let hex = self
            .text
            .get(self.pos..self.pos + 4)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.invalid("\"\\u\" must be followed by four hexadecimal digits."))?;
        self.pos += 4;
        Ok(u32::from_str_radix(hex, 16).expect("checked hex digits"))
    }

    /// At `"`: the string's contents, unescaped.
    fn string(&mut self) -> Result<String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(&self.text[run_start..self.pos]);
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = self.escape()?;
                    out.push(c);
                }
                Some(_) => {
                    return Err(self.invalid(
                        "Character with value 0x".to_string()
                            + &format!("{:02x}", self.bytes[self.pos])
                            + " must be escaped.",
                    ));
                }
                None => return Err(self.invalid("The input string ended unexpectedly.")),
            }
        }
    }

    /// After a backslash: the character it stands for.
    fn escape(&mut self) -> Result<char> {
        let b = self
            .peek()
            .ok_or_else(|| self.invalid("The input string ended unexpectedly."))?;
        self.pos += 1;
        Ok(match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let first = self.hex4()?;
                let code = if (0xD800..0xDC00).contains(&first) {
                    if !self.bytes[self.pos..].starts_with(b"\\u") {
                        return Err(self
                            .invalid("Unicode high surrogate must not follow a high surrogate."));
                    }
                    self.pos += 2;
                    let second = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&second) {
                        return Err(
                            self.invalid("Unicode low surrogate must follow a high surrogate.")
                        );
                    }
                    0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                } else if (0xDC00..0xE000).contains(&first) {
                    return Err(self.invalid("Unicode low surrogate must follow a high surrogate."));
                } else {
                    first
                };
                char::from_u32(code).expect("valid scalar value")
            }
            other => {
                return Err(self.invalid(format!(
                    "Escape sequence \"\\{}\" is invalid.",
                    other as char
                )));
            }
        })
    }

    fn skip_string(&mut self) -> Result<()> {
        self.pos += 1;
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape()?;
                }
                Some(b) if b < 0x20 => {
                    return Err(
                        self.invalid(format!("Character with value 0x{b:02x} must be escaped."))
                    );
                }
                Some(_) => self.pos += 1,
                None => return Err(self.invalid("The input string ended unexpectedly.")),
            }
        }
    }

    /// At `"`: steps over a string, telling whether it equals `key`.
    fn string_equals(&mut self, key: &str) -> Result<bool> {
        let start = self.pos + 1;
        self.skip_string()?;
        let raw = &self.text[start..self.pos - 1];
        if !raw.contains('\\') {
            return Ok(raw == key);
        }
        let mut p = Parser::new(&self.text[start - 1..self.pos]);
        Ok(p.string()? == key)
    }
}

/// A JSON number's text as PostgreSQL's numeric prints it: no exponent,
/// the scale the input implies (`1.50` keeps two places, `1e2` has none).
pub(super) fn canonical_numeric(raw: &str) -> Result<String> {
    let (negative, rest) = match raw.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, raw),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (
            &rest[..i],
            rest[i + 1..].parse::<i64>().unwrap_or(i64::MAX / 2),
        ),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = [int, frac].concat();
    let point = int.len() as i64 + exponent;
    let scale = (frac.len() as i64 - exponent).max(0);
    let overflow = || {
        Error::new(
            sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
            "value overflows numeric format",
        )
    };
    if point > NUMERIC_INTEGER_DIGITS_MAX as i64 || scale > NUMERIC_SCALE_MAX as i64 {
        return Err(overflow());
    }
    let mut int_part = String::new();
    let mut frac_part = String::new();
    if point <= 0 {
        int_part.push('0');
        frac_part.extend(std::iter::repeat_n('0', (-point) as usize));
        frac_part.push_str(&digits);
    } else if point as usize >= digits.len() {
        int_part.push_str(&digits);
        int_part.extend(std::iter::repeat_n('0', point as usize - digits.len()));
    } else {
        int_part.push_str(&digits[..point as usize]);
        frac_part.push_str(&digits[point as usize..]);
    }
    frac_part.truncate(scale as usize);
    while frac_part.len() < scale as usize {
        frac_part.push('0');
    }
    let int_part = int_part.trim_start_matches('0');
    let int_part = if int_part.is_empty() { "0" } else { int_part };
    let zero = int_part == "0" && frac_part.bytes().all(|b| b == b'0');
    let mut out = String::with_capacity(int_part.len() + frac_part.len() + 2);
    if negative && !zero {
        out.push('-');
    }
    out.push_str(int_part);
    if !frac_part.is_empty() {
        out.push('.');
        out.push_str(&frac_part);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tree model of containment and key existence that the scanning
    /// versions must agree with.
    impl Value {
        /// `@>`: whether `self` contains `other`, by PostgreSQL's rules: an
        /// object contains the pairs of another whose values it contains; an
        /// array contains the items of another, each somewhere in it, in any
        /// order and number; a top-level array contains a scalar it has.
        pub fn contains(&self, other: &Value) -> bool {
            match (self, other) {
                (Value::Array(items), scalar) if scalar.is_scalar() => {
                    items.iter().any(|v| v.is_scalar() && v.equals(scalar))
                }
                (a, b) => a.contains_nested(b),
            }
        }

        fn contains_nested(&self, other: &Value) -> bool {
            match (self, other) {
                (Value::Object(mine), Value::Object(theirs)) => theirs.iter().all(|(k, want)| {
                    mine.binary_search_by(|(mk, _)| key_order(mk, k))
                        .ok()
                        .is_some_and(|i| {
                            let have = &mine[i].1;
                            if want.is_scalar() {
                                have.equals(want)
                            } else {
                                have.contains_nested(want)
                            }
                        })
                }),
                (Value::Array(mine), Value::Array(theirs)) => theirs.iter().all(|want| {
                    mine.iter().any(|have| {
                        if want.is_scalar() {
                            have.equals(want)
                        } else {
                            have.contains_nested(want)
                        }
                    })
                }),
                (a, b) if a.is_scalar() && b.is_scalar() => a.equals(b),
                _ => false,
            }
        }

        /// `?`: a top-level key, or a string among a top-level array's items
        /// (or the string a scalar is).
        pub fn has_key(&self, key: &str) -> bool {
            match self {
                Value::Object(members) => {
                    members.binary_search_by(|(k, _)| key_order(k, key)).is_ok()
                }
                Value::Array(items) => items
                    .iter()
                    .any(|v| matches!(v, Value::String(s) if s == key)),
                Value::String(s) => s == key,
                _ => false,
            }
        }
    }

    /// The stack of the threads that run queries (tokio's default).
    const QUERY_THREAD_STACK_BYTES: usize = 2 * 1024 * 1024;

    #[test]
    fn jsonb_text_is_canonical() {
        let v =
            parse(r#" {"bb":1,"a":[1, 2.50, 1e2, -0, 1E-3],"c":{"z":null},"a":true} "#).unwrap();
        assert_eq!(
            v.to_jsonb_text(),
            r#"{"a": true, "c": {"z": null}, "bb": 1}"#
        );
        let v = parse("[2.50, 1e2, -0, 1E-3, -1.5e1, 0.0]").unwrap();
        assert_eq!(v.to_jsonb_text(), "[2.50, 100, 0, 0.001, -15, 0.0]");
        assert_eq!(
            parse(r#""a\u00e9\ud83d\ude00\n""#).unwrap(),
            Value::String("aé😀\n".into())
        );
    }

    #[test]
    fn bad_input_is_refused_with_postgres_sqlstates() {
        for bad in [
            "{bad",
            "[1,]",
            "01",
            "1.",
            "\"\\x\"",
            "tru",
            "[1] 2",
            "",
            "\"\\ud800\"",
        ] {
            assert_eq!(
                parse(bad).unwrap_err().sqlstate,
                sqlstate::INVALID_TEXT_REPRESENTATION,
                "{bad}"
            );
            assert!(validate(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse(r#""\u0000""#).unwrap_err().sqlstate,
            sqlstate::UNTRANSLATABLE_CHARACTER
        );
        assert!(validate(r#""\u0000""#).is_ok(), "json keeps any escape");
        let deep = "[".repeat(JSON_DEPTH_MAX + 1);
        assert_eq!(
            parse(&deep).unwrap_err().sqlstate,
            sqlstate::STATEMENT_TOO_COMPLEX
        );
    }

    #[test]
    fn the_deepest_documents_fit_a_query_threads_stack() {
        let deepest = format!(
            "{}1{}",
            "[{\"a\": ".repeat(JSON_DEPTH_MAX / 2),
            "}]".repeat(JSON_DEPTH_MAX / 2)
        );
        std::thread::Builder::new()
            .stack_size(QUERY_THREAD_STACK_BYTES)
            .spawn(move || {
                let v = parse(&deepest).unwrap();
                assert!(v.contains(&v));
                assert!(!v.sort_key().is_empty());
                let mut pretty = String::new();
                v.write_pretty(&mut pretty, 0);
                assert_eq!(parse(&v.to_jsonb_text()).unwrap(), v);
                validate(&pretty).unwrap();
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn paths_are_found_without_parsing_the_rest() {
        let text = r#"{"a": {"b": [10, {"c": "x\"y"}, 30]}, "a": 2}"#;
        let at = |path: &[Step], unique| {
            locate(text, path, unique)
                .unwrap()
                .map(|(s, e)| &text[s..e])
        };
        assert_eq!(at(&[Step::Key("a")], false), Some("2"));
        assert_eq!(
            at(&[Step::Key("a"), Step::Key("b"), Step::Index(-2)], true),
            Some(r#"{"c": "x\"y"}"#)
        );
        assert_eq!(
            at(
                &[
                    Step::Text("a"),
                    Step::Text("b"),
                    Step::Text("1"),
                    Step::Text("c")
                ],
                true
            ),
            Some(r#""x\"y""#)
        );
        assert_eq!(
            at(&[Step::Key("a"), Step::Key("b"), Step::Index(3)], true),
            None
        );
        assert_eq!(at(&[Step::Index(0)], true), None);
        assert_eq!(as_text(r#""x\"y""#).unwrap().as_deref(), Some("x\"y"));
        assert_eq!(as_text("null").unwrap(), None);
    }

    #[test]
    fn sort_keys_order_as_postgres_orders_jsonb() {
        let ordered = [
            "[]",
            "null",
            r#""a""#,
            r#""b""#,
            "-10",
            "-2.5",
            "0",
            "0.5",
            "2",
            "10",
            "false",
            "true",
            "[1]",
            "[2]",
            "[1, 2]",
            "{}",
            r#"{"b": 1}"#,
            r#"{"a": 1, "b": 1}"#,
        ];
        let keys: Vec<Vec<u8>> = ordered
            .iter()
            .map(|t| parse(t).unwrap().sort_key())
            .collect();
        for pair in keys.windows(2).zip(ordered.windows(2)) {
            assert!(pair.0[0] < pair.0[1], "{} < {}", pair.1[0], pair.1[1]);
        }
        assert_eq!(
            parse("1.0").unwrap().sort_key(),
            parse("1").unwrap().sort_key()
        );
    }

    #[test]
    fn containment_follows_postgres() {
        let c = |a: &str, b: &str| {
            let (a, b) = (parse(a).unwrap(), parse(b).unwrap());
            let scanned = contains_text(&a.to_jsonb_text(), &b).unwrap();
            assert_eq!(a.contains(&b), scanned, "{a:?} @> {b:?}");
            scanned
        };
        assert!(c(
            r#"{"a": 1, "b": [1, 2, {"c": 3}]}"#,
            r#"{"b": [{"c": 3}, 1]}"#
        ));
        assert!(!c(r#"{"a": 1}"#, r#"{"a": 1, "b": 2}"#));
        assert!(c(r#"["foo", "bar"]"#, r#""foo""#));
        assert!(!c(r#""foo""#, r#"["foo"]"#));
        assert!(c("[1, [2, 3]]", "[[2]]"));
        assert!(!c("[[1, 2]]", "[1]"));
        assert!(c("1.0", "1"));
        assert!(c(
            r#"{"a": {"b": [1, {"c": "x"}]}, "d": null}"#,
            r#"{"a": {"b": [{}]}, "d": null}"#
        ));
        assert!(!c(r#"{"a": {"b": [1]}}"#, r#"{"a": {"b": [2]}}"#));
        assert!(!c(r#"{"a": [1]}"#, r#"{"a": 1}"#));
        assert!(!c("[[1]]", "1"));
    }

    #[test]
    fn keys_are_found_by_scanning() {
        for (doc, key) in [
            (r#"{"a": 1, "bb": {"c": 2}}"#, "bb"),
            (r#"{"a": 1, "bb": {"c": 2}}"#, "c"),
            (r#"["a", {"b": 1}, "b"]"#, "b"),
            (r#"["a", {"b": 1}]"#, "b"),
            (r#""k""#, "k"),
            ("1", "1"),
        ] {
            let v = parse(doc).unwrap();
            assert_eq!(
                has_key_text(doc, key).unwrap(),
                v.has_key(key),
                "{doc} ? {key}"
            );
        }
    }
}
