//! `crossgate backfill` (poll a channel's API for a past period) and `crossgate reconcile`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;

use crossgate::telemetry;

use super::reach::Reach;
use super::{ApiArgs, load_config, parse_when};

#[derive(Args)]
pub struct BackfillArgs {
    /// Channel instance (its adapter needs a [poll] section).
    #[arg(long)]
    instance: String,
    /// Start: RFC 3339 time or YYYY-MM-DD (midnight UTC).
    #[arg(long)]
    since: String,
    /// End (default: now).
    #[arg(long)]
    until: Option<String>,
}

#[derive(Args)]
pub struct ReconcileArgs {
    #[arg(long)]
    instance: String,
    /// Only orders updated since: RFC 3339 time or YYYY-MM-DD.
    #[arg(long)]
    since: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub async fn backfill(config_path: &Path, args: BackfillArgs) -> Result<()> {
    let config = load_config(config_path)?;
    telemetry::init_logging(&config.log.level, config.log.json);
    let inst = config
        .instances
        .get(&args.instance)
        .with_context(|| format!("no instance '{}' in the config", args.instance))?
        .clone();
    let since = parse_when("--since", &args.since)?;
    let until = args
        .until
        .as_deref()
        .map(|u| parse_when("--until", u))
        .transpose()?;
    // In the daemon when one runs (it holds the embedded store), else here.
    let reach = Reach::connect(&config, &ApiArgs { url: None }).await?;
    let bar = indicatif::ProgressBar::new_spinner().with_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .expect("valid template"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar.set_message(format!(
        "backfill of {} through {}",
        inst.id,
        reach.describe(&config)
    ));
    let done = reach
        .backfill(&inst, since, until, |s| {
            if let (Some(a), Some(b)) = (s.window_since, s.window_until) {
                bar.set_message(format!(
                    "{} pages, {} orders, {} dead-lettered; window {} .. {}",
                    s.pages,
                    s.orders,
                    s.failed,
                    a.format("%Y-%m-%d %H:%M"),
                    b.format("%Y-%m-%d %H:%M")
                ));
            }
        })
        .await;
    bar.finish_and_clear();
    let s = done?;
    crossgate::outln!(
        "backfill of {} from {}: {} pages and {} orders this run ({} pages, {} orders in total), {} dead-lettered; taken in up to {}",
        inst.id,
        since.to_rfc3339(),
        s.pages,
        s.orders,
        s.total_pages,
        s.total_orders,
        s.failed,
        s.watermark
            .map(|w| w.to_rfc3339())
            .unwrap_or_else(|| "-".into())
    );
    Ok(())
}

pub async fn reconcile(config_path: &Path, args: ReconcileArgs) -> Result<ExitCode> {
    let config = load_config(config_path)?;
    if !config.instances.contains_key(&args.instance) {
        bail!("no instance '{}' in the config", args.instance);
    }
    let since = args
        .since
        .as_deref()
        .map(|s| parse_when("--since", s))
        .transpose()?;
    let reach = Reach::connect(&config, &ApiArgs { url: None }).await?;
    let r = reach.reconcile(&args.instance, since).await?;
    if args.json {
        crossgate::outln!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        for id in &r.polled_not_pushed {
            crossgate::outln!("polled, never pushed: {id}");
        }
        for id in &r.pushed_not_polled {
            crossgate::outln!("pushed, never polled: {id}");
        }
        crossgate::outln!(
            "{}: {} polled but never pushed, {} pushed but never polled",
            args.instance,
            r.polled_not_pushed.len(),
            r.pushed_not_polled.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
