//! Session settings: the names clients SET, SHOW and read from
//! `pg_settings`, with PostgreSQL's defaults.
//!
//! A session keeps the values it SET (see `Session::set`); this table says
//! which names exist, what they start as and which are fixed, so that SET,
//! SHOW, RESET and `pg_settings` agree on all three.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ciab_storage::{DbState, Store, SystemSetting};
use datafusion::arrow::array::{Array, AsArray, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

use datafusion::sql::sqlparser::ast::{ContextModifier, Expr, Ident, Set, Statement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{Error, Result, sqlstate, to_df};
use crate::session::SERVER_VERSION;

/// One setting as `pg_settings` describes it.
pub struct Setting {
    pub name: &'static str,
    pub default: &'static str,
    /// `pg_settings.vartype`: bool, integer, string or enum.
    pub vartype: &'static str,
    /// Fixed when the server was built (`context` internal): SET refuses
    /// it with 55P02, as PostgreSQL does.
    pub fixed: bool,
    pub description: &'static str,
}

const fn setting(
    name: &'static str,
    default: &'static str,
    vartype: &'static str,
    description: &'static str,
) -> Setting {
    Setting {
        name,
        default,
        vartype,
        fixed: false,
        description,
    }
}

impl Setting {
    /// The same setting, fixed when the server was built.
    const fn fixed(self) -> Setting {
        Setting {
            fixed: true,
            ..self
        }
    }
}

/// Every setting, named as PostgreSQL spells it (`DateStyle`); names
/// match regardless of case.
pub const SETTINGS: &[Setting] = &[
    setting(
        "application_name",
        "",
        "string",
        "Sets the application name to be reported in statistics and logs.",
    ),
    setting(
        "bytea_output",
        "hex",
        "enum",
        "Sets the output format for bytea.",
    ),
    setting(
        "check_function_bodies",
        "on",
        "bool",
        "Check routine bodies during CREATE FUNCTION and CREATE PROCEDURE. ciab: it has no \
         routine bodies to check, so either value does the same.",
    ),
    setting(
        "client_encoding",
        "UTF8",
        "string",
        "Sets the client's character set encoding.",
    ),
    setting(
        "client_min_messages",
        "notice",
        "enum",
        "Sets the message levels that are sent to the client.",
    ),
    setting(
        "DateStyle",
        "ISO, MDY",
        "string",
        "Sets the display format for date and time values.",
    ),
    setting(
        "default_table_access_method",
        "heap",
        "string",
        "Sets the default table access method for new tables. ciab: its one table format \
         (Parquet files and the log) is named heap; other names are refused (0A000).",
    ),
    setting(
        "default_tablespace",
        "",
        "string",
        "Sets the default tablespace to create tables and indexes in. ciab: it has no \
         tablespaces; other values than empty are refused (0A000).",
    ),
    setting(
        "default_transaction_isolation",
        "repeatable read",
        "enum",
        "Sets the transaction isolation level of each new transaction.",
    ),
    setting(
        "default_transaction_read_only",
        "off",
        "bool",
        "Sets the default read-only status of new transactions.",
    ),
    setting(
        ciab_storage::DISK_RESERVE_SETTING,
        ciab_storage::DISK_RESERVE_DEFAULT,
        "string",
        "ciab: the free space a node keeps on the disk of its data directory ('256MB', '1GB'; \
         '0' for none). Below it, writes that add data fail with 53100 and do nothing; \
         DELETE, TRUNCATE, DROP and VACUUM still run.",
    ),
    setting(
        "extra_float_digits",
        "1",
        "integer",
        "Sets the number of digits displayed for floating-point values.",
    ),
    setting(
        "idle_in_transaction_session_timeout",
        "0",
        "integer",
        "Sets the maximum allowed idle time between queries, when in a transaction.",
    ),
    setting(
        "idle_session_timeout",
        "0",
        "integer",
        "Sets the maximum allowed idle time between queries, when not in a transaction.",
    ),
    setting(
        "integer_datetimes",
        "on",
        "bool",
        "Shows whether datetimes are integer based.",
    )
    .fixed(),
    setting(
        "IntervalStyle",
        "postgres",
        "enum",
        "Sets the display format for interval values.",
    ),
    setting(
        "lock_timeout",
        "0",
        "integer",
        "Sets the maximum allowed duration of any wait for a lock.",
    ),
    setting(
        "maintenance_work_mem",
        "64MB",
        "integer",
        "Sets the maximum memory to be used for maintenance operations. ciab: accepted, and \
         memory_limit bounds what every query uses instead.",
    ),
    setting(
        "max_connections",
        "100",
        "integer",
        "Sets the maximum number of concurrent connections. ciab: a node takes a change for \
         the connections that start after it, without a restart.",
    ),
    setting(
        "max_identifier_length",
        "63",
        "integer",
        "Shows the maximum identifier length.",
    )
    .fixed(),
    setting(
        "max_index_keys",
        "32",
        "integer",
        "Shows the maximum number of index keys.",
    )
    .fixed(),
    setting(
        "memory_limit",
        "80%",
        "string",
        "ciab: the memory the queries of a node may hold at once ('4GB', '512MB', or a share \
         of the machine's memory such as '80%'; '0' for no limit). Beyond it, sorts and \
         aggregations spill to disk; other queries fail with 53200.",
    ),
    setting(
        "plan_cache_mode",
        "auto",
        "enum",
        "Controls the planner's selection of custom or generic plan.",
    ),
    setting(
        "read_consistency",
        "linearizable",
        "enum",
        "ciab: linearizable reads see every write committed before they began, on any node; \
         local reads answer from this node's replica at once and may be stale.",
    ),
    setting(
        "s3_access_key_id",
        "",
        "string",
        "ciab: the access key s3:// URLs are signed with; empty sends requests unsigned.",
    ),
    setting(
        "s3_endpoint",
        "",
        "string",
        "ciab: the S3-compatible service s3:// URLs lead to (http://host:port); empty means \
         this cluster's own object storage, through the node's S3 endpoint.",
    ),
    setting(
        "s3_region",
        "us-east-1",
        "string",
        "ciab: the region requests to s3_endpoint are signed for.",
    ),
    setting(
        "s3_secret_access_key",
        "",
        "string",
        "ciab: the secret key that goes with s3_access_key_id. Shown to every session while \
         ciab has no authentication.",
    ),
    setting(
        "row_security",
        "on",
        "bool",
        "Enable row security. ciab: it has no row security policies, so none applies \
         whatever the value.",
    ),
    setting(
        "search_path",
        "\"$user\", public",
        "string",
        "Sets the schema search order for names that are not schema-qualified.",
    ),
    setting(
        "server_encoding",
        "UTF8",
        "string",
        "Shows the server (database) character set encoding.",
    )
    .fixed(),
    setting(
        "server_version",
        SERVER_VERSION,
        "string",
        "Shows the server version.",
    )
    .fixed(),
    setting(
        "server_version_num",
        "150000",
        "integer",
        "Shows the server version as an integer.",
    )
    .fixed(),
    setting(
        "standard_conforming_strings",
        "on",
        "bool",
        "Causes '...' strings to treat backslashes literally.",
    ),
    setting(
        "statement_timeout",
        "0",
        "integer",
        "Sets the maximum allowed duration of any statement.",
    ),
    setting(
        "synchronous_commit",
        "on",
        "enum",
        "Sets the current transaction's synchronization level. ciab: a commit is durable on a \
         majority of the cluster before it is acknowledged, whatever the value.",
    ),
    setting(
        "TimeZone",
        "UTC",
        "string",
        "Sets the time zone for displaying and interpreting time stamps.",
    ),
    setting(
        "transaction_isolation",
        "repeatable read",
        "enum",
        "Sets the current transaction's isolation level.",
    ),
    setting(
        "transaction_read_only",
        "off",
        "bool",
        "Sets the current transaction's read-only status.",
    ),
    setting(
        "work_mem",
        "4MB",
        "integer",
        "Sets the maximum memory to be used for query workspaces. ciab: accepted, and \
         memory_limit bounds what every query uses instead (spilling past it where it can).",
    ),
    setting(
        "xmloption",
        "content",
        "enum",
        "Sets whether XML data in implicit parsing and serialization operations is to be \
         considered as documents or content fragments. ciab: it has no xml type.",
    ),
];

pub fn find(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name.eq_ignore_ascii_case(name))
}

/// A setting's value for a session that did not SET it: the cluster's
/// (`ALTER SYSTEM`), else the built-in default. None for names that are not
/// settings.
pub fn cluster_value(state: &DbState, name: &str) -> Option<String> {
    system(state, name)
        .map(|s| s.value.clone())
        .or_else(|| default_value(name))
}

/// A setting's built-in default; None for names that are not settings.
pub fn default_value(name: &str) -> Option<String> {
    find(name).map(|s| s.default.to_string())
}

/// The cluster-wide value of a setting (`ALTER SYSTEM`), if it has one.
/// The catalog keeps names in lower case.
pub fn system<'a>(state: &'a DbState, name: &str) -> Option<&'a SystemSetting> {
    state.catalog.settings.get(&name.to_ascii_lowercase())
}

