//! The database state and the one function that changes it: [`DbState::apply`].
//!
//! `apply` is deterministic: the same commands in the same order give the same
//! state on every replica. It works on a copy (cheap: tables are shared
//! `Arc`s) and the caller keeps the copy only if every step succeeded, so a
//! command is applied whole or not at all.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, new_null_array};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::{
    DictionaryTracker, IpcDataGenerator, IpcWriteContext, IpcWriteOptions, StreamWriter,
    write_message,
};

use crate::catalog::{
    Catalog, DatabaseDef, GraphDef, INDEXES_PER_TABLE_MAX, SchemaDef, SequenceDef, SequenceOwner,
    StoredGraph, StoredView, SystemSetting, TableDef, TableId, TableRef, TimeSeriesDef,
};
use crate::command::{AlterOp, Applied, Command, StageId, WriteOp};
use crate::error::{Error, Rejection, RejectionKind, Result};
use crate::graph_alter::GraphAlterOp;
use crate::locks::{AdvisoryLocks, LockOp};
use crate::objects::Objects;
use crate::table::{Segment, TableData};

/// One consistent version of every database: catalog and rows.
#[derive(Debug, Clone, Default)]
pub struct DbState {
    pub catalog: Arc<Catalog>,
    pub tables: BTreeMap<TableId, Arc<TableData>>,
    /// Rows of bulk loads in progress, invisible until published.
    pub staged: BTreeMap<StageId, Arc<Stage>>,
    /// Buckets and their objects.
    pub objects: Objects,
    /// Advisory locks held and waited for.
    pub locks: Arc<AdvisoryLocks>,
}

/// Rows one bulk load set aside for a table (see `Command::Stage`).
#[derive(Debug, Clone)]
pub struct Stage {
    pub table: TableId,
    /// The table's version the rows were shaped for.
    pub version: u64,
    /// Rows in the table's user schema (no row ids yet: those are assigned
    /// when the stage is published). A segment's `file` is set once a
    /// snapshot wrote it, so later snapshots need not write it again.
    pub segments: Vec<Arc<Segment>>,
}

pub(crate) fn reject(kind: RejectionKind, message: impl Into<String>) -> Error {
    Rejection::new(kind, message).into()
}

impl DbState {
    pub fn table_data(&self, id: TableId) -> Option<&Arc<TableData>> {
        self.tables.get(&id)
    }

    /// Whether some time-series partition ended more than its table's
    /// retention before `now_us`: what `Command::ExpirePartitions` would drop.
    pub fn has_expired_partitions(&self, now_us: i64) -> bool {
        retained(&self.catalog, now_us).any(|(def, ts, cutoff_us)| {
            let oldest = self.tables[&def.id].segments.first();
            oldest.is_some_and(|s| s.expired(ts, cutoff_us))
        })
    }

    /// Applies one command to this state, or leaves it untouched and says why
    /// not. `Error::Rejected` is the deterministic refusal; any other error
    /// is a broken invariant.
    pub fn apply(&mut self, command: &Command) -> Result<Applied> {
        let mut next = self.clone();
        let applied = next.apply_in_place(command)?;
        if command.changes_catalog()
            && let Some(name) = command.database()
            && let Some(db) = Arc::make_mut(&mut next.catalog).databases.get_mut(name)
        {
            db.generation += 1;
        }
        *self = next;
        Ok(applied)
    }

