//! `pg_advisory_lock` and its family: a session's side of the cluster's
//! advisory locks (`ciab_storage::locks` holds them, in the replicated
//! state).
//!
//! The functions are asynchronous DataFusion functions: waiting for a lock
//! parks the statement, not a thread, and a cancelled or timed-out
//! statement stops waiting. A session remembers whether it may hold locks,
//! so that the end of its transaction (for `pg_advisory_xact_lock`) and its
//! own end release them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use ciab_storage::{Command, LockKey, LockMode, LockOp, LockScope, SessionId, Store};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringArray};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::async_udf::{AsyncScalarUDF, AsyncScalarUDFImpl};
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature,
    Volatility, create_udf,
};
use datafusion::prelude::SessionContext;

use crate::error::{Error, Result, sqlstate, to_df};
use crate::finish::spawn_detached;
use crate::interrupt::parse_timeout;
use crate::settings::{SessionFacts, cluster_value};

/// One session's advisory locks.
pub(crate) struct SessionLocks {
    id: SessionId,
    /// The id of the session's database, whose locks it takes.
    database: u64,
    store: Arc<Store>,
    /// Set before a session-scoped take is proposed (a cancelled one may
    /// still apply), cleared once `pg_advisory_unlock_all` released them.
    holds_session: AtomicBool,
    /// The number of the session's transaction running now, which its
    /// transaction-scoped locks carry.
    transaction: AtomicU64,
    /// The last transaction that proposed a transaction-scoped take.
    taken_in: AtomicU64,
    /// Every transaction up to this one has released its locks. A release
    /// names its own transaction and those before it only, so one that
    /// runs late (a dropped statement's, on its own task) leaves the locks
    /// of a transaction that began since alone.
    released_through: AtomicU64,
}

impl SessionLocks {
    pub(crate) fn new(store: &Arc<Store>, database: u64, pid: i32) -> Arc<SessionLocks> {
        let pid = u32::try_from(pid).expect("process ids are positive");
        Arc::new(SessionLocks {
            id: SessionId::new(store.node_id(), pid),
            database,
            store: store.clone(),
            holds_session: AtomicBool::new(false),
            transaction: AtomicU64::new(0),
            taken_in: AtomicU64::new(0),
            released_through: AtomicU64::new(0),
        })
    }

    /// The session starts a transaction (a block, or a statement outside
    /// one).
    pub(crate) fn begin_transaction(&self) {
        self.transaction.fetch_add(1, Ordering::SeqCst);
    }

    /// The number of the transaction running now.
    pub(crate) fn transaction(&self) -> u64 {
        self.transaction.load(Ordering::SeqCst)
    }

    /// Takes `key`; without `wait`, only if it is free (false if not).
    /// Waiting ends when the lock is taken, in a deadlock (40P01), past
    /// `lock_timeout` (55P03), or when the caller stops polling.
    async fn take(
        &self,
        key: LockKey,
        mode: LockMode,
        in_transaction: bool,
        wait: bool,
        lock_timeout: Option<Duration>,
    ) -> Result<bool> {
        let deadline = lock_timeout.map(|t| tokio::time::Instant::now() + t);
        let scope = match in_transaction {
            false => {
                self.holds_session.store(true, Ordering::SeqCst);
                LockScope::Session
            }
            true => {
                let transaction = self.transaction();
                self.taken_in.fetch_max(transaction, Ordering::SeqCst);
                LockScope::Transaction(transaction)
            }
        };
        let op = LockOp::Take {
            session: self.id,
            key,
            mode,
            scope,
            wait,
        };
        let mut changes = self.store.changes();
        let waiting = StopWaitingOnDrop {
            locks: Some((self.id, self.store.clone())),
        };
        loop {
            changes.borrow_and_update();
            let applied = self.store.write(Command::Lock(op.clone())).await?;
            if !applied.skipped || !wait {
                waiting.disarm();
                return Ok(!applied.skipped);
            }
            // Look again only once this node's state shows the lock free:
            // every change is marked, so none between the take and now is
            // missed.
            let freed = async {
                loop {
                    if changes.changed().await.is_err() {
                        return Err(ciab_storage::Error::Unavailable(
                            "the node is shutting down".into(),
                        ));
                    }
                    let state = self.store.snapshot();
                    if state.locks.blockers(self.id, key, mode).is_empty() {
                        return Ok(());
                    }
                }
            };
            match deadline {
                None => freed.await?,
                Some(deadline) => {
                    tokio::time::timeout_at(deadline, freed)
                        .await
                        .map_err(|_| {
                            Error::new(
                                sqlstate::LOCK_NOT_AVAILABLE,
                                "canceling statement due to lock timeout",
                            )
                        })??
                }
            }
        }
    }

