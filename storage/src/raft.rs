//! Raft wiring: the type configuration, and [`Store`], the handle the
//! planner uses to read a consistent state and to write commands.
//!
//! Every write is appended to the log, synced on a majority of voters,
//! committed and applied before `Store::write` returns. A single node is a
//! one-voter cluster; more nodes join it over the network ([`crate::peer`]).
//! A node that does not lead forwards its writes to the leader and answers
//! once its own state machine has applied them, so a session reads its own
//! writes wherever it is connected.
//!
//! openraft 0.9 appends one client request at a time and waits for its sync
//! before taking the next, so concurrent writers would each pay a full
//! `fdatasync` in turn. `Store::write` therefore hands commands to a proposer
//! task that sends everything queued while the previous entry was being
//! written as one `Command::Batch` entry: one sync for all of them (group
//! commit), each command still applied or refused on its own. The proposer
//! and openraft's tasks run on a thread of their own ([`raft_thread`]); a
//! lone writer waits for its answer parked (`answer.rs`).
//!
//! Reads are linearizable ([`Store::read_barrier`]): before a statement
//! reads, the leader confirms with a majority that it still leads and names
//! the log index the read must see (the read index); the reading node waits
//! until it has applied that far. A one-voter cluster skips this: what its
//! leader applied is all that was ever committed.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use futures::stream::BoxStream;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::metrics::WaitError;
use openraft::{BasicNode, ChangeMembers, Config, Raft, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::answer::InFlight;
use crate::catalog::{NodeAddresses, TableId};
use crate::command::{Applied, Command, Rows, StageId, WriteOp};
use crate::disk::FreeSpace;
use crate::error::{Error, Rejection, RejectionKind, Result};
use crate::files::TableStore;
use crate::locks::LockOp;
use crate::log::{LogStore, write_atomic};
use crate::machine::{Shared, StateMachine, command_bytes, write_bytes};
use crate::objects::{Blob, ObjectOp};
use crate::peer::{
    Contacts, PeerError, PeerNetwork, PeerRequest, PeerResponse, RemoteFailure, Transport,
};
use crate::state::{DbState, batch_bytes};

pub type NodeId = u64;
pub type Entry = openraft::Entry<TypeConfig>;
/// What applying a command answers: done, or refused and why.
pub type CommandResponse = std::result::Result<Applied, Rejection>;
/// What applying a log entry answers: one response per command it carries
/// (several for a `Command::Batch`).
pub type EntryResponse = Vec<CommandResponse>;

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Command,
        R = EntryResponse,
        NodeId = NodeId,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A snapshot (flush to Parquet) is taken after this many log entries...
pub const SNAPSHOT_LOG_ENTRIES_MAX: u64 = 20_000;
/// ...or once this many bytes of rows sit only in memory and the log.
pub const FLUSH_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Entries kept in the log behind a snapshot, so that a follower a little
/// behind catches up from the log instead of receiving every table file.
const LOG_ENTRIES_KEPT_AFTER_SNAPSHOT: u64 = 100;
/// At most this many voters; further nodes join as learners.
pub const VOTERS_MAX: usize = 5;
/// How long a starting one-voter node waits to lead.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a flush (VACUUM, CHECKPOINT) waits for its snapshot.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);
/// How often a flush asks again for a snapshot that has not come.
const FLUSH_RETRIGGER_INTERVAL: Duration = Duration::from_millis(500);
/// How long a write or a read waits for a leader to be known.
const LEADER_WAIT: Duration = Duration::from_secs(5);
/// How long a write waits to be committed by a majority.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the leader may take to confirm it still leads, for a read.
const READ_INDEX_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a leader pauses before another read-index round when a
/// majority did not answer the last.
const READ_ROUND_PAUSE: Duration = Duration::from_millis(10);
/// How long a node waits to apply what the leader says is committed.
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long joining may take: the new node may first receive every table.
const JOIN_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a node's removal may take at the leader: it waits its turn
/// behind other membership changes, then commits two entries (joint
/// consensus) and a third that forgets the node's addresses; under load
/// that took longer than a write's `COMMIT_TIMEOUT`.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(60);
/// A voter the leader has not heard from for this long is replaced by a
/// learner that keeps up, if there is one: the learner has every entry
/// already, so nothing is copied, and the cluster again tolerates as many
/// failures as before. The failed node stays on as a learner.
const VOTER_DOWN_REPLACED_AFTER: Duration = Duration::from_secs(10);
/// How often the leader looks for failed voters.
const VOTER_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How often a leader asks the other members whether their disks have
/// `disk_reserve` free, and how long it waits for each answer.
const MEMBER_DISK_CHECK_INTERVAL: Duration = Duration::from_secs(1);
const MEMBER_DISK_CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// How often a leader looks for time-series partitions past their
/// retention: a look is a glance at each such table's oldest segment.
const RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// A learner this many entries behind the leader, or fewer, keeps up.
const LEARNER_LAG_ENTRIES_MAX: u64 = 100;
/// How long a leader that stops waits for another node to take over.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a write forwarded to a node that no longer leads looks for the
/// new leader.
const NEW_LEADER_POLL: Duration = Duration::from_millis(20);
/// A batch of queued commands stops growing at this many row bytes, so that
/// a bulk load's chunk is not held back behind others or they behind it...
const BATCH_BYTES_MAX: u64 = 1024 * 1024;
/// ...or at this many commands.
const BATCH_COMMANDS_MAX: usize = 1024;
/// openraft 0.9 sends heartbeats at this interval and gives every
/// AppendEntries as long to be answered, entries and the follower's fsync
/// included. A request that cannot make it is sent again, and again: so
/// entries are bounded ([`ENTRY_BYTES_MAX`]) and so is what one request
/// carries (`log::REPLICATION_PAYLOAD_BYTES_MAX`).
const HEARTBEAT_INTERVAL_MS: u64 = 100;
/// A follower that hears from no leader for a random time in this range,
/// after the leader's lease (openraft makes that the range's maximum),
/// stands for election: many heartbeats, so that a leader busy for a moment
/// (a loaded machine, a large entry) keeps leading. A killed leader is
/// replaced in about a second.
const ELECTION_TIMEOUT_MIN_MS: u64 = 300;
const ELECTION_TIMEOUT_MAX_MS: u64 = 600;
/// A snapshot travels in chunks of this size, each one request; the
/// receiver writes it to disk before it answers.
const SNAPSHOT_CHUNK_BYTES_MAX: u64 = 1024 * 1024;
/// How long one chunk may take. openraft's default (200 ms) is shorter
/// than writing a chunk takes on a busy machine, and a chunk that times
/// out is sent again, and again: a snapshot with object bytes never
/// arrived.
const INSTALL_SNAPSHOT_TIMEOUT_MS: u64 = 10_000;
/// A write carrying more rows than this reaches the log in stages of at
/// most this size, published together by a last, small entry: every entry
/// replicates well within a heartbeat interval.
pub const ENTRY_BYTES_MAX: u64 = 2 * 1024 * 1024;

/// A command waiting for the proposer, and where its outcome goes.
struct Proposal {
    command: Command,
    reply: oneshot::Sender<Result<CommandResponse>>,
}

/// The node's identity, generated once and kept in `node.json`.
#[derive(Debug, Serialize, Deserialize)]
struct NodeIdentity {
    node_id: NodeId,
}

/// How a node takes part in its cluster.
pub struct NodeOptions {
    /// Where this node listens, as other nodes and clients reach it.
    pub addresses: NodeAddresses,
    /// How it reaches other nodes.
    pub transport: Arc<dyn Transport>,
    /// Whether a new data directory starts a cluster of its own, or waits
    /// for a leader to add it ([`Store::join`]).
    pub bootstrap: bool,
    /// Where table and object files live: an `s3://bucket/prefix` URL, or
    /// the data directory (None).
    pub object_store: Option<String>,
}

/// One member of the cluster, as [`Store::nodes`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub id: NodeId,
    /// Where it listens, once it has said so.
    pub addresses: Option<NodeAddresses>,
    /// A voter, or a learner that only receives the log.
    pub voter: bool,
    pub this_node: bool,
    /// Its Raft state, where this node knows it: its own, and the leader's.
    pub state: Option<&'static str>,
    /// When this node last heard from it (never for itself).
    pub last_contact: Option<SystemTime>,
    /// The last log index it applied (this node) or holds (others, as the
    /// leader tracks them).
    pub applied_index: Option<u64>,
    /// Entries it is behind this node's log.
    pub lag: Option<u64>,
}

