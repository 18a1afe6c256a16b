//! `crossgate bench tax`: the tax job draining a backlog of orders, one commit per order (how
//! the job stored quotes before) against one commit per batch (how it does now), on a fresh
//! embedded store (fsync on, as in production) and on Redis, alternating, in one run.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use clap::Args;

use crossgate::fx::book::RateBook;
use crossgate::model::Record;
use crossgate::tax::{TAX_GROUP, TaxJob};

#[derive(Args)]
pub struct TaxArgs {
    /// Orders in the backlog (app orders to Japan, quoted from a Chinese seller).
    #[arg(long, default_value_t = 2000)]
    orders: usize,
    /// Runs of each mode per store (alternating; the median is reported).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Stores to run on: embedded, redis.
    #[arg(long, default_value = "embedded,redis", value_delimiter = ',')]
    stores: Vec<String>,
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
}

/// How the drain commits its quotes.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    OneByOne,
    Batched,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::OneByOne => "one commit per order",
            Mode::Batched => "one commit per batch",
        }
    }
}

fn config(
    dir: &Path,
    store: &str,
    redis_url: &str,
    prefix: &str,
) -> Result<crossgate::config::Config> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let file = dir.join("gateway.toml");
    std::fs::write(
        &file,
        format!(
            "adapters_dir = \"{adapters}\"\n[server]\nlisten = \"127.0.0.1:0\"\n[log]\nlevel = \"warn\"\n[store]\nbackend = \"{store}\"\npath = \"{db}\"\nredis_url = \"{redis_url}\"\nredis_prefix = \"{prefix}\"\n[tax]\nrules_dir = \"{rules}\"\nseller_country = \"CN\"\n[jobs]\nevery_secs = 0\n[[instance]]\nid = \"bench\"\nadapter = \"app\"\naccount = \"bench\"\nsecrets = {{ webhook = \"${{BENCH_APP_SECRET}}\" }}\n",
            adapters = repo.join("adapters").display(),
            rules = repo.join("config/rules").display(),
            db = dir.join("tax.redb").display(),
        ),
    )?;
    let env = HashMap::from([(
        "BENCH_APP_SECRET".to_string(),
        "whsec_YmVuY2gtY29uc29sZS1hcHAtc2VjcmV0LTMyYg==".to_string(),
    )]);
    Ok(crossgate::config::Config::load_with_env(&file, &env)?)
}

pub async fn run(args: TaxArgs) -> Result<()> {
    let orders =
        super::fx::app_orders(args.orders, "TX", |i| format!("2025-05-{:02}", 1 + i % 28))?;
    for store in &args.stores {
        let mut secs: HashMap<&str, Vec<f64>> = HashMap::new();
        for run in 0..args.repeat {
            for mode in [Mode::OneByOne, Mode::Batched] {
                let dir = tempfile::tempdir()?;
                let prefix = format!("bench-tax-{}-{run}", std::process::id());
                let config = Arc::new(config(dir.path(), store, &args.redis_url, &prefix)?);
                let (opened, _) = crossgate::backend::open(&config.store).await?;
                let s =
                    crossgate::with_store!(opened, s => drain(s, &config, &orders, mode).await)?;
                if store == "redis" {
                    remove_prefix(&args.redis_url, &prefix).await?;
                }
                secs.entry(mode.name()).or_default().push(s);
            }
        }
        let n = orders.len() as f64;
        let median = |mode: Mode| {
            let mut v = secs[mode.name()].clone();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (one, batched) = (median(Mode::OneByOne), median(Mode::Batched));
        for (mode, s) in [(Mode::OneByOne, one), (Mode::Batched, batched)] {
            crossgate::outln!(
                "{store:8} {:22} {:>8.0} orders/s  {:>7.1} µs/order  (runs: {})",
                mode.name(),
                n / s,
                s * 1e6 / n,
                secs[mode.name()]
                    .iter()
                    .map(|s| format!("{:.0}/s", n / s))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        crossgate::outln!("{store:8} batched / one by one: {:.2}×", one / batched);
    }
    Ok(())
}

/// Stores the orders (untimed), then times the tax job until every event is quoted.
async fn drain<S: crossgate::backend::Stores>(
    store: S,
    config: &crossgate::config::Config,
    orders: &[crossgate::model::Order],
    mode: Mode,
) -> Result<f64> {
    super::fx::store_orders(&store, orders).await?;
    let job = TaxJob::new(config.tax.clone(), config.fx.max_age_days);
    let started = Instant::now();
    match mode {
        Mode::Batched => while job.pass(&store, 500).await?.0 > 0 {},
        Mode::OneByOne => loop {
            let events = store.read_events(TAX_GROUP, "bench", 500).await?;
            if events.is_empty() {
                break;
            }
            let book = RateBook::new(crossgate::fx::store::FxStore::fx_docs(&store).await?, 4);
            for e in &events {
                if let Record::Order(o) = &e.event.record {
                    job.quote(&store, o, &book).await?;
                }
            }
            let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
            store.ack_events(TAX_GROUP, &ids).await?;
        },
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Removes the run's keys from Redis.
async fn remove_prefix(url: &str, prefix: &str) -> Result<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await?;
    for chunk in keys.chunks(500) {
        let _: () = redis::cmd("UNLINK")
            .arg(chunk)
            .query_async(&mut conn)
            .await?;
    }
    Ok(())
}
