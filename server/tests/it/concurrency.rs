//! Many clients at once: 100 connections write and read concurrently, every
//! SELECT sees one consistent state while transfers commit around it, and
//! writes that reach the log together (group commit) succeed or fail each on
//! its own, and a block's DDL commits only onto the catalog it started from.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ciab_sql_tests::connect;

use crate::{sqlstate, start};

const CONNECTIONS: i64 = 100;
const INSERTS_PER_CONNECTION: i64 = 5;
const ACCOUNTS: i64 = 10;
const BALANCE: i64 = 1_000;
const RACERS: usize = 32;
const RACED_KEYS: i32 = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_connections_write_and_read() {
    let server = start();
    let conn = server.conn_str("ciab");
    let admin = connect(&conn).await.unwrap();
    admin
        .batch_execute("CREATE TABLE hits (conn bigint, n bigint, PRIMARY KEY (conn, n))")
        .await
        .unwrap();
    // 100 by default, as in PostgreSQL, and the admin's makes 101.
    admin
        .batch_execute("ALTER SYSTEM SET max_connections = 200")
        .await
        .unwrap();
    // Open every connection first, so all 100 are open at the same time.
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        clients.push(connect(&conn).await.expect("a connection"));
    }
    let mut tasks = Vec::new();
    for (c, client) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for n in 0..INSERTS_PER_CONNECTION {
                client
                    .execute("INSERT INTO hits VALUES ($1, $2)", &[&(c as i64), &n])
                    .await
                    .unwrap();
                let seen: i64 = client
                    .query_one("SELECT count(*) FROM hits WHERE conn = $1", &[&(c as i64)])
                    .await
                    .unwrap()
                    .get(0);
                assert_eq!(
                    seen,
                    n + 1,
                    "a connection reads its own acknowledged writes"
                );
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let total: i64 = admin
        .query_one("SELECT count(*) FROM hits", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, CONNECTIONS * INSERTS_PER_CONNECTION);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_select_sees_one_consistent_state() {
    let server = start();
    let conn = server.conn_str("ciab");
    let admin = connect(&conn).await.unwrap();
    admin
        .batch_execute("CREATE TABLE acct (id bigint PRIMARY KEY, balance bigint NOT NULL)")
        .await
        .unwrap();
    for id in 0..ACCOUNTS {
        admin
            .execute("INSERT INTO acct VALUES ($1, $2)", &[&id, &BALANCE])
            .await
            .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4i64 {
        let conn = conn.clone();
        writers.push(tokio::spawn(async move {
            let client = connect(&conn).await.unwrap();
            let (mut committed, mut conflicts) = (0, 0);
            for i in 0..30i64 {
                let (from, to) = ((w + i) % ACCOUNTS, (w + 3 * i + 1) % ACCOUNTS);
                if from == to {
                    continue;
                }
                client.batch_execute("BEGIN").await.unwrap();
                client
                    .execute(
                        "UPDATE acct SET balance = balance - 7 WHERE id = $1",
                        &[&from],
                    )
                    .await
                    .unwrap();
                client
                    .execute(
                        "UPDATE acct SET balance = balance + 7 WHERE id = $1",
                        &[&to],
                    )
                    .await
                    .unwrap();
                match client.batch_execute("COMMIT").await {
                    Ok(()) => committed += 1,
                    Err(e) => {
                        // First committer wins; the loser is told to retry.
                        assert_eq!(sqlstate(&e), "40001", "{e}");
                        conflicts += 1;
                    }
                }
            }
            (committed, conflicts)
        }));
    }
    let reader = {
        let conn = conn.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let client = connect(&conn).await.unwrap();
            let mut reads = 0;
            while !stop.load(Ordering::Relaxed) {
                let row = client
                    // sum(bigint) is numeric, as in PostgreSQL.
                    .query_one("SELECT sum(balance)::bigint, count(*) FROM acct", &[])
                    .await
                    .unwrap();
                assert_eq!(row.get::<_, i64>(0), ACCOUNTS * BALANCE, "a torn read");
                assert_eq!(row.get::<_, i64>(1), ACCOUNTS);
                reads += 1;
            }
            reads
        })
    };
    let mut committed = 0;
    for writer in writers {
        let (c, conflicts) = writer.await.unwrap();
        println!("writer: {c} committed, {conflicts} conflicts");
        committed += c;
    }
    stop.store(true, Ordering::Relaxed);
    let reads = reader.await.unwrap();
    println!("{committed} transfers committed while {reads} consistent reads ran");
    assert!(committed > 0 && reads > 0);
}

