//! Values on the wire: Arrow columns to PostgreSQL's text and binary
//! formats, and bound parameters back to Arrow scalars.

use std::fmt::Write as _;
use std::num::IntErrorKind;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use ciab_extensions::text_output::{
    write_date, write_float, write_fraction, write_time, write_timestamp,
};
use ciab_planner::binary::{PG_EPOCH_DAYS, PG_EPOCH_MICROS};
use ciab_planner::{
    ARRAY_TAG_SUFFIX, Error, OID_TYPE, PG_CHAR_LENGTH_METADATA_KEY, PG_TYPE_METADATA_KEY, sqlstate,
};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Field, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, IntervalMonthDayNano, IntervalMonthDayNanoType, IntervalUnit, Time64MicrosecondType,
    TimeUnit, TimestampMicrosecondType, UInt32Type,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::scalar::ScalarValue;
use pgwire::api::Type;
use pgwire::messages::data::DataRow;

/// The Arrow type a column is sent as, and the PostgreSQL type it announces.
pub fn wire_type(field: &Field) -> (DataType, Type) {
    let tag = field
        .metadata()
        .get(PG_TYPE_METADATA_KEY)
        .map(String::as_str);
    match field.data_type() {
        DataType::Boolean => (DataType::Boolean, Type::BOOL),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => (DataType::Int16, Type::INT2),
        DataType::Int32 | DataType::UInt16 => (DataType::Int32, Type::INT4),
        DataType::Int64 => (DataType::Int64, Type::INT8),
        oid if *oid == OID_TYPE => (OID_TYPE, Type::OID),
        DataType::UInt64 => (DataType::Decimal128(20, 0), Type::NUMERIC),
        DataType::Float16 | DataType::Float32 => (DataType::Float32, Type::FLOAT4),
        DataType::Float64 => (DataType::Float64, Type::FLOAT8),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) => {
            (DataType::Decimal128((*p).min(38), *s), Type::NUMERIC)
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => (
            DataType::Utf8,
            match tag {
                Some("varchar") => Type::VARCHAR,
                Some("bpchar") => Type::BPCHAR,
                Some("uuid") => Type::UUID,
                Some("json") => Type::JSON,
                Some("jsonb") => Type::JSONB,
                _ => Type::TEXT,
            },
        ),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => (DataType::Binary, Type::BYTEA),
        DataType::Date32 | DataType::Date64 => (DataType::Date32, Type::DATE),
        DataType::Time32(_) | DataType::Time64(_) => {
            (DataType::Time64(TimeUnit::Microsecond), Type::TIME)
        }
        DataType::Timestamp(_, None) => (
            DataType::Timestamp(TimeUnit::Microsecond, None),
            Type::TIMESTAMP,
        ),
        DataType::Timestamp(_, Some(_)) => (
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Type::TIMESTAMPTZ,
        ),
        DataType::Interval(_) | DataType::Duration(_) => (
            DataType::Interval(IntervalUnit::MonthDayNano),
            Type::INTERVAL,
        ),
        DataType::Dictionary(_, value) => {
            wire_type(&Field::new(field.name(), (**value).clone(), true))
        }
        DataType::List(element) | DataType::LargeList(element) => {
            let (element_arrow, element_ty) = wire_type(&element_field(field, element));
            let vector = match tag {
                Some("int2vector") => Some(Type::INT2_VECTOR),
                Some("oidvector") => Some(Type::OID_VECTOR),
                _ => None,
            };
            let element_field = Arc::new(Field::new(element.name(), element_arrow.clone(), true));
            if let Some(ty) = vector {
                return (DataType::List(element_field), ty);
            }
            match array_type(&element_ty) {
                Some(ty) => (
                    DataType::List(Arc::new(Field::new(element.name(), element_arrow, true))),
                    ty,
                ),
                None => (field.data_type().clone(), Type::TEXT),
            }
        }
        // A row value (`ROW(1, 'a')`, a recursive query's CYCLE path): its
        // fields are encoded each as its own type.
        DataType::Struct(_) => (field.data_type().clone(), Type::RECORD),
        // Anything else travels as its text rendering.
        other => (other.clone(), Type::TEXT),
    }
}

/// An array's element field with the element type's tags, which an array
/// column's field carries for it (`varchar[]`, see `PgType::field`).
fn element_field(array: &Field, element: &Field) -> Field {
    let metadata = array.metadata();
    match metadata
        .get(PG_TYPE_METADATA_KEY)
        .and_then(|t| t.strip_suffix(ARRAY_TAG_SUFFIX))
    {
        Some(tag) => {
            let mut metadata = metadata.clone();
            metadata.insert(PG_TYPE_METADATA_KEY.to_string(), tag.to_string());
            element.clone().with_metadata(metadata)
        }
        None => element.clone(),
    }
}

