//! What a session remembers of the query strings its client sends again
//! and again.
//!
//! Clients send a few short statements over and over, and the extended
//! protocol, which drivers use for every statement with parameters, sends
//! each as an unnamed statement: Parse, Bind, Describe, Execute, every
//! time. Parse works out the statement's parameter and result types, which
//! for a statement DataFusion plans means planning it (twice when a
//! parameter needs a cast to be typed) before Execute plans it once more:
//! a third of the round trip of `SELECT abs($1)` (0.36 of 1.15 ms, against
//! the same statement prepared once). So a session keeps, by query
//! string, the string's parse and, for the extended protocol, what Parse
//! answered:
//!
//! ```text
//!   query string ──> statement (a parse depends on the text alone)
//!                └─> Parse's answer, while its inputs are unchanged:
//!                      the declared parameter types   compared
//!                      the catalog it was planned on  the same Arc
//!                      the latest catalog             the same Arc
//!                      the session's settings         their generation
//! ```
//!
//! The catalog is copy on write (`Arc::make_mut`), and an entry holds weak
//! references to the catalogs it was made against: while one exists the
//! allocation is never reused, and `make_mut` moves a catalog that only
//! weak references share to a new one before changing it, so a pointer
//! comparison tells whether either changed, and an entry keeps no old
//! catalog alive. The latest catalog counts beside the one read (a block's
//! own) because cluster settings, which some settings default to, live in
//! it.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use ciab_storage::Catalog;

use crate::session::{Parsed, Prepared};

/// Query strings a session keeps, and the longest it keeps: the bounds
/// keep what a session holds small whatever its client sends.
const STATEMENTS_MAX: usize = 64;
const SQL_BYTES_MAX: usize = 2048;

/// What Parse's answer for a query string depends on besides the string.
#[derive(Clone, Copy)]
pub(crate) struct Inputs<'a> {
    /// The parameter types the client declared, by name.
    pub declared: &'a [Option<&'a str>],
    /// The catalog the statement reads (a block's own, inside one).
    pub read: &'a Arc<Catalog>,
    /// The latest committed catalog.
    pub latest: &'a Arc<Catalog>,
    /// [`crate::session::Session`]'s settings generation.
    pub settings: u64,
}

/// The catalogs and settings generation something was worked out
/// against, held without keeping the catalogs alive.
pub(crate) struct Basis {
    read: Weak<Catalog>,
    latest: Weak<Catalog>,
    settings: u64,
}

impl Basis {
    pub(crate) fn new(read: &Arc<Catalog>, latest: &Arc<Catalog>, settings: u64) -> Self {
        Basis {
            read: Arc::downgrade(read),
            latest: Arc::downgrade(latest),
            settings,
        }
    }

    /// Whether these are the very catalogs and settings it was worked out
    /// against.
    pub(crate) fn holds(&self, read: &Arc<Catalog>, latest: &Arc<Catalog>, settings: u64) -> bool {
        self.settings == settings
            && std::ptr::eq(self.read.as_ptr(), Arc::as_ptr(read))
            && std::ptr::eq(self.latest.as_ptr(), Arc::as_ptr(latest))
    }
}

struct Described {
    declared: Vec<Option<String>>,
    basis: Basis,
    prepared: Prepared,
}

impl Described {
    fn answers(&self, inputs: &Inputs) -> bool {
        self.basis
            .holds(inputs.read, inputs.latest, inputs.settings)
            && self.declared.len() == inputs.declared.len()
            && self
                .declared
                .iter()
                .zip(inputs.declared)
                .all(|(a, b)| a.as_deref() == *b)
    }
}

struct Entry {
    statement: Arc<Parsed>,
    described: Option<Described>,
}

/// Recent query strings of one statement: their parse, and what Parse
/// answered for them.
#[derive(Default)]
pub(crate) struct Remembered {
    entries: HashMap<String, Entry>,
}

impl Remembered {
    /// The statement `sql` parsed to, if it is remembered.
    pub(crate) fn statement(&self, sql: &str) -> Option<Arc<Parsed>> {
        self.entries.get(sql).map(|e| e.statement.clone())
    }

