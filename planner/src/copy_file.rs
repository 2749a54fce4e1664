//! COPY to and from files: paths on the node's disk and URLs of object
//! stores (`s3://bucket/key`, see `stores`), so bulk data moves between
//! tables and files without a client streaming it.
//!
//! ```text
//!  COPY t | (query) TO 'url'  ──► the query's plan ──► DataFusion's file sink
//!                                  (Parquet, JSON lines or CSV, by FORMAT or the name)
//!  COPY t FROM 'url' (Parquet) ──► INSERT INTO t SELECT * FROM read_parquet('url')
//!  COPY t FROM 'url' (JSON)    ──► INSERT INTO t SELECT CAST(doc->>'a' AS ...), ...
//!                                  FROM read_ndjson('url')
//!  COPY t FROM 'url' (text, CSV, binary) ──► each file's bytes, in path order,
//!                                  through the loader of COPY FROM STDIN
//! ```
//!
//! A name ending in `.gz`, `.bz2`, `.xz` or `.zst` is a compressed file
//! of the format before it (`x.csv.gz`): read decompressed, written
//! compressed.
//!
//! Text, CSV and binary files are read by the same parser as COPY FROM
//! STDIN, so a file loads exactly as `psql \copy` of it would, globs (`COPY
//! t FROM 's3://b/day-*.csv'`) reading every file with its own header.
//! Parquet columns are taken by position and converted as an INSERT ...
//! SELECT converts them. Files written are Parquet, JSON lines or CSV in
//! DataFusion's writers; PostgreSQL's text and binary formats go to STDOUT
//! only. As in PostgreSQL, paths must be absolute; unlike it, while ciab
//! has no authentication any user may read and write the node's files.

use std::collections::HashMap;
use std::sync::Arc;

use ciab_extensions::text_format::{quote_ident, quote_literal};
use ciab_storage::PgType;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::UInt64Type;
use datafusion::common::ParamValues;
use datafusion::common::config::{CsvOptions, JsonOptions};
use datafusion::common::parsers::CompressionTypeVariant;
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::datasource::file_format::csv::CsvFormatFactory;
use datafusion::datasource::file_format::format_as_file_type;
use datafusion::datasource::file_format::json::JsonFormatFactory;
use datafusion::datasource::file_format::parquet::ParquetFormatFactory;
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    CopyLegacyOption, CopyOption, CopySource, CopyTarget, Statement,
};
use futures::StreamExt;

use crate::copy::{CopyFormat, CopyOptions, copy_columns, copy_into, parse_options};
use crate::error::{Error, Result, sqlstate};
use crate::session::{Output, Session, Tag};

const INVALID_NAME: &str = "42602";

/// The formats of files; PostgreSQL's own (text, CSV, binary) are read by
/// COPY FROM STDIN's parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileFormat {
    Parquet,
    Json,
    Postgres,
}

impl Session {
    /// `COPY ... TO 'path'` and `COPY ... FROM 'path'`.
    pub(crate) async fn copy_file(
        &mut self,
        statement: &Statement,
        params: Option<ParamValues>,
    ) -> Result<Output> {
        let Statement::Copy {
            source,
            to,
            target: CopyTarget::File { filename },
            options,
            legacy_options,
            ..
        } = statement
        else {
            unreachable!("only COPY with a file is planned here");
        };
        let url = file_url(filename)?;
        let format = file_format(options, legacy_options, &url);
        if *to {
            self.copy_to_file(source, &url, format, options, legacy_options, params)
                .await
        } else {
            match format {
                FileFormat::Parquet => {
                    refuse_options(options, legacy_options, "parquet")?;
                    self.copy_from_parquet(source, &url).await
                }
                FileFormat::Json => {
                    refuse_options(options, legacy_options, "json")?;
                    self.copy_from_json(source, &url).await
                }
                FileFormat::Postgres => self.copy_from_files(statement, &url).await,
            }
        }
    }

    async fn copy_to_file(
        &mut self,
        source: &CopySource,
        url: &str,
        format: FileFormat,
        options: &[CopyOption],
        legacy: &[CopyLegacyOption],
        params: Option<ParamValues>,
    ) -> Result<Output> {
        let compression = ciab_extensions::compression_of("COPY", url)?.into();
        let factory: Arc<dyn FileFormatFactory> = match format {
            FileFormat::Parquet if compression != CompressionTypeVariant::UNCOMPRESSED => {
                return Err(Error::unsupported(
                    "COPY TO a compressed Parquet file (Parquet compresses its own pages)",
                ));
            }
            FileFormat::Parquet => {
                refuse_options(options, legacy, "parquet")?;
                Arc::new(ParquetFormatFactory::new())
            }
            FileFormat::Json => {
                refuse_options(options, legacy, "json")?;
                Arc::new(JsonFormatFactory::new_with_options(JsonOptions {
                    compression,
                    ..Default::default()
                }))
            }
            FileFormat::Postgres => csv_writer(parse_options(options, legacy)?, compression)?,
        };
        let query = self.copy_source(source)?;
        let plan = self.plan(query, params).await?;
        let copy = LogicalPlanBuilder::copy_to(
            plan,
            url.to_string(),
            format_as_file_type(factory),
            HashMap::new(),
            vec![],
        )?
        .build()?;
        let frame = self.ctx.execute_logical_plan(copy).await?;
        let batches = self.collect_frame(frame).await?;
        // The sink answers with one row: the number of rows written.
        let rows = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .map(|b| b.column(0).as_primitive::<UInt64Type>().value(0))
            .unwrap_or(0);
        Ok(Output::Command(Tag::new("COPY").with_rows(rows)))
    }

