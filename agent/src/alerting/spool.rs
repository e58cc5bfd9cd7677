//! The notification spool: every notification the engine emits is kept here, per
//! Alertmanager, until that Alertmanager has taken it.
//!
//! One queue per Alertmanager, keyed by **alert**: a queue holds at most one notice per
//! alert (label set) — the latest state of it. A new notice of an alert replaces the one still
//! waiting (a re-send of a firing alert, or its resolution replacing its firing), so an
//! Alertmanager that is down for hours costs one entry per distinct alert, not one per
//! re-send, and when it returns it receives the latest state of every alert, resolutions
//! included. Queues are independent: a dead Alertmanager never holds back a live one.
//!
//! On disk: `<dir>/<key>/<alert hash>.json`, one file per waiting notice, written atomically
//! (temporary file, fsync, rename) with mode 0600 in 0700 directories. `<key>` is a hash of
//! the Alertmanager URL *without* its user info and query, so credentials appear in no file
//! name, key or file; `<dir>/<key>/target` names the URL (redacted) for people.
//!
//! Failing open: when the disk refuses a write (read-only, full, gone), the notice is kept in
//! memory and delivered all the same; the failure is counted, reported by [`Spool::failing`]
//! (which the engine turns into the `LookoutAlertSpoolFailing` alert), and the notices that
//! live only in memory are written out as soon as the disk takes writes again. A spool that
//! cannot even be opened is an in-memory spool, never "delivery off".
//!
//! Bounds: a queue holds one entry per distinct alert. As a safety net against a runaway
//! label set, past `max` entries a *firing* notice is dropped (the engine re-sends firing
//! alerts every resend interval, so it comes back): the re-send of the alert that
//! Alertmanager took most recently if there is one (so the skipped refresh rotates), else the
//! oldest. Resolutions are never dropped. A new `max` (a reload) applies at once.
//!
//! Hand-written rather than a queue crate: per-consumer queues with replace-by-key, atomic
//! per-entry files and an in-memory fallback fit in a few hundred lines with no new
//! dependency; volumes are a few notices a minute.

use super::engine::Notice;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const DIR_MODE: u32 = 0o700;
/// Drops at the bound are logged at most this often.
pub const DROP_REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
pub const FILE_MODE: u32 = 0o600;

/// Create `dir` (and its missing parents) with mode 0700, and tighten an existing one.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    let mode = fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode != DIR_MODE {
        fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))?;
    }
    Ok(())
}

/// Write `bytes` to `path` atomically (see [`lookout_common::write_atomic`]) with mode 0600:
/// the permissions are set on the temporary file before a byte of it is written.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    lookout_common::write_atomic_with(path, |f| {
        f.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
        f.write_all(bytes)
    })
}

/// The URL without user info, query and fragment: what may be shown and hashed.
pub fn strip_credentials(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "<unparseable URL>".to_string(),
    }
}

fn short_hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

/// The directory name of an Alertmanager's queue: a hash of its URL without credentials.
pub fn target_key(url: &str) -> String {
    short_hash(&strip_credentials(url))
}

/// One waiting notice as stored.
#[derive(Serialize, Deserialize)]
struct Stored {
    seq: u64,
    notice: Notice,
}

struct Entry {
    seq: u64,
    notice: Notice,
    /// On disk (false: only in memory, the disk refused it).
    durable: bool,
}

struct Queue {
    dir: PathBuf,
    /// Fingerprint → the latest notice of that alert not yet taken.
    entries: BTreeMap<String, Entry>,
    /// Firing alerts this Alertmanager has taken, with when (a spool-wide counter): it holds
    /// them until their `endsAt`, so a re-send of one can wait while a first notice cannot.
    /// Memory only; bounded like the queue.
    taken: BTreeMap<String, u64>,
}

impl Queue {
    fn file(&self, fingerprint: &str) -> PathBuf {
        self.dir.join(format!("{}.json", short_hash(fingerprint)))
    }
}

/// A notice waiting for one Alertmanager, as [`Spool::pending`] hands it out.
#[derive(Clone, Debug)]
pub struct Waiting {
    pub fingerprint: String,
    pub seq: u64,
    pub notice: Notice,
}

