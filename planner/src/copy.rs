//! COPY ... FROM STDIN: bulk loads in PostgreSQL's text, CSV and binary
//! formats. (COPY ... TO STDOUT is `copy_to`.)
//!
//! ```text
//!  CopyData ──► buffer ──(≥ copy_chunk_bytes_max, whole records)──► parse
//!      parse: fields as text columns ──► DataFusion casts + DEFAULTs ──► typed rows
//!             (plain decimals and dates are read first, the casts' slowest)
//!             (binary: fields decoded as their types, crate::binary)
//!      typed rows ──► autocommit: Command::Stage through Raft (invisible),
//!                     written while the next chunk is parsed
//!                 └─► in BEGIN: the transaction's private state
//!  CopyDone ──► the rest ──► WriteOp::Publish: every staged row at once
//! ```
//!
//! A load of any size reaches the log in bounded commands, yet others see
//! none of it until the final Publish, and a failure anywhere leaves nothing
//! behind, as PostgreSQL's COPY does. Values are converted with the same
//! casts an INSERT of string literals uses, so both accept the same input.

use std::borrow::Cow;
use std::sync::Arc;

use ciab_storage::{Command, PgType, Rows, StageId, TableDef, TableRef, WriteOp};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, Date32Array, Decimal128Array, RecordBatch,
    RecordBatchOptions, StringArray, new_empty_array,
};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{Column, ScalarValue};
use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::{Expr, cast};
use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Ident, ObjectName,
    Statement,
};
use tokio::task::JoinHandle;

use crate::binary;
use crate::dml::to_table_batch;
use crate::error::{Error, Result, sqlstate};
use crate::names::normalize;
use crate::session::{Engine, Output, Session, Tag};
use crate::types::conform_rows;

/// Input bytes parsed and loaded as one batch. Bounds the memory a load
/// holds and the size of each log entry it writes.
const COPY_CHUNK_BYTES_MAX: usize = 16 * 1024 * 1024;

const BAD_COPY_FORMAT: &str = "22P04";
const CHARACTER_NOT_IN_REPERTOIRE: &str = "22021";
const QUERY_CANCELED: &str = "57014";

/// A COPY data format with its options.
#[derive(Debug, Clone, PartialEq)]
pub enum CopyFormat {
    /// PostgreSQL's text format: backslash escapes, `\N` for NULL.
    Text { delimiter: u8, null: Vec<u8> },
    /// RFC 4180-style CSV: an unquoted `null` string is NULL.
    Csv {
        delimiter: u8,
        quote: u8,
        escape: u8,
        null: Vec<u8>,
    },
    /// PostgreSQL's binary format: a signature, then length-prefixed
    /// values in the wire protocol's binary encoding.
    Binary,
}

/// What a COPY statement's options say.
pub(crate) struct CopyOptions {
    pub(crate) format: CopyFormat,
    pub(crate) header: bool,
    /// FORCE_QUOTE's columns (COPY TO in CSV only).
    pub(crate) force_quote: Vec<Ident>,
}

/// A COPY FROM STDIN in progress on a session.
pub(crate) struct CopyIn {
    table: TableRef,
    def: TableDef,
    /// Positions in `def.columns` of the fields of each input record.
    columns: Vec<usize>,
    /// Each table column's value: its input field cast to its type, its
    /// DEFAULT, or NULL.
    exprs: Vec<Expr>,
    format: CopyFormat,
    skip_header: bool,
    buffer: Vec<u8>,
    /// The rows and value bytes of each field of the last chunk parsed,
    /// which the next chunk's columns start with room for.
    chunk_sizes: Vec<(usize, usize)>,
    /// Input lines consumed so far, for error messages.
    line: u64,
    rows: u64,
    /// Set when loading outside a transaction block.
    stage: Option<StageId>,
    /// The first error; the rest of the data is read and dropped, then the
    /// error is the result of COPY.
    error: Option<Error>,
    /// The text format's end-of-data marker (`\.`) was seen.
    ended: bool,
    /// Set while the stage must be discarded if the COPY is dropped
    /// unfinished (the connection closed); cleared once it ends either way.
    discard_with: Option<Arc<Engine>>,
    /// The previous chunk's Stage command, still being written while the
    /// next chunk is parsed. At most one is in flight, so chunks reach the
    /// stage in input order.
    in_flight: Option<JoinHandle<Result<()>>>,
}

impl CopyIn {
    pub(crate) fn format(&self) -> &CopyFormat {
        &self.format
    }

    /// Whether the data starts with a line to skip: a header, or binary
    /// data's signature.
    pub(crate) fn skips_header(&self) -> bool {
        self.skip_header
    }
}

impl Session {
    /// Starts `COPY table [(columns)] FROM STDIN [WITH (...)]`.
    pub(crate) fn copy_from(&mut self, statement: &Statement) -> Result<Output> {
        let copy = self.plan_copy(statement)?;
        let columns = copy.columns.len();
        self.copy = Some(copy);
        Ok(Output::CopyIn { columns })
    }