/// `int2vector` and `oidvector`: arrays with their own text form.
fn is_vector(ty: &Type) -> bool {
    *ty == Type::INT2_VECTOR || *ty == Type::OID_VECTOR
}

/// The one-dimensional array type of an element type.
fn array_type(element: &Type) -> Option<Type> {
    Some(match *element {
        Type::BOOL => Type::BOOL_ARRAY,
        Type::INT2 => Type::INT2_ARRAY,
        Type::INT4 => Type::INT4_ARRAY,
        Type::INT8 => Type::INT8_ARRAY,
        Type::OID => Type::OID_ARRAY,
        Type::FLOAT4 => Type::FLOAT4_ARRAY,
        Type::FLOAT8 => Type::FLOAT8_ARRAY,
        Type::NUMERIC => Type::NUMERIC_ARRAY,
        Type::TEXT => Type::TEXT_ARRAY,
        Type::VARCHAR => Type::VARCHAR_ARRAY,
        Type::BPCHAR => Type::BPCHAR_ARRAY,
        Type::BYTEA => Type::BYTEA_ARRAY,
        Type::DATE => Type::DATE_ARRAY,
        Type::TIME => Type::TIME_ARRAY,
        Type::TIMESTAMP => Type::TIMESTAMP_ARRAY,
        Type::TIMESTAMPTZ => Type::TIMESTAMPTZ_ARRAY,
        Type::INTERVAL => Type::INTERVAL_ARRAY,
        Type::UUID => Type::UUID_ARRAY,
        Type::JSON => Type::JSON_ARRAY,
        Type::JSONB => Type::JSONB_ARRAY,
        Type::RECORD => Type::RECORD_ARRAY,
        _ => return None,
    })
}

/// One column of a batch, ready to encode.
pub struct ColumnCodec {
    array: ArrayRef,
    /// Which rows are NULL, as the values mean it: a `NullArray` (`SELECT
    /// NULL`) has no validity buffer, yet every row of it is NULL.
    nulls: Option<NullBuffer>,
    ty: Type,
    binary: bool,
    /// Unconstrained numeric: trailing zeros of the fixed storage scale go.
    trim_numeric: bool,
    /// `char(n)`: the n characters its value, kept without trailing blanks,
    /// is padded back to.
    char_length: Option<usize>,
    /// For an array column: the codec of all its elements, in one array.
    elements: Option<Box<ColumnCodec>>,
    /// For a record column: the codec of each of its fields.
    fields: Vec<ColumnCodec>,
}

impl ColumnCodec {
    pub fn new(array: &ArrayRef, field: &Field, binary: bool) -> Result<Self, Error> {
        let (arrow_type, ty) = wire_type(field);
        let array = if ty == Type::TEXT && !matches!(arrow_type, DataType::Utf8) {
            array.clone()
        } else if array.data_type() != &arrow_type {
            cast(array, &arrow_type)?
        } else {
            array.clone()
        };
        let trim_numeric = field
            .metadata()
            .get(PG_TYPE_METADATA_KEY)
            .map(String::as_str)
            == Some("numeric")
            || !matches!(
                field.data_type(),
                DataType::Decimal128(..) | DataType::Decimal32(..) | DataType::Decimal64(..)
            );
        let char_length = (ty == Type::BPCHAR)
            .then(|| field.metadata().get(PG_CHAR_LENGTH_METADATA_KEY))
            .flatten()
            .and_then(|n| n.parse().ok());
        let elements = match (field.data_type(), array.data_type()) {
            (DataType::List(declared) | DataType::LargeList(declared), DataType::List(_)) => {
                let element = element_field(field, declared);
                if array_type(&wire_type(&element).1).as_ref() == Some(&ty) || is_vector(&ty) {
                    let values = array.as_list::<i32>().values();
                    Some(Box::new(ColumnCodec::new(values, &element, binary)?))
                } else {
                    None
                }
            }
            _ => None,
        };
        let fields = match array.data_type() {
            DataType::Struct(fields) => fields
                .iter()
                .zip(array.as_struct().columns())
                .map(|(field, values)| ColumnCodec::new(values, field, binary))
                .collect::<Result<_, _>>()?,
            _ => Vec::new(),
        };
        Ok(ColumnCodec {
            nulls: array.logical_nulls(),
            array,
            ty,
            binary,
            trim_numeric,
            char_length,
            elements,
            fields,
        })
    }

