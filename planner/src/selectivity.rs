//! How many rows a filter keeps, and the order it tests its conditions in.
//!
//! DataFusion estimates a filter's rows by interval analysis, which knows
//! numbers and dates compared with constants and joined by AND. Any other
//! condition in the predicate (a string equality, an IN list, an OR, LIKE,
//! two columns compared) makes it assume that a fifth of the rows pass,
//! whatever the rest says. Joins are ordered by these estimates: in TPC-H
//! q12 the line items received in one year and shipped by mail or ship
//! (31 thousand of six million) were taken for 1.2 million, about as many
//! as the 1.5 million orders, and the join hashed the orders.
//!
//! [`EstimateFilters`] runs before DataFusion's join selection and gives
//! each such filter an estimate of its own, the way PostgreSQL's planner
//! does (`clauselist_selectivity`): conditions are independent; the
//! comparisons of a column with constants keep the part of its range
//! between them (from the scan's least and greatest values); an equality
//! keeps one of the column's distinct values; what the statistics cannot
//! tell takes PostgreSQL's defaults.
//!
//! It also orders the conditions. DataFusion's AND tests its right side
//! only on the rows its left side kept, when that is at most a fifth of
//! them, so the condition that keeps the fewest rows goes first. Only
//! conditions that cannot fail (comparisons, IN lists, LIKE and IS NULL,
//! of columns and constants) move, and they move ahead of the others,
//! which keep their order and are tested only on the rows that passed
//! every condition before them ([`guarded`]), as PostgreSQL's are: a
//! guard such as `b <> 0` in `b <> 0 AND a / b > 1` holds.

use std::mem::discriminant;
use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{ColumnStatistics, Result, ScalarValue};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{
    BinaryExpr, CaseExpr, Column, InListExpr, IsNotNullExpr, IsNullExpr, LikeExpr, Literal,
    NotExpr, lit,
};
use datafusion::physical_expr::intervals::utils::check_support;
use datafusion::physical_expr::utils::{conjunction_opt, split_conjunction};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};

/// The share of rows an equality keeps when the column's distinct values
/// are unknown (PostgreSQL's DEFAULT_EQ_SEL).
const EQUAL_SHARE_DEFAULT: f64 = 0.005;
/// The share an inequality keeps when the column's range is unknown or
/// not a number (PostgreSQL's DEFAULT_INEQ_SEL).
pub(crate) const INEQUAL_SHARE_DEFAULT: f64 = 1.0 / 3.0;
/// The share IS NULL keeps when the column's nulls are not counted
/// (PostgreSQL's DEFAULT_UNK_SEL).
const NULL_SHARE_DEFAULT: f64 = 0.005;
/// The share LIKE keeps. PostgreSQL reads it off a column's common values;
/// without them, a pattern is taken to keep a small part, as TPC-H's do
/// (`%green%` keeps one name in twenty).
const MATCH_SHARE_DEFAULT: f64 = 0.1;
/// The share a boolean column keeps alone (PostgreSQL's, without
/// statistics).
const BOOLEAN_SHARE_DEFAULT: f64 = 0.5;

/// Runs before DataFusion's join selection, which reads its estimates
/// (see [`crate::session`]).
#[derive(Debug)]
pub(crate) struct EstimateFilters;

