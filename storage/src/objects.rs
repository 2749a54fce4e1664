//! Object storage: buckets of named blobs (S3's model), kept in the
//! replicated state beside the tables.
//!
//! An object's bytes travel through the Raft log as rows do, in commands of
//! at most [`CHUNK_BYTES_MAX`], so every replica holds them and nothing
//! acknowledged is lost, while no entry, and no writer or reader, ever holds
//! a whole object:
//!
//! ```text
//!  body ─► BlobWriter ─► Append{upload, ≤ 1 MiB} ... ─► Put{bucket, key, [upload], meta}
//!          (MD5, size)        │ applied: a chunk in memory
//!                             ▼ snapshot
//!          objects/<bucket>/<snapshot>-<n>.bin   (chunks merged, up to 64 MiB a file)
//! ```
//!
//! A blob is a list of chunks, each either bytes still in memory (applied
//! since the last snapshot) or a file in the node's object store. A snapshot
//! writes the chunks in memory out as files, as it writes segments, and the
//! state then points at the files. Reading streams the chunks in order, a
//! file's bytes as they come. A multipart upload keeps each part as an
//! upload of its own until it completes; the object then takes the parts'
//! chunks in order, without copying a byte.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::ops::{Bound, Range};
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use imbl::OrdMap;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::command::{Applied, Command, StageId};
use crate::error::{Error, Rejection, RejectionKind, Result};
use crate::files::TableStore;
use crate::raft::Store;

/// Bytes of an object one log command carries.
pub const CHUNK_BYTES_MAX: usize = 1024 * 1024;
/// An object file has a CRC32 for each block of this many bytes, so that a
/// read of part of it checks the blocks it reads, not the whole file.
pub const CHECK_BLOCK_BYTES: u64 = 1024 * 1024;
/// A snapshot merges an object's chunks into files of up to this size.
pub const OBJECT_FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// S3's limit on a key's length, in UTF-8 bytes.
pub const KEY_BYTES_MAX: usize = 1024;
/// S3 numbers a multipart upload's parts from 1 to this.
pub const PART_NUMBER_MAX: u32 = 10_000;
/// Appends a writer has sent and not yet seen committed: the body is read
/// on while the log writes, with this many chunks held in memory at most.
const APPENDS_IN_FLIGHT_MAX: usize = 4;

/// Every bucket, and the uploads under way.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    pub buckets: OrdMap<String, Bucket>,
    /// Bytes written for an object or a part that is not complete yet.
    pub uploads: OrdMap<StageId, Blob>,
    /// Multipart uploads by their id.
    pub multiparts: OrdMap<String, Arc<Multipart>>,
}

#[derive(Debug, Clone)]
pub struct Bucket {
    /// Microseconds since 1970, by the proposer's clock.
    pub created_us: i64,
    pub objects: OrdMap<String, Arc<Object>>,
}

/// What S3's HEAD tells of an object. (Log entries carry it in bincode,
/// which has no field names: every field is always written.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub size: u64,
    /// The MD5 of the bytes in hex; for a multipart upload, the MD5 of the
    /// parts' MD5s, then `-` and the number of parts (as S3 has it).
    pub etag: String,
    pub content_type: Option<String>,
    /// Microseconds since 1970, by the proposer's clock.
    pub modified_us: i64,
    /// User metadata (S3's `x-amz-meta-*`).
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Object {
    pub meta: ObjectMeta,
    pub blob: Blob,
}

/// Bytes as chunks, in order.
#[derive(Debug, Clone, Default)]
pub struct Blob {
    pub chunks: Vec<Arc<Chunk>>,
}

