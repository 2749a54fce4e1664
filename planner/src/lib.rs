//! ciab's planner: sessions, the DataFusion catalog over the store, and the
//! PostgreSQL behaviour of DDL and DML.
//!
//! The wire front end talks to [`Engine`] and [`Session`] only; storage is
//! reached through commands and pinned snapshots, never directly.

/// `Debug`, `PartialEq`, `Eq` and `Hash` for a function bound to one
/// session's (or node's) state. DataFusion compares functions to tell
/// whether two plans call the same one; two bound functions are the same
/// when they share the `bound` state (compared by address: the state has no
/// equality of its own) and, where given, their `key` fields are equal.
macro_rules! bound_udf_identity {
    ($udf:ident, bound: $bound:ident $(, key: $key:ident)?) => {
        impl std::fmt::Debug for $udf {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($udf))
                    $(.field(stringify!($key), &self.$key))?
                    .finish_non_exhaustive()
            }
        }

        impl PartialEq for $udf {
            fn eq(&self, other: &Self) -> bool {
                std::sync::Arc::ptr_eq(&self.$bound, &other.$bound)
                    $(&& self.$key == other.$key)?
            }
        }

        impl Eq for $udf {}

        impl std::hash::Hash for $udf {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                std::hash::Hash::hash(&std::sync::Arc::as_ptr(&self.$bound), state);
                $(std::hash::Hash::hash(&self.$key, state);)?
            }
        }
    };
}

mod advisory_locks;
mod arrays;
pub mod binary;
mod checks;
mod copy;
mod copy_file;
mod copy_to;
mod copy_values;
mod cursors;
mod ddl;
mod decimal_scales;
mod dml;
pub mod error;
mod external;
mod fast;
mod few_groups;
mod few_keys;
mod finish;
mod foreign_keys;
mod graph;
mod information_schema;
mod interrupt;
mod join_order;
mod key_taps;
mod like_parts;
mod lookups;
mod memory;
mod named_args;
mod names;
mod not_in;
mod notify;
mod numbers;
mod objects;
mod params;
mod pg_catalog;
mod pg_functions;
mod plan_cache;
mod prepare;
mod provider;
mod records;
mod recursive;
mod remembered;
mod row_locks;
mod selectivity;
mod semi_joins;
mod sequences;
mod serializable;
mod session;
mod settings;
mod shred;
mod stores;
mod subquery;
mod system;
mod table_source;
mod time_series;
pub mod types;

pub use ciab_extensions::text_format::quote_ident;
pub use ciab_storage::{
    ARRAY_TAG_SUFFIX, DEFAULT_DATABASE, PG_CHAR_LENGTH_METADATA_KEY, PG_TYPE_METADATA_KEY,
};
pub use copy::CopyFormat;
pub use copy_to::CopyOut;
pub use error::{Error, Result, sqlstate};
pub use interrupt::Canceller;
pub use notify::Inbox;
pub use pg_catalog::OID_TYPE;
pub use session::{
    Engine, Output, Parsed, Prepared, SERVER_VERSION, Script, Session, Tag, TransactionState,
};
