//! `crossgate fx …`: rates in, and the FX log out for finance.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use crossgate::config::Config;
use crossgate::fx::LogFilter;
use crossgate::fx::log::PairReport;
use crossgate::fx::rates::{RateDoc, RateSource};

use super::reach::Reach;
use super::{ApiArgs, load_config, parse_when};

#[derive(Subcommand)]
pub enum FxCommand {
    /// Load rates into the store: ECB eurofxref XML (daily, 90 days or full history) from a
    /// URL or file, or finance's manual table. Without arguments: the config's sources.
    Sync {
        /// An ECB XML file or https URL.
        #[arg(long, conflicts_with = "manual")]
        ecb: Option<String>,
        /// A manual rate table (TOML).
        #[arg(long)]
        manual: Option<PathBuf>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Export the FX log: every conversion, with its rates, sources and hash.
    Log {
        /// First rate date (YYYY-MM-DD).
        #[arg(long)]
        from: Option<String>,
        /// Last rate date (YYYY-MM-DD).
        #[arg(long)]
        to: Option<String>,
        /// Entries converting from or to this currency.
        #[arg(long)]
        currency: Option<String>,
        /// Entries of this order id.
        #[arg(long)]
        order: Option<String>,
        #[arg(long, value_parser = ["csv", "json"], default_value = "csv")]
        format: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Recompute every entry from the stored rates and check the hash chain; lists every
    /// mismatch or break and exits non-zero when there is one.
    Verify {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Per currency pair for one day: count, sums, min and max rate, and the revaluation
    /// against the latest rate.
    Report {
        #[arg(long)]
        date: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub async fn fx(config_path: &Path, cmd: FxCommand) -> Result<ExitCode> {
    let config = load_config(config_path)?;
    match cmd {
        FxCommand::Sync { ecb, manual, api } => {
            let docs = rate_documents(&config, ecb, manual).await?;
            let reach = Reach::connect(&config, &api).await?;
            for (doc, bytes) in docs {
                let summary = summary(&doc);
                let new = reach.put_rates(doc, bytes).await?;
                crossgate::outln!(
                    "{summary}: {}",
                    if new { "stored" } else { "already stored" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        FxCommand::Log {
            from,
            to,
            currency,
            order,
            format,
            api,
        } => {
            let date = |flag, d: Option<String>| {
                d.map(|d| parse_when(flag, &d).map(|t| t.date_naive()))
                    .transpose()
            };
            let filter = LogFilter {
                from: date("--from", from)?,
                to: date("--to", to)?,
                currency,
                order,
            };
            let reach = Reach::connect(&config, &api).await?;
            print_log(&reach, &filter, format == "csv").await?;
            Ok(ExitCode::SUCCESS)
        }
        FxCommand::Verify { api } => {
            let reach = Reach::connect(&config, &api).await?;
            let v = reach.fx_verify().await?;
            for f in &v.findings {
                crossgate::outln!("{}: {}", f.entry, f.problem);
            }
            crossgate::outln!(
                "{} entries checked (head fx.{}): {}",
                v.entries,
                v.head_seq,
                if v.findings.is_empty() {
                    "the log is intact".to_string()
                } else {
                    format!("{} problem(s)", v.findings.len())
                }
            );
            Ok(if v.findings.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        FxCommand::Report {
            date,
            json: as_json,
            api,
        } => {
            let day = parse_when("--date", &date)?.date_naive();
            let reach = Reach::connect(&config, &api).await?;
            let pairs = reach.fx_report(day, config.fx.max_age_days).await?;
            if as_json {
                crossgate::outln!("{}", serde_json::to_string_pretty(&pairs)?);
            } else {
                print_report(&pairs);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The rate documents to load, each with its bytes as read: `--ecb` or `--manual`, else the
/// config's sources.
async fn rate_documents(
    config: &Config,
    ecb: Option<String>,
    manual: Option<PathBuf>,
) -> Result<Vec<(RateDoc, Vec<u8>)>> {
    let mut sources: Vec<(RateSource, String)> = Vec::new();
    match (ecb, manual) {
        (Some(e), _) => sources.push((RateSource::Ecb, e)),
        (None, Some(m)) => sources.push((RateSource::Manual, m.display().to_string())),
        (None, None) => {
            if let Some(m) = &config.fx.manual_rates {
                sources.push((RateSource::Manual, m.display().to_string()));
            }
            if let Some(e) = &config.fx.ecb_source {
                sources.push((RateSource::Ecb, e.clone()));
            }
            if sources.is_empty() {
                bail!(
                    "no rate source: give --ecb or --manual, or set fx.ecb_source / fx.manual_rates"
                );
            }
        }
    }
    let now = chrono::Utc::now();
    let mut docs = Vec::new();
    for (source, origin) in sources {
        let bytes = match source {
            RateSource::Ecb => crossgate::fx::read_document_bytes(&origin).await?,
            RateSource::Manual => {
                std::fs::read(&origin).with_context(|| format!("reading {origin}"))?
            }
        };
        let doc = crossgate::fx::document(source, &origin, &bytes, now)?;
        docs.push((doc, bytes));
    }
    Ok(docs)
}

fn summary(doc: &RateDoc) -> String {
    format!(
        "{} {} ({} day(s){}) hash {}",
        doc.source.as_str(),
        doc.origin,
        doc.days.len(),
        match (doc.days.first(), doc.days.last()) {
            (Some(a), Some(b)) => format!(", {} .. {}", a.date, b.date),
            _ => format!(", {} manual rate(s)", doc.manual.len()),
        },
        &doc.hash[..12]
    )
}

/// Every entry the filter selects, as CSV or JSON lines.
async fn print_log(reach: &Reach, filter: &LogFilter, csv: bool) -> Result<()> {
    if csv {
        crossgate::outln!("{}", crossgate::fx::log::CSV_HEADER);
    }
    for (e, by) in reach.fx_log(filter).await? {
        if csv {
            crossgate::outln!("{}", crossgate::fx::log::csv_row(&e, by.as_deref()));
        } else {
            let mut v = serde_json::to_value(&e)?;
            v["superseded_by"] = serde_json::json!(by);
            crossgate::outln!("{}", serde_json::to_string(&v)?);
        }
    }
    Ok(())
}

fn print_report(pairs: &[PairReport]) {
    crossgate::outln!(
        "{:<9} {:>6} {:>18} {:>18} {:>14} {:>14} {:>14}",
        "pair",
        "orders",
        "from sum",
        "to sum",
        "min rate",
        "max rate",
        "revaluation"
    );
    for p in pairs {
        crossgate::outln!(
            "{:<9} {:>6} {:>18} {:>18} {:>14} {:>14} {:>14}",
            format!("{}/{}", p.from, p.to),
            p.count,
            p.from_sum,
            p.to_sum,
            p.min_rate,
            p.max_rate,
            p.revaluation
        );
    }
}