/// What the proposer and the request handlers share.
struct Node {
    raft: Raft<TypeConfig>,
    shared: Arc<Shared>,
    id: NodeId,
    /// Held while the node runs: see [`lock_data_dir`].
    _data_dir_lock: std::fs::File,
    addresses: NodeAddresses,
    transport: Arc<dyn Transport>,
    /// When each other node last answered or sent us the log.
    contacts: Contacts,
    /// Raft changes membership one step at a time: nodes asking to join
    /// (or being removed) together are handled in turn.
    admissions: tokio::sync::Mutex<()>,
    /// Set while a leader that is stopping hands over: it appends nothing
    /// more, so that another node takes over with every entry it has.
    stepping_down: std::sync::atomic::AtomicBool,
    /// Read-index requests waiting for the next confirmation round.
    reads: Arc<std::sync::Mutex<ReadRounds>>,
    /// While this node leads: the members whose disks said they have less
    /// than `disk_reserve` free, and what they said.
    short_disks: std::sync::Mutex<BTreeMap<NodeId, String>>,
    free_space: FreeSpace,
    /// The proposals not yet answered: a lone one waits parked (`answer.rs`).
    in_flight: InFlight,
}

/// Many concurrent linearizable reads share one round of heartbeats: the
/// requests that arrive while a round is under way wait for the next one.
/// Never the one under way: its index may predate a write that completed
/// before they arrived, which they must see.
#[derive(Default)]
struct ReadRounds {
    waiting: Vec<oneshot::Sender<std::result::Result<u64, RemoteFailure>>>,
    running: bool,
}

/// The storage layer of one node.
pub struct Store {
    node: Arc<Node>,
    proposals: mpsc::UnboundedSender<Proposal>,
}

/// A response of another kind than the request asked for: a bug.
fn unexpected(response: PeerResponse) -> Error {
    Error::Raft(format!("unexpected answer {response:?}"))
}

fn raft_err(e: impl std::fmt::Display) -> Error {
    Error::Raft(e.to_string())
}

