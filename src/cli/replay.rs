//! `crossgate replay`: normalize a payload offline with an adapter and print the canonical JSON.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{Value, json};

use crossgate::adapter::{Headers, RecordContext, Registry};
use crossgate::config::Config;

#[derive(Args)]
pub struct ReplayArgs {
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
            Some(Source::FirstOf(named)) => format!(
                "no topic: the body has a value at none of {} (an encrypted notification is decrypted only by the daemon, which holds the key)",
                named
                    .values()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
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

pub fn replay(config_path: &Path, args: ReplayArgs) -> Result<std::process::ExitCode> {
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
    use crossgate::pipeline::Sorted;
    match crossgate::pipeline::sort(adapter.normalize(&headers, &body, &ctx)) {
        Sorted::Items {
            records, failures, ..
        } => {
            let failures: Vec<Value> = failures
                .iter()
                .map(|(item, e)| {
                    json!({
                        "item": item,
                        "kind": e.kind(),
                        "detail": e.to_string(),
                        "errors": e.fields(),
                    })
                })
                .collect();
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
        Sorted::Ignored => {
            // Nothing was normalized: say what is missing, and fail so scripts notice.
            let reason = ignored_reason(adapter, &headers, &body);
            eprintln!("{}", json!({"status": "ignored", "reason": reason}));
            Ok(std::process::ExitCode::from(2))
        }
        Sorted::Refused(e) => {
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
