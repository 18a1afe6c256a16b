//! Phase one of reading the config: the file as written. Every table rejects unknown keys, so a
//! typo is an error, not a silently ignored setting. `schemas/config.schema.json` is generated
//! from these types.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

pub use crate::store::Backend;

/// `config/gateway.toml`. Relative paths are relative to the directory of the config file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `development` allows `${VAR:-default}` secrets (with a warning at start-up);
    /// `production` refuses them and requires an API token.
    #[serde(default)]
    pub environment: Environment,
    /// Directory of adapter definition files.
    #[serde(default = "default_adapters_dir")]
    pub adapters_dir: String,
    #[serde(default)]
    pub server: RawServer,
    pub store: RawStore,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub customers: RawCustomers,
    #[serde(default)]
    pub fx: RawFx,
    #[serde(default)]
    pub tax: RawTax,
    #[serde(default)]
    pub jobs: RawJobs,
    #[serde(default)]
    pub outbox: RawOutbox,
    #[serde(default)]
    pub telemetry: RawTelemetry,
    /// Channel instances: one per shop, seller account or app.
    #[serde(default, rename = "instance")]
    pub instances: Vec<RawInstance>,
}

fn default_adapters_dir() -> String {
    "../adapters".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    #[default]
    Development,
    Production,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Address the HTTP server listens on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Largest accepted request body; larger webhooks get 413.
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: u64,
    /// Time allowed to answer a request (channels give up after a few seconds).
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
    /// Time allowed for a client to send its request headers (slowloris guard).
    #[serde(default = "default_header_timeout")]
    pub header_read_timeout_secs: u64,
    /// Requests handled at once; beyond it the gateway answers 503 with Retry-After.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Events the background jobs (FX, tax, payments) may be behind before deliveries are
    /// refused with 503 and Retry-After and pollers pause (0: no limit).
    #[serde(default = "default_max_consumer_lag")]
    pub max_consumer_lag: u64,
    /// Bearer token for the `/v1` API, as `${ENV_VAR}`. Required in production.
    #[serde(default)]
    pub api_token: Option<String>,
    /// A second token that may only read: `GET` on `/v1` and the console's pages without its
    /// actions. As `${ENV_VAR}`; needs `api_token`.
    #[serde(default)]
    pub read_token: Option<String>,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_body_limit() -> u64 {
    1024 * 1024
}
fn default_request_timeout() -> u64 {
    10
}
fn default_header_timeout() -> u64 {
    10
}
fn default_max_in_flight() -> usize {
    1024
}
fn default_max_consumer_lag() -> u64 {
    200_000
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            body_limit_bytes: default_body_limit(),
            request_timeout_secs: default_request_timeout(),
            header_read_timeout_secs: default_header_timeout(),
            max_in_flight: default_max_in_flight(),
            max_consumer_lag: default_max_consumer_lag(),
            api_token: None,
            read_token: None,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub backend: Backend,
    /// Database file of the embedded store.
    #[serde(default = "default_store_path")]
    pub path: String,
    /// Page cache of the embedded store, in MiB.
    #[serde(default = "default_cache_mb")]
    pub cache_mb: u64,
    /// Redis URL of one server; may be written as `${ENV_VAR}` when it carries a password.
    /// Default `redis://127.0.0.1:6379`. Set this or `redis_nodes`, not both.
    #[serde(default)]
    pub redis_url: Option<String>,
    /// Seed nodes of a Redis Cluster (`["redis://10.0.0.1:7000", ...]`; each may be an
    /// `${ENV_VAR}`): cluster mode. The client learns the rest of the cluster from them.
    #[serde(default)]
    pub redis_nodes: Vec<String>,
    /// A delivery is acknowledged (2xx) only after this many replicas of its master have its
    /// write (`WAIT`); 0 = as soon as the master has it. With a failover, a write the master
    /// had but no replica had yet is lost unless this is at least 1.
    #[serde(default)]
    pub replica_acks: u32,
    /// How long an acknowledged write waits for `replica_acks` replicas before it is answered
    /// 503 (the sender retries; the write itself is kept).
    #[serde(default = "default_replica_ack_timeout_ms")]
    pub replica_ack_timeout_ms: u64,
    /// How long a lease (the active poller of an instance, the runner of a job) lasts unless
    /// its replica renews it; a replica that dies is replaced within this time.
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u64,
    /// Prefix of every Redis key (several gateways can share a server).
    #[serde(default = "default_redis_prefix")]
    pub redis_prefix: String,
    /// Redis command timeout; past it a delivery is answered 503.
    #[serde(default = "default_redis_timeout_ms")]
    pub redis_timeout_ms: u64,
    /// Refuse to start unless Redis persists every write before replying (AOF with
    /// `appendfsync always`). Defaults to true in production.
    #[serde(default)]
    pub redis_require_fsync: Option<bool>,
    /// How long a delivery id is remembered for deduplication. Must cover the longest sender
    /// retry window (Stripe and Standard Webhooks retry for about 3 days).
    #[serde(default = "default_dedupe_ttl")]
    pub dedupe_ttl_secs: u64,
    /// How long raw bodies of processed deliveries are kept (they carry personal data).
    #[serde(default = "default_raw_retention")]
    pub raw_retention_secs: u64,
}

fn default_store_path() -> String {
    "../var/crossgate.redb".into()
}
fn default_cache_mb() -> u64 {
    256
}
pub(super) fn default_redis_url() -> String {
    "redis://127.0.0.1:6379".into()
}
fn default_replica_ack_timeout_ms() -> u64 {
    1000
}
fn default_lease_secs() -> u64 {
    15
}
fn default_redis_prefix() -> String {
    "cg".into()
}
fn default_redis_timeout_ms() -> u64 {
    2000
}
fn default_dedupe_ttl() -> u64 {
    7 * 24 * 3600
}
fn default_raw_retention() -> u64 {
    14 * 24 * 3600
}

/// The outbox: how commands to channels are retried.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOutbox {
    /// Attempts that failed in a way worth retrying (429, 5xx, timeouts) before a command is
    /// dead.
    #[serde(default = "default_outbox_attempts")]
    pub max_attempts: u32,
    /// The first retry waits about this long (ms); each later one twice as long.
    #[serde(default = "default_outbox_retry_base_ms")]
    pub retry_base_ms: u64,
    /// The longest wait between attempts (seconds).
    #[serde(default = "default_outbox_retry_max_secs")]
    pub retry_max_secs: u64,
    /// A command taken by a worker that stops answering (a crash) is sent again after this
    /// many seconds.
    #[serde(default = "default_outbox_claim_secs")]
    pub claim_secs: u64,
    /// How long an `Idempotency-Key` is remembered (hours).
    #[serde(default = "default_outbox_idempotency_hours")]
    pub idempotency_hours: u64,
}

