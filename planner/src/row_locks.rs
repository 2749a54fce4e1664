//! `SELECT ... FOR UPDATE` (and `FOR NO KEY UPDATE`, `FOR SHARE`, `FOR
//! KEY SHARE`) in a transaction block.
//!
//! ciab does not lock rows: two transactions that write one row both run,
//! and the second to COMMIT fails with 40001 (first committer wins). What
//! a locking SELECT promises, that the rows it read stay as read until the
//! block ends, is kept by making the rows written: the block rewrites them
//! unchanged (deleted and inserted again in one write), as `UPDATE t SET a
//! = a` would. A transaction that changes them then conflicts with this
//! one at COMMIT, whichever commits first, and a block that reads rows FOR
//! UPDATE to decide what it writes
//! elsewhere cannot commit over a concurrent change to them. The loser
//! learns it at COMMIT instead of waiting, NOWAIT and SKIP LOCKED have no
//! lock to meet, and two FOR SHARE readers of one row conflict too (the
//! parser reads the weaker strengths as their kin: `FOR NO KEY UPDATE` as
//! `FOR UPDATE`, `FOR KEY SHARE` as `FOR SHARE`).
//!
//! ```text
//!  SELECT a FROM t WHERE w ORDER BY o LIMIT 1 FOR UPDATE
//!    ──► SELECT a, t.__ciab_rowid FROM t WHERE w ORDER BY o LIMIT 1
//!    ──► Write [Delete <those rows' ids>, Insert <the rows as stored>]
//!    ──► the rows, without their ids
//! ```
//!
//! Outside a block the locks would end with the statement, so the query
//! just runs. A lookup on every column of a unique index (`WHERE id = $1
//! FOR UPDATE`, what ORMs send) takes the fast path (`fast.rs`), which
//! finds the row through the index and locks it with [`Session::lock_rows`]
//! as this module does.

use std::sync::Arc;

use ciab_storage::{ROWID_COLUMN, RowId, Rows, TableDef, WriteOp};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Schema, UInt64Type};
use datafusion::common::ParamValues;
use datafusion::common::tree_node::TreeNode;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    Distinct, Expr, GroupByExpr, Ident, Query, SelectItem, SetExpr, Statement, TableFactor,
};
use futures::TryStreamExt;

use crate::error::{Error, Result, sqlstate};
use crate::session::{Output, Session};

/// The column the selected rows' ids come back in.
const LOCKED_ROWID: &str = "__ciab_locked_rowid";

impl Session {
    /// Runs a query with a locking clause inside a transaction block.
    pub(crate) async fn query_for_update(
        &mut self,
        query: &Query,
        params: Option<ParamValues>,
    ) -> Result<Output> {
        let refuse = || {
            Error::unsupported(
                "SELECT ... FOR UPDATE in a transaction block of other than one table",
            )
        };
        let SetExpr::Select(select) = query.body.as_ref() else {
            return Err(refuse());
        };
        let [from] = select.from.as_slice() else {
            return Err(refuse());
        };
        let TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = &from.relation
        else {
            return Err(refuse());
        };
        if !from.joins.is_empty() || query.with.is_some() {
            return Err(refuse());
        }
        // As PostgreSQL: a group or a distinct row has no one row to lock.
        let grouped = match &select.group_by {
            GroupByExpr::Expressions(e, m) => !e.is_empty() || !m.is_empty(),
            GroupByExpr::All(_) => true,
        };
        let not_allowed = |what| {
            Error::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!("FOR UPDATE is not allowed with {what}"),
            )
        };
        if matches!(select.distinct, Some(Distinct::Distinct | Distinct::On(_))) {
            return Err(not_allowed("DISTINCT clause"));
        }
        if grouped || select.having.is_some() {
            return Err(not_allowed("GROUP BY clause"));
        }
        let (_, def) = self.resolve_table(name)?;
        let qualifier = match alias {
            Some(alias) => alias.name.clone(),
            None => name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .cloned()
                .ok_or_else(refuse)?,
        };

        // The rows, with their ids.
        let mut with_ids = query.clone();
        with_ids.locks.clear();
        let bare = with_ids.clone();
        let SetExpr::Select(select) = with_ids.body.as_mut() else {
            unreachable!("checked above")
        };
        select.projection.push(SelectItem::ExprWithAlias {
            expr: Expr::CompoundIdentifier(vec![qualifier, Ident::new(ROWID_COLUMN)]),
            alias: Ident::new(LOCKED_ROWID),
        });
        let statement = DfStatement::Statement(Box::new(Statement::Query(Box::new(with_ids))));
        self.catalogs.set_expose_rowid(true);
        let output = self.query(&statement, params).await;
        self.catalogs.set_expose_rowid(false);
        let (schema, stream) = match output {
            Ok(Output::Rows { schema, stream, .. }) => (schema, stream),
            Ok(_) => unreachable!("a query returns rows"),
            // An aggregate's rows have no ids to select beside them.
            Err(e) => {
                let bare = DfStatement::Statement(Box::new(Statement::Query(Box::new(bare))));
                let plan = self.plan(bare, None).await?;
                let aggregated =
                    plan.exists(|node| Ok(matches!(node, LogicalPlan::Aggregate(_))))?;
                return Err(match aggregated {
                    true => not_allowed("aggregate functions"),
                    false => e,
                });
            }
        };
        let batches: Vec<RecordBatch> = stream.try_collect().await?;

        // Rewritten unchanged: written by this block.
        let id_at = schema.index_of(LOCKED_ROWID)?;
        let ids: Vec<RowId> = batches
            .iter()
            .flat_map(|b| {
                b.column(id_at)
                    .as_primitive::<UInt64Type>()
                    .values()
                    .to_vec()
            })
            .collect();
        if !ids.is_empty() {
            self.lock_rows(&def, ids).await?;
        }

        // The rows as the query gave them: without the ids, which `*`
        // lists too while they are exposed.
        let keep: Vec<usize> = (0..schema.fields().len())
            .filter(|&i| ![LOCKED_ROWID, ROWID_COLUMN].contains(&schema.field(i).name().as_str()))
            .collect();
        let schema = Arc::new(Schema::new(
            keep.iter()
                .map(|&i| schema.field(i).clone())
                .collect::<Vec<_>>(),
        ));
        let batches = batches
            .iter()
            .map(|b| Ok(b.project(&keep)?))
            .collect::<Vec<datafusion::error::Result<RecordBatch>>>();
        let stream = futures::stream::iter(batches);
        Ok(Output::Rows {
            schema: schema.clone(),
            stream: Box::pin(RecordBatchStreamAdapter::new(schema, stream)),
            tag: None,
        })
    }

    /// Locks rows of a table for the transaction block: rewrites them
    /// unchanged, so that a concurrent change to them conflicts at COMMIT.
    pub(crate) async fn lock_rows(&mut self, def: &TableDef, ids: Vec<RowId>) -> Result<()> {
        let state = self.catalogs.state();
        let data = state
            .table_data(def.id)
            .ok_or_else(|| Error::new(sqlstate::INTERNAL_ERROR, "a table without its rows"))?;
        let stored = data.rows(&ids)?;
        // Stored rows end with their ids.
        let columns: Vec<usize> = (0..stored.num_columns() - 1).collect();
        let rows = stored.project(&columns)?;
        self.write(vec![
            WriteOp::Delete {
                table: def.id,
                version: def.version,
                rowids: ids,
            },
            WriteOp::Insert {
                table: def.id,
                version: def.version,
                rows: Rows::encode(&rows)?,
            },
        ])
        .await?;
        Ok(())
    }
}
