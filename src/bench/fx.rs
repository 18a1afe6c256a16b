//! `crossgate bench fx`: conversions (pure), FX-log appends on Redis, `fx verify`, and the
//! finance export through a daemon (HTTP and the CLI), on orders of the app fixture.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;

use crossgate::fx::store::FxStore;

#[derive(Args)]
pub struct FxArgs {
    /// Orders to convert (each: 5 totals + its lines, into every reporting currency).
    #[arg(long, default_value_t = 2000)]
    orders: usize,
    /// Redis URL for the append test (a fresh key prefix is used and removed).
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Concurrent committers (they contend on the log head).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// ECB rate document (XML, eurofxref-hist.csv or .zip); its parse and store are timed.
    #[arg(
        long,
        default_value = "../shared/fixtures/fx-ecb/eurofxref-hist-90d-2017-03-03.xml"
    )]
    ecb: PathBuf,
}

pub async fn run(args: FxArgs) -> Result<()> {
    use crossgate::fx::{FxJob, FxSettings, book::RateBook, convert_order, revision_key};
    use crossgate::model::CurrencyCode;
    let bytes =
        std::fs::read(&args.ecb).with_context(|| format!("reading {}", args.ecb.display()))?;
    let started = Instant::now();
    let doc = crossgate::fx::document(
        crossgate::fx::rates::RateSource::Ecb,
        "bench",
        &bytes,
        chrono::Utc::now(),
    )?;
    crossgate::outln!(
        "rate document: {} ({} bytes): {} days, {} rates parsed in {:.3} s",
        args.ecb.display(),
        bytes.len(),
        doc.days.len(),
        doc.days.iter().map(|d| d.rates.len()).sum::<usize>(),
        started.elapsed().as_secs_f64()
    );
    let orders = app_orders(args.orders, "FXB", |_| "2017-02-15".into())?;
    let settings = FxSettings {
        reporting: vec![
            CurrencyCode::parse("EUR")?,
            CurrencyCode::parse("CNY")?,
            CurrencyCode::parse("USD")?,
        ],
        ..FxSettings::default()
    };
    let book = RateBook::new(vec![doc.clone()], settings.max_age_days);

    // 1. Conversions (pure): every part of every order into three currencies.
    let started = Instant::now();
    let mut conversions = 0usize;
    for o in &orders {
        let (drafts, _) = convert_order(o, &revision_key(o), &book, &settings, chrono::Utc::now());
        conversions += drafts.len();
    }
    let took = started.elapsed();
    crossgate::outln!(
        "conversions: {conversions} in {:.3} s = {:.0}/s ({:.2} µs each)",
        took.as_secs_f64(),
        conversions as f64 / took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / conversions as f64
    );

    // 2. Appends on Redis: convert and commit each order (chain, index, view) atomically.
    let prefix = format!("fxbench{}", std::process::id());
    let (store, _) =
        crossgate::backend::redis::RedisStore::connect(crossgate::backend::redis::RedisOptions {
            target: crossgate::backend::redis::Target::Node(args.redis_url.clone()),
            prefix: prefix.clone(),
            timeout: Duration::from_secs(5),
            require_fsync: false,
            dedupe_ttl: Duration::from_secs(3600),
            raw_retention: Duration::from_secs(3600),
            instances: vec!["bench".into()],
            ..Default::default()
        })
        .await?;
    let started = Instant::now();
    store.fx_put_doc(doc).await?;
    let _ = RateBook::new(store.fx_docs().await?, 4);
    crossgate::outln!(
        "rate document stored on Redis and read back into a rate book in {:.3} s",
        started.elapsed().as_secs_f64()
    );
    // The orders are stored first, as the daemon's are: `fx verify` checks each conversion
    // against its order.
    store_orders(&store, &orders).await?;
    let job = std::sync::Arc::new(FxJob::new(&store, std::sync::Arc::new(settings)).await?);
    let orders = std::sync::Arc::new(orders);
    let started = Instant::now();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (store, job, orders, next) = (store.clone(), job.clone(), orders.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut appended = 0usize;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(o) = orders.get(i) else { break };
                appended += job.convert(&store, o).await?.1.len();
            }
            Ok::<usize, crossgate::store::StoreError>(appended)
        }));
    }
    let mut appended = 0;
    for w in workers {
        appended += w.await??;
    }
    let took = started.elapsed();
    crossgate::outln!(
        "FX-log appends on Redis ({} committer(s)): {appended} entries for {} orders in {:.3} s = {:.0} entries/s, {:.0} orders/s",
        args.concurrency.max(1),
        args.orders,
        took.as_secs_f64(),
        appended as f64 / took.as_secs_f64(),
        args.orders as f64 / took.as_secs_f64()
    );
    let started = Instant::now();
    let v = crossgate::fx::verify_log(&store).await?;
    crossgate::outln!(
        "verify: {} entries in {:.3} s, {} finding(s)",
        v.entries,
        started.elapsed().as_secs_f64(),
        v.findings.len()
    );
    export_through_daemon(&args.redis_url, &prefix, v.entries).await?;
    store.flush_prefix().await?;
    Ok(())
}

