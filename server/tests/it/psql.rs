//! psql's catalog commands (`\d`, `\dt`, `\di`, ...) print against ciab
//! what they print against PostgreSQL 15 for the same objects
//! (`sql-tests/psql`, recorded from a real PostgreSQL by its capture.sh);
//! its session commands and `FETCH_COUNT` work.

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

/// Runs `sql` with psql as user ciab, `input` on its stdin (the rows of a
/// `COPY ... FROM STDIN`); what psql printed.
pub(crate) fn psql_with_input(addr: std::net::SocketAddr, sql: &str, input: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(PSQL)
        .args(["-X", "-h"])
        .arg(addr.ip().to_string())
        .args(["-p", &addr.port().to_string(), "-U", "ciab", "-d", "ciab"])
        .args(["-c", sql])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("psql runs");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    output_text(&child.wait_with_output().unwrap())
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

/// psql's session commands: `\conninfo`, `\x`, `\timing`, and `\copy` in
/// both directions through a client-side file.
#[test]
fn session_commands_work() {
    let server = start();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    let output = dir.path().join("out.csv");
    std::fs::write(&input, "1,one\n2,\"two, too\"\n3,\n").unwrap();
    let (input, output) = (input.to_str().unwrap(), output.to_str().unwrap());
    let copy_from = format!("\\copy kv from '{input}' with (format csv)");
    let copy_to = format!("\\copy (select * from kv order by k) to '{output}' with (format csv)");
    let out = psql(
        server.addr(),
        &[
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "\\conninfo",
            "-c",
            "CREATE TABLE kv (k integer PRIMARY KEY, v text)",
            "-c",
            &copy_from,
            "-c",
            &copy_to,
            "-c",
            "\\x on",
            "-c",
            "SELECT k, v FROM kv WHERE k = 2",
            "-c",
            "\\timing on",
            "-c",
            "SELECT count(*) FROM kv",
        ],
    );
    let port = server.addr().port();
    for expected in [
        format!(
            "You are connected to database \"ciab\" as user \"postgres\" on host \"127.0.0.1\" at port \"{port}\"."
        ),
        "COPY 3".to_string(),
        "Expanded display is on.".to_string(),
        "-[ RECORD 1 ]\nk | 2\nv | two, too".to_string(),
        "Timing is on.".to_string(),
        "Time: ".to_string(),
    ] {
        assert!(out.contains(&expected), "missing {expected:?} in:\n{out}");
    }
    assert_eq!(
        std::fs::read_to_string(output).unwrap(),
        "1,one\n2,\"two, too\"\n3,\n"
    );
}

/// `\set FETCH_COUNT n`: psql reads a result through a cursor (BEGIN,
/// `DECLARE _psql_cursor NO SCROLL CURSOR FOR ...`, `FETCH FORWARD n`,
/// `CLOSE`, COMMIT) and prints what PostgreSQL 15's psql printed for it.
#[test]
fn fetch_count_reads_through_a_cursor() {
    let server = start();
    let out = psql(
        server.addr(),
        &[
            "-v",
            "FETCH_COUNT=2",
            "-c",
            "SELECT n, repeat('x', n) AS xs FROM generate_series(1, 5) AS s(n)",
        ],
    );
    assert_eq!(
        out,
        " n | xs \n---+----\n 1 | x\n 2 | xx\n 3 | xxx\n 4 | xxxx\n 5 | xxxxx\n(5 rows)\n\n"
    );
}
