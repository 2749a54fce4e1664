//! Foreign keys, held where rows change: in the state machine.
//!
//! A check made by the planner before it proposes a write would race with
//! other writers (a parent deleted between the check and the insert). Here
//! it cannot: commands apply one at a time, in log order, on every replica
//! alike, and a command that breaks a key is refused whole (`DbState::apply`
//! works on a copy). So a key is checked once a command's row changes are
//! all made, which is PostgreSQL's NO ACTION at the end of a statement:
//!
//! ```text
//!   Write [ops]  ──► apply every op ──► keys a parent lost ──► referencing rows?
//!                                          │                    NO ACTION / RESTRICT: refuse (23503)
//!                                          │                    CASCADE: delete them (and go on down)
//!                                          │                    SET NULL: their columns become NULL
//!                                          └─► rows a child gained: each key in the parent? else 23503
//! ```
//!
//! An UPDATE reaches the state machine as the deletion of the old rows and
//! the insertion of the new: a parent key that an UPDATE keeps is not lost,
//! and one it changes is lost under the constraint's ON UPDATE action
//! (a write that also inserted into the parent counts as an update).
//! ON UPDATE CASCADE and SET NULL need to know which new row replaced which
//! old one, which only the planner knows: it sends the referencing rows'
//! new versions in the UPDATE's own write ([`DbState::cascade_update`]),
//! and here a row still referencing a key such an UPDATE changed can only
//! be one written since the UPDATE was planned: refused with 40001, so the
//! statement is planned again.
//!
//! RESTRICT is checked as NO ACTION is: the two differ only when one
//! statement both removes a referenced key and adds it back, which
//! PostgreSQL refuses under RESTRICT and ciab allows.
//!
//! A transaction block writes through its private state statement by
//! statement (so each statement is checked where it runs), and its net
//! changes are checked again at COMMIT, against whatever committed since.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array, new_null_array,
};
use datafusion::arrow::compute::{
    CastOptions, cast, cast_with_options, concat_batches, filter_record_batch, take,
};
use datafusion::arrow::datatypes::UInt64Type;

use crate::catalog::{
    FOREIGN_KEYS_PER_TABLE_MAX, ForeignKeyDef, ForeignKeySpec, PgType, RefAction, RowId, TableDef,
    TableId, TableRef,
};
use crate::command::{Applied, WriteOp};
use crate::error::{Rejection, RejectionKind, Result};
use crate::state::{DbState, reject, undefined_table};
use crate::table::{IndexKey, encode_key_arrays, key_text};

/// Rows of a child table that reference keys their parent lost (stored
/// schema), with the key's columns there and both tables' names.
struct Referencing {
    rows: RecordBatch,
    columns: Vec<usize>,
    declared: Vec<usize>,
    parent: String,
    child: String,
}

/// The rows an ON UPDATE CASCADE or SET NULL changes in a referencing
/// table: their ids, as they were (stored schema) and as they become (user
/// schema), row for row.
pub struct CascadedUpdate {
    pub rowids: Vec<RowId>,
    pub old: RecordBatch,
    pub new: RecordBatch,
}

/// Rows a write removed from a table that foreign keys reference (in its
/// stored schema), and whether the write also inserted into it (an UPDATE).
/// An action's own updates (SET NULL, an ON UPDATE CASCADE a row's SET
/// NULL set off) know which new row replaced each old one.
struct Removed {
    table: TableId,
    rows: RecordBatch,
    updated: bool,
    replaced_by: Option<RecordBatch>,
}