/// `ALTER SYSTEM SET name {= | TO} value` and `ALTER SYSTEM RESET {name |
/// ALL}`, which sqlparser does not know, as the statement ciab runs them
/// as: `SET GLOBAL name = value`, with `DEFAULT` for RESET (see
/// [`is_alter_system`]). None if `sql` is not ALTER SYSTEM. It must be the
/// only statement of its query string.
pub fn parse_alter_system(sql: &str) -> Option<Result<Statement>> {
    let rest = after_words(sql, &["alter", "system"])?;
    Some(alter_system(rest.trim_end().trim_end_matches(';')))
}

/// Whether a SET came from [`parse_alter_system`]: SET GLOBAL itself is not
/// PostgreSQL's, and the parser's SETs never carry it (`Session::parse`
/// refuses them).
pub fn is_alter_system(set: &Set) -> bool {
    matches!(
        set,
        Set::SingleAssignment {
            scope: Some(ContextModifier::Global),
            ..
        }
    )
}

/// What follows `words` at the start of `sql`, if it starts with them.
fn after_words<'a>(sql: &'a str, words: &[&str]) -> Option<&'a str> {
    let mut rest = sql.trim_start();
    for word in words {
        let head = rest.get(..word.len())?;
        let tail = &rest[word.len()..];
        if !head.eq_ignore_ascii_case(word) || !tail.starts_with(char::is_whitespace) {
            return None;
        }
        rest = tail.trim_start();
    }
    Some(rest)
}

