//! Constraints where SQL logic tests cannot reach: COPY into a table with
//! a CHECK and into a referencing table, two sessions racing a parent's
//! delete against a child's insert, and keys that survive a crash (from the
//! log) and a restart (from the catalog a flush wrote).

use ciab_sql_tests::connect;

use crate::copy::copy_in;
use crate::{rows, sqlstate, start};

const SCHEMA: &str = "CREATE TABLE p (id int PRIMARY KEY);
    CREATE TABLE c (id int PRIMARY KEY, pid int REFERENCES p ON DELETE CASCADE);
    INSERT INTO p SELECT g FROM generate_series(1, 100) AS g(g)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_checks_every_row_against_check_constraints() {
    let server = start();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    client
        .batch_execute("CREATE TABLE m (id int, reading float8 CHECK (reading BETWEEN 0 AND 100))")
        .await
        .unwrap();
    let good: String = (0..1000).map(|i| format!("{i}\t{}\n", i % 100)).collect();
    assert_eq!(
        copy_in(&client, "COPY m FROM STDIN", &good).await.unwrap(),
        1000
    );
    let bad = format!("{good}1000\t101\n");
    let e = copy_in(&client, "COPY m FROM STDIN", &bad)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "23514", "{e:?}");
    assert_eq!(rows(&client, "SELECT count(*) FROM m").await, ["1000"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_into_a_referencing_table_is_checked_whole() {
    let server = start();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    client.batch_execute(SCHEMA).await.unwrap();
    let good: String = (1..=5000)
        .map(|i| format!("{i}\t{}\n", i % 100 + 1))
        .collect();
    assert_eq!(
        copy_in(&client, "COPY c FROM STDIN", &good).await.unwrap(),
        5000
    );
    let mut bad: String = (100_001..=105_000)
        .map(|i| format!("{i}\t{}\n", i % 100 + 1))
        .collect();
    bad.push_str("105001\t101\n");
    let e = copy_in(&client, "COPY c FROM STDIN", &bad)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "23503", "{e:?}");
    assert_eq!(rows(&client, "SELECT count(*) FROM c").await, ["5000"]);
    // The cascade reaches the rows COPY loaded.
    client
        .batch_execute("DELETE FROM p WHERE id <= 50")
        .await
        .unwrap();
    assert_eq!(rows(&client, "SELECT count(*) FROM c").await, ["2500"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_that_references_a_parent_deleted_meanwhile_fails_at_commit() {
    let server = start();
    let a = connect(&server.conn_str("ciab")).await.unwrap();
    let b = connect(&server.conn_str("ciab")).await.unwrap();
    a.batch_execute(SCHEMA).await.unwrap();
    a.batch_execute("BEGIN; INSERT INTO c VALUES (1, 7)")
        .await
        .unwrap();
    // Not referenced yet, as far as the committed state knows.
    b.batch_execute("DELETE FROM p WHERE id = 7").await.unwrap();
    let e = a.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(sqlstate(&e), "23503", "{e:?}");
    assert_eq!(rows(&a, "SELECT count(*) FROM c").await, ["0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_survive_a_crash_and_a_restart() {
    let mut server = start();
    let conn = server.conn_str("ciab");
    let mut client = connect(&conn).await.unwrap();
    client.batch_execute(SCHEMA).await.unwrap();
    client
        .batch_execute("INSERT INTO c VALUES (1, 1)")
        .await
        .unwrap();
    for flush in [false, true] {
        if flush {
            client.batch_execute("VACUUM").await.unwrap();
        }
        drop(client);
        server.kill9().unwrap();
        server.restart().unwrap();
        client = connect(&conn).await.unwrap();
        let e = client
            .batch_execute("INSERT INTO c VALUES (2, 1000)")
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&e), "23503", "flushed: {flush}: {e:?}");
        client
            .batch_execute("DELETE FROM p WHERE id = 1")
            .await
            .unwrap();
        assert_eq!(rows(&client, "SELECT count(*) FROM c").await, ["0"]);
        client
            .batch_execute("INSERT INTO p VALUES (1); INSERT INTO c VALUES (1, 1)")
            .await
            .unwrap();
    }
}

/// A block changes a referenced key under ON UPDATE CASCADE while another
/// session adds a row referencing the old key: the block's cascade could
/// not have reached that row, so its COMMIT fails with 40001 (first
/// committer wins, as for any conflict between blocks) and nothing dangles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cascading_update_racing_a_new_reference_fails_at_commit() {
    let server = start();
    let a = connect(&server.conn_str("ciab")).await.unwrap();
    let b = connect(&server.conn_str("ciab")).await.unwrap();
    a.batch_execute(
        "CREATE TABLE p (id int PRIMARY KEY);
         CREATE TABLE c (id int PRIMARY KEY, pid int REFERENCES p ON UPDATE CASCADE);
         INSERT INTO p VALUES (1); INSERT INTO c VALUES (1, 1)",
    )
    .await
    .unwrap();
    a.batch_execute("BEGIN; UPDATE p SET id = 100 WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(rows(&a, "SELECT pid FROM c").await, ["100"]);
    b.batch_execute("INSERT INTO c VALUES (2, 1)")
        .await
        .unwrap();
    let e = a.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(sqlstate(&e), "40001", "{e:?}");
    assert_eq!(
        rows(
            &a,
            "SELECT c.id, c.pid, p.id FROM c JOIN p ON p.id = c.pid ORDER BY c.id"
        )
        .await,
        ["1|1|1", "2|1|1"]
    );
    // Outside a block the same UPDATE reaches both rows.
    a.batch_execute("UPDATE p SET id = 100 WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(
        rows(&a, "SELECT pid FROM c ORDER BY id").await,
        ["100", "100"]
    );
}
