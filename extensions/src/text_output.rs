//! PostgreSQL's text output for values whose text Rust and Arrow print
//! differently: floats. The wire (text results) and JSON (`to_json` of a
//! float) both print them so.

use std::fmt::Write;

/// PostgreSQL switches float output to exponent form at these exponents.
const FLOAT8_EXPONENT_MAX: i32 = 15;
const FLOAT4_EXPONENT_MAX: i32 = 6;
const FLOAT_EXPONENT_MIN: i32 = -4;

/// A float as PostgreSQL prints a float8 (`single`: a float4): the shortest
/// digits that read back the same, in exponent form (`1e+20`) for very
/// large and very small magnitudes; `NaN`, `Infinity`, `-0`.
pub fn write_float<W: Write>(out: &mut W, v: f64, single: bool) -> std::fmt::Result {
    if v.is_nan() {
        return out.write_str("NaN");
    }
    if v.is_infinite() {
        return out.write_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
    }
    if v == 0.0 {
        return out.write_str(if v.is_sign_negative() { "-0" } else { "0" });
    }
    // Rust's `{:e}` gives the shortest round-tripping digits.
    let sci = if single {
        format!("{:e}", v as f32)
    } else {
        format!("{v:e}")
    };
    let (mantissa, exponent) = sci.split_once('e').expect("exponent form");
    let exponent: i32 = exponent.parse().expect("an integer exponent");
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let exponent_max = if single {
        FLOAT4_EXPONENT_MAX
    } else {
        FLOAT8_EXPONENT_MAX
    };
    if negative {
        out.write_char('-')?;
    }
    if exponent < FLOAT_EXPONENT_MIN || exponent >= exponent_max {
        out.write_str(&digits[..1])?;
        if digits.len() > 1 {
            out.write_char('.')?;
            out.write_str(&digits[1..])?;
        }
        write!(
            out,
            "e{}{:02}",
            if exponent < 0 { '-' } else { '+' },
            exponent.abs()
        )
    } else if exponent < 0 {
        out.write_str("0.")?;
        for _ in 0..(-exponent - 1) {
            out.write_char('0')?;
        }
        out.write_str(&digits)
    } else {
        let int_len = exponent as usize + 1;
        if digits.len() <= int_len {
            out.write_str(&digits)?;
            for _ in digits.len()..int_len {
                out.write_char('0')?;
            }
            Ok(())
        } else {
            out.write_str(&digits[..int_len])?;
            out.write_char('.')?;
            out.write_str(&digits[int_len..])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(v: f64, single: bool) -> String {
        let mut out = String::new();
        write_float(&mut out, v, single).unwrap();
        out
    }

    #[test]
    fn floats_print_like_postgres() {
        assert_eq!(float(0.1, false), "0.1");
        assert_eq!(float(1e20, false), "1e+20");
        assert_eq!(float(1e15, false), "1e+15");
        assert_eq!(float(1e14, false), "100000000000000");
        assert_eq!(float(0.00001, false), "1e-05");
        assert_eq!(float(0.0001, false), "0.0001");
        assert_eq!(float(-2.5, false), "-2.5");
        assert_eq!(float(123456789012345678.0, false), "1.2345678901234568e+17");
        assert_eq!(float(1e6, true), "1e+06");
        assert_eq!(float(100000.0, true), "100000");
        assert_eq!(float(f64::NAN, false), "NaN");
        assert_eq!(float(1.5, false), "1.5");
        assert_eq!(float(3.0, false), "3");
        assert_eq!(float(1.25e-5, false), "1.25e-05");
        assert_eq!(float(123456789012345.0, false), "123456789012345");
        assert_eq!(float(f64::from(1.1f32), true), "1.1");
    }
}
