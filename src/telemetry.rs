//! Logs (tracing) and metrics (Prometheus).
//!
//! Logging rule: events carry ids, counts, kinds and field *paths*; never payload values,
//! names, emails, phones, addresses or secrets. `tests/pii_logs.rs` checks this with canaries.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

pub mod history;
pub mod otel;

/// Where traces go, besides the logs (`[telemetry]`).
#[derive(Debug, Clone, Default)]
pub struct TraceExport {
    /// OTLP/HTTP base URL (`http://collector:4318`); `None`: no export.
    pub otlp_endpoint: Option<String>,
    pub service_name: String,
}

/// Installs the global tracing subscriber on stderr. `RUST_LOG` overrides the configured level.
/// Text logs are coloured only when stderr is a terminal and `NO_COLOR` is unset or empty
/// (<https://no-color.org>), so a log file never gets escape codes.
pub fn init_logging(level: &str, json: bool) {
    init_tracing(level, json, &TraceExport::default());
}

/// [`init_logging`], and spans exported over OTLP when `export` names an endpoint.
pub fn init_tracing(level: &str, json: bool, export: &TraceExport) {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let ansi = std::io::stderr().is_terminal() && !no_color;
    init_logging_with(level, json, ansi, std::io::stderr, export);
}

/// Like [`init_logging`] with a chosen writer and no colour (tests capture logs this way).
pub fn init_logging_to<W>(level: &str, json: bool, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    init_logging_with(level, json, false, writer, &TraceExport::default());
}

/// Like [`init_tracing`] with a chosen writer (tests export spans to a receiver of their own).
pub fn init_tracing_to<W>(level: &str, json: bool, writer: W, export: &TraceExport)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    init_logging_with(level, json, false, writer, export);
}

fn init_logging_with<W>(level: &str, json: bool, ansi: bool, writer: W, export: &TraceExport)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi)
        .with_target(true);
    let fmt = if json {
        fmt.json().flatten_event(true).boxed()
    } else {
        fmt.boxed()
    };
    let otel = export.otlp_endpoint.as_deref().and_then(|endpoint| {
        otel::layer(endpoint, &export.service_name)
            .inspect_err(|e| eprintln!("traces are not exported: {e}"))
            .ok()
    });
    // A second call (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init();
}

tokio::task_local! {
    /// The trace id of the request (or poll page) this task serves.
    static TRACE_ID: String;
}

/// A new W3C trace id: 16 random bytes as 32 lower-case hex digits (never all zero).
pub fn new_trace_id() -> String {
    loop {
        let id = format!("{:032x}", rand::random::<u128>());
        if id.bytes().any(|b| b != b'0') {
            return id;
        }
    }
}

/// Where a trace starts: its id and, when it continues a sender's trace, the sender's span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceStart {
    pub trace_id: String,
    /// The sender's span id (16 hex digits) from its `traceparent`.
    pub parent_span_id: Option<String>,
}

impl TraceStart {
    /// A new trace.
    pub fn new() -> Self {
        Self {
            trace_id: new_trace_id(),
            parent_span_id: None,
        }
    }

    /// The trace of a request: the one its W3C `traceparent` header
    /// (`00-<32 hex>-<16 hex>-<2 hex>`) continues when that is valid, else a new one.
    pub fn of(traceparent: Option<&str>) -> Self {
        let hex = |s: &str, n: usize| {
            s.len() == n
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                && s.bytes().any(|b| b != b'0')
        };
        traceparent
            .map(str::trim)
            .and_then(|t| {
                let mut parts = t.split('-');
                let (version, id, span) = (parts.next()?, parts.next()?, parts.next()?);
                (version.len() == 2 && version != "ff" && hex(id, 32) && hex(span, 16)).then(|| {
                    Self {
                        trace_id: id.to_string(),
                        parent_span_id: Some(span.to_string()),
                    }
                })
            })
            .unwrap_or_default()
    }
}

