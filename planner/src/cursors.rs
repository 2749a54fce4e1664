//! Cursors: `DECLARE name CURSOR FOR query`, `FETCH`, `MOVE`, `CLOSE`.
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
//! HOLD, and move forward only: FETCH NEXT, FORWARD, a count, ALL, and
//! RELATIVE or ABSOLUTE to a row ahead. A cursor keeps the row it is on,
//! which `FETCH 0` (`RELATIVE 0`) reads again, as PostgreSQL does for a
//! cursor that may scroll (NO SCROLL refuses it). MOVE is FETCH without the
//! rows. WITH HOLD, SCROLL, BINARY and a cursor over `SELECT ... FOR
//! UPDATE` (whose rows FETCH would have to lock) are 0A000; a FETCH to a
//! row behind is PostgreSQL's 55000 for a cursor that cannot scan backward.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ParamValues;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    CloseCursor, Declare, DeclareType, FetchDirection, Ident, ObjectName, Statement, Value,
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
    /// Rows read so far (PostgreSQL's portal position).
    rows_read: u64,
    /// A read ran out of rows: the cursor is past the last.
    at_end: bool,
    /// The row the cursor is on (the last one read), as a one-row batch.
    current: Option<RecordBatch>,
    /// Declared NO SCROLL: not even the current row is read again.
    no_scroll: bool,
    /// What `pg_cursors` shows of it.
    fact: CursorFact,
}

/// The name a `Statement::Fetch` parsed from MOVE carries in its `into`.
/// sqlparser has no MOVE statement, and MOVE reads as FETCH does, so the
/// parser (`session::parse_fetch`) gives it FETCH's form; PostgreSQL's
/// FETCH has no INTO, so nothing else sets one.
const MOVE_MARKER: &str = "ciab.move";

/// The `into` of a MOVE (see [`MOVE_MARKER`]).
pub(crate) fn move_marker() -> ObjectName {
    ObjectName::from(vec![Ident::new(MOVE_MARKER)])
}

/// Whether a Fetch statement's `into` makes it a MOVE.
pub(crate) fn is_move(into: &Option<ObjectName>) -> bool {
    into.as_ref().is_some_and(|name| *name == move_marker())
}

/// Where a FETCH or MOVE goes from the cursor's row.
enum Motion {
    /// The next `n` rows (`usize::MAX`: all).
    Forward(usize),
    /// Past `n` rows, then the one after them.
    SkipThenOne(u64),
    /// The current row again.
    Current,
    /// Back to before the first row: allowed only where the cursor is.
    Rewind,
    Backward,
}

impl Cursor {
    /// Reads up to `wanted` more rows, into `batches` unless they are
    /// skipped, counting them in `fetched`, unless the statement is
    /// interrupted first.
    async fn read(
        &mut self,
        wanted: usize,
        interrupt: &Interrupt,
        mut batches: Option<&mut Vec<RecordBatch>>,
        fetched: &mut usize,
    ) -> Result<()> {
        let stream = self.stream.get_mut().expect("lock poisoned");
        let start = *fetched;
        while *fetched - start < wanted && !self.at_end {
            let batch = match self.rest.take() {
                Some(batch) => batch,
                None => match interrupt.run(stream.next()).await? {
                    Some(batch) => batch?,
                    None => {
                        self.at_end = true;
                        break;
                    }
                },
            };
            let take = batch.num_rows().min(wanted - (*fetched - start));
            if take == 0 {
                continue;
            }
            if take < batch.num_rows() {
                self.rest = Some(batch.slice(take, batch.num_rows() - take));
            }
            *fetched += take;
            self.rows_read += take as u64;
            self.current = Some(batch.slice(take - 1, 1));
            if let Some(batches) = batches.as_deref_mut() {
                batches.push(batch.slice(0, take));
            }
        }
        if self.at_end {
            self.current = None;
        }
        Ok(())
    }

