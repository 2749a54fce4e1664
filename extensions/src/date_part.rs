//! `EXTRACT(field FROM x)` and `date_part('field', x)` with PostgreSQL's
//! types and fractions of a second.
//!
//! DataFusion's `date_part` gives whole seconds for `second` (so
//! `extract(second from '00:00:01.5')` was 1, a wrong answer), an `int4` for
//! most fields and a float for `epoch`. PostgreSQL's EXTRACT is numeric
//! with the fraction its field has (`second` 6 places, `milliseconds` 3,
//! `epoch` 6 but 0 for a date), and its `date_part` is double precision:
//!
//! ```text
//!   extract(second from '00:00:01.5')      1.500000     numeric
//!   extract(milliseconds from ...)         1500.000     numeric
//!   extract(epoch from date '2024-01-01')  1704067200   numeric
//!   date_part('second', ...)               1.5          double precision
//! ```
//!
//! Both are DataFusion's function underneath: sub-second fields are read
//! as its exact count of microseconds, the rest converted to the type.
//! EXTRACT reaches DataFusion's planner as an expression, not by name, so
//! [`ExtractPlanner`] must come before DataFusion's.

use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::compute::kernels::cast_utils::IntervalUnit;
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Field, FieldRef, Float64Type, Int64Type,
};
use datafusion::common::{Result, ScalarValue, internal_err};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};

use crate::error::{Error, sqlstate};

/// Digits of the numeric EXTRACT gives: any count of microseconds since
/// the epoch fits.
const EXTRACT_PRECISION: u8 = 38;

/// Plans `EXTRACT(field FROM x)` as [`PgDatePart`] giving numeric.
#[derive(Debug)]
pub struct ExtractPlanner(Arc<ScalarUDF>);

impl Default for ExtractPlanner {
    fn default() -> Self {
        ExtractPlanner(Arc::new(ScalarUDF::new_from_impl(PgDatePart::new(
            Returns::Numeric,
        ))))
    }
}

impl ExprPlanner for ExtractPlanner {
    fn plan_extract(&self, args: Vec<Expr>) -> Result<PlannerResult<Vec<Expr>>> {
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(Arc::clone(&self.0), args),
        )))
    }
}

/// What the function returns: EXTRACT's numeric or `date_part`'s float8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Returns {
    Numeric,
    Float,
}

/// The field asked for, as the computation needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    /// `second`, `milliseconds`, `microseconds`: the field's microseconds
    /// divided by `10^places`, which is also EXTRACT's scale.
    Micros {
        places: i8,
    },
    Epoch,
    /// A whole number DataFusion computes: a time of day (`hour`,
    /// `minute`), which a date has none of, or a date's field.
    Whole {
        time_of_day: bool,
    },
    /// `decade`, `century`, `millennium`: the year's, by span in years.
    Years(i64),
}

impl Part {
    /// The field a text names, or PostgreSQL's error for a text that names
    /// none it can extract from `input`.
    fn parse(text: &str, input: &DataType) -> Result<Part> {
        let text = text.trim_matches(|c| c == '\'' || c == '"');
        let lower = text.to_lowercase();
        let part = match IntervalUnit::from_str(text) {
            Ok(IntervalUnit::Second) => Part::Micros { places: 6 },
            Ok(IntervalUnit::Millisecond) => Part::Micros { places: 3 },
            Ok(IntervalUnit::Microsecond) => Part::Micros { places: 0 },
            Ok(IntervalUnit::Hour | IntervalUnit::Minute) => Part::Whole { time_of_day: true },
            Ok(
                IntervalUnit::Year | IntervalUnit::Month | IntervalUnit::Week | IntervalUnit::Day,
            ) => Part::Whole { time_of_day: false },
            Ok(IntervalUnit::Decade) => Part::Years(10),
            Ok(IntervalUnit::Century) => Part::Years(100),
            _ => match lower.as_str() {
                "epoch" => Part::Epoch,
                "isoyear" | "qtr" | "quarter" | "doy" | "dow" | "isodow" => {
                    Part::Whole { time_of_day: false }
                }
                "millennium" | "millennia" | "millenniums" | "mil" | "mils" => Part::Years(1000),
                "julian" | "timezone" | "timezone_hour" | "timezone_minute" => {
                    return not_supported(&lower);
                }
                _ => {
                    return Err(Error::new(
                        sqlstate::INVALID_PARAMETER_VALUE,
                        format!(
                            "unit \"{lower}\" not recognized for type {}",
                            type_name(input)
                        ),
                    )
                    .into());
                }
            },
        };
        Ok(part)
    }

