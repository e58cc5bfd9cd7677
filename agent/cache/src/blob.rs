//! The shared blob tier behind one small trait: conditional reads (If-None-Match), conditional
//! writes (create-only or If-Match compare-and-swap), delete and list. Two implementations:
//! [`ObjectStoreBlob`] over `object_store` (Azure, S3, GCS, memory) and
//! [`super::localdir::LocalDirBlob`] for `file://`, because object_store's local store cannot
//! update conditionally. Tests wrap a [`BlobStore`] to inject faults and count traffic.

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{
    GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion,
};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use thiserror::Error;

/// What a blob operation failed with. Conflicts and "not modified" are outcomes, not errors.
#[derive(Debug, Error, Clone)]
pub enum BlobError {
    #[error("blob store unavailable: {0}")]
    Unavailable(String),
    #[error("object {key} is {size} bytes, above the limit of {limit}")]
    TooLarge { key: String, size: u64, limit: u64 },
    #[error("invalid blob URL {url}: {reason}")]
    Config { url: String, reason: String },
}

/// The version token of an object: stores use the ETag (Azure, S3, memory, local) or a
/// version/generation (GCS); both are kept and passed back on conditional writes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tag {
    pub e_tag: Option<String>,
    pub version: Option<String>,
}

/// The answer to a (conditional) read.
#[derive(Debug, Clone)]
pub enum Fetched {
    /// The object still has the tag the reader passed in If-None-Match.
    NotModified,
    NotFound,
    Found {
        bytes: Bytes,
        tag: Tag,
    },
}

/// The precondition of a write.
#[derive(Debug, Clone)]
pub enum PutCondition {
    /// Unconditional (content-addressed data objects).
    Overwrite,
    /// Only when no object exists yet.
    Create,
    /// Only when the object still has this tag (compare-and-swap).
    Match(Tag),
}

/// The answer to a write.
#[derive(Debug, Clone)]
pub enum PutOutcome {
    Written(Tag),
    /// The precondition failed: somebody else wrote first.
    Conflict,
}

/// A future returned by [`BlobStore`] methods.
pub type BlobFuture<'a, T> = BoxFuture<'a, Result<T, BlobError>>;

/// The operations the cache protocol needs from a shared store. Keys are `/`-separated.
pub trait BlobStore: Send + Sync + 'static {
    /// Read `key`; `if_none_match` = the tag the caller holds; objects larger than `max_len`
    /// are refused with [`BlobError::TooLarge`] before their body is read.
    fn get<'a>(
        &'a self,
        key: &'a str,
        if_none_match: Option<&'a Tag>,
        max_len: u64,
    ) -> BlobFuture<'a, Fetched>;
    fn put<'a>(
        &'a self,
        key: &'a str,
        bytes: Bytes,
        cond: PutCondition,
    ) -> BlobFuture<'a, PutOutcome>;
    /// Delete `key`; a missing key is not an error.
    fn delete<'a>(&'a self, key: &'a str) -> BlobFuture<'a, ()>;
    /// Keys under `prefix` (a "directory", no trailing slash).
    fn list<'a>(&'a self, prefix: &'a str) -> BlobFuture<'a, Vec<String>>;
    /// Where this is, without credentials, for logs.
    fn describe(&self) -> String;
}

/// A [`BlobStore`] over any `object_store` backend, rooted at `prefix`.
pub struct ObjectStoreBlob {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    label: String,
}

impl ObjectStoreBlob {
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, label: impl Into<String>) -> Self {
        Self {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            label: label.into(),
        }
    }

    fn path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }
}

fn unavailable(e: object_store::Error) -> BlobError {
    BlobError::Unavailable(e.to_string())
}

