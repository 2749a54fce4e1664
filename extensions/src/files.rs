//! Files as tables: `read_ndjson(path)` reads newline-delimited JSON from a
//! file, a directory or a glob (`/data/events/*.ndjson`), one row per line
//! with the line as a jsonb document in the column `doc`.
//!
//! ```text
//!  read_ndjson('/d/*.ndjson')
//!    planning:   ReadNdjson ──► NdjsonFiles (the path as a ListingTableUrl)
//!    scan:       list the files the path names, in path order
//!    execution:  one partition per file: chunks ──► lines ──► jsonb text
//! ```
//!
//! Documents stay documents: a line is whatever JSON it holds (objects of
//! any shape, arrays, scalars), its fields are read with `->>` and the
//! other operators, and `INSERT INTO t (doc) SELECT doc FROM read_ndjson(..)`
//! loads a file. Inferring columns from the keys would have to read every
//! line before planning, or guess from a sample and then drop or refuse
//! what the sample missed.
//!
//! A file is read as a stream of chunks, never whole: memory holds a chunk
//! and the current line. The path resolves in the session's object store
//! registry, so a store registered for a URL scheme serves it as the local
//! disk serves plain paths.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{RecordBatch, RecordBatchOptions, StringBuilder};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::object_store::path::Path;
use datafusion::object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use crate::error::{Error, sqlstate};
use crate::json::{self, Kind};

/// The longest line read: jsonb's own limit on a value, 1 GiB less a
/// header, which a line past this could never become.
const LINE_BYTES_MAX: usize = (1 << 30) - 1;

/// Compressed files are refused by name rather than read as garbage.
const COMPRESSED_SUFFIXES: &[&str] = &[".gz", ".bz2", ".xz", ".zst", ".zstd", ".lz4", ".zip"];

/// `read_ndjson(path)`, registered as a table function.
#[derive(Debug)]
pub struct ReadNdjson;

impl TableFunctionImpl for ReadNdjson {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let path = match args.exprs() {
            [Expr::Literal(value, _)] => match value.try_as_str() {
                Some(Some(path)) => path.to_string(),
                _ => {
                    return Err(Error::invalid_parameter("read_ndjson takes a path as text").into());
                }
            },
            [_] => {
                return Err(Error::new(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    "read_ndjson takes a constant path, not one computed from a query's values",
                )
                .into());
            }
            _ => {
                return Err(Error::new(
                    sqlstate::UNDEFINED_FUNCTION,
                    "read_ndjson takes one argument: a path, directory or glob",
                )
                .into());
            }
        };
        if COMPRESSED_SUFFIXES.iter().any(|s| path.ends_with(s)) {
            return Err(Error::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!("read_ndjson does not read compressed files yet: \"{path}\""),
            )
            .into());
        }
        let url = ListingTableUrl::parse(&path).map_err(|e| {
            Error::invalid_parameter(format!("\"{path}\" is not a path or URL: {e}"))
        })?;
        Ok(Arc::new(NdjsonFiles {
            path,
            url,
            schema: Arc::new(Schema::new(vec![Kind::Jsonb.field("doc")])),
        }))
    }
}

