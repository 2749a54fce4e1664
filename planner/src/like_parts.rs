//! LIKE patterns of several literal parts between `%`s
//! (`'%special%requests%'`) are matched by searching for each part in
//! turn, rather than by a regular expression.
//!
//! Arrow matches `'x'`, `'x%'`, `'%x'` and `'%x%'` itself, by comparison or
//! substring search, and turns any other pattern into a regular
//! expression, `'%a%b%'` into `^.*a.*b`: TPC-H q13's `o_comment NOT LIKE
//! '%special%requests%'` spent 106 ms of CPU in it over 1.5 M comments,
//! most of the query. With no `_` and no escape in the pattern, a string
//! matches where it ends with the part after the last `%` and holds the
//! parts before it in order in what is left: the leftmost place of each
//! part leaves the most room for the next, so searching from left to
//! right decides. Bytes decide as characters do, since no UTF-8
//! character's bytes occur inside another's.
//!
//! ```text
//!   '%cd%ef%gh'  over  s:  [ ... cd ... ef ... ][gh]
//!                               found in order   ends, after them
//! ```
//!
//! Patterns that start with a literal (`'PROMO%'`, `'a%b%'`) stay LIKE:
//! DataFusion rules segments out by their bounds with that start.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result, ScalarValue, exec_err};
use datafusion::logical_expr::expr::{Like, ScalarFunction};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
use memchr::memmem::Finder;

const LIKE_PARTS: &str = "like_parts";

#[derive(Debug, Default)]
pub struct MatchLikeParts;

impl OptimizerRule for MatchLikeParts {
    fn name(&self) -> &str {
        "ciab_match_like_parts"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        ciab_extensions::rewrite_node_expressions(plan, &by_parts)
    }
}

/// `s [NOT] LIKE 'pattern'`, where Arrow would match `pattern` by a
/// regular expression and its parts decide, as `[NOT] like_parts(s,
/// 'pattern')`.
fn by_parts(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::Like(Like {
        negated,
        expr: text,
        pattern,
        escape_char,
        case_insensitive: false,
    }) = &expr
    else {
        return Ok(Transformed::no(expr));
    };
    let Expr::Literal(ScalarValue::Utf8(Some(literal)), _) = pattern.as_ref() else {
        return Ok(Transformed::no(expr));
    };
    let textual = matches!(
        text.get_type(schema)?,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    );
    let escapes = escape_char.is_some_and(|c| literal.contains(c));
    if !textual || escapes || Parts::of(literal).is_none() {
        return Ok(Transformed::no(expr));
    }
    let udf = Arc::new(ScalarUDF::new_from_impl(LikeParts {
        signature: Signature::any(2, Volatility::Immutable),
    }));
    let call = Expr::ScalarFunction(ScalarFunction::new_udf(
        udf,
        vec![text.as_ref().clone(), pattern.as_ref().clone()],
    ));
    Ok(Transformed::yes(if *negated {
        Expr::Not(Box::new(call))
    } else {
        call
    }))
}

/// A LIKE pattern's literal parts, after its leading `%`: what a string
/// holds in order, and then ends with.
#[derive(Debug)]
struct Parts<'p> {
    between: Vec<Finder<'p>>,
    ends: &'p str,
}

impl<'p> Parts<'p> {
    /// The parts of `pattern`, if it starts with `%`, has only `%` for
    /// wildcards (no `_`, no backslash, PostgreSQL's escape), and Arrow
    /// would take it for a regular expression: not `%x` or `%x%`.
    fn of(pattern: &'p str) -> Option<Parts<'p>> {
        if pattern.contains(['_', '\\']) {
            return None;
        }
        let parts: Vec<&str> = pattern.split('%').collect();
        let (["", between @ .., ends], false) = (parts.as_slice(), arrow_matches(&parts)) else {
            return None;
        };
        Some(Parts {
            between: between
                .iter()
                .filter(|part| !part.is_empty())
                .map(|part| Finder::new(part.as_bytes()))
                .collect(),
            ends,
        })
    }

    /// Whether each of `rows` texts matches (what a NULL's slot holds
    /// included; its NULL is kept apart).
    fn match_all<'t>(&self, rows: usize, text: impl Fn(usize) -> &'t [u8]) -> BooleanBuffer {
        BooleanBuffer::collect_bool(rows, |i| self.matches(text(i)))
    }

