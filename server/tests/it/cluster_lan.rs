//! Clusters on a LAN of network namespaces (`lan.rs`): nodes that find each
//! other with mDNS, and a register workload through a partition and a
//! SIGKILL whose history a linearizability checker verifies.
//! Skipped, with a message, where namespaces cannot be made (not root).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ciab_sql_tests::{TestServer, connect};

use crate::cluster::{eventually, leader, try_rows};
use crate::lan::Lan;
use crate::{binary, joined_rows, sqlstate};

const PG_PORT: u16 = 5433;
const PEER_PORT: u16 = 7433;
/// A register client's pause between operations.
const OPERATION_PAUSE: Duration = Duration::from_millis(20);

fn lan(hosts: usize) -> Option<Lan> {
    match Lan::new(hosts) {
        Ok(lan) => Some(lan),
        Err(why) => {
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// `ciab start` on host `host` of the LAN, on the standard ports.
fn start_on(lan: &Lan, host: usize, args: &[&str]) -> TestServer {
    let addr = |port| SocketAddr::new(lan.ip(host).parse().unwrap(), port);
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    TestServer::start_placed(
        binary(),
        &lan.wrapper(host),
        addr(PG_PORT),
        addr(PEER_PORT),
        &args,
    )
    .expect("ciab starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_find_each_other_with_mdns_and_form_one_cluster() {
    let Some(lan) = lan(4) else { return };
    let formed = ["--cluster", "lan-test", "--expect", "3"];
    let nodes: Vec<TestServer> = (1..=3).map(|h| start_on(&lan, h, &formed)).collect();
    let voters = "SELECT count(*) FROM ciab.nodes WHERE role = 'voter' AND pg_addr IS NOT NULL";
    for node in &nodes {
        eventually(node, voters, &["3"]).await;
    }
    try_rows(
        &nodes[0],
        "CREATE TABLE t (x int); INSERT INTO t VALUES (1)",
    )
    .await
    .unwrap();
    assert_eq!(try_rows(&nodes[2], "SELECT x FROM t").await.unwrap(), ["1"]);
    // A fourth node of the same cluster name, with no --expect, joins the
    // cluster it finds rather than starting its own.
    let fourth = start_on(&lan, 4, &["--cluster", "lan-test"]);
    eventually(&fourth, "SELECT x FROM t", &["1"]).await;
    eventually(&nodes[0], "SELECT count(*) FROM ciab.nodes", &["4"]).await;
}

/// An operation on the register: every write writes a value of its own.
#[derive(Debug, Clone, PartialEq)]
enum RegisterOp {
    Write(i64),
    Read,
}

#[derive(Debug, Clone, PartialEq)]
enum RegisterRet {
    WriteOk,
    ReadOk(i64),
}

/// One client's view of the register: operations with the moments (on a
/// shared counter) they were invoked and returned.
#[derive(Debug, Clone)]
struct Event {
    client: u64,
    at: u64,
    /// `Some(op)` at invocation, `None` at return.
    op: Option<RegisterOp>,
    ret: Option<RegisterRet>,
}

/// Whether a recorded history of the register (initially 0) is
/// linearizable. An operation refused (57P03, 40001) never happened and is
/// not in it; one whose outcome is unknown (40003, a dropped connection)
/// stays in flight forever, and its client goes on under a new id.
///
/// Every write writes a value of its own, so each read names the write it
/// saw, and Gibbons and Korach's zones decide the question exactly in
/// O(n log n) (stateright's checker searched the orders of overlapping
/// operations, and on a loaded machine once searched for half an hour).
/// A value's cluster is its write and the reads that returned it; its zone
/// runs from the first return among them to the last invocation. A zone
/// whose first return comes before its last invocation (a forward zone)
/// holds the moment the value was written and read over; the history is
/// linearizable just when no two forward zones overlap, no other zone lies
/// inside a forward one, and no read returns before its write was invoked.
fn linearizable(events: &[Event]) -> Result<(), String> {
    // Invocations matched with their returns; one never returned may take
    // effect at any moment after it was invoked.
    const NEVER: i128 = i128::MAX;
    let mut events = events.to_vec();
    events.sort_by_key(|e| e.at);
    let mut invoked: HashMap<u64, (i128, RegisterOp)> = HashMap::new();
    let mut done = Vec::new();
    for e in events {
        match (e.op, e.ret) {
            (Some(op), None) => {
                let earlier = invoked.insert(e.client, (i128::from(e.at), op));
                assert!(earlier.is_none(), "a client has one operation at a time");
            }
            (None, Some(ret)) => {
                let (at, op) = invoked
                    .remove(&e.client)
                    .expect("a return follows its call");
                let value = match (op, ret) {
                    (RegisterOp::Write(v), RegisterRet::WriteOk) => (v, true),
                    (RegisterOp::Read, RegisterRet::ReadOk(v)) => (v, false),
                    other => unreachable!("a return of another kind: {other:?}"),
                };
                done.push((at, i128::from(e.at), value));
            }
            other => unreachable!("an event is an invocation or a return: {other:?}"),
        }
    }
    for (at, op) in invoked.into_values() {
        // A read never answered constrains nothing.
        if let RegisterOp::Write(v) = op {
            done.push((at, NEVER, (v, true)));
        }
    }
    // Each value's cluster: its write's span, and its zone's ends.
    struct Cluster {
        write: Option<(i128, i128)>,
        first_return: i128,
        last_invocation: i128,
        first_read_return: i128,
    }
    let mut clusters: HashMap<i64, Cluster> = HashMap::new();
    // The initial value, as a write done before everything.
    clusters.insert(
        0,
        Cluster {
            write: Some((-1, -1)),
            first_return: -1,
            last_invocation: -1,
            first_read_return: NEVER,
        },
    );
    for (invoked, returned, (v, is_write)) in done {
        let c = clusters.entry(v).or_insert(Cluster {
            write: None,
            first_return: NEVER,
            last_invocation: i128::MIN,
            first_read_return: NEVER,
        });
        if is_write {
            if c.write.replace((invoked, returned)).is_some() {
                return Err(format!("the value {v} was written twice"));
            }
        } else {
            c.first_read_return = c.first_read_return.min(returned);
        }
        c.first_return = c.first_return.min(returned);
        c.last_invocation = c.last_invocation.max(invoked);
    }
    let mut forward = Vec::new();
    let mut backward = Vec::new();
    for (v, c) in &clusters {
        let Some((write_invoked, _)) = c.write else {
            return Err(format!("a read returned {v}, which nothing wrote"));
        };
        if c.first_read_return < write_invoked {
            return Err(format!("a read returned {v} before its write began"));
        }
        if c.first_return < c.last_invocation {
            forward.push((c.first_return, c.last_invocation, *v));
        } else {
            backward.push((c.last_invocation, c.first_return, *v));
        }
    }
    forward.sort();
    for pair in forward.windows(2) {
        let ((_, end, v), (start, _, w)) = (pair[0], pair[1]);
        if start < end {
            return Err(format!("{v} and {w} were each the value over one moment"));
        }
    }
    for (start, end, v) in backward {
        // The forward zone starting last before this one starts.
        let i = forward.partition_point(|&(s, _, _)| s < start);
        if let Some(&(_, f_end, w)) = i.checked_sub(1).map(|i| &forward[i])
            && end < f_end
        {
            return Err(format!("{v} came and went while {w} was the value"));
        }
    }
    Ok(())
}

#[derive(Default)]
struct History {
    events: Vec<Event>,
    /// Refused (57P03 while cut off, 40001): never happened.
    refused: u64,
    unknown: u64,
    completed: u64,
}

/// How an operation ended.
enum Outcome {
    Done(RegisterRet),
    /// Refused before anything was done (57P03, 40001).
    Refused,
    /// It may or may not have happened.
    Unknown {
        closed: bool,
    },
}

impl History {
    fn record(&mut self, invoked: Event, returned_at: u64, outcome: &Outcome) {
        match outcome {
            Outcome::Done(ret) => {
                let client = invoked.client;
                self.events.push(invoked);
                self.events.push(Event {
                    client,
                    at: returned_at,
                    op: None,
                    ret: Some(ret.clone()),
                });
                self.completed += 1;
            }
            Outcome::Refused => self.refused += 1,
            Outcome::Unknown { .. } => {
                self.events.push(invoked);
                self.unknown += 1;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_register_stays_linearizable_through_a_partition_and_a_crash() {
    let Some(lan) = lan(3) else { return };
    let formed = ["--cluster", "lin-test", "--expect", "3"];
    let mut nodes: Vec<TestServer> = (1..=3).map(|h| start_on(&lan, h, &formed)).collect();
    for node in &nodes {
        eventually(
            node,
            "SELECT count(*) FROM ciab.nodes WHERE pg_addr IS NOT NULL",
            &["3"],
        )
        .await;
    }
    try_rows(
        &nodes[0],
        "CREATE TABLE reg (k int PRIMARY KEY, v bigint NOT NULL); INSERT INTO reg VALUES (1, 0)",
    )
    .await
    .unwrap();

    let clock = Arc::new(AtomicU64::new(0));
    let history = Arc::new(Mutex::new(History::default()));
    let next_client = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    // A client per node, pausing between operations: enough concurrency
    // to matter, few enough overlapping operations for the checker's search.
    for (i, node) in nodes.iter().enumerate() {
        let conn = node.conn_str("ciab");
        let (clock, history, next_client, stop) = (
            clock.clone(),
            history.clone(),
            next_client.clone(),
            stop.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut client_id = next_client.fetch_add(1, Ordering::SeqCst);
            let mut n = 0i64;
            while !stop.load(Ordering::SeqCst) {
                let Ok(client) = connect(&conn).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                while !stop.load(Ordering::SeqCst) {
                    tokio::time::sleep(OPERATION_PAUSE).await;
                    n += 1;
                    // Unique values: client i's n-th operation.
                    let value = (i as i64 + 1) * 1_000_000 + n;
                    let op = if n % 2 == 0 {
                        RegisterOp::Write(value)
                    } else {
                        RegisterOp::Read
                    };
                    let invoked = Event {
                        client: client_id,
                        at: clock.fetch_add(1, Ordering::SeqCst),
                        op: Some(op.clone()),
                        ret: None,
                    };
                    let result = match op {
                        RegisterOp::Write(v) => client
                            .batch_execute(&format!("UPDATE reg SET v = {v} WHERE k = 1"))
                            .await
                            .map(|()| RegisterRet::WriteOk),
                        RegisterOp::Read => client
                            .simple_query("SELECT v FROM reg WHERE k = 1")
                            .await
                            .map(|m| RegisterRet::ReadOk(joined_rows(m)[0].parse().unwrap())),
                    };
                    let at = clock.fetch_add(1, Ordering::SeqCst);
                    let outcome = match result {
                        Ok(ret) => Outcome::Done(ret),
                        // Refused before anything was done.
                        Err(e) if ["57P03", "40001"].contains(&sqlstate(&e).as_str()) => {
                            Outcome::Refused
                        }
                        Err(e) => Outcome::Unknown {
                            closed: e.is_closed(),
                        },
                    };
                    history.lock().unwrap().record(invoked, at, &outcome);
                    match outcome {
                        Outcome::Done(_) => {}
                        Outcome::Refused => tokio::time::sleep(Duration::from_millis(50)).await,
                        Outcome::Unknown { closed } => {
                            // Its operation stays in flight forever.
                            client_id = next_client.fetch_add(1, Ordering::SeqCst);
                            if closed {
                                break;
                            }
                        }
                    }
                }
            }
        }));
    }

    // The leader is cut off from the others for a while, then heals.
    let cut = leader(&nodes).await + 1;
    tokio::time::sleep(Duration::from_secs(1)).await;
    lan.cut(cut);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = try_rows(&nodes[cut - 1], "INSERT INTO reg VALUES (2, 2)").await;
    let e = during.expect_err("a node without its majority refuses writes");
    let code = e
        .downcast_ref::<tokio_postgres::Error>()
        .map(sqlstate)
        .unwrap_or_default();
    assert!(["57P03", "40003"].contains(&code.as_str()), "{e:?}");
    lan.heal(cut);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Then the new leader is killed and comes back.
    let second = leader(&nodes).await + 1;
    nodes[second - 1].kill9().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    nodes[second - 1].restart().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }

    // Every node converges on the same value.
    let value = try_rows(&nodes[0], "SELECT v FROM reg WHERE k = 1")
        .await
        .unwrap();
    let value: Vec<&str> = value.iter().map(String::as_str).collect();
    for node in &nodes {
        eventually(node, "SELECT v FROM reg WHERE k = 1", &value).await;
    }
    let h = history.lock().unwrap();
    let checked = Instant::now();
    let verdict = linearizable(&h.events);
    eprintln!(
        "register history: {} completed, {} refused (57P03), {} with unknown outcome; \
         checked in {:?}",
        h.completed,
        h.refused,
        h.unknown,
        checked.elapsed()
    );
    assert!(h.completed > 50, "the workload ran");
    assert!(h.refused + h.unknown > 0, "the faults were felt");
    assert_eq!(verdict, Ok(()), "the history is linearizable");
}

#[test]
fn the_checker_tells_linearizable_histories_from_others() {
    use RegisterOp::{Read, Write};
    use RegisterRet::{ReadOk, WriteOk};
    let call = |client, at, op| Event {
        client,
        at,
        op: Some(op),
        ret: None,
    };
    let ret = |client, at, ret| Event {
        client,
        at,
        op: None,
        ret: Some(ret),
    };
    // A read that returns the old value after a write completed.
    let stale = [
        call(0, 0, Write(5)),
        ret(0, 1, WriteOk),
        call(1, 2, Read),
        ret(1, 3, ReadOk(0)),
    ];
    assert!(linearizable(&stale).is_err());
    // The same read overlapping the write: either order.
    let concurrent = [
        call(0, 0, Write(5)),
        call(1, 1, Read),
        ret(1, 2, ReadOk(0)),
        ret(0, 3, WriteOk),
    ];
    assert_eq!(linearizable(&concurrent), Ok(()));
    // Two overlapping writes, then reads: the same value twice (6 took
    // effect first, then 5), or one and then the other, which no order of
    // the writes gives.
    let two_writes = [
        call(0, 0, Write(5)),
        call(1, 1, Write(6)),
        ret(0, 2, WriteOk),
        ret(1, 3, WriteOk),
        call(2, 4, Read),
        ret(2, 5, ReadOk(5)),
        call(2, 6, Read),
    ];
    let order = [two_writes.as_slice(), &[ret(2, 7, ReadOk(5))]].concat();
    assert_eq!(linearizable(&order), Ok(()));
    let flip = [two_writes.as_slice(), &[ret(2, 7, ReadOk(6))]].concat();
    assert!(linearizable(&flip).is_err());
    // A write whose outcome is unknown may take effect later, once.
    let late = [
        call(0, 0, Write(5)),
        call(1, 1, Write(6)),
        ret(1, 2, WriteOk),
        call(2, 3, Read),
        ret(2, 4, ReadOk(6)),
        call(2, 5, Read),
        ret(2, 6, ReadOk(5)),
    ];
    assert_eq!(linearizable(&late), Ok(()));
    let late_then_gone = [late.as_slice(), &[call(2, 7, Read), ret(2, 8, ReadOk(6))]].concat();
    assert!(linearizable(&late_then_gone).is_err());
    // A value nobody wrote, and one read before it was written.
    let invented = [call(0, 0, Read), ret(0, 1, ReadOk(7))];
    assert!(linearizable(&invented).is_err());
    let early = [
        call(0, 0, Read),
        ret(0, 1, ReadOk(7)),
        call(1, 2, Write(7)),
        ret(1, 3, WriteOk),
    ];
    assert!(linearizable(&early).is_err());
}