impl Store {
    /// Opens (or creates) the data directory and starts Raft. A one-voter
    /// cluster (a new data directory with `bootstrap`, or a node that ran
    /// alone before) returns once it leads and has applied its whole log;
    /// any other node returns at once and becomes usable once
    /// [`Store::ready`] returns.
    pub async fn open(data_dir: &Path, options: NodeOptions) -> Result<Store> {
        std::fs::create_dir_all(data_dir).map_err(|e| Error::io(data_dir, e))?;
        let data_dir_lock = lock_data_dir(data_dir)?;
        let id = node_id(data_dir)?;
        let raft_dir = data_dir.join("raft");
        let log = LogStore::open(&raft_dir)?;
        let last_index = log.last_index();
        let files = match &options.object_store {
            Some(url) => TableStore::s3(url, id)?,
            None => TableStore::local(data_dir)?,
        };
        let shared = Arc::new(Shared::open(data_dir, files).await?);
        let config = Config {
            cluster_name: "ciab".into(),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_LOG_ENTRIES_MAX),
            max_in_snapshot_log_to_keep: LOG_ENTRIES_KEPT_AFTER_SNAPSHOT,
            heartbeat_interval: HEARTBEAT_INTERVAL_MS,
            election_timeout_min: ELECTION_TIMEOUT_MIN_MS,
            election_timeout_max: ELECTION_TIMEOUT_MAX_MS,
            snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES_MAX,
            install_snapshot_timeout: INSTALL_SNAPSHOT_TIMEOUT_MS,
            ..Default::default()
        };
        let config = Arc::new(config.validate().map_err(raft_err)?);
        let contacts = Contacts::default();
        let network = PeerNetwork {
            transport: options.transport.clone(),
            contacts: contacts.clone(),
        };
        let raft_thread = raft_thread()?;
        let raft = raft_thread
            .spawn(Raft::new(
                id,
                config,
                network,
                log,
                StateMachine::new(shared.clone()),
            ))
            .await
            .map_err(raft_err)?
            .map_err(raft_err)?;
        if !raft.is_initialized().await.map_err(raft_err)? && options.bootstrap {
            let me = BasicNode::new(&options.addresses.peer_addr);
            raft.initialize(BTreeMap::from([(id, me)]))
                .await
                .map_err(raft_err)?;
        }
        let voters = raft
            .with_raft_state(|st| {
                let membership = st.membership_state.effective().membership();
                membership.voter_ids().collect::<BTreeSet<_>>()
            })
            .await
            .map_err(raft_err)?;
        if voters == BTreeSet::from([id]) {
            raft.wait(Some(STARTUP_TIMEOUT))
                .metrics(
                    |m| {
                        m.current_leader == Some(id)
                            && m.last_applied.map(|l| l.index) >= last_index
                    },
                    "this node leads and has applied its log",
                )
                .await
                .map_err(raft_err)?;
        }
        let node = Arc::new(Node {
            raft,
            shared,
            id,
            _data_dir_lock: data_dir_lock,
            addresses: options.addresses,
            transport: options.transport,
            contacts,
            admissions: tokio::sync::Mutex::new(()),
            stepping_down: Default::default(),
            reads: Default::default(),
            short_disks: Default::default(),
            free_space: FreeSpace::default(),
            in_flight: InFlight::default(),
        });
        let (proposals, queue) = mpsc::unbounded_channel();
        raft_thread.spawn(propose(node.clone(), queue));
        tokio::spawn(replace_failed_voters(node.clone()));
        tokio::spawn(expire_partitions(node.clone(), proposals.downgrade()));
        tokio::spawn(watch_member_disks(node.clone()));
        Ok(Store { node, proposals })
    }

    /// Whether this node belongs to a cluster yet (a new node started to
    /// join one does not, until a leader adds it).
    pub async fn is_member(&self) -> Result<bool> {
        self.node.raft.is_initialized().await.map_err(raft_err)
    }

    /// Makes a new node a member of a cluster with `voters` (ids and peer
    /// addresses, this node among them) as its first voters. Every one of
    /// them must be new; the others learn of it from the first leader.
    pub async fn initialize(&self, voters: BTreeMap<NodeId, String>) -> Result<()> {
        assert!(
            voters.contains_key(&self.node.id),
            "a node initializes a cluster it is in"
        );
        let voters = voters
            .into_iter()
            .map(|(id, addr)| (id, BasicNode::new(addr)))
            .collect::<BTreeMap<_, _>>();
        self.node.raft.initialize(voters).await.map_err(raft_err)
    }

    /// Asks the nodes at `seeds` (peer addresses) to add this one to their
    /// cluster, each in turn until one does. Returns once this node is a
    /// member and has caught up with the leader.
    pub async fn join(&self, seeds: &[String]) -> Result<()> {
        let mut failures = Vec::new();
        for seed in seeds {
            let request = PeerRequest::Join {
                id: self.node.id,
                addresses: self.node.addresses.clone(),
            };
            match self.node.transport.call(seed, request, JOIN_TIMEOUT).await {
                Ok(PeerResponse::Joined(Ok(()))) => return Ok(()),
                Ok(PeerResponse::Joined(Err(f))) => {
                    failures.push(format!("{seed}: {}", Error::from(f)))
                }
                Ok(other) => failures.push(format!("{seed}: unexpected answer {other:?}")),
                Err(e) => failures.push(e.to_string()),
            }
        }
        Err(Error::Unavailable(format!(
            "no node admitted this one: {}",
            failures.join("; ")
        )))
    }

    /// Waits until this node can serve: a leader is known and this node has
    /// applied everything committed before now. Then records where this node
    /// listens, if the cluster does not know yet, and drops the bulk loads
    /// this node's sessions left unfinished when it last stopped, and the
    /// advisory locks they held.
    pub async fn ready(&self) -> Result<()> {
        let mut last_report = std::time::Instant::now();
        while let Err(e) = self.read_barrier().await {
            if last_report.elapsed() > Duration::from_secs(10) {
                tracing::info!(reason = %e, "waiting for the cluster to have a leader");
                last_report = std::time::Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let known = self.snapshot().catalog.nodes.get(&self.node.id).cloned();
        let in_membership = self
            .node
            .member_addr(self.node.id)
            .is_some_and(|a| a == self.node.addresses.peer_addr);
        if known.as_ref() != Some(&self.node.addresses) || !in_membership {
            let addresses = self.node.addresses.clone();
            self.node.join_via_leader(self.node.id, addresses).await?;
        }
        let solo = self.node.is_solo();
        let orphans: Vec<_> = self
            .snapshot()
            .staged
            .keys()
            .copied()
            .filter(|stage| solo || stage.is_of_node(self.node.id))
            .collect();
        for stage in orphans {
            self.write(Command::Unstage { stage }).await?;
        }
        // Uploads of writers that died with the node; a multipart's parts
        // stay until the multipart upload completes or is aborted.
        let state = self.snapshot();
        let objects = &state.objects;
        let parts: BTreeSet<StageId> = objects
            .multiparts
            .values()
            .flat_map(|m| m.parts.values().map(|p| p.upload))
            .collect();
        let orphans = objects
            .uploads
            .keys()
            .filter(|u| (solo || u.is_of_node(self.node.id)) && !parts.contains(u));
        for &upload in orphans {
            let op = ObjectOp::Discard { upload };
            self.write(Command::Object(op)).await?;
        }
        // Advisory locks of sessions that ended with this node.
        let node = (!solo).then_some(self.node.id);
        if self.snapshot().locks.has_sessions_of(node) {
            let op = LockOp::ReleaseNode { node };
            self.write(Command::Lock(op)).await?;
        }
        Ok(())
    }

    /// The bytes of `range` of an object (or any blob of a pinned state),
    /// as they are read.
    pub fn read_blob(&self, blob: &Blob, range: Range<u64>) -> BoxStream<'static, Result<Bytes>> {
        crate::objects::read_blob(self.node.shared.files(), blob, range)
    }

    pub fn node_id(&self) -> NodeId {
        self.node.id
    }

    /// Removes node `id` from the cluster for good (a learner takes a
    /// removed voter's place, if there is one). The removed node's data
    /// stays on its disk; it takes no further part.
    pub async fn remove_node(&self, id: NodeId) -> Result<()> {
        self.node.remove_via_leader(id).await
    }

    /// Before a clean stop: a leader stops appending and waits (briefly)
    /// for another voter to be elected, so writes pause for one election
    /// instead of failing. Nodes that forward writes meanwhile are told to
    /// find the new leader.
    pub async fn step_down(&self) {
        let node = &self.node;
        if node.raft.metrics().borrow().current_leader != Some(node.id) || node.is_solo() {
            return;
        }
        node.stepping_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Without heartbeats the followers' election timers run out.
        node.raft.runtime_config().heartbeat(false);
        let handed_over = node
            .raft
            .wait(Some(HANDOVER_TIMEOUT))
            .metrics(
                |m| m.current_leader.is_some_and(|l| l != node.id),
                "another node leads",
            )
            .await;
        match handed_over {
            Ok(m) => tracing::info!(leader = m.current_leader, "handed leadership over"),
            Err(e) => tracing::warn!(reason = %e, "no other node took over leadership"),
        }
    }

    /// Answers a request another node sent.
    pub async fn serve(&self, request: PeerRequest) -> PeerResponse {
        self.node.serve(request).await
    }

    /// The cluster's members as this node's Raft sees them now: its own
    /// state, and, on the leader, how far each member has replicated.
    pub fn nodes(&self) -> Vec<NodeStatus> {
        let node = &self.node;
        let metrics = node.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: Vec<NodeId> = membership.voter_ids().collect();
        let known = self.snapshot().catalog.nodes.clone();
        let contacts = node.contacts.lock().expect("lock poisoned").clone();
        let applied = |id: NodeId| {
            if id == node.id {
                return metrics.last_applied.map(|l| l.index);
            }
            let replication = metrics.replication.as_ref()?;
            replication.get(&id).copied().flatten().map(|l| l.index)
        };
        membership
            .nodes()
            .map(|(&id, member)| {
                let state = if id == node.id {
                    Some(metrics.state)
                } else if metrics.current_leader == Some(id) {
                    Some(ServerState::Leader)
                } else {
                    None
                };
                let applied_index = applied(id);
                let addresses = known.get(&id).cloned().or_else(|| {
                    (!member.addr.is_empty()).then(|| NodeAddresses {
                        peer_addr: member.addr.clone(),
                        pg_addr: String::new(),
                    })
                });
                NodeStatus {
                    id,
                    addresses,
                    voter: voters.contains(&id),
                    this_node: id == node.id,
                    state: state.map(|s| match s {
                        ServerState::Leader => "leader",
                        ServerState::Follower => "follower",
                        ServerState::Candidate => "candidate",
                        ServerState::Learner => "learner",
                        ServerState::Shutdown => "shutdown",
                    }),
                    last_contact: contacts.get(&id).copied(),
                    applied_index,
                    lag: applied_index
                        .map(|a| metrics.last_log_index.unwrap_or(0).saturating_sub(a)),
                }
            })
            .collect()
    }

    /// The latest applied state. Holding it pins that version: later writes
    /// make new versions and never change this one.
    pub fn snapshot(&self) -> Arc<DbState> {
        self.node.shared.state()
    }

    /// The index of the last log entry [`Store::snapshot`] reflects.
    pub fn last_applied_index(&self) -> u64 {
        self.node.shared.last_applied_index()
    }

    /// Sends every notification this node applies from now on to `sink`,
    /// with the index of its entry.
    pub fn set_notification_sink(&self, sink: Arc<dyn crate::NotificationSink>) {
        self.node.shared.set_notification_sink(sink);
    }

    /// Marked changed each time this node's state changes: what a session
    /// waiting for an advisory lock waits on before it looks again.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<()> {
        self.node.shared.changes()
    }

    /// Whether this node's state may lack writes committed elsewhere: not
    /// when it is the only voter, which leads and applies what it commits.
    pub fn reads_may_lag(&self) -> bool {
        !self.node.is_solo()
    }

    /// Returns once this node has applied every write that was committed
    /// anywhere in the cluster before the call: a read of
    /// [`Store::snapshot`] after it is linearizable. Fails with
    /// `Error::Unavailable` where no majority can be reached.
    pub async fn read_barrier(&self) -> Result<()> {
        let node = &self.node;
        if !self.reads_may_lag() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        loop {
            match node.on_leader(PeerRequest::ReadIndex).await? {
                PeerResponse::ReadIndex(Ok(index)) => return node.wait_applied(index).await,
                // The leader is handing over: ask the next one.
                PeerResponse::ReadIndex(Err(RemoteFailure::NotLeader))
                    if started.elapsed() < LEADER_WAIT =>
                {
                    tokio::time::sleep(NEW_LEADER_POLL).await;
                }
                PeerResponse::ReadIndex(Err(f)) => return Err(f.into()),
                other => return Err(unexpected(other)),
            }
        }
    }

    /// Appends a command to the log and returns once it is durable and
    /// applied. A refusal comes back as `Error::Rejected`.
    pub async fn write(&self, command: Command) -> Result<Applied> {
        debug_assert!(
            !matches!(command, Command::Batch { .. }),
            "batches are the proposer's"
        );
        match command {
            Command::Write { ops } if write_bytes(&ops) > ENTRY_BYTES_MAX => {
                self.write_staged(ops).await
            }
            command => self.propose_all(vec![command]).remove(0).await,
        }
    }

    /// Stages rows for a later `WriteOp::Publish` (a bulk load's chunk),
    /// in as many commands as entries need.
    pub async fn stage(
        &self,
        stage: StageId,
        table: TableId,
        version: u64,
        rows: &RecordBatch,
    ) -> Result<Applied> {
        let mut applied = Applied::default();
        for outcome in self.propose_all(stage_parts(stage, table, version, rows)?) {
            applied.rows += outcome.await?.rows;
        }
        Ok(applied)
    }

    /// Queues a command now and returns its outcome to await: commands
    /// queued one after another are applied in that order, so a writer
    /// may have several in flight.
    pub fn write_queued(
        &self,
        command: Command,
    ) -> impl std::future::Future<Output = Result<Applied>> + Send + use<> {
        debug_assert!(
            command_bytes(&command) <= ENTRY_BYTES_MAX,
            "queued commands fit one entry"
        );
        self.propose_all(vec![command]).remove(0)
    }

    /// A write too large for one entry: its inserts go to stages first, and
    /// a last entry publishes them with the rest of the write, all or none.
    /// (Deletions stay in that entry: eight bytes a row.)
    async fn write_staged(&self, ops: Vec<WriteOp>) -> Result<Applied> {
        let mut stages = Vec::new();
        let mut staging = Vec::new();
        let mut last = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                WriteOp::Insert {
                    table,
                    version,
                    rows,
                } => {
                    let stage = StageId::fresh(self.node.id);
                    staging.extend(stage_in_parts(stage, table, version, &rows)?);
                    stages.push(stage);
                    last.push(WriteOp::Publish {
                        table,
                        version,
                        stage,
                    });
                }
                other => last.push(other),
            }
        }
        let mut written = Ok(Applied::default());
        for outcome in self.propose_all(staging) {
            if let Err(e) = outcome.await {
                written = Err(e);
            }
        }
        if written.is_ok() {
            written = self
                .propose_all(vec![Command::Write { ops: last }])
                .remove(0)
                .await;
        }
        if written.is_err() {
            // Queued after the stages (and any publish), so applied after them.
            let unstage = stages.into_iter().map(|stage| Command::Unstage { stage });
            for outcome in self.propose_all(unstage.collect()) {
                if let Err(e) = outcome.await {
                    tracing::warn!(error = %e, "could not discard the stages of a failed write");
                }
            }
        }
        written
    }

    /// Queues commands for the proposer, in order, and returns their
    /// outcomes to await. Commands that add data are refused instead, all
    /// of them, when the disk is short of `disk_reserve` (`disk.rs`), and
    /// so is a command the log could not hold (`Command::check_log_form`).
    fn propose_all(
        &self,
        commands: Vec<Command>,
    ) -> Vec<impl std::future::Future<Output = Result<Applied>> + use<>> {
        let refused = if commands.iter().any(Command::adds_data) {
            self.node.check_disks().err()
        } else {
            None
        };
        commands
            .into_iter()
            .map(|command| {
                let queued = match (&refused, command.check_log_form()) {
                    (Some(e), _) => Err(e.for_another_writer()),
                    (None, Err(e)) => Err(e),
                    (None, Ok(())) => {
                        let ticket = self.node.in_flight.enter(command_bytes(&command));
                        let (reply, outcome) = oneshot::channel();
                        let queued = self.proposals.send(Proposal { command, reply });
                        Ok((queued, ticket, outcome))
                    }
                };
                async move {
                    let (queued, ticket, outcome) = queued?;
                    queued.map_err(|_| Error::Raft("the node is shutting down".into()))?;
                    let response = ticket
                        .wait(outcome)
                        .await
                        .map_err(|_| Error::Raft("the node is shutting down".into()))??;
                    response.map_err(Error::Rejected)
                }
            })
            .collect()
    }

    /// Writes every table to Parquet now and truncates the log.
    pub async fn flush(&self) -> Result<()> {
        let raft = &self.node.raft;
        let target = raft.metrics().borrow().last_applied;
        let deadline = tokio::time::Instant::now() + FLUSH_TIMEOUT;
        // Raft ignores a trigger while a snapshot is being built (another
        // session's VACUUM, say), and that one may end short of `target`:
        // trigger again until a snapshot covers it.
        loop {
            raft.trigger().snapshot().await.map_err(raft_err)?;
            let covered = raft
                .wait(Some(FLUSH_RETRIGGER_INTERVAL))
                .metrics(|m| m.snapshot >= target, "snapshot taken")
                .await;
            match covered {
                Ok(_) => return Ok(()),
                Err(WaitError::Timeout(..)) if tokio::time::Instant::now() < deadline => {}
                Err(e) => return Err(raft_err(e)),
            }
        }
    }

    pub async fn shutdown(&self) -> Result<()> {
        self.node.raft.shutdown().await.map_err(raft_err)
    }

    pub fn data_dir(&self) -> &PathBuf {
        self.node.shared.data_dir()
    }
}

