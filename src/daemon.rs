//! The long-running daemon: HTTP server plus background housekeeping.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::ingress::{self, App};
use crate::store::Store;

/// How often expired dedupe keys and raw bodies are removed (embedded store).
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);

/// How often queued lifecycle facts are applied (Redis; a no-op on the embedded store).
const LIFECYCLE_EVERY: Duration = Duration::from_secs(1);

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
    let header_timeout = config.server.header_read_timeout;
    let app = App::new(store, config);
    let result = ingress::serve(listener, app, header_timeout, shutdown).await;
    housekeeping.abort();
    lifecycle.abort();
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
