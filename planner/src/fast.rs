//! Statements answered without DataFusion's planner.
//!
//! DataFusion turns even `SELECT v FROM kv WHERE k = $1` into a logical plan,
//! runs some thirty optimizer rules over it, builds a physical plan and
//! optimizes that too: a few hundred microseconds of CPU before the first
//! row, where PostgreSQL answers the whole round trip in fifty. The
//! statements that dominate transactional traffic need none of it:
//!
//! ```text
//!   SELECT 1, 'ok'                                    constants
//!   SELECT a, b FROM t WHERE k1 = $1 AND k2 = 'x'     all columns of a unique index
//!   SELECT a FROM t WHERE k = $1 FOR UPDATE           the same, the row locked
//!   INSERT INTO t (a, b) VALUES ($1, 2), ($3, 4)      parameters and literals
//!   UPDATE t SET a = $1, b = NULL WHERE k = $2        a unique index's columns
//!   UPDATE t SET n = n + 1 WHERE k = $1               a counter: an integer
//!                                                     column plus or minus a value
//!   DELETE FROM t WHERE k1 = $1 AND k2 = $2           the same
//! ```
//!
//! Each is recognised on the syntax tree and answered from the pinned state:
//! the lookup through the table's unique index, the insert, update and
//! delete as the same write operations the planned path sends (an update is
//! the row's delete and its new version's insert), with the same casts,
//! checks and foreign-key actions.
//! Recognition is strict. Any other clause, a name that is not a plain
//! table, a value whose type would need PostgreSQL's coercion rules, a column
//! DEFAULT to evaluate: all of these go to the full planner, which stays the
//! reference for what a statement means. `sql-tests/slt/fast_path.slt` runs
//! each shape beside a near twin that takes the planned path. EXPLAIN names
//! the fast path where a statement takes it; EXPLAIN ANALYZE runs the
//! planned path, whose operators it has metrics for.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use ciab_extensions::integer_literal;
use ciab_storage::{PgType, RowId, Rows, TableDef, TableRef, WriteOp};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::CastOptions;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{
    AssignmentTarget, BinaryOperator, Delete, Expr as SqlExpr, FromTable, Ident, Insert,
    LockClause, ObjectName, Parens, Query, Select, SelectItem, SetExpr, Statement, TableFactor,
    TableObject, TableWithJoins, UnaryOperator, Update, Value as SqlValue, Values,
    WildcardAdditionalOptions,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;

use crate::dml::to_table_batch;
use crate::error::Result;
use crate::names::{normalize, pg_name};
use crate::provider::unique_lookup;
use crate::session::{Output, Session, Tag, rows_output};
use crate::types::conform_rows;

/// Casts as DataFusion's CAST runs them: a value that does not convert is an
/// error, never a NULL.
const CAST_STRICT: CastOptions = CastOptions {
    safe: false,
    format_options: datafusion::arrow::util::display::FormatOptions::new(),
};

/// A value as the type `ty`, cast as [`CAST_STRICT`] casts; one of that
/// type already (the usual parameter) as it is, without the arrays a cast
/// builds.
fn cast_strict(value: ScalarValue, ty: &DataType) -> datafusion::error::Result<ScalarValue> {
    match value.data_type() == *ty {
        true => Ok(value),
        false => value.cast_to_with_options(ty, &CAST_STRICT),
    }
}

/// A value a statement names: a literal, or a parameter (0-based).
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Literal(ScalarValue),
    Param(usize),
}

impl Value {
    /// The value itself, or the parameter's; `None` for a parameter the
    /// statement was not given.
    fn resolve(&self, param: impl Fn(usize) -> Option<ScalarValue>) -> Option<ScalarValue> {
        match self {
            Value::Literal(v) => Some(v.clone()),
            Value::Param(i) => param(*i),
        }
    }
}

/// A recognised statement, resolved against the pinned catalog.
pub(crate) enum Fast {
    Constants {
        schema: SchemaRef,
        values: Vec<ScalarValue>,
    },
    Lookup {
        table: TableRef,
        index: String,
        def: TableDef,
        /// Columns of the unique index, and the value each must equal.
        key: Vec<(usize, Value)>,
        /// Table columns in output order.
        projection: Vec<usize>,
        schema: SchemaRef,
        params: Vec<Field>,
        /// FOR UPDATE or one of its kin: in a transaction block the row
        /// found is locked as `row_locks` locks rows.
        locks: bool,
    },
    Insert {
        table: TableRef,
        def: TableDef,
        /// One value per table column, per row; `None` for columns the
        /// statement leaves out (they have no DEFAULT, so they are NULL).
        rows: Vec<Vec<Option<Value>>>,
        params: Vec<Field>,
    },
    Update {
        table: TableRef,
        index: String,
        def: TableDef,
        key: Vec<(usize, Value)>,
        /// The columns SET assigns, and what.
        assigned: Vec<(usize, Assigned)>,
        params: Vec<Field>,
    },
    Delete {
        table: TableRef,
        index: String,
        def: TableDef,
        key: Vec<(usize, Value)>,
        params: Vec<Field>,
    },
}