    fn apply_in_place(&mut self, command: &Command) -> Result<Applied> {
        match command {
            Command::CreateDatabase { name } => {
                let catalog = Arc::make_mut(&mut self.catalog);
                if catalog.databases.contains_key(name) {
                    return Err(reject(
                        RejectionKind::DuplicateDatabase,
                        format!("database \"{name}\" already exists"),
                    ));
                }
                catalog.create_database(name);
                Ok(Applied::default())
            }
            Command::DropDatabase { name, if_exists } => {
                let catalog = Arc::make_mut(&mut self.catalog);
                match catalog.databases.remove(name) {
                    Some(db) => {
                        for schema in db.schemas.values() {
                            for t in schema.tables.values() {
                                self.tables.remove(&t.id);
                            }
                        }
                        Ok(Applied::default())
                    }
                    None if *if_exists => Ok(skipped()),
                    None => Err(reject(
                        RejectionKind::UndefinedObject,
                        format!("database \"{name}\" does not exist"),
                    )),
                }
            }
            Command::CreateSchema {
                database,
                name,
                if_not_exists,
            } => {
                let catalog = Arc::make_mut(&mut self.catalog);
                let id = catalog.next_table_id;
                let db = catalog.databases.get_mut(database).ok_or_else(|| {
                    reject(
                        RejectionKind::UndefinedObject,
                        format!("database \"{database}\" does not exist"),
                    )
                })?;
                if db.schemas.contains_key(name) {
                    if *if_not_exists {
                        return Ok(skipped());
                    }
                    return Err(reject(
                        RejectionKind::DuplicateSchema,
                        format!("schema \"{name}\" already exists"),
                    ));
                }
                db.schemas.insert(
                    name.clone(),
                    SchemaDef {
                        id,
                        ..SchemaDef::default()
                    },
                );
                catalog.next_table_id += 1;
                Ok(Applied::default())
            }
            Command::DropSchema {
                database,
                name,
                if_exists,
                cascade,
            } => {
                let db = self.database_mut(database)?;
                let Some(schema) = db.schemas.get(name) else {
                    if *if_exists {
                        return Ok(skipped());
                    }
                    return Err(reject(
                        RejectionKind::UndefinedSchema,
                        format!("schema \"{name}\" does not exist"),
                    ));
                };
                if !cascade
                    && (!schema.tables.is_empty()
                        || !schema.views.is_empty()
                        || !schema.sequences.is_empty()
                        || !schema.graphs.is_empty())
                {
                    return Err(Rejection::new(
                        RejectionKind::DependentObjects,
                        format!("cannot drop schema {name} because other objects depend on it"),
                    )
                    .with_detail("Use DROP ... CASCADE to drop the dependent objects too.")
                    .into());
                }
                let schema = db.schemas.remove(name).expect("checked above");
                // CASCADE takes the graphs of other schemas that read its tables too.
                for other in db.schemas.values_mut() {
                    other.graphs.retain(|_, g| {
                        !g.def
                            .tables()
                            .any(|t| schema.tables.values().any(|d| d.id == t))
                    });
                }
                for t in schema.tables.values() {
                    self.tables.remove(&t.id);
                }
                self.forget_constraints_of_dropped_tables();
                Ok(Applied::default())
            }
            Command::CreateTable {
                table,
                def,
                if_not_exists,
            } => {
                let catalog = Arc::make_mut(&mut self.catalog);
                let id = TableId(catalog.next_table_id);
                let schema = schema_mut(catalog, &table.database, &table.schema)?;
                if schema.has_relation(&table.name) {
                    if *if_not_exists {
                        return Ok(skipped());
                    }
                    return Err(reject(
                        RejectionKind::DuplicateTable,
                        format!("relation \"{}\" already exists", table.name),
                    ));
                }
                if def.indexes.len() > INDEXES_PER_TABLE_MAX {
                    return Err(too_many_indexes());
                }
                let mut def = def.clone();
                def.id = id;
                def.version = 0;
                let data = TableData::new(&def, Vec::new(), 0)?;
                schema.tables.insert(table.name.clone(), def);
                catalog.next_table_id += 1;
                self.tables.insert(id, Arc::new(data));
                Ok(Applied::default())
            }
            Command::DropTable { table, if_exists } => {
                if let Some(def) = self.catalog.table(table)
                    && let Some((schema, graph)) =
                        self.catalog.graphs_using(&table.database, def.id).pop()
                {
                    return Err(Rejection::new(
                        RejectionKind::DependentObjects,
                        format!(
                            "cannot drop table {} because property graph {schema}.{graph} depends on it",
                            table.name
                        ),
                    )
                    .with_detail("Use DROP ... CASCADE to drop the dependent objects too.")
                    .into());
                }
                if let Some(def) = self.catalog.table(table)
                    && let Some((key, child)) = self.referenced_from_elsewhere(def.id)
                {
                    return Err(Rejection::new(
                        RejectionKind::DependentObjects,
                        format!(
                            "cannot drop table {} because other objects depend on it",
                            table.name
                        ),
                    )
                    .with_detail(format!(
                        "constraint {key} on table {child} depends on table {}",
                        table.name
                    ))
                    .into());
                }
                let catalog = Arc::make_mut(&mut self.catalog);
                let schema = schema_mut(catalog, &table.database, &table.schema)?;
                match schema.tables.remove(&table.name) {
                    Some(def) => {
                        schema
                            .sequences
                            .retain(|_, s| s.owner.as_ref().is_none_or(|o| o.table != def.id));
                        self.tables.remove(&def.id);
                        self.forget_constraints_of_dropped_tables();
                        Ok(Applied::default())
                    }
                    None if *if_exists => Ok(skipped()),
                    None => Err(undefined_table(&table.name)),
                }
            }
            Command::AlterTable { table, op } => self.alter_table(table, op),
            Command::CreateView {
                view,
                def,
                or_replace,
            } => {
                let catalog = Arc::make_mut(&mut self.catalog);
                let schema = schema_mut(catalog, &view.database, &view.schema)?;
                if schema.tables.contains_key(&view.name)
                    || (schema.views.contains_key(&view.name) && !or_replace)
                {
                    return Err(reject(
                        RejectionKind::DuplicateTable,
                        format!("relation \"{}\" already exists", view.name),
                    ));
                }
                // A replaced view keeps its id, as PostgreSQL keeps its OID.
                let existing = schema.views.get(&view.name).map(|v| v.id);
                let id = existing.unwrap_or_else(|| catalog.allocate_id());
                let schema = schema_mut(catalog, &view.database, &view.schema)?;
                schema.views.insert(
                    view.name.clone(),
                    StoredView {
                        id,
                        def: def.clone(),
                    },
                );
                Ok(Applied::default())
            }
            Command::DropView { view, if_exists } => {
                let catalog = Arc::make_mut(&mut self.catalog);
                let schema = schema_mut(catalog, &view.database, &view.schema)?;
                match schema.views.remove(&view.name) {
                    Some(_) => Ok(Applied::default()),
                    None if *if_exists => Ok(skipped()),
                    None => Err(reject(
                        RejectionKind::UndefinedTable,
                        format!("view \"{}\" does not exist", view.name),
                    )),
                }
            }
            Command::CreatePropertyGraph {
                graph,
                def,
                or_replace,
            } => {
                self.check_graph_tables(def)?;
                let catalog = Arc::make_mut(&mut self.catalog);
                let schema = schema_mut(catalog, &graph.database, &graph.schema)?;
                let existing = schema.graphs.get(&graph.name).map(|g| g.id);
                if schema.has_relation(&graph.name) && !(*or_replace && existing.is_some()) {
                    return Err(reject(
                        RejectionKind::DuplicateTable,
                        format!("relation \"{}\" already exists", graph.name),
                    ));
                }
                // A replaced graph keeps its id, as a replaced view does.
                let id = existing.unwrap_or_else(|| catalog.allocate_id());
                let schema = schema_mut(catalog, &graph.database, &graph.schema)?;
                let stored = StoredGraph {
                    id,
                    def: def.clone(),
                };
                schema.graphs.insert(graph.name.clone(), stored);
                Ok(Applied::default())
            }
            Command::AlterPropertyGraph { graph, op } => {
                self.alter_graph(graph, op)?;
                Ok(Applied::default())
            }
            Command::DropPropertyGraph { graph, if_exists } => {
                let catalog = Arc::make_mut(&mut self.catalog);
                let schema = schema_mut(catalog, &graph.database, &graph.schema)?;
                match schema.graphs.remove(&graph.name) {
                    Some(_) => Ok(Applied::default()),
                    None if *if_exists => Ok(skipped()),
                    None => Err(reject(
                        RejectionKind::UndefinedTable,
                        format!("property graph \"{}\" does not exist", graph.name),
                    )),
                }
            }
            Command::CreateIndex {
                table,
                def,
                if_not_exists,
            } => {
                let catalog = Arc::make_mut(&mut self.catalog);
                let schema = schema_mut(catalog, &table.database, &table.schema)?;
                if schema
                    .tables
                    .values()
                    .any(|t| t.indexes.iter().any(|i| i.name == def.name))
                    || schema.has_relation(&def.name)
                {
                    if *if_not_exists {
                        return Ok(skipped());
                    }
                    return Err(reject(
                        RejectionKind::DuplicateTable,
                        format!("relation \"{}\" already exists", def.name),
                    ));
                }
                let tdef = schema
                    .tables
                    .get_mut(&table.name)
                    .ok_or_else(|| undefined_table(&table.name))?;
                if tdef.indexes.len() >= INDEXES_PER_TABLE_MAX {
                    return Err(too_many_indexes());
                }
                if def.unique {
                    let data = self
                        .tables
                        .get_mut(&tdef.id)
                        .expect("catalog and data agree");
                    Arc::make_mut(data).add_unique_index(tdef, def)?;
                }
                tdef.indexes.push(def.clone());
                Ok(Applied::default())
            }
            Command::DropIndex {
                database,
                schema,
                name,
                if_exists,
            } => match self.drop_index(database, schema, name, None)? {
                true => Ok(Applied::default()),
                false if *if_exists => Ok(skipped()),
                false if self.catalog.schema(database, schema).is_none() => Err(reject(
                    RejectionKind::UndefinedSchema,
                    format!("schema \"{schema}\" does not exist"),
                )),
                false => Err(reject(
                    RejectionKind::UndefinedObject,
                    format!("index \"{name}\" does not exist"),
                )),
            },
            Command::Truncate { tables } => {
                self.check_truncate(tables)?;
                for id in tables {
                    let (_, def) = self
                        .catalog
                        .table_by_id(*id)
                        .ok_or_else(|| undefined_table(&format!("#{}", id.0)))?;
                    let next_rowid = self.tables[id].next_rowid;
                    let data = TableData::new(def, Vec::new(), next_rowid)?;
                    self.tables.insert(*id, Arc::new(data));
                }
                Ok(Applied::default())
            }
            Command::Stage {
                stage,
                table,
                version,
                rows,
            } => {
                let (tref, _) = Self::writable_table(&self.catalog, *table, *version)?;
                let batch = shaped(rows.decode()?, &self.tables[table], &tref)?;
                let n = batch.num_rows() as u64;
                let entry = self.staged.entry(*stage).or_insert_with(|| {
                    Arc::new(Stage {
                        table: *table,
                        version: *version,
                        segments: Vec::new(),
                    })
                });
                if entry.table != *table || entry.version != *version {
                    return Err(reject(
                        RejectionKind::Internal,
                        "a stage holds rows for one table version only",
                    ));
                }
                Arc::make_mut(entry)
                    .segments
                    .push(Arc::new(Segment::new(batch, None)));
                Ok(Applied {
                    rows: n,
                    ..Applied::default()
                })
            }
            Command::Unstage { stage } => match self.staged.remove(stage) {
                Some(_) => Ok(Applied::default()),
                None => Ok(skipped()),
            },
            // The state machine applies a batch's commands one by one, each
            // with its own outcome; a batch is never one of them.
            Command::Batch { .. } => Err(Rejection::new(
                RejectionKind::Internal,
                "a batch of commands applies command by command",
            )
            .into()),
            Command::Transaction {
                database,
                database_id,
                generation,
                first_id,
                commands,
            } => {
                let db = self.database_mut(database)?;
                if (db.id, db.generation) != (*database_id, *generation) {
                    return Err(reject(
                        RejectionKind::SerializationFailure,
                        "could not serialize access due to concurrent DDL",
                    ));
                }
                let shift = self.catalog.next_table_id - first_id;
                let mut applied = Applied::default();
                for command in commands {
                    assert!(
                        !matches!(command, Command::Batch { .. } | Command::Transaction { .. }),
                        "a transaction holds only DDL and writes"
                    );
                    assert!(
                        command.database().is_none_or(|d| d == database),
                        "a transaction block changes one database"
                    );
                    let applied_one = if shift > 0 {
                        self.apply_in_place(&shifted(command, *first_id, shift))?
                    } else {
                        self.apply_in_place(command)?
                    };
                    applied.rows += applied_one.rows;
                }
                Ok(applied)
            }
            Command::CreateSequence {
                sequence,
                def,
                owned_by,
                if_not_exists,
            } => {
                let catalog = Arc::make_mut(&mut self.catalog);
                let id = catalog.next_table_id;
                let schema = schema_mut(catalog, &sequence.database, &sequence.schema)?;
                if schema.has_relation(&sequence.name) {
                    if *if_not_exists {
                        return Ok(skipped());
                    }
                    return Err(reject(
                        RejectionKind::DuplicateTable,
                        format!("relation \"{}\" already exists", sequence.name),
                    ));
                }
                let owner = match owned_by {
                    None => None,
                    Some((table, column)) => {
                        let tdef = schema
                            .tables
                            .get(table)
                            .ok_or_else(|| undefined_table(table))?;
                        assert!(
                            tdef.column_index(column).is_some(),
                            "a serial column's sequence is made with its table"
                        );
                        Some(SequenceOwner {
                            table: tdef.id,
                            column: column.clone(),
                        })
                    }
                };
                let def = SequenceDef {
                    id,
                    owner,
                    ..def.clone()
                };
                schema.sequences.insert(sequence.name.clone(), def);
                catalog.next_table_id += 1;
                Ok(Applied::default())
            }
            Command::DropSequence {
                sequence,
                if_exists,
            } => {
                let catalog = Arc::make_mut(&mut self.catalog);
                let schema = schema_mut(catalog, &sequence.database, &sequence.schema)?;
                match schema.sequences.get(&sequence.name) {
                    None if *if_exists => Ok(skipped()),
                    None => Err(reject(
                        RejectionKind::UndefinedTable,
                        format!("sequence \"{}\" does not exist", sequence.name),
                    )),
                    Some(def) if def.owner.is_some() => Err(Rejection::new(
                        RejectionKind::DependentObjects,
                        format!(
                            "cannot drop sequence {} because other objects depend on it",
                            sequence.name
                        ),
                    )
                    .with_detail("Drop the column or table that uses it.")
                    .into()),
                    Some(_) => {
                        schema.sequences.remove(&sequence.name);
                        Ok(Applied::default())
                    }
                }
            }
            Command::AdvanceSequence { id, count } => {
                let (name, def) = self.sequence_mut(*id)?;
                let Some((first, last)) = def.next_values(*count) else {
                    return Err(reject(RejectionKind::SequenceLimit, def.exhausted(&name)));
                };
                def.last_value = last;
                def.is_called = true;
                Ok(Applied {
                    values: Some((first, last)),
                    ..Applied::default()
                })
            }
            Command::SetSequence {
                id,
                value,
                is_called,
            } => {
                let (name, def) = self.sequence_mut(*id)?;
                if *value < def.min || *value > def.max {
                    return Err(reject(
                        RejectionKind::NumericValueOutOfRange,
                        format!(
                            "setval: value {value} is out of bounds for sequence \"{name}\" ({}..{})",
                            def.min, def.max
                        ),
                    ));
                }
                def.last_value = *value;
                def.is_called = *is_called;
                Ok(Applied::default())
            }
            Command::Write { ops } => self.apply_write_ops(ops),
            Command::AlterSystem {
                name,
                value,
                changed_at,
            } => {
                let settings = &mut Arc::make_mut(&mut self.catalog).settings;
                match value {
                    Some(value) => {
                        let setting = SystemSetting {
                            value: value.clone(),
                            changed_at: changed_at.clone(),
                        };
                        settings.insert(name.clone(), setting);
                    }
                    None => {
                        settings.remove(name);
                    }
                }
                Ok(Applied::default())
            }
            Command::ExpirePartitions { now_us } => {
                let mut rows = 0;
                let catalog = self.catalog.clone();
                for (def, ts, cutoff_us) in retained(&catalog, *now_us) {
                    let data = self
                        .tables
                        .get_mut(&def.id)
                        .expect("catalog and data agree");
                    rows += Arc::make_mut(data).expire(ts, cutoff_us)?;
                }
                Ok(Applied {
                    rows,
                    ..Applied::default()
                })
            }
            Command::NodeAddresses { node, addresses } => {
                let nodes = &mut Arc::make_mut(&mut self.catalog).nodes;
                match addresses {
                    Some(addresses) => nodes.insert(*node, addresses.clone()),
                    None => nodes.remove(node),
                };
                // A node that left took its sessions with it.
                if addresses.is_none() && self.locks.has_sessions_of(Some(*node)) {
                    let op = LockOp::ReleaseNode { node: Some(*node) };
                    Arc::make_mut(&mut self.locks).apply(&op)?;
                }
                Ok(Applied::default())
            }
            Command::Object(op) => self.objects.apply(op),
            Command::Lock(op) => Arc::make_mut(&mut self.locks).apply(op),
            // Told to the listeners once applied (`machine`), never stored.
            Command::Notify { .. } => Ok(Applied::default()),
        }
    }

