//! PostgreSQL's `format(formatstr, VARIADIC args)` and the quoting it
//! shares with `quote_ident`, `quote_literal` and `quote_nullable`: how
//! catalog tools (sqlsmith, pg_dump-like scripts) and users build SQL text.
//!
//! A conversion is `%[position$][-][width]type`: `s` the value as text
//! (NULL as nothing), `I` an identifier quoted where needed (NULL is an
//! error), `L` a literal quoted (NULL as `NULL`), and `%%` a percent
//! sign. The width is a number, `*` (the next argument) or `*n$`; a
//! negative width, or `-`, pads on the right.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

use crate::error::{Error, Result, sqlstate};
use crate::text_output::{array_element, pg_text};

/// Registers `format`, `quote_ident`, `quote_literal` and `quote_nullable`.
pub(crate) fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(Format {
        signature: Signature::variadic_any(Volatility::Immutable),
    }));
    for quote in [Quote::Ident, Quote::Literal, Quote::Nullable] {
        ctx.register_udf(ScalarUDF::new_from_impl(QuoteUdf {
            quote,
            signature: Signature::any(1, Volatility::Immutable),
        }));
    }
}

/// Quotes an identifier where PostgreSQL's `quote_ident` would: unless it
/// is lower case letters, digits and underscores, not starting with a digit,
/// and not a keyword PostgreSQL reserves in some position.
pub fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !RESERVED_KEYWORDS.contains(&name);
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// PostgreSQL 15's keywords that are not `UNRESERVED_KEYWORD` (reserved,
/// column-name and type/function-name keywords): `quote_ident` quotes these.
const RESERVED_KEYWORDS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "greatest",
    "group",
    "grouping",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "least",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "national",
    "natural",
    "nchar",
    "none",
    "normalize",
    "not",
    "notnull",
    "null",
    "nullif",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "outer",
    "overlaps",
    "overlay",
    "placing",
    "position",
    "precision",
    "primary",
    "real",
    "references",
    "returning",
    "right",
    "row",
    "select",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
    "xmlattributes",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlnamespaces",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
];

/// A literal as PostgreSQL's `quote_literal` writes it: quotes doubled,
/// and backslashes doubled under an `E` prefix.
pub fn quote_literal(text: &str) -> String {
    let quoted = text.replace('\'', "''");
    if text.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

/// Each value of `array` as PostgreSQL's output function writes it where
/// Arrow's cast to text differs (booleans, floats, timestamps, arrays);
/// NULL stays NULL.
fn text_of(array: &ArrayRef) -> DfResult<StringArray> {
    match array.data_type() {
        DataType::Boolean => Ok(array
            .as_boolean()
            .iter()
            .map(|b| b.map(|b| if b { "t" } else { "f" }))
            .collect()),
        DataType::List(_) => {
            let lists = array.as_list::<i32>();
            let mut out = StringBuilder::new();
            for row in 0..lists.len() {
                if lists.is_null(row) {
                    out.append_null();
                    continue;
                }
                let elements = text_of(&lists.value(row))?;
                let items: Vec<String> = elements
                    .iter()
                    .map(|e| e.map_or_else(|| "NULL".into(), |t| array_element(t).into_owned()))
                    .collect();
                out.append_value(format!("{{{}}}", items.join(",")));
            }
            Ok(out.finish())
        }
        _ => match pg_text(array)? {
            Some(text) => Ok(text.as_string::<i32>().clone()),
            None => Ok(cast(array, &DataType::Utf8)?.as_string::<i32>().clone()),
        },
    }
}

/// `format(formatstr text, VARIADIC args)`; NULL for a NULL format.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Format {
    signature: Signature,
}

