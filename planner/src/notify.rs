//! LISTEN, UNLISTEN and NOTIFY: PostgreSQL's notifications between
//! sessions, across the cluster.
//!
//! A session's `NOTIFY` (or `pg_notify`) waits with its transaction and
//! leaves at COMMIT, as one `Command::Notify` through the Raft log: every
//! node applies it after the writes committed before it, and a transaction
//! rolled back sends nothing. `LISTEN` and `UNLISTEN` take effect at COMMIT
//! too, as in PostgreSQL; a listener hears what commits after its LISTEN.
//!
//! ```text
//!   session A: NOTIFY c ─► pending ─► COMMIT ─► Command::Notify ─► Raft log
//!                                                                     │
//!   each node: store applies ─► Listeners::deliver ─► Inbox of every session listening on c
//!                                                                     │
//!   front end: between transactions ◄─ Inbox::take ◄──────────────────┘
//! ```
//!
//! The front end hands an inbox to its client between transactions only:
//! before the ReadyForQuery that ends a statement outside a block, and
//! while the session waits for its client's next message.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use ciab_storage::{Command, Notification, NotificationSink, Store};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListBuilder, StringArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;

use crate::advisory_locks::SessionLocks;
use crate::error::{Error, Result, sqlstate, to_df};
use crate::settings::SessionFacts;

/// The longest channel name, in bytes: PostgreSQL's identifiers
/// (NAMEDATALEN - 1). A longer identifier is cut to it, a longer string
/// refused.
const CHANNEL_BYTES_MAX: usize = 63;
/// The longest payload, in bytes, as in PostgreSQL (shorter than 8000).
const PAYLOAD_BYTES_MAX: usize = 7999;
/// How many notifications a session's inbox holds for a client that does
/// not take them; past it, new ones are dropped for that session (and
/// logged). PostgreSQL instead stops every sender once its shared queue is
/// full, which a committed transaction here cannot be.
const INBOX_NOTIFICATIONS_MAX: usize = 65_536;
/// The list function the set-returning `pg_listening_channels()` unnests
/// (`arrays.rs` writes the call so).
pub(crate) const LISTENING_CHANNELS_LIST: &str = "__ciab_listening_channels";

/// A node's listening sessions: the sink its store hands every applied
/// notification to.
#[derive(Default)]
pub(crate) struct Listeners {
    inboxes: Mutex<Vec<Weak<Inbox>>>,
}

impl Listeners {
    /// Makes `inbox` hear what this node applies from now on (again).
    fn register(&self, inbox: &Arc<Inbox>) {
        let mut inboxes = self.inboxes.lock().expect("lock poisoned");
        inboxes.retain(|i| i.strong_count() > 0);
        if !inboxes.iter().any(|i| i.as_ptr() == Arc::as_ptr(inbox)) {
            inboxes.push(Arc::downgrade(inbox));
        }
    }
}

impl NotificationSink for Listeners {
    fn deliver(&self, index: u64, notifications: &[Notification]) {
        let mut inboxes = self.inboxes.lock().expect("lock poisoned");
        inboxes.retain(|i| i.strong_count() > 0);
        for inbox in inboxes.iter().filter_map(Weak::upgrade) {
            inbox.offer(index, notifications);
        }
    }
}

/// The notifications a session heard and its client has not been sent
/// yet, and the channels it listens on.
pub struct Inbox {
    database: String,
    state: Mutex<InboxState>,
    /// Woken for each notification queued (a permit waits for a waiter).
    arrived: tokio::sync::Notify,
}

#[derive(Default)]
struct InboxState {
    /// Each channel listened on, with the index of the last log entry
    /// applied when the LISTEN committed: it hears later entries only.
    channels: BTreeMap<String, u64>,
    queue: VecDeque<Notification>,
    /// Notifications dropped since the inbox last overflowed.
    dropped: u64,
}

impl Inbox {
    fn new(database: String) -> Arc<Inbox> {
        Arc::new(Inbox {
            database,
            state: Mutex::new(InboxState::default()),
            arrived: tokio::sync::Notify::new(),
        })
    }