    /// Checks a COPY statement and works out how to load its data: what
    /// Describe reports errors from, as PostgreSQL does when it parses one.
    pub(crate) fn plan_copy(&self, statement: &Statement) -> Result<CopyIn> {
        let Statement::Copy {
            source,
            to,
            target,
            options,
            legacy_options,
            ..
        } = statement
        else {
            unreachable!("only COPY is planned here");
        };
        debug_assert!(!*to, "COPY TO is planned by copy_to");
        if !matches!(target, CopyTarget::Stdin | CopyTarget::File { .. }) {
            return Err(Error::unsupported("COPY FROM PROGRAM"));
        }
        let (table_name, columns) = copy_into(source)?;
        let (table, def) = self.resolve_table(table_name)?;
        let columns = copy_columns(&def, columns)?;
        let CopyOptions {
            format,
            header: skip_header,
            force_quote,
        } = parse_options(options, legacy_options)?;
        if !force_quote.is_empty() {
            return Err(Error::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                "COPY force quote only available using COPY TO",
            ));
        }
        let exprs = self.column_exprs(&table.schema, &def, &columns)?;
        // Binary data starts with a signature, read like a header.
        let skip_header = skip_header || format == CopyFormat::Binary;
        let stage = (!self.in_transaction()).then(|| StageId::fresh(self.engine.node_id()));
        Ok(CopyIn {
            table,
            def,
            columns,
            exprs,
            format,
            skip_header,
            buffer: Vec::new(),
            chunk_sizes: Vec::new(),
            line: 0,
            rows: 0,
            stage,
            error: None,
            ended: false,
            discard_with: stage.map(|_| self.engine.clone()),
            in_flight: None,
        })
    }

    /// The expressions that turn a batch of input fields (`c0`, `c1`, ...:
    /// text, or in binary COPY the types `binary::decode` gives) into the
    /// table's columns.
    fn column_exprs(&self, schema: &str, def: &TableDef, columns: &[usize]) -> Result<Vec<Expr>> {
        def.columns
            .iter()
            .enumerate()
            .map(|(i, column)| {
                let ty = column.ty.arrow_type();
                let expr = match columns.iter().position(|&c| c == i) {
                    Some(field) => cast(
                        Expr::Column(Column::new_unqualified(format!("c{field}"))),
                        ty,
                    ),
                    None => self.default_or_null(schema, column)?,
                };
                Ok(expr.alias(column.name.clone()))
            })
            .collect()
    }

    /// Takes the next piece of COPY data. Errors are kept for `copy_done`,
    /// as the client goes on sending until it is told the result.
    pub async fn copy_data(&mut self, data: &[u8]) {
        let Some(copy) = &mut self.copy else { return };
        if copy.error.is_some() || copy.ended {
            return;
        }
        copy.buffer.extend_from_slice(data);
        if copy.buffer.len() >= COPY_CHUNK_BYTES_MAX
            && let Err(e) = self.load(false).await
        {
            self.copy_failed(e);
        }
    }

    /// Moves a COPY that reads several files in turn (`COPY t FROM
    /// 's3://b/*.csv'`) to the next: the last line ends with its file, and
    /// every record before it is loaded, so that the next file's header is
    /// the line skipped.
    pub(crate) async fn copy_next_file(&mut self, skip_header: bool) {
        let Some(copy) = &mut self.copy else { return };
        if copy.buffer.last().is_some_and(|b| *b != b'\n') {
            copy.buffer.push(b'\n');
        }
        if let Err(e) = self.load(false).await {
            self.copy_failed(e);
        }
        if let Some(copy) = &mut self.copy {
            copy.skip_header = skip_header;
            copy.ended = false;
        }
    }

    /// Ends the COPY: loads what is left and makes every row visible.
    pub async fn copy_done(&mut self) -> Result<Tag> {
        if let Err(e) = self.load(true).await {
            self.copy_failed(e);
        }
        if let Err(e) = self.staged().await {
            self.copy_failed(e);
        }
        let mut copy = self.copy.take().expect("copy_done follows copy_from");
        copy.discard_with = None;
        if let Some(e) = copy.error.take() {
            self.unstage(copy.stage).await;
            return Err(self.fail(e));
        }
        // A stage exists once a batch was staged; an empty load has none.
        if let Some(stage) = copy.stage
            && copy.rows > 0
        {
            let publish = WriteOp::Publish {
                table: copy.def.id,
                version: copy.def.version,
                stage,
            };
            let published = self
                .engine
                .store
                .write(Command::Write { ops: vec![publish] })
                .await;
            if let Err(e) = published {
                self.unstage(copy.stage).await;
                return Err(self.fail(e.into()));
            }
        }
        // The last statement of its query string: the string ends here.
        self.end_implicit_block().await?;
        Ok(Tag::new("COPY").with_rows(copy.rows))
    }

    /// The client gave up (CopyFail): nothing of the load remains.
    pub async fn copy_fail(&mut self, message: &str) -> Error {
        // The chunk in flight must land before the stage can be discarded.
        let _ = self.staged().await;
        let stage = self.copy.take().and_then(|mut c| {
            c.discard_with = None;
            c.stage
        });
        self.unstage(stage).await;
        self.fail(Error::new(
            QUERY_CANCELED,
            format!("COPY from stdin failed: {message}"),
        ))
    }

    pub(crate) fn copy_failed(&mut self, e: Error) {
        if let Some(copy) = &mut self.copy {
            copy.error.get_or_insert(e);
            copy.buffer = Vec::new();
        }
    }

    async fn unstage(&self, stage: Option<StageId>) {
        if let Some(stage) = stage
            && let Err(e) = self.engine.store.write(Command::Unstage { stage }).await
        {
            // The stage stays until the next restart discards it.
            tracing::warn!(error = %e, "could not discard the rows of a failed COPY");
        }
    }

    /// Parses the buffered whole records (all of them at the end) and loads
    /// them as one batch.
    async fn load(&mut self, at_end: bool) -> Result<()> {
        let copy = self.copy.as_mut().expect("loading a copy in progress");
        if copy.error.is_some() {
            return Ok(());
        }
        let mut buffer = std::mem::take(&mut copy.buffer);
        let parsed = match copy.format {
            CopyFormat::Binary => parse_binary(copy, &buffer, at_end)?,
            _ => parse_records(copy, &buffer, at_end)?,
        };
        // The buffer keeps its allocation for the next chunk.
        buffer.drain(..parsed.consumed);
        copy.buffer = buffer;
        if parsed.fields.num_rows() == 0 {
            return Ok(());
        }
        let copy = self.copy.as_ref().expect("still in progress");
        let rows = conform_rows(&copy.def, self.convert(copy, parsed.fields).await?)?;
        self.check_rows(&copy.def, &rows)?;
        let n = rows.num_rows() as u64;
        let (id, version, stage) = (copy.def.id, copy.def.version, copy.stage);
        match stage {
            Some(stage) => {
                // Parsing this chunk overlapped the previous chunk's write;
                // the next chunk's parsing overlaps this one's.
                self.staged().await?;
                let engine = self.engine.clone();
                let write = tokio::spawn(async move {
                    engine.store.stage(stage, id, version, &rows).await?;
                    Ok(())
                });
                self.copy.as_mut().expect("still in progress").in_flight = Some(write);
            }
            None => {
                self.write(vec![WriteOp::Insert {
                    table: id,
                    version,
                    rows: Rows::encode(&rows)?,
                }])
                .await?;
            }
        }
        self.copy.as_mut().expect("still in progress").rows += n;
        Ok(())
    }

    /// Waits for the chunk in flight to reach the stage.
    async fn staged(&mut self) -> Result<()> {
        let Some(write) = self.copy.as_mut().and_then(|c| c.in_flight.take()) else {
            return Ok(());
        };
        write
            .await
            .map_err(|e| Error::new(sqlstate::INTERNAL_ERROR, format!("COPY write failed: {e}")))?
    }

    /// Casts the input fields to the table's types and fills the other
    /// columns with their DEFAULTs.
    async fn convert(&self, copy: &CopyIn, fields: RecordBatch) -> Result<RecordBatch> {
        let fields = with_plain_values(copy, fields)?;
        let rows = fields.num_rows();
        let (mut state, plan) = self
            .ctx
            .read_batch(fields)?
            .select(copy.exprs.clone())?
            .into_parts();
        // In one partition the rows keep their input order (and a serial
        // column numbers them in it). With more, DataFusion deals the
        // batch out round robin and gathers the pieces in any order.
        state.config_mut().options_mut().execution.target_partitions = 1;
        // And in one batch: DataFusion would cut it into batches of 8,192
        // rows, only to be copied back together below.
        state.config_mut().options_mut().execution.batch_size =
            datafusion::common::config::ConfigNonZeroUsize::try_new(rows)?;
        let df = DataFrame::new(state, plan);
        let schema = df.schema().inner().clone();
        let batches = df
            .collect()
            .await
            .map_err(|e| in_copy(copy, Error::from(e)))?;
        to_table_batch(&copy.def, &copy.table, concat_batches(&schema, &batches)?)
    }
}

