//! PostgreSQL's array functions where DataFusion's of the same name answer
//! otherwise: `array_remove` and `array_replace` act on every matching
//! element (DataFusion's on the first; `array_remove(a, NULL)` removes the
//! NULLs), `array_length` of an empty array is NULL rather than 0, and
//! `array_dims` is text (`[1:3]`). `a && b` (the arrays overlap), which
//! DataFusion does not plan, is `array_has_any` over `a`'s non-NULL items,
//! as NULLs never match in PostgreSQL. `trim_array`, which DataFusion does
//! not have, is here too.

use std::sync::Arc;

use datafusion::arrow::array::NullBufferBuilder;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, ListArray, StringBuilder, UInt32Array, UInt64Array,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::compute::kernels::cmp::not_distinct;
use datafusion::arrow::compute::{filter, not, nullif, take};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type};
use datafusion::common::{DFSchema, Result, ScalarValue, exec_err};
use datafusion::execution::FunctionRegistry;
use datafusion::functions_nested::{array_has, dimension, length, remove, replace};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::sqlparser::ast::BinaryOperator;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::prelude::SessionContext;

use crate::error::{Error, sqlstate};

pub fn register(ctx: &SessionContext) {
    // DataFusion's function that replaces every match, by PostgreSQL's name.
    let replace_all = replace::array_replace_all_udf().as_ref().clone();
    ctx.register_udf(replace_all.with_aliases(["array_replace"]));
    ctx.register_udf(ScalarUDF::new_from_impl(ArrayRemove::default()));
    ctx.register_udf(ScalarUDF::new_from_impl(TrimArray::default()));
    for (inner, answer) in [
        (length::array_length_udf(), Answer::EmptyIsNull),
        (dimension::array_dims_udf(), Answer::DimsText),
    ] {
        ctx.register_udf(ScalarUDF::new_from_impl(Answered { inner, answer }));
    }
    // SessionState's registration cannot fail; the trait allows it to.
    ctx.state_ref()
        .write()
        .register_expr_planner(Arc::new(ArrayOverlap))
        .expect("registering an expression planner");
}

/// `array_remove(array, value)`: the array without the items not distinct
/// from `value` (so a NULL value removes the NULLs).
#[derive(Debug, PartialEq, Eq, Hash)]
struct ArrayRemove {
    signature: Signature,
}

impl Default for ArrayRemove {
    fn default() -> Self {
        ArrayRemove {
            signature: remove::array_remove_udf().signature().clone(),
        }
    }
}

impl ScalarUDFImpl for ArrayRemove {
    fn name(&self) -> &str {
        "array_remove"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let Some(lists) = arrays[0].as_list_opt::<i32>() else {
            return exec_err!("array_remove of {}", arrays[0].data_type());
        };
        let offsets = lists.value_offsets();
        let (first, last) = (offsets[0] as usize, offsets[lists.len()] as usize);
        let items = lists.values().slice(first, last - first);
        // Each item beside the value its row removes.
        let rows: UInt32Array = (0..lists.len() as u32)
            .flat_map(|row| {
                let len = offsets[row as usize + 1] - offsets[row as usize];
                std::iter::repeat_n(row, len as usize)
            })
            .collect();
        let removed = take(&arrays[1], &rows, None)?;
        let kept = not(&not_distinct(&items, &removed)?)?;
        let mut new_offsets = Vec::with_capacity(lists.len() + 1);
        new_offsets.push(0i32);
        let mut at = 0;
        for row in 0..lists.len() {
            let len = (offsets[row + 1] - offsets[row]) as usize;
            let count = kept.slice(at, len).true_count();
            at += len;
            new_offsets.push(new_offsets[row] + count as i32);
        }
        relisted(
            lists,
            new_offsets,
            filter(&items, &kept)?,
            lists.nulls().cloned(),
        )
    }
}

/// `trim_array(array, n)`: the array without its last `n` items; `n`
/// beyond the array's length is an error, as in PostgreSQL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct TrimArray {
    signature: Signature,
}

