//! pgbench against ciab: `pgbench -i` (TRUNCATE and COPY in one transaction,
//! VACUUM, ALTER TABLE ADD PRIMARY KEY), then the built-in TPC-B-like and
//! select-only scripts, after which TPC-B's balances must agree.

use std::process::Command;

use ciab_sql_tests::connect;

use crate::{output_text, start};

/// PostgreSQL 15's pgbench (.ci/run installs it).
const PGBENCH: &str = "/usr/lib/postgresql/15/bin/pgbench";

fn pgbench(addr: std::net::SocketAddr, args: &[&str]) -> String {
    let out = Command::new(PGBENCH)
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(["-U", "ciab"])
        .args(args)
        .arg("ciab")
        .output()
        .expect("pgbench runs");
    let text = output_text(&out);
    assert!(out.status.success(), "pgbench {args:?} failed:\n{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_initializes_and_runs() {
    let server = start();
    let init = pgbench(server.addr(), &["-i", "-s", "1"]);
    assert!(init.contains("creating primary keys..."), "{init}");
    // Twice: the second drops and recreates what the first made.
    pgbench(server.addr(), &["-i", "-s", "1"]);

    // Concurrent TPC-B transactions all update the one branch row of scale
    // 1; ciab fails the later committer with 40001 where PostgreSQL would
    // make it wait, so pgbench retries those (and does not count them).
    let run = pgbench(
        server.addr(),
        &["-c", "2", "-t", "20", "--max-tries", "1000"],
    );
    assert!(run.contains("number of failed transactions: 0"), "{run}");
    // Each TPC-B transaction adds one delta to an account, a teller and a
    // branch and logs it in history: the four sums agree.
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    let row = client
        .query_one(
            "SELECT (SELECT sum(abalance) FROM pgbench_accounts)::bigint, \
                    (SELECT sum(tbalance) FROM pgbench_tellers)::bigint, \
                    (SELECT sum(bbalance) FROM pgbench_branches)::bigint, \
                    (SELECT coalesce(sum(delta), 0) FROM pgbench_history)::bigint, \
                    (SELECT count(*) FROM pgbench_history), \
                    (SELECT count(*) FROM pgbench_accounts)",
            &[],
        )
        .await
        .unwrap();
    let sums: Vec<i64> = (0..6).map(|i| row.get(i)).collect();
    assert_eq!(sums[0], sums[1], "{sums:?}");
    assert_eq!(sums[1], sums[2], "{sums:?}");
    assert_eq!(sums[2], sums[3], "{sums:?}");
    assert_eq!(sums[4], 40, "one history row per transaction");
    assert_eq!(sums[5], 100_000);

    let select = pgbench(server.addr(), &["-S", "-c", "2", "-t", "50"]);
    assert!(
        select.contains("number of failed transactions: 0"),
        "{select}"
    );
}
