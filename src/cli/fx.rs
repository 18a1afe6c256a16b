//! `crossgate fx …`: rates in, and the FX log out for finance.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use crossgate::config::Config;
use crossgate::fx::LogFilter;
use crossgate::fx::checkpoint::{self, SignKey};
use crossgate::fx::log::PairReport;
use crossgate::fx::log::{Finding, FxEntry};
use crossgate::fx::rates::{RateDoc, RateSource};

use super::reach::Reach;
use super::{ApiArgs, load_config, parse_when};

#[derive(Subcommand)]
pub enum FxCommand {
    /// Load rates into the store: the ECB's eurofxref XML (daily, 90 days or full history),
    /// eurofxref-hist.csv or eurofxref-hist.zip, from a URL or file; or finance's manual
    /// table. Without arguments: the config's sources.
    Sync {
        /// An ECB document (XML, CSV or zip), as a file or an https URL.
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
        /// One order: the gateway's order id, or the channel's order number (`1001` also
        /// finds `#1001`).
        #[arg(long)]
        order: Option<String>,
        /// Orders of this channel (adapter name, e.g. `shopify`).
        #[arg(long)]
        channel: Option<String>,
        /// Orders of this channel instance.
        #[arg(long)]
        instance: Option<String>,
        /// `grand_total`: one row per order and reporting currency; `all`: every converted
        /// part (subtotal, shipping, discount, tax, each line).
        #[arg(long, default_value = "grand_total")]
        parts: crossgate::fx::Parts,
        /// `csv` (a header row, then one row per conversion) or `json` (one JSON object per
        /// line).
        #[arg(long, value_parser = ["csv", "json"], default_value = "csv")]
        format: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Recompute every entry from the stored rates, check the hash chain and every current
    /// entry against its order; with --public-key, also check that the log still ends in every
    /// signed checkpoint. Lists every problem with its entry and exits non-zero when there is
    /// one.
    Verify {
        /// The Ed25519 public key the gateway signs checkpoints with: the base64 that
        /// `fx keygen` prints, an SPKI PEM, or a file holding either.
        #[arg(long)]
        public_key: Option<String>,
        /// Checkpoints from this file (the `[fx.checkpoints] file`) instead of the store's.
        #[arg(long, requires = "public_key")]
        checkpoints: Option<PathBuf>,
        /// Verify an export (`fx log --parts all --format json`) offline instead of the store:
        /// the chain, each amount from its rates, and the signed checkpoints.
        #[arg(long, requires = "checkpoints")]
        log: Option<PathBuf>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Make an Ed25519 key pair for signing FX log checkpoints: prints the private key as an
    /// environment line for `[fx.checkpoints] key`, and the public key for auditors.
    Keygen,
    /// Per currency pair, over the orders converted at rates of one day or a range of days:
    /// orders, sums of their grand totals (from and to), min and max rate, and the
    /// revaluation at a later day's rates.
    Report {
        /// One rate date (YYYY-MM-DD).
        #[arg(long, conflicts_with_all = ["from", "to"], required_unless_present = "from")]
        date: Option<String>,
        /// First rate date of a range.
        #[arg(long, requires = "to")]
        from: Option<String>,
        /// Last rate date of a range (inclusive).
        #[arg(long, requires = "from")]
        to: Option<String>,
        /// Revalue at this day's rates (default: the newest stored ECB day).
        #[arg(long)]
        revalue_at: Option<String>,
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
            channel,
            instance,
            parts,
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
                channel,
                instance,
                parts,
            };
            let reach = Reach::connect(&config, &api).await?;
            print_log(&reach, &filter, format == "csv").await?;
            Ok(ExitCode::SUCCESS)
        }
        FxCommand::Verify {
            public_key,
            checkpoints,
            log,
            api,
        } => verify(&config, public_key, checkpoints, log, &api).await,
        FxCommand::Keygen => {
            let key = SignKey::generate();
            let public = key.public();
            crossgate::outln!("CROSSGATE_FX_SIGNING_KEY={}", key.to_base64());
            crossgate::outln!(
                "# public key (for auditors: crossgate fx verify --public-key ...): {}",
                checkpoint::public_base64(&public)
            );
            crossgate::outln!("# key id: {}", checkpoint::key_id(&public));
            Ok(ExitCode::SUCCESS)
        }
        FxCommand::Report {
            date,
            from,
            to,
            revalue_at,
            json: as_json,
            api,
        } => {
            let day = |flag: &str, d: &str| parse_when(flag, d).map(|t| t.date_naive());
            let (from, to) = match (date, from, to) {
                (Some(d), _, _) => (day("--date", &d)?, day("--date", &d)?),
                (None, Some(f), Some(t)) => (day("--from", &f)?, day("--to", &t)?),
                _ => bail!("give --date, or --from and --to"),
            };
            if from > to {
                bail!("--from {from} is after --to {to}");
            }
            let range = crossgate::fx::log::ReportRange {
                from,
                to,
                revalue_at: revalue_at.map(|d| day("--revalue-at", &d)).transpose()?,
            };
            let reach = Reach::connect(&config, &api).await?;
            let pairs = reach.fx_report(&range, config.fx.max_age_days).await?;
            if as_json {
                crossgate::outln!("{}", serde_json::to_string_pretty(&pairs)?);
            } else {
                print_report(&pairs);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `fx verify`: the store's (or the daemon's) verification, or an export's offline, then the
/// signed checkpoints when a public key is given.
async fn verify(
    config: &Config,
    public_key: Option<String>,
    checkpoints: Option<PathBuf>,
    log: Option<PathBuf>,
    api: &ApiArgs,
) -> Result<ExitCode> {
    let key = public_key.as_deref().map(read_public_key).transpose()?;
    // The entries checked, the head, what was found; and the log's entries themselves when a
    // key asks for the checkpoints to be checked against them.
    let (count, head_seq, mut findings, entries, reach) = match &log {
        Some(path) => {
            let (entries, mut findings) = read_export(path)?;
            findings.extend(crossgate::fx::log::verify(&entries, None));
            let head = entries.last().map_or(0, |e| e.seq);
            (entries.len() as u64, head, findings, entries, None)
        }
        None => {
            let reach = Reach::connect(config, api).await?;
            let v = reach.fx_verify().await?;
            crossgate::outln!(
                "{} order(s) checked against their conversions",
                v.orders_checked
            );
            let entries = if key.is_some() {
                let all = reach
                    .fx_log(&crossgate::fx::LogFilter::everything())
                    .await?;
                all.into_iter().map(|(e, _)| e).collect()
            } else {
                Vec::new()
            };
            (v.entries, v.head_seq, v.findings, entries, Some(reach))
        }
    };
    if let Some(key) = &key {
        let (cps, bad) = match (&checkpoints, &reach) {
            (Some(path), _) => checkpoint::read_file(path)
                .with_context(|| format!("reading checkpoints from {}", path.display()))?,
            (None, Some(reach)) => (reach.fx_checkpoints().await?, Vec::new()),
            (None, None) => bail!("--log needs --checkpoints"),
        };
        findings.extend(bad);
        let a = checkpoint::check_anchors(&entries, &cps, key);
        findings.extend(a.findings);
        if a.signed == 0 {
            findings.push(Finding {
                entry: "checkpoints".into(),
                problem: format!(
                    "none of {} checkpoint(s) is signed by key {}: nothing anchors the log",
                    cps.len(),
                    checkpoint::key_id(key)
                ),
            });
        }
        let unanchored = head_seq.saturating_sub(a.anchored_seq);
        crossgate::outln!(
            "{} signed checkpoint(s) by key {}; anchored up to fx.{}{}",
            a.signed,
            checkpoint::key_id(key),
            a.anchored_seq,
            if unanchored > 0 {
                format!(" ({unanchored} newer entries are not anchored yet)")
            } else {
                String::new()
            }
        );
    }
    for f in &findings {
        crossgate::outln!("{}: {}", f.entry, f.problem);
    }
    crossgate::outln!(
        "{count} entries checked (head fx.{head_seq}): {}",
        if findings.is_empty() {
            "the log is intact".to_string()
        } else {
            format!("{} problem(s)", findings.len())
        }
    );
    Ok(if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A public key given on the command line, or the file holding it.
fn read_public_key(text: &str) -> Result<ed25519_dalek::VerifyingKey> {
    let path = Path::new(text);
    let text = if path.is_file() {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    } else {
        text.to_string()
    };
    checkpoint::parse_public_key(&text).context("--public-key")
}

/// The entries of a JSON-lines export, each as hashed (the export's extra fields ignored);
/// an unreadable line is a finding.
fn read_export(path: &Path) -> Result<(Vec<FxEntry>, Vec<Finding>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(checkpoint::json_lines(&text, path, "an FX log entry"))
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
        return reach.fx_log_csv(filter).await;
    }
    for item in reach.fx_log(filter).await? {
        let line = crossgate::ingress::answers::FxLogItem::from(item);
        crossgate::outln!("{}", serde_json::to_string(&line)?);
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
