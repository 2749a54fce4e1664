//! Building JSON from SQL values: `to_json`, `to_jsonb`,
//! `json_build_object`, `jsonb_build_object`, `json_build_array`,
//! `jsonb_build_array`, and records as `row_to_json` writes them (the
//! planner spells a record out as its columns' names and values), with
//! PostgreSQL's output text.
//!
//! A value becomes JSON as `to_json` makes it: numbers and booleans stay
//! JSON numbers and booleans (NaN and infinities, which JSON lacks, become
//! strings), NULL is `null`, json and jsonb values are embedded as the
//! documents they are, arrays become JSON arrays, and anything else is its
//! text as a JSON string. The json variants space their output as
//! PostgreSQL does (`{"a" : 1}`, `[1, 2]`); the jsonb variants return
//! canonical jsonb.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringBuilder};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignature, Volatility,
};

use super::Kind;
use super::value::{self, write_string};
use crate::error::{Error, sqlstate};
use crate::text_output::write_float;

pub(super) fn all() -> Vec<ScalarUDF> {
    use Shape::*;
    [
        ("to_json", Value, Kind::Json),
        ("to_jsonb", Value, Kind::Jsonb),
        ("json_build_object", Object, Kind::Json),
        ("jsonb_build_object", Object, Kind::Jsonb),
        ("json_build_array", Array, Kind::Json),
        ("jsonb_build_array", Array, Kind::Jsonb),
        ("__ciab_row_to_json", Record { pretty: false }, Kind::Json),
        (
            "__ciab_row_to_json_pretty",
            Record { pretty: true },
            Kind::Json,
        ),
        // A record as json_agg takes it: the same text, marked a record.
        (RECORD, Record { pretty: false }, Kind::Json),
    ]
    .into_iter()
    .map(|(name, shape, kind)| {
        let signature = match shape {
            Value => Signature::any(1, Volatility::Stable),
            Object | Array | Record { .. } => Signature::one_of(
                vec![TypeSignature::VariadicAny, TypeSignature::Nullary],
                Volatility::Stable,
            ),
        };
        ScalarUDF::new_from_impl(Build {
            name,
            shape,
            kind,
            signature,
        })
    })
    .chain([ScalarUDF::new_from_impl(RowToJson {
        signature: Signature::variadic_any(Volatility::Stable),
    })])
    .collect()
}

/// `row_to_json` of what the planner did not spell out: a record other
/// than a FROM item's name (see `planner/src/records.rs`). It fails while
/// the statement is planned.
#[derive(Debug, PartialEq, Eq, Hash)]
struct RowToJson {
    signature: Signature,
}

impl RowToJson {
    fn unsupported() -> Error {
        Error::new(
            sqlstate::FEATURE_NOT_SUPPORTED,
            "row_to_json takes the name of a FROM item, as in row_to_json(t); \
             other records are not supported yet",
        )
    }
}

impl ScalarUDFImpl for RowToJson {
    fn name(&self) -> &str {
        "row_to_json"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Err(Self::unsupported().into())
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        Err(Self::unsupported().into())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Err(Self::unsupported().into())
    }
}

