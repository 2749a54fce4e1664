//! Engine and sessions: the planner's interface to the wire front end.
//!
//! ```text
//!  server ──sql──► Session::run / prepare+execute
//!                    │ parse (DataFusion's parser, PostgreSQL dialect)
//!                    │ pin a snapshot (the store's, or the transaction's own)
//!                    ├─ SELECT ..............► DataFusion plan + stream
//!                    ├─ INSERT/UPDATE/DELETE ► dml: rows via DataFusion, then a Write command
//!                    ├─ CREATE/DROP/ALTER ...► ddl: a catalog command
//!                    └─ BEGIN/COMMIT/SET ....► session state
//! ```

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use ciab_storage::{Applied, Command, DbState, RowId, Store, TableId, WriteOp};
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ParamValues;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::context::SessionContext;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionConfig;
use datafusion::sql::parser::{
    DFParser, DFParserBuilder, ResetStatement, Statement as DfStatement,
};
use datafusion::sql::sqlparser::ast::{
    ContextModifier, CopyTarget, DiscardObject, Expr as SqlExpr, FetchDirection, FetchPosition,
    Ident, ObjectName, ObjectType, Set, Statement, TransactionAccessMode, TransactionMode,
    VacuumStatement, Value, ValueWithSpan,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::ParserError;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{Error, Result, sqlstate};
use crate::finish::finishing;
use crate::interrupt::{Canceller, Interrupt, parse_timeout, timeout_text};
use crate::memory::{NodeMemory, parse_memory_limit};
use crate::names;
use crate::params::{self, ParamType, Params};
use crate::provider::{CatalogList, ClusterView, Pinned, ViewPlanner};
use crate::serializable::{Isolation, Reads};
use crate::settings::SessionFacts;
use crate::stores::{StoreCache, Stores};

/// The version ciab reports as `server_version`: PostgreSQL-shaped first, so
/// clients that parse it see a PostgreSQL 15 they know how to talk to.
pub const SERVER_VERSION: &str = concat!("15.0 (ciab ", env!("CARGO_PKG_VERSION"), ")");
/// How deeply expressions may nest. sqlparser's default of 50 refuses
/// generated queries that PostgreSQL accepts; DataFusion grows its stack
/// for deep plans, so the parser is what needs the room.
const PARSER_RECURSION_LIMIT: usize = 1_000;
/// Where a node's process ids start, and how many it hands out before it
/// starts over (a node would have to run two billion sessions at once to
/// hand out one twice).
const PID_FIRST: i32 = 1000;
const PID_SPAN: i32 = i32::MAX - PID_FIRST;
/// How often an autocommit statement is retried when a concurrent write
/// changed the rows it planned against.
const AUTOCOMMIT_RETRIES_MAX: usize = 16;

/// One node's SQL engine: the store plus what every session shares.
pub struct Engine {
    pub(crate) store: Arc<Store>,
    /// The cluster as `ciab.nodes` shows it.
    cluster: Arc<ClusterView>,
    /// Sequence values drawn and not handed out yet.
    pub(crate) sequences: crate::sequences::Blocks,
    /// The clients of the object stores that paths and URLs in SQL reach.
    stores: Arc<StoreCache>,
    /// The memory all sessions' queries draw from.
    memory: Arc<NodeMemory>,
    /// How many sessions this node started: their process ids.
    sessions_started: AtomicU32,
    /// The sessions listening for notifications.
    listeners: Arc<crate::notify::Listeners>,
}

impl Engine {
    /// The SQL engine over a node's opened store. `s3_endpoint` is the
    /// node's own S3 endpoint (`http://host:port`), where `s3://` URLs lead
    /// unless the `s3_endpoint` setting names another.
    pub fn new(store: Arc<Store>, s3_endpoint: Option<String>) -> Arc<Engine> {
        let cluster = Arc::new(ClusterView {
            store: store.clone(),
        });
        let listeners = Arc::new(crate::notify::Listeners::default());
        store.set_notification_sink(listeners.clone());
        Arc::new(Engine {
            stores: StoreCache::new(store.clone(), s3_endpoint),
            memory: Default::default(),
            store,
            cluster,
            sequences: Default::default(),
            sessions_started: AtomicU32::new(0),
            listeners,
        })
    }

    /// How many sessions this node serves at once: the cluster's
    /// `max_connections`.
    pub fn max_connections(&self) -> usize {
        crate::settings::cluster_value(&self.store.snapshot(), "max_connections")
            .and_then(|v| v.parse().ok())
            .expect("max_connections has a checked value")
    }

    /// This node's id in its Raft cluster.
    pub fn node_id(&self) -> u64 {
        self.store.node_id()
    }

    /// Writes every table to Parquet, so the next start replays no log.
    pub async fn flush(&self) -> Result<()> {
        Ok(self.store.flush().await?)
    }

    pub async fn shutdown(&self) -> Result<()> {
        Ok(self.store.shutdown().await?)
    }

    /// A session on `database`, as a connection's startup message asks.
    pub fn session(self: &Arc<Self>, database: &str, user: &str) -> Result<Session> {
        let state = self.store.snapshot();
        let Some(database_id) = state.catalog.databases.get(database).map(|db| db.id) else {
            return Err(Error::new(
                sqlstate::INVALID_CATALOG_NAME,
                format!("database \"{database}\" does not exist"),
            ));
        };
        let stores = Stores::new(&self.stores);
        let runtime = runtime(&stores, &self.memory);
        let catalogs = CatalogList::new(
            Pinned {
                database: database.to_string(),
                state,
                expose_rowid: false,
                defaults: HashMap::new(),
                reads: None,
            },
            view_planner(user, &runtime),
            self.cluster.clone(),
        );
        let ctx = new_context(catalogs.clone(), database, user, &runtime);
        let sequences = Arc::new(std::sync::Mutex::new(Default::default()));
        let read_only = Arc::new(std::sync::atomic::AtomicBool::new(false));
        crate::sequences::register(&ctx, self, &catalogs, &sequences, &read_only);
        crate::system::register(&ctx, &self.store);
        let setting_changes = Arc::new(std::sync::Mutex::new(Default::default()));
        crate::settings::register(&ctx, &self.store, &setting_changes);
        // Process ids start where PostgreSQL's usually are, and never repeat
        // while the node runs.
        let started = self.sessions_started.fetch_add(1, Ordering::Relaxed);
        let pid = PID_FIRST + (started % PID_SPAN as u32) as i32;
        let locks = crate::advisory_locks::SessionLocks::new(&self.store, database_id, pid);
        crate::advisory_locks::register(&ctx, &locks, pid);
        let in_block = Arc::new(std::sync::atomic::AtomicBool::new(false));
        crate::objects::register(&ctx, &self.store, &catalogs, &in_block, &read_only);
        let notify =
            crate::notify::SessionNotify::new(&self.listeners, &self.store, &locks, database, pid);
        crate::notify::register(&ctx, &notify);
        let canceller = Canceller::default();
        let session = Session {
            engine: self.clone(),
            catalogs,
            ctx,
            user: user.to_string(),
            settings: BTreeMap::new(),
            txn: None,
            in_block,
            read_only_statement: read_only,
            autocommit_reads: None,
            cursors: BTreeMap::new(),
            sequences,
            setting_changes,
            locks,
            notify,
            pid,
            copy: None,
            stores,
            interrupt: Interrupt::start(&canceller, None),
            canceller,
            remembered: Default::default(),
            settings_generation: 0,
            plans: Default::default(),
            named: HashMap::new(),
            planned_checks: Default::default(),
        };
        // The cluster's search_path (ALTER SYSTEM) applies from the start.
        session.set_default_schema(session.default_schema());
        Ok(session)
    }
}

fn session_config(database: &str, user: &str) -> SessionConfig {
    let mut config = SessionConfig::new()
        .with_default_catalog_and_schema(database, ciab_storage::DEFAULT_SCHEMA)
        .with_create_default_catalog_and_schema(false)
        // ciab's own information_schema speaks PostgreSQL's types
        // (crate::information_schema); DataFusion's would shadow it.
        .with_information_schema(false)
        .with_option_extension(SessionFacts {
            user: user.to_string(),
            ..SessionFacts::default()
        });
    let options = config.options_mut();
    options.sql_parser.dialect = datafusion::config::Dialect::PostgreSQL;
    // 1.50 is numeric, as in PostgreSQL (see ciab_extensions::PgNumerics).
    options.sql_parser.parse_float_as_decimal = true;
    // Sessions run in UTC (TimeZone): `timestamptz` and now() carry it, so
    // they print with their offset as PostgreSQL's do.
    options.execution.time_zone = Some("UTC".into());
    config
}

/// What a session's queries run with: its object stores, and the node's
/// memory pool.
fn runtime(stores: &Arc<Stores>, memory: &Arc<NodeMemory>) -> Arc<RuntimeEnv> {
    // Listings are not cached: files come and go between statements, and
    // an external table must see the ones there now.
    let caches = CacheManagerConfig::default().with_list_files_cache_limit(0);
    RuntimeEnvBuilder::new()
        .with_object_store_registry(stores.clone())
        .with_cache_manager(caches)
        .with_memory_pool(memory.clone())
        .build_arc()
        .expect("a runtime of defaults builds")
}

/// DataFusion's physical optimizer rules and ciab's: filters' estimates
/// before the join selection that reads them, aggregations over sorted
/// scans once the repartitions are placed, before the last check, and
/// grouped sums over few groups added up in lanes.
fn physical_rules() -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    let mut rules = PhysicalOptimizer::new().rules;
    let position = |rules: &[Arc<dyn PhysicalOptimizerRule + Send + Sync>], name: &str| {
        rules
            .iter()
            .position(|rule| rule.name() == name)
            .unwrap_or_else(|| panic!("DataFusion's physical optimizer has {name}"))
    };
    let join_selection = position(&rules, "join_selection");
    rules.insert(
        join_selection,
        Arc::new(crate::selectivity::EstimateFilters),
    );
    // After the sanity check, which knows no partitioning by ranges (see
    // SortedAggregates).
    let sanity_check = position(&rules, "SanityCheckPlan");
    rules.insert(
        sanity_check + 1,
        Arc::new(crate::table_source::SortedAggregates),
    );
    // Last: it changes only how an aggregation adds its rows up.
    rules.push(Arc::new(crate::few_groups::FewGroupsAggregates));
    // After it: the aggregation it makes is the one this runs.
    rules.push(Arc::new(crate::few_keys::FewKeysGrouping));
    // Once DataFusion has pushed the joins' dynamic filters to the scans.
    rules.push(Arc::new(crate::key_taps::TapJoinKeys));
    rules
}

fn new_context(
    catalogs: Arc<CatalogList>,
    database: &str,
    user: &str,
    runtime: &Arc<RuntimeEnv>,
) -> SessionContext {
    let state = ciab_extensions::state_builder()
        .with_runtime_env(runtime.clone())
        .with_config(session_config(database, user))
        .with_catalog_list(catalogs.clone())
        .with_analyzer_rule(Arc::new(crate::subquery::ExistsAsValues))
        .with_analyzer_rule(Arc::new(crate::subquery::UnaggregatedSubqueries))
        .with_optimizer_rule(Arc::new(crate::subquery::CorrelatedSubqueries))
        // NOT IN over keys that are never NULL: an anti join that may build
        // on either side.
        .with_optimizer_rule(Arc::new(crate::not_in::PlainNotIn))
        // IN and EXISTS filter the FROM item they read, before its joins.
        .with_optimizer_rule(Arc::new(crate::semi_joins::PushDownSemiJoins))
        // Document fields a query reads become kept columns of the scan.
        .with_optimizer_rule(Arc::new(crate::shred::ShredDocuments))
        // Inner joins in the order of their estimated rows, not as written.
        .with_optimizer_rule(Arc::new(crate::join_order::ReorderJoins))
        // `1 - l_discount` at the decimal's scale: one subtraction a row.
        .with_optimizer_rule(Arc::new(crate::decimal_scales::RescaleDecimalLiterals))
        // `LIKE '%a%b%'` by searching for each part, not a regex.
        .with_optimizer_rule(Arc::new(crate::like_parts::MatchLikeParts))
        // Filters' estimated rows, which order joins, and their conditions'
        // order.
        .with_physical_optimizer_rules(physical_rules())
        // json and jsonb, and type names such as regclass and oid, which
        // catalog queries cast to.
        .with_type_planner(Arc::new(crate::types::PgTypePlanner))
        // Gap filling's plan node.
        .with_query_planner(Arc::new(ciab_extensions::ExtensionsQueryPlanner))
        .build();
    let ctx = SessionContext::new_with_state(state);
    ciab_extensions::register(&ctx);
    crate::pg_functions::register(&ctx, &catalogs);
    crate::arrays::register(&ctx);
    crate::recursive::register(&ctx);
    ctx
}

/// Views are planned from their SQL each time a statement names them, over
/// the same pinned state as the statement.
fn view_planner(user: &str, runtime: &Arc<RuntimeEnv>) -> ViewPlanner {
    let user = user.to_string();
    let runtime = runtime.clone();
    Arc::new(move |sql: String, catalogs: Arc<CatalogList>| {
        let user = user.clone();
        let runtime = runtime.clone();
        Box::pin(async move {
            let database = catalogs.database();
            let ctx = new_context(catalogs, &database, &user, &runtime);
            let state = ctx.state();
            let statement =
                state.sql_to_statement(&sql, &datafusion::config::Dialect::PostgreSQL)?;
            let plan = state.statement_to_plan(statement).await?;
            ciab_extensions::numeric_sums(ciab_extensions::integer_literals(plan)?)
        })
    })
}

/// A statement as the session runs it.
#[derive(Debug)]
pub enum Parsed {
    /// What DataFusion's parser reads.
    Sql(DfStatement),
    /// A statement with property graph syntax (see [`crate::graph`]), kept
    /// as text until it runs: reading it needs the catalog as the statement
    /// finds it, which statements before it in the query string may change.
    Graph(String),
}

