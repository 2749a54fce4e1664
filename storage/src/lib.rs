//! ciab's storage layer: the Raft log, the state machine, and table files.
//!
//! ```text
//!   Store::write(Command) ──► openraft ──► log (fsync) ──► commit ──► StateMachine::apply
//!                                                                        │
//!   Store::snapshot() ◄── Arc<DbState> (catalog + Arrow segments) ◄──────┘
//!                                     │ snapshot (flush)
//!                                     ▼
//!                      manifest.json + tables/<id>/*.parquet ──► log purged
//! ```
//!
//! Storage knows nothing of SQL: commands arrive resolved (typed rows, row
//! ids), so applying them is deterministic and replicas agree.

mod answer;
pub mod catalog;
mod checks;
pub mod command;
mod disk;
pub mod error;
mod files;
mod foreign_keys;
mod graph_alter;
mod index;
pub mod locks;
mod log;
mod machine;
pub mod notify;
pub mod objects;
mod page_cache;
pub mod peer;
pub mod raft;
pub mod sketch;
pub mod state;
pub mod table;

pub use catalog::{
    ARRAY_TAG_SUFFIX, CHECKS_PER_TABLE_MAX, Catalog, CheckDef, ColumnDef, DEFAULT_DATABASE,
    DEFAULT_SCHEMA, EdgeEnd, EdgeTable, ElementTable, FOREIGN_KEYS_PER_TABLE_MAX, ForeignKeyDef,
    ForeignKeySpec, GraphDef, GraphLabel, GraphProperty, INDEXES_PER_TABLE_MAX, IndexDef,
    NodeAddresses, PG_CHAR_LENGTH_METADATA_KEY, PG_TYPE_METADATA_KEY, PgType, ROWID_COLUMN,
    RefAction, RowId, SchemaDef, SequenceDef, SequenceOwner, StoredGraph, StoredView,
    SystemSetting, TableDef, TableId, TableRef, TimeSeriesDef, ViewDef,
};
pub use command::{AlterOp, Applied, Command, Rows, StageId, WriteOp};
pub use disk::{DISK_RESERVE_DEFAULT, DISK_RESERVE_SETTING, parse_bytes};
pub use error::{Error, Rejection, RejectionKind, Result};
pub use foreign_keys::CascadedUpdate;
pub use graph_alter::{ElementKind, GraphAlterOp};
pub use locks::{AdvisoryLocks, LockKey, LockMode, LockOp, LockScope, SessionId};
pub use notify::{Notification, NotificationSink};
pub use objects::{BlobWriter, ObjectMeta, ObjectOp, Objects};
pub use raft::{NodeId, NodeOptions, NodeStatus, Store, VOTERS_MAX};
pub use state::{DbState, Stage, decode_batch, encode_batch};
pub use table::{Bounds, IndexKey, Segment, TableData, encode_keys, partition_point};
