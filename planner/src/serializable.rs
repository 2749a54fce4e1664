//! Isolation levels, and SERIALIZABLE by checking at commit what a
//! transaction read.
//!
//! Every transaction block reads one snapshot, taken at BEGIN: PostgreSQL's
//! REPEATABLE READ (snapshot isolation). Its writes are checked at commit
//! only against other writes to the same rows (first committer wins), so
//! two blocks that each read what the other writes both commit: write skew,
//! which PostgreSQL's SERIALIZABLE prevents. READ COMMITTED and READ
//! UNCOMMITTED run as REPEATABLE READ, which only reads less of other
//! transactions' work than they allow.
//!
//! A SERIALIZABLE transaction keeps the set of tables it read (each table
//! scan and each key lookup records its table). At COMMIT its write carries
//! a `WriteOp::Unchanged` for each of them, with what the table was in the
//! snapshot; the state machine applies the write only if every one of them
//! is still as it was, and refuses it with 40001 otherwise. A write that
//! lands is then as if the whole transaction ran at its commit, alone, so
//! the transactions that check their reads are serializable in their commit
//! order (optimistic concurrency control, validated where the log orders
//! commits):
//!
//! ```text
//!  BEGIN ISOLATION LEVEL SERIALIZABLE
//!  SELECT ... FROM a, b          reads {a, b}  (at the snapshot)
//!  UPDATE c ...                  reads {a, b, c}, writes c
//!  COMMIT ──► Write [Unchanged a, Unchanged b, Unchanged c, Delete c, Insert c]
//!                    └── any of a, b, c changed since the snapshot: 40001
//! ```
//!
//! A block that wrote nothing commits without a check: the snapshot it
//! read is a prefix of that commit order. Tables are the unit, where
//! PostgreSQL's predicate locks reach down to rows and index ranges: a
//! change anywhere in a table read fails the commit, so more transactions
//! fail (and are retried) than in PostgreSQL, never fewer. A statement
//! outside a block, under `default_transaction_isolation = 'serializable'`,
//! checks what it read the same way, and is planned again on 40001 as any
//! autocommit statement is.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use ciab_storage::{DbState, TableId, WriteOp};

use crate::error::{Error, Result, sqlstate};

/// A transaction's isolation level, as ciab runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isolation {
    RepeatableRead,
    Serializable,
}

/// The levels PostgreSQL names, as `transaction_isolation` spells them.
pub(crate) const LEVELS: [&str; 4] = [
    "read uncommitted",
    "read committed",
    "repeatable read",
    "serializable",
];

impl Isolation {
    /// The level a setting's value (or BEGIN's words) asks for; the lower
    /// levels run as REPEATABLE READ.
    pub(crate) fn parse(name: &str, value: &str) -> Result<Isolation> {
        let level = value.trim().trim_matches('\'').to_ascii_lowercase();
        match level.as_str() {
            "serializable" => Ok(Isolation::Serializable),
            "read uncommitted" | "read committed" | "repeatable read" => {
                Ok(Isolation::RepeatableRead)
            }
            _ => Err(Error::new(
                sqlstate::INVALID_PARAMETER_VALUE,
                format!("invalid value for parameter \"{name}\": \"{value}\""),
            )),
        }
    }

    /// What `SHOW transaction_isolation` says: the level that applies.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Isolation::RepeatableRead => "repeatable read",
            Isolation::Serializable => "serializable",
        }
    }
}

/// The tables a serializable transaction read, and the snapshot it read
/// them in. Shared with the table providers of the statements it runs,
/// which record into it as they scan.
#[derive(Debug, Clone)]
pub(crate) struct Reads {
    snapshot: Arc<DbState>,
    tables: Arc<Mutex<BTreeSet<TableId>>>,
}

impl Reads {
    pub(crate) fn new(snapshot: Arc<DbState>) -> Reads {
        Reads {
            snapshot,
            tables: Arc::default(),
        }
    }

    pub(crate) fn record(&self, table: TableId) {
        self.tables.lock().expect("lock poisoned").insert(table);
    }

    /// The checks a write sends so that it lands only if every table read
    /// is still as the snapshot has it. A table the snapshot lacks was
    /// made by the transaction itself, which no one else could have
    /// written. (A table read in a newer state than the snapshot, where a
    /// statement read the latest one, fails the check: never the reverse.)
    pub(crate) fn unchanged(&self) -> Vec<WriteOp> {
        let tables = self.tables.lock().expect("lock poisoned");
        tables
            .iter()
            .filter_map(|&table| self.snapshot.as_read(table))
            .collect()
    }
}
