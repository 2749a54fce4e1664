//! PostgreSQL's binary format for single values (each type's `typsend`),
//! decoded into Arrow scalars: what drivers send as binary parameters and
//! what `COPY ... FROM STDIN (FORMAT binary)` carries.
//!
//! Values come out as the type the column stores them as (see
//! [`PgType::arrow_type`]), except those ciab stores as text or whose text
//! is checked when stored: numeric, uuid, json and jsonb come out as their
//! PostgreSQL text, which the usual casts and checks then take.

use std::sync::Arc;

use ciab_storage::PgType;
use datafusion::arrow::datatypes::{DataType, Field, IntervalMonthDayNano};
use datafusion::scalar::ScalarValue;

use crate::error::{Error, Result, sqlstate};
use crate::pg_catalog::OID_OID;

/// Days from 1970-01-01 (Arrow's epoch) to 2000-01-01 (PostgreSQL's).
pub const PG_EPOCH_DAYS: i32 = 10_957;
pub const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS as i64 * 86_400_000_000;

/// The version byte that starts a jsonb value's binary form.
const JSONB_VERSION: u8 = 1;

fn invalid(detail: impl std::fmt::Display) -> Error {
    Error::new(
        sqlstate::INVALID_BINARY_REPRESENTATION,
        format!("incorrect binary data format: {detail}"),
    )
}

/// The Arrow type [`decode`] gives for values of `ty`.
pub fn decoded_type(ty: &PgType) -> DataType {
    match ty {
        PgType::Numeric { .. } | PgType::Uuid | PgType::Json | PgType::Jsonb => DataType::Utf8,
        PgType::Array(element) => {
            DataType::List(Arc::new(Field::new("item", decoded_type(element), true)))
        }
        other => other.arrow_type(),
    }
}

/// The element type's OID and the elements (`None` for NULL) of an
/// array's binary form: the number of dimensions, a flag, the element
/// type, each dimension's length and lower bound, then each element's
/// length (-1 for NULL) and bytes. Arrays of more than one dimension are
/// 0A000.
pub fn array_elements(raw: &[u8]) -> Result<(u32, Vec<Option<&[u8]>>)> {
    let malformed = || invalid("malformed array");
    let mut rest = raw;
    let mut take = |n: usize| -> Result<&[u8]> {
        let head = rest.get(..n).ok_or_else(malformed)?;
        rest = &rest[n..];
        Ok(head)
    };
    let int = |bytes: &[u8]| i32::from_be_bytes(bytes.try_into().expect("4 bytes"));
    let dimensions = int(take(4)?);
    let _has_nulls = take(4)?;
    let oid = int(take(4)?) as u32;
    let len = match dimensions {
        0 => 0,
        1 => {
            let len = int(take(4)?);
            let _lower_bound = take(4)?;
            usize::try_from(len).map_err(|_| malformed())?
        }
        _ => {
            return Err(Error::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                "arrays of more than one dimension are not supported",
            ));
        }
    };
    let mut elements = Vec::with_capacity(len.min(raw.len()));
    for _ in 0..len {
        // A negative length is a NULL.
        elements.push(match usize::try_from(int(take(4)?)) {
            Err(_) => None,
            Ok(size) => Some(take(size)?),
        });
    }
    if !rest.is_empty() {
        return Err(malformed());
    }
    Ok((oid, elements))
}

/// Decodes a value whose type is known by its OID alone (a bound
/// parameter's); an `oid` is an OID, and other types ciab does not store
/// are taken as text. Type modifiers do not change a value's binary form.
pub fn decode_oid(raw: &[u8], oid: u32) -> Result<ScalarValue> {
    let types = [
        PgType::Bool,
        PgType::Int2,
        PgType::Int4,
        PgType::Int8,
        PgType::Float4,
        PgType::Float8,
        PgType::Bytea,
        PgType::Date,
        PgType::Time,
        PgType::Timestamp,
        PgType::Timestamptz,
        PgType::Interval,
        PgType::Uuid,
        PgType::Json,
        PgType::Jsonb,
        PgType::Numeric {
            precision: None,
            scale: None,
        },
    ];
    if oid == OID_OID {
        let bytes = raw
            .try_into()
            .map_err(|_| invalid(format!("expected 4 bytes, got {}", raw.len())))?;
        return Ok(ScalarValue::UInt32(Some(u32::from_be_bytes(bytes))));
    }
    let ty = types.into_iter().find(|t| t.oid() == oid);
    decode(raw, &ty.unwrap_or(PgType::Text))
}

