//! Logs (tracing) and metrics (Prometheus).
//!
//! Logging rule: events carry ids, counts, kinds and field *paths*; never payload values,
//! names, emails, phones, addresses or secrets. `tests/pii_logs.rs` checks this with canaries.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Installs the global tracing subscriber on stderr. `RUST_LOG` overrides the configured level.
/// Text logs are coloured only when stderr is a terminal and `NO_COLOR` is unset or empty
/// (<https://no-color.org>), so a log file never gets escape codes.
pub fn init_logging(level: &str, json: bool) {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let ansi = std::io::stderr().is_terminal() && !no_color;
    init_logging_with(level, json, ansi, std::io::stderr);
}

/// Like [`init_logging`] with a chosen writer and no colour (tests capture logs this way).
pub fn init_logging_to<W>(level: &str, json: bool, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    init_logging_with(level, json, false, writer);
}

fn init_logging_with<W>(level: &str, json: bool, ansi: bool, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .with_target(true);
    // A second call (tests) keeps the first subscriber.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".into()),
                    &[
                        0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0,
                    ],
                )
                .expect("bucket list is not empty")
                .install_recorder()
                .expect("the metrics recorder is installed once")
        })
        .clone()
}

/// Metric names, in one place.
/// The reconciliation gauges of an instance: orders seen only by polling, only by webhook.
pub fn set_reconciliation_gauges(instance: &str, polled_only: usize, pushed_only: usize) {
    let gauge = |only: &'static str| metrics::gauge!(names::RECONCILE_UNMATCHED, "instance" => instance.to_string(), "only" => only);
    gauge("poll").set(polled_only as f64);
    gauge("webhook").set(pushed_only as f64);
}

pub mod names {
    pub const DELIVERIES: &str = "crossgate_deliveries_total";
    pub const INGEST_DURATION: &str = "crossgate_ingest_duration_seconds";
    pub const DEAD_LETTERS: &str = "crossgate_dead_letters_total";
    pub const DEAD_LETTERS_REPLAYED: &str = "crossgate_dead_letters_replayed_total";
    pub const RECORDS: &str = "crossgate_records_total";
    /// Calls to channel APIs, by instance and outcome (ok, throttled, server_error, …).
    pub const CHANNEL_REQUESTS: &str = "crossgate_channel_requests_total";
    /// Pages and orders taken in by polling.
    pub const POLL_PAGES: &str = "crossgate_poll_pages_total";
    /// Orders seen by only one of polling and webhooks (label `only` = poll | webhook).
    pub const RECONCILE_UNMATCHED: &str = "crossgate_reconcile_unmatched_orders";
    /// Thin webhooks whose record was fetched (outcome ok / failed).
    pub const FETCHES: &str = "crossgate_fetches_total";
    /// 1 while this replica holds a lease (labels `scope`, `lease`), else 0.
    pub const LEASE_HELD: &str = "crossgate_lease_held";
    /// Leases this replica took over, or lost to another replica (label `event` = acquired | lost).
    pub const LEASE_CHANGES: &str = "crossgate_lease_changes_total";
    /// Times a channel request waited for the shared rate budget, by instance.
    pub const BUDGET_WAITS: &str = "crossgate_rate_budget_waits_total";
    /// Writes answered 503 because fewer than `replica_acks` replicas had them in time.
    pub const REPLICA_ACK_SHORTFALLS: &str = "crossgate_replica_ack_shortfalls_total";
    /// Changes of the cluster's slot map this replica has seen (failovers, resharding).
    pub const CLUSTER_TOPOLOGY_CHANGES: &str = "crossgate_cluster_topology_changes_total";
    /// FX log checkpoints signed, by `outcome` (`signed`, `failed`).
    pub const FX_CHECKPOINTS: &str = "crossgate_fx_checkpoints_total";
    /// Configuration reloads by trigger (`sighup`, `api`) and outcome (`applied`, `refused`).
    pub const CONFIG_RELOADS: &str = "crossgate_config_reloads_total";
}
