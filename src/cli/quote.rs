//! `crossgate quote`: landed cost of an order, with every tax and duty line and why.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use super::reach::Reach;
use super::{ApiArgs, load_config};

#[derive(Args)]
pub struct QuoteArgs {
    /// The order (canonical order JSON; gateway fields may be left out).
    #[arg(long)]
    file: PathBuf,
    #[arg(long, value_parser = ["table", "json"], default_value = "table")]
    format: String,
    /// Rule pack version (default: the newest in tax.rules_dir).
    #[arg(long)]
    pack: Option<String>,
    /// The buyer's China CBEC purchases this year so far, in CNY.
    #[arg(long, default_value = "0")]
    annual_cny: String,
    #[command(flatten)]
    api: ApiArgs,
}

pub async fn quote(config_path: &Path, args: QuoteArgs) -> Result<std::process::ExitCode> {
    let config = load_config(config_path)?;
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    // Fail on a malformed order before looking for the daemon.
    crossgate::tax::order_from_json(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let annual: rust_decimal::Decimal = args
        .annual_cny
        .parse()
        .context("--annual-cny must be a decimal")?;
    // Rates for thresholds in other currencies: the store's (through the daemon if it runs).
    let reach = Reach::connect(&config, &args.api).await?;
    let q = reach
        .quote(&config, &bytes, args.pack.as_deref(), annual)
        .await?;
    print_quote(&q, &args.format)?;
    Ok(exit_for(&q))
}

fn print_quote(q: &crossgate::tax::Quote, format: &str) -> Result<()> {
    if format == "json" {
        crossgate::outln!("{}", serde_json::to_string_pretty(q)?);
    } else {
        crossgate::out!("{}", crossgate::tax::render_table(q));
    }
    Ok(())
}

/// Exit 3 when the order cannot be quoted (a rule is missing).
fn exit_for(q: &crossgate::tax::Quote) -> std::process::ExitCode {
    match q.status {
        crossgate::tax::QuoteStatus::Quoted => std::process::ExitCode::SUCCESS,
        crossgate::tax::QuoteStatus::TaxPending => std::process::ExitCode::from(3),
    }
}