/// What a push did.
#[derive(Debug, Default, PartialEq)]
pub struct Pushed {
    /// Firing notices dropped to stay within `max` (summed over queues).
    pub dropped: usize,
}

pub struct Spool {
    dir: PathBuf,
    max: usize,
    /// Alertmanager URL → its queue.
    queues: BTreeMap<String, Queue>,
    next_seq: u64,
    /// Writes (and removals) the disk refused, over the spool's life.
    write_errors: u64,
    /// Of those, how many [`Spool::take_new_errors`] has handed out.
    errors_taken: u64,
    /// The last disk error while it lasts: `None` once a write succeeds again.
    failing: Option<String>,
    /// Files whose removal failed (delivered notices), removed when the disk recovers.
    stale: Vec<PathBuf>,
    /// Notices dropped by the bound, over the spool's life.
    dropped_total: u64,
    /// Counts acknowledged firing notices: the order in which Alertmanagers took them.
    ack_clock: u64,
    /// Drops not yet reported in the log, and when the last report was.
    drops_unreported: u64,
    last_drop_report: Option<std::time::Instant>,
}

impl Spool {
    /// Open the spool in `dir` for these Alertmanagers, loading what waits there. Never
    /// fails: a directory that cannot be created or read gives an in-memory spool (reported
    /// by [`Spool::failing`]). Unreadable notice files are renamed `*.bad`, never deleted.
    pub fn open(dir: &Path, max: usize, targets: &[String]) -> Self {
        let mut spool = Self {
            dir: dir.to_path_buf(),
            max: max.max(1),
            queues: BTreeMap::new(),
            next_seq: 1,
            write_errors: 0,
            errors_taken: 0,
            failing: None,
            stale: Vec::new(),
            dropped_total: 0,
            ack_clock: 0,
            drops_unreported: 0,
            last_drop_report: None,
        };
        if let Err(e) = private_dir(dir) {
            spool.note_disk_error(dir, &e);
        }
        spool.migrate_flat_layout(targets);
        spool.set_targets(targets);
        spool
    }

    /// Follow a new list of Alertmanagers: queues of removed ones go (with their files),
    /// new ones start with what a previous run left for them on disk, if anything.
    /// An Alertmanager whose credentials changed (the URL otherwise the same: the fix for a
    /// 401) is the same Alertmanager: its queue carries over to the new URL.
    pub fn set_targets(&mut self, targets: &[String]) {
        let keys = keys_of(targets);
        let removed: Vec<String> = self
            .queues
            .keys()
            .filter(|t| !targets.contains(t))
            .cloned()
            .collect();
        let mut orphans: Vec<Queue> = removed
            .iter()
            .filter_map(|t| self.queues.remove(t))
            .collect();
        for (target, key) in targets.iter().zip(keys) {
            if self.queues.contains_key(target) {
                continue;
            }
            let dir = self.dir.join(key);
            if let Some(i) = orphans.iter().position(|q| q.dir == dir) {
                self.queues.insert(target.clone(), orphans.swap_remove(i));
                continue;
            }
            let q = self.load_queue(target, &dir);
            self.queues.insert(target.clone(), q);
        }
        for q in orphans {
            let _ = fs::remove_dir_all(&q.dir);
        }
        // Directories of Alertmanagers no longer configured: nobody will take their notices.
        let live: Vec<PathBuf> = self.queues.values().map(|q| q.dir.clone()).collect();
        if let Ok(items) = fs::read_dir(&self.dir) {
            for item in items.flatten() {
                let path = item.path();
                if path.is_dir() && !live.contains(&path) {
                    tracing::info!(dir = %path.display(), "removing the alert spool of an Alertmanager no longer configured");
                    let _ = fs::remove_dir_all(&path);
                }
            }
        }
    }

