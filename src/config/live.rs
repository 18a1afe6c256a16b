//! The running configuration, reloadable without a restart (`SIGHUP`, `POST /v1/admin/reload`).
//!
//! A reload reads the same file again through the same two phases as start-up, so adapter
//! files, rule packs and the manual rate table are validated whole before anything changes.
//! Then it switches atomically: a request or a job pass works on one generation from start to
//! end. On any problem the running generation stays and the problem is kept for the API, the
//! log and a metric. What the process built once at start-up (the listener, the store
//! connection, the logger, the set of instances and which of them are polled) cannot change
//! this way: a reload that changes it is refused and names what needs a restart.

use std::collections::BTreeSet;
use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Config, ConfigError};

/// The configuration in use, and what the last reload did.
pub struct LiveConfig {
    current: ArcSwap<Config>,
    status: std::sync::Mutex<ReloadStatus>,
    /// One reload at a time (a signal and an API call may arrive together).
    reloading: tokio::sync::Mutex<()>,
}

/// What the API reports about reloads.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ReloadStatus {
    /// 1 at start-up, one more per reload that took effect.
    pub generation: u64,
    pub loaded_at: DateTime<Utc>,
    /// Adapters loaded, with the digest of their file (changes when the file does).
    pub adapters: Vec<AdapterVersion>,
    /// Tax rule pack versions loaded.
    pub rule_packs: Vec<String>,
    pub warnings: Vec<String>,
    /// The last reload that was refused, when it came after the last one that took effect.
    pub last_failure: Option<ReloadFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct AdapterVersion {
    pub name: String,
    /// The first 12 hex digits of the SHA-256 of the adapter file.
    pub digest: String,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ReloadFailure {
    pub at: DateTime<Utc>,
    /// Every problem found, each with its place (file, path, line where known).
    pub problems: Vec<String>,
}

/// A reload that took effect.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ReloadOutcome {
    pub generation: u64,
    /// Adapters added, removed or whose file changed.
    pub adapters_changed: Vec<String>,
    pub rule_packs: Vec<String>,
    pub warnings: Vec<String>,
}

/// Why a reload was refused; the running configuration stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Invalid(ConfigError),
    #[error("these changes need a restart: {}", .0.join("; "))]
    NeedsRestart(Vec<String>),
}

impl ReloadError {
    pub fn problems(&self) -> Vec<String> {
        match self {
            ReloadError::Invalid(e) => e
                .issues
                .iter()
                .map(|i| format!("{}: {i}", e.file.display()))
                .collect(),
            ReloadError::NeedsRestart(v) => v
                .iter()
                .map(|c| format!("{c} cannot change while running; restart to apply it"))
                .collect(),
        }
    }
}

