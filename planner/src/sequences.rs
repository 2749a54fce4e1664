//! Sequences: `nextval`, `currval` and `setval`, and the `serial` columns
//! whose DEFAULT draws from them.
//!
//! A sequence's value lives in the catalog and moves through Raft like any
//! write, outside transactions (numbers drawn in a rolled-back block stay
//! drawn, as in PostgreSQL). So that an INSERT of one row does not pay a
//! second log write for its key, the engine draws values in blocks of
//! [`SEQUENCE_BLOCK_VALUES`] and hands them out from memory: every value
//! handed out was made durable first, and a restart skips what was left of a
//! block, as PostgreSQL skips up to 32 values after a crash.
//!
//! ```text
//!  INSERT INTO t (v) VALUES ('a')      DEFAULT nextval('t_id_seq'::regclass)
//!        │ DataFusion evaluates the DEFAULT per batch of rows
//!        ▼
//!  nextval ─► block in memory has n values? ── yes ─► hand them out
//!                 │ no
//!                 ▼
//!        Command::AdvanceSequence { id, count } through Raft ─► new block
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ciab_storage::{Command, DbState, SequenceDef, TableRef};
use datafusion::arrow::array::{ArrayRef, Int64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;

use crate::error::{Error, Result, sqlstate, to_df};
use crate::provider::CatalogList;
use crate::session::Engine;
use ciab_extensions::text_format::quote_ident;

/// Values drawn from the log at once when a session needs fewer.
pub const SEQUENCE_BLOCK_VALUES: u64 = 32;

/// Values drawn through Raft and not handed out yet, per sequence id.
#[derive(Debug, Default)]
pub(crate) struct Blocks {
    blocks: Mutex<HashMap<u64, Block>>,
}

/// Drawn values not handed out yet: `remaining` of them from `next` on.
#[derive(Debug, Clone, Copy)]
struct Block {
    next: i64,
    remaining: u64,
    increment: i64,
}

impl Block {
    fn new(first: i64, last: i64, increment: i64) -> Block {
        assert!(increment != 0, "a sequence moves");
        let steps = (i128::from(last) - i128::from(first)) / i128::from(increment);
        assert!(steps >= 0, "a block runs in the sequence's direction");
        Block {
            next: first,
            remaining: steps as u64 + 1,
            increment,
        }
    }

    fn take(&mut self, out: &mut Vec<i64>, wanted: usize) {
        while out.len() < wanted && self.remaining > 0 {
            out.push(self.next);
            self.remaining -= 1;
            if self.remaining > 0 {
                // Within the block, so within the sequence's bounds.
                self.next += self.increment;
            }
        }
    }
}

impl Engine {
    /// `count` values of the sequence `id`, drawing a block through Raft
    /// when memory holds too few. Blocks the calling thread meanwhile: it
    /// runs inside a DataFusion expression, which cannot await.
    fn next_values(&self, id: u64, increment: i64, count: usize) -> Result<Vec<i64>> {
        let mut out = Vec::with_capacity(count);
        let mut blocks = self.sequences.blocks.lock().expect("lock poisoned");
        if let Some(block) = blocks.get_mut(&id) {
            block.take(&mut out, count);
        }
        while out.len() < count {
            let wanted = (count - out.len()) as u64;
            let command = Command::AdvanceSequence {
                id,
                count: wanted.max(SEQUENCE_BLOCK_VALUES),
            };
            let applied = block_on_write(self, command)?;
            let (first, last) = applied.values.expect("AdvanceSequence says what it drew");
            let mut block = Block::new(first, last, increment);
            block.take(&mut out, count);
            blocks.insert(id, block);
        }
        Ok(out)
    }

    /// `setval`: the value moves through Raft, and values drawn earlier
    /// and not handed out are forgotten.
    fn set_value(&self, id: u64, value: i64, is_called: bool) -> Result<()> {
        let mut blocks = self.sequences.blocks.lock().expect("lock poisoned");
        blocks.remove(&id);
        block_on_write(
            self,
            Command::SetSequence {
                id,
                value,
                is_called,
            },
        )?;
        Ok(())
    }
}

fn block_on_write(engine: &Engine, command: Command) -> Result<ciab_storage::Applied> {
    crate::session::block_on_store(engine.store.write(command))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SequenceFn {
    Next,
    Current,
    Set,
}

impl SequenceFn {
    fn name(self) -> &'static str {
        match self {
            SequenceFn::Next => "nextval",
            SequenceFn::Current => "currval",
            SequenceFn::Set => "setval",
        }
    }
}

/// What one session's sequence functions remember, shared with the
/// session.
#[derive(Debug, Default)]
pub(crate) struct SessionSequences {
    /// The last value this session drew from each sequence: `currval`.
    current: HashMap<u64, i64>,
    /// The last value drawn from each sequence that the session's open
    /// transaction block made, which exists nowhere else yet: its values
    /// come from the block's own state, and COMMIT stores the last one.
    uncommitted: HashMap<u64, i64>,
}

impl SessionSequences {
    /// The values a committing block drew from the sequences it made (and
    /// kept: `block` is its final state), as commands that follow the
    /// block's DDL; forgets them.
    pub(crate) fn take_uncommitted(&mut self, block: &DbState) -> Vec<Command> {
        let kept: std::collections::HashSet<u64> = block
            .catalog
            .databases
            .values()
            .flat_map(|d| d.schemas.values())
            .flat_map(|s| s.sequences.values().map(|q| q.id))
            .collect();
        std::mem::take(&mut self.uncommitted)
            .into_iter()
            .filter(|(id, _)| kept.contains(id))
            .map(|(id, value)| Command::SetSequence {
                id,
                value,
                is_called: true,
            })
            .collect()
    }

    /// The block ended without COMMIT: what it drew went with it.
    pub(crate) fn forget_uncommitted(&mut self) {
        self.uncommitted.clear();
    }

    /// DISCARD SEQUENCES: `currval` knows no sequence again (what an open
    /// block drew from sequences it made is still stored at its COMMIT).
    pub(crate) fn forget_current(&mut self) {
        self.current.clear();
    }
}

/// A sequence as `nextval` finds it.
struct Found {
    name: String,
    def: SequenceDef,
    /// In the store, drawn through Raft; else only in this session's open
    /// block, which made it.
    committed: bool,
}

/// The sequence functions of one session.
struct SequenceUdf {
    f: SequenceFn,
    engine: Arc<Engine>,
    list: Arc<CatalogList>,
    state: Arc<Mutex<SessionSequences>>,
    /// Whether the statement running is in a read-only transaction, where
    /// nextval and setval are refused.
    read_only: Arc<AtomicBool>,
    signature: Signature,
}

bound_udf_identity!(SequenceUdf, bound: state, key: f);

/// Registers `nextval`, `currval` and `setval` on a session's context.
pub(crate) fn register(
    ctx: &SessionContext,
    engine: &Arc<Engine>,
    list: &Arc<CatalogList>,
    state: &Arc<Mutex<SessionSequences>>,
    read_only: &Arc<AtomicBool>,
) {
    for f in [SequenceFn::Next, SequenceFn::Current, SequenceFn::Set] {
        let signature = match f {
            SequenceFn::Next | SequenceFn::Current => {
                Signature::exact(vec![DataType::Utf8], Volatility::Volatile)
            }
            SequenceFn::Set => Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Int64]),
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Int64, DataType::Boolean]),
                ],
                Volatility::Volatile,
            ),
        };
        ctx.register_udf(ScalarUDF::new_from_impl(SequenceUdf {
            f,
            engine: engine.clone(),
            list: list.clone(),
            state: state.clone(),
            read_only: read_only.clone(),
            signature,
        }));
    }
}

