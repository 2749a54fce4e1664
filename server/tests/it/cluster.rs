//! Several `ciab` processes on 127.0.0.x addresses forming one cluster with
//! `--join`: every node serves all SQL, writes go through the leader, a
//! killed leader is replaced while clients write and nothing acknowledged is
//! lost, a lone node refuses what it cannot do safely, a new node catches up
//! from a snapshot, and the whole cluster restarts with its data.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ciab_sql_tests::{TestServer, connect};

use crate::copy::copy_in;
use crate::{binary, joined_rows, rows, sqlstate};

/// How long the cluster may take to settle after a change (an election, a
/// node catching up).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

fn start_node(ip: &str, args: &[String]) -> TestServer {
    TestServer::start_with(binary(), ip, args).expect("ciab starts")
}

fn join_args(seed: &TestServer) -> Vec<String> {
    vec!["--join".into(), seed.peer_addr().to_string()]
}

/// Three nodes: the first starts the cluster, the others join it.
fn three_nodes() -> Vec<TestServer> {
    let first = start_node("127.0.0.1", &[]);
    let join = join_args(&first);
    let second = start_node("127.0.0.2", &join);
    let third = start_node("127.0.0.3", &join);
    vec![first, second, third]
}

/// Runs `sql` on `server` until it returns `expected` rows.
pub(crate) async fn eventually(server: &TestServer, sql: &str, expected: &[&str]) {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut last = String::new();
    while Instant::now() < deadline {
        match try_rows(server, sql).await {
            Ok(got) if got == expected => return,
            Ok(got) => last = format!("{got:?}"),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "{sql} on {} never gave {expected:?}; last: {last}\n{}",
        server.addr(),
        server.log()
    );
}

/// The rows of `sql` on a new connection to `server`, values joined by `|`.
pub(crate) async fn try_rows(server: &TestServer, sql: &str) -> anyhow::Result<Vec<String>> {
    let client = connect(&server.conn_str("ciab")).await?;
    Ok(joined_rows(client.simple_query(sql).await?))
}

/// The index of the node that leads, as the leader itself says.
pub(crate) async fn leader(servers: &[TestServer]) -> usize {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while Instant::now() < deadline {
        for (i, server) in servers.iter().enumerate() {
            let sql = "SELECT count(*) FROM ciab.nodes WHERE this_node AND raft_state = 'leader'";
            if try_rows(server, sql).await.is_ok_and(|r| r == ["1"]) {
                return i;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no node leads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_serve_all_sql_and_survive_losing_the_leader() {
    let mut servers = three_nodes();
    let voters = "SELECT count(*) FROM ciab.nodes WHERE role = 'voter' AND pg_addr IS NOT NULL";
    eventually(&servers[0], voters, &["3"]).await;

    // Any node takes DDL and writes; every node reads them at once.
    let second = connect(&servers[1].conn_str("ciab")).await.unwrap();
    second
        .batch_execute("CREATE TABLE kv (k bigint PRIMARY KEY, v text NOT NULL)")
        .await
        .unwrap();
    let third = connect(&servers[2].conn_str("ciab")).await.unwrap();
    third
        .batch_execute("INSERT INTO kv VALUES (1, 'one'); UPDATE kv SET v = 'uno' WHERE k = 1")
        .await
        .unwrap();
    let first = connect(&servers[0].conn_str("ciab")).await.unwrap();
    assert_eq!(rows(&first, "SELECT k, v FROM kv").await, ["1|uno"]);
    let e = second
        .batch_execute("INSERT INTO kv VALUES (1, 'again')")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "23505", "{e}");
    // A transaction block and COPY from a node that does not lead.
    third
        .batch_execute("BEGIN; INSERT INTO kv VALUES (2, 'two'); COMMIT")
        .await
        .unwrap();
    let copied = copy_in(&third, "COPY kv FROM STDIN", "3\tthree\n").await;
    assert_eq!(copied.unwrap(), 1);
    assert_eq!(rows(&second, "SELECT count(*) FROM kv").await, ["3"]);

    // Advisory locks are the cluster's: a session on one node waits for
    // what a session on another holds.
    assert_eq!(rows(&first, "SELECT pg_advisory_lock(42)").await, [""]);
    assert_eq!(rows(&third, "SELECT pg_try_advisory_lock(42)").await, ["f"]);
    let waiter = tokio::spawn(async move {
        let got = rows(&third, "SELECT pg_advisory_lock(42), 'got it'").await;
        (third, got)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "the lock is held on another node");
    assert_eq!(rows(&first, "SELECT pg_advisory_unlock(42)").await, ["t"]);
    let (third, got) = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter on another node wakes")
        .unwrap();
    assert_eq!(got, ["|got it"]);
    drop((first, second, third));

    // Writers on every node while the leader is killed, where a session
    // holds a lock.
    let leader_index = leader(&servers).await;
    let holder = connect(&servers[leader_index].conn_str("ciab"))
        .await
        .unwrap();
    rows(&holder, "SELECT pg_advisory_lock(43)").await;
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let next_key = Arc::new(std::sync::atomic::AtomicI64::new(100));
    let mut writers = Vec::new();
    for server in &servers {
        let conns: Vec<String> = servers.iter().map(|s| s.conn_str("ciab")).collect();
        let own = server.conn_str("ciab");
        let acked = acked.clone();
        let next_key = next_key.clone();
        writers.push(tokio::spawn(async move {
            // A client whose node died reconnects to another and goes on.
            let mut targets = std::iter::once(own).chain(conns.into_iter().cycle());
            let deadline = Instant::now() + Duration::from_secs(6);
            while Instant::now() < deadline {
                let Ok(client) = connect(&targets.next().unwrap()).await else {
                    continue;
                };
                while Instant::now() < deadline {
                    let k = next_key.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let sql = format!("INSERT INTO kv VALUES ({k}, 'w')");
                    match client.batch_execute(&sql).await {
                        Ok(()) => {
                            acked.lock().unwrap().insert(k);
                        }
                        Err(e) if e.is_closed() || e.as_db_error().is_none() => break,
                        // 57P03 (no leader yet) and 40003 (outcome unknown)
                        // while the cluster elects: try the next key.
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before_kill = acked.lock().unwrap().len();
    let killed_at = Instant::now();
    servers[leader_index].kill9().unwrap();
    // The next acknowledged write after the kill.
    let mut failover = None;
    while killed_at.elapsed() < Duration::from_secs(5) && failover.is_none() {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if acked.lock().unwrap().len() > before_kill + 3 {
            failover = Some(killed_at.elapsed());
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    let failover = failover.expect("writes go on within five seconds of killing the leader");
    eprintln!("writes resumed {failover:?} after the leader was killed");
    let acked: Vec<i64> = acked.lock().unwrap().iter().copied().collect();
    assert!(acked.len() > before_kill, "writes went on after the kill");

    // Every acknowledged write is on every surviving node.
    let survivor = &servers[(leader_index + 1) % 3];
    let client = connect(&survivor.conn_str("ciab")).await.unwrap();
    let present: BTreeSet<i64> = rows(&client, "SELECT k FROM kv WHERE k >= 100")
        .await
        .iter()
        .map(|k| k.parse().unwrap())
        .collect();
    let lost: Vec<_> = acked.iter().filter(|k| !present.contains(k)).collect();
    assert!(lost.is_empty(), "acknowledged and lost: {lost:?}");
    let count = rows(&client, "SELECT count(*) FROM kv").await;

    // The killed node's session still holds its lock, until the node
    // comes back (and catches up).
    drop(holder);
    eventually(survivor, "SELECT pg_try_advisory_lock(43)", &["f"]).await;
    servers[leader_index].restart().unwrap();
    let survivor = &servers[(leader_index + 1) % 3];
    eventually(survivor, "SELECT pg_try_advisory_lock(43)", &["t"]).await;
    let count: Vec<&str> = count.iter().map(String::as_str).collect();
    for server in &servers {
        eventually(server, "SELECT count(*) FROM kv", &count).await;
    }

    // All nodes stopped and started again: the cluster re-forms with its data.
    for server in &mut servers {
        server.stop().unwrap();
    }
    for server in &mut servers {
        server.restart().unwrap();
    }
    for server in &servers {
        eventually(server, "SELECT count(*) FROM kv", &count).await;
    }
}

/// Writes far larger than a log entry may be (a COPY of tens of megabytes,
/// an INSERT ... SELECT and an UPDATE as large) go through the log in
/// bounded entries: each replicates within a heartbeat interval, so the
/// leader keeps leading and every node gets every row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_larger_than_an_entry_replicate() {
    const ROWS: u64 = 200_000;
    let servers = three_nodes();
    let voters = "SELECT count(*) FROM ciab.nodes WHERE role = 'voter' AND pg_addr IS NOT NULL";
    eventually(&servers[0], voters, &["3"]).await;
    let leads = leader(&servers).await;
    let (one, other) = (&servers[(leads + 1) % 3], &servers[(leads + 2) % 3]);
    let one = connect(&one.conn_str("ciab")).await.unwrap();
    let other = connect(&other.conn_str("ciab")).await.unwrap();
    one.batch_execute("CREATE TABLE big (k bigint PRIMARY KEY, v text NOT NULL)")
        .await
        .unwrap();
    let padding = "x".repeat(100);
    let data: String = (0..ROWS).map(|k| format!("{k}\t{padding}\n")).collect();
    assert_eq!(
        copy_in(&one, "COPY big FROM STDIN", data).await.unwrap(),
        ROWS
    );
    let doubled = other
        .execute(
            &format!("INSERT INTO big SELECT k + {ROWS}, v FROM big"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(doubled, ROWS);
    let updated = one
        .execute("UPDATE big SET v = v || 'y' WHERE k % 2 = 0", &[])
        .await
        .unwrap();
    assert_eq!(updated, ROWS);
    let expected = format!("{}|{}|{}", 2 * ROWS, 2 * ROWS, ROWS);
    for server in &servers {
        let sql =
            "SELECT count(*), count(DISTINCT k), count(*) FILTER (WHERE v LIKE '%y') FROM big";
        eventually(server, sql, &[expected.as_str()]).await;
    }
}

/// An INSERT of VALUES on a node skips the read barrier, yet sees what
/// was committed before it began: a table just created on another node
/// right after a large write there (which this node may still be applying;
/// then the insert runs again after a barrier), a row with the same key
/// just deleted there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blind_inserts_see_what_was_committed_elsewhere() {
    let servers = three_nodes();
    let voters = "SELECT count(*) FROM ciab.nodes WHERE role = 'voter' AND pg_addr IS NOT NULL";
    eventually(&servers[0], voters, &["3"]).await;
    let leads = leader(&servers).await;
    let on_leader = connect(&servers[leads].conn_str("ciab")).await.unwrap();
    let elsewhere = connect(&servers[(leads + 1) % 3].conn_str("ciab"))
        .await
        .unwrap();
    on_leader
        .batch_execute(
            "CREATE TABLE big (k bigint, v text); \
             INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, 100000) g",
        )
        .await
        .unwrap();
    for i in 0..5 {
        // The other node applies this large write while the table is made.
        let table = format!("t{i}");
        on_leader
            .batch_execute(&format!(
                "INSERT INTO big SELECT k, v FROM big LIMIT 100000; \
                 CREATE TABLE {table} (k int PRIMARY KEY); INSERT INTO {table} VALUES (1)"
            ))
            .await
            .unwrap();
        elsewhere
            .batch_execute(&format!("INSERT INTO {table} VALUES (2)"))
            .await
            .unwrap();
        on_leader
            .batch_execute(&format!("DELETE FROM {table} WHERE k = 1"))
            .await
            .unwrap();
        elsewhere
            .batch_execute(&format!("INSERT INTO {table} VALUES (1)"))
            .await
            .unwrap();
        let e = elsewhere
            .batch_execute(&format!("INSERT INTO {table} VALUES (2)"))
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&e), "23505", "{e}");
    }
}

/// Five voters and a learner: a voter that stops answering is replaced by
/// the learner, so the cluster again survives two failures, and the failed
/// node comes back as a learner that catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_takes_the_place_of_a_failed_voter() {
    let first = start_node("127.0.0.1", &[]);
    let join = join_args(&first);
    let mut servers = vec![first];
    for i in 2..=6 {
        servers.push(start_node(&format!("127.0.0.{i}"), &join));
    }
    let roles = "SELECT count(*) FILTER (WHERE role = 'voter'), \
                 count(*) FILTER (WHERE role = 'learner') FROM ciab.nodes";
    eventually(&servers[0], roles, &["5|1"]).await;
    let leads = leader(&servers).await;
    let mut voters = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        let me = try_rows(server, "SELECT id, role FROM ciab.nodes WHERE this_node").await;
        let me = me.unwrap().remove(0);
        let (id, role) = me.split_once('|').unwrap();
        if role == "voter" && i != leads {
            voters.push((i, id.to_string()));
        }
    }
    let (failed, failed_id) = voters.pop().expect("voters besides the leader");
    servers[failed].kill9().unwrap();
    let role_of_failed = format!("SELECT role FROM ciab.nodes WHERE id = '{failed_id}'");
    eventually(&servers[leads], &role_of_failed, &["learner"]).await;
    eventually(&servers[leads], roles, &["5|1"]).await;

    let client = connect(&servers[leads].conn_str("ciab")).await.unwrap();
    client
        .batch_execute("CREATE TABLE after (k int); INSERT INTO after VALUES (1), (2)")
        .await
        .unwrap();
    servers[failed].restart().unwrap();
    eventually(&servers[failed], "SELECT count(*) FROM after", &["2"]).await;
    eventually(&servers[failed], &role_of_failed, &["learner"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_the_majority_refuses_writes_and_linearizable_reads() {
    let mut servers = three_nodes();
    eventually(&servers[0], "SELECT count(*) FROM ciab.nodes", &["3"]).await;
    let client = connect(&servers[2].conn_str("ciab")).await.unwrap();
    client
        .batch_execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    servers[0].kill9().unwrap();
    servers[1].kill9().unwrap();

    let e = client
        .batch_execute("INSERT INTO t VALUES (2)")
        .await
        .unwrap_err();
    assert!(
        ["57P03", "40003"].contains(&sqlstate(&e).as_str()),
        "a write without a majority: {e:?}"
    );
    let e = client.batch_execute("SELECT * FROM t").await.unwrap_err();
    assert_eq!(sqlstate(&e), "57P03", "a linearizable read: {e:?}");
    // The session survives, and may read its replica as it stands.
    client
        .batch_execute("SET read_consistency = local")
        .await
        .unwrap();
    assert_eq!(rows(&client, "SELECT x FROM t").await, ["1"]);
    let e = client
        .batch_execute("SET read_consistency = 'sometimes'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "22023", "{e:?}");

    // The majority returns: the node takes writes again.
    servers[0].restart().unwrap();
    servers[1].restart().unwrap();
    eventually(&servers[2], "SELECT count(*) FROM t", &["1"]).await;
    let client = connect(&servers[2].conn_str("ciab")).await.unwrap();
    client
        .batch_execute("INSERT INTO t VALUES (2)")
        .await
        .unwrap();
    assert_eq!(rows(&client, "SELECT count(*) FROM t").await, ["2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_catches_up_from_a_snapshot_of_the_table_files() {
    let mut first = start_node("127.0.0.1", &[]);
    let client = connect(&first.conn_str("ciab")).await.unwrap();
    client
        .batch_execute("CREATE TABLE t (x int)")
        .await
        .unwrap();
    // An object of several log commands, whose bytes the snapshot carries
    // as files of their own.
    client
        .batch_execute("SELECT object_put('bkt', 'k', CAST(repeat('ab', 1300000) AS bytea))")
        .await
        .unwrap();
    // More entries than the log keeps behind a snapshot, one per statement.
    for i in 0..300 {
        client
            .batch_execute(&format!("INSERT INTO t VALUES ({i})"))
            .await
            .unwrap();
    }
    drop(client);
    // A clean stop writes the tables to Parquet and purges the log.
    first.stop().unwrap();
    first.restart().unwrap();

    let second = start_node("127.0.0.2", &join_args(&first));
    eventually(&second, "SELECT count(*), sum(x) FROM t", &["300|44850"]).await;
    let files: Vec<_> = walk(&second.data_dir().join("tables"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    assert!(
        !files.is_empty(),
        "the new node holds the snapshot's Parquet files"
    );
    let object = "SELECT key, size, md5(object_read(bucket, key)) = etag FROM ciab.objects";
    eventually(&second, object, &["k|2600000|t"]).await;
    assert!(
        !walk(&second.data_dir().join("objects")).is_empty(),
        "the new node holds the snapshot's object files"
    );
    let client = connect(&second.conn_str("ciab")).await.unwrap();
    client
        .batch_execute("INSERT INTO t VALUES (300)")
        .await
        .unwrap();
    eventually(&first, "SELECT count(*) FROM t", &["301"]).await;
    // An object written through the node that does not lead.
    client
        .batch_execute("SELECT object_put('bkt', 'k2', CAST('from the second' AS bytea))")
        .await
        .unwrap();
    let read = "SELECT encode(object_read('bkt', 'k2'), 'hex')";
    eventually(&first, read, &["66726f6d20746865207365636f6e64"]).await;
}

/// The leader checks its own disk before it appends a write another node
/// forwarded: with less than `disk_reserve` free there, a write that adds
/// data fails with 53100 through any node, however much the node that took
/// it has free, and succeeds again once the leader has room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_short_of_disk_refuses_forwarded_writes() {
    let mut first = start_node("127.0.0.1", &[]);
    first.stop().unwrap();
    let Some(_tmpfs) = crate::limits::Tmpfs::over(&first.data_dir(), "64m") else {
        eprintln!("skipping: mounting a small disk for the leader needs root");
        return;
    };
    first.restart().unwrap();
    let second = start_node("127.0.0.2", &join_args(&first));
    let servers = [first, second];
    let voters = "SELECT count(*) FROM ciab.nodes WHERE role = 'voter' AND pg_addr IS NOT NULL";
    eventually(&servers[1], voters, &["2"]).await;
    assert_eq!(
        leader(&servers).await,
        0,
        "the node that started the cluster leads"
    );

    let follower = connect(&servers[1].conn_str("ciab")).await.unwrap();
    // More than the leader's 64 MB disk has, less than the follower's.
    rows(&follower, "ALTER SYSTEM SET disk_reserve = '128MB'").await;
    rows(&follower, "CREATE TABLE t (k int)").await;
    let e = follower
        .simple_query("INSERT INTO t VALUES (1)")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "53100", "{e}");
    let message = e.as_db_error().unwrap().message().to_string();
    assert!(message.contains("disk_reserve"), "{message}");

    rows(&follower, "ALTER SYSTEM SET disk_reserve = 0").await;
    rows(&follower, "INSERT INTO t VALUES (2)").await;
    assert_eq!(rows(&follower, "SELECT k FROM t").await, ["2"]);
}

/// Every member appends every write, so the leader also refuses writes that
/// add data while a follower's disk has less than `disk_reserve` free (the
/// follower tells it when asked, every second), and takes them again once
/// the follower has room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_short_of_disk_makes_the_leader_refuse_writes() {
    let first = start_node("127.0.0.1", &[]);
    let mut second = start_node("127.0.0.2", &join_args(&first));
    let voters = "SELECT count(*) FROM ciab.nodes WHERE role = 'voter' AND pg_addr IS NOT NULL";
    eventually(&first, voters, &["2"]).await;
    second.stop().unwrap();
    let Some(_tmpfs) = crate::limits::Tmpfs::over(&second.data_dir(), "64m") else {
        eprintln!("skipping: mounting a small disk for the follower needs root");
        return;
    };
    second.restart().unwrap();
    let servers = [first, second];
    eventually(&servers[1], voters, &["2"]).await;
    assert_eq!(leader(&servers).await, 0, "the first node still leads");

    let client = connect(&servers[0].conn_str("ciab")).await.unwrap();
    rows(&client, "CREATE TABLE t (k int)").await;
    // More than the follower's 64 MB disk has, less than the leader's.
    rows(&client, "ALTER SYSTEM SET disk_reserve = '128MB'").await;
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let refusal = loop {
        match client.simple_query("INSERT INTO t VALUES (1)").await {
            Err(e) => break e,
            Ok(_) => assert!(Instant::now() < deadline, "the leader never refused"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(sqlstate(&refusal), "53100", "{refusal}");
    let message = refusal.as_db_error().unwrap().message().to_string();
    assert!(
        message.starts_with("node ") && message.contains("disk_reserve"),
        "{message}"
    );
    assert_eq!(
        leader(&servers).await,
        0,
        "refused by the leader, for the follower"
    );
    let before = rows(&client, "SELECT count(*) FROM t").await;

    rows(&client, "ALTER SYSTEM SET disk_reserve = 0").await;
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while let Err(e) = client.simple_query("INSERT INTO t VALUES (2)").await {
        assert_eq!(sqlstate(&e), "53100", "{e}");
        assert!(
            Instant::now() < deadline,
            "writes were never taken again: {e}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let want = format!("{}", before[0].parse::<u64>().unwrap() + 1);
    eventually(&servers[1], "SELECT count(*) FROM t", &[want.as_str()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_the_join_token_is_refused() {
    let token = |t: &str| vec!["--join-token".to_string(), t.to_string()];
    let first = start_node("127.0.0.1", &token("right"));
    let mut args = join_args(&first);
    args.extend(token("wrong"));
    let intruder = start_node("127.0.0.2", &args);
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while !intruder.log().contains("the join token does not match") {
        assert!(Instant::now() < deadline, "{}", intruder.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = connect(&first.conn_str("ciab")).await.unwrap();
    assert_eq!(
        rows(&client, "SELECT count(*) FROM ciab.nodes").await,
        ["1"]
    );

    let mut args = join_args(&first);
    args.extend(token("right"));
    let member = start_node("127.0.0.3", &args);
    eventually(&member, "SELECT count(*) FROM ciab.nodes", &["2"]).await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let path = e.path();
            if path.is_dir() {
                walk(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_leader_hands_over_and_nodes_are_removed_with_sql_or_the_cli() {
    let mut servers = three_nodes();
    let voters = "SELECT count(*) FROM ciab.nodes WHERE role = 'voter' AND pg_addr IS NOT NULL";
    eventually(&servers[0], voters, &["3"]).await;
    let leader_index = leader(&servers).await;
    let follower = (leader_index + 1) % 3;
    let other = (leader_index + 2) % 3;
    let client = connect(&servers[follower].conn_str("ciab")).await.unwrap();
    client
        .batch_execute("CREATE TABLE t (x bigint)")
        .await
        .unwrap();
    let ids: Vec<String> = servers
        .iter()
        .map(|s| {
            let identity = std::fs::read_to_string(s.data_dir().join("node.json")).unwrap();
            identity.chars().filter(char::is_ascii_digit).collect()
        })
        .collect();
    let leader_id = &ids[leader_index];

    // A client writes through a follower while the leader stops cleanly:
    // the writes pause for the handover and none fails.
    let conn = servers[follower].conn_str("ciab");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let client = connect(&conn).await.unwrap();
            let mut written = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let sql = format!("INSERT INTO t VALUES ({written})");
                client.batch_execute(&sql).await?;
                written += 1;
            }
            Ok::<i64, tokio_postgres::Error>(written)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    servers[leader_index].stop().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer
        .await
        .unwrap()
        .expect("no write fails while the leader hands over");
    assert!(
        servers[leader_index]
            .log()
            .contains("handed leadership over"),
        "{}",
        servers[leader_index].log()
    );
    assert_eq!(
        rows(&client, "SELECT count(*) FROM t").await,
        [written.to_string()]
    );

    // The stopped node stays a member until it is removed, with SQL...
    assert_eq!(
        rows(&client, "SELECT count(*) FROM ciab.nodes").await,
        ["3"]
    );
    let removed = format!("SELECT ciab_remove_node('{leader_id}')");
    assert_eq!(rows(&client, &removed).await, ["t"]);
    assert_eq!(
        rows(&client, "SELECT count(*) FROM ciab.nodes").await,
        ["2"]
    );
    let e = client.batch_execute(&removed).await.unwrap_err();
    assert_eq!(sqlstate(&e), "42704", "{e:?}");
    let e = client
        .batch_execute("SELECT ciab_remove_node('x1')")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "22P02", "{e:?}");

    // ...or with the command line, through any node; here the leader is
    // removed, which must hand its last write (the departure) to the next
    // leader. A removed node's sessions hold no advisory locks, though they
    // are still connected.
    let removed = leader(&servers).await;
    let survivor = if removed == follower { other } else { follower };
    let on_removed = connect(&servers[removed].conn_str("ciab")).await.unwrap();
    assert_eq!(
        rows(&on_removed, "SELECT pg_try_advisory_lock(8)").await,
        ["t"]
    );
    let client = connect(&servers[survivor].conn_str("ciab")).await.unwrap();
    assert_eq!(rows(&client, "SELECT pg_try_advisory_lock(8)").await, ["f"]);
    let out = std::process::Command::new(binary())
        .args(["node", "remove", &ids[removed], "--pg-addr"])
        .arg(servers[survivor].addr().to_string())
        .output()
        .unwrap();
    let text = crate::output_text(&out);
    assert!(out.status.success(), "{text}");
    eventually(
        &servers[survivor],
        "SELECT count(*) FROM ciab.nodes",
        &["1"],
    )
    .await;
    // The one node left leads alone and takes writes.
    let client = connect(&servers[survivor].conn_str("ciab")).await.unwrap();
    assert_eq!(rows(&client, "SELECT pg_try_advisory_lock(8)").await, ["t"]);
    drop(on_removed);
    client
        .batch_execute("INSERT INTO t VALUES (-1)")
        .await
        .unwrap();
    let e = client
        .batch_execute(&format!("SELECT ciab_remove_node('{}')", ids[survivor]))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "0A000", "the last voter stays: {e:?}");
}