/// What SET gives a column.
pub(crate) enum Assigned {
    Value(Value),
    /// `c = c + by` (`c = c - by` when `minus`), in integers.
    Step {
        by: Value,
        minus: bool,
    },
}

/// What a unique index lookup found.
enum Found {
    Row(RowId),
    Nothing,
    /// A parameter is missing, or a value does not convert to its column's
    /// type: the planner decides.
    Undecided,
}

impl Fast {
    pub(crate) fn describe(&self) -> (Vec<Field>, Option<SchemaRef>) {
        match self {
            Fast::Constants { schema, .. } => (vec![], Some(schema.clone())),
            Fast::Lookup { schema, params, .. } => (params.clone(), Some(schema.clone())),
            Fast::Insert { params, .. }
            | Fast::Update { params, .. }
            | Fast::Delete { params, .. } => (params.clone(), None),
        }
    }

    /// What EXPLAIN says about a statement that skips the planner.
    pub(crate) fn explain(&self) -> Vec<String> {
        match self {
            Fast::Constants { values, .. } => {
                vec![format!(
                    "Fast path: {} constant(s), no planning",
                    values.len()
                )]
            }
            Fast::Lookup {
                table,
                index,
                def,
                key,
                locks,
                ..
            } => {
                vec![format!(
                    "Fast path: unique index lookup on {} using {index} ({}){}",
                    table.name,
                    key_columns(def, key),
                    if *locks {
                        ", row locked in a block"
                    } else {
                        ""
                    }
                )]
            }
            Fast::Update {
                table,
                index,
                def,
                key,
                ..
            } => vec![format!(
                "Fast path: update by unique index on {} using {index} ({})",
                table.name,
                key_columns(def, key)
            )],
            Fast::Delete {
                table,
                index,
                def,
                key,
                ..
            } => vec![format!(
                "Fast path: delete by unique index on {} using {index} ({})",
                table.name,
                key_columns(def, key)
            )],
            Fast::Insert { table, rows, .. } => {
                vec![format!(
                    "Fast path: insert {} row(s) into {}",
                    rows.len(),
                    table.name
                )]
            }
        }
    }
}

impl Session {
    /// The statement as a [`Fast`] one, if it has one of the shapes above.
    pub(crate) fn fast_plan(&self, statement: &DfStatement) -> Option<Fast> {
        let DfStatement::Statement(statement) = statement else {
            return None;
        };
        match statement.as_ref() {
            Statement::Query(query) => {
                let select = plain_select(query)?;
                match select.from.as_slice() {
                    [] if query.locks.is_empty() => constants(select),
                    [from] => self.lookup(select, from, &query.locks),
                    _ => None,
                }
            }
            Statement::Insert(insert) => self.insert_values(insert),
            Statement::Update(update) => self.update_by_key(update),
            Statement::Delete(delete) => self.delete_by_key(delete),
            _ => None,
        }
    }

