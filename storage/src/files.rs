//! Table files in an object store: the local file system under the data
//! directory by default, or an S3-compatible bucket (`--object-store
//! s3://bucket/prefix`), where each node keeps its files under
//! `<prefix>/node-<id>/`: nodes that share a bucket write and remove the
//! files of their own snapshots, never each other's.
//!
//! `object_store`'s local backend writes a file aside and renames it into
//! place but does not sync it. A snapshot's manifest may only name files that
//! would survive a power cut, so for the local backend the file and its
//! directory are synced here after the put; remote stores are durable when
//! the put returns.

use std::path::PathBuf;
use std::sync::Arc;

use std::ops::Range;

use bytes::Bytes;
use datafusion::object_store::aws::AmazonS3Builder;
use datafusion::object_store::local::LocalFileSystem;
use datafusion::object_store::path::Path as ObjectPath;
use datafusion::object_store::prefix::PrefixStore;
use datafusion::object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};
use futures::TryStreamExt;
use futures::stream::{self, BoxStream, StreamExt};

use crate::error::{Error, Result};
use crate::page_cache;
use crate::raft::NodeId;

/// Whether a stored file's pages stay in the page cache once synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageCache {
    /// Read again while the node runs: object bytes, which a GET reads.
    Keep,
    /// Held in memory by the node and read only at a restart: table files.
    Forget,
}

pub struct TableStore {
    store: Arc<dyn ObjectStore>,
    /// The directory behind a local store, for syncing what it wrote.
    local_root: Option<PathBuf>,
}

fn store_error(what: &str, path: &str, e: datafusion::object_store::Error) -> Error {
    Error::ObjectStore(format!("{what} {path}: {e}"))
}

