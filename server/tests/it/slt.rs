//! The sqllogictest suites: ours under `sql-tests/slt`, and the sample of
//! SQLite's corpus in `../shared/sqllogictest/sqlite`.

use std::path::Path;

use ciab_sql_tests::{
    Dialect, KnownFailures, Postgres, Protocol, failure_key, run_file, test_files,
};
use futures::StreamExt;

use crate::{repo_root, start};

/// Files run at once, each in its own database: the machine has two cores
/// and most of a record's time is planning, so two runners keep both busy.
const FILES_IN_PARALLEL: usize = 2;

/// Runs every file under `dir` in the given protocols; returns (passed,
/// failed records not listed in `known`).
async fn run_dir(
    dir: &Path,
    dialect: Dialect,
    protocols: &[Protocol],
    known: &KnownFailures,
) -> (usize, Vec<String>) {
    let server = start();
    let addr = server.addr();
    let runs = test_files(dir)
        .expect("test files")
        .into_iter()
        .enumerate()
        .flat_map(|(n, file)| protocols.iter().map(move |&p| (n, file.clone(), p)));
    let reports: Vec<_> = futures::stream::iter(runs)
        .map(|(n, file, protocol)| async move {
            let report =
                run_file(addr, &file, dialect, protocol, &format!("t{n}_{protocol}")).await;
            (file, protocol, report)
        })
        .buffer_unordered(FILES_IN_PARALLEL)
        .collect()
        .await;
    let mut passed = 0;
    let mut unexpected = Vec::new();
    for (file, protocol, report) in reports {
        let report =
            report.unwrap_or_else(|e| panic!("{}: {e:#}\n{}", file.display(), server.log()));
        println!(
            "{} [{protocol}]: {} passed, {} failed",
            file.display(),
            report.passed,
            report.failures.len()
        );
        passed += report.passed;
        for failure in report.failures {
            let key = failure_key(dir, &file, failure.line);
            if known.reason(&key).is_none() {
                unexpected.push(format!("{key} [{protocol}]\n{}", failure.message));
            }
        }
    }
    (passed, unexpected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ciab_suites() {
    let dir = repo_root().join("sql-tests/slt");
    let both = [Protocol::Simple, Protocol::Extended];
    let (passed, failures) = run_dir(&dir, Dialect::Ciab, &both, &KnownFailures::default()).await;
    assert!(passed > 0, "no records ran");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The differential suites: every expected result in them is PostgreSQL
/// 15's. A real PostgreSQL must pass them (so they say what PostgreSQL
/// does), and so must ciab.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_suites_match_postgres() {
    let dir = repo_root().join("sql-tests/differential");
    let postgres = Postgres::start().expect("a PostgreSQL 15 to compare with");
    for (n, file) in test_files(&dir).expect("test files").iter().enumerate() {
        let report = run_file(
            postgres.addr(),
            file,
            Dialect::Ciab,
            Protocol::Simple,
            &format!("pg{n}"),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: {e:#}", file.display()));
        assert!(
            report.failures.is_empty(),
            "PostgreSQL disagrees with {}: the file no longer records what PostgreSQL does:\n{}",
            file.display(),
            report
                .failures
                .iter()
                .map(|f| format!("line {}: {}", f.line, f.message))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let both = [Protocol::Simple, Protocol::Extended];
    let (passed, failures) = run_dir(&dir, Dialect::Ciab, &both, &KnownFailures::default()).await;
    assert!(passed > 0, "no records ran");
    assert!(
        failures.is_empty(),
        "{} records where ciab differs from PostgreSQL:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_corpus_sample() {
    let dir = repo_root().join("../shared/sqllogictest/sqlite");
    if !dir.exists() {
        panic!("the SQLite corpus sample is missing at {}", dir.display());
    }
    let known = KnownFailures::load(&repo_root().join("sql-tests/sqlite-known-failures.txt"))
        .expect("the known failures list");
    // The corpus is ~200,000 records; the simple protocol keeps CI within
    // its time. Both protocols run our own suites above.
    let (passed, failures) = run_dir(&dir, Dialect::Sqlite, &[Protocol::Simple], &known).await;
    assert!(passed > 0, "no records ran");
    assert!(
        failures.is_empty(),
        "{} unexpected failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
