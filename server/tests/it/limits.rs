//! Limits a node keeps for itself: `max_connections` (53300 beyond it), the
//! idle timeouts that end forgotten sessions (57P05 outside a transaction
//! block, 25P03 inside one, whose writes are then rolled back), and the free
//! space it keeps on its disk (53100 below `disk_reserve`); and a result
//! far larger than memory streams out without being held.

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

/// Rows of the large result; `CIAB_STREAM_ROWS` sets another count.
const STREAM_ROWS_DEFAULT: u64 = 50_000_000;
/// What the server may grow by while it streams them: a small part of
/// the 400 MB of bigints it sends.
const STREAM_RSS_GROWTH_BYTES_MAX: u64 = 128 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_result_streams_in_bounded_memory() {
    use futures::TryStreamExt;
    let rows_wanted: u64 = std::env::var("CIAB_STREAM_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(STREAM_ROWS_DEFAULT);
    let server = start();
    let pid = server.pid().expect("the server runs");
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    let before = crate::rss_bytes(pid);
    let sql = format!("SELECT g FROM generate_series(1, {rows_wanted}) AS s(g)");
    let stream = client
        .query_raw(sql.as_str(), std::iter::empty::<i64>())
        .await
        .unwrap();
    futures::pin_mut!(stream);
    let (mut count, mut sum, mut peak) = (0u64, 0u64, before);
    while let Some(row) = stream.try_next().await.unwrap() {
        let g: i64 = row.get(0);
        count += 1;
        sum += g as u64;
        if count % 1_000_000 == 0 {
            peak = peak.max(crate::rss_bytes(pid));
        }
    }
    assert_eq!(count, rows_wanted);
    assert_eq!(sum, rows_wanted * (rows_wanted + 1) / 2);
    let growth = peak.saturating_sub(before);
    println!("{rows_wanted} rows streamed; server RSS {before} -> peak {peak} bytes");
    assert!(
        growth < STREAM_RSS_GROWTH_BYTES_MAX,
        "the server grew by {growth} bytes while it streamed {rows_wanted} rows"
    );
    assert_eq!(rows(&client, "SELECT 1").await, ["1"]);
}

/// Free space on the disk of `dir`, in bytes, as `stat -f` reads it.
fn free_bytes(dir: &std::path::Path) -> u64 {
    let out = std::process::Command::new("stat")
        .args(["-f", "-c", "%a %S"])
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().unwrap());
    fields.next().unwrap() * fields.next().unwrap()
}

/// A tmpfs mounted over a directory, its contents carried over, until
/// dropped.
pub(crate) struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts one of `size` over `dir`, or None when not root (only root
    /// mounts).
    pub(crate) fn over(dir: &std::path::Path, size: &str) -> Option<Tmpfs> {
        let uid = std::process::Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return None;
        }
        let aside = tempfile::tempdir().unwrap();
        let run = |program: &str, args: &[&std::ffi::OsStr]| {
            let status = std::process::Command::new(program)
                .args(args)
                .status()
                .unwrap();
            assert!(status.success(), "{program} {args:?}");
        };
        let from = dir.join(".");
        run(
            "cp",
            &["-a".as_ref(), from.as_os_str(), aside.path().as_os_str()],
        );
        let options = format!("size={size}");
        run(
            "mount",
            &[
                "-t".as_ref(),
                "tmpfs".as_ref(),
                "-o".as_ref(),
                options.as_ref(),
                "tmpfs".as_ref(),
                dir.as_os_str(),
            ],
        );
        let back = aside.path().join(".");
        run("cp", &["-a".as_ref(), back.as_os_str(), dir.as_os_str()]);
        Some(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: the server may still hold files there.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Below `disk_reserve` of free space, a write that adds data (INSERT,
/// COPY, an object) fails with 53100 and does nothing, while reads and
/// DELETE go on; once space returns, writes succeed again, and nothing
/// acknowledged was lost. First by a reserve larger than any disk; then,
/// as root, on a real 64 MB tmpfs filled up by another file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_that_add_data_until_space_returns() {
    let mut server = start();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE t (k int PRIMARY KEY, v text); \
             INSERT INTO t SELECT x, repeat('v', 100) FROM generate_series(1, 1000) AS s(x)",
        )
        .await
        .unwrap();
    let disk_full = |e: tokio_postgres::Error| {
        assert_eq!(sqlstate(&e), "53100", "{e}");
        let message = e.as_db_error().unwrap().message().to_string();
        assert!(message.contains("disk_reserve"), "{message}");
    };

    // The setting: ALTER SYSTEM only, checked.
    let e = client
        .simple_query("ALTER SYSTEM SET disk_reserve = 'lots'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "22023", "{e}");
    let e = client
        .simple_query("SET disk_reserve = '1GB'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "55P02", "{e}");
    assert_eq!(rows(&client, "SHOW disk_reserve").await, ["256MB"]);

    rows(&client, "ALTER SYSTEM SET disk_reserve = '1000000TB'").await;
    disk_full(
        client
            .simple_query("INSERT INTO t VALUES (1001, 'x')")
            .await
            .unwrap_err(),
    );
    rows(&client, "DELETE FROM t WHERE k = 1000").await;
    rows(&client, "ALTER SYSTEM RESET disk_reserve").await;
    rows(&client, "INSERT INTO t VALUES (1001, 'x')").await;
    assert_eq!(rows(&client, "SELECT count(*) FROM t").await, ["1000"]);

    // A real disk, filled by a file beside the data.
    server.stop().unwrap();
    let Some(tmpfs) = Tmpfs::over(&server.data_dir(), "64m") else {
        eprintln!("skipping the tmpfs half: mounting needs root");
        return;
    };
    server.restart().unwrap();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    rows(&client, "ALTER SYSTEM SET disk_reserve = '16MB'").await;
    let ballast = server.data_dir().join("ballast");
    let fill = free_bytes(&server.data_dir()) - 8 * 1024 * 1024;
    std::fs::write(&ballast, vec![7u8; fill as usize]).unwrap();

    disk_full(
        client
            .simple_query("INSERT INTO t VALUES (1002, 'y')")
            .await
            .unwrap_err(),
    );
    // A COPY is refused part way, and none of it lands.
    let sink = client.copy_in("COPY t FROM STDIN").await.unwrap();
    let lines: String = (2000..2100).map(|k| format!("{k}\tz\n")).collect();
    let copied = async {
        use futures::SinkExt;
        let mut sink = std::pin::pin!(sink);
        sink.send(bytes::Bytes::from(lines)).await?;
        sink.finish().await
    }
    .await;
    disk_full(copied.unwrap_err());
    disk_full(
        client
            .simple_query("SELECT object_put('full', 'k', 'bytes'::bytea)")
            .await
            .unwrap_err(),
    );
    // Reads and deletes go on.
    assert_eq!(rows(&client, "SELECT count(*) FROM t").await, ["1000"]);
    rows(&client, "DELETE FROM t WHERE k <= 10").await;

    std::fs::remove_file(&ballast).unwrap();
    rows(&client, "INSERT INTO t VALUES (1002, 'y')").await;
    server.stop().unwrap();
    server.restart().unwrap();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    assert_eq!(
        rows(&client, "SELECT count(*), min(k), max(k) FROM t").await,
        ["991|11|1002"]
    );
    drop(client);
    server.stop().unwrap();
    drop(tmpfs);
}