    /// Appends the value at `row` as a length-prefixed field: a DataRow's
    /// and binary COPY's form.
    pub fn write(&self, row: usize, out: &mut BytesMut) -> Result<(), Error> {
        if self.is_null(row) {
            out.put_i32(-1);
            return Ok(());
        }
        let start = out.len();
        out.put_i32(0);
        self.write_value(row, out)?;
        let len = (out.len() - start - 4) as i32;
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    pub fn is_null(&self, row: usize) -> bool {
        self.nulls.as_ref().is_some_and(|n| n.is_null(row))
    }

    /// Appends the value at `row`, which is not NULL, in the codec's format.
    pub fn write_value(&self, row: usize, out: &mut BytesMut) -> Result<(), Error> {
        debug_assert!(!self.is_null(row), "NULL has no value to write");
        if self.binary {
            self.write_binary(row, out)
        } else {
            self.write_text(row, out)
        }
    }

    /// Where an array row's elements lie in the elements' codec.
    fn element_range(&self, row: usize) -> (usize, usize) {
        let offsets = self.array.as_list::<i32>().value_offsets();
        (offsets[row] as usize, offsets[row + 1] as usize)
    }

    /// PostgreSQL's array output: `{1,2,NULL}`, `{"a b","say \"hi\""}`;
    /// a vector's is `1 2`.
    fn write_array_text(
        &self,
        elements: &ColumnCodec,
        row: usize,
        out: &mut BytesMut,
    ) -> Result<(), Error> {
        let (start, end) = self.element_range(row);
        if is_vector(&self.ty) {
            for i in start..end {
                if i > start {
                    out.put_u8(b' ');
                }
                elements.write_text(i, out)?;
            }
            return Ok(());
        }
        out.put_u8(b'{');
        let mut text = BytesMut::new();
        for i in start..end {
            if i > start {
                out.put_u8(b',');
            }
            if elements.is_null(i) {
                out.put_slice(b"NULL");
                continue;
            }
            text.clear();
            elements.write_text(i, &mut text)?;
            let null = text.eq_ignore_ascii_case(b"null");
            put_quoted(out, &text, b"{},\"\\", null, Escape::Backslash);
        }
        out.put_u8(b'}');
        Ok(())
    }

    /// The binary array format: dimensions, a NULL flag, the element type,
    /// then each element as a length-prefixed field.
    fn write_array_binary(
        &self,
        elements: &ColumnCodec,
        row: usize,
        out: &mut BytesMut,
    ) -> Result<(), Error> {
        let (start, end) = self.element_range(row);
        let dimensions = i32::from(end > start);
        out.put_i32(dimensions);
        out.put_i32(i32::from((start..end).any(|i| elements.is_null(i))));
        out.put_u32(elements.ty.oid());
        if dimensions == 1 {
            out.put_i32((end - start) as i32);
            out.put_i32(1);
        }
        for i in start..end {
            elements.write(i, out)?;
        }
        Ok(())
    }

    /// PostgreSQL's record output: `(1,"a b",)`, a NULL field left empty.
    fn write_record_text(&self, row: usize, out: &mut BytesMut) -> Result<(), Error> {
        out.put_u8(b'(');
        let mut text = BytesMut::new();
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                out.put_u8(b',');
            }
            if field.is_null(row) {
                continue;
            }
            text.clear();
            field.write_text(row, &mut text)?;
            put_quoted(out, &text, b"(),\"\\", false, Escape::Double);
        }
        out.put_u8(b')');
        Ok(())
    }

    /// The binary record format: the number of fields, then each field's
    /// type and value as a length-prefixed field.
    fn write_record_binary(&self, row: usize, out: &mut BytesMut) -> Result<(), Error> {
        out.put_i32(self.fields.len() as i32);
        for field in &self.fields {
            out.put_u32(field.ty.oid());
            field.write(row, out)?;
        }
        Ok(())
    }

    fn write_text(&self, row: usize, out: &mut BytesMut) -> Result<(), Error> {
        if let Some(elements) = &self.elements {
            return self.write_array_text(elements, row, out);
        }
        if self.ty == Type::RECORD {
            return self.write_record_text(row, out);
        }
        let a = &self.array;
        match self.ty {
            Type::BOOL => out.put_slice(if a.as_boolean().value(row) {
                b"t"
            } else {
                b"f"
            }),
            Type::INT2 => {
                write!(out, "{}", a.as_primitive::<Int16Type>().value(row)).expect("infallible")
            }
            Type::INT4 => {
                write!(out, "{}", a.as_primitive::<Int32Type>().value(row)).expect("infallible")
            }
            Type::INT8 => {
                write!(out, "{}", a.as_primitive::<Int64Type>().value(row)).expect("infallible")
            }
            Type::OID => {
                write!(out, "{}", a.as_primitive::<UInt32Type>().value(row)).expect("infallible")
            }
            Type::FLOAT4 => write_float(
                out,
                f64::from(a.as_primitive::<Float32Type>().value(row)),
                true,
            )
            .expect("infallible"),
            Type::FLOAT8 => write_float(out, a.as_primitive::<Float64Type>().value(row), false)
                .expect("infallible"),
            Type::NUMERIC => {
                let DataType::Decimal128(_, scale) = a.data_type() else {
                    unreachable!("numeric columns are Decimal128")
                };
                let text = decimal_text(a.as_primitive::<Decimal128Type>().value(row), *scale);
                out.put_slice(
                    if self.trim_numeric {
                        trim_fraction(&text)
                    } else {
                        &text
                    }
                    .as_bytes(),
                );
            }
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::UUID | Type::JSON | Type::JSONB
                if matches!(a.data_type(), DataType::Utf8) =>
            {
                let text = a.as_string::<i32>().value(row);
                out.put_slice(text.as_bytes());
                if let Some(n) = self.char_length {
                    let pad = n.saturating_sub(text.chars().count());
                    out.put_bytes(b' ', pad);
                }
            }
            Type::BYTEA => {
                out.put_slice(b"\\x");
                for b in a.as_binary::<i32>().value(row) {
                    write!(out, "{b:02x}").expect("infallible");
                }
            }
            Type::DATE => {
                write_date(out, a.as_primitive::<Date32Type>().value(row)).expect("infallible")
            }
            Type::TIME => write_time(out, a.as_primitive::<Time64MicrosecondType>().value(row))
                .expect("infallible"),
            Type::TIMESTAMP => write_timestamp(
                out,
                a.as_primitive::<TimestampMicrosecondType>().value(row),
                false,
            )
            .expect("infallible"),
            Type::TIMESTAMPTZ => write_timestamp(
                out,
                a.as_primitive::<TimestampMicrosecondType>().value(row),
                true,
            )
            .expect("infallible"),
            Type::INTERVAL => {
                write_interval(out, a.as_primitive::<IntervalMonthDayNanoType>().value(row))
            }
            _ => {
                let formatter = ArrayFormatter::try_new(a.as_ref(), &FormatOptions::default())?;
                write!(out, "{}", formatter.value(row)).expect("infallible");
            }
        }
        Ok(())
    }

    fn write_binary(&self, row: usize, out: &mut BytesMut) -> Result<(), Error> {
        if let Some(elements) = &self.elements {
            return self.write_array_binary(elements, row, out);
        }
        if self.ty == Type::RECORD {
            return self.write_record_binary(row, out);
        }
        let a = &self.array;
        match self.ty {
            Type::BOOL => out.put_u8(a.as_boolean().value(row) as u8),
            Type::INT2 => out.put_i16(a.as_primitive::<Int16Type>().value(row)),
            Type::INT4 => out.put_i32(a.as_primitive::<Int32Type>().value(row)),
            Type::INT8 => out.put_i64(a.as_primitive::<Int64Type>().value(row)),
            Type::OID => out.put_u32(a.as_primitive::<UInt32Type>().value(row)),
            Type::FLOAT4 => out.put_f32(a.as_primitive::<Float32Type>().value(row)),
            Type::FLOAT8 => out.put_f64(a.as_primitive::<Float64Type>().value(row)),
            Type::NUMERIC => {
                let DataType::Decimal128(_, scale) = a.data_type() else {
                    unreachable!("numeric columns are Decimal128")
                };
                let (mut value, mut scale) =
                    (a.as_primitive::<Decimal128Type>().value(row), *scale);
                // As the text form: no trailing zeros of the fixed storage scale.
                while self.trim_numeric && scale > 0 && value % 10 == 0 {
                    value /= 10;
                    scale -= 1;
                }
                write_numeric_binary(out, value, scale);
            }
            Type::UUID => {
                let text = a.as_string::<i32>().value(row);
                let uuid = uuid_bytes(text).ok_or_else(|| {
                    Error::new(
                        sqlstate::INVALID_TEXT_REPRESENTATION,
                        format!("invalid uuid \"{text}\""),
                    )
                })?;
                out.put_slice(&uuid);
            }
            Type::JSONB => {
                out.put_u8(1);
                out.put_slice(a.as_string::<i32>().value(row).as_bytes());
            }
            Type::BYTEA => out.put_slice(a.as_binary::<i32>().value(row)),
            Type::DATE => out.put_i32(a.as_primitive::<Date32Type>().value(row) - PG_EPOCH_DAYS),
            Type::TIME => out.put_i64(a.as_primitive::<Time64MicrosecondType>().value(row)),
            Type::TIMESTAMP | Type::TIMESTAMPTZ => out
                .put_i64(a.as_primitive::<TimestampMicrosecondType>().value(row) - PG_EPOCH_MICROS),
            Type::INTERVAL => {
                let v = a.as_primitive::<IntervalMonthDayNanoType>().value(row);
                out.put_i64(v.nanoseconds / 1000);
                out.put_i32(v.days);
                out.put_i32(v.months);
            }
            // text, varchar, bpchar, json and anything sent as text: UTF-8 bytes.
            _ => self.write_text(row, out)?,
        }
        Ok(())
    }
}