/// A statement ready to run: parsed, with its parameter and result types.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub statement: Option<Arc<Parsed>>,
    pub sql: String,
    /// Parameter types; a parameter that meets a column carries its
    /// PostgreSQL type too (uuid, varchar), as the field's metadata.
    pub param_types: Vec<Field>,
    /// Columns of the rows it returns; `None` for statements without rows.
    pub schema: Option<SchemaRef>,
}

/// 25006 for a command a read-only transaction may not run.
pub(crate) fn read_only_refusal(command: &str) -> Error {
    Error::new(
        sqlstate::READ_ONLY_SQL_TRANSACTION,
        format!("cannot execute {command} in a read-only transaction"),
    )
}

/// A statement's command as PostgreSQL names it in errors: its first word,
/// and the kind of object after CREATE, ALTER and DROP (`CREATE TABLE`).
fn command_words(sql: &str) -> String {
    let mut words = sql.split_whitespace().map(str::to_ascii_uppercase);
    let first = words.next().unwrap_or_default();
    match first.as_str() {
        "CREATE" | "ALTER" | "DROP" => {
            let kind = words.find(|w| !matches!(w.as_str(), "OR" | "REPLACE" | "UNIQUE"));
            format!("{first} {}", kind.unwrap_or_default())
        }
        "TRUNCATE" => "TRUNCATE TABLE".to_string(),
        _ => first,
    }
}

/// The command of property graph DDL (`CREATE PROPERTY GRAPH`); `None`
/// for a query that reads a graph.
fn graph_write_command(sql: &str) -> Option<String> {
    let words: Vec<String> = sql
        .split_whitespace()
        .take(3)
        .map(str::to_ascii_uppercase)
        .collect();
    match words.first().map(String::as_str) {
        Some("CREATE" | "ALTER" | "DROP") => Some(words.join(" ")),
        _ => None,
    }
}

/// Whether a prepared statement is `EXECUTE name`.
fn is_execute(prepared: &Prepared) -> bool {
    match prepared.statement.as_deref() {
        Some(Parsed::Sql(DfStatement::Statement(s))) => matches!(**s, Statement::Execute { .. }),
        _ => false,
    }
}

/// A command tag as PostgreSQL sends it in CommandComplete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub command: String,
    pub rows: Option<u64>,
    /// INSERT's tag carries an OID (always 0): `INSERT 0 3`.
    pub oid: bool,
}

impl Tag {
    pub fn new(command: impl Into<String>) -> Self {
        Tag {
            command: command.into(),
            rows: None,
            oid: false,
        }
    }

    pub fn with_rows(mut self, rows: u64) -> Self {
        self.rows = Some(rows);
        self
    }

    /// `INSERT 0 n`.
    pub(crate) fn inserted(rows: u64) -> Self {
        Tag {
            command: "INSERT".into(),
            rows: Some(rows),
            oid: true,
        }
    }
}

/// The statements of one simple-protocol query string, which
/// `Session::step` runs one at a time: the caller sends each statement's
/// rows before the next one runs, so an error in them stops the string
/// where PostgreSQL's would stop.
pub struct Script {
    statements: std::vec::IntoIter<Arc<Parsed>>,
    /// Several statements: they run as one implicit transaction block.
    several: bool,
    /// A string without statements, which answers once with `Output::Empty`.
    empty: bool,
}

/// What a statement produced.
pub enum Output {
    /// Rows to stream. `tag` is set for statements other than SELECT
    /// (INSERT ... RETURNING says `INSERT 0 n`).
    Rows {
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
        tag: Option<Tag>,
    },
    Command(Tag),
    /// COPY FROM STDIN started: the client now sends the data, ending with
    /// `Session::copy_done` (or `copy_fail`).
    CopyIn {
        columns: usize,
    },
    /// COPY TO STDOUT: rows for the front end to send as COPY data.
    CopyOut(crate::CopyOut),
    Empty,
}

/// A transaction's private state: the snapshot it started from plus its own
/// writes, applied locally until COMMIT sends their net effect through Raft.
struct Transaction {
    base: Arc<DbState>,
    local: Arc<DbState>,
    /// Rows of the base snapshot this transaction deleted, per table.
    deleted: HashMap<TableId, Vec<RowId>>,
    /// Catalog commands run in the block, in order, already applied to
    /// `local`. COMMIT replays them before the net row changes.
    ddl: Vec<Command>,
    failed: bool,
    /// Opened by a query string of several statements rather than BEGIN:
    /// an error rolls it back at once and the string's end commits it.
    implicit: bool,
    /// The settings at BEGIN: SET inside the block is undone by ROLLBACK.
    settings: BTreeMap<String, String>,
    /// Settings whose last change in the block was `SET LOCAL` (or
    /// `set_config(..., true)`), with the value each had before it: the
    /// block's end puts those back, COMMIT included.
    local_settings: BTreeMap<String, Option<String>>,
    /// Open savepoints, oldest first. Each keeps the private state as it
    /// was when it was set, which ROLLBACK TO puts back: states are
    /// persistent, so a savepoint costs a few reference counts.
    savepoints: Vec<Savepoint>,
    /// `BEGIN READ ONLY` (or `default_transaction_read_only`, or `SET
    /// transaction_read_only` in the block): what writes, it refuses.
    read_only: bool,
    /// `BEGIN ISOLATION LEVEL ...`, `default_transaction_isolation` or
    /// `SET TRANSACTION ISOLATION LEVEL` before the block's first query.
    isolation: Isolation,
    /// The tables a SERIALIZABLE block read, which its COMMIT checks.
    reads: Option<Reads>,
    /// Whether a statement of the block read the database yet: after
    /// that, its isolation level and read-write mode are fixed (25001).
    queried: bool,
}

struct Savepoint {
    name: String,
    local: Arc<DbState>,
    deleted: HashMap<TableId, Vec<RowId>>,
    ddl_len: usize,
    settings: BTreeMap<String, String>,
    local_settings: BTreeMap<String, Option<String>>,
    /// What the block had notified and listened on when it was set.
    notify: crate::notify::Mark,
}

/// A session's transaction status, as ReadyForQuery reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionState {
    Idle,
    InBlock,
    Failed,
}

pub struct Session {
    pub(crate) engine: Arc<Engine>,
    pub(crate) catalogs: Arc<CatalogList>,
    pub(crate) ctx: SessionContext,
    user: String,
    settings: BTreeMap<String, String>,
    txn: Option<Transaction>,
    /// Whether `txn` is open, for the functions that must not run in a
    /// block (`object_put`).
    in_block: Arc<std::sync::atomic::AtomicBool>,
    /// Whether the statement running is in a read-only transaction, for
    /// the functions that write (`nextval`, `object_put`).
    read_only_statement: Arc<std::sync::atomic::AtomicBool>,
    /// The tables the running statement outside a block read, when
    /// `default_transaction_isolation` is serializable (`serializable.rs`).
    autocommit_reads: Option<Reads>,
    /// Open cursors by name (`cursors.rs`); a block's end closes them.
    pub(crate) cursors: BTreeMap<String, crate::cursors::Cursor>,
    /// What this session's sequence functions remember (`currval`, values
    /// drawn from sequences its open block made).
    sequences: Arc<std::sync::Mutex<crate::sequences::SessionSequences>>,
    /// What this session's `set_config` calls changed.
    setting_changes: Arc<std::sync::Mutex<crate::settings::SettingChanges>>,
    /// The advisory locks this session may hold.
    locks: Arc<crate::advisory_locks::SessionLocks>,
    /// What the session's transaction notifies and listens on at COMMIT,
    /// and the notifications it heard.
    notify: Arc<crate::notify::SessionNotify>,
    /// The session's process id (`pg_backend_pid()`, BackendKeyData).
    pid: i32,
    /// What another connection's CancelRequest stops.
    canceller: Canceller,
    /// What may stop the statement running now.
    pub(crate) interrupt: Interrupt,
    pub(crate) copy: Option<crate::copy::CopyIn>,
    /// The object stores this session's paths and URLs reach.
    stores: Arc<Stores>,
    /// Recent query strings of one statement: their parse, and what Parse
    /// answered for them.
    remembered: crate::remembered::Remembered,
    /// Counts the changes of `settings`, which what Parse answered depends
    /// on (`crate::remembered`).
    pub(crate) settings_generation: u64,
    /// Generic plans of the queries it ran lately (`crate::plan_cache`).
    pub(crate) plans: crate::plan_cache::PlanCache,
    /// Statements prepared with SQL's PREPARE, by name.
    pub(crate) named: HashMap<String, Prepared>,
    /// CHECK conditions planned for the tables this session wrote.
    pub(crate) planned_checks: std::sync::Mutex<crate::checks::PlannedChecks>,
}

const IDLE_IN_TRANSACTION_SESSION_TIMEOUT: &str = "25P03";
const IDLE_SESSION_TIMEOUT: &str = "57P05";

impl Session {
    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub fn database(&self) -> String {
        self.catalogs.database()
    }

    pub fn in_transaction(&self) -> bool {
        self.txn.is_some()
    }

    /// The notifications this session heard, for the front end to send
    /// between transactions.
    pub fn inbox(&self) -> Arc<crate::notify::Inbox> {
        self.notify.inbox()
    }

    /// Splits a query string into statements.
    pub fn parse(&self, sql: &str) -> Result<Vec<Parsed>> {
        if let Some(alter) = crate::settings::parse_alter_system(sql) {
            // A query string of several statements is one transaction
            // block in PostgreSQL, where ALTER SYSTEM may not run.
            if several_statements(sql) {
                return Err(in_block("ALTER SYSTEM"));
            }
            return Ok(vec![Parsed::Sql(DfStatement::Statement(Box::new(alter?)))]);
        }
        let copy_options = copy_boolean_options(sql);
        let sql = copy_options.as_deref().unwrap_or(sql);
        let strengths = lock_strengths(sql);
        let sql = strengths.as_deref().unwrap_or(sql);
        let (sql, recursive_clauses) = match crate::recursive::extract(sql)? {
            Some((text, clauses)) => (Cow::Owned(text), Some(clauses)),
            None => (Cow::Borrowed(sql), None),
        };
        let sql = sql.as_ref();
        let mut parser = DFParserBuilder::new(sql)
            .with_dialect(&PostgreSqlDialect {})
            .with_recursion_limit(PARSER_RECURSION_LIMIT)
            .build()
            .map_err(|e| syntax_error(sql, e))?;
        // Property graph syntax is rare: only a query string that may hold
        // it is looked at token by token for it.
        let graphs = crate::names::contains_ignore_ascii_case(sql, "graph");
        let mut statements =
            parse_statements(&mut parser, sql, graphs).map_err(|e| syntax_error(sql, e))?;
        if let Some(clauses) = recursive_clauses {
            crate::recursive::rewrite(&mut statements, clauses)?;
        }
        if crate::names::contains_ignore_ascii_case(sql, "recursive") {
            for statement in &mut statements {
                if let Parsed::Sql(s) = statement {
                    crate::recursive::type_first_nulls(s);
                }
            }
        }
        if crate::numbers::may_rewrite(sql) {
            for statement in &mut statements {
                if let Parsed::Sql(s) = statement {
                    crate::numbers::rewrite(s);
                }
            }
        }
        if !crate::pg_functions::may_rewrite(sql) {
            return Ok(statements);
        }
        Ok(statements
            .into_iter()
            .map(|s| match s {
                Parsed::Sql(s) => Parsed::Sql(crate::pg_functions::rewrite(s)),
                graph => graph,
            })
            .collect())
    }

    /// `parse`, remembering the statement of a query string of one
    /// statement: a parse depends on the text alone.
    fn parse_remembered(&mut self, sql: &str) -> Result<Vec<Arc<Parsed>>> {
        if let Some(statement) = self.remembered.statement(sql) {
            return Ok(vec![statement]);
        }
        let statements: Vec<Arc<Parsed>> = self.parse(sql)?.into_iter().map(Arc::new).collect();
        if let [statement] = statements.as_slice() {
            self.remembered.remember_statement(sql, statement.clone());
        }
        Ok(statements)
    }

    /// Parses SQL that DataFusion's parser reads, `GRAPH_TABLE` expanded.
    pub(crate) fn parse_sql(&self, sql: &str) -> Result<Vec<DfStatement>> {
        self.parse(sql)?
            .into_iter()
            .map(|s| match s {
                Parsed::Sql(s) => Ok(s),
                Parsed::Graph(text) => match crate::graph::parse_ddl(&text)? {
                    None => self.expand_graph_sql(&text),
                    Some(_) => Err(Error::unsupported("property graph DDL here")),
                },
            })
            .collect()
    }

    /// Parses a simple-protocol query string into the statements `step`
    /// runs.
    pub fn script(&mut self, sql: &str) -> Result<Script> {
        let statements = self.parse_remembered(sql).map_err(|e| self.fail(e))?;
        Ok(Script {
            empty: statements.is_empty(),
            several: statements.len() > 1,
            statements: statements.into_iter(),
        })
    }

    /// Runs the script's next statement; None once it is done. Several
    /// statements run as one implicit transaction block, as in PostgreSQL:
    /// the string's end commits it, and an error undoes the whole string
    /// (unless a BEGIN in it opened a block of its own, which the error
    /// aborts instead). After an error, the rest of the string is skipped.
    /// A `COPY FROM STDIN`, always a string's last statement, ends its
    /// string when its rows are in (`copy_done`).
    pub async fn step(&mut self, script: &mut Script) -> Option<Result<Output>> {
        if std::mem::take(&mut script.empty) {
            return Some(Ok(Output::Empty));
        }
        let Some(statement) = script.statements.next() else {
            return self.end_implicit_block().await.err().map(Err);
        };
        if script.several && self.txn.is_none() {
            // The block reads the state it starts from, as BEGIN's does.
            if let Err(e) = self.read_barrier().await {
                script.statements = Vec::new().into_iter();
                return Some(Err(e));
            }
            self.begin(true);
        }
        let result = self.execute(&statement, None).await;
        if result.is_err() {
            script.statements = Vec::new().into_iter();
            // Whatever failed, the block fails with it: an implicit one
            // ends (a no-op where the failure already ended it).
            self.abort_transaction();
        }
        Some(result)
    }