    /// The table a write names, if it still has the version the write was
    /// planned against. The definition is borrowed from `catalog`, which a
    /// write clones as an `Arc`: a deep copy of it was a tenth of applying
    /// a one-row INSERT.
    fn writable_table(
        catalog: &Catalog,
        table: TableId,
        version: u64,
    ) -> Result<(TableRef, &TableDef)> {
        let (tref, def) = catalog.table_by_id(table).ok_or_else(|| {
            Rejection::new(
                RejectionKind::SerializationFailure,
                "could not serialize access: the table was dropped by another statement",
            )
        })?;
        if def.version != version {
            return Err(reject(
                RejectionKind::SerializationFailure,
                format!(
                    "could not serialize access: table \"{}\" was altered by another statement",
                    tref.name
                ),
            ));
        }
        Ok((tref, def))
    }

    /// Refuses a serializable transaction's write if a table it read
    /// changed since (see `WriteOp::Unchanged`), with PostgreSQL's words.
    pub(crate) fn check_unchanged(&self, ops: &[WriteOp]) -> Result<()> {
        for op in ops {
            let WriteOp::Unchanged { table, .. } = op else {
                continue;
            };
            if self.as_read(*table).as_ref() != Some(op) {
                return Err(reject(
                    RejectionKind::SerializationFailure,
                    "could not serialize access due to read/write dependencies among transactions",
                ));
            }
        }
        Ok(())
    }