    fn load_queue(&mut self, target: &str, dir: &Path) -> Queue {
        let mut q = Queue {
            dir: dir.to_path_buf(),
            entries: BTreeMap::new(),
            taken: BTreeMap::new(),
        };
        if let Err(e) = private_dir(dir) {
            self.note_disk_error(dir, &e);
            return q;
        }
        let label = dir.join("target");
        let shown = strip_credentials(target);
        if fs::read_to_string(&label).ok().as_deref() != Some(shown.as_str())
            && let Err(e) = write_atomic(&label, shown.as_bytes())
        {
            self.note_disk_error(&label, &e);
        }
        let Ok(items) = fs::read_dir(dir) else {
            return q;
        };
        for item in items.flatten() {
            let path = item.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let parsed = fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Stored>(&b).map_err(|e| e.to_string()));
            match parsed {
                Ok(s) => {
                    let fp = s.notice.fingerprint();
                    self.next_seq = self.next_seq.max(s.seq + 1);
                    let newer = q.entries.get(&fp).is_none_or(|e| e.seq < s.seq);
                    if newer {
                        q.entries.insert(
                            fp,
                            Entry {
                                seq: s.seq,
                                notice: s.notice,
                                durable: true,
                            },
                        );
                    }
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), "unreadable spooled alert kept aside as .bad: {e}");
                    let _ = fs::rename(&path, path.with_extension("bad"));
                }
            }
        }
        q
    }

    /// The spool of earlier versions: `<dir>/<seq>.json` files shared by every
    /// Alertmanager, and a `cursors` file keyed by URL. Load what each target had not taken,
    /// then remove those files (the cursors file held URLs with their credentials).
    fn migrate_flat_layout(&mut self, targets: &[String]) {
        let Ok(items) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut old: Vec<(u64, PathBuf)> = items
            .flatten()
            .map(|i| i.path())
            .filter(|p| p.is_file() && p.extension().and_then(|e| e.to_str()) == Some("json"))
            .filter_map(|p| {
                let seq = p.file_stem()?.to_str()?.parse::<u64>().ok()?;
                Some((seq, p))
            })
            .collect();
        let cursors_path = self.dir.join("cursors");
        if old.is_empty() && !cursors_path.exists() {
            return;
        }
        old.sort();
        let cursors: BTreeMap<String, u64> = fs::read(&cursors_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let notices: Vec<(u64, Notice)> = old
            .iter()
            .filter_map(|(seq, p)| {
                let n = serde_json::from_slice::<Notice>(&fs::read(p).ok()?).ok()?;
                Some((*seq, n))
            })
            .collect();
        self.set_targets(targets);
        for (target, q) in self.queues.iter_mut() {
            let cursor = cursors.get(target).copied().unwrap_or(0);
            for (seq, n) in notices.iter().filter(|(s, _)| *s > cursor) {
                q.entries.insert(
                    n.fingerprint(),
                    Entry {
                        seq: *seq,
                        notice: n.clone(),
                        durable: false,
                    },
                );
            }
        }
        self.next_seq = self.next_seq.max(old.last().map_or(0, |(s, _)| *s) + 1);
        self.persist_memory_only();
        for (_, p) in &old {
            let _ = fs::remove_file(p);
        }
        let _ = fs::remove_file(&cursors_path);
        tracing::info!(
            notices = notices.len(),
            "moved the alert spool to per-Alertmanager queues"
        );
    }

    /// Notices waiting, summed over the Alertmanagers.
    pub fn depth(&self) -> usize {
        self.queues.values().map(|q| q.entries.len()).sum()
    }

    /// Notices waiting for one Alertmanager.
    pub fn depth_of(&self, target: &str) -> usize {
        self.queues.get(target).map_or(0, |q| q.entries.len())
    }

    /// Notices that live only in memory (the disk refused them).
    pub fn memory_only(&self) -> usize {
        self.queues
            .values()
            .flat_map(|q| q.entries.values())
            .filter(|e| !e.durable)
            .count()
    }

    pub fn write_errors(&self) -> u64 {
        self.write_errors
    }

    /// Refused writes since the last call (for a counter that outlives config generations
    /// as the spool does).
    pub fn take_new_errors(&mut self) -> u64 {
        let new = self.write_errors - self.errors_taken;
        self.errors_taken = self.write_errors;
        new
    }

    /// The current disk error, while the disk refuses writes.
    pub fn failing(&self) -> Option<&str> {
        self.failing.as_deref()
    }

    /// Record a refused write (the spool's own, or the engine's state file beside it).
    pub fn note_disk_error(&mut self, path: &Path, e: &std::io::Error) {
        self.write_errors += 1;
        if self.failing.is_none() {
            tracing::error!(path = %path.display(), "alert spool: the disk refuses writes ({e}); keeping alert notifications in memory until it recovers");
        }
        self.failing = Some(e.to_string());
    }

    fn disk_ok(&mut self) {
        if self.failing.take().is_some() {
            tracing::info!("alert spool: the disk takes writes again");
        }
    }

    /// Queue a notice for every Alertmanager, replacing the waiting notice of the same alert.
    pub fn push(&mut self, notice: Notice) -> Pushed {
        self.persist_memory_only();
        let mut pushed = Pushed::default();
        let fingerprint = notice.fingerprint();
        let seq = self.next_seq;
        self.next_seq += 1;
        let bytes = serde_json::to_vec(&Stored {
            seq,
            notice: notice.clone(),
        })
        .expect("notices serialize");
        let targets: Vec<String> = self.queues.keys().cloned().collect();
        for target in targets {
            let path = {
                let q = self.queues.get_mut(&target).expect("key listed");
                q.entries.insert(
                    fingerprint.clone(),
                    Entry {
                        seq,
                        notice: notice.clone(),
                        durable: false,
                    },
                );
                q.file(&fingerprint)
            };
            pushed.dropped += self.trim(&target, Some(&fingerprint));
            match write_atomic(&path, &bytes) {
                Ok(()) => {
                    self.disk_ok();
                    if let Some(e) = self
                        .queues
                        .get_mut(&target)
                        .and_then(|q| q.entries.get_mut(&fingerprint))
                    {
                        e.durable = true;
                    }
                }
                Err(e) => self.note_disk_error(&path, &e),
            }
        }
        pushed
    }

    /// The safety bound on one queue: drop firing notices (never a resolution, nor the
    /// notice `keep` just pushed) until it holds at most `max`. Returns how many.
    ///
    /// Which: first the re-send of the alert this Alertmanager took most recently (it holds
    /// that alert firing until its `endsAt`, several resends ahead, so skipping one refresh
    /// costs nothing, and the victims rotate instead of one alert losing every time); only
    /// when none is a re-send, the oldest notice.
    fn trim(&mut self, target: &str, keep: Option<&str>) -> usize {
        let mut dropped = Vec::new();
        if let Some(q) = self.queues.get_mut(target) {
            while q.entries.len() > self.max {
                let firing = || q.entries.iter().filter(|(_, e)| !e.notice.is_resolved());
                // The notice just pushed is a candidate too when it is a re-send: in a burst
                // of re-sends, later ones must not always evict earlier ones.
                let refresh = firing()
                    .filter_map(|(fp, _)| q.taken.get(fp).map(|t| (fp, *t)))
                    .max_by_key(|(_, t)| *t)
                    .map(|(fp, _)| fp.clone());
                let victim = refresh.or_else(|| {
                    firing()
                        .filter(|(fp, _)| Some(fp.as_str()) != keep)
                        .min_by_key(|(_, e)| e.seq)
                        .map(|(fp, _)| fp.clone())
                });
                let Some(fp) = victim else { break };
                q.entries.remove(&fp);
                dropped.push(q.file(&fp));
            }
        }
        self.dropped_total += dropped.len() as u64;
        self.drops_unreported += dropped.len() as u64;
        let n = dropped.len();
        for p in dropped {
            self.remove_file(&p);
        }
        n
    }

    /// A new bound (`alerts.spool_max` changed by a reload): a smaller one applies at once,
    /// dropping exactly what it must by the same rule as [`Spool::push`] (oldest firing
    /// first, never a resolution); a larger one keeps everything. Returns how many went.
    pub fn set_max(&mut self, max: usize) -> usize {
        let max = max.max(1);
        if max == self.max {
            return 0;
        }
        self.max = max;
        let targets: Vec<String> = self.queues.keys().cloned().collect();
        targets.iter().map(|t| self.trim(t, None)).sum()
    }

    /// Drops to report in the log now: those since the last report, at most once per
    /// [`DROP_REPORT_EVERY`] (a queue past its bound drops at every resend; one line a
    /// minute says so, the counter has the rest).
    pub fn drops_to_report(&mut self) -> Option<u64> {
        if self.drops_unreported == 0
            || self
                .last_drop_report
                .is_some_and(|t| t.elapsed() < DROP_REPORT_EVERY)
        {
            return None;
        }
        self.last_drop_report = Some(std::time::Instant::now());
        Some(std::mem::take(&mut self.drops_unreported))
    }

    /// Notices dropped by the bound over the spool's life (it outlives config generations,
    /// so this is the running total the alert rules take the increase of).
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }

    /// Up to `limit` notices waiting for `target`, oldest first.
    pub fn pending(&self, target: &str, limit: usize) -> Vec<Waiting> {
        let Some(q) = self.queues.get(target) else {
            return Vec::new();
        };
        let mut out: Vec<Waiting> = q
            .entries
            .iter()
            .map(|(fp, e)| Waiting {
                fingerprint: fp.clone(),
                seq: e.seq,
                notice: e.notice.clone(),
            })
            .collect();
        out.sort_by_key(|w| w.seq);
        out.truncate(limit);
        out
    }

    /// `target` took these notices. An entry replaced since it was handed out stays: its
    /// newer state is still owed.
    pub fn ack(&mut self, target: &str, taken: &[Waiting]) {
        let mut gone = Vec::new();
        let max = self.max;
        if let Some(q) = self.queues.get_mut(target) {
            for w in taken {
                if w.notice.is_resolved() {
                    q.taken.remove(&w.fingerprint);
                } else {
                    self.ack_clock += 1;
                    q.taken.insert(w.fingerprint.clone(), self.ack_clock);
                }
                if q.entries
                    .get(&w.fingerprint)
                    .is_some_and(|e| e.seq == w.seq)
                {
                    q.entries.remove(&w.fingerprint);
                    gone.push(q.file(&w.fingerprint));
                }
            }
            // Bounded: forget the alerts taken longest ago first.
            while q.taken.len() > max {
                let oldest = q
                    .taken
                    .iter()
                    .min_by_key(|(_, t)| **t)
                    .map(|(fp, _)| fp.clone());
                if let Some(fp) = oldest {
                    q.taken.remove(&fp);
                }
            }
        }
        for p in gone {
            self.remove_file(&p);
        }
        self.persist_memory_only();
    }

    fn remove_file(&mut self, path: &Path) {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                self.note_disk_error(path, &e);
                if !self.stale.iter().any(|p| p == path) {
                    self.stale.push(path.to_path_buf());
                }
            }
        }
    }

    /// Write out what lives only in memory, and remove files of delivered notices whose
    /// removal failed. Stops at the first failure (the disk is still sick).
    pub fn persist_memory_only(&mut self) {
        while let Some(p) = self.stale.last().cloned() {
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => return,
            }
            self.stale.pop();
        }
        let todo: Vec<(String, String)> = self
            .queues
            .iter()
            .flat_map(|(t, q)| {
                q.entries
                    .iter()
                    .filter(|(_, e)| !e.durable)
                    .map(move |(fp, _)| (t.clone(), fp.clone()))
            })
            .collect();
        for (target, fp) in todo {
            let q = self.queues.get_mut(&target).expect("key listed");
            if let Err(e) = private_dir(&q.dir) {
                let dir = q.dir.clone();
                self.note_disk_error(&dir, &e);
                return;
            }
            let path = q.file(&fp);
            let e = q.entries.get_mut(&fp).expect("listed");
            let bytes = serde_json::to_vec(&Stored {
                seq: e.seq,
                notice: e.notice.clone(),
            })
            .expect("notices serialize");
            match write_atomic(&path, &bytes) {
                Ok(()) => {
                    e.durable = true;
                    self.disk_ok();
                }
                Err(err) => {
                    self.note_disk_error(&path, &err);
                    return;
                }
            }
        }
    }

    /// See whether the disk takes writes (a small probe file), and catch up if it does.
    /// Called now and then while [`Spool::failing`], so that the failure clears by itself.
    pub fn check_disk(&mut self) {
        let probe = self.dir.join(".probe");
        let checked = private_dir(&self.dir).and_then(|()| write_atomic(&probe, b"ok"));
        match checked {
            Ok(()) => {
                self.disk_ok();
                self.persist_memory_only();
            }
            Err(e) => self.note_disk_error(&probe, &e),
        }
    }
}

