//! Commands: every change to a database is one of these, appended to the Raft
//! log and applied by the state machine in log order.
//!
//! Commands are *resolved*: they name rows by row id and carry the rows to
//! insert, already typed and defaulted by the planner. Applying one needs no
//! SQL, so every replica applying the same log reaches the same tables.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::catalog::{
    CheckDef, ColumnDef, ForeignKeySpec, GraphDef, IndexDef, NodeAddresses, RowId, SequenceDef,
    TableDef, TableId, TableRef, ViewDef,
};
use crate::error::{Error, Result};
use crate::graph_alter::GraphAlterOp;
use crate::locks::LockOp;
use crate::notify::Notification;
use crate::objects::ObjectOp;
use crate::state::{decode_batch, encode_batch};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    CreateDatabase {
        name: String,
    },
    DropDatabase {
        name: String,
        if_exists: bool,
    },
    CreateSchema {
        database: String,
        name: String,
        if_not_exists: bool,
    },
    DropSchema {
        database: String,
        name: String,
        if_exists: bool,
        cascade: bool,
    },
    /// `def.id` and `def.version` are assigned at apply time.
    CreateTable {
        table: TableRef,
        def: TableDef,
        if_not_exists: bool,
    },
    DropTable {
        table: TableRef,
        if_exists: bool,
    },
    AlterTable {
        table: TableRef,
        op: AlterOp,
    },
    CreateView {
        view: TableRef,
        def: ViewDef,
        or_replace: bool,
    },
    DropView {
        view: TableRef,
        if_exists: bool,
    },
    /// `def`'s element tables are named by id; ids from earlier in the
    /// same transaction block shift with it (see `state::shifted`).
    CreatePropertyGraph {
        graph: TableRef,
        def: GraphDef,
        or_replace: bool,
    },
    DropPropertyGraph {
        graph: TableRef,
        if_exists: bool,
    },
    CreateIndex {
        table: TableRef,
        def: IndexDef,
        if_not_exists: bool,
    },
    DropIndex {
        database: String,
        schema: String,
        name: String,
        if_exists: bool,
    },
    Truncate {
        tables: Vec<TableId>,
    },
    /// Row changes applied atomically: all or none.
    Write {
        ops: Vec<WriteOp>,
    },
    /// Rows set aside for a later `WriteOp::Publish`, invisible until then.
    /// A bulk load (COPY) streams its rows through the log in bounded
    /// commands this way and still becomes visible all at once.
    Stage {
        stage: StageId,
        table: TableId,
        version: u64,
        /// Rows in the table's user schema.
        rows: Rows,
    },
    /// Drops a stage that will never be published (the load failed).
    Unstage {
        stage: StageId,
    },
    /// Commands of several sessions that reached the log together (group
    /// commit): each applies, or is refused, on its own, in order. Never
    /// nested.
    Batch {
        commands: Vec<Command>,
    },
    /// A transaction block that changed the catalog: its DDL in the order it
    /// ran, then its net row changes (one `Write`), applied all or none.
    /// The commands were resolved against generation `generation` of
    /// `database` (names, table versions), so they apply only to it: after
    /// concurrent DDL there, or if the database was dropped and made anew
    /// (another `database_id`), the command is refused (40001). Objects the
    /// block made were numbered from `first_id` on; DDL elsewhere may have
    /// taken those ids since, so the replay's ids shift by the difference,
    /// and the writes follow. Never nested, never holds a `Batch`.
    Transaction {
        database: String,
        database_id: u64,
        generation: u64,
        first_id: u64,
        commands: Vec<Command>,
    },
    /// `def.id` is assigned at apply time. `owned_by` names a column of a
    /// table in the same schema (`serial`), resolved at apply time too.
    CreateSequence {
        sequence: TableRef,
        def: SequenceDef,
        owned_by: Option<(String, String)>,
        if_not_exists: bool,
    },
    DropSequence {
        sequence: TableRef,
        if_exists: bool,
    },
    /// Draws up to `count` values (`Applied::values` says which): what
    /// `nextval` hands out is durable before any of it is used.
    AdvanceSequence {
        id: u64,
        count: u64,
    },
    /// `setval`.
    SetSequence {
        id: u64,
        value: i64,
        is_called: bool,
    },
    /// `ALTER SYSTEM SET name = value` (or RESET, for `None`): the
    /// cluster-wide default of a session setting. `changed_at` (RFC 3339)
    /// is the proposer's clock, so every replica records the same.
    AlterSystem {
        name: String,
        value: Option<String>,
        changed_at: String,
    },
    /// Drops the partitions of every time-series table with a retention
    /// that ended more than that retention before `now_us` (microseconds
    /// since 1970: the proposer's clock, so every replica drops the same).
    ExpirePartitions {
        now_us: i64,
    },
    /// Where a cluster member listens (`None`: it left the cluster).
    NodeAddresses {
        node: u64,
        addresses: Option<NodeAddresses>,
    },
    /// A change to object storage (buckets, objects, uploads).
    Object(ObjectOp),
    /// Taking or releasing an advisory lock.
    Lock(LockOp),
    /// The notifications of a committed transaction, in the order it sent
    /// them: applying them changes nothing but tells the listeners.
    Notify {
        notifications: Vec<Notification>,
    },
    /// `ALTER PROPERTY GRAPH`: `op` applies to the graph as it is then,
    /// so changes of several sessions compose (see `graph_alter`). Last
    /// among the variants, as bincode numbers them in the log.
    AlterPropertyGraph {
        graph: TableRef,
        op: GraphAlterOp,
    },
}

