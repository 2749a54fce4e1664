//! Notifications (`NOTIFY`): messages a committed transaction sends to the
//! sessions listening on a channel, on every node of the cluster.
//!
//! A notification travels as a command through the Raft log, so every
//! node applies it, in the log's order, after the writes committed before
//! it. It changes no state: applying it hands it to the node's sink (the
//! planner's listeners) once the state it follows is published, so a
//! listener that reads on being notified sees what the notifier committed.
//!
//! ```text
//!   COMMIT ─► Command::Notify ─► log ─► apply on each node ─► sink.deliver(index, ...)
//! ```

use serde::{Deserialize, Serialize};

/// One `NOTIFY channel, 'payload'` of a committed transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Notifications reach the listeners of the sender's database only.
    pub database: String,
    pub channel: String,
    pub payload: String,
    /// The sending session's process id, as listeners are told.
    pub pid: i32,
}

/// Where a node's applied notifications go.
pub trait NotificationSink: Send + Sync {
    /// Called on the applying task, in log order, with the index of the
    /// log entry that carried them: it must not block.
    fn deliver(&self, index: u64, notifications: &[Notification]);
}
