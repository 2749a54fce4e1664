//! `ciab.nodes` and `ciab status`: a single node is a one-voter Raft
//! cluster that it leads.

use std::process::Command;

use ciab_sql_tests::connect;

use crate::{binary, output_text, rows, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_one_node_leads_and_ciab_status_prints_it() {
    let server = start();
    let client = connect(&server.conn_str("ciab")).await.unwrap();
    client
        .batch_execute("CREATE TABLE t (x integer); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let identity = std::fs::read_to_string(server.data_dir().join("node.json")).unwrap();
    let id: String = identity.chars().filter(char::is_ascii_digit).collect();
    let addr = server.addr().to_string();
    assert_eq!(
        rows(
            &client,
            "SELECT id, pg_addr, role, raft_state, this_node, lag, applied_index > 1 \
             FROM ciab.nodes"
        )
        .await,
        [format!("{id}|{addr}|voter|leader|t|0|t")]
    );

    let out = Command::new(binary())
        .args(["status", "--pg-addr", &addr])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.starts_with(&format!("1 node, asked at {addr}\n")),
        "{text}"
    );
    let row = text.lines().nth(2).unwrap_or_default();
    for part in [&format!("{id} (this node)"), "voter", "leader", &addr] {
        assert!(
            row.contains(part),
            "{part} missing from {row:?} in:\n{text}"
        );
    }

    // No node there: a clear error and a failing exit status.
    drop(server);
    let out = Command::new(binary())
        .args(["status", "--pg-addr", &addr])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!("connecting to the node at {addr}")),
        "{text}"
    );
}