impl Command {
    /// Checks that the log can hold the command: bincode writes it and
    /// reads it back unchanged. The log could not write a command bincode
    /// refuses, and a storage error stops Raft for good; one it writes but
    /// cannot read back would stop the node at its next start. Refused
    /// before it is proposed, such a command fails only its statement.
    /// Bincode is positional and sizes ahead, so `#[serde(flatten)]` and
    /// `skip_serializing_if` in the catalog's types break it; the commands
    /// that carry rows and object bytes have plain types and are not
    /// copied twice to check. Those are cut to fit an entry elsewhere
    /// (`Store::write`); a transaction block's command is checked here for
    /// size too, as the rows of a block that ran DDL travel inside it.
    pub(crate) fn check_log_form(&self) -> Result<()> {
        match self {
            Command::Write { .. }
            | Command::Stage { .. }
            | Command::Unstage { .. }
            | Command::Object(_)
            | Command::Lock(_) => Ok(()),
            _ => check_round_trip(self, COMMAND_BYTES_MAX),
        }
    }

    /// The database whose objects a catalog command changes.
    pub fn database(&self) -> Option<&str> {
        match self {
            Command::CreateSchema { database, .. }
            | Command::DropSchema { database, .. }
            | Command::DropIndex { database, .. }
            | Command::Transaction { database, .. } => Some(database),
            Command::CreateTable { table, .. }
            | Command::DropTable { table, .. }
            | Command::AlterTable { table, .. }
            | Command::CreateIndex { table, .. } => Some(&table.database),
            Command::CreateView { view, .. } | Command::DropView { view, .. } => {
                Some(&view.database)
            }
            Command::CreatePropertyGraph { graph, .. }
            | Command::AlterPropertyGraph { graph, .. }
            | Command::DropPropertyGraph { graph, .. } => Some(&graph.database),
            Command::CreateSequence { sequence, .. } | Command::DropSequence { sequence, .. } => {
                Some(&sequence.database)
            }
            Command::CreateDatabase { .. }
            | Command::DropDatabase { .. }
            | Command::Truncate { .. }
            | Command::Write { .. }
            | Command::Stage { .. }
            | Command::Unstage { .. }
            | Command::Batch { .. }
            | Command::AdvanceSequence { .. }
            | Command::SetSequence { .. }
            | Command::AlterSystem { .. }
            | Command::ExpirePartitions { .. }
            | Command::NodeAddresses { .. }
            | Command::Object(_)
            | Command::Lock(_)
            | Command::Notify { .. } => None,
        }
    }

    /// Whether applying the command may change its database's objects,
    /// which then move to their next generation. Row changes never do.
    pub fn changes_catalog(&self) -> bool {
        !matches!(
            self,
            Command::Write { .. }
                | Command::Stage { .. }
                | Command::Unstage { .. }
                | Command::Truncate { .. }
                | Command::Batch { .. }
                | Command::AdvanceSequence { .. }
                | Command::SetSequence { .. }
                | Command::AlterSystem { .. }
                | Command::ExpirePartitions { .. }
                | Command::NodeAddresses { .. }
                | Command::Object(_)
                | Command::Lock(_)
                | Command::Notify { .. }
        )
    }
}

