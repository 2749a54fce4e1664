//! Files as tables, over a path, a directory or a glob, on the local disk
//! or in any object store the session reaches (`s3://bucket/key`):
//!
//! - `read_parquet(path)` and `read_csv(path [, header [, delimiter]])`:
//!   the files' rows, with the columns the files declare (Parquet) or that
//!   their first rows suggest (CSV), and a directory's Hive-style
//!   subdirectories (`month=11/`) as text columns, through DataFusion's
//!   listing table, so filters and projections reach the files;
//! - `read_ndjson(path)`: newline-delimited JSON, one row per line with the
//!   line as a jsonb document in the column `doc`;
//! - `files(path)`: one row per file, with its `path`, `size`,
//!   `last_modified` and `content` as bytea.
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
//! disk serves plain paths. Listings are made afresh for every statement:
//! files come and go between queries.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    BinaryBuilder, Int64Builder, RecordBatch, RecordBatchOptions, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Result, ScalarValue};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
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

/// The compressions a file's name ends in that reads decompress.
const COMPRESSIONS: &[(&str, FileCompressionType)] = &[
    (".gz", FileCompressionType::GZIP),
    (".bz2", FileCompressionType::BZIP2),
    (".xz", FileCompressionType::XZ),
    (".zst", FileCompressionType::ZSTD),
    (".zstd", FileCompressionType::ZSTD),
];
/// Compressed formats refused by name rather than read as garbage.
const UNREAD_COMPRESSIONS: &[&str] = &[".lz4", ".zip", ".7z"];

/// How the files a path names are compressed, by the name's suffix (`.gz`,
/// `.bz2`, `.xz`, `.zst`; a glob's too, `*.csv.gz`): their bytes are
/// decompressed as they are read. `.lz4`, `.zip` and `.7z` are refused
/// (0A000).
pub fn compression_of(function: &str, path: &str) -> Result<FileCompressionType> {
    let name = path.to_ascii_lowercase();
    if let Some((_, compression)) = COMPRESSIONS.iter().find(|(s, _)| name.ends_with(s)) {
        return Ok(*compression);
    }
    if let Some(suffix) = UNREAD_COMPRESSIONS.iter().find(|s| name.ends_with(*s)) {
        return Err(Error::new(
            sqlstate::FEATURE_NOT_SUPPORTED,
            format!(
                "{function} does not read {suffix} files (gzip, bzip2, xz and zstd it does): \"{path}\""
            ),
        )
        .into());
    }
    Ok(FileCompressionType::UNCOMPRESSED)
}

/// A path without the compression suffix [`compression_of`] reads, so
/// that what is left names the format (`x.csv` of `x.csv.gz`).
pub fn strip_compression(path: &str) -> &str {
    let name = path.to_ascii_lowercase();
    match COMPRESSIONS.iter().find(|(s, _)| name.ends_with(s)) {
        Some((suffix, _)) => &path[..path.len() - suffix.len()],
        None => path,
    }
}

/// A file's bytes as they are read, decompressed as its name says.
pub async fn read_file(
    store: &Arc<dyn ObjectStore>,
    location: &Path,
    compression: FileCompressionType,
) -> Result<BoxStream<'static, Result<bytes::Bytes>>> {
    let raw = store.get(location).await?.into_stream();
    let bytes = compression.convert_stream(raw.map_err(Into::into).boxed())?;
    if !compression.is_compressed() {
        return Ok(bytes);
    }
    // The decoder's errors ("Invalid gzip header") do not say which file.
    let location = location.clone();
    let kind = compression.get_variant().to_string();
    Ok(bytes
        .map_err(move |e| {
            let message = format!("could not read \"{location}\" as {kind}: {e}");
            Error::new(sqlstate::IO_ERROR, message).into()
        })
        .boxed())
}

/// The text a table function takes as its argument `what`, which must be
/// a constant: the files are listed when the statement is planned.
fn text_argument(function: &str, what: &str, arg: &Expr) -> Result<String> {
    match arg {
        Expr::Literal(value, _) => match value.try_as_str() {
            Some(Some(text)) => Ok(text.to_string()),
            _ => Err(Error::invalid_parameter(format!("{function} takes {what} as text")).into()),
        },
        _ => Err(Error::new(
            sqlstate::FEATURE_NOT_SUPPORTED,
            format!("{function} takes {what} as a constant, not computed from a query's values"),
        )
        .into()),
    }
}

