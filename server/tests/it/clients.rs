//! The drivers people use, each running its scenario against ciab
//! (`sql-tests/clients`): psycopg 3, psycopg2 and asyncpg.

use std::process::Command;

use crate::{output_text, repo_root, start};

/// The Python with the drivers of sql-tests/clients/requirements.txt, which
/// .ci/run installs there.
fn python() -> String {
    std::env::var("CIAB_CLIENTS_PYTHON")
        .unwrap_or_else(|_| "/var/tmp/ciab-clients-venv/bin/python".into())
}

#[test]
fn python_drivers() {
    let server = start();
    let script = repo_root().join("sql-tests/clients/python_drivers.py");
    let out = Command::new(python())
        .arg(script)
        .arg(server.addr().ip().to_string())
        .arg(server.addr().port().to_string())
        .output()
        .expect("the clients' Python runs (.ci/run installs it)");
    let text = output_text(&out);
    assert!(
        out.status.success() && text.trim_end().ends_with("ok"),
        "{text}"
    );
}
