//! The WeChat shop (微信小店) end to end over real HTTP: the subscription check, an order event
//! pushed in safe mode (the committed vector: the documented event encrypted with Python's
//! `cryptography`), answered "success" once stored, then the order fetched with
//! `POST /channels/ec/order/get?access_token=…` from a mock WeChat API on loopback that answers
//! with the documented example, and stored. Forged and replayed pushes are refused. Both stores.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post as route_post;
use common::*;
use crossgate::adapter::wechat_message;
use crossgate::model::OrderId;
use serde_json::{Value, json};

const ACCESS_TOKEN: &str = "wechat-test-access-token";

#[derive(Default)]
struct Api {
    /// The JSON bodies of the order/get calls.
    calls: Mutex<Vec<Value>>,
}

async fn order_get(
    State(a): State<Arc<Api>>,
    Query(q): Query<std::collections::BTreeMap<String, String>>,
    body: String,
) -> Response {
    if q.get("access_token").map(String::as_str) != Some(ACCESS_TOKEN) {
        // WeChat answers 200 with an error code for a bad token.
        return axum::Json(json!({ "errcode": 40001, "errmsg": "invalid credential" }))
            .into_response();
    }
    let req: Value = serde_json::from_str(&body).unwrap();
    a.calls.lock().unwrap().push(req.clone());
    let mut doc: Value = serde_json::from_slice(
        &std::fs::read(repo().join("tests/fixtures/wechat_shop/order-get-doc-example.json"))
            .unwrap(),
    )
    .unwrap();
    doc["order"]["order_id"] = req["order_id"].clone();
    axum::Json(doc).into_response()
}

async fn serve(a: Arc<Api>) -> String {
    let app = axum::Router::new()
        .route("/channels/ec/order/get", route_post(order_get))
        .with_state(a);
    serve_mock(app).await
}

fn vector() -> Value {
    serde_json::from_slice(
        &std::fs::read(repo().join("tests/fixtures/wechat_shop/order-new-push-vector.json"))
            .unwrap(),
    )
    .unwrap()
}

/// The push URL WeChat calls: timestamp, nonce and msg_signature in the query (signed now,
/// over the vector's ciphertext; the vector's own signature is checked in the unit tests).
fn push_url(gw: &Gateway, v: &Value, token: &str) -> String {
    let s = |k: &str| v[k].as_str().unwrap().to_string();
    let body = s("body");
    let encrypt = wechat_message::ciphertext(body.as_bytes()).unwrap();
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = wechat_message::signature(token, &ts, &s("nonce"), &encrypt);
    gw.url(&format!(
        "/webhooks/wx-shop?signature=ignored&timestamp={ts}&nonce={}&openid=OPENID&encrypt_type=aes&msg_signature={sig}",
        s("nonce")
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechat_shop_order_events_are_decrypted_fetched_and_stored() {
    let v = vector();
    let s = |k: &str| v[k].as_str().unwrap().to_string();
    for backend in Backend::all() {
        let api = Arc::new(Api::default());
        let base = serve(api.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let instance = format!(
            "id = \"wx-shop\"\nadapter = \"wechat_shop\"\naccount = \"{app}\"\nsecrets = {{ token = \"${{WX_TOKEN}}\", encoding_aes_key = \"${{WX_AES}}\", access_token = \"${{WX_ACCESS}}\" }}\nsettings = {{ api_base = \"{base}\", app_id = \"{app}\" }}\n",
            app = s("app_id")
        );
        let cfg = instance_config(
            dir.path(),
            backend,
            &repo().join("adapters"),
            &unique_prefix("wxshop"),
            &instance,
            &[
                ("WX_TOKEN", s("token").as_str()),
                ("WX_AES", s("encoding_aes_key").as_str()),
                ("WX_ACCESS", ACCESS_TOKEN),
            ],
        );
        let (store, _) = crossgate::backend::open(&cfg.store).await.unwrap();
        let gw = Gateway::start_with(Arc::new(cfg), store, Some(dir)).await;
        let c = http();

        // The subscription check: echostr echoed when the signature is over the token.
        let (ts, nonce) = ("1409304348", "xxxxxx");
        let sig = wechat_message::check_signature(&s("token"), ts, nonce);
        let check = |sig: &str| {
            gw.url(&format!(
                "/webhooks/wx-shop?signature={sig}&timestamp={ts}&nonce={nonce}&echostr=6357230213423895133"
            ))
        };
        let ok = c.get(check(&sig)).send().await.unwrap();
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.text().await.unwrap(), "6357230213423895133");
        assert_eq!(get(&c, &check("0000")).await.status, 403);

        // The order event, encrypted: "success" once stored.
        let body = s("body").into_bytes();
        let json_type = vec![("Content-Type".to_string(), "application/json".to_string())];
        let r = post(&c, &push_url(&gw, &v, &s("token")), &body, &json_type).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.text, "success");
        // Signed with another token, or with the signature missing: refused, nothing stored.
        let forged = post(&c, &push_url(&gw, &v, "not-the-token"), &body, &json_type).await;
        assert_eq!(forged.status, 401, "{}", forged.text);
        let unsigned = post(&c, &gw.url("/webhooks/wx-shop"), &body, &json_type).await;
        assert_eq!(unsigned.status, 401, "{}", unsigned.text);
        // WeChat's retry of the same event is a duplicate (still "success").
        let again = post(&c, &push_url(&gw, &v, &s("token")), &body, &json_type).await;
        assert_eq!(again.text, "success");

        // The fetch worker asks order/get for the exact 19-digit id and stores the order.
        let id = OrderId::derive("wx-shop", "3705115058471208928");
        let mut order = Value::Null;
        for _ in 0..150 {
            let r = get(&c, &gw.url(&format!("/v1/orders/{}", id.as_str()))).await;
            if r.status == 200 {
                order = r.body;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            order["external_id"], "3705115058471208928",
            "{backend:?}: never fetched"
        );
        assert_eq!(
            order["totals"]["grand_total"],
            json!({ "amount": "105.00", "currency": "CNY" })
        );
        assert_eq!(order["status"], "paid");
        assert_eq!(order["shipping_address"]["country"], "CN");
        let calls = api.calls.lock().unwrap().clone();
        assert_eq!(
            calls,
            vec![json!({ "order_id": "3705115058471208928" })],
            "{backend:?}"
        );
        let dls = get(&c, &gw.url("/v1/dead-letters?instance=wx-shop")).await;
        assert_eq!(
            dls.body["items"].as_array().unwrap().len(),
            0,
            "{}",
            dls.text
        );
        gw.stop().await;
    }
}
