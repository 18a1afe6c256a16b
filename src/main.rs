//! The `crossgate` command line. `anyhow` is used here and nowhere else.

mod bench;
mod demo;
mod jobs_cli;

/// Parsing payloads allocates many small objects; mimalloc makes that markedly cheaper than the
/// system allocator (measured in the ingest load test; see README "Performance").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

use crossgate::adapter::{Headers, RecordContext, Registry, Routed};
use crossgate::config::Config;
use crossgate::fx::store::FxStore;
use crossgate::{daemon, store, telemetry, with_store};

#[derive(Parser)]
#[command(
    name = "crossgate",
    version,
    about = "Cross-border channel integration gateway",
    long_about = "Takes orders and listings in from sales channels (signed webhooks, polling, \
                  imports), normalizes them into one canonical model and stores them.\n\n\
                  Start with `crossgate serve` (embedded store, no setup) and `crossgate demo`."
)]
struct Cli {
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
    Replay(ReplayArgs),
    /// Import a file of orders (phone / call-centre CSV). Reports every bad row by line and
    /// column and stores every good order; importing the same file again stores nothing new.
    Import(ImportArgs),
    /// Take in a channel's orders updated since a date by polling its API (resumable: run the
    /// same command again after an interruption and it continues where it stopped).
    Backfill(BackfillArgs),
    /// List the orders of an instance seen by polling but never pushed by its webhooks, and the
    /// reverse.
    Reconcile(ReconcileArgs),
    /// Landed cost of an order: which customs/tax regime applies, every tax and duty line with
    /// who collects it, and why (canonical order JSON in).
    Quote(QuoteArgs),
    /// Exchange rates and the FX log (finance).
    #[command(subcommand)]
    Fx(FxCommand),
    /// List or replay dead letters through a running daemon's API.
    #[command(subcommand)]
    DeadLetters(DeadLetterCommand),
    /// Post the real sample deliveries, correctly signed, to a running daemon and show what
    /// was stored.
    Demo(demo::DemoArgs),
    /// Recommendation and ranking jobs.
    #[command(subcommand)]
    Jobs(jobs_cli::JobsCommand),
    /// Measure the recommendation strategies offline on a public dataset (P@k, R@k, NDCG@k,
    /// HR@k); fetch the datasets with scripts/fetch-datasets.sh.
    Eval(jobs_cli::EvalArgs),
    /// Load tools: measure ingest throughput and latency.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

#[derive(Args)]
struct ReplayArgs {
    /// Adapter name (a file in the adapters directory).
    #[arg(long)]
    adapter: String,
    /// Payload file, exactly as the channel sends it.
    #[arg(long)]
    file: PathBuf,
    /// A header the adapter reads, e.g. --header 'X-Shopify-Topic: orders/create'. Repeatable.
    #[arg(long = "header", value_name = "'NAME: VALUE'")]
    headers: Vec<String>,
    /// Adapters directory (default: the one the config names).
    #[arg(long)]
    adapters: Option<PathBuf>,
    /// Instance id to put on the records.
    #[arg(long, default_value = "replay")]
    instance: String,
    /// An instance setting the adapter reads, e.g. --setting currency=USD. Repeatable.
    #[arg(long = "setting", value_name = "NAME=VALUE")]
    settings: Vec<String>,
}

#[derive(Subcommand)]
enum FxCommand {
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

#[derive(Args)]
struct QuoteArgs {
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

#[derive(Args)]
struct BackfillArgs {
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
struct ReconcileArgs {
    #[arg(long)]
    instance: String,
    /// Only orders updated since: RFC 3339 time or YYYY-MM-DD.
    #[arg(long)]
    since: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ImportArgs {
    /// Adapter of the file's format (e.g. phone; see its file in adapters/ for the columns).
    #[arg(long)]
    adapter: String,
    /// The file to import.
    #[arg(long)]
    file: PathBuf,
    /// Instance to import into (default: the only configured instance of that adapter).
    #[arg(long)]
    instance: Option<String>,
    /// Send to the running daemon at this URL instead of writing the store directly. Without
    /// it, the daemon at the config's listen address is used when it answers, else the store.
    #[arg(long)]
    url: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum DeadLetterCommand {
    /// List dead letters, oldest first.
    List {
        /// Only this channel instance.
        #[arg(long)]
        instance: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Normalize dead letters again with the current adapters.
    Replay {
        /// Dead letter id (as listed).
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        /// Replay every dead letter.
        #[arg(long, conflicts_with = "id")]
        all: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Args, Clone)]
pub struct ApiArgs {
    /// Base URL of the running daemon (default: the config's listen address).
    #[arg(long)]
    pub url: Option<String>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<std::process::ExitCode> {
    match cli.command {
        Command::Serve => serve(&cli.config).await?,
        Command::CheckConfig => return Ok(check_config(&cli.config)),
        Command::Replay(args) => return replay(&cli.config, args),
        Command::Import(args) => return import(&cli.config, args).await,
        Command::Fx(cmd) => return fx(&cli.config, cmd).await,
        Command::Quote(args) => return quote(&cli.config, args).await,
        Command::Backfill(args) => backfill(&cli.config, args).await?,
        Command::Reconcile(args) => return reconcile(&cli.config, args).await,
        Command::DeadLetters(cmd) => dead_letters(&cli.config, cmd).await?,
        Command::Demo(args) => demo::run(&cli.config, args).await?,
        Command::Bench(cmd) => bench::run(&cli.config, cmd).await?,
        Command::Jobs(cmd) => jobs_cli::jobs(&cli.config, cmd).await?,
        Command::Eval(args) => jobs_cli::eval_cmd(&cli.config, args).await?,
    }
    Ok(std::process::ExitCode::SUCCESS)
}

pub(crate) fn load_config(path: &Path) -> Result<Config> {
    Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}

async fn serve(config_path: &Path) -> Result<()> {
    let config = Arc::new(load_config(config_path)?);
    telemetry::init_logging(&config.log.level, config.log.json);
    let _ = telemetry::metrics();
    for var in &config.dev_defaults {
        tracing::warn!(
            variable = %var,
            "DEV-ONLY default secret in use; set the environment variable before going live"
        );
    }
    let (store, persistence) = crossgate::backend::open(&config.store)
        .await
        .with_context(|| format!("opening the {:?} store", config.store.backend))?;
    if let Some(p) = persistence {
        if p.fsyncs_every_write() {
            tracing::info!("redis persists every write before replying (AOF, appendfsync always)");
        } else {
            tracing::warn!(
                appendonly = p.appendonly.as_deref().unwrap_or("unknown"),
                appendfsync = p.appendfsync.as_deref().unwrap_or("unknown"),
                "redis does not fsync every write: a Redis crash can lose acknowledged deliveries \
                 (set redis_require_fsync = true to refuse this)"
            );
        }
    }
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding {}", config.server.listen))?;
    tracing::info!(
        listen = %config.server.listen,
        store = ?config.store.backend,
        instances = config.instances.len(),
        "crossgate is serving"
    );
    with_store!(store, s => daemon::run(s, config.clone(), listener, daemon::shutdown_signal()).await)?;
    tracing::info!("stopped");
    Ok(())
}

/// The adapter files checked against the adapter JSON Schema (`schemas/adapter.schema.json`
/// next to the adapters directory, else the built-in copy). Problems, one per line.
fn schema_problems(config_path: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(config_path) else {
        return Vec::new(); // Config::load reports it
    };
    let Ok(raw) = crossgate::config::parse(&text) else {
        return Vec::new();
    };
    let base = config_path.parent().unwrap_or(Path::new("."));
    let adapters = base.join(&raw.adapters_dir);
    let schema_file = adapters.join("../schemas/adapter.schema.json");
    let schema: Value = match std::fs::read_to_string(&schema_file) {
        Ok(t) => match serde_json::from_str(&t) {
            Ok(v) => v,
            Err(e) => return vec![format!("{}: {e}", schema_file.display())],
        },
        Err(_) => {
            let (_, s) = crossgate::schemas::all()
                .into_iter()
                .find(|(n, _)| *n == "adapter.schema.json")
                .expect("the adapter schema is built in");
            s.to_value()
        }
    };
    crossgate::schemas::check_adapter_files(&schema, &adapters).unwrap_or_else(|e| vec![e])
}

fn check_config(path: &Path) -> std::process::ExitCode {
    let schema = schema_problems(path);
    if !schema.is_empty() {
        eprintln!(
            "{} problem(s) in adapter files (checked against the adapter JSON Schema):",
            schema.len()
        );
        for p in &schema {
            eprintln!("  - {p}");
        }
    }
    match Config::load(path) {
        Ok(cfg) => {
            crossgate::outln!("{}: OK", path.display());
            crossgate::outln!(
                "  store: {:?} ({})",
                cfg.store.backend,
                match cfg.store.backend {
                    crossgate::config::Backend::Embedded => cfg.store.path.display().to_string(),
                    crossgate::config::Backend::Redis => "redis".to_string(),
                }
            );
            crossgate::outln!(
                "  adapters: {}",
                cfg.registry.names().collect::<Vec<_>>().join(", ")
            );
            for inst in cfg.instances.values() {
                crossgate::outln!(
                    "  instance {} -> adapter {} ({})",
                    inst.id,
                    inst.adapter.name(),
                    inst.account
                );
            }
            crossgate::outln!(
                "  tax rule packs: {} (active: {})",
                cfg.tax
                    .packs
                    .versions()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                cfg.tax
                    .packs
                    .active()
                    .map(|p| p.version.clone())
                    .unwrap_or_else(|| "none: cross-border orders are held as tax_pending".into())
            );
            for var in &cfg.dev_defaults {
                crossgate::outln!("  warning: ${{{var}}} is unset; its DEV-ONLY default is used");
            }
            if schema.is_empty() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The adapters `replay` reads: `--adapters DIR`, else the config's `adapters_dir`.
fn replay_registry(config_path: &Path, args: &ReplayArgs) -> Result<(Registry, String)> {
    if let Some(dir) = &args.adapters {
        let registry = Registry::load_dir(dir).map_err(|errors| {
            anyhow::anyhow!(
                "adapter files in {} have problems:\n{}",
                dir.display(),
                errors
                    .iter()
                    .map(|e| format!("  - {e}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        })?;
        return Ok((registry, dir.display().to_string()));
    }
    let config = Config::load(config_path).map_err(|e| {
        anyhow::anyhow!("{e}\n(replay reads the config's adapters_dir; or pass --adapters DIR)")
    })?;
    let from = format!("the adapters_dir of {}", config.file.display());
    Ok((config.registry, from))
}

/// Why a delivery was ignored, in words that say what to add.
fn ignored_reason(adapter: &crossgate::adapter::Adapter, headers: &Headers, body: &[u8]) -> String {
    use crossgate::adapter::spec::Source;
    let Some(webhook) = adapter.spec().webhook.as_ref() else {
        return "the adapter has no [webhook] section".into();
    };
    let doc = adapter.parse(body).ok();
    match adapter.topic(headers, doc.as_ref()) {
        None => match &webhook.topic {
            Some(Source::Header(name)) => format!(
                "no topic: the adapter reads it from the {name} header; pass --header '{name}: <topic>'"
            ),
            Some(Source::Body(path)) => {
                format!("no topic: the body has no value at {}", path.as_str())
            }
            Some(Source::Fields(_)) | None => {
                "no topic, and the adapter routes deliveries by topic".into()
            }
        },
        Some(_) => {
            let routed: Vec<&str> = webhook
                .routes
                .iter()
                .flat_map(|r| r.topics.iter().map(String::as_str))
                .collect();
            format!(
                "the topic is not one the adapter routes (routed: {})",
                routed.join(", ")
            )
        }
    }
}

fn replay(config_path: &Path, args: ReplayArgs) -> Result<std::process::ExitCode> {
    let (registry, from) = replay_registry(config_path, &args)?;
    let adapter = registry.get(&args.adapter).with_context(|| {
        format!(
            "no adapter '{}' in {from} (known: {})",
            args.adapter,
            registry.names().collect::<Vec<_>>().join(", ")
        )
    })?;
    let body =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let mut headers = Headers::default();
    for h in &args.headers {
        let (k, v) = h
            .split_once(':')
            .with_context(|| format!("--header '{h}' is not 'Name: value'"))?;
        headers.push(k.trim(), v.trim());
    }
    let mut settings = std::collections::BTreeMap::new();
    for kv in &args.settings {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--setting '{kv}' is not NAME=VALUE"))?;
        settings.insert(k.trim().to_string(), v.trim().to_string());
    }
    let ctx = RecordContext {
        instance: &args.instance,
        channel: adapter.name(),
        channel_kind: adapter.spec().channel_kind,
        account: "replay",
        settings: &settings,
        received_at: chrono::Utc::now(),
    };
    match adapter.normalize(&headers, &body, &ctx) {
        Ok(Routed::Items(items)) => {
            let mut records = Vec::new();
            let mut failures = Vec::new();
            for item in items {
                match item.result {
                    Ok(r) => records.extend(r),
                    Err(e) => failures.push(json!({
                        "item": item.index,
                        "kind": e.kind(),
                        "detail": e.to_string(),
                        "errors": e.fields(),
                    })),
                }
            }
            crossgate::outln!("{}", serde_json::to_string_pretty(&records)?);
            if failures.is_empty() {
                Ok(std::process::ExitCode::SUCCESS)
            } else {
                eprintln!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({"status": "not_normalizable", "failures": failures})
                    )?
                );
                Ok(std::process::ExitCode::FAILURE)
            }
        }
        Ok(Routed::Ignored) => {
            // Nothing was normalized: say what is missing, and fail so scripts notice.
            let reason = ignored_reason(adapter, &headers, &body);
            eprintln!("{}", json!({"status": "ignored", "reason": reason}));
            Ok(std::process::ExitCode::from(2))
        }
        Err(e) => {
            eprintln!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "status": "not_normalizable",
                    "kind": e.kind(),
                    "detail": e.to_string(),
                    "errors": e.fields(),
                }))?
            );
            Ok(std::process::ExitCode::FAILURE)
        }
    }
}

async fn quote(config_path: &Path, args: QuoteArgs) -> Result<std::process::ExitCode> {
    let config = load_config(config_path)?;
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let order = crossgate::tax::order_from_json(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let annual: rust_decimal::Decimal = args
        .annual_cny
        .parse()
        .context("--annual-cny must be a decimal")?;
    // Rates for thresholds in other currencies: the store's (through the daemon if it runs).
    let docs = match access(config_path, &config, &args.api).await? {
        Access::Store(s) => with_store!(&s, st => st.fx_docs().await)?,
        Access::Api(c) => {
            let mut req = c
                .http()
                .post(format!("{}/v1/quote", c.base()))
                .body(bytes.clone());
            let mut q: Vec<(&str, String)> = vec![("annual_cny", annual.to_string())];
            if let Some(p) = &args.pack {
                q.push(("pack", p.clone()));
            }
            req = req.query(&q);
            if let Some(t) = c.token() {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await?;
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                bail!("the daemon answered {status}: {body}");
            }
            let q: crossgate::tax::Quote = serde_json::from_value(body)?;
            print_quote(&q, &args.format)?;
            return Ok(exit_for(&q));
        }
    };
    let book = crossgate::fx::book::RateBook::new(docs, config.fx.max_age_days);
    let q = crossgate::tax::quote_order(&order, &config.tax, args.pack.as_deref(), &book, annual)
        .map_err(|e| anyhow::anyhow!(e))?;
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

/// The daemon's API when it answers, else the store itself.
enum Access {
    Api(ApiClient),
    Store(crossgate::backend::AnyStore),
}

async fn access(config_path: &Path, config: &Config, api: &ApiArgs) -> Result<Access> {
    let client = ApiClient::new(config_path, api)?;
    let up = client
        .http()
        .get(format!("{}/healthz", client.base()))
        .timeout(std::time::Duration::from_secs(2))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    if up {
        return Ok(Access::Api(client));
    }
    if api.url.is_some() {
        bail!("the daemon at {} does not answer", client.base());
    }
    Ok(Access::Store(open_store_for_cli(config).await?))
}

#[expect(clippy::too_many_lines, reason = "split owed, issue 11")]
async fn fx(config_path: &Path, cmd: FxCommand) -> Result<std::process::ExitCode> {
    use crossgate::fx::rates::RateSource;
    let config = load_config(config_path)?;
    match cmd {
        FxCommand::Sync { ecb, manual, api } => {
            let mut docs = Vec::new();
            let now = chrono::Utc::now();
            match (ecb, manual) {
                (Some(e), _) => {
                    docs.push(crossgate::fx::read_document(RateSource::Ecb, &e, now).await?)
                }
                (None, Some(m)) => docs.push(
                    crossgate::fx::read_document(RateSource::Manual, &m.display().to_string(), now)
                        .await?,
                ),
                (None, None) => {
                    if let Some(m) = &config.fx.manual_rates {
                        docs.push(
                            crossgate::fx::read_document(
                                RateSource::Manual,
                                &m.display().to_string(),
                                now,
                            )
                            .await?,
                        );
                    }
                    if let Some(e) = &config.fx.ecb_source {
                        docs.push(crossgate::fx::read_document(RateSource::Ecb, e, now).await?);
                    }
                    if docs.is_empty() {
                        bail!(
                            "no rate source: give --ecb or --manual, or set fx.ecb_source / fx.manual_rates"
                        );
                    }
                }
            }
            let access = access(config_path, &config, &api).await?;
            for doc in docs {
                let summary = format!(
                    "{} {} ({} day(s){}) hash {}",
                    doc.source.as_str(),
                    doc.origin,
                    doc.days.len(),
                    match (doc.days.first(), doc.days.last()) {
                        (Some(a), Some(b)) => format!(", {} .. {}", a.date, b.date),
                        _ => format!(", {} manual rate(s)", doc.manual.len()),
                    },
                    &doc.hash[..12]
                );
                let new = match &access {
                    Access::Store(s) => with_store!(s, st => st.fx_put_doc(doc).await)?,
                    Access::Api(c) => {
                        let bytes = match doc.source {
                            RateSource::Ecb => {
                                crossgate::fx::read_document_bytes(&doc.origin).await?
                            }
                            RateSource::Manual => std::fs::read(&doc.origin)?,
                        };
                        let mut req = c
                            .http()
                            .post(format!("{}/v1/fx/rates", c.base()))
                            .query(&[
                                ("source", doc.source.as_str()),
                                ("origin", doc.origin.as_str()),
                            ])
                            .body(bytes);
                        if let Some(t) = c.token() {
                            req = req.bearer_auth(t);
                        }
                        let resp = req.send().await?;
                        let status = resp.status();
                        let body: Value = resp.json().await.unwrap_or(Value::Null);
                        if !status.is_success() {
                            bail!("the daemon answered {status}: {body}");
                        }
                        body["stored"].as_bool().unwrap_or(false)
                    }
                };
                crossgate::outln!(
                    "{summary}: {}",
                    if new { "stored" } else { "already stored" }
                );
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        FxCommand::Log {
            from,
            to,
            currency,
            order,
            format,
            api,
        } => {
            let filter = crossgate::fx::LogFilter {
                from: from
                    .as_deref()
                    .map(|d| parse_when("--from", d).map(|t| t.date_naive()))
                    .transpose()?,
                to: to
                    .as_deref()
                    .map(|d| parse_when("--to", d).map(|t| t.date_naive()))
                    .transpose()?,
                currency,
                order,
            };
            let access = access(config_path, &config, &api).await?;
            let mut after = 0u64;
            let mut first = true;
            loop {
                let (items, next): (
                    Vec<(crossgate::fx::log::FxEntry, Option<String>)>,
                    Option<u64>,
                ) = match &access {
                    Access::Store(s) => {
                        with_store!(s, st => crossgate::fx::export_page(st, &filter, after, 1000).await)?
                    }
                    Access::Api(c) => {
                        let mut q: Vec<(String, String)> = vec![
                            ("format".into(), "json".into()),
                            ("limit".into(), "500".into()),
                            ("cursor".into(), after.to_string()),
                        ];
                        if let Some(f) = filter.from {
                            q.push(("from".into(), f.to_string()));
                        }
                        if let Some(t) = filter.to {
                            q.push(("to".into(), t.to_string()));
                        }
                        if let Some(c) = &filter.currency {
                            q.push(("currency".into(), c.clone()));
                        }
                        if let Some(o) = &filter.order {
                            q.push(("order".into(), o.clone()));
                        }
                        let mut req = c.http().get(format!("{}/v1/fx/log", c.base())).query(&q);
                        if let Some(t) = c.token() {
                            req = req.bearer_auth(t);
                        }
                        let body: Value = req.send().await?.json().await?;
                        let items = body["items"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default()
                            .into_iter()
                            .map(|mut v| {
                                let by = v["superseded_by"].as_str().map(str::to_string);
                                if let Some(o) = v.as_object_mut() {
                                    o.remove("superseded_by");
                                }
                                serde_json::from_value(v).map(|e| (e, by))
                            })
                            .collect::<Result<Vec<_>, _>>()?;
                        (items, body["next_cursor"].as_u64())
                    }
                };
                for (e, by) in &items {
                    if format == "csv" {
                        if first {
                            crossgate::outln!("{}", crossgate::fx::log::CSV_HEADER);
                            first = false;
                        }
                        crossgate::outln!("{}", crossgate::fx::log::csv_row(e, by.as_deref()));
                    } else {
                        let mut v = serde_json::to_value(e)?;
                        v["superseded_by"] = json!(by);
                        crossgate::outln!("{}", serde_json::to_string(&v)?);
                    }
                }
                match next {
                    Some(n) => after = n,
                    None => break,
                }
            }
            if format == "csv" && first {
                crossgate::outln!("{}", crossgate::fx::log::CSV_HEADER);
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        FxCommand::Verify { api } => {
            let access = access(config_path, &config, &api).await?;
            let v: Value = match &access {
                Access::Store(s) => serde_json::to_value(
                    with_store!(s, st => crossgate::fx::verify_log(st).await)?,
                )?,
                Access::Api(c) => {
                    let (status, body) = c.get("/v1/fx/verify").await?;
                    if status != 200 {
                        bail!("the daemon answered {status}: {body}");
                    }
                    body
                }
            };
            let findings = v["findings"].as_array().cloned().unwrap_or_default();
            for f in &findings {
                crossgate::outln!(
                    "{}: {}",
                    f["entry"].as_str().unwrap_or("?"),
                    f["problem"].as_str().unwrap_or("")
                );
            }
            crossgate::outln!(
                "{} entries checked (head fx.{}): {}",
                v["entries"],
                v["head_seq"],
                if findings.is_empty() {
                    "the log is intact".to_string()
                } else {
                    format!("{} problem(s)", findings.len())
                }
            );
            Ok(if findings.is_empty() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            })
        }
        FxCommand::Report {
            date,
            json: as_json,
            api,
        } => {
            let day = parse_when("--date", &date)?.date_naive();
            let access = access(config_path, &config, &api).await?;
            let pairs: Value = match &access {
                Access::Store(s) => serde_json::to_value(
                    with_store!(s, st => crossgate::fx::report(st, day, config.fx.max_age_days).await)?,
                )?,
                Access::Api(c) => {
                    let (status, body) = c.get(&format!("/v1/fx/report?date={day}")).await?;
                    if status != 200 {
                        bail!("the daemon answered {status}: {body}");
                    }
                    body["pairs"].clone()
                }
            };
            if as_json {
                crossgate::outln!("{}", serde_json::to_string_pretty(&pairs)?);
            } else {
                crossgate::outln!(
                    "{:<9} {:>6} {:>18} {:>18} {:>14} {:>14} {:>14}",
                    "pair",
                    "count",
                    "from sum",
                    "to sum",
                    "min rate",
                    "max rate",
                    "revaluation"
                );
                for p in pairs.as_array().into_iter().flatten() {
                    crossgate::outln!(
                        "{:<9} {:>6} {:>18} {:>18} {:>14} {:>14} {:>14}",
                        format!(
                            "{}/{}",
                            p["from"].as_str().unwrap_or(""),
                            p["to"].as_str().unwrap_or("")
                        ),
                        p["count"],
                        p["from_sum"].as_str().unwrap_or(""),
                        p["to_sum"].as_str().unwrap_or(""),
                        p["min_rate"].as_str().unwrap_or(""),
                        p["max_rate"].as_str().unwrap_or(""),
                        p["revaluation"].as_str().unwrap_or("")
                    );
                }
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

fn parse_when(flag: &str, s: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|d| d.to_utc())
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
        })
        .with_context(|| format!("{flag} '{s}' is not an RFC 3339 time or YYYY-MM-DD"))
}

async fn open_store_for_cli(config: &Config) -> Result<crossgate::backend::AnyStore> {
    let (s, _) = crossgate::backend::open(&config.store)
        .await
        .with_context(|| {
            format!(
                "opening the {:?} store (the embedded store can be open in one process only: stop \
             the daemon first, or use Redis)",
                config.store.backend
            )
        })?;
    Ok(s)
}

async fn backfill(config_path: &Path, args: BackfillArgs) -> Result<()> {
    use crossgate::channel::client::{ChannelClient, RetryPolicy};
    use crossgate::channel::poll::{Mode, Poller};
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
    let client = ChannelClient::new(&inst, RetryPolicy::default())?;
    let poller = Poller::new(inst.clone(), client)?;
    let s = open_store_for_cli(&config).await?;
    let bar = indicatif::ProgressBar::new_spinner().with_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .expect("valid template"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let (mut pages, mut orders, mut failed) = (0u64, 0u64, 0u64);
    let mode = Mode::Backfill { since, until };
    let state = with_store!(&s, st => poller.run(st, &mode, |p| {
        pages += 1;
        orders += p.orders as u64;
        failed += p.failed as u64;
        if let (Some(a), Some(b)) = (p.window_since, p.window_until) {
            bar.set_message(format!(
                "{pages} pages, {orders} orders, {failed} dead-lettered; window {} .. {}",
                a.format("%Y-%m-%d %H:%M"),
                b.format("%Y-%m-%d %H:%M")
            ));
        }
    }).await)?;
    bar.finish_and_clear();
    crossgate::outln!(
        "backfill of {} from {}: {pages} pages and {orders} orders this run ({} pages, {} orders in total), {failed} dead-lettered; taken in up to {}",
        inst.id,
        since.to_rfc3339(),
        state.pages,
        state.orders,
        state
            .watermark
            .map(|w| w.to_rfc3339())
            .unwrap_or_else(|| "-".into())
    );
    Ok(())
}

async fn reconcile(config_path: &Path, args: ReconcileArgs) -> Result<std::process::ExitCode> {
    let config = load_config(config_path)?;
    if !config.instances.contains_key(&args.instance) {
        bail!("no instance '{}' in the config", args.instance);
    }
    let since = args
        .since
        .as_deref()
        .map(|s| parse_when("--since", s))
        .transpose()?;
    let api = ApiClient::new(config_path, &ApiArgs { url: None })?;
    let mut path = format!("/v1/instances/{}/reconciliation", args.instance);
    if let Some(s) = since {
        path.push_str(&format!(
            "?since={}",
            s.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    let r: store::Reconciliation = match api.get(&path).await {
        Ok((200, body)) => serde_json::from_value(body["result"].clone())
            .context("unexpected reconciliation answer")?,
        Ok((status, body)) => bail!("the daemon answered {status}: {body}"),
        Err(_) => {
            let s = open_store_for_cli(&config).await?;
            use crossgate::store::Store;
            with_store!(&s, st => st.reconcile(&args.instance, since).await)?
        }
    };
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
    Ok(std::process::ExitCode::SUCCESS)
}

/// Where imported chunks go.
enum ImportSink {
    Api(ApiClient),
    Store(crossgate::backend::AnyStore),
}

#[expect(clippy::too_many_lines, reason = "split owed, issue 11")]
async fn import(config_path: &Path, args: ImportArgs) -> Result<std::process::ExitCode> {
    use crossgate::import::{self, ImportReport, RowError};
    use crossgate::model::Change;
    let config = load_config(config_path)?;
    let candidates: Vec<&String> = config
        .instances
        .values()
        .filter(|i| i.adapter.name() == args.adapter)
        .map(|i| &i.id)
        .collect();
    let instance_id = match (&args.instance, candidates.as_slice()) {
        (Some(i), _) => i.clone(),
        (None, [one]) => (*one).clone(),
        (None, []) => bail!(
            "no instance uses adapter '{}'; add one to {} (see README, \"Phone orders\")",
            args.adapter,
            config_path.display()
        ),
        (None, many) => bail!(
            "several instances use adapter '{}' ({}); choose one with --instance",
            args.adapter,
            many.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let inst = config
        .instances
        .get(&instance_id)
        .with_context(|| format!("no instance '{instance_id}' in the config"))?
        .clone();
    if inst.adapter.name() != args.adapter {
        bail!(
            "instance '{instance_id}' uses adapter '{}', not '{}'",
            inst.adapter.name(),
            args.adapter
        );
    }
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let plan = import::plan(&inst.adapter, &bytes, import::CHUNK_ORDERS)?;

    // The running daemon when there is one (the embedded store is locked by it), else the store.
    let api = ApiClient::new(
        config_path,
        &ApiArgs {
            url: args.url.clone(),
        },
    )?;
    let daemon_up = api
        .http()
        .get(format!("{}/healthz", api.base()))
        .timeout(std::time::Duration::from_secs(2))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    let sink = if daemon_up {
        eprintln!("importing through the daemon at {}", api.base());
        ImportSink::Api(api)
    } else if args.url.is_some() {
        bail!("the daemon at {} does not answer", api.base());
    } else {
        eprintln!(
            "no daemon answers; writing to the {:?} store directly",
            config.store.backend
        );
        let (s, _) = crossgate::backend::open(&config.store)
            .await
            .context("opening the store (is a daemon running on another address? use --url)")?;
        ImportSink::Store(s)
    };

    let mut report = ImportReport {
        orders: plan.orders,
        errors: plan.row_errors.clone(),
        ..Default::default()
    };
    let refused_orders: std::collections::HashSet<&str> = plan
        .row_errors
        .iter()
        .filter_map(|e| e.order_id.as_deref())
        .collect();
    report.failed = refused_orders.len();
    let bar = indicatif::ProgressBar::new(plan.orders as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} orders {msg}",
        )
        .expect("valid template"),
    );
    bar.inc(refused_orders.len() as u64);
    for chunk in &plan.chunks {
        // The mapping is pure: find every problem locally, by line and column.
        let local = crossgate::pipeline::dispose(&inst, &Headers::default(), &chunk.body);
        let mut failed_here = 0;
        for (item, e) in &local.errors {
            let orders: Vec<usize> = match item {
                Some(i) if *i < chunk.orders.len() => vec![*i],
                Some(_) => Vec::new(),
                None => (0..chunk.orders.len()).collect(),
            };
            for i in orders {
                failed_here += 1;
                let order = &chunk.orders[i];
                if e.fields().is_empty() {
                    report.errors.push(RowError {
                        line: order.lines.first().copied().unwrap_or(0),
                        column: None,
                        order_id: Some(order.order_id.clone()),
                        value: None,
                        problem: e.to_string(),
                    });
                }
                for f in e.fields() {
                    report.errors.push(chunk.locate(i, f));
                }
            }
        }
        report.failed += failed_here;
        let bad: Vec<usize> = local
            .errors
            .iter()
            .flat_map(|(item, _)| match item {
                Some(i) => vec![*i],
                None => (0..chunk.orders.len()).collect(),
            })
            .collect();
        let Some(chunk) = chunk.without(&bad) else {
            bar.inc(failed_here as u64);
            continue;
        };
        let chunk = &chunk;
        let changes: Option<Vec<Change>> = match &sink {
            ImportSink::Store(s) => {
                let r = with_store!(s, st => crossgate::pipeline::submit(
                    st,
                    &inst,
                    crossgate::pipeline::Submission::AdapterFormat,
                    Some(&chunk.key),
                    chunk.body.clone(),
                    chrono::Utc::now(),
                ).await)?;
                match r.outcome {
                    store::IngestOutcome::Duplicate { .. } => None,
                    store::IngestOutcome::Stored { records, .. } => {
                        Some(records.iter().map(|r| r.change).collect())
                    }
                }
            }
            ImportSink::Api(c) => {
                let mut req = c
                    .http()
                    .post(format!("{}/v1/instances/{instance_id}/imports", c.base()))
                    .header("Content-Type", "text/csv")
                    .header("Idempotency-Key", &chunk.key)
                    .body(chunk.body.clone());
                if let Some(t) = c.token() {
                    req = req.bearer_auth(t);
                }
                let resp = req.send().await.context("sending a chunk to the daemon")?;
                let status = resp.status();
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                if !status.is_success() {
                    bail!("the daemon answered {status}: {body}");
                }
                if body["status"] == "duplicate" {
                    None
                } else {
                    Some(
                        body["records"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|r| {
                                serde_json::from_value::<Change>(r["change"].clone()).ok()
                            })
                            .collect(),
                    )
                }
            }
        };
        match changes {
            // The same chunk was imported before: nothing new.
            None => report.unchanged += chunk.orders.len(),
            Some(changes) => {
                report.stored += changes.iter().filter(|c| c.wrote()).count();
                report.unchanged += changes.iter().filter(|c| !c.wrote()).count();
            }
        }
        bar.inc((chunk.orders.len() + failed_here) as u64);
    }
    bar.finish_and_clear();
    report.errors.sort_by_key(|e| e.line);
    if args.json {
        crossgate::outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for e in &report.errors {
            crossgate::outln!("{e}");
        }
        crossgate::outln!(
            "{}: {} orders; {} stored, {} unchanged, {} not imported ({} problem(s))",
            args.file.display(),
            report.orders,
            report.stored,
            report.unchanged,
            report.failed,
            report.errors.len()
        );
    }
    Ok(if report.ok() {
        std::process::ExitCode::SUCCESS
    } else {
        // Some rows were refused (the good orders are stored).
        std::process::ExitCode::from(2)
    })
}

/// A small client for the daemon's API.
pub struct ApiClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl ApiClient {
    pub fn new(config_path: &Path, api: &ApiArgs) -> Result<Self> {
        let cfg = Config::load(config_path).ok();
        let base = match (&api.url, &cfg) {
            (Some(u), _) => u.trim_end_matches('/').to_string(),
            (None, Some(c)) => format!("http://{}", c.server.listen),
            (None, None) => bail!("give --url, or a valid --config to find the daemon"),
        };
        let token = cfg
            .as_ref()
            .and_then(|c| c.server.api_token.as_ref())
            .map(|t| t.expose().to_string());
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { base, token, http })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    async fn call(&self, method: reqwest::Method, path: &str) -> Result<(u16, Value)> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("calling {}{path} (is the daemon running?)", self.base))?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    pub async fn get(&self, path: &str) -> Result<(u16, Value)> {
        self.call(reqwest::Method::GET, path).await
    }

    pub async fn post(&self, path: &str) -> Result<(u16, Value)> {
        self.call(reqwest::Method::POST, path).await
    }
}

async fn dead_letters(config_path: &Path, cmd: DeadLetterCommand) -> Result<()> {
    match cmd {
        DeadLetterCommand::List {
            instance,
            limit,
            json: as_json,
            api,
        } => {
            let client = ApiClient::new(config_path, &api)?;
            let mut path = format!("/v1/dead-letters?limit={limit}");
            if let Some(i) = &instance {
                path.push_str(&format!("&instance={i}"));
            }
            let (status, body) = client.get(&path).await?;
            if status != 200 {
                bail!("the daemon answered {status}: {body}");
            }
            if as_json {
                crossgate::outln!("{}", serde_json::to_string_pretty(&body)?);
                return Ok(());
            }
            let items = body["items"].as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                crossgate::outln!("no dead letters");
                return Ok(());
            }
            crossgate::outln!(
                "{:<48} {:<16} {:<25} {:<10} {:>7}  problem",
                "id",
                "instance",
                "received_at",
                "kind",
                "replays"
            );
            for dl in items {
                let first = dl["reason"]["errors"][0]["field"]
                    .as_str()
                    .map(|f| {
                        format!(
                            "{f}: {}",
                            dl["reason"]["errors"][0]["problem"].as_str().unwrap_or("")
                        )
                    })
                    .unwrap_or_else(|| dl["reason"]["message"].as_str().unwrap_or("").to_string());
                crossgate::outln!(
                    "{:<48} {:<16} {:<25} {:<10} {:>7}  {}",
                    dl["id"].as_str().unwrap_or(""),
                    dl["instance"].as_str().unwrap_or(""),
                    dl["received_at"].as_str().unwrap_or(""),
                    dl["reason"]["kind"].as_str().unwrap_or(""),
                    dl["failed_replays"],
                    first.chars().take(100).collect::<String>()
                );
            }
            if let Some(next) = body["next_cursor"].as_str() {
                crossgate::outln!("(more: use the API with cursor={next})");
            }
        }
        DeadLetterCommand::Replay { id, all, api } => {
            let client = ApiClient::new(config_path, &api)?;
            let ids: Vec<String> = if all {
                let mut ids = Vec::new();
                let mut cursor: Option<String> = None;
                loop {
                    let path = match &cursor {
                        Some(c) => format!("/v1/dead-letters?limit=500&cursor={c}"),
                        None => "/v1/dead-letters?limit=500".to_string(),
                    };
                    let (status, body) = client.get(&path).await?;
                    if status != 200 {
                        bail!("the daemon answered {status}: {body}");
                    }
                    for dl in body["items"].as_array().into_iter().flatten() {
                        if let Some(i) = dl["id"].as_str() {
                            ids.push(i.to_string());
                        }
                    }
                    match body["next_cursor"].as_str() {
                        Some(c) => cursor = Some(c.to_string()),
                        None => break,
                    }
                }
                ids
            } else {
                vec![id.expect("clap requires id unless --all")]
            };
            let (mut ok, mut failed) = (0, 0);
            for id in ids {
                let (status, body) = client
                    .post(&format!("/v1/dead-letters/{id}/replay"))
                    .await?;
                if status == 200 {
                    ok += 1;
                    crossgate::outln!("{id}: resolved {}", body["records"]);
                } else {
                    failed += 1;
                    crossgate::outln!("{id}: {status} {}", body["detail"].as_str().unwrap_or(""));
                }
            }
            crossgate::outln!("{ok} resolved, {failed} still failing");
            if failed > 0 {
                bail!("{failed} dead letter(s) could not be replayed");
            }
        }
    }
    Ok(())
}