/// `n` orders of the app fixture for the instance `bench`: external ids `<prefix>-<i>`, placed
/// at 11:00 (+01:00) on the day `day(i)` gives (YYYY-MM-DD).
pub(super) fn app_orders(
    n: usize,
    prefix: &str,
    day: impl Fn(usize) -> String,
) -> Result<Vec<crossgate::model::Order>> {
    use crossgate::model::OrderId;
    let app: serde_json::Value = serde_json::from_slice(&std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/app/order-jp.json"),
    )?)?;
    (0..n)
        .map(|i| {
            let mut v = app.clone();
            let m = v.as_object_mut().context("the app fixture is an object")?;
            let ext = format!("{prefix}-{i}");
            m.insert("external_id".into(), ext.clone().into());
            m.insert("number".into(), format!("#{ext}").into());
            m.insert(
                "placed_at".into(),
                format!("{}T11:00:00+01:00", day(i)).into(),
            );
            m.insert("id".into(), OrderId::derive("bench", &ext).as_str().into());
            m.insert("instance".into(), "bench".into());
            m.insert("channel".into(), "app".into());
            m.insert("channel_kind".into(), "mobile_app".into());
            m.insert("account".into(), "bench".into());
            Ok(serde_json::from_value(v)?)
        })
        .collect()
}

/// Stores each order as a submission of the instance `bench` (one durable write each), as the
/// daemon stores an app's orders.
pub(super) async fn store_orders<S: crossgate::store::Store>(
    store: &S,
    orders: &[crossgate::model::Order],
) -> Result<()> {
    for o in orders {
        let delivery = crossgate::pipeline::Arrival::new(
            crossgate::store::DeliverySource::Submitted,
            o.id.as_str().to_string(),
            None,
        )
        .delivery("bench", b"{}".to_vec(), chrono::Utc::now());
        let records = vec![crossgate::model::Record::Order(Box::new(o.clone()))];
        crossgate::store::Store::ingest(
            store,
            delivery,
            crossgate::store::Disposition::Apply(records),
        )
        .await?;
    }
    Ok(())
}

/// The finance export through a daemon: an in-process daemon on the bench's Redis prefix,
/// then `GET /v1/fx/log?format=csv&parts=all`, and `crossgate fx log --format csv --parts all`
/// (this binary, as finance runs it, reading the daemon's streamed answer).
async fn export_through_daemon(redis_url: &str, prefix: &str, entries: u64) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let cfg = dir.path().join("gateway.toml");
    std::fs::write(
        &cfg,
        format!(
            "adapters_dir = \"{}\"\n[server]\nlisten = \"{addr}\"\n[log]\nlevel = \"warn\"\n[store]\nbackend = \"redis\"\nredis_url = \"{redis_url}\"\nredis_prefix = \"{prefix}\"\n",
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("adapters")
                .display()
        ),
    )?;
    let config = std::sync::Arc::new(crossgate::config::Config::load(&cfg)?);
    let (store, _) = crossgate::backend::open(&config.store).await?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(async move {
        let shutdown = async {
            let _ = rx.await;
        };
        crossgate::with_store!(store, s => crossgate::daemon::run(s, config, listener, shutdown).await)
    });
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    for _ in 0..100 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    let csv = client
        .get(format!("{base}/v1/fx/log?format=csv&parts=all"))
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    let took = started.elapsed();
    crossgate::outln!(
        "export GET /v1/fx/log?format=csv&parts=all: {} rows, {} bytes in {:.3} s",
        csv.iter().filter(|b| **b == b'\n').count() - 1,
        csv.len(),
        took.as_secs_f64()
    );
    let started = Instant::now();
    let out = tokio::process::Command::new(std::env::current_exe()?)
        .arg("--config")
        .arg(&cfg)
        .args(["fx", "log", "--format", "csv", "--parts", "all"])
        .stderr(Stdio::inherit())
        .output()
        .await?;
    let took = started.elapsed();
    let rows = out
        .stdout
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        .saturating_sub(1);
    crossgate::outln!(
        "export `crossgate fx log --format csv --parts all` through the daemon: {rows} rows in {:.3} s{}",
        took.as_secs_f64(),
        if out.status.success() && rows as u64 == entries {
            String::new()
        } else {
            format!(" (FAILED: {}, expected {entries} rows)", out.status)
        }
    );
    let _ = tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(15), daemon).await;
    Ok(())
}