    fn matches(&self, text: &[u8]) -> bool {
        let ends = self.ends.as_bytes();
        if !text.ends_with(ends) {
            return false;
        }
        let mut rest = &text[..text.len() - ends.len()];
        for part in &self.between {
            match part.find(rest) {
                Some(at) => rest = &rest[at + part.needle().len()..],
                None => return false,
            }
        }
        true
    }
}

/// Whether Arrow matches a pattern of these `%`-separated parts without a
/// regular expression: `%x` and `%x%` (a pattern's first part is empty).
fn arrow_matches(parts: &[&str]) -> bool {
    matches!(parts, [_, _] | [_, _, ""])
}

/// `like_parts(text, pattern)`: `text LIKE pattern` for a pattern
/// [`Parts::of`] takes apart.
#[derive(Debug, PartialEq, Eq, Hash)]
struct LikeParts {
    signature: Signature,
}

impl ScalarUDFImpl for LikeParts {
    fn name(&self) -> &str {
        LIKE_PARTS
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [text, pattern] = args.args.as_slice() else {
            return exec_err!("{LIKE_PARTS} takes a text and a pattern");
        };
        let ColumnarValue::Scalar(ScalarValue::Utf8(Some(pattern))) = pattern else {
            return exec_err!("{LIKE_PARTS} takes a literal pattern");
        };
        let Some(parts) = Parts::of(pattern) else {
            return exec_err!("{LIKE_PARTS} of a pattern it cannot take apart: {pattern}");
        };
        // A constant text is matched once, not once for every row.
        let texts: ArrayRef = match text {
            ColumnarValue::Scalar(value) => value.to_array()?,
            ColumnarValue::Array(texts) => Arc::clone(texts),
        };
        let rows = texts.len();
        let values = match texts.data_type() {
            DataType::Utf8 => {
                let texts = texts.as_string::<i32>();
                parts.match_all(rows, |i| texts.value(i).as_bytes())
            }
            DataType::LargeUtf8 => {
                let texts = texts.as_string::<i64>();
                parts.match_all(rows, |i| texts.value(i).as_bytes())
            }
            DataType::Utf8View => {
                let texts = texts.as_string_view();
                parts.match_all(rows, |i| texts.value(i).as_bytes())
            }
            other => return exec_err!("{LIKE_PARTS} of {other}"),
        };
        let matched = BooleanArray::new(values, texts.logical_nulls());
        Ok(match text {
            ColumnarValue::Scalar(_) => {
                ColumnarValue::Scalar(ScalarValue::try_from_array(&matched, 0)?)
            }
            ColumnarValue::Array(_) => ColumnarValue::Array(Arc::new(matched)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn like(text: &str, pattern: &str) -> bool {
        Parts::of(pattern)
            .expect("taken apart")
            .matches(text.as_bytes())
    }

    #[test]
    fn parts_are_found_in_order_and_then_the_end() {
        assert!(like(
            "a special request, special requests",
            "%special%requests%"
        ));
        assert!(like("specialrequests", "%special%requests%"));
        assert!(!like("requests special", "%special%requests%"));
        assert!(like("xx-cd", "%x%cd"));
        // The end may not overlap the parts before it.
        assert!(!like("xcd", "%xc%cd"));
        assert!(like("xccd", "%xc%cd"));
        assert!(like("añob", "%ñ%b"));
        assert!(like("ab", "%a%%b"));
    }

    #[test]
    fn patterns_arrow_matches_itself_or_with_wildcards_stay() {
        let stay = [
            "abc", "abc%", "%abc", "%abc%", "%", "%%", "a%b%", "%a_%b%", "%a\\%%b%",
        ];
        for pattern in stay {
            assert!(Parts::of(pattern).is_none(), "{pattern}");
        }
        for pattern in ["%a%b%", "%a%b", "%%a%%b%%", "%%a%"] {
            assert!(Parts::of(pattern).is_some(), "{pattern}");
        }
    }
}