impl Node {
    /// Whether this node is the only voter: then it leads, and what it
    /// applied is everything committed.
    fn is_solo(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let mut voters = m.membership_config.membership().voter_ids();
        voters.next() == Some(self.id) && voters.next().is_none()
    }

    /// A member's peer address, as the membership records it.
    fn member_addr(&self, id: NodeId) -> Option<String> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
    }

    /// The leader and its peer address, waiting up to [`LEADER_WAIT`] for
    /// one to be elected.
    async fn leader(&self) -> Result<(NodeId, String)> {
        // A leader that was just removed from the cluster leads on until
        // the change is committed everywhere: it is not one to ask.
        let member_leader = |m: &openraft::RaftMetrics<NodeId, BasicNode>| {
            let leader = m.current_leader?;
            let node = m.membership_config.membership().get_node(&leader)?;
            Some((leader, node.addr.clone()))
        };
        let metrics = self
            .raft
            .wait(Some(LEADER_WAIT))
            .metrics(|m| member_leader(m).is_some(), "a leader is known")
            .await
            .map_err(|_| {
                Error::Unavailable(format!(
                    "no leader was elected within {LEADER_WAIT:?}: this node may be cut off \
                     from the majority of its cluster"
                ))
            })?;
        Ok(member_leader(&metrics).expect("waited for a leader"))
    }

    /// Has the leader serve `request`: this node, or over the network.
    async fn on_leader(&self, request: PeerRequest) -> Result<PeerResponse> {
        let (leader, addr) = self.leader().await?;
        if leader == self.id {
            return Ok(self.serve(request).await);
        }
        let sent_write = matches!(request, PeerRequest::Write(_));
        let timeout = match request {
            PeerRequest::Join { .. } => JOIN_TIMEOUT,
            PeerRequest::Remove { .. } => REMOVE_TIMEOUT,
            _ => COMMIT_TIMEOUT,
        };
        match self.transport.call(&addr, request, timeout).await {
            Ok(response) => Ok(response),
            Err(e @ PeerError::Unreachable { .. }) => Err(Error::Unavailable(e.to_string())),
            // A write may have been committed after all.
            Err(e @ PeerError::Lost { .. }) if sent_write => {
                Err(Error::OutcomeUnknown(e.to_string()))
            }
            Err(e @ PeerError::Lost { .. }) => Err(Error::Unavailable(e.to_string())),
        }
    }

    async fn serve(&self, request: PeerRequest) -> PeerResponse {
        match request {
            PeerRequest::AppendEntries(rpc) => {
                if let Some(leader) = rpc.vote.leader_id().voted_for() {
                    self.contacts
                        .lock()
                        .expect("lock poisoned")
                        .insert(leader, SystemTime::now());
                }
                PeerResponse::AppendEntries(self.raft.append_entries(rpc).await)
            }
            PeerRequest::Vote(rpc) => PeerResponse::Vote(self.raft.vote(rpc).await),
            PeerRequest::InstallSnapshot(rpc) => {
                PeerResponse::InstallSnapshot(self.raft.install_snapshot(rpc).await)
            }
            PeerRequest::Write(_) if !self.leads() => {
                PeerResponse::Written(Err(RemoteFailure::NotLeader))
            }
            // The node that forwarded the write checked its own disk; the
            // leader checks its own and what the other members said.
            PeerRequest::Write(entry) => PeerResponse::Written(
                async {
                    if entry.adds_data() {
                        self.check_disks()?;
                    }
                    self.commit_here(entry).await
                }
                .await
                .map_err(RemoteFailure::from),
            ),
            PeerRequest::CheckDisk => PeerResponse::DiskChecked(
                self.free_space
                    .check(self.shared.data_dir(), &self.shared.state())
                    .map_err(RemoteFailure::from),
            ),
            PeerRequest::Remove { id } => PeerResponse::Removed(
                Box::pin(self.remove_via_leader(id))
                    .await
                    .map_err(RemoteFailure::from),
            ),
            PeerRequest::ReadIndex if !self.leads() => {
                PeerResponse::ReadIndex(Err(RemoteFailure::NotLeader))
            }
            PeerRequest::ReadIndex => PeerResponse::ReadIndex(self.read_index().await),
            PeerRequest::Join { .. } if !self.raft.is_initialized().await.unwrap_or(false) => {
                PeerResponse::Joined(Err(RemoteFailure::Unavailable(
                    "this node is not a member of a cluster yet".into(),
                )))
            }
            // The joining node knows a seed, which need not lead.
            PeerRequest::Join { id, addresses } => PeerResponse::Joined(
                Box::pin(self.join_via_leader(id, addresses))
                    .await
                    .map_err(RemoteFailure::from),
            ),
        }
    }

    /// Adds (or updates) a member through the leader: this node, if it
    /// leads.
    async fn join_via_leader(&self, id: NodeId, addresses: NodeAddresses) -> Result<()> {
        if self.leads() {
            return self.admit(id, addresses).await;
        }
        match self
            .on_other_leader(PeerRequest::Join { id, addresses })
            .await?
        {
            PeerResponse::Joined(r) => Ok(r?),
            other => Err(unexpected(other)),
        }
    }

    /// Removes a member through the leader: this node, if it leads.
    async fn remove_via_leader(&self, id: NodeId) -> Result<()> {
        if self.leads() {
            return self.remove(id).await;
        }
        match self.on_other_leader(PeerRequest::Remove { id }).await? {
            PeerResponse::Removed(r) => Ok(r?),
            other => Err(unexpected(other)),
        }
    }

    /// Has the leader serve a membership request this node does not lead
    /// for; a node handing its leadership over refuses rather than asking
    /// itself.
    async fn on_other_leader(&self, request: PeerRequest) -> Result<PeerResponse> {
        if self.stepping_down() {
            return Err(Error::Unavailable(
                "this node is handing leadership over".into(),
            ));
        }
        self.on_leader(request).await
    }

    /// Appends an entry on this node, which must lead; returns its index and
    /// the responses once a majority has it and it is applied here.
    async fn commit_here(&self, entry: Command) -> Result<(u64, EntryResponse)> {
        let written = tokio::time::timeout(COMMIT_TIMEOUT, self.raft.client_write(entry))
            .await
            .map_err(|_| {
                Error::OutcomeUnknown(format!(
                    "the write was not committed within {COMMIT_TIMEOUT:?}: a majority of the \
                     cluster may be unreachable, and the write may still be committed later"
                ))
            })?
            .map_err(|e| match e {
                RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => Error::Unavailable(
                    "this node stopped leading before the write was appended".into(),
                ),
                other => raft_err(other),
            })?;
        Ok((written.log_id.index, written.data))
    }

    /// Refuses a write that adds data while this node's disk, or (on the
    /// leader) another member's, has less than `disk_reserve` free: every
    /// member appends every entry, and a member that cannot append stops.
    fn check_disks(&self) -> Result<()> {
        self.free_space
            .check(self.shared.data_dir(), &self.shared.state())?;
        let short = self.short_disks.lock().expect("lock poisoned");
        match short.iter().next() {
            Some((id, said)) => Err(Error::DiskFull(format!("node {id}: {said}"))),
            None => Ok(()),
        }
    }

    /// Whether this node leads and may append. A leader that removed
    /// itself leads on until it has applied the change, but what it appends
    /// meanwhile may never be confirmed to it: the next leader commits it
    /// without replicating to a node that is no longer a member.
    fn leads(&self) -> bool {
        let leader = self.raft.metrics().borrow().current_leader;
        leader == Some(self.id) && self.member_addr(self.id).is_some() && !self.stepping_down()
    }

    fn stepping_down(&self) -> bool {
        self.stepping_down.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Commits an entry through the leader, wherever it is. An entry the
    /// leader refused because it no longer leads was not appended, so it
    /// goes to the next leader, for as long as one is expected.
    async fn commit(&self, entry: Command) -> Result<EntryResponse> {
        let started = std::time::Instant::now();
        loop {
            if self.leads() {
                return Ok(self.commit_here(entry).await?.1);
            }
            let stepping_down = self.stepping_down();
            let (leader, _) = self.leader().await?;
            if leader == self.id && stepping_down {
                if started.elapsed() > LEADER_WAIT {
                    return Err(Error::Unavailable("this node is stopping".into()));
                }
                tokio::time::sleep(NEW_LEADER_POLL).await;
                continue;
            }
            // The copy lets the entry go to the next leader if this one
            // refuses it.
            match self.on_leader(PeerRequest::Write(entry.clone())).await? {
                PeerResponse::Written(Ok((index, responses))) => {
                    // Committed: wait to apply it here so the session that
                    // wrote reads its own write.
                    if let Err(e) = self.wait_applied(index).await {
                        tracing::warn!(index, reason = %e, "a forwarded write is committed but not applied here yet");
                    }
                    return Ok(responses);
                }
                PeerResponse::Written(Err(RemoteFailure::NotLeader))
                    if started.elapsed() < LEADER_WAIT =>
                {
                    tokio::time::sleep(NEW_LEADER_POLL).await;
                }
                PeerResponse::Written(Err(f)) => return Err(f.into()),
                other => return Err(unexpected(other)),
            }
        }
    }

    /// On the leader: confirms with a majority that it still leads and
    /// returns the index a linearizable read must see.
    async fn read_index(&self) -> std::result::Result<u64, RemoteFailure> {
        let (reply, index) = oneshot::channel();
        let start_rounds = {
            let mut reads = self.reads.lock().expect("lock poisoned");
            reads.waiting.push(reply);
            !std::mem::replace(&mut reads.running, true)
        };
        if start_rounds {
            tokio::spawn(confirm_rounds(self.raft.clone(), self.reads.clone()));
        }
        index.await.unwrap_or_else(|_| {
            Err(RemoteFailure::Unavailable(
                "the node is shutting down".into(),
            ))
        })
    }

    async fn wait_applied(&self, index: u64) -> Result<()> {
        if self
            .raft
            .metrics()
            .borrow()
            .last_applied
            .map_or(0, |l| l.index)
            >= index
        {
            return Ok(());
        }
        self.raft
            .wait(Some(APPLY_TIMEOUT))
            .applied_index_at_least(Some(index), "applied up to the read index")
            .await
            .map_err(|e| Error::Unavailable(format!("this node fell behind the leader: {e}")))?;
        Ok(())
    }

    /// On the leader: removes a node; a learner, if any, takes the place of
    /// a removed voter.
    async fn remove(&self, id: NodeId) -> Result<()> {
        let _in_turn = self.admissions.lock().await;
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let membership = membership.membership();
        if membership.get_node(&id).is_none() {
            return Err(Error::Rejected(Rejection::new(
                RejectionKind::UndefinedObject,
                format!("node {id} is not a member of this cluster"),
            )));
        }
        let mut voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let change = if voters.remove(&id) {
            if voters.is_empty() {
                return Err(Error::Rejected(Rejection::new(
                    RejectionKind::Unsupported,
                    "the cluster's only voter cannot be removed",
                )));
            }
            voters.extend(membership.learner_ids().next());
            ChangeMembers::ReplaceAllVoters(voters)
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        tracing::info!(node = id, "removing a node");
        // `retain: false`: a removed voter does not stay on as a learner.
        self.raft
            .change_membership(change, false)
            .await
            .map_err(raft_err)?;
        let record = Command::NodeAddresses {
            node: id,
            addresses: None,
        };
        let responses = if id == self.id {
            self.commit_on_remaining_members(record).await?
        } else {
            self.commit_here(record).await?.1
        };
        for response in responses {
            response?;
        }
        Ok(())
    }

    /// Commits an entry through the next leader, once this leader has
    /// removed itself: it steps down, and as it is no longer a member it
    /// hears of no later leader, so it asks each remaining member in turn
    /// until one leads.
    async fn commit_on_remaining_members(&self, entry: Command) -> Result<EntryResponse> {
        let started = std::time::Instant::now();
        let members: Vec<String> = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            let membership = m.membership_config.membership();
            membership.nodes().map(|(_, n)| n.addr.clone()).collect()
        };
        loop {
            for addr in &members {
                let request = PeerRequest::Write(entry.clone());
                match self.transport.call(addr, request, COMMIT_TIMEOUT).await {
                    Ok(PeerResponse::Written(Ok((_, responses)))) => return Ok(responses),
                    Ok(PeerResponse::Written(Err(RemoteFailure::NotLeader)))
                    | Err(PeerError::Unreachable { .. }) => {}
                    Ok(PeerResponse::Written(Err(f))) => return Err(f.into()),
                    Ok(other) => return Err(unexpected(other)),
                    Err(e @ PeerError::Lost { .. }) => {
                        return Err(Error::OutcomeUnknown(e.to_string()));
                    }
                }
            }
            if started.elapsed() > LEADER_WAIT {
                return Err(Error::Unavailable(format!(
                    "no remaining member led within {LEADER_WAIT:?} of this node's removal"
                )));
            }
            tokio::time::sleep(NEW_LEADER_POLL).await;
        }
    }

    /// On the leader: if a voter has not answered since
    /// [`VOTER_DOWN_REPLACED_AFTER`] ago (or since `leading_since`, if later)
    /// and a learner keeps up, makes the learner a voter in its place.
    async fn replace_a_failed_voter(&self, leading_since: SystemTime) -> Result<()> {
        let _in_turn = self.admissions.lock().await;
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let last_index = metrics.last_log_index.unwrap_or(0);
        let now = SystemTime::now();
        let (failed, fit) = {
            let contacts = self.contacts.lock().expect("lock poisoned");
            let silent_for = |id: &NodeId| {
                let heard = contacts.get(id).copied().unwrap_or(leading_since);
                now.duration_since(heard.max(leading_since))
                    .unwrap_or_default()
            };
            let failed = membership
                .voter_ids()
                .find(|id| *id != self.id && silent_for(id) > VOTER_DOWN_REPLACED_AFTER);
            let keeps_up = |id: &NodeId| {
                let matched = metrics
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(id).cloned().flatten());
                silent_for(id) < VOTER_CHECK_INTERVAL
                    && matched.is_some_and(|m| m.index + LEARNER_LAG_ENTRIES_MAX >= last_index)
            };
            (failed, membership.learner_ids().find(keeps_up))
        };
        let (Some(failed), Some(learner)) = (failed, fit) else {
            return Ok(());
        };
        let mut voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        voters.remove(&failed);
        voters.insert(learner);
        tracing::info!(
            failed,
            learner,
            "a learner takes the place of a voter that stopped answering"
        );
        // `retain: true`: the failed node stays a learner and catches up
        // when it comes back.
        self.raft
            .change_membership(ChangeMembers::ReplaceAllVoters(voters), true)
            .await
            .map_err(raft_err)?;
        Ok(())
    }

    /// On the leader: adds a node (as a learner, then a voter while there
    /// are fewer than [`VOTERS_MAX`]) or updates its addresses.
    async fn admit(&self, id: NodeId, addresses: NodeAddresses) -> Result<()> {
        let _in_turn = self.admissions.lock().await;
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let membership = membership.membership();
        let node = BasicNode::new(&addresses.peer_addr);
        match membership.get_node(&id) {
            Some(n) if n.addr == addresses.peer_addr => {}
            Some(_) => {
                let change = ChangeMembers::SetNodes(BTreeMap::from([(id, node)]));
                self.raft
                    .change_membership(change, true)
                    .await
                    .map_err(raft_err)?;
            }
            None => {
                tracing::info!(node = id, peer_addr = %addresses.peer_addr, "adding a node");
                self.raft
                    .add_learner(id, node, true)
                    .await
                    .map_err(raft_err)?;
            }
        }
        let voters: BTreeSet<NodeId> = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect();
        if !voters.contains(&id) && voters.len() < VOTERS_MAX {
            let change = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
            self.raft
                .change_membership(change, true)
                .await
                .map_err(raft_err)?;
        }
        if self.shared.state().catalog.nodes.get(&id) != Some(&addresses) {
            let record = Command::NodeAddresses {
                node: id,
                addresses: Some(addresses),
            };
            for response in self.commit_here(record).await?.1 {
                response?;
            }
        }
        Ok(())
    }
}

