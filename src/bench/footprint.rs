//! `crossgate bench footprint`: the bytes a store keeps per order. The daemon runs as its own
//! process, as in production (embedded with fsync, or Redis); it takes two batches of signed
//! Shopify orders (the 18 KB 2024-04 order, a distinct id each) through its webhook, and after
//! each batch waits until the FX, tax and payments consumers have caught up. The second batch
//! is what is reported, so what an empty store allocates once does not count:
//! - embedded: the growth of the pages redb's trees hold (also the file's growth, which moves
//!   in steps as redb grows it, and the keys and values stored);
//! - Redis: the growth of `MEMORY USAGE` summed over the run's keys (`SAMPLES 0`: every
//!   element counted), by kind of key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;

use crossgate::fx::FX_GROUP;
use crossgate::payments::PAYMENTS_GROUP;
use crossgate::tax::TAX_GROUP;
use crossgate::telemetry::names::CONSUMER_LAG_EVENTS;

use super::{
    DEFAULT_PAYLOAD, HttpClient, Template, free_port, gateway_config, redis_url, remove_bench_keys,
    repo_adapters, send_one, spawn_daemon, wait_healthy,
};

#[derive(Args)]
pub struct FootprintArgs {
    /// Orders in each of the two batches (the second is measured).
    #[arg(long, default_value_t = 2000)]
    orders: u64,
    /// Stores to measure: embedded, redis.
    #[arg(long, default_value = "embedded,redis", value_delimiter = ',')]
    stores: Vec<String>,
    /// A Redis the run may write to (its keys go under a prefix of their own and are removed).
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Order payload; its order id is replaced by a distinct one per request.
    #[arg(long, default_value = DEFAULT_PAYLOAD)]
    payload: PathBuf,
    /// The daemon binary to measure (default: this one; another build compares formats).
    #[arg(long)]
    daemon: Option<PathBuf>,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

/// What one store keeps per order.
#[derive(Debug, Serialize)]
struct Footprint {
    store: String,
    orders: u64,
    payload_bytes: usize,
    bytes_per_order: f64,
    /// Redis: bytes per order by kind of key (`raw`, `rec`, `events`, …); embedded: the file,
    /// the pages allocated and the keys and values stored.
    by_kind: BTreeMap<String, f64>,
}

pub async fn run(config_path: &Path, args: FootprintArgs) -> Result<()> {
    let adapters = repo_adapters(config_path)?;
    let template = Template::load(&args.payload)?;
    let payload_bytes = template.render(1).len();
    let mut out = Vec::new();
    for store in &args.stores {
        if store != "embedded" && store != "redis" {
            bail!("--stores: unknown store {store} (embedded, redis)");
        }
        out.push(measure(store, &args, &adapters, &template, payload_bytes).await?);
    }
    if args.json {
        crossgate::outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    crossgate::outln!(
        "stored bytes per order (the second of two batches of {} orders of {} bytes)",
        args.orders,
        payload_bytes
    );
    for f in &out {
        crossgate::outln!(
            "{:<9} {:>8.0} bytes/order ({:.2}× the payload)",
            f.store,
            f.bytes_per_order,
            f.bytes_per_order / f.payload_bytes as f64
        );
        for (kind, bytes) in &f.by_kind {
            crossgate::outln!("          {kind:<24} {bytes:>8.0}");
        }
    }
    Ok(())
}

async fn measure(
    store: &str,
    args: &FootprintArgs,
    adapters: &Path,
    template: &Template,
    payload_bytes: usize,
) -> Result<Footprint> {
    let dir = tempfile::tempdir()?;
    let secret = format!("footprint-{}", std::process::id());
    let prefix = format!("footprint{}", std::process::id());
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let cfg = gateway_config(
        dir.path(),
        adapters,
        port,
        store,
        &redis_url(&args.redis_url),
        &prefix,
        "[jobs]\nevery_secs = 0\n",
    )?;
    let exe = match &args.daemon {
        Some(path) => path.clone(),
        None => std::env::current_exe()?,
    };
    let redis = redis::Client::open(args.redis_url.as_str())?;
    let db = dir.path().join("bench.redb");
    let url: hyper::Uri = format!("{base}/webhooks/bench").parse()?;
    let client = Arc::new(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http(),
    );
    let mut sizes = Vec::new();
    for batch in 0..2 {
        // The daemon stops between batches: redb's own accounting needs the file to itself.
        let mut child = spawn_daemon(&exe, &cfg, &secret)?;
        wait_healthy(&base).await?;
        let first = 1 + batch * args.orders;
        send_batch(&client, &url, template, &secret, first, args.orders).await?;
        drained(&base).await?;
        stop(&mut child).await?;
        sizes.push(if store == "embedded" {
            redb_usage(&db)?
        } else {
            redis_usage(&redis, &prefix).await?
        });
    }
    if store == "redis" {
        remove_bench_keys(&args.redis_url, &prefix).await;
    }
    let (before, after) = (&sizes[0], &sizes[1]);
    let n = args.orders as f64;
    let grew = |k: &str| {
        (after.get(k).copied().unwrap_or(0) as f64 - before.get(k).copied().unwrap_or(0) as f64) / n
    };
    let by_kind: BTreeMap<String, f64> = after
        .keys()
        .map(|k| (k.clone(), grew(k)))
        .filter(|(_, v)| v.abs() >= 0.5)
        .collect();
    // redb: the pages its trees hold (what the file converges to as freed pages are reused);
    // Redis: every key of the run.
    let bytes_per_order = if store == "embedded" {
        grew(REDB_ALLOCATED)
    } else {
        by_kind.values().sum()
    };
    Ok(Footprint {
        store: store.to_string(),
        orders: args.orders,
        payload_bytes,
        bytes_per_order,
        by_kind,
    })
}

/// Stops the daemon as a service manager does (SIGTERM), so redb closes its file cleanly.
async fn stop(child: &mut tokio::process::Child) -> Result<()> {
    let pid = child.id().context("the daemon's pid")?;
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
        Ok(status) => {
            status?;
        }
        Err(_) => {
            child.start_kill()?;
            child.wait().await?;
        }
    }
    Ok(())
}

const REDB_ALLOCATED: &str = "allocated pages";

/// The redb file's size, the pages its trees hold, and the keys and values stored in them.
fn redb_usage(path: &Path) -> Result<BTreeMap<String, u64>> {
    let file = std::fs::metadata(path)?.len();
    let db = redb::Database::open(path).context("opening the daemon's redb file")?;
    let stats = db.begin_write()?.stats()?;
    Ok(BTreeMap::from([
        ("file".to_string(), file),
        (
            REDB_ALLOCATED.to_string(),
            stats.allocated_pages() * stats.page_size() as u64,
        ),
        ("stored keys and values".to_string(), stats.stored_bytes()),
    ]))
}

/// Sends orders `first..first + n`, 16 at a time; every one must be acknowledged.
async fn send_batch(
    client: &Arc<HttpClient>,
    url: &hyper::Uri,
    template: &Template,
    secret: &str,
    first: u64,
    n: u64,
) -> Result<()> {
    let ids: Vec<u64> = (first..first + n).collect();
    for chunk in ids.chunks(16) {
        let sends = chunk
            .iter()
            .map(|&id| send_one(client, url, template, secret, 3_000_000_000 + id));
        for status in futures_util::future::join_all(sends).await {
            let status = status?;
            if !(200..300).contains(&status) {
                bail!("the daemon answered {status} to an order");
            }
        }
    }
    Ok(())
}

/// Waits until the FX, tax and payments consumers have read every event.
async fn drained(base: &str) -> Result<()> {
    let http = reqwest::Client::new();
    for _ in 0..600 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        let lag = |group: &str| {
            let head = format!("{CONSUMER_LAG_EVENTS}{{group=\"{group}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&head))
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        let groups = [FX_GROUP, TAX_GROUP, PAYMENTS_GROUP];
        if groups.iter().all(|g| lag(g) == Some(0.0)) {
            // The gauges are sampled every second: wait for a second sample to agree.
            tokio::time::sleep(Duration::from_millis(1100)).await;
            return Ok(());
        }
    }
    bail!("the consumers did not catch up within 5 minutes")
}

async fn scan(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

/// `MEMORY USAGE` of every key of the run, summed by kind (`raw`, `rec`, `events`, `{fx}:log`…).
async fn redis_usage(client: &redis::Client, prefix: &str) -> Result<BTreeMap<String, u64>> {
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .context("connecting to Redis")?;
    let keys = scan(&mut conn, prefix).await?;
    let mut out = BTreeMap::new();
    for chunk in keys.chunks(500) {
        let mut pipe = redis::pipe();
        for k in chunk {
            pipe.cmd("MEMORY").arg("USAGE").arg(k).arg("SAMPLES").arg(0);
        }
        let sizes: Vec<Option<u64>> = pipe.query_async(&mut conn).await?;
        for (k, size) in chunk.iter().zip(sizes) {
            *out.entry(kind_of(k, prefix)).or_default() += size.unwrap_or(0);
        }
    }
    Ok(out)
}

/// `P:{bench}:raw:<id>` → `raw`; `P:{fx}:view:<order>` → `{fx}:view`.
fn kind_of(key: &str, prefix: &str) -> String {
    let rest = key
        .strip_prefix(prefix)
        .unwrap_or(key)
        .trim_start_matches(':');
    let mut parts = rest.splitn(3, ':');
    let tag = parts.next().unwrap_or_default();
    let name = parts.next().unwrap_or_default();
    if tag == "{bench}" {
        name.to_string()
    } else {
        format!("{tag}:{name}")
    }
}