    /// The `WriteOp::Unchanged` that holds while `table` stays as it is in
    /// this state: its version, `next_rowid` and row count. None for a
    /// table this state lacks.
    pub fn as_read(&self, table: TableId) -> Option<WriteOp> {
        let (_, def) = self.catalog.table_by_id(table)?;
        let data = self.tables.get(&table)?;
        Some(WriteOp::Unchanged {
            table,
            version: def.version,
            next_rowid: data.next_rowid,
            rows: data.row_count() as u64,
        })
    }

    /// Applies one op of a write. An Insert whose rows the caller decoded
    /// already (to read them too) passes them as `decoded`.
    pub(crate) fn apply_write(
        &mut self,
        op: &WriteOp,
        decoded: Option<RecordBatch>,
    ) -> Result<u64> {
        if let WriteOp::Unchanged { .. } = op {
            // Checked before any op of the write applied.
            return Ok(0);
        }
        let (table, version) = op.target();
        let catalog = Arc::clone(&self.catalog);
        let (tref, def) = Self::writable_table(&catalog, table, version)?;
        let data = Arc::make_mut(self.tables.get_mut(&table).expect("catalog and data agree"));
        debug_assert_eq!(
            data.stored_schema,
            def.stored_schema(),
            "a table's data is built anew for each change of its columns"
        );
        match op {
            WriteOp::Insert { rows, .. } => {
                let rows = match decoded {
                    Some(batch) => shaped(batch, data, &tref)?,
                    None => shaped(rows.decode()?, data, &tref)?,
                };
                data.insert(def, &tref.name, rows)
            }
            WriteOp::Delete { rowids, .. } => data.delete(rowids),
            WriteOp::Unchanged { .. } => unreachable!("returned above"),
            WriteOp::Publish { stage, .. } => {
                let staged = self.staged.remove(stage).ok_or_else(|| {
                    reject(
                        RejectionKind::Internal,
                        format!("stage {} does not exist", stage.0),
                    )
                })?;
                if staged.table != table || staged.version != version {
                    return Err(rows_mismatch(&tref.name));
                }
                // An error drops this copy of the state: none of the stage lands.
                let batches = staged
                    .segments
                    .iter()
                    .map(|s| (s.batch.clone(), Some(s.clone())))
                    .collect();
                data.insert_batches(def, &tref.name, batches)
            }
        }
    }

    /// Refuses a graph one of whose tables is gone (dropped after the
    /// statement was planned).
    fn check_graph_tables(&self, def: &GraphDef) -> Result<()> {
        match def
            .tables()
            .find(|t| self.catalog.table_by_id(*t).is_none())
        {
            Some(missing) => Err(undefined_table(&format!("#{}", missing.0))),
            None => Ok(()),
        }
    }

    /// `ALTER PROPERTY GRAPH`: all or nothing.
    fn alter_graph(&mut self, graph: &TableRef, op: &GraphAlterOp) -> Result<()> {
        let undefined = || {
            reject(
                RejectionKind::UndefinedTable,
                format!("property graph \"{}\" does not exist", graph.name),
            )
        };
        let stored = self
            .catalog
            .schema(&graph.database, &graph.schema)
            .and_then(|s| s.graphs.get(&graph.name))
            .ok_or_else(undefined)?;
        if let GraphAlterOp::Rename { to } = op {
            let catalog = Arc::make_mut(&mut self.catalog);
            let schema = schema_mut(catalog, &graph.database, &graph.schema)?;
            if schema.has_relation(to) {
                return Err(reject(
                    RejectionKind::DuplicateTable,
                    format!("relation \"{to}\" already exists"),
                ));
            }
            let stored = schema.graphs.remove(&graph.name).ok_or_else(undefined)?;
            schema.graphs.insert(to.clone(), stored);
            return Ok(());
        }
        let mut def = stored.def.clone();
        def.alter(&graph.name, op)?;
        self.check_graph_tables(&def)?;
        let catalog = Arc::make_mut(&mut self.catalog);
        let schema = schema_mut(catalog, &graph.database, &graph.schema)?;
        schema
            .graphs
            .get_mut(&graph.name)
            .expect("the graph was found above")
            .def = def;
        Ok(())
    }

