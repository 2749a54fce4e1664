//! CHECK constraints: SQL conditions on one row, which the planner
//! evaluates on every row it writes (INSERT, UPDATE, upserts, COPY, the
//! fast path), just before the rows become a `Write`. A row for which a
//! condition is false is refused with 23514; NULL passes, as in SQL.
//!
//! The state machine keeps them (`storage/src/checks.rs`): adding one bumps
//! the table's version, so a write planned without it is refused and
//! planned again, with it.

use ciab_storage::{AlterOp, CheckDef, ColumnDef, Command, TableDef, TableId, TableRef};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::DFSchema;
use datafusion::logical_expr::ExprSchemable;
use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, Ident, Visit, Visitor};
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::physical_expr::PhysicalExpr;

use crate::error::{Error, Result, sqlstate};
use crate::names::normalize;
use crate::session::Session;

impl Session {
    /// The CHECK `expr` of table `table` (named `name`, or as PostgreSQL
    /// names it: `<table>_<column>_check` when it names one column,
    /// `<table>_check` otherwise, numbered past the names in `taken`),
    /// refused unless it is a condition over `columns`.
    pub(crate) fn check_def(
        &self,
        table: &str,
        columns: &[ColumnDef],
        name: Option<&Ident>,
        expr: &SqlExpr,
        taken: &[String],
    ) -> Result<CheckDef> {
        let mut named = Named(Vec::new());
        let _ = expr.visit(&mut named);
        let name = match name {
            Some(name) => normalize(name),
            None => {
                let base = match named.0.as_slice() {
                    [column] => format!("{table}_{column}_check"),
                    _ => format!("{table}_check"),
                };
                std::iter::once(base.clone())
                    .chain((1..).map(|n| format!("{base}{n}")))
                    .find(|n| !taken.contains(n))
                    .expect("some number is free")
            }
        };
        let check = CheckDef {
            name,
            table: TableId(0),
            expr: expr.to_string(),
            columns: named.0,
        };
        let schema = DFSchema::try_from(Schema::new(
            columns.iter().map(ColumnDef::field).collect::<Vec<_>>(),
        ))?;
        let planned = self.ctx.state().create_logical_expr(&check.expr, &schema)?;
        match planned.get_type(&schema)? {
            DataType::Boolean | DataType::Null => Ok(check),
            other => Err(Error::new(
                sqlstate::DATATYPE_MISMATCH,
                format!("argument of CHECK must be type boolean, not type {other}"),
            )),
        }
    }

    /// `ALTER TABLE ... ADD CHECK`: the rows already there must pass it.
    pub(crate) async fn add_check(
        &mut self,
        tref: &TableRef,
        name: Option<&Ident>,
        expr: &SqlExpr,
    ) -> Result<()> {
        let state = self.catalogs.state();
        let def = state
            .catalog
            .table(tref)
            .ok_or_else(|| Error::new(sqlstate::UNDEFINED_TABLE, "the table was dropped"))?;
        let taken = state.constraint_names(tref);
        let check = self.check_def(&tref.name, &def.columns, name, expr, &taken)?;
        let data = state.table_data(def.id).expect("catalog and data agree");
        for segment in &data.segments {
            if self.failing_row(def, &check, &segment.batch)?.is_some() {
                return Err(Error::new(
                    sqlstate::CHECK_VIOLATION,
                    format!(
                        "check constraint \"{}\" of relation \"{}\" is violated by some row",
                        check.name, tref.name
                    ),
                ));
            }
        }
        // Inside a block, the rows checked here are the block's view; at
        // COMMIT the check applies before the block's own rows, to the rows
        // the block started from, which must not have changed since.
        let id = def.id;
        self.write_catalog_as(|state| Command::AlterTable {
            table: tref.clone(),
            op: AlterOp::AddCheck {
                check: check.clone(),
                checked_below: state.table_data(id).map_or(0, |t| t.next_rowid),
            },
        })
        .await?;
        Ok(())
    }

