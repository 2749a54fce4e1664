//! The peer network: how nodes of one cluster talk to each other over TCP.
//!
//! Storage decides what nodes say ([`PeerRequest`], [`PeerResponse`]); this
//! module carries it. Every connection opens with a hello naming the
//! cluster and carrying the join token; a node refuses connections from
//! other clusters or with another token. After that, each frame is one
//! bincode message, length first, and every request is answered in turn.
//!
//! ```text
//!   dialer                                   listener
//!   [len][Hello{protocol, cluster, token}] ─►
//!                                        ◄─ [len][Welcome(Ok | Err(reason))]
//!   [len][PeerRequest]                    ─► Store::serve
//!                                        ◄─ [len][PeerResponse]
//!   ...                                      (one connection, one request at a time;
//!                                             the dialer pools idle connections)
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ciab_storage::Store;
use ciab_storage::peer::{PeerError, PeerRequest, PeerResponse, Transport};
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Bumped when the messages change shape: nodes of different versions
/// refuse each other with a clear reason instead of misreading frames.
const PROTOCOL: &str = "ciab-peer/1";
/// A frame larger than this is refused: it can only be corruption. (A log
/// entry is at most a gigabyte; openraft sends snapshots in chunks.)
const FRAME_BYTES_MAX: usize = 1024 * 1024 * 1024 + 64 * 1024;
/// How long dialing a node (connect plus hello) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle connections kept per node.
const IDLE_CONNECTIONS_MAX: usize = 8;

type Connection = Framed<TcpStream, LengthDelimitedCodec>;

/// Which cluster a node belongs to, and the secret it must know.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Membership {
    pub cluster: String,
    pub join_token: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Hello {
    protocol: String,
    membership: Membership,
}

#[derive(Serialize, Deserialize)]
struct Welcome(Result<(), String>);

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(FRAME_BYTES_MAX)
        .new_codec()
}

fn encode<T: Serialize>(message: &T) -> Bytes {
    bincode::serialize(message)
        .expect("peer messages serialize")
        .into()
}

fn decode<T: serde::de::DeserializeOwned>(frame: &[u8]) -> std::io::Result<T> {
    bincode::deserialize(frame).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

async fn receive<T: serde::de::DeserializeOwned>(conn: &mut Connection) -> std::io::Result<T> {
    match conn.next().await {
        Some(frame) => decode(&frame?),
        None => Err(std::io::ErrorKind::UnexpectedEof.into()),
    }
}

/// Dials other nodes, keeping idle connections for the next request.
pub struct TcpTransport {
    membership: Membership,
    idle: Arc<Mutex<HashMap<String, Vec<Connection>>>>,
}

impl TcpTransport {
    pub fn new(membership: Membership) -> Self {
        TcpTransport {
            membership,
            idle: Default::default(),
        }
    }
}

async fn dial(addr: &str, membership: &Membership) -> Result<Connection, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut conn = Framed::new(stream, codec());
    let hello = Hello {
        protocol: PROTOCOL.to_string(),
        membership: membership.clone(),
    };
    conn.send(encode(&hello)).await.map_err(|e| e.to_string())?;
    let Welcome(welcome) = receive(&mut conn).await.map_err(|e| e.to_string())?;
    welcome.map_err(|reason| format!("refused: {reason}"))?;
    Ok(conn)
}

/// Whether an idle connection is still open: the other side never writes
/// unasked, so anything readable is its end of the stream (it restarted).
/// Checked before reuse, so that a request is not sent into a dead
/// connection and its fate left unknown.
fn is_open(conn: &Connection) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        conn.get_ref().try_read(&mut byte),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
    )
}

impl Transport for TcpTransport {
    fn call(
        &self,
        addr: &str,
        request: PeerRequest,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<PeerResponse, PeerError>> {
        let addr = addr.to_string();
        let membership = self.membership.clone();
        let idle = self.idle.clone();
        Box::pin(async move {
            let unreachable = |reason: String| PeerError::Unreachable {
                addr: addr.clone(),
                reason,
            };
            let pooled = idle
                .lock()
                .expect("lock poisoned")
                .get_mut(&addr)
                .and_then(Vec::pop)
                .filter(is_open);
            let mut conn = match pooled {
                Some(conn) => conn,
                None => {
                    let connect_timeout = CONNECT_TIMEOUT.min(timeout);
                    tokio::time::timeout(connect_timeout, dial(&addr, &membership))
                        .await
                        .map_err(|_| {
                            unreachable(format!("no connection within {connect_timeout:?}"))
                        })?
                        .map_err(unreachable)?
                }
            };
            conn.send(encode(&request))
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let response = tokio::time::timeout(timeout, receive::<PeerResponse>(&mut conn))
                .await
                .map_err(|_| PeerError::Lost {
                    addr: addr.clone(),
                    reason: format!("no answer within {timeout:?}"),
                })?
                .map_err(|e| PeerError::Lost {
                    addr: addr.clone(),
                    reason: e.to_string(),
                })?;
            let mut idle = idle.lock().expect("lock poisoned");
            let pool = idle.entry(addr).or_default();
            if pool.len() < IDLE_CONNECTIONS_MAX {
                pool.push(conn);
            }
            Ok(response)
        })
    }
}

/// Answers other nodes' requests with `store`, on every connection
/// `listener` accepts, until the task is dropped.
pub async fn serve(listener: TcpListener, store: Arc<Store>, membership: Membership) {
    loop {
        let (socket, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a peer connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let store = store.clone();
        let membership = membership.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_connection(socket, &store, &membership).await {
                tracing::debug!(%from, error = %e, "peer connection closed");
            }
        });
    }
}

async fn serve_connection(
    socket: TcpStream,
    store: &Store,
    membership: &Membership,
) -> std::io::Result<()> {
    socket.set_nodelay(true)?;
    let mut conn = Framed::new(socket, codec());
    let hello: Hello = receive(&mut conn).await?;
    let refusal = if hello.protocol != PROTOCOL {
        Some(format!(
            "this node speaks {PROTOCOL}, the caller {}",
            hello.protocol
        ))
    } else if hello.membership.cluster != membership.cluster {
        Some(format!(
            "this node belongs to cluster {:?}, the caller to {:?}",
            membership.cluster, hello.membership.cluster
        ))
    } else if hello.membership.join_token != membership.join_token {
        Some("the join token does not match this cluster's".to_string())
    } else {
        None
    };
    if let Some(reason) = refusal {
        tracing::warn!(%reason, "refusing a peer connection");
        conn.send(encode(&Welcome(Err(reason)))).await?;
        return Ok(());
    }
    conn.send(encode(&Welcome(Ok(())))).await?;
    while let Some(frame) = conn.next().await {
        let request: PeerRequest = decode(&frame?)?;
        let response = store.serve(request).await;
        conn.send(encode(&response)).await?;
    }
    Ok(())
}