/// While this node leads: replaces each voter that stopped answering with a
/// learner that keeps up.
async fn replace_failed_voters(node: Arc<Node>) {
    let mut leading_since = None;
    loop {
        tokio::time::sleep(VOTER_CHECK_INTERVAL).await;
        if !node.leads() {
            leading_since = None;
            continue;
        }
        // A new leader has heard from nobody yet: time runs from now.
        let since = *leading_since.get_or_insert_with(SystemTime::now);
        if let Err(e) = node.replace_a_failed_voter(since).await {
            tracing::warn!(error = %e, "could not replace a failed voter");
        }
    }
}

/// While this node leads: drops the time-series partitions that outlived
/// their table's retention, through the log like any write, so every
/// replica drops the same. Stops when the store does.
async fn expire_partitions(node: Arc<Node>, proposals: mpsc::WeakUnboundedSender<Proposal>) {
    loop {
        tokio::time::sleep(RETENTION_CHECK_INTERVAL).await;
        let Some(proposals) = proposals.upgrade() else {
            return;
        };
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH);
        let Some(now_us) = now.ok().and_then(|d| i64::try_from(d.as_micros()).ok()) else {
            continue;
        };
        if !node.leads() || !node.shared.state().has_expired_partitions(now_us) {
            continue;
        }
        let store = Store {
            node: node.clone(),
            proposals,
        };
        match store.write(Command::ExpirePartitions { now_us }).await {
            Ok(applied) => tracing::info!(rows = applied.rows, "dropped expired partitions"),
            Err(e) => tracing::warn!(error = %e, "could not drop expired partitions"),
        }
    }
}

