//! The free space a node keeps on the disk of its data directory.
//!
//! Every write is appended to the log and synced before it is
//! acknowledged; a log that meets a full disk cannot append, and Raft
//! stops the node for good (a storage error is fatal to it). So a write
//! that adds data (rows, staged rows, object bytes) is refused before it
//! is proposed once less than `disk_reserve` is free, with an error that
//! says so (SQLSTATE 53100), and nothing is done. Writes that only remove
//! (DELETE, TRUNCATE, DROP) and DDL still go through, into the reserve:
//! they are the way out, with VACUUM writing what is left to Parquet and
//! trimming the log. Once space returns, the next write succeeds.
//!
//! The check reads the free space (`statvfs`) of the node that takes the
//! write from the client and, when that node forwards the write, of the
//! leader, which appends it first. A follower's disk is not checked: a
//! follower whose log cannot append stops, and the others go on while they
//! are a majority.
//!
//! A reading far above the reserve is reused for a moment instead of asking
//! the kernel before every write (a single-row INSERT spent 2% of its CPU
//! there); near the reserve, every check reads afresh.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::command::{Command, WriteOp};
use crate::error::{Error, Result};
use crate::objects::ObjectOp;
use crate::state::DbState;

/// The setting, changed with ALTER SYSTEM like the others.
pub const DISK_RESERVE_SETTING: &str = "disk_reserve";
/// Its value until ALTER SYSTEM sets one: room for deletes and for a
/// snapshot's Parquet files while writes are refused.
pub const DISK_RESERVE_DEFAULT: &str = "256MB";

/// A size in bytes as settings give it: a number of bytes, or a number
/// with PostgreSQL's memory units (`kB`, `MB`, `GB`, `TB`: powers of 1024),
/// quoted or not.
pub fn parse_bytes(value: &str) -> Option<u64> {
    let text = value.trim().trim_matches('\'').trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let unit_bytes: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        _ => return None,
    };
    number.checked_mul(unit_bytes)
}

impl Command {
    /// Whether applying the command stores more data: rows, staged rows or
    /// object bytes. The free-space check refuses only these.
    pub fn adds_data(&self) -> bool {
        let inserts = |ops: &[WriteOp]| ops.iter().any(|op| matches!(op, WriteOp::Insert { .. }));
        match self {
            Command::Write { ops } => inserts(ops),
            Command::Stage { .. } => true,
            Command::Transaction { commands, .. } | Command::Batch { commands } => {
                commands.iter().any(Command::adds_data)
            }
            Command::Object(op) => matches!(
                op,
                ObjectOp::Append { .. }
                    | ObjectOp::Put { .. }
                    | ObjectOp::PutPart { .. }
                    // Shared chunks still in memory are written once per
                    // object when flushed.
                    | ObjectOp::Copy { .. }
            ),
            _ => false,
        }
    }
}

/// A reading of the free space at least this far above `disk_reserve`...
const FREE_SPACE_MARGIN_BYTES: u64 = 1 << 30;
/// ...is reused for this long: the disk cannot fill the margin in that
/// time, and if something else on the machine does, the reserve still
/// holds the writes that slip by.
const FREE_SPACE_READING_TTL: Duration = Duration::from_millis(100);

/// The free space of a data directory's disk, read afresh whenever a check
/// needs it.
#[derive(Default)]
pub(crate) struct FreeSpace {
    /// The last reading, if it was far above the reserve it was checked
    /// against, and when it was taken.
    roomy: Mutex<Option<(Instant, u64)>>,
}

impl FreeSpace {
    /// Refuses a write that adds data when the disk of `dir` has less free
    /// than the cluster's `disk_reserve`.
    pub(crate) fn check(&self, dir: &Path, state: &DbState) -> Result<()> {
        let reserve_bytes = reserve_bytes(state);
        if reserve_bytes == 0 {
            return Ok(());
        }
        let mut roomy = self.roomy.lock().expect("lock poisoned");
        let (read, free_bytes) = match *roomy {
            Some((read, free_bytes)) if read.elapsed() < FREE_SPACE_READING_TTL => {
                (read, free_bytes)
            }
            _ => {
                let stat = rustix::fs::statvfs(dir).map_err(|e| Error::io(dir, e.into()))?;
                (Instant::now(), stat.f_bavail.saturating_mul(stat.f_frsize))
            }
        };
        // Kept only while far above this reserve: a check against a larger
        // one (ALTER SYSTEM) reads again.
        *roomy = (free_bytes >= reserve_bytes.saturating_add(FREE_SPACE_MARGIN_BYTES))
            .then_some((read, free_bytes));
        if free_bytes < reserve_bytes {
            return Err(Error::DiskFull(format!(
                "could not write: the disk of {} has {} free, less than disk_reserve ({}); \
                 free some space, or DELETE, TRUNCATE or DROP data and VACUUM",
                dir.display(),
                megabytes(free_bytes),
                megabytes(reserve_bytes),
            )));
        }
        Ok(())
    }
}

/// The cluster's `disk_reserve` in bytes.
fn reserve_bytes(state: &DbState) -> u64 {
    let reserve_text = state
        .catalog
        .settings
        .get(DISK_RESERVE_SETTING)
        .map_or(DISK_RESERVE_DEFAULT, |s| s.value.as_str());
    // ALTER SYSTEM checked it; a value it could not read keeps the default.
    parse_bytes(reserve_text)
        .or_else(|| parse_bytes(DISK_RESERVE_DEFAULT))
        .expect("the default parses")
}

fn megabytes(bytes: u64) -> String {
    format!("{} MB", bytes / (1 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_settings_write_them() {
        assert_eq!(parse_bytes("0"), Some(0));
        assert_eq!(parse_bytes("1048576"), Some(1 << 20));
        assert_eq!(parse_bytes("64kB"), Some(64 << 10));
        assert_eq!(parse_bytes("'512MB'"), Some(512 << 20));
        assert_eq!(parse_bytes("4 GB"), Some(4 << 30));
        assert_eq!(parse_bytes(DISK_RESERVE_DEFAULT), Some(256 << 20));
        for bad in ["", "MB", "12 parsecs", "-1", "1.5GB", "99999999999TB"] {
            assert_eq!(parse_bytes(bad), None, "{bad}");
        }
    }
}
