//! The set-returning JSON functions, as lists that SQL's UNNEST turns into
//! rows: `jsonb_array_elements(doc)` is `unnest(__ciab_jsonb_array_elements(doc))`,
//! and `jsonb_each(doc)` unnests a list of keys beside a list of values
//! (the planner's syntax rewrite in `planner/src/arrays.rs` writes them so,
//! in FROM, and in select lists those with one column).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, ListBuilder, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignature, Volatility,
};

use super::funcs::path_args;
use super::path;
use super::value;
use super::{Column, Kind, canonical_texts};
use crate::error::Error;

/// How a set-returning function is written with UNNEST: one list per
/// output column, unnested side by side.
pub struct SetReturning {
    pub outputs: &'static [Output],
}

/// One column of a set-returning function.
pub struct Output {
    /// The scalar function giving the column's values as a list.
    pub list: &'static str,
    /// The column's name in PostgreSQL.
    pub name: &'static str,
    /// A function that gives the unnested values their JSON type back,
    /// which UNNEST drops while the query is planned.
    pub tag: Option<&'static str>,
}

/// The set-returning functions ciab knows, by PostgreSQL's name.
pub fn set_returning(name: &str) -> Option<SetReturning> {
    let outputs: &'static [Output] = match name {
        "jsonb_array_elements" => &[Output {
            list: ELEMENTS,
            name: "value",
            tag: Some(TAG_JSONB),
        }],
        "json_array_elements" => &[Output {
            list: ELEMENTS,
            name: "value",
            tag: Some(TAG_JSON),
        }],
        "jsonb_array_elements_text" | "json_array_elements_text" => &[Output {
            list: ELEMENTS_TEXT,
            name: "value",
            tag: None,
        }],
        "jsonb_object_keys" => &[Output {
            list: "__ciab_jsonb_object_keys",
            name: "jsonb_object_keys",
            tag: None,
        }],
        "json_object_keys" => &[Output {
            list: "__ciab_json_object_keys",
            name: "json_object_keys",
            tag: None,
        }],
        "jsonb_each" => &[
            Output {
                list: "__ciab_jsonb_each_keys",
                name: "key",
                tag: None,
            },
            Output {
                list: "__ciab_jsonb_each_values",
                name: "value",
                tag: Some(TAG_JSONB),
            },
        ],
        "jsonb_each_text" => &[
            Output {
                list: "__ciab_jsonb_each_text_keys",
                name: "key",
                tag: None,
            },
            Output {
                list: "__ciab_jsonb_each_text_values",
                name: "value",
                tag: None,
            },
        ],
        "json_each" => &[
            Output {
                list: "__ciab_json_each_keys",
                name: "key",
                tag: None,
            },
            Output {
                list: "__ciab_json_each_values",
                name: "value",
                tag: Some(TAG_JSON),
            },
        ],
        "json_each_text" => &[
            Output {
                list: "__ciab_json_each_text_keys",
                name: "key",
                tag: None,
            },
            Output {
                list: "__ciab_json_each_text_values",
                name: "value",
                tag: None,
            },
        ],
        "jsonb_path_query" => &[Output {
            list: PATH_QUERY,
            name: "jsonb_path_query",
            tag: Some(TAG_JSONB),
        }],
        _ => return None,
    };
    Some(SetReturning { outputs })
}

const ELEMENTS: &str = "__ciab_jsonb_array_elements";
const ELEMENTS_TEXT: &str = "__ciab_jsonb_array_elements_text";
const PATH_QUERY: &str = "__ciab_jsonb_path_query";
const TAG_JSON: &str = "__ciab_as_json";
const TAG_JSONB: &str = "__ciab_as_jsonb";

