//! The connection itself: output is buffered until the server waits for
//! the client (server/src/pg/socket.rs), so these check that every answer
//! still arrives: a FATAL error just before the socket closes, and the
//! answers to statements a client pipelines without waiting.

use ciab_sql_tests::connect;

use crate::{sqlstate, start};

const PIPELINED: i64 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fatal_errors_and_pipelined_answers_arrive() {
    let server = start();
    let e = connect(&server.conn_str("missing")).await.unwrap_err();
    let e = e.downcast::<tokio_postgres::Error>().unwrap();
    assert_eq!(sqlstate(&e), "3D000", "{e}");

    let client = connect(&server.conn_str("ciab")).await.unwrap();
    client
        .batch_execute("CREATE TABLE p (k bigint PRIMARY KEY, v bigint)")
        .await
        .unwrap();
    let insert = client
        .prepare("INSERT INTO p VALUES ($1, $2)")
        .await
        .unwrap();
    let lookup = client
        .prepare("SELECT v FROM p WHERE k = $1")
        .await
        .unwrap();
    // Polled together, tokio-postgres sends them all before reading any
    // answer: many Syncs' worth of replies share the server's buffer.
    let (client, insert, lookup) = (&client, &insert, &lookup);
    let inserts =
        (0..PIPELINED).map(|k| async move { client.execute(insert, &[&k, &(k * 10)]).await });
    let counts = futures::future::try_join_all(inserts).await.unwrap();
    assert!(counts.iter().all(|&n| n == 1));
    let lookups = (0..PIPELINED).map(|k| async move { client.query_one(lookup, &[&k]).await });
    let rows = futures::future::try_join_all(lookups).await.unwrap();
    for (k, row) in rows.iter().enumerate() {
        assert_eq!(row.get::<_, i64>(0), k as i64 * 10);
    }
    // A result larger than the output buffer streams through it.
    let big: i64 = client
        .query("SELECT x FROM generate_series(1, 100000) AS t(x)", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, i64>(0))
        .sum();
    assert_eq!(big, 100_000 * 100_001 / 2);
}
