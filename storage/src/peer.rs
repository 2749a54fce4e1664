//! What nodes say to each other, and the Raft network built on it.
//!
//! Storage decides *what* travels between nodes: Raft's own RPCs, writes a
//! follower forwards to the leader, the read index a linearizable read waits
//! for, a node asking to join. The server owns the sockets: it implements
//! [`Transport`] and hands every request that arrives to [`Store::serve`].
//!
//! ```text
//!   follower                                   leader
//!   Store::write ─► PeerRequest::Write ──────► Store::serve ─► raft.client_write
//!                 ◄─ log index + responses ◄──┘
//!   waits until its own state machine applied that index, then answers
//! ```
//!
//! [`Store::serve`]: crate::Store::serve

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use crate::catalog::NodeAddresses;
use crate::command::Command;
use crate::error::{Error, Rejection};
use crate::raft::{EntryResponse, NodeId, TypeConfig};

/// Carries requests to other nodes. The server implements it over TCP.
pub trait Transport: Send + Sync + 'static {
    /// Sends `request` to the node whose peer address is `addr` and waits
    /// at most `timeout` for its answer.
    fn call(
        &self,
        addr: &str,
        request: PeerRequest,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<PeerResponse, PeerError>>;
}

/// Why a request got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PeerError {
    /// No connection could be made: the request was never sent.
    #[error("node at {addr} is unreachable: {reason}")]
    Unreachable { addr: String, reason: String },
    /// The request was sent, but no answer came back in time: it may or may
    /// not have taken effect.
    #[error("no answer from the node at {addr}: {reason}")]
    Lost { addr: String, reason: String },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum PeerRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A log entry a node that does not lead forwards to the leader.
    Write(Command),
    /// The log index up to which a linearizable read must have applied.
    ReadIndex,
    /// Add a node to the cluster, or update its addresses.
    Join {
        id: NodeId,
        addresses: NodeAddresses,
    },
    /// Remove a node from the cluster for good.
    Remove {
        id: NodeId,
    },
    /// Whether the node's disk has `disk_reserve` free (the leader asks
    /// every member, `raft.rs`'s `watch_member_disks`).
    CheckDisk,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum PeerResponse {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    /// The entry's log index and the response to each command in it.
    Written(Result<(u64, EntryResponse), RemoteFailure>),
    ReadIndex(Result<u64, RemoteFailure>),
    Joined(Result<(), RemoteFailure>),
    Removed(Result<(), RemoteFailure>),
    DiskChecked(Result<(), RemoteFailure>),
}

/// A failure on the node that served a request, as it travels back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RemoteFailure {
    /// The node does not lead (any more).
    NotLeader,
    /// The cluster cannot do it now; nothing was done.
    Unavailable(String),
    /// It may or may not have happened.
    OutcomeUnknown(String),
    /// The state machine refused it (an unknown node, say).
    Rejected(Rejection),
    Other(String),
    /// A member's disk has less than `disk_reserve` free: a write that
    /// adds data was refused before it was appended.
    DiskFull(String),
}

impl From<Error> for RemoteFailure {
    fn from(e: Error) -> Self {
        match e {
            Error::Unavailable(m) => RemoteFailure::Unavailable(m),
            Error::OutcomeUnknown(m) => RemoteFailure::OutcomeUnknown(m),
            Error::Rejected(r) => RemoteFailure::Rejected(r),
            Error::DiskFull(m) => RemoteFailure::DiskFull(m),
            other => RemoteFailure::Other(other.to_string()),
        }
    }
}

impl From<RemoteFailure> for Error {
    fn from(f: RemoteFailure) -> Self {
        match f {
            RemoteFailure::NotLeader => {
                Error::Unavailable("the leader changed while the request was on its way".into())
            }
            RemoteFailure::Unavailable(m) => Error::Unavailable(m),
            RemoteFailure::OutcomeUnknown(m) => Error::OutcomeUnknown(m),
            RemoteFailure::Rejected(r) => Error::Rejected(r),
            RemoteFailure::Other(m) => Error::Raft(m),
            RemoteFailure::DiskFull(m) => Error::DiskFull(m),
        }
    }
}

/// openraft's view of the network: one client per target node.
pub(crate) struct PeerNetwork {
    pub(crate) transport: Arc<dyn Transport>,
    /// When each node last answered, for `ciab.nodes`.
    pub(crate) contacts: Contacts,
}

pub(crate) type Contacts = Arc<Mutex<HashMap<NodeId, SystemTime>>>;

pub(crate) struct PeerClient {
    target: NodeId,
    addr: String,
    transport: Arc<dyn Transport>,
    contacts: Contacts,
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            addr: node.addr.clone(),
            transport: self.transport.clone(),
            contacts: self.contacts.clone(),
        }
    }
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl PeerClient {
    /// Sends a Raft RPC; a transport failure comes back as the RPC error
    /// of whichever RPC asked.
    async fn call<E: std::error::Error>(
        &self,
        request: PeerRequest,
        option: &RPCOption,
    ) -> Result<PeerResponse, RPCError<NodeId, BasicNode, E>> {
        match self
            .transport
            .call(&self.addr, request, option.hard_ttl())
            .await
        {
            Ok(response) => {
                self.contacts
                    .lock()
                    .expect("lock poisoned")
                    .insert(self.target, SystemTime::now());
                Ok(response)
            }
            // openraft backs off before trying an unreachable node again,
            // and retries at once after a lost message.
            Err(e @ PeerError::Unreachable { .. }) => {
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Err(e @ PeerError::Lost { .. }) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }

    fn unexpected<E: std::error::Error>(
        &self,
        response: PeerResponse,
    ) -> RPCError<NodeId, BasicNode, E> {
        RPCError::Network(NetworkError::new(&std::io::Error::other(format!(
            "node {} answered with an unexpected {response:?}",
            self.target
        ))))
    }

    fn remote<E: std::error::Error>(&self, e: E) -> RPCError<NodeId, BasicNode, E> {
        RPCError::RemoteError(RemoteError::new(self.target, e))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        match self.call(PeerRequest::AppendEntries(rpc), &option).await? {
            PeerResponse::AppendEntries(r) => r.map_err(|e| self.remote(e)),
            other => Err(self.unexpected(other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        match self
            .call(PeerRequest::InstallSnapshot(rpc), &option)
            .await?
        {
            PeerResponse::InstallSnapshot(r) => r.map_err(|e| self.remote(e)),
            other => Err(self.unexpected(other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        match self.call(PeerRequest::Vote(rpc), &option).await? {
            PeerResponse::Vote(r) => r.map_err(|e| self.remote(e)),
            other => Err(self.unexpected(other)),
        }
    }
}
