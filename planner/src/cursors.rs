//! Cursors: `DECLARE name CURSOR FOR query`, `FETCH`, `CLOSE`.
//!
//! What psql's `FETCH_COUNT`, psycopg's named cursors and SQLAlchemy's
//! `stream_results` send to read a large result a part at a time. A cursor
//! is the query's stream, planned at DECLARE over the transaction block's
//! snapshot and kept by the session; each FETCH pulls the next rows from
//! it, so a result is never held whole:
//!
//! ```text
//!  DECLARE c CURSOR FOR SELECT ...   plan ──► stream (nothing read yet)
//!  FETCH 100 FROM c                  stream ──► 100 rows (the rest of a batch kept)
//!  CLOSE c / COMMIT / ROLLBACK       stream dropped
//! ```
//!
//! Cursors live in a transaction block, as PostgreSQL's do without WITH
//! HOLD, and move forward only (NO SCROLL): FETCH NEXT, FORWARD, a count
//! or ALL. WITH HOLD, SCROLL, BINARY and a cursor over `SELECT ... FOR
//! UPDATE` (whose rows FETCH would have to lock) are 0A000; a backward
//! FETCH is PostgreSQL's 55000 for a cursor that cannot scan backward.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ParamValues;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    CloseCursor, Declare, DeclareType, FetchDirection, Ident, Statement, Value,
};
use futures::StreamExt;

use crate::error::{Error, Result, sqlstate};
use crate::interrupt::Interrupt;
use crate::names;
use crate::session::{Output, Session, Tag};
use crate::settings::CursorFact;

/// An open cursor: what its query has yet to return.
pub(crate) struct Cursor {
    schema: SchemaRef,
    /// Behind a mutex only to make the session `Sync`: FETCH reads it
    /// through `&mut`, without locking.
    stream: std::sync::Mutex<SendableRecordBatchStream>,
    /// Rows of a batch the last FETCH read only the start of.
    rest: Option<RecordBatch>,
    /// What `pg_cursors` shows of it.
    fact: CursorFact,
}

impl Cursor {
    /// Reads up to `wanted` more rows into `batches`, counting them in
    /// `fetched`, unless the statement is interrupted first.
    async fn read(
        &mut self,
        wanted: usize,
        interrupt: &Interrupt,
        batches: &mut Vec<RecordBatch>,
        fetched: &mut usize,
    ) -> Result<()> {
        let stream = self.stream.get_mut().expect("lock poisoned");
        while *fetched < wanted {
            let batch = match self.rest.take() {
                Some(batch) => batch,
                None => match interrupt.run(stream.next()).await? {
                    Some(batch) => batch?,
                    None => break,
                },
            };
            let take = batch.num_rows().min(wanted - *fetched);
            if take < batch.num_rows() {
                self.rest = Some(batch.slice(take, batch.num_rows() - take));
            }
            *fetched += take;
            batches.push(batch.slice(0, take));
        }
        Ok(())
    }
}

impl Session {
    /// `DECLARE name [NO SCROLL] CURSOR [WITHOUT HOLD] FOR query`, the
    /// query's parameters bound from `params`.
    pub(crate) async fn declare(
        &mut self,
        declares: &[Declare],
        params: Option<ParamValues>,
    ) -> Result<Output> {
        let (declare, name, query) = cursor_query(declares)?;
        for (asked, what) in [
            (declare.hold, "WITH HOLD"),
            (declare.scroll, "SCROLL"),
            (declare.binary, "BINARY"),
        ] {
            if asked == Some(true) {
                return Err(Error::unsupported(format!("DECLARE ... {what}")));
            }
        }
        if !self.in_transaction() {
            return Err(Error::new(
                sqlstate::NO_ACTIVE_SQL_TRANSACTION,
                "DECLARE CURSOR can only be used in transaction blocks",
            ));
        }
        if let DfStatement::Statement(s) = &query
            && let Statement::Query(q) = s.as_ref()
            && let Some(lock) = q.locks.first()
        {
            let command = format!("SELECT FOR {}", lock.lock_type);
            if self.read_only() {
                return Err(crate::session::read_only_refusal(&command));
            }
            // Its rows would have to be locked as FETCH reads them.
            return Err(Error::unsupported(format!("DECLARE CURSOR for {command}")));
        }
        let name = names::normalize(name);
        if self.cursors.contains_key(&name) {
            return Err(Error::new(
                sqlstate::DUPLICATE_CURSOR,
                format!("cursor \"{name}\" already exists"),
            ));
        }
        let Output::Rows { schema, stream, .. } = self.query(&query, params).await? else {
            unreachable!("a query answers rows")
        };
        let created_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        let fact = CursorFact {
            name: name.clone(),
            statement: format!("DECLARE {declare}"),
            created_us,
        };
        self.cursors.insert(
            name,
            Cursor {
                schema,
                stream: std::sync::Mutex::new(stream),
                rest: None,
                fact,
            },
        );
        self.publish_cursors();
        Ok(Output::Command(Tag::new("DECLARE CURSOR")))
    }