fn wrong_arguments(function: &str, takes: &str) -> datafusion::error::DataFusionError {
    Error::new(
        sqlstate::UNDEFINED_FUNCTION,
        format!("{function} takes {takes}"),
    )
    .into()
}

/// A path, directory, glob or URL as DataFusion lists it; a URL's glob
/// too (`s3://b/2026/*.parquet`), which DataFusion splits from paths only.
pub fn parse_path(path: &str) -> Result<ListingTableUrl> {
    let bad = |e: datafusion::error::DataFusionError| {
        Error::invalid_parameter(format!("\"{path}\" is not a path or URL: {e}"))
    };
    let glob_at = path.find(['*', '?', '[']);
    match glob_at {
        Some(at) if path.contains("://") => {
            // The glob starts at the segment that holds its first wildcard.
            let split = path[..at].rfind('/').map_or(0, |slash| slash + 1);
            let (prefix, glob) = path.split_at(split);
            let url = ListingTableUrl::parse(prefix).map_err(bad)?;
            Ok(url.with_glob(glob).map_err(bad)?)
        }
        _ => Ok(ListingTableUrl::parse(path).map_err(bad)?),
    }
}

/// The store of a path and the files it names now, in path order: a file,
/// or those under a directory that match the glob (and in its
/// subdirectories, unless `listing_table_ignore_subdirectory`).
pub async fn list_files(
    session: &dyn Session,
    url: &ListingTableUrl,
) -> Result<(Arc<dyn ObjectStore>, Vec<ObjectMeta>)> {
    let store = session.runtime_env().object_store(url.object_store())?;
    let ignore_subdirectory = session
        .config_options()
        .execution
        .listing_table_ignore_subdirectory;
    let prefix = url.prefix();
    let mut files = Vec::new();
    if !url.is_collection() {
        match store.head(prefix).await {
            Ok(file) => files.push(file),
            // Not a file: a directory, or the part of a glob before it.
            Err(datafusion::object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if files.is_empty() {
        let listed: Vec<ObjectMeta> = store.list(Some(prefix)).try_collect().await?;
        files = listed
            .into_iter()
            .filter(|file| url.contains(&file.location, ignore_subdirectory))
            .collect();
    }
    files.sort_by(|a, b| a.location.cmp(&b.location));
    Ok((store, files))
}

/// Reading no file is an error (58P01), as PostgreSQL's COPY FROM a
/// missing file is.
fn some_files(path: &str, files: Vec<ObjectMeta>) -> Result<Vec<ObjectMeta>> {
    if files.is_empty() {
        return Err(Error::new(
            sqlstate::UNDEFINED_FILE,
            format!("could not find any file at \"{path}\""),
        )
        .into());
    }
    Ok(files)
}

/// Runs the I/O of planning (listing files, reading their schemas) inside
/// DataFusion's synchronous call for a table function's table.
fn block_on<T>(io: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    crate::block_on(io).unwrap_or_else(|| {
        Err(Error::new(
            sqlstate::FEATURE_NOT_SUPPORTED,
            "reading files while planning needs the multi-threaded runtime",
        )
        .into())
    })
}

/// `read_ndjson(path)`, registered as a table function.
#[derive(Debug)]
pub struct ReadNdjson;

impl TableFunctionImpl for ReadNdjson {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let [path] = args.exprs() else {
            return Err(wrong_arguments(
                "read_ndjson",
                "one argument: a path, directory or glob",
            ));
        };
        let path = text_argument("read_ndjson", "a path", path)?;
        let url = parse_path(&path)?;
        // Refused now if the name says so; each file is read as its own
        // name says, so a directory may hold compressed files too.
        compression_of("read_ndjson", &path)?;
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
        let (store, files) = list_files(state, &self.url).await?;
        let files = some_files(&self.path, files)?;
        let partitions = files
            .into_iter()
            .map(|file| {
                let compression = compression_of("read_ndjson", file.location.as_ref())?;
                Ok(Arc::new(NdjsonFile {
                    store: store.clone(),
                    location: file.location,
                    compression,
                    schema: self.schema.clone(),
                }) as Arc<dyn PartitionStream>)
            })
            .collect::<Result<_>>()?;
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

/// One file, read as one partition.
#[derive(Debug)]
struct NdjsonFile {
    store: Arc<dyn ObjectStore>,
    location: Path,
    compression: FileCompressionType,
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
            compression: self.compression,
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
    compression: FileCompressionType,
    /// Opened on the first read; decompressed.
    chunks: Option<BoxStream<'static, Result<bytes::Bytes>>>,
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
                None => {
                    let opened = read_file(&self.store, &self.location, self.compression).await?;
                    self.chunks.insert(opened)
                }
            };
            match chunks.next().await {
                Some(chunk) => self.pending.extend_from_slice(&chunk?),
                None => self.eof = true,
            }
        }
    }
}

/// The formats `read_parquet` and `read_csv` read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Parquet,
    Csv,
}

