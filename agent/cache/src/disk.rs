//! The local on-disk snapshot of a cache: what lets an agent serve at once after a restart,
//! even with the blob tier down, and what makes "never serve a lower version than before"
//! hold across restarts (the snapshot is written before a new version is served).
//!
//! One file, `snapshot`: a JSON header line `{"format":1,"version":..,"sha256":..,"size":..}`,
//! a newline, then the bytes. Written to a temporary file and renamed, so it is either the old
//! or the new snapshot, never half of one; verified against its hash when read.

use super::Snapshot;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

#[derive(Serialize, Deserialize)]
struct Header {
    format: u32,
    version: u64,
    sha256: String,
    size: u64,
}

pub fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join("snapshot")
}

/// The version of the snapshot under `dir`, from its header alone.
fn saved_version(dir: &Path) -> Option<u64> {
    use std::io::BufRead;
    let f = std::fs::File::open(snapshot_path(dir)).ok()?;
    let mut line = Vec::new();
    std::io::BufReader::new(f)
        .take(64 * 1024)
        .read_until(b'\n', &mut line)
        .ok()?;
    serde_json::from_slice::<Header>(line.strip_suffix(b"\n")?)
        .ok()
        .map(|h| h.version)
}

/// Write `snap` atomically under `dir`, unless a snapshot of a higher version is already
/// there (a slow earlier writer must not replace a newer snapshot).
pub fn save(dir: &Path, snap: &Snapshot) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    if saved_version(dir).is_some_and(|v| v > snap.version) {
        return Ok(());
    }
    let header = serde_json::to_vec(&Header {
        format: 1,
        version: snap.version,
        sha256: snap.sha256.clone(),
        size: snap.bytes.len() as u64,
    })
    .map_err(std::io::Error::other)?;
    lookout_common::write_atomic_with(&snapshot_path(dir), |f| {
        f.write_all(&header)?;
        f.write_all(b"\n")?;
        f.write_all(&snap.bytes)
    })?;
    // The rename is durable only once the directory entry is: without this a power cut can
    // bring back the previous snapshot, a lower version than one already served.
    std::fs::File::open(dir)?.sync_all()
}

/// Remove the snapshot under `dir` (after a failed save, so that a restart cannot serve a
/// version lower than one served since). Nothing there is success.
pub fn discard(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(snapshot_path(dir)) {
        Ok(()) => Ok(()),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.kind() == std::io::ErrorKind::NotADirectory =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Read and verify the snapshot under `dir`. `Ok(None)` when there is none; `Err` (with a
/// reason) when one exists but is damaged.
pub fn load(dir: &Path) -> Result<Option<Snapshot>, String> {
    let raw = match std::fs::read(snapshot_path(dir)) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read local snapshot: {e}")),
    };
    let nl = raw
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("local snapshot has no header")?;
    let header: Header = serde_json::from_slice(&raw[..nl])
        .map_err(|e| format!("local snapshot header is invalid: {e}"))?;
    let body = &raw[nl + 1..];
    if header.format != 1 || body.len() as u64 != header.size {
        return Err(format!(
            "local snapshot is truncated or of an unknown format ({} of {} bytes)",
            body.len(),
            header.size
        ));
    }
    let sha = hex::encode(Sha256::digest(body));
    if sha != header.sha256 {
        return Err("local snapshot does not match its hash".into());
    }
    Ok(Some(Snapshot {
        version: header.version,
        sha256: sha,
        bytes: Bytes::copy_from_slice(body),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_and_reject_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        let snap = Snapshot::new(4, Bytes::from_static(b"payload"));
        save(dir.path(), &snap).unwrap();
        let back = load(dir.path()).unwrap().unwrap();
        assert_eq!(back.version, 4);
        assert_eq!(back.bytes, snap.bytes);
        let mut raw = std::fs::read(snapshot_path(dir.path())).unwrap();
        let n = raw.len();
        raw[n - 1] ^= 1;
        std::fs::write(snapshot_path(dir.path()), &raw).unwrap();
        assert!(load(dir.path()).is_err());
        std::fs::write(snapshot_path(dir.path()), &raw[..n - 3]).unwrap();
        assert!(load(dir.path()).is_err());
    }
}
