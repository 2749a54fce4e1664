//! Advisory locks: locks on numbers an application picks
//! (`pg_advisory_lock(42)`), which migration tools take so that one of
//! several processes runs the migrations.
//!
//! Sessions anywhere in the cluster take the same locks, so the locks are
//! part of the replicated state: taking or releasing one is a command
//! through the log, applied in log order on every replica, and a lock
//! outlives a change of leader.
//!
//! ```text
//!   session ── Take{wait} ──► log ──► apply: free?  yes ──► held by the session
//!      ▲                                        no  ──► recorded as waiting; a cycle of
//!      │                                                waits is a deadlock (40P01)
//!      └── retries when its node applies a change that frees the lock
//! ```
//!
//! A session holds a lock until it releases it (or, for a transaction's
//! lock, until its block ends), or until the session ends. A node that
//! restarts releases what its earlier sessions held (`Store::ready`); a node
//! removed from the cluster releases them as it goes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::command::Applied;
use crate::error::{RejectionKind, Result};
use crate::state::reject;

/// Identity of a session: the id of the node it is connected to (so a node
/// can find its own sessions), then its process id there
/// (`pg_backend_pid()`), which the node hands out once per run. A node
/// releases its earlier runs' sessions before it serves (`Store::ready`),
/// so an id is never of two live sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SessionId(pub u64);

impl SessionId {
    pub fn new(node: u64, pid: u32) -> SessionId {
        SessionId((node << 32) | u64::from(pid))
    }

    /// The session's process id on its node.
    pub fn pid(self) -> u32 {
        self.0 as u32
    }

    pub fn is_of_node(self, node: u64) -> bool {
        self.0 >> 32 == node & 0xffff_ffff
    }
}

/// What a lock is taken on, tagged as PostgreSQL tags an advisory lock (and
/// `pg_locks` shows it): the database, then `pg_advisory_lock(k)` is k's
/// high and low halves with `objsubid` 1, and `pg_advisory_lock(a, b)` is
/// a and b with `objsubid` 2, so the two forms never meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LockKey {
    pub database: u64,
    pub classid: u32,
    pub objid: u32,
    pub objsubid: u16,
}

impl LockKey {
    pub fn int8(database: u64, key: i64) -> LockKey {
        LockKey {
            database,
            classid: (key >> 32) as u32,
            objid: key as u32,
            objsubid: 1,
        }
    }

    pub fn int4_pair(database: u64, a: i32, b: i32) -> LockKey {
        LockKey {
            database,
            classid: a as u32,
            objid: b as u32,
            objsubid: 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LockMode {
    /// Conflicts with every other session's hold.
    Exclusive,
    /// Conflicts with other sessions' exclusive holds only.
    Shared,
}

/// How long a hold lasts unless released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LockScope {
    Session,
    /// Until the transaction (block or single statement) ends: the
    /// session's `n`th. A release names the last transaction it ends, so
    /// one that arrives late cannot take a later transaction's locks.
    Transaction(u64),
}

/// One session's hold on a lock. A session may hold a lock several times
/// over (each take counts) and in both modes: its own holds never conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Hold {
    pub session: SessionId,
    pub mode: LockMode,
    pub scope: LockScope,
}

/// A change to the advisory locks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LockOp {
    /// Takes `key` if no other session holds it in a conflicting mode;
    /// otherwise `Applied::skipped`, and with `wait` the session is recorded
    /// as waiting for it, or refused (40P01) if that closes a cycle of
    /// sessions waiting for each other.
    Take {
        session: SessionId,
        key: LockKey,
        mode: LockMode,
        scope: LockScope,
        wait: bool,
    },
    /// The session no longer waits (it was cancelled, or timed out). Any
    /// other op of the session says so too.
    StopWaiting { session: SessionId },
    /// Drops one session-scoped hold; `Applied::skipped` when the session
    /// held none.
    Release {
        session: SessionId,
        key: LockKey,
        mode: LockMode,
    },
    /// Drops the session's holds of `scope` (for a transaction, of it and
    /// every earlier one), or of any scope when the session ended.
    ReleaseAll {
        session: SessionId,
        scope: Option<LockScope>,
    },
    /// Drops every hold and wait of the sessions of `node`, or of every
    /// node: sessions that ended with their node.
    ReleaseNode { node: Option<u64> },
}

