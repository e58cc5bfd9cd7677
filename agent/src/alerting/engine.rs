//! The alert engine: turns rule candidates into alerts with Prometheus semantics — pending for
//! `for`, firing, kept firing for `keep_firing_for` after the condition clears (hysteresis, so
//! a flapping signal does not page twice), resolved — holds back alerts whose cause is already
//! firing (inhibition), and decides which notifications are due: new alerts at once, firing
//! ones every `resend_interval`, resolved ones with their `endsAt` at once and then again every
//! `resend_interval` for 15 minutes, as Prometheus does.
//!
//! Every ending of an alert resolves it at once, not only a condition that clears: its
//! subject went away (the process ended, the series of a cache or tracker vanished), a reload
//! removed its subject or its rule, or disabled its detector ([`Engine::reconfigure`]), or
//! the agent stops ([`Engine::resolve_all`]). One engine lives across config generations (it
//! is handed from one to the next), so a reload neither re-pages what still fires nor
//! forgets what it must resolve.
//!
//! Firing alerts are also written to `state.json` so that a restarted agent continues them
//! with their original `startsAt` and sends their resolution when the condition turns out to
//! be gone (at once when their subject or rule is gone).

use super::rules::{self, Candidate, EvalInput, INHIBITIONS, Presence, RuleDef, Subject};
use crate::config::{AlertsConfig, Severity};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::SystemTime;

/// How long a resolved alert keeps being re-sent (as Prometheus does).
pub const RESOLVED_RESEND_FOR: f64 = 15.0 * 60.0;

/// One alert as Alertmanager's v2 API takes it (`POST /api/v2/alerts`). A firing notice has
/// no `endsAt`: the notifier sets it when it actually sends (send time + 4 × resend interval,
/// so that Alertmanager resolves it by itself should this agent die).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt", default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    #[serde(rename = "generatorURL", default)]
    pub generator_url: String,
}

impl Notice {
    /// Alertmanager identifies an alert by its label set; so do we.
    pub fn fingerprint(&self) -> String {
        self.labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn is_resolved(&self) -> bool {
        self.ends_at.is_some()
    }
}

/// An active alert as `/api/v1/alerts` shows it: Alertmanager v2 form plus its status.
#[derive(Clone, Debug, Serialize)]
pub struct ApiAlert {
    #[serde(flatten)]
    pub notice: Notice,
    pub status: ApiStatus,
    pub value: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ApiStatus {
    /// `active` (firing and notified) or `suppressed` (held back by a firing cause).
    pub state: &'static str,
    #[serde(rename = "inhibitedBy")]
    pub inhibited_by: Vec<String>,
}

/// A rule with the config's overrides applied.
pub struct Rule {
    pub def: RuleDef,
    pub enabled: bool,
    pub severity: Severity,
    pub for_secs: f64,
    pub keep_firing_for_secs: f64,
    pub threshold: f64,
}

/// Every agent rule with `[alerts.rules.<Name>]` applied.
pub fn configured_rules(config: &AlertsConfig) -> Vec<Rule> {
    rules::all()
        .into_iter()
        .map(|def| {
            let o = config.rules.get(def.name).cloned().unwrap_or_default();
            Rule {
                enabled: o.enabled.unwrap_or(true),
                severity: o.severity.unwrap_or(def.severity),
                for_secs: o.for_.map_or(def.for_secs, |d| d.get().as_secs_f64()),
                keep_firing_for_secs: o
                    .keep_firing_for
                    .map_or(def.keep_firing_for_secs, |d| d.get().as_secs_f64()),
                threshold: o.threshold.unwrap_or(def.threshold),
                def,
            }
        })
        .collect()
}

type AlertKey = (&'static str, Subject);

struct Active {
    candidate: Candidate,
    severity: Severity,
    /// Monotonic time the condition became true (start of pending).
    active_since: f64,
    /// The same as wall time, RFC 3339: the `startsAt` shown for an alert held back.
    pending_since: String,
    /// Monotonic time the condition was last seen true.
    last_true: f64,
    /// Wall time the alert started firing, RFC 3339.
    firing_since: Option<String>,
    /// Monotonic and wall time of resolution.
    resolved: Option<(f64, String)>,
    last_sent: Option<f64>,
    /// Cause alert names holding it back while pending.
    inhibited_by: Vec<String>,
}

/// Fixed facts the engine stamps on every alert.
#[derive(Clone, Debug)]
pub struct Stamp {
    pub host: String,
    /// Where runbooks live, ending with `/`: `<base><AlertName>` is the link.
    pub runbook_base: String,
    /// The agent's alert list, as `generatorURL`.
    pub generator_url: String,
    pub resend_secs: f64,
}

/// What the running config has: the subjects alerts may be about. An alert whose subject is
/// not here (removed or renamed by a reload, its detector disabled) resolves at once.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Watched services, the agent itself included.
    pub services: BTreeSet<String>,
    pub caches: BTreeSet<String>,
    /// Services with a primary tracker.
    pub trackers: BTreeSet<String>,
    pub anomaly: bool,
    pub timeout: bool,
}

impl Scope {
    /// Everything in scope: for unit tests and benches that do not model a config.
    pub fn everything() -> Self {
        Self {
            anomaly: true,
            timeout: true,
            ..Self::default()
        }
        .open()
    }