    fn alter_table(&mut self, table: &TableRef, op: &AlterOp) -> Result<Applied> {
        match op {
            AlterOp::AddForeignKey { spec } => {
                self.add_foreign_key(table, spec)?;
                return Ok(Applied::default());
            }
            AlterOp::DropConstraint { name, if_exists } => {
                return match self.drop_constraint(table, name, *if_exists)? {
                    true => Ok(Applied::default()),
                    false => Ok(skipped()),
                };
            }
            AlterOp::AddCheck {
                check,
                checked_below,
            } => {
                self.add_check(table, check, *checked_below)?;
                return Ok(Applied::default());
            }
            AlterOp::DropColumn { name, .. } => {
                self.drop_column_keys(table, name)?;
                self.drop_column_checks(table, name);
            }
            AlterOp::RenameColumn { from, to } => {
                self.check_rename(table, from)?;
                self.rename_column_keys(table, from, to);
            }
            _ => {}
        }
        if let AlterOp::DropColumn { name: column, .. } | AlterOp::RenameColumn { from: column, .. } =
            op
            && let Some(def) = self.catalog.table(table)
        {
            let db = &self.catalog.databases[&table.database];
            for (schema, graph) in self.catalog.graphs_using(&table.database, def.id) {
                let joins = db.schemas[&schema].graphs[&graph].def.key_columns(def.id);
                if !joins.contains(&column.as_str()) {
                    continue;
                }
                let (kind, what) = match op {
                    AlterOp::DropColumn { .. } => (RejectionKind::DependentObjects, "drop"),
                    _ => (RejectionKind::Unsupported, "rename"),
                };
                return Err(reject(
                    kind,
                    format!(
                        "cannot {what} column {column} of table {} because property graph {schema}.{graph} joins on it",
                        table.name
                    ),
                ));
            }
        }
        let catalog = Arc::make_mut(&mut self.catalog);
        let schema = schema_mut(catalog, &table.database, &table.schema)?;
        if let AlterOp::RenameTable { to } = op {
            if schema.has_relation(to) {
                return Err(reject(
                    RejectionKind::DuplicateTable,
                    format!("relation \"{to}\" already exists"),
                ));
            }
            let def = schema
                .tables
                .remove(&table.name)
                .ok_or_else(|| undefined_table(&table.name))?;
            schema.tables.insert(to.clone(), def);
            return Ok(Applied::default());
        }
        if let AlterOp::AddPrimaryKey { .. } = op
            && schema
                .tables
                .get(&table.name)
                .is_some_and(|t| t.indexes.iter().any(|i| i.primary))
        {
            return Err(reject(
                RejectionKind::InvalidTableDefinition,
                format!(
                    "multiple primary keys for table \"{}\" are not allowed",
                    table.name
                ),
            ));
        }
        if let AlterOp::AddPrimaryKey { index } = op
            && (schema.has_relation(&index.name)
                || schema
                    .tables
                    .values()
                    .any(|t| t.indexes.iter().any(|i| i.name == index.name)))
        {
            return Err(reject(
                RejectionKind::DuplicateTable,
                format!("relation \"{}\" already exists", index.name),
            ));
        }
        let def = schema
            .tables
            .get_mut(&table.name)
            .ok_or_else(|| undefined_table(&table.name))?;
        let old = def.clone();
        let data = Arc::make_mut(
            self.tables
                .get_mut(&def.id)
                .expect("catalog and data agree"),
        );
        let undefined_column = |name: &str| {
            reject(
                RejectionKind::UndefinedColumn,
                format!(
                    "column \"{name}\" of relation \"{}\" does not exist",
                    table.name
                ),
            )
        };
        match op {
            AlterOp::RenameTable { .. }
            | AlterOp::AddForeignKey { .. }
            | AlterOp::DropConstraint { .. }
            | AlterOp::AddCheck { .. } => unreachable!("handled above"),
            AlterOp::AddColumn {
                column,
                fill,
                if_not_exists,
            } => {
                if def.column_index(&column.name).is_some() {
                    if *if_not_exists {
                        return Ok(skipped());
                    }
                    return Err(reject(
                        RejectionKind::DuplicateColumn,
                        format!(
                            "column \"{}\" of relation \"{}\" already exists",
                            column.name, table.name
                        ),
                    ));
                }
                let fill = fill.as_deref().map(decode_batch).transpose()?;
                if fill.is_none() && !column.nullable && data.row_count() > 0 {
                    return Err(Rejection::new(
                        RejectionKind::NotNullViolation,
                        format!(
                            "column \"{}\" of relation \"{}\" contains null values",
                            column.name, table.name
                        ),
                    )
                    .into());
                }
                def.columns.push(column.clone());
                let position = def.columns.len() - 1;
                rewrite_segments(data, def, |batch| {
                    let mut columns = batch.columns().to_vec();
                    let value: ArrayRef = match &fill {
                        Some(f) => {
                            let idx = vec![0u32; batch.num_rows()];
                            datafusion::arrow::compute::take(
                                f.column(0),
                                &datafusion::arrow::array::UInt32Array::from(idx),
                                None,
                            )?
                        }
                        None => new_null_array(&column.ty.arrow_type(), batch.num_rows()),
                    };
                    columns.insert(position, value);
                    Ok(columns)
                })?;
            }
            AlterOp::DropColumn { name, if_exists } => {
                let Some(position) = def.column_index(name) else {
                    if *if_exists {
                        return Ok(skipped());
                    }
                    return Err(undefined_column(name));
                };
                if def.columns.len() == 1 {
                    return Err(reject(
                        RejectionKind::Unsupported,
                        "cannot drop the only column of a table",
                    ));
                }
                if is_time_column(def, name) {
                    return Err(time_column_needed(name, &table.name));
                }
                def.columns.remove(position);
                // Indexes over the dropped column go with it, as in PostgreSQL.
                def.indexes.retain(|i| !i.columns.contains(name));
                rewrite_segments(data, def, |batch| {
                    let mut columns = batch.columns().to_vec();
                    columns.remove(position);
                    Ok(columns)
                })?;
            }
            AlterOp::RenameColumn { from, to } => {
                let position = def
                    .column_index(from)
                    .ok_or_else(|| undefined_column(from))?;
                if def.column_index(to).is_some() {
                    return Err(reject(
                        RejectionKind::DuplicateColumn,
                        format!(
                            "column \"{to}\" of relation \"{}\" already exists",
                            table.name
                        ),
                    ));
                }
                def.columns[position].name = to.clone();
                if let Some(ts) = &mut def.time_series
                    && ts.time_column == *from
                {
                    ts.time_column = to.clone();
                }
                for index in &mut def.indexes {
                    for c in &mut index.columns {
                        if c == from {
                            *c = to.clone();
                        }
                    }
                }
                rewrite_segments(data, def, |batch| Ok(batch.columns().to_vec()))?;
            }
            AlterOp::SetNotNull { column, not_null } => {
                let position = def
                    .column_index(column)
                    .ok_or_else(|| undefined_column(column))?;
                if *not_null {
                    check_no_nulls(data, position, column, &table.name)?;
                } else if is_time_column(def, column) {
                    return Err(time_column_needed(column, &table.name));
                }
                def.columns[position].nullable = !not_null;
                rewrite_segments(data, def, |batch| Ok(batch.columns().to_vec()))?;
            }
            AlterOp::SetDefault { column, default } => {
                let position = def
                    .column_index(column)
                    .ok_or_else(|| undefined_column(column))?;
                def.columns[position].default = default.clone();
            }
            AlterOp::SetRetention { retention_us } => {
                debug_assert!(*retention_us > 0, "checked by the planner");
                let ts = def.time_series.as_mut().ok_or_else(|| {
                    reject(
                        RejectionKind::Unsupported,
                        format!(
                            "retention on \"{}\", which is not a time-series table, is not supported",
                            table.name
                        ),
                    )
                })?;
                ts.retention_us = Some(*retention_us);
            }
            AlterOp::AddPrimaryKey { index } => {
                debug_assert!(index.primary && index.unique, "a primary key is unique");
                debug_assert!(
                    !def.indexes.iter().any(|i| i.primary),
                    "a second primary key is refused above"
                );
                if def.indexes.len() >= INDEXES_PER_TABLE_MAX {
                    return Err(too_many_indexes());
                }
                // Duplicates are reported before NULLs, as PostgreSQL builds
                // the index first; the rebuild below makes the index anew.
                data.add_unique_index(def, index)?;
                for column in &index.columns {
                    let position = def
                        .column_index(column)
                        .ok_or_else(|| undefined_column(column))?;
                    check_no_nulls(data, position, column, &table.name)?;
                    def.columns[position].nullable = false;
                }
                // The primary key's index comes first, as CREATE TABLE puts it.
                def.indexes.insert(0, index.clone());
                rewrite_segments(data, def, |batch| Ok(batch.columns().to_vec()))?;
            }
        }
        if *def != old {
            def.version += 1;
        }
        // Unique indexes hold column positions: rebuild them for the new shape.
        let rebuilt = TableData::new(def, std::mem::take(&mut data.segments), data.next_rowid)?;
        *data = rebuilt;
        // A serial column's sequence follows its column: renamed, dropped.
        let table_id = def.id;
        for sequence in schema.sequences.values_mut() {
            if let Some(owner) = &mut sequence.owner
                && owner.table == table_id
                && let AlterOp::RenameColumn { from, to } = op
                && owner.column == *from
            {
                owner.column = to.clone();
            }
        }
        if let AlterOp::DropColumn { name, .. } = op {
            schema.sequences.retain(|_, s| {
                s.owner
                    .as_ref()
                    .is_none_or(|o| o.table != table_id || o.column != *name)
            });
        }
        Ok(Applied::default())
    }