/// The input fields with each text field bound for a numeric or date
/// column parsed already, where every value has the plain form
/// ([`plain_decimals`], [`plain_dates`]): the cast that follows then has
/// nothing to do. Arrow's own cast of text to decimal formats strings for
/// every value and took a fifth of a bulk load's time; its cast to date
/// goes through chrono's calendar for each value.
fn with_plain_values(copy: &CopyIn, fields: RecordBatch) -> Result<RecordBatch> {
    let mut arrays = fields.columns().to_vec();
    let mut parsed_any = false;
    for (array, &column) in arrays.iter_mut().zip(&copy.columns) {
        let Some(text) = array.as_string_opt::<i32>() else {
            continue;
        };
        let parsed: Option<ArrayRef> = match copy.def.columns[column].ty.arrow_type() {
            DataType::Decimal128(precision, scale) => {
                plain_decimals(text, precision, scale).map(|a| Arc::new(a) as ArrayRef)
            }
            DataType::Date32 => plain_dates(text)
                .map_err(|e| in_copy(copy, e))?
                .map(|a| Arc::new(a) as ArrayRef),
            _ => None,
        };
        if let Some(parsed) = parsed {
            *array = parsed;
            parsed_any = true;
        }
    }
    if !parsed_any {
        return Ok(fields);
    }
    field_batch(arrays)
}

/// A conversion's error, naming the table loaded as PostgreSQL's context
/// line does.
fn in_copy(copy: &CopyIn, mut error: Error) -> Error {
    error.message = format!("{} (COPY {})", error.message, copy.table.name);
    error
}

/// Text as `Decimal128(precision, scale)` when every value has the plain
/// form `[+-]digits[.digits]`, with at most `scale` digits after the point
/// and within the precision: the values that need no rounding, which arrow's
/// cast gives exactly these numbers for. `None` leaves the whole array to
/// that cast, which rounds, trims blanks and words its errors.
fn plain_decimals(text: &StringArray, precision: u8, scale: i8) -> Option<Decimal128Array> {
    let scale_digits = u32::try_from(scale).ok()?;
    let bound = 10i128.checked_pow(u32::from(precision))?;
    let mut values = Vec::with_capacity(text.len());
    for value in text.iter() {
        values.push(match value {
            None => 0,
            Some(value) => plain_decimal(value.as_bytes(), scale_digits, bound)?,
        });
    }
    Decimal128Array::try_new(values.into(), text.nulls().cloned())
        .and_then(|a| a.with_precision_and_scale(precision, scale))
        .ok()
}

/// One plain decimal as an integer of `scale` decimal places, if its
/// magnitude is below `bound`.
fn plain_decimal(bytes: &[u8], scale: u32, bound: i128) -> Option<i128> {
    let (negative, digits) = match bytes.first()? {
        b'-' => (true, &bytes[1..]),
        b'+' => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    let (whole, fraction) = match digits.iter().position(|&b| b == b'.') {
        Some(point) => (&digits[..point], &digits[point + 1..]),
        None => (digits, &[][..]),
    };
    let fraction_digits = u32::try_from(fraction.len()).ok()?;
    if (whole.is_empty() && fraction.is_empty()) || fraction_digits > scale {
        return None;
    }
    let mut value: i128 = 0;
    for &b in whole.iter().chain(fraction) {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
        if value >= bound {
            return None;
        }
    }
    value = value.checked_mul(10i128.pow(scale - fraction_digits))?;
    if value >= bound {
        return None;
    }
    Some(if negative { -value } else { value })
}

/// Text as `Date32` when every value has the form `YYYY-MM-DD` of a day
/// between the years 1 and 9999, which arrow's cast reads as this day and
/// PostgreSQL in every DateStyle. `None` leaves the whole array to the
/// cast, which reads the other forms. A value of that form that names no
/// day (February 30th, month 13) is PostgreSQL's 22008, as it says it.
fn plain_dates(text: &StringArray) -> Result<Option<Date32Array>> {
    let mut days = Vec::with_capacity(text.len());
    let mut all_plain = true;
    for value in text.iter() {
        let Some(value) = value else {
            days.push(0);
            continue;
        };
        days.push(match plain_date(value.as_bytes()) {
            PlainDate::Day(day) => day,
            PlainDate::NotPlain => {
                all_plain = false;
                0
            }
            PlainDate::NoSuchDay => {
                return Err(Error::new(
                    sqlstate::DATETIME_FIELD_OVERFLOW,
                    format!("date/time field value out of range: \"{value}\""),
                ));
            }
        });
    }
    Ok(all_plain.then(|| Date32Array::new(days.into(), text.nulls().cloned())))
}

/// What a date's text reads as in the plain form.
#[derive(Debug, PartialEq)]
enum PlainDate {
    /// Days since 1970-01-01.
    Day(i32),
    NotPlain,
    /// Of the form, but no day of the calendar (or of the year 0).
    NoSuchDay,
}

fn plain_date(bytes: &[u8]) -> PlainDate {
    let &[y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1] = bytes else {
        return PlainDate::NotPlain;
    };
    let digits = |ds: &[u8]| {
        ds.iter().try_fold(0i32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + i32::from(d - b'0'))
        })
    };
    let (Some(year), Some(month), Some(day)) = (
        digits(&[y0, y1, y2, y3]),
        digits(&[m0, m1]),
        digits(&[d0, d1]),
    ) else {
        return PlainDate::NotPlain;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return PlainDate::NoSuchDay,
    };
    if year == 0 || day == 0 || day > month_days {
        return PlainDate::NoSuchDay;
    }
    // Days from the civil date, counting years from March so that a leap
    // day ends its year (H. Hinnant's days_from_civil).
    let year = if month <= 2 { year - 1 } else { year };
    let (era, year_of_era) = (year / 400, year % 400);
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    PlainDate::Day(era * 146_097 + day_of_era - DAYS_FROM_YEAR_0_TO_1970)
}