    fn offer(&self, index: u64, notifications: &[Notification]) {
        let mut state = self.state.lock().expect("lock poisoned");
        let mut queued = false;
        for n in notifications {
            let hears = n.database == self.database
                && state
                    .channels
                    .get(&n.channel)
                    .is_some_and(|&since| index > since);
            if !hears {
                continue;
            }
            if state.queue.len() >= INBOX_NOTIFICATIONS_MAX {
                if state.dropped == 0 {
                    tracing::warn!(
                        channel = %n.channel,
                        "a session's client takes no notifications: dropping those past {INBOX_NOTIFICATIONS_MAX}"
                    );
                }
                state.dropped += 1;
                continue;
            }
            state.dropped = 0;
            state.queue.push_back(n.clone());
            queued = true;
        }
        if queued {
            self.arrived.notify_one();
        }
    }

    /// The notifications waiting for the client, oldest first.
    pub fn take(&self) -> Vec<Notification> {
        let mut state = self.state.lock().expect("lock poisoned");
        state.queue.drain(..).collect()
    }

    /// Returns once a notification may be waiting (`take` tells).
    pub async fn arrived(&self) {
        self.arrived.notified().await;
    }

    /// Whether the session listens on any channel.
    pub fn listens(&self) -> bool {
        !self
            .state
            .lock()
            .expect("lock poisoned")
            .channels
            .is_empty()
    }

    fn channels(&self) -> Vec<String> {
        let state = self.state.lock().expect("lock poisoned");
        state.channels.keys().cloned().collect()
    }
}

/// A LISTEN or UNLISTEN waiting for its transaction to commit.
#[derive(Debug, Clone, PartialEq)]
enum Listen {
    Add(String),
    Remove(String),
    RemoveAll,
}

/// What the session's transaction will send and change at COMMIT.
#[derive(Default)]
struct Pending {
    /// In the order sent, each (channel, payload) once: PostgreSQL folds
    /// repeats within a transaction into one.
    notifications: Vec<(String, String)>,
    seen: HashSet<(String, String)>,
    listens: Vec<Listen>,
}

impl Pending {
    fn notify(&mut self, channel: &str, payload: &str) {
        let notification = (channel.to_string(), payload.to_string());
        if self.seen.insert(notification.clone()) {
            self.notifications.push(notification);
        }
    }

    fn mark(&self) -> Mark {
        Mark {
            notifications: self.notifications.len(),
            listens: self.listens.len(),
        }
    }

    fn roll_back_to(&mut self, mark: Mark) {
        for dropped in self.notifications.drain(mark.notifications..) {
            self.seen.remove(&dropped);
        }
        self.listens.truncate(mark.listens);
    }
}

/// How much a transaction had pending at a savepoint.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    notifications: usize,
    listens: usize,
}

/// One session's side of notifications.
pub(crate) struct SessionNotify {
    inbox: Arc<Inbox>,
    pending: Mutex<Pendings>,
    /// Numbers the session's transactions.
    locks: Arc<SessionLocks>,
    listeners: Arc<Listeners>,
    store: Arc<Store>,
    pid: i32,
}

/// Identifies one run of a statement in its session. Its plans carry it
/// (`SessionFacts::statement`), so a `pg_notify` call knows which
/// statement made it even when it comes late.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct StatementId(u64);

#[derive(Default)]
struct Pendings {
    /// The statements running, each with its transaction's number. A
    /// statement whose rows were dropped (it failed, or was cancelled) may
    /// still have partition tasks finishing a batch, which call `pg_notify`
    /// after the session went on to its next statement, or to a ROLLBACK
    /// TO; such calls find their statement gone and send nothing.
    running: BTreeMap<StatementId, u64>,
    last_statement: StatementId,
    /// What each transaction not yet ended has pending, by its number: a
    /// statement's end may run late, on its own task, after the next
    /// statement began.
    transactions: BTreeMap<u64, Pending>,
}

/// A statement running, until dropped: when its rows are all out, or the
/// stream of them is dropped, or it returned.
pub(crate) struct RunningStatement {
    id: StatementId,
    notify: Arc<SessionNotify>,
}

impl RunningStatement {
    pub(crate) fn id(&self) -> StatementId {
        self.id
    }
}

impl Drop for RunningStatement {
    fn drop(&mut self) {
        let mut pending = self.notify.pending.lock().expect("lock poisoned");
        pending.end_statement(self.id);
    }
}

impl Pendings {
    fn begin_statement(&mut self, transaction: u64) -> StatementId {
        let id = StatementId(self.last_statement.0 + 1);
        self.last_statement = id;
        self.running.insert(id, transaction);
        id
    }