fn alter_system(rest: &str) -> Result<Statement> {
    let syntax = |e: &dyn std::fmt::Display| {
        Error::new(sqlstate::SYNTAX_ERROR, format!("ALTER SYSTEM: {e}"))
    };
    let global = |variable, values| {
        Statement::Set(Set::SingleAssignment {
            scope: Some(ContextModifier::Global),
            hivevar: false,
            variable,
            values,
        })
    };
    if let Some(name) = after_words(&format!("{rest} "), &["reset"]) {
        let mut parser = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(name)
            .map_err(|e| syntax(&e))?;
        let variable = parser.parse_object_name(false).map_err(|e| syntax(&e))?;
        parser
            .expect_token(&datafusion::sql::sqlparser::tokenizer::Token::EOF)
            .map_err(|e| syntax(&e))?;
        return Ok(global(
            variable,
            vec![Expr::Identifier(Ident::new("DEFAULT"))],
        ));
    }
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, rest).map_err(|e| syntax(&e))?;
    match <[Statement; 1]>::try_from(statements) {
        Ok(
            [
                Statement::Set(Set::SingleAssignment {
                    scope: None,
                    hivevar: false,
                    variable,
                    values,
                }),
            ],
        ) => Ok(global(variable, values)),
        _ => Err(syntax(&"expected SET name = value or RESET name")),
    }
}