    /// Whether the cursor is on a row: one was read, and no read ran out.
    fn on_row(&self) -> bool {
        self.current.is_some()
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
                rows_read: 0,
                at_end: false,
                current: None,
                no_scroll: declare.scroll == Some(false),
                fact,
            },
        );
        self.publish_cursors();
        Ok(Output::Command(Tag::new("DECLARE CURSOR")))
    }

    /// `FETCH [direction] [FROM | IN] name`: the rows the direction
    /// reaches; `MOVE` (`moving`) goes there and counts them instead.
    pub(crate) async fn fetch(
        &mut self,
        name: &Ident,
        direction: &FetchDirection,
        moving: bool,
    ) -> Result<Output> {
        let interrupt = self.interrupt.clone();
        let cursor = self.cursor(name)?;
        let motion = match direction {
            FetchDirection::Next | FetchDirection::Forward { limit: None } => Motion::Forward(1),
            FetchDirection::All | FetchDirection::ForwardAll => Motion::Forward(usize::MAX),
            FetchDirection::Count { limit } | FetchDirection::Forward { limit: Some(limit) } => {
                match number::<usize>(&limit.value)? {
                    0 => Motion::Current,
                    n => Motion::Forward(n),
                }
            }
            FetchDirection::Relative { limit } => match number::<i64>(&limit.value)? {
                0 => Motion::Current,
                n if n > 0 => Motion::SkipThenOne(n.unsigned_abs() - 1),
                _ => Motion::Backward,
            },
            FetchDirection::First => absolute(cursor, 1),
            FetchDirection::Absolute { limit } => absolute(cursor, number(&limit.value)?),
            FetchDirection::Prior
            | FetchDirection::Last
            | FetchDirection::Backward { .. }
            | FetchDirection::BackwardAll => Motion::Backward,
        };
        let schema = cursor.schema.clone();
        let mut batches = Vec::new();
        let mut fetched = 0;
        let read = match motion {
            Motion::Forward(n) => {
                let into = (!moving).then_some(&mut batches);
                cursor.read(n, &interrupt, into, &mut fetched).await
            }
            Motion::SkipThenOne(skip) => {
                let skip = usize::try_from(skip).unwrap_or(usize::MAX);
                let mut skipped = 0;
                match cursor.read(skip, &interrupt, None, &mut skipped).await {
                    Ok(()) => {
                        let into = (!moving).then_some(&mut batches);
                        cursor.read(1, &interrupt, into, &mut fetched).await
                    }
                    e => e,
                }
            }
            // MOVE 0 says whether FETCH 0 would find a row, and moves
            // nowhere, even on a NO SCROLL cursor.
            Motion::Current if moving => {
                fetched = usize::from(cursor.on_row());
                Ok(())
            }
            Motion::Current => match &cursor.current {
                None => Ok(()),
                Some(_) if cursor.no_scroll => return Err(only_forward()),
                Some(row) => {
                    batches.push(row.clone());
                    fetched = 1;
                    Ok(())
                }
            },
            Motion::Rewind if cursor.rows_read == 0 && !cursor.at_end => Ok(()),
            Motion::Rewind | Motion::Backward => return Err(only_forward()),
        };
        if let Err(e) = read {
            // Its plan's tasks stop with it; the block is aborted anyway.
            self.cursors.remove(&names::normalize(name));
            self.publish_cursors();
            return Err(e);
        }
        if moving {
            return Ok(Output::Command(Tag::new("MOVE").with_rows(fetched as u64)));
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

/// FETCH ABSOLUTE `n` from where `cursor` is: forward to a row ahead, as
/// PostgreSQL reads it without scrolling; to the start only from there.
fn absolute(cursor: &Cursor, n: i64) -> Motion {
    // A cursor past its end is a row further on: PostgreSQL counts the
    // read that found no row.
    let position = cursor.rows_read + u64::from(cursor.at_end);
    match u64::try_from(n) {
        Ok(0) => Motion::Rewind,
        Ok(n) if n > position => Motion::SkipThenOne(n - position - 1),
        _ => Motion::Backward,
    }
}

fn only_forward() -> Error {
    Error::new(
        sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
        "cursor can only scan forward",
    )
}

/// A FETCH count (`usize`: 0 or more) or a RELATIVE or ABSOLUTE row
/// (`i64`: of either sign); another number is not supported.
fn number<T: std::str::FromStr>(value: &Value) -> Result<T> {
    match value {
        Value::Number(n, _) => n
            .parse::<T>()
            .map_err(|_| Error::unsupported(format!("FETCH {n}"))),
        other => Err(Error::unsupported(format!("FETCH {other}"))),
    }
}