/// While this node leads: asks every other member whether its disk has
/// `disk_reserve` free, so that writes that add data are refused while one
/// is short, as they are for the leader's own disk. A member whose disk
/// fills cannot append the log, and its Raft stops until it restarts. A
/// member that does not answer is not counted as short: it appends nothing
/// either, and the majority decides whether writes commit.
async fn watch_member_disks(node: Arc<Node>) {
    loop {
        tokio::time::sleep(MEMBER_DISK_CHECK_INTERVAL).await;
        if !node.leads() {
            node.short_disks.lock().expect("lock poisoned").clear();
            continue;
        }
        let members: Vec<(NodeId, String)> = {
            let metrics = node.raft.metrics();
            let metrics = metrics.borrow();
            let membership = metrics.membership_config.membership();
            membership
                .nodes()
                .filter(|(id, _)| **id != node.id)
                .map(|(id, n)| (*id, n.addr.clone()))
                .collect()
        };
        let mut short = BTreeMap::new();
        for (id, addr) in members {
            let answer = node
                .transport
                .call(&addr, PeerRequest::CheckDisk, MEMBER_DISK_CHECK_TIMEOUT)
                .await;
            if let Ok(PeerResponse::DiskChecked(Err(RemoteFailure::DiskFull(said)))) = answer {
                short.insert(id, said);
            }
        }
        *node.short_disks.lock().expect("lock poisoned") = short;
    }
}

