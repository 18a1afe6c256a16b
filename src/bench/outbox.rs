//! `crossgate bench outbox`: commands through the outbox to a channel, end to end.
//!
//! Starts, in this process, a mock Shopify inventory endpoint on loopback (it answers at once)
//! and the daemon on a store of its own (embedded with fsync per write, as production runs, or
//! Redis), with the shipped Shopify adapter whose declared rate is replaced by `--rate` (or
//! removed). It registers `--listings` listings, then sends `--commands` stock updates
//! (`PATCH /v1/listings/{id}`, closed loop) spread over them, and waits until the mock holds
//! the last level of every listing and the outbox is empty. It reports commands accepted per
//! second, channel requests per second, how many commands were coalesced, and the time to
//! drain.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};

#[derive(Args, Clone)]
pub struct OutboxArgs {
    /// Stock updates to send.
    #[arg(long, default_value_t = 2000)]
    commands: usize,
    /// Listings they are spread over (round robin).
    #[arg(long, default_value_t = 200)]
    listings: usize,
    /// The channel's rate (requests per second) the adapter declares; none: no limit.
    #[arg(long)]
    rate: Option<f64>,
    /// Concurrent API clients sending commands (each drives its own listings).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The shipped adapters (the Shopify one is copied with its rate replaced).
    #[arg(long, default_value = "adapters")]
    adapters: PathBuf,
    /// Run on Redis (a fresh key prefix, removed afterwards) instead of the embedded store.
    #[arg(long)]
    redis_url: Option<String>,
}

/// What the mock channel saw: requests, and the last level per inventory item.
#[derive(Default)]
struct Seen {
    requests: u64,
    levels: BTreeMap<u64, i64>,
}