    fn end_statement(&mut self, statement: StatementId) {
        let transaction = self.running.remove(&statement);
        assert!(transaction.is_some(), "a statement ends once");
    }

    /// A `pg_notify` call from `statement`: its transaction sends it,
    /// unless the statement already ended.
    fn notify_from(&mut self, statement: StatementId, channel: &str, payload: &str) {
        if let Some(&transaction) = self.running.get(&statement) {
            let transaction = self.transactions.entry(transaction).or_default();
            transaction.notify(channel, payload);
        }
    }
}

impl SessionNotify {
    pub(crate) fn new(
        listeners: &Arc<Listeners>,
        store: &Arc<Store>,
        locks: &Arc<SessionLocks>,
        database: &str,
        pid: i32,
    ) -> Arc<SessionNotify> {
        Arc::new(SessionNotify {
            inbox: Inbox::new(database.to_string()),
            pending: Default::default(),
            locks: locks.clone(),
            listeners: listeners.clone(),
            store: store.clone(),
            pid,
        })
    }

    /// A statement of the transaction running now begins.
    pub(crate) fn begin_statement(self: &Arc<Self>) -> RunningStatement {
        let transaction = self.locks.transaction();
        let mut pending = self.pending.lock().expect("lock poisoned");
        RunningStatement {
            id: pending.begin_statement(transaction),
            notify: self.clone(),
        }
    }

    pub(crate) fn inbox(&self) -> Arc<Inbox> {
        self.inbox.clone()
    }

    /// Runs `f` on what the transaction running now has pending.
    fn with_pending<T>(&self, f: impl FnOnce(&mut Pending) -> T) -> T {
        let transaction = self.locks.transaction();
        let mut pending = self.pending.lock().expect("lock poisoned");
        f(pending.transactions.entry(transaction).or_default())
    }

    /// `pg_notify(channel, payload)` called by `statement`'s plan.
    fn notify_from(&self, statement: StatementId, channel: &str, payload: &str) -> Result<()> {
        check_notification(channel, payload)?;
        let mut pending = self.pending.lock().expect("lock poisoned");
        pending.notify_from(statement, channel, payload);
        Ok(())
    }

    /// `LISTEN channel`.
    pub(crate) fn listen(&self, channel: &str) {
        let channel = identifier_channel(channel);
        self.with_pending(|pending| pending.listens.push(Listen::Add(channel)));
    }

    /// `UNLISTEN channel`, or `UNLISTEN *` for `None`.
    pub(crate) fn unlisten(&self, channel: Option<&str>) {
        let listen = match channel {
            Some(channel) => Listen::Remove(identifier_channel(channel)),
            None => Listen::RemoveAll,
        };
        self.with_pending(|pending| pending.listens.push(listen));
    }

    /// `NOTIFY channel [, payload]`: a channel named by an identifier.
    pub(crate) fn notify_statement(&self, channel: &str, payload: Option<&str>) -> Result<()> {
        let channel = identifier_channel(channel);
        let payload = payload.unwrap_or("");
        check_notification(&channel, payload)?;
        self.with_pending(|pending| pending.notify(&channel, payload));
        Ok(())
    }

    pub(crate) fn mark(&self) -> Mark {
        self.with_pending(|pending| pending.mark())
    }

    /// ROLLBACK TO a savepoint: forgets what was sent and listened since.
    pub(crate) fn roll_back_to(&self, mark: Mark) {
        self.with_pending(|pending| pending.roll_back_to(mark));
    }

    /// Transaction `transaction` rolled back: nothing it sent leaves.
    pub(crate) fn discard(&self, transaction: u64) {
        self.pending
            .lock()
            .expect("lock poisoned")
            .transactions
            .remove(&transaction);
    }

