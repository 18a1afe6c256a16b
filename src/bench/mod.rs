//! `crossgate bench`: load tools for the ingest path.
//!
//! - `load`: sends signed Shopify order deliveries (the 18 KB 2024-04 order, a distinct order id
//!   per request) to a URL, closed-loop (N workers, as fast as answers come) or open-loop at a
//!   fixed rate (latency measured from the scheduled send time, so no coordinated omission).
//!   With `--verify` it then checks every acknowledged order is stored.
//! - `ingest`: runs the whole comparison in one go (same load tool, same payload): the baseline
//!   (`benches/baseline-server`, a bare axum receiver that checks the HMAC and parses the JSON,
//!   built as its own crate so it gets serde_json's default features), crossgate on Redis and
//!   crossgate embedded, each as its own process. `benches/ingest-ratio.sh` builds and runs it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use base64::Engine;
use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use tokio::sync::Mutex;

use crossgate::adapter::signature::hmac_sha256;

mod cluster;
mod console;
mod drain;
mod footprint;
mod fx;
mod hostile;
mod outbox;
use crossgate::model::OrderId;
pub use fx::FxArgs;

const DEFAULT_PAYLOAD: &str = "../shared/fixtures/shopify/rest-2024-04-order-get-450789469.json";
const ORDER_ID_TOKEN: &str = "450789469";

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Send signed Shopify order deliveries to a webhook URL; report throughput and latency.
    Load(LoadArgs),
    /// Compare, in one run: baseline vs crossgate (Redis) vs crossgate (embedded).
    Ingest(IngestArgs),
    /// FX: conversions per second (pure) and FX-log appends per second on Redis.
    Fx(FxArgs),
    /// Signed deliveries at a fixed rate while hostile clients post unsigned, costly XML bodies.
    Hostile(hostile::HostileArgs),
    /// Stock updates through the outbox to a mock Shopify it starts: commands per second,
    /// channel requests, coalescing, time to drain (`--rate` for a channel quota).
    Outbox(outbox::OutboxArgs),
    /// 1, 2 and 3 replicas on a Redis Cluster it starts (3 masters, 3 replicas, AOF always):
    /// throughput, p99 and CPU per delivery.
    Cluster(cluster::ClusterArgs),
    /// The console's pages timed in the server on an embedded store of `--orders` converted
    /// orders (100,000 by default).
    Console(console::ConsoleArgs),
    /// The FX and tax jobs draining a backlog: one commit per order against one per batch,
    /// on the embedded store and on Redis.
    Drain(drain::DrainArgs),
    /// Bytes stored per order on each store, after the background consumers caught up (Redis:
    /// by kind of key).
    Footprint(footprint::FootprintArgs),
}

#[derive(Args, Clone)]
pub struct LoadArgs {
    /// Webhook URL, e.g. http://127.0.0.1:8080/webhooks/shopify-main; several, comma-separated,
    /// spread the requests over replicas (request i goes to URL i mod n).
    #[arg(long, value_delimiter = ',', required = true)]
    url: Vec<String>,
    /// Shopify webhook secret the target expects.
    #[arg(long, env = "BENCH_SECRET", default_value = "bench-secret")]
    secret: String,
    /// Order payload; its order id is replaced by a distinct one per request.
    #[arg(long, default_value = DEFAULT_PAYLOAD)]
    payload: PathBuf,
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Workers in closed-loop mode; most requests outstanding in open-loop mode.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Open loop: send this many requests per second.
    #[arg(long)]
    rate: Option<u64>,
    /// After the run, check every acknowledged order through GET /v1/orders/{id}.
    #[arg(long)]
    verify: bool,
    /// First order id used (later runs should start elsewhere).
    #[arg(long, default_value_t = 1_000_000_000)]
    id_base: u64,
}