/// Days from 0000-03-01 to 1970-01-01, in the proleptic Gregorian calendar.
const DAYS_FROM_YEAR_0_TO_1970: i32 = 719_468;

/// A connection that closes in the middle of COPY leaves a stage nobody
/// will publish: discard it rather than keep its rows until a restart.
impl Drop for CopyIn {
    fn drop(&mut self) {
        if let (Some(engine), Some(stage)) = (self.discard_with.take(), self.stage)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let in_flight = self.in_flight.take();
            runtime.spawn(async move {
                // A chunk still being written would otherwise make the
                // stage again after it was discarded.
                if let Some(write) = in_flight {
                    let _ = write.await;
                }
                if let Err(e) = engine.store.write(Command::Unstage { stage }).await {
                    tracing::warn!(error = %e, "could not discard the rows of an abandoned COPY");
                }
            });
        }
    }
}

/// The table (and columns) a COPY FROM loads; a query cannot be loaded.
pub(crate) fn copy_into(source: &CopySource) -> Result<(&ObjectName, &[Ident])> {
    match source {
        CopySource::Table {
            table_name,
            columns,
        } => Ok((table_name, columns)),
        CopySource::Query(_) => Err(Error::unsupported("COPY (query) FROM")),
    }
}

pub(crate) fn copy_columns(def: &TableDef, columns: &[Ident]) -> Result<Vec<usize>> {
    if columns.is_empty() {
        return Ok((0..def.columns.len()).collect());
    }
    let mut positions = Vec::with_capacity(columns.len());
    for ident in columns {
        let name = normalize(ident);
        let position = def.column_index(&name).ok_or_else(|| {
            Error::new(
                sqlstate::UNDEFINED_COLUMN,
                format!("column \"{name}\" does not exist"),
            )
        })?;
        if positions.contains(&position) {
            return Err(Error::new(
                "42701",
                format!("column \"{name}\" specified more than once"),
            ));
        }
        positions.push(position);
    }
    Ok(positions)
}

fn single_byte(what: &str, c: char) -> Result<u8> {
    u8::try_from(c).ok().filter(u8::is_ascii).ok_or_else(|| {
        Error::unsupported(format!(
            "COPY {what} that is not a single one-byte character"
        ))
    })
}

/// The data format and other options of a COPY statement, checked as
/// PostgreSQL checks them.
pub(crate) fn parse_options(
    options: &[CopyOption],
    legacy: &[CopyLegacyOption],
) -> Result<CopyOptions> {
    let mut csv = false;
    let mut binary = false;
    let mut delimiter = None;
    let mut null = None;
    let mut quote = None;
    let mut escape = None;
    let mut header = false;
    let mut force_quote = Vec::new();
    for option in options {
        match option {
            CopyOption::Format(name) => match name.value.to_ascii_lowercase().as_str() {
                "csv" => csv = true,
                "text" => csv = false,
                "binary" => binary = true,
                other => {
                    return Err(Error::new(
                        sqlstate::INVALID_PARAMETER_VALUE,
                        format!("COPY format \"{other}\" not recognized"),
                    ));
                }
            },
            CopyOption::Delimiter(c) => delimiter = Some(single_byte("delimiter", *c)?),
            CopyOption::Null(s) => null = Some(s.as_bytes().to_vec()),
            CopyOption::Header(h) => header = *h,
            CopyOption::Quote(c) => quote = Some(single_byte("quote", *c)?),
            CopyOption::Escape(c) => escape = Some(single_byte("escape", *c)?),
            CopyOption::ForceQuote(columns) => force_quote.extend(columns.iter().cloned()),
            CopyOption::Encoding(e)
                if matches!(e.to_ascii_lowercase().as_str(), "utf8" | "utf-8") => {}
            CopyOption::Freeze(_) => {}
            other => return Err(Error::unsupported(format!("COPY option {other}"))),
        }
    }
    for option in legacy {
        match option {
            CopyLegacyOption::Binary => binary = true,
            CopyLegacyOption::Delimiter(c) => delimiter = Some(single_byte("delimiter", *c)?),
            CopyLegacyOption::Null(s) => null = Some(s.as_bytes().to_vec()),
            CopyLegacyOption::Header => header = true,
            CopyLegacyOption::Csv(csv_options) => {
                csv = true;
                for o in csv_options {
                    match o {
                        CopyLegacyCsvOption::Header => header = true,
                        CopyLegacyCsvOption::Quote(c) => quote = Some(single_byte("quote", *c)?),
                        CopyLegacyCsvOption::Escape(c) => escape = Some(single_byte("escape", *c)?),
                        CopyLegacyCsvOption::ForceQuote(columns) => {
                            force_quote.extend(columns.iter().cloned())
                        }
                        other => return Err(Error::unsupported(format!("COPY option {other}"))),
                    }
                }
            }
            other => return Err(Error::unsupported(format!("COPY option {other}"))),
        }
    }
    if !force_quote.is_empty() && !csv {
        return Err(Error::new(
            sqlstate::FEATURE_NOT_SUPPORTED,
            "COPY force quote available only in CSV mode",
        ));
    }
    let format = if binary {
        if csv {
            return Err(Error::new(
                sqlstate::SYNTAX_ERROR,
                "conflicting or redundant options: FORMAT binary and CSV",
            ));
        }
        if delimiter.is_some() || null.is_some() || quote.is_some() || escape.is_some() {
            return Err(Error::new(
                sqlstate::SYNTAX_ERROR,
                "cannot specify DELIMITER, NULL, QUOTE or ESCAPE in BINARY mode",
            ));
        }
        if header {
            return Err(Error::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                "cannot specify HEADER in BINARY mode",
            ));
        }
        CopyFormat::Binary
    } else if csv {
        let quote = quote.unwrap_or(b'"');
        CopyFormat::Csv {
            delimiter: delimiter.unwrap_or(b','),
            quote,
            escape: escape.unwrap_or(quote),
            null: null.unwrap_or_default(),
        }
    } else {
        if quote.is_some() || escape.is_some() {
            return Err(Error::unsupported("COPY QUOTE or ESCAPE outside CSV mode"));
        }
        CopyFormat::Text {
            delimiter: delimiter.unwrap_or(b'\t'),
            null: null.unwrap_or_else(|| b"\\N".to_vec()),
        }
    };
    Ok(CopyOptions {
        format,
        header,
        force_quote,
    })
}