impl PhysicalOptimizerRule for EstimateFilters {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let unknown = f64::from(config.optimizer.default_filter_selectivity) / 100.0;
        plan.transform_up(|node| {
            let Some(filter) = node.downcast_ref::<FilterExec>() else {
                return Ok(Transformed::no(node));
            };
            estimate(filter, unknown)
                .map(|estimated| estimated.map_or(Transformed::no(node), Transformed::yes))
        })
        .data()
    }

    fn name(&self) -> &str {
        "ciab_estimate_filters"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `filter` with its conditions ordered and, where interval analysis
/// cannot read its predicate, this module's estimate of the rows it
/// keeps; `None` when that changes nothing.
fn estimate(filter: &FilterExec, unknown: f64) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let input = filter.input();
    let statistics = StatisticsContext::new().compute(input.as_ref(), &StatisticsArgs::new())?;
    let shares = Shares {
        columns: &statistics.column_statistics,
        rows: statistics.num_rows.get_value().map(|&rows| rows as f64),
        unknown,
    };
    let conditions = split_conjunction(filter.predicate());
    let (safe, failing) = shares.order(&conditions);
    let mut percent = filter.default_selectivity();
    if !check_support(filter.predicate(), &input.schema()) || !failing.is_empty() {
        let share = shares.all(&conditions);
        // An estimate, never a promise: a filter is not taken to keep no
        // rows, which would make the plans above it pay nothing for it.
        percent = (share * 100.0).round().clamp(1.0, 100.0) as u8;
    }
    let moved = safe
        .iter()
        .chain(&failing)
        .zip(&conditions)
        .any(|(a, b)| !Arc::ptr_eq(a, b));
    let guards = !failing.is_empty() && conditions.len() > 1;
    if !moved && !guards && percent == filter.default_selectivity() {
        return Ok(None);
    }
    let predicate = guarded(safe, failing)?;
    let rebuilt = FilterExecBuilder::from(filter)
        .with_predicate(predicate)
        .with_default_selectivity(percent)
        .build()?;
    Ok(Some(Arc::new(rebuilt)))
}

/// The share of its input's rows that `predicate` keeps, when the input
/// has `rows` rows and `columns`' statistics: the estimate a filter gets
/// here, for plans made before the physical plan (see
/// [`crate::join_order`]). `unknown` is what a condition of unknown kind
/// keeps.
pub(crate) fn share(
    predicate: &Arc<dyn PhysicalExpr>,
    columns: &[ColumnStatistics],
    rows: Option<f64>,
    unknown: f64,
) -> f64 {
    let shares = Shares {
        columns,
        rows,
        unknown,
    };
    shares.all(&split_conjunction(predicate))
}

/// A column compared with a constant: `column op value`, the column on
/// the left.
struct Comparison<'a> {
    column: usize,
    op: Operator,
    value: &'a ScalarValue,
}

impl<'a> Comparison<'a> {
    /// `expr` as a comparison of a column with a constant that makes a
    /// range (=, <, <=, >, >=).
    fn of(expr: &'a Arc<dyn PhysicalExpr>) -> Option<Self> {
        let binary = expr.downcast_ref::<BinaryExpr>()?;
        let comparison = Self::sides(binary.left(), *binary.op(), binary.right())?;
        let ranges = matches!(
            comparison.op,
            Operator::Eq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq
        );
        ranges.then_some(comparison)
    }

    /// `left op right` as a column compared with a non-null constant.
    fn sides(
        left: &'a Arc<dyn PhysicalExpr>,
        op: Operator,
        right: &'a Arc<dyn PhysicalExpr>,
    ) -> Option<Self> {
        let (column, value, op) = match (column(left), literal(right)) {
            (Some(column), Some(value)) => (column, value, op),
            _ => (column(right)?, literal(left)?, op.swap()?),
        };
        (!value.is_null()).then_some(Comparison { column, op, value })
    }
}

fn column(expr: &Arc<dyn PhysicalExpr>) -> Option<usize> {
    expr.downcast_ref::<Column>().map(Column::index)
}

fn literal(expr: &Arc<dyn PhysicalExpr>) -> Option<&ScalarValue> {
    expr.downcast_ref::<Literal>().map(Literal::value)
}

/// A list of conditions: a unit of estimate, or a filter's in order.
type Conditions<'e> = Vec<&'e Arc<dyn PhysicalExpr>>;

/// The shares of a filter's input rows that conditions keep.
struct Shares<'a> {
    columns: &'a [ColumnStatistics],
    rows: Option<f64>,
    /// What a condition of unknown kind keeps: DataFusion's default.
    unknown: f64,
}