    fn open(mut self) -> Self {
        self.services.insert("*".into());
        self.caches.insert("*".into());
        self.trackers.insert("*".into());
        self
    }

    fn has(set: &BTreeSet<String>, name: Option<&String>) -> bool {
        set.contains("*") || name.is_some_and(|n| set.contains(n))
    }

    /// Whether an alert of a rule with this presence, about `subject`, can exist.
    pub fn covers(&self, presence: Presence, subject: &Subject) -> bool {
        let service = subject.get("service");
        match presence {
            Presence::Process | Presence::Initializing => {
                subject.get("scope").is_some_and(|s| s == "host")
                    || Self::has(&self.services, service)
            }
            Presence::Timeout => self.timeout && Self::has(&self.services, service),
            Presence::Cache => Self::has(&self.caches, subject.get("cache")),
            Presence::Tracker => Self::has(&self.trackers, service),
            Presence::Anomaly => self.anomaly,
            Presence::Always => true,
        }
    }
}

pub struct Engine {
    rules: Vec<Rule>,
    scope: Scope,
    stamp: Stamp,
    alerts: BTreeMap<AlertKey, Active>,
    state_file: Option<PathBuf>,
    /// Fingerprints of firing alerts at the last save, to write only on change.
    saved: BTreeSet<String>,
}

#[derive(Serialize, Deserialize)]
struct Persisted {
    alertname: String,
    subject: Subject,
    severity: Severity,
    summary: String,
    description: String,
    value: f64,
    #[serde(rename = "startsAt")]
    starts_at: String,
}

impl Engine {
    pub fn new(rules: Vec<Rule>, stamp: Stamp) -> Self {
        Self {
            rules,
            scope: Scope::everything(),
            stamp,
            alerts: BTreeMap::new(),
            state_file: None,
            saved: BTreeSet::new(),
        }
    }