/// Every racer inserts every key at once: concurrent inserts share log
/// entries, and a refused one (23505) must not take the others down with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_inserts_are_refused_one_by_one() {
    let server = start();
    let conn = server.conn_str("ciab");
    let admin = connect(&conn).await.unwrap();
    admin
        .batch_execute("CREATE TABLE race (k integer PRIMARY KEY, racer integer NOT NULL)")
        .await
        .unwrap();
    let mut clients = Vec::new();
    for _ in 0..RACERS {
        clients.push(connect(&conn).await.expect("a connection"));
    }
    let mut tasks = Vec::new();
    for (racer, client) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let insert = client
                .prepare("INSERT INTO race VALUES ($1, $2)")
                .await
                .unwrap();
            let mut won = Vec::new();
            for k in 0..RACED_KEYS {
                match client.execute(&insert, &[&k, &(racer as i32)]).await {
                    Ok(1) => won.push(k),
                    Ok(n) => panic!("INSERT of one row reported {n}"),
                    Err(e) => assert_eq!(
                        sqlstate(&e),
                        "23505",
                        "only duplicate keys are refused: {e}"
                    ),
                }
            }
            (racer as i32, won)
        }));
    }
    let mut winners = std::collections::BTreeMap::new();
    for task in tasks {
        let (racer, won) = task.await.unwrap();
        for k in won {
            assert!(winners.insert(k, racer).is_none(), "key {k} won twice");
        }
    }
    assert_eq!(
        winners.len(),
        RACED_KEYS as usize,
        "every key has one winner"
    );
    for row in admin.query("SELECT k, racer FROM race", &[]).await.unwrap() {
        let k: i32 = row.get(0);
        assert_eq!(winners.get(&k), Some(&row.get::<_, i32>(1)), "key {k}");
    }
}

/// A block's DDL commits onto the catalog it was planned on, or not at all:
/// after concurrent DDL in its database its COMMIT is refused with 40001 and
/// leaves nothing behind; run again, it commits. DDL in another database
/// does not stand in its way. A restart replays both from the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_with_ddl_is_refused_after_concurrent_ddl() {
    let mut server = start();
    let conn = server.conn_str("ciab");
    let block = connect(&conn).await.unwrap();
    let other = connect(&conn).await.unwrap();
    let script = "BEGIN;
        CREATE TABLE made_in_block (id integer PRIMARY KEY, v text);
        INSERT INTO made_in_block VALUES (1, 'a'), (2, 'b');";
    block.batch_execute(script).await.unwrap();
    other
        .batch_execute("CREATE TABLE made_meanwhile (id integer)")
        .await
        .unwrap();
    let err = block.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(sqlstate(&err), "40001", "{err}");
    let count = "SELECT count(*) FROM pg_class WHERE relname = 'made_in_block'";
    let row = other.query_one(count, &[]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 0, "a refused block leaves nothing");

    block.batch_execute(script).await.unwrap();
    block.batch_execute("COMMIT").await.unwrap();

    // DDL in another database meanwhile takes the object ids the block
    // numbered its table with: the commit renumbers, rows follow.
    other
        .batch_execute("CREATE DATABASE elsewhere")
        .await
        .unwrap();
    let elsewhere = connect(&server.conn_str("elsewhere")).await.unwrap();
    block
        .batch_execute(
            "BEGIN;
             CREATE TABLE shifted (id integer PRIMARY KEY);
             INSERT INTO shifted VALUES (7), (8);",
        )
        .await
        .unwrap();
    elsewhere
        .batch_execute("CREATE TABLE taken (id integer); INSERT INTO taken VALUES (9);")
        .await
        .unwrap();
    block.batch_execute("COMMIT").await.unwrap();
    let ids =
        |rows: Vec<tokio_postgres::Row>| -> Vec<i32> { rows.iter().map(|r| r.get(0)).collect() };
    let shifted = block
        .query("SELECT id FROM shifted ORDER BY id", &[])
        .await
        .unwrap();
    assert_eq!(ids(shifted), [7, 8]);
    let taken = elsewhere.query("SELECT id FROM taken", &[]).await.unwrap();
    assert_eq!(ids(taken), [9]);
    drop((block, other, elsewhere));
    server.kill9().unwrap();
    server.restart().unwrap();
    let client = connect(&conn).await.unwrap();
    let rows = client
        .query("SELECT id, v FROM made_in_block ORDER BY id", &[])
        .await
        .unwrap();
    let rows: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(rows, [(1, "a".to_string()), (2, "b".to_string())]);
    let shifted = client
        .query("SELECT id FROM shifted ORDER BY id", &[])
        .await
        .unwrap();
    assert_eq!(
        shifted.iter().map(|r| r.get(0)).collect::<Vec<i32>>(),
        [7, 8]
    );
}
