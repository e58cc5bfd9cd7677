//! The `file://` blob backend: a directory shared by the agents of one machine (or an NFS
//! mount with working `flock`). Written by hand because object_store's `LocalFileSystem`
//! cannot update conditionally (`PutMode::Update` is NotImplemented), and the protocol needs
//! compare-and-swap on the manifest.
//!
//! Every write goes to a temporary file in the same directory and is renamed over the target,
//! so readers never see a half-written object and need no lock. Conditional writes take an
//! exclusive `flock` on `<key>.lock`, compare the current tag, then rename. The tag of an
//! object up to 1 MiB is the SHA-256 of its content (manifests are tiny, and a content tag
//! cannot be fooled by inode reuse or coarse mtimes); larger objects (content-addressed data,
//! never updated in place) get a cheap `inode-size-mtime` tag.

use super::blob::{BlobError, BlobFuture, BlobStore, Fetched, PutCondition, PutOutcome, Tag};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

const CONTENT_TAG_LIMIT: u64 = 1024 * 1024;

pub struct LocalDirBlob {
    root: PathBuf,
}

impl LocalDirBlob {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    fn path(&self, key: &str) -> Result<PathBuf, BlobError> {
        // Keys come from the cache itself (validated names, hex hashes); refuse anything that
        // could leave the root anyway.
        if key
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(BlobError::Unavailable(format!("invalid key {key:?}")));
        }
        Ok(self.root.join(key))
    }
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> BlobError {
    BlobError::Unavailable(format!("{what} {}: {e}", path.display()))
}

fn tag_of(meta: &std::fs::Metadata, content: Option<&[u8]>) -> Tag {
    let e_tag = match content {
        Some(c) if meta.len() <= CONTENT_TAG_LIMIT => hex::encode(Sha256::digest(c)),
        _ => format!("{:x}-{:x}-{:x}", meta.ino(), meta.len(), meta.mtime_nsec()),
    };
    Tag {
        e_tag: Some(format!("\"{e_tag}\"")),
        version: None,
    }
}

/// Read a file and its tag; `None` when it does not exist.
fn read_tagged(path: &Path, max_len: u64, key: &str) -> Result<Option<(Vec<u8>, Tag)>, BlobError> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("open", path, e)),
    };
    let meta = file.metadata().map_err(|e| io_err("stat", path, e))?;
    if meta.len() > max_len {
        return Err(BlobError::TooLarge {
            key: key.into(),
            size: meta.len(),
            limit: max_len,
        });
    }
    let mut body = Vec::with_capacity(meta.len() as usize);
    (&mut file)
        .take(max_len.saturating_add(1))
        .read_to_end(&mut body)
        .map_err(|e| io_err("read", path, e))?;
    if body.len() as u64 > max_len {
        return Err(BlobError::TooLarge {
            key: key.into(),
            size: body.len() as u64,
            limit: max_len,
        });
    }
    let tag = tag_of(&meta, Some(&body));
    Ok(Some((body, tag)))
}

/// Write `bytes` to a temporary sibling of `path` and rename it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), BlobError> {
    lookout_common::write_atomic(path, bytes).map_err(|e| io_err("write", path, e))
}

/// An exclusive `flock` held until dropped (closing the descriptor releases it).
struct FileLock {
    _file: std::fs::File,
}

impl FileLock {
    fn acquire(path: &Path) -> Result<Self, BlobError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_err("create dir", dir, e))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| io_err("open lock", path, e))?;
        // SAFETY: flock on a descriptor we own; blocking is fine, we run on a blocking thread.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(io_err("flock", path, std::io::Error::last_os_error()));
        }
        Ok(Self { _file: file })
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
) -> Result<T, BlobError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BlobError::Unavailable(format!("blocking task failed: {e}")))?
}