impl Shares<'_> {
    /// The share of rows that pass all of `conditions`, taken as
    /// independent except for the comparisons of one column, which make
    /// one range.
    fn all(&self, conditions: &[&Arc<dyn PhysicalExpr>]) -> f64 {
        self.units(conditions)
            .iter()
            .map(|unit| self.unit(unit))
            .product()
    }

    /// `conditions` in units of estimate: each column's comparisons with
    /// constants together, in the order of their first, and every other
    /// condition alone.
    fn units<'e>(&self, conditions: &[&'e Arc<dyn PhysicalExpr>]) -> Vec<Conditions<'e>> {
        let mut units: Vec<(Option<usize>, Conditions)> = Vec::new();
        for &condition in conditions {
            let column = Comparison::of(condition).map(|c| c.column);
            match units
                .iter_mut()
                .find(|(c, _)| column.is_some() && *c == column)
            {
                Some((_, unit)) => unit.push(condition),
                None => units.push((column, vec![condition])),
            }
        }
        units.into_iter().map(|(_, unit)| unit).collect()
    }

    fn unit(&self, unit: &[&Arc<dyn PhysicalExpr>]) -> f64 {
        let comparisons: Option<Vec<Comparison>> = unit.iter().map(|c| Comparison::of(c)).collect();
        match (comparisons, unit) {
            (Some(comparisons), _) => self.range(&comparisons),
            (None, [condition]) => self.one(condition),
            (None, _) => unreachable!("only comparisons with constants share a unit"),
        }
    }

    /// The share `expr` keeps.
    fn one(&self, expr: &Arc<dyn PhysicalExpr>) -> f64 {
        if let Some(comparison) = Comparison::of(expr) {
            return self.range(&[comparison]);
        }
        if let Some(binary) = expr.downcast_ref::<BinaryExpr>() {
            let (left, right) = (binary.left(), binary.right());
            return match binary.op() {
                Operator::And => self.all(&split_conjunction(expr)),
                Operator::Or => {
                    let (l, r) = (self.one(left), self.one(right));
                    l + r - l * r
                }
                Operator::NotEq => match Comparison::sides(left, Operator::Eq, right) {
                    Some(equal) => 1.0 - self.range(&[equal]),
                    None => 1.0 - self.equal(left, right),
                },
                Operator::Eq => self.equal(left, right),
                Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq => {
                    INEQUAL_SHARE_DEFAULT
                }
                _ => self.unknown,
            };
        }
        if let Some(list) = expr.downcast_ref::<InListExpr>() {
            let share = self.listed(list).unwrap_or(self.unknown);
            return if list.negated() { 1.0 - share } else { share };
        }
        if let Some(not) = expr.downcast_ref::<NotExpr>() {
            return 1.0 - self.one(not.arg());
        }
        if let Some(is_null) = expr.downcast_ref::<IsNullExpr>() {
            return self.nulls(is_null.arg());
        }
        if let Some(is_not_null) = expr.downcast_ref::<IsNotNullExpr>() {
            return 1.0 - self.nulls(is_not_null.arg());
        }
        if let Some(like) = expr.downcast_ref::<LikeExpr>() {
            return if like.negated() {
                1.0 - MATCH_SHARE_DEFAULT
            } else {
                MATCH_SHARE_DEFAULT
            };
        }
        if let Some(value) = literal(expr) {
            return if value == &ScalarValue::Boolean(Some(true)) {
                1.0
            } else {
                0.0
            };
        }
        if column(expr).is_some() {
            return BOOLEAN_SHARE_DEFAULT;
        }
        self.unknown
    }

    /// The share `left = right` keeps when it is not a column against a
    /// constant: one of the more varied side's values.
    fn equal(&self, left: &Arc<dyn PhysicalExpr>, right: &Arc<dyn PhysicalExpr>) -> f64 {
        let distinct = [left, right]
            .into_iter()
            .filter_map(|side| self.distinct(column(side)?))
            .reduce(f64::max);
        distinct.map_or(EQUAL_SHARE_DEFAULT, |d| 1.0 / d)
    }

    /// The share `column IN (constants)` keeps, if it is that.
    fn listed(&self, list: &InListExpr) -> Option<f64> {
        let column = column(list.expr())?;
        let values: Vec<&ScalarValue> = list.list().iter().map(literal).collect::<Option<_>>()?;
        let share: f64 = values
            .into_iter()
            .filter(|value| !value.is_null())
            .map(|value| {
                self.range(&[Comparison {
                    column,
                    op: Operator::Eq,
                    value,
                }])
            })
            .sum();
        Some(share.min(1.0))
    }

    fn nulls(&self, expr: &Arc<dyn PhysicalExpr>) -> f64 {
        let counted = column(expr).and_then(|c| {
            let nulls = *self.columns.get(c)?.null_count.get_value()? as f64;
            Some(nulls / self.rows.filter(|&rows| rows > 0.0)?)
        });
        counted.unwrap_or(NULL_SHARE_DEFAULT)
    }

    fn distinct(&self, column: usize) -> Option<f64> {
        let distinct = *self.columns.get(column)?.distinct_count.get_value()?;
        (distinct > 0).then_some(distinct as f64)
    }

    /// The share that `comparisons`, all of one column, keep together.
    fn range(&self, comparisons: &[Comparison]) -> f64 {
        let Some(first) = comparisons.first() else {
            return 1.0;
        };
        let statistics = self.columns.get(first.column);
        let min = statistics.and_then(|s| s.min_value.get_value());
        let max = statistics.and_then(|s| s.max_value.get_value());
        let admits = |value: &ScalarValue| {
            comparisons.iter().all(|c| c.admits(value))
                && min.is_none_or(|min| Comparison::ordered(min, value, Operator::LtEq))
                && max.is_none_or(|max| Comparison::ordered(value, max, Operator::LtEq))
        };
        if let Some(equal) = comparisons.iter().find(|c| c.op == Operator::Eq) {
            return if admits(equal.value) {
                self.distinct(first.column)
                    .map_or(EQUAL_SHARE_DEFAULT, |d| 1.0 / d)
            } else {
                0.0
            };
        }
        let numbers = (|| {
            let (min, max) = (min?, max?);
            let same = |v: &ScalarValue| discriminant(v) == discriminant(min);
            if !same(max) || !comparisons.iter().all(|c| same(c.value)) {
                return None;
            }
            let (mut low, mut high) = (number(min)?, number(max)?);
            let width = high - low;
            for c in comparisons {
                let value = number(c.value)?;
                match c.op {
                    Operator::Gt | Operator::GtEq => low = low.max(value),
                    _ => high = high.min(value),
                }
            }
            Some(if width > 0.0 {
                ((high - low) / width).clamp(0.0, 1.0)
            } else if low <= high {
                1.0
            } else {
                0.0
            })
        })();
        numbers.unwrap_or_else(|| INEQUAL_SHARE_DEFAULT.powi(comparisons.len() as i32))
    }
}

