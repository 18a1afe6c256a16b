//! Phase two of config loading: every section checked, every issue collected with its path.

use super::raw::{Environment, RawConfig};
use super::*;

/// Collects the issues of one validation, and resolves secret references against the
/// environment (development defaults are refused in production and listed otherwise).
pub(super) struct Check<'e> {
    pub(super) issues: Vec<Issue>,
    pub(super) dev_defaults: Vec<String>,
    /// Problems that do not stop the gateway (a broken adapter file no instance uses).
    pub(super) warnings: Vec<String>,
    pub(super) production: bool,
    env: &'e HashMap<String, String>,
}

impl Check<'_> {
    pub(super) fn issue(&mut self, path: &str, message: String) {
        self.issues.push(Issue {
            path: path.to_string(),
            message,
        });
    }

    /// Resolves a `${VAR}` reference; `None` (with an issue) when it cannot be used.
    pub(super) fn secret(&mut self, path: &str, text: &str) -> Option<Secret> {
        let r = match crate::secret::parse_env_ref(text) {
            Ok(r) => r,
            Err(e) => {
                self.issue(path, e);
                return None;
            }
        };
        match crate::secret::resolve(&r, self.env) {
            Ok(s) if s.from_default && self.production => {
                self.issue(
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
                    self.dev_defaults.push(s.var.clone());
                }
                Some(s)
            }
            Err(e) => {
                self.issue(path, e);
                None
            }
        }
    }
}

/// Phase two: validate everything, collecting every issue.
pub fn validate(
    raw: RawConfig,
    base: &Path,
    file: &Path,
    env: &HashMap<String, String>,
) -> Result<Config, Vec<Issue>> {
    let production = raw.environment == Environment::Production;
    let c = &mut Check {
        issues: Vec::new(),
        dev_defaults: Vec::new(),
        warnings: Vec::new(),
        production,
        env,
    };
    let (listen, api_token) = server(c, &raw);
    let read_token = read_token(c, &raw, api_token.as_ref());
    let (redis_url, redis_nodes) = store(c, &raw);
    let customer_key_salt = customers(c, &raw);
    let fx = super::sections::fx(c, &raw, base);
    let tax = super::sections::tax(c, &raw, base);
    let jobs = super::sections::jobs(c, &raw);
    let outbox = super::sections::outbox(c, &raw);
    let json_logs = log(c, &raw);
    let telemetry = trace_export(c, &raw);
    let registry = super::instances::registry(c, &raw, base);
    let instances = super::instances::instances(c, &raw, &registry, &customer_key_salt);
    super::instances::instance_references(c, &raw, &instances);
    if !c.issues.is_empty() {
        return Err(std::mem::take(&mut c.issues));
    }
    let dev_defaults = std::mem::take(&mut c.dev_defaults);
    let warnings = std::mem::take(&mut c.warnings);
    Ok(Config {
        file: file.to_path_buf(),
        environment: raw.environment,
        server: ServerConfig {
            listen: listen.expect("no issue means it parsed"),
            body_limit: raw.server.body_limit_bytes as usize,
            request_timeout: Duration::from_secs(raw.server.request_timeout_secs),
            header_read_timeout: Duration::from_secs(raw.server.header_read_timeout_secs),
            max_in_flight: raw.server.max_in_flight,
            max_consumer_lag: raw.server.max_consumer_lag,
            api_token,
            read_token,
        },
        store: StoreSettings {
            backend: raw.store.backend,
            path: resolve_path(base, &raw.store.path),
            cache_bytes: (raw.store.cache_mb as usize) * 1024 * 1024,
            redis_url: redis_url.expect("no issue means it resolved"),
            redis_nodes,
            replica_acks: raw.store.replica_acks,
            replica_ack_timeout: Duration::from_millis(raw.store.replica_ack_timeout_ms),
            lease_ttl: Duration::from_secs(raw.store.lease_secs),
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
            traces: telemetry,
        },
        registry,
        instances,
        fx: Arc::new(fx),
        tax: Arc::new(tax),
        jobs: Arc::new(jobs),
        outbox: Arc::new(outbox),
        dev_defaults,
        warnings,
        loaded_env: super::LoadedEnv(Arc::new(env.clone())),
    })
}