impl Default for TraceStart {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs `f` as the root span `name` of the trace `start` (what [`current_trace_id`] answers
/// inside it), so every log line and exported span of `f` carries that trace id.
pub async fn with_trace<F: std::future::Future>(
    name: &'static str,
    start: TraceStart,
    f: F,
) -> F::Output {
    use tracing::Instrument;
    let id = start.trace_id.clone();
    let span = match name {
        "poll_page" => tracing::info_span!("poll_page", trace_id = %id),
        "outbound_command" => tracing::info_span!("outbound_command", trace_id = %id),
        "fetch" => tracing::info_span!("fetch", trace_id = %id),
        "jobs" => tracing::info_span!("jobs", trace_id = %id),
        _ => tracing::info_span!("request", trace_id = %id),
    };
    otel::adopt_trace(&span, &start);
    TRACE_ID.scope(id, f.instrument(span)).await
}

/// The trace id of the request or poll page this task serves, if any.
pub fn current_trace_id() -> Option<String> {
    TRACE_ID.try_with(Clone::clone).ok()
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".into()),
                    &[
                        0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0,
                    ],
                )
                .expect("bucket list is not empty")
                .install_recorder()
                .expect("the metrics recorder is installed once");
            describe_all();
            handle
        })
        .clone()
}

/// A store operation that failed, by the kind of failure (`invalid` and `not_found` are the
/// caller's, not the store's, and are not counted).
pub fn count_store_error(kind: &'static str) {
    metrics::counter!(names::STORE_ERRORS, "kind" => kind).increment(1);
}

/// An order revision stored with a hold of this kind.
pub fn count_hold(kind: &str) {
    metrics::counter!(names::HOLDS, "kind" => kind.to_string()).increment(1);
}

/// Time spent in one stage of taking a delivery in.
pub fn record_stage(stage: &'static str, started: std::time::Instant) {
    metrics::histogram!(names::STAGE_DURATION, "stage" => stage)
        .record(started.elapsed().as_secs_f64());
}

/// The dead letters waiting per configured instance (none: 0).
pub fn set_dead_letters_waiting(
    instances: &[&str],
    waiting: &std::collections::BTreeMap<String, u64>,
) {
    for instance in instances {
        let n = waiting.get(*instance).copied().unwrap_or(0);
        metrics::gauge!(names::DEAD_LETTERS_WAITING, "instance" => instance.to_string())
            .set(n as f64);
    }
}

/// A recommendation and ranking run that succeeded (scheduled or asked for through the API).
pub fn record_job_run(seconds: f64) {
    metrics::histogram!(names::JOB_DURATION).record(seconds);
    metrics::gauge!(names::JOB_LAST_SUCCESS).set(chrono::Utc::now().timestamp() as f64);
}

/// What kind of metric a name is.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Counter,
    Gauge,
    /// In seconds.
    Histogram,
}

