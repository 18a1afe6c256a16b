//! Reconciliation: a Shopify instance that both pushes webhooks and is polled (Link-header
//! pagination against a mock Admin API on loopback). Orders seen only by polling, or only
//! pushed, are listed by the API and counted in a metric.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get as route_get;
use common::*;
use crossgate::config::Config;
use crossgate::model::OrderId;
use serde_json::{Value, json};

const ACCESS_TOKEN: &str = "shpat_test_token";

/// Updated an hour ago (the reconciliation metric looks at the last 7 days).
fn recent() -> String {
    (chrono::Utc::now() - chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn order_json(id: u64) -> Value {
    let mut v: Value = serde_json::from_slice(&shopify_order(id, &recent())).unwrap();
    v["order"].take()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_seen_by_only_one_path_are_reported() {
    let requests: Arc<Mutex<Vec<BTreeMap<String, String>>>> = Arc::default();
    let r2 = requests.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}/admin/api/2024-04");
    let next = format!("{base}/orders.json?page_info=p2&limit=250");
    let app = axum::Router::new().route(
        "/admin/api/2024-04/orders.json",
        route_get(
            move |h: HeaderMap, Query(q): Query<BTreeMap<String, String>>| {
                let (requests, next) = (r2.clone(), next.clone());
                async move {
                    requests.lock().unwrap().push(q.clone());
                    if h.get("x-shopify-access-token")
                        .and_then(|v| v.to_str().ok())
                        != Some(ACCESS_TOKEN)
                    {
                        return StatusCode::UNAUTHORIZED.into_response();
                    }
                    match q.get("page_info").map(String::as_str) {
                        None => (
                            [("link", format!("<{next}>; rel=\"next\""))],
                            axum::Json(json!({ "orders": [order_json(8002)] })),
                        )
                            .into_response(),
                        Some("p2") => {
                            axum::Json(json!({ "orders": [order_json(8003)] })).into_response()
                        }
                        Some(_) => StatusCode::BAD_REQUEST.into_response(),
                    }
                }
            },
        ),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"adapters_dir = "{}"
[server]
listen = "127.0.0.1:0"
[store]
backend = "embedded"
path = "{}"
[log]
level = "warn"
[[instance]]
id = "shop"
adapter = "shopify"
account = "test-shop.myshopify.com"
poll = true
secrets = {{ webhook = "${{SHOP_HOOK}}", access_token = "${{SHOP_TOKEN}}" }}
settings = {{ api_base = "{base}" }}
"#,
        repo().join("adapters").display(),
        dir.path().join("r.redb").display()
    );
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, text).unwrap();
    let env: HashMap<String, String> = [
        ("SHOP_HOOK".to_string(), SHOPIFY_SECRET.to_string()),
        ("SHOP_TOKEN".to_string(), ACCESS_TOKEN.to_string()),
    ]
    .into_iter()
    .collect();
    let cfg = Arc::new(Config::load_with_env(&file, &env).unwrap_or_else(|e| panic!("{e}")));

    // Orders 8001 and 8002 are pushed before the gateway polls.
    let (store, _) = crossgate::backend::open(&cfg.store).await.unwrap();
    let gw = Gateway::start_with(cfg, store, Some(dir)).await;
    let c = http();
    for id in [8001u64, 8002] {
        let body = shopify_order(id, &recent());
        let r = post(
            &c,
            &gw.url("/webhooks/shop"),
            &body,
            &shopify_headers(&body, &format!("w-{id}"), "orders/create"),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    // The daemon's poller takes in 8002 and 8003 (two pages through the Link header).
    let mut found = false;
    for _ in 0..100 {
        let r = get(
            &c,
            &gw.url(&format!(
                "/v1/orders/{}",
                OrderId::derive("shop", "8003").as_str()
            )),
        )
        .await;
        if r.status == 200 {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(found, "the poller never stored order 8003");
    let q = requests.lock().unwrap().clone();
    assert_eq!(q[0]["status"], "any");
    assert!(q[0].contains_key("updated_at_min"));
    assert_eq!(
        q[1].get("page_info").map(String::as_str),
        Some("p2"),
        "the Link URL is followed as is"
    );
    assert!(!q[1].contains_key("updated_at_min"));

    let r = get(&c, &gw.url("/v1/instances/shop/reconciliation")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["result"]["polled_not_pushed"],
        json!([OrderId::derive("shop", "8003").as_str()])
    );
    assert_eq!(
        r.body["result"]["pushed_not_polled"],
        json!([OrderId::derive("shop", "8001").as_str()])
    );
    // The same counts as a metric (set after each poll, and when the reconciliation is read).
    let mut metric_ok = false;
    for _ in 0..50 {
        let m = get(&c, &gw.url("/metrics")).await.text;
        if m.contains(r#"crossgate_reconcile_unmatched_orders{instance="shop",only="poll"} 1"#)
            && m.contains(
                r#"crossgate_reconcile_unmatched_orders{instance="shop",only="webhook"} 1"#,
            )
        {
            metric_ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(metric_ok, "{}", get(&c, &gw.url("/metrics")).await.text);
    gw.stop().await;
}
