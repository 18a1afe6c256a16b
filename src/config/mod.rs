//! Configuration, read in two phases:
//! 1. a strict parse of the TOML file into [`raw::RawConfig`] (unknown keys are errors, reported
//!    with line and column);
//! 2. validation into [`Config`], which reports *every* problem with its path
//!    (`instance[2].secrets.webhook: …`), resolves `${ENV}` secret references against an
//!    environment map (so tests can pass their own) and loads the adapter registry.

mod instances;
pub mod live;
pub mod raw;
mod sections;
mod validate;

pub use live::{LiveConfig, ReloadError, ReloadOutcome, ReloadStatus};
pub use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
pub use validate::validate;

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
    pub outbox: Arc<OutboxSettings>,
    /// Secrets that fell back to their development default (names of variables only).
    pub dev_defaults: Vec<String>,
    /// Problems that do not stop the gateway, e.g. a broken adapter file no instance uses.
    pub warnings: Vec<String>,
    /// The environment `${VAR}` references were resolved against (a reload reads it again).
    pub loaded_env: LoadedEnv,
}

/// The environment a config was read with; never printed (it holds secrets).
#[derive(Clone, Default)]
pub struct LoadedEnv(pub Arc<HashMap<String, String>>);

impl fmt::Debug for LoadedEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LoadedEnv({} variables)", self.0.len())
    }
}

/// How hard the outbox tries (`[outbox]` in the config).
#[derive(Debug, Clone)]
pub struct OutboxSettings {
    /// Attempts that failed in a way worth retrying (429, 5xx, timeouts) before a command is
    /// `dead`.
    pub max_attempts: u32,
    /// The first retry waits up to this long; each later one twice as long (full jitter).
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// How long a claimed command is another worker's only after this one stops answering
    /// (a crash): then it is sent again.
    pub claim: Duration,
    /// How long an `Idempotency-Key` is remembered.
    pub idempotency_ttl: Duration,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(600),
            claim: Duration::from_secs(60),
            idempotency_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub body_limit: usize,
    pub request_timeout: Duration,
    pub header_read_timeout: Duration,
    pub max_in_flight: usize,
    /// Events the always-running background jobs may be behind before deliveries wait
    /// (0: no limit).
    pub max_consumer_lag: u64,
    pub api_token: Option<Secret>,
    /// May only read (`GET` on `/v1`, the console without actions).
    pub read_token: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub json: bool,
    pub level: String,
    /// `[telemetry]`: where spans are exported.
    pub traces: crate::telemetry::TraceExport,
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

