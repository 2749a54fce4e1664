//! Time-series tables: `CREATE TABLE m (...) WITH (time_column = 'ts',
//! partition_interval = '1 day', retention = '30 days')`.
//!
//! The options become the table's [`TimeSeriesDef`]; storage then keeps
//! the rows in partitions by time (one Parquet file or more per partition,
//! sorted by time, under `tables/<id>/<partition start>/`), scans skip the
//! partitions a time range rules out, and the leader drops partitions past
//! the retention. What the planner does is read and check the options
//! (and `ALTER TABLE m SET (retention = ...)`), and show them back as
//! PostgreSQL shows a table's storage options, in `pg_class.reloptions`
//! (psql's `\d+` prints them).

use ciab_storage::{ColumnDef, PgType, TimeSeriesDef};
use datafusion::sql::sqlparser::ast::{CreateTableOptions, Expr, SqlOption, Value};

use crate::error::{Error, Result, sqlstate};

/// Partitions of a time series are a day long unless the table says
/// otherwise.
const PARTITION_INTERVAL_DEFAULT_US: i64 = DAY_US;
/// Each partition is at least one segment in memory and one file on disk:
/// shorter partitions than this would make a file of every few rows.
const PARTITION_INTERVAL_MIN_US: i64 = 60 * 1_000_000;
const DAY_US: i64 = 86_400 * 1_000_000;

/// The time-series definition `WITH (...)` gives a new table, if any. The
/// time column becomes NOT NULL, as in TimescaleDB: every row has a
/// partition.
pub(crate) fn from_options(
    options: &CreateTableOptions,
    columns: &mut [ColumnDef],
) -> Result<Option<TimeSeriesDef>> {
    let options = match options {
        CreateTableOptions::None => return Ok(None),
        CreateTableOptions::With(options) => options,
        other => return Err(Error::unsupported(format!("table options {other}"))),
    };
    let options = named(options)?;
    if options.is_empty() {
        return Ok(None);
    }
    let mut time_column = None;
    let mut partition_interval_us = None;
    let mut retention_us = None;
    for (name, value) in options {
        match name.as_str() {
            "time_column" => time_column = Some(text(&name, value)?),
            "partition_interval" => partition_interval_us = Some(interval_us(&name, value)?),
            "retention" => retention_us = Some(retention(value)?),
            _ => return Err(unrecognized(&name)),
        }
    }
    let Some(time_column) = time_column else {
        return Err(Error::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            "partition_interval and retention need a time_column",
        ));
    };
    let column = columns
        .iter_mut()
        .find(|c| c.name == time_column)
        .ok_or_else(|| {
            Error::new(
                sqlstate::UNDEFINED_COLUMN,
                format!("column \"{time_column}\" does not exist"),
            )
        })?;
    if !matches!(
        column.ty,
        PgType::Timestamp | PgType::Timestamptz | PgType::Date
    ) {
        return Err(Error::new(
            sqlstate::DATATYPE_MISMATCH,
            format!(
                "time column \"{time_column}\" has type {}, not timestamp, timestamptz or date",
                column.ty.sql_name()
            ),
        ));
    }
    column.nullable = false;
    let partition_interval_us = partition_interval_us.unwrap_or(PARTITION_INTERVAL_DEFAULT_US);
    if partition_interval_us < PARTITION_INTERVAL_MIN_US {
        return Err(Error::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            "partition_interval must be at least 1 minute",
        ));
    }
    Ok(Some(TimeSeriesDef {
        time_column,
        partition_interval_us,
        retention_us,
    }))
}

/// The retention `ALTER TABLE m SET (retention = ...)` gives a time-series
/// table, if it gives one. The other options shape the partitions already
/// written, so they stay as CREATE TABLE set them.
pub(crate) fn new_retention(options: &[SqlOption]) -> Result<Option<i64>> {
    let mut retention_us = None;
    for (name, value) in named(options)? {
        match name.as_str() {
            "retention" => retention_us = Some(retention(value)?),
            "time_column" | "partition_interval" => {
                return Err(Error::unsupported(format!(
                    "changing the {name} of a time-series table"
                )));
            }
            _ => return Err(unrecognized(&name)),
        }
    }
    Ok(retention_us)
}

/// `name = value` options, names in lower case as PostgreSQL folds them,
/// without PostgreSQL's heap storage parameters.
fn named(options: &[SqlOption]) -> Result<Vec<(String, &Expr)>> {
    let mut named = Vec::new();
    for option in options {
        let SqlOption::KeyValue { key, value } = option else {
            return Err(Error::unsupported(format!("table option {option}")));
        };
        let name = key.value.to_lowercase();
        if !is_heap_parameter(&name) {
            named.push((name, value));
        }
    }
    Ok(named)
}

