//! Clusters on a LAN of network namespaces (`lan.rs`): nodes that find each
//! other with mDNS, and a register workload through a partition and a
//! SIGKILL whose history a linearizability checker (stateright's) verifies.
//! Skipped, with a message, where namespaces cannot be made (not root).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ciab_sql_tests::{TestServer, connect};
use stateright::semantics::register::{Register, RegisterOp, RegisterRet};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester};

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

/// One client's view of the register: operations with the moments (on a
/// shared counter) they were invoked and returned.
#[derive(Debug, Clone)]
struct Event {
    client: u64,
    at: u64,
    /// `Some(op)` at invocation, `None` at return.
    op: Option<RegisterOp<i64>>,
    ret: Option<RegisterRet<i64>>,
}

/// Feeds a recorded history to stateright's checker in the order it
/// happened. An operation refused (57P03, 40001) never happened and is left
/// out; one whose outcome is unknown (40003, a dropped connection) stays in
/// flight forever, and its client goes on under a new id.
fn linearizable(events: &[Event]) -> Result<bool, String> {
    let mut tester = LinearizabilityTester::new(Register(0i64));
    let mut events = events.to_vec();
    events.sort_by_key(|e| e.at);
    // An operation left in flight may take effect at any later point, and
    // the checker would try each. It need not for one that cannot matter:
    // a read, or a write whose (unique) value no read returned. Either way
    // the history is linearizable with it just when it is without it.
    let mut pending: std::collections::HashMap<u64, usize> = Default::default();
    for (i, e) in events.iter().enumerate() {
        match e.op {
            Some(_) => pending.insert(e.client, i),
            None => pending.remove(&e.client),
        };
    }
    let observed: std::collections::HashSet<i64> = events
        .iter()
        .filter_map(|e| match e.ret {
            Some(RegisterRet::ReadOk(v)) => Some(v),
            _ => None,
        })
        .collect();
    let dropped: std::collections::HashSet<usize> = pending
        .into_values()
        .filter(|&i| match &events[i].op {
            Some(RegisterOp::Write(v)) => !observed.contains(v),
            _ => true,
        })
        .collect();
    let events = events
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !dropped.contains(i))
        .map(|(_, e)| e);
    for e in events {
        match (e.op, e.ret) {
            (Some(op), None) => {
                tester.on_invoke(e.client, op)?;
            }
            (None, Some(ret)) => {
                tester.on_return(e.client, ret)?;
            }
            other => unreachable!("an event is an invocation or a return: {other:?}"),
        }
    }
    Ok(tester.is_consistent())
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
    Done(RegisterRet<i64>),
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
    assert_eq!(verdict, Ok(true), "the history is linearizable");
}

#[test]
fn the_checker_rejects_a_stale_read() {
    // Sanity check of how histories are fed: a read that returns the old
    // value after a write completed is not linearizable.
    let event = |client, at, op, ret| Event {
        client,
        at,
        op,
        ret,
    };
    let history = [
        event(0, 0, Some(RegisterOp::Write(5)), None),
        event(0, 1, None, Some(RegisterRet::WriteOk)),
        event(1, 2, Some(RegisterOp::Read), None),
        event(1, 3, None, Some(RegisterRet::ReadOk(0))),
    ];
    assert_eq!(linearizable(&history), Ok(false));
    let history = [
        event(0, 0, Some(RegisterOp::Write(5)), None),
        event(1, 1, Some(RegisterOp::Read), None),
        event(1, 2, None, Some(RegisterRet::ReadOk(0))),
        event(0, 3, None, Some(RegisterRet::WriteOk)),
    ];
    assert_eq!(linearizable(&history), Ok(true), "concurrent: either order");
}