impl Default for TrimArray {
    fn default() -> Self {
        TrimArray {
            signature: Signature::array_and_index(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for TrimArray {
    fn name(&self) -> &str {
        "trim_array"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (Some(lists), Some(counts)) = (
            arrays[0].as_list_opt::<i32>(),
            arrays[1].as_primitive_opt::<Int64Type>(),
        ) else {
            return exec_err!(
                "trim_array of {} and {}",
                arrays[0].data_type(),
                arrays[1].data_type()
            );
        };
        let offsets = lists.value_offsets();
        let mut kept = Vec::new();
        let mut new_offsets = Vec::with_capacity(lists.len() + 1);
        new_offsets.push(0i32);
        let mut nulls = NullBufferBuilder::new(lists.len());
        for row in 0..lists.len() {
            let (start, end) = (offsets[row], offsets[row + 1]);
            if lists.is_null(row) || counts.is_null(row) {
                nulls.append_null();
            } else {
                let len = i64::from(end - start);
                let n = counts.value(row);
                if !(0..=len).contains(&n) {
                    return Err(Error::new(
                        sqlstate::ARRAY_SUBSCRIPT_ERROR,
                        format!("number of elements to trim must be between 0 and {len}"),
                    )
                    .into());
                }
                kept.extend((start..end - n as i32).map(|i| i as u32));
                nulls.append_non_null();
            }
            new_offsets.push(kept.len() as i32);
        }
        relisted(
            lists,
            new_offsets,
            take(lists.values(), &UInt32Array::from(kept), None)?,
            nulls.finish(),
        )
    }
}

/// Lists of the same type as `lists`, of `items` cut at `offsets`.
fn relisted(
    lists: &ListArray,
    offsets: Vec<i32>,
    items: ArrayRef,
    nulls: Option<NullBuffer>,
) -> Result<ColumnarValue> {
    let field = match lists.data_type() {
        DataType::List(field) => Arc::clone(field),
        other => unreachable!("a list's type is a list: {other}"),
    };
    let out = ListArray::try_new(field, OffsetBuffer::new(offsets.into()), items, nulls)?;
    Ok(ColumnarValue::Array(Arc::new(out)))
}

/// How a function answers in PostgreSQL where DataFusion's answer is
/// another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Answer {
    /// `array_length`: NULL where DataFusion says 0 (an empty array has no
    /// dimensions in PostgreSQL).
    EmptyIsNull,
    /// `array_dims`: text (`[1:2][1:3]`) where DataFusion gives a list of
    /// the dimensions' lengths; NULL for an empty array.
    DimsText,
}

/// DataFusion's function of the same name, its answer turned into
/// PostgreSQL's.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Answered {
    inner: Arc<ScalarUDF>,
    answer: Answer,
}

impl ScalarUDFImpl for Answered {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match self.answer {
            Answer::EmptyIsNull => self.inner.return_type(args),
            Answer::DimsText => Ok(DataType::Utf8),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        // DataFusion's function checks that it gives the type it promised.
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let promised = Field::new(self.name(), self.inner.return_type(&types)?, true);
        let args = ScalarFunctionArgs {
            return_field: Arc::new(promised),
            ..args
        };
        let given = self.inner.invoke_with_args(args)?.to_array(rows)?;
        let answer = match self.answer {
            Answer::EmptyIsNull => empty_is_null(&given),
            Answer::DimsText => dims_text(&given),
        };
        answer.map(ColumnarValue::Array)
    }
}

fn empty_is_null(lengths: &ArrayRef) -> Result<ArrayRef> {
    let Some(counts) = lengths.as_any().downcast_ref::<UInt64Array>() else {
        return exec_err!("array_length gave {}", lengths.data_type());
    };
    let zero = datafusion::arrow::compute::kernels::cmp::eq(counts, &UInt64Array::new_scalar(0))?;
    Ok(nullif(counts, &zero)?)
}

fn dims_text(dims: &ArrayRef) -> Result<ArrayRef> {
    let Some(dims) = dims.as_list_opt::<i32>() else {
        return exec_err!("array_dims gave {}", dims.data_type());
    };
    let mut out = StringBuilder::new();
    for row in 0..dims.len() {
        let lengths = dims.value(row);
        match lengths.as_any().downcast_ref::<UInt64Array>() {
            Some(lengths) if !dims.is_null(row) && lengths.iter().all(|n| n > Some(0)) => {
                let text: String = lengths
                    .iter()
                    .flatten()
                    .map(|n| format!("[1:{n}]"))
                    .collect();
                out.append_value(text);
            }
            _ => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

/// Plans `a && b` over arrays; an array text on one side (`tags &&
/// '{a,b}'`) is read as the other side's type.
#[derive(Debug)]
struct ArrayOverlap;

impl ExprPlanner for ArrayOverlap {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        if expr.op != BinaryOperator::PGOverlap {
            return Ok(PlannerResult::Original(expr));
        }
        let element = |e: &Expr| match e.get_type(schema) {
            Ok(DataType::List(field)) => Some(field.data_type().clone()),
            _ => None,
        };
        let as_array = |e: Expr, element: &DataType| match e {
            Expr::Literal(ScalarValue::Utf8(Some(text)), _) => Ok(Expr::Literal(
                crate::text_input::array_from_text(&text, element)?,
                None,
            )),
            e => Ok::<_, datafusion::error::DataFusionError>(e),
        };
        let (left, right) = match (element(&expr.left), element(&expr.right)) {
            (Some(_), Some(_)) => (expr.left, expr.right),
            (Some(t), None) => (expr.left, as_array(expr.right, &t)?),
            (None, Some(t)) => (as_array(expr.left, &t)?, expr.right),
            (None, None) => return Ok(PlannerResult::Original(expr)),
        };
        let call =
            |udf: Arc<ScalarUDF>, args| Expr::ScalarFunction(ScalarFunction::new_udf(udf, args));
        let null = Expr::Literal(ScalarValue::Null, None);
        let known = call(
            Arc::new(ScalarUDF::new_from_impl(ArrayRemove::default())),
            vec![left, null],
        );
        Ok(PlannerResult::Planned(call(
            array_has::array_has_any_udf(),
            vec![known, right],
        )))
    }
}