    /// The session's `lock_timeout`, as the statement's settings say (the
    /// session's own, else the cluster's): none for 0.
    fn lock_timeout(&self, config: &ConfigOptions) -> Option<Duration> {
        let set = config
            .extensions
            .get::<SessionFacts>()
            .and_then(|facts| facts.settings.get("lock_timeout").cloned());
        let value = set.or_else(|| cluster_value(&self.store.snapshot(), "lock_timeout"))?;
        parse_timeout(&value).flatten()
    }

    /// Drops one session-scoped hold; false if the session held none.
    async fn release(&self, key: LockKey, mode: LockMode) -> Result<bool> {
        let op = LockOp::Release {
            session: self.id,
            key,
            mode,
        };
        let applied = self.store.write(Command::Lock(op)).await?;
        Ok(!applied.skipped)
    }

    /// `pg_advisory_unlock_all`: drops every session-scoped hold.
    pub(crate) async fn release_session_locks(&self) -> Result<()> {
        if !self.holds_session.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        let op = LockOp::ReleaseAll {
            session: self.id,
            scope: Some(LockScope::Session),
        };
        if let Err(e) = self.store.write(Command::Lock(op)).await {
            // Still held, for the session's end to release.
            self.holds_session.store(true, Ordering::SeqCst);
            return Err(e.into());
        }
        Ok(())
    }

    /// Transaction `transaction` ended: drops its locks, and any an earlier
    /// one left.
    pub(crate) async fn release_transaction(&self, transaction: u64) -> Result<()> {
        if self.taken_in.load(Ordering::SeqCst) <= self.released_through.load(Ordering::SeqCst) {
            return Ok(());
        }
        let op = LockOp::ReleaseAll {
            session: self.id,
            scope: Some(LockScope::Transaction(transaction)),
        };
        self.store.write(Command::Lock(op)).await?;
        self.released_through
            .fetch_max(transaction, Ordering::SeqCst);
        Ok(())
    }

    /// The transaction running now ended where nothing awaits its end (an
    /// implicit block that failed): the release runs on its own.
    pub(crate) fn release_transaction_soon(self: &Arc<Self>) {
        let (locks, transaction) = (self.clone(), self.transaction());
        spawn_lock_op(async move { locks.release_transaction(transaction).await });
    }
}

impl Drop for SessionLocks {
    /// The session ended: everything it held, and its waiting, goes.
    fn drop(&mut self) {
        let holds = self.holds_session.load(Ordering::SeqCst)
            || self.taken_in.load(Ordering::SeqCst) > self.released_through.load(Ordering::SeqCst);
        if !holds {
            return;
        }
        let (store, session) = (self.store.clone(), self.id);
        spawn_lock_op(async move {
            let op = LockOp::ReleaseAll {
                session,
                scope: None,
            };
            store.write(Command::Lock(op)).await?;
            Ok(())
        });
    }
}

/// Runs a release nobody waits for. Should it fail (the node stopping),
/// the node's next start releases its sessions' locks (`Store::ready`).
fn spawn_lock_op(op: impl Future<Output = Result<()>> + Send + 'static) {
    spawn_detached("releasing advisory locks", op);
}

/// While a session waits for a lock, the state records it as waiting (for
/// finding deadlocks); a wait that stops early takes the record back.
struct StopWaitingOnDrop {
    locks: Option<(SessionId, Arc<Store>)>,
}

impl StopWaitingOnDrop {
    fn disarm(mut self) {
        self.locks = None;
    }
}

