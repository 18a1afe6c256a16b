//! The long-running daemon: HTTP server plus background housekeeping.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::net::TcpListener;

use crate::channel::client::{ChannelClient, RetryPolicy};
use crate::channel::fetch::Fetcher;
use crate::channel::poll::{Mode, PollError, Poller};
use crate::config::Config;
use crate::ingress::{self, App};
use crate::store::Store;
use crate::telemetry::names;

/// How often expired dedupe keys and raw bodies are removed (embedded store).
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);

/// How often queued lifecycle facts are applied (Redis; a no-op on the embedded store).
const LIFECYCLE_EVERY: Duration = Duration::from_secs(1);

/// How often parked thin webhooks are looked at (each has its own backoff).
const FETCH_EVERY: Duration = Duration::from_secs(2);

/// The reconciliation gauges of an instance.
pub fn set_reconciliation_gauges(instance: &str, r: &crate::store::Reconciliation) {
    metrics::gauge!(names::RECONCILE_UNMATCHED, "instance" => instance.to_string(), "only" => "poll")
        .set(r.polled_not_pushed.len() as f64);
    metrics::gauge!(names::RECONCILE_UNMATCHED, "instance" => instance.to_string(), "only" => "webhook")
        .set(r.pushed_not_polled.len() as f64);
}

/// Sets the reconciliation gauges of an instance that both pushes and is polled.
pub async fn record_reconciliation<S: Store>(store: &S, instance: &str) {
    match store.reconcile(instance, None).await {
        Ok(r) => set_reconciliation_gauges(instance, &r),
        Err(e) => tracing::warn!(instance, error = %e, "reconciliation failed"),
    }
}

/// Serves until `shutdown` resolves.
pub async fn run<S: Store + Clone>(
    store: S,
    config: Arc<Config>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let housekeeping = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
            loop {
                tick.tick().await;
                match store.housekeeping(Utc::now()).await {
                    Ok(r) if r.dedupe_keys_expired + r.raw_bodies_expired > 0 => tracing::info!(
                        dedupe_keys = r.dedupe_keys_expired,
                        raw_bodies = r.raw_bodies_expired,
                        "housekeeping removed expired entries"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "housekeeping failed"),
                }
            }
        })
    };
    let lifecycle = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(LIFECYCLE_EVERY);
            loop {
                tick.tick().await;
                match store.drain_lifecycle().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(facts = n, "lifecycle facts applied from outboxes"),
                    Err(e) => tracing::warn!(error = %e, "lifecycle outbox drain failed"),
                }
            }
        })
    };
    let mut channel_tasks = Vec::new();
    for inst in config.instances.values().filter(|i| i.poll) {
        let poller = ChannelClient::new(inst, RetryPolicy::default())
            .map_err(PollError::from)
            .and_then(|c| Poller::new(inst.clone(), c));
        let poller = match poller {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(instance = %inst.id, error = %e, "polling disabled for this instance");
                continue;
            }
        };
        let (store, inst) = (store.clone(), inst.clone());
        channel_tasks.push(tokio::spawn(async move {
            loop {
                let wait = match poller.run(&store, &Mode::Live, |_| {}).await {
                    Ok(state) => {
                        tracing::debug!(instance = %inst.id, pages = state.pages, orders = state.orders, "poll caught up");
                        if inst.adapter.spec().webhook.is_some() {
                            record_reconciliation(&store, &inst.id).await;
                        }
                        poller.interval()
                    }
                    Err(e) => {
                        tracing::warn!(instance = %inst.id, error = %e, "poll failed; will retry");
                        poller.interval().min(Duration::from_secs(30))
                    }
                };
                tokio::time::sleep(wait).await;
            }
        }));
    }
    let mut fetcher = Fetcher::new(&config, RetryPolicy::default());
    if !fetcher.is_empty() {
        let (store, config) = (store.clone(), config.clone());
        channel_tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(FETCH_EVERY);
            loop {
                tick.tick().await;
                match fetcher.pass(&store, &config).await {
                    Ok(p) if p.resolved + p.failed + p.unmappable > 0 => tracing::info!(
                        resolved = p.resolved,
                        failed = p.failed,
                        unmappable = p.unmappable,
                        "thin webhooks fetched"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "fetch pass failed"),
                }
            }
        }));
    }
    let header_timeout = config.server.header_read_timeout;
    let app = App::new(store, config);
    let result = ingress::serve(listener, app, header_timeout, shutdown).await;
    housekeeping.abort();
    lifecycle.abort();
    for t in channel_tasks {
        t.abort();
    }
    result
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown requested");
}
