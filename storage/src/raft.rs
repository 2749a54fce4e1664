//! Raft wiring: the type configuration, the network, and [`Store`], the
//! handle the planner uses to read a consistent state and to write commands.
//!
//! A single node is a one-voter Raft cluster: every write is appended to the
//! log, synced, committed and applied before `Store::write` returns, exactly as
//! it will be when more voters join.
//!
//! openraft 0.9 appends one client request at a time and waits for its sync
//! before taking the next, so concurrent writers would each pay a full
//! `fdatasync` in turn. `Store::write` therefore hands commands to a proposer
//! task that sends everything queued while the previous entry was being
//! written as one `Command::Batch` entry: one sync for all of them (group
//! commit), each command still applied or refused on its own.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Config, Raft, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::command::{Applied, Command};
use crate::error::{Error, Rejection, Result};
use crate::log::{LogStore, write_atomic};
use crate::machine::{Shared, StateMachine, command_bytes};
use crate::state::DbState;

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
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A snapshot (flush to Parquet) is taken after this many log entries...
pub const SNAPSHOT_LOG_ENTRIES_MAX: u64 = 20_000;
/// ...or once this many bytes of rows sit only in memory and the log.
pub const FLUSH_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// How long a starting node waits to lead its one-voter cluster.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// A batch of queued commands stops growing at this many row bytes, so that
/// a bulk load's chunk is not held back behind others or they behind it...
const BATCH_BYTES_MAX: u64 = 1024 * 1024;
/// ...or at this many commands.
const BATCH_COMMANDS_MAX: usize = 1024;

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

/// One member of the cluster, as [`Store::nodes`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub id: NodeId,
    /// A voter, or a learner that only receives the log.
    pub voter: bool,
    pub this_node: bool,
    /// Its Raft state, where this node knows it: its own, and the leader's.
    pub state: Option<&'static str>,
    /// The last log index it applied (this node) or holds (others, as the
    /// leader tracks them).
    pub applied_index: Option<u64>,
    /// Entries it is behind this node's log.
    pub lag: Option<u64>,
}

/// The storage layer of one node.
pub struct Store {
    raft: Raft<TypeConfig>,
    shared: Arc<Shared>,
    id: NodeId,
    proposals: mpsc::UnboundedSender<Proposal>,
}