impl Drop for StopWaitingOnDrop {
    fn drop(&mut self) {
        if let Some((session, store)) = self.locks.take() {
            spawn_lock_op(async move {
                let op = LockOp::StopWaiting { session };
                store.write(Command::Lock(op)).await?;
                Ok(())
            });
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Action {
    Take {
        mode: LockMode,
        /// Held until the transaction ends, rather than the session.
        in_transaction: bool,
        wait: bool,
    },
    Release {
        mode: LockMode,
    },
    ReleaseAll,
}

const fn take(mode: LockMode, in_transaction: bool, wait: bool) -> Action {
    Action::Take {
        mode,
        in_transaction,
        wait,
    }
}

/// PostgreSQL's advisory lock functions, by name.
const FUNCTIONS: [(&str, Action); 11] = {
    use Action::*;
    use LockMode::*;
    const SESSION: bool = false;
    const TRANSACTION: bool = true;
    [
        ("pg_advisory_lock", take(Exclusive, SESSION, true)),
        ("pg_advisory_lock_shared", take(Shared, SESSION, true)),
        ("pg_try_advisory_lock", take(Exclusive, SESSION, false)),
        ("pg_try_advisory_lock_shared", take(Shared, SESSION, false)),
        ("pg_advisory_xact_lock", take(Exclusive, TRANSACTION, true)),
        (
            "pg_advisory_xact_lock_shared",
            take(Shared, TRANSACTION, true),
        ),
        (
            "pg_try_advisory_xact_lock",
            take(Exclusive, TRANSACTION, false),
        ),
        (
            "pg_try_advisory_xact_lock_shared",
            take(Shared, TRANSACTION, false),
        ),
        ("pg_advisory_unlock", Release { mode: Exclusive }),
        ("pg_advisory_unlock_shared", Release { mode: Shared }),
        ("pg_advisory_unlock_all", ReleaseAll),
    ]
};

struct AdvisoryLockFn {
    name: &'static str,
    action: Action,
    locks: Arc<SessionLocks>,
    signature: Signature,
}

bound_udf_identity!(AdvisoryLockFn, bound: locks, key: name);

impl AdvisoryLockFn {
    /// The try and unlock functions answer whether they took (released)
    /// the lock; the others return PostgreSQL's `void`, which prints as
    /// an empty value.
    fn answers(&self) -> bool {
        matches!(
            self.action,
            Action::Take { wait: false, .. } | Action::Release { .. }
        )
    }
}

impl ScalarUDFImpl for AdvisoryLockFn {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(match self.answers() {
            true => DataType::Boolean,
            false => DataType::Utf8,
        })
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        unreachable!("DataFusion calls asynchronous functions through invoke_async_with_args")
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for AdvisoryLockFn {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?
            .iter()
            .map(as_bigints)
            .collect::<Result<Vec<_>>>()
            .map_err(to_df)?;
        let rows = args.number_rows;
        let lock_timeout = self.locks.lock_timeout(&args.config_options);
        let mut answers = Vec::with_capacity(rows);
        for row in 0..rows {
            if self.action == Action::ReleaseAll {
                self.locks.release_session_locks().await.map_err(to_df)?;
                answers.push(Some(true));
                continue;
            }
            // The functions are strict: a NULL key takes nothing.
            if arrays.iter().any(|a| a.is_null(row)) {
                answers.push(None);
                continue;
            }
            let key = key_at(self.locks.database, &arrays, row).map_err(to_df)?;
            let answer = match self.action {
                Action::Take {
                    mode,
                    in_transaction,
                    wait,
                } => {
                    self.locks
                        .take(key, mode, in_transaction, wait, lock_timeout)
                        .await
                }
                Action::Release { mode } => self.locks.release(key, mode).await,
                Action::ReleaseAll => unreachable!("answered above"),
            };
            answers.push(Some(answer.map_err(to_df)?));
        }
        let out: ArrayRef = match self.answers() {
            true => Arc::new(BooleanArray::from(answers)),
            false => Arc::new(
                answers
                    .into_iter()
                    .map(|a| a.map(|_| ""))
                    .collect::<StringArray>(),
            ),
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// A key argument as bigints: a parameter whose type the client left to
/// the server arrives as text (PostgreSQL reads it as the function's
/// argument type).
fn as_bigints(array: &ArrayRef) -> Result<ArrayRef> {
    if array.data_type() == &DataType::Int64 {
        return Ok(array.clone());
    }
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    cast_with_options(array, &DataType::Int64, &strict).map_err(|_| {
        let text = array.as_string::<i32>();
        let bad = (0..text.len())
            .find(|&i| text.is_valid(i) && text.value(i).trim().parse::<i64>().is_err())
            .map_or("", |i| text.value(i));
        Error::new(
            sqlstate::INVALID_TEXT_REPRESENTATION,
            format!("invalid input syntax for type bigint: \"{bad}\""),
        )
    })
}

/// The lock key of one row: `(bigint)` or `(integer, integer)`, both
/// taken as bigints.
fn key_at(database: u64, arrays: &[ArrayRef], row: usize) -> Result<LockKey> {
    let value = |a: &ArrayRef| a.as_primitive::<Int64Type>().value(row);
    let int4 = |a: &ArrayRef| {
        i32::try_from(value(a))
            .map_err(|_| Error::new(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, "integer out of range"))
    };
    Ok(match arrays {
        [one] => LockKey::int8(database, value(one)),
        [a, b] => LockKey::int4_pair(database, int4(a)?, int4(b)?),
        _ => unreachable!("the signature takes one or two arguments"),
    })
}

/// Registers the advisory lock functions on a session's context, and
/// `pg_backend_pid()`: the session's process id, which `pg_locks` shows
/// for the locks it holds.
pub(crate) fn register(ctx: &SessionContext, locks: &Arc<SessionLocks>, pid: i32) {
    let backend_pid = Arc::new(ScalarValue::Int32(Some(pid)));
    ctx.register_udf(create_udf(
        "pg_backend_pid",
        vec![],
        DataType::Int32,
        Volatility::Stable,
        Arc::new(move |_| Ok(ColumnarValue::Scalar((*backend_pid).clone()))),
    ));
    for (name, action) in FUNCTIONS {
        let signature = match action {
            Action::ReleaseAll => Signature::exact(vec![], Volatility::Volatile),
            _ => {
                let key = [DataType::Int64, DataType::Utf8];
                let one = key.iter().map(|k| TypeSignature::Exact(vec![k.clone()]));
                let two = key.iter().flat_map(|a| {
                    key.iter()
                        .map(|b| TypeSignature::Exact(vec![a.clone(), b.clone()]))
                });
                Signature::one_of(one.chain(two).collect(), Volatility::Volatile)
            }
        };
        let function = AdvisoryLockFn {
            name,
            action,
            locks: locks.clone(),
            signature,
        };
        ctx.register_udf(AsyncScalarUDF::new(Arc::new(function)).into_scalar_udf());
    }
}

/// Refuses a plan step that calls one asynchronous function (the lock
/// functions, `pg_sleep`) twice with the same arguments, as in `SELECT
/// pg_advisory_unlock(1), pg_advisory_unlock(1)`: DataFusion runs both
/// calls but answers each with the first one's result, which would be
/// wrong for the second.
pub(crate) fn refuse_repeated_async_calls(plan: &LogicalPlan) -> Result<()> {
    let mut repeated = None;
    plan.apply(|node| {
        let mut calls: Vec<Expr> = Vec::new();
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::ScalarFunction(f) = e
                    && f.func.as_async().is_some()
                {
                    if calls.contains(e) {
                        repeated = Some(f.func.name().to_string());
                        return Ok(TreeNodeRecursion::Stop);
                    }
                    calls.push(e.clone());
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(match repeated {
            Some(_) => TreeNodeRecursion::Stop,
            None => TreeNodeRecursion::Continue,
        })
    })?;
    match repeated {
        Some(name) => Err(Error::unsupported(format!(
            "calling {name}() twice with the same arguments in one step of a statement \
             (call it from separate statements)"
        ))),
        None => Ok(()),
    }
}