/// What the session connected as and the settings it changed, for the
/// catalog tables and functions that show them (`pg_settings`,
/// `current_user`). Kept in the DataFusion session's config, which is what
/// table scans and functions see.
#[derive(Debug, Clone, Default)]
pub struct SessionFacts {
    pub user: String,
    /// Values SET in this session, by lower-case name.
    pub settings: BTreeMap<String, String>,
    /// The statement the plan is made for.
    pub(crate) statement: crate::notify::StatementId,
    /// `transaction_read_only` and `transaction_isolation` as they apply to
    /// that statement: its block's, or the defaults outside one.
    pub(crate) transaction: [(&'static str, &'static str); 2],
    /// The session's open cursors, for `pg_cursors`.
    pub(crate) cursors: Vec<CursorFact>,
}

/// What `pg_cursors` shows of an open cursor.
#[derive(Debug, Clone)]
pub(crate) struct CursorFact {
    pub name: String,
    /// The DECLARE statement, as PostgreSQL shows it.
    pub statement: String,
    pub created_us: i64,
}

impl datafusion::config::ConfigExtension for SessionFacts {
    const PREFIX: &'static str = "ciab_session";
}

impl datafusion::config::ExtensionOptions for SessionFacts {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn cloned(&self) -> Box<dyn datafusion::config::ExtensionOptions> {
        Box::new(self.clone())
    }

    /// Not settable with `SET ciab_session.*`: only the session writes it.
    fn set(&mut self, key: &str, _value: &str) -> datafusion::common::Result<()> {
        datafusion::common::plan_err!("ciab_session.{key} cannot be set")
    }

    fn entries(&self) -> Vec<datafusion::config::ConfigEntry> {
        vec![]
    }
}

/// A change `set_config` made, which the session takes on once the
/// statement that called it succeeded (see [`SettingChanges`]).
#[derive(Debug)]
pub(crate) struct SettingChange {
    pub name: String,
    /// `None`: back to the default.
    pub value: Option<String>,
    /// Until the transaction block ends.
    pub local: bool,
}

/// The changes of one session's `set_config` calls. A function cannot
/// reach the session it runs in, so it leaves them here: `running` while
/// the statement runs, `done` once it succeeded. The session makes the
/// `done` ones before its next statement and drops the rest, so a
/// statement that failed changes nothing, as its transaction rolls back
/// in PostgreSQL.
#[derive(Debug, Default)]
pub(crate) struct SettingChanges {
    running: Vec<SettingChange>,
    done: Vec<SettingChange>,
}

impl SettingChanges {
    /// The statement that made the running changes succeeded.
    pub(crate) fn succeeded(&mut self) {
        let running = std::mem::take(&mut self.running);
        self.done.extend(running);
    }

    /// The changes to make now, in the order they were asked for.
    pub(crate) fn take_done(&mut self) -> Vec<SettingChange> {
        self.running.clear();
        std::mem::take(&mut self.done)
    }
}

/// `set_config(name, value, is_local)`: SET as a function, which returns
/// the value the setting takes (pg_dump's scripts start with it; so do
/// row-level security set-ups, with `is_local` true in a block).
struct SetConfig {
    signature: Signature,
    changes: Arc<Mutex<SettingChanges>>,
    store: Arc<Store>,
}

bound_udf_identity!(SetConfig, bound: changes);

