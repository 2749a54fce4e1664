//! `CREATE EXTERNAL TABLE name [(columns)] STORED AS PARQUET | CSV | JSON
//! LOCATION 'path or URL' [OPTIONS (...)]`: files as a table the catalog
//! keeps, on the node's disk, in this cluster's object storage or in
//! another S3-compatible service (see `stores`).
//!
//! ```text
//!  CREATE EXTERNAL TABLE trips STORED AS PARQUET LOCATION 's3://rides/2026/'
//!    ──► CREATE VIEW trips AS SELECT * FROM read_parquet('s3://rides/2026/')
//! ```
//!
//! An external table is kept as a view over the read function of its
//! format, so it replicates, survives restarts and shows in the catalogs as
//! views do, its definition says in plain SQL where it reads, and every
//! query lists the files afresh. Declared columns rename and cast the
//! files' columns by position. It is dropped with DROP VIEW.

use datafusion::sql::parser::{CreateExternalTable, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{Ident, Value};

use crate::error::{Error, Result, sqlstate};
use crate::session::{Output, Session, Tag};

const DUPLICATE_TABLE: &str = "42P07";

impl Session {
    pub(crate) async fn create_external_table(
        &mut self,
        create: &CreateExternalTable,
    ) -> Result<Output> {
        let unsupported = [
            (!create.table_partition_cols.is_empty(), "PARTITIONED BY"),
            (!create.order_exprs.is_empty(), "WITH ORDER"),
            (create.unbounded, "UNBOUNDED"),
            (create.temporary, "TEMPORARY"),
            (!create.constraints.is_empty(), "constraints"),
        ];
        if let Some((_, what)) = unsupported.iter().find(|(given, _)| *given) {
            return Err(Error::unsupported(format!(
                "CREATE EXTERNAL TABLE with {what}"
            )));
        }
        let [location] = &create.locations[..] else {
            return Err(Error::unsupported(
                "CREATE EXTERNAL TABLE with several locations (a glob names many files)",
            ));
        };
        let files = read_function(create, location)?;
        let query = match create.columns.is_empty() {
            true => format!("SELECT * FROM {files}"),
            false => self.declared_columns(create, &files).await?,
        };
        let replace = if create.or_replace { "OR REPLACE " } else { "" };
        let sql = format!("CREATE {replace}VIEW {} AS {query}", create.name);
        let DfStatement::Statement(view) = self.parse_sql(&sql)?.pop().expect("a view parses")
        else {
            unreachable!("CREATE VIEW is sqlparser's")
        };
        match self.ddl(&view).await {
            Err(e) if e.sqlstate == DUPLICATE_TABLE && create.if_not_exists => {}
            result => {
                result?;
            }
        }
        Ok(Output::Command(Tag::new("CREATE EXTERNAL TABLE")))
    }

    /// The files' columns, by position, cast to the declared types under
    /// the declared names; the files are read now to see theirs.
    async fn declared_columns(&self, create: &CreateExternalTable, files: &str) -> Result<String> {
        let probe = self
            .parse_sql(&format!("SELECT * FROM {files}"))?
            .pop()
            .expect("a query parses");
        let plan = self.plan(probe, None).await?;
        let found = plan.schema().fields();
        if found.len() != create.columns.len() {
            return Err(Error::new(
                sqlstate::DATATYPE_MISMATCH,
                format!(
                    "{} columns declared, but the files at the location have {}",
                    create.columns.len(),
                    found.len()
                ),
            ));
        }
        let columns: Vec<String> = create
            .columns
            .iter()
            .zip(found.iter())
            .map(|(declared, field)| {
                format!(
                    "CAST({} AS {}) AS {}",
                    Ident::with_quote('"', field.name()),
                    declared.data_type,
                    declared.name
                )
            })
            .collect();
        Ok(format!("SELECT {} FROM {files}", columns.join(", ")))
    }
}

/// The table function call that reads the files: `read_parquet('...')`.
fn read_function(create: &CreateExternalTable, location: &str) -> Result<String> {
    let location = format!("'{}'", location.replace('\'', "''"));
    let mut header = true;
    let mut delimiter = ",".to_string();
    for (key, value) in &create.options {
        let value = match value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        };
        match key.trim_start_matches("format.") {
            "has_header" if create.file_type.eq_ignore_ascii_case("csv") => {
                header = value.eq_ignore_ascii_case("true")
            }
            "delimiter" if create.file_type.eq_ignore_ascii_case("csv") => delimiter = value,
            _ => {
                return Err(Error::unsupported(format!(
                    "the option '{key}' of CREATE EXTERNAL TABLE ... STORED AS {}",
                    create.file_type
                )));
            }
        }
    }
    match create.file_type.to_ascii_uppercase().as_str() {
        "PARQUET" => Ok(format!("read_parquet({location})")),
        "CSV" => Ok(format!(
            "read_csv({location}, {header}, '{}')",
            delimiter.replace('\'', "''")
        )),
        "JSON" | "NDJSON" => Ok(format!("read_ndjson({location})")),
        other => Err(Error::unsupported(format!(
            "CREATE EXTERNAL TABLE ... STORED AS {other} (PARQUET, CSV and JSON are)"
        ))),
    }
}
