//! Advisory locks between sessions, which SQL logic tests (one session at
//! a time) cannot show: a waiter that gets the lock when its holder's
//! session ends, a deadlock, transaction-scoped locks, a wait cut short by
//! statement_timeout or lock_timeout, and locks a crashed node's sessions
//! held.

use std::time::Duration;

use ciab_sql_tests::connect;
use tokio_postgres::Client;

use crate::{rows, sqlstate, start};

/// How long a session may take to notice that a lock it waits for is free.
const WAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `sql` on its own task, so the test can go on while it waits.
fn spawn_query(
    client: Client,
    sql: &'static str,
) -> tokio::task::JoinHandle<(Client, Vec<String>)> {
    tokio::spawn(async move {
        let got = rows(&client, sql).await;
        (client, got)
    })
}

/// Lets a spawned statement reach its wait, then checks it still waits.
async fn still_waiting<T>(task: &tokio::task::JoinHandle<T>) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!task.is_finished(), "the statement waits for the lock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_gets_the_lock_once_its_holder_lets_go() {
    let server = start();
    let conn = server.conn_str("ciab");
    let a = connect(&conn).await.unwrap();
    let b = connect(&conn).await.unwrap();
    assert_eq!(rows(&a, "SELECT pg_advisory_lock(1)").await, [""]);
    assert_eq!(rows(&b, "SELECT pg_try_advisory_lock(1)").await, ["f"]);
    // The two-integer form is another lock.
    assert_eq!(rows(&b, "SELECT pg_try_advisory_lock(0, 1)").await, ["t"]);
    let waiter = spawn_query(b, "SELECT pg_advisory_lock(1), 'got it'");
    still_waiting(&waiter).await;
    // pg_locks shows the holder and the waiter.
    let locks = "SELECT granted, pid = pg_backend_pid() FROM pg_locks \
                 WHERE objid = 1 AND objsubid = 1 ORDER BY granted";
    assert_eq!(rows(&a, locks).await, ["f|f", "t|t"]);
    // The holder's session ends: its locks go with it.
    drop(a);
    let (b, got) = tokio::time::timeout(WAKE_TIMEOUT, waiter)
        .await
        .expect("the waiter wakes")
        .unwrap();
    assert_eq!(got, ["|got it"]);
    assert_eq!(rows(&b, "SELECT pg_advisory_unlock(1)").await, ["t"]);
    assert_eq!(rows(&b, "SELECT pg_advisory_unlock(1)").await, ["f"]);

    // Shared holders coexist; an exclusive waiter waits for both.
    let c = connect(&conn).await.unwrap();
    assert_eq!(rows(&b, "SELECT pg_advisory_lock_shared(2)").await, [""]);
    assert_eq!(
        rows(&c, "SELECT pg_try_advisory_lock_shared(2)").await,
        ["t"]
    );
    let d = connect(&conn).await.unwrap();
    let waiter = spawn_query(d, "SELECT pg_advisory_lock(2)");
    still_waiting(&waiter).await;
    assert_eq!(rows(&b, "SELECT pg_advisory_unlock_shared(2)").await, ["t"]);
    still_waiting(&waiter).await;
    assert_eq!(rows(&c, "SELECT pg_advisory_unlock_all()").await, [""]);
    tokio::time::timeout(WAKE_TIMEOUT, waiter)
        .await
        .expect("the waiter wakes")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_waiting_for_each_other_are_a_deadlock() {
    let server = start();
    let conn = server.conn_str("ciab");
    let a = connect(&conn).await.unwrap();
    let b = connect(&conn).await.unwrap();
    rows(&a, "SELECT pg_advisory_lock(10)").await;
    rows(&b, "SELECT pg_advisory_lock(20)").await;
    let waiter = spawn_query(a, "SELECT pg_advisory_lock(20), 'a got 20'");
    still_waiting(&waiter).await;
    let e = b
        .simple_query("SELECT pg_advisory_lock(10)")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "40P01", "{e:?}");
    // The refused session goes on, and its locks with it, until it lets go.
    still_waiting(&waiter).await;
    assert_eq!(rows(&b, "SELECT pg_advisory_unlock(20)").await, ["t"]);
    let (_a, got) = tokio::time::timeout(WAKE_TIMEOUT, waiter)
        .await
        .expect("the waiter wakes")
        .unwrap();
    assert_eq!(got, ["|a got 20"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_locks_last_until_the_transaction_ends() {
    let server = start();
    let conn = server.conn_str("ciab");
    let a = connect(&conn).await.unwrap();
    let b = connect(&conn).await.unwrap();
    let try_5 = "SELECT pg_try_advisory_xact_lock(5)";

    a.batch_execute("BEGIN; SELECT pg_advisory_xact_lock(5)")
        .await
        .unwrap();
    assert_eq!(rows(&b, try_5).await, ["f"]);
    // A wait statement_timeout ends is no longer a wait: it takes no part
    // in finding deadlocks later.
    b.batch_execute("SET statement_timeout = '200ms'")
        .await
        .unwrap();
    let e = b
        .simple_query("SELECT pg_advisory_lock(5)")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "57014", "{e:?}");
    b.batch_execute("RESET statement_timeout; SET lock_timeout = '200ms'")
        .await
        .unwrap();
    let e = b
        .simple_query("SELECT pg_advisory_lock(5)")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "55P03", "{e:?}");
    b.batch_execute("RESET lock_timeout; SELECT pg_advisory_lock(8)")
        .await
        .unwrap();
    let waiter = spawn_query(a, "SELECT pg_advisory_lock(8)");
    still_waiting(&waiter).await;
    assert_eq!(rows(&b, "SELECT pg_advisory_unlock(8)").await, ["t"]);
    let (a, _) = tokio::time::timeout(WAKE_TIMEOUT, waiter)
        .await
        .expect("the waiter wakes")
        .unwrap();
    // COMMIT releases the block's lock, not the session's.
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(rows(&b, try_5).await, ["t"]);
    assert_eq!(rows(&b, "SELECT pg_try_advisory_lock(8)").await, ["f"]);

    // Outside a block, the statement is the transaction.
    assert_eq!(rows(&a, "SELECT pg_advisory_xact_lock(6)").await, [""]);
    assert_eq!(rows(&b, "SELECT pg_try_advisory_xact_lock(6)").await, ["t"]);

    // A failed block holds its locks until ROLLBACK.
    a.batch_execute("BEGIN; SELECT pg_advisory_xact_lock(7)")
        .await
        .unwrap();
    a.batch_execute("SELECT 1 / 0").await.unwrap_err();
    assert_eq!(rows(&b, "SELECT pg_try_advisory_xact_lock(7)").await, ["f"]);
    a.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(rows(&b, "SELECT pg_try_advisory_xact_lock(7)").await, ["t"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_releases_what_its_sessions_held() {
    let mut server = start();
    let conn = server.conn_str("ciab");
    let a = connect(&conn).await.unwrap();
    rows(&a, "SELECT pg_advisory_lock(3), pg_advisory_lock_shared(4)").await;
    // A snapshot holds the locks too (a node catching up gets them).
    a.batch_execute("VACUUM").await.unwrap();
    let manifest = std::fs::read_to_string(server.data_dir().join("manifest.json")).unwrap();
    assert!(manifest.contains("advisory_locks"), "{manifest}");
    server.kill9().unwrap();
    drop(a);
    server.restart().unwrap();
    let b = connect(&conn).await.unwrap();
    assert_eq!(
        rows(
            &b,
            "SELECT pg_try_advisory_lock(3), pg_try_advisory_lock(4)"
        )
        .await,
        ["t|t"]
    );
}
