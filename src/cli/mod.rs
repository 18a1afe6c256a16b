//! The `crossgate` command line: one module per command group. Commands that read or write the
//! gateway's data reach it one way, [`reach::Reach`]: the running daemon's API when one answers,
//! else the store. `anyhow` is used here and nowhere else in the crate.

mod channels;
mod cluster;
mod dead_letters;
mod fx;
mod import;
pub mod jobs;
mod outbound;
mod quote;
pub mod reach;
mod replay;
mod serve;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crossgate::config::Config;

#[derive(Parser)]
#[command(
    name = "crossgate",
    version = concat!(
        env!("CARGO_PKG_VERSION"),
        " (commit ",
        env!("CROSSGATE_GIT_COMMIT"),
        ", built ",
        env!("CROSSGATE_BUILD_DATE"),
        ")"
    ),
    about = "Cross-border channel integration gateway",
    long_about = "Takes orders and listings in from sales channels (signed webhooks, polling, \
                  imports), normalizes them into one canonical model and stores them.\n\n\
                  Start with `crossgate serve` (embedded store, no setup) and `crossgate demo`."
)]
pub struct Cli {
    /// Gateway config file.
    #[arg(
        long,
        global = true,
        env = "CROSSGATE_CONFIG",
        default_value = "config/gateway.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: webhooks, API, metrics.
    Serve,
    /// Validate the config and every adapter file; print all problems and exit non-zero.
    CheckConfig,
    /// Normalize a payload offline with an adapter and print the canonical JSON.
    Replay(replay::ReplayArgs),
    /// Import a file of orders (phone / call-centre CSV). Reports every bad row by line and
    /// column and stores every good order; importing the same file again stores nothing new.
    Import(import::ImportArgs),
    /// Take in a channel's orders updated since a date by polling its API (resumable: run the
    /// same command again after an interruption and it continues where it stopped).
    Backfill(channels::BackfillArgs),
    /// List the orders of an instance seen by polling but never pushed by its webhooks, and the
    /// reverse.
    Reconcile(channels::ReconcileArgs),
    /// Landed cost of an order: which customs/tax regime applies, every tax and duty line with
    /// who collects it, and why (canonical order JSON in).
    Quote(quote::QuoteArgs),
    /// Exchange rates and the FX log (finance).
    #[command(subcommand)]
    Fx(fx::FxCommand),
    /// List or replay dead letters through a running daemon's API.
    #[command(subcommand)]
    DeadLetters(dead_letters::DeadLetterCommand),
    /// Commands to channels (stock, price, status, shipments): list, show, retry.
    #[command(subcommand)]
    Outbound(outbound::OutboundCommand),
    /// Post the real sample deliveries, correctly signed, to a running daemon and show what
    /// was stored.
    Demo(crate::demo::DemoArgs),
    /// Recommendation and ranking jobs.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Replicas and their store: nodes and slots, leases, shared rate budgets.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Measure the recommendation strategies offline on a public dataset (P@k, R@k, NDCG@k,
    /// HR@k); fetch the datasets with scripts/fetch-datasets.sh.
    Eval(jobs::EvalArgs),
    /// Load tools: measure ingest throughput and latency.
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
    /// Print shell completions (e.g. `crossgate completions bash > /etc/bash_completion.d/crossgate`).
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff), e.g. `crossgate man-page > /usr/share/man/man1/crossgate.1`.
    ManPage,
}

#[derive(Args, Clone)]
pub struct ApiArgs {
    /// Base URL of the running daemon (default: the config's listen address).
    #[arg(long)]
    pub url: Option<String>,
}

pub async fn run(cli: Cli) -> Result<std::process::ExitCode> {
    let config = &cli.config;
    match cli.command {
        Command::Serve => serve::serve(config).await?,
        Command::CheckConfig => return Ok(serve::check_config(config)),
        Command::Replay(args) => return replay::replay(config, args),
        Command::Import(args) => return import::import(config, args).await,
        Command::Fx(cmd) => return fx::fx(config, cmd).await,
        Command::Quote(args) => return quote::quote(config, args).await,
        Command::Backfill(args) => channels::backfill(config, args).await?,
        Command::Reconcile(args) => return channels::reconcile(config, args).await,
        Command::DeadLetters(cmd) => dead_letters::dead_letters(config, cmd).await?,
        Command::Outbound(cmd) => outbound::outbound(config, cmd).await?,
        Command::Demo(args) => crate::demo::run(config, args).await?,
        Command::Bench(cmd) => crate::bench::run(config, cmd).await?,
        Command::Jobs(cmd) => jobs::jobs(config, cmd).await?,
        Command::Cluster(cmd) => cluster::cluster(config, cmd).await?,
        Command::Eval(args) => jobs::eval_cmd(config, args).await?,
        // Rendered whole, then written like every command's output (a closed pipe ends quietly).
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "crossgate", &mut text);
            crossgate::stdout::write_bytes(&text);
        }
        Command::ManPage => {
            use clap::CommandFactory;
            let mut text = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut text)?;
            crossgate::stdout::write_bytes(&text);
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

pub fn load_config(path: &Path) -> Result<Config> {
    Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}

pub fn parse_when(flag: &str, s: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|d| d.to_utc())
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
        })
        .with_context(|| format!("{flag} '{s}' is not an RFC 3339 time or YYYY-MM-DD"))
}
