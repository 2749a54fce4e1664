//! Integration tests: the real `ciab` binary, spawned on free ports with a
//! temporary data directory, driven over the PostgreSQL wire.

mod advisory_locks;
mod cancel;
mod clients;
mod cluster;
mod cluster_lan;
mod concurrency;
mod constraints;
mod copy;
mod crash;
mod documents;
mod fast_path;
mod files;
mod graphs;
mod influx;
mod lan;
mod limits;
mod nodes;
mod notify;
mod objects;
mod parameters;
mod pgbench;
mod planning;
mod psql;
mod restart;
mod settings;
mod slt;
mod sqlsmith;
mod timeseries;
mod types;
mod wire;

use std::path::{Path, PathBuf};

use ciab_sql_tests::TestServer;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ciab"))
}

fn start() -> TestServer {
    TestServer::start(binary()).expect("ciab starts")
}

/// A small deterministic generator (xorshift), so a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// The SQLSTATE of a server error; empty for errors without one.
/// A process's resident memory, in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/PID/status");
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_string()).unwrap_or_default()
}

/// The rows a simple query returns, each as its values joined by `|`
/// (NULL as `NULL`).
async fn rows(client: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| match e.as_db_error() {
            Some(db) => panic!("{sql}: {} ({})", db.message(), db.code().code()),
            None => panic!("{sql}: {e}"),
        });
    joined_rows(messages)
}

/// The node's counters `names` in `ciab.metrics`, in that order.
async fn counters<const N: usize>(client: &tokio_postgres::Client, names: [&str; N]) -> [i64; N] {
    let mut values = [0; N];
    for (value, name) in values.iter_mut().zip(names) {
        let sql = format!("SELECT value FROM ciab.metrics WHERE name = '{name}'");
        *value = rows(client, &sql).await[0].parse().unwrap();
    }
    values
}

/// A real PostgreSQL 15 and a ciab, each with a client, for differential
/// tests; the servers stop when dropped.
async fn postgres_and_ciab() -> (
    ciab_sql_tests::Postgres,
    TestServer,
    tokio_postgres::Client,
    tokio_postgres::Client,
) {
    let postgres = ciab_sql_tests::Postgres::start().expect("a PostgreSQL 15 to compare with");
    let ciab = start();
    let pg = ciab_sql_tests::connect(&ciab_sql_tests::conn_str(postgres.addr(), "ciab"))
        .await
        .expect("connect to PostgreSQL");
    let cb = ciab_sql_tests::connect(&ciab.conn_str("ciab"))
        .await
        .expect("connect to ciab");
    (postgres, ciab, pg, cb)
}

/// Runs `theirs` on PostgreSQL and `ours` on ciab, which must return the
/// same rows or fail with the same SQLSTATE; whether PostgreSQL failed.
async fn same_outcome(
    pg: &tokio_postgres::Client,
    ciab: &tokio_postgres::Client,
    theirs: &str,
    ours: &str,
) -> bool {
    let expected = outcome(pg, theirs).await;
    let got = outcome(ciab, ours).await;
    let failed = expected.is_err();
    match (expected, got) {
        (Ok(expected), Ok(got)) => {
            assert_eq!(expected.len(), got.len(), "{ours}: row counts differ");
            for (e, g) in expected.iter().zip(&got) {
                assert_eq!(e, g, "{ours}\nPostgreSQL ran\n{theirs}");
            }
        }
        (expected, got) => assert_eq!(expected, got, "{ours}: PostgreSQL and ciab differ"),
    }
    failed
}

/// A simple query's rows, or its SQLSTATE.
async fn outcome(client: &tokio_postgres::Client, sql: &str) -> Result<Vec<String>, String> {
    client
        .simple_query(sql)
        .await
        .map(joined_rows)
        .map_err(|e| sqlstate(&e))
}

/// The rows among a simple query's messages, values joined by `|`.
fn joined_rows(messages: Vec<tokio_postgres::SimpleQueryMessage>) -> Vec<String> {
    messages
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect()
}

/// A finished command's stdout followed by its stderr, as a terminal shows
/// them.
fn output_text(out: &std::process::Output) -> String {
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    text
}

fn repo_root() -> PathBuf {
    // Read when the test runs, not when it was compiled: builds are shared
    // between checkouts through one target directory, and a binary built in
    // another checkout must still read this one's files.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir
        .parent()
        .expect("the server crate sits in the workspace")
        .to_path_buf()
}