    /// Runs a recognised statement; `None` when the planner must decide
    /// after all: a parameter is missing, or a lookup key's value does not
    /// convert to the column's type (an inserted value that does not is an
    /// error, as the planner's strict cast makes it).
    pub(crate) async fn run_fast(
        &mut self,
        fast: Fast,
        params: Option<&ParamValues>,
    ) -> Result<Option<Output>> {
        let param = |i: usize| -> Option<ScalarValue> {
            match params? {
                ParamValues::List(list) => list.get(i).map(|p| p.value.clone()),
                ParamValues::Map(_) => None,
            }
        };
        match fast {
            Fast::Constants { schema, values } => {
                let columns = values
                    .iter()
                    .map(|v| v.to_array())
                    .collect::<datafusion::error::Result<Vec<_>>>()?;
                let batch = RecordBatch::try_new(schema.clone(), columns)?;
                Ok(Some(rows_output(schema, vec![batch], None)))
            }
            Fast::Lookup {
                def,
                key,
                projection,
                schema,
                locks,
                ..
            } => {
                let rowid = match self.find_by_key(&def, &key, param)? {
                    Found::Row(rowid) => rowid,
                    Found::Nothing => return Ok(Some(rows_output(schema, vec![], None))),
                    Found::Undecided => return Ok(None),
                };
                let state = self.catalogs.state();
                let data = state.table_data(def.id).expect("catalog and data agree");
                let row = data.rows(&[rowid])?;
                let columns = projection.iter().map(|&c| row.column(c).clone()).collect();
                let batch = RecordBatch::try_new(schema.clone(), columns)?;
                // Outside a block the lock would end with the statement.
                if locks && self.in_transaction() {
                    self.lock_rows(&def, vec![rowid]).await?;
                }
                Ok(Some(rows_output(schema, vec![batch], None)))
            }
            Fast::Insert {
                table, def, rows, ..
            } => {
                let mut columns = Vec::with_capacity(def.columns.len());
                for (c, column) in def.columns.iter().enumerate() {
                    let ty = column.ty.arrow_type();
                    let mut values = Vec::with_capacity(rows.len());
                    for row in &rows {
                        let value = match &row[c] {
                            None => ScalarValue::Null,
                            Some(value) => match value.resolve(param) {
                                Some(v) => v,
                                None => return Ok(None),
                            },
                        };
                        values.push(cast_strict(value, &ty)?);
                    }
                    columns.push(ScalarValue::iter_to_array(values)?);
                }
                let batch = RecordBatch::try_new(def.schema(), columns)?;
                let rows = conform_rows(&def, to_table_batch(&def, &table, batch)?)?;
                self.check_rows(&def, &rows)?;
                let count = rows.num_rows() as u64;
                self.write(vec![WriteOp::Insert {
                    table: def.id,
                    version: def.version,
                    rows: Rows::encode(&rows)?,
                }])
                .await?;
                Ok(Some(Output::Command(Tag::inserted(count))))
            }
            Fast::Update {
                table,
                def,
                key,
                assigned,
                ..
            } => {
                let updated = |rows| Ok(Some(Output::Command(Tag::new("UPDATE").with_rows(rows))));
                let rowid = match self.find_by_key(&def, &key, param)? {
                    Found::Row(rowid) => rowid,
                    Found::Nothing => return updated(0),
                    Found::Undecided => return Ok(None),
                };
                let state = self.catalogs.state();
                let data = state.table_data(def.id).expect("catalog and data agree");
                let row = data.rows(&[rowid])?;
                let mut columns: Vec<_> = (0..def.columns.len())
                    .map(|c| row.column(c).clone())
                    .collect();
                for (c, assigned) in &assigned {
                    let ty = def.columns[*c].ty.arrow_type();
                    let value = match assigned {
                        Assigned::Value(value) => match value.resolve(param) {
                            Some(value) => cast_strict(value, &ty)?,
                            None => return Ok(None),
                        },
                        Assigned::Step { by, minus } => {
                            let Some(by) = by.resolve(param) else {
                                return Ok(None);
                            };
                            let current = ScalarValue::try_from_array(row.column(*c), 0)?;
                            match stepped(&current, &by, *minus)? {
                                Some(value) => cast_strict(value, &ty)
                                    .map_err(|_| out_of_range(&def.columns[*c].ty))?,
                                None => return Ok(None),
                            }
                        }
                    };
                    columns[*c] = value.to_array()?;
                }
                let batch = RecordBatch::try_new(def.schema(), columns)?;
                let rows = conform_rows(&def, to_table_batch(&def, &table, batch)?)?;
                self.check_rows(&def, &rows)?;
                self.write_update(&def, vec![rowid], &rows).await?;
                updated(1)
            }
            Fast::Delete { def, key, .. } => {
                let deleted = |rows| Ok(Some(Output::Command(Tag::new("DELETE").with_rows(rows))));
                let rowid = match self.find_by_key(&def, &key, param)? {
                    Found::Row(rowid) => rowid,
                    Found::Nothing => return deleted(0),
                    Found::Undecided => return Ok(None),
                };
                self.write(vec![WriteOp::Delete {
                    table: def.id,
                    version: def.version,
                    rowids: vec![rowid],
                }])
                .await?;
                deleted(1)
            }
        }
    }

    /// The row of `def` whose unique key `key` has the values the statement
    /// gives it.
    fn find_by_key(
        &self,
        def: &TableDef,
        key: &[(usize, Value)],
        param: impl Fn(usize) -> Option<ScalarValue>,
    ) -> Result<Found> {
        let mut values = Vec::with_capacity(key.len());
        for (column, value) in key {
            let Some(value) = value.resolve(&param) else {
                return Ok(Found::Undecided);
            };
            if value.is_null() {
                // `k = NULL` is never true.
                return Ok(Found::Nothing);
            }
            let ty = def.columns[*column].ty.arrow_type();
            match cast_strict(value, &ty) {
                Ok(v) => values.push(v),
                Err(_) => return Ok(Found::Undecided),
            }
        }
        self.record_read(def.id);
        let state = self.catalogs.state();
        let data = state.table_data(def.id).expect("catalog and data agree");
        let columns: Vec<usize> = key.iter().map(|(c, _)| *c).collect();
        Ok(match unique_lookup(data, &columns, values)? {
            Some(rowid) => Found::Row(rowid),
            None => Found::Nothing,
        })
    }