/// Runs read-index rounds while requests wait, each round for the requests
/// that were waiting when it began.
async fn confirm_rounds(raft: Raft<TypeConfig>, reads: Arc<std::sync::Mutex<ReadRounds>>) {
    loop {
        let waiting = {
            let mut reads = reads.lock().expect("lock poisoned");
            if reads.waiting.is_empty() {
                reads.running = false;
                return;
            }
            std::mem::take(&mut reads.waiting)
        };
        let index = confirm_read_index(&raft).await;
        for reply in waiting {
            // A reader that went away no longer wants the index.
            let _ = reply.send(index.clone());
        }
    }
}

/// One read-index round: the commit index, once a majority has answered a
/// heartbeat of this leader's. A round in which too few answered within a
/// heartbeat interval (a busy moment) is tried again, for a while.
async fn confirm_read_index(raft: &Raft<TypeConfig>) -> std::result::Result<u64, RemoteFailure> {
    let started = std::time::Instant::now();
    loop {
        match raft.get_read_log_id().await {
            Ok((read, _applied)) => return Ok(read.map_or(0, |l| l.index)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_))) => {
                return Err(RemoteFailure::NotLeader);
            }
            // Unreachable nodes fail a round at once: pause before the next.
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_)))
                if started.elapsed() < READ_INDEX_TIMEOUT =>
            {
                tokio::time::sleep(READ_ROUND_PAUSE).await;
            }
            Err(e) => {
                return Err(RemoteFailure::Unavailable(format!(
                    "the leader could not reach a majority within {READ_INDEX_TIMEOUT:?}: {e}"
                )));
            }
        }
    }
}