/// Records parsed from a buffer, as one column per input field (`c0`,
/// `c1`, ...).
struct Parsed {
    fields: RecordBatch,
    /// Bytes of the buffer the records took; the rest waits for more data.
    consumed: usize,
}

fn field_batch(arrays: Vec<ArrayRef>) -> Result<RecordBatch> {
    let fields: Vec<Field> = arrays
        .iter()
        .enumerate()
        .map(|(i, a)| Field::new(format!("c{i}"), a.data_type().clone(), true))
        .collect();
    let options = RecordBatchOptions::new().with_row_count(arrays.first().map(|a| a.len()));
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        arrays,
        &options,
    )?)
}

/// Parses every whole record of `buffer` (and a final unterminated one when
/// `at_end`).
///
/// Fields are gathered as bytes and checked as UTF-8 once per column, in
/// one pass over its values; only when that finds a bad byte are the
/// records parsed again, field by field, to name the line it is on.
fn parse_records(copy: &mut CopyIn, buffer: &[u8], at_end: bool) -> Result<Parsed> {
    let (line, skip_header, ended) = (copy.line, copy.skip_header, copy.ended);
    if let Some(parsed) = gather_records(copy, buffer, at_end, false)? {
        return Ok(parsed);
    }
    (copy.line, copy.skip_header, copy.ended) = (line, skip_header, ended);
    Ok(gather_records(copy, buffer, at_end, true)?.expect("fields checked one by one are UTF-8"))
}

/// [`parse_records`]' pass over the records: `None` when a column's
/// values are not UTF-8 and `check_each` was not set to find where.
fn gather_records(
    copy: &mut CopyIn,
    buffer: &[u8],
    at_end: bool,
    check_each: bool,
) -> Result<Option<Parsed>> {
    let width = copy.columns.len();
    // Sized as the last chunk's columns were: growing them would copy
    // every value again, into memory the kernel must first zero.
    let mut columns: Vec<BinaryBuilder> = (0..width)
        .map(|i| {
            let (rows, bytes) = copy.chunk_sizes.get(i).copied().unwrap_or_default();
            BinaryBuilder::with_capacity(rows, bytes)
        })
        .collect();
    let mut fields: Vec<Option<Cow<[u8]>>> = Vec::with_capacity(width);
    let mut pos = 0;
    while pos < buffer.len() && !copy.ended {
        let Some((end, next)) = record_end(&copy.format, &buffer[pos..], at_end)? else {
            break;
        };
        let record = &buffer[pos..pos + end];
        pos += next;
        copy.line += 1;
        if copy.skip_header {
            copy.skip_header = false;
            continue;
        }
        if matches!(copy.format, CopyFormat::Text { .. }) && record == b"\\." {
            copy.ended = true;
            break;
        }
        fields.clear();
        split_fields(&copy.format, record, &mut fields).map_err(|e| at_line(copy, e))?;
        if fields.len() < width {
            let column = &copy.def.columns[copy.columns[fields.len()]].name;
            return Err(at_line(
                copy,
                Error::new(
                    BAD_COPY_FORMAT,
                    format!("missing data for column \"{column}\""),
                ),
            ));
        }
        if fields.len() > width {
            return Err(at_line(
                copy,
                Error::new(BAD_COPY_FORMAT, "extra data after last expected column"),
            ));
        }
        for (builder, field) in columns.iter_mut().zip(&fields) {
            match field {
                None => builder.append_null(),
                Some(bytes) => {
                    if check_each && std::str::from_utf8(bytes).is_err() {
                        return Err(at_line(copy, not_utf8()));
                    }
                    builder.append_value(bytes);
                }
            }
        }
    }
    let mut arrays = Vec::with_capacity(width);
    copy.chunk_sizes.clear();
    for mut builder in columns {
        let bytes = builder.finish();
        copy.chunk_sizes.push((bytes.len(), bytes.values().len()));
        match StringArray::try_from_binary(bytes) {
            Ok(text) => arrays.push(Arc::new(text) as ArrayRef),
            Err(_) if !check_each => return Ok(None),
            Err(e) => unreachable!("fields checked one by one are UTF-8: {e}"),
        }
    }
    Ok(Some(Parsed {
        fields: field_batch(arrays)?,
        consumed: if copy.ended { buffer.len() } else { pos },
    }))
}

fn not_utf8() -> Error {
    Error::new(
        CHARACTER_NOT_IN_REPERTOIRE,
        "invalid byte sequence for encoding \"UTF8\"",
    )
}

/// The signature binary COPY data starts with.
const BINARY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
/// The header's flags bit that says each row carries an OID.
const BINARY_FLAG_OIDS: u32 = 1 << 16;