    /// The sequence with this id, by name, to change.
    fn sequence_mut(&mut self, id: u64) -> Result<(String, &mut SequenceDef)> {
        Arc::make_mut(&mut self.catalog)
            .databases
            .values_mut()
            .flat_map(|d| d.schemas.values_mut())
            .flat_map(|s| s.sequences.iter_mut())
            .find(|(_, def)| def.id == id)
            .map(|(name, def)| (name.clone(), def))
            .ok_or_else(|| {
                reject(
                    RejectionKind::UndefinedTable,
                    "the sequence was dropped by another statement",
                )
            })
    }

    fn database_mut(&mut self, name: &str) -> Result<&mut DatabaseDef> {
        Arc::make_mut(&mut self.catalog)
            .databases
            .get_mut(name)
            .ok_or_else(|| {
                reject(
                    RejectionKind::UndefinedObject,
                    format!("database \"{name}\" does not exist"),
                )
            })
    }
}

/// Refuses making a column NOT NULL while a row holds NULL in it.
fn check_no_nulls(data: &TableData, position: usize, column: &str, table: &str) -> Result<()> {
    if data
        .segments
        .iter()
        .any(|s| s.batch.column(position).null_count() > 0)
    {
        return Err(reject(
            RejectionKind::NotNullViolation,
            format!("column \"{column}\" of relation \"{table}\" contains null values"),
        ));
    }
    Ok(())
}

fn too_many_indexes() -> Error {
    reject(
        RejectionKind::ProgramLimitExceeded,
        format!("a table can have at most {INDEXES_PER_TABLE_MAX} indexes"),
    )
}

fn skipped() -> Applied {
    Applied {
        skipped: true,
        ..Applied::default()
    }
}

/// Rows a command carries, which must have the shape of the table's
/// version the command was planned against: the fields of the table's
/// stored schema but its last, the row id.
fn shaped(batch: RecordBatch, data: &TableData, tref: &TableRef) -> Result<RecordBatch> {
    let stored = data.stored_schema.fields();
    if batch.schema().fields()[..] != stored[..stored.len() - 1] {
        return Err(rows_mismatch(&tref.name));
    }
    Ok(batch)
}

fn rows_mismatch(table: &str) -> Error {
    reject(
        RejectionKind::SerializationFailure,
        format!("could not serialize access: rows do not match table \"{table}\""),
    )
}

/// `command` with the ids of objects made from `first_id` on moved up by
/// `shift`: where a transaction block's replay numbered them. Only writes
/// and sequence values name objects by id; DDL names them by name.
fn shifted(command: &Command, first_id: u64, shift: u64) -> Command {
    let moved = |id: u64| if id >= first_id { id + shift } else { id };
    let mut command = command.clone();
    match &mut command {
        Command::Write { ops } => {
            for op in ops {
                let (WriteOp::Insert { table, .. }
                | WriteOp::Delete { table, .. }
                | WriteOp::Publish { table, .. }
                | WriteOp::Unchanged { table, .. }) = op;
                table.0 = moved(table.0);
            }
        }
        Command::SetSequence { id, .. } => *id = moved(*id),
        Command::CreatePropertyGraph {
            def: GraphDef { vertices, edges },
            ..
        }
        | Command::AlterPropertyGraph {
            op: GraphAlterOp::AddTables { vertices, edges },
            ..
        } => {
            let vertices = vertices.iter_mut();
            for element in vertices.chain(edges.iter_mut().map(|e| &mut e.element)) {
                element.table.0 = moved(element.table.0);
            }
        }
        _ => {}
    }
    command
}

