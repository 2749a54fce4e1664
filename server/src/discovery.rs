//! Finding the other nodes of a cluster on the LAN with mDNS (DNS-SD), so
//! that `ciab start --cluster NAME` on each machine is all it takes.
//!
//! Every node started with `--cluster` announces the service
//! `_ciab._tcp.local.` with its cluster name, node id and peer address in the
//! TXT record, and browses for the others. A new node then:
//!
//! ```text
//!   browse ──► seen a member of NAME?  ──yes──► ask it to admit us (Join)
//!                    │ no
//!                    ▼
//!   --expect N: N nodes of NAME seen, and ours is the smallest id?
//!                    │ yes: initialize Raft with all N as voters
//!                    │ no:  keep browsing (the smallest one initializes us)
//!   no --expect: nobody seen after DISCOVERY_WAIT: start a cluster alone
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use ciab_storage::{NodeId, Store};
use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};

const SERVICE_TYPE: &str = "_ciab._tcp.local.";
/// How long a node without `--expect` listens for a cluster to join before
/// it starts one of its own.
const DISCOVERY_WAIT: Duration = Duration::from_secs(3);
/// How often a node waiting to be part of a cluster looks again.
const RETRY_INTERVAL: Duration = Duration::from_millis(500);

/// Another node of this cluster, as it announced itself.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    peer_addr: String,
    /// It belongs to a formed cluster (and can admit others).
    member: bool,
}

/// This node's announcement, and what it has seen of the others.
pub struct Discovery {
    daemon: ServiceDaemon,
    cluster: String,
    id: NodeId,
    peer_addr: SocketAddr,
    seen: Arc<Mutex<BTreeMap<NodeId, Seen>>>,
}

impl Discovery {
    /// Announces this node and starts browsing for the others of `cluster`.
    pub fn start(
        cluster: &str,
        id: NodeId,
        peer_addr: SocketAddr,
        member: bool,
    ) -> anyhow::Result<Discovery> {
        let daemon = ServiceDaemon::new().context("starting mDNS")?;
        let discovery = Discovery {
            daemon,
            cluster: cluster.to_string(),
            id,
            peer_addr,
            seen: Default::default(),
        };
        discovery.announce(member)?;
        let events = discovery
            .daemon
            .browse(SERVICE_TYPE)
            .context("browsing mDNS")?;
        let seen = discovery.seen.clone();
        let cluster = cluster.to_string();
        tokio::spawn(async move {
            while let Ok(event) = events.recv_async().await {
                let ServiceEvent::ServiceResolved(service) = event else {
                    continue;
                };
                let txt = service.get_properties();
                let field = |key| txt.get_property_val_str(key).map(str::to_string);
                let (Some(their_cluster), Some(their_id), Some(peer_addr)) =
                    (field("cluster"), field("id"), field("peer"))
                else {
                    continue;
                };
                let Ok(their_id) = their_id.parse::<NodeId>() else {
                    continue;
                };
                if their_cluster == cluster {
                    let member = field("member").as_deref() == Some("1");
                    let node = Seen { peer_addr, member };
                    seen.lock().expect("lock poisoned").insert(their_id, node);
                }
            }
        });
        Ok(discovery)
    }

    /// (Re)registers this node's service record; `member` tells new nodes
    /// they may ask this one to admit them.
    pub fn announce(&self, member: bool) -> anyhow::Result<()> {
        let id = self.id.to_string();
        let peer = self.peer_addr.to_string();
        let properties = [
            ("cluster", self.cluster.as_str()),
            ("id", id.as_str()),
            ("peer", peer.as_str()),
            ("member", if member { "1" } else { "0" }),
        ];
        let service = ServiceInfo::new(
            SERVICE_TYPE,
            &format!("{}-{id}", self.cluster),
            &format!("ciab-{id}.local."),
            self.peer_addr.ip(),
            self.peer_addr.port(),
            &properties[..],
        )
        .context("describing this node for mDNS")?;
        self.daemon
            .register(service)
            .context("announcing this node over mDNS")
    }

    fn seen(&self) -> BTreeMap<NodeId, Seen> {
        let mut seen = self.seen.lock().expect("lock poisoned").clone();
        seen.remove(&self.id);
        seen
    }

    /// Makes a new node part of a cluster: it joins one it finds, or forms
    /// one with the others it finds (`expect` nodes in all), or starts one
    /// alone. Returns once this node is a member.
    pub async fn form(&self, store: &Store, expect: Option<usize>) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut last_report = Instant::now();
        while !store.is_member().await? {
            let seen = self.seen();
            let members: Vec<String> = seen
                .values()
                .filter(|s| s.member)
                .map(|s| s.peer_addr.clone())
                .collect();
            if !members.is_empty() && store.join(&members).await.is_ok() {
                break;
            }
            match expect {
                Some(n) if seen.len() + 1 >= n => {
                    let smallest = seen.keys().next().is_none_or(|&other| self.id < other);
                    if smallest {
                        let mut voters: BTreeMap<NodeId, String> = seen
                            .into_iter()
                            .take(n - 1)
                            .map(|(id, s)| (id, s.peer_addr))
                            .collect();
                        voters.insert(self.id, self.peer_addr.to_string());
                        tracing::info!(nodes = ?voters.keys().collect::<Vec<_>>(), "forming the cluster");
                        store.initialize(voters).await?;
                        break;
                    }
                }
                None if started.elapsed() > DISCOVERY_WAIT && members.is_empty() => {
                    tracing::info!(cluster = %self.cluster, "no cluster found: starting one");
                    let me = BTreeMap::from([(self.id, self.peer_addr.to_string())]);
                    store.initialize(me).await?;
                    break;
                }
                _ => {}
            }
            if last_report.elapsed() > Duration::from_secs(10) {
                tracing::info!(
                    seen = self.seen().len() + 1,
                    expect,
                    "waiting for the other nodes of the cluster"
                );
                last_report = Instant::now();
            }
            tokio::time::sleep(RETRY_INTERVAL).await;
        }
        Ok(())
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        let _ = self.daemon.shutdown();
    }
}
