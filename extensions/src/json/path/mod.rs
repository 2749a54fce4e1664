//! SQL/JSON path expressions (`jsonpath`), parsed and evaluated as
//! PostgreSQL 15 does for `jsonb_path_query`, `jsonb_path_exists`,
//! `jsonb_path_match`, `@?` and `@@`.
//!
//! A path is a chain of items, each applied to every value the one before
//! it produced:
//!
//! ```text
//!  lax $.orders[*] ? (@.total > $min) .id
//!      │  │      │    └ filter: keeps values whose predicate is true
//!      │  │      └ every element
//!      │  └ member "orders"
//!      └ the document
//! ```
//!
//! The evaluator follows PostgreSQL's `jsonpath_exec.c` item by item, since
//! its results hinge on details the standard leaves open: lax mode unwraps
//! one level of arrays and ignores structural errors (a missing key yields
//! nothing), strict mode reports them; predicates are three-valued, with
//! errors inside them becoming unknown; `silent` suppresses the errors
//! PostgreSQL lets it suppress but not, say, an undefined variable.
//!
//! [`parse`] reads a path's text into a chain of [`Item`]s, as
//! PostgreSQL's scanner and grammar do; [`exec`] runs it over a document.

mod exec;
mod parse;

use std::cell::RefCell;
use std::rc::Rc;

use regex::Regex;

use crate::error::Result;

pub use exec::{exists, matches, query};

/// A parsed path.
#[derive(Debug, Clone)]
pub struct JsonPath {
    lax: bool,
    expr: Item,
}

/// One item of a chain and what follows it.
#[derive(Debug, Clone)]
struct Item {
    kind: Kind,
    next: Option<Box<Item>>,
}

#[derive(Debug, Clone)]
enum Kind {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Variable(String),
    Root,
    Current,
    Last,
    Key(String),
    AnyKey,
    AnyArray,
    /// Subscripts: an index or a range `from to to`.
    Index(Vec<(Item, Option<Item>)>),
    /// `.**{first to last}`; `u32::MAX` stands for `last`.
    Any {
        first: u32,
        last: u32,
    },
    Filter(Box<Item>),
    Method(Method),
    Arith(ArithOp, Box<Item>, Box<Item>),
    Negate(Box<Item>),
    Plus(Box<Item>),
    Compare(CompareOp, Box<Item>, Box<Item>),
    And(Box<Item>, Box<Item>),
    Or(Box<Item>, Box<Item>),
    Not(Box<Item>),
    IsUnknown(Box<Item>),
    Exists(Box<Item>),
    StartsWith(Box<Item>, Box<Item>),
    LikeRegex(Box<Item>, Regex),
}

