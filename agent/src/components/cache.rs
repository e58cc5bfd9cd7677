//! The agent's side of each `[[cache]]`: options from the config, the source (including
//! `{ primary = .. }`, the one link between a cache and a tracker), the readiness gate, and
//! the task that runs it.

use super::Components;
use crate::cache::source::Source;
use crate::cache::{Cache, CacheOptions, blob, new_owner_id};
use crate::config::{CacheConfig, CacheSource, Config};
use crate::context::Context;
use std::sync::Arc;
use tokio::task::JoinSet;

/// The tunables of one cache from its `[[cache]]` table.
pub fn options(cfg: &CacheConfig, ctx: &Context) -> CacheOptions {
    let source_timeout = cfg.source_timeout.get();
    CacheOptions {
        name: cfg.name.clone(),
        check_interval: cfg.check_interval.get(),
        refresh_interval: cfg.refresh_interval.get(),
        claim_ttl: cfg.claim_ttl.map(|d| d.get()).unwrap_or(source_timeout * 3),
        max_size: cfg.max_size,
        source_timeout,
        local_dir: Some(ctx.data_dir.join("cache").join(&cfg.name)),
        owner: new_owner_id(&ctx.host),
    }
}

/// The source of a `[[cache]]`. `{ primary = .. }` is `GET {primary}{path}` through the
/// tracker of that service, looked up at load time (a reload may replace the tracker).
pub fn source(cfg: &CacheSource, components: &Arc<Components>) -> Source {
    match cfg {
        CacheSource::File { file } => Source::File(file.clone()),
        CacheSource::Http { http } => Source::Http(
            reqwest::Client::builder().build().unwrap_or_default(),
            http.as_str().to_string(),
        ),
        CacheSource::Command { command } => Source::Command(command.clone()),
        CacheSource::Primary { primary, path } => {
            let components = Arc::downgrade(components);
            let service = primary.clone();
            let path = path.clone();
            Source::Custom(Arc::new(move || {
                let tracker = components
                    .upgrade()
                    .and_then(|c| c.trackers.load().get(&service).cloned());
                let service = service.clone();
                let path = path.clone();
                Box::pin(async move {
                    let tracker =
                        tracker.ok_or_else(|| format!("no tracker for service {service:?} yet"))?;
                    tracker
                        .get_bytes(&path)
                        .await
                        .map_err(|e| format!("primary of {service}: {e}"))
                })
            }))
        }
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
        ctx.readiness
            .wait_for(&gate, format!("cache {} serves no version yet", cfg.name));
        let opts = options(cfg, ctx);
        let source = source(&cfg.source, components);
        tracing::info!(cache = %cfg.name, blob = %blob.describe(), source = source.kind(), "cache starting");
        let cache = Cache::new(ctx, opts, source, blob);
        caches.insert(cfg.name.clone(), cache.clone());
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
