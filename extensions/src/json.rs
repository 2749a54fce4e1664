//! JSON construction: `json_build_object`, with PostgreSQL's output text.
//!
//! PostgreSQL's `json` type is its text, so the object is built as text
//! and tagged `json` for the wire:
//! `{"key" : value, ...}`, spaced as PostgreSQL spaces it. Numbers and
//! booleans stay JSON numbers and booleans, NULL is `null`, and any other
//! value is its text as a JSON string.

use std::fmt::Write;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringBuilder};

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonBuildObject {
    signature: Signature,
}

impl Default for JsonBuildObject {
    fn default() -> Self {
        JsonBuildObject {
            signature: Signature::variadic_any(Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        let field = Field::new(self.name(), DataType::Utf8, true).with_metadata(
            [(
                ciab_storage::PG_TYPE_METADATA_KEY.to_string(),
                "json".to_string(),
            )]
            .into(),
        );
        Ok(Arc::new(field))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if !args.args.len().is_multiple_of(2) {
            return Err(DataFusionError::Execution(
                "argument list must have even number of elements".into(),
            ));
        }
        let arrays: Vec<ArrayRef> = ColumnarValue::values_to_arrays(&args.args)?;
        let mut out = StringBuilder::new();
        let mut object = String::new();
        for row in 0..args.number_rows {
            object.clear();
            object.push('{');
            for (pair, kv) in arrays.chunks(2).enumerate() {
                if pair > 0 {
                    object.push_str(", ");
                }
                let key = ScalarValue::try_from_array(&kv[0], row)?;
                if key.is_null() {
                    return Err(DataFusionError::Execution(format!(
                        "argument {}: key must not be null",
                        2 * pair + 1
                    )));
                }
                write_string(&mut object, &text(&key)?);
                object.push_str(" : ");
                write_value(&mut object, &ScalarValue::try_from_array(&kv[1], row)?)?;
            }
            object.push('}');
            out.append_value(&object);
        }
        let array: ArrayRef = std::sync::Arc::new(out.finish());
        debug_assert_eq!(array.len(), args.number_rows);
        Ok(ColumnarValue::Array(array))
    }
}

/// A value's text, as a cast to text gives it.
fn text(value: &ScalarValue) -> Result<String> {
    match value.cast_to(&DataType::Utf8)? {
        ScalarValue::Utf8(Some(s)) => Ok(s),
        other => Ok(other.to_string()),
    }
}

fn write_value(out: &mut String, value: &ScalarValue) -> Result<()> {
    if value.is_null() {
        out.push_str("null");
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
        | ScalarValue::Decimal128(..) => out.push_str(&text(value)?),
        ScalarValue::Float32(Some(f)) if f.is_finite() => out.push_str(&text(value)?),
        ScalarValue::Float64(Some(f)) if f.is_finite() => out.push_str(&text(value)?),
        // NaN and infinities are not JSON numbers: PostgreSQL quotes them.
        other => write_string(out, &text(other)?),
    }
    Ok(())
}

/// `s` as a JSON string, escaped as PostgreSQL escapes it.
fn write_string(out: &mut String, s: &str) {
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
