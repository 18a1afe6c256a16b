//! Polling Meta Commerce (`GET /{cms_id}/commerce_orders`) against a mock Graph API on loopback
//! that answers as Graph does: bearer token, `updated_after` in unix seconds, the requested
//! `fields`, cursor paging (`paging.cursors.after`, with `paging.next` only while more pages
//! follow), times with a `+0000` offset, a transient Graph error (HTTP 500, `is_transient`) once,
//! and an empty `{"data": []}` page after the last. Both stores.
//!
//! Checked: every order is taken in exactly once, the error is retried, the empty page parks
//! nothing, and the cursor is committed.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::*;
use crossgate::config::Config;
use crossgate::store::Store;
use serde_json::{Value, json};

const TOKEN: &str = "EAAG-test-page-token";
const CMS: &str = "1234567890";
const ORDERS: usize = 5;
const PAGE: usize = 2;

struct Mock {
    orders: Vec<Value>,
    /// Fail the first list request with a transient Graph error.
    fail_once: Mutex<bool>,
    /// (after cursor, status) of every request.
    log: Mutex<Vec<(Option<String>, u16)>>,
    queries: Mutex<Vec<BTreeMap<String, String>>>,
}

fn mock() -> Arc<Mock> {
    let page: Value = serde_json::from_slice(
        &std::fs::read(
            repo().join("tests/fixtures/meta_commerce/commerce_orders-with-requested-fields.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let template = page["data"][0].clone();
    let orders = (0..ORDERS)
        .map(|i| {
            let mut o = template.clone();
            o["id"] = json!(format!("37289294671{i:04}"));
            // Graph's time format, one hour apart, oldest first.
            o["last_updated"] = json!(format!("2024-01-01T{:02}:05:00+0000", 10 + i));
            o["created"] = json!(format!("2024-01-01T{:02}:00:00+0000", 10 + i));
            o
        })
        .collect();
    Arc::new(Mock {
        orders,
        fail_once: Mutex::new(true),
        log: Mutex::new(Vec::new()),
        queries: Mutex::new(Vec::new()),
    })
}

async fn commerce_orders(
    State(m): State<Arc<Mock>>,
    Path(cms): Path<String>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let after = q.get("after").cloned();
    let status = |s: u16| m.log.lock().unwrap().push((after.clone(), s));
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
        || cms != CMS
    {
        status(401);
        return StatusCode::UNAUTHORIZED.into_response();
    }
    m.queries.lock().unwrap().push(q.clone());
    if std::mem::take(&mut *m.fail_once.lock().unwrap()) {
        status(500);
        let body = json!({ "error": { "message": "An unexpected error has occurred. Please retry your request later.", "type": "OAuthException", "is_transient": true, "code": 2, "fbtrace_id": "A1b2C3" } });
        return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response();
    }
    let since: i64 = q["updated_after"].parse().unwrap();
    let matching: Vec<&Value> = m
        .orders
        .iter()
        .filter(|o| {
            chrono::DateTime::parse_from_str(
                o["last_updated"].as_str().unwrap(),
                "%Y-%m-%dT%H:%M:%S%z",
            )
            .unwrap()
            .timestamp()
                >= since
        })
        .collect();
    // The cursor is the position after the page, as an opaque text.
    let start = after
        .as_deref()
        .map(|a| a.trim_start_matches("c").parse::<usize>().unwrap())
        .unwrap_or(0);
    let chunk: Vec<&Value> = matching.iter().skip(start).take(PAGE).copied().collect();
    status(200);
    if chunk.is_empty() {
        // Graph answers a page past the end with no data and no paging.
        return axum::Json(json!({ "data": [] })).into_response();
    }
    let end = start + chunk.len();
    let mut paging =
        json!({ "cursors": { "before": format!("c{start}"), "after": format!("c{end}") } });
    if end < matching.len() {
        paging["next"] = json!(format!(
            "https://graph.facebook.com/v19.0/{CMS}/commerce_orders?after=c{end}"
        ));
    }
    axum::Json(json!({ "data": chunk, "paging": paging })).into_response()
}

async fn serve(m: Arc<Mock>) -> String {
    let app = axum::Router::new()
        .route("/{cms}/commerce_orders", get(commerce_orders))
        .with_state(m);
    serve_mock(app).await
}

fn config(dir: &std::path::Path, backend: Backend, base: &str, prefix: &str) -> Config {
    let instance = format!(
        "id = \"meta\"\nadapter = \"meta_commerce\"\naccount = \"acme-shop\"\npoll = true\nsecrets = {{ access_token = \"${{TEST_META_TOKEN}}\" }}\nsettings = {{ api_base = \"{base}\", cms_id = \"{CMS}\" }}\n"
    );
    instance_config(
        dir,
        backend,
        &repo().join("adapters"),
        prefix,
        &instance,
        &[("TEST_META_TOKEN", TOKEN)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_commerce_pages_by_cursor_through_a_transient_error() {
    for backend in Backend::all() {
        let m = mock();
        let base = serve(m.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), backend, &base, &unique_prefix("meta"));
        let (store, _) = crossgate::backend::open(&cfg.store).await.unwrap();
        let poller = fast_retry_poller(cfg.instances["meta"].clone());
        let since = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let mode = crossgate::channel::poll::Mode::Backfill {
            since,
            until: Some(since + chrono::Duration::days(1)),
        };
        let mut pages = 0;
        let state = crossgate::with_store!(&store, s => poller.run(s, &mode, |_| pages += 1).await)
            .unwrap();
        assert_eq!(state.orders, ORDERS as u64, "{backend:?}");
        let log = m.log.lock().unwrap().clone();
        assert_eq!(
            log[0],
            (None, 500),
            "the transient error came first: {log:?}"
        );
        assert_eq!(log[1], (None, 200), "and was retried: {log:?}");
        assert!(log.iter().skip(1).all(|(_, s)| *s == 200), "{log:?}");
        // Three pages of orders (2 + 2 + 1); the cursor after the last may ask once more and
        // gets Graph's empty page.
        assert!((3..=4).contains(&pages), "{pages} pages: {log:?}");
        let q = m.queries.lock().unwrap()[0].clone();
        assert!(q["fields"].contains("last_updated"), "{q:?}");
        assert_eq!(
            q["updated_after"].parse::<i64>().unwrap(),
            since.timestamp(),
            "a backfill starts at --since, in unix seconds"
        );
        // The fields, with Graph's field expansion, reach Graph as written.
        assert!(q["fields"].contains("items{id,product_id,"), "{q:?}");

        let page = crossgate::with_store!(&store, s => s.list_orders(crossgate::store::OrderQuery {
            instance: Some("meta".into()), since: None, after: None, limit: 100 }).await)
        .unwrap();
        assert_eq!(page.items.len(), ORDERS, "{backend:?}");
        assert!(page.items.iter().all(|o| {
            o.totals.grand_total.amount().to_string() == "2.17"
                && o.shipping_address
                    .as_ref()
                    .is_some_and(|a| a.country.as_str() == "US")
        }));
        let (parked, cursor) = parked_and_cursor(&store, "meta", "backfill").await;
        assert!(parked.is_empty(), "{backend:?}: {parked:?}");
        assert!(cursor.is_some(), "{backend:?}");
        // Polling again takes in nothing new and parks nothing.
        let again =
            crossgate::with_store!(&store, s => poller.run(s, &mode, |_| {}).await).unwrap();
        assert_eq!(again.orders, state.orders);
        if let crossgate::backend::AnyStore::Redis(r) = store {
            r.flush_prefix().await.unwrap();
        }
    }
}

/// Meta's webhook route: the subscription check (`GET` with `hub.challenge`) and signed
/// notifications (`X-Hub-Signature-256: sha256=<hex>`), stored and acknowledged; the order
/// itself comes by polling.
#[tokio::test]
async fn meta_webhook_subscription_check_and_signed_notifications() {
    const APP_SECRET: &str = "meta-app-secret-for-tests";
    const VERIFY: &str = "meta-verify-token-for-tests";
    let dir = tempfile::tempdir().unwrap();
    let instance = "id = \"meta\"\nadapter = \"meta_commerce\"\naccount = \"acme-shop\"\nsecrets = { app_secret = \"${TEST_META_APP_SECRET}\", verify_token = \"${TEST_META_VERIFY}\" }\nsettings = { api_base = \"https://graph.facebook.com/v19.0\", cms_id = \"1234567890\" }\n";
    let cfg = instance_config(
        dir.path(),
        Backend::Embedded,
        &repo().join("adapters"),
        &unique_prefix("metawh"),
        instance,
        &[
            ("TEST_META_APP_SECRET", APP_SECRET),
            ("TEST_META_VERIFY", VERIFY),
        ],
    );

    // The scheme is GitHub's X-Hub-Signature-256; its documented vector (secret "It's a
    // Secret to Everybody", body "Hello, World!") verifies with this adapter's signature spec.
    let adapter = cfg.instances["meta"].adapter.clone();
    let mut h = crossgate::adapter::Headers::default();
    h.push(
        "X-Hub-Signature-256",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    );
    let secret = |_: &str| vec!["It's a Secret to Everybody"];
    assert!(adapter.verify(&h, b"Hello, World!", &secret, 0).is_ok());

    let (store, _) = crossgate::backend::open(&cfg.store).await.unwrap();
    let gw = Gateway::start_with(Arc::new(cfg), store, Some(dir)).await;
    let c = http();
    let check = |token: &str, challenge: &str| {
        gw.url(&format!(
            "/webhooks/meta?hub.mode=subscribe&hub.verify_token={token}&hub.challenge={challenge}"
        ))
    };
    let ok = c.get(check(VERIFY, "1158201444")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(
        ok.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    assert_eq!(
        common::get(&c, &check("wrong", "1158201444")).await.status,
        403
    );
    // A challenge that is not plain text is not echoed.
    assert_eq!(
        common::get(&c, &check(VERIFY, "%3Cscript%3E")).await.status,
        403
    );
    // Instances whose channel makes no such check answer 404.
    assert_eq!(
        common::get(&c, &gw.url("/webhooks/nope?hub.mode=subscribe"))
            .await
            .status,
        404
    );

    let body = serde_json::to_vec(&json!({ "object": "page", "entry": [{ "id": "1234567890", "time": 1_704_103_500, "changes": [{ "field": "commerce_orders", "value": { "order_id": "372892946710001" } }] }] })).unwrap();
    let sign = |secret: &str| {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(&body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    };
    let header = |v: String| vec![("X-Hub-Signature-256".to_string(), v)];
    let forged = post(
        &c,
        &gw.url("/webhooks/meta"),
        &body,
        &header(sign("not-the-secret")),
    )
    .await;
    assert_eq!(forged.status, 401, "{}", forged.text);
    let stored = post(
        &c,
        &gw.url("/webhooks/meta"),
        &body,
        &header(sign(APP_SECRET)),
    )
    .await;
    assert_eq!(stored.status, 200, "{}", stored.text);
    assert_eq!(stored.body["status"], "ignored", "{}", stored.text);
    let again = post(
        &c,
        &gw.url("/webhooks/meta"),
        &body,
        &header(sign(APP_SECRET)),
    )
    .await;
    assert_eq!(again.body["status"], "duplicate", "{}", again.text);
    gw.stop().await;
}

/// A signed notification wakes the instance's poller: an order Graph has just got is taken in
/// at once, not at the end of the two-minute poll interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_wakes_the_poller() {
    const APP_SECRET: &str = "meta-app-secret-for-wake";
    let m = Arc::new(Mock {
        orders: Vec::new(),
        fail_once: Mutex::new(false),
        log: Mutex::new(Vec::new()),
        queries: Mutex::new(Vec::new()),
    });
    // Graph answers with whatever the test has put in `live` (none at first).
    let live: Arc<Mutex<Vec<Value>>> = Arc::default();
    let (l2, m2) = (live.clone(), m.clone());
    let app = axum::Router::new().route(
        "/{cms}/commerce_orders",
        get(move || {
            let (live, m) = (l2.clone(), m2.clone());
            async move {
                m.log.lock().unwrap().push((None, 200));
                axum::Json(json!({ "data": live.lock().unwrap().clone() }))
            }
        }),
    );
    let base = serve_mock(app).await;
    let dir = tempfile::tempdir().unwrap();
    let instance = format!(
        "id = \"meta\"\nadapter = \"meta_commerce\"\naccount = \"acme-shop\"\npoll = true\nsecrets = {{ access_token = \"${{TEST_META_TOKEN}}\", app_secret = \"${{TEST_META_APP_SECRET}}\" }}\nsettings = {{ api_base = \"{base}\", cms_id = \"{CMS}\" }}\n"
    );
    let cfg = instance_config(
        dir.path(),
        Backend::Embedded,
        &repo().join("adapters"),
        &unique_prefix("metawake"),
        &instance,
        &[
            ("TEST_META_TOKEN", TOKEN),
            ("TEST_META_APP_SECRET", APP_SECRET),
        ],
    );
    let (store, _) = crossgate::backend::open(&cfg.store).await.unwrap();
    let gw = Gateway::start_with(Arc::new(cfg), store, Some(dir)).await;
    // The first poll finds nothing and the poller sleeps its interval (120 s).
    for _ in 0..100 {
        if !m.log.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!m.log.lock().unwrap().is_empty(), "the poller never asked");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // Graph gets an order; Meta notifies.
    let mut order = mock().orders[0].clone();
    order["last_updated"] = json!(
        chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S+0000")
            .to_string()
    );
    live.lock().unwrap().push(order);
    let body = serde_json::to_vec(&json!({ "object": "page", "entry": [{ "id": CMS, "time": 1_704_103_500, "changes": [{ "field": "commerce_orders", "value": {} }] }] })).unwrap();
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(APP_SECRET.as_bytes()).unwrap();
    mac.update(&body);
    let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let c = http();
    let r = post(
        &c,
        &gw.url("/webhooks/meta"),
        &body,
        &[("X-Hub-Signature-256".into(), sig)],
    )
    .await;
    assert_eq!(r.body["status"], "ignored", "{}", r.text);
    let mut stored = 0;
    for _ in 0..100 {
        let page = common::get(&c, &gw.url("/v1/orders?instance=meta")).await;
        stored = page.body["items"].as_array().map_or(0, Vec::len);
        if stored == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        stored, 1,
        "the order was taken in at once, not after the interval"
    );
    gw.stop().await;
}