/// `read_parquet(path)` and `read_csv(path [, header [, delimiter]])`,
/// registered as table functions.
#[derive(Debug)]
pub struct ReadFiles(pub FileKind);

impl TableFunctionImpl for ReadFiles {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let name = match self.0 {
            FileKind::Parquet => "read_parquet",
            FileKind::Csv => "read_csv",
        };
        let path = match args.exprs().first() {
            Some(path) => text_argument(name, "a path", path)?,
            None => String::new(),
        };
        let compression = match compression_of(name, &path)? {
            named if named.is_compressed() => named,
            _ => directory_compression(args.session(), name, &path, self.0)?,
        };
        let format: Arc<dyn FileFormat> = match (self.0, args.exprs()) {
            (FileKind::Parquet, [_]) if compression.is_compressed() => {
                return Err(Error::new(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    format!(
                        "read_parquet reads Parquet files, which compress their own pages, \
                         not compressed ones: \"{path}\""
                    ),
                )
                .into());
            }
            (FileKind::Parquet, [_]) => Arc::new(ParquetFormat::default()),
            (FileKind::Csv, [_, options @ ..]) if options.len() <= 2 => {
                csv_format(options, compression)?
            }
            (FileKind::Parquet, _) => {
                return Err(wrong_arguments(
                    "read_parquet",
                    "one argument: a path, directory or glob",
                ));
            }
            (FileKind::Csv, _) => {
                return Err(wrong_arguments(
                    "read_csv",
                    "a path, directory or glob, then optionally whether the files start with \
                     a header (default true) and the delimiter (default ',')",
                ));
            }
        };
        listing_table(args.session(), &path, format)
    }
}

fn csv_format(options: &[Expr], compression: FileCompressionType) -> Result<Arc<dyn FileFormat>> {
    let header = match options.first() {
        None => true,
        Some(Expr::Literal(ScalarValue::Boolean(Some(header)), _)) => *header,
        Some(_) => {
            return Err(Error::invalid_parameter(
                "read_csv takes whether the files start with a header as a constant boolean",
            )
            .into());
        }
    };
    let delimiter = match options.get(1) {
        None => b',',
        Some(arg) => match text_argument("read_csv", "the delimiter", arg)?.as_bytes() {
            [byte] if byte.is_ascii() => *byte,
            _ => {
                return Err(Error::invalid_parameter(
                    "the delimiter of read_csv must be a single one-byte character",
                )
                .into());
            }
        },
    };
    Ok(Arc::new(
        CsvFormat::default()
            .with_has_header(header)
            .with_delimiter(delimiter)
            .with_file_compression_type(compression),
    ))
}