    /// Parses one statement for the extended protocol and works out its
    /// parameter and result types. `declared` holds the parameter types the
    /// client named at Parse, by their names in `pg_type` (`None` for
    /// unspecified ones).
    pub async fn prepare(&mut self, sql: &str, declared: &[Option<&str>]) -> Result<Prepared> {
        self.prepare_statement(sql, declared)
            .await
            .map_err(|e| self.fail(e))
    }

    async fn prepare_statement(
        &mut self,
        sql: &str,
        declared: &[Option<&str>],
    ) -> Result<Prepared> {
        self.settle()?;
        let read = self.reading_state().catalog.clone();
        let latest = self.engine.store.snapshot().catalog.clone();
        let inputs = crate::remembered::Inputs {
            declared,
            read: &read,
            latest: &latest,
            settings: self.settings_generation,
        };
        if let Some(prepared) = self.remembered.described(sql, &inputs) {
            return Ok(prepared);
        }
        let mut statements = self.parse_remembered(sql)?;
        if statements.len() > 1 {
            return Err(Error::new(
                sqlstate::SYNTAX_ERROR,
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        let Some(statement) = statements.pop() else {
            return Ok(Prepared {
                statement: None,
                sql: sql.to_string(),
                param_types: vec![],
                schema: None,
            });
        };
        let prepared = self.prepare_parsed(sql, statement, declared).await?;
        // `EXECUTE name` answers as the session's statement of that name
        // does, which the inputs do not cover.
        if !is_execute(&prepared) {
            self.remembered.remember_described(sql, &inputs, &prepared);
        }
        Ok(prepared)
    }

    /// Works out a parsed statement's parameter and result types.
    pub(crate) async fn prepare_parsed(
        &mut self,
        sql: &str,
        statement: Arc<Parsed>,
        declared: &[Option<&str>],
    ) -> Result<Prepared> {
        self.pin();
        let statement = match statement.as_ref() {
            Parsed::Graph(text) if crate::graph::parse_ddl(text)?.is_none() => {
                // A prepared query is bound to the graph as it is now, as
                // PostgreSQL binds one to the tables it reads.
                Arc::new(Parsed::Sql(self.expand_graph_sql(text)?))
            }
            _ => statement,
        };
        let (statement, param_types, schema) = match statement.as_ref() {
            Parsed::Sql(parsed) => {
                let declared: Vec<Option<ParamType>> = declared
                    .iter()
                    .map(|name| name.and_then(ParamType::declared))
                    .collect();
                match self.describe_typed(parsed, &declared).await? {
                    (Some(typed), types, schema) => (Arc::new(Parsed::Sql(typed)), types, schema),
                    (None, types, schema) => (statement, types, schema),
                }
            }
            Parsed::Graph(_) => (statement, Vec::new(), None),
        };
        Ok(Prepared {
            statement: Some(statement),
            sql: sql.to_string(),
            param_types,
            schema,
        })
    }

    /// Parameter and result types of a statement, its parameters typed as
    /// [`crate::params`] tells; the statement with the casts that type
    /// them, if it needs any.
    async fn describe_typed(
        &mut self,
        statement: &DfStatement,
        declared: &[Option<ParamType>],
    ) -> Result<(Option<DfStatement>, Vec<Field>, Option<SchemaRef>)> {
        let casts = match self.describe(statement).await {
            Ok((params, schema)) => {
                let casts = params.casts(declared);
                if casts.is_empty() {
                    return Ok((None, params.describe(&casts, declared.len()), schema));
                }
                casts
            }
            // Some statements plan only with their parameters' types
            // (`unnest($1)` of an int2[]): then every declared type counts.
            Err(e) => {
                let casts = Params::default().casts(declared);
                if casts.is_empty() {
                    return Err(e);
                }
                casts
            }
        };
        let mut typed = statement.clone();
        params::cast(&mut typed, &casts);
        let (params, schema) = self.describe(&typed).await?;
        let types = params.describe(&casts, declared.len());
        Ok((Some(typed), types, schema))
    }

    /// Runs a prepared statement with its parameter values.
    pub async fn execute_prepared(
        &mut self,
        prepared: &Prepared,
        params: Vec<datafusion::common::ScalarValue>,
    ) -> Result<Output> {
        match &prepared.statement {
            None => Ok(Output::Empty),
            Some(statement) => {
                let params = (!params.is_empty())
                    .then(|| ParamValues::List(params.into_iter().map(Into::into).collect()));
                self.execute(statement, params).await
            }
        }
    }

    /// Records a failure: inside a transaction, it is aborted until ROLLBACK.
    pub(crate) fn fail(&mut self, e: Error) -> Error {
        self.abort_transaction();
        e
    }

    /// Aborts the transaction block, if any, after an error the session did
    /// not see (one in the wire protocol's handling of a message). An
    /// implicit block has no ROLLBACK to wait for: it ends here.
    pub fn abort_transaction(&mut self) {
        match &mut self.txn {
            Some(txn) if txn.implicit => {
                self.roll_back();
                self.locks.release_transaction_soon();
            }
            Some(txn) => txn.failed = true,
            None => {}
        }
    }

    /// Pins the state this statement reads: the transaction's own, or the
    /// store's latest.
    pub(crate) fn pin(&self) {
        self.catalogs
            .pin(self.reading_state(), self.reads().cloned());
    }

    /// Where the running statement records what it reads: its block's set,
    /// or its own outside one; None unless the transaction is serializable.
    fn reads(&self) -> Option<&Reads> {
        match &self.txn {
            Some(txn) => txn.reads.as_ref(),
            None => self.autocommit_reads.as_ref(),
        }
    }

    /// The state this session's next statement reads.
    fn reading_state(&self) -> Arc<DbState> {
        match &self.txn {
            Some(txn) => txn.local.clone(),
            None => self.engine.store.snapshot(),
        }
    }

    /// The handle a CancelRequest for this session uses.
    pub fn canceller(&self) -> Canceller {
        self.canceller.clone()
    }

    /// Runs one statement.
    pub async fn execute(
        &mut self,
        statement: &Parsed,
        params: Option<ParamValues>,
    ) -> Result<Output> {
        let sql = match statement {
            Parsed::Sql(statement) => return self.execute_sql(statement, params).await,
            Parsed::Graph(sql) => sql,
        };
        self.settle().map_err(|e| self.fail(e))?;
        if self.txn.as_ref().is_some_and(|t| t.failed) {
            return Err(in_failed_transaction());
        }
        // Read against the catalog as it is now, as any statement reads.
        if self.txn.is_none() {
            self.read_barrier().await.map_err(|e| self.fail(e))?;
        }
        self.pin();
        let statement = match crate::graph::parse_ddl(sql) {
            Ok(Some(_))
                if self.read_only()
                    && let Some(command) = graph_write_command(sql) =>
            {
                return Err(self.fail(read_only_refusal(&command)));
            }
            Ok(Some(ddl)) => return self.graph_ddl(ddl).await.map_err(|e| self.fail(e)),
            Ok(None) => self.expand_graph_sql(sql),
            Err(e) => Err(e),
        };
        let statement = statement.map_err(|e| self.fail(e))?;
        self.execute_sql(&statement, params).await
    }

    /// Runs one statement DataFusion's parser read, which a CancelRequest
    /// or statement_timeout may stop while it reads, also while its rows
    /// stream out.
    pub(crate) async fn execute_sql(
        &mut self,
        statement: &DfStatement,
        params: Option<ParamValues>,
    ) -> Result<Output> {
        self.settle().map_err(|e| self.fail(e))?;
        // A statement outside a block is a transaction of its own.
        if self.txn.is_none() {
            self.locks.begin_transaction();
        }
        let read_only = self.read_only();
        self.read_only_statement
            .store(read_only, std::sync::atomic::Ordering::Relaxed);
        let running = self.notify.begin_statement();
        let isolation = self.isolation();
        let transaction = [
            (
                "transaction_read_only",
                if read_only { "on" } else { "off" },
            ),
            ("transaction_isolation", isolation.name()),
        ];
        self.with_facts(|facts| {
            facts.statement = running.id();
            facts.transaction = transaction;
        });
        self.interrupt = Interrupt::start(&self.canceller, self.statement_timeout());
        let memory_limit = self
            .setting("memory_limit")
            .expect("memory_limit is a setting");
        // Checked when it was set; an unreadable value keeps the last limit.
        if let Ok(limit) = parse_memory_limit(&memory_limit) {
            self.engine.memory.set_limit(limit);
        }
        let output = self.execute_statement(statement, params, isolation).await;
        // What the statement's functions changed counts once it succeeded,
        // which a query has only once its last row is out; a statement
        // outside a block (or COMMIT, ROLLBACK) ends a transaction. The
        // statement is over (`running` dropped) once `succeeded` is called
        // or dropped, before its transaction ends.
        let changes = self.setting_changes.clone();
        let ok = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let succeeded = {
            let ok = ok.clone();
            move || {
                changes.lock().expect("lock poisoned").succeeded();
                ok.store(true, std::sync::atomic::Ordering::Relaxed);
                drop(running);
            }
        };
        let locks = self.locks.clone();
        let notify = self.notify.clone();
        let ended = self.txn.is_none().then(|| locks.transaction());
        let end = Box::pin(async move {
            let Some(transaction) = ended else {
                return Ok(());
            };
            let released = locks.release_transaction(transaction).await;
            // The statement's own transaction ends: what it notified leaves
            // if it succeeded.
            match ok.load(std::sync::atomic::Ordering::Relaxed) {
                true => notify.commit(transaction).await?,
                false => notify.discard(transaction),
            }
            released
        });
        let output = match output {
            Ok(output) => output,
            Err(e) => {
                // The statement ends before its transaction does.
                drop(succeeded);
                end.await?;
                return Err(e);
            }
        };
        Ok(match output {
            Output::Rows {
                schema,
                stream,
                tag,
            } => Output::Rows {
                schema,
                stream: self.interrupt.wrap(finishing(stream, succeeded, end)),
                tag,
            },
            Output::CopyOut(mut copy) => {
                copy.stream = self.interrupt.wrap(finishing(copy.stream, succeeded, end));
                Output::CopyOut(copy)
            }
            other => {
                succeeded();
                end.await?;
                other
            }
        })
    }

    /// Makes the setting changes that `set_config` calls in earlier,
    /// successful statements asked for; forgets those of failed ones.
    fn settle(&mut self) -> Result<()> {
        let changes = self
            .setting_changes
            .lock()
            .expect("lock poisoned")
            .take_done();
        for change in changes {
            self.assign(change.name, change.value, change.local)?;
        }
        Ok(())
    }

    /// Makes the state this session reads next include every write
    /// committed anywhere before now, unless it chose `read_consistency =
    /// local`.
    async fn read_barrier(&self) -> Result<()> {
        if !self.reads_may_lag() {
            return Ok(());
        }
        Ok(self.engine.store.read_barrier().await?)
    }

    /// Whether what this session reads may lack writes committed elsewhere
    /// unless it waits at a barrier first.
    fn reads_may_lag(&self) -> bool {
        self.setting("read_consistency").as_deref() != Some("local")
            && self.engine.store.reads_may_lag()
    }

    /// How long the session may wait for its client's next statement:
    /// `idle_in_transaction_session_timeout` inside a transaction block,
    /// `idle_session_timeout` outside one. Past it, the connection ends
    /// with the error returned beside it, as PostgreSQL's does.
    pub fn idle_timeout(&self) -> Option<(std::time::Duration, Error)> {
        let (name, sqlstate, what) = match self.txn.is_some() {
            true => (
                "idle_in_transaction_session_timeout",
                IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
                "idle-in-transaction",
            ),
            false => ("idle_session_timeout", IDLE_SESSION_TIMEOUT, "idle-session"),
        };
        let timeout = self
            .setting(name)
            .and_then(|v| parse_timeout(&v))
            .flatten()?;
        let error = Error::new(
            sqlstate,
            format!("terminating connection due to {what} timeout"),
        );
        Some((timeout, error))
    }

    fn statement_timeout(&self) -> Option<std::time::Duration> {
        self.setting("statement_timeout")
            .and_then(|v| parse_timeout(&v))
            .flatten()
    }

    /// A setting's value for this session: what it SET, else the
    /// cluster's (`ALTER SYSTEM`), else the built-in default. None for
    /// names that are not settings.
    pub(crate) fn setting(&self, name: &str) -> Option<String> {
        if name == "transaction_read_only" {
            return Some(if self.read_only() { "on" } else { "off" }.to_string());
        }
        if name == "transaction_isolation" {
            return Some(self.isolation().name().to_string());
        }
        self.settings
            .get(name)
            .cloned()
            .or_else(|| crate::settings::cluster_value(&self.engine.store.snapshot(), name))
    }

    /// Reads a plan's rows to the end, stoppable like any statement.
    pub(crate) async fn collect_frame(
        &self,
        frame: datafusion::dataframe::DataFrame,
    ) -> Result<Vec<RecordBatch>> {
        let stream = self.interrupt.wrap(frame.execute_stream().await?);
        Ok(futures::TryStreamExt::try_collect(stream).await?)
    }

    /// Runs a statement in `isolation`, the level `execute_sql` found
    /// applies to it.
    async fn execute_statement(
        &mut self,
        statement: &DfStatement,
        params: Option<ParamValues>,
        isolation: Isolation,
    ) -> Result<Output> {
        if let DfStatement::Statement(s) = statement {
            match s.as_ref() {
                Statement::StartTransaction { .. } if self.txn.is_none() => {
                    // The block reads the state it starts from.
                    self.read_barrier().await?;
                    return self.transaction_control(s).map_err(|e| self.fail(e));
                }
                Statement::StartTransaction { .. } | Statement::Rollback { .. } => {
                    return self.transaction_control(s).map_err(|e| self.fail(e));
                }
                Statement::Commit { .. } => return self.commit().await,
                _ => {}
            }
        }
        if self.txn.as_ref().is_some_and(|t| t.failed) {
            return Err(in_failed_transaction());
        }
        // `execute_sql` worked out whether this statement is in a read-only
        // transaction before calling here.
        if self
            .read_only_statement
            .load(std::sync::atomic::Ordering::Relaxed)
            && let Some(command) = self.write_command(statement)
        {
            return Err(self.fail(read_only_refusal(&command)));
        }
        // A blind write is planned on this node's replica as it is, which
        // may be behind; whatever failed it there (a table not here yet, a
        // row deleted since) is tried again after a barrier.
        let mut unbarriered =
            self.txn.is_none() && self.reads_may_lag() && is_blind_insert(statement);
        if self.txn.is_none() && reads_state(statement) && !unbarriered {
            self.read_barrier().await?;
        }
        if let Some(txn) = &mut self.txn {
            txn.queried |= takes_snapshot(statement);
        }
        let serializable = self.txn.is_none() && isolation == Isolation::Serializable;
        let mut attempt = 0;
        loop {
            // Each attempt reads afresh.
            self.autocommit_reads = serializable.then(|| Reads::new(self.engine.store.snapshot()));
            self.pin();
            let result = self.execute_once(statement, params.clone()).await;
            match result {
                Err(e) if unbarriered && e.did_nothing() => {
                    unbarriered = false;
                    self.read_barrier().await.map_err(|e| self.fail(e))?;
                }
                Err(e)
                    if e.is_retryable()
                        && self.txn.is_none()
                        && attempt < AUTOCOMMIT_RETRIES_MAX =>
                {
                    // An autocommit statement planned against rows another
                    // statement changed first: plan it again on fresh state,
                    // as PostgreSQL's READ COMMITTED re-checks such rows.
                    attempt += 1;
                    tokio::task::yield_now().await;
                }
                Err(e) => return Err(self.fail(e)),
                Ok(output) => return Ok(output),
            }
        }
    }

    pub(crate) async fn execute_once(
        &mut self,
        statement: &DfStatement,
        params: Option<ParamValues>,
    ) -> Result<Output> {
        if let Some(fast) = self.fast_plan(statement)
            && let Some(output) = self.run_fast(fast, params.as_ref()).await?
        {
            return Ok(output);
        }
        match statement {
            DfStatement::Statement(s) => match s.as_ref() {
                Statement::Query(query) if !query.locks.is_empty() && self.txn.is_some() => {
                    self.query_for_update(query, params).await
                }
                Statement::Query(_) => self.query(statement, params).await,
                Statement::Insert(_) => self.insert(s, params).await,
                Statement::Update(update) => self.update(s, update, params).await,
                Statement::Delete(_) => self.delete(s, params).await,
                Statement::Set(set) if crate::settings::is_alter_system(set) => {
                    self.alter_system(set).await
                }
                Statement::Set(set) => self.set(set),
                Statement::ShowVariable { variable } => self.show(variable),
                Statement::Savepoint { name } => self.savepoint(name),
                Statement::LISTEN { channel } => {
                    self.notify.listen(&names::normalize(channel));
                    Ok(Output::Command(Tag::new("LISTEN")))
                }
                // `UNLISTEN *`; `UNLISTEN "*"` names a channel.
                Statement::UNLISTEN { channel }
                    if channel.quote_style.is_none() && channel.value == "*" =>
                {
                    self.notify.unlisten(None);
                    Ok(Output::Command(Tag::new("UNLISTEN")))
                }
                Statement::UNLISTEN { channel } => {
                    self.notify.unlisten(Some(&names::normalize(channel)));
                    Ok(Output::Command(Tag::new("UNLISTEN")))
                }
                Statement::NOTIFY { channel, payload } => {
                    let channel = names::normalize(channel);
                    self.notify.notify_statement(&channel, payload.as_deref())?;
                    Ok(Output::Command(Tag::new("NOTIFY")))
                }
                Statement::ReleaseSavepoint { name } => self.release_savepoint(name),
                Statement::Copy {
                    target: CopyTarget::File { .. },
                    ..
                } => self.copy_file(s, params).await,
                Statement::Copy { to: true, .. } => self.copy_to(s, params).await,
                Statement::Copy { .. } => self.copy_from(s),
                Statement::Vacuum(vacuum) => self.vacuum(vacuum).await,
                Statement::Prepare {
                    name,
                    data_types,
                    statement,
                } => self.prepare_named(name, data_types, statement).await,
                Statement::Execute {
                    name: Some(name),
                    parameters,
                    immediate: false,
                    ..
                } => Box::pin(self.execute_named(name, parameters)).await,
                Statement::Discard { object_type } => self.discard(*object_type).await,
                Statement::Declare { stmts } => self.declare(stmts, params).await,
                Statement::Fetch {
                    name,
                    direction,
                    into,
                    ..
                } => {
                    self.fetch(name, direction, crate::cursors::is_move(into))
                        .await
                }
                Statement::Close { cursor } => self.close(cursor),
                Statement::Truncate(truncate) if self.txn.is_some() => {
                    self.truncate_in_transaction(truncate).await
                }
                other => {
                    if self.txn.is_some() {
                        outside_transactions(other)?;
                    }
                    self.ddl(other).await
                }
            },
            DfStatement::Explain(explain) => self.explain(explain, params).await,
            DfStatement::CreateExternalTable(create) => self.create_external_table(create).await,
            DfStatement::CopyTo(_) => Err(Error::unsupported("COPY ... TO")),
            DfStatement::Reset(ResetStatement::Variable(name)) => self.reset(name),
        }
    }

    /// Plans a statement with DataFusion over the pinned state.
    pub(crate) async fn plan(
        &self,
        statement: DfStatement,
        params: Option<ParamValues>,
    ) -> Result<LogicalPlan> {
        let state = self.ctx.state();
        let statement = crate::records::whole_rows(&state, statement).await?;
        let plan = state.statement_to_plan(statement).await?;
        let plan = ciab_extensions::integer_literals(plan)?;
        let plan = ciab_extensions::pg_numerics(plan)?;
        let plan = crate::arrays::array_literals(plan)?;
        let plan = crate::arrays::integer_counts(plan)?;
        let plan = ciab_extensions::json::rewrite_plan(plan)?;
        let plan = crate::types::pg_casts(plan)?;
        let plan = ciab_extensions::numeric_sums(plan)?;
        crate::advisory_locks::refuse_repeated_async_calls(&plan)?;
        Ok(match params {
            Some(p) => plan.with_param_values(p)?,
            None => plan,
        })
    }

    pub(crate) async fn query(
        &mut self,
        statement: &DfStatement,
        params: Option<ParamValues>,
    ) -> Result<Output> {
        if let Some(output) = self.query_generic(statement, params.as_ref()).await? {
            return Ok(output);
        }
        let (statement, names) = names::unique_output_names(statement)?;
        let plan = self.plan(statement, params).await?;
        let df = self.ctx.execute_logical_plan(plan).await?;
        let schema = names::rename(df.schema().inner(), &names);
        let stream = df.execute_stream().await?;
        Ok(Output::Rows {
            schema,
            stream,
            tag: None,
        })
    }

    async fn describe(&mut self, statement: &DfStatement) -> Result<(Params, Option<SchemaRef>)> {
        if let Some(fast) = self.fast_plan(statement) {
            let (types, schema) = fast.describe();
            return Ok((Params::typed(types), schema));
        }
        match statement {
            DfStatement::Statement(s) => match s.as_ref() {
                Statement::Query(_) => {
                    let (statement, names) = names::unique_output_names(statement)?;
                    let plan = self.plan(statement, None).await?;
                    let schema = names::rename(plan.schema().inner(), &names);
                    Ok((Params::of_plan(&plan)?, Some(schema)))
                }
                Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => {
                    self.describe_dml(s).await
                }
                Statement::ShowVariable { variable } => {
                    Ok((Params::default(), Some(show_schema(&show_name(variable)))))
                }
                Statement::Execute {
                    name: Some(name), ..
                } => Ok((Params::default(), self.named(name)?.schema.clone())),
                // MOVE answers no rows.
                Statement::Fetch { name, into, .. } => {
                    let schema = self.cursor_schema(name)?;
                    let moving = crate::cursors::is_move(into);
                    Ok((Params::default(), (!moving).then_some(schema)))
                }
                // DECLARE answers no rows; its query's parameters are its own.
                Statement::Declare { stmts } => {
                    let (_, _, query) = crate::cursors::cursor_query(stmts)?;
                    let (params, _) = Box::pin(self.describe(&query)).await?;
                    Ok((params, None))
                }
                Statement::Copy { to: true, .. }
                | Statement::Copy {
                    target: CopyTarget::File { .. },
                    ..
                } => Ok((Params::default(), None)),
                Statement::Copy { .. } => {
                    self.plan_copy(s)?;
                    Ok((Params::default(), None))
                }
                _ => Ok((Params::default(), None)),
            },
            DfStatement::Explain(_) => Ok((Params::default(), Some(explain_schema()))),
            _ => Ok((Params::default(), None)),
        }
    }

    /// Applies row changes: through Raft in autocommit, or to the
    /// transaction's private state inside BEGIN ... COMMIT.
    pub(crate) async fn write(&mut self, mut ops: Vec<WriteOp>) -> Result<Applied> {
        let Some(txn) = &mut self.txn else {
            if let Some(reads) = &self.autocommit_reads {
                ops.splice(0..0, reads.unchanged());
            }
            return Ok(self.engine.store.write(Command::Write { ops }).await?);
        };
        let mut local = (*txn.local).clone();
        let applied = local.apply(&Command::Write { ops: ops.clone() })?;
        // Rows of the base the block deleted: its own, and those foreign
        // keys' actions deleted with them.
        let deleted = ops.iter().filter_map(|op| match op {
            WriteOp::Delete { table, rowids, .. } => Some((*table, rowids.as_slice())),
            _ => None,
        });
        let cascaded = applied.cascaded.iter().map(|(t, r)| (*t, r.as_slice()));
        for (table, rowids) in deleted.chain(cascaded) {
            let base_next = txn.base.table_data(table).map_or(0, |t| t.next_rowid);
            txn.deleted
                .entry(table)
                .or_default()
                .extend(rowids.iter().filter(|&&r| r < base_next));
        }
        txn.local = Arc::new(local);
        self.pin();
        Ok(applied)
    }

    /// Applies a catalog change: through Raft in autocommit, or to the
    /// transaction's private state, to be replayed at COMMIT.
    pub(crate) async fn write_catalog(&mut self, command: Command) -> Result<Applied> {
        let Some(txn) = &mut self.txn else {
            return Ok(self.engine.store.write(command).await?);
        };
        let mut local = (*txn.local).clone();
        let applied = local.apply(&command)?;
        txn.ddl.push(command);
        txn.local = Arc::new(local);
        self.pin();
        Ok(applied)
    }

    /// [`Self::write_catalog`] of a command that depends on the state it
    /// applies to: `command(base)` is what applies. Inside a block it applies
    /// twice: now to the block's private state, and at COMMIT (replayed before
    /// the block's rows) to the state the block started from.
    pub(crate) async fn write_catalog_as(
        &mut self,
        command: impl Fn(&DbState) -> Command,
    ) -> Result<Applied> {
        let Some(txn) = &mut self.txn else {
            let command = command(&self.catalogs.state());
            return self.write_catalog(command).await;
        };
        let mut local = (*txn.local).clone();
        let applied = local.apply(&command(&txn.local))?;
        txn.ddl.push(command(&txn.base));
        txn.local = Arc::new(local);
        self.pin();
        Ok(applied)
    }

    /// Applies catalog changes that stand or fall together (a table and
    /// its serial columns' sequences): one `Transaction` command in
    /// autocommit, in order inside a block.
    pub(crate) async fn write_catalog_all(&mut self, commands: Vec<Command>) -> Result<Applied> {
        if self.txn.is_some() {
            let mut applied = Applied::default();
            for command in commands {
                applied.rows += self.write_catalog(command).await?.rows;
            }
            return Ok(applied);
        }
        let command = transaction(&self.catalogs.state(), self.database(), commands);
        Ok(self.engine.store.write(command).await?)
    }

    fn transaction_control(&mut self, statement: &Statement) -> Result<Output> {
        match statement {
            Statement::StartTransaction { modes, .. } => {
                match &mut self.txn {
                    // BEGIN in a query string of several statements makes
                    // its implicit block, statements before it included,
                    // an explicit one that outlives the string.
                    Some(txn) if txn.implicit => txn.implicit = false,
                    // PostgreSQL warns and carries on.
                    Some(_) => return Ok(Output::Command(Tag::new("BEGIN"))),
                    None => self.begin(false),
                }
                for mode in modes {
                    match mode {
                        TransactionMode::AccessMode(access) => {
                            let txn = self.txn.as_mut().expect("begun above");
                            txn.read_only = *access == TransactionAccessMode::ReadOnly;
                        }
                        TransactionMode::IsolationLevel(level) => {
                            let level =
                                Isolation::parse("transaction_isolation", &level.to_string())?;
                            self.set_isolation(level);
                        }
                    }
                }
                Ok(Output::Command(Tag::new("BEGIN")))
            }
            Statement::Rollback {
                savepoint: Some(name),
                ..
            } => self.rollback_to_savepoint(name),
            Statement::Rollback { .. } => {
                self.roll_back();
                Ok(Output::Command(Tag::new("ROLLBACK")))
            }
            _ => unreachable!("only transaction control reaches here"),
        }
    }

    /// Commits the implicit block of a query string that ended, if one is
    /// open.
    pub(crate) async fn end_implicit_block(&mut self) -> Result<()> {
        if self.txn.as_ref().is_some_and(|t| t.implicit) {
            self.commit().await?;
        }
        Ok(())
    }

    /// The isolation level of a transaction begun now.
    fn default_isolation(&self) -> Isolation {
        self.setting("default_transaction_isolation")
            .and_then(|v| Isolation::parse("default_transaction_isolation", &v).ok())
            .unwrap_or(Isolation::RepeatableRead)
    }

    /// The isolation level of the statement about to run: its block's, or
    /// (outside one) its own.
    fn isolation(&self) -> Isolation {
        match &self.txn {
            Some(txn) => txn.isolation,
            None => self.default_isolation(),
        }
    }

    /// Sets the open block's isolation level: a SERIALIZABLE block keeps
    /// what it reads from here on (nothing before: it has not queried).
    fn set_isolation(&mut self, isolation: Isolation) {
        let txn = self.txn.as_mut().expect("a block to set");
        debug_assert!(!txn.queried, "the level is fixed once the block queried");
        txn.isolation = isolation;
        txn.reads = (isolation == Isolation::Serializable).then(|| Reads::new(txn.base.clone()));
        self.pin();
    }

    /// Records that the running statement read `table`, where its
    /// transaction is serializable.
    pub(crate) fn record_read(&self, table: TableId) {
        if let Some(reads) = self.reads() {
            reads.record(table);
        }
    }

    /// Whether a transaction begun now would be read-only.
    fn default_read_only(&self) -> bool {
        self.setting("default_transaction_read_only")
            .is_some_and(|v| is_on(&v))
    }

    /// Whether the statement about to run is in a read-only transaction:
    /// its block's, or (outside one) its own.
    pub(crate) fn read_only(&self) -> bool {
        match &self.txn {
            Some(txn) => txn.read_only,
            None => self.default_read_only(),
        }
    }

    /// The command a read-only transaction refuses that the statement
    /// would run, named as PostgreSQL names it; `None` for a statement
    /// that only reads (or only changes the session). What PostgreSQL
    /// refuses: INSERT, UPDATE, DELETE, COPY FROM, every CREATE, ALTER and
    /// DROP, TRUNCATE, COMMENT, SELECT ... FOR UPDATE and its kin, and
    /// EXPLAIN ANALYZE and EXECUTE of any of those.
    fn write_command(&self, statement: &DfStatement) -> Option<String> {
        let statement = match statement {
            DfStatement::Statement(s) => s.as_ref(),
            DfStatement::Explain(explain) if explain.options.analyze => {
                return self.write_command(&explain.statement);
            }
            DfStatement::CreateExternalTable(_) => return Some("CREATE EXTERNAL TABLE".into()),
            DfStatement::Explain(_) | DfStatement::Reset(_) | DfStatement::CopyTo(_) => {
                return None;
            }
        };
        match statement {
            Statement::Query(query) => {
                let lock = query.locks.first()?;
                Some(format!("SELECT FOR {}", lock.lock_type))
            }
            Statement::Execute {
                name: Some(name), ..
            } => match self.named(name).ok()?.statement.as_deref()? {
                Parsed::Sql(inner) => self.write_command(inner),
                Parsed::Graph(text) => graph_write_command(text),
            },
            Statement::Copy { to: true, .. } => None,
            Statement::Copy { .. } => Some("COPY FROM".into()),
            Statement::ShowVariable { .. }
            | Statement::Set(_)
            | Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. }
            | Statement::LISTEN { .. }
            | Statement::UNLISTEN { .. }
            | Statement::NOTIFY { .. }
            | Statement::Prepare { .. }
            | Statement::Deallocate { .. }
            | Statement::Discard { .. }
            | Statement::Declare { .. }
            | Statement::Fetch { .. }
            | Statement::Close { .. }
            | Statement::Analyze(_)
            | Statement::Vacuum(_) => None,
            other => Some(command_words(&other.to_string())),
        }
    }

    /// Opens a transaction block on the store's latest state.
    fn begin(&mut self, implicit: bool) {
        assert!(self.txn.is_none(), "blocks do not nest");
        self.locks.begin_transaction();
        let base = self.engine.store.snapshot();
        let isolation = self.default_isolation();
        let reads = (isolation == Isolation::Serializable).then(|| Reads::new(base.clone()));
        self.txn = Some(Transaction {
            local: base.clone(),
            base,
            deleted: HashMap::new(),
            ddl: Vec::new(),
            failed: false,
            implicit,
            settings: self.settings.clone(),
            local_settings: BTreeMap::new(),
            savepoints: Vec::new(),
            read_only: self.default_read_only(),
            isolation,
            reads,
            queried: false,
        });
        self.in_block
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Ends the transaction block, if any, keeping none of its writes.
    fn roll_back(&mut self) {
        self.sequences
            .lock()
            .expect("lock poisoned")
            .forget_uncommitted();
        self.notify.discard(self.locks.transaction());
        if let Some(txn) = self.txn.take() {
            self.restore_settings(txn.settings);
        }
        self.close_cursors();
        self.in_block
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// The explicit transaction block savepoints live in: an implicit one
    /// has none, as in PostgreSQL.
    fn explicit_block(&mut self, statement: &str) -> Result<&mut Transaction> {
        match &mut self.txn {
            Some(txn) if !txn.implicit => Ok(txn),
            _ => Err(no_transaction(statement)),
        }
    }

    /// `SAVEPOINT name`: remembers the transaction's state under `name`
    /// (a repeated name hides the older savepoint until it is released).
    fn savepoint(&mut self, name: &Ident) -> Result<Output> {
        let settings = self.settings.clone();
        let notify = self.notify.mark();
        let txn = self.explicit_block("SAVEPOINT")?;
        txn.savepoints.push(Savepoint {
            name: names::normalize(name),
            local: txn.local.clone(),
            deleted: txn.deleted.clone(),
            ddl_len: txn.ddl.len(),
            settings,
            local_settings: txn.local_settings.clone(),
            notify,
        });
        Ok(Output::Command(Tag::new("SAVEPOINT")))
    }

    /// `RELEASE [SAVEPOINT] name`: forgets `name` and every later savepoint,
    /// keeping their writes.
    fn release_savepoint(&mut self, name: &Ident) -> Result<Output> {
        let txn = self.explicit_block("RELEASE SAVEPOINT")?;
        let at = find_savepoint(txn, name)?;
        txn.savepoints.truncate(at);
        Ok(Output::Command(Tag::new("RELEASE")))
    }

    /// `ROLLBACK TO [SAVEPOINT] name`: undoes every write since `name` was
    /// set, ends an aborted state, and keeps `name` for another rollback.
    fn rollback_to_savepoint(&mut self, name: &Ident) -> Result<Output> {
        let txn = self.explicit_block("ROLLBACK TO SAVEPOINT")?;
        let at = find_savepoint(txn, name)?;
        txn.savepoints.truncate(at + 1);
        let savepoint = &txn.savepoints[at];
        txn.local = savepoint.local.clone();
        txn.deleted = savepoint.deleted.clone();
        txn.ddl.truncate(savepoint.ddl_len);
        txn.failed = false;
        txn.local_settings = savepoint.local_settings.clone();
        let notify = savepoint.notify;
        let settings = savepoint.settings.clone();
        self.notify.roll_back_to(notify);
        self.pin();
        self.restore_settings(settings);
        Ok(Output::Command(Tag::new("ROLLBACK")))
    }

    /// Whether the session is outside a transaction block, inside one, or in
    /// one that failed: what ReadyForQuery reports.
    pub fn transaction_state(&self) -> TransactionState {
        match &self.txn {
            None => TransactionState::Idle,
            Some(txn) if txn.failed => TransactionState::Failed,
            Some(_) => TransactionState::InBlock,
        }
    }

    /// Ends the transaction, sending the net effect of its writes through
    /// Raft as one command: applied whole, or refused whole. A block that ran
    /// DDL sends it ahead of the writes in one `Command::Transaction`.
    async fn commit(&mut self) -> Result<Output> {
        let Some(txn) = self.txn.take() else {
            return Ok(Output::Command(Tag::new("COMMIT")));
        };
        self.close_cursors();
        self.in_block
            .store(false, std::sync::atomic::Ordering::Relaxed);
        // Values the block drew from sequences it made: stored with them.
        let drawn = self
            .sequences
            .lock()
            .expect("lock poisoned")
            .take_uncommitted(&txn.local);
        if txn.failed {
            self.notify.discard(self.locks.transaction());
            self.restore_settings(txn.settings);
            return Ok(Output::Command(Tag::new("ROLLBACK")));
        }
        let at_begin = txn.settings.clone();
        let local_settings = txn.local_settings.clone();
        let written = self.write_block(txn, drawn).await;
        let released = self
            .locks
            .release_transaction(self.locks.transaction())
            .await;
        match written {
            Ok(wrote) => {
                self.end_local_settings(local_settings);
                if let Err(e) = self.notify.commit(self.locks.transaction()).await {
                    // The block's writes are committed, which its client
                    // must hear; its notifications are lost, as a
                    // PostgreSQL server that fails after a commit loses
                    // them.
                    if !wrote {
                        return Err(e);
                    }
                    tracing::warn!(error = %e, "a committed transaction's notifications were not sent");
                }
                released?;
                Ok(Output::Command(Tag::new("COMMIT")))
            }
            // The block is rolled back: its SETs and notifications with it.
            Err(e) => {
                self.notify.discard(self.locks.transaction());
                self.restore_settings(at_begin);
                Err(e)
            }
        }
    }

    /// Sends a committing block's net effect through Raft; whether it had
    /// any.
    async fn write_block(&mut self, txn: Transaction, drawn: Vec<Command>) -> Result<bool> {
        let mut ops = Vec::new();
        for (&id, local) in &txn.local.tables {
            let base = txn.base.table_data(id);
            if base.is_some_and(|b| Arc::ptr_eq(b, local)) {
                continue;
            }
            let (_, def) = txn
                .local
                .catalog
                .table_by_id(id)
                .expect("catalog and data agree");
            let base_next = base.map_or(0, |b| b.next_rowid);
            if let Some(deleted) = txn.deleted.get(&id)
                && !deleted.is_empty()
            {
                ops.push(WriteOp::Delete {
                    table: id,
                    version: def.version,
                    rowids: deleted.clone(),
                });
            }
            let inserted = crate::dml::rows_after(local, def, base_next)?;
            if inserted.num_rows() > 0 {
                ops.push(WriteOp::Insert {
                    table: id,
                    version: def.version,
                    rows: ciab_storage::Rows::encode(&inserted)?,
                });
            }
        }
        // A serializable block's reads are checked against the state it
        // commits onto, before its own DDL changes the tables it read.
        let unchanged = match &txn.reads {
            Some(reads) if !ops.is_empty() || !txn.ddl.is_empty() => reads.unchanged(),
            _ => Vec::new(),
        };
        assert!(
            drawn.is_empty() || !txn.ddl.is_empty(),
            "only a block's DDL makes sequences that exist nowhere else"
        );
        if txn.ddl.is_empty() {
            ops.splice(0..0, unchanged);
            if ops.is_empty() {
                return Ok(false);
            }
            self.engine.store.write(Command::Write { ops }).await?;
        } else {
            let checks = (!unchanged.is_empty()).then_some(Command::Write { ops: unchanged });
            let write = (!ops.is_empty()).then_some(Command::Write { ops });
            let mut commands: Vec<Command> = checks.into_iter().collect();
            commands.extend(txn.ddl);
            commands.extend(drawn);
            commands.extend(write);
            let command = transaction(&txn.base, self.database(), commands);
            self.engine.store.write(command).await?;
        }
        Ok(true)
    }

    /// Puts back what `SET LOCAL` changed, as a committed block ends. A
    /// custom setting stays known, empty, as in PostgreSQL.
    fn end_local_settings(&mut self, local_settings: BTreeMap<String, Option<String>>) {
        if local_settings.is_empty() {
            return;
        }
        let mut settings = self.settings.clone();
        for (name, before) in local_settings {
            match before {
                Some(value) => settings.insert(name, value),
                None if is_custom_setting(&name) => settings.insert(name, String::new()),
                None => settings.remove(&name),
            };
        }
        self.restore_settings(settings);
    }

    fn set(&mut self, set: &Set) -> Result<Output> {
        let (name, value, local) = match set {
            Set::SingleAssignment {
                scope,
                variable,
                values,
                ..
            } => {
                let (name, value) = assignment(variable, values);
                (name, value, matches!(scope, Some(ContextModifier::Local)))
            }
            Set::SetTimeZone { local, value } => {
                let zone = value.to_string().trim_matches('\'').to_string();
                ("timezone".to_string(), zone, *local)
            }
            // `SET TRANSACTION READ ONLY`, `SET SESSION CHARACTERISTICS AS
            // TRANSACTION ISOLATION LEVEL SERIALIZABLE`: the settings they
            // stand for.
            Set::SetTransaction {
                modes,
                snapshot: None,
                session,
            } => {
                let prefix = if *session { "default_" } else { "" };
                for mode in modes {
                    let (name, value) = match mode {
                        TransactionMode::AccessMode(access) => {
                            let on = *access == TransactionAccessMode::ReadOnly;
                            (
                                "transaction_read_only",
                                if on { "on" } else { "off" }.to_string(),
                            )
                        }
                        TransactionMode::IsolationLevel(level) => (
                            "transaction_isolation",
                            level.to_string().to_ascii_lowercase(),
                        ),
                    };
                    self.assign(format!("{prefix}{name}"), Some(value), false)?;
                }
                return Ok(Output::Command(Tag::new("SET")));
            }
            _ => return Err(Error::unsupported(format!("{set}"))),
        };
        self.assign(name, Some(value), local)?;
        Ok(Output::Command(Tag::new("SET")))
    }

    /// Changes a setting for the session (`SET`, `set_config(..., false)`)
    /// or until its transaction block ends (`SET LOCAL`, `set_config(...,
    /// true)`); `None` puts back its default.
    fn assign(&mut self, name: String, value: Option<String>, local: bool) -> Result<()> {
        if name == "transaction_read_only" {
            // The transaction's own, as in PostgreSQL, where it starts as
            // default_transaction_read_only says and outside a block
            // changes nothing.
            let read_only = match &value {
                Some(value) => {
                    one_of(&name, value, BOOL_VALUES)?;
                    is_on(value)
                }
                None => self.default_read_only(),
            };
            if let Some(txn) = &mut self.txn {
                // Read-only to read-write only before the first query.
                if txn.queried && txn.read_only && !read_only {
                    return Err(Error::new(
                        sqlstate::ACTIVE_SQL_TRANSACTION,
                        "transaction read-write mode must be set before any query",
                    ));
                }
                txn.read_only = read_only;
            }
            return Ok(());
        }
        if name == "transaction_isolation" {
            // The block's own, fixed once it queried; outside a block a
            // SET of it changes nothing, as in PostgreSQL.
            let isolation = match &value {
                Some(value) => Isolation::parse(&name, value)?,
                None => self.default_isolation(),
            };
            let Some(txn) = &self.txn else {
                return Ok(());
            };
            if txn.isolation == isolation {
                return Ok(());
            }
            if txn.queried {
                return Err(Error::new(
                    sqlstate::ACTIVE_SQL_TRANSACTION,
                    "SET TRANSACTION ISOLATION LEVEL must be called before any query",
                ));
            }
            if !txn.savepoints.is_empty() {
                return Err(Error::new(
                    sqlstate::ACTIVE_SQL_TRANSACTION,
                    "SET TRANSACTION ISOLATION LEVEL must not be called in a subtransaction",
                ));
            }
            self.set_isolation(isolation);
            return Ok(());
        }
        let value = match value {
            Some(value) => Some(settable_value(&name, &value, local)?),
            // A custom setting's default is empty.
            None if is_custom_setting(&name) => Some(String::new()),
            None => {
                resettable(&name)?;
                None
            }
        };
        let before = self.settings.get(&name).cloned();
        match &mut self.txn {
            // PostgreSQL warns that SET LOCAL outside a block does nothing,
            // past making a custom setting known (empty).
            None if local => {
                if is_custom_setting(&name) && before.is_none() {
                    self.settings.insert(name, String::new());
                    self.publish_settings();
                }
                return Ok(());
            }
            None => {}
            Some(txn) if local => {
                txn.local_settings.entry(name.clone()).or_insert(before);
            }
            // A plain SET after SET LOCAL outlives the block.
            Some(txn) => {
                txn.local_settings.remove(&name);
            }
        }
        if name.starts_with("datafusion.") {
            self.set_datafusion_option(&name, value.as_deref())?;
        }
        match value {
            Some(value) => self.settings.insert(name.clone(), value),
            None => self.settings.remove(&name),
        };
        if name == "search_path" {
            self.set_default_schema(self.default_schema());
        }
        self.publish_settings();
        Ok(())
    }

    /// Sets one of DataFusion's own options (`datafusion.*`) for this
    /// session's plans, or puts back its default.
    fn set_datafusion_option(&self, name: &str, value: Option<&str>) -> Result<()> {
        let default;
        let value = match value {
            Some(value) => value,
            None => {
                default = datafusion::config::ConfigOptions::new()
                    .entries()
                    .into_iter()
                    .find(|e| e.key == name)
                    .and_then(|e| e.value)
                    .unwrap_or_default();
                &default
            }
        };
        self.ctx
            .state_ref()
            .write()
            .config_mut()
            .options_mut()
            .set(name, value)?;
        Ok(())
    }

    /// `ALTER SYSTEM SET name = value` and `ALTER SYSTEM RESET name | ALL`
    /// (parsed as `SET GLOBAL`, see `settings::parse_alter_system`): the
    /// default of a setting for every session on every node, through Raft.
    /// Sessions that SET it themselves keep their value; search_path
    /// applies to sessions that start after the change.
    async fn alter_system(&mut self, set: &Set) -> Result<Output> {
        let Set::SingleAssignment {
            variable, values, ..
        } = set
        else {
            unreachable!("ALTER SYSTEM parses to a single assignment")
        };
        if self.txn.is_some() {
            return Err(in_block("ALTER SYSTEM"));
        }
        let (name, value) = assignment(variable, values);
        let reset = matches!(&values[..], [SqlExpr::Identifier(i)] if i.value.eq_ignore_ascii_case("default"));
        let changed_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let commands: Vec<Command> = if reset && name == "all" {
            let state = self.engine.store.snapshot();
            state
                .catalog
                .settings
                .keys()
                .map(|name| Command::AlterSystem {
                    name: name.clone(),
                    value: None,
                    changed_at: changed_at.clone(),
                })
                .collect()
        } else {
            let value = if reset {
                refuse_fixed(&name)?;
                if crate::settings::default_value(&name).is_none() {
                    return Err(unrecognized_setting(&name));
                }
                None
            } else {
                Some(checked_setting(&name, &value)?)
            };
            vec![Command::AlterSystem {
                name,
                value,
                changed_at,
            }]
        };
        for command in commands {
            self.engine.store.write(command).await?;
        }
        Ok(Output::Command(Tag::new("ALTER SYSTEM")))
    }

    /// `RESET name` and `RESET ALL`: back to the default.
    fn reset(&mut self, name: &datafusion::sql::sqlparser::ast::ObjectName) -> Result<Output> {
        let name = name.to_string().to_ascii_lowercase();
        if name == "all" {
            self.reset_all();
        } else {
            self.assign(name, None, false)?;
        }
        Ok(Output::Command(Tag::new("RESET")))
    }

    /// `RESET ALL`: every setting back to its default. PostgreSQL keeps
    /// the custom settings it has seen, empty.
    fn reset_all(&mut self) {
        let kept = self
            .settings
            .keys()
            .filter(|name| is_custom_setting(name))
            .map(|name| (name.clone(), String::new()))
            .collect();
        self.restore_settings(kept);
    }

    /// `DISCARD ALL | PLANS | SEQUENCES | TEMP`: forgets session state, as
    /// a connection pool asks before it hands a connection to another
    /// client.
    async fn discard(&mut self, object: DiscardObject) -> Result<Output> {
        match object {
            DiscardObject::ALL => self.forget_session_state().await?,
            DiscardObject::SEQUENCES => self.forget_sequences(),
            DiscardObject::PLANS => self.plans = Default::default(),
            // No session has temporary tables.
            DiscardObject::TEMP => {}
        }
        Ok(Output::Command(Tag::new(format!("DISCARD {object}"))))
    }

    /// `DISCARD ALL`, outside a transaction block only: RESET ALL,
    /// DEALLOCATE ALL, UNLISTEN *, pg_advisory_unlock_all() and DISCARD
    /// SEQUENCES at once.
    async fn forget_session_state(&mut self) -> Result<()> {
        if self.txn.is_some() {
            return Err(in_block("DISCARD ALL"));
        }
        self.reset_all();
        self.deallocate(None);
        self.plans = Default::default();
        self.notify.unlisten(None);
        self.notify.commit(self.locks.transaction()).await?;
        self.locks.release_session_locks().await?;
        self.forget_sequences();
        Ok(())
    }

    fn forget_sequences(&self) {
        self.sequences
            .lock()
            .expect("lock poisoned")
            .forget_current();
    }

    /// Puts back the settings a transaction or savepoint started with.
    /// Custom settings seen since stay known, empty, as in PostgreSQL.
    fn restore_settings(&mut self, mut settings: BTreeMap<String, String>) {
        for name in self.settings.keys() {
            if is_custom_setting(name) && !settings.contains_key(name) {
                settings.insert(name.clone(), String::new());
            }
        }
        let changed: Vec<(String, Option<String>)> = self
            .settings
            .iter()
            .filter(|(name, value)| {
                name.starts_with("datafusion.") && settings.get(*name) != Some(value)
            })
            .map(|(name, _)| (name.clone(), settings.get(name).cloned()))
            .collect();
        for (name, value) in changed {
            self.set_datafusion_option(&name, value.as_deref())
                .expect("a value the option took before");
        }
        self.settings = settings;
        self.set_default_schema(self.default_schema());
        self.publish_settings();
    }

    /// The first schema of the session's search_path (see [`Self::setting`]).
    pub(crate) fn default_schema(&self) -> String {
        let path = self
            .setting("search_path")
            .expect("search_path is a setting");
        first_schema(&path)
    }

    /// Shows the session's settings to `pg_settings`.
    fn publish_settings(&mut self) {
        self.settings_generation += 1;
        self.stores.set_session(&self.settings);
        self.with_facts(|facts| facts.settings = self.settings.clone());
    }

    /// Changes what the session's plans, made from now on, know of it.
    pub(crate) fn with_facts(&self, f: impl FnOnce(&mut SessionFacts)) {
        let state = self.ctx.state_ref();
        let mut state = state.write();
        let facts = state
            .config_mut()
            .options_mut()
            .extensions
            .get_mut::<SessionFacts>()
            .expect("a session's config carries its facts");
        f(facts);
    }

    /// The schema unqualified names resolve in: the first of search_path.
    fn set_default_schema(&self, schema: String) {
        self.ctx
            .state_ref()
            .write()
            .config_mut()
            .options_mut()
            .catalog
            .default_schema = schema;
    }

    fn show(&self, variable: &[datafusion::sql::sqlparser::ast::Ident]) -> Result<Output> {
        let name = show_name(variable);
        if name == "all" {
            return self.show_all();
        }
        let value = self
            .setting(&name)
            .ok_or_else(|| unrecognized_setting(&name))?;
        let schema = show_schema(&name);
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec![value]))],
        )?;
        Ok(rows_output(schema, vec![batch], Some(Tag::new("SHOW"))))
    }