/// Decodes one value of `ty` in PostgreSQL's binary format.
pub fn decode(raw: &[u8], ty: &PgType) -> Result<ScalarValue> {
    fn fixed<const N: usize>(raw: &[u8]) -> Result<[u8; N]> {
        raw.try_into()
            .map_err(|_| invalid(format!("expected {N} bytes, got {}", raw.len())))
    }
    let utf8 = |bytes: &[u8]| {
        String::from_utf8(bytes.to_vec())
            .map_err(|_| invalid("invalid byte sequence for encoding \"UTF8\""))
    };
    Ok(match ty {
        PgType::Bool => ScalarValue::Boolean(Some(fixed::<1>(raw)?[0] != 0)),
        PgType::Int2 => ScalarValue::Int16(Some(i16::from_be_bytes(fixed(raw)?))),
        PgType::Int4 => ScalarValue::Int32(Some(i32::from_be_bytes(fixed(raw)?))),
        PgType::Int8 => ScalarValue::Int64(Some(i64::from_be_bytes(fixed(raw)?))),
        PgType::Float4 => ScalarValue::Float32(Some(f32::from_be_bytes(fixed(raw)?))),
        PgType::Float8 => ScalarValue::Float64(Some(f64::from_be_bytes(fixed(raw)?))),
        PgType::Bytea => ScalarValue::Binary(Some(raw.to_vec())),
        PgType::Date => ScalarValue::Date32(Some(i32::from_be_bytes(fixed(raw)?) + PG_EPOCH_DAYS)),
        PgType::Time => ScalarValue::Time64Microsecond(Some(i64::from_be_bytes(fixed(raw)?))),
        PgType::Timestamp | PgType::Timestamptz => {
            let micros = i64::from_be_bytes(fixed(raw)?)
                .checked_add(PG_EPOCH_MICROS)
                .ok_or_else(|| invalid("timestamp out of range"))?;
            let zone = matches!(ty, PgType::Timestamptz).then(|| Arc::from("UTC"));
            ScalarValue::TimestampMicrosecond(Some(micros), zone)
        }
        PgType::Interval => {
            let raw = fixed::<16>(raw)?;
            let micros = i64::from_be_bytes(raw[0..8].try_into().expect("8 bytes"));
            let days = i32::from_be_bytes(raw[8..12].try_into().expect("4 bytes"));
            let months = i32::from_be_bytes(raw[12..16].try_into().expect("4 bytes"));
            ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(
                months,
                days,
                micros
                    .checked_mul(1000)
                    .ok_or_else(|| invalid("interval out of range"))?,
            )))
        }
        PgType::Uuid => {
            let u = fixed::<16>(raw)?;
            let hex: String = u.iter().map(|b| format!("{b:02x}")).collect();
            ScalarValue::Utf8(Some(format!(
                "{}-{}-{}-{}-{}",
                &hex[0..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..32]
            )))
        }
        PgType::Jsonb => match raw.split_first() {
            Some((&JSONB_VERSION, text)) => ScalarValue::Utf8(Some(utf8(text)?)),
            _ => return Err(invalid("unsupported jsonb version number")),
        },
        PgType::Numeric { .. } => ScalarValue::Utf8(Some(
            numeric_text(raw).ok_or_else(|| invalid("bad numeric"))?,
        )),
        PgType::Text | PgType::Varchar(_) | PgType::Bpchar(_) | PgType::Json => {
            ScalarValue::Utf8(Some(utf8(raw)?))
        }
        PgType::Array(element) => {
            let (_, elements) = array_elements(raw)?;
            let items = elements
                .into_iter()
                .map(|e| match e {
                    Some(raw) => decode(raw, element),
                    None => Ok(ScalarValue::try_from(decoded_type(element))?),
                })
                .collect::<Result<Vec<_>>>()?;
            ScalarValue::List(ScalarValue::new_list_nullable(
                &items,
                &decoded_type(element),
            ))
        }
    })
}

