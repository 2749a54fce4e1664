//! The connection itself: output is buffered until the server waits for
//! the client (server/src/pg/socket.rs), so these check that every answer
//! still arrives: a FATAL error just before the socket closes, and the
//! answers to statements a client pipelines without waiting. And the
//! transaction status each ReadyForQuery carries.

use ciab_sql_tests::connect;

use crate::{rows, same_outcome, sqlstate, start};

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

/// A bare protocol client: what ReadyForQuery says is not visible through
/// the drivers' APIs.
struct Raw(std::net::TcpStream);

impl Raw {
    fn connect(addr: std::net::SocketAddr) -> Raw {
        let mut raw = Raw(std::net::TcpStream::connect(addr).unwrap());
        let mut body = 196_608_i32.to_be_bytes().to_vec();
        for part in ["user", "ciab", "database", "ciab", ""] {
            body.extend_from_slice(part.as_bytes());
            body.push(0);
        }
        let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        packet.extend_from_slice(&body);
        raw.write(&packet);
        raw.ready();
        raw
    }

    fn write(&mut self, bytes: &[u8]) {
        std::io::Write::write_all(&mut self.0, bytes).unwrap();
    }

    fn message(&mut self, tag: u8, body: &[u8]) {
        let mut packet = vec![tag];
        packet.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        packet.extend_from_slice(body);
        self.write(&packet);
    }

    /// Reads up to the next ReadyForQuery; returns its status byte.
    fn ready(&mut self) -> char {
        use std::io::Read;
        loop {
            let mut header = [0u8; 5];
            self.0.read_exact(&mut header).unwrap();
            let len = i32::from_be_bytes(header[1..5].try_into().unwrap()) as usize;
            let mut body = vec![0u8; len - 4];
            self.0.read_exact(&mut body).unwrap();
            if header[0] == b'Z' {
                return body[0] as char;
            }
        }
    }

    /// A simple-protocol query; the transaction status after it.
    fn query(&mut self, sql: &str) -> char {
        let mut body = sql.as_bytes().to_vec();
        body.push(0);
        self.message(b'Q', &body);
        self.ready()
    }

    /// Parse, Bind, Execute and Sync of one unnamed statement.
    fn extended(&mut self, sql: &str) -> char {
        let mut parse = vec![0];
        parse.extend_from_slice(sql.as_bytes());
        parse.extend_from_slice(&[0, 0, 0]);
        self.message(b'P', &parse);
        self.message(b'B', &[0, 0, 0, 0, 0, 0, 0, 0]);
        self.message(b'E', &[0, 0, 0, 0, 0]);
        self.message(b'S', &[]);
        self.ready()
    }
}

/// ReadyForQuery reports the session's own status: idle, in a block, or in
/// a failed block, including a failed block that ROLLBACK TO SAVEPOINT made
/// usable again, over both protocols.
#[test]
fn ready_for_query_reports_the_transaction_status() {
    let server = start();
    let mut raw = Raw::connect(server.addr());
    assert_eq!(raw.query("SELECT 1"), 'I');
    assert_eq!(raw.query("BEGIN"), 'T');
    assert_eq!(raw.query("SELECT 1/0"), 'E');
    assert_eq!(raw.query("SAVEPOINT s"), 'E');
    assert_eq!(raw.query("ROLLBACK"), 'I');
    assert_eq!(raw.query("BEGIN; SAVEPOINT s; SELECT 1/0"), 'E');
    assert_eq!(raw.query("ROLLBACK TO s"), 'T');
    assert_eq!(raw.query("SELECT 1"), 'T');
    assert_eq!(raw.query("COMMIT"), 'I');
    // Several statements in one string are an implicit block, which an
    // error ends, unless a BEGIN in the string made it a real one.
    assert_eq!(raw.query("SELECT 1; SELECT 1/0"), 'I');
    assert_eq!(raw.query("SELECT 1; BEGIN; SELECT 1/0"), 'E');
    assert_eq!(raw.query("ROLLBACK"), 'I');
    assert_eq!(raw.query("SELECT 1; BEGIN; SELECT 2"), 'T');
    assert_eq!(raw.query("COMMIT; SELECT 1"), 'I');

    assert_eq!(raw.extended("BEGIN"), 'T');
    assert_eq!(raw.extended("SAVEPOINT s"), 'T');
    assert_eq!(raw.extended("SELECT 1/0"), 'E');
    // A statement that fails to parse aborts the block too.
    assert_eq!(raw.extended("ROLLBACK TO s"), 'T');
    assert_eq!(raw.extended("SELEC 1"), 'E');
    assert_eq!(raw.extended("ROLLBACK TO SAVEPOINT s"), 'T');
    assert_eq!(raw.extended("COMMIT"), 'I');
}

