//! The `ciab` binary.
//!
//! Starting a node is a short story: read the configuration, open the data
//! directory (which replays the Raft log into the tables), listen for
//! PostgreSQL clients, and on SIGTERM or Ctrl-C stop taking connections,
//! flush the tables to Parquet and shut Raft down.

mod config;
mod pg;
mod status;

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;

use crate::config::{Cli, CliCommand, Config};

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CIAB_LOG")
                .unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        CliCommand::Start(args) => runtime.block_on(start(Config::resolve(&args)?)),
        CliCommand::Status(args) => runtime.block_on(status::print(args.pg_addr()?)),
    }
}

async fn start(config: Config) -> anyhow::Result<()> {
    let engine = ciab_planner::Engine::open(&config.data_dir, &config.pg_addr.to_string())
        .await
        .with_context(|| format!("opening the data directory {}", config.data_dir.display()))?;
    let listener = TcpListener::bind(config.pg_addr)
        .await
        .with_context(|| format!("listening on {}", config.pg_addr))?;
    tracing::info!(
        pg_addr = %listener.local_addr()?,
        data_dir = %config.data_dir.display(),
        node_id = engine.node_id(),
        "ciab is listening for PostgreSQL connections"
    );

    let server = tokio::spawn(pg::serve(listener, Arc::clone(&engine)));
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.abort();
    engine.flush().await.context("flushing tables")?;
    engine.shutdown().await.context("stopping raft")?;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