/// Every metric: its name, kind and help text (the HELP and TYPE lines of `/metrics`).
pub const DESCRIPTIONS: &[(&str, Kind, &str)] = &[
    (
        names::DELIVERIES,
        Kind::Counter,
        "Webhook deliveries by instance and outcome (stored, duplicate, dead_lettered, fetch_pending, ignored, ping, unauthorized, too_large, bad_request, unavailable, unknown_instance).",
    ),
    (
        names::INGEST_DURATION,
        Kind::Histogram,
        "Time from a webhook request's body to its answer, by instance.",
    ),
    (
        names::DEAD_LETTERS,
        Kind::Counter,
        "Deliveries (or items of them) parked as dead letters, by instance.",
    ),
    (
        names::DEAD_LETTERS_REPLAYED,
        Kind::Counter,
        "Dead letters replayed, by outcome.",
    ),
    (
        names::RECORDS,
        Kind::Counter,
        "Records written by webhooks, by kind and change.",
    ),
    (
        names::IMPORTS,
        Kind::Counter,
        "Records of file imports and API submissions, by instance and outcome (stored, dead_lettered, duplicate).",
    ),
    (
        names::CHANNEL_REQUESTS,
        Kind::Counter,
        "Calls to channel APIs, by instance and outcome (ok, throttled, server_error, refused, transport).",
    ),
    (
        names::POLL_PAGES,
        Kind::Counter,
        "Pages taken in by polling, by instance.",
    ),
    (
        names::RECONCILE_UNMATCHED,
        Kind::Gauge,
        "Orders seen by only one of polling and webhooks, by instance and only (poll, webhook).",
    ),
    (
        names::FETCHES,
        Kind::Counter,
        "Thin webhooks whose record was fetched, by instance and outcome (ok, refused, failed).",
    ),
    (
        names::LEASE_HELD,
        Kind::Gauge,
        "1 while this replica holds a lease, by scope and lease.",
    ),
    (
        names::LEASE_CHANGES,
        Kind::Counter,
        "Leases this replica took over or lost, by event.",
    ),
    (
        names::BUDGET_WAITS,
        Kind::Counter,
        "Times a channel request waited for the shared rate budget, by instance.",
    ),
    (
        names::REPLICA_ACK_SHORTFALLS,
        Kind::Counter,
        "Writes answered 503 because too few Redis replicas acknowledged them in time.",
    ),
    (
        names::CLUSTER_TOPOLOGY_CHANGES,
        Kind::Counter,
        "Changes of the Redis Cluster slot map this replica has seen.",
    ),
    (
        names::FX_CHECKPOINTS,
        Kind::Counter,
        "FX log checkpoints, by outcome (signed, failed).",
    ),
    (
        names::FX_CONVERSIONS,
        Kind::Counter,
        "Order revisions the FX job converted, by outcome (converted, fx_pending: a rate is missing and the order is held).",
    ),
    (
        names::FX_PENDING_ORDERS,
        Kind::Gauge,
        "Orders held fx_pending now (waiting for a rate).",
    ),
    (
        names::TAX_QUOTES,
        Kind::Counter,
        "Order revisions the tax job quoted, by outcome (quoted, tax_pending: a rule is missing and the order is held).",
    ),
    (
        names::TAX_PENDING_ORDERS,
        Kind::Gauge,
        "Orders held tax_pending now (their latest quote lacks a rule).",
    ),
    (
        names::HOLDS,
        Kind::Counter,
        "Order revisions stored with a hold the numbers put on them, by kind (totals_mismatch).",
    ),
    (
        names::OUTBOUND_COMMANDS,
        Kind::Counter,
        "Outbound command attempts, by instance and the state they left the command in (confirmed, failed, dead).",
    ),
    (
        names::OUTBOUND_QUEUE,
        Kind::Gauge,
        "Outbound commands not yet confirmed, dead or coalesced, by instance.",
    ),
    (
        names::CONSUMER_LAG_EVENTS,
        Kind::Gauge,
        "Events a consumer group (fx, tax, payments, reco) has not acknowledged yet.",
    ),
    (
        names::CONSUMER_LAG_SECONDS,
        Kind::Gauge,
        "Age of the oldest event a consumer group has not acknowledged (0 when caught up).",
    ),
    (
        names::BACKPRESSURE_REFUSALS,
        Kind::Counter,
        "Deliveries answered 503 because the background jobs were more than [server] max_consumer_lag events behind.",
    ),
    (
        names::CONFIG_RELOADS,
        Kind::Counter,
        "Configuration reloads, by trigger (sighup, api) and outcome (applied, refused).",
    ),
];

fn describe_all() {
    for (name, kind, help) in DESCRIPTIONS {
        match kind {
            Kind::Counter => metrics::describe_counter!(*name, *help),
            Kind::Gauge => metrics::describe_gauge!(*name, *help),
            Kind::Histogram => {
                metrics::describe_histogram!(*name, metrics::Unit::Seconds, *help)
            }
        }
    }
}

/// Series present from start-up with zero values, so a dashboard or an alert sees them before
/// the first event: per configured instance, and the process-wide ones.
pub fn register_zeros(instances: &[&str]) {
    use names::*;
    let _ = metrics(); // the recorder first, or the series go nowhere
    for instance in instances {
        let i = instance.to_string();
        for outcome in ["stored", "duplicate", "dead_lettered", "unauthorized"] {
            metrics::counter!(DELIVERIES, "instance" => i.clone(), "outcome" => outcome)
                .increment(0);
        }
        for outcome in ["stored", "dead_lettered"] {
            metrics::counter!(IMPORTS, "instance" => i.clone(), "outcome" => outcome).increment(0);
        }
        metrics::counter!(DEAD_LETTERS, "instance" => i.clone()).increment(0);
        metrics::gauge!(DEAD_LETTERS_WAITING, "instance" => i.clone()).set(0.0);
        metrics::gauge!(OUTBOUND_QUEUE, "instance" => i.clone()).set(0.0);
    }
    for trigger in ["sighup", "api"] {
        for outcome in ["applied", "refused"] {
            metrics::counter!(CONFIG_RELOADS, "trigger" => trigger, "outcome" => outcome)
                .increment(0);
        }
    }
    metrics::counter!(CLUSTER_TOPOLOGY_CHANGES).increment(0);
    for kind in ["unavailable", "corrupt", "lease_lost"] {
        metrics::counter!(STORE_ERRORS, "kind" => kind).increment(0);
    }
    metrics::counter!(REPLICA_ACK_SHORTFALLS).increment(0);
    metrics::counter!(BACKPRESSURE_REFUSALS).increment(0);
    for outcome in ["converted", "fx_pending"] {
        metrics::counter!(FX_CONVERSIONS, "outcome" => outcome).increment(0);
    }
    for outcome in ["quoted", "tax_pending"] {
        metrics::counter!(TAX_QUOTES, "outcome" => outcome).increment(0);
    }
    metrics::gauge!(FX_PENDING_ORDERS).set(0.0);
    metrics::gauge!(TAX_PENDING_ORDERS).set(0.0);
    metrics::counter!(HOLDS, "kind" => crate::model::TOTALS_MISMATCH).increment(0);
}

