//! The Raft state machine: applies committed commands to [`DbState`] and
//! turns that state into durable snapshots.
//!
//! A snapshot is how data reaches Parquet. It writes every segment that has
//! no file yet (merging small neighbours on the way) and then the manifest:
//!
//! ```text
//! <data-dir>/manifest.json                      catalog + files + last applied log id
//! <data-dir>/tables/<table id>/<name>.parquet   rows, with the hidden row id column
//! ```
//!
//! Once the manifest is renamed into place, Raft may purge the log up to the
//! snapshot's last entry. On start, the manifest's files are loaded and the
//! log after it is replayed. Files that no manifest names are leftovers of an
//! interrupted snapshot and are removed.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use datafusion::arrow::array::{RecordBatch, UInt64Array};
use datafusion::arrow::compute::{
    SortColumn, concat_batches, lexsort_to_indices, take_record_batch,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::metadata::{FileMetaData, KeyValue};
use datafusion::parquet::file::properties::{DEFAULT_DICTIONARY_PAGE_SIZE_LIMIT, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, BasicNode, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::catalog::{Catalog, TableId};
use crate::command::{Applied, Command, StageId, WriteOp};
use crate::error::{Error, Rejection, RejectionKind, Result};
use crate::files::{PageCache, TableStore};
use crate::locks::{AdvisoryLocks, HeldEntry, WaitingEntry};
use crate::log::write_atomic;
use crate::notify::{Notification, NotificationSink};
use crate::objects::{
    Blob, Bucket, Chunk, Multipart, OBJECT_FILE_BYTES_MAX, Object, ObjectMeta, Objects,
};
use crate::raft::{CommandResponse, Entry, EntryResponse, NodeId, TypeConfig};
use crate::sketch::DistinctSketch;
use crate::state::{DbState, Stage};
use crate::table::{SEGMENT_ROWS_TARGET, Segment, TableData};

const MANIFEST_FILE: &str = "manifest.json";
/// The key of a table file's metadata that holds its columns' sketches.
const DISTINCT_SKETCHES_KEY: &str = "ciab.distinct_sketches";
/// How often a column's average value must repeat in a segment for its
/// file to encode it with a dictionary (see `dictionary_pays`).
const DICTIONARY_REPEATS_MIN: usize = 2;
const MANIFEST_FORMAT_VERSION: u32 = 1;
/// How a packed snapshot (one sent to another node) begins; the digit is
/// its format version.
const PACK_MAGIC: &[u8; 8] = b"CIABSNP1";
/// A length in a received snapshot beyond this is corruption, not data.
const PACK_ITEM_BYTES_MAX: u64 = 4 * 1024 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    format_version: u32,
    snapshot_id: String,
    last_applied: Option<LogId<NodeId>>,
    last_membership: StoredMembership<NodeId, BasicNode>,
    catalog: Catalog,
    tables: BTreeMap<TableId, TableFiles>,
    /// Bulk loads in progress: their rows must outlive the log entries that
    /// carried them, or a later `Publish` in the log would find nothing.
    #[serde(default)]
    stages: BTreeMap<StageId, StageFiles>,
    #[serde(default)]
    objects: ObjectFiles,
    /// Advisory locks held, and sessions waiting for one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    advisory_locks: Vec<HeldEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    lock_waits: Vec<WaitingEntry>,
}

/// Object storage as a manifest names it: each object's metadata and the
/// files that hold its bytes, in order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ObjectFiles {
    #[serde(default)]
    buckets: BTreeMap<String, BucketFiles>,
    /// Bytes of objects and parts still being written.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    uploads: BTreeMap<StageId, Vec<FileEntry>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    multiparts: BTreeMap<String, Multipart>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct BucketFiles {
    created_us: i64,
    objects: BTreeMap<String, ObjectEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ObjectEntry {
    #[serde(flatten)]
    meta: ObjectMeta,
    files: Vec<FileEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StageFiles {
    table: TableId,
    version: u64,
    files: Vec<FileEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TableFiles {
    next_rowid: u64,
    files: Vec<FileEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileEntry {
    path: String,
    /// Rows of a Parquet file; none for a file of object bytes.
    #[serde(default, skip_serializing_if = "is_zero")]
    rows: u64,
    bytes: u64,
    crc32: u32,
    /// The time-series partition the file's rows belong to (its start, in
    /// microseconds since 1970); the path names it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    partition: Option<i64>,
    /// A table file without a row id column (a bulk load's staged file the
    /// table took over): its rows are numbered consecutively from this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first_rowid: Option<u64>,
    /// A file of object bytes: the CRC32 of each block of
    /// [`crate::objects::CHECK_BLOCK_BYTES`], for reads of a part of it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    block_crc32s: Vec<u32>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A snapshot's metadata and its manifest bytes.
type BuiltSnapshot = (SnapshotMeta<NodeId, BasicNode>, Vec<u8>);

/// What readers see: the state and the log position it reflects, together.
struct Published {
    state: Arc<DbState>,
    last_applied: Option<LogId<NodeId>>,
    last_membership: StoredMembership<NodeId, BasicNode>,
}

/// State shared by the state machine, its snapshot builders and the store.
pub struct Shared {
    data_dir: PathBuf,
    files: Arc<TableStore>,
    /// The files the current manifest names, by path: a snapshot reuses
    /// the entries of files it keeps.
    file_entries: Mutex<HashMap<String, FileEntry>>,
    published: RwLock<Published>,
    current_snapshot: Mutex<Option<BuiltSnapshot>>,
    /// Bytes of rows applied since the last snapshot began.
    unflushed_bytes: AtomicU64,
    /// Snapshots are built one at a time.
    build_lock: tokio::sync::Mutex<()>,
    /// Held while a batch of entries applies and while a snapshot points
    /// the state at its new files, so neither overwrites the other's change.
    change_lock: Mutex<()>,
    /// Told each time the published state changes (see `Store::changes`).
    changed: tokio::sync::watch::Sender<()>,
    /// Where applied notifications go; none are kept before there is one.
    notification_sink: RwLock<Option<Arc<dyn NotificationSink>>>,
}

impl Shared {
    /// Loads the last snapshot from the data directory, if there is one,
    /// with its files from `files`.
    pub async fn open(data_dir: &Path, files: TableStore) -> Result<Self> {
        let files = Arc::new(files);
        let manifest_path = data_dir.join(MANIFEST_FILE);
        let (published, snapshot, entries) = match fs::read(&manifest_path) {
            Ok(bytes) => {
                let manifest: Manifest = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::corrupt(manifest_path.display().to_string(), e))?;
                if manifest.format_version != MANIFEST_FORMAT_VERSION {
                    return Err(Error::corrupt(
                        manifest_path.display().to_string(),
                        format!("unknown format version {}", manifest.format_version),
                    ));
                }
                let state = load_state(&files, &manifest).await?;
                remove_unreferenced_files(&files, &manifest).await?;
                let meta = SnapshotMeta {
                    last_log_id: manifest.last_applied,
                    last_membership: manifest.last_membership.clone(),
                    snapshot_id: manifest.snapshot_id.clone(),
                };
                let entries = manifest_entries(&manifest);
                (
                    Published {
                        state: Arc::new(state),
                        last_applied: manifest.last_applied,
                        last_membership: manifest.last_membership,
                    },
                    Some((meta, bytes)),
                    entries,
                )
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
                Published {
                    state: Arc::new(DbState::default()),
                    last_applied: None,
                    last_membership: StoredMembership::default(),
                },
                None,
                HashMap::new(),
            ),
            Err(e) => return Err(Error::io(&manifest_path, e)),
        };
        Ok(Shared {
            data_dir: data_dir.to_path_buf(),
            files,
            file_entries: Mutex::new(entries),
            published: RwLock::new(published),
            current_snapshot: Mutex::new(snapshot),
            unflushed_bytes: AtomicU64::new(0),
            build_lock: tokio::sync::Mutex::new(()),
            change_lock: Mutex::new(()),
            changed: tokio::sync::watch::Sender::new(()),
            notification_sink: RwLock::new(None),
        })
    }

    /// Sends the notifications applied from now on to `sink`.
    pub fn set_notification_sink(&self, sink: Arc<dyn NotificationSink>) {
        *self.notification_sink.write().expect("lock poisoned") = Some(sink);
    }

    pub fn state(&self) -> Arc<DbState> {
        self.published.read().expect("lock poisoned").state.clone()
    }

    /// The index of the last log entry the published state reflects.
    pub fn last_applied_index(&self) -> u64 {
        let p = self.published.read().expect("lock poisoned");
        p.last_applied.map_or(0, |l| l.index)
    }

    /// What tells of each change to the published state.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<()> {
        self.changed.subscribe()
    }

    pub fn unflushed_bytes(&self) -> u64 {
        self.unflushed_bytes.load(Ordering::Relaxed)
    }

    pub fn data_dir(&self) -> &PathBuf {
        &self.data_dir
    }

    pub fn files(&self) -> Arc<TableStore> {
        self.files.clone()
    }

    /// Writes a snapshot of the currently published state.
    async fn build(&self) -> Result<BuiltSnapshot> {
        let _one_at_a_time = self.build_lock.lock().await;
        let (state, last_applied, last_membership) = {
            let p = self.published.read().expect("lock poisoned");
            (p.state.clone(), p.last_applied, p.last_membership.clone())
        };
        self.unflushed_bytes.store(0, Ordering::Relaxed);
        let snapshot_id = format!(
            "{}-{}",
            last_applied.map(|l| l.index).unwrap_or(0),
            unique_suffix()
        );
        let previous = self.file_entries.lock().expect("lock poisoned").clone();
        let sid = snapshot_id.clone();
        let encode_state = state.clone();
        let encoded =
            tokio::task::spawn_blocking(move || encode_snapshot(&encode_state, &sid, &previous))
                .await
                .map_err(|e| Error::Raft(format!("snapshot task failed: {e}")))??;
        for file in encoded.pending {
            self.files.put(&file.path, file.bytes, file.cache).await?;
        }
        let manifest = Manifest {
            format_version: MANIFEST_FORMAT_VERSION,
            snapshot_id: snapshot_id.clone(),
            last_applied,
            last_membership: last_membership.clone(),
            catalog: (*state.catalog).clone(),
            tables: encoded.tables,
            stages: encoded.stages,
            objects: encoded.objects,
            advisory_locks: state.locks.held().collect(),
            lock_waits: state.locks.waiting().collect(),
        };
        let bytes = serde_json::to_vec_pretty(&manifest).expect("manifests serialize");
        write_atomic(&self.data_dir.join(MANIFEST_FILE), &bytes)?;
        *self.file_entries.lock().expect("lock poisoned") = manifest_entries(&manifest);
        self.adopt_files(&encoded.written, &encoded.written_chunks);
        remove_unreferenced_files(&self.files, &manifest).await?;
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership,
            snapshot_id,
        };
        *self.current_snapshot.lock().expect("lock poisoned") = Some((meta.clone(), bytes.clone()));
        Ok((meta, bytes))
    }

    /// Packs the current snapshot for another node: a header, the manifest,
    /// then each file it names (path and bytes). Holds off new snapshots
    /// meanwhile, which would remove files the manifest names.
    async fn pack(&self) -> Result<Option<(SnapshotMeta<NodeId, BasicNode>, tokio::fs::File)>> {
        let _one_at_a_time = self.build_lock.lock().await;
        let current = self.current_snapshot.lock().expect("lock poisoned").clone();
        let Some((meta, manifest_bytes)) = current else {
            return Ok(None);
        };
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| Error::corrupt("snapshot manifest", e))?;
        let entries = manifest_entries(&manifest);
        let mut file = scratch_file(&self.data_dir)?;
        let scratch = self.data_dir.join("(snapshot being sent)");
        let io = |e| Error::io(&scratch, e);
        file.write_all(PACK_MAGIC).await.map_err(io)?;
        file.write_u64(manifest_bytes.len() as u64)
            .await
            .map_err(io)?;
        file.write_all(&manifest_bytes).await.map_err(io)?;
        file.write_u32(entries.len() as u32).await.map_err(io)?;
        for path in entries.keys() {
            let bytes = self.files.get(path).await?;
            file.write_u32(path.len() as u32).await.map_err(io)?;
            file.write_all(path.as_bytes()).await.map_err(io)?;
            file.write_u64(bytes.len() as u64).await.map_err(io)?;
            file.write_all(&bytes).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        file.seek(std::io::SeekFrom::Start(0)).await.map_err(io)?;
        Ok(Some((meta, file)))
    }

    /// Installs what [`Shared::pack`] packed on another node. The files go
    /// in first under their own (unique) names; the manifest is renamed into
    /// place only once every file has been read back and checked, so a
    /// crash midway leaves this node's previous snapshot in force.
    async fn install(
        &self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        mut file: tokio::fs::File,
    ) -> Result<()> {
        let _one_at_a_time = self.build_lock.lock().await;
        let scratch = self.data_dir.join("(snapshot being received)");
        let io = |e| Error::io(&scratch, e);
        file.seek(std::io::SeekFrom::Start(0)).await.map_err(io)?;
        let mut magic = [0u8; PACK_MAGIC.len()];
        file.read_exact(&mut magic).await.map_err(io)?;
        if magic != *PACK_MAGIC {
            return Err(Error::corrupt("received snapshot", "not a ciab snapshot"));
        }
        let manifest_len = file.read_u64().await.map_err(io)?;
        let manifest_bytes = read_bounded(&mut file, manifest_len).await.map_err(io)?;
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| Error::corrupt("received snapshot manifest", e))?;
        if manifest.format_version != MANIFEST_FORMAT_VERSION {
            return Err(Error::corrupt(
                "received snapshot manifest",
                format!("unknown format version {}", manifest.format_version),
            ));
        }
        let expected = manifest_entries(&manifest);
        let count = file.read_u32().await.map_err(io)?;
        for _ in 0..count {
            let path_len = file.read_u32().await.map_err(io)?;
            let path = read_bounded(&mut file, u64::from(path_len))
                .await
                .map_err(io)?;
            let path = String::from_utf8(path)
                .map_err(|e| Error::corrupt("received snapshot file name", e))?;
            if !expected.contains_key(&path) {
                return Err(Error::corrupt(
                    "received snapshot",
                    format!("{path} is not in its manifest"),
                ));
            }
            let len = file.read_u64().await.map_err(io)?;
            let bytes = read_bounded(&mut file, len).await.map_err(io)?;
            // Kept: the load below reads them back.
            self.files.put(&path, bytes.into(), PageCache::Keep).await?;
        }
        // Checks every file's size and checksum against the manifest.
        let state = load_state(&self.files, &manifest).await?;
        write_atomic(&self.data_dir.join(MANIFEST_FILE), &manifest_bytes)?;
        *self.file_entries.lock().expect("lock poisoned") = expected;
        remove_unreferenced_files(&self.files, &manifest).await?;
        let _no_apply = self.change_lock.lock().expect("lock poisoned");
        let mut p = self.published.write().expect("lock poisoned");
        p.state = Arc::new(state);
        p.last_applied = meta.last_log_id;
        p.last_membership = meta.last_membership.clone();
        self.unflushed_bytes.store(0, Ordering::Relaxed);
        *self.current_snapshot.lock().expect("lock poisoned") =
            Some((meta.clone(), manifest_bytes));
        drop(p);
        self.changed.send_replace(());
        Ok(())
    }

    /// Points the live state at the files a snapshot wrote, where the live
    /// segments are still the very ones written (nothing changed them since).
    fn adopt_files(&self, written: &[WrittenRun], written_chunks: &[WrittenChunks]) {
        let _no_apply = self.change_lock.lock().expect("lock poisoned");
        let mut p = self.published.write().expect("lock poisoned");
        let mut state = (*p.state).clone();
        for run in written {
            let segments = match run.owner {
                Owner::Table(id) => state
                    .tables
                    .get_mut(&id)
                    .map(|d| &mut Arc::make_mut(d).segments),
                Owner::Stage(id) => state
                    .staged
                    .get_mut(&id)
                    .map(|s| &mut Arc::make_mut(s).segments),
            };
            if let Some(segments) = segments {
                replace_run(segments, &run.sources, &run.merged);
            }
        }
        let objects = &mut state.objects;
        for run in written_chunks {
            let chunks = match &run.owner {
                ChunkOwner::Object { bucket, key } => objects
                    .buckets
                    .get_mut(bucket)
                    .and_then(|b| b.objects.get_mut(key))
                    .map(|o| &mut Arc::make_mut(o).blob.chunks),
                ChunkOwner::Upload(id) => objects.uploads.get_mut(id).map(|b| &mut b.chunks),
            };
            if let Some(chunks) = chunks {
                replace_run(chunks, &run.sources, &run.merged);
            }
        }
        p.state = Arc::new(state);
    }
}

/// Replaces `sources` with `merged` where `items` still hold those very
/// ones in a row (nothing changed them since the snapshot read them).
fn replace_run<T>(items: &mut Vec<Arc<T>>, sources: &[Arc<T>], merged: &Arc<T>) {
    let Some(start) = items.iter().position(|s| Arc::ptr_eq(s, &sources[0])) else {
        return;
    };
    let end = start + sources.len();
    if end <= items.len()
        && items[start..end]
            .iter()
            .zip(sources)
            .all(|(a, b)| Arc::ptr_eq(a, b))
    {
        items.splice(start..end, [merged.clone()]);
    }
}

/// Whose chunks a snapshot file holds.
#[derive(Debug, Clone)]
enum ChunkOwner {
    Object { bucket: String, key: String },
    Upload(StageId),
}

/// Adjacent chunks of object bytes written as one file by a snapshot.
struct WrittenChunks {
    owner: ChunkOwner,
    sources: Vec<Arc<Chunk>>,
    merged: Arc<Chunk>,
}

/// Whose segments a snapshot file holds.
#[derive(Debug, Clone, Copy)]
enum Owner {
    Table(TableId),
    Stage(StageId),
}

/// Adjacent segments written as one file by a snapshot.
struct WrittenRun {
    owner: Owner,
    sources: Vec<Arc<Segment>>,
    merged: Arc<Segment>,
}

/// An unnamed file in the data directory (so on the same disk): it vanishes
/// when closed, also when the process dies.
fn scratch_file(data_dir: &Path) -> Result<tokio::fs::File> {
    let file = tempfile::tempfile_in(data_dir).map_err(|e| Error::io(data_dir, e))?;
    Ok(tokio::fs::File::from_std(file))
}

async fn read_bounded(file: &mut tokio::fs::File, len: u64) -> std::io::Result<Vec<u8>> {
    if len > PACK_ITEM_BYTES_MAX {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a packed item of {len} bytes is over the limit"),
        ));
    }
    let mut bytes = vec![0; len as usize];
    file.read_exact(&mut bytes).await?;
    Ok(bytes)
}

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_nanos();
    format!("{nanos:x}")
}

