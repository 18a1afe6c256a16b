//! `crossgate serve` and `crossgate check-config`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::Value;

use crossgate::config::Config;
use crossgate::{daemon, telemetry, with_store};

use super::load_config;

pub async fn serve(config_path: &Path) -> Result<()> {
    let config = Arc::new(load_config(config_path)?);
    telemetry::init_tracing(&config.log.level, config.log.json, &config.log.traces);
    let _ = telemetry::metrics();
    for var in &config.dev_defaults {
        tracing::warn!(
            variable = %var,
            "DEV-ONLY default secret in use; set the environment variable before going live"
        );
    }
    for w in &config.warnings {
        tracing::warn!(problem = %w, "configuration warning");
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
    telemetry::otel::flush();
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

pub fn check_config(path: &Path) -> std::process::ExitCode {
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
            for w in &cfg.warnings {
                crossgate::outln!("  warning: {w}");
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