/// A record spelled out as json for an aggregate, which sets records apart
/// from json values (see `agg.rs`); its field carries this metadata key.
const RECORD: &str = "__ciab_record";
pub(super) const RECORD_METADATA_KEY: &str = "ciab.record";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Shape {
    /// One value.
    Value,
    /// Alternating keys and values.
    Object,
    /// Its arguments as items.
    Array,
    /// A record's columns, as alternating names and values: an object
    /// without spaces (`{"a":1,"b":2}`), or with each column after the
    /// first on a line of its own when `pretty`.
    Record { pretty: bool },
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Build {
    name: &'static str,
    shape: Shape,
    kind: Kind,
    signature: Signature,
}

impl ScalarUDFImpl for Build {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        let field = self.kind.field(self.name);
        if self.name != RECORD {
            return Ok(Arc::new(field));
        }
        let mut metadata = field.metadata().clone();
        metadata.insert(RECORD_METADATA_KEY.to_string(), "true".to_string());
        Ok(Arc::new(field.with_metadata(metadata)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if matches!(self.shape, Shape::Object | Shape::Record { .. })
            && !args.args.len().is_multiple_of(2)
        {
            return Err(Error::invalid_parameter(
                "argument list must have even number of elements",
            )
            .with_detail(format!(
                "The arguments of {} must consist of alternating keys and values.",
                self.name
            ))
            .into());
        }
        let arrays: Vec<ArrayRef> = ColumnarValue::values_to_arrays(&args.args)?;
        let kinds: Vec<Option<Kind>> = args.arg_fields.iter().map(|f| Kind::of_field(f)).collect();
        let mut out = StringBuilder::new();
        let mut text = String::new();
        for row in 0..args.number_rows {
            text.clear();
            let value = |i: usize| ScalarValue::try_from_array(&arrays[i], row);
            match self.shape {
                Shape::Value => write_value(&mut text, &value(0)?, kinds[0])?,
                Shape::Array => {
                    text.push('[');
                    for (i, kind) in kinds.iter().enumerate() {
                        if i > 0 {
                            text.push_str(", ");
                        }
                        write_value(&mut text, &value(i)?, *kind)?;
                    }
                    text.push(']');
                }
                Shape::Object | Shape::Record { .. } => {
                    let (between, colon) = match self.shape {
                        Shape::Record { pretty: false } => (",", ":"),
                        Shape::Record { pretty: true } => (",\n ", ":"),
                        _ => (", ", " : "),
                    };
                    text.push('{');
                    for pair in 0..arrays.len() / 2 {
                        if pair > 0 {
                            text.push_str(between);
                        }
                        let key = value(2 * pair)?;
                        if key.is_null() {
                            return Err(Error::invalid_parameter(format!(
                                "argument {}: key must not be null",
                                2 * pair + 1
                            ))
                            .into());
                        }
                        write_string(&mut text, &plain_text(&key)?);
                        text.push_str(colon);
                        write_value(&mut text, &value(2 * pair + 1)?, kinds[2 * pair + 1])?;
                    }
                    text.push('}');
                }
            }
            match self.kind {
                Kind::Json => out.append_value(&text),
                Kind::Jsonb => out.append_value(value::parse(&text)?.to_jsonb_text()),
            }
        }
        let array: ArrayRef = Arc::new(out.finish());
        debug_assert_eq!(array.len(), args.number_rows);
        Ok(ColumnarValue::Array(array))
    }
}

/// A value's text, as a cast to text gives it.
pub(super) fn plain_text(value: &ScalarValue) -> Result<String> {
    match value.cast_to(&DataType::Utf8)? {
        ScalarValue::Utf8(Some(s)) => Ok(s),
        other => Ok(other.to_string()),
    }
}

/// `value` as JSON text; `kind` says it is a json or jsonb document.
pub(super) fn write_value(out: &mut String, value: &ScalarValue, kind: Option<Kind>) -> Result<()> {
    if value.is_null() {
        out.push_str("null");
        return Ok(());
    }
    if kind.is_some() {
        out.push_str(&plain_text(value)?);
        return Ok(());
    }
    match value {
        ScalarValue::Boolean(Some(b)) => out.push_str(if *b { "true" } else { "false" }),
        ScalarValue::Int8(_)
        | ScalarValue::Int16(_)
        | ScalarValue::Int32(_)
        | ScalarValue::Int64(_)
        | ScalarValue::UInt8(_)
        | ScalarValue::UInt16(_)
        | ScalarValue::UInt32(_)
        | ScalarValue::UInt64(_)
        | ScalarValue::Decimal128(..) => out.push_str(&plain_text(value)?),
        ScalarValue::Float32(Some(f)) if f.is_finite() => write_float(out, f64::from(*f), true)?,
        ScalarValue::Float64(Some(f)) if f.is_finite() => write_float(out, *f, false)?,
        ScalarValue::List(list) => {
            // to_json prints arrays without spaces.
            let items = list.value(0);
            out.push('[');
            for i in 0..items.len() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, &ScalarValue::try_from_array(&items, i)?, None)?;
            }
            out.push(']');
        }
        other => write_string(out, &plain_text(other)?),
    }
    Ok(())
}
