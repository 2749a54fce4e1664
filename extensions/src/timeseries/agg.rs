//! Time-series aggregates: TimescaleDB's `first(value, time)` and
//! `last(value, time)`, and PostgreSQL's `percentile_disc` (DataFusion
//! brings `percentile_cont` and `approx_percentile_cont`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::{SortOptions, concat, filter, is_not_null, sort_to_indices};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, internal_err, plan_err};
use datafusion::functions_aggregate::first_last::{first_value_udaf, last_value_udaf};
use datafusion::logical_expr::expr::{AggregateFunction, Sort};
use datafusion::logical_expr::function::{
    AccumulatorArgs, AggregateFunctionSimplification, StateFieldsArgs,
};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Expr, Signature, Volatility};

use crate::error::{Error, sqlstate};

/// `first(value, time)` is the value of the row with the earliest time,
/// `last(value, time)` of the latest. Rows without a time are skipped.
/// Each becomes DataFusion's `first_value(value ORDER BY time)` with a
/// filter (or `last_value`), whose grouped accumulators are fast.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Bookend {
    last: bool,
    signature: Signature,
}

impl Bookend {
    pub fn first() -> Self {
        Bookend {
            last: false,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }

    pub fn last() -> Self {
        Bookend {
            last: true,
            ..Bookend::first()
        }
    }
}

impl AggregateUDFImpl for Bookend {
    fn name(&self) -> &str {
        if self.last { "last" } else { "first" }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, types: &[DataType]) -> Result<DataType> {
        Ok(types[0].clone())
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        internal_err!(
            "{}() runs as first_value or last_value after simplification",
            self.name()
        )
    }

    fn simplify(&self) -> Option<AggregateFunctionSimplification> {
        let last = self.last;
        Some(Box::new(move |aggregate, _info| {
            let AggregateFunction { params, .. } = aggregate;
            let [value, time] = <[Expr; 2]>::try_from(params.args).map_err(|_| {
                datafusion::error::DataFusionError::Plan(
                    "first and last take a value and a time".into(),
                )
            })?;
            let has_time = time.clone().is_not_null();
            let filter = match params.filter {
                Some(f) => f.and(has_time),
                None => has_time,
            };
            let udaf = if last {
                last_value_udaf()
            } else {
                first_value_udaf()
            };
            Ok(Expr::AggregateFunction(AggregateFunction::new_udf(
                udaf,
                vec![value],
                params.distinct,
                Some(Box::new(filter)),
                vec![Sort::new(time, true, false)],
                None,
            )))
        }))
    }
}

/// `percentile_disc(fraction) WITHIN GROUP (ORDER BY x)`: the first value,
/// in that order, whose position reaches the fraction of the non-null
/// values. It keeps every value of a group, as PostgreSQL's does.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PercentileDisc {
    signature: Signature,
}

impl Default for PercentileDisc {
    fn default() -> Self {
        PercentileDisc {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for PercentileDisc {
    fn name(&self) -> &str {
        "percentile_disc"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        match types {
            [value, _] => Ok(vec![value.clone(), DataType::Float64]),
            _ => plan_err!("percentile_disc takes a fraction and WITHIN GROUP (ORDER BY value)"),
        }
    }

    fn return_type(&self, types: &[DataType]) -> Result<DataType> {
        Ok(types[0].clone())
    }

    fn supports_within_group_clause(&self) -> bool {
        true
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let item = Field::new_list_field(args.input_fields[0].data_type().clone(), true);
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "values"),
            DataType::List(Arc::new(item)),
            true,
        ))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let fraction = match super::constant(&args.exprs[1])? {
            Some(ScalarValue::Float64(Some(f))) => f,
            Some(ScalarValue::Float64(None)) => {
                return Err(Error::invalid_parameter("percentile value must not be null").into());
            }
            _ => {
                return Err(Error::new(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    "percentile_disc takes a constant fraction",
                )
                .into());
            }
        };
        if !(0.0..=1.0).contains(&fraction) {
            return Err(Error::new(
                sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
                format!("percentile value {fraction} is not between 0 and 1"),
            )
            .into());
        }
        let descending = args.order_bys.first().is_some_and(|s| s.options.descending);
        Ok(Box::new(DiscAccumulator {
            data_type: args.expr_fields[0].data_type().clone(),
            fraction,
            descending,
            values: vec![],
        }))
    }
}

#[derive(Debug)]
struct DiscAccumulator {
    data_type: DataType,
    fraction: f64,
    descending: bool,
    /// The group's non-null values, batch by batch.
    values: Vec<ArrayRef>,
}

impl DiscAccumulator {
    fn push(&mut self, values: &ArrayRef) -> Result<()> {
        let values = match values.null_count() {
            0 => values.clone(),
            _ => filter(values, &is_not_null(values)?)?,
        };
        if !values.is_empty() {
            self.values.push(values);
        }
        Ok(())
    }

    fn all(&self) -> Result<ArrayRef> {
        let parts: Vec<&dyn Array> = self.values.iter().map(|a| a.as_ref()).collect();
        Ok(match parts.as_slice() {
            [] => datafusion::arrow::array::new_empty_array(&self.data_type),
            [one] => self.values[0].slice(0, one.len()),
            _ => concat(&parts)?,
        })
    }
}

impl Accumulator for DiscAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.push(&values[0])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for list in states[0].as_list::<i32>().iter().flatten() {
            self.push(&list)?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values = self.all()?;
        let offsets = OffsetBuffer::from_lengths([values.len()]);
        let item = Arc::new(Field::new_list_field(self.data_type.clone(), true));
        let list = ListArray::new(item, offsets, values, None);
        Ok(vec![ScalarValue::List(Arc::new(list))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let values = self.all()?;
        if values.is_empty() {
            return ScalarValue::try_from(&self.data_type);
        }
        let order = SortOptions {
            descending: self.descending,
            nulls_first: false,
        };
        let sorted = sort_to_indices(&values, Some(order), None)?;
        // PostgreSQL: the row whose position is ceil(fraction * n), at least 1.
        let position = ((self.fraction * values.len() as f64).ceil() as usize).max(1);
        assert!(
            position <= values.len(),
            "a fraction in [0, 1] stays in the group"
        );
        ScalarValue::try_from_array(&values, sorted.value(position - 1) as usize)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self
                .values
                .iter()
                .map(|a| a.get_array_memory_size())
                .sum::<usize>()
    }
}