    /// Keep firing alerts in `path` and continue those found there (at monotonic `now`:
    /// they count as seen true now, so they resolve only after `keep_firing_for` without
    /// their condition).
    pub fn with_state_file(mut self, path: PathBuf, now: f64) -> Self {
        match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Vec<Persisted>>(&bytes) {
                Ok(list) => {
                    for p in list {
                        let Some(name) = super::names::ALL
                            .iter()
                            .find(|n| **n == p.alertname)
                            .copied()
                        else {
                            continue;
                        };
                        self.alerts.insert(
                            (name, p.subject.clone()),
                            Active {
                                candidate: Candidate {
                                    subject: p.subject,
                                    value: p.value,
                                    summary: p.summary,
                                    description: p.description,
                                },
                                severity: p.severity,
                                active_since: now,
                                pending_since: p.starts_at.clone(),
                                last_true: now,
                                firing_since: Some(p.starts_at),
                                resolved: None,
                                last_sent: None,
                                inhibited_by: Vec::new(),
                            },
                        );
                    }
                    tracing::info!(
                        alerts = self.alerts.len(),
                        "continuing firing alerts from the last run"
                    );
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), "ignoring unreadable alert state: {e}")
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %path.display(), "cannot read alert state: {e}"),
        }
        self.saved = self.firing_fingerprints();
        self.state_file = Some(path);
        self
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Evaluate every enabled rule at `input.now`; returns the notifications now due.
    pub fn evaluate(&mut self, input: &EvalInput, wall: SystemTime) -> Vec<Notice> {
        let now = input.now;
        let wall_text = humantime::format_rfc3339_millis(wall).to_string();
        let mut seen: BTreeSet<AlertKey> = BTreeSet::new();
        for rule in self.rules.iter().filter(|r| r.enabled) {
            for c in (rule.def.eval)(input, rule.threshold) {
                // Stale series of a subject the config no longer has never raise an alert.
                if !self.scope.covers(rule.def.presence, &c.subject) {
                    continue;
                }
                let key = (rule.def.name, c.subject.clone());
                seen.insert(key.clone());
                match self.alerts.get_mut(&key) {
                    Some(a) if a.resolved.is_none() => {
                        a.last_true = now;
                        a.candidate = c;
                        if a.firing_since.is_none() {
                            a.severity = rule.severity;
                        }
                    }
                    _ => {
                        self.alerts.insert(
                            key,
                            Active {
                                candidate: c,
                                severity: rule.severity,
                                active_since: now,
                                pending_since: wall_text.clone(),
                                last_true: now,
                                firing_since: None,
                                resolved: None,
                                last_sent: None,
                                inhibited_by: Vec::new(),
                            },
                        );
                    }
                }
            }
        }

        // Conditions no longer true: pending ones vanish, firing ones resolve after their
        // keep_firing_for — or at once when their subject is gone (hysteresis is for a
        // signal that may come back, not for a process that ended). Only once the probes
        // have filled the store (`settled`): right after a restart every subject looks gone.
        let keep: BTreeMap<&str, (f64, Presence)> = self
            .rules
            .iter()
            .map(|r| (r.def.name, (r.keep_firing_for_secs, r.def.presence)))
            .collect();
        let mut present = rules::PresenceIndex::new(input);
        self.alerts.retain(|key, a| {
            if seen.contains(key) || a.resolved.is_some() {
                return true;
            }
            if !input.settled {
                // The probes have not filled the store yet (a restart, or a reload whose
                // watchers start afresh): not seeing a condition says nothing.
                return true;
            }
            if a.firing_since.is_none() {
                return false;
            }
            let (keep_for, presence) = keep.get(key.0).copied().unwrap_or((0.0, Presence::Always));
            let gone = input.settled && !present.has(presence, &key.1);
            if gone {
                tracing::info!(alert = key.0, subject = ?key.1, "alert subject gone: resolving");
            }
            if gone || now - a.last_true >= keep_for {
                a.resolved = Some((now, wall_text.clone()));
            }
            true
        });

        // Pending → firing, causes first so that their effects see them.
        let for_secs: BTreeMap<&str, f64> = self
            .rules
            .iter()
            .map(|r| (r.def.name, r.for_secs))
            .collect();
        let is_cause = |name: &str| INHIBITIONS.iter().any(|i| i.cause == name);
        for causes_pass in [true, false] {
            let keys: Vec<AlertKey> = self
                .alerts
                .iter()
                .filter(|(k, a)| {
                    is_cause(k.0) == causes_pass && a.firing_since.is_none() && a.resolved.is_none()
                })
                .map(|(k, _)| k.clone())
                .collect();
            for key in keys {
                let due = {
                    let a = &self.alerts[&key];
                    now - a.active_since >= for_secs.get(key.0).copied().unwrap_or(0.0)
                };
                if !due {
                    continue;
                }
                let inhibited_by = self.inhibitors(&key);
                let a = self.alerts.get_mut(&key).expect("key taken from the map");
                a.inhibited_by = inhibited_by;
                if a.inhibited_by.is_empty() {
                    a.firing_since = Some(wall_text.clone());
                    tracing::warn!(alert = key.0, subject = ?key.1, summary = %a.candidate.summary, "alert firing");
                }
            }
        }

        // Notifications due.
        let mut notices = Vec::new();
        let resend = self.stamp.resend_secs;
        let mut expired = Vec::new();
        for (key, a) in &mut self.alerts {
            let Some(since) = a.firing_since.clone() else {
                continue;
            };
            match &a.resolved {
                None => {
                    if a.last_sent.is_none_or(|t| now - t >= resend) {
                        a.last_sent = Some(now);
                        notices.push(notice(&self.stamp, key.0, a, &since, None));
                    }
                }
                Some((resolved_at, ends)) => {
                    if now - resolved_at > RESOLVED_RESEND_FOR {
                        expired.push(key.clone());
                        continue;
                    }
                    let newly = a.last_sent.is_none_or(|t| t < *resolved_at);
                    if newly {
                        tracing::info!(alert = key.0, subject = ?key.1, "alert resolved");
                    }
                    if newly || a.last_sent.is_none_or(|t| now - t >= resend) {
                        a.last_sent = Some(now);
                        let ends = ends.clone();
                        notices.push(notice(&self.stamp, key.0, a, &since, Some(ends)));
                    }
                }
            }
        }
        for key in expired {
            self.alerts.remove(&key);
        }
        notices
    }

