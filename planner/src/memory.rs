//! The memory a node's queries may hold at once: the cluster's
//! `memory_limit` (`'4GB'`, `'512MB'`, or `'80%'` of the machine's memory,
//! the default), one pool for every session of the node.
//!
//! DataFusion's operators reserve what they buffer (hash tables, sort runs,
//! join build sides) from this pool. When a reservation would go over the
//! limit, sorts and aggregations spill to temporary files and go on;
//! operators that cannot spill fail their query with 53200, and the node
//! and its other sessions go on. The rows of tables and the log are not
//! counted: they are the node's state, not a query's.

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::common::Result as DfResult;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::{MemoryLimit, MemoryPool, MemoryReservation};

use crate::error::{Error, Result, sqlstate};

/// A node's pool, greedy: a reservation is granted while the total stays
/// within the limit. The limit follows the setting, read at the start of
/// every statement.
#[derive(Debug, Default)]
pub(crate) struct NodeMemory {
    /// The limit in bytes; 0 until first set, meaning none.
    limit_bytes: AtomicUsize,
    used_bytes: AtomicUsize,
}

impl NodeMemory {
    pub(crate) fn set_limit(&self, limit_bytes: usize) {
        self.limit_bytes.store(limit_bytes, Ordering::Relaxed);
    }

    fn limit(&self) -> usize {
        match self.limit_bytes.load(Ordering::Relaxed) {
            0 => usize::MAX,
            limit => limit,
        }
    }
}

impl fmt::Display for NodeMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ciab node memory ({} of {} bytes held)",
            self.used_bytes.load(Ordering::Relaxed),
            self.limit()
        )
    }
}

impl MemoryPool for NodeMemory {
    fn name(&self) -> &str {
        "ciab"
    }

    fn grow(&self, _reservation: &MemoryReservation, additional: usize) {
        self.used_bytes.fetch_add(additional, Ordering::Relaxed);
    }

    fn shrink(&self, _reservation: &MemoryReservation, shrink: usize) {
        let before = self.used_bytes.fetch_sub(shrink, Ordering::Relaxed);
        debug_assert!(before >= shrink, "a reservation gives back what it held");
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> DfResult<()> {
        let limit = self.limit();
        self.used_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(additional).filter(|&total| total <= limit)
            })
            .map_err(|used| {
                DataFusionError::ResourcesExhausted(format!(
                    "out of memory: {} asked for {additional} bytes, and the node's queries \
                     already hold {used} of memory_limit's {limit}",
                    reservation.consumer().name()
                ))
            })?;
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used_bytes.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        match self.limit_bytes.load(Ordering::Relaxed) {
            0 => MemoryLimit::Infinite,
            limit => MemoryLimit::Finite(limit),
        }
    }
}

/// A `memory_limit` value in bytes: a number of bytes, a number with
/// PostgreSQL's memory units (`kB`, `MB`, `GB`, `TB`: powers of 1024), or a
/// percentage of the machine's memory; `0` for none.
pub(crate) fn parse_memory_limit(value: &str) -> Result<usize> {
    let invalid = || {
        Error::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!(
                "invalid value for parameter \"memory_limit\": \"{value}\" (bytes, a size \
                 such as '4GB' or '512MB', or a share of memory such as '80%')"
            ),
        )
    };
    let text = value.trim().trim_matches('\'').trim();
    if let Some(percent) = text.strip_suffix('%') {
        let percent: f64 = percent.trim().parse().map_err(|_| invalid())?;
        if !(0.0..=100.0).contains(&percent) {
            return Err(invalid());
        }
        return Ok((machine_memory_bytes() as f64 * percent / 100.0) as usize);
    }
    ciab_storage::parse_bytes(text)
        .and_then(|bytes| usize::try_from(bytes).ok())
        .ok_or_else(invalid)
}

/// The machine's memory, from /proc/meminfo, read once (limits are
/// parsed for every statement); if it cannot be read, a percentage means no
/// limit.
fn machine_memory_bytes() -> usize {
    static MEMORY_BYTES: OnceLock<usize> = OnceLock::new();
    *MEMORY_BYTES.get_or_init(read_machine_memory_bytes)
}

fn read_machine_memory_bytes() -> usize {
    let total_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<usize>()
                        .ok()
                })
        });
    total_kb.map_or(0, |kb| kb.saturating_mul(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_as_postgresql_memory_units() {
        assert_eq!(parse_memory_limit("0").unwrap(), 0);
        assert_eq!(parse_memory_limit("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_memory_limit("64kB").unwrap(), 64 << 10);
        assert_eq!(parse_memory_limit("'512MB'").unwrap(), 512 << 20);
        assert_eq!(parse_memory_limit("4 GB").unwrap(), 4 << 30);
        let all = parse_memory_limit("100%").unwrap();
        assert!(all > 0 && parse_memory_limit("50%").unwrap() <= all / 2 + 1);
        for bad in ["", "lots", "5XB", "-1MB", "150%"] {
            assert!(parse_memory_limit(bad).is_err(), "{bad}");
        }
    }
}
