//! PostgreSQL's `numeric` arithmetic on the canonical numeric text jsonb
//! keeps, for the arithmetic of SQL/JSON paths (`$.a * 2`, `.floor()`).
//!
//! A result has the display scale PostgreSQL gives it (`1.5 * 2` is `3.0`,
//! `1 / 3` has twenty places), so the text matches `numeric`'s output.

use num_bigint::{BigInt, Sign};
use num_traits::{Signed, Zero};

use super::value::canonical_numeric;
use crate::error::{Error, Result};

/// `numeric`'s division gives at least this many significant digits.
const NUMERIC_MIN_SIG_DIGITS: i64 = 16;
/// Decimal digits in one of `numeric`'s base-10000 digits.
const DEC_DIGITS: i64 = 4;
const NUMERIC_MAX_DISPLAY_SCALE: i64 = 1000;

pub use crate::error::sqlstate::DIVISION_BY_ZERO;

/// `digits × 10^-scale`.
#[derive(Debug, Clone, PartialEq)]
pub struct Numeric {
    digits: BigInt,
    scale: i64,
}

impl Numeric {
    /// Reads canonical numeric text (`-12.50`).
    pub fn parse(text: &str) -> Numeric {
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        let digits: BigInt = format!("{int}{frac}")
            .parse()
            .unwrap_or_else(|_| panic!("canonical numeric text, got {text:?}"));
        Numeric {
            digits,
            scale: frac.len() as i64,
        }
    }

    /// Reads a float8 as `float8_numeric` does: its shortest text of 15
    /// significant digits (`%.15g`).
    pub fn from_f64(x: f64) -> Result<Numeric> {
        assert!(x.is_finite(), "callers refuse infinities and NaN");
        Ok(Numeric::parse(&canonical_numeric(&format_g15(x))?))
    }

    pub fn from_i64(i: i64) -> Numeric {
        Numeric {
            digits: BigInt::from(i),
            scale: 0,
        }
    }

    /// The canonical text: no exponent, `scale` places.
    pub fn text(&self) -> String {
        let negative = self.digits.sign() == Sign::Minus;
        let mut digits = self.digits.magnitude().to_string();
        let scale = self.scale as usize;
        if digits.len() <= scale {
            digits = format!("{}{digits}", "0".repeat(scale + 1 - digits.len()));
        }
        let (int, frac) = digits.split_at(digits.len() - scale);
        let mut out = String::with_capacity(digits.len() + 2);
        if negative {
            out.push('-');
        }
        out.push_str(int);
        if scale > 0 {
            out.push('.');
            out.push_str(frac);
        }
        out
    }

    fn rescaled(&self, scale: i64) -> BigInt {
        debug_assert!(scale >= self.scale);
        &self.digits * pow10(scale - self.scale)
    }

    pub fn add(&self, other: &Numeric) -> Numeric {
        let scale = self.scale.max(other.scale);
        Numeric {
            digits: self.rescaled(scale) + other.rescaled(scale),
            scale,
        }
    }

    pub fn sub(&self, other: &Numeric) -> Numeric {
        self.add(&other.neg())
    }

    pub fn mul(&self, other: &Numeric) -> Numeric {
        Numeric {
            digits: &self.digits * &other.digits,
            scale: self.scale + other.scale,
        }
    }

    pub fn neg(&self) -> Numeric {
        Numeric {
            digits: -&self.digits,
            scale: self.scale,
        }
    }