/// How a quoted array element or record field escapes `"` and `\`.
enum Escape {
    /// With a backslash, as array_out does.
    Backslash,
    /// By doubling them, as record_out does.
    Double,
}

/// Appends an array element's or a record field's text, in double quotes
/// where it is empty, holds one of `special` or white space, or `force`.
fn put_quoted(out: &mut BytesMut, text: &[u8], special: &[u8], force: bool, escape: Escape) {
    let quote = force
        || text.is_empty()
        || text
            .iter()
            .any(|b| special.contains(b) || b.is_ascii_whitespace());
    if !quote {
        out.put_slice(text);
        return;
    }
    out.put_u8(b'"');
    for &b in text {
        if b == b'"' || b == b'\\' {
            out.put_u8(match escape {
                Escape::Backslash => b'\\',
                Escape::Double => b,
            });
        }
        out.put_u8(b);
    }
    out.put_u8(b'"');
}

/// Bytes of the buffers a batch's rows are encoded into: each row's
/// message is a view of one, so that a row costs no allocation of its own
/// (allocating and growing each row's buffer took a third of the time
/// spent sending 18,000 rows of four columns).
const ROWS_BUFFER_BYTES: usize = 64 * 1024;
/// A new buffer starts when the current one has less room left than this;
/// a row longer than the room left moves to a buffer of its own size.
const ROWS_BUFFER_ROOM_MIN: usize = ROWS_BUFFER_BYTES / 16;