    /// Remembers what `sql` parsed to, if it is short enough.
    pub(crate) fn remember_statement(&mut self, sql: &str, statement: Arc<Parsed>) {
        if sql.len() > SQL_BYTES_MAX {
            return;
        }
        if self.entries.len() >= STATEMENTS_MAX {
            // A client cycling through more statements than this gains
            // little from any of them being kept.
            self.entries.clear();
        }
        let described = None;
        self.entries.insert(
            sql.to_string(),
            Entry {
                statement,
                described,
            },
        );
    }

    /// Parse's answer for `sql`, if it was worked out from these inputs.
    pub(crate) fn described(&self, sql: &str, inputs: &Inputs) -> Option<Prepared> {
        let described = self.entries.get(sql)?.described.as_ref()?;
        described
            .answers(inputs)
            .then(|| described.prepared.clone())
    }

    /// Remembers Parse's answer for a remembered `sql`.
    pub(crate) fn remember_described(&mut self, sql: &str, inputs: &Inputs, prepared: &Prepared) {
        let Some(entry) = self.entries.get_mut(sql) else {
            return;
        };
        entry.described = Some(Described {
            declared: inputs
                .declared
                .iter()
                .map(|d| d.map(str::to_string))
                .collect(),
            basis: Basis::new(inputs.read, inputs.latest, inputs.settings),
            prepared: prepared.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared(sql: &str) -> Prepared {
        Prepared {
            statement: None,
            sql: sql.to_string(),
            param_types: vec![],
            schema: None,
        }
    }

    #[test]
    fn an_answer_holds_while_its_inputs_are_unchanged() {
        let sql = "SELECT $1";
        let mut remembered = Remembered::default();
        remembered.remember_statement(sql, Arc::new(Parsed::Graph(sql.to_string())));
        let catalog = Arc::new(Catalog::default());
        let latest = Arc::new(Catalog::default());
        let declared = [Some("int4")];
        let inputs = Inputs {
            declared: &declared,
            read: &catalog,
            latest: &latest,
            settings: 1,
        };
        assert!(remembered.described(sql, &inputs).is_none());
        remembered.remember_described(sql, &inputs, &prepared(sql));
        assert!(remembered.described(sql, &inputs).is_some());

        let other = Arc::new(Catalog::default());
        let undeclared = [None];
        let changed = [
            Inputs {
                read: &other,
                ..inputs
            },
            Inputs {
                latest: &other,
                ..inputs
            },
            Inputs {
                settings: 2,
                ..inputs
            },
            Inputs {
                declared: &undeclared,
                ..inputs
            },
            Inputs {
                declared: &[],
                ..inputs
            },
        ];
        for inputs in &changed {
            assert!(remembered.described(sql, inputs).is_none());
        }
        assert!(remembered.described("SELECT $2", &inputs).is_none());
    }

    #[test]
    fn a_catalog_changed_after_its_answer_was_remembered_is_another() {
        let sql = "SELECT 1";
        let mut remembered = Remembered::default();
        remembered.remember_statement(sql, Arc::new(Parsed::Graph(sql.to_string())));
        let mut catalog = Arc::new(Catalog::default());
        fn inputs(catalog: &Arc<Catalog>) -> Inputs<'_> {
            Inputs {
                declared: &[],
                read: catalog,
                latest: catalog,
                settings: 0,
            }
        }
        remembered.remember_described(sql, &inputs(&catalog), &prepared(sql));
        assert!(remembered.described(sql, &inputs(&catalog)).is_some());
        // The only strong reference: the change is made where the answer's
        // weak references cannot see it.
        Arc::make_mut(&mut catalog).next_table_id += 1;
        assert!(remembered.described(sql, &inputs(&catalog)).is_none());
    }

    #[test]
    fn long_strings_and_their_answers_are_not_kept() {
        let sql = format!("SELECT 1{}", " ".repeat(SQL_BYTES_MAX));
        let mut remembered = Remembered::default();
        remembered.remember_statement(&sql, Arc::new(Parsed::Graph(sql.clone())));
        assert!(remembered.statement(&sql).is_none());
        let catalog = Arc::new(Catalog::default());
        let inputs = Inputs {
            declared: &[],
            read: &catalog,
            latest: &catalog,
            settings: 0,
        };
        remembered.remember_described(&sql, &inputs, &prepared(&sql));
        assert!(remembered.described(&sql, &inputs).is_none());
    }
}
