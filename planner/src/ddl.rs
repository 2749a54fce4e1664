//! CREATE, DROP, ALTER, TRUNCATE and EXPLAIN.
//!
//! DDL statements become catalog commands: validated here against the
//! pinned catalog for clear errors, and validated again by the state machine,
//! which is the authority when two sessions race.

use std::sync::Arc;

use ciab_storage::{
    AlterOp, ColumnDef, Command, IndexDef, PgType, Rows, SequenceDef, TableDef, TableId, TableRef,
    ViewDef, encode_batch,
};
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{DFSchema, ParamValues};
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::{ExplainStatement, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{
    AlterColumnOperation, AlterTable, AlterTableOperation, ColumnOption, CreateIndex, CreateTable,
    CreateTableLikeDefaults, CreateTableLikeKind, CreateView, DropBehavior, Expr as SqlExpr,
    ObjectName, ObjectType, RenameTableNameKind, SchemaName, SequenceOptions, Statement,
    TableConstraint, Truncate, UnaryOperator, VacuumStatement, Value,
};

use crate::error::{Error, Result, sqlstate};
use crate::names::normalize;
use crate::pg_catalog::{INFORMATION_SCHEMA, PG_CATALOG};
use crate::session::{Output, Session, Tag, explain_schema, rows_output};
use crate::system::CIAB_SCHEMA;
use crate::types::pg_type;

fn done(tag: &str) -> Result<Output> {
    Ok(Output::Command(Tag::new(tag)))
}

fn index_columns(columns: &[datafusion::sql::sqlparser::ast::IndexColumn]) -> Result<Vec<String>> {
    columns
        .iter()
        .map(|c| match &c.column.expr {
            SqlExpr::Identifier(i) => Ok(normalize(i)),
            other => Err(Error::unsupported(format!(
                "an index on the expression {other}"
            ))),
        })
        .collect()
}

impl Session {
    pub(crate) async fn ddl(&mut self, statement: &Statement) -> Result<Output> {
        match statement {
            Statement::CreateTable(create) => self.create_table(create).await,
            Statement::CreateView(view) => self.create_view(view).await,
            Statement::CreateIndex(index) => self.create_index(index).await,
            Statement::AlterTable(alter) => self.alter_table(alter).await,
            Statement::CreateSchema {
                schema_name,
                if_not_exists,
                ..
            } => {
                let SchemaName::Simple(name) = schema_name else {
                    return Err(Error::unsupported("CREATE SCHEMA ... AUTHORIZATION"));
                };
                let name = object_name(name)?;
                // The built-in schemas exist in every database.
                if [PG_CATALOG, INFORMATION_SCHEMA, CIAB_SCHEMA].contains(&name.as_str()) {
                    if *if_not_exists {
                        return done("CREATE SCHEMA");
                    }
                    return Err(Error::new(
                        sqlstate::DUPLICATE_SCHEMA,
                        format!("schema \"{name}\" already exists"),
                    ));
                }
                self.write_catalog(Command::CreateSchema {
                    database: self.database(),
                    name,
                    if_not_exists: *if_not_exists,
                })
                .await?;
                done("CREATE SCHEMA")
            }
            Statement::CreateSequence {
                temporary,
                if_not_exists,
                name,
                data_type,
                sequence_options,
                owned_by,
            } => {
                if *temporary {
                    return Err(Error::unsupported("CREATE TEMPORARY SEQUENCE"));
                }
                if owned_by.is_some() {
                    return Err(Error::unsupported("CREATE SEQUENCE ... OWNED BY"));
                }
                let ty = match data_type {
                    None => PgType::Int8,
                    Some(t) => match pg_type(t)? {
                        (ty @ (PgType::Int2 | PgType::Int4 | PgType::Int8), false) => ty,
                        _ => {
                            return Err(Error::new(
                                sqlstate::INVALID_PARAMETER_VALUE,
                                "sequence type must be smallint, integer, or bigint",
                            ));
                        }
                    },
                };
                self.write_catalog(Command::CreateSequence {
                    sequence: self.table_ref(name)?,
                    def: sequence_def(ty, sequence_options)?,
                    owned_by: None,
                    if_not_exists: *if_not_exists,
                })
                .await?;
                done("CREATE SEQUENCE")
            }
            Statement::CreateDatabase {
                db_name,
                if_not_exists,
                ..
            } => {
                let name = object_name(db_name)?;
                if *if_not_exists && self.catalogs.state().catalog.databases.contains_key(&name) {
                    return done("CREATE DATABASE");
                }
                self.write_catalog(Command::CreateDatabase { name }).await?;
                done("CREATE DATABASE")
            }
            Statement::Drop {
                object_type,
                if_exists,
                names,
                cascade,
                ..
            } => self.drop(*object_type, *if_exists, names, *cascade).await,
            Statement::Truncate(truncate) => {
                let ids = self.truncate_targets(truncate)?;
                let ids = ids.into_iter().map(|(_, id)| id).collect();
                self.write_catalog(Command::Truncate { tables: ids })
                    .await?;
                done("TRUNCATE TABLE")
            }
            other => Err(Error::unsupported(first_words(&other.to_string()))),
        }
    }

    /// VACUUM: writes every table's rows still held in memory (and the log)
    /// to Parquet files and trims the log, the space ciab can reclaim; its
    /// ANALYZE has nothing to do, as ciab keeps no sampled statistics.
    pub(crate) async fn vacuum(&mut self, vacuum: &VacuumStatement) -> Result<Output> {
        if self.in_transaction() {
            return Err(crate::session::in_block("VACUUM"));
        }
        if let Some(name) = &vacuum.table_name {
            self.resolve_table(name)?;
        }
        self.engine.flush().await?;
        done("VACUUM")
    }

    /// TRUNCATE inside a transaction block: the rows go from the block's
    /// private state like a DELETE of every row, so ROLLBACK brings them
    /// back and others see them go only at COMMIT (pgbench -i does this).
    pub(crate) async fn truncate_in_transaction(&mut self, truncate: &Truncate) -> Result<Output> {
        for (table, _) in self.truncate_targets(truncate)? {
            let name = crate::names::quoted_relation(&table);
            let delete = self
                .parse_sql(&format!("DELETE FROM {name}"))?
                .pop()
                .expect("a DELETE parses as one statement");
            let DfStatement::Statement(delete) = delete else {
                unreachable!("DELETE is a sqlparser statement")
            };
            self.delete(&delete, None).await?;
        }
        done("TRUNCATE TABLE")
    }

    async fn create_table(&mut self, create: &CreateTable) -> Result<Output> {
        if create.temporary {
            return Err(Error::unsupported("CREATE TEMPORARY TABLE"));
        }
        if create.or_replace {
            return Err(Error::unsupported("CREATE OR REPLACE TABLE"));
        }
        let tref = self.table_ref(&create.name)?;
        let as_query = match &create.query {
            Some(q) => {
                let plan = self
                    .plan(
                        DfStatement::Statement(Box::new(Statement::Query(q.clone()))),
                        None,
                    )
                    .await?;
                Some(plan)
            }
            None => None,
        };
        let mut columns = Vec::new();
        let mut indexes: Vec<IndexDef> = Vec::new();
        let mut primary: Option<Vec<String>> = None;
        let mut foreign_keys = Vec::new();
        let mut checks = Vec::new();
        // serial columns: (column, its sequence), made with the table.
        let mut sequences: Vec<(String, String, PgType)> = Vec::new();
        // `(LIKE source)`: its columns first, with their types and NOT
        // NULL, and their defaults only with INCLUDING DEFAULTS, as in
        // PostgreSQL (a serial column's default then draws from the
        // source's sequence). Its keys, checks and indexes stay behind.
        if let Some(CreateTableLikeKind::Parenthesized(like) | CreateTableLikeKind::Plain(like)) =
            &create.like
        {
            if as_query.is_some() {
                return Err(Error::unsupported("CREATE TABLE with both LIKE and AS"));
            }
            let (_, source) = self.resolve_table(&like.name)?;
            let defaults = like.defaults == Some(CreateTableLikeDefaults::Including);
            columns.extend(source.columns.iter().map(|c| ColumnDef {
                default: c.default.clone().filter(|_| defaults),
                ..c.clone()
            }));
        }
        for column in &create.columns {
            let (mut def, constraints, serial) = self.column_def(column)?;
            let name = def.name.clone();
            if serial {
                let sequence = self.sequence_name(&tref, &name, &sequences);
                def.nullable = false;
                def.default = Some(crate::sequences::serial_default(&sequence));
                sequences.push((name.clone(), sequence, def.ty.clone()));
            }
            for option in constraints {
                match option {
                    ColumnOption::PrimaryKey(_) => {
                        if primary.replace(vec![name.clone()]).is_some() {
                            return Err(multiple_primary_keys(&tref));
                        }
                    }
                    ColumnOption::Unique(_) => indexes.push(IndexDef {
                        name: format!("{}_{}_key", tref.name, name),
                        columns: vec![name.clone()],
                        unique: true,
                        primary: false,
                    }),
                    ColumnOption::ForeignKey(fk) => {
                        foreign_keys.push(self.foreign_key_spec(&tref, fk, vec![name.clone()])?);
                    }
                    ColumnOption::Check(check) => checks.push(check),
                    other => return Err(Error::unsupported(format!("column constraint {other}"))),
                }
            }
            if columns.iter().any(|c: &ColumnDef| c.name == def.name) {
                return Err(Error::new(
                    sqlstate::DUPLICATE_COLUMN,
                    format!("column \"{name}\" specified more than once"),
                ));
            }
            columns.push(def);
        }
        if let Some(plan) = &as_query {
            if !columns.is_empty() {
                return Err(Error::unsupported("CREATE TABLE with both columns and AS"));
            }
            for field in plan.schema().fields() {
                columns.push(ColumnDef {
                    name: field.name().clone(),
                    // The tag tells uuid, json and varchar from text.
                    ty: PgType::of_field(field)
                        .map_or_else(|| pg_type_of(field.data_type()), Ok)?,
                    nullable: true,
                    default: None,
                });
            }
        }
        for constraint in &create.constraints {
            match constraint {
                TableConstraint::PrimaryKey(pk) => {
                    if primary.replace(index_columns(&pk.columns)?).is_some() {
                        return Err(multiple_primary_keys(&tref));
                    }
                }
                TableConstraint::Unique(u) => {
                    let cols = index_columns(&u.columns)?;
                    indexes.push(IndexDef {
                        name: u
                            .name
                            .as_ref()
                            .map(normalize)
                            .unwrap_or_else(|| format!("{}_{}_key", tref.name, cols.join("_"))),
                        columns: cols,
                        unique: true,
                        primary: false,
                    });
                }
                TableConstraint::ForeignKey(fk) => {
                    let columns = fk.columns.iter().map(normalize).collect();
                    foreign_keys.push(self.foreign_key_spec(&tref, fk, columns)?);
                }
                TableConstraint::Check(check) => checks.push(check),
                other => return Err(Error::unsupported(format!("table constraint {other}"))),
            }
        }
        if let Some(pk) = primary {
            for name in &pk {
                let column = columns
                    .iter_mut()
                    .find(|c| &c.name == name)
                    .ok_or_else(|| {
                        Error::new(
                            sqlstate::UNDEFINED_COLUMN,
                            format!("column \"{name}\" named in key does not exist"),
                        )
                    })?;
                column.nullable = false;
            }
            indexes.insert(
                0,
                IndexDef {
                    name: format!("{}_pkey", tref.name),
                    columns: pk,
                    unique: true,
                    primary: true,
                },
            );
        }
        for index in &indexes {
            for c in &index.columns {
                if !columns.iter().any(|col| &col.name == c) {
                    return Err(Error::new(
                        sqlstate::UNDEFINED_COLUMN,
                        format!("column \"{c}\" named in key does not exist"),
                    ));
                }
            }
        }
        if columns.is_empty() {
            return Err(Error::unsupported("a table without columns"));
        }
        let mut taken: Vec<String> = indexes.iter().map(|i| i.name.clone()).collect();
        let mut check_defs = Vec::new();
        for check in checks {
            if check.enforced == Some(false) {
                return Err(Error::unsupported("NOT ENFORCED check constraints"));
            }
            let def = self.check_def(
                &tref.name,
                &columns,
                check.name.as_ref(),
                &check.expr,
                &taken,
            )?;
            // A name already taken is refused (42710) where the state
            // machine adds the check, as for ALTER TABLE ADD CHECK.
            taken.push(def.name.clone());
            check_defs.push(def);
        }
        let time_series = crate::time_series::from_options(&create.table_options, &mut columns)?;
        let def = TableDef {
            id: TableId(0),
            columns,
            indexes,
            version: 0,
            time_series,
        };
        let create_table = Command::CreateTable {
            table: tref.clone(),
            def,
            if_not_exists: create.if_not_exists,
        };
        let applied = if sequences.is_empty() && foreign_keys.is_empty() && check_defs.is_empty() {
            self.write_catalog(create_table).await?
        } else {
            let exists = self
                .catalogs
                .state()
                .catalog
                .schema(&tref.database, &tref.schema)
                .is_some_and(|s| s.has_relation(&tref.name));
            if exists && create.if_not_exists {
                return done("CREATE TABLE");
            }
            let mut commands = vec![create_table];
            for (column, name, ty) in sequences {
                commands.push(Command::CreateSequence {
                    sequence: TableRef {
                        name,
                        ..tref.clone()
                    },
                    def: SequenceDef::new(ty),
                    owned_by: Some((tref.name.clone(), column)),
                    if_not_exists: false,
                });
            }
            commands.extend(check_defs.into_iter().map(|check| Command::AlterTable {
                table: tref.clone(),
                op: AlterOp::AddCheck {
                    check,
                    checked_below: 0,
                },
            }));
            commands.extend(foreign_keys.into_iter().map(|spec| Command::AlterTable {
                table: tref.clone(),
                op: AlterOp::AddForeignKey { spec },
            }));
            self.write_catalog_all(commands).await?
        };
        let Some(plan) = as_query else {
            return done("CREATE TABLE");
        };
        if applied.skipped {
            return done("CREATE TABLE AS");
        }
        self.pin();
        let (tref, def) = self.resolve_table(&create.name)?;
        let df = self.ctx.execute_logical_plan(plan).await?;
        let schema = df.schema().inner().clone();
        let rows =
            datafusion::arrow::compute::concat_batches(&schema, &self.collect_frame(df).await?)?;
        let rows = crate::dml::to_table_batch(&def, &tref, rows)?;
        let count = rows.num_rows() as u64;
        if count > 0 {
            self.write(vec![ciab_storage::WriteOp::Insert {
                table: def.id,
                version: def.version,
                rows: Rows::encode(&rows)?,
            }])
            .await?;
        }
        Ok(Output::Command(Tag::new("SELECT").with_rows(count)))
    }

    /// The name PostgreSQL gives a serial column's sequence:
    /// `table_column_seq`, with a number appended while that is taken.
    fn sequence_name(
        &self,
        table: &TableRef,
        column: &str,
        taken: &[(String, String, PgType)],
    ) -> String {
        let state = self.catalogs.state();
        let schema = state.catalog.schema(&table.database, &table.schema);
        let free = |name: &str| {
            name != table.name
                && !schema.is_some_and(|s| s.has_relation(name))
                && !taken.iter().any(|(_, n, _)| n == name)
        };
        let base = format!("{}_{column}_seq", table.name);
        if free(&base) {
            return base;
        }
        (1..)
            .map(|n| format!("{base}{n}"))
            .find(|name| free(name))
            .expect("some number is free")
    }

    /// A column from its definition: name, type, NULL / NOT NULL and
    /// DEFAULT. Constraints (PRIMARY KEY, UNIQUE, ...) are returned for the
    /// caller to place.
    fn column_def<'a>(
        &self,
        column: &'a datafusion::sql::sqlparser::ast::ColumnDef,
    ) -> Result<(ColumnDef, Vec<&'a ColumnOption>, bool)> {
        let (ty, serial) = pg_type(&column.data_type)?;
        let mut def = ColumnDef {
            name: normalize(&column.name),
            ty,
            nullable: true,
            default: None,
        };
        let mut constraints = Vec::new();
        for option in &column.options {
            match &option.option {
                ColumnOption::Null => {}
                ColumnOption::NotNull => def.nullable = false,
                ColumnOption::Default(expr) => {
                    self.check_default(expr)?;
                    def.default = Some(expr.to_string());
                }
                other => constraints.push(other),
            }
        }
        if serial && def.default.is_some() {
            return Err(Error::new(
                sqlstate::SYNTAX_ERROR,
                format!(
                    "multiple default values specified for column \"{}\"",
                    def.name
                ),
            ));
        }
        Ok((def, constraints, serial))
    }

    /// A DEFAULT must be an expression of constants and functions.
    fn check_default(&self, expr: &SqlExpr) -> Result<()> {
        self.ctx
            .state()
            .create_logical_expr(&expr.to_string(), &DFSchema::empty())
            .map(|_| ())
            .map_err(|e| {
                let mut e = Error::from(e);
                if e.sqlstate == sqlstate::UNDEFINED_COLUMN {
                    e = Error::new("0A000", "cannot use column reference in DEFAULT expression");
                }
                e
            })
    }

    async fn create_view(&mut self, view: &CreateView) -> Result<Output> {
        if view.materialized {
            return Err(Error::unsupported("CREATE MATERIALIZED VIEW"));
        }
        let tref = self.table_ref(&view.name)?;
        let plan = self
            .plan(
                DfStatement::Statement(Box::new(Statement::Query(view.query.clone()))),
                None,
            )
            .await?;
        let columns: Vec<String> = view.columns.iter().map(|c| normalize(&c.name)).collect();
        if columns.len() > plan.schema().fields().len() {
            return Err(Error::new(
                sqlstate::SYNTAX_ERROR,
                "CREATE VIEW specifies more column names than columns",
            ));
        }
        if view.if_not_exists
            && self
                .catalogs
                .state()
                .catalog
                .schema(&tref.database, &tref.schema)
                .is_some_and(|s| s.has_relation(&tref.name))
        {
            return done("CREATE VIEW");
        }
        self.write_catalog(Command::CreateView {
            view: tref,
            def: ViewDef {
                sql: view.query.to_string(),
                columns,
            },
            or_replace: view.or_replace,
        })
        .await?;
        done("CREATE VIEW")
    }

    async fn create_index(&mut self, index: &CreateIndex) -> Result<Output> {
        if index.predicate.is_some() {
            return Err(Error::unsupported("partial indexes"));
        }
        let (tref, _) = self.resolve_table(&index.table_name)?;
        let columns = index_columns(&index.columns)?;
        let name = match &index.name {
            Some(n) => object_name(n)?,
            None => format!("{}_{}_idx", tref.name, columns.join("_")),
        };
        self.write_catalog(Command::CreateIndex {
            table: tref,
            def: IndexDef {
                name,
                columns,
                unique: index.unique,
                primary: false,
            },
            if_not_exists: index.if_not_exists,
        })
        .await?;
        done("CREATE INDEX")
    }

    async fn alter_table(&mut self, alter: &AlterTable) -> Result<Output> {
        let tref = match self.resolve_table(&alter.name) {
            Ok((tref, _)) => tref,
            Err(e) if alter.if_exists && e.sqlstate == sqlstate::UNDEFINED_TABLE => {
                return done("ALTER TABLE");
            }
            Err(e) => return Err(e),
        };
        for operation in &alter.operations {
            let op = match operation {
                AlterTableOperation::AddColumn {
                    column_def,
                    if_not_exists,
                    ..
                } => {
                    let (column, constraints, serial) = self.column_def(column_def)?;
                    if serial {
                        return Err(Error::unsupported("ADD COLUMN of a serial column"));
                    }
                    if let Some(other) = constraints.first() {
                        return Err(Error::unsupported(format!("ADD COLUMN with {other}")));
                    }
                    let fill = match &column.default {
                        Some(sql) => Some(self.evaluate_once(sql, &column).await?),
                        None => None,
                    };
                    AlterOp::AddColumn {
                        column,
                        fill,
                        if_not_exists: *if_not_exists,
                    }
                }
                AlterTableOperation::DropColumn {
                    column_names,
                    if_exists,
                    ..
                } => {
                    let [name] = column_names.as_slice() else {
                        return Err(Error::unsupported("dropping several columns at once"));
                    };
                    AlterOp::DropColumn {
                        name: normalize(name),
                        if_exists: *if_exists,
                    }
                }
                AlterTableOperation::RenameColumn {
                    old_column_name,
                    new_column_name,
                } => AlterOp::RenameColumn {
                    from: normalize(old_column_name),
                    to: normalize(new_column_name),
                },
                AlterTableOperation::RenameTable { table_name } => {
                    let (RenameTableNameKind::As(name) | RenameTableNameKind::To(name)) =
                        table_name;
                    AlterOp::RenameTable {
                        to: object_name(name)?,
                    }
                }
                AlterTableOperation::AlterColumn { column_name, op } => {
                    let column = normalize(column_name);
                    match op {
                        AlterColumnOperation::SetNotNull => AlterOp::SetNotNull {
                            column,
                            not_null: true,
                        },
                        AlterColumnOperation::DropNotNull => AlterOp::SetNotNull {
                            column,
                            not_null: false,
                        },
                        AlterColumnOperation::SetDefault { value } => {
                            self.check_default(value)?;
                            AlterOp::SetDefault {
                                column,
                                default: Some(value.to_string()),
                            }
                        }
                        AlterColumnOperation::DropDefault => AlterOp::SetDefault {
                            column,
                            default: None,
                        },
                        other => {
                            return Err(Error::unsupported(format!("ALTER COLUMN {other}")));
                        }
                    }
                }
                AlterTableOperation::AddConstraint {
                    constraint: TableConstraint::PrimaryKey(pk),
                    ..
                } => AlterOp::AddPrimaryKey {
                    index: IndexDef {
                        name: pk
                            .name
                            .as_ref()
                            .map(normalize)
                            .unwrap_or_else(|| format!("{}_pkey", tref.name)),
                        columns: index_columns(&pk.columns)?,
                        unique: true,
                        primary: true,
                    },
                },
                AlterTableOperation::AddConstraint {
                    constraint: TableConstraint::Unique(u),
                    ..
                } => {
                    let columns = index_columns(&u.columns)?;
                    let def =
                        IndexDef {
                            name: u.name.as_ref().map(normalize).unwrap_or_else(|| {
                                format!("{}_{}_key", tref.name, columns.join("_"))
                            }),
                            columns,
                            unique: true,
                            primary: false,
                        };
                    self.write_catalog(Command::CreateIndex {
                        table: tref.clone(),
                        def,
                        if_not_exists: false,
                    })
                    .await?;
                    continue;
                }
                AlterTableOperation::AddConstraint {
                    constraint: TableConstraint::ForeignKey(fk),
                    not_valid,
                } => {
                    if *not_valid {
                        return Err(Error::unsupported("NOT VALID foreign keys"));
                    }
                    let columns = fk.columns.iter().map(normalize).collect();
                    AlterOp::AddForeignKey {
                        spec: self.foreign_key_spec(&tref, fk, columns)?,
                    }
                }
                AlterTableOperation::AddConstraint {
                    constraint: TableConstraint::Check(check),
                    not_valid,
                } => {
                    if *not_valid || check.enforced == Some(false) {
                        return Err(Error::unsupported(
                            "NOT VALID or NOT ENFORCED check constraints",
                        ));
                    }
                    self.add_check(&tref, check.name.as_ref(), &check.expr)
                        .await?;
                    continue;
                }
                AlterTableOperation::DropConstraint {
                    if_exists,
                    name,
                    drop_behavior,
                } => {
                    let name = normalize(name);
                    // Of a primary key or unique constraint (an index),
                    // CASCADE would drop the foreign keys that need it;
                    // without CASCADE they keep it (2BP01).
                    let is_index = self
                        .catalogs
                        .state()
                        .catalog
                        .table(&tref)
                        .is_some_and(|def| def.indexes.iter().any(|i| i.name == name));
                    if is_index && matches!(drop_behavior, Some(DropBehavior::Cascade)) {
                        return Err(Error::unsupported(
                            "DROP CONSTRAINT ... CASCADE of a primary key or unique constraint",
                        ));
                    }
                    AlterOp::DropConstraint {
                        name,
                        if_exists: *if_exists,
                    }
                }
                AlterTableOperation::SetOptionsParens { options } => {
                    match crate::time_series::new_retention(options)? {
                        Some(retention_us) => AlterOp::SetRetention { retention_us },
                        // Only PostgreSQL's heap parameters: nothing to change.
                        None => continue,
                    }
                }
                other => return Err(Error::unsupported(format!("ALTER TABLE {other}"))),
            };
            self.write_catalog(Command::AlterTable {
                table: tref.clone(),
                op,
            })
            .await?;
        }
        done("ALTER TABLE")
    }

    /// A DEFAULT evaluated once, as the value for existing rows.
    async fn evaluate_once(&self, sql: &str, column: &ColumnDef) -> Result<Vec<u8>> {
        let df = self
            .ctx
            .sql(&format!(
                "SELECT CAST({sql} AS {}) AS v",
                column.ty.sql_name()
            ))
            .await;
        let batches = match df {
            Ok(df) => df.collect().await?,
            // Types DataFusion cannot name in SQL (uuid, json) are text.
            Err(_) => {
                self.ctx
                    .sql(&format!("SELECT {sql} AS v"))
                    .await?
                    .collect()
                    .await?
            }
        };
        let batch = batches
            .into_iter()
            .find(|b| b.num_rows() > 0)
            .ok_or_else(|| Error::new(sqlstate::INTERNAL_ERROR, "a DEFAULT gave no value"))?;
        let value = datafusion::arrow::compute::cast(batch.column(0), &column.ty.arrow_type())?;
        let field = column.field();
        let batch = RecordBatch::try_new(
            Arc::new(datafusion::arrow::datatypes::Schema::new(vec![field])),
            vec![value],
        )?;
        Ok(encode_batch(&batch)?)
    }

    async fn drop(
        &mut self,
        object_type: ObjectType,
        if_exists: bool,
        names: &[ObjectName],
        cascade: bool,
    ) -> Result<Output> {
        let (tag, commands) = match object_type {
            ObjectType::Table | ObjectType::View => {
                let mut commands = Vec::new();
                let state = self.catalogs.state();
                for name in names {
                    let tref = self.table_ref(name)?;
                    let schema = state.catalog.schema(&tref.database, &tref.schema);
                    let (is_table, is_view) = schema.map_or((false, false), |s| {
                        (
                            s.tables.contains_key(&tref.name),
                            s.views.contains_key(&tref.name),
                        )
                    });
                    let wants_table = object_type == ObjectType::Table;
                    if (wants_table && is_view) || (!wants_table && is_table) {
                        return Err(Error::new(
                            "42809",
                            format!(
                                "\"{}\" is not a {}",
                                tref.name,
                                if wants_table { "table" } else { "view" }
                            ),
                        ));
                    }
                    if !is_table && !is_view && !if_exists {
                        return Err(Error::new(
                            sqlstate::UNDEFINED_TABLE,
                            format!(
                                "{} \"{}\" does not exist",
                                if wants_table { "table" } else { "view" },
                                tref.name
                            ),
                        ));
                    }
                    // CASCADE takes the property graphs that read the table.
                    let id = state.catalog.table(&tref).map(|t| t.id);
                    if let Some(id) = id.filter(|_| wants_table && cascade) {
                        commands.extend(self.keys_referencing(id));
                        for (schema, name) in state.catalog.graphs_using(&tref.database, id) {
                            commands.push(Command::DropPropertyGraph {
                                graph: TableRef {
                                    database: tref.database.clone(),
                                    schema,
                                    name,
                                },
                                if_exists: true,
                            });
                        }
                    }
                    commands.push(if wants_table {
                        Command::DropTable {
                            table: tref,
                            if_exists,
                        }
                    } else {
                        Command::DropView {
                            view: tref,
                            if_exists,
                        }
                    });
                }
                (
                    if object_type == ObjectType::Table {
                        "DROP TABLE"
                    } else {
                        "DROP VIEW"
                    },
                    commands,
                )
            }
            ObjectType::Schema => {
                let database = self.database();
                let commands = names
                    .iter()
                    .map(|n| {
                        Ok(Command::DropSchema {
                            database: database.clone(),
                            name: object_name(n)?,
                            if_exists,
                            cascade,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                ("DROP SCHEMA", commands)
            }
            ObjectType::Sequence => {
                let mut commands = Vec::new();
                for n in names {
                    commands.push(Command::DropSequence {
                        sequence: self.table_ref(n)?,
                        if_exists,
                    });
                }
                ("DROP SEQUENCE", commands)
            }
            ObjectType::Index => {
                let mut commands = Vec::new();
                for n in names {
                    let tref = self.table_ref(n)?;
                    commands.push(Command::DropIndex {
                        database: tref.database,
                        schema: tref.schema,
                        name: tref.name,
                        if_exists,
                    });
                }
                ("DROP INDEX", commands)
            }
            ObjectType::Database => {
                let mut commands = Vec::new();
                for n in names {
                    let name = object_name(n)?;
                    if name == self.database() {
                        return Err(Error::new(
                            "55006",
                            "cannot drop the currently open database",
                        ));
                    }
                    commands.push(Command::DropDatabase { name, if_exists });
                }
                ("DROP DATABASE", commands)
            }
            other => return Err(Error::unsupported(format!("DROP {other}"))),
        };
        for command in commands {
            self.write_catalog(command).await?;
        }
        done(tag)
    }

    pub(crate) async fn explain(
        &mut self,
        explain: &ExplainStatement,
        params: Option<ParamValues>,
    ) -> Result<Output> {
        let inner = explain.statement.as_ref();
        if let DfStatement::Statement(s) = inner
            && let Statement::Execute {
                name: Some(name),
                parameters,
                immediate: false,
                ..
            } = s.as_ref()
        {
            // The plan of the prepared statement, with these parameters.
            let Some((statement, params)) = self.bind_named(name, parameters).await? else {
                return Err(Error::unsupported("EXPLAIN of an empty statement"));
            };
            let explain = ExplainStatement {
                statement: Box::new(statement),
                ..explain.clone()
            };
            return Box::pin(self.explain(&explain, params)).await;
        }
        if !explain.options.analyze
            && let Some(fast) = self.fast_plan(inner)
        {
            let schema = explain_schema();
            let lines = StringArray::from(fast.explain());
            let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(lines)])?;
            return Ok(rows_output(schema, vec![batch], Some(Tag::new("EXPLAIN"))));
        }
        let is_dml = matches!(
            inner,
            DfStatement::Statement(s)
                if matches!(s.as_ref(), Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_))
        );
        let lines: Vec<String> = if is_dml {
            if explain.options.analyze {
                return Err(Error::unsupported(
                    "EXPLAIN ANALYZE of INSERT, UPDATE or DELETE",
                ));
            }
            // The plan of the rows the statement would change; nothing runs.
            let DfStatement::Statement(s) = inner else {
                unreachable!("checked above")
            };
            self.catalogs
                .set_expose_rowid(!matches!(s.as_ref(), Statement::Insert(_)));
            let plan = self.plan(inner.clone(), params).await;
            self.catalogs.set_expose_rowid(false);
            plan?
                .display_indent()
                .to_string()
                .lines()
                .map(String::from)
                .collect()
        } else {
            // The query as it runs: with the internal aliases that keep
            // DataFusion from refusing output names PostgreSQL repeats
            // (`SELECT 0::bigint, 0`; see crate::names).
            let (inner, _) = crate::names::unique_output_names(inner)?;
            let explain = ExplainStatement {
                statement: Box::new(inner),
                ..explain.clone()
            };
            let plan = self.plan(DfStatement::Explain(explain), params).await?;
            if !matches!(plan, LogicalPlan::Explain(_) | LogicalPlan::Analyze(_)) {
                return Err(Error::unsupported("EXPLAIN of this statement"));
            }
            let frame = self.ctx.execute_logical_plan(plan).await?;
            let batches = self.collect_frame(frame).await?;
            let mut lines = Vec::new();
            for batch in &batches {
                let kinds = batch.column(0).as_any().downcast_ref::<StringArray>();
                let plans = batch
                    .column(batch.num_columns() - 1)
                    .as_any()
                    .downcast_ref::<StringArray>();
                if let (Some(kinds), Some(plans)) = (kinds, plans) {
                    for row in 0..batch.num_rows() {
                        lines.push(format!("{}:", kinds.value(row)));
                        lines.extend(plans.value(row).lines().map(|l| format!("  {l}")));
                    }
                }
            }
            lines
        };
        let schema = explain_schema();
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(lines))])?;
        Ok(rows_output(schema, vec![batch], Some(Tag::new("EXPLAIN"))))
    }
}