impl TableStore {
    /// Files under `root` on the local file system.
    pub fn local(root: &std::path::Path) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
        let store = LocalFileSystem::new_with_prefix(root)
            .map_err(|e| store_error("opening", &root.display().to_string(), e))?;
        Ok(TableStore {
            store: Arc::new(store),
            local_root: Some(root.to_path_buf()),
        })
    }

    /// Files in the S3-compatible bucket of `url` (`s3://bucket/prefix`),
    /// under `<prefix>/node-<node>/`. Region, endpoint and credentials
    /// come from the AWS_* environment variables; without an access key,
    /// requests go unsigned rather than to a cloud's metadata service.
    pub fn s3(url: &str, node: NodeId) -> Result<Self> {
        let invalid = |why: &str| Error::ObjectStore(format!("--object-store {url}: {why}"));
        let path = url
            .strip_prefix("s3://")
            .ok_or_else(|| invalid("only s3://bucket/prefix URLs are supported"))?;
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if bucket.is_empty() {
            return Err(invalid("no bucket"));
        }
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            builder = builder.with_skip_signature(true);
        }
        let plain_http = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
            .iter()
            .filter_map(|name| std::env::var(name).ok())
            .any(|endpoint| endpoint.starts_with("http://"));
        if plain_http {
            builder = builder.with_allow_http(true);
        }
        let store = builder
            .build()
            .map_err(|e| store_error("opening", url, e))?;
        let node_dir = match prefix.trim_matches('/') {
            "" => format!("node-{node}"),
            prefix => format!("{prefix}/node-{node}"),
        };
        Ok(TableStore {
            store: Arc::new(PrefixStore::new(store, node_dir)),
            local_root: None,
        })
    }

    /// Stores a whole file; durable when this returns.
    pub async fn put(&self, path: &str, bytes: Bytes, cache: PageCache) -> Result<()> {
        self.store
            .put(&ObjectPath::from(path), PutPayload::from(bytes))
            .await
            .map_err(|e| store_error("writing", path, e))?;
        if let Some(root) = &self.local_root {
            let file = root.join(path);
            let dir = file
                .parent()
                .expect("files live in a directory")
                .to_path_buf();
            tokio::task::spawn_blocking(move || -> Result<()> {
                let f = std::fs::File::open(&file).map_err(|e| Error::io(&file, e))?;
                f.sync_all().map_err(|e| Error::io(&file, e))?;
                if cache == PageCache::Forget {
                    page_cache::forget(&f, 0, 0);
                }
                std::fs::File::open(&dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| Error::io(&dir, e))
            })
            .await
            .map_err(|e| Error::ObjectStore(format!("syncing {path}: {e}")))??;
        }
        Ok(())
    }

    pub async fn get(&self, path: &str) -> Result<Bytes> {
        let result = self
            .store
            .get(&ObjectPath::from(path))
            .await
            .map_err(|e| store_error("reading", path, e))?;
        result
            .bytes()
            .await
            .map_err(|e| store_error("reading", path, e))
    }

    pub async fn delete(&self, path: &str) -> Result<()> {
        self.store
            .delete(&ObjectPath::from(path))
            .await
            .map_err(|e| store_error("deleting", path, e))
    }

    /// Every file under `prefix`, with its size.
    pub async fn sizes(&self, prefix: &str) -> Result<std::collections::HashMap<String, u64>> {
        self.store
            .list(Some(&ObjectPath::from(prefix)))
            .map_ok(|meta| (meta.location.to_string(), meta.size))
            .try_collect()
            .await
            .map_err(|e| store_error("listing", prefix, e))
    }

    /// The bytes of `range` of a file of `file_bytes`, as they are read.
    /// The file is checked in blocks of `block_bytes` (the last one may be
    /// shorter), each against its CRC32 in `block_crc32s`, before any of a
    /// block's bytes are given out: a damaged file fails the read instead
    /// of delivering wrong bytes. The blocks `range` touches are read
    /// whole, one held in memory at a time.
    pub fn stream(
        &self,
        path: &str,
        file_bytes: u64,
        range: Range<u64>,
        block_bytes: u64,
        block_crc32s: &Arc<[u32]>,
    ) -> BoxStream<'static, Result<Bytes>> {
        assert!(range.end <= file_bytes, "a read within the file");
        if range.is_empty() {
            return stream::empty().boxed();
        }
        assert!(block_bytes > 0, "blocks hold bytes");
        let corrupt = {
            let path = path.to_string();
            move |detail: String| Error::corrupt(format!("object bytes in {path}"), detail)
        };
        let blocks = file_bytes.div_ceil(block_bytes);
        if block_crc32s.len() as u64 != blocks {
            let e = corrupt(format!(
                "{} block checksums for {blocks} blocks",
                block_crc32s.len()
            ));
            return stream::once(async { Err(e) }).boxed();
        }
        let first_block = range.start / block_bytes;
        let read = first_block * block_bytes
            ..(range.end.div_ceil(block_bytes) * block_bytes).min(file_bytes);
        let store = self.store.clone();
        let location = path.to_string();
        let opened = async move {
            let options = GetOptions {
                range: Some(GetRange::Bounded(read)),
                ..GetOptions::default()
            };
            let result = store
                .get_opts(&ObjectPath::from(location.as_str()), options)
                .await
                .map_err(|e| store_error("reading", &location, e))?;
            let pieces = result
                .into_stream()
                .map_err(move |e| store_error("reading", &location, e));
            Ok::<_, Error>(pieces)
        };
        let pieces = stream::once(opened).try_flatten().boxed();
        let sums = block_crc32s.clone();
        let start = (pieces, bytes::BytesMut::new(), first_block);
        stream::unfold(Some(start), move |state| {
            let (range, sums, corrupt) = (range.clone(), sums.clone(), corrupt.clone());
            async move {
                let (mut pieces, mut held, block) = state?;
                let at = block * block_bytes;
                if at >= range.end {
                    return None;
                }
                let len = block_bytes.min(file_bytes - at);
                while (held.len() as u64) < len {
                    match pieces.next().await {
                        Some(Ok(piece)) => held.extend_from_slice(&piece),
                        Some(Err(e)) => return Some((Err(e), None)),
                        None => return Some((Err(corrupt("the file ended early".into())), None)),
                    }
                }
                let data = held.split_to(len as usize).freeze();
                let (sum, expected) = (crc32fast::hash(&data), sums[block as usize]);
                if sum != expected {
                    let detail = format!(
                        "checksum mismatch in block {block} (CRC32 {sum:08x}, not {expected:08x})"
                    );
                    return Some((Err(corrupt(detail)), None));
                }
                let from = range.start.max(at) - at;
                let to = range.end.min(at + len) - at;
                let given = data.slice(from as usize..to as usize);
                Some((Ok(given), Some((pieces, held, block + 1))))
            }
        })
        .boxed()
    }

    /// Every file under `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.store
            .list(Some(&ObjectPath::from(prefix)))
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .map_err(|e| store_error("listing", prefix, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = TableStore::local(dir.path()).unwrap();
        store
            .put(
                "tables/1/a.parquet",
                Bytes::from_static(b"abc"),
                PageCache::Forget,
            )
            .await
            .unwrap();
        store
            .put(
                "tables/2/b.parquet",
                Bytes::from_static(b"de"),
                PageCache::Keep,
            )
            .await
            .unwrap();
        assert!(dir.path().join("tables/1/a.parquet").exists());
        assert_eq!(
            store.get("tables/1/a.parquet").await.unwrap(),
            Bytes::from_static(b"abc")
        );
        let mut listed = store.list("tables").await.unwrap();
        listed.sort();
        assert_eq!(listed, vec!["tables/1/a.parquet", "tables/2/b.parquet"]);
        store.delete("tables/1/a.parquet").await.unwrap();
        assert_eq!(
            store.list("tables").await.unwrap(),
            vec!["tables/2/b.parquet"]
        );
    }

    #[tokio::test]
    async fn a_read_checks_the_blocks_it_touches_and_only_those() {
        let dir = tempfile::tempdir().unwrap();
        let store = TableStore::local(dir.path()).unwrap();
        let data = b"0123456789";
        // Blocks of 4 bytes: "0123", "4567", "89".
        let sums: Arc<[u32]> = data.chunks(4).map(crc32fast::hash).collect();
        let read_blocks = |range: Range<u64>, block_bytes: u64, sums: Arc<[u32]>| {
            let stream = store.stream("objects/b/f.bin", 10, range, block_bytes, &sums);
            async move {
                let pieces: Vec<Bytes> = stream.try_collect().await?;
                Ok::<_, Error>(pieces.concat())
            }
        };
        let read = |range: Range<u64>, sums: Arc<[u32]>| read_blocks(range, 4, sums);
        store
            .put("objects/b/f.bin", Bytes::from_static(data), PageCache::Keep)
            .await
            .unwrap();
        for (from, to) in [(0, 10), (3, 7), (5, 6), (8, 10), (4, 8), (0, 0)] {
            let got = read(from..to, sums.clone()).await.unwrap();
            assert_eq!(got, data[from as usize..to as usize], "{from}..{to}");
        }
        let whole_file: Arc<[u32]> = Arc::from([crc32fast::hash(data)]);
        let got = read_blocks(2..5, 10, whole_file).await.unwrap();
        assert_eq!(got, b"234", "a file with one checksum is one block");

        // A damaged byte in the middle block: only reads that touch it fail.
        let mut damaged = data.to_vec();
        damaged[5] ^= 0xff;
        store
            .put("objects/b/f.bin", Bytes::from(damaged), PageCache::Keep)
            .await
            .unwrap();
        assert_eq!(read(0..4, sums.clone()).await.unwrap(), b"0123");
        assert_eq!(read(8..10, sums.clone()).await.unwrap(), b"89");
        for range in [4..5, 3..9, 7..8] {
            let e = read(range.clone(), sums.clone()).await.unwrap_err();
            assert!(
                e.to_string().contains("checksum mismatch in block 1"),
                "{range:?}: {e}"
            );
        }
        let too_few: Arc<[u32]> = Arc::from([1, 2]);
        let e = read(0..1, too_few).await.unwrap_err();
        assert!(
            e.to_string().contains("2 block checksums for 3 blocks"),
            "{e}"
        );
    }
}