impl Blob {
    pub fn len(&self) -> u64 {
        self.chunks.iter().map(|c| c.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug)]
pub enum Chunk {
    /// Applied since the last snapshot.
    Memory(Bytes),
    /// Written by a snapshot; the manifest names it with its size and
    /// checksums.
    File {
        path: String,
        bytes: u64,
        crc32: u32,
        /// The CRC32 of each [`CHECK_BLOCK_BYTES`] of the file, in order;
        /// empty for a file written before files had them.
        block_crc32s: Arc<[u32]>,
    },
}

impl Chunk {
    pub fn len(&self) -> u64 {
        match self {
            Chunk::Memory(b) => b.len() as u64,
            Chunk::File { bytes, .. } => *bytes,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Multipart {
    pub bucket: String,
    pub key: String,
    pub content_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub initiated_us: i64,
    pub parts: BTreeMap<u32, Part>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// The upload holding the part's bytes.
    pub upload: StageId,
    pub size: u64,
    /// The MD5 of the part's bytes, in hex.
    pub etag: String,
    pub modified_us: i64,
}

/// A change to object storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ObjectOp {
    CreateBucket {
        bucket: String,
        created_us: i64,
        if_not_exists: bool,
    },
    /// Only an empty bucket (no objects, no multipart uploads) is dropped.
    DropBucket {
        bucket: String,
    },
    /// Appends bytes to an upload; the first append makes it.
    Append {
        upload: StageId,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Drops an upload no object will take (its writer failed).
    Discard {
        upload: StageId,
    },
    /// Makes `key` the uploads' bytes, in order, then `inline`'s, replacing
    /// any object of that name. The uploads are used up.
    Put {
        bucket: String,
        key: String,
        uploads: Vec<StageId>,
        #[serde(with = "serde_bytes")]
        inline: Vec<u8>,
        meta: ObjectMeta,
        /// Makes the bucket if there is none (SQL's `object_put`); S3 says
        /// NoSuchBucket instead.
        create_bucket: bool,
    },
    /// Removes `key` if there is one (`Applied::rows` says whether).
    Delete {
        bucket: String,
        key: String,
    },
    CreateMultipart {
        id: String,
        multipart: Multipart,
    },
    /// Sets part `number` of a multipart upload, replacing an earlier one.
    PutPart {
        id: String,
        number: u32,
        part: Part,
    },
    AbortMultipart {
        id: String,
    },
    /// Makes the object from the listed parts, in order, and drops the rest.
    CompleteMultipart {
        id: String,
        parts: Vec<u32>,
        meta: ObjectMeta,
    },
    /// Makes `key` a copy of `from_key` in `from_bucket`, sharing its
    /// chunks (they never change once made), so no byte is copied. The
    /// proposer read the source to build `meta`; should the source have
    /// changed since (another ETag or time), the copy is refused rather
    /// than made of other bytes than the ones `meta` describes.
    Copy {
        from_bucket: String,
        from_key: String,
        /// The source's ETag and modification time when it was read.
        from_etag: String,
        from_modified_us: i64,
        bucket: String,
        key: String,
        meta: ObjectMeta,
    },
}

impl ObjectOp {
    /// Bytes of object data the op adds to what is not yet in files.
    pub(crate) fn data_bytes(&self) -> u64 {
        match self {
            ObjectOp::Append { data, .. } => data.len() as u64,
            ObjectOp::Put { inline, .. } => inline.len() as u64,
            _ => 0,
        }
    }
}

fn reject(kind: RejectionKind, message: impl Into<String>) -> Error {
    Rejection::new(kind, message).into()
}

fn no_bucket(bucket: &str) -> Error {
    reject(
        RejectionKind::NoSuchBucket,
        format!("bucket \"{bucket}\" does not exist"),
    )
}

fn no_upload(id: &str) -> Error {
    reject(
        RejectionKind::NoSuchUpload,
        format!("multipart upload \"{id}\" does not exist"),
    )
}

/// S3's rules for bucket names: 3 to 63 lowercase letters, digits, dots
/// and hyphens, starting and ending with a letter or digit. The name is
/// also a directory of the object store, so nothing else may pass.
fn check_bucket_name(bucket: &str) -> Result<()> {
    let valid = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric())
        && !bucket.contains("..");
    if valid {
        return Ok(());
    }
    Err(reject(
        RejectionKind::InvalidName,
        format!(
            "invalid bucket name \"{bucket}\": 3 to 63 lowercase letters, digits, dots and hyphens"
        ),
    ))
}

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > KEY_BYTES_MAX {
        return Err(reject(
            RejectionKind::InvalidName,
            format!("an object key is 1 to {KEY_BYTES_MAX} bytes long"),
        ));
    }
    Ok(())
}

impl Objects {
    pub fn bucket(&self, bucket: &str) -> Result<&Bucket> {
        self.buckets.get(bucket).ok_or_else(|| no_bucket(bucket))
    }

    pub fn object(&self, bucket: &str, key: &str) -> Result<&Arc<Object>> {
        self.bucket(bucket)?.objects.get(key).ok_or_else(|| {
            reject(
                RejectionKind::NoSuchKey,
                format!("object \"{key}\" does not exist in bucket \"{bucket}\""),
            )
        })
    }