#[derive(Args)]
pub struct IngestArgs {
    /// Seconds of closed-loop (maximum throughput) load per target.
    #[arg(long, default_value_t = 20)]
    duration_secs: u64,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Rate of the steady open-loop phase (orders/s).
    #[arg(long, default_value_t = 2000)]
    steady_rate: u64,
    #[arg(long, default_value_t = 20)]
    steady_secs: u64,
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    #[arg(long, default_value = DEFAULT_PAYLOAD)]
    payload: PathBuf,
    /// Also write the results as JSON here.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// The baseline receiver binary (built from benches/baseline-server).
    #[arg(long, default_value = "target/baseline-server/release/baseline-server")]
    baseline_bin: PathBuf,
    /// Which targets to run, comma-separated: baseline, redis, embedded.
    #[arg(long, default_value = "baseline,redis,embedded", value_delimiter = ',')]
    targets: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub target: String,
    pub mode: String,
    pub sent: u64,
    pub ok: u64,
    pub non_2xx: u64,
    pub transport_errors: u64,
    pub seconds: f64,
    pub orders_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Acknowledged but not found afterwards (only with --verify).
    pub lost: Option<u64>,
    /// CPU seconds the target process used during the phase (only in `ingest`).
    pub target_cpu_secs: Option<f64>,
}

pub async fn run(config_path: &Path, cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Load(args) => {
            let report = load(&args, "target").await?;
            print_reports(&[report]);
            Ok(())
        }
        BenchCommand::Ingest(args) => ingest(config_path, args).await,
        BenchCommand::Fx(args) => fx::run(args).await,
        BenchCommand::Hostile(args) => hostile::run(config_path, args).await,
        BenchCommand::Cluster(args) => cluster::run(config_path, args).await,
        BenchCommand::Outbox(args) => outbox::run(args).await,
        BenchCommand::Console(args) => console::run(args).await,
        BenchCommand::Drain(args) => drain::run(args).await,
        BenchCommand::Footprint(args) => footprint::run(config_path, args).await,
    }
}

// ---------------------------------------------------------------------------------------------
// Load generator
// ---------------------------------------------------------------------------------------------

/// The payload split around its order id, so each request gets a distinct one cheaply.
struct Template {
    prefix: Vec<u8>,
    suffix: Vec<u8>,
}

impl Template {
    fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let text = String::from_utf8(bytes).context("payload is not UTF-8")?;
        let at = text
            .find(ORDER_ID_TOKEN)
            .with_context(|| format!("payload has no order id {ORDER_ID_TOKEN} to vary"))?;
        Ok(Self {
            prefix: text.as_bytes()[..at].to_vec(),
            suffix: text.as_bytes()[at + ORDER_ID_TOKEN.len()..].to_vec(),
        })
    }

    fn render(&self, id: u64) -> Vec<u8> {
        let id = id.to_string();
        let mut out = Vec::with_capacity(self.prefix.len() + id.len() + self.suffix.len());
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&self.suffix);
        out
    }
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    ok: u64,
    non_2xx: u64,
    errors: u64,
    acked: Vec<u64>,
}

async fn send_one(
    client: &HttpClient,
    url: &hyper::Uri,
    template: &Template,
    secret: &str,
    id: u64,
) -> Result<u16> {
    let body = template.render(id);
    let sig =
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256(secret.as_bytes(), &[&body]));
    let req = hyper::Request::post(url.clone())
        .header("content-type", "application/json")
        .header("x-shopify-topic", "orders/create")
        .header("x-shopify-hmac-sha256", sig)
        .header("x-shopify-webhook-id", format!("bench-{id}"))
        .body(Full::new(Bytes::from(body)))?;
    let resp = client.request(req).await?;
    let status = resp.status().as_u16();
    resp.into_body().collect().await?;
    Ok(status)
}