    /// EXTRACT's scale for this field of a value of type `input`.
    fn scale(self, input: &DataType) -> i8 {
        match self {
            Part::Micros { places } => places,
            Part::Epoch if matches!(input, DataType::Date32 | DataType::Date64) => 0,
            Part::Epoch => 6,
            Part::Whole { .. } | Part::Years(_) => 0,
        }
    }
}

/// The decade, century or millennium (`span` years) of `year`, as
/// PostgreSQL counts them: an interval's years truncated; a date's
/// centuries and millennia from year 1 (the first century is 1 to 100) and
/// decades from year 0, with `year` numbered as inside DataFusion and
/// PostgreSQL both (0 is 1 BC, -1 is 2 BC).
fn years(year: i64, span: i64, interval: bool) -> i64 {
    match (interval, span) {
        (true, _) => year / span,
        (false, 10) if year >= 0 => year / 10,
        (false, 10) => -((8 - (year - 1)) / 10),
        (false, _) if year > 0 => (year + span - 1) / span,
        (false, _) => -((span - 1 - (year - 1)) / span),
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct PgDatePart {
    result: Returns,
    inner: Arc<ScalarUDF>,
}

impl PgDatePart {
    fn new(result: Returns) -> Self {
        PgDatePart {
            result,
            inner: datafusion::functions::datetime::date_part(),
        }
    }

    /// `date_part`, replacing DataFusion's under its name.
    pub(crate) fn float() -> ScalarUDF {
        ScalarUDF::new_from_impl(Self::new(Returns::Float))
    }

    fn output_type(&self, part: Part, input: &DataType) -> DataType {
        match self.result {
            Returns::Numeric => DataType::Decimal128(EXTRACT_PRECISION, part.scale(input)),
            Returns::Float => DataType::Float64,
        }
    }
}

fn part_text(value: Option<&ScalarValue>) -> Option<&str> {
    match value? {
        ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => Some(s),
        ScalarValue::LargeUtf8(Some(s)) => Some(s),
        _ => None,
    }
}

fn not_supported<T>(unit: &str) -> Result<T> {
    Err(Error::new(
        sqlstate::FEATURE_NOT_SUPPORTED,
        format!("unit \"{unit}\" is not supported yet"),
    )
    .into())
}

/// PostgreSQL's name of a type EXTRACT reads, for its messages.
fn type_name(input: &DataType) -> &'static str {
    match input {
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Timestamp(_, None) => "timestamp without time zone",
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone",
        DataType::Time32(_) | DataType::Time64(_) => "time without time zone",
        DataType::Interval(_) => "interval",
        _ => "this type",
    }
}

impl ScalarUDFImpl for PgDatePart {
    fn name(&self) -> &str {
        match self.result {
            Returns::Numeric => "extract",
            Returns::Float => self.inner.name(),
        }
    }

    fn aliases(&self) -> &[String] {
        match self.result {
            Returns::Numeric => &[],
            Returns::Float => self.inner.aliases(),
        }
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        internal_err!("return_field_from_args should be called instead")
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let Some(part) = part_text(args.scalar_arguments.first().copied().flatten()) else {
            return Err(Error::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                "the field of date_part must be a constant",
            )
            .into());
        };
        let input = args.arg_fields[1].data_type();
        let parsed = Part::parse(part, input)?;
        let time_of_day = matches!(
            parsed,
            Part::Micros { .. } | Part::Whole { time_of_day: true }
        );
        // PostgreSQL's EXTRACT from a date has no time of day to give
        // (`date_part` casts the date to a timestamp, whose time is 0).
        if self.result == Returns::Numeric
            && time_of_day
            && matches!(input, DataType::Date32 | DataType::Date64)
        {
            return Err(Error::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!(
                    "unit \"{}\" not supported for type date",
                    part.to_lowercase()
                ),
            )
            .into());
        }
        Ok(Arc::new(Field::new(
            self.name(),
            self.output_type(parsed, input),
            true,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let ColumnarValue::Scalar(part_value) = &args.args[0] else {
            return internal_err!("date_part's field was a constant text when planned");
        };
        let Some(text) = part_text(Some(part_value)) else {
            return internal_err!("date_part's field was a constant text when planned");
        };
        let input = args.args[1].data_type();
        let part = Part::parse(text, &input)?;
        // Sub-second fields are DataFusion's exact microseconds; spans of
        // years are worked out from the year.
        let asked = match part {
            Part::Micros { .. } => ColumnarValue::Scalar(ScalarValue::from("microsecond")),
            Part::Years(_) => ColumnarValue::Scalar(ScalarValue::from("year")),
            _ => args.args[0].clone(),
        };
        let number_rows = args.number_rows;
        let inner_args = ScalarFunctionArgs {
            args: vec![asked, args.args[1].clone()],
            arg_fields: args.arg_fields.clone(),
            number_rows,
            return_field: Arc::new(Field::new("date_part", DataType::Float64, true)),
            config_options: args.config_options.clone(),
        };
        // DataFusion's own implementation, not the checked call: its result
        // type varies with the field and is converted below.
        let computed = self
            .inner
            .inner()
            .invoke_with_args(inner_args)?
            .into_array(number_rows)?;
        // The type planned for this call (`return_field_from_args`).
        let output = args.return_field.data_type().clone();
        let computed = match part {
            Part::Years(span) => {
                let interval = matches!(input, DataType::Interval(_));
                let year = cast(&computed, &DataType::Int64)?;
                let spans = year
                    .as_primitive::<Int64Type>()
                    .unary::<_, Int64Type>(|y| years(y, span, interval));
                Arc::new(spans) as ArrayRef
            }
            _ => computed,
        };
        let result: ArrayRef = match (self.result, part) {
            (Returns::Numeric, Part::Epoch) => {
                let seconds = cast(&computed, &DataType::Float64)?;
                let unit = 10f64.powi(i32::from(part.scale(&input)));
                let scaled = seconds
                    .as_primitive::<Float64Type>()
                    .unary::<_, Decimal128Type>(|s| (s * unit).round() as i128);
                Arc::new(scaled.with_data_type(output))
            }
            (Returns::Numeric, _) => {
                // Microseconds at scale `places` are the field's value;
                // whole fields are at scale 0.
                let counts = cast(&computed, &DataType::Int64)?;
                let scaled = counts
                    .as_primitive::<Int64Type>()
                    .unary::<_, Decimal128Type>(i128::from);
                Arc::new(scaled.with_data_type(output))
            }
            (Returns::Float, Part::Micros { places }) => {
                let micros = cast(&computed, &DataType::Float64)?;
                let unit = 10f64.powi(i32::from(places));
                Arc::new(
                    micros
                        .as_primitive::<Float64Type>()
                        .unary::<_, Float64Type>(|m| m / unit),
                )
            }
            (Returns::Float, _) => cast(&computed, &DataType::Float64)?,
        };
        debug_assert_eq!(result.len(), number_rows);
        Ok(ColumnarValue::Array(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_take_postgres_spellings_and_scales() {
        let ts = DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, None);
        let part = |text| Part::parse(text, &ts).unwrap();
        assert_eq!(part("second"), Part::Micros { places: 6 });
        assert_eq!(part("'secs'"), Part::Micros { places: 6 });
        assert_eq!(part("milliseconds"), Part::Micros { places: 3 });
        assert_eq!(part("us"), Part::Micros { places: 0 });
        assert_eq!(part("EPOCH"), Part::Epoch);
        assert_eq!(part("year"), Part::Whole { time_of_day: false });
        assert_eq!(part("hours"), Part::Whole { time_of_day: true });
        assert_eq!(part("isodow"), Part::Whole { time_of_day: false });
        assert_eq!(Part::Epoch.scale(&DataType::Date32), 0);
        assert_eq!(Part::Epoch.scale(&ts), 6);
    }

    #[test]
    fn spans_of_years_count_as_postgres_does() {
        // Dates: no year 0 between 1 BC (0 here) and AD 1.
        let date = |y, span| years(y, span, false);
        assert_eq!(
            [date(2024, 10), date(2024, 100), date(2024, 1000)],
            [202, 21, 3]
        );
        assert_eq!(
            [date(2000, 100), date(2001, 100), date(2000, 1000)],
            [20, 21, 2]
        );
        assert_eq!(
            [date(1, 100), date(0, 100), date(-99, 100), date(-100, 100)],
            [1, -1, -1, -2]
        );
        assert_eq!(
            [date(0, 10), date(-4, 10), date(-9, 10), date(0, 1000)],
            [0, -1, -1, -1]
        );
        // Intervals: the years truncated.
        let interval = |y, span| years(y, span, true);
        assert_eq!(
            [interval(250, 100), interval(-25, 10), interval(-150, 100)],
            [2, -2, -1]
        );
    }

    #[test]
    fn unknown_and_unsupported_parts_are_refused() {
        let unsupported = Part::parse("julian", &DataType::Date32).unwrap_err();
        assert!(
            unsupported.to_string().contains("not supported"),
            "{unsupported}"
        );
        let unknown = Part::parse("nanosecond", &DataType::Date32).unwrap_err();
        assert!(
            unknown.to_string().contains("not recognized for type date"),
            "{unknown}"
        );
    }
}