    /// The op that copies an object as the state stands, and the copy's
    /// metadata: the source's, or a new content type and user metadata.
    pub fn copy(
        &self,
        (from_bucket, from_key): (&str, &str),
        (bucket, key): (&str, &str),
        replace: Option<(Option<String>, BTreeMap<String, String>)>,
        modified_us: i64,
    ) -> Result<(ObjectOp, ObjectMeta)> {
        self.bucket(bucket)?;
        let source = &self.object(from_bucket, from_key)?.meta;
        let (content_type, metadata) =
            replace.unwrap_or_else(|| (source.content_type.clone(), source.metadata.clone()));
        let meta = ObjectMeta {
            size: source.size,
            etag: source.etag.clone(),
            content_type,
            modified_us,
            metadata,
        };
        let op = ObjectOp::Copy {
            from_bucket: from_bucket.to_string(),
            from_key: from_key.to_string(),
            from_etag: source.etag.clone(),
            from_modified_us: source.modified_us,
            bucket: bucket.to_string(),
            key: key.to_string(),
            meta: meta.clone(),
        };
        Ok((op, meta))
    }

    pub fn multipart(&self, id: &str) -> Result<&Arc<Multipart>> {
        self.multiparts.get(id).ok_or_else(|| no_upload(id))
    }

    /// Applies one op, or leaves the objects as they were and says why not.
    pub(crate) fn apply(&mut self, op: &ObjectOp) -> Result<Applied> {
        match op {
            ObjectOp::CreateBucket {
                bucket,
                created_us,
                if_not_exists,
            } => {
                check_bucket_name(bucket)?;
                if self.buckets.contains_key(bucket) {
                    if *if_not_exists {
                        return Ok(Applied {
                            skipped: true,
                            ..Applied::default()
                        });
                    }
                    return Err(reject(
                        RejectionKind::BucketExists,
                        format!("bucket \"{bucket}\" already exists"),
                    ));
                }
                self.buckets.insert(
                    bucket.clone(),
                    Bucket {
                        created_us: *created_us,
                        objects: OrdMap::new(),
                    },
                );
            }
            ObjectOp::DropBucket { bucket } => {
                let in_use = !self.bucket(bucket)?.objects.is_empty()
                    || self.multiparts.values().any(|m| &m.bucket == bucket);
                if in_use {
                    return Err(reject(
                        RejectionKind::BucketNotEmpty,
                        format!("bucket \"{bucket}\" is not empty"),
                    ));
                }
                self.buckets.remove(bucket);
            }
            ObjectOp::Append { upload, data } => {
                let blob = self.uploads.entry(*upload).or_default();
                blob.chunks
                    .push(Arc::new(Chunk::Memory(Bytes::copy_from_slice(data))));
            }
            ObjectOp::Discard { upload } => {
                self.uploads.remove(upload);
            }
            ObjectOp::Put {
                bucket,
                key,
                uploads,
                inline,
                meta,
                create_bucket,
            } => {
                check_key(key)?;
                if !self.buckets.contains_key(bucket) {
                    if !create_bucket {
                        return Err(no_bucket(bucket));
                    }
                    check_bucket_name(bucket)?;
                }
                let mut blob = Blob::default();
                for upload in uploads {
                    let taken = self.uploads.remove(upload).ok_or_else(|| {
                        reject(
                            RejectionKind::NoSuchUpload,
                            format!("the upload of \"{key}\" was discarded"),
                        )
                    })?;
                    blob.chunks.extend(taken.chunks);
                }
                if !inline.is_empty() {
                    blob.chunks
                        .push(Arc::new(Chunk::Memory(Bytes::copy_from_slice(inline))));
                }
                self.insert(bucket, key, meta, blob, meta.modified_us)?;
            }
            ObjectOp::Delete { bucket, key } => {
                let objects = &mut self
                    .buckets
                    .get_mut(bucket)
                    .ok_or_else(|| no_bucket(bucket))?
                    .objects;
                let removed = objects.remove(key).is_some();
                return Ok(Applied {
                    rows: u64::from(removed),
                    skipped: !removed,
                    ..Applied::default()
                });
            }
            ObjectOp::CreateMultipart { id, multipart } => {
                check_key(&multipart.key)?;
                self.bucket(&multipart.bucket)?;
                let duplicate = self.multiparts.contains_key(id);
                assert!(!duplicate, "multipart upload ids are unique");
                self.multiparts
                    .insert(id.clone(), Arc::new(multipart.clone()));
            }
            ObjectOp::PutPart { id, number, part } => {
                if !(1..=PART_NUMBER_MAX).contains(number) {
                    return Err(reject(
                        RejectionKind::InvalidPart,
                        format!("part numbers are 1 to {PART_NUMBER_MAX}, not {number}"),
                    ));
                }
                if self.uploads.get(&part.upload).map(Blob::len) != Some(part.size) {
                    return Err(no_upload(id));
                }
                let multipart = self.multiparts.get_mut(id).ok_or_else(|| no_upload(id))?;
                let replaced = Arc::make_mut(multipart).parts.insert(*number, part.clone());
                if let Some(old) = replaced {
                    self.uploads.remove(&old.upload);
                }
            }
            ObjectOp::AbortMultipart { id } => {
                let multipart = self.multiparts.remove(id).ok_or_else(|| no_upload(id))?;
                for part in multipart.parts.values() {
                    self.uploads.remove(&part.upload);
                }
            }
            ObjectOp::Copy {
                from_bucket,
                from_key,
                from_etag,
                from_modified_us,
                bucket,
                key,
                meta,
            } => {
                check_key(key)?;
                self.bucket(bucket)?;
                let source = self.object(from_bucket, from_key)?;
                if source.meta.etag != *from_etag || source.meta.modified_us != *from_modified_us {
                    return Err(reject(
                        RejectionKind::SerializationFailure,
                        format!("object \"{from_key}\" changed while it was copied; try again"),
                    ));
                }
                let blob = source.blob.clone();
                self.insert(bucket, key, meta, blob, meta.modified_us)?;
            }
            ObjectOp::CompleteMultipart { id, parts, meta } => {
                let multipart = self.multipart(id)?.clone();
                if parts.is_empty() || !parts.is_sorted_by(|a, b| a < b) {
                    return Err(reject(
                        RejectionKind::InvalidPart,
                        "the parts must be listed in ascending order, each once",
                    ));
                }
                let mut blob = Blob::default();
                for number in parts {
                    let part = multipart.parts.get(number).ok_or_else(|| {
                        reject(
                            RejectionKind::InvalidPart,
                            format!("part {number} was not uploaded"),
                        )
                    })?;
                    let taken = self
                        .uploads
                        .get(&part.upload)
                        .expect("a multipart's parts keep their uploads");
                    blob.chunks.extend(taken.chunks.iter().cloned());
                }
                self.insert(
                    &multipart.bucket,
                    &multipart.key,
                    meta,
                    blob,
                    meta.modified_us,
                )?;
                self.multiparts.remove(id);
                for part in multipart.parts.values() {
                    self.uploads.remove(&part.upload);
                }
            }
        }
        Ok(Applied::default())
    }

