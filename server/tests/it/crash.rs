//! Writers insert and delete while the server is killed with SIGKILL again
//! and again. After every restart each acknowledged statement is there in
//! full and no statement is half applied.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ciab_sql_tests::connect;

use crate::start;

/// Rows each statement writes: all of them or none must survive a crash.
const ROWS_PER_STATEMENT: i64 = 3;
const WRITERS: usize = 4;
const ROUNDS: usize = 6;

#[derive(Default)]
struct Acked {
    /// Batches whose INSERT was acknowledged.
    inserted: BTreeSet<i64>,
    /// Batches whose DELETE was acknowledged.
    deleted: BTreeSet<i64>,
    /// Batches whose DELETE was sent: one in flight when the server died
    /// may or may not have happened.
    delete_sent: BTreeSet<i64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let mut server = start();
    let conn = server.conn_str("ciab");
    let admin = connect(&conn).await.unwrap();
    admin
        .batch_execute(
            "CREATE TABLE t (id bigint PRIMARY KEY, batch bigint NOT NULL, pos int NOT NULL)",
        )
        .await
        .unwrap();
    drop(admin);

    let acked = Arc::new(Mutex::new(Acked::default()));
    for round in 0..ROUNDS {
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let conn = conn.clone();
            let acked = acked.clone();
            writers.push(tokio::spawn(async move {
                let Ok(client) = connect(&conn).await else {
                    return;
                };
                for i in 0.. {
                    let batch = ((round * WRITERS + w) as i64) * 1_000_000 + i;
                    let values: Vec<String> = (0..ROWS_PER_STATEMENT)
                        .map(|p| format!("({}, {batch}, {p})", batch * 10 + p))
                        .collect();
                    let sql = format!("INSERT INTO t VALUES {}", values.join(", "));
                    if client.batch_execute(&sql).await.is_err() {
                        return;
                    }
                    acked.lock().unwrap().inserted.insert(batch);
                    if i % 5 == 4 {
                        let victim = batch - 2;
                        acked.lock().unwrap().delete_sent.insert(victim);
                        if client
                            .batch_execute(&format!("DELETE FROM t WHERE batch = {victim}"))
                            .await
                            .is_err()
                        {
                            return;
                        }
                        acked.lock().unwrap().deleted.insert(victim);
                    }
                }
            }));
        }
        // Let them write for a while, then pull the plug.
        tokio::time::sleep(Duration::from_millis(400 + 150 * round as u64)).await;
        server.kill9().unwrap();
        for writer in writers {
            writer.await.unwrap();
        }
        server.restart().unwrap();

        let client = connect(&conn).await.unwrap();
        let rows = client
            .query("SELECT batch, count(*) FROM t GROUP BY batch", &[])
            .await
            .unwrap();
        let counts: BTreeMap<i64, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let acked = acked.lock().unwrap();
        assert!(
            !acked.inserted.is_empty(),
            "round {round}: no write was acknowledged"
        );
        for (batch, count) in &counts {
            assert_eq!(
                *count, ROWS_PER_STATEMENT,
                "round {round}: batch {batch} is half applied"
            );
        }
        for batch in &acked.inserted {
            let present = counts.contains_key(batch);
            if acked.deleted.contains(batch) {
                assert!(
                    !present,
                    "round {round}: batch {batch} survived its acknowledged delete"
                );
            } else if !acked.delete_sent.contains(batch) {
                assert!(
                    present,
                    "round {round}: acknowledged batch {batch} is lost\n{}",
                    server.log()
                );
            }
        }
        println!(
            "round {round}: {} batches acknowledged, {} deleted, {} present",
            acked.inserted.len(),
            acked.deleted.len(),
            counts.len()
        );
    }
}
