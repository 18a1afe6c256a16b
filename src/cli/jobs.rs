//! `crossgate jobs …` and `crossgate eval …`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use futures_util::StreamExt;

use crossgate::reco::job::{self, Progress};
use crossgate::reco::runs::JobsRun;
use crossgate::reco::store::RecoPart;
use crossgate::reco::{eval, models, tune};
use crossgate::with_store;

use super::ApiArgs;
use super::reach::Reach;

#[derive(Subcommand)]
pub enum JobsCommand {
    /// Run the recommendation and/or ranking job now: read new events from the stream,
    /// compute from everything stored, publish the results atomically. Safe to interrupt:
    /// running it again gives the results an uninterrupted run gives.
    Run(RunArgs),
    /// Show when the current results were computed, and from what.
    Status,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum JobName {
    /// Per-customer recommendations (every configured strategy).
    Recommend,
    /// Rankings by sales, revenue, price and rating, per country and channel.
    Rank,
}

#[derive(Args)]
pub struct RunArgs {
    /// Which job (both when omitted).
    #[arg(value_enum)]
    job: Option<JobName>,
    /// Only this strategy (repeatable; default: the config's `jobs.strategies`).
    #[arg(long = "strategy", value_name = "NAME")]
    strategies: Vec<String>,
    /// Forget the jobs' data and read the whole event stream again.
    #[arg(long)]
    rebuild: bool,
    /// Events read (then acknowledged) per pass.
    #[arg(long, default_value_t = 2000)]
    batch: usize,
    /// Print the run report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum DatasetName {
    /// MovieLens-100K (recbole 1.2.1 atomic files: ml-100k.inter, .item, .user).
    #[value(name = "ml-100k")]
    Ml100k,
    /// The Complete Journey (transactions.csv, products.csv, demographics.csv).
    #[value(name = "complete-journey")]
    CompleteJourney,
}

#[derive(Args)]
pub struct EvalArgs {
    #[arg(long, value_enum)]
    dataset: DatasetName,
    /// Directory of the dataset's files (scripts/fetch-datasets.sh writes data/ml-100k and
    /// data/complete-journey).
    #[arg(long)]
    path: PathBuf,
    /// Only this strategy (repeatable; default: all).
    #[arg(long = "strategy", value_name = "NAME")]
    strategies: Vec<String>,
    /// Cut-off of the metrics (P@k, R@k, NDCG@k, HR@k).
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// complete-journey: the app or phone instance its orders and products are imported into
    /// (through the gateway's import path, into the config's store).
    #[arg(long, default_value = "app")]
    instance: String,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
    /// ml-100k: first choose the served strategy's parameters (EASE λ, recency half-life,
    /// blend weights) on a validation split carved from the training data only, then report
    /// the test split with them.
    #[arg(long)]
    tune: bool,
}

/// Progress bars on stderr, one per stage.
struct Bars {
    bar: std::sync::Mutex<Option<indicatif::ProgressBar>>,
}

impl Bars {
    fn new() -> Self {
        Self {
            bar: std::sync::Mutex::new(None),
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.bar.lock().expect("lock").take() {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bars {
    fn stage(&self, name: &str, total: Option<u64>) {
        self.finish();
        let bar = match total {
            Some(t) => indicatif::ProgressBar::new(t).with_style(
                indicatif::ProgressStyle::with_template(
                    "{msg:<28} [{elapsed_precise}] {wide_bar} {pos}/{len}",
                )
                .expect("valid template"),
            ),
            None => indicatif::ProgressBar::new_spinner().with_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {msg:<28} [{elapsed_precise}] {pos}",
                )
                .expect("valid template"),
            ),
        };
        bar.set_message(name.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        *self.bar.lock().expect("lock") = Some(bar);
    }

    fn inc(&self, n: u64) {
        if let Some(bar) = self.bar.lock().expect("lock").as_ref() {
            bar.inc(n);
        }
    }
}

/// Refuses a `--strategy` the models do not know.
fn check_strategies(strategies: &[String]) -> Result<()> {
    match models::unknown_strategy(strategies) {
        Some(st) => bail!(
            "--strategy: unknown '{st}'; one of {}",
            models::STRATEGIES.join(", ")
        ),
        None => Ok(()),
    }
}

pub async fn jobs(config_path: &Path, cmd: JobsCommand) -> Result<()> {
    let config = super::load_config(config_path)?;
    // Through the daemon when one runs (it holds the embedded store), else the store.
    let reach = Reach::connect(&config, &ApiArgs { url: None }).await?;
    match cmd {
        JobsCommand::Status => {
            let status = reach.jobs_status().await?;
            for (part, meta) in [
                (RecoPart::Recommendations, status.recommendations),
                (RecoPart::Rankings, status.rankings),
            ] {
                crossgate::outln!(
                    "{}: {}",
                    part.as_str(),
                    meta.map(|m| m.to_string())
                        .unwrap_or_else(|| "never run".into())
                );
            }
        }
        JobsCommand::Run(args) => {
            check_strategies(&args.strategies)?;
            let run = JobsRun {
                recommend: !matches!(args.job, Some(JobName::Rank)),
                rank: !matches!(args.job, Some(JobName::Recommend)),
                strategies: args.strategies,
                rebuild: args.rebuild,
                batch: Some(args.batch.max(1)),
            };
            let bars = Bars::new();
            let report = reach.run_jobs(&config, &run, &bars).await;
            bars.finish();
            let report = report?;
            if args.json {
                crossgate::outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_report(&report);
            }
        }
    }
    Ok(())
}

fn print_report(r: &job::RunReport) {
    crossgate::outln!(
        "read {} events in {:.2}s; loaded {} orders in {:.2}s ({} customers, {} items)",
        r.events_read,
        r.ingest_seconds,
        r.orders,
        r.load_seconds,
        r.customers,
        r.items
    );
    for s in &r.strategies {
        crossgate::outln!(
            "  {:<12} fit {:>7.2}s  score {:>7.2}s",
            s.strategy,
            s.fit_seconds,
            s.score_seconds
        );
    }
    if r.rankings > 0 {
        crossgate::outln!(
            "{} rankings in {:.2}s ({} order lines and {} prices without a rate)",
            r.rankings,
            r.rank_seconds,
            r.rank_stats.lines_without_rate,
            r.rank_stats.prices_without_rate
        );
    }
    crossgate::outln!(
        "published in {:.2}s; total {:.2}s",
        r.publish_seconds,
        r.total_seconds
    );
}

fn print_table(title: &str, k: usize, rows: &[eval::Metrics]) {
    crossgate::outln!("{title}");
    crossgate::outln!(
        "  {:<12} {:>7} {:>7} {:>8} {:>7} {:>6} {:>8}",
        "strategy",
        format!("P@{k}"),
        format!("R@{k}"),
        format!("NDCG@{k}"),
        format!("HR@{k}"),
        "users",
        "seconds"
    );
    for m in rows {
        crossgate::outln!(
            "  {:<12} {:>7.4} {:>7.4} {:>8.4} {:>7.4} {:>6} {:>8.2}",
            m.strategy,
            m.precision,
            m.recall,
            m.ndcg,
            m.hit_rate,
            m.users,
            m.seconds
        );
    }
}

fn eval_movielens(args: &EvalArgs, strategies: &[&str]) -> Result<()> {
    let mut params = models::Params {
        ease_items: 5000,
        ..Default::default()
    };
    let tuning = if args.tune {
        let validation =
            eval::movielens(&args.path, eval::Holdout::Validation).map_err(anyhow::Error::msg)?;
        eprintln!(
            "tuning on the validation split ({} users, {} grid points)",
            validation.test.len(),
            tune::EASE_LAMBDAS.len() * tune::RECENCY_HALF_LIVES.len() * tune::BLENDS.len()
        );
        let tuning = tune::tune(&validation, args.k, &params);
        params = tuning.best.clone();
        Some(tuning)
    } else {
        None
    };
    let split = eval::movielens(&args.path, eval::Holdout::Test).map_err(anyhow::Error::msg)?;
    let rows = eval::run_all(&split, args.k, true, params.clone(), strategies);
    if args.json {
        let trials = tuning.as_ref().map(|t| &t.trials);
        crossgate::outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "tuning": trials,
                "params": {
                    "ease_lambda": params.ease_lambda,
                    "recency_half_life": params.recency_half_life,
                    "blend": params.blend,
                },
                "test": rows,
            }))?
        );
        return Ok(());
    }
    if let Some(t) = &tuning {
        print_tuning(t, args.k);
    }
    print_table(
        &format!(
            "MovieLens-100K: per-user temporal 80/20 split, {} items ranked, train items excluded\n\
             EASE λ {}, recency half-life {}, blend (item-kNN, EASE, content) {:?}",
            split.train.items,
            params.ease_lambda,
            half_life_label(params.recency_half_life),
            params.blend
        ),
        args.k,
        &rows,
    );
    Ok(())
}

