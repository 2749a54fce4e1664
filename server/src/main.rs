//! The `ciab` binary.
//!
//! Starting a node is a short story: read the configuration, take its ports,
//! open the data directory (which replays the Raft log into the tables), and
//! only then listen on those ports; answer other nodes, join a cluster if
//! asked to and wait until it can serve, then serve PostgreSQL clients,
//! InfluxDB writes over HTTP and S3 requests to object storage; on SIGTERM
//! or Ctrl-C stop taking connections, flush the tables to Parquet and shut
//! Raft down.

mod admin;
mod cluster;
mod config;
mod discovery;
mod influx;
mod pg;
mod s3;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ciab_storage::{NodeAddresses, NodeOptions, Store};
use clap::Parser;
use tokio::net::{TcpListener, TcpSocket};

use crate::config::{Cli, CliCommand, Config, NodeCommand};

/// mimalloc rather than glibc's allocator: see the workspace's Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CIAB_LOG")
                .unwrap_or_else(|_| "info,openraft=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        CliCommand::Start(args) => runtime.block_on(start(Config::resolve(&args)?)),
        CliCommand::Status(args) => runtime.block_on(admin::print(args.pg_addr()?)),
        CliCommand::Node(NodeCommand::Remove { id, node }) => {
            runtime.block_on(admin::remove_node(node.pg_addr()?, &id))
        }
    }
}

async fn start(config: Config) -> anyhow::Result<()> {
    anyhow::ensure!(
        !config.peer_addr.ip().is_unspecified(),
        "--peer-addr {} names no address other nodes can reach this one at: give the \
         address of one interface",
        config.peer_addr
    );
    // Ports are taken before the data directory is opened, so a port in use
    // fails fast, but nothing listens until the data directory opened cleanly:
    // a node that cannot start never accepts a connection it would drop.
    let peers = reserve(config.peer_addr, "other nodes")?;
    let clients = reserve(config.pg_addr, "PostgreSQL clients")?;
    let http = reserve(config.http_addr, "HTTP")?;
    let s3 = reserve(config.s3_addr, "S3")?;
    let membership = cluster::Membership {
        cluster: config.cluster.clone(),
        join_token: config.join_token.clone(),
    };
    let options = NodeOptions {
        addresses: NodeAddresses {
            peer_addr: peers.local_addr()?.to_string(),
            pg_addr: clients.local_addr()?.to_string(),
        },
        transport: Arc::new(cluster::TcpTransport::new(membership.clone())),
        bootstrap: config.join.is_empty() && !config.discover,
        object_store: config.object_store.clone(),
    };
    let store = Store::open(&config.data_dir, options)
        .await
        .with_context(|| format!("opening the data directory {}", config.data_dir.display()))?;
    let store = Arc::new(store);
    let peers = peers
        .listen(LISTEN_BACKLOG)
        .context("listening for other nodes")?;
    let clients = clients
        .listen(LISTEN_BACKLOG)
        .context("listening for PostgreSQL clients")?;
    let http = http.listen(LISTEN_BACKLOG).context("listening for HTTP")?;
    let s3 = s3.listen(LISTEN_BACKLOG).context("listening for S3")?;
    let peer_server = tokio::spawn(cluster::serve(peers, Arc::clone(&store), membership));
    let member = store.is_member().await?;
    let discovery = match config.discover {
        true => Some(discovery::Discovery::start(
            &config.cluster,
            store.node_id(),
            config.peer_addr,
            member,
        )?),
        false => None,
    };
    match (&discovery, member) {
        (_, true) => {}
        (_, false) if !config.join.is_empty() => join(&store, &config.join).await,
        (Some(discovery), false) => discovery.form(&store, config.expect).await?,
        (None, false) => unreachable!("a node that neither joins nor discovers starts alone"),
    }
    if let Some(discovery) = &discovery {
        // Now a member: new nodes may ask this one to admit them.
        discovery.announce(true)?;
    }
    store.ready().await.context("joining the cluster")?;
    let engine = ciab_planner::Engine::new(Arc::clone(&store), Some(own_s3_endpoint(&s3)?));
    tracing::info!(
        pg_addr = %clients.local_addr()?,
        peer_addr = %config.peer_addr,
        http_addr = %http.local_addr()?,
        s3_addr = %s3.local_addr()?,
        data_dir = %config.data_dir.display(),
        node_id = engine.node_id(),
        "ciab is listening for PostgreSQL connections"
    );

    let server = tokio::spawn(pg::serve(clients, Arc::clone(&engine)));
    let http_server = tokio::spawn(influx::serve(http, Arc::clone(&engine)));
    let s3_server = tokio::spawn(s3::serve(s3, Arc::clone(&store)));
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.abort();
    http_server.abort();
    s3_server.abort();
    // Other nodes keep being answered until Raft stops: a leader hands over
    // first, and the writes it has taken still reach the others.
    store.step_down().await;
    engine.flush().await.context("flushing tables")?;
    engine.shutdown().await.context("stopping raft")?;
    peer_server.abort();
    Ok(())
}

/// How many connections the kernel queues for each listener before the
/// node accepts them.
const LISTEN_BACKLOG: u32 = 1024;

/// A socket bound to `addr` but not listening yet: the port is this node's
/// (and known, where `addr` asks for any port) while connections are refused.
fn reserve(addr: SocketAddr, what: &str) -> anyhow::Result<TcpSocket> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // As std's TcpListener does: a restarted node takes its port back while
    // connections of its last run linger in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket
        .bind(addr)
        .with_context(|| format!("listening for {what} on {addr}"))?;
    Ok(socket)
}

/// Asks the `seeds` to add this new node to their cluster until one does:
/// they may still be starting.
async fn join(store: &Store, seeds: &[String]) {
    let mut attempt = 0u32;
    while let Err(e) = store.join(seeds).await {
        if attempt.is_multiple_of(10) {
            tracing::warn!(reason = %e, "not admitted yet; trying again every second");
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tracing::info!(node_id = store.node_id(), "joined the cluster");
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Where this node's own S3 endpoint answers, for the `s3://` URLs of its
/// SQL: the address it listens on, or loopback where it listens on every
/// address.
fn own_s3_endpoint(s3: &TcpListener) -> anyhow::Result<String> {
    let mut addr = s3.local_addr()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Ok(format!("http://{addr}"))
}