    /// `SELECT columns FROM table WHERE` equalities on every column of one
    /// unique index, with or without FOR UPDATE and its kin.
    fn lookup(&self, select: &Select, from: &TableWithJoins, locks: &[LockClause]) -> Option<Fast> {
        let (name, alias) = plain_table(from)?;
        let (tref, def) = self.plain_table_def(name)?;
        let qualifier = alias.unwrap_or_else(|| tref.name.clone());
        // `FOR UPDATE OF x` naming anything else is the planner's to judge.
        let names_this_table = |of: &ObjectName| match of.0.as_slice() {
            [part] => part.as_ident().is_some_and(|i| normalize(i) == qualifier),
            _ => false,
        };
        if !locks
            .iter()
            .all(|l| l.of.as_ref().is_none_or(names_this_table))
        {
            return None;
        }
        let column = |expr: &SqlExpr| column_of(&def, &qualifier, expr);

        let mut projection = Vec::new();
        let mut names = Vec::new();
        for item in &select.projection {
            match item {
                SelectItem::Wildcard(options)
                    if *options == WildcardAdditionalOptions::default() =>
                {
                    projection.extend(0..def.columns.len());
                    names.extend(def.columns.iter().map(|c| c.name.clone()));
                }
                SelectItem::UnnamedExpr(expr) => {
                    projection.push(column(expr)?);
                    names.push(pg_name(expr));
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    projection.push(column(expr)?);
                    names.push(normalize(alias));
                }
                _ => return None,
            }
        }
        let (index, key) = unique_key(&def, &qualifier, select.selection.as_ref()?)?;
        let params = param_types(key.iter().map(|(c, v)| (*c, v)), &def)?;
        let table_schema = def.schema();
        let schema = Arc::new(Schema::new(
            projection
                .iter()
                .zip(names)
                .map(|(&c, name)| Field::clone(table_schema.field(c)).with_name(name))
                .collect::<Vec<_>>(),
        ));
        Some(Fast::Lookup {
            table: tref,
            index,
            def,
            key,
            projection,
            schema,
            params,
            locks: !locks.is_empty(),
        })
    }

    /// `INSERT INTO table [(columns)] VALUES (...), ...` of literals and
    /// parameters, with every left-out column free of a DEFAULT.
    fn insert_values(&self, insert: &Insert) -> Option<Fast> {
        let TableObject::TableName(name) = &insert.table else {
            return None;
        };
        let rows = plain_insert_rows(insert)?;
        let (table, def) = self.plain_table_def(name)?;
        let targets = crate::dml::insert_targets(&insert.columns, &def).ok()?;
        let mut seen = vec![false; def.columns.len()];
        for &t in &targets {
            if std::mem::replace(&mut seen[t], true) {
                return None;
            }
        }
        if def
            .columns
            .iter()
            .zip(&seen)
            .any(|(c, &given)| !given && c.default.is_some())
        {
            return None;
        }
        let mut values = Vec::with_capacity(rows.len());
        for row in rows {
            if row.content.len() != targets.len() {
                return None;
            }
            let mut out = vec![None; def.columns.len()];
            for (&t, expr) in targets.iter().zip(&row.content) {
                let v = value(expr)?;
                if !insert_fits(&v, &def.columns[t].ty) {
                    return None;
                }
                out[t] = Some(v);
            }
            values.push(out);
        }
        let uses = values.iter().flat_map(|row| {
            row.iter()
                .enumerate()
                .filter_map(|(c, v)| Some((c, v.as_ref()?)))
        });
        let params = param_types(uses, &def)?;
        Some(Fast::Insert {
            table,
            def,
            rows: values,
            params,
        })
    }

    /// `UPDATE table SET column = value, ... WHERE` equalities on every
    /// column of one unique index, each value a literal or a parameter.
    fn update_by_key(&self, update: &Update) -> Option<Fast> {
        if !plain_update(update) {
            return None;
        }
        let (name, alias) = plain_table(&update.table)?;
        let (table, def) = self.plain_table_def(name)?;
        let qualifier = alias.unwrap_or_else(|| table.name.clone());
        let (index, key) = unique_key(&def, &qualifier, update.selection.as_ref()?)?;
        let mut seen = vec![false; def.columns.len()];
        let mut assigned = Vec::with_capacity(update.assignments.len());
        for assignment in &update.assignments {
            let AssignmentTarget::ColumnName(name) = &assignment.target else {
                return None;
            };
            let [part] = name.0.as_slice() else {
                return None;
            };
            let c = def.column_index(&normalize(part.as_ident()?))?;
            // Assigning a column twice is an error the planner reports.
            if std::mem::replace(&mut seen[c], true) {
                return None;
            }
            let ty = &def.columns[c].ty;
            let v = match value(&assignment.value) {
                Some(v) if insert_fits(&v, ty) => Assigned::Value(v),
                Some(_) => return None,
                None => step(&def, &qualifier, c, &assignment.value)?,
            };
            assigned.push((c, v));
        }
        let assigned_values = assigned.iter().map(|(c, a)| match a {
            Assigned::Value(v) | Assigned::Step { by: v, .. } => (*c, v),
        });
        let uses = key.iter().map(|(c, v)| (*c, v)).chain(assigned_values);
        let params = param_types(uses, &def)?;
        Some(Fast::Update {
            table,
            index,
            def,
            key,
            assigned,
            params,
        })
    }

    /// `DELETE FROM table WHERE` equalities on every column of one unique
    /// index.
    fn delete_by_key(&self, delete: &Delete) -> Option<Fast> {
        let from = plain_delete(delete)?;
        let (name, alias) = plain_table(from)?;
        let (table, def) = self.plain_table_def(name)?;
        let qualifier = alias.unwrap_or_else(|| table.name.clone());
        let (index, key) = unique_key(&def, &qualifier, delete.selection.as_ref()?)?;
        let params = param_types(key.iter().map(|(c, v)| (*c, v)), &def)?;
        Some(Fast::Delete {
            table,
            index,
            def,
            key,
            params,
        })
    }

