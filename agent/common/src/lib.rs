//! The few helpers every lookout crate needs, kept in one place so that the cache, the tracker
//! and the agent do not each carry a copy: atomic file writes ([`write_atomic`]), one-line
//! error chains ([`error_chain`]), credential-free URLs for logs ([`redact_url`]) and the
//! latency histogram buckets every crate records with ([`LATENCY_BUCKETS`]), and the TLS
//! crypto provider every HTTP client needs ([`install_tls_provider`]).
//!
//! It depends on `url` and `rustls` alone, so that a crate embedding the cache or the tracker
//! pulls in nothing more through it.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("state.json");
//! lookout_common::write_atomic(&path, b"{}").unwrap();
//! assert_eq!(std::fs::read(&path).unwrap(), b"{}");
//! assert_eq!(
//!     lookout_common::redact_url("https://user:secret@blob.example/c?sig=abc"),
//!     "https://***:***@blob.example/c?***"
//! );
//! ```

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Makes ring rustls's process-wide crypto provider, unless one is installed already.
///
/// reqwest is built without a provider of its own (feature `rustls-no-provider`, so that
/// aws-lc is not compiled) and takes the process default when a client is built; building a
/// client with none installed panics. Every crate calls this before it builds a client; a
/// service embedding the cache or the tracker that installed its own provider keeps it.
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Err only when another thread installed one meanwhile: that one stays.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
    });
}

/// Histogram buckets for latencies in seconds, 100 µs to 60 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// The prefix of the temporary files [`write_atomic`] leaves behind only if the process dies
/// between create and rename; directory readers skip names that start with it.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Write `bytes` to `path` so that a crash leaves either the old or the new file, never half
/// of one: a temporary sibling is written, synced and renamed over `path`. The parent
/// directory is created when missing; the temporary file is removed when any step fails.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// [`write_atomic`] for content written in pieces (a header, then a body).
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    // Unique per process and call: concurrent writers of one path never share a temp file.
    let tmp = dir.join(format!(
        "{TEMP_PREFIX}{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        write(&mut f)?;
        f.sync_data()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// An error with its causes on one line ("error sending request: connection refused"): the
/// top level alone rarely says what went wrong. A cause whose text is already included is not
/// repeated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Strip credentials from a URL before it is logged: user, password and the whole query
/// (SAS tokens and signatures live there).
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            if !u.username().is_empty() {
                let _ = u.set_username("***");
            }
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            if u.query().is_some() {
                u.set_query(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<unparseable URL>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("f");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f")]);
    }

    #[test]
    fn failed_write_keeps_the_old_file_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"old").unwrap();
        let err = write_atomic_with(&path, |_| Err(std::io::Error::other("disk full")));
        assert!(err.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn error_chain_joins_causes_once() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("error sending request")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::other("connection refused"));
        assert_eq!(error_chain(&e), "error sending request: connection refused");
    }

    #[test]
    fn redaction_hides_credentials_and_queries() {
        assert_eq!(
            redact_url("http://127.0.0.1:9093/"),
            "http://127.0.0.1:9093/"
        );
        assert_eq!(
            redact_url("https://u:p@h/x?token=1"),
            "https://***:***@h/x?***"
        );
        assert_eq!(redact_url("not a url"), "<unparseable URL>");
    }
}
