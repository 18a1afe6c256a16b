//! `GET /v1/listings?instance=&sku=&updated_since=&cursor=` (issue 14) on both stores: listings
//! by the channel's update time with cursor paging, one SKU, one instance, an update moving a
//! listing in the index, a changed SKU leaving its old SKU; and on Redis the indexes rebuilt
//! from the event stream for a store written before they existed.

mod common;

use common::*;
use serde_json::{Value, json};

fn listing(external_id: &str, sku: &str, updated_at: &str, stock: i64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "external_id": external_id,
        "revision": { "updated_at": updated_at },
        "sku": sku,
        "title": format!("Item {external_id}"),
        "price": { "amount": "12.50", "currency": "EUR" },
        "stock": stock,
        "status": "active",
    }))
    .unwrap()
}

async fn submit(gw: &Gateway, body: &[u8]) {
    let h = [("Content-Type".to_string(), "application/json".to_string())];
    let r = post(&http(), &gw.url("/v1/instances/app/listings"), body, &h).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn list(gw: &Gateway, query: &str) -> Value {
    let r = get(&http(), &gw.url(&format!("/v1/listings{query}"))).await;
    assert_eq!(r.status, 200, "{query}: {}", r.text);
    r.body
}

fn external_ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["external_id"].as_str().unwrap().to_string())
        .collect()
}

