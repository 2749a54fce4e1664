//! The commands that ask a running node over the PostgreSQL wire, like any
//! client would: `ciab status`, the cluster at a glance as `ciab.nodes`
//! reports it, and `ciab node remove`, which calls `ciab_remove_node`.

use std::net::SocketAddr;

use anyhow::Context;

const COLUMNS: [&str; 7] = [
    "node",
    "role",
    "state",
    "pg_addr",
    "peer_addr",
    "applied",
    "lag",
];

async fn connect(pg_addr: SocketAddr) -> anyhow::Result<tokio_postgres::Client> {
    let config = format!(
        "host={} port={} user=ciab dbname=ciab application_name=ciab-admin",
        pg_addr.ip(),
        pg_addr.port()
    );
    let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to the node at {pg_addr}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// `ciab node remove ID`: the node leaves the cluster for good.
pub async fn remove_node(pg_addr: SocketAddr, id: &str) -> anyhow::Result<()> {
    let client = connect(pg_addr).await?;
    client
        .execute("SELECT ciab_remove_node($1)", &[&id])
        .await
        .with_context(|| format!("removing node {id}"))?;
    println!("node {id} removed from the cluster");
    Ok(())
}

pub async fn print(pg_addr: SocketAddr) -> anyhow::Result<()> {
    let client = connect(pg_addr).await?;
    let rows = client
        .query(
            "SELECT id, role, coalesce(raft_state, '?'), coalesce(pg_addr, '?'), \
             coalesce(peer_addr, '?'), \
             coalesce(applied_index::text, '?'), coalesce(lag::text, '?'), this_node \
             FROM ciab.nodes ORDER BY id",
            &[],
        )
        .await
        .context("reading ciab.nodes")?;
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let mut cells: Vec<String> = (0..COLUMNS.len()).map(|i| row.get(i)).collect();
            if row.get::<_, bool>(COLUMNS.len()) {
                cells[0].push_str(" (this node)");
            }
            cells
        })
        .collect();
    println!(
        "{} node{}, asked at {pg_addr}",
        table.len(),
        if table.len() == 1 { "" } else { "s" }
    );
    let widths: Vec<usize> = (0..COLUMNS.len())
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].len())
                .chain([COLUMNS[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(&COLUMNS);
    for row in &table {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    Ok(())
}