impl Store {
    /// Opens (or creates) the data directory, replays the log past the last
    /// snapshot and returns once this node leads and has applied every entry
    /// that was in its log.
    pub async fn open(data_dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(data_dir).map_err(|e| Error::io(data_dir, e))?;
        let id = node_id(data_dir)?;
        let raft_dir = data_dir.join("raft");
        let log = LogStore::open(&raft_dir)?;
        let last_index = log.last_index();
        let shared = Arc::new(Shared::open(data_dir).await?);
        let config = Config {
            cluster_name: "ciab".into(),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_LOG_ENTRIES_MAX),
            max_in_snapshot_log_to_keep: 0,
            heartbeat_interval: 50,
            election_timeout_min: 150,
            election_timeout_max: 300,
            ..Default::default()
        };
        let config = Arc::new(config.validate().map_err(|e| Error::Raft(e.to_string()))?);
        let raft = Raft::new(
            id,
            config,
            SoloNetwork,
            log,
            StateMachine::new(shared.clone()),
        )
        .await
        .map_err(|e| Error::Raft(e.to_string()))?;
        if !raft
            .is_initialized()
            .await
            .map_err(|e| Error::Raft(e.to_string()))?
        {
            let members = BTreeMap::from([(id, BasicNode::default())]);
            raft.initialize(members)
                .await
                .map_err(|e| Error::Raft(e.to_string()))?;
        }
        raft.wait(Some(STARTUP_TIMEOUT))
            .metrics(
                |m| m.current_leader == Some(id) && m.last_applied.map(|l| l.index) >= last_index,
                "this node leads and has applied its log",
            )
            .await
            .map_err(|e| Error::Raft(e.to_string()))?;
        let (proposals, queue) = mpsc::unbounded_channel();
        tokio::spawn(propose(raft.clone(), shared.clone(), queue));
        let store = Store {
            raft,
            shared,
            id,
            proposals,
        };
        // The sessions that staged rows died with the previous run, so no
        // one will publish what they left.
        let orphans: Vec<_> = store.snapshot().staged.keys().copied().collect();
        for stage in orphans {
            store.write(Command::Unstage { stage }).await?;
        }
        Ok(store)
    }

    pub fn node_id(&self) -> NodeId {
        self.id
    }

    /// The cluster's members as this node's Raft sees them now: its own
    /// state, and, on the leader, how far each member has replicated.
    pub fn nodes(&self) -> Vec<NodeStatus> {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: Vec<NodeId> = membership.voter_ids().collect();
        let applied = |id: NodeId| {
            if id == self.id {
                return metrics.last_applied.map(|l| l.index);
            }
            let replication = metrics.replication.as_ref()?;
            replication.get(&id).copied().flatten().map(|l| l.index)
        };
        membership
            .nodes()
            .map(|(&id, _)| {
                let state = if id == self.id {
                    Some(metrics.state)
                } else if metrics.current_leader == Some(id) {
                    Some(ServerState::Leader)
                } else {
                    None
                };
                let applied_index = applied(id);
                NodeStatus {
                    id,
                    voter: voters.contains(&id),
                    this_node: id == self.id,
                    state: state.map(|s| match s {
                        ServerState::Leader => "leader",
                        ServerState::Follower => "follower",
                        ServerState::Candidate => "candidate",
                        ServerState::Learner => "learner",
                        ServerState::Shutdown => "shutdown",
                    }),
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
        self.shared.state()
    }

    /// Appends a command to the log and returns once it is durable and
    /// applied. A refusal comes back as `Error::Rejected`.
    pub async fn write(&self, command: Command) -> Result<Applied> {
        debug_assert!(
            !matches!(command, Command::Batch { .. }),
            "batches are the proposer's"
        );
        let (reply, outcome) = oneshot::channel();
        self.proposals
            .send(Proposal { command, reply })
            .map_err(|_| Error::Raft("the node is shutting down".into()))?;
        let response = outcome
            .await
            .map_err(|_| Error::Raft("the node is shutting down".into()))??;
        response.map_err(Error::Rejected)
    }

    /// Writes every table to Parquet now and truncates the log.
    pub async fn flush(&self) -> Result<()> {
        let target = self.raft.metrics().borrow().last_applied;
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| Error::Raft(e.to_string()))?;
        self.raft
            .wait(Some(STARTUP_TIMEOUT))
            .metrics(|m| m.snapshot >= target, "snapshot taken")
            .await
            .map_err(|e| Error::Raft(e.to_string()))?;
        Ok(())
    }

    pub async fn shutdown(&self) -> Result<()> {
        self.raft
            .shutdown()
            .await
            .map_err(|e| Error::Raft(e.to_string()))
    }

    pub fn data_dir(&self) -> &PathBuf {
        self.shared.data_dir()
    }
}

/// Proposes queued commands to Raft, one entry at a time: whatever queued up
/// while the previous entry was written goes into the next, as a batch.
async fn propose(
    raft: Raft<TypeConfig>,
    shared: Arc<Shared>,
    mut queue: mpsc::UnboundedReceiver<Proposal>,
) {
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
        match raft.client_write(entry).await {
            Ok(written) => {
                assert_eq!(
                    written.data.len(),
                    replies.len(),
                    "one response per command"
                );
                for (reply, response) in replies.into_iter().zip(written.data) {
                    // A writer that went away no longer wants its answer.
                    let _ = reply.send(Ok(response));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(Error::Raft(e.to_string())));
                }
            }
        }
        if shared.unflushed_bytes() > FLUSH_BYTES_MAX {
            // Flushing is a snapshot: Parquet files plus manifest, then the
            // log before it can go. Raft runs it in the background.
            let _ = raft.trigger().snapshot().await;
        }
    }
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

/// The network of a one-member cluster: there is no peer to reach. Joining
/// other nodes replaces this with a real transport.
struct SoloNetwork;

struct NoPeer(NodeId);

fn no_peer<E: std::error::Error>(target: NodeId) -> RPCError<NodeId, BasicNode, E> {
    RPCError::Network(NetworkError::new(&std::io::Error::other(format!(
        "node {target} is not reachable: this node runs as a single-member cluster"
    ))))
}

impl RaftNetworkFactory<TypeConfig> for SoloNetwork {
    type Network = NoPeer;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Self::Network {
        NoPeer(target)
    }
}

impl RaftNetwork<TypeConfig> for NoPeer {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> std::result::Result<
        AppendEntriesResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId>>,
    > {
        Err(no_peer(self.0))
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> std::result::Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        Err(no_peer(self.0))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> std::result::Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>>
    {
        Err(no_peer(self.0))
    }
}
