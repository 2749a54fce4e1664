//! Where the paths and URLs in SQL lead: the object stores behind
//! `read_parquet('s3://b/*.parquet')`, `COPY t TO '/tmp/t.parquet'` and
//! external tables.
//!
//! ```text
//!  '/data/x.csv', 'file:///data/x.csv' ──► the node's local disk
//!  's3://bucket/key'  ──► s3_endpoint = ''   ──► this cluster's own buckets,
//!                     │                          through this node's S3 endpoint
//!                     └─► s3_endpoint = URL ──► that S3-compatible service
//! ```
//!
//! An `s3://` URL reaches this cluster's own object storage unless the
//! settings name another service, so files and tables meet in the cluster
//! with no service beside it. The S3 settings (`s3_endpoint`, `s3_region`,
//! `s3_access_key_id`, `s3_secret_access_key`) are read when a statement
//! opens a URL: the session's SET values first, then the cluster's (ALTER
//! SYSTEM), then the defaults. Clients are kept per bucket and settings,
//! shared by every session of the node, so connections are reused.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ciab_storage::Store;
use datafusion::common::Result as DfResult;
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::object_store::aws::AmazonS3Builder;
use datafusion::object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use url::Url;

use crate::error::{Error, sqlstate, to_df};

/// The settings that say where `s3://` leads.
pub(crate) const S3_SETTINGS: [&str; 4] = [
    "s3_endpoint",
    "s3_region",
    "s3_access_key_id",
    "s3_secret_access_key",
];

/// Retries of a failed S3 request: few and short, so that a wrong endpoint
/// fails the statement in seconds rather than after minutes of backoff.
const S3_RETRIES_MAX: usize = 2;
const S3_RETRY_TIMEOUT_MS: u64 = 10_000;
const S3_CONNECT_TIMEOUT_MS: u64 = 5_000;

/// The S3 service one bucket is reached through.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct S3Config {
    endpoint: String,
    region: String,
    access_key_id: String,
    secret_access_key: String,
}

/// The clients of a node, shared by its sessions.
pub(crate) struct StoreCache {
    store: Arc<Store>,
    /// This node's S3 endpoint, where `s3://` leads by default.
    own_endpoint: Option<String>,
    s3: Mutex<HashMap<(String, S3Config), Arc<dyn ObjectStore>>>,
}

impl StoreCache {
    pub(crate) fn new(store: Arc<Store>, own_endpoint: Option<String>) -> Arc<StoreCache> {
        Arc::new(StoreCache {
            store,
            own_endpoint,
            s3: Mutex::new(HashMap::new()),
        })
    }
}

impl std::fmt::Debug for StoreCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreCache")
            .field("own_endpoint", &self.own_endpoint)
            .finish_non_exhaustive()
    }
}

/// One session's view of the stores: the node's clients, chosen with the
/// session's settings. DataFusion asks it for the store of every URL a
/// plan reads or writes.
#[derive(Debug)]
pub(crate) struct Stores {
    cache: Arc<StoreCache>,
    /// The S3 settings the session SET.
    session: RwLock<BTreeMap<String, String>>,
    /// The local disk (`file://`, which plain paths become), and stores
    /// registered by URL, as DataFusion's own registry keeps them.
    registered: DefaultObjectStoreRegistry,
}

impl Stores {
    pub(crate) fn new(cache: &Arc<StoreCache>) -> Arc<Stores> {
        Arc::new(Stores {
            cache: cache.clone(),
            session: RwLock::new(BTreeMap::new()),
            registered: DefaultObjectStoreRegistry::new(),
        })
    }

    /// Takes the session's settings after a SET, RESET or ROLLBACK.
    pub(crate) fn set_session(&self, settings: &BTreeMap<String, String>) {
        let s3 = settings
            .iter()
            .filter(|(name, _)| S3_SETTINGS.contains(&name.as_str()))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        *self.session.write().expect("settings lock") = s3;
    }

    fn setting(&self, name: &str) -> String {
        if let Some(value) = self.session.read().expect("settings lock").get(name) {
            return value.clone();
        }
        crate::settings::cluster_value(&self.cache.store.snapshot(), name).unwrap_or_default()
    }

    fn s3_config(&self) -> Result<S3Config, Error> {
        let endpoint = match self.setting("s3_endpoint") {
            e if e.is_empty() => self.cache.own_endpoint.clone().ok_or_else(|| {
                Error::new(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    "this node has no S3 endpoint; set s3_endpoint to reach another S3 service",
                )
            })?,
            e => e,
        };
        Ok(S3Config {
            endpoint,
            region: self.setting("s3_region"),
            access_key_id: self.setting("s3_access_key_id"),
            secret_access_key: self.setting("s3_secret_access_key"),
        })
    }

    fn s3(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>, Error> {
        let config = self.s3_config()?;
        let key = (bucket.to_string(), config);
        let mut clients = self.cache.s3.lock().expect("store cache lock");
        if let Some(store) = clients.get(&key) {
            return Ok(store.clone());
        }
        let config = &key.1;
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: S3_RETRIES_MAX,
            retry_timeout: Duration::from_millis(S3_RETRY_TIMEOUT_MS),
        };
        let options = ClientOptions::new()
            .with_allow_http(config.endpoint.starts_with("http://"))
            .with_connect_timeout(Duration::from_millis(S3_CONNECT_TIMEOUT_MS));
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_endpoint(&config.endpoint)
            .with_region(&config.region)
            .with_virtual_hosted_style_request(false)
            .with_retry(retry)
            .with_client_options(options);
        builder = if config.access_key_id.is_empty() {
            // No keys: requests go unsigned, rather than asking a cloud's
            // metadata service for credentials.
            builder.with_skip_signature(true)
        } else {
            builder
                .with_access_key_id(&config.access_key_id)
                .with_secret_access_key(&config.secret_access_key)
        };
        let store: Arc<dyn ObjectStore> = Arc::new(builder.build().map_err(|e| {
            Error::new(
                sqlstate::INVALID_PARAMETER_VALUE,
                format!(
                    "cannot reach bucket \"{bucket}\" at {}: {e}",
                    config.endpoint
                ),
            )
        })?);
        clients.insert(key, store.clone());
        Ok(store)
    }
}

impl ObjectStoreRegistry for Stores {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.registered.register_store(url, store)
    }

    fn get_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.registered.get_store(url) {
            return Ok(store);
        }
        match url.scheme() {
            "s3" => match url.host_str() {
                Some(bucket) if !bucket.is_empty() => self.s3(bucket).map_err(to_df),
                _ => Err(to_df(Error::new(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    format!("\"{url}\" names no bucket"),
                ))),
            },
            scheme => Err(to_df(Error::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!(
                    "no object store for \"{scheme}://\" URLs; ciab reads paths and s3:// URLs"
                ),
            ))),
        }
    }
}
