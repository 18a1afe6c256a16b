//! Scale-out: crossgate replicas on a real Redis Cluster (3 masters, 3 replicas, AOF) and on
//! one Redis, started by the tests. Replicas are child processes, killed with SIGKILL.
//!
//! - conservation: signed deliveries spread over 3 replicas with redeliveries, while replicas
//!   are killed and restarted and masters fail over; every acknowledged delivery is stored
//!   exactly once, with one event, and converted into the FX log exactly once;
//! - quota: two replicas poll one channel whose quota is 2 requests/s (burst 2); the channel
//!   never sees more, and when the poller's replica dies the other takes over in lease time;
//! - jobs: two replicas run the recommendation jobs once per interval between them.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::cluster::{RedisCluster, Replica};
use common::*;
use crossgate::backend::redis::{RedisOptions, RedisStore, Target};
use crossgate::fx::store::FxStore;
use crossgate::model::RecordKind;
use crossgate::store::Store;
use serde_json::{Value, json};
use tokio::sync::Mutex;

const DELIVERIES: u64 = 10_000;
const SENDERS: usize = 24;
const WEBHOOK_SECRET: &str = "secrets = { webhook = \"${TEST_SHOPIFY_SECRET}\" }";

fn env() -> Vec<(String, String)> {
    test_env()
}

/// A replica's config: Shopify webhooks, ECB rates from the shared fixture (so orders of
/// February 2017 convert), leases of 3 s. `store` and `extra` go into `[store]`, `instance`
/// into the Shopify instance.
fn replica_config(store: &str, prefix: &str, extra: &str, instance: &str) -> String {
    replica_config_with(&repo().join("adapters"), store, prefix, extra, instance)
}

fn replica_config_with(
    adapters: &std::path::Path,
    store: &str,
    prefix: &str,
    extra: &str,
    instance: &str,
) -> String {
    format!(
        r#"adapters_dir = "{adapters}"
[server]
listen = "127.0.0.1:{{port}}"
max_in_flight = 512
[store]
backend = "redis"
{store}
redis_prefix = "{prefix}"
redis_timeout_ms = 3000
lease_secs = 3
{extra}
[log]
level = "warn"
[customers]
key_salt = "${{TEST_CUSTOMER_SALT}}"
[fx]
reporting_currencies = ["EUR"]
ecb_source = "{ecb}"
[[instance]]
id = "shop"
adapter = "shopify"
account = "cluster.myshopify.com"
{instance}
"#,
        adapters = adapters.display(),
        ecb = shared_fixtures()
            .join("fx-ecb/eurofxref-hist-90d-2017-03-03.xml")
            .display(),
    )
}

/// The real Shopify order, with its id and dates of February 2017 (inside the ECB fixture).
fn order_2017(template: &str, id: u64) -> Vec<u8> {
    template
        .replacen("\"id\": 450789469", &format!("\"id\": {id}"), 1)
        .replace("2008-01-10T11:00:00-05:00", "2017-02-01T11:00:00-05:00")
        .into_bytes()
}