/// Parses every whole tuple of binary COPY data in `buffer`: after the
/// header, each is a 16-bit field count (-1 ends the data), then each field
/// as a 32-bit length (-1 for NULL) and its value in binary form.
fn parse_binary(copy: &mut CopyIn, buffer: &[u8], at_end: bool) -> Result<Parsed> {
    let types: Vec<PgType> = copy
        .columns
        .iter()
        .map(|&c| copy.def.columns[c].ty.clone())
        .collect();
    let mut columns: Vec<Vec<ScalarValue>> = vec![Vec::new(); types.len()];
    let truncated = || Error::new(BAD_COPY_FORMAT, "unexpected EOF in COPY data");
    let mut pos = 0;
    if copy.skip_header {
        let Some(header_bytes) = binary_header(buffer)? else {
            return if at_end {
                Err(truncated())
            } else {
                Ok(Parsed {
                    fields: field_batch(vec![])?,
                    consumed: 0,
                })
            };
        };
        copy.skip_header = false;
        pos = header_bytes;
    }
    while pos < buffer.len() && !copy.ended {
        let Some((tuple, next)) = binary_tuple(&buffer[pos..])? else {
            if at_end {
                return Err(at_line(copy, truncated()));
            }
            break;
        };
        pos += next;
        let Tuple::Row(tuple) = tuple else {
            copy.ended = true;
            break;
        };
        copy.line += 1;
        if tuple.len() != types.len() {
            return Err(at_line(
                copy,
                Error::new(
                    BAD_COPY_FORMAT,
                    format!(
                        "row field count is {}, expected {}",
                        tuple.len(),
                        types.len()
                    ),
                ),
            ));
        }
        for ((column, ty), raw) in columns.iter_mut().zip(&types).zip(tuple) {
            let value = match raw {
                None => ScalarValue::try_from(&binary::decoded_type(ty))?,
                Some(raw) => binary::decode(raw, ty).map_err(|e| at_line(copy, e))?,
            };
            column.push(value);
        }
    }
    let arrays = columns
        .into_iter()
        .zip(&types)
        .map(|(values, ty)| {
            if values.is_empty() {
                Ok(new_empty_array(&binary::decoded_type(ty)))
            } else {
                Ok(ScalarValue::iter_to_array(values)?)
            }
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    Ok(Parsed {
        fields: field_batch(arrays)?,
        consumed: if copy.ended { buffer.len() } else { pos },
    })
}

/// The length of the binary header at the start of `data`, or None if
/// more data is needed to see all of it.
fn binary_header(data: &[u8]) -> Result<Option<usize>> {
    let fixed = BINARY_SIGNATURE.len() + 8;
    let signature = &data[..data.len().min(BINARY_SIGNATURE.len())];
    if !BINARY_SIGNATURE.starts_with(signature) {
        return Err(Error::new(
            BAD_COPY_FORMAT,
            "COPY file signature not recognized",
        ));
    }
    let Some(words) = data.get(BINARY_SIGNATURE.len()..fixed) else {
        return Ok(None);
    };
    let flags = u32::from_be_bytes(words[0..4].try_into().expect("4 bytes"));
    if flags & BINARY_FLAG_OIDS != 0 {
        return Err(Error::unsupported("COPY binary data with OIDs"));
    }
    let extension = u32::from_be_bytes(words[4..8].try_into().expect("4 bytes")) as usize;
    Ok((data.len() >= fixed + extension).then_some(fixed + extension))
}

/// A tuple of binary COPY data.
enum Tuple<'a> {
    /// Its fields' values; None is NULL.
    Row(Vec<Option<&'a [u8]>>),
    /// The end-of-data marker.
    End,
}

/// The tuple at the start of `data` and the bytes it took; None if it is
/// not whole yet.
fn binary_tuple(data: &[u8]) -> Result<Option<(Tuple<'_>, usize)>> {
    let Some(count) = data.get(0..2) else {
        return Ok(None);
    };
    let count = i16::from_be_bytes(count.try_into().expect("2 bytes"));
    if count == -1 {
        return Ok(Some((Tuple::End, 2)));
    }
    let count = usize::try_from(count)
        .map_err(|_| Error::new(BAD_COPY_FORMAT, format!("invalid field count {count}")))?;
    let mut fields = Vec::with_capacity(count);
    let mut pos = 2;
    for _ in 0..count {
        let Some(length) = data.get(pos..pos + 4) else {
            return Ok(None);
        };
        let length = i32::from_be_bytes(length.try_into().expect("4 bytes"));
        pos += 4;
        if length == -1 {
            fields.push(None);
            continue;
        }
        let length = usize::try_from(length)
            .map_err(|_| Error::new(BAD_COPY_FORMAT, format!("invalid field size {length}")))?;
        let Some(value) = data.get(pos..pos + length) else {
            return Ok(None);
        };
        fields.push(Some(value));
        pos += length;
    }
    Ok(Some((Tuple::Row(fields), pos)))
}

fn at_line(copy: &CopyIn, mut e: Error) -> Error {
    e.message = format!(
        "{} (COPY {}, line {})",
        e.message, copy.table.name, copy.line
    );
    e
}

/// Where the record at the start of `data` ends: (length without the line
/// ending, length with it). None if the record is not complete yet.
fn record_end(format: &CopyFormat, data: &[u8], at_end: bool) -> Result<Option<(usize, usize)>> {
    let newline = match *format {
        CopyFormat::Csv { quote, escape, .. } => csv_newline(data, quote, escape),
        CopyFormat::Text { .. } => text_newline(data).ok_or(false),
        CopyFormat::Binary => unreachable!("binary COPY FROM is parsed by parse_binary"),
    };
    match newline {
        Ok(i) => {
            let end = i - usize::from(i > 0 && data[i - 1] == b'\r');
            Ok(Some((end, i + 1)))
        }
        Err(_) if !at_end => Ok(None),
        Err(true) => Err(Error::new(BAD_COPY_FORMAT, "unterminated CSV quoted field")),
        Err(false) => Ok(Some((data.len(), data.len()))),
    }
}

/// The first newline of CSV data that is not inside quotes; if there is
/// none, whether the data ends inside quotes. An escape other than the
/// quote escapes a quote or itself, as in PostgreSQL. The search jumps
/// from one quote (or escape) to the next rather than going byte by byte.
fn csv_newline(data: &[u8], quote: u8, escape: u8) -> std::result::Result<usize, bool> {
    let mut i = 0;
    loop {
        let Some(at) = memchr::memchr2(b'\n', quote, &data[i..]) else {
            return Err(false);
        };
        i += at;
        if data[i] == b'\n' {
            return Ok(i);
        }
        i += 1;
        // Inside quotes, to the closing quote. Where the escape is the
        // quote, a doubled quote closes and at once reopens.
        loop {
            let found = if escape == quote {
                memchr::memchr(quote, &data[i..])
            } else {
                memchr::memchr2(quote, escape, &data[i..])
            };
            let Some(at) = found else {
                return Err(true);
            };
            i += at + 1;
            if data[i - 1] == quote {
                break;
            }
            if data.get(i).is_some_and(|&b| b == quote || b == escape) {
                i += 1;
            }
        }
    }
}

/// The first newline of text-format data that no backslash escapes.
fn text_newline(data: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        i += memchr::memchr2(b'\n', b'\\', data.get(i..)?)?;
        if data[i] == b'\n' {
            return Some(i);
        }
        i += 2;
    }
}

/// The byte that makes a record more than its delimiters: CSV's quote,
/// the text format's backslash.
fn special_byte(format: &CopyFormat) -> u8 {
    match format {
        CopyFormat::Csv { quote, .. } => *quote,
        CopyFormat::Text { .. } => b'\\',
        CopyFormat::Binary => unreachable!("binary COPY FROM is parsed by parse_binary"),
    }
}

/// Splits one record into its fields; `None` is NULL. A field borrows
/// from the record unless escapes or doubled quotes make it differ.
fn split_fields<'r>(
    format: &CopyFormat,
    record: &'r [u8],
    out: &mut Vec<Option<Cow<'r, [u8]>>>,
) -> Result<()> {
    if memchr::memchr(special_byte(format), record).is_none() {
        // Without quotes or escapes, fields are what lies between delimiters.
        let (CopyFormat::Text { delimiter, null }
        | CopyFormat::Csv {
            delimiter, null, ..
        }) = format
        else {
            unreachable!("binary COPY FROM is parsed by parse_binary");
        };
        let mut start = 0;
        for end in memchr::memchr_iter(*delimiter, record).chain([record.len()]) {
            let field = &record[start..end];
            out.push((field != null.as_slice()).then_some(Cow::Borrowed(field)));
            start = end + 1;
        }
        return Ok(());
    }
    match format {
        CopyFormat::Text { delimiter, null } => {
            for raw in record.split(|b| b == delimiter) {
                if raw == null.as_slice() {
                    out.push(None);
                } else {
                    out.push(Some(unescape_text(raw)?));
                }
            }
        }
        CopyFormat::Csv {
            delimiter,
            quote,
            escape,
            null,
        } => {
            let mut i = 0;
            loop {
                let (field, end) = csv_field(record, i, *delimiter, *quote, *escape)?;
                out.push(match field {
                    CsvField::Unquoted(value) if value == null.as_slice() => None,
                    CsvField::Unquoted(value) | CsvField::Quoted(value) => Some(value),
                });
                if end >= record.len() {
                    break;
                }
                i = end + 1;
            }
        }
        CopyFormat::Binary => unreachable!("binary COPY FROM is parsed by parse_binary"),
    }
    Ok(())
}