/// `[server]`: the listen address and the API token.
fn server(c: &mut Check, raw: &RawConfig) -> (Option<SocketAddr>, Option<Secret>) {
    let listen = raw
        .server
        .listen
        .parse::<SocketAddr>()
        .map_err(|_| "must be an address and port such as 127.0.0.1:8080".to_string());
    let listen = match listen {
        Ok(a) => Some(a),
        Err(m) => {
            c.issue("server.listen", m);
            None
        }
    };
    if !(1024..=64 * 1024 * 1024).contains(&raw.server.body_limit_bytes) {
        c.issue(
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
            c.issue(name, "must be between 1 and 300 seconds".into());
        }
    }
    if raw.server.max_in_flight == 0 {
        c.issue("server.max_in_flight", "must be at least 1".into());
    }
    let api_token = raw
        .server
        .api_token
        .as_deref()
        .and_then(|t| c.secret("server.api_token", t));
    if c.production && raw.server.api_token.is_none() {
        c.issue(
            "server.api_token",
            "is required in c.production (the /v1 API returns personal data)".into(),
        );
    }
    (listen, api_token)
}

/// The read-only token: only beside an API token, and never the same value.
fn read_token(c: &mut Check, raw: &RawConfig, api_token: Option<&Secret>) -> Option<Secret> {
    let text = raw.server.read_token.as_deref()?;
    let token = c.secret("server.read_token", text)?;
    match api_token {
        None if raw.server.api_token.is_none() => {
            c.issue(
                "server.read_token",
                "needs server.api_token (without it every request may do everything)".into(),
            );
            None
        }
        Some(api) if api.expose() == token.expose() => {
            c.issue(
                "server.read_token",
                "must differ from server.api_token (else reading and writing are one token)".into(),
            );
            None
        }
        _ => Some(token),
    }
}

/// A Redis URL as written, or the secret it references; checked when Redis is the backend.
fn redis_address(c: &mut Check, raw: &RawConfig, path: &str, text: &str) -> Option<Secret> {
    let url = if text.starts_with("${") {
        c.secret(path, text)
    } else {
        Some(Secret::literal("(config)", text))
    };
    if raw.store.backend == Backend::Redis
        && let Some(u) = &url
    {
        if u.expose().starts_with("rediss://") {
            c.issue(
                path,
                "rediss:// (TLS to Redis) is not supported: reach Redis over a private network, \
                 or through a TLS tunnel (stunnel, spiped) on a local redis:// address"
                    .into(),
            );
        } else if redis::Client::open(u.expose()).is_err() {
            c.issue(
                path,
                "is not a valid redis:// URL (redis://[user:password@]host:port[/db])".into(),
            );
        }
    }
    url
}

