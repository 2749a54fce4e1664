//! Node configuration: command line, then environment, then a TOML file,
//! then defaults. Each setting names its source in that order.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

pub const DEFAULT_DATA_DIR: &str = "./ciab-data";
pub const DEFAULT_PG_ADDR: &str = "127.0.0.1:5433";
pub const DEFAULT_PEER_ADDR: &str = "127.0.0.1:7433";
/// InfluxDB's own port, so agents configured for InfluxDB find ciab.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8086";
pub const DEFAULT_S3_ADDR: &str = "127.0.0.1:9433";
pub const DEFAULT_CLUSTER: &str = "ciab";

#[derive(Debug, Parser)]
#[command(
    name = "ciab",
    version,
    about = "ciab: a cluster in a box that speaks PostgreSQL"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: CliCommand,
}

#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Start a node and serve the PostgreSQL wire protocol.
    Start(StartArgs),
    /// Print the cluster as a running node sees it (`ciab.nodes`).
    Status(StatusArgs),
    /// Change the cluster's membership through a running node.
    #[command(subcommand)]
    Node(NodeCommand),
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Remove a node from the cluster for good (its id as `ciab status`
    /// shows it), asking the node at --pg-addr.
    Remove {
        id: String,
        #[command(flatten)]
        node: StatusArgs,
    },
}

/// A node's TOML file and PostgreSQL address: what `start` runs with and
/// `status` asks.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// A TOML file with any of `data_dir`, `pg_addr`, `peer_addr`,
    /// `http_addr`, `s3_addr`, `join` (a list), `cluster`, `expect` and
    /// `join_token`.
    #[arg(long, env = "CIAB_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the node accepts PostgreSQL connections [default: 127.0.0.1:5433]
    #[arg(long, env = "CIAB_PG_ADDR")]
    pub pg_addr: Option<SocketAddr>,
}

impl NodeArgs {
    fn file(&self) -> anyhow::Result<FileConfig> {
        match &self.config {
            Some(path) => read_file(path),
            None => Ok(FileConfig::default()),
        }
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub node: NodeArgs,
}

impl StatusArgs {
    /// The address to ask: the flag, else the file's, else the default.
    pub fn pg_addr(&self) -> anyhow::Result<SocketAddr> {
        let file = self.node.file()?;
        Ok(pg_addr_or_default(self.node.pg_addr.or(file.pg_addr)))
    }
}

#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// Where the node keeps its data [default: ./ciab-data]
    #[arg(long, env = "CIAB_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where the node listens for other nodes, and the address they reach
    /// it at [default: 127.0.0.1:7433]
    #[arg(long, env = "CIAB_PEER_ADDR")]
    pub peer_addr: Option<SocketAddr>,
    /// Where the node takes InfluxDB line protocol over HTTP (`POST
    /// /api/v2/write`, `/write`) [default: 127.0.0.1:8086]
    #[arg(long, env = "CIAB_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// Where the node serves object storage over S3's HTTP API
    /// (path-style, any access key) [default: 127.0.0.1:9433]
    #[arg(long, env = "CIAB_S3_ADDR")]
    pub s3_addr: Option<SocketAddr>,
    /// Keep the table and object files in an S3-compatible bucket
    /// (`s3://bucket/prefix`, under `<prefix>/node-<id>/`) instead of the
    /// data directory; credentials, region and endpoint come from the usual
    /// AWS_* environment variables. The log and the manifest stay in the
    /// data directory [default: the data directory]
    #[arg(long, env = "CIAB_OBJECT_STORE")]
    pub object_store: Option<String>,
    /// Peer addresses of running nodes: a new node asks them to add it to
    /// their cluster (instead of starting a cluster of its own)
    #[arg(long, env = "CIAB_JOIN", value_delimiter = ',')]
    pub join: Vec<String>,
    /// The cluster's name: nodes of other clusters are refused. Naming it
    /// also finds the cluster's other nodes on the LAN with mDNS [default:
    /// ciab, without mDNS]
    #[arg(long, env = "CIAB_CLUSTER")]
    pub cluster: Option<String>,
    /// With mDNS: form the cluster once this many nodes of it see each
    /// other (all of them voters), instead of the first starting it alone
    #[arg(long, env = "CIAB_EXPECT", value_parser = clap::value_parser!(u16).range(1..))]
    pub expect: Option<u16>,
    /// A secret every node of the cluster is started with; nodes without it
    /// are refused
    #[arg(long, env = "CIAB_JOIN_TOKEN")]
    pub join_token: Option<String>,
}