    /// `FETCH [NEXT | FORWARD [n | ALL] | n | ALL] [FROM | IN] name`: the
    /// cursor's next rows.
    pub(crate) async fn fetch(
        &mut self,
        name: &Ident,
        direction: &FetchDirection,
    ) -> Result<Output> {
        let wanted = match direction {
            FetchDirection::Next | FetchDirection::Forward { limit: None } => 1,
            FetchDirection::All | FetchDirection::ForwardAll => usize::MAX,
            FetchDirection::Count { limit } | FetchDirection::Forward { limit: Some(limit) } => {
                count(&limit.value)?
            }
            _ => {
                return Err(Error::new(
                    sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                    "cursor can only scan forward",
                ));
            }
        };
        let interrupt = self.interrupt.clone();
        let cursor = self.cursor(name)?;
        let schema = cursor.schema.clone();
        let mut batches = Vec::new();
        let mut fetched = 0;
        if let Err(e) = cursor
            .read(wanted, &interrupt, &mut batches, &mut fetched)
            .await
        {
            // Its plan's tasks stop with it; the block is aborted anyway.
            self.cursors.remove(&names::normalize(name));
            self.publish_cursors();
            return Err(e);
        }
        let stream = MemoryStream::try_new(batches, schema.clone(), None)?;
        Ok(Output::Rows {
            schema,
            stream: Box::pin(stream),
            tag: Some(Tag::new("FETCH").with_rows(fetched as u64)),
        })
    }

    /// `CLOSE name | ALL`.
    pub(crate) fn close(&mut self, which: &CloseCursor) -> Result<Output> {
        match which {
            CloseCursor::All => self.cursors.clear(),
            CloseCursor::Specific { name } => {
                self.cursor(name)?;
                self.cursors.remove(&names::normalize(name));
            }
        }
        self.publish_cursors();
        Ok(Output::Command(Tag::new("CLOSE CURSOR")))
    }

    /// Closes every cursor: the transaction block ended.
    pub(crate) fn close_cursors(&mut self) {
        if !self.cursors.is_empty() {
            self.cursors.clear();
            self.publish_cursors();
        }
    }

    /// Tells the session's plans (`pg_cursors`) which cursors are open.
    fn publish_cursors(&self) {
        let facts = self.cursors.values().map(|c| c.fact.clone()).collect();
        self.with_facts(|f| f.cursors = facts);
    }

    /// The columns a FETCH from `name` returns, for Describe.
    pub(crate) fn cursor_schema(&mut self, name: &Ident) -> Result<SchemaRef> {
        Ok(self.cursor(name)?.schema.clone())
    }

    /// The columns of the cursor a protocol-level Describe of the portal
    /// `name` asks about: in PostgreSQL a cursor is also a portal, which
    /// psycopg describes after its DECLARE.
    pub fn cursor_columns(&self, name: &str) -> Option<SchemaRef> {
        self.cursors.get(name).map(|c| c.schema.clone())
    }

    fn cursor(&mut self, name: &Ident) -> Result<&mut Cursor> {
        let name = names::normalize(name);
        self.cursors.get_mut(&name).ok_or_else(|| {
            Error::new(
                sqlstate::INVALID_CURSOR_NAME,
                format!("cursor \"{name}\" does not exist"),
            )
        })
    }
}

/// `DECLARE name CURSOR FOR query`, its name and its query.
pub(crate) fn cursor_query(declares: &[Declare]) -> Result<(&Declare, &Ident, DfStatement)> {
    let [declare] = declares else {
        return Err(Error::unsupported("DECLARE of several names"));
    };
    let (Some(DeclareType::Cursor), Some(query)) = (&declare.declare_type, &declare.for_query)
    else {
        return Err(Error::unsupported(format!("DECLARE {declare}")));
    };
    let [name] = declare.names.as_slice() else {
        return Err(Error::unsupported("DECLARE of several names"));
    };
    let statement = DfStatement::Statement(Box::new(Statement::Query(query.clone())));
    Ok((declare, name, statement))
}

/// A FETCH count: a non-negative integer.
fn count(value: &Value) -> Result<usize> {
    match value {
        Value::Number(n, _) => n
            .parse::<usize>()
            .map_err(|_| Error::unsupported(format!("FETCH {n} (a count other than 0 or more)"))),
        other => Err(Error::unsupported(format!("FETCH {other}"))),
    }
}