    /// The definition of the table a name resolves to; `None` for views,
    /// missing tables and names the planner should report on.
    fn plain_table_def(&self, name: &ObjectName) -> Option<(TableRef, TableDef)> {
        let tref = self.table_ref(name).ok()?;
        let state = self.catalogs.state();
        let def = state.catalog.table(&tref)?.clone();
        Some((tref, def))
    }
}

/// `SELECT` of literals without FROM: `SELECT 1`, `SELECT 'ok' AS status`.
fn constants(select: &Select) -> Option<Fast> {
    // `SELECT 1 WHERE ...` may return no row: the planner decides.
    if select.selection.is_some() {
        return None;
    }
    let mut fields = Vec::new();
    let mut values = Vec::new();
    for item in &select.projection {
        let (expr, name) = match item {
            SelectItem::UnnamedExpr(e) => (e, pg_name(e)),
            SelectItem::ExprWithAlias { expr, alias } => (expr, normalize(alias)),
            _ => return None,
        };
        let Value::Literal(v) = value(expr)? else {
            return None;
        };
        if v.is_null() {
            return None;
        }
        fields.push(Field::new(name, v.data_type(), false));
        values.push(v);
    }
    Some(Fast::Constants {
        schema: Arc::new(Schema::new(fields)),
        values,
    })
}

/// The query's SELECT, if the query has no clause but a select list, one
/// FROM item, WHERE and locks (FOR UPDATE): no WITH, ORDER BY, LIMIT,
/// DISTINCT, GROUP BY...
/// Compared field by field against a parsed template, each struct taken
/// apart in full: a clause a later sqlparser adds fails to compile here
/// instead of going unnoticed, and nothing is cloned to compare (this runs
/// on every statement).
fn plain_select(query: &Query) -> Option<&Select> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let SetExpr::Select(template) = SELECT_TEMPLATE.body.as_ref() else {
        unreachable!("template is a SELECT");
    };
    let Select {
        select_token: _,
        optimizer_hints,
        distinct,
        select_modifiers,
        top,
        top_before_distinct,
        projection: _,
        exclude,
        into,
        from: _,
        lateral_views,
        prewhere,
        selection: _,
        connect_by,
        group_by,
        cluster_by,
        distribute_by,
        sort_by,
        having,
        named_window,
        qualify,
        window_before_qualify,
        value_table_mode,
        flavor,
    } = select.as_ref();
    let plain = *optimizer_hints == template.optimizer_hints
        && *distinct == template.distinct
        && *select_modifiers == template.select_modifiers
        && *top == template.top
        && *top_before_distinct == template.top_before_distinct
        && *exclude == template.exclude
        && *into == template.into
        && *lateral_views == template.lateral_views
        && *prewhere == template.prewhere
        && *connect_by == template.connect_by
        && *group_by == template.group_by
        && *cluster_by == template.cluster_by
        && *distribute_by == template.distribute_by
        && *sort_by == template.sort_by
        && *having == template.having
        && *named_window == template.named_window
        && *qualify == template.qualify
        && *window_before_qualify == template.window_before_qualify
        && *value_table_mode == template.value_table_mode
        && *flavor == template.flavor;
    (plain && plain_query(query, &SELECT_TEMPLATE, Locks::Allowed)).then_some(select.as_ref())
}

/// Whether [`plain_query`] lets a query have locking clauses.
#[derive(PartialEq)]
enum Locks {
    Allowed,
    Refused,
}

/// Whether a query has no clause its template lacks, its body (and, where
/// allowed, its locking clauses) aside.
fn plain_query(query: &Query, template: &Query, locks_allowed: Locks) -> bool {
    let Query {
        with,
        body: _,
        order_by,
        limit_clause,
        fetch,
        locks,
        for_clause,
        settings,
        format_clause,
        pipe_operators,
    } = query;
    *with == template.with
        && *order_by == template.order_by
        && *limit_clause == template.limit_clause
        && *fetch == template.fetch
        && (locks_allowed == Locks::Allowed || *locks == template.locks)
        && *for_clause == template.for_clause
        && *settings == template.settings
        && *format_clause == template.format_clause
        && *pipe_operators == template.pipe_operators
}

