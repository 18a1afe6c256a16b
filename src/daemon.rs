//! The long-running daemon: HTTP server plus background housekeeping.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::net::TcpListener;

use crate::backend::Stores;
use crate::channel::client::RetryPolicy;
use crate::channel::fetch::Fetcher;
use crate::channel::poll::{Mode, Poller};
use crate::config::{Config, LiveConfig};
use crate::ingress::{self, App};
use crate::replica::{Backlog, Job, Replica};
use crate::store::{Lease, Store};

/// How often expired dedupe keys and raw bodies are removed (embedded store).
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);

/// How often queued lifecycle facts are applied (Redis; a no-op on the embedded store).
const LIFECYCLE_EVERY: Duration = Duration::from_secs(1);

/// How often parked thin webhooks are looked at (each has its own backoff).
const FETCH_EVERY: Duration = Duration::from_secs(2);

/// Sets the reconciliation gauges of an instance that both pushes and is polled.
pub async fn record_reconciliation<S: Store>(store: &S, instance: &str) {
    match store.reconcile(instance, None).await {
        Ok(r) => crate::telemetry::set_reconciliation_gauges(
            instance,
            r.polled_not_pushed.len(),
            r.pushed_not_polled.len(),
        ),
        Err(e) => tracing::warn!(instance, error = %e, "reconciliation failed"),
    }
}

/// Serves until `shutdown` resolves; the background tasks run beside the server and stop
/// with it. Each polled instance and each job runs on the replica that holds its lease, so
/// several daemons on one store share the work instead of doing it twice.
pub async fn run<S: Stores>(
    store: S,
    config: Arc<Config>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let replica = Arc::new(Replica::new(config.store.lease_ttl));
    tracing::info!(replica = %replica.id, "replica started");
    let live = Arc::new(LiveConfig::new(config.clone()));
    let ids: Vec<&str> = config.instances.keys().map(String::as_str).collect();
    crate::telemetry::register_zeros(&ids);
    let budget = store.shared_budget();
    let backlog = Arc::new(Backlog::default());
    let mut tasks = vec![
        tokio::spawn(housekeeping_task(store.clone(), live.clone())),
        tokio::spawn(consumer_lag_task(
            store.clone(),
            live.clone(),
            backlog.clone(),
        )),
        tokio::spawn(lifecycle_task(store.clone(), replica.clone())),
        tokio::spawn(fx_task(store.clone(), live.clone(), replica.clone())),
        tokio::spawn(tax_task(store.clone(), live.clone(), replica.clone())),
        tokio::spawn(crate::replica::watch_topology(store.clone())),
        tokio::spawn(reload_on_hangup(live.clone())),
        tokio::spawn(fetch_task(
            store.clone(),
            live.clone(),
            budget.clone(),
            replica.clone(),
        )),
    ];
    // The set of polled instances is fixed for the process (a reload that changes it is
    // refused); each poll task follows its instance's adapter and settings across reloads.
    let wakers: ingress::PollWakers = Arc::new(
        config
            .instances
            .values()
            .filter(|i| i.poll)
            .map(|i| (i.id.clone(), Arc::new(tokio::sync::Notify::new())))
            .collect(),
    );
    for (id, wake) in wakers.iter() {
        tasks.push(tokio::spawn(poll_task(
            store.clone(),
            live.clone(),
            (id.clone(), wake.clone()),
            budget.clone(),
            (replica.clone(), backlog.clone()),
        )));
    }
    // Every instance has an outbox task: a reload may give its adapter `[outbound]`.
    for id in config.instances.keys() {
        tasks.push(tokio::spawn(outbox_task(
            store.clone(),
            live.clone(),
            id.clone(),
            budget.clone(),
            replica.clone(),
        )));
    }
    if let Some(every) = config.jobs.every {
        tasks.push(tokio::spawn(reco_task(
            store.clone(),
            live.clone(),
            every,
            replica.clone(),
        )));
    }
    let header_timeout = config.server.header_read_timeout;
    let app = App::new(store.clone(), live)
        .with_wakers(wakers)
        .with_backlog(backlog);
    let result = ingress::serve(listener, app, header_timeout, shutdown).await;
    for t in tasks {
        t.abort();
    }
    replica.release_all(&store).await;
    result
}

