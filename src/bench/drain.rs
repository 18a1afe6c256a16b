//! `crossgate bench drain`: the FX and tax jobs draining a backlog of orders, one commit per
//! order (how the jobs stored their work before) against one commit per batch (how they do
//! now), on a fresh embedded store (fsync on, as in production) and on Redis, alternating, in
//! one run. The FX orders are dated February 2017 and converted at the ECB's rates of then
//! (into EUR and CNY, so each writes its FX-log entries); the tax orders are app orders to Japan
//! quoted from a Chinese seller.

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
pub struct DrainArgs {
    /// Orders in each backlog.
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
    /// ECB rate document the FX orders are converted at.
    #[arg(
        long,
        default_value = "../shared/fixtures/fx-ecb/eurofxref-hist-90d-2017-03-03.xml"
    )]
    ecb: std::path::PathBuf,
}

/// Which job drains.
#[derive(Clone, Copy, PartialEq)]
enum Job {
    Fx,
    Tax,
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
            "adapters_dir = \"{adapters}\"\n[server]\nlisten = \"127.0.0.1:0\"\n[log]\nlevel = \"warn\"\n[store]\nbackend = \"{store}\"\npath = \"{db}\"\nredis_url = \"{redis_url}\"\nredis_prefix = \"{prefix}\"\n[fx]\nreporting_currencies = [\"EUR\", \"CNY\"]\n[tax]\nrules_dir = \"{rules}\"\nseller_country = \"CN\"\n[jobs]\nevery_secs = 0\n[[instance]]\nid = \"bench\"\nadapter = \"app\"\naccount = \"bench\"\nsecrets = {{ webhook = \"${{BENCH_APP_SECRET}}\" }}\n",
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

pub async fn run(args: DrainArgs) -> Result<()> {
    let tax_orders =
        super::fx::app_orders(args.orders, "TX", |i| format!("2025-05-{:02}", 1 + i % 28))?;
    let fx_orders =
        super::fx::app_orders(args.orders, "FX", |i| format!("2017-02-{:02}", 1 + i % 28))?;
    let ecb = std::fs::read(&args.ecb)?;
    for store in &args.stores {
        for job in [Job::Fx, Job::Tax] {
            let orders = if job == Job::Fx {
                &fx_orders
            } else {
                &tax_orders
            };
            let mut secs: HashMap<&str, Vec<f64>> = HashMap::new();
            for run in 0..args.repeat {
                for mode in [Mode::OneByOne, Mode::Batched] {
                    let dir = tempfile::tempdir()?;
                    let prefix = format!("bench-drain-{}-{run}", std::process::id());
                    let config = Arc::new(config(dir.path(), store, &args.redis_url, &prefix)?);
                    let (opened, _) = crossgate::backend::open(&config.store).await?;
                    let s = crossgate::with_store!(opened, s => {
                        super::fx::store_orders(&s, orders).await?;
                        match job {
                            Job::Fx => drain_fx(s, &config, &ecb, mode).await,
                            Job::Tax => drain_tax(s, &config, mode).await,
                        }
                    })?;
                    if store == "redis" {
                        remove_prefix(&args.redis_url, &prefix).await?;
                    }
                    secs.entry(mode.name()).or_default().push(s);
                }
            }
            report(store, job, orders.len(), &secs);
        }
    }
    Ok(())
}

fn report(store: &str, job: Job, orders: usize, secs: &HashMap<&str, Vec<f64>>) {
    let n = orders as f64;
    let job = if job == Job::Fx { "fx" } else { "tax" };
    let median = |mode: Mode| {
        let mut v = secs[mode.name()].clone();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for mode in [Mode::OneByOne, Mode::Batched] {
        let s = median(mode);
        crossgate::outln!(
            "{store:8} {job:3} {:22} {:>8.0} orders/s  {:>7.1} µs/order  (runs: {})",
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
    crossgate::outln!(
        "{store:8} {job:3} batched / one by one: {:.2}×",
        median(Mode::OneByOne) / median(Mode::Batched)
    );
}

/// Times the tax job until every event is quoted.
async fn drain_tax<S: crossgate::backend::Stores>(
    store: S,
    config: &crossgate::config::Config,
    mode: Mode,
) -> Result<f64> {
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

/// Loads the rates (untimed), then times the FX job until every event is converted.
async fn drain_fx<S: crossgate::backend::Stores>(
    store: S,
    config: &crossgate::config::Config,
    ecb: &[u8],
    mode: Mode,
) -> Result<f64> {
    let doc = crossgate::fx::document(
        crossgate::fx::rates::RateSource::Ecb,
        "bench",
        ecb,
        chrono::Utc::now(),
    )?;
    store.fx_put_doc(doc).await?;
    let job = crossgate::fx::FxJob::new(&store, config.fx.clone()).await?;
    let started = Instant::now();
    match mode {
        Mode::Batched => while job.pass(&store, 500).await?.events > 0 {},
        Mode::OneByOne => loop {
            let events = store
                .read_events(crossgate::fx::FX_GROUP, "bench", 500)
                .await?;
            if events.is_empty() {
                break;
            }
            for e in &events {
                if let Record::Order(o) = &e.event.record {
                    job.convert(&store, o).await?;
                }
            }
            let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
            store.ack_events(crossgate::fx::FX_GROUP, &ids).await?;
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
