//! The Raft log on disk.
//!
//! ```text
//! raft/log/00000000000000000001.log   records: [len u32][crc32 u32][bincode(Entry)]
//! raft/log/00000000000000081234.log   a new segment starts past log_segment_bytes_max
//! raft/vote.json                      the current term and vote (human readable)
//! raft/purged.json                    the last log id removed after a snapshot
//! ```
//!
//! An append is acknowledged to Raft only after `fdatasync`, so a write that a
//! client saw succeed is on disk. Several entries that arrive together share
//! one sync (group commit). A record cut short by a crash can only be the last
//! one written and was never acknowledged: opening the log drops it. A bad
//! checksum anywhere else is corruption and stops the node with a clear error.
//!
//! A segment is written ahead with zeros, [`LOG_PREALLOCATE_BYTES`] at a
//! time, and records overwrite them, as PostgreSQL's WAL segments are: an
//! `fdatasync` after an append that grew the file must also write the
//! file's new size (an inode, or a journal commit), a second write to the
//! device for every small append. A large append (a bulk load's part) is
//! written as it comes instead. A header of zeros ends a segment's
//! records.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::ops::RangeBounds;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, EntryPayload, LogId, LogState, RaftLogReader, StorageError, StorageIOError, Vote,
};

use crate::error::{Error, Result};
use crate::machine::command_bytes;
use crate::page_cache;
use crate::raft::{Entry, NodeId, TypeConfig};

/// A new log segment file starts once the current one is this large.
pub const LOG_SEGMENT_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Zeros written ahead of the records of the current segment at a time.
pub const LOG_PREALLOCATE_BYTES: u64 = 1024 * 1024;
/// Appends larger than this are written as they come, past the zeros: the
/// file's new size costs them one more small write, where zeros ahead would
/// copy each of their bytes twice (a bulk load's parts of about a megabyte
/// each spent a fifth of their log appends writing zeros they overwrote).
pub const LOG_PREALLOCATE_APPEND_BYTES_MAX: u64 = 64 * 1024;
/// Synced records leave the page cache once this many bytes of them are
/// there: a single-row commit does not pay a system call for it.
pub const LOG_UNCACHE_BYTES_MIN: u64 = 1024 * 1024;
/// Refuse to read a record claiming to be larger than this: it is corrupt.
pub const LOG_RECORD_BYTES_MAX: u32 = 1024 * 1024 * 1024;
const RECORD_HEADER_BYTES: usize = 8;
/// Rows one AppendEntries carries beyond its first entry: a follower far
/// behind catches up in requests that each fit a heartbeat interval,
/// instead of one request that never does.
pub const REPLICATION_PAYLOAD_BYTES_MAX: u64 = 2 * 1024 * 1024;

/// The segment appends go to.
struct Segment {
    /// The index of its first entry, its name.
    first: u64,
    file: File,
    /// Where its records end: the next one starts here.
    len: u64,
    /// The file's size: records, then zeros written ahead of them.
    allocated: u64,
    /// Where pages the page cache may still hold begin: those before it
    /// were synced and dropped ([`page_cache::forget`]).
    cached_from: u64,
}

#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<LogInner>>,
}

struct LogInner {
    dir: PathBuf,
    /// Entries not yet purged, kept in memory: the state machine reads them
    /// right after they are appended, and a snapshot soon lets them go.
    entries: BTreeMap<u64, Entry>,
    /// Where each entry starts: (first index of its segment, byte offset).
    positions: BTreeMap<u64, (u64, u64)>,
    /// Segment files by the index of their first entry.
    segments: BTreeMap<u64, PathBuf>,
    current: Option<Segment>,
    last_purged: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Writes a small file so that a crash leaves either the old or the new
/// contents: write aside, sync, rename over, sync the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    sync_dir(path.parent().expect("files live in a directory"))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::corrupt(path.display().to_string(), e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

impl LogStore {
    pub fn open(raft_dir: &Path) -> Result<Self> {
        let dir = raft_dir.join("log");
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let last_purged: Option<LogId<NodeId>> = read_json(&raft_dir.join("purged.json"))?;
        let vote = read_json(&raft_dir.join("vote.json"))?;

        let mut segments = BTreeMap::new();
        for item in fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let path = item.map_err(|e| Error::io(&dir, e))?.path();
            let first = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok());
            match (first, path.extension().and_then(|e| e.to_str())) {
                (Some(first), Some("log")) => {
                    segments.insert(first, path);
                }
                _ => {
                    tracing::warn!(path = %path.display(), "ignoring unexpected file in the log directory")
                }
            }
        }