impl Default for RawOutbox {
    fn default() -> Self {
        Self {
            max_attempts: default_outbox_attempts(),
            retry_base_ms: default_outbox_retry_base_ms(),
            retry_max_secs: default_outbox_retry_max_secs(),
            claim_secs: default_outbox_claim_secs(),
            idempotency_hours: default_outbox_idempotency_hours(),
        }
    }
}

fn default_outbox_attempts() -> u32 {
    8
}
fn default_outbox_retry_base_ms() -> u64 {
    2000
}
fn default_outbox_retry_max_secs() -> u64 {
    600
}
fn default_outbox_claim_secs() -> u64 {
    60
}
fn default_outbox_idempotency_hours() -> u64 {
    24
}

/// The recommendation and ranking jobs.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawJobs {
    /// Seconds between runs in the daemon; 0 runs them only on demand (`crossgate jobs run`).
    #[serde(default = "default_jobs_every")]
    pub every_secs: u64,
    /// Items kept per customer and strategy (the largest `k` served).
    #[serde(default = "default_list_len")]
    pub list_len: usize,
    /// Strategies computed: popularity, item_knn, user_knn, content, demographic, ease,
    /// blended (the default served).
    #[serde(default = "default_strategies")]
    pub strategies: Vec<String>,
    /// Sales rankings: a sale's weight halves every this many days.
    #[serde(default = "default_half_life")]
    pub half_life_days: f64,
    /// Entries kept per ranking (the largest `k` served).
    #[serde(default = "default_ranking_size")]
    pub ranking_size: usize,
    /// Leave out items the customer already bought.
    #[serde(default = "default_true")]
    pub exclude_purchased: bool,
    /// Rating rankings: the prior's weight in ratings (default: the mean rating count).
    #[serde(default)]
    pub rating_prior_count: Option<f64>,
    /// EASE: the most popular items in its dense model (its memory is items² × 12 bytes).
    #[serde(default = "default_ease_items")]
    pub ease_max_items: usize,
    /// EASE: the ridge strength (larger: smoother, more popular items).
    #[serde(default = "default_ease_lambda")]
    pub ease_lambda: f64,
    /// Item-kNN and EASE weigh a customer's purchases by recency: an item's weight halves with
    /// every this many later orders of the customer; 0 weighs them all the same.
    #[serde(default = "default_recency_half_life")]
    pub recency_half_life_orders: f64,
    /// Blended: the weights of item-kNN, EASE and content.
    #[serde(default = "default_blend_weights")]
    pub blend_weights: [f32; 3],
}