impl Comparison<'_> {
    /// Whether `value` passes this comparison; yes when the two cannot be
    /// compared.
    fn admits(&self, value: &ScalarValue) -> bool {
        Self::ordered(value, self.value, self.op)
    }

    /// Whether `left op right` holds; yes when the two cannot be compared.
    fn ordered(left: &ScalarValue, right: &ScalarValue, op: Operator) -> bool {
        let Some(order) = left.partial_cmp(right) else {
            return true;
        };
        match op {
            Operator::Eq => order.is_eq(),
            Operator::Lt => order.is_lt(),
            Operator::LtEq => order.is_le(),
            Operator::Gt => order.is_gt(),
            Operator::GtEq => order.is_ge(),
            _ => true,
        }
    }
}

/// `value` on a number line, for the kinds whose ranges have a width.
fn number(value: &ScalarValue) -> Option<f64> {
    use ScalarValue as S;
    Some(match value {
        S::Int8(v) => f64::from((*v)?),
        S::Int16(v) => f64::from((*v)?),
        S::Int32(v) | S::Date32(v) => f64::from((*v)?),
        S::Int64(v)
        | S::Date64(v)
        | S::TimestampSecond(v, _)
        | S::TimestampMillisecond(v, _)
        | S::TimestampMicrosecond(v, _)
        | S::TimestampNanosecond(v, _) => (*v)? as f64,
        S::UInt8(v) => f64::from((*v)?),
        S::UInt16(v) => f64::from((*v)?),
        S::UInt32(v) => f64::from((*v)?),
        S::UInt64(v) => (*v)? as f64,
        S::Float32(v) => f64::from((*v)?),
        S::Float64(v) => (*v)?,
        S::Decimal128(v, _, scale) => (*v)? as f64 / 10f64.powi(i32::from(*scale)),
        _ => return None,
    })
}