/// Encodes a batch into DataRow messages.
pub fn encode_rows(codecs: &[ColumnCodec], rows: usize) -> Result<Vec<DataRow>, Error> {
    let mut out = Vec::with_capacity(rows);
    let mut buffer = BytesMut::new();
    for row in 0..rows {
        if buffer.capacity() < ROWS_BUFFER_ROOM_MIN {
            buffer = BytesMut::with_capacity(ROWS_BUFFER_BYTES);
        }
        for codec in codecs {
            codec.write(row, &mut buffer)?;
        }
        out.push(DataRow::new(buffer.split(), codecs.len() as i16));
    }
    Ok(out)
}

pub fn codecs(batch: &RecordBatch, binary: &[bool]) -> Result<Vec<ColumnCodec>, Error> {
    batch
        .columns()
        .iter()
        .zip(batch.schema().fields())
        .enumerate()
        .map(|(i, (array, field))| {
            ColumnCodec::new(array, field, binary.get(i).copied().unwrap_or(false))
        })
        .collect()
}

/// PostgreSQL's float output: the shortest digits that round-trip, in
/// exponent form outside [1e-4, 1e15) (1e6 for real).
fn decimal_text(value: i128, scale: i8) -> String {
    let negative = value < 0;
    let digits = value.unsigned_abs().to_string();
    let scale = scale.max(0) as usize;
    let text = if scale == 0 {
        digits
    } else if digits.len() > scale {
        format!(
            "{}.{}",
            &digits[..digits.len() - scale],
            &digits[digits.len() - scale..]
        )
    } else {
        format!("0.{}{}", "0".repeat(scale - digits.len()), digits)
    };
    if negative { format!("-{text}") } else { text }
}

fn trim_fraction(text: &str) -> &str {
    if !text.contains('.') {
        return text;
    }
    text.trim_end_matches('0').trim_end_matches('.')
}

/// PostgreSQL's binary numeric: base-10000 digits with weight and scale.
fn write_numeric_binary(out: &mut BytesMut, value: i128, scale: i8) {
    let scale = scale.max(0) as u32;
    let pad = (4 - scale % 4) % 4;
    let mut abs = value.unsigned_abs() * 10u128.pow(pad);
    let frac_groups = ((scale + pad) / 4) as i32;
    let mut digits = Vec::new();
    while abs > 0 {
        digits.push((abs % 10_000) as i16);
        abs /= 10_000;
    }
    // digits are least significant first; group i has weight i - frac_groups.
    let mut weight = digits.len() as i32 - 1 - frac_groups;
    digits.reverse();
    while digits.last() == Some(&0) {
        digits.pop();
    }
    while digits.first() == Some(&0) {
        digits.remove(0);
        weight -= 1;
    }
    if digits.is_empty() {
        weight = 0;
    }
    out.put_i16(digits.len() as i16);
    out.put_i16(weight as i16);
    out.put_u16(if value < 0 { 0x4000 } else { 0 });
    out.put_u16(scale as u16);
    for d in digits {
        out.put_i16(d);
    }
}

