//! CHECK constraints in the catalog, and the constraint names a table's
//! foreign keys, CHECK constraints and indexes share.
//!
//! A CHECK is SQL, which storage does not evaluate: the planner checks the
//! rows it writes (a CHECK looks at one row, so no other writer can make a
//! checked row fail it later). What storage must guarantee is that no
//! write planned before a CHECK existed applies after it: adding one bumps
//! the table's version, and a write planned against the old version is
//! refused (40001) and planned again.

use std::sync::Arc;

use crate::catalog::{CHECKS_PER_TABLE_MAX, CheckDef, DatabaseDef, TableId, TableRef};
use crate::error::{Rejection, RejectionKind, Result};
use crate::state::{DbState, reject, undefined_table};

impl DbState {
    /// The names of `table`'s constraints and indexes, which a new one may
    /// not take.
    pub fn constraint_names(&self, table: &TableRef) -> Vec<String> {
        let Some(def) = self.catalog.table(table) else {
            return Vec::new();
        };
        let db = &self.catalog.databases[&table.database];
        let keys = db.foreign_keys.iter().filter(|k| k.table == def.id);
        let checks = db.checks.iter().filter(|c| c.table == def.id);
        keys.map(|k| k.name.clone())
            .chain(checks.map(|c| c.name.clone()))
            .chain(def.indexes.iter().map(|i| i.name.clone()))
            .collect()
    }

    /// `ALTER TABLE table ADD CHECK`, after the planner found the rows
    /// below `checked_below` passing it.
    pub(crate) fn add_check(
        &mut self,
        table: &TableRef,
        check: &CheckDef,
        checked_below: u64,
    ) -> Result<()> {
        let id = self
            .catalog
            .table(table)
            .ok_or_else(|| undefined_table(&table.name))?
            .id;
        if self.constraint_names(table).contains(&check.name) {
            return Err(reject(
                RejectionKind::DuplicateObject,
                format!(
                    "constraint \"{}\" for relation \"{}\" already exists",
                    check.name, table.name
                ),
            ));
        }
        let count = self.catalog.databases[&table.database]
            .checks
            .iter()
            .filter(|c| c.table == id)
            .count();
        if count >= CHECKS_PER_TABLE_MAX {
            return Err(reject(
                RejectionKind::ProgramLimitExceeded,
                format!(
                    "table \"{}\" has {count} check constraints, the most one table may have",
                    table.name
                ),
            ));
        }
        if self.tables[&id].next_rowid != checked_below {
            return Err(reject(
                RejectionKind::SerializationFailure,
                format!(
                    "could not serialize access: table \"{}\" changed while its rows were checked",
                    table.name
                ),
            ));
        }
        let catalog = Arc::make_mut(&mut self.catalog);
        let db = catalog
            .databases
            .get_mut(&table.database)
            .expect("found above");
        db.checks.push(CheckDef {
            table: id,
            ..check.clone()
        });
        let def = db
            .schemas
            .get_mut(&table.schema)
            .and_then(|s| s.tables.get_mut(&table.name))
            .expect("found above");
        def.version += 1;
        Ok(())
    }

    /// `ALTER TABLE table DROP CONSTRAINT name`: a foreign key or a CHECK.
    /// Returns false where IF EXISTS found nothing to drop.
    pub(crate) fn drop_constraint(
        &mut self,
        table: &TableRef,
        name: &str,
        if_exists: bool,
    ) -> Result<bool> {
        let (id, db) = self
            .table_database_mut(table)
            .ok_or_else(|| undefined_table(&table.name))?;
        let before = db.foreign_keys.len() + db.checks.len();
        db.foreign_keys
            .retain(|k| !(k.table == id && k.name == name));
        db.checks.retain(|c| !(c.table == id && c.name == name));
        let dropped = before - db.foreign_keys.len() - db.checks.len() > 0
            || self.drop_index(&table.database, &table.schema, name, Some(id))?;
        match dropped {
            true => Ok(true),
            false if if_exists => Ok(false),
            false => Err(reject(
                RejectionKind::UndefinedObject,
                format!(
                    "constraint \"{name}\" of relation \"{}\" does not exist",
                    table.name
                ),
            )),
        }
    }

