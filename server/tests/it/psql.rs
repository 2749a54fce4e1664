//! psql's catalog commands (`\d`, `\dt`, `\di`, ...) print against ciab
//! what they print against PostgreSQL 15 for the same objects
//! (`sql-tests/psql`, recorded from a real PostgreSQL by its capture.sh).

use std::process::Command;

use crate::{output_text, repo_root, start};

/// PostgreSQL 15's psql, whose catalog queries and layout the expected
/// output records (.ci/run installs it).
const PSQL: &str = "/usr/lib/postgresql/15/bin/psql";

/// Runs psql as the captured output was made: user postgres, no psqlrc.
fn psql(addr: std::net::SocketAddr, args: &[&str]) -> String {
    let out = Command::new(PSQL)
        .args(["-X", "-P", "pager=off", "-h"])
        .arg(addr.ip().to_string())
        .args([
            "-p",
            &addr.port().to_string(),
            "-U",
            "postgres",
            "-d",
            "ciab",
        ])
        .args(args)
        .output()
        .expect("psql runs");
    // The capture merged stderr into stdout, so errors compare too.
    output_text(&out)
}

#[test]
fn backslash_commands_print_what_postgresql_prints() {
    let server = start();
    let dir = repo_root().join("sql-tests/psql");
    let schema = dir.join("schema.sql");
    let setup = psql(
        server.addr(),
        &[
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-f",
            schema.to_str().unwrap(),
        ],
    );
    assert!(setup.is_empty(), "schema.sql failed: {setup}");

    let commands = std::fs::read_to_string(dir.join("commands.txt")).unwrap();
    let mut actual = String::new();
    for command in commands.lines() {
        actual.push_str(&format!("===== {command}\n"));
        if command == "\\l" {
            let out = psql(server.addr(), &["-A", "-c", command]);
            for line in out.lines() {
                if line.starts_with("Name|") || line.starts_with("ciab|") {
                    actual.push_str(line);
                    actual.push('\n');
                }
            }
        } else {
            actual.push_str(&psql(server.addr(), &["-c", command]));
        }
    }
    let expected = std::fs::read_to_string(dir.join("expected.out")).unwrap();
    if actual != expected {
        let diff = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .find(|(_, (e, a))| e != a)
            .map(|(i, (e, a))| format!("line {}:\n  PostgreSQL: {e}\n  ciab:       {a}", i + 1))
            .unwrap_or_else(|| "outputs differ in length".into());
        panic!(
            "psql output differs from PostgreSQL's; first difference at {diff}\n\nciab printed:\n{actual}"
        );
    }
}