/// Expires dedupe keys and raw bodies past their retention (the embedded store; Redis
/// expires them itself, so every replica may run it), and refreshes the dead-letter gauge.
async fn housekeeping_task<S: Stores>(store: S, live: Arc<LiveConfig>) {
    let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
    loop {
        tick.tick().await;
        match store.housekeeping(Utc::now()).await {
            Ok(r)
                if r.dedupe_keys_expired + r.raw_bodies_expired + r.idempotency_keys_expired
                    > 0 =>
            {
                tracing::info!(
                    dedupe_keys = r.dedupe_keys_expired,
                    idempotency_keys = r.idempotency_keys_expired,
                    raw_bodies = r.raw_bodies_expired,
                    "housekeeping removed expired entries"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "housekeeping failed"),
        }
        match crate::fx::store::FxStore::fx_pending_count(&store).await {
            Ok(n) => metrics::gauge!(crate::telemetry::names::FX_PENDING_ORDERS).set(n as f64),
            Err(e) => tracing::warn!(error = %e, "counting fx_pending orders failed"),
        }
        match crate::tax::store::TaxStore::tax_pending_count(&store).await {
            Ok(n) => metrics::gauge!(crate::telemetry::names::TAX_PENDING_ORDERS).set(n as f64),
            Err(e) => tracing::warn!(error = %e, "counting tax_pending orders failed"),
        }
        match store.dead_letters_waiting().await {
            Ok(waiting) => {
                let config = live.get();
                let ids: Vec<&str> = config.instances.keys().map(String::as_str).collect();
                crate::telemetry::set_dead_letters_waiting(&ids, &waiting);
            }
            Err(e) => tracing::warn!(error = %e, "counting dead letters failed"),
        }
    }
}

/// How often the consumer groups' lag is measured.
const LAG_EVERY: Duration = Duration::from_secs(1);

/// The consumer groups whose lag is reported; the first three run all the time, so their lag
/// is the backlog that deliveries wait on (the recommendation job reads on its schedule).
const LAG_GROUPS: [&str; 4] = [
    crate::fx::FX_GROUP,
    crate::tax::TAX_GROUP,
    crate::payments::PAYMENTS_GROUP,
    crate::reco::job::RECO_GROUP,
];

/// Measures how far each consumer group is behind the event stream, every second: gauges
/// (events, age of the oldest), the backlog deliveries wait on, and a warning when it passes
/// `[server] max_consumer_lag` (and a note when it is back under).
async fn consumer_lag_task<S: Stores>(store: S, live: Arc<LiveConfig>, backlog: Arc<Backlog>) {
    use crate::telemetry::names::{CONSUMER_LAG_EVENTS, CONSUMER_LAG_SECONDS};
    let mut tick = tokio::time::interval(LAG_EVERY);
    let mut over = false;
    loop {
        tick.tick().await;
        let lags = match store.consumer_lag(&LAG_GROUPS).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "measuring the consumers' lag failed");
                continue;
            }
        };
        let now = Utc::now();
        for l in &lags {
            let age = l
                .oldest
                .map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
            metrics::gauge!(CONSUMER_LAG_EVENTS, "group" => l.group.clone()).set(l.behind as f64);
            metrics::gauge!(CONSUMER_LAG_SECONDS, "group" => l.group.clone()).set(age);
        }
        let behind = lags[..3].iter().map(|l| l.behind).max().unwrap_or(0);
        backlog.set(behind);
        let limit = live.get().server.max_consumer_lag;
        match (backlog.over(limit).is_some(), over) {
            (true, false) => tracing::warn!(
                behind,
                limit,
                "background jobs are behind the limit: deliveries get 503 and pollers pause"
            ),
            (false, true) => tracing::info!(behind, limit, "background jobs caught up"),
            _ => {}
        }
        over = backlog.over(limit).is_some();
    }
}