impl DbState {
    /// Applies a write's operations, then holds the foreign keys of the
    /// tables it changed.
    pub(crate) fn apply_write_ops(&mut self, ops: &[WriteOp]) -> Result<Applied> {
        self.check_unchanged(ops)?;
        let keys = self.foreign_keys_among(ops);
        let mut applied = Applied::default();
        if keys.is_empty() {
            for op in ops {
                applied.rows += self.apply_write(op, None)?;
            }
            return Ok(applied);
        }
        let inserted: HashSet<TableId> = ops
            .iter()
            .filter(|op| matches!(op, WriteOp::Insert { .. } | WriteOp::Publish { .. }))
            .map(|op| op.target().0)
            .collect();
        let mut removed = VecDeque::new();
        let mut added = Vec::new();
        for op in ops {
            let table = op.target().0;
            let mut decoded = None;
            match op {
                WriteOp::Delete { rowids, .. }
                    if !rowids.is_empty() && keys.iter().any(|k| k.parent == table) =>
                {
                    if let Some(data) = self.tables.get(&table) {
                        removed.push_back(Removed {
                            table,
                            rows: data.rows(rowids)?,
                            updated: inserted.contains(&table),
                            replaced_by: None,
                        });
                    }
                }
                WriteOp::Insert { rows, .. } if keys.iter().any(|k| k.table == table) => {
                    let batch = rows.decode()?;
                    added.push((table, batch.clone()));
                    decoded = Some(batch);
                }
                WriteOp::Publish { stage, .. } if keys.iter().any(|k| k.table == table) => {
                    if let Some(stage) = self.staged.get(stage) {
                        added.extend(stage.segments.iter().map(|s| (table, s.batch.clone())));
                    }
                }
                _ => {}
            }
            applied.rows += self.apply_write(op, decoded)?;
        }
        applied.cascaded = self.act_on_removed(&keys, removed)?;
        for (table, rows) in &added {
            for key in keys.iter().filter(|k| k.table == *table) {
                self.check_present(key, rows)?;
            }
        }
        Ok(applied)
    }

    /// The foreign keys a write of `ops` must hold: all of the keys of the
    /// databases whose tables they change, for a cascade may reach tables
    /// beyond them.
    fn foreign_keys_among(&self, ops: &[WriteOp]) -> Vec<ForeignKeyDef> {
        self.catalog
            .databases
            .values()
            .filter(|db| {
                db.foreign_keys.iter().any(|k| {
                    ops.iter()
                        .filter(|op| !matches!(op, WriteOp::Unchanged { .. }))
                        .any(|op| op.target().0 == k.table || op.target().0 == k.parent)
                })
            })
            .flat_map(|db| db.foreign_keys.iter().cloned())
            .collect()
    }

    /// Finds the rows that reference keys the parents lost and does what
    /// each key's action says, down through the tables a cascade reaches.
    /// Returns the rows deleted beside the write's own, per table.
    fn act_on_removed(
        &mut self,
        keys: &[ForeignKeyDef],
        mut removed: VecDeque<Removed>,
    ) -> Result<Vec<(TableId, Vec<RowId>)>> {
        let mut cascaded: BTreeMap<TableId, Vec<RowId>> = BTreeMap::new();
        while let Some(gone) = removed.pop_front() {
            for key in keys.iter().filter(|k| k.parent == gone.table) {
                let Some(found) = self.referencing(key, &gone.rows)? else {
                    continue;
                };
                let action = if gone.updated {
                    key.on_update
                } else {
                    key.on_delete
                };
                let rowids = rowids_of(&found.rows);
                let (old, new) = match action {
                    RefAction::NoAction | RefAction::Restrict => {
                        return Err(Rejection::new(
                            RejectionKind::ForeignKeyViolation,
                            format!(
                                "update or delete on table \"{}\" violates foreign key constraint \"{}\" on table \"{}\"",
                                found.parent, key.name, found.child
                            ),
                        )
                        .with_detail(format!(
                            "Key ({})=({}) is still referenced from table \"{}\".",
                            key.parent_columns.join(", "),
                            key_text(&found.rows, &found.declared, 0),
                            found.child
                        ))
                        .into());
                    }
                    // An UPDATE the planner made sent its referencing
                    // rows' new versions along: these came since.
                    RefAction::Cascade | RefAction::SetNull
                        if gone.updated && gone.replaced_by.is_none() =>
                    {
                        return Err(reject(
                            RejectionKind::SerializationFailure,
                            format!(
                                "could not serialize access: table \"{}\" gained rows that \
                                 reference a key of \"{}\" this statement changes",
                                found.child, found.parent
                            ),
                        ));
                    }
                    RefAction::Cascade | RefAction::SetNull if gone.updated => {
                        let replaced_by = gone.replaced_by.as_ref().expect("matched above");
                        let update = self
                            .cascade_update(key, &gone.rows, replaced_by)?
                            .expect("rows reference the keys it changed");
                        self.replace_rows(key.table, &update.rowids, update.new.clone())?;
                        cascaded
                            .entry(key.table)
                            .or_default()
                            .extend(&update.rowids);
                        (update.old, Some(update.new))
                    }
                    RefAction::Cascade => {
                        self.table_mut(key.table).delete(&rowids)?;
                        cascaded.entry(key.table).or_default().extend(&rowids);
                        (found.rows, None)
                    }
                    RefAction::SetNull => {
                        let def = self
                            .catalog
                            .table_by_id(key.table)
                            .expect("resolved above")
                            .1
                            .clone();
                        let columns: Vec<ArrayRef> = (0..def.columns.len())
                            .map(|c| {
                                let column = found.rows.column(c);
                                if found.columns.contains(&c) {
                                    new_null_array(column.data_type(), column.len())
                                } else {
                                    column.clone()
                                }
                            })
                            .collect();
                        let new = RecordBatch::try_new(def.schema(), columns)?;
                        self.replace_rows(key.table, &rowids, new.clone())?;
                        cascaded.entry(key.table).or_default().extend(&rowids);
                        (found.rows, Some(new))
                    }
                };
                removed.push_back(Removed {
                    table: key.table,
                    rows: old,
                    updated: new.is_some(),
                    replaced_by: new,
                });
            }
        }
        Ok(cascaded.into_iter().collect())
    }

