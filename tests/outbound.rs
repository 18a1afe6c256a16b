//! Channels out (issue 15): listing updates and shipment confirmations go through the durable
//! outbox to a mock Shopify REST Admin API (2024-04) on loopback (`common::shopify_mock`,
//! which checks each request the way Shopify would). On both stores.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::shopify_mock::{LOCATION, TOKEN, calls_to, mock_shopify};
use common::*;
use serde_json::{Value, json};

/// A gateway with one Shopify instance that pushes to the mock; retries wait 100 ms.
async fn gateway(backend: Backend, mock: &str, dir: &tempfile::TempDir) -> Gateway {
    let instance = format!(
        r#"id = "shop"
adapter = "shopify"
account = "test-shop.myshopify.com"
secrets = {{ webhook = "${{W}}", access_token = "${{T}}" }}
settings = {{ api_base = "{mock}/admin/api/2024-04", location_id = "{LOCATION}" }}
[outbox]
max_attempts = 3
retry_base_ms = 100
retry_max_secs = 1
"#
    );
    let config = instance_config(
        dir.path(),
        backend,
        &repo().join("adapters"),
        &unique_prefix("ob"),
        &instance,
        &[("W", SHOPIFY_SECRET), ("T", TOKEN)],
    );
    let config = Arc::new(config);
    let (store, _) = crossgate::backend::open(&config.store).await.unwrap();
    Gateway::start_with(config, store, None).await
}