/// `nextval('schema.name')` as SQL text, as a `serial` DEFAULT draws it:
/// from the table's own schema, whatever the session's search_path.
pub(crate) fn nextval_sql(schema: &str, name: &str) -> String {
    let qualified = format!("{}.{}", quote_ident(schema), quote_ident(name));
    format!("nextval('{}')", qualified.replace('\'', "''"))
}

/// The DEFAULT `serial` gives a column: PostgreSQL's text for it.
pub(crate) fn serial_default(sequence: &str) -> String {
    format!(
        "nextval('{}'::regclass)",
        quote_ident(sequence).replace('\'', "''")
    )
}

/// The sequence a `serial` DEFAULT draws from (the inverse of
/// [`serial_default`]): its name, unquoted.
pub(crate) fn serial_sequence(default: &str) -> Option<String> {
    let literal = default
        .strip_prefix("nextval('")?
        .strip_suffix("'::regclass)")?
        .replace("''", "'");
    Some(
        match literal.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
            Some(quoted) => quoted.replace("\"\"", "\""),
            None => literal,
        },
    )
}

impl ScalarUDFImpl for SequenceUdf {
    fn name(&self) -> &str {
        self.f.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        if self.f != SequenceFn::Current && self.read_only.load(Ordering::Relaxed) {
            return Err(to_df(crate::session::read_only_refusal(&format!(
                "{}()",
                self.name()
            ))));
        }
        let rows = args.number_rows;
        // Unqualified names resolve in the first schema of search_path, the
        // session's default schema.
        let schema = &args.config_options.catalog.default_schema;
        let out = match &args.args[..] {
            // One sequence for every row: its values are drawn at once.
            [ColumnarValue::Scalar(ScalarValue::Utf8(Some(name)))]
                if self.f == SequenceFn::Next =>
            {
                let found = self.resolve(name, schema).map_err(to_df)?;
                let values = self.draw(&found, rows).map_err(to_df)?;
                Arc::new(Int64Array::from(values)) as ArrayRef
            }
            _ => {
                let arrays = ColumnarValue::values_to_arrays(&args.args)?;
                let mut out = Vec::with_capacity(rows);
                for row in 0..rows {
                    let values = arrays
                        .iter()
                        .map(|a| ScalarValue::try_from_array(a, row))
                        .collect::<DfResult<Vec<_>>>()?;
                    out.push(self.call(&values, schema).map_err(to_df)?);
                }
                Arc::new(Int64Array::from(out)) as ArrayRef
            }
        };
        debug_assert_eq!(out.len(), rows);
        Ok(ColumnarValue::Array(out))
    }
}

