//! The storage crate's one error type.

use serde::{Deserialize, Serialize};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command the state machine refused: a constraint, a missing or
    /// duplicate object. Deterministic, so every replica refuses it alike.
    #[error("{0}")]
    Rejected(#[from] Rejection),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Stored state failed a checksum or could not be decoded.
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: String, detail: String },
    #[error("arrow error: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("parquet error: {0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    #[error("object store: {0}")]
    ObjectStore(String),
    #[error("raft error: {0}")]
    Raft(String),
    /// The cluster cannot serve the request now (no leader, no majority);
    /// nothing was done, and trying again later may succeed.
    #[error("cluster unavailable: {0}")]
    Unavailable(String),
    /// A write was sent but no answer came: it may or may not be committed.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// Less than `disk_reserve` is free: a write that adds data was refused
    /// before it was proposed, so nothing was done.
    #[error("{0}")]
    DiskFull(String),
    /// The log could not hold the command (`Command::check_log_form`): a
    /// bug, refused before anything was proposed.
    #[error("the log cannot hold this command, so nothing was done: {0}")]
    Unloggable(String),
    /// A command larger than one log entry may be; nothing was done.
    #[error("{0}")]
    TooLarge(String),
    /// Another process holds the data directory.
    #[error("{0}")]
    InUse(String),
}

impl Error {
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    /// The same failure, for another writer whose command shared its log
    /// entry.
    pub fn for_another_writer(&self) -> Self {
        match self {
            Error::Unavailable(m) => Error::Unavailable(m.clone()),
            Error::OutcomeUnknown(m) => Error::OutcomeUnknown(m.clone()),
            Error::DiskFull(m) => Error::DiskFull(m.clone()),
            other => Error::Raft(other.to_string()),
        }
    }

    pub fn corrupt(what: impl Into<String>, detail: impl ToString) -> Self {
        Error::Corrupt {
            what: what.into(),
            detail: detail.to_string(),
        }
    }
}

/// Why the state machine refused a command, with the SQLSTATE a client sees.
/// It travels back through Raft as the command's response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    pub kind: RejectionKind,
    pub message: String,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectionKind {
    UniqueViolation,
    NotNullViolation,
    DuplicateObject,
    DuplicateSchema,
    DuplicateTable,
    DuplicateColumn,
    DuplicateDatabase,
    UndefinedTable,
    UndefinedSchema,
    UndefinedColumn,
    UndefinedObject,
    DependentObjects,
    /// The command was planned against a state that changed before it was
    /// applied (a row it names is gone, the table was altered). Retryable.
    SerializationFailure,
    Unsupported,
    /// A limit such as [`crate::INDEXES_PER_TABLE_MAX`] would be passed.
    ProgramLimitExceeded,
    /// A table definition PostgreSQL refuses (two primary keys).
    InvalidTableDefinition,
    /// A command that could not be decoded: a bug, refused alike everywhere.
    Internal,
    /// A sequence reached its maximum (or minimum) value.
    SequenceLimit,
    /// A value outside its bounds (`setval` past a sequence's maximum).
    NumericValueOutOfRange,
    NoSuchBucket,
    NoSuchKey,
    /// A multipart upload, or an upload's bytes, that is not there.
    NoSuchUpload,
    BucketExists,
    BucketNotEmpty,
    /// A bucket name or key S3 would refuse.
    InvalidName,
    /// A multipart upload's part list that does not fit its parts.
    InvalidPart,
    ForeignKeyViolation,
    /// A foreign key over columns no unique index of the parent covers.
    InvalidForeignKey,
    DatatypeMismatch,
    /// Sessions waiting for each other's advisory locks.
    Deadlock,
    /// A property graph definition that cannot be (an element without
    /// labels).
    InvalidObjectDefinition,
}

impl RejectionKind {
    pub fn sqlstate(self) -> &'static str {
        match self {
            RejectionKind::UniqueViolation => "23505",
            RejectionKind::ForeignKeyViolation => "23503",
            RejectionKind::InvalidForeignKey => "42830",
            RejectionKind::DatatypeMismatch => "42804",
            RejectionKind::NotNullViolation => "23502",
            RejectionKind::DuplicateObject => "42710",
            RejectionKind::ProgramLimitExceeded => "54000",
            RejectionKind::InvalidTableDefinition => "42P16",
            RejectionKind::InvalidObjectDefinition => "42P17",
            RejectionKind::SequenceLimit => "2200H",
            RejectionKind::NumericValueOutOfRange => "22003",
            RejectionKind::DuplicateSchema => "42P06",
            RejectionKind::DuplicateTable => "42P07",
            RejectionKind::DuplicateColumn => "42701",
            RejectionKind::DuplicateDatabase => "42P04",
            RejectionKind::UndefinedTable => "42P01",
            RejectionKind::UndefinedSchema => "3F000",
            RejectionKind::UndefinedColumn => "42703",
            RejectionKind::UndefinedObject => "42704",
            RejectionKind::DependentObjects => "2BP01",
            RejectionKind::SerializationFailure => "40001",
            RejectionKind::Deadlock => "40P01",
            RejectionKind::Unsupported => "0A000",
            RejectionKind::Internal => "XX000",
            RejectionKind::NoSuchBucket
            | RejectionKind::NoSuchKey
            | RejectionKind::NoSuchUpload => "42704",
            RejectionKind::BucketExists => "42710",
            RejectionKind::BucketNotEmpty => "2BP01",
            RejectionKind::InvalidName | RejectionKind::InvalidPart => "22023",
        }
    }
}

impl Rejection {
    pub fn new(kind: RejectionKind, message: impl Into<String>) -> Self {
        Rejection {
            kind,
            message: message.into(),
            detail: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}
