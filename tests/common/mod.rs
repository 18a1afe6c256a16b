//! Helpers shared by the integration tests: real HTTP on loopback, a real Redis (the machine's,
//! or one a test owns), real channel payloads from `../shared/fixtures`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossgate::adapter::signature::{self, hmac_sha256};
use crossgate::adapter::spec::{Encoding, SignatureSpec};
use crossgate::backend::{self, AnyStore};
use crossgate::config::Config;
use serde_json::Value;

pub mod channel_mock;
pub mod cluster;
pub mod shopify_mock;

pub const SHOPIFY_SECRET: &str = "test-shopify-secret";
pub const STRIPE_SECRET: &str = "whsec_test_stripe_endpoint_secret";
pub const WECHAT_API_KEY: &str = "192006250b4c09247ec02edce69f6a2d";
pub const CUSTOMER_SALT: &str = "test-customer-key-salt-0123456789";
/// whsec_ + base64("crossgate-test-app-secret-32byte")
pub const APP_SECRET: &str = "whsec_Y3Jvc3NnYXRlLXRlc3QtYXBwLXNlY3JldC0zMmJ5dGU=";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn shared_fixtures() -> PathBuf {
    repo().join("../shared/fixtures")
}

pub fn fixture(path: &str) -> Vec<u8> {
    let p = shared_fixtures().join(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn redis_url() -> String {
    std::env::var("CROSSGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A Redis key prefix no other test run uses.
pub fn unique_prefix(tag: &str) -> String {
    format!(
        "t{}{}{}",
        tag,
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    )
    .chars()
    .take(40)
    .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Redis,
}

impl Backend {
    pub fn all() -> [Backend; 2] {
        [Backend::Embedded, Backend::Redis]
    }
}

/// A config for tests: a Shopify instance and an app instance, secrets from a test env map.
pub struct TestConfig {
    /// Removed when the gateway using it stops (None when the test owns the directory).
    pub dir: Option<tempfile::TempDir>,
    pub config: Arc<Config>,
}

pub fn test_config(backend: Backend, redis_url: &str, extra_server: &str) -> TestConfig {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("c");
    let mut tc = test_config_in(
        dir.path(),
        backend,
        redis_url,
        extra_server,
        &repo().join("adapters"),
        &[],
        &prefix,
    );
    tc.dir = Some(dir);
    tc
}

/// A test config in `dir`, with a chosen adapters directory and extra environment variables
/// (they override the default test secrets).
/// Stripe and WeChat Pay instances whose payments name orders of `shop` and `app`, and a phone
/// (call-centre) instance.
const PAYMENT_INSTANCES: &str = r#"[[instance]]
id = "stripe"
adapter = "stripe"
account = "acct_test"
secrets = { webhook = "${TEST_STRIPE_SECRET}" }
settings = { orders_instance = "shop" }
[[instance]]
id = "wechat"
adapter = "wechatpay"
account = "10000100"
secrets = { webhook = "${TEST_WECHAT_KEY}" }
settings = { orders_instance = "app" }
[[instance]]
id = "phone"
adapter = "phone"
account = "call-centre"
settings = { timezone = "Europe/Berlin" }
"#;

/// The secrets the test configs reference (for child processes reading the same config).
pub fn test_env() -> Vec<(String, String)> {
    [
        ("TEST_SHOPIFY_SECRET", SHOPIFY_SECRET),
        ("TEST_APP_SECRET", APP_SECRET),
        ("TEST_STRIPE_SECRET", STRIPE_SECRET),
        ("TEST_WECHAT_KEY", WECHAT_API_KEY),
        ("TEST_CUSTOMER_SALT", CUSTOMER_SALT),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

pub fn test_config_in(
    dir: &Path,
    backend: Backend,
    redis_url: &str,
    extra_server: &str,
    adapters: &Path,
    env_overrides: &[(&str, &str)],
    prefix: &str,
) -> TestConfig {
    let text = format!(
        r#"environment = "development"
adapters_dir = "{adapters}"
[server]
listen = "127.0.0.1:0"
{extra_server}
[store]
backend = "{backend}"
path = "{db}"
redis_url = "{redis_url}"
redis_prefix = "{prefix}"
redis_timeout_ms = 1000
[log]
level = "warn"
[customers]
key_salt = "${{TEST_CUSTOMER_SALT}}"
[fx]
reporting_currencies = ["EUR", "CNY"]
[tax]
rules_dir = "{rules}"
seller_country = "CN"
[[instance]]
id = "shop"
adapter = "shopify"
account = "test-shop.myshopify.com"
secrets = {{ webhook = "${{TEST_SHOPIFY_SECRET}}" }}
[[instance]]
id = "app"
adapter = "app"
account = "merchant-app"
secrets = {{ webhook = "${{TEST_APP_SECRET}}" }}
{payments}"#,
        adapters = adapters.display(),
        rules = repo().join("config/rules").display(),
        // Payment providers only where the adapters directory has them.
        payments = if adapters.join("stripe.toml").exists() {
            PAYMENT_INSTANCES
        } else {
            ""
        },
        backend = match backend {
            Backend::Embedded => "embedded",
            Backend::Redis => "redis",
        },
        db = dir.join("gw.redb").display(),
    );
    let file = dir.join("gateway.toml");
    std::fs::write(&file, text).unwrap();
    let mut env: HashMap<String, String> = test_env().into_iter().collect();
    for (k, v) in env_overrides {
        env.insert(k.to_string(), v.to_string());
    }
    let config = Config::load_with_env(&file, &env).unwrap_or_else(|e| panic!("{e}"));
    TestConfig {
        dir: None,
        config: Arc::new(config),
    }
}

/// A config for the CLI that reads the Redis store under `prefix` directly (its `listen`
/// address answers nothing, so no daemon is reached).
pub fn cli_redis_config(dir: &Path, prefix: &str) -> PathBuf {
    let cfg = dir.join("cli.toml");
    std::fs::write(
        &cfg,
        format!(
            "adapters_dir = \"{}\"\n[server]\nlisten = \"127.0.0.1:1\"\n[store]\nbackend = \"redis\"\nredis_url = \"{}\"\nredis_prefix = \"{prefix}\"\n",
            repo().join("adapters").display(),
            redis_url()
        ),
    )
    .unwrap();
    cfg
}

/// A config with one `[[instance]]` (its TOML, placeholders already filled) on the chosen
/// store, for tests that poll or fetch from a mock channel API; `env` holds the secrets it
/// references.
pub fn instance_config(
    dir: &Path,
    backend: Backend,
    adapters: &Path,
    prefix: &str,
    instance: &str,
    env: &[(&str, &str)],
) -> Config {
    let text = format!(
        "adapters_dir = \"{adapters}\"\n[server]\nlisten = \"127.0.0.1:0\"\n[store]\nbackend = \"{backend}\"\npath = \"{db}\"\nredis_url = \"{redis}\"\nredis_prefix = \"{prefix}\"\n[log]\nlevel = \"warn\"\n[[instance]]\n{instance}",
        adapters = adapters.display(),
        backend = match backend {
            Backend::Embedded => "embedded",
            Backend::Redis => "redis",
        },
        db = dir.join("gw.redb").display(),
        redis = redis_url(),
    );
    let file = dir.join("gateway.toml");
    std::fs::write(&file, text).unwrap();
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::load_with_env(&file, &env).unwrap_or_else(|e| panic!("{e}"))
}

/// A poller for an instance whose retries wait 50 ms (not seconds) before the first retry.
pub fn fast_retry_poller(
    inst: Arc<crossgate::config::Instance>,
) -> crossgate::channel::poll::Poller {
    let client = crossgate::channel::client::ChannelClient::new(
        &inst,
        crossgate::channel::client::RetryPolicy {
            base_delay: Duration::from_millis(50),
            ..Default::default()
        },
    )
    .unwrap();
    crossgate::channel::poll::Poller::new(inst, client).unwrap()
}

/// After a poll: the dead letters parked (any instance), and the instance's cursor of `name`.
pub async fn parked_and_cursor(
    store: &AnyStore,
    instance: &str,
    name: &str,
) -> (Vec<crossgate::store::DeadLetter>, Option<String>) {
    use crossgate::store::Store;
    let parked = crossgate::with_store!(store, s => s.list_dead_letters(
        crossgate::store::DeadLetterQuery { instance: None, after: None, limit: 10 }).await)
    .unwrap();
    let cursor = crossgate::with_store!(store, s => s.get_cursor(instance, name).await).unwrap();
    (parked.items, cursor)
}

/// A gateway served in-process on a loopback port.
pub struct Gateway {
    pub base: String,
    pub config: Arc<Config>,
    pub store: AnyStore,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl Gateway {
    pub async fn start(tc: TestConfig) -> Gateway {
        let (store, _) = backend::open(&tc.config.store).await.unwrap();
        Self::start_with(tc.config.clone(), store, tc.dir).await
    }

    pub async fn start_with(
        config: Arc<Config>,
        store: AnyStore,
        dir: Option<tempfile::TempDir>,
    ) -> Gateway {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (cfg, st) = (config.clone(), store.clone());
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            crossgate::with_store!(st, s => crossgate::daemon::run(s, cfg, listener, shutdown).await).unwrap();
        });
        Gateway {
            base,
            config,
            store,
            shutdown: Some(tx),
            task: Some(task),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the server and removes this gateway's keys from a shared Redis.
    pub async fn stop(self) {
        let store = self.store.clone();
        self.stop_keep_data().await;
        if let AnyStore::Redis(r) = store {
            let _ = r.flush_prefix().await;
        }
    }

    /// Stops the server and leaves the stored data (for restart tests).
    pub async fn stop_keep_data(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
        }
    }
}

/// An adapters directory `dir/<sub>` holding copies of the shipped adapters `names` (without
/// `.toml`), for tests that edit or break one.
pub fn copy_adapters(dir: &Path, sub: &str, names: &[&str]) -> PathBuf {
    let adapters = dir.join(sub);
    std::fs::create_dir_all(&adapters).unwrap();
    for n in names {
        let file = format!("{n}.toml");
        std::fs::copy(repo().join("adapters").join(&file), adapters.join(&file)).unwrap();
    }
    adapters
}

/// Serves a mock channel API on a free loopback port, for as long as the test runs; its base
/// URL, `http://127.0.0.1:<port>`.
pub async fn serve_mock(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
    pub text: String,
}

pub async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &[u8],
    headers: &[(String, String)],
) -> Reply {
    let mut req = client.post(url).body(body.to_vec());
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    into_reply(req.send().await.unwrap()).await
}

/// A log writer for tests: everything the tracing subscriber writes, kept in memory.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    /// What was written so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A request with a JSON body and any method, with an `Idempotency-Key` when given.
pub async fn send_json(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: &Value,
    idempotency_key: Option<&str>,
) -> Reply {
    let mut req = client
        .request(method, url)
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(body).unwrap());
    if let Some(k) = idempotency_key {
        req = req.header("Idempotency-Key", k);
    }
    into_reply(req.send().await.unwrap()).await
}

/// A client that sends `token` as the API token on every request.
pub fn authorized(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// An outbound command once it reached one of `states` (20 s at most).
pub async fn command_in(gw: &Gateway, id: &str, states: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = get(&http(), &gw.url(&format!("/v1/outbound/{id}"))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        if states.contains(&r.body["state"].as_str().unwrap_or("")) {
            return r.body;
        }
        assert!(
            Instant::now() < deadline,
            "command never reached {states:?}: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts the daemon binary on `config` with `env`, its output discarded.
pub fn spawn_daemon(config: &Path, env: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_crossgate"))
        .arg("--config")
        .arg(config)
        .arg("serve")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until the daemon at `base` is ready (`/readyz` 200, 20 s at most).
pub async fn wait_ready(c: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(r) = c.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("daemon did not become ready");
}

pub async fn get(client: &reqwest::Client, url: &str) -> Reply {
    into_reply(client.get(url).send().await.unwrap()).await
}

async fn into_reply(resp: reqwest::Response) -> Reply {
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        content_type,
        body,
        text,
    }
}

/// The 2024-04 Shopify order (18 KB) with its order id and updated_at replaced.
pub fn shopify_order(id: u64, updated_at: &str) -> Vec<u8> {
    let text = String::from_utf8(fixture("shopify/rest-2024-04-order-get-450789469.json")).unwrap();
    let text = text.replacen("\"id\": 450789469", &format!("\"id\": {id}"), 1);
    text.replacen(
        "\"updated_at\": \"2008-01-10T11:00:00-05:00\"",
        &format!("\"updated_at\": \"{updated_at}\""),
        1,
    )
    .into_bytes()
}

pub fn shopify_signature() -> SignatureSpec {
    SignatureSpec::HmacSha256 {
        header: "X-Shopify-Hmac-Sha256".into(),
        encoding: Encoding::Base64,
        prefix: None,
        secret: "webhook".into(),
    }
}

pub fn shopify_headers(body: &[u8], webhook_id: &str, topic: &str) -> Vec<(String, String)> {
    use base64::Engine;
    let sig = base64::engine::general_purpose::STANDARD
        .encode(hmac_sha256(SHOPIFY_SECRET.as_bytes(), &[body]));
    vec![
        ("X-Shopify-Hmac-Sha256".into(), sig),
        ("X-Shopify-Webhook-Id".into(), webhook_id.into()),
        ("X-Shopify-Topic".into(), topic.into()),
        ("Content-Type".into(), "application/json".into()),
    ]
}

pub fn app_headers(body: &[u8], msg_id: &str) -> Vec<(String, String)> {
    let spec = SignatureSpec::StandardWebhooks {
        tolerance_secs: 300,
        secret: "webhook".into(),
    };
    let mut h = signature::sign(
        &spec,
        APP_SECRET,
        body,
        msg_id,
        chrono::Utc::now().timestamp(),
    );
    h.push(("Content-Type".into(), "application/json".into()));
    h
}

/// The app's sample order as JSON, with a chosen external id and revision.
pub fn app_order(external_id: &str, updated_at: &str) -> Value {
    let mut v: Value = serde_json::from_slice(
        &std::fs::read(repo().join("tests/fixtures/app/order-jp.json")).unwrap(),
    )
    .unwrap();
    v["external_id"] = external_id.into();
    v["revision"]["updated_at"] = updated_at.into();
    v
}

/// The app's sample order as a canonical order of `instance` (the gateway's own fields filled
/// in, as the pipeline stores it), for tests that write to a store directly.
pub fn stored_app_order(
    instance: &str,
    external_id: &str,
    updated_at: &str,
) -> crossgate::model::Order {
    let mut v = app_order(external_id, updated_at);
    let m = v.as_object_mut().unwrap();
    let id = crossgate::model::OrderId::derive(instance, external_id);
    m.insert("id".into(), id.as_str().into());
    m.insert("instance".into(), instance.into());
    m.insert("channel".into(), "app".into());
    m.insert("channel_kind".into(), "mobile_app".into());
    m.insert("account".into(), "acme".into());
    serde_json::from_value(v).unwrap()
}

/// A webhook delivery of `instance` for tests that write to a store directly.
pub fn raw_delivery(instance: &str, dedupe_id: &str) -> crossgate::store::RawDelivery {
    crossgate::store::RawDelivery {
        delivery_id: crossgate::pipeline::new_delivery_id(instance),
        instance: instance.into(),
        dedupe_id: dedupe_id.into(),
        received_at: chrono::Utc::now(),
        topic: None,
        headers: Vec::new(),
        source: crossgate::store::DeliverySource::Webhook,
        trace_id: None,
        body: b"{}".to_vec(),
    }
}

/// A redis-server owned by one test, on a free port, with its own data directory and AOF.
pub struct RedisServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    aof: bool,
}

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// Starts redis-server with `appendonly yes, appendfsync always` (or no persistence).
    pub fn start(aof: bool) -> RedisServer {
        let mut s = RedisServer {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            aof,
        };
        s.launch();
        s
    }

    fn launch(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .arg("--dir")
        .arg(self.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if self.aof {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        self.child = Some(cmd.spawn().expect("redis-server must be installed"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(client) = redis::Client::open(self.url().as_str())
                && let Ok(mut c) = client.get_connection()
                && redis::cmd("PING").query::<String>(&mut c).is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not start", self.port);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no chance to flush anything that was not already written.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Path of a file inside the repository.
pub fn repo_path(p: &str) -> PathBuf {
    repo().join(p)
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}
