//! The notification spool: every notification the engine emits is written here first, one
//! file per notice named by its sequence number, and leaves only once every configured
//! Alertmanager has taken it. Each Alertmanager has its own cursor (persisted beside the
//! notices), so one that is down does not hold back the others, and each receives the notices
//! in the order they were made — a resolution never overtakes its firing.
//!
//! Bounded: at most `max` notices; past that the oldest is dropped (and counted). Repeated
//! re-sends of a still-firing alert that no Alertmanager has taken yet replace each other
//! instead of piling up, so a long outage costs about one notice per alert state change.
//!
//! Hand-written rather than a queue crate: the per-consumer cursors, in-place coalescing and
//! the tiny volume (a few notices a minute) fit in ~200 lines with no new dependency.

use super::engine::Notice;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SpoolError {
    #[error("alert spool {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub use lookout_common::write_atomic;

struct Entry {
    seq: u64,
    fingerprint: String,
    notice: Notice,
}

pub struct Spool {
    dir: PathBuf,
    max: usize,
    entries: VecDeque<Entry>,
    /// Target (Alertmanager URL) → last sequence number it took.
    cursors: BTreeMap<String, u64>,
    targets: Vec<String>,
    next_seq: u64,
}

/// What a push did.
#[derive(Debug, Default, PartialEq)]
pub struct Pushed {
    /// Replaced a not-yet-taken notice of the same firing alert.
    pub coalesced: bool,
    /// Oldest notices dropped to stay within the bound.
    pub dropped: usize,
}

impl Spool {
    /// Open (or create) the spool in `dir` for these targets. Unreadable notice files are
    /// renamed `*.bad` and reported, never silently deleted.
    pub fn open(dir: &Path, max: usize, targets: &[String]) -> Result<Self, SpoolError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut files: Vec<(u64, PathBuf)> = Vec::new();
        for item in std::fs::read_dir(dir).map_err(io(dir))? {
            let item = item.map_err(io(dir))?;
            let path = item.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            if let Some(seq) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok())
            {
                files.push((seq, path));
            }
        }
        files.sort();
        let mut entries = VecDeque::new();
        for (seq, path) in files {
            let parsed = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Notice>(&b).map_err(|e| e.to_string()));
            match parsed {
                Ok(notice) => entries.push_back(Entry {
                    seq,
                    fingerprint: notice.fingerprint(),
                    notice,
                }),
                Err(e) => {
                    tracing::error!(path = %path.display(), "unreadable spooled alert kept aside as .bad: {e}");
                    let _ = std::fs::rename(&path, path.with_extension("bad"));
                }
            }
        }
        let cursor_path = dir.join("cursors");
        let mut cursors: BTreeMap<String, u64> = match std::fs::read(&cursor_path) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::error!(path = %cursor_path.display(), "unreadable spool cursors, re-sending all spooled alerts: {e}");
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        let last_seq = entries
            .back()
            .map(|e| e.seq)
            .into_iter()
            .chain(cursors.values().copied())
            .max()
            .unwrap_or(0);
        // A new target starts before the oldest spooled notice: it gets everything.
        let before_oldest = entries.front().map_or(last_seq, |e| e.seq - 1);
        cursors.retain(|t, _| targets.contains(t));
        for t in targets {
            cursors.entry(t.clone()).or_insert(before_oldest);
        }
        let mut spool = Self {
            dir: dir.to_path_buf(),
            max: max.max(1),
            entries,
            cursors,
            targets: targets.to_vec(),
            next_seq: last_seq + 1,
        };
        spool.collect_garbage()?;
        Ok(spool)
    }

    pub fn depth(&self) -> usize {
        self.entries.len()
    }

    /// Append a notice (durably, before returning).
    pub fn push(&mut self, notice: Notice) -> Result<Pushed, SpoolError> {
        let mut pushed = Pushed::default();
        let fingerprint = notice.fingerprint();
        if !notice.is_resolved()
            && let Some(last) = self
                .entries
                .iter_mut()
                .rev()
                .find(|e| e.fingerprint == fingerprint)
            && !last.notice.is_resolved()
            && last.seq > self.cursors.values().copied().max().unwrap_or(0)
        {
            // Nobody took the previous firing notice yet: refresh it in place.
            let path = self.dir.join(format!("{:020}.json", last.seq));
            let bytes = serde_json::to_vec(&notice).expect("notices serialize");
            write_atomic(&path, &bytes).map_err(io(&path))?;
            last.notice = notice;
            pushed.coalesced = true;
            return Ok(pushed);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let path = self.dir.join(format!("{seq:020}.json"));
        let bytes = serde_json::to_vec(&notice).expect("notices serialize");
        write_atomic(&path, &bytes).map_err(io(&path))?;
        self.entries.push_back(Entry {
            seq,
            fingerprint,
            notice,
        });
        while self.entries.len() > self.max {
            let old = self.entries.pop_front().expect("len > max ≥ 1");
            let path = self.dir.join(format!("{:020}.json", old.seq));
            let _ = std::fs::remove_file(&path);
            pushed.dropped += 1;
            for c in self.cursors.values_mut() {
                *c = (*c).max(old.seq);
            }
        }
        if pushed.dropped > 0 {
            self.save_cursors()?;
        }
        Ok(pushed)
    }

    /// Up to `limit` notices `target` has not taken yet, oldest first, with the sequence
    /// number of the last one.
    pub fn pending(&self, target: &str, limit: usize) -> Option<(u64, Vec<Notice>)> {
        let cursor = *self.cursors.get(target)?;
        let batch: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.seq > cursor)
            .take(limit)
            .collect();
        let last = batch.last()?.seq;
        Some((last, batch.into_iter().map(|e| e.notice.clone()).collect()))
    }

    /// `target` took every notice up to `seq`.
    pub fn ack(&mut self, target: &str, seq: u64) -> Result<(), SpoolError> {
        if let Some(c) = self.cursors.get_mut(target) {
            *c = (*c).max(seq);
        }
        self.save_cursors()?;
        self.collect_garbage()
    }

    /// Remove notices every target has taken.
    fn collect_garbage(&mut self) -> Result<(), SpoolError> {
        let taken_by_all = if self.targets.is_empty() {
            0
        } else {
            self.cursors.values().copied().min().unwrap_or(0)
        };
        while self.entries.front().is_some_and(|e| e.seq <= taken_by_all) {
            let e = self.entries.pop_front().expect("front exists");
            let path = self.dir.join(format!("{:020}.json", e.seq));
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(io(&path)(err)),
            }
        }
        Ok(())
    }

    fn save_cursors(&self) -> Result<(), SpoolError> {
        let path = self.dir.join("cursors");
        let bytes = serde_json::to_vec(&self.cursors).expect("cursors serialize");
        write_atomic(&path, &bytes).map_err(io(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(name: &str, resolved: bool, summary: &str) -> Notice {
        Notice {
            labels: [("alertname".to_string(), name.to_string())].into(),
            annotations: [("summary".to_string(), summary.to_string())].into(),
            starts_at: "2026-01-01T00:00:00Z".into(),
            ends_at: resolved.then(|| "2026-01-01T00:05:00Z".to_string()),
            generator_url: String::new(),
        }
    }

    #[test]
    fn survives_reopen_in_order_and_per_target() {
        let dir = tempfile::tempdir().unwrap();
        let targets = vec!["a".to_string(), "b".to_string()];
        let mut s = Spool::open(dir.path(), 100, &targets).unwrap();
        s.push(n("X", false, "1")).unwrap();
        s.push(n("Y", false, "2")).unwrap();
        s.push(n("X", true, "3")).unwrap();
        let (last, batch) = s.pending("a", 2).unwrap();
        assert_eq!(batch.len(), 2);
        s.ack("a", last).unwrap();
        drop(s);

        let mut s = Spool::open(dir.path(), 100, &targets).unwrap();
        assert_eq!(s.depth(), 3, "b has taken nothing, so all three stay");
        let (_, a) = s.pending("a", 10).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].annotations["summary"], "3");
        let (last_b, b) = s.pending("b", 10).unwrap();
        let order: Vec<_> = b.iter().map(|x| x.annotations["summary"].clone()).collect();
        assert_eq!(order, ["1", "2", "3"]);
        s.ack("b", last_b).unwrap();
        assert_eq!(s.depth(), 1, "a still owes the third");
        let (last_a, _) = s.pending("a", 10).unwrap();
        s.ack("a", last_a).unwrap();
        assert_eq!(s.depth(), 0);
        let files = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "json")
            })
            .count();
        assert_eq!(files, 0);
    }

    #[test]
    fn repeated_firing_coalesces_and_bound_drops_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let targets = vec!["a".to_string()];
        let mut s = Spool::open(dir.path(), 3, &targets).unwrap();
        assert!(!s.push(n("X", false, "1")).unwrap().coalesced);
        assert!(s.push(n("X", false, "2")).unwrap().coalesced);
        assert_eq!(s.depth(), 1);
        assert_eq!(s.pending("a", 10).unwrap().1[0].annotations["summary"], "2");
        s.push(n("X", true, "r")).unwrap();
        s.push(n("Y", false, "y")).unwrap();
        let p = s.push(n("Z", false, "z")).unwrap();
        assert_eq!(p.dropped, 1);
        let got: Vec<_> = s
            .pending("a", 10)
            .unwrap()
            .1
            .iter()
            .map(|x| x.annotations["summary"].clone())
            .collect();
        assert_eq!(got, ["r", "y", "z"]);
    }

    #[test]
    fn corrupt_file_is_set_aside_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let targets = vec!["a".to_string()];
        let mut s = Spool::open(dir.path(), 10, &targets).unwrap();
        s.push(n("X", false, "1")).unwrap();
        drop(s);
        std::fs::write(dir.path().join(format!("{:020}.json", 7)), b"{not json").unwrap();
        let s = Spool::open(dir.path(), 10, &targets).unwrap();
        assert_eq!(s.depth(), 1);
        assert!(dir.path().join(format!("{:020}.bad", 7)).exists());
    }
}
