//! Thin webhooks over real HTTP: a BigCommerce `store/order/created` webhook names an order;
//! the gateway answers 200 once the webhook is stored, fetches the order, its products and its
//! shipping addresses from a mock BigCommerce API on loopback (real example payloads, one
//! injected 500), and stores the assembled order. An order the API does not have becomes a
//! dead letter people can see.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get as route_get;
use common::*;
use crossgate::config::Config;
use crossgate::model::OrderId;
use serde_json::{Value, json};

const API_TOKEN: &str = "bc-test-api-token";
const HOOK_SECRET: &str = "bc-test-webhook-secret";

#[derive(Default)]
struct Api {
    calls: Mutex<Vec<String>>,
    fail_once: Mutex<Option<String>>,
}

async fn order(State(a): State<Arc<Api>>, Path(id): Path<u64>, h: HeaderMap) -> Response {
    let path = format!("/v2/orders/{id}");
    a.calls.lock().unwrap().push(path.clone());
    if h.get("x-auth-token").and_then(|v| v.to_str().ok()) != Some(API_TOKEN) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if a.fail_once
        .lock()
        .unwrap()
        .take_if(|p| *p == path)
        .is_some()
    {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    if id == 404 {
        return (
            StatusCode::NOT_FOUND,
            "[{\"status\":404,\"message\":\"The requested resource was not found.\"}]",
        )
            .into_response();
    }
    let mut o: Value =
        serde_json::from_slice(&fixture("bigcommerce/orders-v2-get-order-218.json")).unwrap();
    o["id"] = json!(id);
    axum::Json(o).into_response()
}

async fn products(State(a): State<Arc<Api>>, Path(id): Path<u64>) -> Response {
    a.calls
        .lock()
        .unwrap()
        .push(format!("/v2/orders/{id}/products"));
    let mut p: Value =
        serde_json::from_slice(&fixture("bigcommerce/orders-v2-order-products.json")).unwrap();
    for item in p.as_array_mut().unwrap() {
        item["order_id"] = json!(id);
    }
    axum::Json(p).into_response()
}

async fn shipping(State(a): State<Arc<Api>>, Path(id): Path<u64>) -> Response {
    a.calls
        .lock()
        .unwrap()
        .push(format!("/v2/orders/{id}/shipping_addresses"));
    // BigCommerce answers 204 with no body when there are none.
    StatusCode::NO_CONTENT.into_response()
}

async fn taxes(State(a): State<Arc<Api>>, Path(id): Path<u64>) -> Response {
    a.calls
        .lock()
        .unwrap()
        .push(format!("/v2/orders/{id}/taxes"));
    let t: Value =
        serde_json::from_slice(&fixture("bigcommerce/orders-v2-order-taxes.json")).unwrap();
    axum::Json(t).into_response()
}

async fn serve(a: Arc<Api>) -> String {
    let app = axum::Router::new()
        .route("/stores/abc123/v2/orders/{id}", route_get(order))
        .route(
            "/stores/abc123/v2/orders/{id}/products",
            route_get(products),
        )
        .route(
            "/stores/abc123/v2/orders/{id}/shipping_addresses",
            route_get(shipping),
        )
        .route("/stores/abc123/v2/orders/{id}/taxes", route_get(taxes))
        .with_state(a);
    format!("{}/stores/abc123", serve_mock(app).await)
}

fn config(dir: &std::path::Path, backend: Backend, api_base: &str) -> Config {
    let instance = format!(
        "id = \"bc\"\nadapter = \"bigcommerce\"\naccount = \"abc123\"\nsecrets = {{ webhook = \"${{BC_HOOK}}\", api_token = \"${{BC_TOKEN}}\" }}\nsettings = {{ api_base = \"{api_base}\" }}\n"
    );
    instance_config(
        dir,
        backend,
        &repo().join("adapters"),
        &unique_prefix("fetch"),
        &instance,
        &[("BC_HOOK", HOOK_SECRET), ("BC_TOKEN", API_TOKEN)],
    )
}

fn webhook(order_id: u64) -> Vec<u8> {
    let mut w: Value =
        serde_json::from_slice(&fixture("bigcommerce/webhook-store_order_created.json")).unwrap();
    w["data"]["id"] = json!(order_id);
    serde_json::to_vec(&w).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thin_webhooks_are_stored_then_fetched() {
    for backend in Backend::all() {
        let api = Arc::new(Api::default());
        *api.fail_once.lock().unwrap() = Some("/v2/orders/250".into());
        let base = serve(api.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let cfg = Arc::new(config(dir.path(), backend, &base));
        let (store, _) = crossgate::backend::open(&cfg.store).await.unwrap();
        let gw = Gateway::start_with(cfg, store, Some(dir)).await;
        let c = http();
        let headers = vec![
            ("X-Crossgate-Secret".to_string(), HOOK_SECRET.to_string()),
            ("Content-Type".into(), "application/json".into()),
        ];

        let body = webhook(250);
        let r = post(&c, &gw.url("/webhooks/bc"), &body, &headers).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["fetch"], "pending");
        // A wrong secret is refused before anything is stored.
        let r = post(
            &c,
            &gw.url("/webhooks/bc"),
            &body,
            &[("X-Crossgate-Secret".into(), "nope".into())],
        )
        .await;
        assert_eq!(r.status, 401);

        // The fetch worker assembles and stores the order.
        let id = OrderId::derive("bc", "250");
        let mut order = Value::Null;
        for _ in 0..100 {
            let r = get(&c, &gw.url(&format!("/v1/orders/{}", id.as_str()))).await;
            if r.status == 200 {
                order = r.body;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(order["external_id"], "250", "{backend:?}: never fetched");
        assert_eq!(
            order["totals"]["grand_total"],
            json!({"amount": "69.84", "currency": "USD"})
        );
        assert_eq!(order["lines"].as_array().unwrap().len(), 2);
        let calls = api.calls.lock().unwrap().clone();
        assert_eq!(
            calls.iter().filter(|p| *p == "/v2/orders/250").count(),
            2,
            "the 500 was retried: {calls:?}"
        );
        // Nothing is left parked.
        let dls = get(&c, &gw.url("/v1/dead-letters?instance=bc")).await;
        assert_eq!(
            dls.body["items"].as_array().unwrap().len(),
            0,
            "{}",
            dls.text
        );

        // An order the API does not have: a dead letter that says so.
        let r = post(&c, &gw.url("/webhooks/bc"), &webhook(404), &headers).await;
        assert_eq!(r.status, 200);
        let mut kind = Value::Null;
        for _ in 0..100 {
            let dls = get(&c, &gw.url("/v1/dead-letters?instance=bc")).await;
            if let Some(d) = dls.body["items"].as_array().unwrap().first()
                && d["reason"]["kind"] == "fetch_refused"
            {
                kind = d["reason"]["kind"].clone();
                assert!(
                    d["reason"]["message"].as_str().unwrap().contains("404"),
                    "{d}"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(kind, "fetch_refused", "{backend:?}");
        gw.stop().await;
    }
}