    /// `COPY t [(columns)] FROM 'x.parquet'`: the files' columns, by
    /// position, as an INSERT ... SELECT takes them.
    async fn copy_from_parquet(&mut self, source: &CopySource, url: &str) -> Result<Output> {
        let (table_name, columns) = copy_into(source)?;
        let columns = match columns.is_empty() {
            true => String::new(),
            false => format!(
                "({})",
                columns
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let sql = format!(
            "INSERT INTO {table_name} {columns} SELECT * FROM read_parquet({})",
            quote_literal(url)
        );
        self.insert_select(&sql).await
    }

    /// `COPY t [(columns)] FROM 'x.json'`: JSON lines (what COPY TO
    /// writes), an object a row. A column takes its name's key, NULL where
    /// the key is missing; other keys are ignored. A value converts as a
    /// cast from its text does, bytea's from hex (`\x` or not, as COPY TO
    /// writes it); jsonb and json columns take the value itself.
    async fn copy_from_json(&mut self, source: &CopySource, url: &str) -> Result<Output> {
        let (table_name, columns) = copy_into(source)?;
        let (_, def) = self.resolve_table(table_name)?;
        let (names, values): (Vec<String>, Vec<String>) = copy_columns(&def, columns)?
            .into_iter()
            .map(|position| {
                let column = &def.columns[position];
                let key = quote_literal(&column.name);
                let value = match &column.ty {
                    PgType::Jsonb => format!("doc->{key}"),
                    PgType::Json => format!("CAST(doc->{key} AS json)"),
                    PgType::Bytea => {
                        format!("decode(regexp_replace(doc->>{key}, '^\\\\x', ''), 'hex')")
                    }
                    ty => format!("CAST(doc->>{key} AS {})", ty.sql_name()),
                };
                (quote_ident(&column.name), value)
            })
            .unzip();
        let sql = format!(
            "INSERT INTO {table_name} ({}) SELECT {} FROM read_ndjson({})",
            names.join(", "),
            values.join(", "),
            quote_literal(url)
        );
        self.insert_select(&sql).await
    }

    /// Runs an `INSERT ... SELECT` a COPY FROM a file became.
    async fn insert_select(&mut self, sql: &str) -> Result<Output> {
        let insert = self.parse_sql(sql)?.pop().expect("an INSERT parses");
        let DfStatement::Statement(s) = &insert else {
            unreachable!("an INSERT is a statement")
        };
        let Output::Command(tag) = self.insert(s, None).await? else {
            unreachable!("an INSERT without RETURNING yields a tag")
        };
        Ok(Output::Command(
            Tag::new("COPY").with_rows(tag.rows.unwrap_or(0)),
        ))
    }

    /// `COPY t FROM 'path'` in text, CSV or binary: every file the path
    /// names, in path order, through COPY FROM STDIN's loader, as one load
    /// that lands whole or not at all.
    async fn copy_from_files(&mut self, statement: &Statement, url: &str) -> Result<Output> {
        let copy = self.plan_copy(statement)?;
        // What the first file skips, every file skips: its header (binary
        // data's signature too, but binary reads one file only).
        let header = copy.skips_header();
        let binary = *copy.format() == CopyFormat::Binary;
        let listing = ciab_extensions::parse_path(url)?;
        // Refused now if the name says so; each file is read as its own
        // name says, so a directory may hold compressed files too.
        ciab_extensions::compression_of("COPY", url)?;
        let (store, files) = ciab_extensions::list_files(&self.ctx.state(), &listing).await?;
        if files.is_empty() {
            return Err(Error::new(
                sqlstate::UNDEFINED_FILE,
                format!("could not open file \"{url}\" for reading: No such file or directory"),
            ));
        }
        if binary && files.len() > 1 {
            return Err(Error::unsupported(
                "COPY FROM several files in binary format (name one file)",
            ));
        }
        self.copy = Some(copy);
        'files: for (i, file) in files.iter().enumerate() {
            if i > 0 {
                self.copy_next_file(header).await;
            }
            let read = match ciab_extensions::compression_of("COPY", file.location.as_ref()) {
                Ok(compression) => {
                    ciab_extensions::read_file(&store, &file.location, compression).await
                }
                Err(e) => Err(e),
            };
            let mut chunks = match read {
                Ok(chunks) => chunks,
                Err(e) => {
                    self.copy_failed(e.into());
                    break;
                }
            };
            while let Some(chunk) = chunks.next().await {
                match chunk {
                    Ok(bytes) => self.copy_data(&bytes).await,
                    Err(e) => {
                        self.copy_failed(e.into());
                        break 'files;
                    }
                }
            }
        }
        Ok(Output::Command(self.copy_done().await?))
    }
}

/// A COPY's file as a URL the session's object stores resolve: URLs as
/// they are, absolute paths on the node's disk; relative paths are refused
/// as PostgreSQL refuses them.
fn file_url(filename: &str) -> Result<String> {
    if filename.contains("://") || filename.starts_with('/') {
        return Ok(filename.to_string());
    }
    Err(Error::new(
        INVALID_NAME,
        format!("relative path not allowed for COPY to or from a file: \"{filename}\""),
    ))
}

/// The format a COPY's FORMAT option names, or else its file's name
/// suggests for the formats PostgreSQL does not have; PostgreSQL's text
/// format otherwise, as in PostgreSQL.
fn file_format(options: &[CopyOption], legacy: &[CopyLegacyOption], url: &str) -> FileFormat {
    let named = options.iter().find_map(|o| match o {
        CopyOption::Format(name) => Some(name.value.to_ascii_lowercase()),
        _ => None,
    });
    match named.as_deref() {
        Some("parquet") => FileFormat::Parquet,
        Some("json") => FileFormat::Json,
        Some(_) => FileFormat::Postgres,
        None if !legacy.is_empty() => FileFormat::Postgres,
        None => {
            let name = ciab_extensions::strip_compression(url)
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            if name.ends_with(".parquet") {
                FileFormat::Parquet
            } else if [".json", ".jsonl", ".ndjson"]
                .iter()
                .any(|e| name.ends_with(e))
            {
                FileFormat::Json
            } else {
                FileFormat::Postgres
            }
        }
    }
}

/// Parquet and JSON files take no other COPY option.
fn refuse_options(options: &[CopyOption], legacy: &[CopyLegacyOption], format: &str) -> Result<()> {
    let other = options
        .iter()
        .find(|o| !matches!(o, CopyOption::Format(_)))
        .map(ToString::to_string)
        .or_else(|| legacy.first().map(ToString::to_string));
    match other {
        Some(option) => Err(Error::unsupported(format!(
            "COPY option {option} with FORMAT {format}"
        ))),
        None => Ok(()),
    }
}

/// CSV files are written by DataFusion's writer, which takes a header and
/// a delimiter; PostgreSQL's other CSV options and its text and binary
/// formats are refused rather than written differently.
fn csv_writer(
    options: CopyOptions,
    compression: CompressionTypeVariant,
) -> Result<Arc<dyn FileFormatFactory>> {
    match options.format {
        CopyFormat::Csv {
            delimiter,
            quote: b'"',
            escape: b'"',
            null,
        } if null.is_empty() && options.force_quote.is_empty() => {
            Ok(Arc::new(CsvFormatFactory::new_with_options(CsvOptions {
                has_header: Some(options.header),
                delimiter,
                compression,
                ..Default::default()
            })))
        }
        CopyFormat::Csv { .. } => Err(Error::unsupported(
            "COPY TO a file with NULL, QUOTE, ESCAPE or FORCE_QUOTE (COPY TO STDOUT takes them)",
        )),
        _ => Err(Error::unsupported(
            "COPY TO a file in text or binary format (use FORMAT csv, parquet or json, or \
             COPY TO STDOUT)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::ast::Ident;

    use super::*;

    #[test]
    fn the_format_is_the_one_named_else_the_files_else_text() {
        let format = |name: &str| vec![CopyOption::Format(Ident::new(name))];
        let url = "s3://b/x.parquet";
        assert_eq!(file_format(&[], &[], url), FileFormat::Parquet);
        assert_eq!(file_format(&format("csv"), &[], url), FileFormat::Postgres);
        assert_eq!(
            file_format(&[], &[CopyLegacyOption::Binary], url),
            FileFormat::Postgres
        );
        assert_eq!(
            file_format(&format("JSON"), &[], "/d/x.csv"),
            FileFormat::Json
        );
        assert_eq!(file_format(&[], &[], "/d/x.NDJSON"), FileFormat::Json);
        assert_eq!(file_format(&[], &[], "/d/x.csv"), FileFormat::Postgres);
        assert_eq!(file_format(&[], &[], "/d.parquet/x"), FileFormat::Postgres);
    }

    #[test]
    fn paths_are_absolute_or_urls() {
        assert_eq!(file_url("/d/x.csv").unwrap(), "/d/x.csv");
        assert_eq!(file_url("s3://b/k").unwrap(), "s3://b/k");
        assert_eq!(file_url("x.csv").unwrap_err().sqlstate, INVALID_NAME);
    }
}