    fn insert(
        &mut self,
        bucket: &str,
        key: &str,
        meta: &ObjectMeta,
        blob: Blob,
        created_us: i64,
    ) -> Result<()> {
        if blob.len() != meta.size {
            return Err(reject(
                RejectionKind::Internal,
                format!(
                    "object \"{key}\" says {} bytes but carries {}",
                    meta.size,
                    blob.len()
                ),
            ));
        }
        let objects = &mut self
            .buckets
            .entry(bucket.to_string())
            .or_insert_with(|| Bucket {
                created_us,
                objects: OrdMap::new(),
            })
            .objects;
        let object = Object {
            meta: meta.clone(),
            blob,
        };
        objects.insert(key.to_string(), Arc::new(object));
        Ok(())
    }
}

/// One page of a bucket's multipart uploads, as S3's ListMultipartUploads
/// gives it.
#[derive(Debug, Default)]
pub struct UploadListing {
    /// By key, then by when they began.
    pub uploads: Vec<(String, Arc<Multipart>)>,
    pub common_prefixes: Vec<String>,
    /// The key (and upload id, unless the page ended on a common prefix)
    /// the next page starts after, when there is one.
    pub next: Option<(String, Option<String>)>,
}

impl Objects {
    /// The uploads into `bucket` whose keys start with `prefix`, after
    /// `after` (a key, and an upload id of that key), at most `max` of them
    /// (uploads and common prefixes together).
    pub fn list_multiparts(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: (&str, Option<&str>),
        max: usize,
    ) -> UploadListing {
        let mut all: Vec<(&String, &Arc<Multipart>)> = self
            .multiparts
            .iter()
            .filter(|(_, m)| m.bucket == bucket && m.key.starts_with(prefix))
            .collect();
        all.sort_by(|(a_id, a), (b_id, b)| {
            (&a.key, a.initiated_us, a_id).cmp(&(&b.key, b.initiated_us, b_id))
        });
        let (after_key, after_id) = after;
        let start = match after_id.and_then(|id| {
            all.iter()
                .position(|(i, m)| i.as_str() == id && m.key == after_key)
        }) {
            Some(at) => at + 1,
            None => all.partition_point(|(_, m)| m.key.as_str() <= after_key),
        };
        let mut listing = UploadListing::default();
        let mut rest = all[start..].iter().peekable();
        while let Some((id, multipart)) = rest.next() {
            if listing.uploads.len() + listing.common_prefixes.len() == max {
                break;
            }
            let key = &multipart.key;
            let folded = delimiter.filter(|d| !d.is_empty()).and_then(|d| {
                let at = key[prefix.len()..].find(d)?;
                Some(key[..prefix.len() + at + d.len()].to_string())
            });
            match folded {
                Some(folded) => {
                    while rest.next_if(|(_, m)| m.key.starts_with(&folded)).is_some() {}
                    // A common prefix may be the marker of the page before.
                    if folded.as_str() > after_key {
                        listing.next = Some((folded.clone(), None));
                        listing.common_prefixes.push(folded);
                    }
                }
                None => {
                    listing.next = Some((key.clone(), Some((*id).clone())));
                    listing.uploads.push(((*id).clone(), (*multipart).clone()));
                }
            }
            if rest.peek().is_none() {
                listing.next = None;
            }
        }
        listing
    }
}

/// One page of a bucket's listing, as S3's ListObjectsV2 gives it.
#[derive(Debug, Default)]
pub struct Listing {
    pub objects: Vec<(String, Arc<Object>)>,
    /// Keys folded at the delimiter: each prefix once, up to and including
    /// the delimiter.
    pub common_prefixes: Vec<String>,
    /// The last key or prefix this page gave, when there are more.
    pub next_after: Option<String>,
}

impl Bucket {
    /// Keys starting with `prefix` and after `after`, at most `max` of them
    /// (objects and common prefixes together), in key order.
    pub fn list(&self, prefix: &str, delimiter: Option<&str>, after: &str, max: usize) -> Listing {
        let mut listing = Listing::default();
        let mut from = if after >= prefix {
            Bound::Excluded(after.to_string())
        } else {
            Bound::Included(prefix.to_string())
        };
        let mut last = None;
        loop {
            let bounds = (from.as_ref().map(String::as_str), Bound::Unbounded);
            let Some((key, object)) = self.objects.range::<_, str>(bounds).next() else {
                break;
            };
            if !key.starts_with(prefix) {
                break;
            }
            let folded = delimiter.filter(|d| !d.is_empty()).and_then(|d| {
                let at = key[prefix.len()..].find(d)?;
                Some(key[..prefix.len() + at + d.len()].to_string())
            });
            // A prefix's other keys all sort before its successor.
            let is_object = folded.is_none();
            let (item, next) = match folded {
                Some(common) => {
                    let past = prefix_successor(&common).map(Bound::Included);
                    (common, past)
                }
                None => (key.clone(), Some(Bound::Excluded(key.clone()))),
            };
            // A common prefix may be the `after` of the page before.
            if item.as_str() > after {
                if listing.objects.len() + listing.common_prefixes.len() == max {
                    listing.next_after = last;
                    return listing;
                }
                if is_object {
                    listing.objects.push((key.clone(), object.clone()));
                } else {
                    listing.common_prefixes.push(item.clone());
                }
                last = Some(item);
            }
            match next {
                Some(next) => from = next,
                None => break,
            }
        }
        listing
    }
}

/// The least string greater than every string starting with `prefix`, if
/// there is one.
fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = char::from_u32(last as u32 + 1) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Lowercase hex of bytes, as ETags are written.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The ETag S3 gives a multipart object: the MD5 of the parts' MD5s, then
/// the number of parts.
pub fn multipart_etag<'a>(part_etags: impl IntoIterator<Item = &'a str>) -> Result<String> {
    let mut md5 = Md5::new();
    let mut count = 0;
    for etag in part_etags {
        let digest = (0..etag.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(etag.get(i..i + 2).unwrap_or("?"), 16))
            .collect::<std::result::Result<Vec<u8>, _>>()
            .map_err(|_| reject(RejectionKind::InvalidPart, format!("bad ETag {etag}")))?;
        md5.update(&digest);
        count += 1;
    }
    Ok(format!("{}-{count}", hex(&md5.finalize())))
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Streams bytes into the log as [`ObjectOp::Append`] commands of
/// [`CHUNK_BYTES_MAX`], keeping their MD5 and size; then makes them an
/// object or a part. Bytes that fit one chunk travel inside the final
/// command alone. A writer that fails or is dropped half way leaves an
/// upload behind: `abort` discards it, and a restart of its node does too.
pub struct BlobWriter<'a> {
    store: &'a Store,
    upload: StageId,
    pending: Vec<u8>,
    appended: bool,
    in_flight: VecDeque<Pending>,
    size: u64,
    md5: Md5,
}

type Pending = Pin<Box<dyn Future<Output = Result<Applied>> + Send>>;

impl<'a> BlobWriter<'a> {
    pub fn new(store: &'a Store) -> Self {
        BlobWriter {
            store,
            upload: StageId::fresh(store.node_id()),
            pending: Vec::new(),
            appended: false,
            in_flight: VecDeque::new(),
            size: 0,
            md5: Md5::new(),
        }
    }

