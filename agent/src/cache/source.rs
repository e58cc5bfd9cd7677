//! The slow source a cache refreshes from: a file, an HTTP URL, a command's stdout, or a
//! loader of the embedding program (the agent's `{ primary = .. }` is one). Every load is bounded in time (`source_timeout`) and
//! size (`max_size`); a command is killed when its load is dropped or times out.

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

/// A loader supplied by the embedding program (tests, benches, library users).
pub type CustomLoad = Arc<dyn Fn() -> BoxFuture<'static, Result<Bytes, String>> + Send + Sync>;

#[derive(Clone)]
pub enum Source {
    File(PathBuf),
    Http(reqwest::Client, String),
    Command(Vec<String>),
    Custom(CustomLoad),
}

impl Source {
    /// What kind of source, for logs and spans.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::File(_) => "file",
            Source::Http(..) => "http",
            Source::Command(_) => "command",
            Source::Custom(_) => "custom",
        }
    }

    /// Load the whole document, within `timeout` and `limit` bytes.
    pub async fn load(&self, timeout: Duration, limit: u64) -> Result<Bytes, SourceError> {
        match tokio::time::timeout(timeout, self.load_unbounded_time(limit)).await {
            Ok(r) => r,
            Err(_) => Err(SourceError::Timeout(timeout)),
        }
    }

    async fn load_unbounded_time(&self, limit: u64) -> Result<Bytes, SourceError> {
        let too_large = |n: u64| {
            if n > limit {
                Err(SourceError::TooLarge { limit })
            } else {
                Ok(())
            }
        };
        match self {
            Source::File(path) => {
                let mut f = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| SourceError::Failed(format!("{}: {e}", path.display())))?;
                let mut body = Vec::new();
                (&mut f)
                    .take(limit.saturating_add(1))
                    .read_to_end(&mut body)
                    .await
                    .map_err(|e| SourceError::Failed(format!("{}: {e}", path.display())))?;
                too_large(body.len() as u64)?;
                Ok(Bytes::from(body))
            }
            Source::Http(client, url) => {
                let mut resp = client.get(url).send().await.map_err(|e| {
                    SourceError::Failed(format!(
                        "GET {}: {}",
                        lookout_common::redact_url(url),
                        e.without_url()
                    ))
                })?;
                if !resp.status().is_success() {
                    return Err(SourceError::Failed(format!(
                        "GET {}: status {}",
                        lookout_common::redact_url(url),
                        resp.status()
                    )));
                }
                if let Some(n) = resp.content_length() {
                    too_large(n)?;
                }
                let mut body = Vec::new();
                while let Some(chunk) = resp
                    .chunk()
                    .await
                    .map_err(|e| SourceError::Failed(e.without_url().to_string()))?
                {
                    too_large((body.len() + chunk.len()) as u64)?;
                    body.extend_from_slice(&chunk);
                }
                Ok(Bytes::from(body))
            }
            Source::Command(argv) => {
                let Some((program, args)) = argv.split_first() else {
                    return Err(SourceError::Failed("empty command".into()));
                };
                let mut child = tokio::process::Command::new(program)
                    .args(args)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::null())
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|e| SourceError::Failed(format!("{program}: {e}")))?;
                let mut out = child
                    .stdout
                    .take()
                    .ok_or_else(|| SourceError::Failed("no stdout".into()))?;
                let mut body = Vec::new();
                (&mut out)
                    .take(limit.saturating_add(1))
                    .read_to_end(&mut body)
                    .await
                    .map_err(|e| SourceError::Failed(format!("{program}: {e}")))?;
                too_large(body.len() as u64)?;
                let status = child
                    .wait()
                    .await
                    .map_err(|e| SourceError::Failed(format!("{program}: {e}")))?;
                if !status.success() {
                    return Err(SourceError::Failed(format!(
                        "{program} exited with {status}"
                    )));
                }
                Ok(Bytes::from(body))
            }
            Source::Custom(load) => {
                let body = load().await.map_err(SourceError::Failed)?;
                too_large(body.len() as u64)?;
                Ok(body)
            }
        }
    }
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
            &Source::File(f.clone()).load(t, 5).await.unwrap()[..],
            b"hello"
        );
        assert!(matches!(
            Source::File(f).load(t, 4).await,
            Err(SourceError::TooLarge { .. })
        ));
        let echo = Source::Command(vec!["sh".into(), "-c".into(), "printf abc".into()]);
        assert_eq!(&echo.load(t, 100).await.unwrap()[..], b"abc");
        let fails = Source::Command(vec!["sh".into(), "-c".into(), "exit 3".into()]);
        assert!(matches!(
            fails.load(t, 100).await,
            Err(SourceError::Failed(_))
        ));
        let slow = Source::Command(vec!["sleep".into(), "10".into()]);
        assert!(matches!(
            slow.load(Duration::from_millis(200), 100).await,
            Err(SourceError::Timeout(_))
        ));
    }
}
