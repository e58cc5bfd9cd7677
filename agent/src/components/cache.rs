//! The agent's side of each `[[cache]]` (the cache itself is the `lookout-cache` crate):
//! options from the config, the source — including `{ primary = .. }`, the one link between
//! a cache and a tracker — the readiness gate, and the export of the cache's status as the
//! gauges of CONTRACT.md, its running totals for the alert rules, and its errors as findings.

use super::Components;
use crate::config::{CacheConfig, CacheSource, Config};
use crate::context::{Context, Finding};
use crate::series::{Gauge, SeriesKey};
use bytes::Bytes;
use futures::future::BoxFuture;
use lookout_cache::source::{CommandSource, FileSource, HttpSource, Source, SourceError};
use lookout_cache::{Cache, CacheEvent, CacheOptions, CacheStatus, blob, names, new_owner_id};
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A cache error is reported as a finding at most this often per kind, so that a long outage
/// does not flood the findings log.
const FINDING_EVERY: Duration = Duration::from_secs(60);

/// The tunables of one cache from its `[[cache]]` table.
pub fn options(cfg: &CacheConfig, ctx: &Context) -> CacheOptions {
    let source_timeout = cfg.source_timeout.get();
    CacheOptions::new(cfg.name.clone())
        .check_interval(cfg.check_interval.get())
        .refresh_interval(cfg.refresh_interval.get())
        .max_size(cfg.max_size)
        .source_timeout(source_timeout)
        .claim_ttl(cfg.claim_ttl.map(|d| d.get()).unwrap_or(source_timeout * 3))
        .local_dir(ctx.data_dir.join("cache").join(&cfg.name))
        .owner(new_owner_id(&ctx.host))
}

/// The source of a `[[cache]]`.
pub fn source(cfg: &CacheSource, components: &Arc<Components>) -> Arc<dyn Source> {
    match cfg {
        CacheSource::File { file } => Arc::new(FileSource(file.clone())),
        CacheSource::Http { http } => Arc::new(HttpSource::new(http.as_str())),
        CacheSource::Command { command } => Arc::new(CommandSource(command.clone())),
        CacheSource::Primary { primary, path } => Arc::new(PrimarySource {
            components: Arc::downgrade(components),
            service: primary.clone(),
            path: path.clone(),
        }),
    }
}

/// `GET {primary}{path}` through the tracker of `service`, looked up at load time: the
/// tracker of the same generation may start after the cache, and a reload replaces it.
struct PrimarySource {
    components: Weak<Components>,
    service: String,
    path: String,
}

impl Source for PrimarySource {
    fn kind(&self) -> &'static str {
        "primary"
    }

    fn load(&self, _limit: u64) -> BoxFuture<'_, Result<Bytes, SourceError>> {
        Box::pin(async move {
            let service = &self.service;
            let tracker = self
                .components
                .upgrade()
                .and_then(|c| c.trackers.load().get(service).cloned())
                .ok_or_else(|| {
                    SourceError::Failed(format!("no tracker for service {service:?} yet"))
                })?;
            tracker
                .get_bytes(&self.path)
                .await
                .map_err(|e| SourceError::Failed(format!("primary of {service}: {e}")))
        })
    }
}

/// Start every `[[cache]]` of `config`, publish them in `components.caches`, and hold a
/// readiness gate per cache until it serves a version.
pub fn start_all(
    ctx: &Context,
    config: &Config,
    components: &Arc<Components>,
    tasks: &mut JoinSet<()>,
) {
    let mut caches = std::collections::BTreeMap::new();
    // The caches of the generation being replaced: a cache of the same name on the same blob
    // store keeps its memory tier (a reload neither re-reads the disk nor drops readiness).
    let previous = components.caches.load_full();
    for cfg in &config.caches {
        let gate = format!("cache:{}", cfg.name);
        let default_blob = format!("file://{}", ctx.data_dir.join("blob").display());
        let url = cfg.blob.clone().unwrap_or(default_blob);
        let blob = match blob::open(&url, &cfg.blob_options) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(cache = %cfg.name, "cannot open the blob store: {e}");
                ctx.readiness.wait_for(
                    &gate,
                    format!("cache {} cannot open its blob store: {e}", cfg.name),
                );
                continue;
            }
        };
        let opts = options(cfg, ctx);
        let source = source(&cfg.source, components);
        tracing::info!(cache = %cfg.name, blob = %blob.describe(), source = source.kind(), "cache starting");
        let described = blob.describe();
        let cache = Cache::new(opts, source, blob, &ctx.meter);
        if let Some(prev) = previous.get(&cfg.name)
            && prev.blob_description() == described
        {
            cache.adopt(prev);
        }
        if cache.get().is_none() {
            ctx.readiness
                .wait_for(&gate, format!("cache {} serves no version yet", cfg.name));
        }
        caches.insert(cfg.name.clone(), cache.clone());
        // Subscribed before the cache runs, so the first events are not missed.
        let events = cache.subscribe();
        tasks.spawn(export(ctx.clone(), cache.clone(), events));
        let token = ctx.shutdown.clone();
        let readiness = ctx.readiness.clone();
        tasks.spawn(async move {
            let r = readiness.clone();
            let g = gate.clone();
            cache.run(token, move || r.open(&g)).await;
            readiness.forget(&gate);
        });
    }
    components.caches.store(Arc::new(caches));
}