    /// Take a new config generation's rules, stamp and scope. Firing alerts whose rule is
    /// gone or disabled, or whose subject the new config does not have, resolve at once
    /// (their notices come with the next [`Engine::evaluate`]); the others continue
    /// untouched — no re-page, no new `startsAt`.
    pub fn reconfigure(
        &mut self,
        rules: Vec<Rule>,
        stamp: Stamp,
        scope: Scope,
        now: f64,
        wall: SystemTime,
    ) {
        let wall_text = humantime::format_rfc3339_millis(wall).to_string();
        self.rules = rules;
        self.stamp = stamp;
        self.scope = scope;
        let live: BTreeMap<&str, Presence> = self
            .rules
            .iter()
            .filter(|r| r.enabled)
            .map(|r| (r.def.name, r.def.presence))
            .collect();
        let scope = &self.scope;
        self.alerts.retain(|key, a| {
            let kept = live
                .get(key.0)
                .is_some_and(|p| scope.covers(*p, &key.1));
            if kept || a.resolved.is_some() {
                return true;
            }
            if a.firing_since.is_none() {
                return false;
            }
            tracing::info!(alert = key.0, subject = ?key.1, "alert rule or subject removed by the config: resolving");
            a.resolved = Some((now, wall_text.clone()));
            true
        });
        // A severity override applies to what is pending; a firing alert keeps the
        // severity it paged with (its labels are its identity at Alertmanager).
        for (key, a) in self.alerts.iter_mut() {
            if a.firing_since.is_none()
                && let Some(r) = self.rules.iter().find(|r| r.def.name == key.0)
            {
                a.severity = r.severity;
            }
        }
    }

    /// The agent stops: every firing alert resolves now; returns the notices due.
    pub fn resolve_all(&mut self, now: f64, wall: SystemTime) -> Vec<Notice> {
        let wall_text = humantime::format_rfc3339_millis(wall).to_string();
        for (key, a) in self.alerts.iter_mut() {
            if a.firing_since.is_some() && a.resolved.is_none() {
                tracing::info!(alert = key.0, subject = ?key.1, "agent stopping: resolving");
                a.resolved = Some((now, wall_text.clone()));
            }
        }
        self.alerts.retain(|_, a| a.firing_since.is_some());
        let mut notices = Vec::new();
        for (key, a) in &mut self.alerts {
            let (Some(since), Some((resolved_at, ends))) =
                (a.firing_since.clone(), a.resolved.clone())
            else {
                continue;
            };
            if a.last_sent.is_none_or(|t| t < resolved_at) {
                a.last_sent = Some(now);
                notices.push(notice(&self.stamp, key.0, a, &since, Some(ends)));
            }
        }
        notices
    }

    /// Names of the causes (pending or firing) that inhibit `key`.
    fn inhibitors(&self, key: &AlertKey) -> Vec<String> {
        let mut out = Vec::new();
        for inh in INHIBITIONS.iter().filter(|i| i.effects.contains(&key.0)) {
            // A pending cause counts too: effects often cross their (shorter) `for` first,
            // as throttling does within seconds of a primary going away.
            let hit = self.alerts.iter().any(|(k, a)| {
                k.0 == inh.cause
                    && a.resolved.is_none()
                    && inh
                        .equal
                        .iter()
                        .all(|l| k.1.contains_key(*l) && k.1.get(*l) == key.1.get(*l))
            });
            if hit {
                out.push(inh.cause.to_string());
            }
        }
        out
    }

