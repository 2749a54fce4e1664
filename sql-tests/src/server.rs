//! A real `ciab` process on a free port with a temporary data directory.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a starting server may take to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

pub struct TestServer {
    binary: PathBuf,
    data_dir: tempfile::TempDir,
    addr: SocketAddr,
    peer_addr: SocketAddr,
    /// Where InfluxDB's write API listens; port 0 (any) for servers placed
    /// in network namespaces, which tests reach only over PostgreSQL.
    http_addr: SocketAddr,
    /// Where the S3 endpoint listens; port 0 (any) for placed servers.
    s3_addr: SocketAddr,
    /// A command the server runs under (`ip netns exec NS`), if any.
    wrapper: Vec<String>,
    /// Further arguments of `ciab start` (`--join ...`).
    args: Vec<String>,
    child: Option<Child>,
}

/// Starts on fresh ports after a port was taken under the server.
const START_TRIES_MAX: u32 = 3;

impl TestServer {
    /// Starts `binary` on free loopback ports.
    pub fn start(binary: &Path) -> anyhow::Result<TestServer> {
        Self::start_with(binary, "127.0.0.1", &[])
    }

    /// Starts `binary` on free ports of `ip` (any 127.0.0.0/8 address),
    /// with further arguments for `ciab start`.
    pub fn start_with(binary: &Path, ip: &str, args: &[String]) -> anyhow::Result<TestServer> {
        // A port is free when it is picked, not always when the server
        // binds it: another test's process may take it in between. Such a
        // start is tried again on new ports.
        let mut tries = 1;
        loop {
            let mut server = Self::unstarted(binary, &[], free_addr(ip)?, free_addr(ip)?, args)?;
            server.http_addr = free_addr(ip)?;
            server.s3_addr = free_addr(ip)?;
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(e)
                    if tries < START_TRIES_MAX
                        && format!("{e:#}").contains("Address already in use") =>
                {
                    tries += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Starts `binary` under `wrapper` (a command and its arguments, such
    /// as `ip netns exec NS`) on the given addresses.
    pub fn start_placed(
        binary: &Path,
        wrapper: &[String],
        addr: SocketAddr,
        peer_addr: SocketAddr,
        args: &[String],
    ) -> anyhow::Result<TestServer> {
        let mut server = Self::unstarted(binary, wrapper, addr, peer_addr, args)?;
        server.spawn()?;
        Ok(server)
    }

    fn unstarted(
        binary: &Path,
        wrapper: &[String],
        addr: SocketAddr,
        peer_addr: SocketAddr,
        args: &[String],
    ) -> anyhow::Result<TestServer> {
        Ok(TestServer {
            binary: binary.to_path_buf(),
            data_dir: tempfile::Builder::new().prefix("ciab-test").tempdir()?,
            addr,
            peer_addr,
            http_addr: SocketAddr::new(addr.ip(), 0),
            s3_addr: SocketAddr::new(addr.ip(), 0),
            wrapper: wrapper.to_vec(),
            args: args.to_vec(),
            child: None,
        })
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        // A second process would find the first still listening on the
        // address, and the first would outlive the test unseen.
        if let Some(child) = self.child.as_mut()
            && child.try_wait()?.is_none()
        {
            bail!(
                "ciab (pid {}) still runs: stop it before starting it again",
                child.id()
            );
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.path().join("server.log"))?;
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&self.binary);
                c
            }
            None => Command::new(&self.binary),
        };
        let child = command
            .args(["start", "--data-dir"])
            .arg(self.data_dir.path().join("data"))
            .args(["--pg-addr", &self.addr.to_string()])
            .args(["--peer-addr", &self.peer_addr.to_string()])
            .args(["--http-addr", &self.http_addr.to_string()])
            .args(["--s3-addr", &self.s3_addr.to_string()])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while TcpStream::connect(self.addr).is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("ciab exited with {status} while starting:\n{}", self.log());
            }
            if Instant::now() > deadline {
                bail!(
                    "ciab did not listen within {STARTUP_TIMEOUT:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where InfluxDB's write API listens (port 0 for a placed server).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Where the S3 endpoint listens (port 0 for a placed server).
    pub fn s3_addr(&self) -> SocketAddr {
        self.s3_addr
    }

    /// Where the node listens for other nodes.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// A libpq-style connection string for `database`.
    pub fn conn_str(&self, database: &str) -> String {
        conn_str(self.addr, database)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("server.log")).unwrap_or_default()
    }

    /// Kills the process with SIGKILL: no chance to flush or clean up.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Stops the process with SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            let status = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()?;
            if !status.success() {
                bail!("kill -TERM failed");
            }
            let status = child.wait()?;
            if !status.success() {
                bail!("ciab exited with {status} on SIGTERM:\n{}", self.log());
            }
        }
        Ok(())
    }

    /// Starts the process again, once stopped or killed, on the same data
    /// directory and port.
    pub fn restart(&mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        self.spawn()?;
        Ok(started.elapsed())
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.path().join("data")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.kill9();
    }
}

pub(crate) fn free_addr(ip: &str) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind((ip, 0))?;
    Ok(listener.local_addr()?)
}

/// A libpq-style connection string for `database` on the server at `addr`.
pub fn conn_str(addr: SocketAddr, database: &str) -> String {
    format!(
        "host={} port={} user=ciab dbname={database}",
        addr.ip(),
        addr.port()
    )
}

/// Connects with tokio-postgres, driving the connection on a task.
pub async fn connect(conn_str: &str) -> anyhow::Result<tokio_postgres::Client> {
    Ok(connect_pg(conn_str).await?)
}

pub(crate) async fn connect_pg(
    conn_str: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(conn_str, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}