impl Shares<'_> {
    /// `conditions` in the order to test them: those that cannot fail, the
    /// unit that keeps the fewest rows foremost, and then those that can,
    /// in their order. A volatile one (`nextval()`) is a function, which
    /// can fail, so it runs on the rows that passed the comparisons, as in
    /// PostgreSQL, which tests cheaper conditions first.
    fn order<'e>(
        &self,
        conditions: &[&'e Arc<dyn PhysicalExpr>],
    ) -> (Conditions<'e>, Conditions<'e>) {
        let (safe, failing): (Vec<_>, Vec<_>) =
            conditions.iter().copied().partition(|c| cannot_fail(c));
        let mut units: Vec<(f64, Conditions)> = self
            .units(&safe)
            .into_iter()
            .map(|unit| (self.unit(&unit), unit))
            .collect();
        units.sort_by(|a, b| a.0.total_cmp(&b.0));
        let safe = units.into_iter().flat_map(|(_, unit)| unit).collect();
        (safe, failing)
    }
}

/// The conjunction of `safe` and `failing`, each condition that can fail
/// tested only on the rows all before it kept, as PostgreSQL tests a
/// WHERE clause's conditions in turn: `b <> 0 AND a / b > 1` divides no
/// row by zero. DataFusion's AND tests its right side on every row when
/// its left keeps more than a fifth of them; a CASE tests its THEN only
/// where its WHEN holds. A WHERE keeps no row whose condition is false or
/// null, so `CASE WHEN x THEN y ELSE false END` keeps the rows `x AND y`
/// does.
fn guarded(safe: Conditions, failing: Conditions) -> Result<Arc<dyn PhysicalExpr>> {
    let mut predicate = conjunction_opt(safe.into_iter().cloned());
    for condition in failing {
        predicate = Some(match predicate {
            None => condition.clone(),
            Some(before) => Arc::new(CaseExpr::try_new(
                None,
                vec![(before, condition.clone())],
                Some(lit(false)),
            )?),
        });
    }
    Ok(predicate.expect("a filter has a condition"))
}