impl ScalarUDFImpl for Format {
    fn name(&self) -> &str {
        "format"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if scalar { 1 } else { args.number_rows };
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<DfResult<Vec<_>>>()?;
        let formats = text_of(&arrays[0])?;
        let values = arrays[1..]
            .iter()
            .map(text_of)
            .collect::<DfResult<Vec<_>>>()?;
        let mut out = StringBuilder::new();
        let mut row_args = Vec::with_capacity(values.len());
        for row in 0..rows {
            if formats.is_null(row) {
                out.append_null();
                continue;
            }
            row_args.clear();
            row_args.extend(
                values
                    .iter()
                    .map(|v| (!v.is_null(row)).then(|| v.value(row))),
            );
            out.append_value(format(formats.value(row), &row_args)?);
        }
        let array: ArrayRef = Arc::new(out.finish());
        Ok(if scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?)
        } else {
            ColumnarValue::Array(array)
        })
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid_parameter(message)
}

/// One format string applied to one row's arguments (as text).
pub fn format(template: &str, args: &[Option<&str>]) -> Result<String> {
    let mut out = String::with_capacity(template.len());
    let mut chars = template.chars().peekable();
    // The argument an unnumbered conversion takes: the one after the last
    // taken, as in PostgreSQL.
    let mut next = 0usize;
    let take = |position: Option<usize>, next: &mut usize| -> Result<Option<&str>> {
        let index = position.unwrap_or(*next);
        *next = index + 1;
        args.get(index)
            .copied()
            .ok_or_else(|| invalid("too few arguments for format()"))
    };
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            out.push('%');
            continue;
        }
        let mut number = digits(&mut chars)?;
        let mut position = None;
        if number.is_some() && chars.peek() == Some(&'$') {
            chars.next();
            position = Some(argument_index(number.take())?);
        }
        let mut left = false;
        while number.is_none() && chars.peek() == Some(&'-') {
            chars.next();
            left = true;
        }
        let width: i64 = match number {
            Some(n) => n as i64,
            None if chars.peek() == Some(&'*') => {
                chars.next();
                let from = match digits(&mut chars)? {
                    Some(n) if chars.next() == Some('$') => Some(argument_index(Some(n))?),
                    Some(_) => return Err(invalid("unterminated format() type specifier")),
                    None => None,
                };
                match take(from, &mut next)? {
                    None => 0,
                    Some(text) => text.trim().parse().map_err(|_| {
                        Error::new(
                            sqlstate::INVALID_TEXT_REPRESENTATION,
                            format!("invalid input syntax for type integer: \"{text}\""),
                        )
                    })?,
                }
            }
            None => digits(&mut chars)?.unwrap_or(0) as i64,
        };
        let Some(kind) = chars.next() else {
            return Err(invalid("unterminated format() type specifier")
                .with_detail("For a single \"%\" use \"%%\"."));
        };
        let value = match kind {
            's' | 'I' | 'L' => take(position, &mut next)?,
            other => {
                return Err(
                    invalid(format!("unrecognized format() type specifier \"{other}\""))
                        .with_detail("For a single \"%\" use \"%%\"."),
                );
            }
        };
        let text = match (kind, value) {
            ('s', value) => value.unwrap_or("").to_string(),
            ('I', Some(value)) => quote_ident(value),
            ('I', None) => {
                return Err(Error::new(
                    sqlstate::NULL_VALUE_NOT_ALLOWED,
                    "null values cannot be formatted as an SQL identifier",
                ));
            }
            (_, Some(value)) => quote_literal(value),
            (_, None) => "NULL".to_string(),
        };
        let pad = (width.unsigned_abs() as usize).saturating_sub(text.chars().count());
        if left || width < 0 {
            out.push_str(&text);
            out.extend(std::iter::repeat_n(' ', pad));
        } else {
            out.extend(std::iter::repeat_n(' ', pad));
            out.push_str(&text);
        }
    }
    Ok(out)
}

/// The most a width or an argument number may be, as in PostgreSQL.
const FORMAT_NUMBER_MAX: u64 = i32::MAX as u64;