impl ScalarUDFImpl for SetConfig {
    fn name(&self) -> &str {
        "set_config"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [name, value, local] = arrays.as_slice() else {
            unreachable!("the signature takes three arguments")
        };
        let (name, value, local) = (
            name.as_string::<i32>(),
            value.as_string::<i32>(),
            local.as_boolean(),
        );
        let mut out = Vec::with_capacity(name.len());
        let mut changes = Vec::with_capacity(name.len());
        for row in 0..name.len() {
            if name.is_null(row) {
                let e = Error::new(
                    sqlstate::NULL_VALUE_NOT_ALLOWED,
                    "SET requires parameter name",
                );
                return Err(to_df(e));
            }
            let name = name.value(row).to_ascii_lowercase();
            // A NULL is_local is false, as in PostgreSQL.
            let local = local.is_valid(row) && local.value(row);
            let (value, shown) = if value.is_null(row) && crate::session::is_custom_setting(&name) {
                // A custom setting's default is empty.
                (Some(String::new()), String::new())
            } else if value.is_null(row) {
                crate::session::resettable(&name).map_err(to_df)?;
                let default = cluster_value(&self.store.snapshot(), &name);
                (None, default.unwrap_or_default())
            } else {
                let value = crate::session::settable_value(&name, value.value(row), local)
                    .map_err(to_df)?;
                (Some(value.clone()), value)
            };
            out.push(shown);
            changes.push(SettingChange { name, value, local });
        }
        let mut pending = self.changes.lock().expect("lock poisoned");
        pending.running.extend(changes);
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

/// Registers `set_config` on a session's context.
pub(crate) fn register(
    ctx: &SessionContext,
    store: &Arc<Store>,
    changes: &Arc<Mutex<SettingChanges>>,
) {
    let udf = SetConfig {
        signature: Signature::exact(
            vec![DataType::Utf8, DataType::Utf8, DataType::Boolean],
            Volatility::Volatile,
        ),
        changes: changes.clone(),
        store: store.clone(),
    };
    ctx.register_udf(ScalarUDF::new_from_impl(udf));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings reference, as `docs/settings.md` holds it.
    fn reference() -> String {
        let mut out = String::from(
            "# Settings\n\n\
             Generated from `planner/src/settings.rs` by its tests (`CIAB_BLESS=1 cargo test -p \
             ciab-planner settings` rewrites it).\n\n\
             A session changes a setting with `SET name = value` and goes back with `RESET`; \
             `ALTER SYSTEM SET name = value` changes its default for every session on every \
             node, through Raft, and `ALTER SYSTEM RESET name` undoes that. `SHOW name`, \
             `pg_settings` and `ciab.settings` show them. Fixed settings cannot be changed \
             (55P02). The node's own settings (data directory, addresses) are its command line \
             or TOML file: see the README.\n\n\
             | name | default | type | scope | meaning |\n|---|---|---|---|---|\n",
        );
        for s in SETTINGS {
            let scope = if s.fixed { "fixed" } else { "cluster" };
            let default = if s.default.is_empty() {
                "(empty)".to_string()
            } else {
                format!("`{}`", s.default)
            };
            out.push_str(&format!(
                "| `{}` | {default} | {} | {scope} | {} |\n",
                s.name, s.vartype, s.description
            ));
        }
        out
    }

    #[test]
    fn the_settings_reference_is_current() {
        // Read where the test runs, not where it was compiled: checkouts
        // share one target directory, and a binary built in another one is
        // reused here.
        let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
            || env!("CARGO_MANIFEST_DIR").into(),
            std::path::PathBuf::from,
        );
        let path = manifest_dir.join("../docs/settings.md");
        if std::env::var_os("CIAB_BLESS").is_some() {
            std::fs::write(&path, reference()).unwrap();
        }
        let written = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            written == reference(),
            "docs/settings.md is stale: run CIAB_BLESS=1 cargo test -p ciab-planner settings"
        );
    }

    #[test]
    fn alter_system_parses_to_set_global() {
        let set = |sql| match parse_alter_system(sql) {
            Some(Ok(Statement::Set(set))) if is_alter_system(&set) => set.to_string(),
            other => panic!("{sql}: {other:?}"),
        };
        assert_eq!(
            set("ALTER SYSTEM SET statement_timeout = '5s';"),
            "SET GLOBAL statement_timeout = '5s'"
        );
        assert_eq!(
            set("alter  system\nset search_path TO other, public"),
            "SET GLOBAL search_path = other, public"
        );
        assert_eq!(
            set("ALTER SYSTEM RESET application_name"),
            "SET GLOBAL application_name = DEFAULT"
        );
        assert!(parse_alter_system("ALTER TABLE t ADD COLUMN x int").is_none());
        assert!(parse_alter_system("ALTER SYSTEMS SET x = 1").is_none());
        for bad in [
            "ALTER SYSTEM SET",
            "ALTER SYSTEM RESET a b",
            "ALTER SYSTEM SET x = 1; SELECT 1",
        ] {
            assert!(matches!(parse_alter_system(bad), Some(Err(_))), "{bad}");
        }
    }
}
