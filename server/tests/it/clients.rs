//! The drivers people use, each running its scenario against ciab
//! (`sql-tests/clients`): psycopg 3, psycopg2, asyncpg, SQLAlchemy and
//! pandas; node-postgres; PostgreSQL's JDBC driver; sqlx. Each scenario also
//! passes against PostgreSQL 15 (run it with that server's host and port).
//! InfluxDB's Python client writes over ciab's HTTP write API.

use std::process::Command;

use crate::{output_text, repo_root, start};

/// The Python with the drivers of sql-tests/clients/requirements.txt, which
/// .ci/run installs there.
pub(crate) fn python() -> String {
    std::env::var("CIAB_CLIENTS_PYTHON")
        .unwrap_or_else(|_| "/var/tmp/ciab-clients-venv/bin/python".into())
}

/// Runs `command` with the server's host and port appended (and its HTTP
/// port, if `http`); it prints `ok` last when its scenario passed.
pub(crate) fn run_scenario(mut command: Command, http: bool) {
    let server = start();
    command
        .arg(server.addr().ip().to_string())
        .arg(server.addr().port().to_string());
    if http {
        command.arg(server.http_addr().port().to_string());
    }
    let out = command
        .output()
        .expect("the client's runtime runs (.ci/run installs it)");
    let text = output_text(&out);
    assert!(
        out.status.success() && text.trim_end().ends_with("ok"),
        "{text}"
    );
}

#[test]
fn python_drivers() {
    let mut command = Command::new(python());
    command.arg(repo_root().join("sql-tests/clients/python_drivers.py"));
    run_scenario(command, false);
}

#[test]
fn influxdb_client() {
    let mut command = Command::new(python());
    command.arg(repo_root().join("sql-tests/clients/influx_client.py"));
    run_scenario(command, true);
}

#[test]
fn node_postgres() {
    let modules = std::env::var("CIAB_CLIENTS_NODE_MODULES")
        .unwrap_or_else(|_| "/var/tmp/ciab-clients-node/node_modules".into());
    let mut command = Command::new("node");
    command
        .env("NODE_PATH", modules)
        .arg(repo_root().join("sql-tests/clients/node_pg.js"));
    run_scenario(command, false);
}

#[test]
fn jdbc() {
    let jar = std::env::var("CIAB_CLIENTS_JDBC_JAR")
        .unwrap_or_else(|_| "/usr/share/java/postgresql.jar".into());
    let mut command = Command::new("java");
    command
        .arg("-cp")
        .arg(jar)
        .arg(repo_root().join("sql-tests/clients/Jdbc.java"));
    run_scenario(command, false);
}

/// sqlx (sql-tests/clients/sqlx), which .ci/run builds on its own.
#[test]
fn sqlx() {
    let binary = std::env::var("CIAB_CLIENTS_SQLX")
        .unwrap_or_else(|_| "/var/tmp/ciab-clients-sqlx/debug/ciab-sqlx-scenario".into());
    run_scenario(Command::new(binary), false);
}
