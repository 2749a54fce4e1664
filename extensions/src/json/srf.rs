//! The set-returning JSON functions, as lists that SQL's UNNEST turns into
//! rows: `jsonb_array_elements(doc)` is `unnest(__ciab_jsonb_array_elements(doc))`
//! (the planner's syntax rewrite in `planner/src/arrays.rs` writes it so,
//! in FROM and in select lists).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, ListBuilder, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use super::Kind;
use super::value::{self, Value};
use crate::error::Error;

/// How a set-returning function is written with UNNEST.
pub struct SetReturning {
    /// The scalar function giving the rows as a list.
    pub list: &'static str,
    /// The column PostgreSQL names its result.
    pub column: &'static str,
    /// A function that gives the unnested values their JSON type back,
    /// which UNNEST drops while the query is planned.
    pub tag: Option<&'static str>,
}

/// The set-returning functions ciab knows, by PostgreSQL's name.
pub fn set_returning(name: &str) -> Option<SetReturning> {
    let (list, column, tag) = match name {
        "jsonb_array_elements" => ("__ciab_jsonb_array_elements", "value", Some(TAG_JSONB)),
        "json_array_elements" => ("__ciab_jsonb_array_elements", "value", Some(TAG_JSON)),
        "jsonb_array_elements_text" | "json_array_elements_text" => {
            ("__ciab_jsonb_array_elements_text", "value", None)
        }
        "jsonb_object_keys" => ("__ciab_jsonb_object_keys", "jsonb_object_keys", None),
        _ => return None,
    };
    Some(SetReturning { list, column, tag })
}

const TAG_JSON: &str = "__ciab_as_json";
const TAG_JSONB: &str = "__ciab_as_jsonb";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Mode {
    Elements,
    ElementsText,
    ObjectKeys,
}

pub(super) fn all() -> Vec<ScalarUDF> {
    [
        ("__ciab_jsonb_array_elements", Mode::Elements),
        ("__ciab_jsonb_array_elements_text", Mode::ElementsText),
        ("__ciab_jsonb_object_keys", Mode::ObjectKeys),
    ]
    .into_iter()
    .map(|(name, mode)| {
        ScalarUDF::new_from_impl(Rows {
            name,
            mode,
            signature: Signature::any(1, Volatility::Immutable),
        })
    })
    .chain(
        [(TAG_JSON, Kind::Json), (TAG_JSONB, Kind::Jsonb)].map(|(name, kind)| {
            ScalarUDF::new_from_impl(Tag {
                name,
                kind,
                signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
            })
        }),
    )
    .collect()
}

/// Gives text the JSON type it already holds: the values UNNEST takes out
/// of a list of json or jsonb.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Tag {
    name: &'static str,
    kind: Kind,
    signature: Signature,
}

impl ScalarUDFImpl for Tag {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, _: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(self.kind.field(self.name)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(args.args[0].clone())
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Rows {
    name: &'static str,
    mode: Mode,
    signature: Signature,
}

impl Rows {
    fn item_field(&self, input: Option<&FieldRef>) -> Field {
        match self.mode {
            Mode::Elements => input
                .and_then(|f| Kind::of_field(f))
                .unwrap_or(Kind::Jsonb)
                .field("item"),
            _ => Field::new("item", DataType::Utf8, true),
        }
    }
}

impl ScalarUDFImpl for Rows {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(self.item_field(None))))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let item = self.item_field(args.arg_fields.first());
        Ok(Arc::new(Field::new_list(self.name, item, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let docs = cast(&args.args[0].to_array(args.number_rows)?, &DataType::Utf8)?;
        let item = self.item_field(args.arg_fields.first());
        let mut out = ListBuilder::new(StringBuilder::new()).with_field(Arc::new(item));
        for doc in docs.as_string::<i32>().iter() {
            let Some(doc) = doc else {
                out.append_null();
                continue;
            };
            let what = value::type_of(doc);
            match self.mode {
                Mode::Elements | Mode::ElementsText => {
                    let Some(spans) = value::array_items(doc)? else {
                        return Err(Error::invalid_parameter(format!(
                            "cannot extract elements from {}",
                            if what == "object" {
                                "an object"
                            } else {
                                "a scalar"
                            }
                        ))
                        .into());
                    };
                    for (start, end) in spans {
                        let item = &doc[start..end];
                        if self.mode == Mode::Elements {
                            out.values().append_value(item);
                        } else {
                            out.values().append_option(value::as_text(item)?);
                        }
                    }
                }
                Mode::ObjectKeys => {
                    if what != "object" {
                        return Err(Error::invalid_parameter(format!(
                            "cannot call jsonb_object_keys on {}",
                            if what == "array" {
                                "an array"
                            } else {
                                "a scalar"
                            }
                        ))
                        .into());
                    }
                    let Value::Object(members) = value::parse(doc)? else {
                        unreachable!("checked to be an object")
                    };
                    for (key, _) in members {
                        out.values().append_value(key);
                    }
                }
            }
            out.append(true);
        }
        let array: ArrayRef = Arc::new(out.finish());
        Ok(ColumnarValue::Array(array))
    }
}
