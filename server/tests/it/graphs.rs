//! The graph functions against networkx on the same random graphs
//! (`sql-tests/graphs/networkx_diff.py`), and GRAPH_TABLE against walks
//! counted in Python (`sql-tests/graphs/pgq_diff.py`), with the Python of
//! the client scenarios, where .ci/run installs networkx.

use std::process::Command;

use crate::clients::{python, run_scenario};
use crate::repo_root;

#[test]
fn graph_functions_match_networkx() {
    let mut command = Command::new(python());
    command.arg(repo_root().join("sql-tests/graphs/networkx_diff.py"));
    run_scenario(command, false);
}

#[test]
fn graph_table_matches_walks_counted_in_python() {
    let mut command = Command::new(python());
    command.arg(repo_root().join("sql-tests/graphs/pgq_diff.py"));
    run_scenario(command, false);
}