fn record(t: &mut Tally, started: Instant, status: Result<u16>, id: u64) {
    t.latencies_us
        .push(started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
    match status {
        Ok(s) if (200..300).contains(&s) => {
            t.ok += 1;
            t.acked.push(id);
        }
        Ok(_) => t.non_2xx += 1,
        Err(_) => t.errors += 1,
    }
}

pub async fn load(args: &LoadArgs, target: &str) -> Result<LoadReport> {
    let template = Arc::new(Template::load(&args.payload)?);
    let urls: Arc<Vec<hyper::Uri>> = Arc::new(
        args.url
            .iter()
            .map(|u| u.parse().context("--url"))
            .collect::<Result<_>>()?,
    );
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(args.concurrency.max(1) * 2)
        .build_http();
    let next = Arc::new(AtomicU64::new(args.id_base));
    let secret: Arc<str> = args.secret.clone().into();
    let duration = Duration::from_secs(args.duration_secs);
    let started = Instant::now();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mode;
    match args.rate {
        None => {
            mode = format!("closed loop, {} workers", args.concurrency);
            let deadline = started + duration;
            let mut workers = Vec::new();
            for _ in 0..args.concurrency {
                let (client, urls, template, next, secret, tally) = (
                    client.clone(),
                    urls.clone(),
                    template.clone(),
                    next.clone(),
                    secret.clone(),
                    tally.clone(),
                );
                workers.push(tokio::spawn(async move {
                    let mut local = Tally::default();
                    while Instant::now() < deadline {
                        let id = next.fetch_add(1, Ordering::Relaxed);
                        let t0 = Instant::now();
                        let url = &urls[(id % urls.len() as u64) as usize];
                        let status = send_one(&client, url, &template, &secret, id).await;
                        record(&mut local, t0, status, id);
                    }
                    let mut t = tally.lock().await;
                    t.latencies_us.extend(local.latencies_us);
                    t.acked.extend(local.acked);
                    t.ok += local.ok;
                    t.non_2xx += local.non_2xx;
                    t.errors += local.errors;
                }));
            }
            for w in workers {
                w.await?;
            }
        }
        Some(rate) => {
            mode = format!("open loop, {rate}/s");
            let outstanding = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1) * 64));
            let total = rate * args.duration_secs;
            let mut tasks = Vec::with_capacity(total as usize);
            for i in 0..total {
                let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
                tokio::time::sleep_until(due.into()).await;
                let Ok(permit) = outstanding.clone().try_acquire_owned() else {
                    tally.lock().await.errors += 1;
                    continue;
                };
                let (client, urls, template, next, secret, tally) = (
                    client.clone(),
                    urls.clone(),
                    template.clone(),
                    next.clone(),
                    secret.clone(),
                    tally.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    let id = next.fetch_add(1, Ordering::Relaxed);
                    let url = &urls[(id % urls.len() as u64) as usize];
                    let status = send_one(&client, url, &template, &secret, id).await;
                    // Latency from when the request was due, not when it was sent.
                    let mut t = tally.lock().await;
                    record(&mut t, due, status, id);
                    drop(permit);
                }));
            }
            for t in tasks {
                t.await?;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut t = std::mem::take(&mut *tally.lock().await);
    t.latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if t.latencies_us.is_empty() {
            return 0.0;
        }
        let idx = ((t.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(t.latencies_us[idx]) / 1000.0
    };
    let lost = if args.verify {
        // Any replica answers for all of them.
        Some(verify(&args.url[0], &t.acked).await?)
    } else {
        None
    };
    Ok(LoadReport {
        target: target.to_string(),
        mode,
        sent: t.ok + t.non_2xx + t.errors,
        ok: t.ok,
        non_2xx: t.non_2xx,
        transport_errors: t.errors,
        seconds,
        orders_per_sec: t.ok as f64 / seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: pct(1.0),
        lost,
        target_cpu_secs: None,
    })
}

/// Counts acknowledged orders that the gateway cannot return.
async fn verify(webhook_url: &str, acked: &[u64]) -> Result<u64> {
    let (base, instance) = webhook_url
        .rsplit_once("/webhooks/")
        .context("the URL must end in /webhooks/{instance} to verify")?;
    let http = reqwest::Client::new();
    let lost = Arc::new(AtomicU64::new(0));
    let sem = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = Vec::with_capacity(acked.len());
    for id in acked {
        let url = format!(
            "{base}/v1/orders/{}",
            OrderId::derive(instance, &id.to_string())
        );
        let (http, lost, permit) = (
            http.clone(),
            lost.clone(),
            sem.clone().acquire_owned().await?,
        );
        tasks.push(tokio::spawn(async move {
            let found = matches!(http.get(&url).send().await, Ok(r) if r.status() == 200);
            if !found {
                lost.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
        }));
    }
    for t in tasks {
        t.await?;
    }
    Ok(lost.load(Ordering::Relaxed))
}

pub fn print_reports(reports: &[LoadReport]) {
    crossgate::outln!(
        "{:<22} {:<26} {:>9} {:>8} {:>7} {:>10} {:>8} {:>8} {:>8} {:>6} {:>8}",
        "target",
        "mode",
        "sent",
        "2xx",
        "other",
        "orders/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "lost",
        "cpu s"
    );
    for r in reports {
        crossgate::outln!(
            "{:<22} {:<26} {:>9} {:>8} {:>7} {:>10.0} {:>8.2} {:>8.2} {:>8.1} {:>6} {:>8}",
            r.target,
            r.mode,
            r.sent,
            r.ok,
            r.non_2xx + r.transport_errors,
            r.orders_per_sec,
            r.p50_ms,
            r.p99_ms,
            r.max_ms,
            r.lost.map(|l| l.to_string()).unwrap_or_else(|| "-".into()),
            r.target_cpu_secs
                .map(|c| format!("{c:.1}"))
                .unwrap_or_else(|| "-".into()),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The whole comparison
// ---------------------------------------------------------------------------------------------

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// utime + stime of a process, in seconds (Linux /proc).
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

struct Target {
    name: &'static str,
    child: tokio::process::Child,
    url: String,
    verify: bool,
}

/// Leaves a shared Redis as the benchmark found it: removes every key under `prefix` (with the
/// store's own `flush_prefix`), warning when it cannot.
async fn remove_bench_keys(redis_url: &str, prefix: &str) {
    let cleanup =
        crossgate::backend::redis::RedisStore::connect(crossgate::backend::redis::RedisOptions {
            target: crossgate::backend::redis::Target::Node(redis_url.to_string()),
            prefix: prefix.to_string(),
            timeout: Duration::from_secs(30),
            ..Default::default()
        })
        .await;
    match cleanup {
        Ok((store, _)) => match store.flush_prefix().await {
            Ok(n) => eprintln!("removed {n} benchmark keys from Redis"),
            Err(e) => eprintln!("warning: could not remove benchmark keys {prefix}:*: {e}"),
        },
        Err(e) => eprintln!("warning: could not remove benchmark keys {prefix}:*: {e}"),
    }
}

/// Starts a crossgate daemon on `cfg` as its own process (its stderr shown; killed when
/// dropped), with the benchmark's webhook secret.
fn spawn_daemon(exe: &Path, cfg: &Path, secret: &str) -> Result<tokio::process::Child> {
    tokio::process::Command::new(exe)
        .env("BENCH_SECRET", secret)
        .arg("--config")
        .arg(cfg)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))
}

async fn wait_healthy(base: &str) -> Result<()> {
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{base} did not become healthy")
}

/// The measured gateway's config: one Shopify instance `bench`, plus `extra` TOML (more
/// instances, a `[jobs]` table). `redis` is the store's Redis lines (see [`redis_url`]).
fn gateway_config(
    dir: &Path,
    adapters: &Path,
    port: u16,
    backend: &str,
    redis: &str,
    prefix: &str,
    extra: &str,
) -> Result<PathBuf> {
    let text = format!(
        r#"environment = "development"
adapters_dir = "{adapters}"
[server]
listen = "127.0.0.1:{port}"
max_in_flight = 4096
[store]
backend = "{backend}"
path = "{db}"
{redis}
redis_prefix = "{prefix}"
[log]
level = "warn"
[[instance]]
id = "bench"
adapter = "shopify"
account = "bench.myshopify.com"
secrets = {{ webhook = "${{BENCH_SECRET}}" }}
{extra}"#,
        adapters = adapters.display(),
        db = dir.join("bench.redb").display(),
    );
    let file = dir.join(format!("gateway-{backend}-{port}.toml"));
    std::fs::write(&file, text)?;
    Ok(file)
}

/// The `[store]` line of one Redis server.
fn redis_url(url: &str) -> String {
    format!("redis_url = \"{url}\"")
}

/// The `adapters/` directory of the repository whose config is `config_path`.
fn repo_adapters(config_path: &Path) -> Result<PathBuf> {
    let repo = config_path
        .parent()
        .map(|p| p.join(".."))
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::canonicalize(repo.join("adapters")).context("finding adapters/")
}

async fn ingest(config_path: &Path, args: IngestArgs) -> Result<()> {
    let exe = std::env::current_exe()?;
    let adapters = repo_adapters(config_path)?;
    let dir = tempfile::tempdir()?;
    let secret = format!("bench-secret-{}", std::process::id());
    let prefix = format!("bench{}", std::process::id());
    let mut reports = Vec::new();
    let mut next_id = 2_000_000_000u64;
    let wanted = |t: &str| args.targets.iter().any(|x| x == t);
    let names: Vec<&'static str> = [
        ("baseline", "baseline (bare axum)"),
        ("redis", "crossgate redis"),
        ("embedded", "crossgate embedded"),
    ]
    .into_iter()
    .filter(|(key, _)| wanted(key))
    .map(|(_, name)| name)
    .collect();
    for name in names {
        let port = free_port()?;
        let base = format!("http://127.0.0.1:{port}");
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.env("BENCH_SECRET", &secret)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let (child, verify) = match name {
            "baseline (bare axum)" => {
                let mut base_cmd = tokio::process::Command::new(&args.baseline_bin);
                base_cmd
                    .env("BENCH_SECRET", &secret)
                    .args(["--listen", &format!("127.0.0.1:{port}")])
                    .stdout(Stdio::null())
                    .kill_on_drop(true);
                let child = base_cmd.spawn().with_context(|| {
                    format!(
                        "starting {} (build it: cargo build --release --manifest-path \
                         benches/baseline-server/Cargo.toml --target-dir target/baseline-server)",
                        args.baseline_bin.display()
                    )
                })?;
                (child, false)
            }
            _ => {
                let backend = if name.contains("redis") {
                    "redis"
                } else {
                    "embedded"
                };
                let cfg = gateway_config(
                    dir.path(),
                    &adapters,
                    port,
                    backend,
                    &redis_url(&args.redis_url),
                    &prefix,
                    "",
                )?;
                (cmd.arg("--config").arg(&cfg).arg("serve").spawn()?, true)
            }
        };
        let mut target = Target {
            name,
            child,
            url: format!("{base}/webhooks/bench"),
            verify,
        };
        wait_healthy(&base).await?;
        let pid = target.child.id().context("child pid")?;
        let phase = |duration_secs, rate: Option<u64>, id_base| LoadArgs {
            url: vec![target.url.clone()],
            secret: secret.clone(),
            payload: args.payload.clone(),
            duration_secs,
            concurrency: args.concurrency,
            rate,
            verify: target.verify,
            id_base,
        };
        // Warm-up (not reported).
        load(
            &LoadArgs {
                verify: false,
                ..phase(3, None, next_id)
            },
            name,
        )
        .await?;
        next_id += 10_000_000;
        for rate in [None, Some(args.steady_rate)] {
            let secs = if rate.is_some() {
                args.steady_secs
            } else {
                args.duration_secs
            };
            let cpu0 = cpu_secs(pid);
            let mut r = load(&phase(secs, rate, next_id), target.name).await?;
            r.target_cpu_secs = cpu0.zip(cpu_secs(pid)).map(|(a, b)| b - a);
            next_id += 100_000_000;
            eprintln!(
                "{}: {} -> {:.0} orders/s, p99 {:.2} ms",
                r.target, r.mode, r.orders_per_sec, r.p99_ms
            );
            reports.push(r);
        }
        let _ = target.child.start_kill();
        let _ = target.child.wait().await;
    }
    if wanted("redis") {
        remove_bench_keys(&args.redis_url, &prefix).await;
    }
    crossgate::outln!();
    print_reports(&reports);
    let closed = |t: &str| {
        reports
            .iter()
            .find(|r| r.target == t && r.mode.starts_with("closed"))
            .map(|r| r.orders_per_sec)
    };
    if let (Some(b), Some(r), Some(e)) = (
        closed("baseline (bare axum)"),
        closed("crossgate redis"),
        closed("crossgate embedded"),
    ) {
        crossgate::outln!();
        crossgate::outln!("crossgate redis    / baseline = {:.0} %", 100.0 * r / b);
        crossgate::outln!("crossgate embedded / baseline = {:.0} %", 100.0 * e / b);
    }
    if let Some(path) = args.json_out {
        std::fs::write(&path, serde_json::to_string_pretty(&reports)?)?;
    }
    Ok(())
}