pub(crate) fn undefined_table(name: &str) -> Error {
    reject(
        RejectionKind::UndefinedTable,
        format!("relation \"{name}\" does not exist"),
    )
}

fn schema_mut<'a>(
    catalog: &'a mut Catalog,
    database: &str,
    name: &str,
) -> Result<&'a mut SchemaDef> {
    catalog
        .databases
        .get_mut(database)
        .ok_or_else(|| {
            reject(
                RejectionKind::UndefinedObject,
                format!("database \"{database}\" does not exist"),
            )
        })?
        .schemas
        .get_mut(name)
        .ok_or_else(|| {
            reject(
                RejectionKind::UndefinedSchema,
                format!("schema \"{name}\" does not exist"),
            )
        })
}

fn is_time_column(def: &TableDef, column: &str) -> bool {
    def.time_series
        .as_ref()
        .is_some_and(|ts| ts.time_column == column)
}

fn time_column_needed(column: &str, table: &str) -> Error {
    reject(
        RejectionKind::InvalidTableDefinition,
        format!("column \"{column}\" is the time column of the time-series table \"{table}\""),
    )
}

/// The time-series tables with a retention, across all databases, each
/// with its retention cutoff at `now_us`.
fn retained(
    catalog: &Catalog,
    now_us: i64,
) -> impl Iterator<Item = (&TableDef, &TimeSeriesDef, i64)> {
    let schemas = catalog
        .databases
        .values()
        .flat_map(|db| db.schemas.values());
    schemas
        .flat_map(|schema| schema.tables.values())
        .filter_map(move |def| {
            let ts = def.time_series.as_ref()?;
            Some((def, ts, ts.retention_cutoff(now_us)?))
        })
}

/// Gives every segment the table's new shape. The rewritten segments have no
/// file: the next snapshot writes them in the new shape.
fn rewrite_segments(
    data: &mut TableData,
    def: &TableDef,
    f: impl Fn(&RecordBatch) -> Result<Vec<ArrayRef>>,
) -> Result<()> {
    let schema = def.stored_schema();
    for segment in &mut data.segments {
        let columns = f(&segment.batch)?;
        let columns = columns
            .into_iter()
            .zip(schema.fields())
            .map(|(c, f)| Ok(datafusion::arrow::compute::cast(&c, f.data_type())?))
            .collect::<Result<Vec<_>>>()?;
        *segment = Arc::new(Segment::in_partition(
            RecordBatch::try_new(schema.clone(), columns)?,
            None,
            segment.partition,
        ));
    }
    Ok(())
}

/// An encoded batch keeps at most 1/this of its length as unused capacity.
const ENCODED_SLACK_DIVISOR: usize = 8;

/// Rows as an Arrow IPC stream, the form they take inside commands.
/// Batches of up to this many bytes of arrays (a few rows: what an INSERT
/// or UPDATE of a row writes) are encoded by [`encode_small_batch`].
const SMALL_BATCH_BYTES_MAX: usize = 64 * 1024;

/// The IPC stream's end: a continuation marker and a message length of 0.
const IPC_END_OF_STREAM: [u8; 8] = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];

thread_local! {
    /// The IPC message of the schema this thread last encoded a small batch
    /// of, with the schema: a session writing rows to a table encodes the
    /// same schema for every statement, and encoding it was a third of
    /// encoding a one-row INSERT's rows.
    static SCHEMA_MESSAGE: RefCell<Option<(SchemaRef, Vec<u8>)>> = const { RefCell::new(None) };
}

/// Arrow IPC stream bytes of a batch: its schema, its rows, the stream's
/// end, the same bytes arrow's `StreamWriter` writes.
pub fn encode_batch(batch: &RecordBatch) -> Result<Vec<u8>> {
    let schema = batch.schema();
    // Nested fields too: a list of dictionaries has dictionary messages.
    let dictionaries = schema
        .flattened_fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Dictionary(..)));
    if batch.get_array_memory_size() <= SMALL_BATCH_BYTES_MAX && !dictionaries {
        return encode_small_batch(batch, &schema);
    }
    // The stream is about the size of the rows' bytes: growing to it by
    // doubling would copy a large batch several times over.
    let mut out = Vec::with_capacity(batch_bytes(batch) + 4096);
    let mut writer = StreamWriter::try_new(&mut out, &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    // The log holds every entry's bytes until the next snapshot (20,000
    // one-row writes once kept 40 KB each): give back what the stream did
    // not use.
    if out.capacity() > out.len() + out.len() / ENCODED_SLACK_DIVISOR {
        out.shrink_to_fit();
    }
    Ok(out)
}

/// The bytes of a batch's rows; a slice of larger arrays (the row an UPDATE
/// made) counts only its own.
pub(crate) fn batch_bytes(batch: &RecordBatch) -> usize {
    batch.columns().iter().map(column_bytes).sum()
}

/// The bytes a column's values take, counting only the rows of a slice.
pub(crate) fn column_bytes(column: &ArrayRef) -> usize {
    column
        .to_data()
        .get_slice_memory_size()
        .unwrap_or_else(|_| column.get_array_memory_size())
}

/// [`encode_batch`] for a small batch without dictionaries: the schema's
/// message comes from [`SCHEMA_MESSAGE`] when the schema is the one last
/// encoded on this thread, and the bytes go straight into a vector of
/// their size, which needs no shrinking after.
fn encode_small_batch(batch: &RecordBatch, schema: &SchemaRef) -> Result<Vec<u8>> {
    let options = IpcWriteOptions::default();
    let generator = IpcDataGenerator::default();
    let (dictionaries, message) = generator.encode(
        batch,
        &mut DictionaryTracker::new(false),
        &options,
        &mut IpcWriteContext::default(),
    )?;
    assert!(
        dictionaries.is_empty(),
        "a small batch's schema has no dictionaries"
    );
    SCHEMA_MESSAGE.with_borrow_mut(|cached| {
        let known = cached
            .as_ref()
            .is_some_and(|(s, _)| Arc::ptr_eq(s, schema) || s == schema);
        if !known {
            let encoded = generator.schema_to_bytes_with_dictionary_tracker(
                schema,
                &mut DictionaryTracker::new(false),
                &options,
            );
            let mut bytes = Vec::new();
            write_message(&mut bytes, encoded, &options)?;
            *cached = Some((Arc::clone(schema), bytes));
        }
        let (_, schema_bytes) = cached.as_ref().expect("the schema's message was just kept");
        // Each message: continuation marker, length, metadata padded to 8,
        // body; then the stream's end.
        let capacity = schema_bytes.len()
            + 16
            + message.ipc_message.len()
            + message.arrow_data.len()
            + IPC_END_OF_STREAM.len();
        let mut out = Vec::with_capacity(capacity);
        out.extend_from_slice(schema_bytes);
        write_message(&mut out, message, &options)?;
        out.extend_from_slice(&IPC_END_OF_STREAM);
        Ok(out)
    })
}