fn half_life_label(h: Option<f32>) -> String {
    h.map_or_else(|| "off".to_string(), |h| format!("{h} orders"))
}

/// The validation grid's best points, best first.
fn print_tuning(t: &tune::Tuning, k: usize) {
    let mut trials: Vec<&tune::Trial> = t.trials.iter().collect();
    trials.sort_by(|a, b| b.ndcg.total_cmp(&a.ndcg));
    crossgate::outln!(
        "validation split (from training only): best of {} grid points",
        trials.len()
    );
    crossgate::outln!(
        "{:>8} {:>10} {:>20} {:>9}",
        "EASE λ",
        "recency",
        "blend",
        format!("NDCG@{k}")
    );
    for tr in trials.iter().take(10) {
        crossgate::outln!(
            "{:>8} {:>10} {:>20} {:>9.4}",
            tr.ease_lambda,
            half_life_label(tr.recency_half_life),
            format!("{:?}", tr.blend),
            tr.ndcg
        );
    }
    let best = &t.best;
    crossgate::outln!(
        "as config: [jobs] ease_lambda = {}, recency_half_life_orders = {}, blend_weights = {:?}",
        best.ease_lambda,
        best.recency_half_life.unwrap_or(0.0),
        best.blend
    );
    crossgate::outln!();
}

