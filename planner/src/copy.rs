//! COPY ... FROM STDIN: bulk loads in PostgreSQL's text, CSV and binary
//! formats. (COPY ... TO STDOUT is `copy_to`.)
//!
//! ```text
//!  CopyData ──► buffer ──(≥ copy_chunk_bytes_max, whole records)──► parse
//!      parse: integer, numeric and date fields in their plain form read
//!             into their types (copy_values), the rest as text columns
//!             ──► DataFusion casts + DEFAULTs ──► typed rows
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
    Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions, StringArray, new_empty_array,
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
use crate::copy_values::{FieldSink, Finished, PlainType, plain_dates, plain_decimals};
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
    /// Each field's type where its values are read as the records are
    /// split (`copy_values`); `None` once one was not plain, or for a type
    /// that is cast from text.
    plain: Vec<Option<PlainType>>,
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
        let plain = columns
            .iter()
            .map(|&c| PlainType::of(&def.columns[c].ty.arrow_type()))
            .collect();
        Ok(CopyIn {
            table,
            def,
            columns,
            exprs,
            format,
            skip_header,
            buffer: Vec::new(),
            chunk_sizes: Vec::new(),
            plain,
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
/// every value; its cast to date goes through chrono's calendar for each
/// value. (Fields that were plain throughout are typed already.)
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
/// Fields of a plain type are read as they are split (`copy_values`); a
/// value that is not plain turns its field to text and the records are
/// split again. Text fields are gathered as bytes and checked as UTF-8
/// once per column, in one pass over its values; only when that finds a
/// bad byte are the records split again, field by field, to name the line
/// it is on. Each field turns to text once at most, so the records are
/// split at most `width + 2` times.
fn parse_records(copy: &mut CopyIn, buffer: &[u8], at_end: bool) -> Result<Parsed> {
    let (line, skip_header, ended) = (copy.line, copy.skip_header, copy.ended);
    let mut check_each = false;
    loop {
        match gather_records(copy, buffer, at_end, check_each)? {
            Gathered::Records(parsed) => return Ok(parsed),
            Gathered::NotUtf8 => {
                assert!(!check_each, "fields checked one by one are UTF-8");
                check_each = true;
            }
            Gathered::NotPlain(field) => {
                assert!(
                    copy.plain[field].is_some(),
                    "only plain fields turn to text"
                );
                copy.plain[field] = None;
            }
        }
        (copy.line, copy.skip_header, copy.ended) = (line, skip_header, ended);
    }
}

/// What a pass over the records found.
enum Gathered {
    Records(Parsed),
    /// A text field's values are not UTF-8 (and `check_each` was not set
    /// to find where).
    NotUtf8,
    /// A value of this plain field is not plain.
    NotPlain(usize),
}

/// [`parse_records`]' pass over the records.
fn gather_records(
    copy: &mut CopyIn,
    buffer: &[u8],
    at_end: bool,
    check_each: bool,
) -> Result<Gathered> {
    let width = copy.columns.len();
    // Sized as the last chunk's columns were: growing them would copy
    // every value again, into memory the kernel must first zero.
    let mut columns: Vec<FieldSink> = (0..width)
        .map(|i| {
            let (rows, bytes) = copy.chunk_sizes.get(i).copied().unwrap_or_default();
            FieldSink::new(copy.plain[i], rows, bytes)
        })
        .collect();
    let mut fields: Vec<Option<Cow<[u8]>>> = Vec::with_capacity(width);
    let mut pos = 0;
    while pos < buffer.len() && !copy.ended {
        fields.clear();
        let simple = match &copy.format {
            CopyFormat::Csv {
                delimiter,
                quote,
                escape,
                null,
            } => simple_csv_record(
                &buffer[pos..],
                *delimiter,
                *quote,
                *escape,
                null,
                &mut fields,
            ),
            _ => None,
        };
        // Split already, or the record to split.
        let (record, next) = match simple {
            Some(next) => (None, next),
            None => {
                let Some((end, next)) = record_end(&copy.format, &buffer[pos..], at_end)? else {
                    break;
                };
                (Some(&buffer[pos..pos + end]), next)
            }
        };
        pos += next;
        copy.line += 1;
        if copy.skip_header {
            copy.skip_header = false;
            continue;
        }
        if let Some(record) = record {
            if matches!(copy.format, CopyFormat::Text { .. }) && record == b"\\." {
                copy.ended = true;
                break;
            }
            fields.clear();
            split_fields(&copy.format, record, &mut fields).map_err(|e| at_line(copy, e))?;
        }
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
        for (i, (sink, field)) in columns.iter_mut().zip(&fields).enumerate() {
            let field = field.as_deref();
            if check_each && field.is_some_and(|bytes| std::str::from_utf8(bytes).is_err()) {
                return Err(at_line(copy, not_utf8()));
            }
            if !sink.append(field).map_err(|e| at_line(copy, e))? {
                return Ok(Gathered::NotPlain(i));
            }
        }
    }
    let mut arrays = Vec::with_capacity(width);
    copy.chunk_sizes.clear();
    for mut sink in columns {
        let bytes = match sink.finish() {
            Finished::Plain(values) => {
                copy.chunk_sizes.push((values.len(), 0));
                arrays.push(values);
                continue;
            }
            Finished::Text(bytes) => bytes,
        };
        copy.chunk_sizes.push((bytes.len(), bytes.values().len()));
        match StringArray::try_from_binary(bytes) {
            Ok(text) => arrays.push(Arc::new(text) as ArrayRef),
            Err(_) if !check_each => return Ok(Gathered::NotUtf8),
            Err(e) => unreachable!("fields checked one by one are UTF-8: {e}"),
        }
    }
    Ok(Gathered::Records(Parsed {
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

/// The CSV record at the start of `data`, split into `out` in one pass
/// if it has the form most data has: each field unquoted, or quoted whole
/// with no quote or escape inside, and a newline at its end. Returns where
/// the next record starts, or `None` (`out` then holds anything) to leave
/// the record to [`record_end`] and [`split_fields`], which read every
/// form. Fields are a few bytes long: a search call for each field and
/// three for each record, as that general path makes, cost more than
/// looking at the bytes once.
fn simple_csv_record<'r>(
    data: &'r [u8],
    delimiter: u8,
    quote: u8,
    escape: u8,
    null: &[u8],
    out: &mut Vec<Option<Cow<'r, [u8]>>>,
) -> Option<usize> {
    let mut i = 0;
    loop {
        let (value, quoted, end) = if data.get(i) == Some(&quote) {
            let close = i + 1 + memchr::memchr(quote, &data[i + 1..])?;
            let value = &data[i + 1..close];
            if escape != quote && memchr::memchr(escape, value).is_some() {
                return None;
            }
            (value, true, close + 1)
        } else {
            let mut j = i;
            while let Some(&b) = data.get(j) {
                if b == delimiter || b == b'\n' || b == quote {
                    break;
                }
                j += 1;
            }
            (&data[i..j], false, j)
        };
        let push = |out: &mut Vec<_>, value: &'r [u8]| {
            out.push((quoted || value != null).then_some(Cow::Borrowed(value)));
        };
        match data.get(end) {
            Some(&b) if b == delimiter => {
                push(out, value);
                i = end + 1;
            }
            Some(b'\n') => {
                // A record may end in CRLF.
                let value = match value.strip_suffix(b"\r") {
                    Some(value) if !quoted => value,
                    _ => value,
                };
                push(out, value);
                return Some(end + 1);
            }
            Some(b'\r') if quoted && data.get(end + 1) == Some(&b'\n') => {
                push(out, value);
                return Some(end + 2);
            }
            // A quote inside a field, a doubled one, or the data's end.
            _ => return None,
        }
    }
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
    fn simple_csv_records_split_as_every_record_does() {
        let backslash = CopyFormat::Csv {
            delimiter: b',',
            quote: b'"',
            escape: b'\\',
            null: b"N".to_vec(),
        };
        // Every record of up to six bytes that matter to CSV: where the
        // one-pass split takes it, it splits it as the general path does.
        let alphabet = b"a,\"\n\r\\N";
        for format in [csv(), backslash] {
            let CopyFormat::Csv {
                delimiter,
                quote,
                escape,
                null,
            } = &format
            else {
                unreachable!()
            };
            let mut taken = 0;
            let mut data = Vec::new();
            for len in 0..=6u32 {
                for mut n in 0..alphabet.len().pow(len) {
                    data.clear();
                    for _ in 0..len {
                        data.push(alphabet[n % alphabet.len()]);
                        n /= alphabet.len();
                    }
                    let mut simple = Vec::new();
                    let Some(next) =
                        simple_csv_record(&data, *delimiter, *quote, *escape, null, &mut simple)
                    else {
                        continue;
                    };
                    taken += 1;
                    let (end, general_next) = record_end(&format, &data, false).unwrap().unwrap();
                    assert_eq!(next, general_next, "{data:?}");
                    let mut general = Vec::new();
                    split_fields(&format, &data[..end], &mut general).unwrap();
                    assert_eq!(simple, general, "{data:?}");
                }
            }
            assert!(taken > 1000, "{taken}");
        }
        // TPC-H's records are simple.
        let mut fields = Vec::new();
        let record = b"1,155190,0.04,N,1996-03-13,\"egular courts above the\"\r\nnext";
        assert_eq!(
            simple_csv_record(record, b',', b'"', b'"', b"", &mut fields),
            Some(record.len() - 4)
        );
        assert_eq!(fields.len(), 6);
        assert_eq!(fields[5].as_deref(), Some(&b"egular courts above the"[..]));
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
}