/// Applies lifecycle facts queued for other instances' orders, then reconciles payments; on
/// the replica that holds the `lifecycle` lease.
async fn lifecycle_task<S: Stores>(store: S, replica: Arc<Replica>) {
    let lease = Job::Lifecycle.lease();
    let mut tick = tokio::time::interval(LIFECYCLE_EVERY);
    loop {
        tick.tick().await;
        if replica.hold(&store, &lease).await.is_none() {
            continue;
        }
        match store.drain_lifecycle().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(facts = n, "lifecycle facts applied from outboxes"),
            Err(e) => tracing::warn!(error = %e, "lifecycle outbox drain failed"),
        }
        // After the drain, so that a provider's payment queued for another instance's
        // order is already applied when the order is checked.
        match crate::payments::catch_up(&store).await {
            Ok(p) if p.reconciled > 0 => tracing::debug!(
                orders = p.orders,
                reconciled = p.reconciled,
                "payments reconciled with their orders"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "payments pass failed; will retry"),
        }
    }
}

/// Polls one instance on the replica that holds its poller lease, renewed before every page;
/// each page and its cursor are written under the lease's fencing token. Caught up, it waits
/// one interval; after a failure at most 30 s; without the lease, a third of the lease time.
/// After a reload that changed the instance (its adapter, settings or secrets), the next page
/// is read with the new one. A push the adapter does not map wakes it early (`PollWakers`).
async fn poll_task<S: Stores>(
    store: S,
    live: Arc<LiveConfig>,
    (id, wake): (String, Arc<tokio::sync::Notify>),
    budget: Option<crate::store::SharedBudget>,
    (replica, backlog): (Arc<Replica>, Arc<Backlog>),
) {
    let lease = Lease::poller(&id);
    let standby = (replica.ttl / 3).max(Duration::from_millis(500));
    let mut current: Option<(Arc<crate::config::Instance>, Poller)> = None;
    loop {
        let Some(inst) = live.get().instances.get(&id).cloned() else {
            return; // a reload cannot remove a polled instance; nothing to poll
        };
        if current.as_ref().is_none_or(|(i, _)| !Arc::ptr_eq(i, &inst)) {
            match Poller::for_instance(&inst, budget.clone()) {
                Ok(p) => current = Some((inst, p)),
                Err(e) => {
                    tracing::error!(instance = %id, error = %e, "polling disabled for this instance until a reload fixes it");
                    current = None;
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    continue;
                }
            }
        }
        let Some((inst, poller)) = current.as_ref() else {
            continue;
        };
        // Backpressure: no new pages while the background jobs are too far behind.
        if backlog.over(live.get().server.max_consumer_lag).is_some() {
            tokio::time::sleep(LAG_EVERY).await;
            continue;
        }
        let Some(fence) = replica.hold(&store, &lease).await else {
            tokio::time::sleep(standby).await;
            continue;
        };
        // Each page has a trace id of its own: its log lines and its stored delivery carry it.
        let page = poller.step_fenced(&store, &Mode::Live, Some(fence));
        let trace = crate::telemetry::TraceStart::new();
        let wait = match crate::telemetry::with_trace("poll_page", trace, page).await {
            Ok((_, report)) if !report.done => continue,
            Ok((state, _)) => {
                tracing::debug!(instance = %id, pages = state.pages, orders = state.orders, "poll caught up");
                record_poll_success(&id, state.watermark);
                if inst.adapter.spec().webhook.is_some() {
                    record_reconciliation(&store, &id).await;
                }
                poller.interval()
            }
            Err(e) => {
                tracing::warn!(instance = %id, error = %e, "poll failed; will retry");
                poller.interval().min(Duration::from_secs(30))
            }
        };
        // Until the interval ends, or an unmapped push from the channel says it has news.
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = wake.notified() => tracing::debug!(instance = %id, "poller woken by a push"),
        }
    }
}

/// How often an idle outbox looks for due commands.
const OUTBOX_IDLE: Duration = Duration::from_millis(250);