    /// Division rounded (half away from zero) to the scale PostgreSQL's
    /// `select_div_scale` picks.
    pub fn div(&self, other: &Numeric) -> Result<Numeric> {
        if other.digits.is_zero() {
            return Err(Error::new(DIVISION_BY_ZERO, "division by zero"));
        }
        let scale = self.div_scale(other);
        // self / other × 10^scale = a × 10^(scale - sa + sb) / b.
        let shift = scale - self.scale + other.scale;
        let (numerator, denominator) = if shift >= 0 {
            (&self.digits * pow10(shift), other.digits.clone())
        } else {
            (self.digits.clone(), &other.digits * pow10(-shift))
        };
        let quotient = &numerator / &denominator;
        let remainder = &numerator % &denominator;
        let twice = remainder.abs() * 2;
        let quotient = if twice >= denominator.abs() {
            // Away from zero: the sign of the exact quotient.
            if (numerator.sign() == Sign::Minus) != (denominator.sign() == Sign::Minus) {
                quotient - 1
            } else {
                quotient + 1
            }
        } else {
            quotient
        };
        Ok(Numeric {
            digits: quotient,
            scale,
        })
    }

    /// The remainder of truncating division, with the larger of the two
    /// scales.
    pub fn rem(&self, other: &Numeric) -> Result<Numeric> {
        if other.digits.is_zero() {
            return Err(Error::new(DIVISION_BY_ZERO, "division by zero"));
        }
        let scale = self.scale.max(other.scale);
        Ok(Numeric {
            digits: self.rescaled(scale) % other.rescaled(scale),
            scale,
        })
    }

    pub fn abs(&self) -> Numeric {
        Numeric {
            digits: self.digits.abs(),
            scale: self.scale,
        }
    }

    pub fn floor(&self) -> Numeric {
        self.to_integer(|q, r| if r.is_negative() { q - 1 } else { q })
    }

    pub fn ceil(&self) -> Numeric {
        self.to_integer(|q, r| if r.is_positive() { q + 1 } else { q })
    }

    pub fn trunc(&self) -> Numeric {
        self.to_integer(|q, _| q)
    }

    fn to_integer(&self, adjust: impl Fn(BigInt, &BigInt) -> BigInt) -> Numeric {
        let unit = pow10(self.scale);
        let q = &self.digits / &unit;
        let r = &self.digits % &unit;
        Numeric {
            digits: adjust(q, &r),
            scale: 0,
        }
    }

    /// The value as an i32, if it is an integer in range.
    pub fn to_i32(&self) -> Option<i32> {
        let t = self.trunc();
        i32::try_from(&t.digits).ok()
    }

    /// PostgreSQL's `select_div_scale`: at least 16 significant digits,
    /// and no fewer places than either operand shows.
    fn div_scale(&self, other: &Numeric) -> i64 {
        let (weight1, first1) = self.first_digit();
        let (weight2, first2) = other.first_digit();
        let mut qweight = weight1 - weight2;
        if first1 <= first2 {
            qweight -= 1;
        }
        (NUMERIC_MIN_SIG_DIGITS - qweight * DEC_DIGITS)
            .max(self.scale)
            .max(other.scale)
            .clamp(0, NUMERIC_MAX_DISPLAY_SCALE)
    }

    /// The weight (power of 10000) of the leading base-10000 digit, and
    /// that digit; (0, 0) for zero.
    fn first_digit(&self) -> (i64, u32) {
        if self.digits.is_zero() {
            return (0, 0);
        }
        let text = self.digits.magnitude().to_string();
        // Power of ten of the leading decimal digit.
        let exponent = text.len() as i64 - 1 - self.scale;
        let weight = exponent.div_euclid(DEC_DIGITS);
        let width = exponent.rem_euclid(DEC_DIGITS) as usize + 1;
        let mut group: String = text.chars().take(width).collect();
        while group.len() < width {
            group.push('0');
        }
        (weight, group.parse().expect("decimal digits"))
    }

