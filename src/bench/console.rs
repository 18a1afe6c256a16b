//! `crossgate bench console`: the console's pages, timed in the server (no network), on an
//! embedded store (the default, fsync on) holding `--orders` app orders converted at the
//! ECB's rates, so the FX review reads a log of two grand totals per order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use tower::ServiceExt;

#[derive(Args)]
pub struct ConsoleArgs {
    /// Orders in the store (spread over February 2017, converted to EUR and CNY).
    #[arg(long, default_value_t = 100_000)]
    orders: usize,
    /// Timed requests per page (after one untimed).
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// ECB rate document the orders are converted at.
    #[arg(
        long,
        default_value = "../shared/fixtures/fx-ecb/eurofxref-hist-90d-2017-03-03.xml"
    )]
    ecb: PathBuf,
}

fn config(dir: &Path) -> Result<crossgate::config::Config> {
    let file = dir.join("gateway.toml");
    std::fs::write(
        &file,
        format!(
            "adapters_dir = \"{adapters}\"\n[server]\nlisten = \"127.0.0.1:0\"\n[log]\nlevel = \"warn\"\n[store]\nbackend = \"embedded\"\npath = \"{db}\"\n[fx]\nreporting_currencies = [\"EUR\", \"CNY\"]\n[jobs]\nevery_secs = 0\n[[instance]]\nid = \"bench\"\nadapter = \"app\"\naccount = \"bench\"\nsecrets = {{ webhook = \"${{BENCH_APP_SECRET}}\" }}\n",
            adapters = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("adapters")
                .display(),
            db = dir.join("console.redb").display(),
        ),
    )?;
    let env = HashMap::from([(
        "BENCH_APP_SECRET".to_string(),
        "whsec_YmVuY2gtY29uc29sZS1hcHAtc2VjcmV0LTMyYg==".to_string(),
    )]);
    Ok(crossgate::config::Config::load_with_env(&file, &env)?)
}

pub async fn run(args: ConsoleArgs) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = Arc::new(config(dir.path())?);
    let (store, _) = crossgate::backend::open(&config.store).await?;
    crossgate::with_store!(store, s => fill_and_time(s, config, &args).await)
}

async fn fill_and_time<S: crossgate::backend::Stores>(
    store: S,
    config: Arc<crossgate::config::Config>,
    args: &ConsoleArgs,
) -> Result<()> {
    let orders =
        super::fx::app_orders(args.orders, "CB", |i| format!("2017-02-{:02}", 1 + i % 28))?;
    let started = Instant::now();
    super::fx::store_orders(&store, &orders).await?;
    crossgate::outln!(
        "{} orders stored in {:.1} s",
        orders.len(),
        started.elapsed().as_secs_f64()
    );
    let bytes =
        std::fs::read(&args.ecb).with_context(|| format!("reading {}", args.ecb.display()))?;
    let doc = crossgate::fx::document(
        crossgate::fx::rates::RateSource::Ecb,
        "bench",
        &bytes,
        chrono::Utc::now(),
    )?;
    store.fx_put_doc(doc).await?;
    let started = Instant::now();
    let job = crossgate::fx::FxJob::new(&store, config.fx.clone()).await?;
    let mut entries = 0;
    for o in &orders {
        entries += job.convert(&store, o).await?.1.len();
    }
    crossgate::outln!(
        "{entries} FX-log entries for {} orders in {:.1} s",
        orders.len(),
        started.elapsed().as_secs_f64()
    );
    // What the daemon's FX loop does after its passes: the review index follows the log.
    let started = Instant::now();
    let coverage = crossgate::fx::review::catch_up(&store, usize::MAX).await?;
    crossgate::outln!(
        "FX review index over {} entries built in {:.1} s",
        coverage.upto,
        started.elapsed().as_secs_f64()
    );
    let live = Arc::new(crossgate::config::LiveConfig::new(config));
    let router = crossgate::ingress::router(crossgate::ingress::App::new(store, live));
    let middle = &orders[orders.len() / 2];
    let pages = [
        "/console".to_string(),
        "/console/dead-letters".to_string(),
        format!("/console/orders?q={}", middle.external_id),
        format!("/console/orders/{}", middle.id.as_str()),
        "/console/fx?from=2017-02-10&to=2017-02-10".to_string(),
        "/console/fx?from=2017-02-01&to=2017-02-28".to_string(),
        "/console/fx?from=2017-02-01&to=2017-02-28&currency=CNY".to_string(),
        format!(
            "/console/fx?from=2017-02-01&to=2017-02-28&order={}",
            middle.external_id
        ),
        "/console/adapters".to_string(),
    ];
    crossgate::outln!(
        "page (server time, {} requests after one untimed)                 median      max",
        args.repeat
    );
    let mut failed = false;
    for page in &pages {
        let mut times = Vec::with_capacity(args.repeat);
        let mut refused = None;
        for i in 0..=args.repeat {
            let req = axum::http::Request::get(page.as_str()).body(axum::body::Body::empty())?;
            let started = Instant::now();
            let resp = router.clone().oneshot(req).await?;
            let status = resp.status();
            let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await?;
            let took = started.elapsed().as_secs_f64() * 1e3;
            if !status.is_success() || body.is_empty() {
                // The request timeout (`[server] request_timeout_secs`) answers 503.
                refused = Some(format!("{status} after {took:.0} ms"));
                break;
            }
            if i > 0 {
                times.push(took);
            }
        }
        times.sort_by(f64::total_cmp);
        match refused {
            Some(why) => {
                failed = true;
                crossgate::outln!("{page:<66} FAILED: {why}");
            }
            None => crossgate::outln!(
                "{page:<66} {:>7.1} ms {:>7.1} ms",
                times[times.len() / 2],
                times[times.len() - 1]
            ),
        }
    }
    anyhow::ensure!(!failed, "some pages were not answered");
    Ok(())
}