/// The node-local settings, as read from a TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    pg_addr: Option<SocketAddr>,
    peer_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    s3_addr: Option<SocketAddr>,
    object_store: Option<String>,
    join: Option<Vec<String>>,
    cluster: Option<String>,
    join_token: Option<String>,
    expect: Option<u16>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub pg_addr: SocketAddr,
    pub peer_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub s3_addr: SocketAddr,
    /// Where table and object files live, when not in the data directory.
    pub object_store: Option<String>,
    pub join: Vec<String>,
    pub cluster: String,
    pub join_token: Option<String>,
    /// Find the cluster's nodes with mDNS (a cluster name or `expect` was
    /// given).
    pub discover: bool,
    pub expect: Option<usize>,
}

impl Config {
    pub fn resolve(args: &StartArgs) -> anyhow::Result<Config> {
        let file = args.node.file()?;
        Ok(Config {
            data_dir: args
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            pg_addr: pg_addr_or_default(args.node.pg_addr.or(file.pg_addr)),
            peer_addr: args.peer_addr.or(file.peer_addr).unwrap_or_else(|| {
                DEFAULT_PEER_ADDR
                    .parse()
                    .expect("the default address parses")
            }),
            http_addr: args.http_addr.or(file.http_addr).unwrap_or_else(|| {
                DEFAULT_HTTP_ADDR
                    .parse()
                    .expect("the default address parses")
            }),
            s3_addr: args
                .s3_addr
                .or(file.s3_addr)
                .unwrap_or_else(|| DEFAULT_S3_ADDR.parse().expect("the default address parses")),
            object_store: args.object_store.clone().or(file.object_store),
            join: if args.join.is_empty() {
                file.join.unwrap_or_default()
            } else {
                args.join.clone()
            },
            discover: args.cluster.is_some()
                || file.cluster.is_some()
                || args.expect.or(file.expect).is_some(),
            cluster: args
                .cluster
                .clone()
                .or(file.cluster)
                .unwrap_or_else(|| DEFAULT_CLUSTER.to_string()),
            join_token: args.join_token.clone().or(file.join_token),
            expect: args.expect.or(file.expect).map(usize::from),
        })
    }
}

fn pg_addr_or_default(addr: Option<SocketAddr>) -> SocketAddr {
    addr.unwrap_or_else(|| DEFAULT_PG_ADDR.parse().expect("the default address parses"))
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the configuration file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ciab.toml");
        std::fs::write(
            &file,
            "data_dir = \"/from/file\"\npg_addr = \"127.0.0.1:6000\"\n\
             peer_addr = \"127.0.0.1:6001\"\njoin = [\"127.0.0.1:8001\"]\ncluster = \"west\"\n",
        )
        .unwrap();
        let args = StartArgs {
            node: NodeArgs {
                config: Some(file.clone()),
                pg_addr: Some("127.0.0.1:7000".parse().unwrap()),
            },
            data_dir: None,
            peer_addr: None,
            http_addr: None,
            s3_addr: None,
            object_store: None,
            join: vec![],
            cluster: Some("east".into()),
            join_token: None,
            expect: None,
        };
        let config = Config::resolve(&args).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/from/file"));
        assert_eq!(config.pg_addr.port(), 7000);
        assert_eq!(config.peer_addr.port(), 6001);
        assert_eq!(config.join, ["127.0.0.1:8001"]);
        assert_eq!(config.cluster, "east");
        assert_eq!(config.join_token, None);
        assert!(config.discover, "a cluster name turns discovery on");

        std::fs::write(&file, "bogus = 1\n").unwrap();
        assert!(Config::resolve(&args).is_err(), "unknown keys are refused");
    }
}