    /// The rows of `key`'s table that reference a key of `gone` (rows its
    /// parent lost) that the parent no longer holds; None if there are none.
    fn referencing(&self, key: &ForeignKeyDef, gone: &RecordBatch) -> Result<Option<Referencing>> {
        let parent = Resolved::parent(self, key)?;
        let lost: HashSet<IndexKey> = parent
            .keys_of(gone, &parent.columns)?
            .into_iter()
            .flatten()
            .filter(|k| !parent.holds(self, k))
            .collect();
        if lost.is_empty() {
            return Ok(None);
        }
        let child = Resolved::child(self, key)?;
        let rows = child.rows_with(self, &parent, &lost)?;
        Ok((rows.num_rows() > 0).then(|| Referencing {
            rows,
            columns: child.columns,
            declared: child.declared,
            parent: parent.name,
            child: child.name,
        }))
    }

    /// Refuses `rows` of `key`'s table if one names a key its parent lacks.
    /// A row with a NULL in the key references nothing (MATCH SIMPLE).
    fn check_present(&self, key: &ForeignKeyDef, rows: &RecordBatch) -> Result<()> {
        let parent = Resolved::parent(self, key)?;
        let child = Resolved::child(self, key)?;
        let keys = parent.keys_of(rows, &child.columns)?;
        for (row, k) in keys.iter().enumerate() {
            let present = match k {
                Some(k) => parent.holds(self, k),
                // A value the parent's type cannot hold is in no parent row.
                None => child.columns.iter().any(|&c| rows.column(c).is_null(row)),
            };
            if !present {
                return Err(Rejection::new(
                    RejectionKind::ForeignKeyViolation,
                    format!(
                        "insert or update on table \"{}\" violates foreign key constraint \"{}\"",
                        child.name, key.name
                    ),
                )
                .with_detail(format!(
                    "Key ({})=({}) is not present in table \"{}\".",
                    key.columns.join(", "),
                    key_text(rows, &child.declared, row),
                    parent.name
                ))
                .into());
            }
        }
        Ok(())
    }