async fn listings_are_listed(backend: Backend) {
    let gw = Gateway::start(test_config(backend, &redis_url(), "")).await;
    for i in 0..5 {
        let sku = if i % 2 == 0 { "MUG-RED" } else { "MUG-BLUE" };
        let at = format!("2026-03-0{}T10:00:00Z", i + 1);
        submit(&gw, &listing(&format!("L-{i}"), sku, &at, 10 + i)).await;
    }
    // By time, two per page, with the cursor.
    let first = list(&gw, "?limit=2").await;
    assert_eq!(external_ids(&first), ["L-0", "L-1"], "{first}");
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let second = list(&gw, &format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(external_ids(&second), ["L-2", "L-3"]);
    let cursor = second["next_cursor"].as_str().unwrap().to_string();
    let last = list(&gw, &format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(external_ids(&last), ["L-4"]);
    assert!(last["next_cursor"].is_null(), "{last}");
    // One SKU, one instance, updated since.
    let red = list(&gw, "?sku=MUG-RED").await;
    assert_eq!(external_ids(&red), ["L-0", "L-2", "L-4"]);
    assert_eq!(red["items"][1]["stock"], 12);
    let red = list(&gw, "?instance=app&sku=MUG-RED&updated_since=2026-03-02").await;
    assert_eq!(external_ids(&red), ["L-2", "L-4"]);
    let red_page = list(&gw, "?sku=MUG-RED&limit=2").await;
    assert_eq!(external_ids(&red_page), ["L-0", "L-2"]);
    let cursor = red_page["next_cursor"].as_str().unwrap().to_string();
    let red_rest = list(&gw, &format!("?sku=MUG-RED&limit=2&cursor={cursor}")).await;
    assert_eq!(external_ids(&red_rest), ["L-4"]);
    assert!(external_ids(&list(&gw, "?instance=shop").await).is_empty());
    assert!(external_ids(&list(&gw, "?sku=NOPE").await).is_empty());

    // A newer revision of L-0: a new SKU, a later time, new stock. It moves to the end and
    // leaves MUG-RED.
    submit(&gw, &listing("L-0", "MUG-GREEN", "2026-03-09T10:00:00Z", 3)).await;
    let all = list(&gw, "").await;
    assert_eq!(external_ids(&all), ["L-1", "L-2", "L-3", "L-4", "L-0"]);
    assert_eq!(all["items"][4]["stock"], 3);
    assert_eq!(
        external_ids(&list(&gw, "?sku=MUG-RED").await),
        ["L-2", "L-4"]
    );
    assert_eq!(external_ids(&list(&gw, "?sku=MUG-GREEN").await), ["L-0"]);
    // An older revision is stale and changes nothing.
    submit(&gw, &listing("L-1", "MUG-BLUE", "2026-01-01T10:00:00Z", 99)).await;
    assert_eq!(list(&gw, "?sku=MUG-BLUE").await["items"][0]["stock"], 11);

    // Bad queries name the parameter.
    for (q, word) in [
        ("?updated_since=yesterday", "updated_since"),
        ("?instance=nope", "instance"),
        ("?since=2026-01-01", "since"),
        ("?limit=0", "limit"),
    ] {
        let r = get(&http(), &gw.url(&format!("/v1/listings{q}"))).await;
        assert_eq!(r.status, 400, "{q}: {}", r.text);
        assert!(r.text.contains(word), "{q}: {}", r.text);
    }

    if backend == Backend::Redis {
        rebuilt_from_the_stream(&gw).await;
    }
    gw.stop().await;
}

/// A Redis store written before the listing indexes existed: they are built from the event
/// stream when the store is opened.
async fn rebuilt_from_the_stream(gw: &Gateway) {
    let prefix = gw.config.store.redis_prefix.clone();
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:{{app}}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let index: Vec<&String> = keys
        .iter()
        .filter(|k| k.contains(":listings") || k.contains(":sku:"))
        .collect();
    assert!(index.len() >= 4, "{keys:?}");
    for k in &index {
        let () = redis::cmd("DEL")
            .arg(k)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let (store, _) = crossgate::backend::open(&gw.config.store).await.unwrap();
    let page = crossgate::with_store!(&store, s => crossgate::store::Store::list_listings(s, crossgate::store::ListingQuery {
        instance: Some("app".into()), sku: Some("MUG-RED".into()), since: None, after: None, limit: 10 }).await)
    .unwrap();
    let ids: Vec<&str> = page.items.iter().map(|l| l.external_id.as_str()).collect();
    assert_eq!(ids, ["L-2", "L-4"]);
    let all = crossgate::with_store!(&store, s => crossgate::store::Store::list_listings(s, crossgate::store::ListingQuery {
        instance: None, sku: None, since: None, after: None, limit: 10 }).await)
    .unwrap();
    let ids: Vec<&str> = all.items.iter().map(|l| l.external_id.as_str()).collect();
    assert_eq!(ids, ["L-1", "L-2", "L-3", "L-4", "L-0"]);
}

#[tokio::test]
async fn listings_are_listed_embedded() {
    listings_are_listed(Backend::Embedded).await;
}

#[tokio::test]
async fn listings_are_listed_redis() {
    listings_are_listed(Backend::Redis).await;
}

/// Shopify's `inventory_levels/update` names an inventory item and a location; the listing of
/// the variant with that `inventory_item_id` shows the level, per location, newest revision.
async fn shopify_stock_levels_show_on_the_listing(backend: Backend) {
    let gw = Gateway::start(test_config(backend, &redis_url(), "")).await;
    let c = http();
    let product = fixture("shopify/rest-2024-04-product-get-632910392.json");
    let h = shopify_headers(&product, "wh-product-1", "products/update");
    let r = post(&c, &gw.url("/webhooks/shop"), &product, &h).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let level = |location: u64, available: i64, at: &str| {
        serde_json::to_vec(&json!({ "inventory_item_id": 808950810, "location_id": location, "available": available, "updated_at": at, "admin_graphql_api_id": format!("gid://shopify/InventoryLevel/{location}?inventory_item_id=808950810") })).unwrap()
    };
    for (n, body) in [
        level(24826418, 6, "2024-05-01T10:00:00-04:00"),
        level(24826418, 4, "2024-05-02T10:00:00-04:00"),
        // Older than the one stored for this location: stale, changes nothing.
        level(24826418, 9, "2024-04-30T10:00:00-04:00"),
        level(61629186, 2, "2024-05-01T12:00:00-04:00"),
    ]
    .iter()
    .enumerate()
    {
        let h = shopify_headers(body, &format!("wh-level-{n}"), "inventory_levels/update");
        let r = post(&c, &gw.url("/webhooks/shop"), body, &h).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let page = list(&gw, "?instance=shop&sku=IPOD2008PINK").await;
    let pink = &page["items"][0];
    assert_eq!(pink["stock_ref"], "808950810", "{page}");
    assert_eq!(
        pink["stock_levels"],
        json!([
            { "location": "24826418", "available": 4, "updated_at": "2024-05-02T10:00:00-04:00" },
            { "location": "61629186", "available": 2, "updated_at": "2024-05-01T12:00:00-04:00" },
        ]),
        "{page}"
    );
    // The listing by id says the same; other variants have no levels.
    let id = pink["id"].as_str().unwrap();
    let one = get(&c, &gw.url(&format!("/v1/listings/{id}"))).await;
    assert_eq!(one.body["stock_levels"], pink["stock_levels"]);
    let red = list(&gw, "?sku=IPOD2008RED").await;
    assert!(red["items"][0].get("stock_levels").is_none(), "{red}");
    gw.stop().await;
}

#[tokio::test]
async fn shopify_stock_levels_show_on_the_listing_embedded() {
    shopify_stock_levels_show_on_the_listing(Backend::Embedded).await;
}

#[tokio::test]
async fn shopify_stock_levels_show_on_the_listing_redis() {
    shopify_stock_levels_show_on_the_listing(Backend::Redis).await;
}