fn default_jobs_every() -> u64 {
    3600
}
fn default_list_len() -> usize {
    20
}
fn default_strategies() -> Vec<String> {
    crate::reco::models::STRATEGIES
        .iter()
        .map(|s| s.to_string())
        .collect()
}
fn default_half_life() -> f64 {
    14.0
}
fn default_ranking_size() -> usize {
    1000
}
fn default_true() -> bool {
    true
}
fn default_ease_items() -> usize {
    3000
}
fn default_ease_lambda() -> f64 {
    crate::reco::models::Params::default().ease_lambda
}
fn default_blend_weights() -> [f32; 3] {
    crate::reco::models::Params::default().blend
}
fn default_recency_half_life() -> f64 {
    crate::reco::models::Params::default()
        .recency_half_life
        .map_or(0.0, f64::from)
}

impl Default for RawJobs {
    fn default() -> Self {
        Self {
            every_secs: default_jobs_every(),
            list_len: default_list_len(),
            strategies: default_strategies(),
            half_life_days: default_half_life(),
            ranking_size: default_ranking_size(),
            exclude_purchased: true,
            rating_prior_count: None,
            ease_max_items: default_ease_items(),
            ease_lambda: default_ease_lambda(),
            recency_half_life_orders: default_recency_half_life(),
            blend_weights: default_blend_weights(),
        }
    }
}

/// Customs and tax.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTax {
    /// Directory of rule packs (`*.toml`, one version each; the newest is applied).
    #[serde(default = "default_rules_dir")]
    pub rules_dir: String,
    /// The merchant's country (ISO alpha-2): orders shipped there are domestic, not quoted.
    #[serde(default)]
    pub seller_country: Option<String>,
    /// Where parcels ship from (Canada's low-value thresholds depend on it).
    #[serde(default)]
    pub ship_from: Option<String>,
    /// `courier` (default) or `postal`.
    #[serde(default = "default_mode")]
    pub mode: String,
}

fn default_rules_dir() -> String {
    "rules".into()
}
fn default_mode() -> String {
    "courier".into()
}

impl Default for RawTax {
    fn default() -> Self {
        Self {
            rules_dir: default_rules_dir(),
            seller_country: None,
            ship_from: None,
            mode: default_mode(),
        }
    }
}

/// Currency conversion and the FX log.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFx {
    /// Currencies every order is converted into (ISO 4217), e.g. `["EUR", "CNY"]`.
    #[serde(default = "default_reporting")]
    pub reporting_currencies: Vec<String>,
    /// Oldest rate accepted, in calendar days before the order's date (covers weekends and
    /// holidays); beyond it the order is held as `fx_pending`.
    #[serde(default = "default_max_age")]
    pub max_age_days: i64,
    /// `half_up` (default), `half_even`, `down` or `up`.
    #[serde(default = "default_rounding")]
    pub rounding: String,
    /// Per target currency, e.g. `{ CHF = "half_even" }`.
    #[serde(default)]
    pub rounding_overrides: BTreeMap<String, String>,
    /// Where the daily refresh reads the ECB reference rates: an https URL (e.g.
    /// `https://www.ecb.europa.eu/stats/eurofxref/eurofxref-hist-90d.xml`) or a file. No
    /// refresh when absent (use `crossgate fx sync`).
    #[serde(default)]
    pub ecb_source: Option<String>,
    /// Finance's manual rate table (TOML), for currencies the ECB does not publish.
    #[serde(default)]
    pub manual_rates: Option<String>,
    /// Frankfurt local time after which the daily refresh runs (the ECB publishes about
    /// 16:00 CET).
    #[serde(default = "default_refresh_after")]
    pub refresh_after: String,
    /// Signed checkpoints of the FX log (what an auditor verifies it against). None when
    /// absent.
    #[serde(default)]
    pub checkpoints: Option<RawFxCheckpoints>,
}