    /// Transaction `transaction` committed: its LISTENs and UNLISTENs take
    /// effect, then its notifications leave through the log (so a session
    /// hears its own, as in PostgreSQL).
    pub(crate) async fn commit(&self, transaction: u64) -> Result<()> {
        let pending = self
            .pending
            .lock()
            .expect("lock poisoned")
            .transactions
            .remove(&transaction);
        let Some(Pending {
            notifications,
            listens,
            ..
        }) = pending
        else {
            return Ok(());
        };
        if !listens.is_empty() {
            let since = self.store.last_applied_index();
            let mut state = self.inbox.state.lock().expect("lock poisoned");
            for listen in listens {
                match listen {
                    Listen::Add(channel) => {
                        state.channels.entry(channel).or_insert(since);
                    }
                    Listen::Remove(channel) => {
                        state.channels.remove(&channel);
                    }
                    Listen::RemoveAll => state.channels.clear(),
                }
            }
            // What arrived on a channel no longer listened on stays unsent,
            // as in PostgreSQL.
            let InboxState {
                channels, queue, ..
            } = &mut *state;
            queue.retain(|n| channels.contains_key(&n.channel));
            let listens = !state.channels.is_empty();
            drop(state);
            if listens {
                self.listeners.register(&self.inbox);
            }
        }
        if notifications.is_empty() {
            return Ok(());
        }
        let notifications = notifications
            .into_iter()
            .map(|(channel, payload)| Notification {
                database: self.inbox.database.clone(),
                channel,
                payload,
                pid: self.pid,
            })
            .collect();
        self.store.write(Command::Notify { notifications }).await?;
        Ok(())
    }
}

/// Refuses a notification PostgreSQL refuses.
fn check_notification(channel: &str, payload: &str) -> Result<()> {
    if channel.is_empty() {
        return Err(Error::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            "channel name cannot be empty",
        ));
    }
    if channel.len() > CHANNEL_BYTES_MAX {
        return Err(Error::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            "channel name too long",
        ));
    }
    if payload.len() > PAYLOAD_BYTES_MAX {
        return Err(Error::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            "payload string too long",
        ));
    }
    Ok(())
}

/// A channel an identifier names, cut to the longest name as PostgreSQL
/// cuts identifiers.
fn identifier_channel(name: &str) -> String {
    let mut end = name.len().min(CHANNEL_BYTES_MAX);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

/// Registers the session's `pg_notify` and the list behind
/// `pg_listening_channels()`.
pub(crate) fn register(ctx: &SessionContext, notify: &Arc<SessionNotify>) {
    ctx.register_udf(ScalarUDF::new_from_impl(PgNotify {
        notify: notify.clone(),
        signature: Signature::one_of(
            vec![
                TypeSignature::Exact(vec![DataType::Utf8, DataType::Utf8]),
                TypeSignature::Exact(vec![DataType::Null, DataType::Utf8]),
                TypeSignature::Exact(vec![DataType::Utf8, DataType::Null]),
                TypeSignature::Exact(vec![DataType::Null, DataType::Null]),
            ],
            Volatility::Volatile,
        ),
    }));
    ctx.register_udf(ScalarUDF::new_from_impl(ListeningChannels {
        inbox: notify.inbox(),
        signature: Signature::exact(vec![], Volatility::Volatile),
    }));
}

/// `pg_notify(channel, payload)`: NOTIFY with the channel as a string.
/// Not strict: a NULL payload is empty, a NULL channel an empty one
/// (refused).
struct PgNotify {
    notify: Arc<SessionNotify>,
    signature: Signature,
}

bound_udf_identity!(PgNotify, bound: notify);

impl ScalarUDFImpl for PgNotify {
    fn name(&self) -> &str {
        "pg_notify"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// PostgreSQL's `void`, which prints as an empty value.
    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        // Constants too are called once per row (the repeats fold into one).
        let texts = args
            .args
            .iter()
            .map(|a| Ok(cast(&a.to_array(rows)?, &DataType::Utf8)?))
            .collect::<DfResult<Vec<ArrayRef>>>()?;
        let [channels, payloads] = texts.as_slice() else {
            unreachable!("the signature takes two arguments");
        };
        let (channels, payloads) = (channels.as_string::<i32>(), payloads.as_string::<i32>());
        let statement = args
            .config_options
            .extensions
            .get::<SessionFacts>()
            .expect("a session's plans carry its facts")
            .statement;
        for row in 0..rows {
            let channel = channels.is_valid(row).then(|| channels.value(row));
            let payload = payloads.is_valid(row).then(|| payloads.value(row));
            self.notify
                .notify_from(statement, channel.unwrap_or(""), payload.unwrap_or(""))
                .map_err(to_df)?;
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(vec![
            "";
            rows
        ]))))
    }
}

/// The channels the session listens on, as one list (unnested into rows).
struct ListeningChannels {
    inbox: Arc<Inbox>,
    signature: Signature,
}