async fn take_in(gw: &Gateway, body: &[u8], id: &str, topic: &str) {
    let h = shopify_headers(body, id, topic);
    let r = post(&http(), &gw.url("/webhooks/shop"), body, &h).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// Shopify's sample product (variants IPOD2008PINK, RED, GREEN, BLACK) by its webhook.
async fn take_in_product(gw: &Gateway) {
    let product = fixture("shopify/rest-2024-04-product-get-632910392.json");
    take_in(gw, &product, "p1", "products/update").await;
}

async fn listing_id(gw: &Gateway, sku: &str) -> String {
    let r = get(
        &http(),
        &gw.url(&format!("/v1/listings?instance=shop&sku={sku}")),
    )
    .await;
    r.body["items"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", r.text))
        .to_string()
}

async fn send(
    gw: &Gateway,
    method: reqwest::Method,
    path: &str,
    body: Value,
    key: Option<&str>,
) -> Reply {
    send_json(&http(), method, &gw.url(path), &body, key).await
}

/// The command once it reached one of `states`.
async fn settled(gw: &Gateway, id: &str, states: &[&str]) -> Value {
    command_in(gw, id, states).await
}

/// Stock, price and status of one variant in one PATCH: three documented requests, each once;
/// the same call with the same `Idempotency-Key` answers the same command and sends nothing
/// more; the key with another body is refused.
async fn listing_update_reaches_shopify(backend: Backend) {
    let (mock, shop) = mock_shopify().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(backend, &mock, &dir).await;
    take_in_product(&gw).await;
    let pink = listing_id(&gw, "IPOD2008PINK").await;
    let patch = json!({"stock": 42, "price": {"amount": "189.50", "currency": "USD"}, "status": "inactive"});
    let path = format!("/v1/listings/{pink}");
    let r = send(
        &gw,
        reqwest::Method::PATCH,
        &path,
        patch.clone(),
        Some("k-1"),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.body["commands"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["repeated"], false);
    let again = send(&gw, reqwest::Method::PATCH, &path, patch, Some("k-1")).await;
    assert_eq!(again.status, 202, "{}", again.text);
    assert_eq!(again.body["repeated"], true);
    assert_eq!(again.body["commands"][0]["id"], id.as_str());
    let other = send(
        &gw,
        reqwest::Method::PATCH,
        &path,
        json!({"stock": 1}),
        Some("k-1"),
    )
    .await;
    assert_eq!(other.status, 422, "{}", other.text);

    let cmd = settled(&gw, &id, &["confirmed", "dead"]).await;
    assert_eq!(cmd["state"], "confirmed", "{cmd}");
    let ops: Vec<&str> = cmd["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        ["inventory", "variant_price", "product_status"],
        "{cmd}"
    );
    let methods: Vec<&str> = shop
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.method)
        .collect();
    assert_eq!(methods, ["POST", "PUT", "PUT"]);
    assert_eq!(
        calls_to(&shop, "inventory_levels")
            .iter()
            .map(|c| c.body.clone())
            .collect::<Vec<_>>(),
        [json!({"location_id": LOCATION, "inventory_item_id": 808950810u64, "available": 42})]
    );
    assert_eq!(
        calls_to(&shop, "/variants/808950810.json")
            .iter()
            .map(|c| c.body.clone())
            .collect::<Vec<_>>(),
        [json!({"variant": {"id": 808950810u64, "price": "189.50"}})]
    );
    assert_eq!(
        calls_to(&shop, "/products/632910392.json")
            .iter()
            .map(|c| c.body.clone())
            .collect::<Vec<_>>(),
        [json!({"product": {"id": 632910392u64, "status": "draft"}})]
    );
    // Shopify echoes the set as inventory_levels/update: stored as Shopify's report (the
    // listing shows the level), and no new command comes of it.
    let echo = serde_json::to_vec(&json!({"inventory_item_id": 808950810u64, "location_id": LOCATION, "available": 42, "updated_at": "2026-12-07T10:00:00-05:00", "admin_graphql_api_id": format!("gid://shopify/InventoryLevel/{LOCATION}?inventory_item_id=808950810")})).unwrap();
    take_in(&gw, &echo, "echo-1", "inventory_levels/update").await;
    let shown = get(&http(), &gw.url(&format!("/v1/listings/{pink}"))).await;
    assert_eq!(
        shown.body["stock_levels"][0]["available"], 42,
        "{}",
        shown.text
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        calls_to(&shop, "inventory_levels").len(),
        1,
        "the echo started no push"
    );
    // A price in another currency than the listing's is refused, and nothing is stored.
    let eur = send(
        &gw,
        reqwest::Method::PATCH,
        &path,
        json!({"price": {"amount": "10.00", "currency": "EUR"}}),
        None,
    )
    .await;
    assert_eq!(eur.status, 422, "{}", eur.text);
    let bad = send(
        &gw,
        reqwest::Method::PATCH,
        &path,
        json!({"stock": "many"}),
        None,
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(
        bad.body["detail"].as_str().unwrap().contains("stock"),
        "{}",
        bad.text
    );
    assert!(
        !bad.text.contains("many"),
        "the value is not quoted: {}",
        bad.text
    );
    let list = get(&http(), &gw.url("/v1/outbound?instance=shop")).await;
    assert_eq!(
        list.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        list.text
    );
    assert!(
        shop.violations.lock().unwrap().is_empty(),
        "{:?}",
        shop.violations.lock().unwrap()
    );
    gw.stop().await;
}

#[tokio::test]
async fn listing_update_reaches_shopify_embedded() {
    listing_update_reaches_shopify(Backend::Embedded).await;
}

#[tokio::test]
async fn listing_update_reaches_shopify_redis() {
    listing_update_reaches_shopify(Backend::Redis).await;
}

/// A 429 with `Retry-After: 1` is waited out and the command confirmed; a 422 makes it dead
/// with Shopify's reason; a retry by hand is refused once a newer command for the listing
/// exists.
async fn throttled_refused_and_retried(backend: Backend) {
    let (mock, shop) = mock_shopify().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(backend, &mock, &dir).await;
    take_in_product(&gw).await;
    let red = listing_id(&gw, "IPOD2008RED").await;
    *shop.throttle.lock().unwrap() = 1;
    let r = send(
        &gw,
        reqwest::Method::PATCH,
        &format!("/v1/listings/{red}"),
        json!({"stock": 7}),
        None,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.body["commands"][0]["id"].as_str().unwrap().to_string();
    let cmd = settled(&gw, &id, &["confirmed", "dead"]).await;
    assert_eq!(cmd["state"], "confirmed", "{cmd}");
    let outcomes: Vec<&str> = cmd["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["throttled", "confirmed"], "{cmd}");
    let calls = calls_to(&shop, "inventory_levels");
    assert!(
        calls[1].at - calls[0].at >= Duration::from_millis(950),
        "Retry-After was honoured"
    );

    *shop.refuse_variant.lock().unwrap() = Some(49148385);
    let path = format!("/v1/listings/{red}");
    let r = send(
        &gw,
        reqwest::Method::PATCH,
        &path,
        json!({"price": {"amount": "150.00", "currency": "USD"}}),
        None,
    )
    .await;
    let refused = r.body["commands"][0]["id"].as_str().unwrap().to_string();
    let cmd = settled(&gw, &refused, &["confirmed", "dead"]).await;
    assert_eq!(cmd["state"], "dead", "{cmd}");
    assert_eq!(cmd["attempts"][0]["status"], 422);
    assert!(
        cmd["reason"]
            .as_str()
            .unwrap()
            .contains("Price change not allowed"),
        "{cmd}"
    );
    // Dead commands are listed by state.
    let dead = get(&http(), &gw.url("/v1/outbound?instance=shop&status=dead")).await;
    assert_eq!(
        dead.body["items"][0]["id"],
        refused.as_str(),
        "{}",
        dead.text
    );
    // Retried by hand once Shopify allows it: it goes out again.
    *shop.refuse_variant.lock().unwrap() = None;
    let retry = post(
        &http(),
        &gw.url(&format!("/v1/outbound/{refused}/retry")),
        b"",
        &[],
    )
    .await;
    assert_eq!(retry.status, 200, "{}", retry.text);
    let cmd = settled(&gw, &refused, &["confirmed", "dead"]).await;
    assert_eq!(cmd["state"], "confirmed", "{cmd}");
    // A newer command for the listing: retrying an older dead one would overwrite it.
    *shop.refuse_variant.lock().unwrap() = Some(49148385);
    let r = send(
        &gw,
        reqwest::Method::PATCH,
        &path,
        json!({"price": {"amount": "140.00", "currency": "USD"}}),
        None,
    )
    .await;
    let old = r.body["commands"][0]["id"].as_str().unwrap().to_string();
    settled(&gw, &old, &["dead"]).await;
    *shop.refuse_variant.lock().unwrap() = None;
    let r = send(
        &gw,
        reqwest::Method::PATCH,
        &path,
        json!({"price": {"amount": "145.00", "currency": "USD"}}),
        None,
    )
    .await;
    let newer = r.body["commands"][0]["id"].as_str().unwrap().to_string();
    settled(&gw, &newer, &["confirmed"]).await;
    let retry = post(
        &http(),
        &gw.url(&format!("/v1/outbound/{old}/retry")),
        b"",
        &[],
    )
    .await;
    assert_eq!(retry.status, 409, "{}", retry.text);
    let prices: Vec<Value> = calls_to(&shop, "/variants/49148385.json")
        .iter()
        .map(|c| c.body["variant"]["price"].clone())
        .collect();
    assert_eq!(prices.last().unwrap(), "145.00", "{prices:?}");
    assert!(
        shop.violations.lock().unwrap().is_empty(),
        "{:?}",
        shop.violations.lock().unwrap()
    );
    gw.stop().await;
}

#[tokio::test]
async fn throttled_refused_and_retried_embedded() {
    throttled_refused_and_retried(Backend::Embedded).await;
}

#[tokio::test]
async fn throttled_refused_and_retried_redis() {
    throttled_refused_and_retried(Backend::Redis).await;
}

/// 100 stock levels for one SKU in a burst: Shopify ends at the last, never sees an older
/// level after a newer one, and unsent levels were replaced rather than sent.
async fn burst_of_stock_levels_ends_at_the_last(backend: Backend) {
    let (mock, shop) = mock_shopify().await;
    *shop.inventory_delay.lock().unwrap() = Duration::from_millis(30);
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(backend, &mock, &dir).await;
    take_in_product(&gw).await;
    let path = format!("/v1/listings/{}", listing_id(&gw, "IPOD2008GREEN").await);
    let mut ids = Vec::new();
    for n in 1..=100 {
        let r = send(
            &gw,
            reqwest::Method::PATCH,
            &path,
            json!({"stock": n}),
            None,
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.text);
        ids.push(r.body["commands"][0]["id"].as_str().unwrap().to_string());
    }
    let last = settled(&gw, ids.last().unwrap(), &["confirmed", "dead"]).await;
    assert_eq!(last["state"], "confirmed", "{last}");
    let history: Vec<i64> = shop
        .levels
        .lock()
        .unwrap()
        .iter()
        .map(|(_, n)| *n)
        .collect();
    assert_eq!(history.last(), Some(&100), "{history:?}");
    assert!(
        history.windows(2).all(|w| w[0] < w[1]),
        "an older level after a newer: {history:?}"
    );
    let mut states = BTreeMap::<String, usize>::new();
    for id in &ids {
        let c = get(&http(), &gw.url(&format!("/v1/outbound/{id}"))).await;
        *states
            .entry(c.body["state"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(
        states.get("confirmed").copied().unwrap_or(0),
        history.len(),
        "{states:?}"
    );
    assert_eq!(
        states.get("coalesced").copied().unwrap_or(0) + history.len(),
        100,
        "{states:?}"
    );
    assert!(history.len() < 100, "nothing was coalesced: {history:?}");
    gw.stop().await;
}

#[tokio::test]
async fn burst_of_stock_levels_ends_at_the_last_embedded() {
    burst_of_stock_levels_ends_at_the_last(Backend::Embedded).await;
}

#[tokio::test]
async fn burst_of_stock_levels_ends_at_the_last_redis() {
    burst_of_stock_levels_ends_at_the_last(Backend::Redis).await;
}

/// A shipment confirmation: Shopify's fulfillment order is looked up, the fulfillment created
/// with tracking, and its id kept with the command. Lines Shopify cannot take, and lines or
/// quantities the order does not have, are refused before anything is stored.
async fn shipment_is_confirmed(backend: Backend) {
    let (mock, shop) = mock_shopify().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(backend, &mock, &dir).await;
    take_in(
        &gw,
        &shopify_order(450789469, "2024-04-02T09:00:00-04:00"),
        "o1",
        "orders/updated",
    )
    .await;
    let orders = get(&http(), &gw.url("/v1/orders?instance=shop")).await;
    let order = orders.body["items"][0]["id"].as_str().unwrap().to_string();
    let path = format!("/v1/orders/{order}/shipments");
    let with_lines = json!({"carrier": "DHL", "tracking_number": "MS1562678", "lines": [{"line_id": "466157049", "quantity": 1}]});
    let r = send(&gw, reqwest::Method::POST, &path, with_lines, None).await;
    assert_eq!(r.status, 422, "{}", r.text);
    let wrong_line = json!({"carrier": "DHL", "tracking_number": "MS1562678", "lines": [{"line_id": "1", "quantity": 1}]});
    let r = send(&gw, reqwest::Method::POST, &path, wrong_line, None).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["field"], "lines[0].line_id", "{}", r.text);
    let shipment = json!({"carrier": "DHL", "tracking_number": "MS1562678", "tracking_url": "https://www.my-shipping-company.com?tracking_number=MS1562678"});
    let r = send(&gw, reqwest::Method::POST, &path, shipment, Some("ship-1")).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.body["commands"][0]["id"].as_str().unwrap().to_string();
    let cmd = settled(&gw, &id, &["confirmed", "dead"]).await;
    assert_eq!(cmd["state"], "confirmed", "{cmd}");
    assert_eq!(cmd["channel_refs"]["fulfillment"], "1069019862", "{cmd}");
    let created = calls_to(&shop, "fulfillments.json");
    assert_eq!(created.len(), 1);
    assert_eq!(
        created[0].body,
        json!({"fulfillment": {
            "line_items_by_fulfillment_order": [{"fulfillment_order_id": 1046000778u64}],
            "tracking_info": {"company": "DHL", "number": "MS1562678", "url": "https://www.my-shipping-company.com?tracking_number=MS1562678"},
            "notify_customer": true,
        }})
    );
    assert_eq!(
        calls_to(&shop, "/orders/450789469/fulfillment_orders.json").len(),
        1
    );
    // Sent again (as after a crash that cut off Shopify's answer): no open fulfillment order
    // is left, so it is confirmed without a second fulfillment, and says why.
    let again = json!({"carrier": "DHL", "tracking_number": "MS1562678"});
    let r = send(&gw, reqwest::Method::POST, &path, again, None).await;
    let id = r.body["commands"][0]["id"].as_str().unwrap().to_string();
    let cmd = settled(&gw, &id, &["confirmed", "dead"]).await;
    assert_eq!(cmd["state"], "confirmed", "{cmd}");
    assert!(
        cmd["attempts"][0]["message"]
            .as_str()
            .unwrap()
            .contains("done there already"),
        "{cmd}"
    );
    assert_eq!(calls_to(&shop, "fulfillments.json").len(), 1);
    assert!(
        shop.violations.lock().unwrap().is_empty(),
        "{:?}",
        shop.violations.lock().unwrap()
    );
    gw.stop().await;
}

#[tokio::test]
async fn shipment_is_confirmed_embedded() {
    shipment_is_confirmed(Backend::Embedded).await;
}

#[tokio::test]
async fn shipment_is_confirmed_redis() {
    shipment_is_confirmed(Backend::Redis).await;
}

/// The bulk form: all updates are stored in one write, or none (an unknown SKU names its
/// place and stores nothing).
async fn bulk_updates_are_all_or_nothing(backend: Backend) {
    let (mock, shop) = mock_shopify().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(backend, &mock, &dir).await;
    take_in_product(&gw).await;
    let bad = json!({"instance": "shop", "updates": [{"sku": "IPOD2008RED", "stock": 3}, {"sku": "NO-SUCH-SKU", "stock": 1}]});
    let r = send(
        &gw,
        reqwest::Method::POST,
        "/v1/listings/updates",
        bad,
        None,
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["field"], "updates[1].sku", "{}", r.text);
    let none = get(&http(), &gw.url("/v1/outbound?instance=shop")).await;
    assert_eq!(none.body["items"], json!([]), "{}", none.text);
    let good = json!({"instance": "shop", "updates": [{"sku": "IPOD2008RED", "stock": 3}, {"sku": "IPOD2008BLACK", "stock": 0}]});
    let r = send(
        &gw,
        reqwest::Method::POST,
        "/v1/listings/updates",
        good,
        None,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    for c in r.body["commands"].as_array().unwrap() {
        settled(&gw, c["id"].as_str().unwrap(), &["confirmed"]).await;
    }
    let mut items: Vec<Value> = calls_to(&shop, "inventory_levels")
        .iter()
        .map(|c| c.body["inventory_item_id"].clone())
        .collect();
    items.sort_by_key(|v| v.as_u64());
    assert_eq!(items, [json!(49148385u64), json!(457924702u64)]);
    gw.stop().await;
}

#[tokio::test]
async fn bulk_updates_are_all_or_nothing_embedded() {
    bulk_updates_are_all_or_nothing(Backend::Embedded).await;
}

#[tokio::test]
async fn bulk_updates_are_all_or_nothing_redis() {
    bulk_updates_are_all_or_nothing(Backend::Redis).await;
}

/// `crossgate outbound list|show|retry`, through the daemon's API (`--url`) and, on Redis,
/// through the store directly (the config's listen address answers nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_shows_and_retries_commands() {
    let (mock, shop) = mock_shopify().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(Backend::Redis, &mock, &dir).await;
    take_in_product(&gw).await;
    *shop.refuse_variant.lock().unwrap() = Some(49148385);
    let red = listing_id(&gw, "IPOD2008RED").await;
    let price = json!({"price": {"amount": "150.00", "currency": "USD"}});
    let r = send(
        &gw,
        reqwest::Method::PATCH,
        &format!("/v1/listings/{red}"),
        price,
        None,
    )
    .await;
    let id = r.body["commands"][0]["id"].as_str().unwrap().to_string();
    settled(&gw, &id, &["dead"]).await;
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_crossgate"))
            .arg("--config")
            .arg(dir.path().join("gateway.toml"))
            .args(args)
            .env("W", SHOPIFY_SECRET)
            .env("T", TOKEN)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    for via in [vec!["--url", gw.base.as_str()], vec![]] {
        let mut args = vec!["outbound", "list", "--instance", "shop", "--status", "dead"];
        args.extend(via.iter().copied());
        let table = cli(&args);
        assert!(
            table.contains(&id) && table.contains("Price change not allowed"),
            "{table}"
        );
        let mut args = vec!["outbound", "show", id.as_str()];
        args.extend(via.iter().copied());
        let shown: serde_json::Value = serde_json::from_str(&cli(&args)).unwrap();
        assert_eq!(shown["attempts"][0]["status"], 422);
    }
    *shop.refuse_variant.lock().unwrap() = None;
    let out = cli(&["outbound", "retry", &id, "--url", &gw.base]);
    assert!(out.contains("queued again"), "{out}");
    assert_eq!(
        settled(&gw, &id, &["confirmed", "dead"]).await["state"],
        "confirmed"
    );
    gw.stop().await;
}