/// A query string of several statements runs as one implicit transaction
/// block, as in PostgreSQL: an error anywhere in it, also in rows already
/// sent, undoes all of it; COMMIT and ROLLBACK in it end the block early,
/// BEGIN in it makes the block outlive the string. Each string runs on
/// PostgreSQL and ciab, and the tables must agree after every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_statements_in_one_string_stand_or_fall_together() {
    let (postgres, server, pg, ciab) = crate::postgres_and_ciab().await;
    let strings = [
        "CREATE TABLE it (a integer)",
        "INSERT INTO it VALUES (1); SELECT 1/0",
        "INSERT INTO it VALUES (2); COMMIT; INSERT INTO it VALUES (3); SELECT 1/0",
        "INSERT INTO it VALUES (4); ROLLBACK; INSERT INTO it VALUES (5)",
        "SAVEPOINT s; INSERT INTO it VALUES (6)",
        "INSERT INTO it VALUES (7); RELEASE s",
        "INSERT INTO it VALUES (8); BEGIN; INSERT INTO it VALUES (9); SELECT 1/0",
        "SELECT 1",
        "ROLLBACK",
        "INSERT INTO it VALUES (10); BEGIN; INSERT INTO it VALUES (11); COMMIT; SELECT 1/0",
        "BEGIN; INSERT INTO it VALUES (12)",
        "INSERT INTO it VALUES (13); COMMIT",
        "SET statement_timeout = '5s'; SELECT 1/0",
        "SHOW statement_timeout",
        "CREATE TABLE it2 (a integer); INSERT INTO it2 VALUES (1); INSERT INTO it2 VALUES ('x')",
        "SELECT count(*) FROM it2",
        "INSERT INTO it VALUES (14); VACUUM it",
        // The error comes in the middle of rows already sent.
        "INSERT INTO it VALUES (15); SELECT a / (a - 15) FROM it ORDER BY a",
        "INSERT INTO it VALUES (16); UPDATE it SET a = a + 100 WHERE a = 16; SELECT a FROM it ORDER BY a",
        "CREATE TABLE it3 (a integer); INSERT INTO it3 VALUES (1); SELECT a FROM it3",
    ];
    for sql in strings {
        same_outcome(&pg, &ciab, sql, sql).await;
        for check in [
            "SELECT a FROM it ORDER BY a",
            "SELECT table_name FROM information_schema.tables \
             WHERE table_name LIKE 'it_' ORDER BY 1",
        ] {
            same_outcome(&pg, &ciab, check, check).await;
        }
    }
    // COPY FROM STDIN ends its string, which commits once the rows are in;
    // an error in them undoes the whole string.
    for (sql, rows) in [
        ("INSERT INTO it VALUES (20); COPY it FROM STDIN", "21\n22\n"),
        ("INSERT INTO it VALUES (30); COPY it FROM STDIN", "31\nx\n"),
    ] {
        for addr in [postgres.addr(), server.addr()] {
            crate::psql::psql_with_input(addr, sql, rows);
        }
        let check = "SELECT a FROM it ORDER BY a";
        same_outcome(&pg, &ciab, check, check).await;
    }
    let copied = crate::rows(&ciab, "SELECT count(*) FROM it WHERE a BETWEEN 20 AND 39").await;
    assert_eq!(copied, ["3"]);
}

/// DEALLOCATE forgets named statements, one or all, over either protocol
/// (psycopg sends `DEALLOCATE ALL` as an extended-protocol query).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deallocate_forgets_prepared_statements() {
    let server = start();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    let two = client.prepare("SELECT 2").await.unwrap();
    assert_eq!(
        client.query_one(&two, &[]).await.unwrap().get::<_, i32>(0),
        2
    );
    let err = client.simple_query("DEALLOCATE nope").await.unwrap_err();
    assert_eq!(sqlstate(&err), "26000", "{err}");
    // Through the extended protocol, as psycopg sends it.
    client.execute("DEALLOCATE ALL", &[]).await.unwrap();
    let err = client.query(&two, &[]).await.unwrap_err();
    assert_eq!(sqlstate(&err), "26000", "{err}");
    assert_eq!(
        client
            .query_one("SELECT 3", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        3
    );
}