impl LockOp {
    /// The session the op is of; none for a whole node's.
    fn session(&self) -> Option<SessionId> {
        match *self {
            LockOp::Take { session, .. }
            | LockOp::StopWaiting { session }
            | LockOp::Release { session, .. }
            | LockOp::ReleaseAll { session, .. } => Some(session),
            LockOp::ReleaseNode { .. } => None,
        }
    }
}

/// One lock held, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldEntry {
    pub key: LockKey,
    #[serde(flatten)]
    pub hold: Hold,
    pub count: u32,
}

/// One session waiting, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaitingEntry {
    pub session: SessionId,
    pub key: LockKey,
    pub mode: LockMode,
}

/// Every advisory lock held in the cluster, and who waits for which.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdvisoryLocks {
    held: BTreeMap<LockKey, BTreeMap<Hold, u32>>,
    waiting: BTreeMap<SessionId, (LockKey, LockMode)>,
}

impl AdvisoryLocks {
    pub fn apply(&mut self, op: &LockOp) -> Result<Applied> {
        let skipped = |skipped| Applied {
            skipped,
            ..Applied::default()
        };
        // A session runs one lock function at a time: whatever it asks for
        // now, it no longer waits for what it asked before.
        if let Some(session) = op.session() {
            self.waiting.remove(&session);
        }
        match *op {
            LockOp::Take {
                session,
                key,
                mode,
                scope,
                wait,
            } => {
                if !self.blockers(session, key, mode).is_empty() {
                    if !wait {
                        return Ok(skipped(true));
                    }
                    self.waiting.insert(session, (key, mode));
                    if self.waits_for_itself(session) {
                        self.waiting.remove(&session);
                        return Err(reject(RejectionKind::Deadlock, "deadlock detected"));
                    }
                    return Ok(skipped(true));
                }
                let hold = Hold {
                    session,
                    mode,
                    scope,
                };
                let count = self.held.entry(key).or_default().entry(hold).or_insert(0);
                *count = count.checked_add(1).ok_or_else(|| {
                    reject(
                        RejectionKind::ProgramLimitExceeded,
                        "a lock was taken too many times over",
                    )
                })?;
                Ok(skipped(false))
            }
            LockOp::StopWaiting { .. } => Ok(skipped(false)),
            LockOp::Release { session, key, mode } => {
                let hold = Hold {
                    session,
                    mode,
                    scope: LockScope::Session,
                };
                let Some(holds) = self.held.get_mut(&key) else {
                    return Ok(skipped(true));
                };
                let Some(count) = holds.get_mut(&hold) else {
                    return Ok(skipped(true));
                };
                *count -= 1;
                if *count == 0 {
                    holds.remove(&hold);
                }
                if holds.is_empty() {
                    self.held.remove(&key);
                }
                Ok(skipped(false))
            }
            LockOp::ReleaseAll { session, scope } => {
                let released = |held: LockScope| match (scope, held) {
                    (None, _) => true,
                    (Some(LockScope::Transaction(last)), LockScope::Transaction(n)) => n <= last,
                    (Some(scope), held) => scope == held,
                };
                self.retain(|hold| hold.session != session || !released(hold.scope));
                Ok(skipped(false))
            }
            LockOp::ReleaseNode { node } => {
                let gone = |session: SessionId| node.is_none_or(|n| session.is_of_node(n));
                self.waiting.retain(|&session, _| !gone(session));
                self.retain(|hold| !gone(hold.session));
                Ok(skipped(false))
            }
        }
    }

    fn retain(&mut self, keep: impl Fn(&Hold) -> bool) {
        for holds in self.held.values_mut() {
            holds.retain(|hold, _| keep(hold));
        }
        self.held.retain(|_, holds| !holds.is_empty());
    }