    /// The document a delivery's body is mapped from (decrypted where the channel encrypts).
    pub fn document<'b>(&self, body: &'b [u8]) -> std::borrow::Cow<'b, [u8]> {
        self.adapter
            .document_bytes(body, &|name| self.secret(name), &self.settings)
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
    fn a_read_token_needs_an_api_token_and_another_value() {
        let text = |server: &str| format!("[server]\n{server}\n[store]\nbackend = \"embedded\"\n");
        let env = [("A", "one-token"), ("B", "two-token")];
        let alone = check(&text("read_token = \"${B}\""), &env).unwrap_err();
        assert!(
            alone.iter().any(|i| i.path == "server.read_token"),
            "{alone:?}"
        );
        let same = check(&text("api_token = \"${A}\"\nread_token = \"${A}\""), &env).unwrap_err();
        assert!(
            same.iter().any(|i| i.path == "server.read_token"),
            "{same:?}"
        );
        let ok = check(&text("api_token = \"${A}\"\nread_token = \"${B}\""), &env).unwrap();
        assert_eq!(
            ok.server.read_token.map(|t| t.expose().to_string()),
            Some("two-token".into())
        );
        let literal =
            check(&text("api_token = \"${A}\"\nread_token = \"plain\""), &env).unwrap_err();
        assert!(
            literal.iter().any(|i| i.path == "server.read_token"),
            "secrets only by reference: {literal:?}"
        );
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
    fn a_polled_instance_may_leave_its_webhook_secret_out_and_then_takes_no_webhooks() {
        let text = r#"
[store]
backend = "embedded"
[[instance]]
id = "meta"
adapter = "meta_commerce"
account = "acme"
poll = true
secrets = { access_token = "${META_TOKEN:-dev-token}" }
settings = { api_base = "https://graph.facebook.com/v19.0", cms_id = "1" }
"#;
        let cfg = check(text, &[]).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(cfg.instances["meta"].webhook_secrets().is_empty());
        // Not polled: the secret is required, named by its path.
        let issues = check(&text.replace("poll = true\n", ""), &[]).unwrap_err();
        assert_eq!(
            issues[0].path, "instance[0].secrets.app_secret",
            "{issues:?}"
        );
    }

    #[test]
    fn the_checkpoint_key_comes_only_from_the_environment_and_must_be_a_key() {
        let text = "[store]\nbackend = \"embedded\"\n[fx.checkpoints]\nkey = \"${FX_KEY}\"\nevery_entries = 0\n";
        let key = crate::fx::checkpoint::SignKey::generate();
        let cfg = check(
            &text.replace("every_entries = 0\n", ""),
            &[("FX_KEY", &key.to_base64())],
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let cp = cfg.fx.checkpoints.as_ref().unwrap();
        assert_eq!(cp.key.public(), key.public());
        assert_eq!((cp.every_entries, cp.every.as_secs()), (1000, 60));
        assert!(!format!("{cfg:?}").contains(&key.to_base64()), "redacted");
        // Not a key: the issue names the variable, never its value; every problem is listed.
        let issues = check(text, &[("FX_KEY", "hunter2-not-a-key")]).unwrap_err();
        let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            ["fx.checkpoints.every_entries", "fx.checkpoints.key"],
            "{issues:?}"
        );
        assert!(issues[1].message.contains("${FX_KEY}"), "{issues:?}");
        assert!(!format!("{issues:?}").contains("hunter2"), "{issues:?}");
        // A literal key in the file is refused: secrets only by reference.
        let literal = text.replace("${FX_KEY}", &key.to_base64());
        let issues = check(&literal, &[]).unwrap_err();
        assert!(
            issues.iter().any(|i| i.path == "fx.checkpoints.key"),
            "{issues:?}"
        );
    }

    #[test]
    fn check_config_catches_what_used_to_fail_later() {
        // Each of these passed check-config before: the import then blamed every CSV row, a
        // misspelt setting was ignored, a payment instance pointed nowhere, and "verbose" is a
        // tracing *target* filter, so the daemon logged nothing at all.
        let text = r#"
[store]
backend = "embedded"
[log]
level = "verbose"
[[instance]]
id = "phone"
adapter = "phone"
account = "call-centre"
settings = { timezone = "Europe/Berln", time_zone = "Europe/Berlin" }
[[instance]]
id = "stripe"
adapter = "stripe"
account = "acct_1"
secrets = { webhook = "${STRIPE:-whsec_test}" }
settings = { orders_instance = "shopify-mian" }
[[instance]]
id = "wechat"
adapter = "wechatpay"
account = "10000100"
secrets = { webhook = "${WX:-key}" }
"#;
        let issues = check(text, &[]).unwrap_err();
        let at = |path: &str| {
            issues
                .iter()
                .find(|i| i.path == path)
                .map(|i| i.message.clone())
                .unwrap_or_else(|| panic!("no issue at {path}: {issues:?}"))
        };
        assert!(at("log.level").contains("'verbose' names no level"));
        assert!(at("instance[0].settings.timezone").contains("IANA time zone"));
        assert!(
            at("instance[0].settings.time_zone")
                .contains("reads no setting 'time_zone' (it reads: timezone)")
        );
        assert!(
            at("instance[1].settings.orders_instance")
                .contains("names no other instance ('shopify-mian'")
        );
        assert!(at("instance[2].settings.orders_instance").contains("needs this setting"));
        // Directives with levels, and plain levels, are fine.
        for ok in ["info", "crossgate=debug,info", "warn,crossgate::fx=trace"] {
            assert_eq!(validate::check_log_level(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn a_broken_adapter_no_instance_uses_is_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["app.toml", "phone.toml"] {
            std::fs::copy(repo().join("adapters").join(f), dir.path().join(f)).unwrap();
        }
        std::fs::write(
            dir.path().join("broken.toml"),
            "name = \"broken\"\ncolour = 1\n",
        )
        .unwrap();
        let text = |adapter: &str| {
            format!(
                "adapters_dir = \"{}\"\n[store]\nbackend = \"embedded\"\n[[instance]]\nid = \"a\"\nadapter = \"{adapter}\"\naccount = \"x\"\nsecrets = {{ webhook = \"${{S:-whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}}\" }}\n",
                dir.path().display()
            )
        };
        let cfg = check(&text("app"), &[]).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
        assert!(
            cfg.warnings[0].starts_with("adapters_dir/broken.toml:"),
            "{:?}",
            cfg.warnings
        );
        assert!(cfg.warnings[0].contains("no instance uses it"));
        assert!(cfg.registry.get("app").is_some() && cfg.registry.get("broken").is_none());
        // Used by an instance, the same file stops the gateway.
        let issues = check(&text("broken"), &[]).unwrap_err();
        assert!(
            issues.iter().any(|i| i.path == "adapters_dir/broken.toml"),
            "{issues:?}"
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
