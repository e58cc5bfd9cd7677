//! The slow source a cache refreshes from, as a trait, with the sources most services need:
//! a file ([`FileSource`]), an HTTP URL ([`HttpSource`]), a command's stdout
//! ([`CommandSource`]) and a closure of the embedding program ([`from_fn`]; the agent's
//! `{ primary = .. }` is one). Every load is bounded in time (`source_timeout`) and size
//! (`max_size`) by [`load`]; a command is killed when its load is dropped or times out.

use bytes::Bytes;
use futures::future::BoxFuture;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::io::AsyncReadExt;

#[derive(Debug, Error, Clone)]
pub enum SourceError {
    #[error("source failed: {0}")]
    Failed(String),
    #[error("source timed out after {0:?}")]
    Timeout(Duration),
    #[error("source returned more than {limit} bytes")]
    TooLarge { limit: u64 },
}

/// Where a cache's document comes from. `load` may return early with
/// [`SourceError::TooLarge`] once it has read more than `limit` bytes; the cache checks the
/// size again and bounds the time.
pub trait Source: Send + Sync + 'static {
    /// What kind of source, for logs and spans (`file`, `http`, `command`, ...).
    fn kind(&self) -> &'static str;
    /// Load the whole document.
    fn load(&self, limit: u64) -> BoxFuture<'_, Result<Bytes, SourceError>>;
}

/// Load from `source` within `timeout` and `limit` bytes.
pub async fn load(
    source: &dyn Source,
    timeout: Duration,
    limit: u64,
) -> Result<Bytes, SourceError> {
    match tokio::time::timeout(timeout, source.load(limit)).await {
        Ok(Ok(body)) => {
            too_large(body.len() as u64, limit)?;
            Ok(body)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(SourceError::Timeout(timeout)),
    }
}

fn too_large(n: u64, limit: u64) -> Result<(), SourceError> {
    if n > limit {
        Err(SourceError::TooLarge { limit })
    } else {
        Ok(())
    }
}

/// A file, read whole at each refresh.
pub struct FileSource(pub PathBuf);

impl Source for FileSource {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn load(&self, limit: u64) -> BoxFuture<'_, Result<Bytes, SourceError>> {
        let path = &self.0;
        Box::pin(async move {
            let fail = |e: std::io::Error| SourceError::Failed(format!("{}: {e}", path.display()));
            let mut f = tokio::fs::File::open(path).await.map_err(fail)?;
            let mut body = Vec::new();
            (&mut f)
                .take(limit.saturating_add(1))
                .read_to_end(&mut body)
                .await
                .map_err(fail)?;
            too_large(body.len() as u64, limit)?;
            Ok(Bytes::from(body))
        })
    }
}

/// `GET url`; any status but 2xx is a failure. The URL is logged without credentials.
pub struct HttpSource {
    pub client: reqwest::Client,
    pub url: String,
}

impl HttpSource {
    pub fn new(url: impl Into<String>) -> Self {
        lookout_common::install_tls_provider();
        Self {
            client: reqwest::Client::builder().build().unwrap_or_default(),
            url: url.into(),
        }
    }
}

impl Source for HttpSource {
    fn kind(&self) -> &'static str {
        "http"
    }

    fn load(&self, limit: u64) -> BoxFuture<'_, Result<Bytes, SourceError>> {
        Box::pin(async move {
            let shown = || lookout_common::redact_url(&self.url);
            let mut resp = self.client.get(&self.url).send().await.map_err(|e| {
                SourceError::Failed(format!("GET {}: {}", shown(), e.without_url()))
            })?;
            if !resp.status().is_success() {
                return Err(SourceError::Failed(format!(
                    "GET {}: status {}",
                    shown(),
                    resp.status()
                )));
            }
            if let Some(n) = resp.content_length() {
                too_large(n, limit)?;
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| SourceError::Failed(e.without_url().to_string()))?
            {
                too_large((body.len() + chunk.len()) as u64, limit)?;
                body.extend_from_slice(&chunk);
            }
            Ok(Bytes::from(body))
        })
    }
}

