//! Node configuration: command line, then environment, then a TOML file,
//! then defaults. Each setting names its source in that order.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

pub const DEFAULT_DATA_DIR: &str = "./ciab-data";
pub const DEFAULT_PG_ADDR: &str = "127.0.0.1:5433";

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
}

/// A node's TOML file and PostgreSQL address: what `start` runs with and
/// `status` asks.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// A TOML file with `data_dir` and `pg_addr`.
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
}

/// The node-local settings, as read from a TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    pg_addr: Option<SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub pg_addr: SocketAddr,
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
            "data_dir = \"/from/file\"\npg_addr = \"127.0.0.1:6000\"\n",
        )
        .unwrap();
        let args = StartArgs {
            node: NodeArgs {
                config: Some(file.clone()),
                pg_addr: Some("127.0.0.1:7000".parse().unwrap()),
            },
            data_dir: None,
        };
        let config = Config::resolve(&args).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/from/file"));
        assert_eq!(config.pg_addr.port(), 7000);

        std::fs::write(&file, "bogus = 1\n").unwrap();
        assert!(Config::resolve(&args).is_err(), "unknown keys are refused");
    }
}
