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
use crate::raft::NodeId;

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
    pub async fn put(&self, path: &str, bytes: Bytes) -> Result<()> {
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
                std::fs::File::open(&file)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| Error::io(&file, e))?;
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

    /// The bytes of `range` of a file, as they are read. With `crc32` (the
    /// whole file is read), the last piece is given out only once the
    /// file's checksum matched: a damaged file fails the read instead of
    /// completing it with wrong bytes.
    pub fn stream(
        &self,
        path: &str,
        range: Range<u64>,
        crc32: Option<u32>,
    ) -> BoxStream<'static, Result<Bytes>> {
        let store = self.store.clone();
        let path = path.to_string();
        let opened = async move {
            let options = GetOptions {
                range: Some(GetRange::Bounded(range)),
                ..GetOptions::default()
            };
            let location = ObjectPath::from(path.as_str());
            let result = store
                .get_opts(&location, options)
                .await
                .map_err(|e| store_error("reading", &path, e))?;
            let pieces = result
                .into_stream()
                .map_err(move |e| store_error("reading", &path, e));
            Ok::<_, Error>(pieces)
        };
        let pieces = stream::once(opened).try_flatten();
        let Some(expected) = crc32 else {
            return pieces.boxed();
        };
        // Holds each piece back until the next arrives, hashing as it goes;
        // `None` marks the end.
        let ended = stream::once(async { None });
        let checked = pieces.map(Some).chain(ended).scan(
            (crc32fast::Hasher::new(), None::<Bytes>),
            move |(hasher, held), piece| {
                let out = match piece {
                    Some(Err(e)) => Some(Err(e)),
                    Some(Ok(piece)) => {
                        hasher.update(&piece);
                        held.replace(piece).map(Ok)
                    }
                    None => {
                        let sum = std::mem::take(hasher).finalize();
                        if sum != expected {
                            Some(Err(Error::corrupt(
                                "object bytes",
                                format!("checksum mismatch (CRC32 {sum:08x}, not {expected:08x})"),
                            )))
                        } else {
                            held.take().map(Ok)
                        }
                    }
                };
                futures::future::ready(Some(out))
            },
        );
        checked.filter_map(futures::future::ready).boxed()
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
            .put("tables/1/a.parquet", Bytes::from_static(b"abc"))
            .await
            .unwrap();
        store
            .put("tables/2/b.parquet", Bytes::from_static(b"de"))
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
}