/// `[fx.checkpoints]`: the gateway signs the log's head with Ed25519.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFxCheckpoints {
    /// The private key, by environment reference only (`${CROSSGATE_FX_SIGNING_KEY}`): the
    /// base64 that `crossgate fx keygen` prints, or a PKCS#8 PEM.
    pub key: String,
    /// A file outside the store to which every checkpoint is appended (one JSON line each,
    /// synced to disk). Relative to this config file.
    #[serde(default)]
    pub file: Option<String>,
    /// Sign after this many new entries.
    #[serde(default = "default_checkpoint_entries")]
    pub every_entries: u64,
    /// And at least this often while entries are written (seconds).
    #[serde(default = "default_checkpoint_secs")]
    pub every_secs: u64,
}

fn default_checkpoint_entries() -> u64 {
    1000
}
fn default_checkpoint_secs() -> u64 {
    60
}

fn default_reporting() -> Vec<String> {
    vec!["EUR".into()]
}
fn default_max_age() -> i64 {
    4
}
fn default_rounding() -> String {
    "half_up".into()
}
fn default_refresh_after() -> String {
    "16:30".into()
}

impl Default for RawFx {
    fn default() -> Self {
        Self {
            reporting_currencies: default_reporting(),
            max_age_days: default_max_age(),
            rounding: default_rounding(),
            rounding_overrides: BTreeMap::new(),
            ecb_source: None,
            manual_rates: None,
            refresh_after: default_refresh_after(),
            checkpoints: None,
        }
    }
}

/// Cross-channel customers.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCustomers {
    /// Salt of the customer key (HMAC-SHA256 of the normalized email, else phone), as
    /// `${ENV_VAR}`. Required in production; without it orders carry no customer key. Changing
    /// it changes every key.
    #[serde(default)]
    pub key_salt: Option<String>,
}

/// Traces exported with OpenTelemetry.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    /// OTLP/HTTP base URL of a collector, e.g. `http://127.0.0.1:4318` (spans are posted to
    /// `<url>/v1/traces` as JSON). Unset: no export.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans (default `crossgate`).
    #[serde(default)]
    pub service_name: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `text` for people, `json` for log shippers.
    #[serde(default = "default_log_format")]
    pub format: String,
    /// A tracing filter, e.g. `info` or `crossgate=debug,info`. `RUST_LOG` overrides it.
    #[serde(default = "default_log_level")]
    pub level: String,
}

fn default_log_format() -> String {
    "text".into()
}
fn default_log_level() -> String {
    "info".into()
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            format: default_log_format(),
            level: default_log_level(),
        }
    }
}

/// One channel instance: a shop, seller account or app that sends to this gateway.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawInstance {
    /// Used in the webhook URL `/webhooks/{id}` and in record ids: `[a-z][a-z0-9-]*`.
    pub id: String,
    /// Adapter name (a file in `adapters_dir`).
    pub adapter: String,
    /// The merchant's account on the channel (shop domain, seller id).
    pub account: String,
    /// Secrets by name (`webhook`, …), each an `${ENV_VAR}` reference or a list of them
    /// (newest first) while a key is being rotated.
    #[serde(default)]
    pub secrets: BTreeMap<String, OneOrMany>,
    /// Channel settings the adapter reads (`setting = "currency"`), e.g. the shop's currency
    /// when its product payloads do not state it.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Poll the channel's API (adapters with a `[poll]` section). Needs the API base URL
    /// setting and the API secret.
    #[serde(default)]
    pub poll: bool,
    /// Where this instance's merchant sells and ships from, when it differs from `[tax]` (a
    /// merchant with an EU and a Hong Kong warehouse runs one instance per warehouse).
    #[serde(default)]
    pub tax: Option<RawInstanceTax>,
}

/// `[instances.tax]`: each key defaults to the one in `[tax]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawInstanceTax {
    /// The seller's country for this instance's orders (orders shipped there are domestic).
    #[serde(default)]
    pub seller_country: Option<String>,
    /// Where this instance's parcels ship from.
    #[serde(default)]
    pub ship_from: Option<String>,
    /// `courier` or `postal`.
    #[serde(default)]
    pub mode: Option<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn items(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(s) => vec![s.as_str()],
            OneOrMany::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}
