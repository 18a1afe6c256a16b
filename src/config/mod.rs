//! Configuration, read in two phases:
//! 1. a strict parse of the TOML file into [`raw::RawConfig`] (unknown keys are errors, reported
//!    with line and column);
//! 2. validation into [`Config`], which reports *every* problem with its path
//!    (`instance[2].secrets.webhook: …`), resolves `${ENV}` secret references against an
//!    environment map (so tests can pass their own) and loads the adapter registry.

pub mod raw;
pub use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use crate::secret::Secret;
pub use crate::store::{Backend, StoreSettings};
pub use raw::Environment;
use raw::RawConfig;

use crate::adapter::spec::SignatureSpec;
use crate::adapter::{Adapter, Registry};
use crate::model::validate_instance_id;

/// One config problem and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Everything wrong with a config file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} problem(s) in {}:\n{}", .issues.len(), .file.display(), .issues.iter().map(|i| format!("  - {i}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub file: PathBuf,
    pub issues: Vec<Issue>,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub environment: Environment,
    pub server: ServerConfig,
    pub store: StoreSettings,
    pub log: LogConfig,
    pub registry: Registry,
    pub instances: BTreeMap<String, Arc<Instance>>,
    pub fx: Arc<crate::fx::FxSettings>,
    pub tax: Arc<crate::tax::TaxSettings>,
    pub jobs: Arc<crate::reco::job::JobSettings>,
    /// Secrets that fell back to their development default (names of variables only).
    pub dev_defaults: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub body_limit: usize,
    pub request_timeout: Duration,
    pub header_read_timeout: Duration,
    pub max_in_flight: usize,
    pub api_token: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub json: bool,
    pub level: String,
}

/// A configured channel instance with its adapter and resolved secrets.
#[derive(Debug)]
pub struct Instance {
    pub id: String,
    pub adapter: Arc<Adapter>,
    pub account: String,
    /// Secrets by name; several values during a key rotation.
    pub secrets: BTreeMap<String, Vec<Secret>>,
    /// Channel settings the adapter may read.
    pub settings: BTreeMap<String, String>,
    /// The gateway's customer-key salt (`[customers] key_salt`).
    pub customer_key_salt: Option<Secret>,
    /// The daemon polls this instance's API.
    pub poll: bool,
}

impl Instance {
    /// The values of a named secret (several during a key rotation).
    pub fn secret(&self, name: &str) -> Vec<&str> {
        self.secrets
            .get(name)
            .map(|v| v.iter().map(Secret::expose).collect())
            .unwrap_or_default()
    }

    /// The secrets the adapter's webhook signature uses.
    pub fn webhook_secrets(&self) -> Vec<&str> {
        let name = self
            .adapter
            .spec()
            .webhook
            .as_ref()
            .map(|w| w.signature.secret_name())
            .unwrap_or("webhook");
        self.secret(name)
    }
}

impl Config {
    /// Reads and validates a config file against the process environment.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Self::load_with_env(file, &env)
    }

    pub fn load_with_env(file: &Path, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let err = |issues| ConfigError {
            file: file.to_path_buf(),
            issues,
        };
        let text = std::fs::read_to_string(file).map_err(|e| {
            err(vec![Issue {
                path: "(file)".into(),
                message: format!("cannot read: {e}"),
            }])
        })?;
        let raw = parse(&text).map_err(|i| err(vec![i]))?;
        let base = file.parent().unwrap_or(Path::new("."));
        validate(raw, base, file, env).map_err(err)
    }
}

/// Phase one: strict TOML parse.
pub fn parse(text: &str) -> Result<RawConfig, Issue> {
    toml::from_str(text).map_err(|e| Issue {
        path: "(syntax)".into(),
        message: e.to_string().trim_end().to_string(),
    })
}