    /// What an UPDATE that turned `old` rows of `key`'s parent into `new`
    /// ones (row for row; user columns first) does under `key`'s ON UPDATE
    /// CASCADE or SET NULL to the rows of `key`'s table that reference a
    /// key it changed. None if no row references a changed key.
    pub fn cascade_update(
        &self,
        key: &ForeignKeyDef,
        old: &RecordBatch,
        new: &RecordBatch,
    ) -> Result<Option<CascadedUpdate>> {
        assert!(
            matches!(key.on_update, RefAction::Cascade | RefAction::SetNull),
            "only these actions change the referencing rows"
        );
        assert_eq!(old.num_rows(), new.num_rows(), "an UPDATE is row for row");
        let parent = Resolved::parent(self, key)?;
        let child = Resolved::child(self, key)?;
        let new_keys = parent.keys_of(new, &parent.columns)?;
        let mut changed: HashMap<IndexKey, u32> = HashMap::new();
        for (i, (old_key, new_key)) in parent
            .keys_of(old, &parent.columns)?
            .into_iter()
            .zip(new_keys)
            .enumerate()
        {
            if let Some(old_key) = old_key
                && Some(&old_key) != new_key.as_ref()
            {
                changed.insert(old_key, i as u32);
            }
        }
        if changed.is_empty() {
            return Ok(None);
        }
        let lost: HashSet<IndexKey> = changed.keys().cloned().collect();
        let rows = child.rows_with(self, &parent, &lost)?;
        if rows.num_rows() == 0 {
            return Ok(None);
        }
        // The new row of the parent row each referencing row referenced.
        let replaced: UInt32Array = parent
            .keys_of(&rows, &child.columns)?
            .iter()
            .map(|k| changed[k.as_ref().expect("found by its key")])
            .collect();
        let strict = CastOptions {
            safe: false,
            ..Default::default()
        };
        let columns = (0..child.def.columns.len())
            .map(|c| match child.columns.iter().position(|&k| k == c) {
                None => Ok(rows.column(c).clone()),
                Some(_) if key.on_update == RefAction::SetNull => {
                    Ok(new_null_array(rows.column(c).data_type(), rows.num_rows()))
                }
                Some(k) => {
                    let values = take(new.column(parent.columns[k]), &replaced, None)?;
                    let ty = child.def.columns[c].ty.arrow_type();
                    Ok(cast_with_options(&values, &ty, &strict)?)
                }
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        Ok(Some(CascadedUpdate {
            rowids: rowids_of(&rows),
            new: RecordBatch::try_new(child.def.schema(), columns)?,
            old: rows,
        }))
    }

    /// Puts `rows` (user schema) in place of the rows `rowids` of `table`.
    fn replace_rows(&mut self, table: TableId, rowids: &[RowId], rows: RecordBatch) -> Result<()> {
        let (tref, def) = self.catalog.table_by_id(table).expect("resolved above");
        let data = Arc::make_mut(self.tables.get_mut(&table).expect("catalog and data agree"));
        data.delete(rowids)?;
        data.insert(def, &tref.name, rows)?;
        Ok(())
    }

    fn table_mut(&mut self, table: TableId) -> &mut crate::table::TableData {
        Arc::make_mut(self.tables.get_mut(&table).expect("catalog and data agree"))
    }

    /// `ALTER TABLE table ADD FOREIGN KEY`: resolves `spec` against the
    /// catalog, as PostgreSQL does, and checks the table's rows.
    pub(crate) fn add_foreign_key(
        &mut self,
        table: &TableRef,
        spec: &ForeignKeySpec,
    ) -> Result<()> {
        let child = self
            .catalog
            .table(table)
            .ok_or_else(|| undefined_table(&table.name))?
            .clone();
        if spec.parent.database != table.database {
            return Err(reject(
                RejectionKind::Unsupported,
                format!(
                    "cross-database references are not implemented: \"{}.{}.{}\"",
                    spec.parent.database, spec.parent.schema, spec.parent.name
                ),
            ));
        }
        let parent = self
            .catalog
            .table(&spec.parent)
            .ok_or_else(|| undefined_table(&spec.parent.name))?
            .clone();
        let parent_columns = if spec.parent_columns.is_empty() {
            let primary = parent.indexes.iter().find(|i| i.primary).ok_or_else(|| {
                reject(
                    RejectionKind::InvalidForeignKey,
                    format!(
                        "there is no primary key for referenced table \"{}\"",
                        spec.parent.name
                    ),
                )
            })?;
            primary.columns.clone()
        } else {
            spec.parent_columns.clone()
        };
        for (def, columns) in [(&child, &spec.columns), (&parent, &parent_columns)] {
            if let Some(c) = columns.iter().find(|c| def.column_index(c).is_none()) {
                return Err(reject(
                    RejectionKind::UndefinedColumn,
                    format!("column \"{c}\" referenced in foreign key constraint does not exist"),
                ));
            }
        }
        if spec.columns.len() != parent_columns.len() {
            return Err(reject(
                RejectionKind::InvalidForeignKey,
                "number of referencing and referenced columns for foreign key disagree",
            ));
        }
        let wanted: HashSet<&String> = parent_columns.iter().collect();
        let covered = parent.indexes.iter().any(|i| {
            i.unique
                && i.columns.len() == parent_columns.len()
                && i.columns.iter().all(|c| wanted.contains(c))
        });
        if !covered {
            return Err(reject(
                RejectionKind::InvalidForeignKey,
                format!(
                    "there is no unique constraint matching given keys for referenced table \"{}\"",
                    spec.parent.name
                ),
            ));
        }
        let taken: HashSet<String> = self.constraint_names(table).into_iter().collect();
        let count = self.catalog.databases[&table.database]
            .foreign_keys
            .iter()
            .filter(|k| k.table == child.id)
            .count();
        if count >= FOREIGN_KEYS_PER_TABLE_MAX {
            return Err(reject(
                RejectionKind::ProgramLimitExceeded,
                format!(
                    "table \"{}\" has {count} foreign keys, the most one table may have",
                    table.name
                ),
            ));
        }
        let name = match &spec.name {
            Some(name) if taken.contains(name) => {
                return Err(reject(
                    RejectionKind::DuplicateObject,
                    format!(
                        "constraint \"{name}\" for relation \"{}\" already exists",
                        table.name
                    ),
                ));
            }
            Some(name) => name.clone(),
            None => {
                let base = format!("{}_{}_fkey", table.name, spec.columns.join("_"));
                std::iter::once(base.clone())
                    .chain((1..).map(|n| format!("{base}{n}")))
                    .find(|n| !taken.contains(n))
                    .expect("some number is free")
            }
        };
        for (c, p) in spec.columns.iter().zip(&parent_columns) {
            let (cty, pty) = (column_type(&child, c), column_type(&parent, p));
            if !comparable(cty, pty) {
                return Err(Rejection::new(
                    RejectionKind::DatatypeMismatch,
                    format!("foreign key constraint \"{name}\" cannot be implemented"),
                )
                .with_detail(format!(
                    "Key columns \"{c}\" and \"{p}\" are of incompatible types: {} and {}.",
                    cty.sql_name(),
                    pty.sql_name()
                ))
                .into());
            }
        }
        let key = ForeignKeyDef {
            name,
            table: child.id,
            columns: spec.columns.clone(),
            parent: parent.id,
            parent_columns,
            on_delete: spec.on_delete,
            on_update: spec.on_update,
        };
        let data = self.tables[&child.id].clone();
        let db = Arc::make_mut(&mut self.catalog)
            .databases
            .get_mut(&table.database)
            .expect("the table's database exists");
        db.foreign_keys.push(key.clone());
        for segment in &data.segments {
            self.check_present(&key, &segment.batch)?;
        }
        Ok(())
    }

    /// A foreign key of another table that needs `table`, which is about
    /// to go: (constraint, its table's name).
    pub(crate) fn referenced_from_elsewhere(&self, table: TableId) -> Option<(String, String)> {
        self.catalog
            .databases
            .values()
            .flat_map(|db| &db.foreign_keys)
            .find(|k| k.parent == table && k.table != table)
            .map(|k| {
                let child = self.catalog.table_by_id(k.table).map(|(r, _)| r.name);
                (k.name.clone(), child.unwrap_or_default())
            })
    }

    /// A foreign key (on table ...) that relies on the unique index `name`
    /// of a table in `schema`, which is about to be dropped.
    pub(crate) fn foreign_key_needing_index(
        &self,
        database: &str,
        schema: &str,
        name: &str,
    ) -> Option<String> {
        let db = self.catalog.databases.get(database)?;
        let (table, index) = db
            .schemas
            .get(schema)?
            .tables
            .values()
            .find_map(|t| t.indexes.iter().find(|i| i.name == name).map(|i| (t, i)))?;
        let (key, child) = db.foreign_keys.iter().find_map(|k| {
            (k.parent == table.id && same_columns(&k.parent_columns, &index.columns))
                .then(|| (k, self.catalog.table_by_id(k.table)))
        })?;
        // Another unique index over the same columns serves the key as well.
        let others = table.indexes.iter().filter(|i| {
            i.unique && i.name != index.name && same_columns(&i.columns, &index.columns)
        });
        if others.count() > 0 {
            return None;
        }
        let child = child.map(|(r, _)| r.name).unwrap_or_default();
        Some(format!("{} on table {child}", key.name))
    }

    /// `DROP COLUMN` of a key's column: a key of the table itself goes with
    /// the column, as in PostgreSQL; one that references it from another
    /// table (through its unique index) refuses the drop.
    pub(crate) fn drop_column_keys(&mut self, table: &TableRef, column: &str) -> Result<()> {
        let Some(def) = self.catalog.table(table) else {
            return Ok(());
        };
        let id = def.id;
        let db = &self.catalog.databases[&table.database];
        if let Some(key) = db.foreign_keys.iter().find(|k| {
            k.parent == id && k.table != id && k.parent_columns.iter().any(|c| c == column)
        }) {
            let child = self.catalog.table_by_id(key.table).map(|(r, _)| r.name);
            return Err(Rejection::new(
                RejectionKind::DependentObjects,
                format!(
                    "cannot drop column {column} of table {} because other objects depend on it",
                    table.name
                ),
            )
            .with_detail(format!(
                "constraint {} on table {} depends on column {column} of table {}",
                key.name,
                child.unwrap_or_default(),
                table.name
            ))
            .into());
        }
        let (_, db) = self.table_database_mut(table).expect("found above");
        db.foreign_keys.retain(|k| {
            !(k.table == id && k.columns.iter().any(|c| c == column)
                || k.parent == id && k.parent_columns.iter().any(|c| c == column))
        });
        Ok(())
    }

    /// `RENAME COLUMN`: keys name their columns, on both sides.
    pub(crate) fn rename_column_keys(&mut self, table: &TableRef, from: &str, to: &str) {
        let Some((id, db)) = self.table_database_mut(table) else {
            return;
        };
        for key in &mut db.foreign_keys {
            let sides = [
                (key.table, &mut key.columns),
                (key.parent, &mut key.parent_columns),
            ];
            for (side, columns) in sides {
                if side == id {
                    for c in columns.iter_mut().filter(|c| *c == from) {
                        *c = to.to_string();
                    }
                }
            }
        }
    }

    /// TRUNCATE empties tables without looking at rows, so it may not leave
    /// a table whose keys reference them, as PostgreSQL says.
    pub(crate) fn check_truncate(&self, tables: &[TableId]) -> Result<()> {
        let key = self
            .catalog
            .databases
            .values()
            .flat_map(|db| &db.foreign_keys)
            .find(|k| tables.contains(&k.parent) && !tables.contains(&k.table));
        let Some(key) = key else {
            return Ok(());
        };
        let name = |id| {
            self.catalog
                .table_by_id(id)
                .map(|(r, _)| r.name)
                .unwrap_or_default()
        };
        Err(Rejection::new(
            RejectionKind::Unsupported,
            "cannot truncate a table referenced in a foreign key constraint",
        )
        .with_detail(format!(
            "Table \"{}\" references \"{}\".",
            name(key.table),
            name(key.parent)
        ))
        .into())
    }

    /// Drops the foreign keys and CHECK constraints of tables that no
    /// longer exist (a key, also of its parent's).
    pub(crate) fn forget_constraints_of_dropped_tables(&mut self) {
        let tables = &self.tables;
        let catalog = Arc::make_mut(&mut self.catalog);
        for db in catalog.databases.values_mut() {
            db.foreign_keys
                .retain(|k| tables.contains_key(&k.table) && tables.contains_key(&k.parent));
            db.checks.retain(|c| tables.contains_key(&c.table));
        }
    }
}

/// One side of a foreign key, resolved against the current catalog.
struct Resolved<'a> {
    name: String,
    def: &'a TableDef,
    /// The key's columns by position, in the order of the parent's unique
    /// index (the order its keys are encoded in).
    columns: Vec<usize>,
    /// The key's columns by position, as declared (the order messages use).
    declared: Vec<usize>,
}

impl<'a> Resolved<'a> {
    fn parent(state: &'a DbState, key: &ForeignKeyDef) -> Result<Self> {
        Self::of(state, key, key.parent, &key.parent_columns)
    }