    /// Drops the index `name` of a schema: its definition and the keys
    /// kept to enforce it; false if there is none. `constraint_of` is the
    /// table of an `ALTER TABLE DROP CONSTRAINT`, which may drop its
    /// primary key (`DROP INDEX` may not) but no other table's index. An
    /// index a foreign key needs stays, as in PostgreSQL without CASCADE.
    pub(crate) fn drop_index(
        &mut self,
        database: &str,
        schema: &str,
        name: &str,
        constraint_of: Option<TableId>,
    ) -> Result<bool> {
        let Some((table, table_name, primary)) = self
            .catalog
            .databases
            .get(database)
            .and_then(|db| db.schemas.get(schema))
            .and_then(|s| {
                s.tables.iter().find_map(|(table_name, t)| {
                    let index = t.indexes.iter().find(|i| i.name == name)?;
                    Some((t.id, table_name.clone(), index.primary))
                })
            })
            .filter(|(table, ..)| constraint_of.is_none_or(|id| id == *table))
        else {
            return Ok(false);
        };
        if primary && constraint_of.is_none() {
            return Err(reject(
                RejectionKind::DependentObjects,
                format!(
                    "cannot drop index {name} because constraint {name} on table {table_name} \
                     requires it"
                ),
            ));
        }
        if let Some(key) = self.foreign_key_needing_index(database, schema, name) {
            let what = match constraint_of {
                Some(_) => format!("constraint {name} on table {table_name}"),
                None => format!("index {name}"),
            };
            return Err(Rejection::new(
                RejectionKind::DependentObjects,
                format!("cannot drop {what} because other objects depend on it"),
            )
            .with_detail(format!("constraint {key} depends on index {name}"))
            .into());
        }
        let catalog = Arc::make_mut(&mut self.catalog);
        let def = catalog
            .databases
            .get_mut(database)
            .and_then(|db| db.schemas.get_mut(schema))
            .and_then(|s| s.tables.values_mut().find(|t| t.id == table))
            .expect("the index's table was just found");
        def.indexes.retain(|i| i.name != name);
        let data = self.tables.get_mut(&table).expect("catalog and data agree");
        Arc::make_mut(data).unique.retain(|u| u.name != name);
        Ok(true)
    }

    /// `DROP COLUMN`: the CHECK constraints that name the column go with
    /// it, as in PostgreSQL.
    pub(crate) fn drop_column_checks(&mut self, table: &TableRef, column: &str) {
        if let Some((id, db)) = self.table_database_mut(table) {
            db.checks
                .retain(|c| !(c.table == id && c.columns.iter().any(|n| n == column)));
        }
    }

    /// `table`'s id and its database, to change the constraints kept there.
    pub(crate) fn table_database_mut(
        &mut self,
        table: &TableRef,
    ) -> Option<(TableId, &mut DatabaseDef)> {
        let id = self.catalog.table(table)?.id;
        let catalog = Arc::make_mut(&mut self.catalog);
        Some((id, catalog.databases.get_mut(&table.database)?))
    }

    /// `RENAME COLUMN` of a column a CHECK names: its SQL would name a
    /// column that is gone, and storage does not rewrite SQL.
    pub(crate) fn check_rename(&self, table: &TableRef, column: &str) -> Result<()> {
        let Some(def) = self.catalog.table(table) else {
            return Ok(());
        };
        let db = &self.catalog.databases[&table.database];
        match db
            .checks
            .iter()
            .find(|c| c.table == def.id && c.columns.iter().any(|n| n == column))
        {
            Some(check) => Err(Rejection::new(
                RejectionKind::Unsupported,
                format!(
                    "renaming column \"{column}\", which check constraint \"{}\" names, is not supported",
                    check.name
                ),
            )
            .into()),
            None => Ok(()),
        }
    }
}