fn resolve_path(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Phase two: validate everything, collecting every issue.
#[expect(clippy::too_many_lines, reason = "split owed, issue 11")]
pub fn validate(
    raw: RawConfig,
    base: &Path,
    file: &Path,
    env: &HashMap<String, String>,
) -> Result<Config, Vec<Issue>> {
    let mut issues = Vec::new();
    let mut dev_defaults = Vec::new();
    let production = raw.environment == Environment::Production;
    let mut issue = |path: &str, message: String| {
        issues.push(Issue {
            path: path.to_string(),
            message,
        })
    };

    let mut secret = |path: &str,
                      text: &str,
                      issue: &mut dyn FnMut(&str, String)|
     -> Option<Secret> {
        let r = match crate::secret::parse_env_ref(text) {
            Ok(r) => r,
            Err(e) => {
                issue(path, e);
                return None;
            }
        };
        match crate::secret::resolve(&r, env) {
            Ok(s) if s.from_default && production => {
                issue(
                    path,
                    format!(
                        "development default used in production; set the environment variable {}",
                        s.var
                    ),
                );
                None
            }
            Ok(s) => {
                if s.from_default {
                    dev_defaults.push(s.var.clone());
                }
                Some(s)
            }
            Err(e) => {
                issue(path, e);
                None
            }
        }
    };

    // [server]
    let listen = raw
        .server
        .listen
        .parse::<SocketAddr>()
        .map_err(|_| "must be an address and port such as 127.0.0.1:8080".to_string());
    let listen = match listen {
        Ok(a) => Some(a),
        Err(m) => {
            issue("server.listen", m);
            None
        }
    };
    if !(1024..=64 * 1024 * 1024).contains(&raw.server.body_limit_bytes) {
        issue(
            "server.body_limit_bytes",
            "must be between 1024 and 67108864 (64 MiB)".into(),
        );
    }
    for (name, v) in [
        (
            "server.request_timeout_secs",
            raw.server.request_timeout_secs,
        ),
        (
            "server.header_read_timeout_secs",
            raw.server.header_read_timeout_secs,
        ),
    ] {
        if !(1..=300).contains(&v) {
            issue(name, "must be between 1 and 300 seconds".into());
        }
    }
    if raw.server.max_in_flight == 0 {
        issue("server.max_in_flight", "must be at least 1".into());
    }
    let api_token = raw
        .server
        .api_token
        .as_deref()
        .and_then(|t| secret("server.api_token", t, &mut issue));
    if production && raw.server.api_token.is_none() {
        issue(
            "server.api_token",
            "is required in production (the /v1 API returns personal data)".into(),
        );
    }

    // [store]
    let redis_url = if raw.store.redis_url.starts_with("${") {
        secret("store.redis_url", &raw.store.redis_url, &mut issue)
    } else {
        Some(Secret::literal("(config)", &raw.store.redis_url))
    };
    if raw.store.backend == Backend::Redis
        && let Some(url) = &redis_url
        && redis::Client::open(url.expose()).is_err()
    {
        issue(
            "store.redis_url",
            "is not a valid redis:// or rediss:// URL".into(),
        );
    }
    if raw.store.redis_prefix.is_empty()
        || !raw
            .store
            .redis_prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        issue(
            "store.redis_prefix",
            "use letters, digits, '-' and '_' (no ':' or braces)".into(),
        );
    }
    if !(100..=60_000).contains(&raw.store.redis_timeout_ms) {
        issue(
            "store.redis_timeout_ms",
            "must be between 100 and 60000".into(),
        );
    }
    if raw.store.dedupe_ttl_secs < 3600 {
        issue(
            "store.dedupe_ttl_secs",
            "must be at least 3600; channels retry for hours to days".into(),
        );
    }
    if !(8..=65_536).contains(&raw.store.cache_mb) {
        issue("store.cache_mb", "must be between 8 and 65536".into());
    }
    if raw.store.raw_retention_secs < 3600 {
        issue("store.raw_retention_secs", "must be at least 3600".into());
    }

    // [customers]
    let customer_key_salt = raw
        .customers
        .key_salt
        .as_deref()
        .and_then(|t| secret("customers.key_salt", t, &mut issue));
    if production && raw.customers.key_salt.is_none() {
        issue(
            "customers.key_salt",
            "is required in production (customer keys join buyers across channels)".into(),
        );
    }
    if let Some(s) = &customer_key_salt
        && s.expose().len() < 16
    {
        issue(
            "customers.key_salt",
            format!("${{{}}} must be at least 16 characters", s.var),
        );
    }

    // [fx]
    let mut fx = crate::fx::FxSettings::default();
    {
        let f = &raw.fx;
        fx.reporting.clear();
        for (i, c) in f.reporting_currencies.iter().enumerate() {
            match crate::model::CurrencyCode::parse(c) {
                Ok(code) => fx.reporting.push(code),
                Err(e) => issue(
                    &format!("fx.reporting_currencies[{i}]"),
                    format!("'{c}' {e}"),
                ),
            }
        }
        if f.reporting_currencies.is_empty() {
            issue(
                "fx.reporting_currencies",
                "name at least one currency".into(),
            );
        }
        if !(0..=31).contains(&f.max_age_days) {
            issue("fx.max_age_days", "must be between 0 and 31".into());
        }
        fx.max_age_days = f.max_age_days;
        match crate::fx::book::RoundingMode::parse(&f.rounding) {
            Some(m) => fx.rounding.default = m,
            None => issue(
                "fx.rounding",
                "must be half_up, half_even, down or up".into(),
            ),
        }
        for (c, m) in &f.rounding_overrides {
            if crate::model::CurrencyCode::parse(c).is_err() {
                issue(
                    &format!("fx.rounding_overrides.{c}"),
                    "is not an ISO 4217 currency".into(),
                );
            }
            match crate::fx::book::RoundingMode::parse(m) {
                Some(mode) => {
                    fx.rounding.overrides.insert(c.clone(), mode);
                }
                None => issue(
                    &format!("fx.rounding_overrides.{c}"),
                    "must be half_up, half_even, down or up".into(),
                ),
            }
        }
        match chrono::NaiveTime::parse_from_str(&f.refresh_after, "%H:%M") {
            Ok(t) => fx.refresh_after = t,
            Err(_) => issue("fx.refresh_after", "must be HH:MM".into()),
        }
        fx.ecb_source = f.ecb_source.as_ref().map(|s| {
            if s.starts_with("https://") || s.starts_with("http://") {
                s.clone()
            } else {
                resolve_path(base, s).display().to_string()
            }
        });
        if let Some(m) = &f.manual_rates {
            let p = resolve_path(base, m);
            match std::fs::read_to_string(&p) {
                Ok(text) => {
                    if let Err(e) = crate::fx::rates::parse_manual(&text) {
                        issue("fx.manual_rates", format!("{}: {e}", p.display()));
                    }
                }
                Err(e) => issue("fx.manual_rates", format!("{}: {e}", p.display())),
            }
            fx.manual_rates = Some(p);
        }
    }

    // [tax]
    let rules_dir = resolve_path(base, &raw.tax.rules_dir);
    // No rules directory: no packs; cross-border orders are then held as tax_pending.
    let packs = match crate::tax::Packs::load_dir(&rules_dir) {
        _ if !rules_dir.exists() && raw.tax.rules_dir == "rules" => crate::tax::Packs::default(),
        Ok(p) => p,
        Err(problems) => {
            for m in problems {
                issue("tax.rules_dir", m);
            }
            crate::tax::Packs::default()
        }
    };
    // `[tax]` is validated once; an instance's own keys are validated where they are written.
    let country = |at: String, c: &Option<String>, issue: &mut dyn FnMut(&str, String)| {
        if let Some(c) = c
            && crate::model::CountryCode::parse(c).is_err()
        {
            issue(&at, format!("'{c}' is not an ISO 3166-1 alpha-2 country"));
        }
        c.clone()
    };
    let mode = |at: String, m: &str, issue: &mut dyn FnMut(&str, String)| match m {
        "courier" => crate::tax::ShipMode::Courier,
        "postal" => crate::tax::ShipMode::Postal,
        _ => {
            issue(&at, "must be courier or postal".into());
            crate::tax::ShipMode::Courier
        }
    };
    let defaults = crate::tax::SellerSettings {
        seller_country: country(
            "tax.seller_country".into(),
            &raw.tax.seller_country,
            &mut issue,
        ),
        ship_from: country("tax.ship_from".into(), &raw.tax.ship_from, &mut issue),
        mode: mode("tax.mode".into(), &raw.tax.mode, &mut issue),
    };
    let mut instances = BTreeMap::new();
    for (i, inst) in raw.instances.iter().enumerate() {
        let Some(t) = &inst.tax else { continue };
        let at = |key: &str| format!("instance[{i}].tax.{key}");
        let own = crate::tax::SellerSettings {
            seller_country: country(at("seller_country"), &t.seller_country, &mut issue)
                .or_else(|| defaults.seller_country.clone()),
            ship_from: country(at("ship_from"), &t.ship_from, &mut issue)
                .or_else(|| defaults.ship_from.clone()),
            mode: t
                .mode
                .as_deref()
                .map_or(defaults.mode, |m| mode(at("mode"), m, &mut issue)),
        };
        instances.insert(inst.id.clone(), own);
    }
    let tax = crate::tax::TaxSettings {
        packs,
        seller: defaults,
        instances,
    };

    // [jobs]
    let j = &raw.jobs;
    for s in &j.strategies {
        if !crate::reco::models::STRATEGIES.contains(&s.as_str()) {
            issue(
                "jobs.strategies",
                format!(
                    "unknown strategy '{s}'; known: {}",
                    crate::reco::models::STRATEGIES.join(", ")
                ),
            );
        }
    }
    if j.strategies.is_empty() {
        issue("jobs.strategies", "must name at least one strategy".into());
    }
    if !(1..=500).contains(&j.list_len) {
        issue("jobs.list_len", "must be 1 to 500".into());
    }
    if !(1..=100_000).contains(&j.ranking_size) {
        issue("jobs.ranking_size", "must be 1 to 100000".into());
    }
    if !(j.half_life_days.is_finite() && j.half_life_days > 0.0) {
        issue(
            "jobs.half_life_days",
            "must be a positive number of days".into(),
        );
    }
    if j.rating_prior_count
        .is_some_and(|c| !(c.is_finite() && c >= 0.0))
    {
        issue("jobs.rating_prior_count", "must be zero or more".into());
    }
    if !(1..=20_000).contains(&j.ease_max_items) {
        issue(
            "jobs.ease_max_items",
            "must be 1 to 20000 (the model is items² × 12 bytes)".into(),
        );
    }
    let jobs = crate::reco::job::JobSettings {
        every: (j.every_secs > 0).then(|| Duration::from_secs(j.every_secs)),
        list_len: j.list_len,
        strategies: j.strategies.clone(),
        params: crate::reco::models::Params {
            ease_items: j.ease_max_items,
            ..Default::default()
        },
        half_life_days: j.half_life_days,
        ranking_size: j.ranking_size,
        exclude_purchased: j.exclude_purchased,
        rating_prior_count: j.rating_prior_count,
        batch: 2000,
    };

    // [log]
    let json_logs = match raw.log.format.as_str() {
        "text" => false,
        "json" => true,
        _ => {
            issue("log.format", "must be \"text\" or \"json\"".into());
            false
        }
    };
    if tracing_subscriber::EnvFilter::try_new(&raw.log.level).is_err() {
        issue(
            "log.level",
            "is not a tracing filter (e.g. \"info\" or \"crossgate=debug,info\")".into(),
        );
    }

    // adapters
    let adapters_dir = resolve_path(base, &raw.adapters_dir);
    let registry = match Registry::load_dir(&adapters_dir) {
        Ok(r) => r,
        Err(errors) => {
            for e in errors {
                let file = e
                    .file
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                issue(&format!("adapters_dir/{file}"), e.message);
            }
            Registry::default()
        }
    };

    // [[instance]]
    let mut instances = BTreeMap::new();
    let mut seen = HashSet::new();
    for (i, inst) in raw.instances.iter().enumerate() {
        let at = |f: &str| format!("instance[{i}].{f}");
        if validate_instance_id(&inst.id).is_err() {
            issue(
                &at("id"),
                "use 1-63 lower-case letters, digits and '-', starting with a letter".into(),
            );
        } else if !seen.insert(inst.id.clone()) {
            issue(
                &at("id"),
                format!("'{}' is used by another instance", inst.id),
            );
        }
        if inst.account.trim().is_empty() {
            issue(&at("account"), "must not be empty".into());
        }
        let mut secrets = BTreeMap::new();
        for (name, values) in &inst.secrets {
            let items = values.items();
            if items.is_empty() {
                issue(
                    &at(&format!("secrets.{name}")),
                    "list at least one secret".into(),
                );
            }
            let resolved: Vec<Secret> = items
                .iter()
                .enumerate()
                .filter_map(|(j, text)| {
                    let p = if items.len() > 1 {
                        at(&format!("secrets.{name}[{j}]"))
                    } else {
                        at(&format!("secrets.{name}"))
                    };
                    secret(&p, text, &mut issue)
                })
                .collect();
            secrets.insert(name.clone(), resolved);
        }
        let Some(adapter) = registry.get(&inst.adapter).cloned() else {
            if !registry.names().any(|_| true) {
                continue; // the adapter directory itself failed; already reported
            }
            let known: Vec<&str> = registry.names().collect();
            issue(
                &at("adapter"),
                format!(
                    "unknown adapter '{}' (known: {})",
                    inst.adapter,
                    known.join(", ")
                ),
            );
            continue;
        };
        if let Some(w) = &adapter.spec().webhook {
            for extra in w.signature.secret_names().into_iter().skip(1) {
                if !inst.secrets.contains_key(extra) {
                    issue(
                        &at(&format!("secrets.{extra}")),
                        format!(
                            "adapter '{}' needs the '{extra}' secret as \"${{ENV_VAR}}\"",
                            inst.adapter
                        ),
                    );
                }
            }
            let name = w.signature.secret_name();
            match secrets.get(name) {
                None if !inst.secrets.contains_key(name) => issue(
                    &at(&format!("secrets.{name}")),
                    format!(
                        "adapter '{}' signs webhooks; give its secret as \"${{ENV_VAR}}\"",
                        inst.adapter
                    ),
                ),
                Some(values) if matches!(w.signature, SignatureSpec::StandardWebhooks { .. }) => {
                    for v in values {
                        if crate::adapter::signature::standard_webhooks_key(v.expose()).is_none() {
                            issue(
                                &at(&format!("secrets.{name}")),
                                format!(
                                    "${{{}}} must be a Standard Webhooks secret: whsec_ followed by base64",
                                    v.var
                                ),
                            );
                        }
                    }
                }
                _ => {}
            }
        }
        // Instances that call the channel's API: polling, or thin webhooks that are fetched.
        let spec = adapter.spec();
        if inst.poll && spec.poll.is_none() {
            issue(
                &at("poll"),
                format!("adapter '{}' has no [poll] section", inst.adapter),
            );
        }
        if let Some(api) = &spec.api
            && (inst.poll || spec.fetch.is_some())
        {
            match inst.settings.get(&api.base_url_setting) {
                None => issue(
                    &at(&format!("settings.{}", api.base_url_setting)),
                    format!(
                        "adapter '{}' calls the channel API: give its base URL here",
                        inst.adapter
                    ),
                ),
                Some(u) => {
                    if let Err(p) = crate::outbound::check_base_url(u) {
                        issue(&at(&format!("settings.{}", api.base_url_setting)), p);
                    }
                }
            }
            if let Some(auth) = &api.auth
                && !inst.secrets.contains_key(auth.secret_name())
            {
                issue(
                    &at(&format!("secrets.{}", auth.secret_name())),
                    format!(
                        "adapter '{}' calls the channel API: give its credential as \"${{ENV_VAR}}\"",
                        inst.adapter
                    ),
                );
            }
        }
        instances.insert(
            inst.id.clone(),
            Arc::new(Instance {
                id: inst.id.clone(),
                adapter,
                account: inst.account.clone(),
                secrets,
                settings: inst.settings.clone(),
                poll: inst.poll,
                customer_key_salt: customer_key_salt.clone(),
            }),
        );
    }

    if !issues.is_empty() {
        return Err(issues);
    }
    Ok(Config {
        file: file.to_path_buf(),
        environment: raw.environment,
        server: ServerConfig {
            listen: listen.expect("no issue means it parsed"),
            body_limit: raw.server.body_limit_bytes as usize,
            request_timeout: Duration::from_secs(raw.server.request_timeout_secs),
            header_read_timeout: Duration::from_secs(raw.server.header_read_timeout_secs),
            max_in_flight: raw.server.max_in_flight,
            api_token,
        },
        store: StoreSettings {
            backend: raw.store.backend,
            path: resolve_path(base, &raw.store.path),
            cache_bytes: (raw.store.cache_mb as usize) * 1024 * 1024,
            redis_url: redis_url.expect("no issue means it resolved"),
            redis_prefix: raw.store.redis_prefix,
            redis_timeout: Duration::from_millis(raw.store.redis_timeout_ms),
            redis_require_fsync: raw.store.redis_require_fsync.unwrap_or(production),
            dedupe_ttl: Duration::from_secs(raw.store.dedupe_ttl_secs),
            raw_retention: Duration::from_secs(raw.store.raw_retention_secs),
            instances: instances.keys().cloned().collect(),
        },
        log: LogConfig {
            json: json_logs,
            level: raw.log.level,
        },
        registry,
        instances,
        fx: Arc::new(fx),
        tax: Arc::new(tax),
        jobs: Arc::new(jobs),
        dev_defaults,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn check(text: &str, env: &[(&str, &str)]) -> Result<Config, Vec<Issue>> {
        let raw = parse(text).map_err(|i| vec![i])?;
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        validate(raw, &repo().join("config"), Path::new("test.toml"), &env)
    }

    #[test]
    fn shipped_config_is_valid() {
        let cfg = Config::load_with_env(&repo().join("config/gateway.toml"), &HashMap::new())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.store.backend, Backend::Embedded);
        assert!(!cfg.dev_defaults.is_empty(), "dev secrets are flagged");
        assert!(cfg.instances.contains_key("shopify-main"));
    }

    #[test]
    fn an_instance_has_its_own_seller_and_ship_from() {
        let text = r#"
[store]
backend = "embedded"
[tax]
seller_country = "CN"
[[instance]]
id = "hk"
adapter = "app"
account = "acme-hk"
secrets = { webhook = "${APP_SECRET:-whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}" }
tax = { seller_country = "HK", mode = "postal" }
[[instance]]
id = "cn"
adapter = "app"
account = "acme-cn"
secrets = { webhook = "${APP_SECRET:-whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}" }
"#;
        let cfg = check(text, &[]).unwrap_or_else(|e| panic!("{e:?}"));
        let hk = cfg.tax.seller_for("hk");
        assert_eq!(hk.seller_country.as_deref(), Some("HK"));
        assert_eq!(hk.mode, crate::tax::ShipMode::Postal);
        assert_eq!(
            cfg.tax.seller_for("cn").seller_country.as_deref(),
            Some("CN")
        );
        let bad = text.replace("mode = \"postal\"", "mode = \"drone\", ship_from = \"XX\"");
        let issues = check(&bad, &[]).unwrap_err();
        let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        assert!(paths.contains(&"instance[0].tax.mode"), "{issues:?}");
        assert!(paths.contains(&"instance[0].tax.ship_from"), "{issues:?}");
        let unknown = text.replace("mode = \"postal\"", "warehouse = \"x\"");
        assert!(
            check(&unknown, &[]).unwrap_err()[0]
                .message
                .contains("warehouse")
        );
    }

    #[test]
    fn unknown_keys_are_rejected_with_location() {
        let e = check("[store]\nbackend = \"embedded\"\nbackup = true\n", &[]).unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(e[0].message.contains("unknown field `backup`"), "{e:?}");
        assert!(e[0].message.contains("line 3"), "{e:?}");
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let text = r#"
environment = "production"
[server]
listen = "nowhere"
body_limit_bytes = 10
[store]
backend = "redis"
redis_url = "http://example"
dedupe_ttl_secs = 5
[log]
format = "xml"
[[instance]]
id = "Shop_1"
adapter = "nope"
account = ""
[[instance]]
id = "app"
adapter = "app"
account = "acme"
secrets = { webhook = "whsec_literal" }
[[instance]]
id = "shop"
adapter = "shopify"
account = "acme.myshopify.com"
secrets = { webhook = "${SHOP_SECRET:-dev}" }
"#;
        let issues = check(text, &[]).unwrap_err();
        let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        for expected in [
            "server.listen",
            "server.body_limit_bytes",
            "server.api_token",
            "store.redis_url",
            "store.dedupe_ttl_secs",
            "log.format",
            "instance[0].id",
            "instance[0].account",
            "instance[0].adapter",
            "instance[1].secrets.webhook",
            "instance[2].secrets.webhook",
        ] {
            assert!(
                paths.contains(&expected),
                "missing {expected} in {issues:#?}"
            );
        }
        let literal = issues
            .iter()
            .find(|i| i.path == "instance[1].secrets.webhook")
            .unwrap();
        assert!(literal.message.contains("never literal"), "{literal}");
        let dev = issues
            .iter()
            .find(|i| i.path == "instance[2].secrets.webhook")
            .unwrap();
        assert!(
            dev.message
                .contains("development default used in production")
        );
    }

    #[test]
    fn secrets_resolve_and_rotate() {
        let text = r#"
[store]
backend = "embedded"
[[instance]]
id = "shop"
adapter = "shopify"
account = "acme.myshopify.com"
secrets = { webhook = ["${NEW_SECRET}", "${OLD_SECRET}"] }
[[instance]]
id = "app"
adapter = "app"
account = "acme"
secrets = { webhook = "${APP_SECRET}" }
"#;
        let cfg = check(
            text,
            &[
                ("NEW_SECRET", "n"),
                ("OLD_SECRET", "o"),
                ("APP_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            ],
        )
        .unwrap();
        assert_eq!(cfg.instances["shop"].webhook_secrets(), ["n", "o"]);
        let shown = format!("{:?}", cfg.instances["shop"]);
        assert!(
            !shown.contains("\"n\"") && shown.contains("REDACTED"),
            "{shown}"
        );
        let missing = check(text, &[("NEW_SECRET", "n")]).unwrap_err();
        assert_eq!(missing.len(), 2, "{missing:?}");
        let bad_sw = check(
            text,
            &[
                ("NEW_SECRET", "n"),
                ("OLD_SECRET", "o"),
                ("APP_SECRET", "not-whsec!"),
            ],
        )
        .unwrap_err();
        assert!(bad_sw[0].message.contains("Standard Webhooks secret"));
    }
}