impl SequenceUdf {
    /// One row's call; NULL arguments give NULL, as the functions are strict.
    fn call(&self, args: &[ScalarValue], schema: &str) -> Result<Option<i64>> {
        let ScalarValue::Utf8(Some(name)) = &args[0] else {
            return Ok(None);
        };
        let found = self.resolve(name, schema)?;
        let id = found.def.id;
        match self.f {
            SequenceFn::Next => Ok(Some(self.draw(&found, 1)?[0])),
            SequenceFn::Current => {
                let state = self.state.lock().expect("lock poisoned");
                state.current.get(&id).copied().map(Some).ok_or_else(|| {
                    Error::new(
                        "55000",
                        format!(
                            "currval of sequence \"{name}\" is not yet defined in this session"
                        ),
                    )
                })
            }
            SequenceFn::Set => {
                let ScalarValue::Int64(Some(value)) = args[1] else {
                    return Ok(None);
                };
                let is_called = match args.get(2) {
                    None => true,
                    Some(ScalarValue::Boolean(Some(b))) => *b,
                    Some(_) => return Ok(None),
                };
                if !found.committed {
                    return Err(Error::unsupported(format!(
                        "setval of sequence \"{name}\" before the transaction block that made it commits"
                    )));
                }
                self.engine.set_value(id, value, is_called)?;
                if is_called {
                    let mut state = self.state.lock().expect("lock poisoned");
                    state.current.insert(id, value);
                }
                Ok(Some(value))
            }
        }
    }

