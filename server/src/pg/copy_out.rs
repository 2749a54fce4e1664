//! COPY ... TO STDOUT on the wire: CopyOutResponse, one CopyData message per
//! row, CopyDone, then `COPY n`.
//!
//! One message per row is what PostgreSQL sends and what drivers that read
//! COPY row by row (psycopg's `rows()`, for one) rely on. Values take the
//! text or binary form they have in a DataRow; the text and CSV formats then
//! escape or quote them as PostgreSQL's COPY does. The messages are fed to
//! the corked socket, which writes them out in large packets.

use bytes::{BufMut, BytesMut};
use ciab_planner::{CopyFormat, CopyOut};
use datafusion::arrow::datatypes::Schema;
use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::results::Tag;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyOutResponse};
use std::fmt::Debug;

use super::values::{self, ColumnCodec};
use super::wire_error;

/// The binary format's file header: signature, flags, extension length.
const BINARY_SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// The binary format's end marker: a field count of -1.
const BINARY_TRAILER: [u8; 2] = [0xff, 0xff];

/// Streams a COPY TO STDOUT to the client; returns its CommandComplete tag.
pub async fn send<C>(client: &mut C, copy: CopyOut) -> PgWireResult<Tag>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let CopyOut {
        schema,
        mut stream,
        format,
        header,
        force_quote,
    } = copy;
    let columns = schema.fields().len();
    let binary = format == CopyFormat::Binary;
    client
        .feed(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
            binary as i8,
            columns as i16,
            vec![binary as i16; columns],
        )))
        .await?;
    let encoder = RowEncoder {
        format,
        force_quote,
        single_column: columns == 1,
    };
    // The binary header travels with the first row (or the trailer), as
    // PostgreSQL sends it; a text or CSV header is a message of its own.
    let mut pending = BytesMut::new();
    if binary {
        pending.put_slice(BINARY_SIGNATURE);
        pending.put_i32(0);
        pending.put_i32(0);
    } else if header {
        client.feed(copy_data(encoder.header_line(&schema))).await?;
    }
    let formats = vec![binary; columns];
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| wire_error(e.into()))?;
        let codecs = values::codecs(&batch, &formats).map_err(wire_error)?;
        for row in 0..batch.num_rows() {
            let mut out = std::mem::take(&mut pending);
            encoder.row(&codecs, row, &mut out).map_err(wire_error)?;
            client.feed(copy_data(out)).await?;
            rows += 1;
        }
    }
    if binary {
        pending.put_slice(&BINARY_TRAILER);
        client.feed(copy_data(pending)).await?;
    }
    client
        .feed(PgWireBackendMessage::CopyDone(CopyDone::new()))
        .await?;
    Ok(Tag::new("COPY").with_rows(rows))
}

fn copy_data(data: BytesMut) -> PgWireBackendMessage {
    PgWireBackendMessage::CopyData(CopyData::new(data.freeze()))
}

/// Writes rows in one COPY format.
struct RowEncoder {
    format: CopyFormat,
    force_quote: Vec<bool>,
    /// CSV quotes a lone `\.` when it is a whole line.
    single_column: bool,
}

impl RowEncoder {
    /// The column names as a text or CSV line.
    fn header_line(&self, schema: &Schema) -> BytesMut {
        let mut out = BytesMut::new();
        for (i, field) in schema.fields().iter().enumerate() {
            self.field(i, Some(field.name().as_bytes()), false, &mut out);
        }
        out.put_u8(b'\n');
        out
    }

    fn row(
        &self,
        codecs: &[ColumnCodec],
        row: usize,
        out: &mut BytesMut,
    ) -> Result<(), ciab_planner::Error> {
        if self.format == CopyFormat::Binary {
            out.put_i16(codecs.len() as i16);
            for codec in codecs {
                codec.write(row, out)?;
            }
            return Ok(());
        }
        let mut value = BytesMut::new();
        for (i, codec) in codecs.iter().enumerate() {
            if codec.is_null(row) {
                self.field(i, None, false, out);
            } else {
                value.clear();
                codec.write_value(row, &mut value)?;
                self.field(i, Some(&value), self.force_quote[i], out);
            }
        }
        out.put_u8(b'\n');
        Ok(())
    }