/// DISCARD ALL, as connection pools send it between clients: it forgets
/// what the protocol prepared as DEALLOCATE ALL does (the session's part is
/// in sql-tests/differential/discard.slt), and refuses to run in a block,
/// which it aborts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discard_all_forgets_the_protocols_prepared_statements() {
    let server = start();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    let two = client.prepare("SELECT 2").await.unwrap();
    client.batch_execute("DISCARD ALL").await.unwrap();
    let err = client.query(&two, &[]).await.unwrap_err();
    assert_eq!(sqlstate(&err), "26000", "{err}");
    let two = client.prepare("SELECT 2").await.unwrap();
    client.execute("DISCARD ALL", &[]).await.unwrap();
    let err = client.query(&two, &[]).await.unwrap_err();
    assert_eq!(sqlstate(&err), "26000", "{err}");
    client.batch_execute("BEGIN").await.unwrap();
    let err = client.batch_execute("DISCARD ALL").await.unwrap_err();
    assert_eq!(sqlstate(&err), "25001", "{err}");
    let err = client.batch_execute("SELECT 1").await.unwrap_err();
    assert_eq!(sqlstate(&err), "25P02", "{err}");
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(rows(&client, "SELECT 4").await, ["4"]);
}

/// A panic is a bug, but it fails only its own statement: with XX000 and
/// its message, over either protocol, while the rows stream; the session
/// goes on (a transaction block is aborted and rolls back), and so do the
/// other sessions and the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_fails_only_its_own_statement() {
    let server = start();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    let other = connect(&server.conn_str("ciab")).await.unwrap();
    client
        .batch_execute("CREATE TABLE t (k int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let internal = |e: tokio_postgres::Error, message: &str| {
        assert_eq!(sqlstate(&e), "XX000", "{e}");
        let db = e.as_db_error().expect("an ErrorResponse");
        assert_eq!(db.message(), format!("internal error: {message}"));
    };

    // Simple protocol, the panic in the executor after rows have streamed.
    let e = client
        .simple_query(
            "SELECT x, CASE WHEN x = 50000 THEN ciab_force_panic('boom') END \
             FROM generate_series(1, 100000) AS s(x)",
        )
        .await
        .unwrap_err();
    internal(e, "boom");
    assert_eq!(rows(&client, "SELECT count(*) FROM t").await, ["1"]);
    // In DataFusion's worker tasks, one per partition, which re-raise it
    // where the plan is polled.
    let e = client
        .simple_query(
            "SELECT count(ciab_force_panic(CASE WHEN x > 0 THEN 'in a worker' END)) \
             FROM generate_series(1, 100000) AS s(x)",
        )
        .await
        .unwrap_err();
    internal(e, "in a worker");

    // Extended protocol.
    let e = client
        .query("SELECT ciab_force_panic($1)", &[&"bang"])
        .await
        .unwrap_err();
    internal(e, "bang");
    let one: i32 = client
        .query_one("SELECT k FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(one, 1);

    // In a transaction block: aborted, and its write rolled back.
    client
        .batch_execute("BEGIN; INSERT INTO t VALUES (2)")
        .await
        .unwrap();
    let e = client
        .simple_query("SELECT ciab_force_panic('in a block') FROM t")
        .await
        .unwrap_err();
    internal(e, "in a block");
    let e = client.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(sqlstate(&e), "25P02", "{e}");
    client.batch_execute("ROLLBACK").await.unwrap();

    // A write whose SELECT panics writes nothing.
    let e = client
        .simple_query("INSERT INTO t SELECT 3 WHERE ciab_force_panic('in a write') IS NULL")
        .await
        .unwrap_err();
    internal(e, "in a write");
    assert_eq!(rows(&client, "SELECT k FROM t").await, ["1"]);
    // NULL is no message: no panic.
    assert_eq!(
        rows(&client, "SELECT ciab_force_panic(NULL) IS NULL").await,
        ["t"]
    );

    // The other session, and new ones, never noticed.
    assert_eq!(rows(&other, "SELECT count(*) FROM t").await, ["1"]);
    let fresh = connect(&server.conn_str("ciab")).await.unwrap();
    assert_eq!(rows(&fresh, "SELECT 2").await, ["2"]);
}

/// A connection that is sent bytes no client would send. Answers are read
/// until the server closes it.
struct Hostile(std::net::TcpStream);

impl Hostile {
    fn connect(addr: std::net::SocketAddr) -> Hostile {
        let stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        Hostile(stream)
    }

    fn send(&mut self, bytes: &[u8]) -> &mut Self {
        std::io::Write::write_all(&mut self.0, bytes).unwrap();
        self
    }

    /// A StartupMessage for `parameters` (name, value, ...).
    fn startup(&mut self, parameters: &[&str]) -> &mut Self {
        let mut body = 196_608_i32.to_be_bytes().to_vec();
        for part in parameters.iter().chain([&""]) {
            body.extend_from_slice(part.as_bytes());
            body.push(0);
        }
        let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        packet.extend_from_slice(&body);
        self.send(&packet)
    }