    fn child(state: &'a DbState, key: &ForeignKeyDef) -> Result<Self> {
        Self::of(state, key, key.table, &key.columns)
    }

    fn of(
        state: &'a DbState,
        key: &ForeignKeyDef,
        table: TableId,
        columns: &[String],
    ) -> Result<Self> {
        let find = |id: TableId| {
            state.catalog.table_by_id(id).ok_or_else(|| {
                reject(
                    RejectionKind::Internal,
                    format!("foreign key names table #{} that does not exist", id.0),
                )
            })
        };
        let (tref, def) = find(table)?;
        let (_, parent) = find(key.parent)?;
        let index = parent
            .indexes
            .iter()
            .find(|i| i.unique && same_columns(&i.columns, &key.parent_columns))
            .expect("a foreign key's unique index stays while the key does");
        let declared: Vec<usize> = columns
            .iter()
            .map(|c| def.column_index(c).expect("a foreign key's columns exist"))
            .collect();
        let columns = index
            .columns
            .iter()
            .map(|p| {
                declared[key
                    .parent_columns
                    .iter()
                    .position(|c| c == p)
                    .expect("same columns")]
            })
            .collect();
        Ok(Resolved {
            name: tref.name,
            def,
            columns,
            declared,
        })
    }

    /// The keys of `rows`' `columns` as this (parent) side's unique index
    /// encodes them: cast to its column types first. A value the cast
    /// cannot carry is None, as a NULL is.
    fn keys_of(&self, rows: &RecordBatch, columns: &[usize]) -> Result<Vec<Option<IndexKey>>> {
        let arrays = columns
            .iter()
            .zip(&self.columns)
            .map(|(&c, &p)| Ok(cast(rows.column(c), &self.def.columns[p].ty.arrow_type())?))
            .collect::<Result<Vec<ArrayRef>>>()?;
        encode_key_arrays(&arrays, rows.num_rows())
    }