    /// `count` values of the sequence, remembered for `currval`.
    fn draw(&self, found: &Found, count: usize) -> Result<Vec<i64>> {
        let def = &found.def;
        let values = if found.committed {
            self.engine.next_values(def.id, def.increment, count)?
        } else {
            {
                let mut state = self.state.lock().expect("lock poisoned");
                // Values drawn before a ROLLBACK TO stay drawn.
                let mut now = def.clone();
                if let Some(&last) = state.uncommitted.get(&def.id) {
                    now.last_value = last;
                    now.is_called = true;
                }
                let mut values = Vec::with_capacity(count);
                if let Some((first, last)) = now.next_values(count as u64) {
                    Block::new(first, last, def.increment).take(&mut values, count);
                }
                if values.len() < count {
                    return Err(Error::new("2200H", def.exhausted(&found.name)));
                }
                state.uncommitted.insert(def.id, values[count - 1]);
                values
            }
        };
        if let Some(&last) = values.last() {
            let mut state = self.state.lock().expect("lock poisoned");
            state.current.insert(def.id, last);
        }
        Ok(values)
    }

    /// The sequence `name` names (`'s'`, `'schema.s'`, `'"S"'`): in the
    /// store, or else made by this session's open transaction block.
    fn resolve(&self, name: &str, schema: &str) -> Result<Found> {
        let tref = self.sequence_ref(name, schema)?;
        let find = |state: &ciab_storage::DbState| {
            state
                .catalog
                .schema(&tref.database, &tref.schema)
                .and_then(|s| s.sequences.get(&tref.name))
                .cloned()
        };
        if let Some(def) = find(&self.engine.store.snapshot()) {
            return Ok(Found {
                name: tref.name,
                def,
                committed: true,
            });
        }
        find(&self.list.state())
            .map(|def| Found {
                name: tref.name.clone(),
                def,
                committed: false,
            })
            .ok_or_else(|| {
                Error::new(
                    sqlstate::UNDEFINED_TABLE,
                    format!("relation \"{name}\" does not exist"),
                )
            })
    }

    fn sequence_ref(&self, name: &str, default_schema: &str) -> Result<TableRef> {
        let invalid = || Error::new("42602", format!("invalid name syntax: \"{name}\""));
        let parts = crate::names::parse_relation_name(name).ok_or_else(invalid)?;
        let database = self.list.database();
        let (schema, name) = match parts.as_slice() {
            [n] => (default_schema.to_string(), n.clone()),
            [s, n] => (s.clone(), n.clone()),
            [d, s, n] if *d == database => (s.clone(), n.clone()),
            _ => return Err(invalid()),
        };
        Ok(TableRef {
            database,
            schema,
            name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_default_round_trips() {
        for name in ["t_id_seq", "Odd Name_seq", "it's_seq", "say \"hi\"_seq"] {
            assert_eq!(
                serial_sequence(&serial_default(name)).as_deref(),
                Some(name)
            );
        }
        assert_eq!(serial_sequence("nextval('x')"), None);
    }

    #[test]
    fn a_block_hands_out_each_value_once() {
        let mut block = Block::new(1, 5, 2);
        let mut out = Vec::new();
        block.take(&mut out, 2);
        assert_eq!(out, [1, 3]);
        block.take(&mut out, 10);
        assert_eq!(out, [1, 3, 5]);
        assert_eq!(block.remaining, 0);
        let mut top = Block::new(i64::MAX - 1, i64::MAX, 1);
        let mut out = Vec::new();
        top.take(&mut out, 10);
        assert_eq!(out, [i64::MAX - 1, i64::MAX]);
        let mut down = Block::new(-1, -3, -1);
        let mut out = Vec::new();
        down.take(&mut out, 10);
        assert_eq!(out, [-1, -2, -3]);
    }
}