    /// One byte, as the answer to SSLRequest and GSSENCRequest is.
    fn byte(&mut self) -> u8 {
        let mut byte = [0u8];
        std::io::Read::read_exact(&mut self.0, &mut byte).unwrap();
        byte[0]
    }

    /// Closes the sending half, as a client that goes away does, and
    /// reads what comes until the server closes too.
    fn hang_up(&mut self) -> Option<(String, String)> {
        self.0.shutdown(std::net::Shutdown::Write).unwrap();
        self.until_closed()
    }

    /// Reads messages until the server closes the connection; the SQLSTATE
    /// and severity of the last ErrorResponse, if one came.
    fn until_closed(&mut self) -> Option<(String, String)> {
        use std::io::Read;
        let mut all = Vec::new();
        // Ends at the server's close, or fails the test when it never comes.
        self.0.read_to_end(&mut all).unwrap();
        let mut last = None;
        let mut rest = &all[..];
        while rest.len() >= 5 {
            let len = i32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
            let (message, tail) = rest.split_at(1 + len);
            if message[0] == b'E' {
                let mut severity = String::new();
                let mut code = String::new();
                for field in message[5..].split(|b| *b == 0) {
                    match field.first() {
                        Some(b'S') => severity = String::from_utf8_lossy(&field[1..]).into(),
                        Some(b'C') => code = String::from_utf8_lossy(&field[1..]).into(),
                        _ => {}
                    }
                }
                last = Some((severity, code));
            }
            rest = tail;
        }
        last
    }
}

/// Bytes that are no PostgreSQL protocol end their own connection, with a
/// FATAL error where the protocol has room for one, and nothing else: a
/// session open beside them never notices, and the server takes new ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bytes_end_only_their_own_connection() {
    let server = start();
    let bystander = connect(&server.conn_str("ciab")).await.unwrap();
    bystander
        .batch_execute("CREATE TABLE kept (k int); INSERT INTO kept VALUES (1)")
        .await
        .unwrap();
    let addr = server.addr();
    let fatal = |code: &str| Some(("FATAL".to_string(), code.to_string()));
    let ssl_request = [0, 0, 0, 8, 4, 210, 22, 47];
    let gss_request = [0, 0, 0, 8, 4, 210, 22, 48];
    let session = ["user", "ciab", "database", "ciab"];
    let cases = tokio::task::spawn_blocking(move || {
        // Not a PostgreSQL client at all: its first bytes read as a
        // 1.1 GB startup packet.
        let http = Hostile::connect(addr)
            .send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .until_closed();
        assert_eq!(http, fatal("08P01"), "an HTTP request");

        // TLS and GSS encryption are refused with `N`, and the client
        // goes on in the clear.
        let mut plain = Hostile::connect(addr);
        assert_eq!(plain.send(&ssl_request).byte(), b'N');
        assert_eq!(plain.send(&gss_request).byte(), b'N');
        plain.startup(&session).send(&[b'X', 0, 0, 0, 4]);
        assert_eq!(plain.until_closed(), None, "a clean start and Terminate");

        let no_user = Hostile::connect(addr)
            .startup(&["database", "ciab"])
            .until_closed();
        assert_eq!(no_user, fatal("28000"), "a startup without a user");

        // After the startup: an unknown message type; a Query that claims
        // 2 GiB (refused at once, not awaited); a CopyData whose length
        // does not even cover itself (pgwire 0.42 panics on it); a length
        // below zero.
        for (what, bytes) in [
            ("an unknown message type", vec![b'!', 0, 0, 0, 4]),
            ("a 2 GiB Query", vec![b'Q', 0x7f, 0xff, 0xff, 0xff, b'S']),
            ("a 0-byte CopyData", vec![b'd', 0, 0, 0, 0, 0]),
            ("a negative length", vec![b'P', 0xff, 0xff, 0xff, 0xf0]),
        ] {
            let answer = Hostile::connect(addr)
                .startup(&session)
                .send(&bytes)
                .until_closed();
            assert_eq!(answer, fatal("08P01"), "{what}");
        }

        // A message cut off by the client's close ends just the session.
        let cut = Hostile::connect(addr)
            .startup(&session)
            .send(&[b'Q', 0, 0, 0, 100, b'S', b'E'])
            .hang_up();
        assert_eq!(cut, None, "a truncated message");
    });
    cases.await.unwrap();
    assert_eq!(rows(&bystander, "SELECT k FROM kept").await, ["1"]);
    let fresh = connect(&server.conn_str("ciab")).await.unwrap();
    assert_eq!(rows(&fresh, "SELECT count(*) FROM kept").await, ["1"]);
}