    /// The other sessions whose holds on `key` keep `session` from taking
    /// it in `mode`.
    pub fn blockers(
        &self,
        session: SessionId,
        key: LockKey,
        mode: LockMode,
    ) -> BTreeSet<SessionId> {
        let Some(holds) = self.held.get(&key) else {
            return BTreeSet::new();
        };
        holds
            .keys()
            .filter(|h| h.session != session)
            .filter(|h| mode == LockMode::Exclusive || h.mode == LockMode::Exclusive)
            .map(|h| h.session)
            .collect()
    }

    /// Whether following who waits for whom from `session` leads back to
    /// it: a deadlock, which waiting would never end.
    fn waits_for_itself(&self, session: SessionId) -> bool {
        let mut seen = BTreeSet::new();
        let mut next = vec![session];
        while let Some(waiter) = next.pop() {
            let Some(&(key, mode)) = self.waiting.get(&waiter) else {
                continue;
            };
            for blocker in self.blockers(waiter, key, mode) {
                if blocker == session {
                    return true;
                }
                if seen.insert(blocker) {
                    next.push(blocker);
                }
            }
        }
        false
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty() && self.waiting.is_empty()
    }

    /// Whether any session of `node` (of any node, for `None`) holds or
    /// waits for a lock.
    pub fn has_sessions_of(&self, node: Option<u64>) -> bool {
        let of = |session: &SessionId| node.is_none_or(|n| session.is_of_node(n));
        self.waiting.keys().any(of) || self.held().any(|entry| of(&entry.hold.session))
    }