    /// Whether this (parent) table has a row with `key`.
    fn holds(&self, state: &DbState, key: &[u8]) -> bool {
        state.tables[&self.def.id]
            .lookup_unique(&self.columns, key)
            .is_some()
    }

    /// This (child) table's rows, stored schema, whose key is in `keys`.
    fn rows_with(
        &self,
        state: &DbState,
        parent: &Resolved,
        keys: &HashSet<IndexKey>,
    ) -> Result<RecordBatch> {
        let data = &state.tables[&self.def.id];
        let mut parts = Vec::new();
        for segment in &data.segments {
            let found = parent.keys_of(&segment.batch, &self.columns)?;
            let mask: BooleanArray = found
                .iter()
                .map(|k| Some(k.as_ref().is_some_and(|k| keys.contains(k))))
                .collect();
            if mask.true_count() > 0 {
                parts.push(filter_record_batch(&segment.batch, &mask)?);
            }
        }
        Ok(concat_batches(&self.def.stored_schema(), &parts)?)
    }
}

/// The row ids of rows in a table's stored schema.
fn rowids_of(rows: &RecordBatch) -> Vec<RowId> {
    rows.columns()
        .last()
        .expect("stored rows end with their row ids")
        .as_primitive::<UInt64Type>()
        .values()
        .to_vec()
}

fn same_columns(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().all(|c| b.contains(c))
}

fn column_type<'a>(def: &'a TableDef, column: &str) -> &'a PgType {
    &def.columns[def.column_index(column).expect("checked to exist")].ty
}

/// Whether a key of type `child` may reference one of type `parent`: the
/// same type, or types PostgreSQL compares within one operator family.
fn comparable(child: &PgType, parent: &PgType) -> bool {
    use PgType::*;
    let family = |t: &PgType| match t {
        Int2 | Int4 | Int8 => 1,
        Float4 | Float8 => 2,
        Numeric { .. } => 3,
        Text | Varchar(_) | Bpchar(_) => 4,
        _ => 0,
    };
    child == parent || (family(child) != 0 && family(child) == family(parent))
}