    pub async fn write(&mut self, mut bytes: &[u8]) -> Result<()> {
        self.md5.update(bytes);
        self.size += bytes.len() as u64;
        while !bytes.is_empty() {
            let room = CHUNK_BYTES_MAX - self.pending.len();
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            self.pending.extend_from_slice(now);
            bytes = later;
            if self.pending.len() == CHUNK_BYTES_MAX {
                self.append().await?;
            }
        }
        Ok(())
    }

    /// Queues the pending bytes as the next append; waits for the oldest
    /// append in flight when there are too many.
    async fn append(&mut self) -> Result<()> {
        let data = std::mem::take(&mut self.pending);
        self.appended = true;
        let op = ObjectOp::Append {
            upload: self.upload,
            data,
        };
        let outcome = self.store.write_queued(Command::Object(op));
        self.in_flight.push_back(Box::pin(outcome));
        if self.in_flight.len() > APPENDS_IN_FLIGHT_MAX {
            let oldest = self.in_flight.pop_front().expect("appends are in flight");
            oldest.await?;
        }
        Ok(())
    }

    /// Waits for every append in flight; the first failure, if any. (A
    /// later append may still apply after a failed one: the final command
    /// checks the size, and a failed writer discards its upload.)
    async fn settle(&mut self) -> Result<()> {
        let mut outcome = Ok(());
        while let Some(append) = self.in_flight.pop_front() {
            if let Err(e) = append.await
                && outcome.is_ok()
            {
                outcome = Err(e);
            }
        }
        outcome
    }