    /// Firing (and held back) alerts, for `/api/v1/alerts`.
    pub fn active(&self) -> Vec<ApiAlert> {
        let ends = humantime::format_rfc3339_millis(
            SystemTime::now() + std::time::Duration::from_secs_f64(4.0 * self.stamp.resend_secs),
        )
        .to_string();
        let mut out = Vec::new();
        for (key, a) in &self.alerts {
            if a.resolved.is_some() {
                continue;
            }
            let (state, since) = match &a.firing_since {
                Some(s) => ("active", s.clone()),
                None if !a.inhibited_by.is_empty() => ("suppressed", a.pending_since.clone()),
                None => continue,
            };
            let mut n = notice(&self.stamp, key.0, a, &since, None);
            n.ends_at = Some(ends.clone());
            out.push(ApiAlert {
                notice: n,
                status: ApiStatus {
                    state,
                    inhibited_by: a.inhibited_by.clone(),
                },
                value: a.candidate.value,
            });
        }
        out
    }

    /// Firing alerts per (alertname, severity), every enabled rule included at 0.
    pub fn firing_counts(&self) -> BTreeMap<(&'static str, &'static str), usize> {
        let mut out: BTreeMap<(&'static str, &'static str), usize> = self
            .rules
            .iter()
            .filter(|r| r.enabled)
            .map(|r| ((r.def.name, r.severity.as_str()), 0))
            .collect();
        for (key, a) in &self.alerts {
            if a.firing_since.is_some() && a.resolved.is_none() {
                *out.entry((key.0, a.severity.as_str())).or_default() += 1;
            }
        }
        out
    }

    fn firing_fingerprints(&self) -> BTreeSet<String> {
        self.alerts
            .iter()
            .filter(|(_, a)| a.firing_since.is_some() && a.resolved.is_none())
            .map(|(k, a)| {
                format!(
                    "{}{:?}{}",
                    k.0,
                    k.1,
                    a.firing_since.as_deref().unwrap_or("")
                )
            })
            .collect()
    }

    /// Write the firing set to the state file when it changed. Call it after the notices of
    /// the same evaluation are in the spool: a crash in between then leaves the alert firing
    /// in the state (and re-evaluated after the restart), never resolved with its resolution
    /// unsent.
    pub fn persist(&mut self) -> Result<(), std::io::Error> {
        let Some(path) = self.state_file.clone() else {
            return Ok(());
        };
        let now = self.firing_fingerprints();
        if now == self.saved {
            return Ok(());
        }
        let list: Vec<Persisted> = self
            .alerts
            .iter()
            .filter(|(_, a)| a.resolved.is_none())
            .filter_map(|(k, a)| {
                Some(Persisted {
                    alertname: k.0.to_string(),
                    subject: k.1.clone(),
                    severity: a.severity,
                    summary: a.candidate.summary.clone(),
                    description: a.candidate.description.clone(),
                    value: a.candidate.value,
                    starts_at: a.firing_since.clone()?,
                })
            })
            .collect();
        let bytes = serde_json::to_vec_pretty(&list).map_err(std::io::Error::other)?;
        super::spool::write_atomic(&path, &bytes)?;
        self.saved = now;
        Ok(())
    }
}

fn notice(stamp: &Stamp, name: &str, a: &Active, since: &str, ends: Option<String>) -> Notice {
    let mut labels: BTreeMap<String, String> = a.candidate.subject.clone();
    labels.insert("alertname".into(), name.into());
    labels.insert("severity".into(), a.severity.as_str().into());
    labels.insert("host".into(), stamp.host.clone());
    let mut annotations = BTreeMap::new();
    annotations.insert("summary".into(), a.candidate.summary.clone());
    let when = if a.firing_since.is_none() {
        format!("held back by its cause since {since}")
    } else {
        format!("firing since {since}")
    };
    annotations.insert(
        "description".into(),
        format!(
            "{} Host {}, {when}. Runbook: {}{name}",
            a.candidate.description, stamp.host, stamp.runbook_base
        ),
    );
    annotations.insert(
        "runbook_url".into(),
        format!("{}{name}", stamp.runbook_base),
    );
    Notice {
        labels,
        annotations,
        starts_at: since.to_string(),
        ends_at: ends,
        generator_url: stamp.generator_url.clone(),
    }
}
