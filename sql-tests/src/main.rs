//! `ciab-slt`: runs sqllogictest files against a freshly started `ciab`.
//!
//! ```text
//! ciab-slt [--ciab PATH] [--protocol simple|extended|both] [--sqlite]
//!          [--known-failures FILE] [--complete] PATH...
//! ```
//!
//! Prints passed and failed counts per file, then `N passed, N failed`.
//! Exits non-zero on any failure that the known-failures file does not list.

use std::path::PathBuf;

use ciab_sql_tests::{Dialect, KnownFailures, Protocol, TestServer, failure_key};
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Protocols {
    Simple,
    Extended,
    Both,
}

#[derive(Debug, Parser)]
struct Args {
    /// The ciab binary [default: next to this one]
    #[arg(long)]
    ciab: Option<PathBuf>,
    /// Run against a server already listening here (user `ciab`, database
    /// `ciab`), such as PostgreSQL for a differential run, instead of
    /// starting ciab.
    #[arg(long)]
    server: Option<std::net::SocketAddr>,
    #[arg(long, value_enum, default_value = "both")]
    protocol: Protocols,
    /// The files are SQLite's corpus.
    #[arg(long)]
    sqlite: bool,
    /// Failures that are expected, one `file:line reason` per line, with
    /// file names relative to the directory given.
    #[arg(long)]
    known_failures: Option<PathBuf>,
    /// Rewrite expected results with what ciab returns now.
    #[arg(long)]
    complete: bool,
    /// Files, or directories to search for .slt and .test files.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let binary = match args.ciab {
        Some(b) => b,
        None => std::env::current_exe()?.with_file_name("ciab"),
    };
    let spawned = match args.server {
        Some(_) => None,
        None => Some(TestServer::start(&binary)?),
    };
    let server = args
        .server
        .or(spawned.as_ref().map(TestServer::addr))
        .expect("a server to test");
    let known = match &args.known_failures {
        Some(path) => KnownFailures::load(path)?,
        None => KnownFailures::default(),
    };
    let mut files = Vec::new();
    for path in &args.paths {
        let root = if path.is_dir() {
            path.clone()
        } else {
            path.parent().unwrap_or(path).to_path_buf()
        };
        for file in if path.is_dir() {
            ciab_sql_tests::test_files(path)?
        } else {
            vec![path.clone()]
        } {
            files.push((root.clone(), file));
        }
    }
    if args.complete {
        for (i, (_, file)) in files.iter().enumerate() {
            ciab_sql_tests::complete_file(server, file, &format!("complete_{i}")).await?;
            println!("completed {}", file.display());
        }
        return Ok(());
    }
    let protocols = match args.protocol {
        Protocols::Simple => vec![Protocol::Simple],
        Protocols::Extended => vec![Protocol::Extended],
        Protocols::Both => vec![Protocol::Simple, Protocol::Extended],
    };
    let dialect = if args.sqlite {
        Dialect::Sqlite
    } else {
        Dialect::Ciab
    };
    let (mut passed, mut failed, mut unexpected) = (0, 0, 0);
    let mut seen_known = std::collections::BTreeSet::new();
    for (n, (root, file)) in files.iter().enumerate() {
        for protocol in &protocols {
            let database = format!("slt_{n}_{protocol}");
            let report =
                ciab_sql_tests::run_file(server, file, dialect, *protocol, &database).await?;
            passed += report.passed;
            failed += report.failures.len();
            let mut known_here = 0;
            for failure in &report.failures {
                let key = failure_key(root, file, failure.line);
                match known.reason(&key) {
                    Some(_) => {
                        known_here += 1;
                        seen_known.insert(key);
                    }
                    None => {
                        unexpected += 1;
                        println!("FAILED {key} ({protocol}):\n{}", failure.message);
                    }
                }
            }
            println!(
                "{} [{protocol}]: {} passed, {} failed ({known_here} known)",
                file.display(),
                report.passed,
                report.failures.len()
            );
        }
    }
    for key in known.keys().filter(|k| !seen_known.contains(*k)) {
        println!("known failure {key} passed: remove it from the list");
    }
    // Known failures are reported above and counted apart from failures.
    println!(
        "sqllogictest: {passed} passed, {unexpected} failed, {} skipped",
        failed - unexpected
    );
    if unexpected > 0 {
        anyhow::bail!("{unexpected} unexpected failures");
    }
    Ok(())
}