/// The rows of an `INSERT INTO t [(columns)] VALUES ...` with no clause its
/// template lacks, compared as `plain_select` compares.
fn plain_insert_rows(insert: &Insert) -> Option<&[Parens<Vec<SqlExpr>>]> {
    let template = &*INSERT_TEMPLATE;
    let Insert {
        insert_token: _,
        optimizer_hints,
        or,
        ignore,
        into,
        table: _,
        table_alias,
        columns: _,
        overwrite,
        source,
        assignments,
        partitioned,
        after_columns,
        has_table_keyword,
        on,
        returning,
        output,
        replace_into,
        priority,
        insert_alias,
        settings,
        format_clause,
        multi_table_insert_type,
        multi_table_into_clauses,
        multi_table_when_clauses,
        multi_table_else_clause,
    } = insert;
    let plain = *optimizer_hints == template.optimizer_hints
        && *or == template.or
        && *ignore == template.ignore
        && *into == template.into
        && *table_alias == template.table_alias
        && *overwrite == template.overwrite
        && *assignments == template.assignments
        && *partitioned == template.partitioned
        && *after_columns == template.after_columns
        && *has_table_keyword == template.has_table_keyword
        && *on == template.on
        && *returning == template.returning
        && *output == template.output
        && *replace_into == template.replace_into
        && *priority == template.priority
        && *insert_alias == template.insert_alias
        && *settings == template.settings
        && *format_clause == template.format_clause
        && *multi_table_insert_type == template.multi_table_insert_type
        && *multi_table_into_clauses == template.multi_table_into_clauses
        && *multi_table_when_clauses == template.multi_table_when_clauses
        && *multi_table_else_clause == template.multi_table_else_clause;
    let source = source.as_deref()?;
    let template = template.source.as_deref().expect("template has VALUES");
    let (
        SetExpr::Values(Values {
            explicit_row,
            value_keyword,
            rows,
        }),
        SetExpr::Values(blank),
    ) = (source.body.as_ref(), template.body.as_ref())
    else {
        return None;
    };
    (plain
        && plain_query(source, template, Locks::Refused)
        && *explicit_row == blank.explicit_row
        && *value_keyword == blank.value_keyword)
        .then_some(rows.as_slice())
}

/// Whether an UPDATE has no clause its template lacks: no FROM, RETURNING,
/// ORDER BY or LIMIT (its table, SET list and WHERE aside).
fn plain_update(update: &Update) -> bool {
    let template = &*UPDATE_TEMPLATE;
    let Update {
        update_token: _,
        optimizer_hints,
        table: _,
        assignments: _,
        from,
        selection: _,
        returning,
        output,
        or,
        order_by,
        limit,
    } = update;
    *optimizer_hints == template.optimizer_hints
        && *from == template.from
        && *returning == template.returning
        && *output == template.output
        && *or == template.or
        && *order_by == template.order_by
        && *limit == template.limit
}

/// The table of a DELETE with no clause its template lacks: one table
/// after FROM, no USING, RETURNING, ORDER BY or LIMIT.
fn plain_delete(delete: &Delete) -> Option<&TableWithJoins> {
    let template = &*DELETE_TEMPLATE;
    let Delete {
        delete_token: _,
        optimizer_hints,
        tables,
        from,
        using,
        selection: _,
        returning,
        output,
        order_by,
        limit,
    } = delete;
    let FromTable::WithFromKeyword(from) = from else {
        return None;
    };
    let [from] = from.as_slice() else {
        return None;
    };
    (*optimizer_hints == template.optimizer_hints
        && *tables == template.tables
        && *using == template.using
        && *returning == template.returning
        && *output == template.output
        && *order_by == template.order_by
        && *limit == template.limit)
        .then_some(from)
}

/// The names of a unique key's columns, for EXPLAIN.
fn key_columns(def: &TableDef, key: &[(usize, Value)]) -> String {
    let names: Vec<&str> = key
        .iter()
        .map(|(c, _)| def.columns[*c].name.as_str())
        .collect();
    names.join(", ")
}

/// A FROM item that is a plain table with an optional alias.
fn plain_table(from: &TableWithJoins) -> Option<(&ObjectName, Option<String>)> {
    let TableFactor::Table { name, alias, .. } = &from.relation else {
        return None;
    };
    if alias.as_ref().is_some_and(|a| !a.columns.is_empty()) {
        return None;
    }
    let mut shape = from.clone();
    let TableFactor::Table {
        name: blank_name,
        alias: blank_alias,
        ..
    } = &mut shape.relation
    else {
        unreachable!("cloned from a table");
    };
    *blank_name = ObjectName::from(vec![Ident::new("t")]);
    *blank_alias = None;
    (shape == *FROM_TEMPLATE).then(|| (name, alias.as_ref().map(|a| normalize(&a.name))))
}

/// The column of `def` an expression names, bare or qualified by the name
/// the statement gives the table.
fn column_of(def: &TableDef, qualifier: &str, expr: &SqlExpr) -> Option<usize> {
    let name = match expr {
        SqlExpr::Identifier(c) => c,
        SqlExpr::CompoundIdentifier(parts) => match parts.as_slice() {
            [q, c] if normalize(q) == qualifier => c,
            _ => return None,
        },
        _ => return None,
    };
    def.column_index(&normalize(name))
}