    /// Bytes this value takes as a `numeric` datum inside a jsonb value:
    /// a 4-byte varlena header, a 2-byte (short) or 4-byte header, and
    /// 2 bytes per base-10000 digit.
    pub fn datum_bytes(&self) -> usize {
        const NUMERIC_SHORT_DSCALE_MAX: i64 = 63;
        const NUMERIC_SHORT_WEIGHT_MAX: i64 = 63;
        const NUMERIC_SHORT_WEIGHT_MIN: i64 = -64;
        let (weight, ndigits) = if self.digits.is_zero() {
            (0, 0)
        } else {
            let text = self.digits.magnitude().to_string();
            let exponent_high = text.len() as i64 - 1 - self.scale;
            let trailing_zeros = text.bytes().rev().take_while(|b| *b == b'0').count() as i64;
            let exponent_low = -self.scale + trailing_zeros;
            let high = exponent_high.div_euclid(DEC_DIGITS);
            let low = exponent_low.div_euclid(DEC_DIGITS);
            (high, (high - low + 1) as usize)
        };
        let short = self.scale <= NUMERIC_SHORT_DSCALE_MAX
            && (NUMERIC_SHORT_WEIGHT_MIN..=NUMERIC_SHORT_WEIGHT_MAX).contains(&weight);
        4 + if short { 2 } else { 4 } + 2 * ndigits
    }
}

fn pow10(n: i64) -> BigInt {
    assert!(n >= 0, "a power of ten with a negative exponent");
    num_traits::pow(BigInt::from(10), n as usize)
}

/// C's `%.15g`: 15 significant digits, trailing zeros dropped, an exponent
/// when the value is very large or small.
fn format_g15(x: f64) -> String {
    const DIGITS: i32 = 15;
    if x == 0.0 {
        return "0".into();
    }
    let scientific = format!("{:.*e}", (DIGITS - 1) as usize, x);
    let (mantissa, exponent) = scientific.split_once('e').expect("Rust's exponent format");
    let exponent: i32 = exponent.parse().expect("an exponent");
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if !(-4..DIGITS).contains(&exponent) {
        format!("{}e{exponent}", trim(mantissa))
    } else {
        trim(&format!("{:.*}", (DIGITS - 1 - exponent) as usize, x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Numeric {
        Numeric::parse(s)
    }

    #[test]
    fn results_have_postgresqls_display_scale() {
        assert_eq!(n("1.5").mul(&n("2")).text(), "3.0");
        assert_eq!(n("1").add(&n("1.50")).text(), "2.50");
        assert_eq!(
            n("1").div(&n("3")).unwrap().text(),
            "0.33333333333333333333"
        );
        assert_eq!(n("10").div(&n("4")).unwrap().text(), "2.5000000000000000");
        assert_eq!(
            n("2").div(&n("3")).unwrap().text(),
            "0.66666666666666666667"
        );
        assert_eq!(
            n("-2").div(&n("3")).unwrap().text(),
            "-0.66666666666666666667"
        );
        assert_eq!(
            n("12345").div(&n("0.5")).unwrap().text(),
            "24690.000000000000"
        );
        assert_eq!(n("7").rem(&n("-2.5")).unwrap().text(), "2.0");
        assert_eq!(n("-7.5").floor().text(), "-8");
        assert_eq!(n("-7.5").ceil().text(), "-7");
        assert_eq!(n("0.001").sub(&n("1")).text(), "-0.999");
        assert_eq!(n("1").div(&n("0")).unwrap_err().sqlstate, DIVISION_BY_ZERO);
    }

    #[test]
    fn float8_reads_as_fifteen_digits() {
        assert_eq!(Numeric::from_f64(1.23).unwrap().text(), "1.23");
        assert_eq!(Numeric::from_f64(0.1 + 0.2).unwrap().text(), "0.3");
        assert_eq!(
            Numeric::from_f64(1e20).unwrap().text(),
            "100000000000000000000"
        );
        assert_eq!(Numeric::from_f64(1.5e-7).unwrap().text(), "0.00000015");
    }

    #[test]
    fn datum_sizes_follow_base_10000_digits() {
        assert_eq!(n("0").datum_bytes(), 6);
        assert_eq!(n("1").datum_bytes(), 8);
        assert_eq!(n("10000").datum_bytes(), 8);
        assert_eq!(n("12345.678").datum_bytes(), 12);
        assert_eq!(n("0.5").datum_bytes(), 8);
    }
}
