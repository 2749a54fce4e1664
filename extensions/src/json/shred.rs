//! Which document functions a table scan may work out once per segment and
//! keep, shredding the fields queries pull out of documents into columns;
//! and `@>` as a conjunction of such fields.
//!
//! ```text
//!  doc -> 'user' ->> 'country'          the field, as a column of the segment
//!  doc @> '{"type": "buy", "d": {"os": "ios"}}'
//!    in a filter ──► doc -> 'type' = '"buy"' AND doc -> 'd' -> 'os' = '"ios"'
//! ```
//!
//! A call qualifies when its value for a row depends on nothing but that
//! row's document and constants, and it cannot fail on a stored document:
//! a scan works it out for every row of a segment, including rows the
//! query's other filters would have dropped first.

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

use super::value::{Value, parse};
use super::{Kind, STEPS, STEPS_TEXT, funcs};

/// The functions of a document a scan may keep: `->`, `->>`, `#>`, `#>>`,
/// the extract_path functions, `?` and typeof.
const SHREDDABLE: &[&str] = &[
    STEPS,
    STEPS_TEXT,
    "__ciab_jsonb_path",
    "__ciab_jsonb_path_text",
    "jsonb_extract_path",
    "json_extract_path",
    "jsonb_extract_path_text",
    "json_extract_path_text",
    "jsonb_exists",
    "jsonb_typeof",
    "json_typeof",
];

/// Whether `call`, whose first argument is a column holding `doc`, may be
/// worked out once per segment and kept: a function of [`SHREDDABLE`]
/// over a json or jsonb column (whose values were checked on the way in),
/// every other argument a constant key, position or path.
pub fn shreddable(call: &ScalarFunction, doc: &Field) -> bool {
    SHREDDABLE.contains(&call.name())
        && Kind::of_field(doc).is_some()
        && matches!(call.args.first(), Some(Expr::Column(_)))
        && call.args[1..].iter().all(constant_step)
}

fn constant_step(arg: &Expr) -> bool {
    let Expr::Literal(value, _) = arg else {
        return false;
    };
    match value {
        ScalarValue::Utf8(Some(_))
        | ScalarValue::LargeUtf8(Some(_))
        | ScalarValue::Utf8View(Some(_))
        | ScalarValue::Int16(Some(_))
        | ScalarValue::Int32(Some(_))
        | ScalarValue::Int64(Some(_)) => true,
        ScalarValue::List(list) => matches!(list.value_type(), DataType::Utf8),
        _ => false,
    }
}

/// `doc @> pattern` as the equalities of the pattern's leaves, each a
/// field of `doc`, when the pattern is an object whose leaves are strings,
/// booleans or nulls, in objects only. Then the conjunction holds for a row
/// exactly when the containment does, and is false or NULL where the
/// containment is false or NULL: the same in a filter, not elsewhere (NOT
/// tells false from NULL). jsonb text is canonical, so those leaves are
/// equal exactly when their texts are; numbers are not (1.0 equals 1), and
/// arrays contain by other rules, so a pattern with them stays as it is.
pub fn containment_fields(call: &ScalarFunction, doc: &Field) -> Option<Vec<Expr>> {
    if call.name() != "jsonb_contains" || Kind::of_field(doc) != Some(Kind::Jsonb) {
        return None;
    }
    let [column @ Expr::Column(_), Expr::Literal(pattern, _)] = call.args.as_slice() else {
        return None;
    };
    let (ScalarValue::Utf8(Some(pattern))
    | ScalarValue::LargeUtf8(Some(pattern))
    | ScalarValue::Utf8View(Some(pattern))) = pattern
    else {
        return None;
    };
    // A pattern that does not parse keeps its call, which reports it.
    let Ok(Value::Object(members)) = parse(pattern) else {
        return None;
    };
    let mut fields = Vec::new();
    leaves(column, &mut Vec::new(), &members, &mut fields)?;
    Some(fields)
}

