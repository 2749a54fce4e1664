//! A LAN on this machine for tests: network namespaces, one per host, on a
//! bridge, so that multicast (mDNS) works between them and a partition can
//! be cut. The test itself stays in the root namespace and reaches every
//! host through the bridge. Needs root and iproute2's `ip`; tests skip with
//! a message otherwise.
//!
//! ```text
//!   root namespace: bridge <name> 10.<a>.<b>.254/24 (the tests' clients)
//!     ├── veth ── namespace <name>-1: 10.<a>.<b>.1
//!     ├── veth ── namespace <name>-2: 10.<a>.<b>.2
//!     └── ...
//! ```
//!
//! A partition is cut with blackhole routes: packets between a host and the
//! others vanish (as on a broken link), while the test still reaches it.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Each LAN of a test run gets its own subnet and names.
static NEXT_LAN: AtomicU32 = AtomicU32::new(0);

pub struct Lan {
    name: String,
    subnet: String,
    hosts: usize,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl Lan {
    /// A LAN of `hosts` namespaces, or why there cannot be one here.
    pub fn new(hosts: usize) -> Result<Lan, String> {
        assert!((1..=250).contains(&hosts));
        // Only root makes namespaces.
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map_err(|e| e.to_string())?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err("network namespaces need root".into());
        }
        let n = NEXT_LAN.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let lan = Lan {
            // Interface names have at most 15 characters.
            name: format!("cl{}{n}", pid % 100_000),
            subnet: format!("10.{}.{}", 100 + n % 100, pid % 250),
            hosts,
        };
        lan.create()?;
        Ok(lan)
    }

    fn namespace(&self, host: usize) -> String {
        format!("{}-{host}", self.name)
    }

    fn create(&self) -> Result<(), String> {
        let bridge = &self.name;
        ip(&["link", "add", bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}.254/24", self.subnet),
            "dev",
            bridge,
        ])?;
        ip(&["link", "set", bridge, "up"])?;
        for host in 1..=self.hosts {
            let ns = self.namespace(host);
            let outside = format!("{}o{host}", self.name);
            let inside = format!("{}i{host}", self.name);
            ip(&["netns", "add", &ns])?;
            ip(&[
                "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ])?;
            ip(&["link", "set", &inside, "netns", &ns])?;
            ip(&["link", "set", &outside, "master", bridge, "up"])?;
            let addr = format!("{}/24", self.ip(host));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", &inside])?;
            ip(&["-n", &ns, "link", "set", &inside, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// The address of host `host` (from 1).
    pub fn ip(&self, host: usize) -> String {
        format!("{}.{host}", self.subnet)
    }

    /// The command that runs a program on host `host`.
    pub fn wrapper(&self, host: usize) -> Vec<String> {
        ["ip", "netns", "exec", &self.namespace(host)]
            .map(String::from)
            .to_vec()
    }

    /// Cuts host `host` off from the other hosts (not from the tests).
    pub fn cut(&self, host: usize) {
        self.routes(host, "add");
    }

    pub fn heal(&self, host: usize) {
        self.routes(host, "del");
    }

    fn routes(&self, host: usize, action: &str) {
        for other in (1..=self.hosts).filter(|&o| o != host) {
            for (on, to) in [(host, other), (other, host)] {
                let to = format!("{}/32", self.ip(to));
                ip(&["-n", &self.namespace(on), "route", action, "blackhole", &to])
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for host in 1..=self.hosts {
            let _ = ip(&["netns", "del", &self.namespace(host)]);
        }
        let _ = ip(&["link", "del", &self.name]);
    }
}
