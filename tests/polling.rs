//! Polling against a mock channel server on loopback that serves Amazon SP-API getOrders /
//! getOrderItems pages built from the real sandbox payloads, with NextToken pagination and
//! injected 429s, 500s and responses slower than the client's timeout. Both stores.
//!
//! Checked: every order is taken in exactly once (one `created` event each), the declared rate
//! is respected (request timestamps), and a `kill -9` in the middle of `crossgate backfill`
//! followed by a restart leaves no gap and no duplicate.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::*;
use crossgate::config::Config;
use crossgate::model::{Change, RecordKind};
use crossgate::store::Store;
use serde_json::{Value, json};

const TOKEN: &str = "Atza|test-access-token";
const ORDERS: usize = 25;

#[derive(Clone, Copy, Debug)]
enum Fault {
    TooMany { retry_after_secs: u64 },
    ServerError,
    Slow(Duration),
}

/// (when, path, query, status) of a request the mock answered.
type Request = (Instant, String, BTreeMap<String, String>, u16);

#[derive(Default)]
struct Mock {
    orders: Vec<Value>,
    items: Value,
    page_size: usize,
    page_delay: Duration,
    /// (path prefix, fault), each used once, in order.
    faults: Mutex<Vec<(String, Fault)>>,
    log: Mutex<Vec<Request>>,
}

fn base_time() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2024-03-01T00:00:00Z")
        .unwrap()
        .to_utc()
}

fn mock(page_size: usize, page_delay: Duration, faults: Vec<(&str, Fault)>) -> Arc<Mock> {
    let page: Value = serde_json::from_slice(&fixture(
        "amazon/sp-api-v0-getOrders-sandbox-TEST_CASE_200.json",
    ))
    .unwrap();
    let template = page["payload"]["Orders"][0].clone();
    let orders = (0..ORDERS)
        .map(|i| {
            let mut o = template.clone();
            let t = base_time() + chrono::Duration::minutes(10 * i as i64);
            o["AmazonOrderId"] = json!(format!("902-0000000-{i:07}"));
            o["PurchaseDate"] = json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            o["LastUpdateDate"] = json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            o
        })
        .collect();
    let items: Value =
        serde_json::from_slice(&fixture("amazon/sp-api-v0-getOrderItems-sandbox.json")).unwrap();
    Arc::new(Mock {
        orders,
        items,
        page_size,
        page_delay,
        faults: Mutex::new(
            faults
                .into_iter()
                .map(|(p, f)| (p.to_string(), f))
                .collect(),
        ),
        log: Mutex::new(Vec::new()),
    })
}

impl Mock {
    /// The fault for this request, if one is waiting (and records the request).
    fn arrive(&self, path: &str, _q: &BTreeMap<String, String>) -> Option<Fault> {
        let mut faults = self.faults.lock().unwrap();
        let pos = faults
            .iter()
            .position(|(p, _)| path.starts_with(p.as_str()));
        pos.map(|i| faults.remove(i).1)
    }

    fn record(&self, at: Instant, path: &str, q: BTreeMap<String, String>, status: u16) {
        self.log
            .lock()
            .unwrap()
            .push((at, path.to_string(), q, status));
    }
}

async fn apply_fault(f: Option<Fault>) -> Option<Response> {
    match f {
        Some(Fault::TooMany { retry_after_secs }) => Some(
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("Retry-After", retry_after_secs.to_string())],
                "{\"errors\":[{\"code\":\"QuotaExceeded\"}]}",
            )
                .into_response(),
        ),
        Some(Fault::ServerError) => Some((StatusCode::INTERNAL_SERVER_ERROR, "{}").into_response()),
        Some(Fault::Slow(d)) => {
            tokio::time::sleep(d).await;
            None
        }
        None => None,
    }
}

fn authorized(h: &HeaderMap) -> bool {
    h.get("x-amz-access-token").and_then(|v| v.to_str().ok()) == Some(TOKEN)
}

