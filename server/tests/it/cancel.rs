//! Stopping a running statement: statement_timeout, and a CancelRequest
//! from another connection (psql's Ctrl-C), while the query computes and
//! while its rows stream. The session goes on afterwards.

use std::time::Duration;

use ciab_sql_tests::connect;
use tokio_postgres::{Client, NoTls};

use crate::{sqlstate, start};

/// Runs for hours unless stopped: an aggregate over ten billion rows.
const SLOW: &str = "SELECT count(*) FROM generate_series(1, 10000000000) AS t(x) WHERE x < 0";
/// A billion rows, streamed.
const LONG: &str = "SELECT x FROM generate_series(1, 1000000000) AS t(x)";
/// A statement that is not stopped within this fails the test instead of
/// hanging it.
const STOP_WAIT_MAX: Duration = Duration::from_secs(120);

/// The error that stopped `sql`: its SQLSTATE and message.
async fn stopped(client: &Client, sql: &str) -> (String, String) {
    let e = tokio::time::timeout(STOP_WAIT_MAX, client.simple_query(sql))
        .await
        .unwrap_or_else(|_| panic!("{sql} was not stopped"))
        .expect_err("a stopped statement fails");
    let message = e
        .as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_default();
    (sqlstate(&e), message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_and_cancel_stop_a_running_statement() {
    let server = start();
    let client = connect(&server.conn_str("ciab")).await.unwrap();

    client
        .batch_execute("SET statement_timeout = '300ms'")
        .await
        .unwrap();
    for sql in [SLOW, LONG] {
        let (state, message) = stopped(&client, sql).await;
        assert_eq!(state, "57014", "{sql}: {message}");
        assert_eq!(message, "canceling statement due to statement timeout");
    }
    let e = client
        .batch_execute("SET statement_timeout = 'soon'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "22023", "{e}");
    client
        .batch_execute("RESET statement_timeout")
        .await
        .unwrap();

    for sql in [SLOW, LONG] {
        let token = client.cancel_token();
        let cancel = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            token.cancel_query(NoTls).await
        });
        let (state, message) = stopped(&client, sql).await;
        assert_eq!(state, "57014", "{sql}: {message}");
        assert_eq!(message, "canceling statement due to user request");
        cancel.await.unwrap().unwrap();
    }

    // A cancel between statements stops nothing; the session is intact.
    client.cancel_token().cancel_query(NoTls).await.unwrap();
    let one = client.query_one("SELECT 1::int4", &[]).await.unwrap();
    assert_eq!(one.get::<_, i32>(0), 1);

    // In a transaction block, a stopped statement aborts the block.
    client
        .batch_execute("BEGIN; SET statement_timeout = 200")
        .await
        .unwrap();
    let (state, message) = stopped(&client, SLOW).await;
    assert_eq!(state, "57014", "{message}");
    let e = client.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(sqlstate(&e), "25P02", "{e}");
    client.batch_execute("ROLLBACK").await.unwrap();
}
