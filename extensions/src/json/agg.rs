//! The JSON aggregates: `json_agg`, `jsonb_agg`, `json_object_agg` and
//! `jsonb_object_agg`. Each value becomes JSON as `to_json` makes it
//! (`build::write_value`); NULLs are kept as `null`, and no rows give NULL.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

use super::Kind;
use super::build::{RECORD_METADATA_KEY, plain_text, write_value};
use super::value::{self, write_string};
use crate::error::Error;

pub(super) fn all() -> Vec<AggregateUDF> {
    [
        ("json_agg", false, Kind::Json),
        ("jsonb_agg", false, Kind::Jsonb),
        ("json_object_agg", true, Kind::Json),
        ("jsonb_object_agg", true, Kind::Jsonb),
    ]
    .into_iter()
    .map(|(name, object, kind)| {
        AggregateUDF::new_from_impl(JsonAgg {
            name,
            object,
            kind,
            signature: Signature::any(if object { 2 } else { 1 }, Volatility::Immutable),
        })
    })
    .collect()
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonAgg {
    name: &'static str,
    /// Key and value pairs into an object, or values into an array.
    object: bool,
    kind: Kind,
    signature: Signature,
}

impl AggregateUDFImpl for JsonAgg {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field(&self, _: &[FieldRef]) -> Result<FieldRef> {
        Ok(Arc::new(self.kind.field(self.name)))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let list = |name: &str| {
            Arc::new(Field::new_list(
                format!("{}_{name}", args.name),
                Field::new_list_field(DataType::Utf8, true),
                true,
            ))
        };
        Ok(if self.object {
            vec![list("keys"), list("values")]
        } else {
            vec![list("items")]
        })
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(JsonAccumulator {
            object: self.object,
            kind: self.kind,
            value_kind: args.expr_fields.last().and_then(|f| Kind::of_field(f)),
            structured: args.expr_fields.last().is_some_and(|f| {
                matches!(f.data_type(), DataType::List(_))
                    || f.metadata().contains_key(RECORD_METADATA_KEY)
            }),
            keys: Vec::new(),
            items: Vec::new(),
        }))
    }
}

#[derive(Debug)]
struct JsonAccumulator {
    object: bool,
    /// What the aggregate returns.
    kind: Kind,
    /// Whether the values aggregated are json or jsonb documents.
    value_kind: Option<Kind>,
    /// Whether they are arrays or records, which json_agg puts on lines of
    /// their own, as PostgreSQL does.
    structured: bool,
    /// Object keys, as JSON strings; empty for arrays.
    keys: Vec<String>,
    /// Each value's JSON text.
    items: Vec<String>,
}

fn texts(list: &ArrayRef, row: usize) -> Vec<String> {
    let items = list.as_list::<i32>().value(row);
    items
        .as_string::<i32>()
        .iter()
        .map(|s| s.unwrap_or("null").to_string())
        .collect()
}

fn list(items: &[String]) -> ScalarValue {
    let values: Vec<ScalarValue> = items
        .iter()
        .map(|s| ScalarValue::Utf8(Some(s.clone())))
        .collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Utf8))
}

impl Accumulator for JsonAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        // Any columns after the arguments are ORDER BY keys.
        let value_column = &values[usize::from(self.object)];
        for row in 0..value_column.len() {
            if self.object {
                let key = ScalarValue::try_from_array(&values[0], row)?;
                if key.is_null() {
                    return Err(Error::invalid_parameter("field name must not be null").into());
                }
                let mut quoted = String::new();
                write_string(&mut quoted, &plain_text(&key)?);
                self.keys.push(quoted);
            }
            let mut item = String::new();
            write_value(
                &mut item,
                &ScalarValue::try_from_array(value_column, row)?,
                self.value_kind,
            )?;
            self.items.push(item);
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for row in 0..states[0].len() {
            if self.object {
                self.keys.extend(texts(&states[0], row));
            }
            self.items.extend(texts(&states[states.len() - 1], row));
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(if self.object {
            vec![list(&self.keys), list(&self.items)]
        } else {
            vec![list(&self.items)]
        })
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.items.is_empty() {
            return Ok(ScalarValue::Utf8(None));
        }
        let text = if self.object {
            let members: Vec<String> = self
                .keys
                .iter()
                .zip(&self.items)
                .map(|(k, v)| format!("{k} : {v}"))
                .collect();
            format!("{{ {} }}", members.join(", "))
        } else {
            let mut text = String::from("[");
            for (i, item) in self.items.iter().enumerate() {
                if i > 0 {
                    text.push_str(", ");
                    if self.structured && item != "null" {
                        text.push_str("\n ");
                    }
                }
                text.push_str(item);
            }
            text.push(']');
            text
        };
        Ok(ScalarValue::Utf8(Some(match self.kind {
            Kind::Json => text,
            Kind::Jsonb => value::parse(&text)?.to_jsonb_text(),
        })))
    }

    fn size(&self) -> usize {
        size_of_val(self)
            + self
                .keys
                .iter()
                .chain(&self.items)
                .map(String::capacity)
                .sum::<usize>()
            + (self.keys.capacity() + self.items.capacity()) * size_of::<String>()
    }
}
