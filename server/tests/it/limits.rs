//! Limits a node keeps for itself: `max_connections` (53300 beyond it), and
//! the idle timeouts that end forgotten sessions (57P05 outside a
//! transaction block, 25P03 inside one, whose writes are then rolled back).

use std::time::Duration;

use ciab_sql_tests::connect;

use crate::{rows, sqlstate, start};

/// A new session, or the SQLSTATE its connection is refused with. A
/// session taken is kept: dropped, it would hold its place until the
/// server saw its connection end.
async fn session(conn: &str) -> Result<tokio_postgres::Client, String> {
    match tokio_postgres::connect(conn, tokio_postgres::NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            Ok(client)
        }
        Err(e) => Err(sqlstate(&e)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_refuses_the_sessions_beyond_it() {
    let server = start();
    let conn = server.conn_str("ciab");
    let admin = connect(&conn).await.unwrap();
    rows(&admin, "ALTER SYSTEM SET max_connections = 3").await;
    assert_eq!(rows(&admin, "SHOW max_connections").await, ["3"]);
    let second = connect(&conn).await.unwrap();
    let third = connect(&conn).await.unwrap();
    assert_eq!(
        session(&conn).await.err().as_deref(),
        Some("53300"),
        "a fourth is refused"
    );
    // The sessions there go on, and a place that frees up is taken again.
    assert_eq!(rows(&third, "SELECT 1").await, ["1"]);
    drop(second);
    let mut again = None;
    for _ in 0..50 {
        // The closed session's place is given back once its server side
        // has seen the connection end.
        match session(&conn).await {
            Ok(client) => {
                again = Some(client);
                break;
            }
            Err(code) => assert_eq!(code, "53300"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let again = again.expect("a freed place is taken");
    // Only the cluster sets it; a bad value is refused.
    let e = again
        .simple_query("SET max_connections = 10")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "55P02");
    let e = again
        .simple_query("ALTER SYSTEM SET max_connections = 0")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "22023");
    rows(&again, "ALTER SYSTEM RESET max_connections").await;
    let more: Vec<_> = futures::future::join_all((0..5).map(|_| connect(&conn))).await;
    assert!(more.iter().all(Result::is_ok), "100 by default");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_end_after_their_timeout() {
    let server = start();
    let conn = server.conn_str("ciab");
    let admin = connect(&conn).await.unwrap();
    admin
        .batch_execute("CREATE TABLE t (id int)")
        .await
        .unwrap();

    let idle = connect(&conn).await.unwrap();
    rows(&idle, "SET idle_session_timeout = '300ms'").await;
    assert_eq!(rows(&idle, "SHOW idle_session_timeout").await, ["300ms"]);
    // Busy sessions are not idle: statements keep it open.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        rows(&idle, "SELECT 1").await;
    }
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(idle.is_closed(), "the idle session was ended");
    assert!(idle.simple_query("SELECT 1").await.is_err());

    // Idle inside a transaction block: the connection ends and the block's
    // writes are rolled back.
    let forgotten = connect(&conn).await.unwrap();
    forgotten
        .batch_execute(
            "SET idle_in_transaction_session_timeout = 300; BEGIN; INSERT INTO t VALUES (1)",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(forgotten.is_closed(), "the idle transaction was ended");
    assert_eq!(rows(&admin, "SELECT count(*) FROM t").await, ["0"]);

    // Outside a block, the in-transaction timeout does not apply.
    let outside = connect(&conn).await.unwrap();
    rows(
        &outside,
        "SET idle_in_transaction_session_timeout = '100ms'",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(rows(&outside, "SELECT 2").await, ["2"]);
    let e = outside
        .simple_query("SET idle_session_timeout = 'soon'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "22023");
    assert_eq!(
        rows(&admin, "SELECT 3").await,
        ["3"],
        "other sessions go on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_over_the_memory_limit_spill_or_fail_and_the_node_goes_on() {
    let server = start();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    assert_eq!(rows(&client, "SHOW memory_limit").await, ["80%"]);
    rows(&client, "ALTER SYSTEM SET memory_limit = '16MB'").await;
    // A sort holds more than the limit by spilling sorted runs to disk.
    let sort = "SELECT count(*), min(x), max(x) FROM \
                (SELECT x FROM generate_series(1, 4000000) AS s(x) ORDER BY x DESC OFFSET 1) t";
    assert_eq!(rows(&client, sort).await, ["3999999|1|3999999"]);
    // A hash join's build side cannot spill: the query fails with 53200.
    let join = "SELECT count(*) FROM generate_series(1, 3000000) AS a(x) \
                JOIN generate_series(1, 3000000) AS b(y) ON x = y";
    let e = client.simple_query(join).await.unwrap_err();
    assert_eq!(sqlstate(&e), "53200", "{e:?}");
    // Every other session goes on, and the limit changes at once.
    let other = connect(&server.conn_str("ciab")).await.unwrap();
    assert_eq!(rows(&other, "SELECT 1").await, ["1"]);
    rows(&client, "ALTER SYSTEM SET memory_limit = '2GB'").await;
    assert_eq!(rows(&client, join).await, ["3000000"]);
    // It bounds the node, so only the cluster sets it, to a readable value.
    let e = client
        .simple_query("SET memory_limit = '1GB'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "55P02");
    let e = client
        .simple_query("ALTER SYSTEM SET memory_limit = 'lots'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "22023");
}