/// A CSV field's value, and whether any of it was quoted: a quoted empty
/// string is never NULL.
enum CsvField<'r> {
    Unquoted(Cow<'r, [u8]>),
    Quoted(Cow<'r, [u8]>),
}

/// The CSV field that starts at `start`, and where it ends (at a delimiter
/// or the record's end).
fn csv_field(
    record: &[u8],
    start: usize,
    delimiter: u8,
    quote: u8,
    escape: u8,
) -> Result<(CsvField<'_>, usize)> {
    let rest = &record[start..];
    // Most fields are plain, or one quoted run with no quote or escape
    // inside: those are slices of the record.
    let plain_end = match memchr::memchr2(delimiter, quote, rest) {
        None => Some(rest.len()),
        Some(at) => (rest[at] == delimiter).then_some(at),
    };
    if let Some(plain_end) = plain_end {
        return Ok((
            CsvField::Unquoted(Cow::Borrowed(&rest[..plain_end])),
            start + plain_end,
        ));
    }
    if rest[0] == quote
        && let Some(close) = memchr::memchr2(quote, escape, &rest[1..])
        && rest[1 + close] == quote
        && rest.get(2 + close).is_none_or(|&b| b == delimiter)
    {
        return Ok((
            CsvField::Quoted(Cow::Borrowed(&rest[1..1 + close])),
            start + 2 + close,
        ));
    }
    let mut value = Vec::new();
    let mut quoted = false;
    let mut i = start;
    while i < record.len() && record[i] != delimiter {
        if record[i] != quote {
            value.push(record[i]);
            i += 1;
            continue;
        }
        quoted = true;
        i += 1;
        loop {
            let Some(&b) = record.get(i) else {
                return Err(Error::new(BAD_COPY_FORMAT, "unterminated CSV quoted field"));
            };
            if b == escape && record.get(i + 1) == Some(&quote) {
                value.push(quote);
                i += 2;
            } else if b == quote {
                i += 1;
                break;
            } else if b == escape && escape != quote && record.get(i + 1) == Some(&escape) {
                value.push(escape);
                i += 2;
            } else {
                value.push(b);
                i += 1;
            }
        }
    }
    let value = Cow::Owned(value);
    let field = if quoted {
        CsvField::Quoted(value)
    } else {
        CsvField::Unquoted(value)
    };
    Ok((field, i))
}

/// Decodes the text format's backslash escapes.
fn unescape_text(raw: &[u8]) -> Result<Cow<'_, [u8]>> {
    if !raw.contains(&b'\\') {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b != b'\\' || i + 1 == raw.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let c = raw[i + 1];
        i += 2;
        match c {
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                let mut value = u32::from(c - b'0');
                let mut digits = 1;
                while digits < 3 && i < raw.len() && (b'0'..=b'7').contains(&raw[i]) {
                    value = value * 8 + u32::from(raw[i] - b'0');
                    i += 1;
                    digits += 1;
                }
                out.push((value & 0xff) as u8);
            }
            b'x' if i < raw.len() && raw[i].is_ascii_hexdigit() => {
                let mut value = 0u32;
                let mut digits = 0;
                while digits < 2 && i < raw.len() && raw[i].is_ascii_hexdigit() {
                    value = value * 16 + (raw[i] as char).to_digit(16).expect("hex digit");
                    i += 1;
                    digits += 1;
                }
                out.push(value as u8);
            }
            other => out.push(other),
        }
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(format: &CopyFormat, record: &str) -> Vec<Option<String>> {
        let mut out = Vec::new();
        split_fields(format, record.as_bytes(), &mut out).unwrap();
        out.into_iter()
            .map(|f| f.map(|b| String::from_utf8(b.into_owned()).unwrap()))
            .collect()
    }

    fn text() -> CopyFormat {
        CopyFormat::Text {
            delimiter: b'\t',
            null: b"\\N".to_vec(),
        }
    }

    fn csv() -> CopyFormat {
        CopyFormat::Csv {
            delimiter: b',',
            quote: b'"',
            escape: b'"',
            null: Vec::new(),
        }
    }

    #[test]
    fn text_fields_escapes_and_nulls() {
        assert_eq!(
            split(&text(), "1\ta\\tb\\\\c\t\\N\t\\101\\x42"),
            vec![
                Some("1".into()),
                Some("a\tb\\c".into()),
                None,
                Some("AB".into())
            ]
        );
        assert_eq!(split(&text(), ""), vec![Some(String::new())]);
    }

    #[test]
    fn csv_quotes_nulls_and_empty_strings() {
        assert_eq!(
            split(&csv(), r#"1,"a,b","say ""hi""",,"""#),
            vec![
                Some("1".into()),
                Some("a,b".into()),
                Some("say \"hi\"".into()),
                None,
                Some(String::new()),
            ]
        );
    }

    #[test]
    fn csv_with_another_escape_character() {
        let format = CopyFormat::Csv {
            delimiter: b',',
            quote: b'"',
            escape: b'\\',
            null: b"NULL".to_vec(),
        };
        assert_eq!(
            split(&format, r#""a\"b","c\\d",e\f,"NULL",NULL,"x"y"#),
            vec![
                Some("a\"b".into()),
                Some("c\\d".into()),
                Some("e\\f".into()),
                Some("NULL".into()),
                None,
                Some("xy".into()),
            ]
        );
    }

    #[test]
    fn records_end_at_newlines_outside_quotes() {
        let data = b"1,\"x\ny\"\r\n2,z";
        let (end, next) = record_end(&csv(), data, false).unwrap().unwrap();
        assert_eq!(&data[..end], b"1,\"x\ny\"");
        assert_eq!(record_end(&csv(), &data[next..], false).unwrap(), None);
        assert_eq!(
            record_end(&csv(), &data[next..], true).unwrap(),
            Some((3, 3))
        );
        // An escaped newline in the text format does not end a record.
        let text_data = b"a\\\nb\nc";
        assert_eq!(record_end(&text(), text_data, false).unwrap(), Some((4, 5)));
        assert!(record_end(&csv(), b"\"open", true).is_err());
        // An escape other than the quote escapes itself, so the quote after
        // two of them closes the field, as in PostgreSQL.
        let backslash = CopyFormat::Csv {
            delimiter: b',',
            quote: b'"',
            escape: b'\\',
            null: Vec::new(),
        };
        let data = b"\"a\\\\\",b\nc\n";
        assert_eq!(record_end(&backslash, data, false).unwrap(), Some((7, 8)));
        let data = b"\"a\\\"\nb\"\nc";
        assert_eq!(record_end(&backslash, data, false).unwrap(), Some((7, 8)));
        // Records with nothing special in them end at the newline.
        assert_eq!(
            record_end(&csv(), b"1,2\r\n3", false).unwrap(),
            Some((3, 5))
        );
        assert_eq!(record_end(&text(), b"\n", false).unwrap(), Some((0, 1)));
    }

    #[test]
    fn plain_records_split_at_delimiters() {
        assert_eq!(
            split(&csv(), "1,,x y,"),
            vec![Some("1".into()), None, Some("x y".into()), None]
        );
        let text_with_word_null = CopyFormat::Text {
            delimiter: b'|',
            null: b"NULL".to_vec(),
        };
        assert_eq!(
            split(&text_with_word_null, "NULL|a||NULLS"),
            vec![
                None,
                Some("a".into()),
                Some(String::new()),
                Some("NULLS".into())
            ]
        );
    }

    #[test]
    fn plain_decimals_parse_as_arrows_cast_does() {
        use datafusion::arrow::compute::cast;
        let accepted = [
            "0",
            "-0",
            "+7",
            "12.5",
            "-12.50",
            ".5",
            "5.",
            "0007.25",
            "9999999999999.99",
        ];
        let refused = [
            "1.005",
            " 1.5",
            "1.5 ",
            "",
            ".",
            "-",
            "1e3",
            "1,5",
            "1.2.3",
            "10000000000000",
            "--1",
            "½",
        ];
        let ty = DataType::Decimal128(15, 2);
        for value in accepted {
            let text = StringArray::from(vec![Some(value), None]);
            let fast = plain_decimals(&text, 15, 2).unwrap_or_else(|| panic!("{value}"));
            let cast = cast(&text, &ty).unwrap();
            assert_eq!(&fast, cast.as_primitive(), "{value}");
        }
        for value in refused {
            let text = StringArray::from(vec![Some("1"), Some(value)]);
            assert!(plain_decimals(&text, 15, 2).is_none(), "{value}");
        }
        // The widest precision: digits that overflow i128 are refused, not
        // wrapped.
        let wide = "9".repeat(40);
        let text = StringArray::from(vec![wide.as_str()]);
        assert!(plain_decimals(&text, 38, 0).is_none());
    }

    #[test]
    fn plain_dates_parse_as_arrows_cast_does() {
        use datafusion::arrow::compute::cast;
        // Every day of a whole 400-year cycle of the calendar (which then
        // repeats), of the years around 1970 and of the last years, in the
        // form COPY data has.
        let date = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let epoch = date(1970, 1, 1);
        let mut texts = Vec::new();
        let mut expected = Vec::new();
        for (first, last) in [
            (date(1, 1, 1), date(401, 3, 1)),
            (date(1899, 1, 1), date(2101, 1, 1)),
            (date(9998, 1, 1), date(9999, 12, 31)),
        ] {
            let mut day = first;
            while day <= last {
                texts.push(day.format("%Y-%m-%d").to_string());
                expected.push((day - epoch).num_days() as i32);
                day = day.succ_opt().unwrap();
            }
        }
        let text = StringArray::from(texts);
        let fast = plain_dates(&text).unwrap().expect("every day is plain");
        assert_eq!(fast.values().as_ref(), expected.as_slice());
        let cast = cast(&text, &DataType::Date32).unwrap();
        assert_eq!(&fast, cast.as_primitive());
        // Left to the cast, which reads some (2024-1-05) and words the
        // errors of the rest.
        for value in [
            "2024-1-05",
            "2024/01/05",
            " 2024-01-05",
            "20240105",
            "12024-01-05",
            "2024-01-05 BC",
            "2O24-01-05",
            "epoch",
            "",
        ] {
            let text = StringArray::from(vec![Some("2024-02-29"), None, Some(value)]);
            assert!(plain_dates(&text).unwrap().is_none(), "{value}");
        }
        // PostgreSQL's 22008, also after a value left to the cast.
        for value in [
            "2024-02-30",
            "2023-02-29",
            "1900-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-01-00",
            "2024-04-31",
            "0000-01-01",
        ] {
            let text = StringArray::from(vec![Some("2024-1-5"), Some(value)]);
            let e = plain_dates(&text).unwrap_err();
            assert_eq!(e.sqlstate, sqlstate::DATETIME_FIELD_OVERFLOW, "{value}");
            assert_eq!(
                e.message,
                format!("date/time field value out of range: \"{value}\"")
            );
        }
        let text = StringArray::from(vec![Some("2024-02-29"), None]);
        let fast = plain_dates(&text).unwrap().unwrap();
        assert!(fast.is_null(1));
        assert_eq!(fast.value(0), 19_782);
    }
}
