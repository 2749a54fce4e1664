//! COPY ... TO STDOUT: a table's rows or a query's result, streamed to the
//! client in PostgreSQL's text, CSV or binary COPY format.
//!
//! ```text
//!  COPY t (a, b) TO STDOUT ─► SELECT "a", "b" FROM t ─┐
//!  COPY (query)  TO STDOUT ─► query ──────────────────┴─► stream of batches ─► server encodes rows
//! ```
//!
//! The planner picks the rows and checks the options; the wire front end
//! turns each row into one CopyData message, because the values' text and
//! binary forms are the protocol's own (the same ones DataRow carries).

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ParamValues;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{CopySource, CopyTarget, Ident, Statement};

use crate::copy::{CopyFormat, CopyOptions, copy_columns, parse_options};
use crate::error::{Error, Result, sqlstate};
use crate::names::normalize;
use crate::session::{Output, Session};

/// A COPY TO STDOUT, ready to stream.
pub struct CopyOut {
    pub schema: SchemaRef,
    pub stream: SendableRecordBatchStream,
    pub format: CopyFormat,
    /// A first line with the column names (text and CSV).
    pub header: bool,
    /// Per column: quote every non-NULL value (CSV's FORCE_QUOTE).
    pub force_quote: Vec<bool>,
}

impl Session {
    /// Starts `COPY table [(columns)] TO STDOUT` or `COPY (query) TO STDOUT`.
    pub(crate) async fn copy_to(
        &mut self,
        statement: &Statement,
        params: Option<ParamValues>,
    ) -> Result<Output> {
        let Statement::Copy {
            source,
            target,
            options,
            legacy_options,
            ..
        } = statement
        else {
            unreachable!("only COPY is planned here");
        };
        if !matches!(target, CopyTarget::Stdout) {
            return Err(Error::unsupported("COPY TO PROGRAM"));
        }
        let CopyOptions {
            format,
            header,
            force_quote,
        } = parse_options(options, legacy_options)?;
        let query = self.copy_source(source)?;
        let Output::Rows { schema, stream, .. } = self.query(&query, params).await? else {
            unreachable!("a query yields rows");
        };
        let mut quoted = vec![false; schema.fields().len()];
        for ident in &force_quote {
            let name = normalize(ident);
            let position = schema
                .fields()
                .iter()
                .position(|f| f.name() == &name)
                .ok_or_else(|| {
                    Error::new(
                        sqlstate::INVALID_COLUMN_REFERENCE,
                        format!("FORCE_QUOTE column \"{name}\" not referenced by COPY"),
                    )
                })?;
            quoted[position] = true;
        }
        Ok(Output::CopyOut(CopyOut {
            schema,
            stream,
            format,
            header,
            force_quote: quoted,
        }))
    }

    /// The query whose rows `COPY table | (query) TO ...` writes.
    pub(crate) fn copy_source(&self, source: &CopySource) -> Result<DfStatement> {
        Ok(match source {
            CopySource::Table {
                table_name,
                columns,
            } => {
                let (table, def) = self.resolve_table(table_name).map_err(|e| {
                    // resolve_table refuses views as tables to write.
                    if e.sqlstate == sqlstate::FEATURE_NOT_SUPPORTED {
                        Error::new(
                            sqlstate::WRONG_OBJECT_TYPE,
                            format!(
                                "cannot copy from view \"{table_name}\" \
                                 (try the COPY (SELECT ...) TO variant)"
                            ),
                        )
                    } else {
                        e
                    }
                })?;
                let projection: Vec<String> = copy_columns(&def, columns)?
                    .into_iter()
                    .map(|i| Ident::with_quote('"', &def.columns[i].name).to_string())
                    .collect();
                let relation = crate::names::quoted_relation(&table);
                let sql = format!("SELECT {} FROM {relation}", projection.join(", "));
                self.parse_sql(&sql)?
                    .pop()
                    .expect("a SELECT parses as one statement")
            }
            CopySource::Query(query) => {
                DfStatement::Statement(Box::new(Statement::Query(query.clone())))
            }
        })
    }
}