/// Identity of a stage (rows of a bulk load) or of an upload (an object's
/// bytes): chosen at random by the session that writes it, on the node that
/// session is connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StageId(pub u64);

impl StageId {
    /// A stage of a session on `node`: the high half names the node, so a
    /// node that restarts can drop the stages its dead sessions left and
    /// only those (other nodes' sessions may still be loading).
    /// The low half is random: unlike any other stage of the node.
    pub fn fresh(node: u64) -> StageId {
        let random = uuid::Uuid::new_v4().as_u64_pair().0 as u32;
        StageId((node << 32) | u64::from(random))
    }

    pub fn is_of_node(self, node: u64) -> bool {
        self.0 >> 32 == node & 0xffff_ffff
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AlterOp {
    /// `fill` is the value for existing rows (the column's default, evaluated
    /// once by the planner), as a one-row Arrow IPC stream, or none for NULL.
    AddColumn {
        column: ColumnDef,
        #[serde(with = "serde_bytes")]
        fill: Option<Vec<u8>>,
        if_not_exists: bool,
    },
    DropColumn {
        name: String,
        if_exists: bool,
    },
    RenameColumn {
        from: String,
        to: String,
    },
    RenameTable {
        to: String,
    },
    SetNotNull {
        column: String,
        not_null: bool,
    },
    SetDefault {
        column: String,
        default: Option<String>,
    },
    /// `ADD PRIMARY KEY`: its columns become NOT NULL and `index` (unique,
    /// primary) is built over the existing rows, all or nothing.
    AddPrimaryKey {
        index: IndexDef,
    },
    /// `SET (retention = ...)` on a time-series table.
    SetRetention {
        retention_us: i64,
    },
    /// `ADD FOREIGN KEY`: checked against the table's rows, all or nothing.
    AddForeignKey {
        spec: ForeignKeySpec,
    },
    /// `DROP CONSTRAINT` of a foreign key or a CHECK constraint.
    DropConstraint {
        name: String,
        if_exists: bool,
    },
    /// `ADD CHECK`: the planner found every row of the table with row ids
    /// below `checked_below` passing; a table that gained rows since is
    /// refused (40001), so the statement runs again.
    AddCheck {
        check: CheckDef,
        checked_below: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WriteOp {
    /// Rows in the table's user schema (no row id).
    Insert {
        table: TableId,
        version: u64,
        rows: Rows,
    },
    Delete {
        table: TableId,
        version: u64,
        rowids: Vec<RowId>,
    },
    /// Inserts every row of a stage (see `Command::Stage`) and drops it.
    Publish {
        table: TableId,
        version: u64,
        stage: StageId,
    },
    /// Writes nothing, and refuses the whole write (40001) unless `table`
    /// is as a serializable transaction read it: the same version, the
    /// same `next_rowid` (every insert moves it) and the same number of
    /// rows (every delete lowers it). A SERIALIZABLE block sends one for
    /// each table it read: its writes then land only where its reads
    /// still hold, as if it ran at its commit.
    Unchanged {
        table: TableId,
        version: u64,
        next_rowid: RowId,
        rows: u64,
    },
}

impl WriteOp {
    /// The table the op writes (or, `Unchanged`, checks), and the table's
    /// version it was planned against.
    pub fn target(&self) -> (TableId, u64) {
        match self {
            WriteOp::Insert { table, version, .. }
            | WriteOp::Delete { table, version, .. }
            | WriteOp::Publish { table, version, .. }
            | WriteOp::Unchanged { table, version, .. } => (*table, *version),
        }
    }
}

/// Rows a command carries, as an Arrow IPC stream: the form the log keeps
/// and every replica decodes.
///
/// The node that encoded them also keeps the batch they came from, until
/// the first [`Rows::decode`] takes it: its state machine applies the write
/// it just proposed without decoding what it had just encoded. Clones share
/// the kept batch (the log hands the state machine a clone of its entry),
/// so the batch is held once, and only until applied; a command refused
/// before its rows were read keeps it until the log lets the entry go.
/// Nothing but the bytes is written to the log or sent to other nodes, so
/// what a replica applies never depends on whether it was the one that
/// encoded.
#[derive(Clone)]
pub struct Rows {
    bytes: Bytes,
    kept: Arc<Mutex<Option<RecordBatch>>>,
}

/// A batch holding more memory than its encoding by this much, beyond
/// twice the encoding, is not kept: a slice of a larger batch would pin
/// all of it in the memtable, where a decoded copy holds only its rows.
const KEPT_SLACK_BYTES: usize = 4096;

impl Rows {
    /// Encodes a batch, keeping it for this node's own apply.
    pub fn encode(batch: &RecordBatch) -> Result<Rows> {
        let bytes = encode_batch(batch)?;
        let compact = batch.get_array_memory_size() <= 2 * bytes.len() + KEPT_SLACK_BYTES;
        Ok(Rows {
            kept: Arc::new(Mutex::new(compact.then(|| batch.clone()))),
            bytes: Bytes::from(bytes),
        })
    }

    /// Encodes one of the slices that together make up a whole batch (a
    /// bulk load's chunk cut to fit entries), keeping it whatever memory it
    /// shares: the slices pin their batch once between them, which is what
    /// the decoded copies would hold, and this node's apply need not decode
    /// them (2% of the node's CPU in a bulk load of TPC-H's lineitem).
    pub fn encode_part(part: &RecordBatch) -> Result<Rows> {
        Ok(Rows {
            kept: Arc::new(Mutex::new(Some(part.clone()))),
            bytes: Bytes::from(encode_batch(part)?),
        })
    }

    /// The rows as a batch: the one they were encoded from, the first time
    /// on the node that encoded them, else decoded from the bytes.
    pub fn decode(&self) -> Result<RecordBatch> {
        match self.kept.lock().expect("lock poisoned").take() {
            Some(batch) => Ok(batch),
            None => decode_batch(&self.bytes),
        }
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Rows are equal when their bytes are: the kept batch is a cache.
impl PartialEq for Rows {
    fn eq(&self, other: &Rows) -> bool {
        self.bytes == other.bytes
    }
}

impl std::fmt::Debug for Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rows({} bytes)", self.bytes.len())
    }
}

/// Serialized as the bytes alone, as `serde_bytes` wrote the `Vec<u8>`
/// commands carried before: logs written then still read.
impl Serialize for Rows {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serde_bytes::Bytes::new(&self.bytes).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Rows {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Rows, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(deserializer)?;
        Ok(Rows {
            bytes: Bytes::from(bytes.into_vec()),
            kept: Arc::default(),
        })
    }
}

/// What applying a command did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Rows inserted plus rows deleted by a Write; objects changed by DDL.
    pub rows: u64,
    /// The command was a no-op (IF NOT EXISTS on something that exists, ...).
    pub skipped: bool,
    /// The first and last value an `AdvanceSequence` drew.
    #[serde(default)]
    pub values: Option<(i64, i64)>,
    /// Rows a foreign key's ON DELETE CASCADE or SET NULL deleted beside
    /// the command's own, per table: a transaction block's net changes
    /// must name them (`SET NULL` inserts new rows in their place).
    #[serde(default)]
    pub cascaded: Vec<(TableId, Vec<RowId>)>,
}

/// The most a command not cut into entries may take in the log: half a
/// log record, which also holds the entry around it.
const COMMAND_BYTES_MAX: u64 = crate::log::LOG_RECORD_BYTES_MAX as u64 / 2;

fn check_round_trip<T: Serialize + DeserializeOwned + PartialEq>(
    value: &T,
    bytes_max: u64,
) -> Result<()> {
    let unloggable = |e: bincode::Error| Error::Unloggable(e.to_string());
    let bytes = bincode::serialize(value).map_err(unloggable)?;
    if bytes.len() as u64 > bytes_max {
        return Err(Error::TooLarge(format!(
            "the transaction's changes take {} MB, more than one log entry holds ({} MB): \
             commit its DDL before its rows",
            bytes.len() >> 20,
            bytes_max >> 20
        )));
    }
    let back: T = bincode::deserialize(&bytes).map_err(unloggable)?;
    match back == *value {
        true => Ok(()),
        false => Err(Error::Unloggable("it reads back changed".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{EdgeEnd, EdgeTable, ElementTable, GraphLabel, GraphProperty};
    use datafusion::arrow::array::{ArrayRef, Int64Array};

    fn numbers(n: i64) -> RecordBatch {
        let column: ArrayRef = Arc::new(Int64Array::from_iter_values(0..n));
        RecordBatch::try_from_iter([("x", column)]).unwrap()
    }

    /// The node that encoded rows applies the batch itself, once; a clone
    /// (the log's copy of the entry) shares it; after that, and on any node
    /// that read the rows from the log, they are decoded from the bytes.
    #[test]
    fn encoded_rows_keep_their_batch_for_one_decode() {
        let batch = numbers(3);
        let rows = Rows::encode(&batch).unwrap();
        let clone = rows.clone();
        let kept = clone.decode().unwrap();
        assert!(kept.column(0).to_data().ptr_eq(&batch.column(0).to_data()));
        let decoded = rows.decode().unwrap();
        assert!(
            !decoded
                .column(0)
                .to_data()
                .ptr_eq(&batch.column(0).to_data())
        );
        assert_eq!(decoded, batch);
    }

    /// The log holds the bytes alone, as it held the `Vec<u8>` before.
    #[test]
    fn rows_serialize_as_their_bytes() {
        let rows = Rows::encode(&numbers(3)).unwrap();
        let logged = bincode::serialize(&rows).unwrap();
        let before = bincode::serialize(&serde_bytes::Bytes::new(&rows.bytes)).unwrap();
        assert_eq!(logged, before);
        let read: Rows = bincode::deserialize(&logged).unwrap();
        assert_eq!(read, rows);
        assert!(read.kept.lock().unwrap().is_none());
        assert_eq!(read.decode().unwrap(), numbers(3));
    }

    /// A few rows cut from a large batch are not kept: they would pin all
    /// of it in the memtable.
    #[test]
    fn a_slice_of_a_large_batch_is_not_kept() {
        let rows = Rows::encode(&numbers(100_000).slice(10, 2)).unwrap();
        assert!(rows.kept.lock().unwrap().is_none());
        assert_eq!(rows.decode().unwrap(), numbers(12).slice(10, 2));
    }

    /// The parts of a batch are kept, each still the rows it was cut to.
    #[test]
    fn the_parts_of_a_batch_are_kept() {
        let part = numbers(100_000).slice(10, 2);
        let rows = Rows::encode_part(&part).unwrap();
        assert!(rows.kept.lock().unwrap().is_some());
        assert_eq!(rows.decode().unwrap(), part);
        assert_eq!(decode_batch(&rows.bytes).unwrap(), part);
    }

    /// Log entries are bincode, which refuses what it cannot size ahead
    /// (`#[serde(flatten)]`): a command it refuses would stop the log.
    #[test]
    fn a_property_graph_command_survives_the_log_encoding() {
        let element = |alias: &str, table| ElementTable {
            alias: alias.into(),
            table: TableId(table),
            key: vec!["id".into()],
            labels: vec![GraphLabel {
                name: alias.into(),
                properties: Some(vec![GraphProperty {
                    name: "n".into(),
                    expr: "upper(name)".into(),
                }]),
            }],
        };
        let end = EdgeEnd {
            vertex: "person".into(),
            columns: vec!["src".into()],
            references: vec!["id".into()],
        };
        let command = Command::CreatePropertyGraph {
            graph: TableRef {
                database: "ciab".into(),
                schema: "public".into(),
                name: "g".into(),
            },
            def: GraphDef {
                vertices: vec![element("person", 1)],
                edges: vec![EdgeTable {
                    element: element("knows", 2),
                    source: end.clone(),
                    destination: end,
                }],
            },
            or_replace: false,
        };
        command.check_log_form().unwrap();
    }

    /// The shapes bincode gets wrong are refused, not logged.
    #[test]
    fn what_bincode_cannot_read_back_is_refused() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Inner {
            a: u32,
        }
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Flattened {
            #[serde(flatten)]
            inner: Inner,
        }
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Skipping {
            #[serde(default, skip_serializing_if = "Option::is_none")]
            a: Option<u32>,
            b: u32,
        }
        let flattened = Flattened {
            inner: Inner { a: 1 },
        };
        assert!(matches!(
            check_round_trip(&flattened, COMMAND_BYTES_MAX),
            Err(Error::Unloggable(_))
        ));
        assert!(matches!(
            check_round_trip(&Skipping { a: None, b: 7 }, COMMAND_BYTES_MAX),
            Err(Error::Unloggable(_))
        ));
        check_round_trip(&Skipping { a: Some(1), b: 7 }, COMMAND_BYTES_MAX).unwrap();
        check_round_trip(&Inner { a: 1 }, COMMAND_BYTES_MAX).unwrap();
        // Four bytes of u32: more than three is too large.
        assert!(matches!(
            check_round_trip(&Inner { a: 1 }, 3),
            Err(Error::TooLarge(_))
        ));
    }
}