/// The unique index of which `selection` equates every column, and nothing
/// else, with a value (`k1 = $1 AND k2 = 'x'`): its name, and the values
/// in its columns' order.
fn unique_key(
    def: &TableDef,
    qualifier: &str,
    selection: &SqlExpr,
) -> Option<(String, Vec<(usize, Value)>)> {
    let column = |expr: &SqlExpr| column_of(def, qualifier, expr);
    let mut equalities: HashMap<usize, Value> = HashMap::new();
    let mut conjuncts = vec![selection];
    while let Some(expr) = conjuncts.pop() {
        match expr {
            SqlExpr::Nested(inner) => conjuncts.push(inner),
            SqlExpr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => conjuncts.extend([left.as_ref(), right.as_ref()]),
            SqlExpr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } => {
                let (c, v) = match (column(left), column(right)) {
                    (Some(c), None) => (c, value(right)?),
                    (None, Some(c)) => (c, value(left)?),
                    _ => return None,
                };
                if !key_fits(&v, &def.columns[c].ty) || equalities.insert(c, v).is_some() {
                    return None;
                }
            }
            _ => return None,
        }
    }
    let index = def.indexes.iter().filter(|i| i.unique).find(|i| {
        i.columns.len() == equalities.len()
            && i.columns.iter().all(|c| {
                def.column_index(c)
                    .is_some_and(|c| equalities.contains_key(&c))
            })
    })?;
    let key = index
        .columns
        .iter()
        .map(|c| {
            let c = def.column_index(c).expect("index columns exist");
            (c, equalities[&c].clone())
        })
        .collect();
    Some((index.name.clone(), key))
}

