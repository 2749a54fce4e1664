//! Foreign keys in DDL: `REFERENCES` and `FOREIGN KEY` become
//! `AlterOp::AddForeignKey` commands; the state machine resolves them and
//! holds them on every write (`storage/src/foreign_keys.rs`). Here are the
//! parts of PostgreSQL's syntax ciab refuses (0A000), what DROP ...
//! CASCADE and TRUNCATE ... CASCADE take along, and the rows an UPDATE
//! changes under ON UPDATE CASCADE and SET NULL.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use ciab_storage::{
    AlterOp, CascadedUpdate, Command, ForeignKeyDef, ForeignKeySpec, RefAction, RowId, Rows,
    TableDef, TableId, TableRef, WriteOp,
};
use datafusion::arrow::array::RecordBatch;
use datafusion::sql::sqlparser::ast::{
    CascadeOption, ConstraintReferenceMatchKind, DeferrableInitial, ForeignKeyConstraint,
    ObjectName, ReferentialAction, Truncate,
};

use crate::error::{Error, Result, sqlstate};
use crate::names::normalize;
use crate::session::Session;

impl Session {
    /// The foreign key `fk` over `columns` of `table`, a table that may be
    /// the one CREATE TABLE is making (a key may reference its own table).
    pub(crate) fn foreign_key_spec(
        &self,
        table: &TableRef,
        fk: &ForeignKeyConstraint,
        columns: Vec<String>,
    ) -> Result<ForeignKeySpec> {
        if let Some(kind) = fk
            .match_kind
            .filter(|k| *k != ConstraintReferenceMatchKind::Simple)
        {
            return Err(Error::unsupported(format!("foreign keys {kind}")));
        }
        if let Some(c) = &fk.characteristics
            && (c.deferrable == Some(true)
                || c.initially == Some(DeferrableInitial::Deferred)
                || c.enforced == Some(false))
        {
            return Err(Error::unsupported(format!("foreign keys {c}")));
        }
        let on_delete = action(fk.on_delete, "ON DELETE")?;
        let on_update = action(fk.on_update, "ON UPDATE")?;
        Ok(ForeignKeySpec {
            name: fk.name.as_ref().map(normalize),
            columns,
            parent: self.parent_ref(table, &fk.foreign_table)?,
            parent_columns: fk.referred_columns.iter().map(normalize).collect(),
            on_delete,
            on_update,
        })
    }

    /// The writes an UPDATE that turned rows `rowids` of `def` into `rows`
    /// makes to the tables referencing it `ON UPDATE CASCADE` or `SET
    /// NULL`, and on down the keys those rows are part of. PostgreSQL runs
    /// them as triggers after the statement; here they join the UPDATE's
    /// own write, which the state machine checks whole (a referencing row
    /// written since this plan fails it with 40001, and it is planned
    /// again).
    pub(crate) fn cascaded_updates(
        &self,
        def: &TableDef,
        rowids: &[RowId],
        rows: &RecordBatch,
    ) -> Result<Vec<WriteOp>> {
        let state = self.catalogs.state();
        let Some(db) = state.catalog.databases.get(&self.database()) else {
            return Ok(Vec::new());
        };
        let keys: Vec<&ForeignKeyDef> = db
            .foreign_keys
            .iter()
            .filter(|k| matches!(k.on_update, RefAction::Cascade | RefAction::SetNull))
            .collect();
        if keys.is_empty() || rowids.is_empty() {
            return Ok(Vec::new());
        }
        let old = state
            .table_data(def.id)
            .expect("catalog and data agree")
            .rows(rowids)?;
        let mut changed: HashMap<TableId, HashSet<RowId>> =
            HashMap::from([(def.id, rowids.iter().copied().collect())]);
        let mut pending = VecDeque::from([(def.id, old, rows.clone())]);
        let mut ops = Vec::new();
        while let Some((table, old, new)) = pending.pop_front() {
            for key in keys.iter().filter(|k| k.parent == table) {
                let Some(CascadedUpdate { rowids, old, new }) =
                    state.cascade_update(key, &old, &new)?
                else {
                    continue;
                };
                let seen = changed.entry(key.table).or_default();
                if rowids.iter().any(|r| !seen.insert(*r)) {
                    return Err(Error::unsupported(format!(
                        "ON UPDATE {} that reaches a row the same UPDATE changes",
                        key.on_update.sql()
                    )));
                }
                let (_, child) = state
                    .catalog
                    .table_by_id(key.table)
                    .expect("a foreign key's tables exist");
                self.check_rows(child, &new)?;
                ops.push(WriteOp::Delete {
                    table: key.table,
                    version: child.version,
                    rowids,
                });
                ops.push(WriteOp::Insert {
                    table: key.table,
                    version: child.version,
                    rows: Rows::encode(&new)?,
                });
                pending.push_back((key.table, old, new));
            }
        }
        Ok(ops)
    }