    /// `SHOW ALL`: every setting's name, value and description.
    fn show_all(&self) -> Result<Output> {
        let schema = show_schema("all");
        let settings = crate::settings::SETTINGS;
        let values: Vec<String> = settings
            .iter()
            .map(|s| {
                self.setting(&s.name.to_ascii_lowercase())
                    .expect("a listed setting has a value")
            })
            .collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    settings.iter().map(|s| s.name),
                )),
                Arc::new(StringArray::from(values)),
                Arc::new(StringArray::from_iter_values(
                    settings.iter().map(|s| s.description),
                )),
            ],
        )?;
        Ok(rows_output(schema, vec![batch], Some(Tag::new("SHOW"))))
    }
}

/// The setting a SET names (lower case) and its value as text.
fn assignment(variable: &ObjectName, values: &[SqlExpr]) -> (String, String) {
    let name = variable.to_string().to_ascii_lowercase();
    let value = values
        .iter()
        .map(|v| match v {
            SqlExpr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
                other => other.to_string(),
            },
            SqlExpr::Identifier(i) => i.value.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    (name, value)
}

/// A value a session may give `name` (until its block ends, if `local`),
/// as it stores it.
pub(crate) fn settable_value(name: &str, value: &str, local: bool) -> Result<String> {
    if is_custom_setting(name) {
        // An application's own setting (`app.user_id`): any text, read back
        // with SHOW and current_setting, as in PostgreSQL.
        return Ok(value.to_string());
    }
    if name.starts_with("datafusion.") {
        if local {
            return Err(Error::unsupported(format!("SET LOCAL {name}")));
        }
        // Checked on options of their own: the session's change later.
        datafusion::config::ConfigOptions::new().set(name, value)?;
        return Ok(value.to_string());
    }
    refuse_node_setting(name)?;
    checked_setting(name, value)
}

/// Whether a session may put `name` back to its default.
pub(crate) fn resettable(name: &str) -> Result<()> {
    if name.starts_with("datafusion.") {
        return Ok(());
    }
    if crate::settings::default_value(name).is_none() {
        return Err(unrecognized_setting(name));
    }
    refuse_fixed(name)?;
    refuse_node_setting(name)
}

/// A node-wide limit: one session's value would mean nothing.
fn refuse_node_setting(name: &str) -> Result<()> {
    if NODE_SETTINGS.contains(&name) {
        return Err(Error::new(
            sqlstate::CANT_CHANGE_RUNTIME_PARAM,
            format!(
                "parameter \"{name}\" cannot be changed now (ALTER SYSTEM SET changes it for \
                 every node)"
            ),
        ));
    }
    Ok(())
}

/// A value for a setting, checked and normalised as SET and ALTER SYSTEM
/// store it: the setting exists and may change, ciab honours the value,
/// and timeouts read as PostgreSQL shows them.
fn checked_setting(name: &str, value: &str) -> Result<String> {
    if crate::settings::default_value(name).is_none() {
        return Err(unrecognized_setting(name));
    }
    refuse_fixed(name)?;
    check_setting(name, value)?;
    if name == "max_connections" {
        return match value.trim().trim_matches('\'').parse::<usize>() {
            Ok(n) if (1..=CONNECTIONS_MAX).contains(&n) => Ok(n.to_string()),
            _ => Err(Error::new(
                sqlstate::INVALID_PARAMETER_VALUE,
                format!(
                    "invalid value for parameter \"{name}\": \"{value}\" \
                     (1 to {CONNECTIONS_MAX})"
                ),
            )),
        };
    }
    if name == "memory_limit" {
        parse_memory_limit(value)?;
        return Ok(value.trim().trim_matches('\'').trim().to_string());
    }
    if name == ciab_storage::DISK_RESERVE_SETTING {
        return match ciab_storage::parse_bytes(value) {
            Some(_) => Ok(value.trim().trim_matches('\'').trim().to_string()),
            None => Err(Error::new(
                sqlstate::INVALID_PARAMETER_VALUE,
                format!(
                    "invalid value for parameter \"{name}\": \"{value}\" (bytes, or a size \
                     such as '256MB' or '1GB')"
                ),
            )),
        };
    }
    if !TIMEOUT_SETTINGS.contains(&name) {
        return Ok(value.to_string());
    }
    match parse_timeout(value) {
        Some(timeout) => Ok(timeout_text(timeout)),
        None => Err(Error::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("invalid value for parameter \"{name}\": \"{value}\""),
        )),
    }
}