/// A run of digits, if one starts here.
fn digits(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<Option<u64>> {
    let mut number: Option<u64> = None;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        chars.next();
        let n = number.unwrap_or(0) * 10 + u64::from(d);
        if n > FORMAT_NUMBER_MAX {
            return Err(invalid("number is out of range"));
        }
        number = Some(n);
    }
    Ok(number)
}

/// A 1-based argument number as an index.
fn argument_index(number: Option<u64>) -> Result<usize> {
    match number {
        Some(0) | None => Err(invalid(
            "format specifies argument 0, but arguments are numbered from 1",
        )),
        Some(n) => Ok(n as usize - 1),
    }
}

#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum Quote {
    Ident,
    Literal,
    Nullable,
}

/// `quote_ident(text)`, `quote_literal(anyelement)`, `quote_nullable(anyelement)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct QuoteUdf {
    quote: Quote,
    signature: Signature,
}

impl ScalarUDFImpl for QuoteUdf {
    fn name(&self) -> &str {
        match self.quote {
            Quote::Ident => "quote_ident",
            Quote::Literal => "quote_literal",
            Quote::Nullable => "quote_nullable",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let rows = if scalar { 1 } else { args.number_rows };
        let values = text_of(&args.args[0].to_array(rows)?)?;
        let quoted: StringArray = values
            .iter()
            .map(|v| match (self.quote, v) {
                (Quote::Ident, v) => v.map(quote_ident),
                (_, Some(v)) => Some(quote_literal(v)),
                (Quote::Literal, None) => None,
                (Quote::Nullable, None) => Some("NULL".to_string()),
            })
            .collect();
        let array: ArrayRef = Arc::new(quoted);
        Ok(if scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?)
        } else {
            ColumnarValue::Array(array)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(template: &str, args: &[Option<&str>]) -> String {
        format(template, args).unwrap()
    }

    #[test]
    fn conversions_as_postgresql_writes_them() {
        assert_eq!(run("Hello %s", &[Some("World")]), "Hello World");
        assert_eq!(run("%s|%s", &[Some("a"), None]), "a|");
        assert_eq!(
            run(
                "INSERT INTO %I VALUES(%L)",
                &[Some("Foo bar"), Some("O'Reilly")]
            ),
            "INSERT INTO \"Foo bar\" VALUES('O''Reilly')"
        );
        assert_eq!(run("%L", &[None]), "NULL");
        assert_eq!(run("%L", &[Some("C:\\x")]), "E'C:\\\\x'");
        assert_eq!(
            run("%I.%I", &[Some("pg_catalog"), Some("select")]),
            "pg_catalog.\"select\""
        );
        assert_eq!(run("100%%", &[]), "100%");
        assert_eq!(
            run("|%10s|%-10s|", &[Some("foo"), Some("bar")]),
            "|       foo|bar       |"
        );
        assert_eq!(run("|%*s|", &[Some("-5"), Some("x")]), "|x    |");
        assert_eq!(run("|%1$*2$s|", &[Some("x"), Some("3")]), "|  x|");
        assert_eq!(run("%2$s %1$s %s", &[Some("a"), Some("b")]), "b a b");
    }

    #[test]
    fn bad_formats_name_their_fault() {
        let fault = |template: &str, args: &[Option<&str>]| format(template, args).unwrap_err();
        assert_eq!(
            fault("%s %s", &[Some("a")]).message,
            "too few arguments for format()"
        );
        assert_eq!(
            fault("%x", &[Some("a")]).message,
            "unrecognized format() type specifier \"x\""
        );
        assert_eq!(
            fault("abc%", &[]).message,
            "unterminated format() type specifier"
        );
        assert_eq!(
            fault("%I", &[None]).sqlstate,
            sqlstate::NULL_VALUE_NOT_ALLOWED
        );
        assert!(fault("%0$s", &[Some("a")]).message.contains("argument 0"));
    }
}