pub fn decode_batch(bytes: &[u8]) -> Result<RecordBatch> {
    let reader = StreamReader::try_new(Cursor::new(bytes), None)?;
    let schema = reader.schema();
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(concat_batches(&schema, &batches)?)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch};

    use super::*;

    /// One row cut from a large batch encodes to a few hundred bytes, and
    /// keeps no more capacity than that: the log holds it until a snapshot.
    #[test]
    fn an_encoded_slice_keeps_only_its_own_bytes() {
        let column: ArrayRef = Arc::new(Int64Array::from_iter_values(0..100_000));
        let batch = RecordBatch::try_from_iter([("x", column)]).unwrap();
        let row = batch.slice(5, 1);
        let encoded = encode_batch(&row).unwrap();
        assert!(encoded.len() < 1024, "{} bytes", encoded.len());
        assert!(
            encoded.capacity() <= encoded.len() + encoded.len() / ENCODED_SLACK_DIVISOR,
            "{} bytes kept for {}",
            encoded.capacity(),
            encoded.len()
        );
        assert_eq!(decode_batch(&encoded).unwrap(), row);
    }

    /// A small batch's bytes, its schema's message kept from the batch
    /// before, are those arrow's own stream writer writes, for batches of
    /// schemas that differ only in a field's metadata too.
    #[test]
    fn a_small_batch_encodes_as_arrows_stream_writer_does() {
        use datafusion::arrow::array::StringArray;
        use datafusion::arrow::datatypes::{Field, Schema};
        let stream_writer = |batch: &RecordBatch| {
            let mut out = Vec::new();
            let mut writer = StreamWriter::try_new(&mut out, &batch.schema()).unwrap();
            writer.write(batch).unwrap();
            writer.finish().unwrap();
            drop(writer);
            out
        };
        let batch = |tag: &str, values: Vec<Option<&str>>| {
            let metadata = [("pg_type".to_string(), tag.to_string())].into();
            let schema = Schema::new(vec![
                Field::new("n", DataType::Int64, true),
                Field::new("s", DataType::Utf8, true).with_metadata(metadata),
            ]);
            let n: ArrayRef = Arc::new(Int64Array::from_iter_values(0..values.len() as i64));
            let s: ArrayRef = Arc::new(StringArray::from(values));
            RecordBatch::try_new(Arc::new(schema), vec![n, s]).unwrap()
        };
        let batches = [
            batch("varchar", vec![Some("a"), None]),
            batch("varchar", vec![Some("bcd")]),
            batch("json", vec![Some("{}"), Some("[1]")]),
            batch("varchar", vec![None]),
            batch("varchar", vec![Some("x"), Some("yz"), None]).slice(1, 2),
            nested_dictionary(),
        ];
        // A list of dictionaries, which takes StreamWriter's way.
        fn nested_dictionary() -> RecordBatch {
            use datafusion::arrow::array::{Array, DictionaryArray, ListArray};
            use datafusion::arrow::buffer::OffsetBuffer;
            use datafusion::arrow::datatypes::Int32Type;
            let values: DictionaryArray<Int32Type> = vec!["a", "b", "a"].into_iter().collect();
            let field = Arc::new(Field::new("item", values.data_type().clone(), true));
            let list = ListArray::new(
                field,
                OffsetBuffer::from_lengths([2, 1]),
                Arc::new(values),
                None,
            );
            RecordBatch::try_from_iter([("l", Arc::new(list) as ArrayRef)]).unwrap()
        }
        for b in &batches {
            assert!(b.get_array_memory_size() <= SMALL_BATCH_BYTES_MAX);
            let encoded = encode_batch(b).unwrap();
            assert_eq!(encoded, stream_writer(b));
            assert_eq!(&decode_batch(&encoded).unwrap(), b);
        }
    }

    /// `WriteOp::Unchanged` lets a write through while its table is as
    /// read, and refuses the whole write (40001) after any insert or
    /// delete, an insert and a delete of as many rows included.
    #[test]
    fn unchanged_holds_until_the_table_changes() {
        use crate::catalog::{ColumnDef, PgType, TableDef, TableId, TableRef};
        let table = TableRef {
            database: "db".into(),
            schema: "public".into(),
            name: "t".into(),
        };
        let def = TableDef {
            id: TableId(0),
            columns: vec![ColumnDef {
                name: "x".into(),
                ty: PgType::Int8,
                nullable: true,
                default: None,
            }],
            indexes: vec![],
            version: 0,
            time_series: None,
        };
        let mut state = DbState::default();
        let create = [
            Command::CreateDatabase { name: "db".into() },
            Command::CreateTable {
                table: table.clone(),
                def,
                if_not_exists: false,
            },
        ];
        for command in &create {
            state.apply(command).unwrap();
        }
        let def = state.catalog.table(&table).unwrap();
        let (id, version, schema) = (def.id, def.version, def.schema());
        let insert = |values: Vec<i64>| {
            let column: ArrayRef = Arc::new(Int64Array::from(values));
            let batch = RecordBatch::try_new(schema.clone(), vec![column]).unwrap();
            WriteOp::Insert {
                table: id,
                version,
                rows: crate::command::Rows::encode(&batch).unwrap(),
            }
        };
        state
            .apply(&Command::Write {
                ops: vec![insert(vec![1, 2])],
            })
            .unwrap();
        let read = state.as_read(id).unwrap();
        let guarded = |op: WriteOp| Command::Write {
            ops: vec![read.clone(), op],
        };
        // Unchanged: the guarded write lands, and the table moves on.
        let mut landed = state.clone();
        landed.apply(&guarded(insert(vec![3]))).unwrap();
        assert_eq!(landed.table_data(id).unwrap().row_count(), 3);
        // Changed by another write first: refused, nothing of it applied.
        let delete_one = WriteOp::Delete {
            table: id,
            version,
            rowids: vec![0],
        };
        let changes = [
            vec![insert(vec![9])],
            vec![delete_one.clone()],
            vec![delete_one, insert(vec![1])],
        ];
        for change in changes {
            let mut changed = state.clone();
            changed.apply(&Command::Write { ops: change }).unwrap();
            let rows = changed.table_data(id).unwrap().row_count();
            let err = changed.apply(&guarded(insert(vec![3]))).unwrap_err();
            assert!(
                matches!(&err, Error::Rejected(r) if r.kind == RejectionKind::SerializationFailure),
                "{err}"
            );
            assert_eq!(changed.table_data(id).unwrap().row_count(), rows);
        }
    }
}