/// The settings that bound a whole node, which only ALTER SYSTEM changes.
const NODE_SETTINGS: [&str; 3] = [
    "max_connections",
    "memory_limit",
    ciab_storage::DISK_RESERVE_SETTING,
];

/// The settings that are durations, shown as PostgreSQL shows them.
const TIMEOUT_SETTINGS: [&str; 4] = [
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "idle_session_timeout",
];

/// The most `max_connections` may allow: PostgreSQL's own bound.
const CONNECTIONS_MAX: usize = 262_143;

/// Whether `name` is a custom setting: two or more words joined by dots
/// (`app.user_id`), none of ciab's own or DataFusion's.
pub(crate) fn is_custom_setting(name: &str) -> bool {
    name.contains('.')
        && !name.starts_with("datafusion.")
        && crate::settings::find(name).is_none()
        && name.split('.').all(|part| !part.is_empty())
}

pub(crate) fn unrecognized_setting(name: &str) -> Error {
    Error::new(
        sqlstate::UNDEFINED_OBJECT,
        format!("unrecognized configuration parameter \"{name}\""),
    )
}

/// Settings fixed when the server was built (server_version) refuse SET
/// and RESET, as in PostgreSQL.
fn refuse_fixed(name: &str) -> Result<()> {
    if crate::settings::find(name).is_some_and(|s| s.fixed) {
        return Err(Error::new(
            sqlstate::CANT_CHANGE_RUNTIME_PARAM,
            format!("parameter \"{name}\" cannot be changed"),
        ));
    }
    Ok(())
}