/// Metric names, in one place.
/// The reconciliation gauges of an instance: orders seen only by polling, only by webhook.
pub fn set_reconciliation_gauges(instance: &str, polled_only: usize, pushed_only: usize) {
    let gauge = |only: &'static str| metrics::gauge!(names::RECONCILE_UNMATCHED, "instance" => instance.to_string(), "only" => only);
    gauge("poll").set(polled_only as f64);
    gauge("webhook").set(pushed_only as f64);
    history::record_reconciliation(instance, polled_only, pushed_only);
}

pub mod names {
    pub const DELIVERIES: &str = "crossgate_deliveries_total";
    pub const INGEST_DURATION: &str = "crossgate_ingest_duration_seconds";
    pub const DEAD_LETTERS: &str = "crossgate_dead_letters_total";
    pub const DEAD_LETTERS_REPLAYED: &str = "crossgate_dead_letters_replayed_total";
    pub const RECORDS: &str = "crossgate_records_total";
    /// Records of file imports and API submissions, by instance and outcome.
    pub const IMPORTS: &str = "crossgate_imports_total";
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
    /// Dead letters waiting, by instance.
    pub const DEAD_LETTERS_WAITING: &str = "crossgate_dead_letters_waiting";
    /// Time in one stage of taking a delivery in (label `stage`).
    pub const STAGE_DURATION: &str = "crossgate_stage_duration_seconds";
    /// Store operations that failed (label `kind`).
    pub const STORE_ERRORS: &str = "crossgate_store_errors_total";
    /// Events a consumer group has not acknowledged (label `group`).
    pub const CONSUMER_LAG_EVENTS: &str = "crossgate_consumer_lag_events";
    /// Age of the oldest event a consumer group has not acknowledged, 0 when caught up.
    pub const CONSUMER_LAG_SECONDS: &str = "crossgate_consumer_lag_seconds";
    /// Deliveries answered 503 because the background jobs were too far behind.
    pub const BACKPRESSURE_REFUSALS: &str = "crossgate_backpressure_refusals_total";
    /// Seconds from a polled instance's watermark to now, after a caught-up poll.
    pub const POLL_LAG: &str = "crossgate_poll_lag_seconds";
    /// Unix time of a polled instance's last caught-up poll.
    pub const POLL_LAST_SUCCESS: &str = "crossgate_poll_last_success_timestamp_seconds";
    /// Duration of a recommendation and ranking run.
    pub const JOB_DURATION: &str = "crossgate_jobs_duration_seconds";
    /// Unix time of the last successful recommendation and ranking run.
    pub const JOB_LAST_SUCCESS: &str = "crossgate_jobs_last_success_timestamp_seconds";
    /// Configuration reloads by trigger (`sighup`, `api`) and outcome (`applied`, `refused`).
    pub const CONFIG_RELOADS: &str = "crossgate_config_reloads_total";
    /// FX conversions by outcome.
    pub const FX_CONVERSIONS: &str = "crossgate_fx_conversions_total";
    /// Orders held fx_pending now.
    pub const FX_PENDING_ORDERS: &str = "crossgate_fx_pending_orders";
    /// Tax quotes by outcome.
    pub const TAX_QUOTES: &str = "crossgate_tax_quotes_total";
    /// Orders held tax_pending now.
    pub const TAX_PENDING_ORDERS: &str = "crossgate_tax_pending_orders";
    /// Order revisions stored with a hold, by kind.
    pub const HOLDS: &str = "crossgate_holds_total";
    /// Outbound command attempts by instance and resulting state.
    pub const OUTBOUND_COMMANDS: &str = "crossgate_outbound_commands_total";
    /// Open outbound commands by instance.
    pub const OUTBOUND_QUEUE: &str = "crossgate_outbound_queue_depth";
}