pub async fn eval_cmd(config_path: &Path, args: EvalArgs) -> Result<()> {
    check_strategies(&args.strategies)?;
    let strategies: Vec<&str> = if args.strategies.is_empty() {
        models::STRATEGIES.to_vec()
    } else {
        args.strategies.iter().map(String::as_str).collect()
    };
    match args.dataset {
        DatasetName::Ml100k => eval_movielens(&args, &strategies)?,
        DatasetName::CompleteJourney => {
            let config = super::load_config(config_path)?;
            let inst = config
                .instances
                .get(&args.instance)
                .with_context(|| {
                    format!("--instance: no instance '{}' in the config", args.instance)
                })?
                .clone();
            // The dataset is imported into the config's store (through the gateway's import
            // path) and evaluated there: a store of its own, never a live daemon's.
            let (store, _) = crossgate::backend::open(&config.store).await.context(
                "opening the store to import the dataset into (eval needs a store of its \
                     own: give it a --config whose store no daemon uses)",
            )?;
            eprintln!("reading {}", args.path.display());
            let cj = eval::complete_journey(&args.path).map_err(anyhow::Error::msg)?;
            eprintln!(
                "{} rows ({} without units left out): {} baskets, {} products",
                cj.rows,
                cj.rows_without_units,
                cj.orders.len(),
                cj.listings.len()
            );
            with_store!(&store, s => import_cj(s, &inst, &cj).await)?;
            let bars = Bars::new();
            let events = with_store!(&store, s => job::ingest(s, 2000, &bars).await)?;
            let snap = with_store!(&store, s => job::load(s).await)?;
            bars.finish();
            eprintln!(
                "{events} new events read; {} orders with a customer in the jobs' data",
                snap.orders.len()
            );
            let (ds, test) = eval::complete_journey_split(&snap, &inst.id, &cj.week_of);
            let inputs = models::Inputs {
                train: &ds.train,
                docs: &ds.docs,
                segment_of: &ds.segment_of,
                segments: ds.segments,
            };
            let fitted = models::Fitted::fit(&inputs, config.jobs.params.clone(), &strategies);
            let all = eval::evaluate_all(&fitted, &test, args.k, false, &strategies, true);
            let new = eval::evaluate_all(&fitted, &test, args.k, true, &strategies, true);
            if args.json {
                crossgate::outln!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"all_items": all, "new_items": new})
                    )?
                );
            } else {
                let head = format!(
                    "Complete Journey: weeks 1-45 train, 46-53 test; {} customers, {} items",
                    ds.customers.len(),
                    ds.items.len()
                );
                print_table(
                    &format!("{head}\nall items (repeat purchases count)"),
                    args.k,
                    &all,
                );
                print_table(
                    "new items only (items bought before are excluded)",
                    args.k,
                    &new,
                );
            }
        }
    }
    Ok(())
}

/// Imports the dataset through the gateway's submission path (the same as
/// `POST /v1/instances/{id}/orders` and `…/listings`), 64 at a time; idempotent by record.
async fn import_cj<S: crossgate::backend::Stores>(
    store: &S,
    inst: &std::sync::Arc<crossgate::config::Instance>,
    cj: &eval::CompleteJourney,
) -> Result<()> {
    use crossgate::pipeline::{self, Submission};
    let total = (cj.orders.len() + cj.listings.len()) as u64;
    let bar = indicatif::ProgressBar::new(total).with_style(
        indicatif::ProgressStyle::with_template(
            "importing {wide_bar} {pos}/{len} [{elapsed_precise}, {per_sec}]",
        )
        .expect("valid template"),
    );
    let jobs = cj
        .listings
        .iter()
        .map(|(id, body)| {
            (
                Submission::CanonicalListing,
                format!("cj-product-{id}"),
                body,
            )
        })
        .chain(
            cj.orders
                .iter()
                .map(|(id, body)| (Submission::CanonicalOrder, format!("cj-basket-{id}"), body)),
        );
    let mut results = futures_util::stream::iter(jobs)
        .map(|(how, key, body)| {
            let (store, inst) = (store.clone(), inst.clone());
            async move {
                pipeline::submit(
                    &store,
                    &inst,
                    how,
                    Some(&key),
                    body.clone(),
                    chrono::Utc::now(),
                )
                .await
                .map(|r| (key, r))
            }
        })
        .buffer_unordered(64);
    let mut rejected = 0u64;
    while let Some(r) = results.next().await {
        let (key, report) = r?;
        if !report.errors.is_empty() {
            rejected += 1;
            if rejected <= 5 {
                eprintln!("{key}: {:?}", report.errors);
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if rejected > 0 {
        bail!("{rejected} records were rejected (dead-lettered)");
    }
    Ok(())
}