    /// Refuses `rows` (in `def`'s user schema) if a CHECK of the table is
    /// false for one of them.
    pub(crate) fn check_rows(&self, def: &TableDef, rows: &RecordBatch) -> Result<()> {
        let state = self.catalogs.state();
        let checks: Vec<&CheckDef> = state
            .catalog
            .databases
            .values()
            .flat_map(|db| &db.checks)
            .filter(|c| c.table == def.id)
            .collect();
        if checks.is_empty() || rows.num_rows() == 0 {
            return Ok(());
        }
        let table = state.catalog.table_by_id(def.id).map(|(r, _)| r.name);
        for check in checks {
            if let Some(row) = self.failing_row(def, check, rows)? {
                return Err(Error::new(
                    sqlstate::CHECK_VIOLATION,
                    format!(
                        "new row for relation \"{}\" violates check constraint \"{}\"",
                        table.clone().unwrap_or_default(),
                        check.name
                    ),
                )
                .with_detail(format!("Failing row contains ({}).", row_text(rows, row)?)));
            }
        }
        Ok(())
    }

    /// The first row of `rows` for which `check` is false.
    pub(crate) fn failing_row(
        &self,
        def: &TableDef,
        check: &CheckDef,
        rows: &RecordBatch,
    ) -> Result<Option<usize>> {
        let physical = self.planned_check(def, check)?;
        // Stored rows end with their row ids, which no CHECK names.
        let user = rows.project(&(0..def.columns.len()).collect::<Vec<_>>())?;
        let passed = physical.evaluate(&user)?.into_array(user.num_rows())?;
        let passed = datafusion::arrow::compute::cast(&passed, &DataType::Boolean)?;
        let passed = passed.as_boolean();
        Ok((0..passed.len()).find(|&r| passed.is_valid(r) && !passed.value(r)))
    }
}

/// CHECK conditions planned for one shape of a table, by (table, version,
/// condition), with the columns they were planned for: planning the SQL
/// again for every INSERT cost more than the check. (The columns are
/// compared too, as a block that altered the table and rolled back may
/// have used the same version number for another shape.)
pub(crate) type PlannedChecks =
    HashMap<(TableId, u64, String), (Vec<ColumnDef>, Arc<dyn PhysicalExpr>)>;

/// Plans kept at most per session; past it the cache starts over.
const PLANNED_CHECKS_MAX: usize = 256;

impl Session {
    fn planned_check(&self, def: &TableDef, check: &CheckDef) -> Result<Arc<dyn PhysicalExpr>> {
        let key = (def.id, def.version, check.expr.clone());
        let mut planned = self.planned_checks.lock().expect("lock poisoned");
        if let Some((columns, physical)) = planned.get(&key)
            && *columns == def.columns
        {
            return Ok(physical.clone());
        }
        let schema = DFSchema::try_from(def.schema().as_ref().clone())?;
        let state = self.ctx.state();
        let expr = state.create_logical_expr(&check.expr, &schema)?;
        let physical = state.create_physical_expr(expr, &schema)?;
        if planned.len() >= PLANNED_CHECKS_MAX {
            planned.clear();
        }
        planned.insert(key, (def.columns.clone(), physical.clone()));
        Ok(physical)
    }
}

/// The columns an expression names, each once, in order.
struct Named(Vec<String>);

impl Named {
    fn add(&mut self, column: String) {
        if !self.0.contains(&column) {
            self.0.push(column);
        }
    }
}

impl Visitor for Named {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &SqlExpr) -> ControlFlow<()> {
        match expr {
            SqlExpr::Identifier(ident) => self.add(normalize(ident)),
            SqlExpr::CompoundIdentifier(parts) => {
                if let Some(last) = parts.last() {
                    self.add(normalize(last));
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// A row as PostgreSQL's "Failing row contains" shows it.
fn row_text(rows: &RecordBatch, row: usize) -> Result<String> {
    let options = FormatOptions::default().with_null("null");
    let values = rows
        .columns()
        .iter()
        .map(|c| {
            Ok(ArrayFormatter::try_new(c.as_ref(), &options)?
                .value(row)
                .to_string())
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(values.join(", "))
}