        let mut inner = LogInner {
            dir,
            entries: BTreeMap::new(),
            positions: BTreeMap::new(),
            segments,
            current: None,
            last_purged,
            vote,
        };
        let last_segment = inner.segments.keys().next_back().copied();
        for (&first, path) in &inner.segments.clone() {
            let good_len = inner.read_segment(first, path, Some(first) == last_segment)?;
            if Some(first) == last_segment {
                let file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| Error::io(path, e))?;
                let allocated = file.metadata().map_err(|e| Error::io(path, e))?.len();
                inner.current = Some(Segment {
                    first,
                    file,
                    len: good_len,
                    allocated,
                    cached_from: 0,
                });
            }
        }
        Ok(LogStore {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        self.inner.lock().expect("log mutex poisoned")
    }

    /// The index of the last entry in the log, if any.
    pub fn last_index(&self) -> Option<u64> {
        let inner = self.lock();
        inner
            .entries
            .keys()
            .next_back()
            .copied()
            .or(inner.last_purged.map(|l| l.index))
    }
}

impl LogInner {
    /// Reads one segment into memory; returns the length of its good prefix.
    fn read_segment(&mut self, first: u64, path: &Path, is_last: bool) -> Result<u64> {
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| Error::io(path, e))?;
        let mut offset = 0usize;
        while offset < bytes.len() {
            match decode_record(&bytes[offset..]) {
                Ok((entry, len)) => {
                    let index = entry.log_id.index;
                    if self.last_purged.is_none_or(|p| index > p.index) {
                        self.positions.insert(index, (first, offset as u64));
                        self.entries.insert(index, entry);
                    }
                    offset += len;
                }
                Err(RecordError::End) if !valid_record_after(&bytes, offset + 1) => {
                    // Bytes past the zeros are what a crash left of a record
                    // whose header never reached the disk; cut them, or
                    // shorter records written over them would leave them
                    // behind.
                    if is_last && bytes[offset..].iter().any(|&b| b != 0) {
                        tracing::warn!(path = %path.display(), offset, "dropping a torn record at the end of the log");
                        cut(path, offset as u64)?;
                    }
                    break;
                }
                Err(RecordError::End) => {
                    return Err(Error::corrupt(
                        format!("raft log segment {} at byte {offset}", path.display()),
                        "zeros where a record should start, with records after them",
                    ));
                }
                Err(RecordError::Torn(detail))
                    if is_last && !valid_record_after(&bytes, offset + 1) =>
                {
                    // A record cut short by a crash: it was never acknowledged.
                    // Damage with whole records after it is no crash's: a
                    // crash tears only the end of what it was writing.
                    tracing::warn!(path = %path.display(), offset, %detail, "dropping a torn record at the end of the log");
                    cut(path, offset as u64)?;
                    break;
                }
                Err(RecordError::Torn(detail) | RecordError::Corrupt(detail)) => {
                    return Err(Error::corrupt(
                        format!("raft log segment {} at byte {offset}", path.display()),
                        detail,
                    ));
                }
            }
        }
        Ok(offset as u64)
    }

    fn append(&mut self, entries: Vec<Entry>) -> Result<()> {
        let Some(first_index) = entries.first().map(|e| e.log_id.index) else {
            return Ok(());
        };
        let needs_new = match &self.current {
            None => true,
            Some(segment) => segment.len >= LOG_SEGMENT_BYTES_MAX,
        };
        if needs_new {
            let path = self.dir.join(format!("{first_index:020}.log"));
            let file = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?;
            sync_dir(&self.dir)?;
            self.segments.insert(first_index, path);
            self.current = Some(Segment {
                first: first_index,
                file,
                len: 0,
                allocated: 0,
                cached_from: 0,
            });
        }
        let segment = self.current.as_mut().expect("opened above");
        let mut buf = Vec::new();
        let mut positions = Vec::with_capacity(entries.len());
        for entry in &entries {
            positions.push((
                entry.log_id.index,
                (segment.first, segment.len + buf.len() as u64),
            ));
            encode_record(entry, &mut buf)?;
        }
        let path = &self.segments[&segment.first];
        let end = segment.len + buf.len() as u64;
        if end > segment.allocated && buf.len() as u64 <= LOG_PREALLOCATE_APPEND_BYTES_MAX {
            // Zeros past this append, so the next ones overwrite allocated
            // blocks; one sync below covers them and the records.
            let from = segment.allocated.max(end);
            let zeros = vec![0u8; (end + LOG_PREALLOCATE_BYTES - from) as usize];
            segment
                .file
                .write_all_at(&zeros, from)
                .map_err(|e| Error::io(path, e))?;
            segment.allocated = from + zeros.len() as u64;
        }
        segment
            .file
            .write_all_at(&buf, segment.len)
            .map_err(|e| Error::io(path, e))?;
        segment.file.sync_data().map_err(|e| Error::io(path, e))?;
        segment.len = end;
        segment.allocated = segment.allocated.max(end);
        // Records are read from the file only when the node restarts.
        let synced_pages_end = end / page_cache::PAGE_BYTES * page_cache::PAGE_BYTES;
        if synced_pages_end >= segment.cached_from + LOG_UNCACHE_BYTES_MIN {
            page_cache::forget(
                &segment.file,
                segment.cached_from,
                synced_pages_end - segment.cached_from,
            );
            segment.cached_from = synced_pages_end;
        }
        self.positions.extend(positions);
        self.entries
            .extend(entries.into_iter().map(|e| (e.log_id.index, e)));
        Ok(())
    }

    /// Removes every entry at `index` and after it (a conflicting suffix).
    fn truncate(&mut self, index: u64) -> Result<()> {
        let Some(&(segment, offset)) = self.positions.get(&index) else {
            return Ok(());
        };
        self.entries.split_off(&index);
        self.positions.split_off(&index);
        for (_, path) in self.segments.split_off(&(segment + 1)) {
            fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
        let path = self.segments[&segment].clone();
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        file.set_len(offset).map_err(|e| Error::io(&path, e))?;
        file.sync_all().map_err(|e| Error::io(&path, e))?;
        self.current = Some(Segment {
            first: segment,
            file,
            len: offset,
            allocated: offset,
            cached_from: 0,
        });
        Ok(())
    }

    fn purge(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        write_atomic(
            &self
                .dir
                .parent()
                .expect("log dir has a parent")
                .join("purged.json"),
            &serde_json::to_vec_pretty(&log_id).expect("log ids serialize"),
        )?;
        self.last_purged = Some(log_id);
        let keep = self.entries.split_off(&(log_id.index + 1));
        self.entries = keep;
        let keep = self.positions.split_off(&(log_id.index + 1));
        self.positions = keep;
        // A segment can go once the next one starts at or before the first
        // entry still kept; the current segment always stays.
        let firsts: Vec<u64> = self.segments.keys().copied().collect();
        for pair in firsts.windows(2) {
            if pair[1] <= log_id.index + 1 {
                let path = self.segments.remove(&pair[0]).expect("listed above");
                fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        Ok(())
    }
}

/// Shortens a segment file to `len` bytes, durably.
fn cut(path: &Path, len: u64) -> Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.set_len(len).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

fn encode_record(entry: &Entry, out: &mut Vec<u8>) -> Result<()> {
    let payload = bincode::serialize(entry).map_err(|e| Error::corrupt("log entry", e))?;
    assert!(
        payload.len() < LOG_RECORD_BYTES_MAX as usize,
        "a log entry of {} bytes exceeds log_record_bytes_max",
        payload.len()
    );
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(())
}

/// Why a record could not be read.
enum RecordError {
    /// A header of zeros: the zeros written ahead of the records.
    End,
    /// Cut short, or its bytes do not match its checksum: what a crash in
    /// the middle of a write leaves at the end of the log.
    Torn(String),
    /// Checksummed correctly yet unreadable: never a crash artefact.
    Corrupt(String),
}

fn decode_record(bytes: &[u8]) -> std::result::Result<(Entry, usize), RecordError> {
    if bytes[..bytes.len().min(RECORD_HEADER_BYTES)]
        .iter()
        .all(|&b| b == 0)
    {
        return Err(RecordError::End);
    }
    if bytes.len() < RECORD_HEADER_BYTES {
        return Err(RecordError::Torn("short record header".into()));
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if len > LOG_RECORD_BYTES_MAX {
        return Err(RecordError::Torn(format!("record length {len} is absurd")));
    }
    let end = RECORD_HEADER_BYTES + len as usize;
    if bytes.len() < end {
        return Err(RecordError::Torn("short record".into()));
    }
    let payload = &bytes[RECORD_HEADER_BYTES..end];
    if crc32fast::hash(payload) != crc {
        return Err(RecordError::Torn("checksum mismatch".into()));
    }
    let entry = bincode::deserialize(payload)
        .map_err(|e| RecordError::Corrupt(format!("undecodable record: {e}")))?;
    Ok((entry, end))
}

/// Whether a whole, readable record starts anywhere at or after `from`:
/// bytes a crash could not have left behind a torn one.
fn valid_record_after(bytes: &[u8], from: usize) -> bool {
    // A record's length is never 0, so one of the first four bytes of its
    // header is not: runs of zeros (a megabyte written ahead at the end of
    // every segment) are skipped, not tried one byte at a time.
    let mut start = from;
    while let Some(nonzero) = bytes
        .get(start..)
        .and_then(|rest| rest.iter().position(|&b| b != 0))
        .map(|at| start + at)
    {
        let first = start.max(nonzero.saturating_sub(3));
        if (first..=nonzero).any(|s| decode_record(&bytes[s..]).is_ok()) {
            return true;
        }
        start = nonzero + 1;
    }
    false
}

fn storage_error(e: Error) -> StorageError<NodeId> {
    StorageIOError::write_logs(AnyError::new(&e)).into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> std::result::Result<Vec<Entry>, StorageError<NodeId>> {
        Ok(self
            .lock()
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }

    /// What one AppendEntries carries: at least one entry, and no more than
    /// [`REPLICATION_PAYLOAD_BYTES_MAX`] of rows beyond it.
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> std::result::Result<Vec<Entry>, StorageError<NodeId>> {
        let inner = self.lock();
        let mut bytes = 0;
        let mut entries = Vec::new();
        for (_, entry) in inner.entries.range(start..end) {
            bytes += match &entry.payload {
                EntryPayload::Normal(command) => command_bytes(command),
                _ => 0,
            };
            if bytes > REPLICATION_PAYLOAD_BYTES_MAX && !entries.is_empty() {
                break;
            }
            entries.push(entry.clone());
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(
        &mut self,
    ) -> std::result::Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let inner = self.lock();
        let last = inner.entries.values().next_back().map(|e| e.log_id);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last.or(inner.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(
        &mut self,
        vote: &Vote<NodeId>,
    ) -> std::result::Result<(), StorageError<NodeId>> {
        let mut inner = self.lock();
        let path = inner
            .dir
            .parent()
            .expect("log dir has a parent")
            .join("vote.json");
        write_atomic(
            &path,
            &serde_json::to_vec_pretty(vote).expect("votes serialize"),
        )
        .map_err(|e| StorageError::from(StorageIOError::write_vote(AnyError::new(&e))))?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(
        &mut self,
    ) -> std::result::Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock().vote)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> std::result::Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let result = self.lock().append(entries.into_iter().collect());
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(storage_error(e))
            }
        }
    }

    async fn truncate(
        &mut self,
        log_id: LogId<NodeId>,
    ) -> std::result::Result<(), StorageError<NodeId>> {
        self.lock().truncate(log_id.index).map_err(storage_error)
    }

    async fn purge(
        &mut self,
        log_id: LogId<NodeId>,
    ) -> std::result::Result<(), StorageError<NodeId>> {
        self.lock().purge(log_id).map_err(storage_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Command;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
            payload: EntryPayload::Normal(Command::CreateDatabase {
                name: format!("db{index}"),
            }),
        }
    }

    /// A log of entries 1 to `last`, closed: its directory, its one
    /// segment, and where the segment's records end.
    fn closed_log(last: u64) -> (tempfile::TempDir, PathBuf, u64) {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(dir.path()).unwrap();
        log.lock().append((1..=last).map(entry).collect()).unwrap();
        let segment = log.lock().segments[&1].clone();
        let end = log.lock().current.as_ref().unwrap().len;
        (dir, segment, end)
    }

    /// The error opening a damaged log must give.
    fn open_error(dir: &Path) -> Error {
        LogStore::open(dir).err().expect("corruption is detected")
    }

    /// Writes `bytes` over a segment at `at`, as damage or a crash would.
    fn overwrite(segment: &Path, at: u64, bytes: &[u8]) {
        let f = OpenOptions::new().write(true).open(segment).unwrap();
        f.write_all_at(bytes, at).unwrap();
    }

    #[test]
    fn reopen_drops_a_torn_tail_and_keeps_the_rest() {
        let (dir, segment, end) = closed_log(5);
        // Half of a sixth record where it would go, over the zeros written
        // ahead, as a crash mid-write leaves it.
        let mut half = Vec::new();
        encode_record(&entry(6), &mut half).unwrap();
        overwrite(&segment, end, &half[..half.len() / 2]);

        let log = LogStore::open(dir.path()).unwrap();
        assert_eq!(log.last_index(), Some(5));
        log.lock().append(vec![entry(6)]).unwrap();
        drop(log);
        let log = LogStore::open(dir.path()).unwrap();
        assert_eq!(log.last_index(), Some(6));
    }

    /// Records overwrite the zeros written ahead of them, and the zeros end
    /// a segment's records wherever it is, last or not.
    #[test]
    fn appends_overwrite_zeros_written_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(dir.path()).unwrap();
        log.lock().append(vec![entry(1)]).unwrap();
        let segment = log.lock().segments[&1].clone();
        let size = fs::metadata(&segment).unwrap().len();
        assert!(size > LOG_PREALLOCATE_BYTES, "written ahead: {size}");
        for i in 2..=50 {
            log.lock().append(vec![entry(i)]).unwrap();
        }
        assert_eq!(fs::metadata(&segment).unwrap().len(), size, "no growth");
        drop(log);

        let log = LogStore::open(dir.path()).unwrap();
        assert_eq!(log.last_index(), Some(50));
        log.lock().append(vec![entry(51)]).unwrap();
        drop(log);
        // A later segment makes this one's zeros the end of a full segment.
        fs::write(dir.path().join("log").join(format!("{:020}.log", 52)), b"").unwrap();
        let log = LogStore::open(dir.path()).unwrap();
        assert_eq!(log.last_index(), Some(51));
        assert_eq!(log.lock().entries.len(), 51);
    }

    /// An append larger than [`LOG_PREALLOCATE_APPEND_BYTES_MAX`] that
    /// passes the zeros ends the file; small appends after it write zeros
    /// ahead again, and the log reads back whole.
    #[test]
    fn large_appends_write_no_zeros_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(dir.path()).unwrap();
        log.lock().append(vec![entry(1)]).unwrap();
        let segment = log.lock().segments[&1].clone();
        let large = |index: u64| Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
            payload: EntryPayload::Normal(Command::CreateDatabase {
                name: "x".repeat(LOG_PREALLOCATE_BYTES as usize / 2),
            }),
        };
        for i in 2..=3 {
            log.lock().append(vec![large(i)]).unwrap();
        }
        let end = log.lock().current.as_ref().unwrap().len;
        assert_eq!(fs::metadata(&segment).unwrap().len(), end, "no zeros");
        log.lock().append(vec![entry(4)]).unwrap();
        let size = fs::metadata(&segment).unwrap().len();
        assert!(size > end + LOG_PREALLOCATE_BYTES, "written ahead: {size}");
        drop(log);

        let log = LogStore::open(dir.path()).unwrap();
        assert_eq!(log.last_index(), Some(4));
        assert_eq!(log.lock().entries.len(), 4);
    }

    /// Synced records leave the page cache in whole pages once
    /// [`LOG_UNCACHE_BYTES_MIN`] of them gather; the page a record ends in
    /// stays, and the log reads back whole.
    #[test]
    fn synced_records_leave_the_page_cache_in_whole_pages() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(dir.path()).unwrap();
        let cached_from = || log.lock().current.as_ref().unwrap().cached_from;
        let end = || log.lock().current.as_ref().unwrap().len;
        log.lock().append(vec![entry(1)]).unwrap();
        assert_eq!(cached_from(), 0, "a small append drops nothing");
        let large = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), 2),
            payload: EntryPayload::Normal(Command::CreateDatabase {
                name: "x".repeat(LOG_UNCACHE_BYTES_MIN as usize),
            }),
        };
        log.lock().append(vec![large]).unwrap();
        let dropped = end() / page_cache::PAGE_BYTES * page_cache::PAGE_BYTES;
        assert!(dropped < end(), "the record ends inside a page");
        assert_eq!(cached_from(), dropped);
        log.lock().append(vec![entry(3)]).unwrap();
        assert_eq!(cached_from(), dropped, "less than the minimum waits");
        drop(log);

        let log = LogStore::open(dir.path()).unwrap();
        assert_eq!(log.last_index(), Some(3));
        assert_eq!(log.lock().entries.len(), 3);
    }

    /// Zeros over the start of a record that has acknowledged records after
    /// it are damage, not the end of the log.
    #[test]
    fn zeros_before_records_are_corruption() {
        let (dir, segment, _) = closed_log(3);
        overwrite(&segment, 0, &[0u8; RECORD_HEADER_BYTES]);
        let err = open_error(dir.path());
        assert!(err.to_string().contains("zeros where a record"), "{err}");
    }

    /// A crash can leave the end of a record on disk without its header:
    /// the bytes are dropped, so that no shorter record written over them
    /// leaves part of them behind.
    #[test]
    fn a_torn_record_without_its_header_is_cut() {
        let (dir, segment, end) = closed_log(3);
        let mut record = Vec::new();
        encode_record(&entry(4), &mut record).unwrap();
        overwrite(
            &segment,
            end + RECORD_HEADER_BYTES as u64,
            &record[RECORD_HEADER_BYTES..],
        );

        let log = LogStore::open(dir.path()).unwrap();
        assert_eq!(log.last_index(), Some(3));
        assert_eq!(fs::metadata(&segment).unwrap().len(), end, "cut");
        log.lock().append(vec![entry(4)]).unwrap();
        drop(log);
        let log = LogStore::open(dir.path()).unwrap();
        assert_eq!(log.last_index(), Some(4));
    }

    #[test]
    fn every_kind_of_entry_reads_back() {
        use crate::catalog::{ColumnDef, PgType, TableDef, TableId, TableRef};
        let table = TableRef {
            database: "ciab".into(),
            schema: "public".into(),
            name: "t".into(),
        };
        let def = TableDef {
            id: TableId(0),
            columns: vec![ColumnDef {
                name: "a".into(),
                ty: PgType::Numeric {
                    precision: Some(10),
                    scale: Some(2),
                },
                nullable: false,
                default: None,
            }],
            indexes: vec![],
            version: 0,
            time_series: None,
        };
        let membership = openraft::Membership::new(vec![[1u64].into_iter().collect()], None);
        let entries = vec![
            Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 0), 1),
                payload: EntryPayload::Membership(membership),
            },
            Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 0), 2),
                payload: EntryPayload::Blank,
            },
            Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 0), 3),
                payload: EntryPayload::Normal(Command::CreateTable {
                    table,
                    def,
                    if_not_exists: false,
                }),
            },
        ];
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(dir.path()).unwrap();
        log.lock().append(entries.clone()).unwrap();
        drop(log);
        let log = LogStore::open(dir.path()).unwrap();
        let read: Vec<Entry> = log.lock().entries.values().cloned().collect();
        assert_eq!(format!("{read:?}"), format!("{entries:?}"));
    }

    #[test]
    fn corruption_before_the_tail_is_an_error() {
        let (dir, segment, _) = closed_log(3);
        let mut bytes = fs::read(&segment).unwrap();
        bytes[RECORD_HEADER_BYTES + 2] ^= 0xff;
        fs::write(&segment, bytes).unwrap();
        // Only the last segment may have a torn tail; add a later segment so
        // the damaged one is not the last.
        fs::write(dir.path().join("log").join(format!("{:020}.log", 4)), b"").unwrap();
        let err = open_error(dir.path());
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    /// A damaged record in the last segment is not taken for a torn tail
    /// when whole records follow it: dropping it would drop them, all
    /// acknowledged.
    #[test]
    fn damage_with_records_after_it_is_an_error_in_the_last_segment_too() {
        let (dir, segment, _) = closed_log(3);
        let clean = fs::read(&segment).unwrap();
        // A flipped payload byte, and a length that runs past the end.
        for (at, flip) in [(RECORD_HEADER_BYTES + 2, 0xff), (2, 0x10)] {
            let mut bytes = clean.clone();
            bytes[at] ^= flip;
            fs::write(&segment, bytes).unwrap();
            let err = open_error(dir.path());
            assert!(err.to_string().contains("corrupt raft log"), "{err}");
            assert_eq!(
                fs::read(&segment).unwrap().len(),
                clean.len(),
                "nothing cut"
            );
        }
    }

    #[test]
    fn truncate_and_purge() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(dir.path()).unwrap();
        log.lock().append((1..=10).map(entry).collect()).unwrap();
        log.lock().truncate(8).unwrap();
        assert_eq!(log.last_index(), Some(7));
        log.lock().purge(entry(5).log_id).unwrap();
        drop(log);
        let log = LogStore::open(dir.path()).unwrap();
        assert_eq!(log.last_index(), Some(7));
        assert_eq!(
            log.lock().entries.keys().copied().collect::<Vec<_>>(),
            vec![6, 7]
        );
    }
}
