//! Session settings: the names clients SET, SHOW and read from
//! `pg_settings`, with PostgreSQL's defaults.
//!
//! A session keeps the values it SET (see `Session::set`); this table says
//! which names exist, what they start as and which are fixed, so that SET,
//! SHOW, RESET and `pg_settings` agree on all three.

use std::collections::BTreeMap;

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
];

pub fn find(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name.eq_ignore_ascii_case(name))
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