impl BlobStore for ObjectStoreBlob {
    fn get<'a>(
        &'a self,
        key: &'a str,
        if_none_match: Option<&'a Tag>,
        max_len: u64,
    ) -> BlobFuture<'a, Fetched> {
        Box::pin(async move {
            let opts = GetOptions {
                if_none_match: if_none_match.and_then(|t| t.e_tag.clone()),
                ..Default::default()
            };
            let res = match self.store.get_opts(&self.path(key), opts).await {
                Ok(r) => r,
                Err(object_store::Error::NotModified { .. }) => return Ok(Fetched::NotModified),
                Err(object_store::Error::NotFound { .. }) => return Ok(Fetched::NotFound),
                Err(e) => return Err(unavailable(e)),
            };
            let tag = Tag {
                e_tag: res.meta.e_tag.clone(),
                version: res.meta.version.clone(),
            };
            // The size is known from the response headers, before the body is read.
            if res.meta.size > max_len {
                return Err(BlobError::TooLarge {
                    key: key.into(),
                    size: res.meta.size,
                    limit: max_len,
                });
            }
            let mut body = Vec::with_capacity(res.meta.size as usize);
            let mut stream = res.into_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(unavailable)?;
                if (body.len() + chunk.len()) as u64 > max_len {
                    return Err(BlobError::TooLarge {
                        key: key.into(),
                        size: (body.len() + chunk.len()) as u64,
                        limit: max_len,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Fetched::Found {
                bytes: Bytes::from(body),
                tag,
            })
        })
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        bytes: Bytes,
        cond: PutCondition,
    ) -> BlobFuture<'a, PutOutcome> {
        Box::pin(async move {
            let mode = match cond {
                PutCondition::Overwrite => PutMode::Overwrite,
                PutCondition::Create => PutMode::Create,
                PutCondition::Match(tag) => PutMode::Update(UpdateVersion {
                    e_tag: tag.e_tag,
                    version: tag.version,
                }),
            };
            let opts = PutOptions {
                mode,
                ..Default::default()
            };
            match self
                .store
                .put_opts(&self.path(key), PutPayload::from_bytes(bytes), opts)
                .await
            {
                Ok(r) => Ok(PutOutcome::Written(Tag {
                    e_tag: r.e_tag,
                    version: r.version,
                })),
                Err(object_store::Error::Precondition { .. })
                | Err(object_store::Error::AlreadyExists { .. }) => Ok(PutOutcome::Conflict),
                Err(e) => Err(unavailable(e)),
            }
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BlobFuture<'a, ()> {
        Box::pin(async move {
            match self.store.delete(&self.path(key)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(unavailable(e)),
            }
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BlobFuture<'a, Vec<String>> {
        Box::pin(async move {
            let root = self.path(prefix);
            let strip = if self.prefix.is_empty() {
                String::new()
            } else {
                format!("{}/", self.prefix)
            };
            let metas: Vec<_> = self
                .store
                .list(Some(&root))
                .try_collect()
                .await
                .map_err(unavailable)?;
            Ok(metas
                .into_iter()
                .map(|m| {
                    let full = m.location.to_string();
                    full.strip_prefix(&strip).unwrap_or(&full).to_string()
                })
                .collect())
        })
    }

    fn describe(&self) -> String {
        self.label.clone()
    }
}

/// One in-memory store per `memory://<name>` URL, shared by the caches of this process (so
/// several caches, or a test, can meet on it).
fn memory_store(name: &str) -> Arc<dyn ObjectStore> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    let mut stores = STORES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    stores
        .entry(name.to_string())
        .or_insert_with(|| Arc::new(object_store::memory::InMemory::new()))
        .clone()
}

/// Open the blob store of a `[[cache]]`: `file://` (our local-directory backend), `memory://`,
/// `az://`, `s3://`, `gs://` (object_store; `options` are its config keys, and its standard
/// environment variables apply as well).
pub fn open(
    url: &str,
    options: &std::collections::BTreeMap<String, String>,
) -> Result<Arc<dyn BlobStore>, BlobError> {
    let config_err = |reason: String| BlobError::Config {
        url: lookout_common::redact_url(url),
        reason,
    };
    let parsed = url::Url::parse(url).map_err(|e| config_err(e.to_string()))?;
    let label = lookout_common::redact_url(url);
    match parsed.scheme() {
        "file" => {
            let dir = parsed
                .to_file_path()
                .map_err(|_| config_err("file:// URL needs an absolute local path".into()))?;
            Ok(Arc::new(super::localdir::LocalDirBlob::new(Path::new(
                &dir,
            ))))
        }
        "memory" => {
            let name = format!("{}{}", parsed.host_str().unwrap_or_default(), parsed.path());
            Ok(Arc::new(ObjectStoreBlob::new(
                memory_store(&name),
                "",
                label,
            )))
        }
        "az" | "azure" | "s3" | "gs" => {
            // Environment first (AZURE_*, AWS_*, GOOGLE_*), then the explicit options.
            let mut opts: Vec<(String, String)> = std::env::vars()
                .filter(|(k, _)| {
                    let k = k.to_ascii_uppercase();
                    k.starts_with("AZURE_")
                        || k.starts_with("AWS_")
                        || k.starts_with("GOOGLE_")
                        || k.starts_with("OBJECT_STORE_")
                })
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect();
            opts.extend(options.iter().map(|(k, v)| (k.clone(), v.clone())));
            lookout_common::install_tls_provider();
            let (store, prefix) = object_store::parse_url_opts(&parsed, opts)
                .map_err(|e| config_err(e.to_string()))?;
            Ok(Arc::new(ObjectStoreBlob::new(
                Arc::from(store),
                prefix.as_ref(),
                label,
            )))
        }
        other => Err(config_err(format!("unsupported scheme {other:?}"))),
    }
}