/// A file a snapshot writes.
struct PendingFile {
    path: String,
    bytes: bytes::Bytes,
    cache: PageCache,
}

/// What a snapshot writes and what its manifest says.
struct Encoded {
    /// The files to store.
    pending: Vec<PendingFile>,
    /// The segments and chunks the files replace.
    written: Vec<WrittenRun>,
    written_chunks: Vec<WrittenChunks>,
    tables: BTreeMap<TableId, TableFiles>,
    stages: BTreeMap<StageId, StageFiles>,
    objects: ObjectFiles,
}

/// Encodes the state's unwritten segments as Parquet, and its object bytes
/// in memory as files of their own.
fn encode_snapshot(
    state: &DbState,
    snapshot_id: &str,
    previous: &HashMap<String, FileEntry>,
) -> Result<Encoded> {
    let mut tables = BTreeMap::new();
    let mut stages = BTreeMap::new();
    let mut pending = Vec::new();
    let mut written = Vec::new();
    let mut file_seq = 0u64;
    let mut encode = |owner: Owner, runs: Vec<Vec<Arc<Segment>>>| -> Result<Vec<FileEntry>> {
        let mut files = Vec::new();
        for run in runs {
            if let [only] = run.as_slice()
                && let Some(path) = &only.file
            {
                let mut entry = kept_entry(previous, path)?;
                // A staged file the table took over gains its row ids here.
                entry.first_rowid = only.implicit_rowids.then(|| only.rowids().value(0));
                files.push(entry);
                continue;
            }
            file_seq += 1;
            let partition = run[0].partition;
            let path = match (owner, partition) {
                (Owner::Table(id), None) => {
                    format!("tables/{}/{snapshot_id}-{file_seq}.parquet", id.0)
                }
                (Owner::Table(id), Some(p)) => format!(
                    "tables/{}/{}/{snapshot_id}-{file_seq}.parquet",
                    id.0,
                    partition_dir(p)
                ),
                (Owner::Stage(id), _) => {
                    format!("stages/{}/{snapshot_id}-{file_seq}.parquet", id.0)
                }
            };
            let batches: Vec<&RecordBatch> = run.iter().map(|s| &s.batch).collect();
            let mut merged = concat_batches(&batches[0].schema(), batches)?;
            if let (Owner::Table(id), Some(_)) = (owner, partition) {
                merged = sorted_by_time(state, id, merged)?;
            }
            let segment = Segment::in_partition(merged, Some(path.clone()), partition);
            if let [only] = run.as_slice() {
                segment.take_analysis(only);
            }
            // Here, in the background, rather than in a query's planning;
            // after the encoding, which works some bounds out on its way.
            let bytes = encode_parquet(&segment)?;
            segment.analyze();
            let merged = &segment.batch;
            files.push(FileEntry {
                path: path.clone(),
                rows: merged.num_rows() as u64,
                bytes: bytes.len() as u64,
                crc32: crc32fast::hash(&bytes),
                partition,
                first_rowid: None,
                block_crc32s: Vec::new(),
            });
            written.push(WrittenRun {
                owner,
                sources: run.clone(),
                merged: Arc::new(segment),
            });
            pending.push(PendingFile {
                path,
                bytes: bytes.into(),
                cache: PageCache::Forget,
            });
        }
        Ok(files)
    };
    for (&id, data) in &state.tables {
        let files = encode(Owner::Table(id), plan_runs(&data.segments))?;
        tables.insert(
            id,
            TableFiles {
                next_rowid: data.next_rowid,
                files,
            },
        );
    }
    for (&id, stage) in &state.staged {
        // Merged as a table's are: the table takes the files over as they
        // are once the stage is published.
        let files = encode(Owner::Stage(id), plan_runs(&stage.segments))?;
        stages.insert(
            id,
            StageFiles {
                table: stage.table,
                version: stage.version,
                files,
            },
        );
    }
    let mut written_chunks = Vec::new();
    let mut encode_blob = |owner: ChunkOwner, blob: &Blob| -> Result<Vec<FileEntry>> {
        let dir = match &owner {
            ChunkOwner::Object { bucket, .. } => format!("objects/{bucket}"),
            ChunkOwner::Upload(id) => format!("uploads/{}", id.0),
        };
        let mut files = Vec::new();
        for run in plan_chunk_runs(&blob.chunks) {
            if let [only] = run.as_slice()
                && let Chunk::File { path, .. } = &**only
            {
                files.push(kept_entry(previous, path)?);
                continue;
            }
            file_seq += 1;
            let path = format!("{dir}/{snapshot_id}-{file_seq}.bin");
            let mut bytes = Vec::with_capacity(run.iter().map(|c| c.len() as usize).sum());
            for chunk in &run {
                let Chunk::Memory(b) = &**chunk else {
                    unreachable!("runs merge chunks in memory only")
                };
                bytes.extend_from_slice(b);
            }
            let block_crc32s = crate::objects::block_crc32s(&bytes);
            let entry = FileEntry {
                path: path.clone(),
                rows: 0,
                bytes: bytes.len() as u64,
                crc32: crc32fast::hash(&bytes),
                partition: None,
                first_rowid: None,
                block_crc32s: block_crc32s.to_vec(),
            };
            written_chunks.push(WrittenChunks {
                owner: owner.clone(),
                sources: run,
                merged: Arc::new(Chunk::File {
                    path: path.clone(),
                    bytes: entry.bytes,
                    crc32: entry.crc32,
                    block_crc32s,
                }),
            });
            files.push(entry);
            pending.push(PendingFile {
                path,
                bytes: bytes.into(),
                cache: PageCache::Keep,
            });
        }
        Ok(files)
    };
    let mut objects = ObjectFiles::default();
    for (name, bucket) in &state.objects.buckets {
        let mut entries = BTreeMap::new();
        for (key, object) in &bucket.objects {
            let owner = ChunkOwner::Object {
                bucket: name.clone(),
                key: key.clone(),
            };
            let files = encode_blob(owner, &object.blob)?;
            let meta = object.meta.clone();
            entries.insert(key.clone(), ObjectEntry { meta, files });
        }
        let files = BucketFiles {
            created_us: bucket.created_us,
            objects: entries,
        };
        objects.buckets.insert(name.clone(), files);
    }
    for (&id, blob) in &state.objects.uploads {
        let files = encode_blob(ChunkOwner::Upload(id), blob)?;
        objects.uploads.insert(id, files);
    }
    for (id, multipart) in &state.objects.multiparts {
        objects.multiparts.insert(id.clone(), (**multipart).clone());
    }
    Ok(Encoded {
        pending,
        written,
        written_chunks,
        tables,
        stages,
        objects,
    })
}

