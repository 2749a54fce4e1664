//! Integration tests: the real `ciab` binary, spawned on free ports with a
//! temporary data directory, driven over the PostgreSQL wire.

mod concurrency;
mod copy;
mod crash;
mod restart;
mod slt;

use std::path::{Path, PathBuf};

use ciab_sql_tests::TestServer;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ciab"))
}

fn start() -> TestServer {
    TestServer::start(binary()).expect("ciab starts")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the server crate sits in the workspace")
        .to_path_buf()
}