    /// Every hold, by lock.
    pub fn held(&self) -> impl Iterator<Item = HeldEntry> + '_ {
        self.held.iter().flat_map(|(&key, holds)| {
            holds
                .iter()
                .map(move |(&hold, &count)| HeldEntry { key, hold, count })
        })
    }

    /// Every session waiting, and for what.
    pub fn waiting(&self) -> impl Iterator<Item = WaitingEntry> + '_ {
        self.waiting
            .iter()
            .map(|(&session, &(key, mode))| WaitingEntry { session, key, mode })
    }

    /// The locks a manifest listed.
    pub fn from_entries(held: &[HeldEntry], waiting: &[WaitingEntry]) -> AdvisoryLocks {
        let mut locks = AdvisoryLocks::default();
        for entry in held {
            locks
                .held
                .entry(entry.key)
                .or_default()
                .insert(entry.hold, entry.count);
        }
        for entry in waiting {
            locks.waiting.insert(entry.session, (entry.key, entry.mode));
        }
        locks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(session: u64, key: i64, mode: LockMode, wait: bool) -> LockOp {
        LockOp::Take {
            session: SessionId(session),
            key: LockKey::int8(1, key),
            mode,
            scope: LockScope::Session,
            wait,
        }
    }

    fn taken(locks: &mut AdvisoryLocks, op: LockOp) -> bool {
        !locks.apply(&op).expect("applies").skipped
    }

    #[test]
    fn shared_holds_coexist_and_exclusive_ones_do_not() {
        use LockMode::*;
        let mut locks = AdvisoryLocks::default();
        assert!(taken(&mut locks, take(1, 7, Shared, false)));
        assert!(taken(&mut locks, take(2, 7, Shared, false)));
        assert!(!taken(&mut locks, take(3, 7, Exclusive, false)));
        // A session's own holds never block it.
        assert!(!taken(&mut locks, take(1, 7, Exclusive, false)));
        let release = |s| LockOp::Release {
            session: SessionId(s),
            key: LockKey::int8(1, 7),
            mode: Shared,
        };
        assert!(taken(&mut locks, release(2)));
        assert!(taken(&mut locks, take(1, 7, Exclusive, false)));
        assert!(!taken(&mut locks, take(2, 7, Shared, false)));
        // Released once per take; a release of nothing is skipped.
        assert!(!taken(&mut locks, release(2)));
        assert!(taken(&mut locks, release(1)));
        assert!(!taken(&mut locks, release(1)));
        // The pair form is another lock, and so is one of another database.
        assert!(taken(&mut locks, take(2, 1 << 32, Exclusive, false)));
        let other_database = LockOp::Take {
            session: SessionId(2),
            key: LockKey::int8(2, 7),
            mode: Exclusive,
            scope: LockScope::Session,
            wait: false,
        };
        assert!(taken(&mut locks, other_database));
        let pair = LockOp::Take {
            session: SessionId(2),
            key: LockKey::int4_pair(1, 0, 7),
            mode: Exclusive,
            scope: LockScope::Session,
            wait: false,
        };
        assert!(taken(&mut locks, pair));
    }

    #[test]
    fn a_cycle_of_waits_is_a_deadlock() {
        use LockMode::*;
        let mut locks = AdvisoryLocks::default();
        assert!(taken(&mut locks, take(1, 10, Exclusive, true)));
        assert!(taken(&mut locks, take(2, 20, Exclusive, true)));
        assert!(taken(&mut locks, take(3, 30, Exclusive, true)));
        assert!(!taken(&mut locks, take(1, 20, Exclusive, true)));
        assert!(!taken(&mut locks, take(2, 30, Exclusive, true)));
        let e = locks.apply(&take(3, 10, Exclusive, true)).unwrap_err();
        assert!(e.to_string().contains("deadlock"), "{e}");
        // The refused session does not wait; the others still do.
        assert_eq!(locks.waiting().count(), 2);
        // A session that stopped waiting (its statement was cancelled) is
        // no longer part of a cycle.
        locks
            .apply(&LockOp::StopWaiting {
                session: SessionId(2),
            })
            .unwrap();
        assert!(!taken(&mut locks, take(3, 10, Exclusive, true)));
        assert!(!taken(&mut locks, take(3, 10, Exclusive, false)));
        assert_eq!(locks.waiting().count(), 1);
        assert!(!taken(&mut locks, take(2, 30, Exclusive, true)));
        // Session 2 ends: its lock frees, and session 1 gets it.
        let end = LockOp::ReleaseAll {
            session: SessionId(2),
            scope: None,
        };
        locks.apply(&end).unwrap();
        assert!(taken(&mut locks, take(1, 20, Exclusive, true)));
        assert_eq!(locks.waiting().count(), 0);
    }

    #[test]
    fn a_transaction_release_spares_later_transactions() {
        let mut locks = AdvisoryLocks::default();
        let take = |key, n| LockOp::Take {
            session: SessionId(1),
            key: LockKey::int8(1, key),
            mode: LockMode::Exclusive,
            scope: LockScope::Transaction(n),
            wait: false,
        };
        assert!(taken(&mut locks, take(1, 1)));
        assert!(taken(&mut locks, take(2, 2)));
        assert!(taken(&mut locks, take(3, 3)));
        // The end of transaction 2 arrives after transaction 3 began.
        let end = LockOp::ReleaseAll {
            session: SessionId(1),
            scope: Some(LockScope::Transaction(2)),
        };
        locks.apply(&end).unwrap();
        let held: Vec<_> = locks.held().map(|h| h.key.objid).collect();
        assert_eq!(held, [3]);
    }

    #[test]
    fn a_node_releases_only_its_own_sessions() {
        use LockMode::*;
        let mut locks = AdvisoryLocks::default();
        let a = SessionId::new(1, 1000);
        let b = SessionId::new(2, 1000);
        assert!(taken(&mut locks, take(a.0, 1, Exclusive, false)));
        assert!(taken(&mut locks, take(b.0, 2, Exclusive, false)));
        locks.apply(&LockOp::ReleaseNode { node: Some(1) }).unwrap();
        assert!(!locks.has_sessions_of(Some(1)));
        assert!(locks.has_sessions_of(Some(2)));
        let entries: Vec<_> = locks.held().collect();
        let waiting: Vec<_> = locks.waiting().collect();
        assert_eq!(AdvisoryLocks::from_entries(&entries, &waiting), locks);
    }
}