/// Queue directory names for these targets: the credential-free hash, with a suffix when
/// two URLs differ only in their credentials.
fn keys_of(targets: &[String]) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    targets
        .iter()
        .map(|t| {
            let key = target_key(t);
            let n = seen.entry(key.clone()).or_default();
            *n += 1;
            if *n == 1 { key } else { format!("{key}-{n}") }
        })
        .collect()
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

    fn summaries(w: &[Waiting]) -> Vec<String> {
        w.iter()
            .map(|x| x.notice.annotations["summary"].clone())
            .collect()
    }

    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for d in fs::read_dir(dir).unwrap().flatten() {
            if d.path().is_dir() {
                for f in fs::read_dir(d.path()).unwrap().flatten() {
                    out.push(f.path());
                }
            }
        }
        out
    }

    #[test]
    fn each_alertmanager_gets_the_latest_state_of_each_alert_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let targets = vec!["http://a".to_string(), "http://b".to_string()];
        let mut s = Spool::open(dir.path(), 100, &targets);
        s.push(n("X", false, "x1"));
        s.push(n("Y", false, "y1"));
        let a = s.pending("http://a", 10);
        assert_eq!(summaries(&a), ["x1", "y1"]);
        s.ack("http://a", &a);
        // b is down: a hundred re-sends and a resolution of X cost it two entries.
        for i in 0..100 {
            s.push(n("Y", false, &format!("y{i}")));
        }
        s.push(n("X", true, "x-resolved"));
        assert_eq!(s.depth_of("http://b"), 2);
        assert_eq!(summaries(&s.pending("http://b", 10)), ["y99", "x-resolved"]);
        assert_eq!(summaries(&s.pending("http://a", 10)), ["y99", "x-resolved"]);
        drop(s);

        // Reopened (a restart): the same, from disk.
        let mut s = Spool::open(dir.path(), 100, &targets);
        let b = s.pending("http://b", 10);
        assert_eq!(summaries(&b), ["y99", "x-resolved"]);
        // A notice replaced after it was handed out is still owed.
        s.push(n("Y", false, "y-new"));
        s.ack("http://b", &b);
        assert_eq!(summaries(&s.pending("http://b", 10)), ["y-new"]);
        let a = s.pending("http://a", 10);
        s.ack("http://a", &a);
        let b = s.pending("http://b", 10);
        s.ack("http://b", &b);
        assert_eq!(s.depth(), 0);
        assert!(
            files(dir.path())
                .iter()
                .all(|p| p.file_name().unwrap() == "target"),
            "{:?}",
            files(dir.path())
        );
    }

    #[test]
    fn the_bound_drops_firing_notices_never_resolutions() {
        let dir = tempfile::tempdir().unwrap();
        let targets = vec!["http://a".to_string()];
        let mut s = Spool::open(dir.path(), 3, &targets);
        s.push(n("R1", true, "r1"));
        s.push(n("F1", false, "f1"));
        s.push(n("R2", true, "r2"));
        assert_eq!(s.push(n("F2", false, "f2")).dropped, 1);
        assert_eq!(summaries(&s.pending("http://a", 10)), ["r1", "r2", "f2"]);
        // Only resolutions left to drop: the bound yields rather than lose one.
        assert_eq!(s.push(n("R3", true, "r3")).dropped, 1);
        assert_eq!(s.push(n("R4", true, "r4")).dropped, 0);
        assert_eq!(
            summaries(&s.pending("http://a", 10)),
            ["r1", "r2", "r3", "r4"]
        );
    }

    #[test]
    fn a_new_bound_applies_at_once_and_drops_only_what_it_must() {
        let dir = tempfile::tempdir().unwrap();
        let targets = vec!["http://a".to_string(), "http://b".to_string()];
        let mut s = Spool::open(dir.path(), 10, &targets);
        for (name, resolved) in [("F1", false), ("R1", true), ("F2", false), ("F3", false)] {
            s.push(n(name, resolved, &name.to_lowercase()));
        }
        let a = s.pending("http://a", 10);
        s.ack("http://a", &a);
        // Raised: nothing goes.
        assert_eq!(s.set_max(20), 0);
        assert_eq!(s.depth(), 4);
        // Lowered to 2: b (4 waiting) loses its two oldest firing notices, a (empty) nothing;
        // the resolution stays whatever its age.
        assert_eq!(s.set_max(2), 2);
        assert_eq!(s.dropped_total(), 2);
        assert_eq!(summaries(&s.pending("http://b", 10)), ["r1", "f3"]);
        assert_eq!(files(dir.path()).len(), 2 + 2, "{:?}", files(dir.path()));
        // The bound of a push is the new one too.
        s.push(n("F4", false, "f4"));
        assert_eq!(summaries(&s.pending("http://b", 10)), ["r1", "f4"]);
        assert_eq!(s.dropped_total(), 3);
        drop(s);
        // What the bound kept is on disk: a restart finds exactly it.
        let s = Spool::open(dir.path(), 2, &targets);
        assert_eq!(summaries(&s.pending("http://b", 10)), ["r1", "f4"]);
        assert_eq!(summaries(&s.pending("http://a", 10)), ["f4"]);
    }

    #[test]
    fn past_the_bound_a_live_alertmanager_still_gets_every_alert_in_turn() {
        // Three alerts re-sent together every resend, a bound of 2, a live Alertmanager
        // taking what waits after each burst: the skipped re-send rotates, so none of them
        // goes without a refresh for more than a couple of resends.
        let dir = tempfile::tempdir().unwrap();
        let t = vec!["http://a".to_string()];
        let mut s = Spool::open(dir.path(), 2, &t);
        let mut last_taken: BTreeMap<String, usize> = BTreeMap::new();
        for round in 0..12 {
            for name in ["A", "B", "C"] {
                s.push(n(name, false, name));
            }
            assert!(s.depth_of("http://a") <= 2);
            let w = s.pending("http://a", 10);
            for x in &w {
                last_taken.insert(x.notice.annotations["summary"].clone(), round);
            }
            s.ack("http://a", &w);
            for name in ["A", "B", "C"] {
                if round >= 3 {
                    let gap = round - last_taken.get(name).copied().unwrap_or(0);
                    assert!(gap <= 2, "{name} not refreshed for {gap} resends");
                }
            }
        }
        assert!(s.dropped_total() >= 12);
        assert_eq!(s.drops_to_report(), Some(s.dropped_total()));
        assert_eq!(s.drops_to_report(), None, "once a minute at most");
    }

    #[test]
    fn a_spool_that_cannot_be_opened_delivers_from_memory() {
        let dir = tempfile::tempdir().unwrap();
        // Its directory is a file: nothing can be created under it, whoever runs the test.
        let root = dir.path().join("spool");
        fs::write(&root, b"in the way").unwrap();
        let targets = vec!["http://a".to_string()];
        let mut s = Spool::open(&root, 10, &targets);
        assert!(s.failing().is_some());
        s.push(n("X", false, "x"));
        assert_eq!(s.memory_only(), 1);
        let w = s.pending("http://a", 10);
        assert_eq!(summaries(&w), ["x"]);
        s.ack("http://a", &w);
        assert_eq!(s.depth(), 0);
    }

    #[test]
    fn no_credentials_in_names_or_files_and_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("spool");
        let secret = "http://alice:s3cr3t@127.0.0.1:9093/?token=t0ken".to_string();
        let mut s = Spool::open(&root, 10, std::slice::from_ref(&secret));
        s.push(n("X", false, "x"));
        assert_eq!(
            fs::metadata(&root).unwrap().permissions().mode() & 0o777,
            0o700
        );
        for p in files(&root) {
            let text = fs::read_to_string(&p).unwrap();
            let name = p.display().to_string();
            for needle in ["alice", "s3cr3t", "t0ken"] {
                assert!(!name.contains(needle) && !text.contains(needle), "{name}");
            }
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600,
                "{name}"
            );
            assert_eq!(
                fs::metadata(p.parent().unwrap())
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777,
                0o700
            );
        }
        assert_eq!(
            fs::read_to_string(root.join(target_key(&secret)).join("target")).unwrap(),
            "http://127.0.0.1:9093/"
        );
    }

    #[test]
    fn new_credentials_for_the_same_alertmanager_keep_its_queue() {
        let dir = tempfile::tempdir().unwrap();
        let old = "http://lookout:old@127.0.0.1:9093/".to_string();
        let new = "http://lookout:new@127.0.0.1:9093/".to_string();
        let other = "http://127.0.0.1:9094/".to_string();
        let mut s = Spool::open(dir.path(), 10, &[old.clone(), other.clone()]);
        s.push(n("X", false, "x"));
        s.set_targets(std::slice::from_ref(&new));
        assert_eq!(summaries(&s.pending(&new, 10)), ["x"]);
        assert_eq!(s.depth(), 1, "the removed Alertmanager's queue goes");
        drop(s);
        let s = Spool::open(dir.path(), 10, std::slice::from_ref(&new));
        assert_eq!(summaries(&s.pending(&new, 10)), ["x"], "and on disk");
    }

    #[test]
    fn corrupt_file_is_set_aside_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let targets = vec!["http://a".to_string()];
        let mut s = Spool::open(dir.path(), 10, &targets);
        s.push(n("X", false, "1"));
        drop(s);
        let qdir = dir.path().join(target_key("http://a"));
        fs::write(qdir.join("0badbadbadbadbad.json"), b"{not json").unwrap();
        let s = Spool::open(dir.path(), 10, &targets);
        assert_eq!(s.depth(), 1);
        assert!(qdir.join("0badbadbadbadbad.bad").exists());
    }

    #[test]
    fn the_flat_layout_of_earlier_versions_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let a = "http://u:p@a".to_string();
        let b = "http://b".to_string();
        for (seq, notice) in [(1, n("X", false, "x")), (2, n("Y", false, "y"))] {
            fs::write(
                dir.path().join(format!("{seq:020}.json")),
                serde_json::to_vec(&notice).unwrap(),
            )
            .unwrap();
        }
        fs::write(
            dir.path().join("cursors"),
            serde_json::to_vec(&BTreeMap::from([(a.clone(), 1u64), (b.clone(), 0u64)])).unwrap(),
        )
        .unwrap();
        let s = Spool::open(dir.path(), 10, &[a.clone(), b.clone()]);
        assert_eq!(summaries(&s.pending(&a, 10)), ["y"]);
        assert_eq!(summaries(&s.pending(&b, 10)), ["x", "y"]);
        assert!(!dir.path().join("cursors").exists());
        assert!(!dir.path().join(format!("{:020}.json", 1)).exists());
    }

    #[test]
    fn a_refused_write_keeps_the_notice_in_memory_until_the_disk_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("spool");
        let targets = vec!["http://a".to_string()];
        let mut s = Spool::open(&root, 10, &targets);
        // The queue directory replaced by a file: every write into it fails (as on a
        // read-only or vanished disk), whoever runs the test.
        let qdir = root.join(target_key("http://a"));
        fs::remove_dir_all(&qdir).unwrap();
        fs::write(&qdir, b"in the way").unwrap();
        s.push(n("X", false, "x"));
        assert!(s.failing().is_some());
        assert_eq!(s.memory_only(), 1);
        assert!(s.write_errors() >= 1);
        assert_eq!(summaries(&s.pending("http://a", 10)), ["x"]);
        // The disk recovers: the probe notices and the notice is written out.
        fs::remove_file(&qdir).unwrap();
        s.check_disk();
        assert!(s.failing().is_none());
        assert_eq!(s.memory_only(), 0);
        drop(s);
        let s = Spool::open(&root, 10, &targets);
        assert_eq!(summaries(&s.pending("http://a", 10)), ["x"]);
    }
}