fn multiple_primary_keys(tref: &TableRef) -> Error {
    Error::new(
        "42P16",
        format!(
            "multiple primary keys for table \"{}\" are not allowed",
            tref.name
        ),
    )
}

/// A sequence from CREATE SEQUENCE's options, with PostgreSQL's defaults
/// for those not given (which depend on the direction and the type).
fn sequence_def(ty: PgType, options: &[SequenceOptions]) -> Result<SequenceDef> {
    let (type_min, type_max) = match ty {
        PgType::Int2 => (i64::from(i16::MIN), i64::from(i16::MAX)),
        PgType::Int4 => (i64::from(i32::MIN), i64::from(i32::MAX)),
        _ => (i64::MIN, i64::MAX),
    };
    let (mut increment, mut min, mut max, mut start) = (1, None, None, None);
    for option in options {
        match option {
            SequenceOptions::IncrementBy(e, _) => increment = constant(e)?,
            SequenceOptions::MinValue(e) => min = e.as_ref().map(constant).transpose()?,
            SequenceOptions::MaxValue(e) => max = e.as_ref().map(constant).transpose()?,
            SequenceOptions::StartWith(e, _) => start = Some(constant(e)?),
            // Each node draws values in blocks anyway (see `sequences`).
            SequenceOptions::Cache(e) => {
                constant(e)?;
            }
            // sqlparser's flag says NO CYCLE.
            SequenceOptions::Cycle(true) => {}
            SequenceOptions::Cycle(false) => return Err(Error::unsupported("CYCLE sequences")),
        }
    }
    if increment == 0 {
        return Err(Error::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            "INCREMENT must not be zero",
        ));
    }
    let min = min.unwrap_or(if increment > 0 { 1 } else { type_min });
    let max = max.unwrap_or(if increment > 0 { type_max } else { -1 });
    let start = start.unwrap_or(if increment > 0 { min } else { max });
    if min < type_min || max > type_max || min >= max {
        return Err(Error::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("MINVALUE ({min}) must be less than MAXVALUE ({max}) within the type's range"),
        ));
    }
    if start < min || start > max {
        return Err(Error::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("START value ({start}) must be between MINVALUE ({min}) and MAXVALUE ({max})"),
        ));
    }
    Ok(SequenceDef {
        start,
        increment,
        min,
        max,
        last_value: start,
        ..SequenceDef::new(ty)
    })
}