/// The manifest entry of a file a snapshot keeps as it is.
fn kept_entry(previous: &HashMap<String, FileEntry>, path: &str) -> Result<FileEntry> {
    previous
        .get(path)
        .cloned()
        .ok_or_else(|| Error::corrupt("manifest", format!("no entry for the kept file {path}")))
}

/// Groups a blob's chunks into files: a chunk with a file stays as it is;
/// runs of chunks in memory merge up to [`OBJECT_FILE_BYTES_MAX`].
fn plan_chunk_runs(chunks: &[Arc<Chunk>]) -> Vec<Vec<Arc<Chunk>>> {
    let mut runs: Vec<Vec<Arc<Chunk>>> = Vec::new();
    let mut current: Vec<Arc<Chunk>> = Vec::new();
    let mut current_bytes = 0;
    for chunk in chunks {
        let in_file = matches!(**chunk, Chunk::File { .. });
        if (in_file || current_bytes + chunk.len() > OBJECT_FILE_BYTES_MAX) && !current.is_empty() {
            runs.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        if in_file {
            runs.push(vec![chunk.clone()]);
        } else {
            current.push(chunk.clone());
            current_bytes += chunk.len();
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

/// A time-series partition's directory: its start in UTC, as
/// `2026-11-30T000000Z`, which sorts as time does.
fn partition_dir(partition_us: i64) -> String {
    match chrono::DateTime::from_timestamp_micros(partition_us) {
        Some(t) => t.format("%Y-%m-%dT%H%M%SZ").to_string(),
        None => format!("{partition_us}us"),
    }
}

/// A time series' file holds its rows in time order (then row id order),
/// so that tools reading the file, and Parquet's page statistics, see
/// time ranges; late rows are merged into place here.
fn sorted_by_time(state: &DbState, id: TableId, batch: RecordBatch) -> Result<RecordBatch> {
    let (_, def) = state
        .catalog
        .table_by_id(id)
        .expect("a table with data is in the catalog");
    let ts = def
        .time_series
        .as_ref()
        .expect("segments with partitions belong to a time series");
    let time = def
        .column_index(&ts.time_column)
        .expect("a time series' time column exists");
    let keys = [time, batch.num_columns() - 1].map(|c| SortColumn {
        values: batch.column(c).clone(),
        options: None,
    });
    let order = lexsort_to_indices(&keys, None)?;
    if order.values().is_sorted() {
        return Ok(batch);
    }
    Ok(take_record_batch(&batch, &order)?)
}

/// Groups segments into files: a large segment that already has a file stays
/// as it is; runs of small or unwritten neighbours merge up to the target
/// size. A file never mixes a time series' partitions.
fn plan_runs(segments: &[Arc<Segment>]) -> Vec<Vec<Arc<Segment>>> {
    let mut runs: Vec<Vec<Arc<Segment>>> = Vec::new();
    let mut current: Vec<Arc<Segment>> = Vec::new();
    let mut current_rows = 0;
    for segment in segments {
        let rows = segment.batch.num_rows();
        let settled = segment.file.is_some() && rows >= SEGMENT_ROWS_TARGET / 2;
        let other_partition = current
            .last()
            .is_some_and(|c| c.partition != segment.partition);
        if (settled || other_partition || current_rows + rows > SEGMENT_ROWS_TARGET)
            && !current.is_empty()
        {
            runs.push(std::mem::take(&mut current));
            current_rows = 0;
        }
        if settled {
            runs.push(vec![segment.clone()]);
        } else {
            current.push(segment.clone());
            current_rows += rows;
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

/// A segment's rows as a Parquet file, with each column's distinct-value
/// sketch in the file's metadata (under [`DISTINCT_SKETCHES_KEY`], one per
/// column, comma-separated, empty where there is none), so that a restart
/// need not work them out again. The segment takes the bounds the file's
/// statistics hold ([`Segment::take_bounds`]).
fn encode_parquet(segment: &Segment) -> Result<Vec<u8>> {
    let batch = &segment.batch;
    let sketches = (0..batch.num_columns())
        .map(|i| segment.distinct(i).map(|s| s.to_hex()).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(",");
    let mut props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_key_value_metadata(Some(vec![KeyValue::new(
            DISTINCT_SKETCHES_KEY.to_string(),
            sketches,
        )]));
    for (i, field) in batch.schema().fields().iter().enumerate() {
        if !dictionary_pays(segment, i) {
            let path = ColumnPath::new(vec![field.name().clone()]);
            props = props.set_column_dictionary_enabled(path, false);
        }
    }
    let props = props.build();
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props))?;
    writer.write(batch)?;
    let metadata = writer.finish()?;
    segment.take_bounds(&metadata, &batch.schema());
    // The file is whole in the buffer once finished (`into_inner` would
    // write its footer a second time).
    Ok(std::mem::take(writer.inner_mut()))
}

/// Whether column `i` of `segment` is worth a Parquet dictionary: its
/// values repeat (an average value at least [`DICTIONARY_REPEATS_MIN`]
/// times) and the distinct ones fit one dictionary page, past which the
/// writer gives the dictionary up anyway. The writer interns every value
/// of a column with a dictionary; for columns of mostly distinct values
/// (prices, comments, keys) that was work for nothing, and leaving it out
/// took a sixth off the CPU time of a COPY of TPC-H's lineitem.
fn dictionary_pays(segment: &Segment, i: usize) -> bool {
    let column = segment.batch.column(i);
    let rows = column.len() - column.null_count();
    let Some(sketch) = segment.distinct(i) else {
        return true;
    };
    let distinct = sketch.estimate().max(1);
    // The mean bytes of a value: exact for fixed widths; for strings and
    // binaries nulls and offsets count too, a slight overestimate.
    let value_bytes = crate::state::column_bytes(column) / column.len().max(1);
    distinct * DICTIONARY_REPEATS_MIN <= rows
        && distinct * value_bytes <= DEFAULT_DICTIONARY_PAGE_SIZE_LIMIT
}

/// Gives a segment read from a file the sketches its metadata holds. A
/// file without them (or with a damaged entry) leaves those columns to be
/// worked out when a query first asks.
fn read_sketches(segment: &Segment, metadata: &FileMetaData) {
    let Some(text) = metadata
        .key_value_metadata()
        .into_iter()
        .flatten()
        .find(|kv| kv.key == DISTINCT_SKETCHES_KEY)
        .and_then(|kv| kv.value.as_deref())
    else {
        return;
    };
    for (i, hex) in text
        .split(',')
        .enumerate()
        .take(segment.batch.num_columns())
    {
        if let Some(sketch) = DistinctSketch::from_hex(hex) {
            segment.set_distinct(i, sketch);
        }
    }
}

fn manifest_entries(manifest: &Manifest) -> HashMap<String, FileEntry> {
    let tables = manifest.tables.values().flat_map(|t| &t.files);
    let stages = manifest.stages.values().flat_map(|s| &s.files);
    let objects = &manifest.objects;
    let object_files = objects
        .buckets
        .values()
        .flat_map(|b| b.objects.values())
        .flat_map(|o| &o.files);
    let upload_files = objects.uploads.values().flatten();
    tables
        .chain(stages)
        .chain(object_files)
        .chain(upload_files)
        .map(|f| (f.path.clone(), f.clone()))
        .collect()
}

/// Object storage as the manifest names it. Files of object bytes are read
/// when the object is; here each is only checked to be there, at its size.
async fn load_objects(files: &TableStore, manifest: &ObjectFiles) -> Result<Objects> {
    let mut sizes = files.sizes("objects").await?;
    sizes.extend(files.sizes("uploads").await?);
    let blob = |entries: &[FileEntry]| -> Result<Blob> {
        let mut chunks = Vec::with_capacity(entries.len());
        for entry in entries {
            if sizes.get(&entry.path) != Some(&entry.bytes) {
                return Err(Error::corrupt(
                    entry.path.clone(),
                    format!(
                        "a file of object bytes is missing or not {} bytes",
                        entry.bytes
                    ),
                ));
            }
            chunks.push(Arc::new(Chunk::File {
                path: entry.path.clone(),
                bytes: entry.bytes,
                crc32: entry.crc32,
                block_crc32s: entry.block_crc32s.as_slice().into(),
            }));
        }
        Ok(Blob { chunks })
    };
    let mut objects = Objects::default();
    for (name, bucket) in &manifest.buckets {
        let mut kept = imbl::OrdMap::new();
        for (key, entry) in &bucket.objects {
            let object = Object {
                meta: entry.meta.clone(),
                blob: blob(&entry.files)?,
            };
            kept.insert(key.clone(), Arc::new(object));
        }
        let bucket = Bucket {
            created_us: bucket.created_us,
            objects: kept,
        };
        objects.buckets.insert(name.clone(), bucket);
    }
    for (&id, entries) in &manifest.uploads {
        objects.uploads.insert(id, blob(entries)?);
    }
    for (id, multipart) in &manifest.multiparts {
        objects
            .multiparts
            .insert(id.clone(), Arc::new(multipart.clone()));
    }
    Ok(objects)
}

async fn load_state(files: &TableStore, manifest: &Manifest) -> Result<DbState> {
    let mut catalog = manifest.catalog.clone();
    catalog.number_objects();
    let catalog = Arc::new(catalog);
    let mut tables = BTreeMap::new();
    for (&id, table_files) in &manifest.tables {
        let (tref, def) = catalog.table_by_id(id).ok_or_else(|| {
            Error::corrupt("manifest", format!("files for unknown table {}", id.0))
        })?;
        let mut segments = Vec::new();
        for entry in &table_files.files {
            let what = format!("a data file of table {tref}");
            segments.push(read_segment(files, entry, def.stored_schema(), &what).await?);
        }
        let data = TableData::new(def, segments, table_files.next_rowid)?;
        tables.insert(id, Arc::new(data));
    }
    // Tables created but never written have no files entry yet.
    for db in catalog.databases.values() {
        for schema in db.schemas.values() {
            for def in schema.tables.values() {
                if let std::collections::btree_map::Entry::Vacant(v) = tables.entry(def.id) {
                    v.insert(Arc::new(TableData::new(def, Vec::new(), 0)?));
                }
            }
        }
    }
    let mut staged = BTreeMap::new();
    for (&id, stage) in &manifest.stages {
        // A stage shaped for an older version of its table can never be
        // published (the table changed under it): it is not loaded at all.
        let Some((tref, def)) = catalog.table_by_id(stage.table) else {
            continue;
        };
        if def.version != stage.version {
            continue;
        }
        let mut segments = Vec::new();
        for entry in &stage.files {
            let what = format!("a staged file of table {tref}");
            segments.push(read_segment(files, entry, def.schema(), &what).await?);
        }
        let stage = Stage {
            table: stage.table,
            version: stage.version,
            segments,
        };
        staged.insert(id, Arc::new(stage));
    }
    Ok(DbState {
        catalog,
        tables,
        staged,
        objects: load_objects(files, &manifest.objects).await?,
        locks: Arc::new(AdvisoryLocks::from_entries(
            &manifest.advisory_locks,
            &manifest.lock_waits,
        )),
    })
}

/// Reads one Parquet file the manifest names, checking its size, checksum
/// and row count.
async fn read_segment(
    files: &TableStore,
    entry: &FileEntry,
    schema: SchemaRef,
    what: &str,
) -> Result<Arc<Segment>> {
    let path = &entry.path;
    let bytes = files.get(path).await?;
    if bytes.len() as u64 != entry.bytes || crc32fast::hash(&bytes) != entry.crc32 {
        return Err(Error::corrupt(
            path.clone(),
            format!("checksum mismatch in {what}"),
        ));
    }
    // A file without row ids holds every column but the last.
    let file_schema = match entry.first_rowid {
        Some(_) => Arc::new(schema.project(&(0..schema.fields().len() - 1).collect::<Vec<_>>())?),
        None => schema.clone(),
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let (parquet, written_schema) = (builder.metadata().clone(), builder.schema().clone());
    let batches = builder
        .build()?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let batch = concat_batches(&file_schema, &batches).or_else(|_| {
        // Parquet keeps field metadata; a plain cast restores ours.
        let cast = batches
            .iter()
            .map(|b| RecordBatch::try_new(file_schema.clone(), b.columns().to_vec()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        concat_batches(&file_schema, &cast)
    })?;
    if batch.num_rows() as u64 != entry.rows {
        return Err(Error::corrupt(
            path.clone(),
            format!("expected {} rows, found {}", entry.rows, batch.num_rows()),
        ));
    }
    let mut columns = batch.columns().to_vec();
    let segment = match entry.first_rowid {
        None => Segment::in_partition(
            RecordBatch::try_new(schema, columns)?,
            Some(entry.path.clone()),
            entry.partition,
        ),
        Some(first) => {
            columns.push(Arc::new(UInt64Array::from_iter_values(
                first..first + entry.rows,
            )));
            let batch = RecordBatch::try_new(schema, columns)?;
            Segment::with_implicit_rowids(batch, entry.path.clone())
        }
    };
    read_sketches(&segment, parquet.file_metadata());
    segment.take_bounds(&parquet, &written_schema);
    Ok(Arc::new(segment))
}

/// Removes table files that the manifest does not name: leftovers of an
/// interrupted snapshot, or files replaced by a newer one.
async fn remove_unreferenced_files(files: &TableStore, manifest: &Manifest) -> Result<()> {
    let referenced = manifest_entries(manifest);
    for dir in ["tables", "stages", "objects", "uploads"] {
        for path in files.list(dir).await? {
            if !referenced.contains_key(&path) {
                files.delete(&path).await?;
            }
        }
    }
    Ok(())
}

pub struct StateMachine {
    shared: Arc<Shared>,
}

impl StateMachine {
    pub fn new(shared: Arc<Shared>) -> Self {
        StateMachine { shared }
    }
}

pub struct SnapshotBuilder {
    shared: Arc<Shared>,
}

fn sm_error(e: Error) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(AnyError::new(&e)).into()
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(
        &mut self,
    ) -> std::result::Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let (meta, _manifest) = self.shared.build().await.map_err(sm_error)?;
        // openraft 0.9 keeps only the metadata of a snapshot it had built
        // (core/sm/worker.rs); what a follower receives is packed when it
        // is sent, by `get_current_snapshot`. So the files are not copied
        // at every flush.
        let unread = scratch_file(&self.shared.data_dir).map_err(sm_error)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(unread),
        })
    }
}

/// Row bytes a command adds to what is not yet flushed to Parquet.
pub(crate) fn command_bytes(command: &Command) -> u64 {
    match command {
        Command::Batch { commands } | Command::Transaction { commands, .. } => {
            commands.iter().map(command_bytes).sum()
        }
        Command::Write { ops } => write_bytes(ops),
        Command::Stage { rows, .. } => rows.len() as u64,
        Command::Object(op) => op.data_bytes(),
        _ => 0,
    }
}

/// About how many bytes of rows a write carries.
pub(crate) fn write_bytes(ops: &[WriteOp]) -> u64 {
    ops.iter()
        .map(|op| match op {
            WriteOp::Insert { rows, .. } => rows.len() as u64,
            WriteOp::Delete { rowids, .. } => 8 * rowids.len() as u64,
            WriteOp::Publish { .. } | WriteOp::Unchanged { .. } => 0,
        })
        .sum()
}

/// Applies one command of an entry, or says why it was refused.
fn apply_command(state: &mut DbState, command: &Command) -> CommandResponse {
    match state.apply(command) {
        Ok(applied) => Ok(applied),
        Err(Error::Rejected(r)) => Err(r),
        // Malformed rows inside a command are refused alike on every
        // replica, so this too is deterministic.
        Err(e) => Err(Rejection::new(RejectionKind::Internal, e.to_string())),
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> std::result::Result<
        (Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>),
        StorageError<NodeId>,
    > {
        let p = self.shared.published.read().expect("lock poisoned");
        Ok((p.last_applied, p.last_membership.clone()))
    }

    async fn apply<I>(
        &mut self,
        entries: I,
    ) -> std::result::Result<Vec<EntryResponse>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        // Readers keep taking snapshots while a batch applies (a published
        // bulk load can take seconds): the lock is held only to swap in the
        // result.
        let _no_adopt = self.shared.change_lock.lock().expect("lock poisoned");
        let (mut state, mut last_applied, mut last_membership) = {
            let p = self.shared.published.read().expect("lock poisoned");
            (
                (*p.state).clone(),
                p.last_applied,
                p.last_membership.clone(),
            )
        };
        let mut responses = Vec::new();
        let mut notified: Vec<(u64, Vec<Notification>)> = Vec::new();
        for entry in entries {
            last_applied = Some(entry.log_id);
            let response = match &entry.payload {
                EntryPayload::Blank => vec![Ok(Applied::default())],
                EntryPayload::Membership(m) => {
                    last_membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    vec![Ok(Applied::default())]
                }
                EntryPayload::Normal(command) => {
                    self.shared
                        .unflushed_bytes
                        .fetch_add(command_bytes(command), Ordering::Relaxed);
                    let commands = match command {
                        Command::Batch { commands } => commands.as_slice(),
                        command => std::slice::from_ref(command),
                    };
                    for command in commands {
                        if let Command::Notify { notifications } = command {
                            notified.push((entry.log_id.index, notifications.clone()));
                        }
                    }
                    commands
                        .iter()
                        .map(|c| apply_command(&mut state, c))
                        .collect()
                }
            };
            responses.push(response);
        }
        let mut p = self.shared.published.write().expect("lock poisoned");
        p.state = Arc::new(state);
        p.last_applied = last_applied;
        p.last_membership = last_membership;
        drop(p);
        self.shared.changed.send_replace(());
        // After the state is published: a listener that reads on being told
        // sees what the notifier committed.
        if !notified.is_empty()
            && let Some(sink) = &*self.shared.notification_sink.read().expect("lock poisoned")
        {
            for (index, notifications) in notified {
                sink.deliver(index, &notifications);
            }
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            shared: self.shared.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> std::result::Result<Box<tokio::fs::File>, StorageError<NodeId>> {
        Ok(Box::new(
            scratch_file(&self.shared.data_dir).map_err(sm_error)?,
        ))
    }

    /// Installs a snapshot another node sent: its files, then its
    /// manifest, then the state they hold replaces this node's.
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<tokio::fs::File>,
    ) -> std::result::Result<(), StorageError<NodeId>> {
        self.shared.install(meta, *snapshot).await.map_err(sm_error)
    }

    /// The last snapshot, packed for sending: its manifest and every file
    /// it names.
    async fn get_current_snapshot(
        &mut self,
    ) -> std::result::Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let packed = self.shared.pack().await.map_err(sm_error)?;
        Ok(packed.map(|(meta, file)| Snapshot {
            meta,
            snapshot: Box::new(file),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

    #[test]
    fn only_repeating_columns_get_a_dictionary() {
        let rows = 1000;
        let flags: StringArray = (0..rows).map(|i| Some(["A", "N", "R"][i % 3])).collect();
        let ids: Int64Array = (0..rows as i64).map(Some).collect();
        let batch = RecordBatch::try_from_iter([
            ("flag", Arc::new(flags) as _),
            ("id", Arc::new(ids) as _),
        ])
        .unwrap();
        let file = encode_parquet(&Segment::new(batch, None)).unwrap();
        let reader = SerializedFileReader::new(bytes::Bytes::from(file)).unwrap();
        let group = reader.metadata().row_group(0);
        assert!(group.column(0).dictionary_page_offset().is_some());
        assert!(group.column(1).dictionary_page_offset().is_none());
    }
}