/// Proposes queued commands to Raft, one entry at a time: whatever queued up
/// while the previous entry was written goes into the next, as a batch.
async fn propose(node: Arc<Node>, mut queue: mpsc::UnboundedReceiver<Proposal>) {
    let mut held: Option<Proposal> = None;
    loop {
        let first = match held.take() {
            Some(p) => p,
            None => match queue.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let mut bytes = command_bytes(&first.command);
        let mut batch = vec![first];
        while bytes < BATCH_BYTES_MAX && batch.len() < BATCH_COMMANDS_MAX {
            let Ok(next) = queue.try_recv() else { break };
            let next_bytes = command_bytes(&next.command);
            if bytes + next_bytes > BATCH_BYTES_MAX {
                held = Some(next);
                break;
            }
            bytes += next_bytes;
            batch.push(next);
        }
        let (commands, replies): (Vec<Command>, Vec<_>) =
            batch.into_iter().map(|p| (p.command, p.reply)).unzip();
        let entry = match <[Command; 1]>::try_from(commands) {
            Ok([command]) => command,
            Err(commands) => Command::Batch { commands },
        };
        match node.commit(entry).await {
            Ok(responses) => {
                assert_eq!(responses.len(), replies.len(), "one response per command");
                for (reply, response) in replies.into_iter().zip(responses) {
                    // A writer that went away no longer wants its answer.
                    let _ = reply.send(Ok(response));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.for_another_writer()));
                }
            }
        }
        if node.shared.unflushed_bytes() > FLUSH_BYTES_MAX {
            // Flushing is a snapshot: Parquet files plus manifest, then the
            // log before it can go. Raft runs it in the background.
            let _ = node.raft.trigger().snapshot().await;
        }
    }
}

/// Stages rows in commands of about [`ENTRY_BYTES_MAX`] / 2 bytes of rows
/// each, so that each fits an entry.
fn stage_in_parts(
    stage: StageId,
    table: TableId,
    version: u64,
    rows: &Rows,
) -> Result<Vec<Command>> {
    stage_parts(stage, table, version, &rows.decode()?)
}

/// Stages a batch in commands of about [`ENTRY_BYTES_MAX`] / 2 bytes of
/// rows each.
fn stage_parts(
    stage: StageId,
    table: TableId,
    version: u64,
    batch: &RecordBatch,
) -> Result<Vec<Command>> {
    let parts = (batch_bytes(batch) as u64)
        .div_ceil(ENTRY_BYTES_MAX / 2)
        .max(1) as usize;
    let rows_per_part = batch.num_rows().div_ceil(parts).max(1);
    (0..batch.num_rows())
        .step_by(rows_per_part)
        .map(|offset| {
            let len = rows_per_part.min(batch.num_rows() - offset);
            Ok(Command::Stage {
                stage,
                table,
                version,
                rows: Rows::encode_part(&batch.slice(offset, len))?,
            })
        })
        .collect()
}

/// A thread of Raft's own, and the runtime on it that Raft's tasks are
/// spawned on: the core, the state machine's worker and the proposer.
///
/// A write passes through each of these tasks in turn and back, and each
/// wakes the next. On the server's shared runtime a woken task was often
/// taken by the other worker thread, parked until then, and each such hand
/// over cost tens of microseconds of a single-row INSERT's latency. On one
/// thread the tasks follow each other without a hand over, the log's
/// fsync and the state machine's apply of a bulk load's part never hold up
/// a query's worker, and only the request and its answer cross threads.
fn raft_thread() -> Result<tokio::runtime::Handle> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // Its blocking pool's threads (a snapshot's encoding).
        .thread_name("ciab-raft-blocking")
        .build()
        .map_err(|e| Error::Raft(format!("could not start Raft's runtime: {e}")))?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name("ciab-raft".into())
        // Runs as long as the process: the node's Raft lives as long.
        .spawn(move || runtime.block_on(std::future::pending::<()>()))
        .map_err(|e| Error::Raft(format!("could not start Raft's thread: {e}")))?;
    Ok(handle)
}

/// Takes the data directory for this process. Two nodes on one directory
/// would each append to the same log and publish and delete the same
/// files, losing acknowledged writes; so, as PostgreSQL's postmaster.pid
/// does, a node holds an exclusive lock on `LOCK` in the directory while
/// it runs (the kernel releases it however the process ends) and a second
/// node is refused, told the first one's pid.
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let path = data_dir.join("LOCK");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            // The pid is for the message only; a failed read leaves it out.
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => String::new(),
                pid => format!(" (pid {pid})"),
            };
            return Err(Error::InUse(format!(
                "data directory {} is in use by another ciab process{holder}",
                data_dir.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
    }
    file.set_len(0).map_err(|e| Error::io(&path, e))?;
    file.rewind().map_err(|e| Error::io(&path, e))?;
    writeln!(file, "{}", std::process::id()).map_err(|e| Error::io(&path, e))?;
    Ok(file)
}

fn node_id(data_dir: &Path) -> Result<NodeId> {
    let path = data_dir.join("node.json");
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<NodeIdentity>(&bytes)
            .map(|n| n.node_id)
            .map_err(|e| Error::corrupt(path.display().to_string(), e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("the clock is after 1970")
                .as_nanos() as u64;
            // Any nonzero id unlikely to collide with another node's will do.
            let node_id = (nanos ^ ((std::process::id() as u64) << 32)) | 1;
            write_atomic(
                &path,
                &serde_json::to_vec_pretty(&NodeIdentity { node_id }).expect("serializes"),
            )?;
            Ok(node_id)
        }
        Err(e) => Err(Error::io(&path, e)),
    }
}