/// The files one `read_ndjson` call names.
#[derive(Debug)]
struct NdjsonFiles {
    /// The path as written, for messages.
    path: String,
    url: ListingTableUrl,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for NdjsonFiles {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let store = state.runtime_env().object_store(self.url.object_store())?;
        let ignore_subdirectory = state
            .config_options()
            .execution
            .listing_table_ignore_subdirectory;
        let mut files = self.list(store.as_ref(), ignore_subdirectory).await?;
        if files.is_empty() {
            return Err(self.no_files().into());
        }
        files.sort_by(|a, b| a.location.cmp(&b.location));
        let partitions = files
            .into_iter()
            .map(|file| {
                Arc::new(NdjsonFile {
                    store: store.clone(),
                    location: file.location,
                    schema: self.schema.clone(),
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        Ok(Arc::new(StreamingTableExec::try_new(
            self.schema.clone(),
            partitions,
            projection,
            [],
            false,
            limit,
        )?))
    }
}

impl NdjsonFiles {
    /// The files the path names now: a file, or those under a directory
    /// that match the glob. Listed afresh for every scan (files come and
    /// go between queries), where DataFusion's own listing would keep a
    /// table's list in the session's cache.
    async fn list(
        &self,
        store: &dyn ObjectStore,
        ignore_subdirectory: bool,
    ) -> Result<Vec<ObjectMeta>> {
        let prefix = self.url.prefix();
        if !self.url.is_collection() {
            match store.head(prefix).await {
                Ok(file) => return Ok(vec![file]),
                // Not a file: a directory, or the part of a glob before it.
                Err(datafusion::object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let files: Vec<ObjectMeta> = store.list(Some(prefix)).try_collect().await?;
        Ok(files
            .into_iter()
            .filter(|file| self.url.contains(&file.location, ignore_subdirectory))
            .collect())
    }

    fn no_files(&self) -> Error {
        Error::new(
            sqlstate::UNDEFINED_FILE,
            format!("could not find any file at \"{}\"", self.path),
        )
    }
}

/// One file, read as one partition.
#[derive(Debug)]
struct NdjsonFile {
    store: Arc<dyn ObjectStore>,
    location: Path,
    schema: SchemaRef,
}

impl PartitionStream for NdjsonFile {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let lines = Lines {
            store: self.store.clone(),
            location: self.location.clone(),
            chunks: None,
            pending: Vec::new(),
            start: 0,
            scanned: 0,
            eof: false,
            line: 0,
        };
        let rows_max = ctx.session_config().batch_size();
        let schema = self.schema.clone();
        let batches = futures::stream::try_unfold(lines, move |mut lines| {
            let schema = schema.clone();
            async move {
                let batch = lines.next_batch(&schema, rows_max).await?;
                Ok(batch.map(|b| (b, lines)))
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), batches))
    }
}

/// A file's lines, from the chunks its object store streams.
struct Lines {
    store: Arc<dyn ObjectStore>,
    location: Path,
    /// Opened on the first read.
    chunks: Option<BoxStream<'static, datafusion::object_store::Result<bytes::Bytes>>>,
    /// Bytes read and not yet handed out as lines, from `start` on.
    pending: Vec<u8>,
    start: usize,
    /// How far `pending` is known to hold no line break, so a long line
    /// arriving in many chunks is searched once.
    scanned: usize,
    eof: bool,
    /// The number of the last line handed out, from 1.
    line: u64,
}

impl Lines {
    /// The next up to `rows_max` documents; None at the end of the file.
    async fn next_batch(
        &mut self,
        schema: &SchemaRef,
        rows_max: usize,
    ) -> Result<Option<RecordBatch>> {
        let mut docs = StringBuilder::new();
        let mut rows = 0;
        while rows < rows_max {
            let Some(range) = self.next_line().await? else {
                break;
            };
            let bytes = &self.pending[range];
            let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let text = std::str::from_utf8(bytes).map_err(|_| {
                Error::new(
                    sqlstate::CHARACTER_NOT_IN_REPERTOIRE,
                    "invalid byte sequence for encoding \"UTF8\"",
                )
                .with_detail(self.place())
            })?;
            let doc = json::parse(text).map_err(|e| {
                let detail = match &e.detail {
                    Some(d) => format!("{d} {}", self.place()),
                    None => self.place(),
                };
                e.with_detail(detail)
            })?;
            docs.append_value(doc.to_jsonb_text());
            rows += 1;
        }
        if rows == 0 {
            return Ok(None);
        }
        Ok(Some(RecordBatch::try_new_with_options(
            schema.clone(),
            vec![Arc::new(docs.finish())],
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?))
    }

    /// Where the last line handed out sits, for messages.
    fn place(&self) -> String {
        format!("In line {} of \"{}\".", self.line, self.location)
    }

    /// The bytes of the next line in `pending`, without its line break;
    /// valid until the next call.
    async fn next_line(&mut self) -> Result<Option<Range<usize>>> {
        loop {
            let from = self.scanned.max(self.start);
            if let Some(i) = self.pending[from..].iter().position(|b| *b == b'\n') {
                let line = self.start..from + i;
                self.start = from + i + 1;
                self.line += 1;
                return Ok(Some(line));
            }
            self.scanned = self.pending.len();
            if self.eof {
                if self.start == self.pending.len() {
                    return Ok(None);
                }
                let line = self.start..self.pending.len();
                self.start = self.pending.len();
                self.line += 1;
                return Ok(Some(line));
            }
            if self.pending.len() - self.start > LINE_BYTES_MAX {
                return Err(Error::new(
                    sqlstate::PROGRAM_LIMIT_EXCEEDED,
                    format!(
                        "line {} of \"{}\" is longer than {LINE_BYTES_MAX} bytes",
                        self.line + 1,
                        self.location
                    ),
                )
                .into());
            }
            // Lines handed out are done with: keep only the partial one.
            self.pending.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
            let chunks = match &mut self.chunks {
                Some(chunks) => chunks,
                None => self
                    .chunks
                    .insert(self.store.get(&self.location).await?.into_stream()),
            };
            match chunks.next().await {
                Some(chunk) => self.pending.extend_from_slice(&chunk?),
                None => self.eof = true,
            }
        }
    }
}