impl Kind {
    fn is_predicate(&self) -> bool {
        matches!(
            self,
            Kind::Compare(..)
                | Kind::And(..)
                | Kind::Or(..)
                | Kind::Not(_)
                | Kind::IsUnknown(_)
                | Kind::Exists(_)
                | Kind::StartsWith(..)
                | Kind::LikeRegex(..)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Type,
    Size,
    Double,
    Abs,
    Floor,
    Ceiling,
    KeyValue,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Type => "type",
            Method::Size => "size",
            Method::Double => "double",
            Method::Abs => "abs",
            Method::Floor => "floor",
            Method::Ceiling => "ceiling",
            Method::KeyValue => "keyvalue",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl ArithOp {
    fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Mod => "%",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

thread_local! {
    /// `jsonb_path_*` keep the last path they parsed per thread: a
    /// query's path is nearly always one constant.
    static LAST_PARSED: RefCell<Option<(String, Rc<JsonPath>)>> = const { RefCell::new(None) };
}

/// Parses a path, reusing the last one this thread parsed when the text
/// is the same.
pub fn compile(text: &str) -> Result<Rc<JsonPath>> {
    if let Some(path) = LAST_PARSED.with_borrow(|last| {
        last.as_ref()
            .filter(|(t, _)| t == text)
            .map(|(_, p)| p.clone())
    }) {
        return Ok(path);
    }
    let path = Rc::new(parse::parse(text)?);
    LAST_PARSED.set(Some((text.to_string(), path.clone())));
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::exec::SQL_JSON_MEMBER_NOT_FOUND;
    use super::parse::{SYNTAX_ERROR, parse};
    use super::*;
    use crate::error::sqlstate;
    use crate::json::value::{self, Value};

    fn q(doc: &str, path: &str) -> Result<Vec<String>> {
        let doc = value::parse(doc).unwrap();
        let vars = Value::Object(vec![]);
        let path = parse(path)?;
        Ok(query(&path, &doc, Some(&vars), false)?
            .iter()
            .map(Value::to_jsonb_text)
            .collect())
    }

    #[test]
    fn lax_and_strict_accessors() {
        let doc = r#"{"a": [{"b": 1}, {"b": 2}, {"c": 3}], "d": {"e": "x"}}"#;
        assert_eq!(q(doc, "$.a.b").unwrap(), ["1", "2"]);
        assert_eq!(q(doc, "$.a[*].b").unwrap(), ["1", "2"]);
        assert_eq!(q(doc, "$.a[last].c").unwrap(), ["3"]);
        assert_eq!(q(doc, "$.a[0 to 1].b").unwrap(), ["1", "2"]);
        assert_eq!(
            q(doc, "strict $.a[*].b").unwrap_err().sqlstate,
            SQL_JSON_MEMBER_NOT_FOUND
        );
        assert_eq!(q(doc, "$.d.*").unwrap(), [r#""x""#]);
        // Lax `.b` also unwraps the array `.**` passes on the way: twice.
        assert_eq!(q(doc, "$.**.b").unwrap(), ["1", "2", "1", "2"]);
        assert_eq!(q(doc, "strict $.**.b").unwrap(), ["1", "2"]);
        assert_eq!(q(doc, "$.a.size()").unwrap(), ["3"]);
        assert_eq!(q(doc, "$.d.e.type()").unwrap(), [r#""string""#]);
    }

    #[test]
    fn filters_and_arithmetic() {
        let doc = r#"{"a": [1, 2.5, 3, "x", null]}"#;
        assert_eq!(q(doc, "$.a[*] ? (@ > 1.5)").unwrap(), ["2.5", "3"]);
        assert_eq!(q(doc, "$.a ? (@ == null)").unwrap(), ["null"]);
        assert_eq!(q(doc, "$.a[0] * 2 + 1").unwrap(), ["3"]);
        assert_eq!(q(doc, "$.a[1] / 3").unwrap(), ["0.83333333333333333333"]);
        assert_eq!(q(doc, "-$.a[0 to 2]").unwrap(), ["-1", "-2.5", "-3"]);
        assert_eq!(
            q(doc, "$.a[*] ? (@ starts with \"x\")").unwrap(),
            [r#""x""#]
        );
        assert_eq!(
            q(doc, "$.a[*] ? (@ like_regex \"^X\" flag \"i\")").unwrap(),
            [r#""x""#]
        );
        assert_eq!(q(doc, "exists($.a ? (@ == 3))").unwrap(), ["true"]);
        assert_eq!(q(doc, "$.a[3] > 1").unwrap(), ["null"]);
        assert_eq!(q(doc, "($.a[3] > 1) is unknown").unwrap(), ["true"]);
    }

    #[test]
    fn keyvalue_ids_are_offsets_in_binary_jsonb() {
        assert_eq!(
            q(r#"{"x": "20", "y": 32}"#, "$.keyvalue()").unwrap(),
            [
                r#"{"id": 0, "key": "x", "value": "20"}"#,
                r#"{"id": 0, "key": "y", "value": 32}"#
            ]
        );
        assert_eq!(
            q(r#"{"a": {"b": 1}}"#, "$.a.keyvalue()").unwrap(),
            [r#"{"id": 16, "key": "b", "value": 1}"#]
        );
    }

    #[test]
    fn bad_paths_are_syntax_errors() {
        for bad in [
            "",
            "$.",
            "@.a",
            "last",
            "$ ? (@.a)",
            "1a",
            "$[1",
            "$.a ==",
            "$x y",
        ] {
            assert_eq!(parse(bad).unwrap_err().sqlstate, SYNTAX_ERROR, "{bad}");
        }
        assert_eq!(
            parse("$.a.datetime()").unwrap_err().sqlstate,
            sqlstate::FEATURE_NOT_SUPPORTED
        );
    }
}