/// Settings whose other values would change results ciab does not yet
/// produce differently: refused rather than silently ignored.
fn check_setting(name: &str, value: &str) -> Result<()> {
    let normalized = value.trim().to_ascii_lowercase();
    let honoured = match name {
        "timezone" => matches!(
            normalized.as_str(),
            "utc" | "etc/utc" | "gmt" | "z" | "zulu" | "+00" | "0" | "+00:00" | "local" | "default"
        ),
        "datestyle" => normalized.starts_with("iso"),
        "intervalstyle" => normalized == "postgres",
        "client_encoding" => {
            matches!(normalized.as_str(), "utf8" | "utf-8" | "unicode")
        }
        "standard_conforming_strings" => normalized == "on",
        "default_table_access_method" => normalized == "heap",
        "default_tablespace" => normalized.is_empty(),
        "check_function_bodies" | "row_security" | "default_transaction_read_only" => {
            return one_of(name, value, BOOL_VALUES);
        }
        "default_transaction_isolation" => {
            return one_of(name, value, &crate::serializable::LEVELS);
        }
        "synchronous_commit" => {
            let levels = ["on", "off", "local", "remote_write", "remote_apply"];
            return one_of(name, value, &levels);
        }
        "xmloption" => return one_of(name, value, &["content", "document"]),
        "plan_cache_mode" => return one_of(name, value, &crate::plan_cache::MODES),
        "work_mem" | "maintenance_work_mem" => {
            return match ciab_storage::parse_bytes(value) {
                Some(_) => Ok(()),
                None => Err(Error::new(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    format!("invalid value for parameter \"{name}\": \"{value}\""),
                )),
            };
        }
        "bytea_output" => normalized == "hex",
        "read_consistency" => {
            return if matches!(normalized.as_str(), "linearizable" | "local") {
                Ok(())
            } else {
                Err(Error::new(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    format!(
                        "invalid value for parameter \"read_consistency\": \"{value}\" \
                         (linearizable or local)"
                    ),
                ))
            };
        }
        _ => true,
    };
    if honoured {
        Ok(())
    } else {
        Err(Error::unsupported(format!("{name} = '{value}'")))
    }
}

