//! The `crossgate` command line. `anyhow` is used here and nowhere else.

mod bench;
mod demo;

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
    /// List or replay dead letters through a running daemon's API.
    #[command(subcommand)]
    DeadLetters(DeadLetterCommand),
    /// Post the real sample deliveries, correctly signed, to a running daemon and show what
    /// was stored.
    Demo(demo::DemoArgs),
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
        Command::DeadLetters(cmd) => dead_letters(&cli.config, cmd).await?,
        Command::Demo(args) => demo::run(&cli.config, args).await?,
        Command::Bench(cmd) => bench::run(&cli.config, cmd).await?,
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn load_config(path: &Path) -> Result<Config> {
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
    let (store, persistence) = store::open(&config)
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

fn check_config(path: &Path) -> std::process::ExitCode {
    match Config::load(path) {
        Ok(cfg) => {
            println!("{}: OK", path.display());
            println!(
                "  store: {:?} ({})",
                cfg.store.backend,
                match cfg.store.backend {
                    crossgate::config::Backend::Embedded => cfg.store.path.display().to_string(),
                    crossgate::config::Backend::Redis => "redis".to_string(),
                }
            );
            println!(
                "  adapters: {}",
                cfg.registry.names().collect::<Vec<_>>().join(", ")
            );
            for inst in cfg.instances.values() {
                println!(
                    "  instance {} -> adapter {} ({})",
                    inst.id,
                    inst.adapter.name(),
                    inst.account
                );
            }
            for var in &cfg.dev_defaults {
                println!("  warning: ${{{var}}} is unset; its DEV-ONLY default is used");
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn replay(config_path: &Path, args: ReplayArgs) -> Result<std::process::ExitCode> {
    let dir = match &args.adapters {
        Some(d) => d.clone(),
        None => match Config::load(config_path) {
            Ok(cfg) => cfg
                .file
                .parent()
                .unwrap_or(Path::new("."))
                .join("../adapters"),
            Err(_) => PathBuf::from("adapters"),
        },
    };
    let registry = Registry::load_dir(&dir).map_err(|errors| {
        anyhow::anyhow!(
            "adapter files have problems:\n{}",
            errors
                .iter()
                .map(|e| format!("  - {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    let adapter = registry.get(&args.adapter).with_context(|| {
        format!(
            "no adapter '{}' in {} (known: {})",
            args.adapter,
            dir.display(),
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
            println!("{}", serde_json::to_string_pretty(&records)?);
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
            println!(
                "{}",
                json!({"status": "ignored", "reason": "the topic is not routed to a record"})
            );
            Ok(std::process::ExitCode::SUCCESS)
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
                path.push_str(&format!("&channel={i}"));
            }
            let (status, body) = client.get(&path).await?;
            if status != 200 {
                bail!("the daemon answered {status}: {body}");
            }
            if as_json {
                println!("{}", serde_json::to_string_pretty(&body)?);
                return Ok(());
            }
            let items = body["items"].as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                println!("no dead letters");
                return Ok(());
            }
            println!(
                "{:<48} {:<16} {:<25} {:<10} {:>7}  problem",
                "id", "instance", "received_at", "kind", "replays"
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
                println!(
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
                println!("(more: use the API with cursor={next})");
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
                    println!("{id}: resolved {}", body["records"]);
                } else {
                    failed += 1;
                    println!("{id}: {status} {}", body["detail"].as_str().unwrap_or(""));
                }
            }
            println!("{ok} resolved, {failed} still failing");
            if failed > 0 {
                bail!("{failed} dead letter(s) could not be replayed");
            }
        }
    }
    Ok(())
}
