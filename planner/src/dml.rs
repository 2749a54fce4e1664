//! INSERT, UPDATE and DELETE.
//!
//! DataFusion plans each statement (column lists, DEFAULTs, casts, parameter
//! types, subqueries), but only the *input* of its DML plan is run: the rows
//! to insert, or the target rows with their row ids and new values. Those
//! become one resolved `Write` command, applied through Raft whole or not at
//! all. The scans behind UPDATE and DELETE expose each row's id, so exactly
//! the rows the WHERE clause selects (subqueries included) are changed.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use ciab_storage::{
    ColumnDef, IndexKey, ROWID_COLUMN, RowId, Rows, TableData, TableDef, TableRef, WriteOp,
    encode_keys,
};
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, UInt64Array,
};
use datafusion::arrow::compute::{cast, concat_batches, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, ParamValues};
use datafusion::logical_expr::expr::Placeholder;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken;
use datafusion::sql::sqlparser::ast::{
    Assignment, AssignmentTarget, ConflictTarget, Cte, Expr as SqlExpr, FromTable, Ident, Insert,
    ObjectName, OnConflictAction, OnInsert, Parens, Query, SelectItem, SetExpr, Statement,
    TableAlias, TableFactor, TableObject, TableWithJoins, Update, UpdateTableFromKind,
    Value as SqlValue, Values, Visit, VisitMut, VisitorMut, With, visit_expressions,
    visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{Error, Result, sqlstate};
use crate::names::normalize;
use crate::params::Params;
use crate::session::{Output, Session, Tag, rows_output};
use crate::types::conform_rows;

const ORDINAL_COLUMN: &str = "__ciab_ord";

impl Session {
    /// Finds a table by the name a statement uses, along the search path.
    pub(crate) fn resolve_table(&self, name: &ObjectName) -> Result<(TableRef, TableDef)> {
        let tref = self.table_ref(name)?;
        let state = self.catalogs.state();
        match state.catalog.table(&tref) {
            Some(def) => Ok((tref, def.clone())),
            None => {
                let is_view = state
                    .catalog
                    .schema(&tref.database, &tref.schema)
                    .is_some_and(|s| s.views.contains_key(&tref.name));
                if is_view {
                    Err(Error::unsupported(format!(
                        "changing rows of view \"{}\"",
                        tref.name
                    )))
                } else {
                    Err(Error::new(
                        sqlstate::UNDEFINED_TABLE,
                        format!("relation \"{}\" does not exist", tref.name),
                    ))
                }
            }
        }
    }

    /// A relation name resolved to database, schema and name.
    pub(crate) fn table_ref(&self, name: &ObjectName) -> Result<TableRef> {
        let parts: Vec<String> = name
            .0
            .iter()
            .map(|p| {
                p.as_ident()
                    .map(normalize)
                    .ok_or_else(|| Error::unsupported(format!("the name {name}")))
            })
            .collect::<Result<_>>()?;
        let database = self.database();
        let default_schema = self
            .ctx
            .state_ref()
            .read()
            .config()
            .options()
            .catalog
            .default_schema
            .clone();
        let (db, schema, table) = match parts.as_slice() {
            [t] => (database.clone(), default_schema, t.clone()),
            [s, t] => (database.clone(), s.clone(), t.clone()),
            [d, s, t] => (d.clone(), s.clone(), t.clone()),
            _ => {
                return Err(Error::new(
                    sqlstate::SYNTAX_ERROR,
                    format!("improper qualified name (too many dotted names): {name}"),
                ));
            }
        };
        if db != database {
            return Err(Error::unsupported(format!(
                "cross-database references: \"{db}.{schema}.{table}\""
            )));
        }
        Ok(TableRef {
            database: db,
            schema,
            name: table,
        })
    }

    /// Makes the table's DEFAULT expressions available to INSERT planning.
    fn prepare_defaults(&self, tref: &TableRef, def: &TableDef) -> Result<()> {
        let mut defaults = HashMap::new();
        for column in &def.columns {
            if let Some(expr) = self.default_expr(&tref.schema, column)? {
                defaults.insert(column.name.clone(), expr);
            }
        }
        self.catalogs.set_defaults(def.id, Arc::new(defaults));
        Ok(())
    }

    /// An INSERT's or UPDATE's target and table, and the statement with its
    /// DEFAULTs filled (see [`Session::fill_defaults`]).
    fn filled_target<'a>(
        &self,
        statement: &'a Statement,
    ) -> Result<(DmlTarget, TableRef, TableDef, Cow<'a, Statement>)> {
        let target = dml_target(statement)?;
        let (tref, def) = self.resolve_table(&target.name)?;
        let filled = self.fill_defaults(statement, &tref, &def)?;
        let target = match &filled {
            Cow::Borrowed(_) => target,
            Cow::Owned(filled) => dml_target(filled)?,
        };
        Ok((target, tref, def, filled))
    }

    /// The statement with PostgreSQL's DEFAULT keyword replaced where it may
    /// stand for a value: a value of an INSERT's VALUES, `INSERT ... DEFAULT
    /// VALUES`, and the SET lists of UPDATE and of ON CONFLICT DO UPDATE.
    /// Each becomes its column's DEFAULT expression, or NULL, so that
    /// DataFusion plans an ordinary statement. Also gives the columns that a
    /// source without a column list leaves out their DEFAULTs.
    fn fill_defaults<'a>(
        &self,
        statement: &'a Statement,
        tref: &TableRef,
        def: &TableDef,
    ) -> Result<Cow<'a, Statement>> {
        // Without a column list, a source narrower than the table fills the
        // first columns; the others take their DEFAULTs.
        let narrow = |insert: &Insert| {
            insert
                .source
                .as_deref()
                .and_then(source_width)
                .filter(|&width| insert.columns.is_empty() && width < def.columns.len())
        };
        let fills = |insert: &Insert| insert.source.is_none() || narrow(insert).is_some();
        let written = visit_expressions(statement, |e| {
            if is_default(e) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .is_break();
        if !written && !matches!(statement, Statement::Insert(i) if fills(i)) {
            return Ok(Cow::Borrowed(statement));
        }
        let mut statement = statement.clone();
        let default = |column: usize| self.default_sql(&tref.schema, &def.columns[column]);
        let column_of = |a: &Assignment| match &a.target {
            AssignmentTarget::ColumnName(name) => name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .and_then(|i| def.column_index(&normalize(i))),
            AssignmentTarget::Tuple(_) => None,
        };
        let fill_set = |assignments: &mut [Assignment]| -> Result<()> {
            for a in assignments {
                if is_default(&a.value)
                    && let Some(column) = column_of(a)
                {
                    a.value = default(column)?;
                }
            }
            Ok(())
        };
        match &mut statement {
            Statement::Insert(insert) => {
                if insert.source.is_none() && insert.assignments.is_empty() {
                    // DEFAULT VALUES: one row of every column's DEFAULT.
                    let row = (0..def.columns.len()).map(default).collect::<Result<_>>()?;
                    insert.source = Some(Box::new(values_query(vec![row])));
                }
                if let Some(width) = narrow(insert) {
                    insert.columns = def.columns[..width]
                        .iter()
                        .map(|c| ObjectName::from(vec![Ident::with_quote('"', &c.name)]))
                        .collect();
                }
                // An unknown column is reported when the INSERT is planned.
                let targets = insert_targets(&insert.columns, def).unwrap_or_default();
                if let Some(source) = &mut insert.source
                    && let SetExpr::Values(values) = source.body.as_mut()
                {
                    for row in &mut values.rows {
                        for (value, &column) in row.iter_mut().zip(&targets) {
                            if is_default(value) {
                                *value = default(column)?;
                            }
                        }
                    }
                }
                if let Some(OnInsert::OnConflict(on_conflict)) = &mut insert.on
                    && let OnConflictAction::DoUpdate(update) = &mut on_conflict.action
                {
                    fill_set(&mut update.assignments)?;
                }
            }
            Statement::Update(update) => fill_set(&mut update.assignments)?,
            _ => {}
        }
        Ok(Cow::Owned(statement))
    }

    /// A column's DEFAULT as a syntax tree (see [`default_text`]), or NULL.
    fn default_sql(&self, schema: &str, column: &ColumnDef) -> Result<SqlExpr> {
        let Some(text) = default_text(schema, column) else {
            return Ok(SqlExpr::value(SqlValue::Null));
        };
        // The catalog keeps what a DEFAULT clause parsed from, printed.
        Parser::new(&PostgreSqlDialect {})
            .try_with_sql(&text)
            .and_then(|mut p| p.parse_expr())
            .map_err(|e| {
                Error::new(
                    sqlstate::INTERNAL_ERROR,
                    format!(
                        "the DEFAULT of column \"{}\" does not parse: {e}",
                        column.name
                    ),
                )
            })
    }

    /// What a column left out of an INSERT or COPY gets: its DEFAULT, or a
    /// NULL, of the column's type.
    pub(crate) fn default_or_null(&self, schema: &str, column: &ColumnDef) -> Result<Expr> {
        let ty = column.ty.arrow_type();
        Ok(match self.default_expr(schema, column)? {
            Some(default) => default.cast_to(&ty, &DFSchema::empty())?,
            None => Expr::Literal(datafusion::common::ScalarValue::try_from(&ty)?, None),
        })
    }

    /// A column's DEFAULT, planned (see [`default_text`]).
    pub(crate) fn default_expr(&self, schema: &str, column: &ColumnDef) -> Result<Option<Expr>> {
        let Some(text) = default_text(schema, column) else {
            return Ok(None);
        };
        Ok(Some(
            self.ctx
                .state()
                .create_logical_expr(&text, &DFSchema::empty())?,
        ))
    }

    async fn collect(&self, plan: LogicalPlan) -> Result<RecordBatch> {
        let planned = plan.schema().inner().clone();
        let frame = self.ctx.execute_logical_plan(plan).await?;
        let batches = self.collect_frame(frame).await?;
        // The rows' own types, which type coercion may have changed after
        // DataFusion planned the statement: a CASE of a literal and a
        // `::text` is Utf8View where the insert's projection said Utf8.
        // The table's types are restored column by column later.
        let schema = batches.first().map_or(planned, RecordBatch::schema);
        Ok(concat_batches(&schema, &batches)?)
    }

    /// DataFusion's plan for a DML statement, without the clauses we run
    /// ourselves (ON CONFLICT, RETURNING).
    async fn dml_plan(
        &self,
        statement: Statement,
        params: Option<ParamValues>,
    ) -> Result<LogicalPlan> {
        if let Statement::Insert(insert) = &statement
            && let Some(source) = nested_values_source(insert)
        {
            return self.insert_plan(insert, source.clone(), params).await;
        }
        if let Statement::Update(update) = &statement
            && update.from.is_some()
        {
            return self.update_from_plan(update, params).await;
        }
        if let Statement::Delete(delete) = &statement
            && let FromTable::WithFromKeyword(tables) | FromTable::WithoutKeyword(tables) =
                &delete.from
            && let [table] = tables.as_slice()
            && let TableFactor::Table {
                name,
                alias: Some(alias),
                ..
            } = &table.relation
        {
            return self
                .aliased_delete_plan(name, alias, table, delete.selection.as_ref(), params)
                .await;
        }
        let rowids = !matches!(statement, Statement::Insert(_));
        let statement = DfStatement::Statement(Box::new(statement));
        let plan = match rowids {
            true => self.plan_with_rowids(statement, params).await,
            false => self.plan(statement, params).await,
        };
        match plan? {
            LogicalPlan::Dml(dml) => Ok(Arc::unwrap_or_clone(dml.input)),
            other => Err(Error::new(
                sqlstate::INTERNAL_ERROR,
                format!("expected a DML plan, got {}", other.display()),
            )),
        }
    }

    /// The new rows of `UPDATE ... FROM`, which DataFusion does not plan,
    /// as DataFusion plans an UPDATE's (each row's columns, then its row
    /// id), from the query `SELECT <new row>, <row id> FROM <target>, <FROM
    /// list> WHERE <condition>`. A row that joins several rows is updated
    /// once, by the first (see `split_rowids`), as PostgreSQL uses one of
    /// them.
    async fn update_from_plan(
        &self,
        update: &Update,
        params: Option<ParamValues>,
    ) -> Result<LogicalPlan> {
        let TableFactor::Table { name, alias, .. } = &update.table.relation else {
            unreachable!("dml_target accepts a table alone")
        };
        let Some(UpdateTableFromKind::BeforeSet(from) | UpdateTableFromKind::AfterSet(from)) =
            &update.from
        else {
            unreachable!("called for UPDATE ... FROM")
        };
        let (_, def) = self.resolve_table(name)?;
        let qualifier = match alias {
            Some(alias) => alias.name.to_string(),
            None => name.to_string(),
        };
        let assigned = assignments(&update.assignments, &def)?;
        let items = row_items(&def, &qualifier, &assigned);
        let from: Vec<String> = from.iter().map(ToString::to_string).collect();
        let mut sql = format!(
            "SELECT {} FROM {}, {}",
            items.join(", "),
            update.table,
            from.join(", ")
        );
        if let Some(selection) = &update.selection {
            sql.push_str(&format!(" WHERE {selection}"));
        }
        let statement = self.parse_sql(&sql)?.pop().expect("one query");
        // `SET c = $1` gives $1 the column's type, as DataFusion's UPDATE
        // does; a select list alone would leave it untyped.
        let typed: HashMap<String, FieldRef> = def
            .columns
            .iter()
            .filter_map(|c| match assigned.get(&c.name)? {
                SqlExpr::Value(v) => match &v.value {
                    SqlValue::Placeholder(id) => Some((id.clone(), Arc::new(c.field()))),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        let plan = self
            .plan_with_rowids(statement, None)
            .await?
            .transform_up_with_subqueries(|node| {
                node.map_expressions(|e| {
                    e.transform_up(|e| match e {
                        Expr::Placeholder(Placeholder { id, field: None })
                            if typed.contains_key(&id) =>
                        {
                            let field = Some(Arc::clone(&typed[&id]));
                            Ok(Transformed::yes(Expr::Placeholder(Placeholder {
                                id,
                                field,
                            })))
                        }
                        other => Ok(Transformed::no(other)),
                    })
                })
            })?
            .data;
        Ok(match params {
            Some(p) => plan.with_param_values(p)?,
            None => plan,
        })
    }

    /// The rows a DELETE of a table with an alias drops, which DataFusion's
    /// DELETE plans without the alias (so `u.c` in `DELETE FROM t AS u
    /// WHERE u.c = 1` names nothing): the query `SELECT <row>, <row id>
    /// FROM <table> AS <alias> WHERE <condition>`.
    async fn aliased_delete_plan(
        &self,
        name: &ObjectName,
        alias: &TableAlias,
        table: &TableWithJoins,
        selection: Option<&SqlExpr>,
        params: Option<ParamValues>,
    ) -> Result<LogicalPlan> {
        let (_, def) = self.resolve_table(name)?;
        let items = row_items(&def, &alias.name.to_string(), &HashMap::new());
        let mut sql = format!("SELECT {} FROM {table}", items.join(", "));
        if let Some(selection) = selection {
            sql.push_str(&format!(" WHERE {selection}"));
        }
        let statement = self.parse_sql(&sql)?.pop().expect("one query");
        self.plan_with_rowids(statement, params).await
    }

    /// [`Session::plan`] with the tables' hidden row id column in reach, as
    /// an UPDATE's or DELETE's input needs it.
    async fn plan_with_rowids(
        &self,
        statement: DfStatement,
        params: Option<ParamValues>,
    ) -> Result<LogicalPlan> {
        self.catalogs.set_expose_rowid(true);
        let plan = self.plan(statement, params).await;
        self.catalogs.set_expose_rowid(false);
        plan
    }

    /// The rows an INSERT adds, planned as DataFusion does (the source's
    /// columns cast to the target's, DEFAULTs for the others) but with the
    /// source planned as a query of its own: DataFusion plans every VALUES
    /// in an INSERT's source, nested ones too, as rows of the target table,
    /// and refuses `INSERT INTO t (a, b) SELECT x, y FROM (VALUES (1, 2, 3))
    /// AS v(x, y, n)`, which SQLAlchemy sends for multi-row inserts.
    async fn insert_plan(
        &self,
        insert: &Insert,
        source: Query,
        params: Option<ParamValues>,
    ) -> Result<LogicalPlan> {
        let TableObject::TableName(name) = &insert.table else {
            return Err(Error::unsupported("INSERT INTO TABLE FUNCTION"));
        };
        let (tref, def) = self.resolve_table(name)?;
        let source = self
            .plan(
                DfStatement::Statement(Box::new(Statement::Query(Box::new(source)))),
                params,
            )
            .await?;
        let targets = insert_targets(&insert.columns, &def).map_err(|c| {
            Error::new(
                sqlstate::UNDEFINED_COLUMN,
                format!(
                    "column \"{c}\" of relation \"{}\" does not exist",
                    tref.name
                ),
            )
        })?;
        let given = source.schema().fields().len();
        if given != targets.len() {
            let more = if given > targets.len() {
                "expressions"
            } else {
                "target columns"
            };
            let than = if given > targets.len() {
                "target columns"
            } else {
                "expressions"
            };
            return Err(Error::new(
                sqlstate::SYNTAX_ERROR,
                format!("INSERT has more {more} than {than}"),
            ));
        }
        let mut exprs = Vec::with_capacity(def.columns.len());
        for (i, column) in def.columns.iter().enumerate() {
            let ty = column.ty.arrow_type();
            let expr = match targets.iter().position(|&t| t == i) {
                Some(v) => Expr::Column(datafusion::common::Column::from(
                    source.schema().qualified_field(v),
                ))
                .cast_to(&ty, source.schema())?,
                None => self.default_or_null(&tref.schema, column)?,
            };
            exprs.push(expr.alias(&column.name));
        }
        Ok(datafusion::logical_expr::LogicalPlanBuilder::from(source)
            .project(exprs)?
            .build()?)
    }

    pub(crate) async fn insert(
        &mut self,
        statement: &Statement,
        params: Option<ParamValues>,
    ) -> Result<Output> {
        let (target, tref, def, statement) = self.filled_target(statement)?;
        let Statement::Insert(insert) = statement.as_ref() else {
            unreachable!("filling DEFAULTs keeps the statement's kind")
        };
        self.prepare_defaults(&tref, &def)?;
        let input = self.dml_plan(target.stripped.clone(), params).await?;
        let rows = conform_rows(
            &def,
            to_table_batch(&def, &tref, self.collect(input).await?)?,
        )?;
        self.check_rows(&def, &rows)?;

        let state = self.catalogs.state();
        let data = state.table_data(def.id).expect("catalog and data agree");
        let (inserts, updates) = match &insert.on {
            None => (rows, None),
            Some(OnInsert::OnConflict(on_conflict)) => {
                // The rows already there decide what the upsert does.
                self.record_read(def.id);
                let alias = target.name_in_query(&tref);
                self.resolve_conflicts(&def, &tref, data, rows, on_conflict, &alias)
                    .await?
            }
            Some(OnInsert::DuplicateKeyUpdate(_)) => {
                return Err(Error::unsupported("ON DUPLICATE KEY UPDATE"));
            }
            Some(_) => return Err(Error::unsupported("this INSERT ... ON clause")),
        };
        let mut ops = Vec::new();
        let mut changed = vec![];
        let mut cascaded = Vec::new();
        if let Some((rowids, new_rows)) = updates
            && !rowids.is_empty()
        {
            cascaded = self.cascaded_updates(&def, &rowids, &new_rows)?;
            ops.push(WriteOp::Delete {
                table: def.id,
                version: def.version,
                rowids,
            });
            changed.push(new_rows);
        }
        if inserts.num_rows() > 0 {
            changed.insert(0, inserts);
        }
        let changed = concat_batches(&def.schema(), &changed)?;
        let tag = Tag::inserted(changed.num_rows() as u64);
        let output = match &target.returning {
            None => Output::Command(tag),
            Some(items) => {
                returning(changed.clone(), &target.name_in_query(&tref), items, tag).await?
            }
        };
        if changed.num_rows() > 0 {
            ops.push(WriteOp::Insert {
                table: def.id,
                version: def.version,
                rows: Rows::encode(&changed)?,
            });
            ops.extend(cascaded);
            self.write(ops).await?;
        }
        Ok(output)
    }

    /// Splits rows to insert into those that conflict with an existing key
    /// and those that do not. DO NOTHING drops the former; DO UPDATE turns
    /// them into (row ids to replace, replacement rows).
    async fn resolve_conflicts(
        &self,
        def: &TableDef,
        tref: &TableRef,
        data: &TableData,
        rows: RecordBatch,
        on_conflict: &datafusion::sql::sqlparser::ast::OnConflict,
        alias: &str,
    ) -> Result<(RecordBatch, Option<(Vec<RowId>, RecordBatch)>)> {
        let no_match = || {
            Error::new(
                "42P10",
                "there is no unique or exclusion constraint matching the ON CONFLICT specification",
            )
        };
        let unique: Vec<&ciab_storage::IndexDef> =
            def.indexes.iter().filter(|i| i.unique).collect();
        let arbiters: Vec<&ciab_storage::IndexDef> = match &on_conflict.conflict_target {
            None => {
                if matches!(on_conflict.action, OnConflictAction::DoUpdate(_)) {
                    return Err(Error::new(
                        sqlstate::SYNTAX_ERROR,
                        "ON CONFLICT DO UPDATE requires inference specification or constraint name",
                    ));
                }
                unique
            }
            Some(ConflictTarget::Columns(columns)) => {
                let mut wanted: Vec<String> = columns.iter().map(normalize).collect();
                wanted.sort();
                let found = unique.into_iter().find(|i| {
                    let mut cols = i.columns.clone();
                    cols.sort();
                    cols == wanted
                });
                vec![found.ok_or_else(no_match)?]
            }
            Some(ConflictTarget::OnConstraint(name)) => {
                let name = name.to_string();
                vec![unique.into_iter().find(|i| i.name == name).ok_or_else(|| {
                    Error::new(
                        sqlstate::UNDEFINED_OBJECT,
                        format!(
                            "constraint \"{name}\" for table \"{}\" does not exist",
                            tref.name
                        ),
                    )
                })?]
            }
        };
        let positions: Vec<Vec<usize>> = arbiters
            .iter()
            .map(|i| {
                i.columns
                    .iter()
                    .map(|c| def.column_index(c).expect("index columns exist"))
                    .collect()
            })
            .collect();
        let keys: Vec<Vec<Option<IndexKey>>> = positions
            .iter()
            .map(|cols| encode_keys(&rows, cols).map_err(Error::from))
            .collect::<Result<_>>()?;
        let mut seen: Vec<HashSet<IndexKey>> = vec![HashSet::new(); arbiters.len()];
        let mut keep = vec![true; rows.num_rows()];
        let mut existing: Vec<(usize, RowId)> = Vec::new();
        let do_update = matches!(on_conflict.action, OnConflictAction::DoUpdate(_));
        for row in 0..rows.num_rows() {
            for (a, cols) in positions.iter().enumerate() {
                let Some(key) = &keys[a][row] else { continue };
                if !seen[a].insert(key.clone()) {
                    if do_update {
                        return Err(Error::new(
                            sqlstate::CARDINALITY_VIOLATION,
                            "ON CONFLICT DO UPDATE command cannot affect row a second time",
                        ));
                    }
                    keep[row] = false;
                    break;
                }
                if let Some(rowid) = data.lookup_unique(cols, key) {
                    keep[row] = false;
                    existing.push((row, rowid));
                    break;
                }
            }
        }
        let inserts = filter_record_batch(&rows, &BooleanArray::from(keep))?;
        let OnConflictAction::DoUpdate(update) = &on_conflict.action else {
            return Ok((inserts, None));
        };
        if existing.is_empty() {
            return Ok((
                inserts,
                Some((vec![], RecordBatch::new_empty(def.schema()))),
            ));
        }
        // The conflicting rows: the stored one under the table's name, the
        // proposed one as EXCLUDED, matched by ordinal.
        let ordinals: ArrayRef = Arc::new(Int64Array::from_iter_values(
            (0..existing.len()).map(|i| i as i64),
        ));
        let stored = data.rows(&existing.iter().map(|(_, r)| *r).collect::<Vec<_>>())?;
        let rowids: Vec<RowId> = existing.iter().map(|(_, r)| *r).collect();
        let mut target_cols = stored.columns()[..def.columns.len()].to_vec();
        target_cols.push(ordinals.clone());
        let proposed_idx = datafusion::arrow::array::UInt32Array::from_iter_values(
            existing.iter().map(|(row, _)| *row as u32),
        );
        let mut excluded_cols = rows
            .columns()
            .iter()
            .map(|c| datafusion::arrow::compute::take(c, &proposed_idx, None))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        excluded_cols.push(ordinals);
        let with_ordinal = |schema: SchemaRef| {
            let mut fields: Vec<Field> =
                schema.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.push(Field::new(ORDINAL_COLUMN, DataType::Int64, false));
            Arc::new(Schema::new(fields))
        };
        let target = RecordBatch::try_new(with_ordinal(def.schema()), target_cols)?;
        let excluded = RecordBatch::try_new(with_ordinal(def.schema()), excluded_cols)?;

        let assigned = assignments(&update.assignments, def)?;
        let select: Vec<String> = def
            .columns
            .iter()
            .map(|c| match assigned.get(&c.name) {
                Some(expr) => format!("{} AS {}", qualify(expr.clone(), alias), quote(&c.name)),
                None => format!("{}.{}", quote(alias), quote(&c.name)),
            })
            .collect();
        let mut sql = format!(
            "SELECT {}, {a}.{ORDINAL_COLUMN} FROM __ciab_target AS {a} JOIN excluded ON {a}.{ORDINAL_COLUMN} = excluded.{ORDINAL_COLUMN}",
            select.join(", "),
            a = quote(alias),
        );
        if let Some(selection) = &update.selection {
            sql.push_str(&format!(" WHERE {}", qualify(selection.clone(), alias)));
        }
        let ctx = scratch_context();
        ctx.register_batch("__ciab_target", target)?;
        ctx.register_batch("excluded", excluded)?;
        let df = ctx.sql(&sql).await?;
        let schema = df.schema().inner().clone();
        let updated = concat_batches(&schema, &df.collect().await?)?;
        let chosen = updated
            .column(updated.num_columns() - 1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("ordinal column")
            .values()
            .iter()
            .map(|&o| rowids[o as usize])
            .collect::<Vec<_>>();
        let new_rows = RecordBatch::try_new(
            Arc::new(Schema::new(schema.fields()[..def.columns.len()].to_vec())),
            updated.columns()[..def.columns.len()].to_vec(),
        )?;
        let new_rows = conform_rows(def, to_table_batch(def, tref, new_rows)?)?;
        self.check_rows(def, &new_rows)?;
        Ok((inserts, Some((chosen, new_rows))))
    }

    pub(crate) async fn update(
        &mut self,
        statement: &Statement,
        update: &Update,
        params: Option<ParamValues>,
    ) -> Result<Output> {
        let (target, tref, def, _) = self.filled_target(statement)?;
        assignments(&update.assignments, &def)?;
        let input = self.dml_plan(target.stripped.clone(), params).await?;
        let selected = self.collect(input).await?;
        let (rowids, rows) = split_rowids(&selected, &def, true)?;
        let rows = conform_rows(&def, to_table_batch(&def, &tref, rows)?)?;
        self.check_rows(&def, &rows)?;
        let tag = Tag::new("UPDATE").with_rows(rowids.len() as u64);
        let output = match &target.returning {
            None => Output::Command(tag),
            Some(items) => {
                returning(rows.clone(), &target.name_in_query(&tref), items, tag).await?
            }
        };
        if !rowids.is_empty() {
            self.write_update(&def, rowids, &rows).await?;
        }
        Ok(output)
    }

    /// Writes an UPDATE's rows: the old versions' delete and the new ones'
    /// insert (`rows`, in the order of `rowids`), with what the foreign keys
    /// that reference the table do about it.
    pub(crate) async fn write_update(
        &mut self,
        def: &TableDef,
        rowids: Vec<RowId>,
        rows: &RecordBatch,
    ) -> Result<()> {
        let cascaded = self.cascaded_updates(def, &rowids, rows)?;
        let mut ops = vec![
            WriteOp::Delete {
                table: def.id,
                version: def.version,
                rowids,
            },
            WriteOp::Insert {
                table: def.id,
                version: def.version,
                rows: Rows::encode(rows)?,
            },
        ];
        ops.extend(cascaded);
        self.write(ops).await?;
        Ok(())
    }

    pub(crate) async fn delete(
        &mut self,
        statement: &Statement,
        params: Option<ParamValues>,
    ) -> Result<Output> {
        let target = dml_target(statement)?;
        let (tref, def) = self.resolve_table(&target.name)?;
        let input = self.dml_plan(target.stripped.clone(), params).await?;
        let selected = self.collect(input).await?;
        let (rowids, rows) = split_rowids(&selected, &def, false)?;
        let tag = Tag::new("DELETE").with_rows(rowids.len() as u64);
        let output = match &target.returning {
            None => Output::Command(tag),
            Some(items) => {
                let rows = to_table_batch(&def, &tref, rows)?;
                returning(rows, &target.name_in_query(&tref), items, tag).await?
            }
        };
        if !rowids.is_empty() {
            self.write(vec![WriteOp::Delete {
                table: def.id,
                version: def.version,
                rowids,
            }])
            .await?;
        }
        Ok(output)
    }

    /// Parameter and result types of a DML statement, for Describe.
    pub(crate) async fn describe_dml(
        &mut self,
        statement: &Statement,
    ) -> Result<(Params, Option<SchemaRef>)> {
        let (target, tref, def, _) = self.filled_target(statement)?;
        self.prepare_defaults(&tref, &def)?;
        let plan = self.dml_plan(target.stripped.clone(), None).await?;
        let params = Params::of_plan(&plan)?;
        let schema = match &target.returning {
            None => None,
            Some(items) => {
                let empty = RecordBatch::new_empty(def.schema());
                match returning(empty, &target.name_in_query(&tref), items, Tag::new("")).await? {
                    Output::Rows { schema, .. } => Some(schema),
                    _ => None,
                }
            }
        };
        Ok((params, schema))
    }
}

/// What INSERT, UPDATE and DELETE share: the table written, the name the
/// statement gives it, its RETURNING list, and the statement without the
/// clauses ciab runs itself (ON CONFLICT, RETURNING) for DataFusion to plan.
struct DmlTarget {
    name: ObjectName,
    alias: Option<String>,
    returning: Option<Vec<SelectItem>>,
    stripped: Statement,
}

impl DmlTarget {
    /// The name RETURNING and ON CONFLICT use for the table.
    fn name_in_query(&self, table: &TableRef) -> String {
        self.alias.clone().unwrap_or_else(|| table.name.clone())
    }
}

/// The positions of the columns an INSERT names (all, in order, when it
/// names none), or the first name that is no column of the table.
pub(crate) fn insert_targets(
    columns: &[ObjectName],
    def: &TableDef,
) -> std::result::Result<Vec<usize>, String> {
    if columns.is_empty() {
        return Ok((0..def.columns.len()).collect());
    }
    columns
        .iter()
        .map(|c| match c.0.as_slice() {
            [part] => part
                .as_ident()
                .and_then(|i| def.column_index(&normalize(i)))
                .ok_or_else(|| c.to_string()),
            _ => Err(c.to_string()),
        })
        .collect()
}

/// An INSERT's source if it is a query with a VALUES inside it (not a
/// plain VALUES list): see [`Session::insert_plan`].
fn nested_values_source(insert: &Insert) -> Option<&Query> {
    let source = insert.source.as_deref()?;
    if matches!(source.body.as_ref(), SetExpr::Values(_)) {
        return None;
    }
    let mut nested = false;
    let _ = source.visit(&mut NestedValues(&mut nested));
    nested.then_some(source)
}

/// Finds a VALUES list anywhere in a query.
struct NestedValues<'a>(&'a mut bool);

impl datafusion::sql::sqlparser::ast::Visitor for NestedValues<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if matches!(query.body.as_ref(), SetExpr::Values(_)) {
            *self.0 = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

fn dml_target(statement: &Statement) -> Result<DmlTarget> {
    match statement {
        Statement::Insert(insert) => {
            let TableObject::TableName(name) = &insert.table else {
                return Err(Error::unsupported("INSERT INTO TABLE FUNCTION"));
            };
            let mut stripped = insert.clone();
            stripped.on = None;
            stripped.returning = None;
            stripped.table_alias = None;
            if let Some(source) = &mut stripped.source {
                crate::names::unique_source_names(source);
            }
            Ok(DmlTarget {
                name: name.clone(),
                alias: insert.table_alias.as_ref().map(|a| normalize(&a.alias)),
                returning: insert.returning.clone(),
                stripped: Statement::Insert(stripped),
            })
        }
        Statement::Update(update) => {
            let TableFactor::Table { name, alias, .. } = &update.table.relation else {
                return Err(Error::unsupported("UPDATE of this kind of relation"));
            };
            let mut stripped = update.clone();
            stripped.returning = None;
            Ok(DmlTarget {
                name: name.clone(),
                alias: alias.as_ref().map(|a| normalize(&a.name)),
                returning: update.returning.clone(),
                stripped: Statement::Update(stripped),
            })
        }
        Statement::Delete(delete) => {
            let (FromTable::WithFromKeyword(tables) | FromTable::WithoutKeyword(tables)) =
                &delete.from;
            let [table] = tables.as_slice() else {
                return Err(Error::unsupported("DELETE from several tables"));
            };
            if delete.using.is_some() {
                return Err(Error::unsupported("DELETE ... USING"));
            }
            let TableFactor::Table { name, alias, .. } = &table.relation else {
                return Err(Error::unsupported("DELETE from this kind of relation"));
            };
            let mut stripped = delete.clone();
            stripped.returning = None;
            Ok(DmlTarget {
                name: name.clone(),
                alias: alias.as_ref().map(|a| normalize(&a.name)),
                returning: delete.returning.clone(),
                stripped: Statement::Delete(stripped),
            })
        }
        other => Err(Error::new(
            sqlstate::INTERNAL_ERROR,
            format!("not an INSERT, UPDATE or DELETE: {}", first_word(other)),
        )),
    }
}

/// The select list of a row as DataFusion plans an UPDATE's or DELETE's
/// input: each column of the table (its new value where `assigned` has
/// one), then the row id, the table named `qualifier`.
fn row_items(def: &TableDef, qualifier: &str, assigned: &HashMap<String, SqlExpr>) -> Vec<String> {
    let mut items: Vec<String> = def
        .columns
        .iter()
        .map(|c| match assigned.get(&c.name) {
            Some(value) => format!("({value}) AS {}", quote(&c.name)),
            None => format!("{qualifier}.{} AS {}", quote(&c.name), quote(&c.name)),
        })
        .collect();
    items.push(format!(
        "{qualifier}.{} AS {}",
        quote(ROWID_COLUMN),
        quote(ROWID_COLUMN)
    ));
    items
}

fn first_word(statement: &Statement) -> String {
    statement
        .to_string()
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// New column values by column name; refuses unknown and hidden columns.
fn assignments(assignments: &[Assignment], def: &TableDef) -> Result<HashMap<String, SqlExpr>> {
    let mut out = HashMap::new();
    for a in assignments {
        let AssignmentTarget::ColumnName(name) = &a.target else {
            return Err(Error::unsupported("assigning to a tuple of columns"));
        };
        let column = name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(normalize)
            .unwrap_or_default();
        if column == ROWID_COLUMN || def.column_index(&column).is_none() {
            return Err(Error::new(
                sqlstate::UNDEFINED_COLUMN,
                format!("column \"{column}\" of relation does not exist"),
            ));
        }
        if out.insert(column.clone(), a.value.clone()).is_some() {
            return Err(Error::new(
                "42601",
                format!("multiple assignments to same column \"{column}\""),
            ));
        }
    }
    Ok(out)
}

/// `WITH ... INSERT / UPDATE / DELETE`, which DataFusion does not plan, as
/// the statement alone: an INSERT's source query takes the WITH, and an
/// UPDATE or DELETE reads each common table expression as a subquery in
/// FROM wherever it names it (its target excepted, which is always a
/// table). A recursive WITH is left as it is; DataFusion refuses it with
/// 0A000.
pub(crate) fn without_with(statement: Statement) -> Statement {
    let movable = matches!(&statement, Statement::Query(query)
        if query.with.as_ref().is_some_and(|w| !w.recursive)
            && matches!(query.body.as_ref(),
                SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_)));
    if !movable {
        return statement;
    }
    let Statement::Query(query) = statement else {
        unreachable!("checked above")
    };
    let Query { with, body, .. } = *query;
    let mut ctes = with.expect("checked above").cte_tables;
    // Each body reads the ones before it.
    for i in 0..ctes.len() {
        let (before, rest) = ctes.split_at_mut(i);
        let _ = VisitMut::visit(&mut rest[0].query, &mut InlineCtes(before));
    }
    match *body {
        SetExpr::Insert(Statement::Insert(mut insert)) => {
            if let Some(source) = &mut insert.source {
                match &mut source.with {
                    Some(own) => {
                        ctes.append(&mut own.cte_tables);
                        own.cte_tables = ctes;
                    }
                    None => {
                        source.with = Some(With {
                            with_token: AttachedToken::empty(),
                            recursive: false,
                            cte_tables: ctes,
                        })
                    }
                }
            }
            Statement::Insert(insert)
        }
        SetExpr::Update(Statement::Update(mut update)) => {
            let target = update.table.relation.clone();
            let _ = VisitMut::visit(&mut update, &mut InlineCtes(&ctes));
            update.table.relation = target;
            Statement::Update(update)
        }
        SetExpr::Delete(Statement::Delete(mut delete)) => {
            let (FromTable::WithFromKeyword(tables) | FromTable::WithoutKeyword(tables)) =
                &delete.from;
            let targets: Vec<TableFactor> = tables.iter().map(|t| t.relation.clone()).collect();
            let _ = VisitMut::visit(&mut delete, &mut InlineCtes(&ctes));
            let (FromTable::WithFromKeyword(tables) | FromTable::WithoutKeyword(tables)) =
                &mut delete.from;
            for (table, target) in tables.iter_mut().zip(targets) {
                table.relation = target;
            }
            Statement::Delete(delete)
        }
        _ => unreachable!("an INSERT, UPDATE or DELETE body holds its statement"),
    }
}

/// Replaces each table named as one of its common table expressions by the
/// expression's query, under the name the reference gives it.
struct InlineCtes<'a>(&'a [Cte]);

impl VisitorMut for InlineCtes<'_> {
    type Break = ();

    // After the children: the query put in is not visited again, so a
    // body naming a table of its own name reads that table.
    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = factor
            && let [part] = name.0.as_slice()
            && let Some(ident) = part.as_ident()
            && let Some(cte) = self
                .0
                .iter()
                .rev()
                .find(|c| normalize(&c.alias.name) == normalize(ident))
        {
            let alias = match alias.take() {
                Some(alias) if alias.columns.is_empty() => TableAlias {
                    columns: cte.alias.columns.clone(),
                    ..alias
                },
                Some(alias) => alias,
                None => cte.alias.clone(),
            };
            *factor = TableFactor::Derived {
                lateral: false,
                subquery: cte.query.clone(),
                alias: Some(alias),
                sample: None,
            };
        }
        ControlFlow::Continue(())
    }
}

/// A column's DEFAULT as SQL text: what the catalog keeps, except that a
/// `serial` column's draws from its sequence in the table's own schema,
/// whatever the session's search_path.
fn default_text(schema: &str, column: &ColumnDef) -> Option<String> {
    let sql = column.default.as_ref()?;
    Some(match crate::sequences::serial_sequence(sql) {
        Some(sequence) => crate::sequences::nextval_sql(schema, &sequence),
        None => sql.clone(),
    })
}

/// How many columns an INSERT's source gives, where the syntax says: a
/// VALUES list's first row, or a SELECT without `*`.
fn source_width(source: &Query) -> Option<usize> {
    match source.body.as_ref() {
        SetExpr::Values(values) => values.rows.first().map(|row| row.len()),
        SetExpr::Select(select)
            if select.projection.iter().all(|item| {
                matches!(
                    item,
                    SelectItem::UnnamedExpr(_) | SelectItem::ExprWithAlias { .. }
                )
            }) =>
        {
            Some(select.projection.len())
        }
        _ => None,
    }
}

/// The keyword DEFAULT where a value stands; sqlparser reads it as a name.
fn is_default(expr: &SqlExpr) -> bool {
    matches!(expr, SqlExpr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"))
}

/// `VALUES (row), ...` as a query.
fn values_query(rows: Vec<Vec<SqlExpr>>) -> Query {
    Query {
        with: None,
        body: Box::new(SetExpr::Values(Values {
            explicit_row: false,
            value_keyword: false,
            rows: rows.into_iter().map(Parens::with_empty_span).collect(),
        })),
        order_by: None,
        limit_clause: None,
        fetch: None,
        locks: vec![],
        for_clause: None,
        settings: None,
        format_clause: None,
        pipe_operators: vec![],
    }
}

/// Qualifies bare column names with the target's name, so that they mean the
/// stored row and not EXCLUDED's, as in PostgreSQL.
fn qualify(mut expr: SqlExpr, alias: &str) -> String {
    let _ = visit_expressions_mut(&mut expr, |e| {
        if let SqlExpr::Identifier(ident) = e {
            *e = SqlExpr::CompoundIdentifier(vec![Ident::with_quote('"', alias), ident.clone()]);
        }
        ControlFlow::<()>::Continue(())
    });
    expr.to_string()
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn scratch_context() -> SessionContext {
    let mut config = SessionConfig::new();
    config.options_mut().sql_parser.dialect = datafusion::config::Dialect::PostgreSQL;
    config.options_mut().sql_parser.parse_float_as_decimal = true;
    let state = ciab_extensions::state_builder().with_config(config).build();
    let ctx = SessionContext::new_with_state(state);
    ciab_extensions::register(&ctx);
    ctx
}

/// Casts rows to the table's exact Arrow schema, checking NOT NULL the way
/// PostgreSQL reports it.
pub(crate) fn to_table_batch(
    def: &TableDef,
    tref: &TableRef,
    rows: RecordBatch,
) -> Result<RecordBatch> {
    if rows.num_columns() != def.columns.len() {
        return Err(Error::new(
            sqlstate::SYNTAX_ERROR,
            format!(
                "INSERT has {} expressions but table \"{}\" has {} columns",
                rows.num_columns(),
                tref.name,
                def.columns.len()
            ),
        ));
    }
    let mut columns = Vec::with_capacity(def.columns.len());
    for (column, array) in def.columns.iter().zip(rows.columns()) {
        let target = column.ty.arrow_type();
        let array = if array.data_type() == &target {
            array.clone()
        } else {
            cast(array, &target)?
        };
        if !column.nullable && array.null_count() > 0 {
            return Err(Error::new(
                "23502",
                format!(
                    "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
                    column.name, tref.name
                ),
            ));
        }
        columns.push(array);
    }
    Ok(RecordBatch::try_new_with_options(
        def.schema(),
        columns,
        &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.num_rows())),
    )?)
}

/// Splits target rows (user columns, row id) into row ids and rows; UPDATE
/// keeps the first new version of a row that a join matched twice.
fn split_rowids(
    target: &RecordBatch,
    def: &TableDef,
    dedupe: bool,
) -> Result<(Vec<RowId>, RecordBatch)> {
    let rowid_at = target.schema().index_of(ROWID_COLUMN).map_err(|_| {
        Error::new(
            sqlstate::INTERNAL_ERROR,
            "the target rows lack their row id",
        )
    })?;
    let ids = target
        .column(rowid_at)
        .as_any()
        .downcast_ref::<UInt64Array>()
        .ok_or_else(|| Error::new(sqlstate::INTERNAL_ERROR, "row ids are not UInt64"))?;
    let mut seen = HashSet::new();
    let keep: Vec<bool> = ids
        .values()
        .iter()
        .map(|id| !dedupe || seen.insert(*id))
        .collect();
    let kept = filter_record_batch(target, &BooleanArray::from(keep))?;
    let ids = kept
        .column(rowid_at)
        .as_any()
        .downcast_ref::<UInt64Array>()
        .expect("checked above")
        .values()
        .to_vec();
    let user: Vec<ArrayRef> = def
        .columns
        .iter()
        .map(|c| {
            kept.schema()
                .index_of(&c.name)
                .map(|i| kept.column(i).clone())
                .map_err(|_| {
                    Error::new(
                        sqlstate::INTERNAL_ERROR,
                        format!("target rows lack {}", c.name),
                    )
                })
        })
        .collect::<Result<_>>()?;
    let fields: Vec<Field> = def
        .columns
        .iter()
        .zip(&user)
        .map(|(c, a)| Field::new(&c.name, a.data_type().clone(), true))
        .collect();
    Ok((
        ids,
        RecordBatch::try_new(Arc::new(Schema::new(fields)), user)?,
    ))
}

/// Rows a transaction inserted: those with ids from `first` on.
pub(crate) fn rows_after(data: &TableData, def: &TableDef, first: RowId) -> Result<RecordBatch> {
    let mut parts = Vec::new();
    for segment in &data.segments {
        let ids = segment.rowids();
        if ids.is_empty() || segment.rowid_range().1 < first {
            continue;
        }
        let mask = BooleanArray::from(ids.values().iter().map(|&r| r >= first).collect::<Vec<_>>());
        let rows = filter_record_batch(&segment.batch, &mask)?;
        parts.push(RecordBatch::try_new(
            def.schema(),
            rows.columns()[..def.columns.len()].to_vec(),
        )?);
    }
    Ok(concat_batches(&def.schema(), &parts)?)
}

/// Evaluates RETURNING over the rows a statement writes or removes, before
/// it does: a RETURNING that fails (42702, a division by zero) fails the
/// statement with nothing written, as in PostgreSQL.
async fn returning(
    rows: RecordBatch,
    alias: &str,
    items: &[SelectItem],
    tag: Tag,
) -> Result<Output> {
    let list = items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("SELECT {list} FROM __ciab_returning AS {}", quote(alias));
    let statement = DFParser::parse_sql_with_dialect(&sql, &PostgreSqlDialect {})
        .map_err(Error::from)?
        .pop_front()
        .expect("one statement");
    let (statement, renames) = crate::names::unique_output_names(&statement)?;
    let ctx = scratch_context();
    ctx.register_batch("__ciab_returning", rows)?;
    let plan = ctx.state().statement_to_plan(statement).await?;
    let plan = ciab_extensions::integer_literals(plan)?;
    let df = ctx.execute_logical_plan(plan).await?;
    let schema = crate::names::rename(df.schema().inner(), &renames);
    let batches = df.collect().await?;
    let batches = batches
        .into_iter()
        .map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(rows_output(schema, batches, Some(tag)))
}