/// What a list function takes out of each document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Mode {
    /// An array's items, as documents or as text.
    Items { text: bool },
    /// An object's keys, for the function named.
    Keys { function: &'static str },
    /// An object's values, as documents or as text, for the function
    /// named.
    Values { text: bool, function: &'static str },
}

impl Mode {
    /// The JSON type whose objects the function reads: json's members as
    /// written (in order, repeated keys and all), jsonb's canonical ones.
    fn object_kind(self) -> Kind {
        match self {
            Mode::Keys { function } | Mode::Values { function, .. }
                if function.starts_with("json_") =>
            {
                Kind::Json
            }
            _ => Kind::Jsonb,
        }
    }

    /// PostgreSQL's complaint about a document that is not an object.
    fn not_an_object(self, what: &str) -> String {
        let article = if what == "array" {
            "an array"
        } else {
            "a scalar"
        };
        match self {
            Mode::Keys { function } if function.ends_with("object_keys") => {
                format!("cannot call {function} on {article}")
            }
            Mode::Keys { function } | Mode::Values { function, .. }
                if function.starts_with("json_") =>
            {
                if what == "array" {
                    "cannot deconstruct an array as an object".into()
                } else {
                    "cannot deconstruct a scalar".into()
                }
            }
            Mode::Keys { function } | Mode::Values { function, .. } => {
                format!("cannot call {function} on a non-object")
            }
            Mode::Items { .. } => unreachable!("arrays are not objects' business"),
        }
    }
}

/// A function over an object's members: its SQL name, the list function
/// giving its keys, and (for the `each` ones) the one giving its values,
/// as documents or as text.
struct MemberLists {
    function: &'static str,
    keys: &'static str,
    values: Option<(&'static str, bool)>,
}

const MEMBER_LISTS: &[MemberLists] = &[
    MemberLists {
        function: "jsonb_object_keys",
        keys: "__ciab_jsonb_object_keys",
        values: None,
    },
    MemberLists {
        function: "json_object_keys",
        keys: "__ciab_json_object_keys",
        values: None,
    },
    MemberLists {
        function: "jsonb_each",
        keys: "__ciab_jsonb_each_keys",
        values: Some(("__ciab_jsonb_each_values", false)),
    },
    MemberLists {
        function: "jsonb_each_text",
        keys: "__ciab_jsonb_each_text_keys",
        values: Some(("__ciab_jsonb_each_text_values", true)),
    },
    MemberLists {
        function: "json_each",
        keys: "__ciab_json_each_keys",
        values: Some(("__ciab_json_each_values", false)),
    },
    MemberLists {
        function: "json_each_text",
        keys: "__ciab_json_each_text_keys",
        values: Some(("__ciab_json_each_text_values", true)),
    },
];

pub(super) fn all() -> Vec<ScalarUDF> {
    let members = MEMBER_LISTS.iter().flat_map(|m| {
        let function = m.function;
        std::iter::once((m.keys, Mode::Keys { function })).chain(
            m.values
                .map(|(list, text)| (list, Mode::Values { text, function })),
        )
    });
    [
        (ELEMENTS, Mode::Items { text: false }),
        (ELEMENTS_TEXT, Mode::Items { text: true }),
    ]
    .into_iter()
    .chain(members)
    .map(|(name, mode)| {
        ScalarUDF::new_from_impl(Rows {
            name,
            mode,
            signature: Signature::any(1, Volatility::Immutable),
        })
    })
    .chain([ScalarUDF::new_from_impl(PathQuery {
        signature: Signature::one_of(
            (2..=4).map(TypeSignature::Any).collect(),
            Volatility::Immutable,
        ),
    })])
    .chain([tag(Kind::Json), tag(Kind::Jsonb)])
    .collect()
}

/// The function that gives text the JSON type `kind`.
pub(super) fn tag(kind: Kind) -> ScalarUDF {
    ScalarUDF::new_from_impl(Tag {
        name: match kind {
            Kind::Json => TAG_JSON,
            Kind::Jsonb => TAG_JSONB,
        },
        kind,
        signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
    })
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
            Mode::Items { text: false } => input
                .and_then(|f| Kind::of_field(f))
                .unwrap_or(Kind::Jsonb)
                .field("item"),
            Mode::Values { text: false, .. } => self.mode.object_kind().field("item"),
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
        let docs = args.args[0].to_array(args.number_rows)?;
        let kind = args.arg_fields.first().and_then(|f| Kind::of_field(f));
        // Objects are read as canonical jsonb: keys once each, in order.
        let docs = match self.mode {
            Mode::Items { .. } => cast(&docs, &DataType::Utf8)?,
            _ if self.mode.object_kind() == Kind::Json => cast(&docs, &DataType::Utf8)?,
            _ if kind == Some(Kind::Jsonb) => cast(&docs, &DataType::Utf8)?,
            _ => canonical_texts(&docs)?,
        };
        let item = self.item_field(args.arg_fields.first());
        let mut out = ListBuilder::new(StringBuilder::new()).with_field(Arc::new(item));
        for doc in docs.as_string::<i32>().iter() {
            let Some(doc) = doc else {
                out.append_null();
                continue;
            };
            let what = value::type_of(doc);
            match self.mode {
                Mode::Items { text } => {
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
                        if text {
                            out.values().append_option(value::as_text(item)?);
                        } else {
                            out.values().append_value(item);
                        }
                    }
                }
                Mode::Keys { .. } | Mode::Values { .. } => {
                    let Some(members) = value::object_members(doc)? else {
                        return Err(Error::invalid_parameter(self.mode.not_an_object(what)).into());
                    };
                    for (key, (start, end)) in members {
                        match self.mode {
                            Mode::Keys { .. } => out.values().append_value(key),
                            Mode::Values { text: true, .. } => out
                                .values()
                                .append_option(value::as_text(&doc[start..end])?),
                            _ => out.values().append_value(&doc[start..end]),
                        }
                    }
                }
            }
            out.append(true);
        }
        let array: ArrayRef = Arc::new(out.finish());
        Ok(ColumnarValue::Array(array))
    }
}

/// `jsonb_path_query(target, path [, vars [, silent]])`: per document, the
/// list of what the path yields.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PathQuery {
    signature: Signature,
}

impl ScalarUDFImpl for PathQuery {
    fn name(&self) -> &str {
        PATH_QUERY
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Kind::Jsonb.field("item"))))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let columns = args
            .args
            .iter()
            .map(|a| a.to_array(rows).and_then(Column::new))
            .collect::<Result<Vec<_>>>()?;
        let mut out =
            ListBuilder::new(StringBuilder::new()).with_field(Arc::new(Kind::Jsonb.field("item")));
        let mut row_args = Vec::with_capacity(columns.len());
        for row in 0..rows {
            // Strict: a NULL argument gives no rows.
            if !Column::row_args(&columns, row, &mut row_args) {
                out.append_null();
                continue;
            }
            let (doc, path, vars, silent) = path_args(&row_args)?;
            for v in path::query(&path, &doc, Some(&vars), silent)? {
                out.values().append_value(v.to_jsonb_text());
            }
            out.append(true);
        }
        let array: ArrayRef = Arc::new(out.finish());
        Ok(ColumnarValue::Array(array))
    }
}
