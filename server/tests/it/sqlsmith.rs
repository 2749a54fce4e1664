//! sqlsmith (Debian's package, which .ci/run installs) against ciab: it
//! loads the schema through PostgreSQL's catalogs, then sends random
//! queries over a few tables. Errors are fine (most of its SQL is beyond
//! ciab, or beyond SQL); a lost connection, a hang or a server that went
//! down is not.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ciab_sql_tests::connect;

use crate::{output_text, rows, start};

/// Random queries one run sends.
const QUERIES: usize = 3000;
/// Longer than the run takes in a debug build, by far; sqlsmith itself
/// sets statement_timeout to 1 s.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlsmith_finds_no_crash_or_hang() {
    let server = start();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE people (id int PRIMARY KEY, name text NOT NULL, born date, score float8); \
             CREATE TABLE visits (person int, at timestamptz, amount numeric(10, 2), doc jsonb); \
             CREATE VIEW big_spenders AS SELECT person, sum(amount) AS total FROM visits GROUP BY person; \
             INSERT INTO people VALUES (1, 'ann', '1990-01-02', 1.5), (2, 'bob', NULL, NULL), (3, 'cy', '2001-03-04', -2); \
             INSERT INTO visits VALUES (1, '2026-01-01 10:00:00+00', 12.50, '{\"a\": 1}'), (3, NULL, 7, '[1, 2]'), (2, '2026-02-01 00:00:00+00', NULL, NULL)",
        )
        .await
        .unwrap();
    // A new seed each run, printed, so a failure can be replayed.
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 1_000_000;
    let addr = server.addr();
    let target = format!(
        "host={} port={} user=ciab dbname=ciab",
        addr.ip(),
        addr.port()
    );
    let run = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .arg(RUN_TIMEOUT.as_secs().to_string())
            .arg("sqlsmith")
            .arg(format!("--target={target}"))
            .args(["--exclude-catalog", "--verbose"])
            .arg(format!("--max-queries={QUERIES}"))
            .arg(format!("--seed={seed}"))
            .output()
            .expect("sqlsmith runs (apt-get install sqlsmith; .ci/run installs it)")
    })
    .await
    .unwrap();
    let text = output_text(&run);
    assert!(
        run.status.success(),
        "sqlsmith --seed={seed} failed or hung:\n{text}\n{}",
        server.log()
    );
    // Its progress lines have a character a query: `.` answered, `e` an
    // error, `S` a syntax error, `t` a timeout, `C` a lost connection.
    let progress: String = text
        .lines()
        .filter(|l| !l.is_empty() && l.chars().all(|c| ".eSCt".contains(c)))
        .collect();
    assert_eq!(progress.len(), QUERIES, "{text}");
    assert!(
        !progress.contains('C'),
        "sqlsmith --seed={seed} lost connections:\n{text}\n{}",
        server.log()
    );
    // The node answers, and the data is as it was.
    assert_eq!(rows(&client, "SELECT count(*) FROM people").await, ["3"]);
    let fresh = connect(&server.conn_str("ciab")).await.unwrap();
    assert_eq!(rows(&fresh, "SELECT count(*) FROM visits").await, ["3"]);
}
