//! Numeric literals wider than a Decimal128 holds.
//!
//! A literal with a decimal point or an exponent is numeric, a Decimal128
//! of its own precision and scale (see `ciab_extensions::PgNumerics`).
//! One that needs more than 38 digits (`1e300`, forty nines) would be a
//! 256-bit decimal, which ciab does not compute with, or refused outright
//! for an exponent beyond ±128; PostgreSQL's numeric holds it. ciab reads
//! such a literal as float8, as it read every literal with a decimal point
//! before: `1e300::float8` means what it says.

use std::ops::ControlFlow;

use datafusion::arrow::datatypes::DECIMAL128_MAX_PRECISION;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    CastKind, DataType as SqlType, Expr, Statement, Value, visit_expressions_mut,
};

/// Whether `sql` may hold a literal [`rewrite`] changes: an exponent, or
/// more digits in a row than a Decimal128 holds.
pub fn may_rewrite(sql: &str) -> bool {
    let bytes = sql.as_bytes();
    let exponent = bytes
        .windows(2)
        .any(|w| w[0].is_ascii_digit() && w[1].eq_ignore_ascii_case(&b'e'));
    exponent
        || bytes
            .split(|b| !b.is_ascii_digit())
            .any(|run| run.len() > DECIMAL128_MAX_PRECISION as usize)
}

/// Turns the literals of `statement` wider than a Decimal128 into float8
/// casts of their text.
pub fn rewrite(statement: &mut DfStatement) {
    match statement {
        DfStatement::Statement(s) => rewrite_sql(s),
        DfStatement::Explain(explain) => rewrite(&mut explain.statement),
        // DataFusion's statements of its own (CREATE EXTERNAL TABLE) hold
        // no expressions.
        _ => {}
    }
}

fn rewrite_sql(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |e| {
        if let Expr::Value(v) = e
            && let Value::Number(n, _) = &v.value
            && !fits_decimal128(n)
        {
            *e = Expr::Cast {
                kind: CastKind::DoubleColon,
                expr: Box::new(Expr::Value(Value::SingleQuotedString(n.clone()).into())),
                data_type: SqlType::DoublePrecision,
                array: false,
                format: None,
            };
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Whether the number `n` (digits, maybe a point, maybe an exponent) is a
/// Decimal128 of scale 0 or more: at most 38 digits once written out.
fn fits_decimal128(n: &str) -> bool {
    let n = n.replace('_', "");
    let (mantissa, exponent) = match n.find(['e', 'E']) {
        Some(at) => (&n[..at], n[at + 1..].parse::<i64>()),
        None => (n.as_str(), Ok(0)),
    };
    let Ok(exponent) = exponent else {
        // Not a number the parser passes on; DataFusion reports it.
        return true;
    };
    let places = mantissa.find('.').map_or(0, |p| mantissa.len() - p - 1) as i64;
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').len() as i64;
    if significant == 0 {
        return true;
    }
    // The value is significant digits · 10^power.
    let power = exponent - places;
    let precision = match power >= 0 {
        true => significant + power,
        false => significant.max(-power),
    };
    precision <= DECIMAL128_MAX_PRECISION as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_up_to_38_digits_fit() {
        assert!(fits_decimal128("1.5"));
        assert!(fits_decimal128("2e3"));
        assert!(fits_decimal128("1.5e-3"));
        assert!(fits_decimal128("1e37"));
        assert!(fits_decimal128("0e400"));
        assert!(fits_decimal128(&"9".repeat(38)));
        assert!(!fits_decimal128("1e38"));
        assert!(!fits_decimal128("1e300"));
        assert!(!fits_decimal128("1.5e-40"));
        assert!(!fits_decimal128(&format!("{}.5", "9".repeat(38))));
    }

    #[test]
    fn only_exponents_and_long_runs_of_digits_are_looked_at() {
        assert!(may_rewrite("SELECT 1e3"));
        assert!(may_rewrite(&format!("SELECT {}", "1".repeat(39))));
        assert!(!may_rewrite("SELECT 1.5, 'e', x1 FROM t"));
    }
}
