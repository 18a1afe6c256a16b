//! Raw bodies and stored documents are compressed (zstd) and come back byte for byte, through
//! the real webhook path on both stores: the real 18 KB Shopify order, and an authentic body
//! that begins with zstd's frame magic (a body is never sniffed). On Redis, a raw body and a
//! record stored before compression existed still read as they were.

mod common;

use common::*;
use crossgate::model::OrderId;
use crossgate::store::Store;
use crossgate::with_store;
use redis::AsyncCommands;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// Posts an authentic Shopify delivery; returns the reply's status and delivery id.
async fn deliver(gw: &Gateway, body: &[u8], webhook_id: &str) -> (String, String) {
    let r = post(
        &http(),
        &gw.url("/webhooks/shop"),
        body,
        &shopify_headers(body, webhook_id, "orders/create"),
    )
    .await;
    let status = r.body["status"].as_str().unwrap_or_default().to_string();
    let id = r.body["delivery_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (status, id)
}

async fn bodies_come_back_byte_for_byte(backend: Backend) {
    let gw = Gateway::start(test_config(backend, &redis_url(), "")).await;
    let order = shopify_order(7001, "2024-04-02T09:00:00-05:00");
    let (status, id) = deliver(&gw, &order, "wh-z1").await;
    assert_eq!(status, "stored");
    let raw = with_store!(&gw.store, s => s.get_delivery(&id).await)
        .unwrap()
        .unwrap();
    assert_eq!(raw.body, order, "{backend:?}: the 18 KB order's raw body");

    // Authentic, begins like a zstd frame, is not JSON: a dead letter whose raw bytes are kept.
    let odd = [&ZSTD_MAGIC[..], b"\x00\x01 not json, not a frame"].concat();
    let (status, id) = deliver(&gw, &odd, "wh-z2").await;
    assert_eq!(status, "dead_lettered");
    let raw = with_store!(&gw.store, s => s.get_delivery(&id).await)
        .unwrap()
        .unwrap();
    assert_eq!(raw.body, odd, "{backend:?}: a body that looks compressed");

    // The record reads back whole (its document is compressed, see below for Redis).
    let got = with_store!(&gw.store, s => s.get_order(&OrderId::derive("shop", "7001")).await)
        .unwrap()
        .expect("the order is stored");
    assert_eq!(got.external_id, "7001");
    assert_eq!(got.lines.len(), 3);
    gw.stop().await;
}

#[tokio::test]
async fn embedded_bodies_come_back_byte_for_byte() {
    bodies_come_back_byte_for_byte(Backend::Embedded).await;
}

#[tokio::test]
async fn redis_bodies_come_back_byte_for_byte() {
    bodies_come_back_byte_for_byte(Backend::Redis).await;
}

/// On Redis: the raw body and the record's document are stored compressed (the 18 KB order's
/// body in under a quarter of its size), and a raw key and a record written the way they were
/// before compression (`body`, plain JSON `meta` and `doc`) read exactly as the compressed ones did.
#[tokio::test]
async fn redis_stores_compressed_and_reads_what_was_stored_before() {
    let gw = Gateway::start(test_config(Backend::Redis, &redis_url(), "")).await;
    let order = shopify_order(7002, "2024-04-02T09:00:00-05:00");
    let (status, id) = deliver(&gw, &order, "wh-z3").await;
    assert_eq!(status, "stored");
    let prefix = gw.config.store.redis_prefix.clone();
    let order_id = OrderId::derive("shop", "7002");
    let raw_key = format!("{prefix}:{{shop}}:raw:{id}");
    let rec_key = format!("{prefix}:{{shop}}:rec:{}", order_id.as_str());
    let mut conn = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let zbody: Vec<u8> = conn.hget(&raw_key, "zbody").await.unwrap();
    assert!(zbody.starts_with(&ZSTD_MAGIC));
    assert!(
        zbody.len() * 4 < order.len(),
        "{} bytes compressed for {}",
        zbody.len(),
        order.len()
    );
    let doc: Vec<u8> = conn.hget(&rec_key, "doc").await.unwrap();
    assert!(doc.starts_with(&ZSTD_MAGIC), "the record's document");
    let before_raw = with_store!(&gw.store, s => s.get_delivery(&id).await)
        .unwrap()
        .unwrap();
    let before_order = with_store!(&gw.store, s => s.get_order(&order_id).await)
        .unwrap()
        .unwrap();

    // Rewrite both keys in the format of before compression.
    let json = zstd::stream::decode_all(doc.as_slice()).unwrap();
    assert_eq!(json.first(), Some(&b'{'));
    let _: () = conn.hset(&rec_key, "doc", json).await.unwrap();
    let meta: Vec<u8> = conn.hget(&raw_key, "meta").await.unwrap();
    if meta.starts_with(&ZSTD_MAGIC) {
        let plain = zstd::stream::decode_all(meta.as_slice()).unwrap();
        let _: () = conn.hset(&raw_key, "meta", plain).await.unwrap();
    }
    let _: () = conn.hdel(&raw_key, "zbody").await.unwrap();
    let _: () = conn.hset(&raw_key, "body", &order).await.unwrap();

    let after_raw = with_store!(&gw.store, s => s.get_delivery(&id).await)
        .unwrap()
        .unwrap();
    assert_eq!(after_raw.body, before_raw.body);
    assert_eq!(after_raw.headers, before_raw.headers);
    let after_order = with_store!(&gw.store, s => s.get_order(&order_id).await)
        .unwrap()
        .unwrap();
    assert_eq!(after_order, before_order);
    gw.stop().await;
}