/// The gauges of one cache, from [`CacheStatus`].
struct CacheGauges {
    version: Gauge,
    blob_version: Gauge,
    lag: Gauge,
    staleness: Gauge,
    blob_up: Gauge,
}

impl CacheGauges {
    fn new(ctx: &Context) -> Self {
        let g = |name, help, unit| ctx.series.gauge(&ctx.meter, name, help, unit);
        Self {
            version: g(names::VERSION, "Version this agent serves", ""),
            blob_version: g(
                names::BLOB_VERSION,
                "Latest version seen in the blob tier",
                "",
            ),
            lag: g(
                names::VERSION_LAG,
                "Versions this agent is behind the blob tier",
                "",
            ),
            staleness: g(
                names::STALENESS_SECONDS,
                "Local monotonic seconds since the last successful check against the blob tier",
                "s",
            ),
            blob_up: g(
                names::BLOB_UP,
                "1 when the last blob operation succeeded, 0 when failing",
                "",
            ),
        }
    }

    fn all(&self) -> [&Gauge; 5] {
        [
            &self.version,
            &self.blob_version,
            &self.lag,
            &self.staleness,
            &self.blob_up,
        ]
    }
}

/// Follow one cache's events until the generation stops: gauges and running totals from its
/// status after each event, a finding per error kind at most every [`FINDING_EVERY`].
async fn export(
    ctx: Context,
    cache: Arc<Cache>,
    mut events: tokio::sync::broadcast::Receiver<CacheEvent>,
) {
    let gauges = CacheGauges::new(&ctx);
    let token: CancellationToken = ctx.shutdown.clone();
    let name = cache.name().to_string();
    // Closed while the on-disk snapshot cannot be written: a restart could then come up with
    // nothing to serve until the blob tier answers.
    let disk_gate = format!("cache:{name}:disk");
    let mut disk_failing = false;
    let mut last_finding: HashMap<&'static str, Instant> = HashMap::new();
    loop {
        let event = tokio::select! {
            _ = token.cancelled() => break,
            e = events.recv() => e,
        };
        match event {
            Ok(CacheEvent::Error { kind, message }) => {
                let now = Instant::now();
                let due = last_finding
                    .get(kind)
                    .is_none_or(|t| now.duration_since(*t) >= FINDING_EVERY);
                if due {
                    last_finding.insert(kind, now);
                    ctx.findings.push(
                        Finding::new("cache", kind, format!("cache {name}: {message}"))
                            .label("cache", &name)
                            .detail(serde_json::json!({
                                "served_version": cache.status().version,
                                "blob": cache.blob_description(),
                            })),
                    );
                }
            }
            Ok(_) => {}
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(cache = %name, missed = n, "cache events missed; gauges re-read from its status");
            }
            Err(RecvError::Closed) => break,
        }
        let status = cache.status();
        publish(&ctx, &gauges, &name, &status);
        match status.local_save_ok {
            Some(false) if !disk_failing => {
                disk_failing = true;
                ctx.readiness.wait_for(
                    &disk_gate,
                    format!("cache {name} cannot write its local snapshot (see lookout_cache_errors_total{{kind=\"disk\"}})"),
                );
            }
            Some(true) if disk_failing => {
                disk_failing = false;
                ctx.readiness.forget(&disk_gate);
            }
            _ => {}
        }
    }
    ctx.readiness.forget(&disk_gate);
    for g in gauges.all() {
        g.remove_where("cache", &name);
    }
}

/// Set the gauges of CONTRACT.md and the running totals the alert rules read.
fn publish(ctx: &Context, gauges: &CacheGauges, name: &str, st: &CacheStatus) {
    let l = [("cache", name)];
    if let Some(v) = st.version {
        gauges.version.set(&l, v as f64);
    }
    if let Some(v) = st.blob_version {
        gauges.blob_version.set(&l, v as f64);
    }
    if let Some(v) = st.version_lag {
        gauges.lag.set(&l, v as f64);
    }
    gauges.staleness.set(&l, st.staleness.as_secs_f64());
    if let Some(up) = st.blob_up {
        gauges.blob_up.set(&l, if up { 1.0 } else { 0.0 });
    }
    for (series, label, totals) in [
        (names::ERRORS_TOTAL, "kind", &st.errors),
        (names::SOURCE_LOADS_TOTAL, "outcome", &st.source_loads),
    ] {
        for (value, n) in totals {
            ctx.series.record(
                &SeriesKey::new(series, &[("cache", name), (label, value)]),
                *n as f64,
            );
        }
    }
}