/// A numeric's binary form (base-10000 digits with a weight, a sign and a
/// display scale) as its text.
fn numeric_text(raw: &[u8]) -> Option<String> {
    const NUMERIC_NEG: u16 = 0x4000;
    const NUMERIC_NAN: u16 = 0xC000;
    let word =
        |i: usize| -> Option<i16> { Some(i16::from_be_bytes(raw.get(i..i + 2)?.try_into().ok()?)) };
    let ndigits = usize::try_from(word(0)?).ok()?;
    let weight = i32::from(word(2)?);
    let sign = word(4)? as u16;
    let dscale = usize::try_from(word(6)?).ok()?;
    if sign == NUMERIC_NAN {
        return Some("NaN".into());
    }
    if raw.len() != 8 + 2 * ndigits {
        return None;
    }
    let digits: Vec<i16> = (0..ndigits)
        .map(|i| word(8 + 2 * i))
        .collect::<Option<_>>()?;
    let mut int_part = String::new();
    let mut frac_part = String::new();
    for (i, d) in digits.iter().enumerate() {
        if !(0..10_000).contains(d) {
            return None;
        }
        let w = weight - i as i32;
        if w >= 0 {
            int_part.push_str(&if int_part.is_empty() {
                d.to_string()
            } else {
                format!("{d:04}")
            });
        } else {
            frac_part.push_str(&format!("{d:04}"));
        }
    }
    // Groups between the last digit and the decimal point are zeros.
    let last_weight = weight - ndigits as i32 + 1;
    if ndigits > 0 && last_weight > 0 {
        int_part.push_str(&"0000".repeat(last_weight as usize));
    }
    if weight < -1 {
        frac_part = format!("{}{frac_part}", "0000".repeat((-weight - 1) as usize));
    }
    if int_part.is_empty() {
        int_part.push('0');
    }
    while frac_part.len() < dscale {
        frac_part.push('0');
    }
    frac_part.truncate(dscale);
    let sign = if sign == NUMERIC_NEG { "-" } else { "" };
    Some(if frac_part.is_empty() {
        format!("{sign}{int_part}")
    } else {
        format!("{sign}{int_part}.{frac_part}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numerics_decode_to_their_text() {
        // 12345.678: digits 1, 2345, 6780 with weight 1, scale 3.
        let mut raw = Vec::new();
        for word in [3i16, 1, 0, 3, 1, 2345, 6780] {
            raw.extend_from_slice(&word.to_be_bytes());
        }
        let numeric = PgType::Numeric {
            precision: None,
            scale: None,
        };
        assert_eq!(
            decode(&raw, &numeric).unwrap(),
            ScalarValue::Utf8(Some("12345.678".into()))
        );
        // A digit out of base 10000 is refused, not misread.
        raw[12..14].copy_from_slice(&10_000i16.to_be_bytes());
        assert!(decode(&raw, &numeric).is_err());
    }

    #[test]
    fn fixed_width_values_check_their_length() {
        assert_eq!(
            decode(&7i32.to_be_bytes(), &PgType::Int4).unwrap(),
            ScalarValue::Int32(Some(7))
        );
        let e = decode(&[0, 7], &PgType::Int4).unwrap_err();
        assert_eq!(e.sqlstate, sqlstate::INVALID_BINARY_REPRESENTATION);
        assert_eq!(
            decode(&0i32.to_be_bytes(), &PgType::Date).unwrap(),
            ScalarValue::Date32(Some(PG_EPOCH_DAYS))
        );
    }
}