    /// Makes the bytes written the object `key`, replacing any.
    pub async fn put(
        mut self,
        bucket: &str,
        key: &str,
        content_type: Option<String>,
        metadata: BTreeMap<String, String>,
        create_bucket: bool,
    ) -> Result<ObjectMeta> {
        if let Err(e) = self.settle().await {
            self.abort().await;
            return Err(e);
        }
        let meta = ObjectMeta {
            size: self.size,
            etag: hex(&self.md5.clone().finalize()),
            content_type,
            modified_us: now_us(),
            metadata,
        };
        let op = ObjectOp::Put {
            bucket: bucket.to_string(),
            key: key.to_string(),
            uploads: if self.appended {
                vec![self.upload]
            } else {
                Vec::new()
            },
            inline: std::mem::take(&mut self.pending),
            meta: meta.clone(),
            create_bucket,
        };
        match self.store.write(Command::Object(op)).await {
            Ok(_) => Ok(meta),
            Err(e) => {
                self.abort().await;
                Err(e)
            }
        }
    }

    /// Keeps the bytes written as an upload, for a multipart's part.
    pub async fn finish_part(mut self) -> Result<Part> {
        if !self.pending.is_empty() || !self.appended {
            self.append().await?;
        }
        if let Err(e) = self.settle().await {
            self.abort().await;
            return Err(e);
        }
        Ok(Part {
            upload: self.upload,
            size: self.size,
            etag: hex(&self.md5.finalize()),
            modified_us: now_us(),
        })
    }

