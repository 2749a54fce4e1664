//! A restart with more data than the memtable holds: some rows come back
//! from Parquet files written by a flush, the rest from replaying the log.

use std::time::Instant;

use ciab_sql_tests::connect;

use crate::start;

/// Enough row bytes to pass the store's flush threshold (64 MiB) at least once.
const BULK_ROWS: i64 = 800_000;
const TAIL_ROWS: i64 = 500;
/// Rows updated one at a time, spread over the table.
const UPDATED_ROWS: i64 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_replays_flushed_files_and_the_log() {
    let mut server = start();
    let conn = server.conn_str("ciab");
    let client = connect(&conn).await.unwrap();
    client
        .batch_execute("CREATE TABLE big (id bigint PRIMARY KEY, payload text NOT NULL)")
        .await
        .unwrap();
    let started = Instant::now();
    for chunk in 0..4 {
        let (from, to) = (chunk * BULK_ROWS / 4 + 1, (chunk + 1) * BULK_ROWS / 4);
        client
            .batch_execute(&format!(
                "INSERT INTO big SELECT v, repeat('x', 100) || v FROM generate_series({from}, {to}) AS g(v)"
            ))
            .await
            .unwrap();
    }
    println!("loaded {BULK_ROWS} rows in {:?}", started.elapsed());
    for id in BULK_ROWS + 1..=BULK_ROWS + TAIL_ROWS {
        client
            .execute(
                "INSERT INTO big VALUES ($1, $2)",
                &[&id, &format!("tail {id}")],
            )
            .await
            .unwrap();
    }
    client
        .batch_execute("DELETE FROM big WHERE id % 1000 = 0")
        .await
        .unwrap();
    // Single-row updates leave the rest of their segments as slices of
    // them; a flush (VACUUM) in the middle merges those into files, and
    // the later ones live in the log only.
    let updated: Vec<i64> = (0..UPDATED_ROWS)
        .map(|k| 7 + k * 3989)
        .filter(|id| id % 1000 != 0)
        .collect();
    for (i, id) in updated.iter().enumerate() {
        if i == updated.len() / 2 {
            client.batch_execute("VACUUM big").await.unwrap();
        }
        client
            .execute(
                "UPDATE big SET payload = $2 WHERE id = $1",
                &[id, &format!("updated {id}")],
            )
            .await
            .unwrap();
    }
    drop(client);

    let files = std::fs::read_dir(server.data_dir().join("tables"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(files > 0, "a flush wrote table files before the crash");

    server.kill9().unwrap();
    let took = server.restart().unwrap();
    println!("restart took {took:?}");

    let client = connect(&conn).await.unwrap();
    let row = client
        .query_one(
            // sum(bigint) is numeric, as in PostgreSQL.
            "SELECT count(*), sum(id)::bigint, count(DISTINCT payload) FROM big",
            &[],
        )
        .await
        .unwrap();
    let total = BULK_ROWS + TAIL_ROWS;
    let deleted = total / 1000;
    let expected_sum: i64 = total * (total + 1) / 2 - 1000 * deleted * (deleted + 1) / 2;
    assert_eq!(row.get::<_, i64>(0), total - deleted);
    assert_eq!(row.get::<_, i64>(1), expected_sum);
    assert_eq!(row.get::<_, i64>(2), total - deleted);
    let row = client
        .query_one(
            "SELECT count(*), min(id), max(id) FROM big WHERE payload LIKE 'updated %'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), updated.len() as i64);
    assert_eq!(row.get::<_, i64>(1), updated[0]);
    assert_eq!(row.get::<_, i64>(2), *updated.last().unwrap());
    // The primary key index came back too.
    let err = client
        .batch_execute("INSERT INTO big VALUES (1, 'again')")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("23505"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_table_file_is_reported_not_read() {
    let mut server = start();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE t (id bigint PRIMARY KEY, v text);
             INSERT INTO t SELECT g, 'value ' || g FROM generate_series(1, 1000) AS g(g)",
        )
        .await
        .unwrap();
    drop(client);
    // A clean stop flushes the table to Parquet.
    server.stop().unwrap();
    let table_dir = std::fs::read_dir(server.data_dir().join("tables"))
        .unwrap()
        .next()
        .expect("a table directory")
        .unwrap()
        .path();
    let file = std::fs::read_dir(table_dir)
        .unwrap()
        .next()
        .expect("a table file")
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();

    let err = server
        .restart()
        .expect_err("a node with a damaged file must not start");
    let message = format!("{err:#}");
    assert!(message.contains("checksum mismatch"), "{message}");
}

/// A serial column never hands out a value twice, whatever a crash forgets
/// of the block of values its node drew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_values_survive_a_crash() {
    let mut server = start();
    let conn = server.conn_str("ciab");
    let client = connect(&conn).await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE ticket (id serial PRIMARY KEY, v text);
             INSERT INTO ticket (v) VALUES ('a'), ('b'), ('c');",
        )
        .await
        .unwrap();
    let drawn: i64 = client
        .query_one("SELECT nextval('ticket_id_seq')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(drawn, 4);
    drop(client);
    server.kill9().unwrap();
    server.restart().unwrap();
    let client = connect(&conn).await.unwrap();
    let id: i32 = client
        .query_one("INSERT INTO ticket (v) VALUES ('d') RETURNING id", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        i64::from(id) > drawn,
        "{id} was handed out before the crash"
    );
    let count: i64 = client
        .query_one("SELECT count(*) FROM ticket", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 4);
}

/// Sessions that VACUUM at once: Raft builds one snapshot at a time and
/// ignores a request while one is being built, so each VACUUM must still
/// wait for a snapshot that holds its own session's writes, not fail
/// after a timeout. The rows survive a `kill -9`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_vacuums_each_flush_their_writes() {
    const SESSIONS: i64 = 4;
    const ROUNDS: i64 = 6;
    let mut server = start();
    let conn = server.conn_str("ciab");
    let setup = connect(&conn).await.unwrap();
    setup
        .batch_execute(
            "CREATE TABLE flushed (session bigint, round bigint, PRIMARY KEY (session, round))",
        )
        .await
        .unwrap();
    let sessions: Vec<_> = (0..SESSIONS)
        .map(|session| {
            let conn = conn.clone();
            tokio::spawn(async move {
                let client = connect(&conn).await.unwrap();
                for round in 0..ROUNDS {
                    client
                        .execute("INSERT INTO flushed VALUES ($1, $2)", &[&session, &round])
                        .await
                        .unwrap();
                    client.batch_execute("VACUUM").await.unwrap();
                }
            })
        })
        .collect();
    for session in sessions {
        session.await.unwrap();
    }
    drop(setup);

    server.kill9().unwrap();
    server.restart().unwrap();
    let client = connect(&conn).await.unwrap();
    let count: i64 = client
        .query_one("SELECT count(*) FROM flushed", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, SESSIONS * ROUNDS);
}

/// An object file damaged on disk fails every read that meets the damaged
/// block with XX001, naming the checksum, instead of giving out wrong
/// bytes; reads of its other blocks, the session and the other objects go
/// on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_object_file_fails_its_read() {
    let server = start();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    // One string each: object writes are refused in a block, and a string
    // of several statements is one.
    for put in [
        // 1.5 MB: two blocks of the file's checksums.
        "SELECT object_put('bkt', 'damaged', decode(repeat('ab', 1500000), 'hex'))",
        "SELECT object_put('bkt', 'kept', 'fine'::bytea)",
    ] {
        client.batch_execute(put).await.unwrap();
    }
    // Writes the objects' bytes to files.
    client.batch_execute("VACUUM").await.unwrap();
    let bucket = server.data_dir().join("objects").join("bkt");
    let mut files: Vec<_> = std::fs::read_dir(&bucket)
        .unwrap()
        .map(|f| f.unwrap().path())
        .collect();
    files.sort();
    // The large object's file: the small one's bytes are far fewer.
    let file = files
        .iter()
        .max_by_key(|f| std::fs::metadata(f).unwrap().len())
        .expect("an object file");
    let mut bytes = std::fs::read(file).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(file, bytes).unwrap();

    // The whole object, and any part in the damaged first block, fail; a
    // part in the second block is checked by its own checksum and read.
    for read in [
        "SELECT length(object_read('bkt', 'damaged'))",
        "SELECT object_read('bkt', 'damaged', 999, 2)",
        "SELECT object_read('bkt', 'damaged', 1048570, 10)",
    ] {
        let e = client.simple_query(read).await.unwrap_err();
        assert_eq!(crate::sqlstate(&e), "XX001", "{read}: {e}");
        let message = e.as_db_error().unwrap().message().to_string();
        assert!(message.contains("checksum mismatch"), "{message}");
    }
    let part = client
        .query_one("SELECT object_read('bkt', 'damaged', 1048576, 3)", &[])
        .await
        .unwrap();
    assert_eq!(part.get::<_, Vec<u8>>(0), [0xab; 3]);
    let kept = client
        .query_one("SELECT object_read('bkt', 'kept')", &[])
        .await
        .unwrap();
    assert_eq!(kept.get::<_, Vec<u8>>(0), b"fine");
}

/// A second node started on a data directory another one is using is
/// refused and told the first one's pid; the first goes on serving, and
/// once it stops the directory opens again with everything in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_on_a_data_directory_in_use_is_refused() {
    let mut ciab = start();
    let client = connect(&ciab.conn_str("ciab")).await.expect("connect");
    client
        .batch_execute("CREATE TABLE t (a int); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let mut second = std::process::Command::new(crate::binary())
        .arg("start")
        .arg("--data-dir")
        .arg(ciab.data_dir())
        .args(["--pg-addr", "127.0.0.1:0", "--peer-addr", "127.0.0.1:0"])
        .args(["--http-addr", "127.0.0.1:0", "--s3-addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while second.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            second.kill().unwrap();
            panic!("a second node ran on the same data directory");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = second.wait_with_output().unwrap();
    let text = crate::output_text(&out);
    assert!(!out.status.success(), "{text}");
    let pid = ciab.pid().unwrap();
    assert!(
        text.contains(&format!("is in use by another ciab process (pid {pid})")),
        "{text}"
    );
    let rows = client.simple_query("SELECT a FROM t").await.unwrap();
    assert_eq!(crate::joined_rows(rows), ["1"]);
    drop(client);
    // The refused node left the directory as it was: the first starts on
    // it again.
    ciab.stop().unwrap();
    ciab.restart().unwrap();
    let client = connect(&ciab.conn_str("ciab")).await.expect("connect");
    let rows = client.simple_query("SELECT a FROM t").await.unwrap();
    assert_eq!(crate::joined_rows(rows), ["1"]);
}