/// How the files of `kind` in a directory named alone are compressed, by
/// their names (`x.csv.gz`): one way for all, or else an error, since one
/// table reads them. Uncompressed for a file or a glob, whose name says.
fn directory_compression(
    session: &dyn Session,
    function: &str,
    path: &str,
    kind: FileKind,
) -> Result<FileCompressionType> {
    let url = parse_path(path)?;
    if !url.is_collection() || url.get_glob().is_some() {
        return Ok(FileCompressionType::UNCOMPRESSED);
    }
    let extension = match kind {
        FileKind::Parquet => ".parquet",
        FileKind::Csv => ".csv",
    };
    let files = block_on(async { Ok(list_files(session, &url).await?.1) })?;
    let mut found: Vec<FileCompressionType> = Vec::new();
    for file in &files {
        let name = file.location.as_ref();
        if !strip_compression(name)
            .to_ascii_lowercase()
            .ends_with(extension)
        {
            continue;
        }
        let compression = compression_of(function, name)?;
        if !found.contains(&compression) {
            found.push(compression);
        }
    }
    match found.as_slice() {
        [] => Ok(FileCompressionType::UNCOMPRESSED),
        [one] => Ok(*one),
        _ => Err(Error::new(
            sqlstate::FEATURE_NOT_SUPPORTED,
            format!(
                "{function} reads the {extension} files of \"{path}\" as one table, and they \
                 are compressed in different ways: name one kind with a glob, as in \
                 \"{path}*{extension}.gz\""
            ),
        )
        .into()),
    }
}