/// A literal in the type the planner gives it, or a parameter.
fn value(expr: &SqlExpr) -> Option<Value> {
    match expr {
        SqlExpr::Value(v) => match &v.value {
            SqlValue::Number(n, false) => {
                n.parse().ok().map(|i| Value::Literal(integer_literal(i)))
            }
            SqlValue::SingleQuotedString(s) => {
                Some(Value::Literal(ScalarValue::Utf8(Some(s.clone()))))
            }
            SqlValue::Boolean(b) => Some(Value::Literal(ScalarValue::Boolean(Some(*b)))),
            SqlValue::Null => Some(Value::Literal(ScalarValue::Null)),
            SqlValue::Placeholder(p) => {
                let n: usize = p.strip_prefix('$')?.parse().ok()?;
                n.checked_sub(1).map(Value::Param)
            }
            _ => None,
        },
        SqlExpr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            SqlExpr::Value(v) => match &v.value {
                SqlValue::Number(n, false) => format!("-{n}")
                    .parse()
                    .ok()
                    .map(|i| Value::Literal(integer_literal(i))),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// `c + v` or `c - v` assigned to `c` itself, an integer column, where `v`
/// is an integer literal or a parameter (which takes `c`'s type, as
/// PostgreSQL infers it).
fn step(def: &TableDef, qualifier: &str, c: usize, expr: &SqlExpr) -> Option<Assigned> {
    let SqlExpr::BinaryOp { left, op, right } = expr else {
        return None;
    };
    let minus = match op {
        BinaryOperator::Plus => false,
        BinaryOperator::Minus => true,
        _ => return None,
    };
    let integer = matches!(
        def.columns[c].ty,
        PgType::Int2 | PgType::Int4 | PgType::Int8
    );
    if !integer || column_of(def, qualifier, left)? != c {
        return None;
    }
    let by = value(right)?;
    match &by {
        Value::Param(_) | Value::Literal(ScalarValue::Int32(_) | ScalarValue::Int64(_)) => {
            Some(Assigned::Step { by, minus })
        }
        Value::Literal(_) => None,
    }
}

/// `current + by` (or minus) as PostgreSQL's integer operators work it
/// out: in the wider of the two types, failing with that type's range
/// error. `None` for operands other than integers: the planner decides.
fn stepped(current: &ScalarValue, by: &ScalarValue, minus: bool) -> Result<Option<ScalarValue>> {
    let integer = |v: &ScalarValue| match v {
        ScalarValue::Int16(v) => Some((v.map(i64::from), PgType::Int2)),
        ScalarValue::Int32(v) => Some((v.map(i64::from), PgType::Int4)),
        ScalarValue::Int64(v) => Some((*v, PgType::Int8)),
        _ => None,
    };
    let (Some((a, a_ty)), Some((b, b_ty))) = (integer(current), integer(by)) else {
        return Ok(None);
    };
    let wider = |ty: &PgType| match ty {
        PgType::Int2 => 2,
        PgType::Int4 => 4,
        _ => 8,
    };
    let ty = if wider(&a_ty) >= wider(&b_ty) {
        a_ty
    } else {
        b_ty
    };
    let (Some(a), Some(b)) = (a, b) else {
        return Ok(Some(ScalarValue::Int64(None)));
    };
    let sum = match minus {
        false => a.checked_add(b),
        true => a.checked_sub(b),
    };
    let sum = sum.ok_or_else(|| out_of_range(&PgType::Int8))?;
    let fits = match ty {
        PgType::Int2 => i16::try_from(sum).is_ok(),
        PgType::Int4 => i32::try_from(sum).is_ok(),
        _ => true,
    };
    match fits {
        true => Ok(Some(ScalarValue::Int64(Some(sum)))),
        false => Err(out_of_range(&ty)),
    }
}

/// PostgreSQL's error for a value outside an integer type's range.
fn out_of_range(ty: &PgType) -> crate::error::Error {
    crate::error::Error::new(
        crate::error::sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
        format!("{} out of range", ty.sql_name()),
    )
}

/// Whether a key value compares with the column as PostgreSQL would by
/// converting it to the column's type: integers to integer columns, strings
/// to text columns. Other pairs involve coercions the planner decides.
fn key_fits(value: &Value, ty: &PgType) -> bool {
    match value {
        Value::Param(_) => matches!(
            ty,
            PgType::Int2 | PgType::Int4 | PgType::Int8 | PgType::Text | PgType::Varchar(_)
        ),
        Value::Literal(ScalarValue::Null) => true,
        Value::Literal(ScalarValue::Int32(_) | ScalarValue::Int64(_)) => {
            matches!(ty, PgType::Int2 | PgType::Int4 | PgType::Int8)
        }
        Value::Literal(ScalarValue::Utf8(_)) => matches!(ty, PgType::Text | PgType::Varchar(_)),
        Value::Literal(_) => false,
    }
}

/// Whether an inserted value converts to the column's type by the cast the
/// planner would use. Parameters arrive in the column's type already.
fn insert_fits(value: &Value, ty: &PgType) -> bool {
    let numeric = matches!(
        ty,
        PgType::Int2 | PgType::Int4 | PgType::Int8 | PgType::Float4 | PgType::Float8
    );
    let text = matches!(ty, PgType::Text | PgType::Varchar(_) | PgType::Bpchar(_));
    match value {
        Value::Param(_) | Value::Literal(ScalarValue::Null) => true,
        Value::Literal(ScalarValue::Int32(_) | ScalarValue::Int64(_)) => numeric,
        Value::Literal(ScalarValue::Utf8(_)) => numeric || text || *ty == PgType::Bool,
        Value::Literal(ScalarValue::Boolean(_)) => *ty == PgType::Bool,
        Value::Literal(_) => false,
    }
}

/// Parameter types in `$n` order, each the type of the column it is
/// compared with or stored in. `None` if numbering has gaps or one
/// parameter meets columns of two types: the planner decides those.
fn param_types<'a>(
    uses: impl Iterator<Item = (usize, &'a Value)>,
    def: &TableDef,
) -> Option<Vec<Field>> {
    let mut types: Vec<Option<Field>> = Vec::new();
    for (column, value) in uses {
        let Value::Param(i) = value else { continue };
        if types.len() <= *i {
            types.resize(i + 1, None);
        }
        // The column's field: its PostgreSQL type (uuid, varchar) too.
        let ty = def.columns[column].field();
        match &types[*i] {
            Some(existing) if existing.data_type() != ty.data_type() => return None,
            _ => types[*i] = Some(ty),
        }
    }
    types.into_iter().collect()
}

fn parse_one(sql: &str) -> Statement {
    match DFParser::parse_sql_with_dialect(sql, &PostgreSqlDialect {})
        .expect("template parses")
        .pop_front()
    {
        Some(DfStatement::Statement(s)) => *s,
        _ => unreachable!("template is one SQL statement"),
    }
}

/// `SELECT 1`: the shape of a plain SELECT, its select list aside.
static SELECT_TEMPLATE: LazyLock<Query> = LazyLock::new(|| {
    let Statement::Query(query) = parse_one("SELECT 1") else {
        unreachable!("template is a query");
    };
    *query
});

/// `FROM t`: the shape of a plain table reference.
static FROM_TEMPLATE: LazyLock<TableWithJoins> = LazyLock::new(|| {
    let Statement::Query(query) = parse_one("SELECT 1 FROM t") else {
        unreachable!("template is a query");
    };
    let SetExpr::Select(select) = *query.body else {
        unreachable!("template is a SELECT");
    };
    select.from.into_iter().next().expect("template has FROM")
});

/// `UPDATE t SET a = 1 WHERE k = 1`: the shape of a plain UPDATE.
static UPDATE_TEMPLATE: LazyLock<Update> = LazyLock::new(|| {
    let Statement::Update(update) = parse_one("UPDATE t SET a = 1 WHERE k = 1") else {
        unreachable!("template is an UPDATE");
    };
    update
});

/// `DELETE FROM t WHERE k = 1`: the shape of a plain DELETE.
static DELETE_TEMPLATE: LazyLock<Delete> = LazyLock::new(|| {
    let Statement::Delete(delete) = parse_one("DELETE FROM t WHERE k = 1") else {
        unreachable!("template is a DELETE");
    };
    delete
});

/// `INSERT INTO t VALUES (1)`: the shape of a plain INSERT ... VALUES.
static INSERT_TEMPLATE: LazyLock<Insert> = LazyLock::new(|| {
    let Statement::Insert(insert) = parse_one("INSERT INTO t VALUES (1)") else {
        unreachable!("template is an INSERT");
    };
    insert
});