    /// Appends column `i`'s value (None for NULL) with the separator before it.
    fn field(&self, i: usize, value: Option<&[u8]>, force_quote: bool, out: &mut BytesMut) {
        match &self.format {
            CopyFormat::Text { delimiter, null } => {
                if i > 0 {
                    out.put_u8(*delimiter);
                }
                match value {
                    None => out.put_slice(null),
                    Some(value) => escape_text(value, *delimiter, out),
                }
            }
            CopyFormat::Csv {
                delimiter,
                quote,
                escape,
                null,
            } => {
                if i > 0 {
                    out.put_u8(*delimiter);
                }
                let Some(value) = value else {
                    out.put_slice(null);
                    return;
                };
                let quoted = force_quote
                    || value == null.as_slice()
                    || (self.single_column && value == b"\\.")
                    || value
                        .iter()
                        .any(|&b| b == *delimiter || b == *quote || b == b'\n' || b == b'\r');
                if !quoted {
                    out.put_slice(value);
                    return;
                }
                out.put_u8(*quote);
                for &b in value {
                    if b == *quote || b == *escape {
                        out.put_u8(*escape);
                    }
                    out.put_u8(b);
                }
                out.put_u8(*quote);
            }
            CopyFormat::Binary => unreachable!("binary rows are written whole"),
        }
    }
}

/// The text format's escapes: backslash, the delimiter and the control
/// characters that would end a field or a line.
fn escape_text(value: &[u8], delimiter: u8, out: &mut BytesMut) {
    for &b in value {
        match b {
            b'\\' => out.put_slice(b"\\\\"),
            b'\n' => out.put_slice(b"\\n"),
            b'\r' => out.put_slice(b"\\r"),
            b'\t' => out.put_slice(b"\\t"),
            0x08 => out.put_slice(b"\\b"),
            0x0b => out.put_slice(b"\\v"),
            0x0c => out.put_slice(b"\\f"),
            _ if b == delimiter => {
                out.put_u8(b'\\');
                out.put_u8(b);
            }
            _ => out.put_u8(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &str, delimiter: u8) -> String {
        let mut out = BytesMut::new();
        escape_text(value.as_bytes(), delimiter, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    fn csv(value: Option<&str>, force: bool, single_column: bool) -> String {
        let encoder = RowEncoder {
            format: CopyFormat::Csv {
                delimiter: b',',
                quote: b'"',
                escape: b'"',
                null: Vec::new(),
            },
            force_quote: vec![force],
            single_column,
        };
        let mut out = BytesMut::new();
        encoder.field(0, value.map(str::as_bytes), force, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn text_escapes_what_would_split_fields_or_lines() {
        assert_eq!(text("plain é", b'\t'), "plain é");
        assert_eq!(text("a\tb\nc\rd\\e", b'\t'), "a\\tb\\nc\\rd\\\\e");
        assert_eq!(text("a|b", b'|'), "a\\|b");
        assert_eq!(text("\x08\x0b\x0c\x01", b'\t'), "\\b\\v\\f\x01");
    }

    #[test]
    fn csv_quotes_only_when_needed_or_forced() {
        assert_eq!(csv(Some("plain"), false, false), "plain");
        assert_eq!(csv(Some("a,b"), false, false), "\"a,b\"");
        assert_eq!(csv(Some("say \"hi\""), false, false), "\"say \"\"hi\"\"\"");
        assert_eq!(csv(Some("two\nlines"), false, false), "\"two\nlines\"");
        // An empty string is told apart from NULL (the empty null string).
        assert_eq!(csv(Some(""), false, false), "\"\"");
        assert_eq!(csv(None, false, false), "");
        assert_eq!(csv(Some("x"), true, false), "\"x\"");
        assert_eq!(csv(None, true, false), "");
        assert_eq!(csv(Some("\\."), false, true), "\"\\.\"");
        assert_eq!(csv(Some("\\."), false, false), "\\.");
    }
}