bound_udf_identity!(ListeningChannels, bound: inbox);

impl ScalarUDFImpl for ListeningChannels {
    fn name(&self) -> &str {
        LISTENING_CHANNELS_LIST
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(
            DataType::Utf8,
            true,
        ))))
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let mut list = ListBuilder::new(StringBuilder::new());
        for channel in self.inbox.channels() {
            list.values().append_value(channel);
        }
        list.append(true);
        Ok(ColumnarValue::Scalar(ScalarValue::List(Arc::new(
            list.finish(),
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(channel: &str, payload: &str) -> Notification {
        Notification {
            database: "db".into(),
            channel: channel.into(),
            payload: payload.into(),
            pid: 7,
        }
    }

    #[test]
    fn an_inbox_hears_its_channels_after_its_listen() {
        let inbox = Inbox::new("db".into());
        inbox.state.lock().unwrap().channels.insert("c".into(), 10);
        inbox.offer(10, &[notification("c", "before")]);
        inbox.offer(
            11,
            &[notification("c", "after"), notification("d", "other")],
        );
        let mut elsewhere = notification("c", "elsewhere");
        elsewhere.database = "other".into();
        inbox.offer(12, &[elsewhere]);
        let payloads: Vec<String> = inbox.take().into_iter().map(|n| n.payload).collect();
        assert_eq!(payloads, ["after"]);
        assert!(inbox.take().is_empty());
    }

    #[test]
    fn a_full_inbox_drops_new_notifications() {
        let inbox = Inbox::new("db".into());
        inbox.state.lock().unwrap().channels.insert("c".into(), 0);
        let many: Vec<Notification> = (0..INBOX_NOTIFICATIONS_MAX + 3)
            .map(|i| notification("c", &i.to_string()))
            .collect();
        inbox.offer(1, &many);
        let taken = inbox.take();
        assert_eq!(taken.len(), INBOX_NOTIFICATIONS_MAX);
        assert_eq!(
            taken.last().unwrap().payload,
            (INBOX_NOTIFICATIONS_MAX - 1).to_string()
        );
        inbox.offer(2, &[notification("c", "again")]);
        assert_eq!(inbox.take().len(), 1);
    }

    #[test]
    fn a_transaction_sends_each_notification_once_and_forgets_rolled_back_ones() {
        let mut pending = Pending::default();
        pending.notify("c", "1");
        pending.notify("c", "2");
        pending.notify("c", "1");
        let mark = pending.mark();
        pending.notify("c", "3");
        pending.notify("d", "1");
        pending.listens.push(Listen::Add("e".into()));
        pending.roll_back_to(mark);
        // A payload sent before the savepoint and again after it is sent
        // once, from before.
        pending.notify("c", "3");
        pending.notify("c", "2");
        let sent: Vec<String> = pending
            .notifications
            .iter()
            .map(|(c, p)| format!("{c}:{p}"))
            .collect();
        assert_eq!(sent, ["c:1", "c:2", "c:3"]);
        assert!(pending.listens.is_empty());
    }

    #[test]
    fn a_call_from_a_statement_that_ended_sends_nothing() {
        let mut pendings = Pendings::default();
        let failed = pendings.begin_statement(1);
        pendings.notify_from(failed, "c", "early");
        pendings.end_statement(failed);
        // The next statement, in the same transaction (a block) or in the
        // next one, runs while the failed one's late calls come.
        let next = pendings.begin_statement(1);
        pendings.notify_from(failed, "c", "late");
        pendings.notify_from(next, "c", "next");
        let other = pendings.begin_statement(2);
        pendings.notify_from(failed, "c", "late");
        pendings.notify_from(other, "c", "other");
        let sent = |transaction| -> Vec<String> {
            pendings.transactions[&transaction]
                .notifications
                .iter()
                .map(|(_, payload)| payload.clone())
                .collect()
        };
        assert_eq!(sent(1), ["early", "next"]);
        assert_eq!(sent(2), ["other"]);
    }

    #[test]
    fn identifiers_are_cut_to_a_channel_name() {
        assert_eq!(identifier_channel("short"), "short");
        let long = "é".repeat(40);
        let cut = identifier_channel(&long);
        assert!(cut.len() <= CHANNEL_BYTES_MAX && long.starts_with(&cut));
        assert_eq!(cut.len(), 62);
    }
}