/// The files at `path` as one table of `format`, its columns read from
/// the files now.
fn listing_table(
    session: &dyn Session,
    path: &str,
    format: Arc<dyn FileFormat>,
) -> Result<Arc<dyn TableProvider>> {
    let url = parse_path(path)?;
    // A directory holds the format's files; a file or a glob is taken as named.
    let extension = match url.is_collection() && url.get_glob().is_none() {
        true => format.get_ext_with_compression(
            &format
                .compression_type()
                .unwrap_or(FileCompressionType::UNCOMPRESSED),
        )?,
        false => String::new(),
    };
    let options = ListingOptions::new(format).with_file_extension(extension);
    let config = block_on(async {
        some_files(path, list_files(session, &url).await?.1)?;
        // Hive-style directories (`year=2026/month=11/`) are columns of
        // text, as their names hold text; filters on them skip directories.
        let partitions = match url.is_collection() {
            true => options.infer_partitions(session, &url).await?,
            false => Vec::new(),
        };
        let typed = partitions.into_iter().map(|name| (name, DataType::Utf8));
        let options = options.with_table_partition_cols(typed.collect());
        ListingTableConfig::new(url)
            .with_listing_options(options)
            .infer_schema(session)
            .await
    })?;
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// What `files` returns at most per batch of rows, in bytes of content:
/// files are read whole, so a batch of large ones is cut short.
const FILES_BATCH_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The largest file whose content `files` returns: PostgreSQL's limit on
/// a bytea.
const FILE_CONTENT_BYTES_MAX: u64 = (1 << 30) - 1;

/// `files(path)`, registered as a table function.
#[derive(Debug)]
pub struct ListFiles;

impl TableFunctionImpl for ListFiles {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let [path] = args.exprs() else {
            return Err(wrong_arguments(
                "files",
                "one argument: a path, directory or glob",
            ));
        };
        let path = text_argument("files", "a path", path)?;
        let url = parse_path(&path)?;
        let schema = Arc::new(Schema::new(vec![
            Field::new("path", DataType::Utf8, false),
            Field::new("size", DataType::Int64, false),
            Field::new(
                "last_modified",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("content", DataType::Binary, false),
        ]));
        Ok(Arc::new(FileRows { url, schema }))
    }
}

/// The files one `files` call names.
#[derive(Debug)]
struct FileRows {
    url: ListingTableUrl,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for FileRows {
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
        // An empty directory is no rows, not an error.
        let (store, mut files) = list_files(state, &self.url).await?;
        if let Some(limit) = limit {
            files.truncate(limit);
        }
        // The content is read only when the query asks for it.
        let content = projection.is_none_or(|p| p.contains(&3));
        let url = self.url.as_str().to_string();
        let partition = FilesPartition {
            store,
            files,
            base: url,
            content,
            schema: self.schema.clone(),
        };
        Ok(Arc::new(StreamingTableExec::try_new(
            self.schema.clone(),
            vec![Arc::new(partition)],
            projection,
            [],
            false,
            limit,
        )?))
    }
}

/// The rows of `files`, in path order, as one partition.
#[derive(Debug)]
struct FilesPartition {
    store: Arc<dyn ObjectStore>,
    files: Vec<ObjectMeta>,
    /// The URL the path resolved to, whose scheme and bucket the rows'
    /// paths keep (`s3://b/p/x`), or none for the local disk.
    base: String,
    content: bool,
    schema: SchemaRef,
}

impl FilesPartition {
    /// How a file's location reads in SQL: a path on the local disk, a URL
    /// elsewhere.
    fn shown(&self, location: &Path) -> String {
        match self.base.strip_prefix("file://") {
            Some(_) => format!("/{location}"),
            None => {
                let store = self
                    .base
                    .splitn(4, '/')
                    .take(3)
                    .collect::<Vec<_>>()
                    .join("/");
                format!("{store}/{location}")
            }
        }
    }
}

impl PartitionStream for FilesPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let rows_max = ctx.session_config().batch_size();
        let rows: Vec<(String, ObjectMeta)> = self
            .files
            .iter()
            .map(|file| (self.shown(&file.location), file.clone()))
            .collect();
        let store = self.store.clone();
        let schema = self.schema.clone();
        let content = self.content;
        let batches = futures::stream::try_unfold(rows.into_iter(), move |mut rows| {
            let store = store.clone();
            let schema = schema.clone();
            async move {
                let mut paths = StringBuilder::new();
                let mut sizes = Int64Builder::new();
                let mut modified = TimestampMicrosecondBuilder::new().with_timezone("UTC");
                let mut contents = BinaryBuilder::new();
                let (mut count, mut bytes) = (0, 0);
                while count < rows_max && bytes < FILES_BATCH_BYTES_MAX {
                    let Some((path, file)) = rows.next() else {
                        break;
                    };
                    paths.append_value(&path);
                    sizes.append_value(file.size as i64);
                    modified.append_value(file.last_modified.timestamp_micros());
                    if content {
                        if file.size > FILE_CONTENT_BYTES_MAX {
                            return Err(Error::new(
                                sqlstate::PROGRAM_LIMIT_EXCEEDED,
                                format!(
                                    "\"{path}\" holds {} bytes, more than a bytea's \
                                     {FILE_CONTENT_BYTES_MAX}",
                                    file.size
                                ),
                            )
                            .into());
                        }
                        let data = store.get(&file.location).await?.bytes().await?;
                        bytes += data.len();
                        contents.append_value(&data);
                    } else {
                        contents.append_value(b"");
                    }
                    count += 1;
                }
                if count == 0 {
                    return Ok(None);
                }
                let batch = RecordBatch::try_new(
                    schema,
                    vec![
                        Arc::new(paths.finish()),
                        Arc::new(sizes.finish()),
                        Arc::new(modified.finish()),
                        Arc::new(contents.finish()),
                    ],
                )?;
                Ok(Some((batch, rows)))
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), batches))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_urls_glob_is_split_from_its_prefix_as_a_paths_is() {
        let url = parse_path("s3://b/2026/day-*.parquet").unwrap();
        assert_eq!(url.prefix().as_ref(), "2026");
        let day = Path::from("2026/day-1.parquet");
        assert!(url.contains(&day, true));
        assert!(!url.contains(&Path::from("2026/x.csv"), true));
        assert!(!url.contains(&Path::from("2027/day-1.parquet"), true));

        let url = parse_path("s3://b/*.csv").unwrap();
        assert_eq!(url.prefix().as_ref(), "");
        assert!(url.contains(&Path::from("a.csv"), true));

        let url = parse_path("s3://b/2026/").unwrap();
        assert!(url.is_collection() && url.get_glob().is_none());
        assert!(parse_path("s3://b/x.csv.gz").is_ok());
        let gz = compression_of("t", "s3://b/*.CSV.GZ").unwrap();
        assert_eq!(gz.get_variant(), FileCompressionType::GZIP.get_variant());
        assert!(!compression_of("t", "/d/x.csv").unwrap().is_compressed());
        assert!(compression_of("t", "/d/x.csv.zip").is_err());
        assert_eq!(strip_compression("/d/x.JSON.Zst"), "/d/x.JSON");
        assert_eq!(strip_compression("/d/x.csv"), "/d/x.csv");
    }
}