fn write_interval(out: &mut BytesMut, v: IntervalMonthDayNano) {
    let mut parts: Vec<String> = Vec::new();
    // PostgreSQL: "1 day", but "-1 days".
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    let (years, months) = (v.months / 12, v.months % 12);
    if years != 0 {
        parts.push(plural(years as i64, "year"));
    }
    if months != 0 {
        parts.push(plural(months as i64, "mon"));
    }
    if v.days != 0 {
        parts.push(plural(v.days as i64, "day"));
    }
    let micros = v.nanoseconds / 1000;
    if micros != 0 || parts.is_empty() {
        let mut time = BytesMut::new();
        if micros < 0 {
            time.put_u8(b'-');
        }
        let abs = micros.unsigned_abs() as i64;
        let secs = abs / 1_000_000;
        write!(
            time,
            "{:02}:{:02}:{:02}",
            secs / 3600,
            (secs / 60) % 60,
            secs % 60
        )
        .expect("infallible");
        write_fraction(&mut time, (abs % 1_000_000) as u32).expect("infallible");
        parts.push(String::from_utf8(time.to_vec()).expect("ascii"));
    }
    out.put_slice(parts.join(" ").as_bytes());
}

fn uuid_bytes(text: &str) -> Option<[u8; 16]> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The PostgreSQL type announced for a parameter of this Arrow type.
/// The type a parameter is described and decoded as: its field's, which
/// knows uuid from text, or else its Arrow type's.
pub fn param_pg_type(field: Option<&Field>, ty: &DataType) -> Type {
    match field {
        Some(field) => wire_type(field).1,
        None => wire_type(&Field::new("", ty.clone(), true)).1,
    }
}

fn bad_param(index: usize, detail: impl std::fmt::Display) -> Error {
    Error::new(
        sqlstate::INVALID_TEXT_REPRESENTATION,
        format!("invalid value for parameter ${}: {detail}", index + 1),
    )
}

/// An error in a parameter's value, saying which parameter.
fn in_bind_parameter(index: usize, e: Error) -> Error {
    Error::new(
        e.sqlstate,
        format!("{} in bind parameter {}", e.message, index + 1),
    )
}

/// Decodes a bound parameter into a scalar of the type the plan expects.
pub fn decode_param(
    index: usize,
    raw: Option<&[u8]>,
    wire: &Type,
    binary: bool,
    target: &DataType,
) -> Result<ScalarValue, Error> {
    let Some(raw) = raw else {
        return Ok(ScalarValue::try_from(target).unwrap_or(ScalarValue::Null));
    };
    if let DataType::List(element) = target {
        if !binary {
            let text = std::str::from_utf8(raw).map_err(|e| bad_param(index, e))?;
            return ciab_extensions::text_input::array_from_text(text, element.data_type())
                .map_err(|e| in_bind_parameter(index, e.into()));
        }
        let items = binary_array_items(index, raw, element.data_type())?;
        return Ok(ScalarValue::List(ScalarValue::new_list_nullable(
            &items,
            element.data_type(),
        )));
    }
    let value = if !binary {
        let text = std::str::from_utf8(raw).map_err(|e| bad_param(index, e))?;
        if *wire == Type::BYTEA || matches!(target, DataType::Binary) {
            ScalarValue::Binary(Some(
                ciab_extensions::text_input::parse_bytea(text)
                    .ok_or_else(|| bad_param(index, "invalid bytea"))?,
            ))
        } else {
            ScalarValue::Utf8(Some(text.to_string()))
        }
    } else {
        ciab_planner::binary::decode_oid(raw, wire.oid())
            .map_err(|e| in_bind_parameter(index, e))?
    };
    if matches!(target, DataType::Null) || value.data_type() == *target {
        return Ok(value);
    }
    // A date's input may carry a time zone, which PostgreSQL ignores (JDBC
    // sends `2024-02-29 +00`).
    if let (DataType::Date32, ScalarValue::Utf8(Some(text))) = (target, &value)
        && let Some((date, zone)) = text.trim().split_once(' ')
        && zone.starts_with(['+', '-'])
    {
        return ScalarValue::Utf8(Some(date.to_string()))
            .cast_to(target)
            .map_err(|e| bad_param(index, e));
    }
    if let ScalarValue::Utf8(Some(text)) = &value
        && let Some(integer) = plain_integer(text, target)
    {
        return integer.map_err(|e| in_bind_parameter(index, e));
    }
    // numeric's input, which reads exponents (`1e3`) as arrow's cast does not.
    if let (DataType::Decimal128(precision, scale), ScalarValue::Utf8(Some(text))) =
        (target, &value)
    {
        return ciab_extensions::text_input::parse_numeric(text, *precision, *scale)
            .map(|n| ScalarValue::Decimal128(Some(n), *precision, *scale))
            .map_err(|e| in_bind_parameter(index, e.into()));
    }
    value.cast_to(target).map_err(|e| bad_param(index, e))
}

