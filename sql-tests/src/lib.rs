//! Runs sqllogictest files over the PostgreSQL wire against a real `ciab`.
//!
//! Each file runs in a database of its own, created for it and dropped after,
//! once per protocol asked for. Every statement and query record counts as
//! passed or failed; a failure that a known-failures list names (with its
//! reason) is reported but does not fail the run, and a listed failure that
//! now passes is reported so the list can shrink.

pub mod db;
pub mod postgres;
pub mod server;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use sqllogictest::{DefaultColumnType, MakeConnection, QueryExpect, Record, RecordOutput, Runner};

pub use db::Protocol;
use db::{ExpectedTypes, PgDb};
pub use postgres::Postgres;
pub use server::{TestServer, conn_str, connect};

/// How to read a file.
#[derive(Debug, Clone, Copy)]
pub enum Dialect {
    /// Our own files: run as written.
    Ciab,
    /// SQLite's corpus: one value per line, hash past 8 values, and the
    /// `postgresql` label for its `skipif`/`onlyif` records.
    Sqlite,
}

#[derive(Debug, Clone)]
pub struct Failure {
    pub line: u32,
    pub message: String,
}

#[derive(Debug)]
pub struct FileReport {
    pub path: PathBuf,
    pub protocol: Protocol,
    pub passed: usize,
    pub failures: Vec<Failure>,
}

/// Known failures: `file:line` to the reason, from lines `path:line reason`.
#[derive(Debug, Default)]
pub struct KnownFailures(BTreeMap<String, String>);

impl KnownFailures {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut known = BTreeMap::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, reason) = line.split_once(' ').unwrap_or((line, ""));
            anyhow::ensure!(
                !reason.trim().is_empty(),
                "known failure {key} has no reason"
            );
            known.insert(key.to_string(), reason.trim().to_string());
        }
        Ok(KnownFailures(known))
    }

    pub fn reason(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.keys()
    }
}

/// The key a failure is listed under: the file name relative to `root`
/// and the record's line.
pub fn failure_key(root: &Path, path: &Path, line: u32) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    format!("{}:{line}", rel.display())
}

fn sqlite_script(path: &Path) -> anyhow::Result<(String, u32)> {
    let text = std::fs::read_to_string(path)?.replace("\r\n", "\n");
    // SQLite's format allows a comment after a condition (`skipif
    // postgresql # why`); the Rust parser does not, so it goes.
    let text: String = text
        .lines()
        .map(|line| match line.split_once(" #") {
            Some((condition, _)) if line.starts_with("skipif ") || line.starts_with("onlyif ") => {
                condition
            }
            _ => line,
        })
        .flat_map(|line| [line, "\n"])
        .collect();
    let mut prelude = String::from("control resultmode valuewise\n");
    if !text.contains("hash-threshold") {
        prelude.push_str("hash-threshold 8\n");
    }
    let shift = prelude.lines().count() as u32;
    Ok((prelude + &text, shift))
}

/// A sqllogictest runner whose connections go to `conn_str`.
fn runner(
    conn_str: String,
    protocol: Protocol,
    expected: ExpectedTypes,
) -> Runner<PgDb, impl MakeConnection<Conn = PgDb>> {
    Runner::new(move || {
        let conn_str = conn_str.clone();
        let expected = expected.clone();
        async move {
            let client = server::connect_pg(&conn_str).await.map_err(db::DbError)?;
            Ok(PgDb::new(client, protocol, expected))
        }
    })
}

/// Runs one file in a fresh database named `database`.
pub async fn run_file(
    server: SocketAddr,
    path: &Path,
    dialect: Dialect,
    protocol: Protocol,
    database: &str,
) -> anyhow::Result<FileReport> {
    let admin = connect(&conn_str(server, "ciab")).await?;
    admin
        .simple_query(&format!("CREATE DATABASE {database}"))
        .await
        .with_context(|| format!("creating database {database}"))?;
    let (script, shift) = match dialect {
        Dialect::Sqlite => sqlite_script(path)?,
        Dialect::Ciab => (std::fs::read_to_string(path)?, 0),
    };
    let records =
        sqllogictest::parse_with_name::<DefaultColumnType>(&script, path.display().to_string())
            .with_context(|| format!("parsing {}", path.display()))?;

    let expected: ExpectedTypes = Arc::new(Mutex::new(Vec::new()));
    let mut runner = runner(conn_str(server, database), protocol, expected.clone());
    if matches!(dialect, Dialect::Sqlite) {
        runner.add_label("postgresql");
    }

    let mut report = FileReport {
        path: path.to_path_buf(),
        protocol,
        passed: 0,
        failures: Vec::new(),
    };
    for record in records {
        let line = match &record {
            Record::Statement { loc, .. } | Record::Query { loc, .. } => {
                Some(loc.line().saturating_sub(shift))
            }
            _ => None,
        };
        if let Record::Query {
            expected: QueryExpect::Results { types, .. },
            ..
        } = &record
        {
            *expected.lock().expect("lock") = types.clone();
        } else {
            expected.lock().expect("lock").clear();
        }
        let halt = matches!(record, Record::Halt { .. });
        match runner.run_async(record).await {
            Ok(RecordOutput::Nothing) => {}
            Ok(_) => {
                if line.is_some() {
                    report.passed += 1;
                }
            }
            Err(e) => report.failures.push(Failure {
                line: line.unwrap_or(0),
                message: e.display(false).to_string(),
            }),
        }
        if halt {
            break;
        }
    }
    drop(runner);
    admin
        .simple_query(&format!("DROP DATABASE {database}"))
        .await
        .with_context(|| format!("dropping database {database}"))?;
    Ok(report)
}

/// The `.slt` and `.test` files under `dir`, sorted.
pub fn test_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("slt" | "test")
            ) {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Rewrites a file's expected results with what the server returns now.
pub async fn complete_file(server: SocketAddr, path: &Path, database: &str) -> anyhow::Result<()> {
    let admin = connect(&conn_str(server, "ciab")).await?;
    admin
        .simple_query(&format!("CREATE DATABASE {database}"))
        .await?;
    let expected: ExpectedTypes = Arc::new(Mutex::new(Vec::new()));
    let mut runner = runner(conn_str(server, database), Protocol::Simple, expected);
    runner
        .update_test_file(
            path,
            " ",
            sqllogictest::default_validator,
            sqllogictest::default_normalizer,
            sqllogictest::default_column_validator,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    drop(runner);
    admin
        .simple_query(&format!("DROP DATABASE {database}"))
        .await?;
    Ok(())
}