impl LiveConfig {
    pub fn new(config: Arc<Config>) -> Self {
        let status = ReloadStatus {
            generation: 1,
            loaded_at: Utc::now(),
            adapters: adapter_versions(&config),
            rule_packs: rule_packs(&config),
            warnings: config.warnings.clone(),
            last_failure: None,
        };
        Self {
            current: ArcSwap::new(config),
            status: std::sync::Mutex::new(status),
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    /// The generation in use now; hold it for the whole of one request or pass.
    pub fn get(&self) -> Arc<Config> {
        self.current.load_full()
    }

    /// Read every second by the jobs: the field alone, not a copy of the whole status.
    pub fn generation(&self) -> u64 {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .generation
    }

    pub fn status(&self) -> ReloadStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// One reload, logged and counted by how it was asked for and how it ended.
    pub async fn reload_reported(
        &self,
        trigger: &'static str,
    ) -> Result<ReloadOutcome, ReloadError> {
        use crate::telemetry::names::CONFIG_RELOADS;
        let result = self.reload().await;
        match &result {
            Ok(o) => {
                metrics::counter!(CONFIG_RELOADS, "trigger" => trigger, "outcome" => "applied")
                    .increment(1);
                tracing::info!(
                    trigger,
                    generation = o.generation,
                    adapters_changed = ?o.adapters_changed,
                    "configuration reloaded"
                );
                for w in &o.warnings {
                    tracing::warn!(problem = %w, "configuration warning");
                }
            }
            Err(e) => {
                metrics::counter!(CONFIG_RELOADS, "trigger" => trigger, "outcome" => "refused")
                    .increment(1);
                for p in e.problems() {
                    tracing::error!(trigger, problem = %p, "reload refused; the running configuration stays");
                }
            }
        }
        result
    }

    /// Reads the config file again and switches to it when it is valid and changes nothing
    /// that needs a restart; otherwise keeps the running generation and records why.
    pub async fn reload(&self) -> Result<ReloadOutcome, ReloadError> {
        let _one = self.reloading.lock().await;
        let old = self.get();
        // A process's environment does not change while it runs: the reload resolves `${VAR}`
        // references against the variables the running generation was read with.
        let (file, env) = (old.file.clone(), old.loaded_env.0.clone());
        // Reading adapter files and rule packs is blocking file work.
        let loaded = tokio::task::spawn_blocking(move || Config::load_with_env(&file, &env))
            .await
            .expect("config loading does not panic");
        let result =
            loaded
                .map_err(ReloadError::Invalid)
                .and_then(|new| match needs_restart(&old, &new) {
                    v if v.is_empty() => Ok(new),
                    v => Err(ReloadError::NeedsRestart(v)),
                });
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(new) => {
                let adapters = adapter_versions(&new);
                let outcome = ReloadOutcome {
                    generation: status.generation + 1,
                    adapters_changed: changed(&status.adapters, &adapters),
                    rule_packs: rule_packs(&new),
                    warnings: new.warnings.clone(),
                };
                *status = ReloadStatus {
                    generation: outcome.generation,
                    loaded_at: Utc::now(),
                    adapters,
                    rule_packs: outcome.rule_packs.clone(),
                    warnings: outcome.warnings.clone(),
                    last_failure: None,
                };
                self.current.store(Arc::new(new));
                Ok(outcome)
            }
            Err(e) => {
                status.last_failure = Some(ReloadFailure {
                    at: Utc::now(),
                    problems: e.problems(),
                });
                Err(e)
            }
        }
    }
}

fn adapter_versions(config: &Config) -> Vec<AdapterVersion> {
    config
        .registry
        .all()
        .map(|a| AdapterVersion {
            name: a.name().to_string(),
            digest: a.digest().to_string(),
        })
        .collect()
}

fn rule_packs(config: &Config) -> Vec<String> {
    config.tax.packs.versions().cloned().collect()
}

/// Adapter names added, removed or changed between two loads.
fn changed(old: &[AdapterVersion], new: &[AdapterVersion]) -> Vec<String> {
    let names: BTreeSet<&str> = old.iter().chain(new).map(|a| a.name.as_str()).collect();
    names
        .into_iter()
        .filter(|n| {
            let find = |v: &[AdapterVersion]| v.iter().find(|a| a.name == *n).cloned();
            find(old) != find(new)
        })
        .map(str::to_string)
        .collect()
}

/// What differs between two loads that the running process built once at start-up.
fn needs_restart(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let (a, b) = (&old.server, &new.server);
    if a.listen != b.listen {
        out.push("[server] listen".to_string());
    }
    if a.body_limit != b.body_limit {
        out.push("[server] body_limit_bytes".to_string());
    }
    if a.max_in_flight != b.max_in_flight {
        out.push("[server] max_in_flight".to_string());
    }
    if a.header_read_timeout != b.header_read_timeout {
        out.push("[server] header_read_timeout_secs".to_string());
    }
    let (a, b) = (&old.store, &new.store);
    let secret = |s: &crate::secret::Secret| s.expose().to_string();
    if a.backend != b.backend
        || a.path != b.path
        || secret(&a.redis_url) != secret(&b.redis_url)
        || a.redis_nodes
            .iter()
            .map(secret)
            .ne(b.redis_nodes.iter().map(secret))
        || a.redis_prefix != b.redis_prefix
        || a.replica_acks != b.replica_acks
        || a.lease_ttl != b.lease_ttl
    {
        out.push("[store]".to_string());
    }
    if old.log.traces.otlp_endpoint != new.log.traces.otlp_endpoint
        || old.log.traces.service_name != new.log.traces.service_name
    {
        out.push("[telemetry]".to_string());
    }
    if old.log.level != new.log.level || old.log.json != new.log.json {
        out.push("[log]".to_string());
    }
    let ids = |c: &Config| -> Vec<(String, bool)> {
        c.instances
            .values()
            .map(|i| (i.id.clone(), i.poll))
            .collect()
    };
    if ids(old) != ids(new) {
        out.push(
            "the set of [[instance]] entries (added, removed, or poll turned on or off)".into(),
        );
    }
    if old.jobs.every.is_some() != new.jobs.every.is_some() {
        out.push("[jobs] every (turning the scheduled jobs on or off)".to_string());
    }
    out
}