/// Whether evaluating `expr` cannot raise an error: comparisons and
/// tests of columns and constants.
fn cannot_fail(expr: &Arc<dyn PhysicalExpr>) -> bool {
    if column(expr).is_some() || literal(expr).is_some() {
        return true;
    }
    if let Some(binary) = expr.downcast_ref::<BinaryExpr>() {
        let op = *binary.op();
        let tests =
            ciab_extensions::is_comparison(op) || matches!(op, Operator::And | Operator::Or);
        return tests && cannot_fail(binary.left()) && cannot_fail(binary.right());
    }
    if let Some(list) = expr.downcast_ref::<InListExpr>() {
        return cannot_fail(list.expr()) && list.list().iter().all(|v| literal(v).is_some());
    }
    if let Some(like) = expr.downcast_ref::<LikeExpr>() {
        return cannot_fail(like.expr()) && literal(like.pattern()).is_some();
    }
    if let Some(not) = expr.downcast_ref::<NotExpr>() {
        return cannot_fail(not.arg());
    }
    if let Some(is_null) = expr.downcast_ref::<IsNullExpr>() {
        return cannot_fail(is_null.arg());
    }
    if let Some(is_not_null) = expr.downcast_ref::<IsNotNullExpr>() {
        return cannot_fail(is_not_null.arg());
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::stats::Precision;
    use datafusion::datasource::memory::MemorySourceConfig;
    use datafusion::physical_expr::expressions::{binary, col, in_list, lit};

    /// `n` (0 to 100) and `s` (seven strings), and `m` (n again).
    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("n", DataType::Int32, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("m", DataType::Int32, true),
        ])
    }

    fn columns() -> Vec<ColumnStatistics> {
        let n = ColumnStatistics {
            min_value: Precision::Inexact(ScalarValue::Int32(Some(0))),
            max_value: Precision::Inexact(ScalarValue::Int32(Some(100))),
            distinct_count: Precision::Inexact(101),
            ..ColumnStatistics::new_unknown()
        };
        let s = ColumnStatistics {
            min_value: Precision::Inexact(ScalarValue::from("a")),
            max_value: Precision::Inexact(ScalarValue::from("g")),
            distinct_count: Precision::Inexact(7),
            ..ColumnStatistics::new_unknown()
        };
        vec![n.clone(), s, n]
    }

    fn expr(left: &str, op: Operator, right: Arc<dyn PhysicalExpr>) -> Arc<dyn PhysicalExpr> {
        binary(col(left, &schema()).unwrap(), op, right, &schema()).unwrap()
    }

    fn and(conditions: Vec<Arc<dyn PhysicalExpr>>) -> Arc<dyn PhysicalExpr> {
        datafusion::physical_expr::utils::conjunction(conditions)
    }

    fn or(left: Arc<dyn PhysicalExpr>, right: Arc<dyn PhysicalExpr>) -> Arc<dyn PhysicalExpr> {
        binary(left, Operator::Or, right, &schema()).unwrap()
    }

    fn share(predicate: &Arc<dyn PhysicalExpr>) -> f64 {
        let columns = columns();
        let shares = Shares {
            columns: &columns,
            rows: Some(1000.0),
            unknown: 0.2,
        };
        shares.all(&split_conjunction(predicate))
    }

    fn assert_near(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() < 1e-9,
            "{actual} where {expected} was expected"
        );
    }

    #[test]
    fn comparisons_of_one_column_make_one_range() {
        let range = and(vec![
            expr("n", Operator::GtEq, lit(10)),
            expr("n", Operator::Lt, lit(30)),
        ]);
        assert_near(share(&range), 0.2);
        // The constant on the left reads the same.
        let flipped = and(vec![
            binary(
                lit(10),
                Operator::LtEq,
                col("n", &schema()).unwrap(),
                &schema(),
            )
            .unwrap(),
            expr("n", Operator::Lt, lit(30)),
        ]);
        assert_near(share(&flipped), 0.2);
        // Bounds that exclude each other, or the column's range, keep nothing.
        let empty = and(vec![
            expr("n", Operator::Gt, lit(50)),
            expr("n", Operator::Lt, lit(40)),
        ]);
        assert_near(share(&empty), 0.0);
        assert_near(share(&expr("n", Operator::Eq, lit(500))), 0.0);
        // Two columns are independent.
        let both = and(vec![
            expr("n", Operator::Lt, lit(50)),
            expr("m", Operator::Lt, lit(20)),
        ]);
        assert_near(share(&both), 0.1);
    }

    #[test]
    fn equalities_keep_one_distinct_value() {
        assert_near(share(&expr("s", Operator::Eq, lit("c"))), 1.0 / 7.0);
        assert_near(share(&expr("s", Operator::NotEq, lit("c"))), 6.0 / 7.0);
        let listed = |negated| {
            in_list(
                col("s", &schema()).unwrap(),
                vec![lit("c"), lit("d")],
                &negated,
                &schema(),
            )
            .unwrap()
        };
        assert_near(share(&listed(false)), 2.0 / 7.0);
        assert_near(share(&listed(true)), 5.0 / 7.0);
        let either = or(
            expr("s", Operator::Eq, lit("c")),
            expr("s", Operator::Eq, lit("d")),
        );
        assert_near(share(&either), 2.0 / 7.0 - 1.0 / 49.0);
        // A range of strings has no width: PostgreSQL's default.
        assert_near(share(&expr("s", Operator::Lt, lit("c"))), 1.0 / 3.0);
        // Two columns compared: one of the more varied one's values.
        let columns = expr("n", Operator::Eq, col("s", &schema()).unwrap());
        assert_near(share(&columns), 1.0 / 101.0);
    }

    /// TPC-H q12's predicate, as its query writes it.
    fn q12() -> Vec<Arc<dyn PhysicalExpr>> {
        vec![
            or(
                expr("s", Operator::Eq, lit("c")),
                expr("s", Operator::Eq, lit("d")),
            ),
            expr("n", Operator::Gt, col("m", &schema()).unwrap()),
            expr("n", Operator::GtEq, lit(10)),
            expr("n", Operator::Lt, lit(30)),
        ]
    }

    fn ordered(conditions: Vec<Arc<dyn PhysicalExpr>>) -> String {
        let columns = columns();
        let shares = Shares {
            columns: &columns,
            rows: Some(1000.0),
            unknown: 0.2,
        };
        let predicate = and(conditions);
        let (safe, failing) = shares.order(&split_conjunction(&predicate));
        guarded(safe, failing).unwrap().to_string()
    }

    #[test]
    fn the_condition_that_keeps_fewest_rows_goes_first() {
        assert_eq!(
            ordered(q12()),
            "n@0 >= 10 AND n@0 < 30 AND (s@1 = c OR s@1 = d) AND n@0 > m@2"
        );
    }

    /// `n > 100 / m`, which fails where `m` is 0.
    fn divided_alone() -> Arc<dyn PhysicalExpr> {
        expr(
            "n",
            Operator::Gt,
            binary(
                lit(100),
                Operator::Divide,
                col("m", &schema()).unwrap(),
                &schema(),
            )
            .unwrap(),
        )
    }

    #[test]
    fn conditions_that_can_fail_go_last_tested_where_all_before_held() {
        let mut conditions = vec![divided_alone()];
        conditions.extend(q12());
        assert_eq!(
            ordered(conditions),
            "CASE WHEN n@0 >= 10 AND n@0 < 30 AND (s@1 = c OR s@1 = d) AND n@0 > m@2 \
             THEN n@0 > 100 / m@2 ELSE false END"
        );
        // Alone, a condition that can fail needs no guard.
        assert_eq!(ordered(vec![divided_alone()]), "n@0 > 100 / m@2");
    }

    #[test]
    fn a_filter_interval_analysis_cannot_read_takes_this_estimate() {
        let batch = RecordBatch::try_new(
            Arc::new(schema()),
            vec![
                Arc::new(Int32Array::from(vec![1, 2, 3])),
                Arc::new(StringArray::from(vec!["a", "b", "c"])),
                Arc::new(Int32Array::from(vec![1, 2, 3])),
            ],
        )
        .unwrap();
        let scan =
            MemorySourceConfig::try_new_exec(&[vec![batch]], Arc::new(schema()), None).unwrap();
        let filter = |predicate| FilterExec::try_new(predicate, scan.clone()).unwrap();
        // An equality without statistics (0.005) and a LIKE (0.1): 1%, the
        // least a filter is given.
        let like = Arc::new(LikeExpr::new(
            false,
            false,
            col("s", &schema()).unwrap(),
            lit("%b%"),
        ));
        let strings = filter(and(vec![expr("s", Operator::Eq, lit("b")), like]));
        let estimated = estimate(&strings, 0.2).unwrap().expect("a new estimate");
        let estimated = estimated.downcast_ref::<FilterExec>().unwrap();
        assert_eq!(estimated.default_selectivity(), 1);
        // Interval analysis reads numbers compared with constants itself.
        let numbers = filter(expr("n", Operator::Lt, lit(2)));
        assert!(estimate(&numbers, 0.2).unwrap().is_none());
    }
}