/// PostgreSQL's storage parameters for its heap and its vacuum, such as
/// the `fillfactor` pgbench gives its tables. They tune how PostgreSQL
/// lays out and cleans pages, which ciab does not have, so they are taken
/// and have no effect.
fn is_heap_parameter(name: &str) -> bool {
    const HEAP_PARAMETERS: &[&str] = &[
        "fillfactor",
        "toast_tuple_target",
        "parallel_workers",
        "user_catalog_table",
        "log_autovacuum_min_duration",
    ];
    HEAP_PARAMETERS.contains(&name)
        || name.starts_with("autovacuum_")
        || name.starts_with("vacuum_")
}

fn unrecognized(name: &str) -> Error {
    Error::new(
        sqlstate::INVALID_PARAMETER_VALUE,
        format!("unrecognized parameter \"{name}\""),
    )
}

fn retention(value: &Expr) -> Result<i64> {
    let retention_us = interval_us("retention", value)?;
    if retention_us <= 0 {
        return Err(Error::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            "retention must be positive",
        ));
    }
    Ok(retention_us)
}

/// An option's text: `'ts'` or `ts`.
fn text(name: &str, value: &Expr) -> Result<String> {
    match value {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Ok(s.clone()),
            _ => Err(invalid_value(name, value)),
        },
        Expr::Identifier(ident) => Ok(crate::names::normalize(ident)),
        _ => Err(invalid_value(name, value)),
    }
}

/// An option's length of time: `'1 day'` or `INTERVAL '1 day'`, in
/// microseconds. Months and years have no fixed length, so they are
/// refused rather than guessed.
fn interval_us(name: &str, value: &Expr) -> Result<i64> {
    let text = match value {
        Expr::Interval(interval) if interval.leading_field.is_none() => {
            self::text(name, &interval.value)?
        }
        value => self::text(name, value)?,
    };
    let interval = ciab_extensions::text_input::parse_interval(&text).ok_or_else(|| {
        Error::new(
            sqlstate::INVALID_DATETIME_FORMAT,
            format!("invalid input syntax for type interval: \"{text}\""),
        )
    })?;
    if interval.months != 0 {
        return Err(Error::unsupported(format!(
            "{name} in months or years (give days instead, such as '365 days')"
        )));
    }
    let micros = i64::from(interval.days) * DAY_US + interval.nanoseconds / 1000;
    Ok(micros)
}

fn invalid_value(name: &str, value: &Expr) -> Error {
    Error::new(
        sqlstate::INVALID_PARAMETER_VALUE,
        format!("invalid value for parameter \"{name}\": {value}"),
    )
}

/// The options as `pg_class.reloptions` lists them: `name=value`.
pub(crate) fn reloptions(ts: &TimeSeriesDef) -> Vec<String> {
    let mut options = vec![
        format!("time_column={}", ts.time_column),
        format!(
            "partition_interval={}",
            interval_text(ts.partition_interval_us)
        ),
    ];
    if let Some(retention_us) = ts.retention_us {
        options.push(format!("retention={}", interval_text(retention_us)));
    }
    options
}

/// A length of time as PostgreSQL prints an interval of days and time.
fn interval_text(micros: i64) -> String {
    debug_assert!(micros > 0, "checked when the table was made");
    let (days, rest) = (micros / DAY_US, micros % DAY_US);
    let mut parts = Vec::new();
    if days > 0 {
        parts.push(format!("{days} day{}", if days == 1 { "" } else { "s" }));
    }
    if rest > 0 {
        let secs = rest / 1_000_000;
        let mut time = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
        if rest % 1_000_000 != 0 {
            let fraction = format!("{:06}", rest % 1_000_000);
            time.push('.');
            time.push_str(fraction.trim_end_matches('0'));
        }
        parts.push(time);
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_print_as_postgresql_prints_them() {
        assert_eq!(interval_text(DAY_US), "1 day");
        assert_eq!(interval_text(30 * DAY_US), "30 days");
        assert_eq!(interval_text(3_600_000_000), "01:00:00");
        assert_eq!(
            interval_text(DAY_US + 90 * 60 * 1_000_000),
            "1 day 01:30:00"
        );
        assert_eq!(interval_text(61_500_000), "00:01:01.5");
    }
}