    /// The table a key references: an existing table, or the one being made.
    fn parent_ref(&self, table: &TableRef, parent: &ObjectName) -> Result<TableRef> {
        match self.resolve_table(parent) {
            Ok((tref, _)) => Ok(tref),
            Err(e) => match self.table_ref(parent) {
                Ok(tref) if tref == *table => Ok(tref),
                _ => Err(e),
            },
        }
    }

    /// What DROP TABLE ... CASCADE drops first: the foreign keys of other
    /// tables that reference `table`.
    pub(crate) fn keys_referencing(&self, table: TableId) -> Vec<Command> {
        let state = self.catalogs.state();
        let Some(db) = state.catalog.databases.get(&self.database()) else {
            return Vec::new();
        };
        db.foreign_keys
            .iter()
            .filter(|k| k.parent == table && k.table != table)
            .filter_map(|k| {
                let (child, _) = state.catalog.table_by_id(k.table)?;
                Some(Command::AlterTable {
                    table: child,
                    op: AlterOp::DropConstraint {
                        name: k.name.clone(),
                        if_exists: true,
                    },
                })
            })
            .collect()
    }

    /// The tables TRUNCATE empties, by id: those named, and with CASCADE
    /// every table whose foreign keys reference one of them, and so on.
    /// Without CASCADE, a table referenced from a table not emptied with it
    /// is refused, as in PostgreSQL (the state machine checks it again).
    /// Tables whose keys reference others come first, so that deleting
    /// rows in that order (inside a block) passes each key.
    pub(crate) fn truncate_targets(&self, truncate: &Truncate) -> Result<Vec<(TableRef, TableId)>> {
        let mut targets = Vec::new();
        for target in &truncate.table_names {
            let (tref, def) = self.resolve_table(&target.name)?;
            if !targets.iter().any(|(_, id)| *id == def.id) {
                targets.push((tref, def.id));
            }
        }
        let state = self.catalogs.state();
        let keys = state
            .catalog
            .databases
            .get(&self.database())
            .map_or(&[][..], |db| &db.foreign_keys);
        let cascade = truncate.cascade == Some(CascadeOption::Cascade);
        let mut emptied: BTreeSet<TableId> = targets.iter().map(|(_, id)| *id).collect();
        while let Some(key) = keys
            .iter()
            .find(|k| emptied.contains(&k.parent) && !emptied.contains(&k.table))
        {
            let (child, _) = state
                .catalog
                .table_by_id(key.table)
                .expect("a key's table exists");
            if !cascade {
                let parent = state.catalog.table_by_id(key.parent).map(|(r, _)| r.name);
                return Err(Error::new(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    "cannot truncate a table referenced in a foreign key constraint",
                )
                .with_detail(format!(
                    "Table \"{}\" references \"{}\".",
                    child.name,
                    parent.unwrap_or_default()
                )));
            }
            emptied.insert(key.table);
            targets.push((child, key.table));
        }
        // Referencing tables before the tables they reference.
        let mut ordered = Vec::with_capacity(targets.len());
        while !targets.is_empty() {
            let referenced = |id: TableId| {
                targets.iter().any(|(_, other)| {
                    *other != id && keys.iter().any(|k| k.parent == id && k.table == *other)
                })
            };
            let next = targets
                .iter()
                .position(|(_, id)| !referenced(*id))
                .unwrap_or(0);
            ordered.push(targets.remove(next));
        }
        Ok(ordered)
    }
}

fn action(action: Option<ReferentialAction>, clause: &str) -> Result<RefAction> {
    Ok(match action {
        None | Some(ReferentialAction::NoAction) => RefAction::NoAction,
        Some(ReferentialAction::Restrict) => RefAction::Restrict,
        Some(ReferentialAction::Cascade) => RefAction::Cascade,
        Some(ReferentialAction::SetNull) => RefAction::SetNull,
        Some(ReferentialAction::SetDefault) => {
            return Err(Error::unsupported(format!(
                "{clause} SET DEFAULT on a foreign key"
            )));
        }
    })
}