    /// Discards what was written.
    pub async fn abort(mut self) {
        // The discard must apply after every append of the upload.
        let _ = self.settle().await;
        if !self.appended {
            return;
        }
        let op = ObjectOp::Discard {
            upload: self.upload,
        };
        if let Err(e) = self.store.write(Command::Object(op)).await {
            tracing::warn!(error = %e, "could not discard an unfinished upload");
        }
    }
}

/// The CRC32 of each [`CHECK_BLOCK_BYTES`] of an object file.
pub(crate) fn block_crc32s(bytes: &[u8]) -> Arc<[u32]> {
    let block_bytes = usize::try_from(CHECK_BLOCK_BYTES).expect("a block fits in memory");
    bytes.chunks(block_bytes).map(crc32fast::hash).collect()
}

/// The bytes of `range` of a blob, as they are read. Every byte of a file
/// is checked (with the blocks it is in) before it is given out, so a
/// damaged file fails the read instead of delivering wrong bytes.
pub(crate) fn read_blob(
    files: Arc<TableStore>,
    blob: &Blob,
    range: Range<u64>,
) -> BoxStream<'static, Result<Bytes>> {
    let mut pieces = Vec::new();
    let mut at = 0;
    for chunk in &blob.chunks {
        let len = chunk.len();
        let (start, end) = (range.start.max(at), range.end.min(at + len));
        if start < end {
            pieces.push((chunk.clone(), start - at..end - at));
        }
        at += len;
    }
    stream::iter(pieces)
        .flat_map(move |(chunk, within)| match &*chunk {
            Chunk::Memory(bytes) => {
                let slice = bytes.slice(within.start as usize..within.end as usize);
                stream::once(async move { Ok(slice) }).boxed()
            }
            Chunk::File {
                path,
                bytes,
                crc32,
                block_crc32s,
            } => match block_crc32s.is_empty() {
                false => files.stream(path, *bytes, within, CHECK_BLOCK_BYTES, block_crc32s),
                // A file from before block checksums is checked whole: one
                // block of at most OBJECT_FILE_BYTES_MAX.
                true => files.stream(path, *bytes, within, *bytes, &Arc::from([*crc32])),
            },
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket_of(keys: &[&str]) -> Bucket {
        let object = Arc::new(Object {
            meta: ObjectMeta {
                size: 0,
                etag: String::new(),
                content_type: None,
                modified_us: 0,
                metadata: BTreeMap::new(),
            },
            blob: Blob::default(),
        });
        Bucket {
            created_us: 0,
            objects: keys
                .iter()
                .map(|k| (k.to_string(), object.clone()))
                .collect(),
        }
    }

    fn keys(listing: &Listing) -> Vec<&str> {
        listing.objects.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn listing_folds_at_the_delimiter_and_pages() {
        let b = bucket_of(&["a/1", "a/2", "a/b/3", "b", "c/4", "c0"]);
        let all = b.list("", Some("/"), "", 100);
        assert_eq!(keys(&all), ["b", "c0"]);
        assert_eq!(all.common_prefixes, ["a/", "c/"]);
        assert_eq!(all.next_after, None);
        let under_a = b.list("a/", Some("/"), "", 100);
        assert_eq!(keys(&under_a), ["a/1", "a/2"]);
        assert_eq!(under_a.common_prefixes, ["a/b/"]);
        let page = b.list("", Some("/"), "", 2);
        assert_eq!(keys(&page), ["b"]);
        assert_eq!(page.next_after.as_deref(), Some("b"));
        let rest = b.list("", Some("/"), "b", 2);
        assert_eq!(keys(&rest), ["c0"]);
        assert_eq!(rest.common_prefixes, ["c/"]);
        assert_eq!(rest.next_after, None);
        let flat = b.list("a", None, "a/1", 100);
        assert_eq!(keys(&flat), ["a/2", "a/b/3"]);
    }

    #[test]
    fn bucket_names_follow_s3() {
        for good in ["abc", "my-bucket.2", "a".repeat(63).as_str()] {
            assert!(check_bucket_name(good).is_ok(), "{good}");
        }
        for bad in ["ab", "Abc", "a_b", "-ab", "ab-", "a..b", "../x", "a/b"] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn multipart_etag_follows_s3() {
        // The MD5 of the MD5s of "a" and "b", as S3 computes it.
        let a = hex(&Md5::digest(b"a"));
        let b = hex(&Md5::digest(b"b"));
        let mut both = Md5::new();
        both.update(Md5::digest(b"a"));
        both.update(Md5::digest(b"b"));
        assert_eq!(
            multipart_etag([a.as_str(), b.as_str()]).unwrap(),
            format!("{}-2", hex(&both.finalize()))
        );
    }

    #[test]
    fn ops_apply_whole_or_not_at_all() {
        let mut o = Objects::default();
        let meta = |size| ObjectMeta {
            size,
            etag: "e".into(),
            content_type: None,
            modified_us: 1,
            metadata: BTreeMap::new(),
        };
        let up = StageId(7);
        o.apply(&ObjectOp::Append {
            upload: up,
            data: b"hello ".to_vec(),
        })
        .unwrap();
        let put = |create_bucket| ObjectOp::Put {
            bucket: "bkt".into(),
            key: "k".into(),
            uploads: vec![up],
            inline: b"world".to_vec(),
            meta: meta(11),
            create_bucket,
        };
        assert!(
            o.apply(&put(false)).is_err(),
            "no bucket, and S3 makes none"
        );
        o.apply(&put(true)).unwrap();
        assert!(o.uploads.is_empty());
        assert_eq!(o.object("bkt", "k").unwrap().blob.len(), 11);
        let drop = ObjectOp::DropBucket {
            bucket: "bkt".into(),
        };
        assert!(o.apply(&drop).is_err(), "not empty");
        let delete = ObjectOp::Delete {
            bucket: "bkt".into(),
            key: "k".into(),
        };
        assert_eq!(o.apply(&delete).unwrap().rows, 1);
        assert!(o.apply(&delete).unwrap().skipped);
        o.apply(&drop).unwrap();
        assert!(o.buckets.is_empty());
    }
    #[test]
    fn multipart_uploads_list_by_key_then_start_and_page() {
        let mut o = Objects::default();
        let uploads = [
            ("u1", "b", "a/1", 5),
            ("u2", "b", "a/1", 3),
            ("u3", "b", "a/x/2", 1),
            ("u4", "b", "a/x/3", 1),
            ("u5", "b", "c", 1),
            ("u6", "other", "a/1", 1),
        ];
        for (id, bucket, key, initiated_us) in uploads {
            let multipart = Multipart {
                bucket: bucket.into(),
                key: key.into(),
                content_type: None,
                metadata: BTreeMap::new(),
                initiated_us,
                parts: BTreeMap::new(),
            };
            o.multiparts.insert(id.into(), Arc::new(multipart));
        }
        let ids = |l: &UploadListing| -> Vec<String> {
            l.uploads.iter().map(|(i, _)| i.clone()).collect()
        };
        let all = o.list_multiparts("b", "", None, ("", None), 100);
        assert_eq!(
            ids(&all),
            ["u2", "u1", "u3", "u4", "u5"],
            "same key: earlier first"
        );
        assert_eq!(all.next, None);
        let page = o.list_multiparts("b", "", None, ("", None), 2);
        assert_eq!(ids(&page), ["u2", "u1"]);
        assert_eq!(page.next, Some(("a/1".into(), Some("u1".into()))));
        let mid = o.list_multiparts("b", "", None, ("a/1", Some("u2")), 2);
        assert_eq!(ids(&mid), ["u1", "u3"]);
        let after_key = o.list_multiparts("b", "", None, ("a/1", None), 100);
        assert_eq!(ids(&after_key), ["u3", "u4", "u5"]);
        let folded = o.list_multiparts("b", "a/", Some("/"), ("", None), 100);
        assert_eq!(ids(&folded), ["u2", "u1"]);
        assert_eq!(folded.common_prefixes, ["a/x/"]);
        let ends_on_prefix = o.list_multiparts("b", "", Some("/"), ("", None), 1);
        assert_eq!(ends_on_prefix.common_prefixes, ["a/"]);
        assert_eq!(ends_on_prefix.next, Some(("a/".into(), None)));
        let after_prefix = o.list_multiparts("b", "", Some("/"), ("a/", None), 10);
        assert_eq!(ids(&after_prefix), ["u5"]);
    }

    #[test]
    fn a_copy_shares_the_bytes_of_the_object_it_was_made_from() {
        let mut o = Objects::default();
        let meta = |etag: &str, modified_us| ObjectMeta {
            size: 3,
            etag: etag.into(),
            content_type: Some("text/plain".into()),
            modified_us,
            metadata: BTreeMap::new(),
        };
        for bucket in ["src", "dst"] {
            let create = ObjectOp::CreateBucket {
                bucket: bucket.into(),
                created_us: 0,
                if_not_exists: false,
            };
            o.apply(&create).unwrap();
        }
        let put = |etag: &str, modified_us| ObjectOp::Put {
            bucket: "src".into(),
            key: "k".into(),
            uploads: vec![],
            inline: b"abc".to_vec(),
            meta: meta(etag, modified_us),
            create_bucket: false,
        };
        o.apply(&put("e1", 1)).unwrap();
        let copy = |bucket: &str, from_etag: &str| ObjectOp::Copy {
            from_bucket: "src".into(),
            from_key: "k".into(),
            from_etag: from_etag.into(),
            from_modified_us: 1,
            bucket: bucket.into(),
            key: "k2".into(),
            meta: meta(from_etag, 2),
        };
        o.apply(&copy("dst", "e1")).unwrap();
        let source = o.object("src", "k").unwrap().blob.chunks[0].clone();
        let copied = o.object("dst", "k2").unwrap().clone();
        assert!(Arc::ptr_eq(&copied.blob.chunks[0], &source));
        assert_eq!(copied.meta.modified_us, 2);
        assert!(o.apply(&copy("nope", "e1")).is_err(), "no such bucket");
        // The source changed after the proposer read it: refused, and the
        // copy made before stays as it was.
        o.apply(&put("e2", 3)).unwrap();
        let refused = o.apply(&copy("dst", "e1")).unwrap_err();
        assert!(refused.to_string().contains("changed"), "{refused}");
        assert!(Arc::ptr_eq(
            &o.object("dst", "k2").unwrap().blob.chunks[0],
            &source
        ));
        // Deleting the source leaves the copy whole.
        let delete = ObjectOp::Delete {
            bucket: "src".into(),
            key: "k".into(),
        };
        o.apply(&delete).unwrap();
        assert_eq!(o.object("dst", "k2").unwrap().blob.len(), 3);
    }
}
