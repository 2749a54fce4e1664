//! A real PostgreSQL 15 on a free port with a temporary data directory:
//! the oracle that differential tests compare ciab with.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// Where Debian's postgresql-15 package puts the server programs.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct Postgres {
    dir: tempfile::TempDir,
    addr: SocketAddr,
}

impl Postgres {
    /// Creates a cluster (user `ciab`, database `ciab`, trust auth) and
    /// starts it on a free loopback port. PostgreSQL refuses to run as
    /// root, so as root it runs as the `postgres` user.
    pub fn start() -> anyhow::Result<Postgres> {
        if !Path::new(PG_BIN).join("postgres").exists() {
            bail!("PostgreSQL 15 is not installed in {PG_BIN} (.ci/run installs it)");
        }
        let dir = tempfile::Builder::new().prefix("ciab-pg").tempdir()?;
        run(Command::new("chown").arg("postgres").arg(dir.path()))?;
        let data = dir.path().join("data");
        let addr = crate::server::free_addr("127.0.0.1")?;
        let pg = |program: &str| as_postgres(Path::new(PG_BIN).join(program));
        run(pg("initdb").arg("-D").arg(&data).args([
            "-U",
            "ciab",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]))?;
        run(pg("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-w")
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                addr.port(),
                dir.path().display()
            ))
            .arg("-l")
            .arg(dir.path().join("log"))
            .arg("start"))?;
        let server = Postgres { dir, addr };
        run(pg("createdb")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &addr.port().to_string(),
                "-U",
                "ciab",
            ])
            .arg("ciab"))?;
        Ok(server)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = run(as_postgres(Path::new(PG_BIN).join("pg_ctl"))
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "stop"]));
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn as_postgres(program: PathBuf) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let out = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