/// A command's stdout; a non-zero exit is a failure. stdin and stderr are closed.
pub struct CommandSource(pub Vec<String>);

impl Source for CommandSource {
    fn kind(&self) -> &'static str {
        "command"
    }

    fn load(&self, limit: u64) -> BoxFuture<'_, Result<Bytes, SourceError>> {
        Box::pin(async move {
            let Some((program, args)) = self.0.split_first() else {
                return Err(SourceError::Failed("empty command".into()));
            };
            let fail = |e: std::io::Error| SourceError::Failed(format!("{program}: {e}"));
            let mut child = tokio::process::Command::new(program)
                .args(args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .map_err(fail)?;
            let mut out = child
                .stdout
                .take()
                .ok_or_else(|| SourceError::Failed("no stdout".into()))?;
            let mut body = Vec::new();
            (&mut out)
                .take(limit.saturating_add(1))
                .read_to_end(&mut body)
                .await
                .map_err(fail)?;
            too_large(body.len() as u64, limit)?;
            let status = child.wait().await.map_err(fail)?;
            if !status.success() {
                return Err(SourceError::Failed(format!(
                    "{program} exited with {status}"
                )));
            }
            Ok(Bytes::from(body))
        })
    }
}

/// A loader written by the embedding program.
pub type LoadFn = dyn Fn() -> BoxFuture<'static, Result<Bytes, String>> + Send + Sync;

struct FnSource {
    kind: &'static str,
    load: Box<LoadFn>,
}

impl Source for FnSource {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn load(&self, _limit: u64) -> BoxFuture<'_, Result<Bytes, SourceError>> {
        let fut = (self.load)();
        Box::pin(async move { fut.await.map_err(SourceError::Failed) })
    }
}

/// A source from a closure; an `Err` text becomes [`SourceError::Failed`]. Its kind is
/// `custom`.
pub fn from_fn(
    load: impl Fn() -> BoxFuture<'static, Result<Bytes, String>> + Send + Sync + 'static,
) -> Arc<dyn Source> {
    named_fn("custom", load)
}

/// [`from_fn`] with the kind logs and spans show.
pub fn named_fn(
    kind: &'static str,
    load: impl Fn() -> BoxFuture<'static, Result<Bytes, String>> + Send + Sync + 'static,
) -> Arc<dyn Source> {
    Arc::new(FnSource {
        kind,
        load: Box::new(load),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_command_limits_and_timeouts() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("doc");
        std::fs::write(&f, b"hello").unwrap();
        let t = Duration::from_secs(5);
        assert_eq!(
            &load(&FileSource(f.clone()), t, 5).await.unwrap()[..],
            b"hello"
        );
        assert!(matches!(
            load(&FileSource(f), t, 4).await,
            Err(SourceError::TooLarge { .. })
        ));
        let echo = CommandSource(vec!["sh".into(), "-c".into(), "printf abc".into()]);
        assert_eq!(&load(&echo, t, 100).await.unwrap()[..], b"abc");
        let fails = CommandSource(vec!["sh".into(), "-c".into(), "exit 3".into()]);
        assert!(matches!(
            load(&fails, t, 100).await,
            Err(SourceError::Failed(_))
        ));
        let slow = CommandSource(vec!["sleep".into(), "10".into()]);
        assert!(matches!(
            load(&slow, Duration::from_millis(200), 100).await,
            Err(SourceError::Timeout(_))
        ));
    }

    #[tokio::test]
    async fn a_closure_is_held_to_the_size_limit_too() {
        let big = from_fn(|| Box::pin(async { Ok(Bytes::from(vec![0u8; 10])) }));
        assert!(matches!(
            load(big.as_ref(), Duration::from_secs(1), 9).await,
            Err(SourceError::TooLarge { .. })
        ));
        assert_eq!(big.kind(), "custom");
    }
}