async fn get_orders(
    State(m): State<Arc<Mock>>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let at = Instant::now();
    let path = "/orders/v0/orders";
    let fault = m.arrive(path, &q);
    if !authorized(&headers) {
        m.record(at, path, q, 403);
        return StatusCode::FORBIDDEN.into_response();
    }
    if let Some(r) = apply_fault(fault).await {
        m.record(at, path, q, r.status().as_u16());
        return r;
    }
    if q.get("MarketplaceIds").map(String::as_str) != Some("ATVPDKIKX0DER") {
        m.record(at, path, q, 400);
        return StatusCode::BAD_REQUEST.into_response();
    }
    // NextToken "<page>|<since>" carries the listing's filter, as Amazon's opaque token does.
    let (page, since) = match q.get("NextToken") {
        Some(t) => {
            let (p, s) = t.split_once('|').unwrap();
            (p.parse::<usize>().unwrap(), s.to_string())
        }
        None => (0, q["LastUpdatedAfter"].clone()),
    };
    let since = chrono::DateTime::parse_from_rfc3339(&since)
        .unwrap()
        .to_utc();
    let matching: Vec<&Value> = m
        .orders
        .iter()
        .filter(|o| {
            chrono::DateTime::parse_from_rfc3339(o["LastUpdateDate"].as_str().unwrap())
                .unwrap()
                .to_utc()
                >= since
        })
        .collect();
    let start = page * m.page_size;
    let chunk: Vec<&Value> = matching
        .iter()
        .skip(start)
        .take(m.page_size)
        .copied()
        .collect();
    let mut payload = json!({ "Orders": chunk, "CreatedBefore": "2024-03-05T00:00:00Z" });
    if start + m.page_size < matching.len() {
        payload["NextToken"] = json!(format!(
            "{}|{}",
            page + 1,
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    tokio::time::sleep(m.page_delay).await;
    m.record(at, path, q, 200);
    axum::Json(json!({ "payload": payload })).into_response()
}

async fn get_items(
    State(m): State<Arc<Mock>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let at = Instant::now();
    let path = format!("/orders/v0/orders/{id}/orderItems");
    let fault = m.arrive(&path, &q);
    if !authorized(&headers) {
        m.record(at, &path, q, 403);
        return StatusCode::FORBIDDEN.into_response();
    }
    if let Some(r) = apply_fault(fault).await {
        m.record(at, &path, q, r.status().as_u16());
        return r;
    }
    let mut items = m.items.clone();
    items["payload"]["AmazonOrderId"] = json!(id);
    m.record(at, &path, q, 200);
    axum::Json(items).into_response()
}

async fn serve(m: Arc<Mock>) -> String {
    let app = axum::Router::new()
        .route("/orders/v0/orders", get(get_orders))
        .route("/orders/v0/orders/{id}/orderItems", get(get_items))
        .with_state(m);
    serve_mock(app).await
}

/// The repository's adapters, with amazon_v0's rate limit and timeout adjusted the way ops
/// would (edit the TOML): 20 requests/s, burst 1, 1 s timeout.
fn adapters_dir(dir: &std::path::Path) -> std::path::PathBuf {
    let out = dir.join("adapters");
    std::fs::create_dir_all(&out).unwrap();
    for e in std::fs::read_dir(repo().join("adapters")).unwrap() {
        let e = e.unwrap();
        let mut text = std::fs::read_to_string(e.path()).unwrap();
        if e.file_name() == "amazon_v0.toml" {
            let before = text.clone();
            text = text.replace(
                "rate_limit = { per_second = 0.0167, burst = 20 }",
                "rate_limit = { per_second = 20.0, burst = 1 }\ntimeout_secs = 1",
            );
            assert_ne!(before, text, "amazon_v0.toml changed; update this test");
        }
        std::fs::write(out.join(e.file_name()), text).unwrap();
    }
    out
}

fn config(dir: &std::path::Path, backend: Backend, base: &str, prefix: &str) -> Config {
    let instance = format!(
        "id = \"amz\"\nadapter = \"amazon_v0\"\naccount = \"A2TEST\"\npoll = true\nsecrets = {{ access_token = \"${{TEST_AMZ_TOKEN}}\" }}\nsettings = {{ api_base = \"{base}\", marketplace_id = \"ATVPDKIKX0DER\" }}\n"
    );
    instance_config(
        dir,
        backend,
        &adapters_dir(dir),
        prefix,
        &instance,
        &[("TEST_AMZ_TOKEN", TOKEN)],
    )
}

/// Every order event in the store: (order id, change).
async fn order_events<S: Store>(s: &S) -> Vec<(String, Change)> {
    let mut out = Vec::new();
    loop {
        let batch = s.read_events("polling-test", "c", 1000).await.unwrap();
        if batch.is_empty() {
            return out;
        }
        for e in &batch {
            if e.event.kind == RecordKind::Order {
                out.push((e.event.record_id.clone(), e.event.change));
            }
        }
        let ids: Vec<String> = batch.iter().map(|e| e.id.clone()).collect();
        s.ack_events("polling-test", &ids).await.unwrap();
    }
}

fn assert_exactly_once(events: &[(String, Change)]) {
    let created: Vec<&String> = events
        .iter()
        .filter(|(_, c)| *c == Change::Created)
        .map(|(id, _)| id)
        .collect();
    let distinct: std::collections::BTreeSet<&String> = created.iter().copied().collect();
    assert_eq!(
        created.len(),
        ORDERS,
        "one created event per order: {events:?}"
    );
    assert_eq!(distinct.len(), ORDERS);
    assert!(
        events.iter().all(|(_, c)| *c == Change::Created),
        "no order written twice: {events:?}"
    );
}

async fn backfill_with_faults(backend: Backend) {
    let m = mock(
        10,
        Duration::ZERO,
        vec![
            (
                "/orders/v0/orders",
                Fault::TooMany {
                    retry_after_secs: 1,
                },
            ),
            (
                "/orders/v0/orders/902-0000000-0000003/orderItems",
                Fault::ServerError,
            ),
            (
                "/orders/v0/orders/902-0000000-0000004/orderItems",
                Fault::Slow(Duration::from_millis(1500)),
            ),
            (
                "/orders/v0/orders/902-0000000-0000012/orderItems",
                Fault::TooMany {
                    retry_after_secs: 0,
                },
            ),
        ],
    );
    let base = serve(m.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), backend, &base, &unique_prefix("poll"));
    let (store, _) = crossgate::backend::open(&cfg.store).await.unwrap();
    let poller = fast_retry_poller(cfg.instances["amz"].clone());
    let mode = crossgate::channel::poll::Mode::Backfill {
        since: base_time(),
        until: Some(base_time() + chrono::Duration::days(1)),
    };
    let mut pages = 0;
    let started = Instant::now();
    let state =
        crossgate::with_store!(&store, s => poller.run(s, &mode, |_| pages += 1).await).unwrap();
    let took = started.elapsed();
    assert_eq!(pages, 3, "25 orders in pages of 10");
    assert_eq!(state.orders, ORDERS as u64);

    let events = crossgate::with_store!(&store, s => order_events(s).await);
    assert_exactly_once(&events);
    // Every order has its items (the 500 and the timeout were retried).
    let page = crossgate::with_store!(&store, s => s.list_orders(crossgate::store::OrderQuery {
        instance: Some("amz".into()), since: None, after: None, limit: 100 }).await)
    .unwrap();
    assert_eq!(page.items.len(), ORDERS);
    assert!(
        page.items
            .iter()
            .all(|o| o.lines.len() == 1 && o.totals.grand_total.amount().to_string() == "11.01")
    );

    let log = m.log.lock().unwrap().clone();
    let statuses: Vec<u16> = log.iter().map(|(_, _, _, s)| *s).collect();
    assert!(
        statuses.contains(&429) && statuses.contains(&500),
        "{statuses:?}"
    );
    // The 429 on the first page asked for 1 s: the retry came no sooner.
    let first_two: Vec<Instant> = log
        .iter()
        .filter(|(_, p, _, _)| p == "/orders/v0/orders")
        .map(|(t, ..)| *t)
        .take(2)
        .collect();
    assert!(
        first_two[1] - first_two[0] >= Duration::from_millis(990),
        "{:?}",
        first_two[1] - first_two[0]
    );
    // The declared rate (20/s, burst 1). The limiter spaces *permissions* 50 ms apart; arrivals
    // at the mock also carry each request's transport time (a retry after a timeout opens a new
    // connection, some milliseconds slower than a pooled one), so two arrivals can be a little
    // closer. Checked both ways: no two arrivals under 30 ms apart, and no 1 s window with more
    // than the rate plus the burst.
    let mut times: Vec<Instant> = log.iter().map(|(t, ..)| *t).collect();
    times.sort();
    let min_gap = times.windows(2).map(|w| w[1] - w[0]).min().unwrap();
    assert!(
        min_gap >= Duration::from_millis(30),
        "requests {min_gap:?} apart"
    );
    let busiest = times
        .iter()
        .map(|t0| {
            times
                .iter()
                .filter(|t| **t >= *t0 && **t < *t0 + Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap();
    assert!(busiest <= 21, "{busiest} requests within one second");
    eprintln!(
        "{backend:?}: {} requests in {:?}, smallest gap {:?}, mean rate {:.1}/s",
        times.len(),
        took,
        min_gap,
        times.len() as f64 / (*times.last().unwrap() - times[0]).as_secs_f64()
    );

    // Polling again takes in nothing new.
    let state2 = crossgate::with_store!(&store, s => poller.run(s, &mode, |_| {}).await).unwrap();
    assert_eq!(state2.orders, state.orders);
    let again = crossgate::with_store!(&store, s => order_events(s).await);
    assert!(again.is_empty(), "{again:?}");
    if let crossgate::backend::AnyStore::Redis(r) = store {
        r.flush_prefix().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_takes_every_order_once_through_faults_embedded() {
    backfill_with_faults(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_takes_every_order_once_through_faults_redis() {
    backfill_with_faults(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_backfill_then_resume_leaves_no_gap_and_no_duplicate() {
    // Slow pages of 5, so the process is killed mid-way.
    let m = mock(5, Duration::from_millis(300), vec![]);
    let base = serve(m.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), Backend::Embedded, &base, "unused");
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_crossgate"))
            .env("TEST_AMZ_TOKEN", TOKEN)
            .arg("--config")
            .arg(&cfg.file)
            .args([
                "backfill",
                "--instance",
                "amz",
                "--since",
                "2024-03-01",
                "--until",
                "2024-03-02",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut child = run();
    // Wait until the third page has been served, then kill -9.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pages = m
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, p, _, s)| p == "/orders/v0/orders" && *s == 200)
            .count();
        if pages >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "backfill made no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success());
    let served_before = m.log.lock().unwrap().len();

    // Restart: it resumes from the committed cursor and finishes.
    let out = run().wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = m.log.lock().unwrap().clone();
    let first_after = log[served_before..]
        .iter()
        .find(|(_, p, _, _)| p == "/orders/v0/orders")
        .unwrap();
    assert!(
        first_after.2.contains_key("NextToken"),
        "the restart continues with the stored next token, not from the start: {:?}",
        first_after.2
    );

    let (store, _) = crossgate::backend::open(&cfg.store).await.unwrap();
    let events = crossgate::with_store!(&store, s => order_events(s).await);
    assert_exactly_once(&events);
}

/// The real binary with the test's token, on `file`.
fn crossgate(file: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_crossgate"));
    c.env("TEST_AMZ_TOKEN", TOKEN).arg("--config").arg(file);
    c
}

/// `crossgate backfill` beside a running daemon on the embedded store (which holds the store's
/// lock): the daemon runs the backfill and the command follows it; every order once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_beside_a_running_embedded_daemon_runs_in_the_daemon() {
    let m = mock(10, Duration::ZERO, vec![]);
    let base = serve(m.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), Backend::Embedded, &base, "unused");
    // A fixed port (the command finds the daemon at the config's listen address); no live poll.
    let port = free_port();
    let text = std::fs::read_to_string(&cfg.file)
        .unwrap()
        .replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        )
        .replace("poll = true", "poll = false");
    std::fs::write(&cfg.file, text).unwrap();
    let mut daemon = crossgate(&cfg.file)
        .arg("serve")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let health = format!("http://127.0.0.1:{port}/healthz");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http()
        .get(&health)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        if Instant::now() > deadline {
            let _ = daemon.kill();
            let _ = daemon.wait();
            panic!("the daemon did not answer");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let backfill = |file: std::path::PathBuf| {
        tokio::task::spawn_blocking(move || {
            crossgate(&file)
                .args(["backfill", "--instance", "amz", "--since", "2024-03-01"])
                .args(["--until", "2024-03-02"])
                .output()
                .unwrap()
        })
    };
    let out = backfill(cfg.file.clone()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("backfill of amz") && stdout.contains("25 orders this run"),
        "{stdout}"
    );
    // Again: the cursor says it is done; nothing is taken twice.
    let again = backfill(cfg.file.clone()).await.unwrap();
    assert!(again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("0 orders this run"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    // SIGTERM: a graceful stop releases the store.
    let _ = std::process::Command::new("kill")
        .arg(daemon.id().to_string())
        .status();
    let _ = daemon.wait();

    let (store, _) = crossgate::backend::open(&cfg.store).await.unwrap();
    let events = crossgate::with_store!(&store, s => order_events(s).await);
    assert_exactly_once(&events);
}

/// An XML channel polled with offset paging and HTTP Basic auth: PrestaShop's webservice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prestashop_xml_polling_with_offset_pages() {
    let list = String::from_utf8(
        std::fs::read(repo().join("tests/fixtures/prestashop/orders-list-display-full.xml"))
            .unwrap(),
    )
    .unwrap();
    let orders: Vec<String> = list
        .split("<order>")
        .skip(1)
        .map(|o| {
            format!(
                "<order>{}",
                &o[..o.find("</order>").unwrap() + "</order>".len()]
            )
        })
        .collect();
    assert_eq!(orders.len(), 2);
    let seen: Arc<Mutex<Vec<BTreeMap<String, String>>>> = Arc::default();
    let (o2, s2) = (orders.clone(), seen.clone());
    let app = axum::Router::new().route(
        "/shop/api/orders",
        get(move |h: HeaderMap, Query(q): Query<BTreeMap<String, String>>| {
            let (orders, seen) = (o2.clone(), s2.clone());
            async move {
                seen.lock().unwrap().push(q.clone());
                // Basic base64("WSKEY:")
                if h.get("authorization").and_then(|v| v.to_str().ok()) != Some("Basic V1NLRVk6") {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                let (offset, count) = q["limit"].split_once(',').unwrap();
                let (offset, count): (usize, usize) = (offset.parse().unwrap(), count.parse().unwrap());
                let page: String = orders.iter().skip(offset).take(count).cloned().collect();
                (
                    [("content-type", "text/xml")],
                    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<prestashop xmlns:xlink=\"http://www.w3.org/1999/xlink\"><orders>{page}</orders></prestashop>"),
                )
                    .into_response()
            }
        }),
    );
    let base = format!("{}/shop/api", serve_mock(app).await);

    let dir = tempfile::tempdir().unwrap();
    let adapters = adapters_dir(dir.path());
    let ps = adapters.join("prestashop.toml");
    let text = std::fs::read_to_string(&ps).unwrap();
    let edited = text
        .replace("limit = \"{offset},100\"", "limit = \"{offset},1\"")
        .replace("offset = { page_size = 100 }", "offset = { page_size = 1 }");
    assert_ne!(text, edited);
    std::fs::write(&ps, edited).unwrap();
    let cfg_text = format!(
        r#"adapters_dir = "{}"
[store]
backend = "embedded"
path = "{}"
[[instance]]
id = "ps"
adapter = "prestashop"
account = "shop"
poll = true
secrets = {{ webservice_key = "${{PS_KEY}}" }}
settings = {{ api_base = "{base}", currency = "EUR", timezone = "Europe/Paris" }}
"#,
        adapters.display(),
        dir.path().join("ps.redb").display()
    );
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, cfg_text).unwrap();
    let env: HashMap<String, String> = [("PS_KEY".to_string(), "WSKEY".to_string())]
        .into_iter()
        .collect();
    let cfg = Config::load_with_env(&file, &env).unwrap_or_else(|e| panic!("{e}"));
    let inst = cfg.instances["ps"].clone();
    let (store, _) = crossgate::backend::open(&cfg.store).await.unwrap();
    let client = crossgate::channel::client::ChannelClient::new(&inst, Default::default()).unwrap();
    let poller = crossgate::channel::poll::Poller::new(inst, client).unwrap();
    let state = crossgate::with_store!(&store, s => poller.run(s, &crossgate::channel::poll::Mode::Live, |_| {}).await).unwrap();
    assert_eq!(state.orders, 2);
    assert_eq!(state.pages, 3, "two full pages of 1, then an empty one");
    let q = seen.lock().unwrap().clone();
    let limits: Vec<&str> = q.iter().map(|p| p["limit"].as_str()).collect();
    assert_eq!(limits, ["0,1", "1,1", "2,1"]);
    // The window is sent in the shop's local time.
    let f = &q[0]["filter[date_upd]"];
    assert!(
        f.starts_with('[') && f.ends_with(']') && f.len() == 41,
        "{f}"
    );
    let events = crossgate::with_store!(&store, s => order_events(s).await);
    assert_eq!(events.len(), 2);
}

/// An idle channel: getOrders answers `{"payload": {"Orders": []}}`. A successful, empty page:
/// the cursor is committed, nothing is parked (it used to be a dead letter per poll, about 720
/// a day for an idle Amazon instance).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_page_commits_the_cursor_and_parks_nothing() {
    for backend in Backend::all() {
        let m = mock(10, Duration::ZERO, Vec::new());
        let base = serve(m.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), backend, &base, &unique_prefix("poll"));
        let (store, _) = crossgate::backend::open(&cfg.store).await.unwrap();
        let poller = fast_retry_poller(cfg.instances["amz"].clone());
        // After every order's last update: the mock's pages are empty.
        let since = base_time() + chrono::Duration::days(30);
        let mode = crossgate::channel::poll::Mode::Backfill {
            since,
            until: Some(since + chrono::Duration::days(1)),
        };
        let mut pages = 0;
        let state = crossgate::with_store!(&store, s => poller.run(s, &mode, |_| pages += 1).await)
            .unwrap();
        assert_eq!(pages, 1, "{backend:?}");
        assert_eq!(state.orders, 0);
        let served: Vec<u16> = m.log.lock().unwrap().iter().map(|r| r.3).collect();
        assert_eq!(served, [200], "one empty page, answered");
        let (parked, cursor) = parked_and_cursor(&store, "amz", "backfill").await;
        assert!(parked.is_empty(), "{backend:?}: {parked:?}");
        assert!(
            cursor.is_some(),
            "{backend:?}: the empty page's cursor is committed"
        );
        if let crossgate::backend::AnyStore::Redis(r) = store {
            r.flush_prefix().await.unwrap();
        }
    }
}