/// Appends `doc -> path.. -> key = leaf` for each leaf under `members`;
/// `None` when some member is not a string, boolean, null or a non-empty
/// object, or the path grows past what one call takes.
fn leaves(
    doc: &Expr,
    path: &mut Vec<String>,
    members: &[(String, Value)],
    out: &mut Vec<Expr>,
) -> Option<()> {
    if members.is_empty() || path.len() + 2 > funcs::PATH_ARGS_MAX {
        return None;
    }
    for (key, value) in members {
        path.push(key.clone());
        match value {
            Value::Object(inner) => leaves(doc, path, inner, out)?,
            Value::String(_) | Value::Bool(_) | Value::Null => {
                let steps = std::iter::once(doc.clone())
                    .chain(
                        path.iter()
                            .map(|k| Expr::Literal(ScalarValue::from(k.as_str()), None)),
                    )
                    .collect();
                let field =
                    Expr::ScalarFunction(ScalarFunction::new_udf(funcs::named(STEPS), steps));
                out.push(Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(field),
                    Operator::Eq,
                    Box::new(Expr::Literal(
                        ScalarValue::from(value.to_jsonb_text()),
                        None,
                    )),
                )));
            }
            Value::Number(_) | Value::Array(_) => return None,
        }
        path.pop();
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::common::Column;

    fn contains(pattern: &str) -> Option<Vec<String>> {
        let call = ScalarFunction::new_udf(
            funcs::named("jsonb_contains"),
            vec![
                Expr::Column(Column::from_name("doc")),
                Expr::Literal(ScalarValue::from(pattern), None),
            ],
        );
        containment_fields(&call, &Kind::Jsonb.field("doc"))
            .map(|fields| fields.iter().map(|f| f.to_string()).collect())
    }

    #[test]
    fn containment_becomes_fields_only_where_text_equality_is_jsonb_equality() {
        assert_eq!(
            contains(r#"{"type": "buy", "d": {"os": "i\u00f8s", "ok": true}, "n": null}"#).unwrap(),
            [
                r#"__ciab_jsonb_steps(doc, Utf8("d"), Utf8("ok")) = Utf8("true")"#,
                r#"__ciab_jsonb_steps(doc, Utf8("d"), Utf8("os")) = Utf8(""iøs"")"#,
                r#"__ciab_jsonb_steps(doc, Utf8("n")) = Utf8("null")"#,
                r#"__ciab_jsonb_steps(doc, Utf8("type")) = Utf8(""buy"")"#,
            ]
        );
        for kept in [
            r#"{"n": 1}"#,
            r#"{"a": []}"#,
            r#"{"a": {}}"#,
            "{}",
            "[1]",
            "\"s\"",
            "{",
        ] {
            assert_eq!(contains(kept), None, "{kept}");
        }
        let call = ScalarFunction::new_udf(
            funcs::named("jsonb_contains"),
            vec![
                Expr::Column(Column::from_name("doc")),
                Expr::Literal(ScalarValue::from(r#"{"a": "b"}"#), None),
            ],
        );
        assert_eq!(containment_fields(&call, &Kind::Json.field("doc")), None);
    }

    #[test]
    fn only_constant_steps_over_documents_are_kept() {
        let call = |name: &str, args: Vec<Expr>| ScalarFunction::new_udf(funcs::named(name), args);
        let doc = || Expr::Column(Column::from_name("doc"));
        let text = |s: &str| Expr::Literal(ScalarValue::from(s), None);
        let jsonb = Kind::Jsonb.field("doc");
        assert!(shreddable(
            &call(STEPS_TEXT, vec![doc(), text("a"), text("b")]),
            &jsonb
        ));
        assert!(shreddable(
            &call(
                STEPS,
                vec![doc(), Expr::Literal(ScalarValue::Int64(Some(0)), None)]
            ),
            &jsonb
        ));
        assert!(shreddable(
            &call("jsonb_exists", vec![doc(), text("k")]),
            &jsonb
        ));
        // Not over plain text, not with a key from a column, not for
        // functions that may fail on some documents.
        assert!(!shreddable(
            &call(STEPS_TEXT, vec![doc(), text("a")]),
            &Field::new("doc", DataType::Utf8, true)
        ));
        assert!(!shreddable(&call(STEPS_TEXT, vec![doc(), doc()]), &jsonb));
        assert!(!shreddable(
            &call("jsonb_array_length", vec![doc()]),
            &jsonb
        ));
    }
}