/// An integer constant of a sequence option (`-5` included).
fn constant(expr: &SqlExpr) -> Result<i64> {
    let parsed = match expr {
        SqlExpr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        SqlExpr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => return constant(expr).map(|v| -v),
        _ => None,
    };
    parsed.ok_or_else(|| {
        Error::new(
            sqlstate::SYNTAX_ERROR,
            format!("a sequence option must be an integer, not {expr}"),
        )
    })
}

fn object_name(name: &ObjectName) -> Result<String> {
    match name.0.as_slice() {
        [part] => part
            .as_ident()
            .map(normalize)
            .ok_or_else(|| Error::unsupported(format!("the name {name}"))),
        _ => Err(Error::unsupported(format!("the qualified name {name}"))),
    }
}

fn first_words(sql: &str) -> String {
    sql.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

/// The column type for a query result column of an Arrow type that
/// [`PgType::of_field`] does not map (CREATE TABLE AS).
fn pg_type_of(ty: &DataType) -> Result<PgType> {
    Ok(match ty {
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => PgType::Int2,
        DataType::Int32 | DataType::UInt16 => PgType::Int4,
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => PgType::Int8,
        DataType::Float16 | DataType::Float32 => PgType::Float4,
        DataType::Float64 => PgType::Float8,
        DataType::Decimal128(p, s) => PgType::Numeric {
            precision: Some(*p),
            scale: Some(*s),
        },
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => PgType::Text,
        DataType::Boolean => PgType::Bool,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => PgType::Bytea,
        DataType::Date32 | DataType::Date64 => PgType::Date,
        DataType::Time32(_) | DataType::Time64(_) => PgType::Time,
        DataType::Timestamp(_, None) => PgType::Timestamp,
        DataType::Timestamp(_, Some(_)) => PgType::Timestamptz,
        DataType::Interval(_) | DataType::Duration(TimeUnit::Microsecond) => PgType::Interval,
        DataType::List(element) | DataType::LargeList(element) => {
            match PgType::of_field(element).map_or_else(|| pg_type_of(element.data_type()), Ok)? {
                PgType::Array(_) => return Err(Error::unsupported("a column of nested arrays")),
                element => PgType::Array(Box::new(element)),
            }
        }
        other => return Err(Error::unsupported(format!("a column of type {other}"))),
    })
}