/// How PostgreSQL's bool settings may be written.
const BOOL_VALUES: &[&str] = &["on", "off", "true", "false", "yes", "no", "1", "0"];

/// Whether a bool setting's value (one of [`BOOL_VALUES`]) means on.
fn is_on(value: &str) -> bool {
    let normalized = value.trim().trim_matches('\'').to_ascii_lowercase();
    matches!(normalized.as_str(), "on" | "true" | "yes" | "1")
}

/// Accepts `value` for `name` if it is one of `allowed` (any case), as
/// PostgreSQL's enum and bool settings do; 22023 otherwise.
fn one_of(name: &str, value: &str, allowed: &[&str]) -> Result<()> {
    let normalized = value.trim().trim_matches('\'').to_ascii_lowercase();
    if allowed.contains(&normalized.as_str()) {
        return Ok(());
    }
    Err(Error::new(
        sqlstate::INVALID_PARAMETER_VALUE,
        format!("invalid value for parameter \"{name}\": \"{value}\""),
    ))
}

/// Runs a store operation to its end from inside a function DataFusion
/// calls synchronously (`nextval`, `ciab_remove_node`): it parks this worker
/// thread, which the multi-threaded runtime makes up for.
pub(crate) fn block_on_store<T>(
    operation: impl std::future::Future<Output = ciab_storage::Result<T>>,
) -> Result<T> {
    let done = ciab_extensions::block_on(operation).ok_or_else(|| {
        Error::new(
            sqlstate::INTERNAL_ERROR,
            "writing from a function needs the multi-threaded runtime",
        )
    })?;
    Ok(done?)
}

/// Whether a statement reads the database (so waits for a linearizable
/// state first). Session settings do not; ALTER SYSTEM writes through the
/// log, which orders it anyway.
fn reads_state(statement: &DfStatement) -> bool {
    match statement {
        DfStatement::Statement(s) => !matches!(
            s.as_ref(),
            Statement::Set(_) | Statement::ShowVariable { .. }
        ),
        DfStatement::Reset(_) => false,
        _ => true,
    }
}

/// Whether a statement in a block reads the block's snapshot, as
/// PostgreSQL's take theirs: after one, the block's isolation level and
/// read-write mode are fixed.
fn takes_snapshot(statement: &DfStatement) -> bool {
    reads_state(statement)
        && !matches!(
            statement,
            DfStatement::Statement(s) if matches!(
                s.as_ref(),
                Statement::Savepoint { .. } | Statement::ReleaseSavepoint { .. }
            )
        )
}

/// An INSERT of VALUES that reads no rows: no subquery, no ON CONFLICT.
/// In autocommit it needs no read barrier: the log orders it after every
/// write committed before it, and the state machine checks it (constraints,
/// the table's version) against the state it applies to, which is complete.
fn is_blind_insert(statement: &DfStatement) -> bool {
    let DfStatement::Statement(s) = statement else {
        return false;
    };
    let Statement::Insert(insert) = s.as_ref() else {
        return false;
    };
    let values = insert.source.as_ref().is_some_and(|q| {
        q.with.is_none()
            && matches!(
                q.body.as_ref(),
                datafusion::sql::sqlparser::ast::SetExpr::Values(_)
            )
    });
    let reads = datafusion::sql::sqlparser::ast::visit_expressions(s.as_ref(), |e| {
        if matches!(
            e,
            SqlExpr::Subquery(_) | SqlExpr::Exists { .. } | SqlExpr::InSubquery { .. }
        ) {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    });
    values && insert.on.is_none() && reads.is_continue()
}

/// The first schema of a search_path value, where unqualified names resolve.
fn first_schema(search_path: &str) -> String {
    search_path
        .split(',')
        .map(|s| s.trim().trim_matches('"'))
        .find(|s| *s != "$user" && !s.is_empty())
        .unwrap_or(ciab_storage::DEFAULT_SCHEMA)
        .to_string()
}

/// The setting a SHOW names: `SHOW TRANSACTION ISOLATION LEVEL` is
/// `transaction_isolation`, as in PostgreSQL.
fn show_name(variable: &[Ident]) -> String {
    match names::ident_list(variable).as_str() {
        "transaction.isolation.level" => "transaction_isolation".to_string(),
        name => name.to_string(),
    }
}

/// SHOW's one column, named as PostgreSQL spells the setting (`DateStyle`);
/// SHOW ALL's name, setting and description.
fn show_schema(name: &str) -> SchemaRef {
    if name == "all" {
        let text = |n: &str| Field::new(n, DataType::Utf8, false);
        return Arc::new(Schema::new(vec![
            text("name"),
            text("setting"),
            text("description"),
        ]));
    }
    let name = crate::settings::find(name).map_or(name, |s| s.name);
    Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, false)]))
}

pub(crate) fn explain_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "QUERY PLAN",
        DataType::Utf8,
        false,
    )]))
}

/// Rows already in memory, as an output stream.
pub(crate) fn rows_output(
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    tag: Option<Tag>,
) -> Output {
    let stream = futures::stream::iter(batches.into_iter().map(Ok));
    Output::Rows {
        schema: schema.clone(),
        stream: Box::pin(RecordBatchStreamAdapter::new(schema, stream)),
        tag,
    }
}

/// COPY's boolean options as sqlparser takes them: PostgreSQL also writes
/// `FREEZE on` and `HEADER off` (pgbench -i does), sqlparser only
/// true/false. Rewritten on tokens, so string literals stay as they are.
fn copy_boolean_options(sql: &str) -> Option<String> {
    let has = |word| names::contains_ignore_ascii_case(sql, word);
    if !has("copy") || !(has("freeze") || has("header")) {
        return None;
    }
    let mut tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let words: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i], Token::Whitespace(_)))
        .collect();
    let mut changed = false;
    for triple in words.windows(3) {
        // An option of a list: `(` or `,`, the option's name, its value.
        let is_option = matches!(tokens[triple[0]], Token::LParen | Token::Comma)
            && matches!(
                &tokens[triple[1]],
                Token::Word(w) if matches!(w.keyword, Keyword::FREEZE | Keyword::HEADER)
            );
        if let Token::Word(w) = &mut tokens[triple[2]]
            && is_option
            && w.quote_style.is_none()
        {
            let value = match w.value.to_ascii_lowercase().as_str() {
                "on" => "true",
                "off" => "false",
                _ => continue,
            };
            *w = datafusion::sql::sqlparser::tokenizer::Word {
                value: value.to_string(),
                quote_style: None,
                keyword: if value == "true" {
                    Keyword::TRUE
                } else {
                    Keyword::FALSE
                },
            };
            changed = true;
        }
    }
    changed.then(|| tokens.iter().map(ToString::to_string).collect())
}

/// The lock strengths sqlparser does not read, as the ones it does:
/// `FOR NO KEY UPDATE` as `FOR UPDATE` and `FOR KEY SHARE` as `FOR SHARE`.
/// ciab locks rows by writing them (see `crate::row_locks`), which holds
/// each weaker lock to its stronger kin's terms.
fn lock_strengths(sql: &str) -> Option<String> {
    if !names::contains_ignore_ascii_case(sql, "key") {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let words: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i], Token::Whitespace(_)))
        .collect();
    let keyword = |i: usize| match &tokens[i] {
        Token::Word(w) if w.quote_style.is_none() => Some(w.keyword),
        _ => None,
    };
    let mut dropped = vec![false; tokens.len()];
    for (at, &i) in words.iter().enumerate() {
        if keyword(i) != Some(Keyword::FOR) {
            continue;
        }
        let next = |n: usize| words.get(at + n).and_then(|&j| keyword(j));
        match (next(1), next(2), next(3)) {
            (Some(Keyword::NO), Some(Keyword::KEY), Some(Keyword::UPDATE)) => {
                dropped[words[at + 1]] = true;
                dropped[words[at + 2]] = true;
            }
            (Some(Keyword::KEY), Some(Keyword::SHARE), _) => dropped[words[at + 1]] = true,
            _ => {}
        }
    }
    dropped
        .contains(&true)
        .then(|| crate::recursive::blanked_text(&tokens, &dropped))
}

/// PostgreSQL's `VACUUM [(options)] [FULL] [FREEZE] [VERBOSE] [ANALYZE]
/// [table [(columns)]]`, which sqlparser reads only in Redshift's form.
fn parse_vacuum(
    parser: &mut datafusion::sql::sqlparser::parser::Parser,
) -> datafusion::error::Result<Statement> {
    parser.expect_keyword(Keyword::VACUUM)?;
    if parser.consume_token(&Token::LParen) {
        loop {
            match parser.next_token().token {
                Token::RParen => break,
                Token::EOF => parser.expected(")", parser.peek_token())?,
                _ => {}
            }
        }
    }
    while parser
        .parse_one_of_keywords(&[
            Keyword::FULL,
            Keyword::FREEZE,
            Keyword::VERBOSE,
            Keyword::ANALYZE,
        ])
        .is_some()
    {}
    let mut tables = Vec::new();
    if !matches!(parser.peek_token().token, Token::SemiColon | Token::EOF) {
        tables = parser.parse_comma_separated(|p| {
            let name = p.parse_object_name(false)?;
            if p.consume_token(&Token::LParen) {
                p.parse_comma_separated(|p| p.parse_identifier())?;
                p.expect_token(&Token::RParen)?;
            }
            Ok(name)
        })?;
    }
    if tables.len() > 1 {
        return Err(datafusion::error::DataFusionError::NotImplemented(
            "VACUUM of several tables in one statement".into(),
        ));
    }
    Ok(Statement::Vacuum(VacuumStatement {
        full: false,
        sort_only: false,
        delete_only: false,
        reindex: false,
        recluster: false,
        table_name: tables.pop(),
        threshold: None,
        boost: false,
    }))
}