/// Sends one delivery until a replica answers 2xx, trying the replicas in turn.
async fn deliver(c: &reqwest::Client, bases: &[String], start: usize, body: &[u8], hook: &str) {
    let headers = shopify_headers(body, hook, "orders/create");
    for attempt in 0.. {
        let base = &bases[(start + attempt) % bases.len()];
        let mut req = c
            .post(format!("{base}/webhooks/shop"))
            .timeout(Duration::from_secs(15))
            .body(body.to_vec());
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Ok(r) = req.send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(attempt < 2_000, "delivery {hook} never acknowledged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Kills and restarts replicas and fails masters over while `running`; returns the counts.
async fn chaos(
    cluster: Arc<std::sync::Mutex<RedisCluster>>,
    replicas: Arc<Mutex<Vec<Replica>>>,
    running: Arc<AtomicBool>,
) -> (usize, usize, Vec<Duration>) {
    let c = http();
    let (mut kills, mut gaps) = (0, Vec::new());
    let mut step = 0usize;
    while running.load(Ordering::Relaxed) || kills < 5 || gaps.len() < 2 {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        step += 1;
        if step % 4 == 2 && gaps.len() < 2 {
            // The master of the instance's slot first, then the FX log's.
            let key = if gaps.is_empty() { "{shop}" } else { "{fx}" };
            let cl = cluster.clone();
            let gap = tokio::task::spawn_blocking(move || cl.lock().unwrap().fail_over(key))
                .await
                .unwrap();
            gaps.push(gap);
            continue;
        }
        let mut rs = replicas.lock().await;
        let i = kills % rs.len();
        rs[i].kill();
        kills += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
        rs[i].launch(&env());
        rs[i].wait_ready(&c, Duration::from_secs(60)).await;
    }
    (kills, gaps.len(), gaps)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_deliveries_survive_replica_kills_and_failovers() {
    let cluster = RedisCluster::start();
    let nodes: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let prefix = unique_prefix("cl");
    let dir = tempfile::tempdir().unwrap();
    let text = replica_config(
        &format!("redis_nodes = [{}]", nodes.join(", ")),
        &prefix,
        "replica_acks = 1\nreplica_ack_timeout_ms = 1000",
        WEBHOOK_SECRET,
    );
    let c = http();
    let mut started = Vec::new();
    for i in 0..3 {
        let r = Replica::start(dir.path(), &format!("r{i}"), &text, &env());
        r.wait_ready(&c, Duration::from_secs(60)).await;
        started.push(r);
    }
    let bases: Vec<String> = started.iter().map(Replica::base).collect();
    let replicas = Arc::new(Mutex::new(started));
    let cluster = Arc::new(std::sync::Mutex::new(cluster));
    let running = Arc::new(AtomicBool::new(true));
    let faults = tokio::spawn(chaos(cluster.clone(), replicas.clone(), running.clone()));

    let template =
        String::from_utf8(fixture("shopify/rest-2024-04-order-get-450789469.json")).unwrap();
    let next = Arc::new(AtomicU64::new(0));
    let redelivered = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let (c, bases, next, template, redelivered) = (
            c.clone(),
            bases.clone(),
            next.clone(),
            template.clone(),
            redelivered.clone(),
        );
        senders.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= DELIVERIES {
                    return;
                }
                let body = order_2017(&template, 7_000_000 + i);
                let hook = format!("cluster-{i}");
                deliver(&c, &bases, s + i as usize, &body, &hook).await;
                // 5 % are delivered again, as channels do, to another replica.
                if i % 20 == 0 {
                    deliver(&c, &bases, s + i as usize + 1, &body, &hook).await;
                    redelivered.fetch_add(1, Ordering::Relaxed);
                }
                // Paced, so the faults happen while deliveries flow.
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    let send_secs = t0.elapsed().as_secs_f64();
    running.store(false, Ordering::Relaxed);
    let (kills, failovers, gaps) = faults.await.unwrap();
    eprintln!(
        "{DELIVERIES} deliveries (+{} redeliveries) acknowledged in {send_secs:.1} s; \
         {kills} replica kills, {failovers} failovers (no writable master for {gaps:?})",
        redelivered.load(Ordering::Relaxed)
    );
    assert!(kills >= 5 && failovers >= 2);

    // What the store holds, read by a client of its own.
    let urls = cluster.lock().unwrap().urls();
    let (store, _) = RedisStore::connect(RedisOptions {
        target: Target::Cluster(urls),
        prefix: prefix.clone(),
        timeout: Duration::from_secs(5),
        instances: vec!["shop".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let created = created_events(&store).await;
    let missing: Vec<u64> = (0..DELIVERIES)
        .filter(|i| {
            let id = crossgate::model::OrderId::derive("shop", &(7_000_000 + i).to_string());
            created.get(id.as_str()) != Some(&1)
        })
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not stored exactly once (first 10): {missing:?}"
    );
    assert_eq!(
        created.len() as u64,
        DELIVERIES,
        "no other order was created"
    );
    assert!(
        created.values().all(|n| *n == 1),
        "an order was created twice"
    );

    // The FX job (one runner, by lease) converts every order once.
    let entries = fx_entries_when_done(&store, DELIVERIES).await;
    let mut seen = HashSet::new();
    for e in &entries {
        let key = (
            e["order_id"].as_str().unwrap().to_string(),
            e["revision"].as_str().unwrap().to_string(),
            e["part"].as_str().unwrap().to_string(),
            e["to"]["currency"].as_str().unwrap_or("").to_string(),
        );
        assert!(seen.insert(key.clone()), "FX log converts {key:?} twice");
    }
    let orders: HashSet<&str> = entries
        .iter()
        .map(|e| e["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(orders.len() as u64, DELIVERIES, "every order converted");
    eprintln!(
        "{} FX log entries for {} orders, none twice",
        entries.len(),
        orders.len()
    );
    store.flush_prefix().await.unwrap();
}

/// Order ids with the number of `created` events each has on the instance's stream.
async fn created_events(store: &RedisStore) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    loop {
        let batch = store.read_events("cluster-test", "t", 1000).await.unwrap();
        if batch.is_empty() {
            return out;
        }
        for e in &batch {
            if e.event.kind == RecordKind::Order
                && e.event.change == crossgate::model::Change::Created
            {
                *out.entry(e.event.record_id.clone()).or_insert(0) += 1;
            }
        }
        let ids: Vec<String> = batch.iter().map(|e| e.id.clone()).collect();
        store.ack_events("cluster-test", &ids).await.unwrap();
    }
}

/// The FX log once it covers `orders` orders (or has stopped growing for 30 s).
async fn fx_entries_when_done(store: &RedisStore, orders: u64) -> Vec<Value> {
    let mut last = (0usize, Instant::now());
    loop {
        let mut entries = Vec::new();
        let mut after = 0;
        loop {
            let page = store.fx_log(after, 5_000).await.unwrap();
            let Some((seq, _)) = page.last() else { break };
            after = *seq;
            entries.extend(
                page.iter()
                    .map(|(_, j)| serde_json::from_str::<Value>(j).unwrap()),
            );
        }
        let covered: HashSet<&str> = entries
            .iter()
            .filter_map(|e| e["order_id"].as_str())
            .collect();
        if covered.len() as u64 >= orders || last.1.elapsed() > Duration::from_secs(30) {
            return entries;
        }
        if entries.len() != last.0 {
            last = (entries.len(), Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

// ---- Quota ----

/// A Shopify Admin API (REST, 2024-04) for orders: pages of 5 through `Link: rel="next"`
/// (`page_info`), and a leaky bucket of 2 requests/s, burst 2, that answers 429 with
/// `Retry-After` when exceeded, as Shopify does.
struct Channel {
    orders: Vec<Value>,
    requests: std::sync::Mutex<Vec<Instant>>,
    base: std::sync::Mutex<String>,
}

const PAGE: usize = 5;

async fn orders_page(
    State(ch): State<Arc<Channel>>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    ch.requests.lock().unwrap().push(Instant::now());
    if headers.get("x-shopify-access-token").map(|v| v.as_bytes()) != Some(b"shpat_test") {
        return axum::http::StatusCode::UNAUTHORIZED.into_response();
    }
    let (page, since) = match q.get("page_info") {
        Some(p) => {
            let (n, s) = p.split_once('~').unwrap();
            (n.parse::<usize>().unwrap(), s.to_string())
        }
        None => (0, q["updated_at_min"].clone()),
    };
    let since = chrono::DateTime::parse_from_rfc3339(&since).unwrap();
    let matching: Vec<&Value> = ch
        .orders
        .iter()
        .filter(|o| {
            chrono::DateTime::parse_from_rfc3339(o["updated_at"].as_str().unwrap()).unwrap()
                >= since
        })
        .collect();
    let chunk: Vec<&Value> = matching
        .iter()
        .skip(page * PAGE)
        .take(PAGE)
        .copied()
        .collect();
    let mut resp = axum::Json(json!({ "orders": chunk })).into_response();
    if (page + 1) * PAGE < matching.len() {
        let base = ch.base.lock().unwrap().clone();
        let next = format!(
            "<{base}/admin/api/2024-04/orders.json?limit=5&page_info={}~{}>; rel=\"next\"",
            page + 1,
            since
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                .replace('+', "%2B")
        );
        resp.headers_mut().insert("link", next.parse().unwrap());
    }
    resp
}

async fn serve_channel(ch: Arc<Channel>) -> String {
    let app = axum::Router::new()
        .route("/admin/api/2024-04/orders.json", get(orders_page))
        .with_state(ch.clone());
    let base = serve_mock(app).await;
    *ch.base.lock().unwrap() = base.clone();
    base
}

/// The repository's adapters, with Shopify's quota set to 2 requests/s, burst 2, and a poll
/// every second (as ops would edit the TOML).
fn quota_adapters(dir: &std::path::Path) -> std::path::PathBuf {
    let out = dir.join("adapters");
    std::fs::create_dir_all(&out).unwrap();
    for e in std::fs::read_dir(repo().join("adapters")).unwrap() {
        let e = e.unwrap();
        let mut text = std::fs::read_to_string(e.path()).unwrap();
        if e.file_name() == "shopify.toml" {
            let before = text.clone();
            text = text
                .replace(
                    "rate_limit = { per_second = 2.0, burst = 40 }",
                    "rate_limit = { per_second = 2.0, burst = 2 }",
                )
                .replace("interval_secs = 300", "interval_secs = 1");
            assert_ne!(before, text, "shopify.toml changed; update this test");
        }
        std::fs::write(out.join(e.file_name()), text).unwrap();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_channel_quota_and_hand_over_the_poller() {
    let template: Value =
        serde_json::from_slice(&fixture("shopify/rest-2024-04-order-get-450789469.json")).unwrap();
    let now = chrono::Utc::now();
    let orders: Vec<Value> = (0..300)
        .map(|i| {
            let mut o = template["order"].clone();
            o["id"] = json!(8_000_000 + i);
            let t = now - chrono::Duration::seconds(12 * (300 - i));
            o["updated_at"] = json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            o
        })
        .collect();
    let ch = Arc::new(Channel {
        orders,
        requests: std::sync::Mutex::new(Vec::new()),
        base: std::sync::Mutex::new(String::new()),
    });
    let channel = serve_channel(ch.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("q");
    let text = replica_config_with(
        &quota_adapters(dir.path()),
        &format!("redis_url = \"{}\"", redis_url()),
        &prefix,
        "",
        &format!(
            "poll = true\nsettings = {{ api_base = \"{channel}/admin/api/2024-04\" }}\n\
             secrets = {{ webhook = \"${{TEST_SHOPIFY_SECRET}}\", access_token = \"${{TEST_SHOPIFY_TOKEN}}\" }}"
        ),
    );
    let mut env = env();
    env.push(("TEST_SHOPIFY_TOKEN".into(), "shpat_test".into()));
    let c = http();
    let mut rs: Vec<Replica> = (0..2)
        .map(|i| Replica::start(dir.path(), &format!("q{i}"), &text, &env))
        .collect();
    for r in &rs {
        r.wait_ready(&c, Duration::from_secs(60)).await;
    }
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(30)).await;

    // Kill whichever replica polls; the other must take over within the lease time.
    let mut holder = None;
    for (i, r) in rs.iter().enumerate() {
        if r.metric(&c, "crossgate_lease_held{scope=\"shop\",lease=\"poll\"}")
            .await
            == Some(1.0)
        {
            holder = Some(i);
        }
    }
    let holder = holder.expect("one replica holds the poller lease");
    rs[holder].kill();
    let killed_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let requests = ch.requests.lock().unwrap().clone();

    // Never above the quota: in every window, at most burst + rate × its length (+1 for the
    // request at the window's edge).
    for i in 0..requests.len() {
        for j in i + 1..requests.len() {
            let span = (requests[j] - requests[i]).as_secs_f64();
            let allowed = 2.0 + 2.0 * span + 1.0;
            assert!(
                (j - i + 1) as f64 <= allowed,
                "{} requests within {span:.2} s",
                j - i + 1
            );
        }
    }
    assert!(
        requests.len() as f64 <= 2.0 * elapsed + 2.0,
        "{} requests in {elapsed:.1} s",
        requests.len()
    );
    let takeover = requests
        .iter()
        .find(|t| **t > killed_at)
        .map(|t| *t - killed_at)
        .expect("the other replica polls after the kill");
    // The lease expires after 3 s; the standby replica looks every second (a third of the
    // lease); 2 s of slack for a loaded machine.
    assert!(
        takeover <= Duration::from_secs(3 + 1 + 2),
        "takeover after {takeover:?} (lease 3 s)"
    );

    // Every order stored, each created once: no page skipped, none applied twice.
    let survivor = &rs[1 - holder];
    let (store, _) = RedisStore::connect(RedisOptions {
        target: Target::Node(redis_url()),
        prefix: prefix.clone(),
        instances: vec!["shop".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let created = created_events(&store).await;
    assert_eq!(created.len(), 300, "every order of the channel stored");
    assert!(
        created.values().all(|n| *n == 1),
        "an order was created twice"
    );
    eprintln!(
        "{} channel requests in {elapsed:.1} s ({:.2}/s, quota 2/s burst 2); takeover after {takeover:?}; survivor {}",
        requests.len(),
        requests.len() as f64 / elapsed,
        survivor.port
    );
    store.flush_prefix().await.unwrap();
}

// ---- Jobs ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_once_per_interval_across_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("j");
    let text = replica_config(
        &format!("redis_url = \"{}\"", redis_url()),
        &prefix,
        "",
        WEBHOOK_SECRET,
    )
    .replace("[log]", "[jobs]\nevery_secs = 2\n[log]");
    let c = http();
    let rs: Vec<Replica> = (0..2)
        .map(|i| Replica::start(dir.path(), &format!("j{i}"), &text, &env()))
        .collect();
    for r in &rs {
        r.wait_ready(&c, Duration::from_secs(60)).await;
    }
    // The first run waits for start-up (up to one interval); then count runs for 16 s.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut runs = HashSet::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(16) {
        let r = common::get(&c, &format!("{}/v1/jobs", rs[0].base())).await;
        if let Some(at) = r.body["rankings"]["generated_at"].as_str() {
            runs.insert(at.to_string());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "{} runs in 16 s at an interval of 2 s, 2 replicas",
        runs.len()
    );
    // Once per interval: about 8; both replicas running would give about 16.
    assert!(
        (6..=10).contains(&runs.len()),
        "{} runs in 16 s with every_secs = 2",
        runs.len()
    );
    let (store, _) = RedisStore::connect(RedisOptions {
        target: Target::Node(redis_url()),
        prefix,
        ..Default::default()
    })
    .await
    .unwrap();
    store.flush_prefix().await.unwrap();
}

// ---- Slots ----

/// The quoted arguments of a `MONITOR` line (`1700000000.1 [0 127.0.0.1:5] "EVALSHA" "…" …`).
fn monitor_args(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut arg = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        arg.push(n);
                    }
                }
                '"' => break,
                c => arg.push(c),
            }
        }
        out.push(arg);
    }
    out
}

/// Records every command the masters run, while `f` runs.
fn monitor_masters(
    cluster: &RedisCluster,
) -> (Arc<AtomicBool>, Vec<std::thread::JoinHandle<Vec<String>>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let handles = cluster
        .nodes
        .iter()
        .filter(|n| n.role().as_deref() == Some("master"))
        .map(|n| {
            let (url, stop) = (n.url(), stop.clone());
            std::thread::spawn(move || {
                let client = redis::Client::open(url.as_str()).unwrap();
                let mut con = client.get_connection().unwrap();
                con.set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                con.send_packed_command(&redis::cmd("MONITOR").get_packed_command())
                    .unwrap();
                let mut lines = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(redis::Value::SimpleString(l)) = con.recv_response() {
                        lines.push(l);
                    }
                }
                lines
            })
        })
        .collect();
    (stop, handles)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_script_touches_keys_of_one_slot() {
    let cluster = RedisCluster::start();
    let nodes: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let prefix = unique_prefix("sl");
    let dir = tempfile::tempdir().unwrap();
    let text = replica_config(
        &format!("redis_nodes = [{}]", nodes.join(", ")),
        &prefix,
        "replica_acks = 1",
        WEBHOOK_SECRET,
    );
    let (stop, monitors) = monitor_masters(&cluster);
    let c = http();
    let r = Replica::start(dir.path(), "s0", &text, &env());
    r.wait_ready(&c, Duration::from_secs(60)).await;
    let template =
        String::from_utf8(fixture("shopify/rest-2024-04-order-get-450789469.json")).unwrap();
    for i in 0..40u64 {
        if i == 20 {
            // Every node forgets its scripts: the next writes load them again and go through.
            for n in &cluster.nodes {
                n.query(&["SCRIPT", "FLUSH"]).expect("SCRIPT FLUSH");
            }
        }
        let body = order_2017(&template, 9_000_000 + i % 30);
        let mut req = c
            .post(format!("{}/webhooks/shop", r.base()))
            .body(body.clone());
        for (k, v) in shopify_headers(&body, &format!("slot-{i}"), "orders/create") {
            req = req.header(k, v);
        }
        let status = req.send().await.unwrap().status();
        assert!(status.is_success(), "delivery {i}: {status}");
    }
    // The FX job converts them (the fx_commit script), under its lease (the lease script).
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    let lines: Vec<String> = monitors
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let any = &cluster.nodes[0];
    let slot = |key: &str| -> i64 {
        redis::from_redis_value(any.query(&["CLUSTER", "KEYSLOT", key]).unwrap()).unwrap()
    };
    let mut scripts = BTreeMap::<String, usize>::new();
    for line in &lines {
        let args = monitor_args(line);
        let Some(cmd) = args.first().map(|a| a.to_ascii_uppercase()) else {
            continue;
        };
        if cmd != "EVAL" && cmd != "EVALSHA" {
            continue;
        }
        let n: usize = args[2].parse().unwrap();
        let keys = &args[3..3 + n];
        let slots: HashSet<i64> = keys.iter().map(|k| slot(k)).collect();
        assert_eq!(
            slots.len(),
            1,
            "a script touches keys of {} slots: {keys:?}",
            slots.len()
        );
        // Name the script by its first key's kind, e.g. `dd` (ingest), `lease`, `docs` (FX).
        let kind = keys[0].split(':').nth(2).unwrap_or("?").to_string();
        *scripts.entry(kind).or_insert(0) += 1;
    }
    eprintln!("scripts checked, by first key: {scripts:?}");

    // Start-up checks persistence on every node of the cluster (AOF, fsync always).
    let (_, persistence) = RedisStore::connect(RedisOptions {
        target: Target::Cluster(cluster.urls()),
        prefix: prefix.clone(),
        require_fsync: true,
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(persistence.fsyncs_every_write(), "{persistence:?}");

    // `crossgate cluster status`, through the running replica's API.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crossgate"))
        .arg("--config")
        .arg(&r.config)
        .args(["cluster", "status", "--json"])
        .envs(env())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["store"], "redis-cluster");
    let slots = status["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 3, "{slots:?}");
    // Every slot covered, each range with its master. (A replica can be missing from the
    // answer for a moment when the loaded machine delays its cluster bus; that is not what
    // this checks.)
    let covered: u64 = slots
        .iter()
        .map(|r| r["end"].as_u64().unwrap() - r["start"].as_u64().unwrap() + 1)
        .sum();
    assert_eq!(covered, 16_384, "{slots:?}");
    assert!(slots.iter().all(|r| r["master"].is_string()), "{slots:?}");
    let fx = status["leases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["lease"]["name"] == "fx")
        .unwrap();
    assert!(
        fx["holder"].is_string() && fx["token"].as_u64() >= Some(1),
        "{fx}"
    );
    for kind in ["dd", "lease"] {
        assert!(
            scripts.contains_key(kind),
            "no {kind} script seen: {scripts:?}"
        );
    }
    assert!(
        scripts.len() >= 3,
        "ingest, lease and FX scripts: {scripts:?}"
    );
}