async fn mock_channel(seen: Arc<Mutex<Seen>>) -> Result<String> {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/admin/api/2024-04/inventory_levels/set.json",
        post(move |axum::Json(b): axum::Json<Value>| {
            let seen = seen.clone();
            async move {
                let mut s = seen.lock().expect("mock lock");
                s.requests += 1;
                let item = b["inventory_item_id"].as_u64().unwrap_or(0);
                let level = b["available"].as_i64().unwrap_or(-1);
                s.levels.insert(item, level);
                axum::Json(json!({ "inventory_level": b }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

/// The gateway config of the run, with its Shopify adapter at `rate`.
fn write_config(
    args: &OutboxArgs,
    dir: &std::path::Path,
    mock: &str,
    prefix: &str,
) -> Result<PathBuf> {
    let adapters = dir.join("adapters");
    std::fs::create_dir_all(&adapters)?;
    let shopify = std::fs::read_to_string(args.adapters.join("shopify.toml"))
        .with_context(|| format!("reading {}/shopify.toml", args.adapters.display()))?;
    let rate = match args.rate {
        Some(r) => format!("rate_limit = {{ per_second = {r:.3}, burst = 1 }}"),
        None => String::new(),
    };
    let shopify: String = shopify
        .lines()
        .map(|l| {
            if l.starts_with("rate_limit = ") {
                rate.clone()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(adapters.join("shopify.toml"), shopify)?;
    let store = match &args.redis_url {
        Some(url) => {
            format!("backend = \"redis\"\nredis_url = \"{url}\"\nredis_prefix = \"{prefix}\"")
        }
        None => format!(
            "backend = \"embedded\"\npath = \"{}\"",
            dir.join("bench.redb").display()
        ),
    };
    let text = format!(
        "adapters_dir = \"{}\"\n[server]\nlisten = \"127.0.0.1:0\"\nmax_in_flight = 4096\n[store]\n{store}\n[log]\nlevel = \"warn\"\n[[instance]]\nid = \"shop\"\nadapter = \"shopify\"\naccount = \"bench.myshopify.com\"\nsecrets = {{ webhook = \"${{BENCH_WEBHOOK}}\", access_token = \"${{BENCH_TOKEN}}\" }}\nsettings = {{ api_base = \"{mock}/admin/api/2024-04\", location_id = \"1\" }}\n",
        adapters.display()
    );
    let file = dir.join("gateway.toml");
    std::fs::write(&file, text)?;
    Ok(file)
}

pub async fn run(args: OutboxArgs) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mock = mock_channel(seen.clone()).await?;
    let prefix = format!("bench-outbox-{}", uuid::Uuid::now_v7().simple());
    let config_file = write_config(&args, dir.path(), &mock, &prefix)?;
    let env: std::collections::HashMap<String, String> = [
        ("BENCH_WEBHOOK", "bench-webhook-secret"),
        ("BENCH_TOKEN", "bench-token"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = Arc::new(
        crossgate::config::Config::load_with_env(&config_file, &env)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let (store, _) = crossgate::backend::open(&config.store).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon_store = store.clone();
    let daemon = tokio::spawn(async move {
        crossgate::with_store!(daemon_store, s => crossgate::daemon::run(s, config, listener, async { let _ = stopped.await; }).await)
    });
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let ids = register_listings(&http, &base, args.listings).await?;
    let report = drive(&args, &http, &base, &ids, &seen).await;
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), daemon).await;
    if let crossgate::backend::AnyStore::Redis(r) = store {
        r.flush_prefix().await?;
    }
    let report = report?;
    crossgate::outln!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// Registers the listings (canonical listings, stock item = its number); their ids.
async fn register_listings(http: &reqwest::Client, base: &str, n: usize) -> Result<Vec<String>> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let listing = json!({"external_id": format!("{}", 10_000 + i), "revision": {"updated_at": "2026-01-01T00:00:00Z"}, "sku": format!("BENCH-{i}"), "title": "bench", "stock_ref": format!("{}", 1 + i), "status": "active"});
        let r = http
            .post(format!("{base}/v1/instances/shop/listings"))
            .json(&listing)
            .send()
            .await?;
        if r.status() != 200 {
            bail!("registering a listing: {}", r.text().await?);
        }
        ids.push(
            crossgate::model::ListingId::derive("shop", &format!("{}", 10_000 + i))
                .as_str()
                .to_string(),
        );
    }
    Ok(ids)
}

async fn drive(
    args: &OutboxArgs,
    http: &reqwest::Client,
    base: &str,
    ids: &[String],
    seen: &Arc<Mutex<Seen>>,
) -> Result<Value> {
    let started = Instant::now();
    let mut workers = Vec::new();
    // Each worker drives its own listings (n mod listings ≡ worker mod concurrency), so the
    // levels of one listing are accepted in the order of n and its last level is known.
    let workers_n = args.concurrency.min(ids.len()).max(1);
    for w in 0..workers_n {
        let (http, base, ids, total) =
            (http.clone(), base.to_string(), ids.to_vec(), args.commands);
        workers.push(tokio::spawn(async move {
            for n in (0..total).filter(|n| (n % ids.len()) % workers_n == w) {
                let id = &ids[n % ids.len()];
                let r = http
                    .patch(format!("{base}/v1/listings/{id}"))
                    .json(&json!({"stock": n}))
                    .send()
                    .await?;
                if r.status() != 202 {
                    bail!("a command was refused: {}", r.text().await?);
                }
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    for w in workers {
        w.await??;
    }
    let accepted_secs = started.elapsed().as_secs_f64();
    // The last level sent to each listing (the highest n for it).
    let want: BTreeMap<u64, i64> = (0..args.commands)
        .map(|n| ((n % ids.len()) as u64 + 1, n as i64))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let done = seen.lock().expect("mock lock").levels == want;
        if done {
            break;
        }
        if Instant::now() > deadline {
            bail!("the outbox did not drain within an hour");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained_secs = started.elapsed().as_secs_f64();
    let requests = seen.lock().expect("mock lock").requests;
    Ok(json!({
        "store": if args.redis_url.is_some() { "redis" } else { "embedded" },
        "channel_rate_per_second": args.rate,
        "commands": args.commands,
        "listings": args.listings,
        "accepted_per_second": (args.commands as f64 / accepted_secs).round(),
        "channel_requests": requests,
        "coalesced": args.commands as u64 - requests.min(args.commands as u64),
        "drained_after_secs": (drained_secs * 100.0).round() / 100.0,
        "commands_delivered_per_second": (args.commands as f64 / drained_secs).round(),
        "channel_requests_per_second": ((requests as f64 / drained_secs) * 100.0).round() / 100.0,
    }))
}