/// `FETCH [direction] [FROM | IN] cursor` in PostgreSQL's grammar, where
/// sqlparser's wants a direction, a count after FORWARD and BACKWARD, and
/// FROM or IN: `FETCH c` and `FETCH FORWARD FROM c` read the next row, as
/// psql users write them. `MOVE`, which sqlparser does not know, takes the
/// same grammar and becomes a Fetch marked as a MOVE
/// (`cursors::move_marker`).
fn parse_fetch(
    parser: &mut datafusion::sql::sqlparser::parser::Parser,
) -> datafusion::error::Result<Statement> {
    type Parser<'a> = datafusion::sql::sqlparser::parser::Parser<'a>;
    // The statement loop saw one of the two words.
    let moving = !parser.parse_keyword(Keyword::FETCH);
    if moving {
        debug_assert!(is_move_word(&parser.peek_token_ref().token));
        parser.next_token();
    }
    // A count where one may follow; a negative one counts backward.
    let count = |p: &mut Parser| -> datafusion::error::Result<Option<(bool, ValueWithSpan)>> {
        let backward = match p.peek_token().token {
            Token::Number(..) => false,
            Token::Minus => {
                p.next_token();
                true
            }
            _ => return Ok(None),
        };
        Ok(Some((backward, p.parse_number_value()?)))
    };
    // RELATIVE's and ABSOLUTE's row, of either sign.
    let row = |p: &mut Parser| -> datafusion::error::Result<ValueWithSpan> {
        match count(p)? {
            Some((false, n)) => Ok(n),
            Some((true, mut n)) => {
                if let Value::Number(digits, _) = &mut n.value {
                    digits.insert(0, '-');
                }
                Ok(n)
            }
            None => Ok(p.parse_number_value()?),
        }
    };
    let direction = match parser.parse_one_of_keywords(&[
        Keyword::NEXT,
        Keyword::PRIOR,
        Keyword::FIRST,
        Keyword::LAST,
        Keyword::ABSOLUTE,
        Keyword::RELATIVE,
        Keyword::ALL,
        Keyword::FORWARD,
        Keyword::BACKWARD,
    ]) {
        Some(Keyword::NEXT) => FetchDirection::Next,
        Some(Keyword::PRIOR) => FetchDirection::Prior,
        Some(Keyword::FIRST) => FetchDirection::First,
        Some(Keyword::LAST) => FetchDirection::Last,
        Some(Keyword::ABSOLUTE) => FetchDirection::Absolute {
            limit: row(parser)?,
        },
        Some(Keyword::RELATIVE) => FetchDirection::Relative {
            limit: row(parser)?,
        },
        Some(Keyword::ALL) => FetchDirection::All,
        Some(Keyword::FORWARD) if parser.parse_keyword(Keyword::ALL) => FetchDirection::ForwardAll,
        Some(Keyword::FORWARD) => match count(parser)? {
            Some((true, limit)) => FetchDirection::Backward { limit: Some(limit) },
            other => FetchDirection::Forward {
                limit: other.map(|(_, limit)| limit),
            },
        },
        Some(Keyword::BACKWARD) if parser.parse_keyword(Keyword::ALL) => {
            FetchDirection::BackwardAll
        }
        Some(_) => match count(parser)? {
            Some((true, limit)) => FetchDirection::Forward { limit: Some(limit) },
            other => FetchDirection::Backward {
                limit: other.map(|(_, limit)| limit),
            },
        },
        None => match count(parser)? {
            Some((false, limit)) => FetchDirection::Count { limit },
            Some((true, limit)) => FetchDirection::Backward { limit: Some(limit) },
            None => FetchDirection::Next,
        },
    };
    let position = match parser.parse_one_of_keywords(&[Keyword::FROM, Keyword::IN]) {
        Some(Keyword::IN) => FetchPosition::In,
        _ => FetchPosition::From,
    };
    Ok(Statement::Fetch {
        name: parser.parse_identifier()?,
        direction,
        position,
        into: moving.then(crate::cursors::move_marker),
    })
}

/// Whether a token is the word MOVE, which sqlparser has no keyword for.
fn is_move_word(token: &Token) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("move"))
}

/// Whether the `n`th token ahead is `keyword`.
fn next_is(
    parser: &datafusion::sql::sqlparser::parser::Parser,
    n: usize,
    keyword: Keyword,
) -> bool {
    matches!(&parser.peek_nth_token_ref(n).token, Token::Word(w) if w.keyword == keyword)
}

/// DataFusion's statement loop, except that COPY is PostgreSQL's (FROM
/// STDIN, TO STDOUT) rather than DataFusion's COPY ... TO 'file', VACUUM
/// is PostgreSQL's, and so is FETCH.
fn parse_statements(
    parser: &mut DFParser,
    sql: &str,
    graphs: bool,
) -> datafusion::error::Result<Vec<Parsed>> {
    let mut statements = Vec::new();
    loop {
        while parser.parser.consume_token(&Token::SemiColon) {}
        if parser.parser.peek_token() == Token::EOF {
            break;
        }
        if next_is(&parser.parser, 0, Keyword::ALTER) && next_is(&parser.parser, 1, Keyword::SYSTEM)
        {
            // `Session::parse` took the plain form; this one follows a
            // comment, or other statements.
            let external = |e| datafusion::error::DataFusionError::External(Box::new(e));
            if several_statements(sql) {
                return Err(external(in_block("ALTER SYSTEM")));
            }
            let start = crate::graph::offset(sql, parser.parser.peek_token_ref().span.start);
            let alter = crate::settings::parse_alter_system(&sql[start..])
                .expect("the text starts with ALTER SYSTEM")
                .map_err(external)?;
            statements.push(Parsed::Sql(DfStatement::Statement(Box::new(alter))));
            break;
        }
        if graphs && let Some(text) = graph_statement(parser, sql) {
            statements.push(Parsed::Graph(text));
            continue;
        }
        let statement = if next_is(&parser.parser, 0, Keyword::VACUUM) {
            DfStatement::Statement(Box::new(parse_vacuum(&mut parser.parser)?))
        } else if next_is(&parser.parser, 0, Keyword::FETCH)
            || is_move_word(&parser.parser.peek_token_ref().token)
        {
            DfStatement::Statement(Box::new(parse_fetch(&mut parser.parser)?))
        } else if next_is(&parser.parser, 0, Keyword::COPY) {
            // sqlparser takes everything after `COPY ... FROM STDIN;` as
            // inline data (a psql script's form); a query string that goes on
            // after it is refused rather than partly dropped.
            // A COPY with a file reads no inline data, and may be followed.
            let mut n = 0;
            let mut stdin = false;
            let trailing = loop {
                match parser.parser.peek_nth_token(n).token {
                    Token::EOF => break false,
                    Token::SemiColon => {
                        break parser.parser.peek_nth_token(n + 1).token != Token::EOF;
                    }
                    Token::Word(w) if w.keyword == Keyword::STDIN => {
                        stdin = true;
                        n += 1;
                    }
                    _ => n += 1,
                }
            };
            if trailing && stdin {
                return Err(datafusion::error::DataFusionError::NotImplemented(
                    "COPY followed by other statements or inline data in the same query string is not supported".into(),
                ));
            }
            DfStatement::Statement(Box::new(parser.parser.parse_statement()?))
        } else {
            parser.parse_statement()?
        };
        // ALTER SYSTEM is a SET GLOBAL inside (see `settings::is_alter_system`);
        // one written as such is not PostgreSQL's.
        if matches!(&statement, DfStatement::Statement(s)
            if matches!(s.as_ref(), Statement::Set(set) if crate::settings::is_alter_system(set)))
        {
            return Err(datafusion::error::DataFusionError::External(Box::new(
                Error::new(
                    sqlstate::SYNTAX_ERROR,
                    "syntax error at or near \"GLOBAL\" (use ALTER SYSTEM)",
                ),
            )));
        }
        let statement = match statement {
            DfStatement::Statement(s) => {
                DfStatement::Statement(Box::new(crate::dml::without_with(*s)))
            }
            other => other,
        };
        statements.push(Parsed::Sql(statement));
        let next = parser.parser.peek_token();
        if next.token != Token::SemiColon && next.token != Token::EOF {
            return Err(datafusion::error::DataFusionError::SQL(
                Box::new(ParserError::ParserError(format!(
                    "Expected: end of statement, found: {next}{}",
                    next.span.start
                ))),
                None,
            ));
        }
    }
    Ok(statements)
}

/// The text of the statement the parser is at, taken past, if it has
/// property graph syntax.
fn graph_statement(parser: &mut DFParser, sql: &str) -> Option<String> {
    let mut tokens = Vec::new();
    loop {
        let token = parser.parser.peek_nth_token_ref(tokens.len());
        if matches!(token.token, Token::SemiColon | Token::EOF) {
            break;
        }
        tokens.push(token);
    }
    let kinds: Vec<&Token> = tokens.iter().map(|t| &t.token).collect();
    if !crate::graph::is_graph_statement(&kinds) {
        return None;
    }
    let start = crate::graph::offset(sql, tokens.first()?.span.start);
    let end = crate::graph::offset(sql, tokens.last()?.span.end);
    let n = tokens.len();
    for _ in 0..n {
        parser.parser.next_token();
    }
    Some(sql[start..end].to_string())
}

/// A parser error with PostgreSQL's SQLSTATE and, where the parser says
/// where, the 1-based character position in the statement.
fn syntax_error(sql: &str, e: datafusion::error::DataFusionError) -> Error {
    let mut error = Error::from(e);
    if error.sqlstate != sqlstate::SYNTAX_ERROR {
        return error;
    }
    let message = error.message.clone();
    if let Some(at) = message.find("Line: ") {
        let rest = &message[at + 6..];
        let line: usize = rest
            .split(',')
            .next()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let column: usize = rest
            .split("Column: ")
            .nth(1)
            .and_then(|s| {
                s.trim_end_matches(|c: char| !c.is_ascii_digit())
                    .parse()
                    .ok()
            })
            .unwrap_or(0);
        if line > 0 && column > 0 {
            let offset: usize = sql
                .split('\n')
                .take(line - 1)
                .map(|l| l.chars().count() + 1)
                .sum();
            error.position = Some(offset + column);
        }
    }
    // "Expected: ..., found: TOKEN at Line: 1, Column: 8" reads in
    // PostgreSQL's words as: syntax error at or near "TOKEN".
    error.message = match message.split_once("found: ") {
        Some((_, rest)) => {
            let token = rest.split(" at Line:").next().unwrap_or(rest).trim();
            if token == "EOF" {
                "syntax error at end of input".to_string()
            } else {
                format!("syntax error at or near \"{token}\"")
            }
        }
        None => message.trim_start_matches("sql parser error: ").to_string(),
    };
    error
}

/// Catalog commands (and a block's net writes) resolved against `base`, as
/// one command that applies only where `base`'s objects of `database` are
/// still as they were.
fn transaction(base: &DbState, database: String, commands: Vec<Command>) -> Command {
    let db = base
        .catalog
        .databases
        .get(&database)
        .expect("a session's database exists in its snapshot");
    Command::Transaction {
        database_id: db.id,
        generation: db.generation,
        database,
        first_id: base.catalog.next_table_id,
        commands,
    }
}

/// Refuses, inside a transaction block, the DDL PostgreSQL runs only
/// outside one (25001).
fn outside_transactions(statement: &Statement) -> Result<()> {
    let what = match statement {
        Statement::CreateDatabase { .. } => "CREATE DATABASE",
        Statement::Drop {
            object_type: ObjectType::Database,
            ..
        } => "DROP DATABASE",
        Statement::CreateIndex(index) if index.concurrently => "CREATE INDEX CONCURRENTLY",
        _ => return Ok(()),
    };
    Err(in_block(what))
}

/// What a statement that may not run in a transaction block gets there.
pub(crate) fn in_block(what: &str) -> Error {
    Error::new(
        sqlstate::ACTIVE_SQL_TRANSACTION,
        format!("{what} cannot run inside a transaction block"),
    )
}

/// Whether a query string holds more than one statement.
fn several_statements(sql: &str) -> bool {
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
        return false;
    };
    let mut solid = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .skip_while(|t| **t != Token::SemiColon);
    solid.any(|t| *t != Token::SemiColon)
}

fn in_failed_transaction() -> Error {
    Error::new(
        sqlstate::IN_FAILED_SQL_TRANSACTION,
        "current transaction is aborted, commands ignored until end of transaction block",
    )
}

fn no_transaction(statement: &str) -> Error {
    Error::new(
        sqlstate::NO_ACTIVE_SQL_TRANSACTION,
        format!("{statement} can only be used in transaction blocks"),
    )
}

/// The position of the latest savepoint called `name`.
fn find_savepoint(txn: &Transaction, name: &Ident) -> Result<usize> {
    let name = names::normalize(name);
    txn.savepoints
        .iter()
        .rposition(|s| s.name == name)
        .ok_or_else(|| {
            Error::new(
                sqlstate::UNDEFINED_SAVEPOINT,
                format!("savepoint \"{name}\" does not exist"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::{
        DFParserBuilder, PostgreSqlDialect, copy_boolean_options, lock_strengths, syntax_error,
    };

    #[test]
    fn weaker_lock_strengths_read_as_their_kin() {
        assert_eq!(
            lock_strengths("SELECT * FROM t FOR NO KEY UPDATE OF t NOWAIT").as_deref(),
            Some("SELECT * FROM t FOR        UPDATE OF t NOWAIT")
        );
        assert_eq!(
            lock_strengths("select 1 from t for key share").as_deref(),
            Some("select 1 from t for     share")
        );
        assert_eq!(lock_strengths("SELECT 'for key share' FROM t"), None);
        assert_eq!(lock_strengths("SELECT \"key\" FROM t FOR UPDATE"), None);
    }

    #[test]
    fn errors_after_a_weaker_lock_strength_point_into_the_clients_text() {
        let sql = "SELECT * FROM t FOR NO KEY UPDATE OF t garbage";
        let blanked = lock_strengths(sql).expect("a strength to read as its kin");
        let e = DFParserBuilder::new(blanked.as_str())
            .with_dialect(&PostgreSqlDialect {})
            .build()
            .and_then(|mut parser| parser.parse_statements())
            .expect_err("garbage after the lock clause");
        let position = sql.find("garbage").expect("in the text") + 1;
        assert_eq!(syntax_error(&blanked, e).position, Some(position));
    }

    #[test]
    fn copy_options_on_and_off_become_true_and_false() {
        assert_eq!(
            copy_boolean_options("copy t from stdin with (freeze on)").as_deref(),
            Some("copy t from stdin with (freeze true)")
        );
        assert_eq!(
            copy_boolean_options("COPY t TO STDOUT (FORMAT csv, HEADER off)").as_deref(),
            Some("COPY t TO STDOUT (FORMAT csv, HEADER false)")
        );
        // Only options: an alias named header, and string literals, stay.
        assert_eq!(
            copy_boolean_options("COPY (SELECT * FROM a header JOIN b ON true) TO STDOUT"),
            None
        );
        assert_eq!(
            copy_boolean_options("COPY (SELECT '(header on)') TO STDOUT (HEADER true)"),
            None
        );
    }
}