impl BlobStore for LocalDirBlob {
    fn get<'a>(
        &'a self,
        key: &'a str,
        if_none_match: Option<&'a Tag>,
        max_len: u64,
    ) -> BlobFuture<'a, Fetched> {
        Box::pin(async move {
            let path = self.path(key)?;
            let key_owned = key.to_string();
            let found = blocking(move || read_tagged(&path, max_len, &key_owned)).await?;
            Ok(match found {
                None => Fetched::NotFound,
                Some((_, tag)) if if_none_match.is_some_and(|t| t.e_tag == tag.e_tag) => {
                    Fetched::NotModified
                }
                Some((body, tag)) => Fetched::Found {
                    bytes: Bytes::from(body),
                    tag,
                },
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
            let path = self.path(key)?;
            let key_owned = key.to_string();
            blocking(move || {
                // Unconditional writes take the lock too, so that they cannot slip between
                // a compare-and-swap's compare and its rename.
                let _lock = FileLock::acquire(&path.with_extension("lock"))?;
                let current = match &cond {
                    PutCondition::Overwrite => None,
                    _ => read_tagged(&path, u64::MAX, &key_owned)?,
                };
                let allowed = match (&cond, &current) {
                    (PutCondition::Overwrite, _) => true,
                    (PutCondition::Create, None) => true,
                    (PutCondition::Create, Some(_)) => false,
                    (PutCondition::Match(_), None) => false,
                    (PutCondition::Match(want), Some((_, have))) => want.e_tag == have.e_tag,
                };
                if !allowed {
                    return Ok(PutOutcome::Conflict);
                }
                write_atomically(&path, &bytes)?;
                let meta = std::fs::metadata(&path).map_err(|e| io_err("stat", &path, e))?;
                Ok(PutOutcome::Written(tag_of(&meta, Some(&bytes))))
            })
            .await
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BlobFuture<'a, ()> {
        Box::pin(async move {
            let path = self.path(key)?;
            blocking(move || match std::fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_err("delete", &path, e)),
            })
            .await
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BlobFuture<'a, Vec<String>> {
        Box::pin(async move {
            let dir = self.path(prefix)?;
            let prefix = prefix.to_string();
            blocking(move || {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => return Err(io_err("list", &dir, e)),
                };
                let mut keys = Vec::new();
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().to_string();
                    if name.starts_with(lookout_common::TEMP_PREFIX) || name.ends_with(".lock") {
                        continue;
                    }
                    if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
                        keys.push(format!("{prefix}/{name}"));
                    }
                }
                keys.sort();
                Ok(keys)
            })
            .await
        })
    }

    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn compare_and_swap_and_conditional_reads() {
        let dir = tempfile::tempdir().unwrap();
        let blob = LocalDirBlob::new(dir.path());
        let key = "c/manifest.json";
        assert!(matches!(
            blob.get(key, None, 100).await.unwrap(),
            Fetched::NotFound
        ));
        let PutOutcome::Written(t1) = blob
            .put(key, Bytes::from_static(b"one"), PutCondition::Create)
            .await
            .unwrap()
        else {
            panic!("create failed")
        };
        assert!(matches!(
            blob.put(key, Bytes::from_static(b"x"), PutCondition::Create)
                .await
                .unwrap(),
            PutOutcome::Conflict
        ));
        assert!(matches!(
            blob.get(key, Some(&t1), 100).await.unwrap(),
            Fetched::NotModified
        ));
        let PutOutcome::Written(t2) = blob
            .put(
                key,
                Bytes::from_static(b"two"),
                PutCondition::Match(t1.clone()),
            )
            .await
            .unwrap()
        else {
            panic!("cas failed")
        };
        assert_ne!(t1, t2);
        // The old tag no longer matches: the second writer loses.
        assert!(matches!(
            blob.put(key, Bytes::from_static(b"three"), PutCondition::Match(t1))
                .await
                .unwrap(),
            PutOutcome::Conflict
        ));
        match blob.get(key, None, 100).await.unwrap() {
            Fetched::Found { bytes, tag } => {
                assert_eq!(&bytes[..], b"two");
                assert_eq!(tag, t2);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            blob.get(key, None, 2).await,
            Err(BlobError::TooLarge { .. })
        ));
        assert_eq!(blob.list("c").await.unwrap(), vec![key.to_string()]);
        blob.delete(key).await.unwrap();
        blob.delete(key).await.unwrap();
        assert!(blob.list("c").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn concurrent_cas_has_one_winner() {
        let dir = tempfile::tempdir().unwrap();
        let blob = std::sync::Arc::new(LocalDirBlob::new(dir.path()));
        let key = "c/manifest.json";
        let PutOutcome::Written(t0) = blob
            .put(key, Bytes::from_static(b"base"), PutCondition::Create)
            .await
            .unwrap()
        else {
            panic!()
        };
        let mut tasks = Vec::new();
        for i in 0..16 {
            let blob = blob.clone();
            let t0 = t0.clone();
            tasks.push(tokio::spawn(async move {
                blob.put(
                    key,
                    Bytes::from(format!("writer {i}")),
                    PutCondition::Match(t0),
                )
                .await
                .unwrap()
            }));
        }
        let mut winners = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), PutOutcome::Written(_)) {
                winners += 1;
            }
        }
        assert_eq!(winners, 1);
    }
}