/// `[store]`: the settings are used as written; Redis URLs may be secret references.
fn store(c: &mut Check, raw: &RawConfig) -> (Option<Secret>, Vec<Secret>) {
    let written = raw.store.redis_url.clone();
    if written.is_some() && !raw.store.redis_nodes.is_empty() {
        c.issue(
            "store.redis_nodes",
            "set either redis_url (one server) or redis_nodes (a cluster), not both".into(),
        );
    }
    let text = written.unwrap_or_else(super::raw::default_redis_url);
    let redis_url = redis_address(c, raw, "store.redis_url", &text);
    let redis_nodes = raw
        .store
        .redis_nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| redis_address(c, raw, &format!("store.redis_nodes[{i}]"), n))
        .collect();
    if !(1..=60_000).contains(&raw.store.replica_ack_timeout_ms) {
        c.issue(
            "store.replica_ack_timeout_ms",
            "must be between 1 and 60000".into(),
        );
    }
    if c.production
        && raw.store.backend == Backend::Redis
        && !raw.store.redis_nodes.is_empty()
        && raw.store.replica_acks == 0
    {
        c.issue(
            "store.replica_acks",
            "must be at least 1 in production on a Redis Cluster: otherwise a delivery \
             acknowledged by a master that fails before a replica has it is lost"
                .into(),
        );
    }
    if raw.store.replica_acks > 16 {
        c.issue("store.replica_acks", "must be at most 16".into());
    }
    if !(2..=3600).contains(&raw.store.lease_secs) {
        c.issue("store.lease_secs", "must be between 2 and 3600".into());
    }
    if raw.store.redis_prefix.is_empty()
        || !raw
            .store
            .redis_prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        c.issue(
            "store.redis_prefix",
            "use letters, digits, '-' and '_' (no ':' or braces)".into(),
        );
    }
    if !(100..=60_000).contains(&raw.store.redis_timeout_ms) {
        c.issue(
            "store.redis_timeout_ms",
            "must be between 100 and 60000".into(),
        );
    }
    if raw.store.dedupe_ttl_secs < 3600 {
        c.issue(
            "store.dedupe_ttl_secs",
            "must be at least 3600; channels retry for hours to days".into(),
        );
    }
    if !(8..=65_536).contains(&raw.store.cache_mb) {
        c.issue("store.cache_mb", "must be between 8 and 65536".into());
    }
    if raw.store.raw_retention_secs < 3600 {
        c.issue("store.raw_retention_secs", "must be at least 3600".into());
    }
    (redis_url, redis_nodes)
}

/// `[customers]`: the salt of customer keys.
fn customers(c: &mut Check, raw: &RawConfig) -> Option<Secret> {
    let customer_key_salt = raw
        .customers
        .key_salt
        .as_deref()
        .and_then(|t| c.secret("customers.key_salt", t));
    if c.production && raw.customers.key_salt.is_none() {
        c.issue(
            "customers.key_salt",
            "is required in c.production (customer keys join buyers across channels)".into(),
        );
    }
    if let Some(s) = &customer_key_salt
        && s.expose().len() < 16
    {
        c.issue(
            "customers.key_salt",
            format!("${{{}}} must be at least 16 characters", s.var),
        );
    }
    customer_key_salt
}

/// `[telemetry]`: where spans are exported (an http(s) URL without credentials or query).
fn trace_export(c: &mut Check, raw: &RawConfig) -> crate::telemetry::TraceExport {
    let t = &raw.telemetry;
    let endpoint = t.otlp_endpoint.as_ref().and_then(|e| {
        let ok = url::Url::parse(e).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.username().is_empty()
                && u.password().is_none()
                && u.query().is_none()
        });
        if !ok {
            c.issue(
                "telemetry.otlp_endpoint",
                "must be an http(s) URL without credentials or query, e.g. http://127.0.0.1:4318"
                    .into(),
            );
        }
        ok.then(|| e.clone())
    });
    crate::telemetry::TraceExport {
        otlp_endpoint: endpoint,
        service_name: t.service_name.clone().unwrap_or_else(|| "crossgate".into()),
    }
}

/// `[log]`: whether logs are JSON; the level must be a tracing filter.
fn log(c: &mut Check, raw: &RawConfig) -> bool {
    let json_logs = match raw.log.format.as_str() {
        "text" => false,
        "json" => true,
        _ => {
            c.issue("log.format", "must be \"text\" or \"json\"".into());
            false
        }
    };
    if let Err(p) = check_log_level(&raw.log.level) {
        c.issue("log.level", p);
    }
    json_logs
}

const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// A level (`info`) or tracing directives (`crossgate=debug,info`). A bare word that is not a
/// level parses as a *target* filter (`verbose` would log only a target named "verbose", so
/// nothing at all): refused, as is a directive whose level is not one.
pub(super) fn check_log_level(text: &str) -> Result<(), String> {
    let hint = "(a level: trace, debug, info, warn, error, off; or directives such as \"crossgate=debug,info\")";
    if tracing_subscriber::EnvFilter::try_new(text).is_err() {
        return Err(format!("is not a tracing filter {hint}"));
    }
    for directive in text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
        if !LEVELS.contains(&level.trim().to_ascii_lowercase().as_str()) {
            return Err(format!("'{directive}' names no level {hint}"));
        }
    }
    Ok(())
}