/// Delivers one instance's outbound commands on the replica that holds its outbox lease, with
/// the worker of the configuration in use (rebuilt after a reload changed the instance).
async fn outbox_task<S: Stores>(
    store: S,
    live: Arc<LiveConfig>,
    id: String,
    budget: Option<crate::store::SharedBudget>,
    replica: Arc<Replica>,
) {
    use crate::outbox::worker::Worker;
    let lease = Lease::outbox(&id);
    let standby = (replica.ttl / 3).max(Duration::from_millis(500));
    let mut current: Option<(Arc<crate::config::Instance>, Option<Worker>)> = None;
    let mut gauge_at = tokio::time::Instant::now();
    loop {
        let config = live.get();
        let Some(inst) = config.instances.get(&id).cloned() else {
            return;
        };
        if current.as_ref().is_none_or(|(i, _)| !Arc::ptr_eq(i, &inst)) {
            let settings = (*config.outbox).clone();
            match Worker::for_instance(&inst, budget.clone(), settings) {
                Ok(w) => current = Some((inst, w)),
                Err(e) => {
                    tracing::error!(instance = %id, error = %e, "outbound delivery disabled for this instance until a reload fixes it");
                    current = Some((inst, None));
                }
            }
        }
        let Some((_, Some(worker))) = current.as_ref() else {
            tokio::time::sleep(Duration::from_secs(5)).await;
            continue;
        };
        if replica.hold(&store, &lease).await.is_none() {
            tokio::time::sleep(standby).await;
            continue;
        }
        if gauge_at.elapsed() >= Duration::from_secs(5) {
            gauge_at = tokio::time::Instant::now();
            if let Ok(n) = store.outbox_depth(&id).await {
                metrics::gauge!(crate::telemetry::names::OUTBOUND_QUEUE, "instance" => id.clone())
                    .set(n as f64);
            }
        }
        match worker.step(&store).await {
            Ok(0) => tokio::time::sleep(OUTBOX_IDLE).await,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(instance = %id, error = %e, "outbox pass failed; will retry");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The gauges of a caught-up poll: when it succeeded and how far behind now its watermark is.
fn record_poll_success(instance: &str, watermark: Option<chrono::DateTime<Utc>>) {
    use crate::telemetry::names::{POLL_LAG, POLL_LAST_SUCCESS};
    let now = Utc::now();
    let label = instance.to_string();
    metrics::gauge!(POLL_LAST_SUCCESS, "instance" => label.clone()).set(now.timestamp() as f64);
    let lag = watermark.map(|w| (now - w).num_milliseconds().max(0) as f64 / 1000.0);
    if let Some(lag) = lag {
        metrics::gauge!(POLL_LAG, "instance" => label).set(lag);
    }
    crate::telemetry::history::record_poll(instance, now, lag);
}

/// Fetches the records that thin webhooks name, with the clients of the configuration in
/// use (rebuilt after a reload).
async fn fetch_task<S: Stores>(
    store: S,
    live: Arc<LiveConfig>,
    budget: Option<crate::store::SharedBudget>,
    replica: Arc<Replica>,
) {
    let lease = Job::Fetch.lease();
    let mut tick = tokio::time::interval(FETCH_EVERY);
    let mut current: Option<(u64, Fetcher)> = None;
    loop {
        tick.tick().await;
        let generation = live.generation();
        let config = live.get();
        if current.as_ref().is_none_or(|(g, _)| *g != generation) {
            let fetcher = Fetcher::new(&config, RetryPolicy::default(), budget.clone());
            current = Some((generation, fetcher));
        }
        let Some((_, fetcher)) = current.as_mut() else {
            continue;
        };
        if fetcher.is_empty() || replica.hold(&store, &lease).await.is_none() {
            continue;
        }
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
}

/// Reloads the configuration on `SIGHUP`; the outcome is logged and counted (and shown by
/// `GET /v1/admin/config`).
async fn reload_on_hangup(live: Arc<LiveConfig>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("SIGHUP cannot be watched; reload with POST /v1/admin/reload");
            return;
        };
        while hup.recv().await.is_some() {
            let _ = live.reload_reported("sighup").await; // logged and counted there
        }
    }
    #[cfg(not(unix))]
    std::future::pending::<()>().await;
}

/// Quotes new orders for tax, as their events arrive.
async fn tax_task<S: Stores>(store: S, live: Arc<LiveConfig>, replica: Arc<Replica>) {
    let lease = Job::Tax.lease();
    let mut generation = 0;
    let mut job = None;
    let mut tick = tokio::time::interval(FX_EVERY);
    loop {
        tick.tick().await;
        // Rule packs as the configuration in use has them (a reload may add one).
        if generation != live.generation() || job.is_none() {
            generation = live.generation();
            let config = live.get();
            job = Some(crate::tax::TaxJob::new(
                config.tax.clone(),
                config.fx.max_age_days,
            ));
        }
        let Some(job) = job.as_ref() else { continue };
        // Renewed before every batch, so a long catch-up keeps its lease.
        while replica.hold(&store, &lease).await.is_some() {
            match job.pass(&store, 200).await {
                Ok((0, _)) => break,
                Ok((_, quoted)) => tracing::debug!(quoted, "orders quoted for tax"),
                Err(e) => {
                    tracing::warn!(error = %e, "tax pass failed; will retry");
                    break;
                }
            }
        }
    }
}

/// Runs the recommendation and ranking jobs every `every`, once per interval across the
/// replicas: the run's lease lasts one interval and is not released, so whichever replica
/// takes it runs and the others find it held until the next interval. The first run waits
/// for start-up to settle (rates, pollers).
async fn reco_task<S: Stores>(
    store: S,
    live: Arc<LiveConfig>,
    every: Duration,
    replica: Arc<Replica>,
) {
    let lease = Job::Reco.lease();
    let first = tokio::time::Instant::now() + every.min(Duration::from_secs(10));
    let mut tick = tokio::time::interval_at(first, every);
    // A little under one interval, so that the holder's next tick finds it expired or its
    // own, never a moment too early.
    let hold = every.saturating_sub(every / 20).max(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if replica.hold_for(&store, &lease, hold).await.is_none() {
            continue;
        }
        let which = crate::reco::job::Which {
            recommend: true,
            rank: true,
        };
        let quiet = crate::reco::job::Quiet;
        let config = live.get();
        let run = crate::reco::job::run(&store, &config.jobs, &config.fx, which, &quiet);
        let trace = crate::telemetry::TraceStart::new();
        let result = crate::telemetry::with_trace("jobs", trace, run).await;
        if let Ok(r) = &result {
            crate::telemetry::record_job_run(r.total_seconds);
        }
        match result {
            Ok(r) => tracing::info!(
                events = r.events_read,
                orders = r.orders,
                customers = r.customers,
                items = r.items,
                rankings = r.rankings,
                seconds = r.total_seconds,
                "recommendations and rankings published"
            ),
            Err(e) => tracing::warn!(error = %e, "recommendation jobs failed; will retry"),
        }
    }
}

/// Loads the manual rate table and (when configured) the ECB rates into the store.
pub async fn sync_rates<S: crate::fx::store::FxStore>(
    store: &S,
    fx: &crate::fx::FxSettings,
    ecb: bool,
) -> Vec<String> {
    use crate::fx::rates::RateSource;
    let mut problems = Vec::new();
    let now = Utc::now();
    let mut sources = Vec::new();
    if let Some(m) = &fx.manual_rates {
        sources.push((RateSource::Manual, m.display().to_string()));
    }
    if ecb && let Some(e) = &fx.ecb_source {
        sources.push((RateSource::Ecb, e.clone()));
    }
    for (source, location) in sources {
        match crate::fx::read_document(source, &location, now).await {
            Ok(doc) => {
                let days = doc.days.len();
                match store.fx_put_doc(doc).await {
                    Ok(new) => {
                        tracing::info!(source = source.as_str(), days, new, "rate document stored")
                    }
                    Err(e) => problems.push(format!("{location}: {e}")),
                }
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    for p in &problems {
        tracing::warn!(problem = %p, "rate refresh failed; orders without a rate wait as fx_pending");
    }
    problems
}

/// How often the FX job looks for new order events.
const FX_EVERY: Duration = Duration::from_secs(1);

/// The FX job: converts orders from the event stream, refreshes rates daily after the ECB's
/// publication, and converts waiting orders once their rates arrive.
async fn fx_task<S: Stores>(store: S, live: Arc<LiveConfig>, replica: Arc<Replica>) {
    let lease = Job::Fx.lease();
    let mut generation = live.generation();
    let mut settings = live.get().fx.clone();
    sync_rates(&store, &settings, false).await;
    let mut job = fx_job(&store, settings.clone()).await;
    let mut checkpointer = settings
        .checkpoints
        .clone()
        .map(crate::fx::checkpoint::Checkpointer::new);
    let mut last_refresh: Option<chrono::NaiveDate> = None;
    let mut tick = tokio::time::interval(FX_EVERY);
    let mut ticks: u64 = 0;
    loop {
        tick.tick().await;
        if generation != live.generation() {
            // A reload: the manual rate table may have changed (a document already stored is
            // recognised and kept once), and so may the reporting currencies or the key.
            generation = live.generation();
            settings = live.get().fx.clone();
            sync_rates(&store, &settings, false).await;
            job = fx_job(&store, settings.clone()).await;
            checkpointer = settings
                .checkpoints
                .clone()
                .map(crate::fx::checkpoint::Checkpointer::new);
        }
        if replica.hold(&store, &lease).await.is_none() {
            continue;
        }
        ticks += 1;
        // The daily refresh: once a day after `refresh_after` Frankfurt time (and at start-up
        // when the newest rate is older than the maximum age).
        let berlin = Utc::now().with_timezone(&chrono_tz::Europe::Berlin);
        let today = berlin.date_naive();
        let stale = job
            .book()
            .latest_ecb_day()
            .is_none_or(|d| (today - d).num_days() > settings.max_age_days);
        let due = last_refresh != Some(today)
            && (berlin.time() >= settings.refresh_after || (last_refresh.is_none() && stale));
        if settings.ecb_source.is_some() && due {
            let problems = sync_rates(&store, &settings, true).await;
            if problems.is_empty() || last_refresh.is_none() {
                last_refresh = Some(today);
            }
        }
        if ticks % 30 == 1 || due {
            match job.refresh_book(&store).await {
                Ok(true) => match job.retry_pending(&store).await {
                    Ok(p) if p.orders > 0 => tracing::info!(
                        orders = p.orders,
                        entries = p.entries,
                        still_pending = p.pending,
                        "waiting orders converted with new rates"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "retrying fx_pending orders failed"),
                },
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "reading rate documents failed"),
            }
        }
        while replica.hold(&store, &lease).await.is_some() {
            if let Some(c) = checkpointer.as_mut() {
                sign_checkpoint(c, &store).await;
            }
            match job.pass(&store, 200).await {
                Ok(p) if p.events == 0 => break,
                Ok(p) => tracing::debug!(
                    orders = p.orders,
                    entries = p.entries,
                    pending = p.pending,
                    "orders converted"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "FX pass failed; will retry");
                    break;
                }
            }
        }
        // The review index follows the log, on the lease holder (a compare-and-set, so a
        // page that applies a batch itself does not race it).
        if let Err(e) = crate::fx::review::catch_up(&store, REVIEW_BATCHES_PER_TICK).await {
            tracing::warn!(error = %e, "updating the FX review index failed; will retry");
        }
    }
}

/// Log batches (2,000 entries each) the FX loop applies to the review index per tick: a log of
/// a million entries is indexed in about 20 ticks without holding up conversions.
const REVIEW_BATCHES_PER_TICK: usize = 25;

/// The FX job over the stored rate documents, once the store answers.
async fn fx_job<S: Stores>(store: &S, settings: Arc<crate::fx::FxSettings>) -> crate::fx::FxJob {
    loop {
        match crate::fx::FxJob::new(store, settings.clone()).await {
            Ok(j) => return j,
            Err(e) => {
                tracing::warn!(error = %e, "FX job cannot start yet");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}

/// Signs the FX log's head when a checkpoint is due; a failure is logged and counted, and
/// retried on the next tick.
async fn sign_checkpoint<S: Stores>(c: &mut crate::fx::checkpoint::Checkpointer, store: &S) {
    use crate::telemetry::names::FX_CHECKPOINTS;
    match c.tick(store, Utc::now()).await {
        Ok(Some(cp)) => {
            metrics::counter!(FX_CHECKPOINTS, "outcome" => "signed").increment(1);
            tracing::info!(seq = cp.seq, key_id = %cp.key_id, "FX log checkpoint signed");
        }
        Ok(None) => {}
        Err(e) => {
            metrics::counter!(FX_CHECKPOINTS, "outcome" => "failed").increment(1);
            tracing::warn!(error = %e, "signing an FX log checkpoint failed; will retry");
        }
    }
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