/// Integers, the commonest parameters in text, parsed without the arrays a
/// CAST builds (a twentieth of a single-row INSERT's CPU): an integer type
/// and a plain decimal number, refused as PostgreSQL refuses it (22003)
/// where the type cannot hold it; else `None` and CAST decides.
fn plain_integer(text: &str, target: &DataType) -> Option<Result<ScalarValue, Error>> {
    let (parsed, name) = match target {
        DataType::Int16 => (
            text.parse().map(|v| ScalarValue::Int16(Some(v))),
            "smallint",
        ),
        DataType::Int32 => (text.parse().map(|v| ScalarValue::Int32(Some(v))), "integer"),
        DataType::Int64 => (text.parse().map(|v| ScalarValue::Int64(Some(v))), "bigint"),
        _ => return None,
    };
    match parsed {
        Ok(value) => Some(Ok(value)),
        Err(e)
            if matches!(
                e.kind(),
                IntErrorKind::PosOverflow | IntErrorKind::NegOverflow
            ) =>
        {
            Some(Err(Error::new(
                sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
                format!("value \"{text}\" is out of range for type {name}"),
            )))
        }
        Err(_) => None,
    }
}

/// An array parameter's elements from PostgreSQL's binary form, each
/// decoded as its element type's OID says and cast to `element`.
fn binary_array_items(
    index: usize,
    raw: &[u8],
    element: &DataType,
) -> Result<Vec<ScalarValue>, Error> {
    let in_param = |e| in_bind_parameter(index, e);
    let (oid, elements) = ciab_planner::binary::array_elements(raw).map_err(in_param)?;
    elements
        .into_iter()
        .map(|e| match e {
            None => ScalarValue::try_from(element).map_err(|e| bad_param(index, e)),
            Some(raw) => ciab_planner::binary::decode_oid(raw, oid)
                .map_err(in_param)?
                .cast_to(element)
                .map_err(|e| bad_param(index, e)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_binary_round_trips() {
        for (value, scale, text) in [
            (12345678i128, 2i8, "123456.78"),
            (-5, 3, "-0.005"),
            (100000000, 0, "100000000"),
            (0, 2, "0.00"),
        ] {
            let mut out = BytesMut::new();
            write_numeric_binary(&mut out, value, scale);
            assert_eq!(
                ciab_planner::binary::decode_oid(&out, Type::NUMERIC.oid()).unwrap(),
                ScalarValue::Utf8(Some(text.into()))
            );
            assert_eq!(decimal_text(value, scale), text);
        }
    }

    #[test]
    fn integer_parameters_parse_as_cast_reads_them() {
        let decode = |text: &str, target: &DataType| {
            decode_param(0, Some(text.as_bytes()), &Type::UNKNOWN, false, target)
        };
        for (text, target) in [
            ("42", DataType::Int32),
            ("-7", DataType::Int16),
            ("0042", DataType::Int64),
            ("-9223372036854775808", DataType::Int64),
        ] {
            let cast = ScalarValue::Utf8(Some(text.into()))
                .cast_to(&target)
                .unwrap();
            assert_eq!(decode(text, &target).unwrap(), cast, "{text} as {target}");
        }
        // Out of the type's range: 22003, as PostgreSQL says.
        for (text, target) in [
            ("32768", DataType::Int16),
            ("-2147483649", DataType::Int32),
            ("9223372036854775808", DataType::Int64),
        ] {
            let err = decode(text, &target).unwrap_err();
            assert_eq!(err.sqlstate, "22003", "{text} as {target}: {}", err.message);
            assert!(err.message.contains("out of range"), "{}", err.message);
        }
        // Not an integer: an error, as the CAST gives.
        for (text, target) in [("1.5", DataType::Int64), ("x", DataType::Int32)] {
            assert!(decode(text, &target).is_err(), "{text} as {target}");
        }
    }

    /// numeric's input reads a parameter's text, exponent and all.
    #[test]
    fn numeric_parameters_read_exponents() {
        let target = DataType::Decimal128(6, 2);
        let decode =
            |text: &str| decode_param(0, Some(text.as_bytes()), &Type::UNKNOWN, false, &target);
        assert_eq!(
            decode("2.5e1").unwrap(),
            ScalarValue::Decimal128(Some(2500), 6, 2)
        );
        assert_eq!(
            decode(" -1.005 ").unwrap(),
            ScalarValue::Decimal128(Some(-101), 6, 2)
        );
        let overflow = decode("1e4").unwrap_err();
        assert_eq!(overflow.sqlstate, "22003", "{}", overflow.message);
        let syntax = decode("1e").unwrap_err();
        assert_eq!(syntax.sqlstate, "22P02", "{}", syntax.message);
    }

    #[test]
    fn array_parameters_decode_from_text_and_binary() {
        let element = Arc::new(Field::new("item", DataType::Int32, true));
        let target = DataType::List(element);
        let want = ScalarValue::List(ScalarValue::new_list_nullable(
            &[
                ScalarValue::Int32(Some(1)),
                ScalarValue::Int32(None),
                ScalarValue::Int32(Some(-3)),
            ],
            &DataType::Int32,
        ));
        let text = decode_param(0, Some(b"{1,NULL,-3}"), &Type::INT4_ARRAY, false, &target);
        assert_eq!(text.unwrap(), want);
        // One dimension of three int2s from 1: what psycopg sends for a
        // list of small ints in binary.
        let mut raw = BytesMut::new();
        for word in [1i32, 1, 21, 3, 1] {
            raw.extend_from_slice(&word.to_be_bytes());
        }
        raw.extend_from_slice(&2i32.to_be_bytes());
        raw.extend_from_slice(&1i16.to_be_bytes());
        raw.extend_from_slice(&(-1i32).to_be_bytes());
        raw.extend_from_slice(&2i32.to_be_bytes());
        raw.extend_from_slice(&(-3i16).to_be_bytes());
        let binary = decode_param(0, Some(&raw), &Type::INT2_ARRAY, true, &target);
        assert_eq!(binary.unwrap(), want);
        let truncated = decode_param(
            0,
            Some(&raw[..raw.len() - 1]),
            &Type::INT2_ARRAY,
            true,
            &target,
        );
        assert_eq!(
            truncated.unwrap_err().sqlstate,
            sqlstate::INVALID_BINARY_REPRESENTATION
        );
        let mut two_dimensions = BytesMut::new();
        for word in [2i32, 0, 23, 1, 1, 1, 1] {
            two_dimensions.extend_from_slice(&word.to_be_bytes());
        }
        let refused = decode_param(0, Some(&two_dimensions), &Type::INT4_ARRAY, true, &target);
        assert_eq!(
            refused.unwrap_err().sqlstate,
            sqlstate::FEATURE_NOT_SUPPORTED
        );
        let malformed = decode_param(0, Some(b"1,2"), &Type::INT4_ARRAY, false, &target);
        assert_eq!(
            malformed.unwrap_err().sqlstate,
            sqlstate::INVALID_TEXT_REPRESENTATION
        );
    }

    #[test]
    fn records_print_like_postgres() {
        use datafusion::arrow::array::{Int32Array, StringArray, StructArray};
        let fields = vec![
            Arc::new(Field::new("a", DataType::Int32, true)),
            Arc::new(Field::new("b", DataType::Utf8, true)),
        ];
        let array: ArrayRef = Arc::new(StructArray::new(
            fields.clone().into(),
            vec![
                Arc::new(Int32Array::from(vec![Some(1), None, Some(3)])),
                Arc::new(StringArray::from(vec![
                    Some("a b"),
                    Some(""),
                    Some(r#"say "hi" \"#),
                ])),
            ],
            None,
        ));
        let field = Field::new("r", array.data_type().clone(), true);
        let codec = ColumnCodec::new(&array, &field, false).unwrap();
        let texts: Vec<_> = (0..3)
            .map(|row| {
                let mut out = BytesMut::new();
                codec.write_value(row, &mut out).unwrap();
                String::from_utf8(out.to_vec()).unwrap()
            })
            .collect();
        assert_eq!(
            texts,
            [r#"(1,"a b")"#, r#"(,"")"#, r#"(3,"say ""hi"" \\")"#]
        );
        // Binary: two fields, each with its type's OID and its value.
        let codec = ColumnCodec::new(&array, &field, true).unwrap();
        let mut out = BytesMut::new();
        codec.write_value(1, &mut out).unwrap();
        let mut want = BytesMut::new();
        want.put_i32(2);
        want.put_u32(Type::INT4.oid());
        want.put_i32(-1);
        want.put_u32(Type::TEXT.oid());
        want.put_i32(0);
        assert_eq!(out, want);
    }

    #[test]
    fn intervals_print_like_postgres() {
        let mut out = BytesMut::new();
        write_interval(
            &mut out,
            IntervalMonthDayNano::new(14, 3, 4 * 3_600_000_000_000 + 5_500_000_000),
        );
        assert_eq!(&out[..], b"1 year 2 mons 3 days 04:00:05.5");
        let mut out = BytesMut::new();
        write_interval(&mut out, IntervalMonthDayNano::new(0, 0, 0));
        assert_eq!(&out[..], b"00:00:00");
    }

    #[test]
    fn time_values() {
        let mut out = BytesMut::new();
        write_timestamp(&mut out, 1_700_000_000_123_000, true).unwrap();
        assert_eq!(&out[..], b"2023-11-14 22:13:20.123+00");
        let mut out = BytesMut::new();
        write_date(&mut out, 0).unwrap();
        assert_eq!(&out[..], b"1970-01-01");
    }
}
