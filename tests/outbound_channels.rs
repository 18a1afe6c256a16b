//! Channels out, per channel (issue 15): WooCommerce and Amazon SP-API take the gateway's
//! listing updates and shipment confirmations in their documented formats. Each mock checks the
//! credential and validates every body (Amazon's confirmShipment against Amazon's own OpenAPI
//! model); the store side is covered on both backends by `outbound.rs` and `outbox_contract.rs`,
//! so these run on the embedded store.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::channel_mock::{ChannelMock, Endpoint, schema_file, serve, swagger_definition};
use common::*;
use serde_json::{Value, json};

fn gateway_config(
    dir: &tempfile::TempDir,
    instance: &str,
    env: &[(&str, &str)],
) -> Arc<crossgate::config::Config> {
    let instance = format!(
        "{instance}\n[outbox]\nmax_attempts = 2\nretry_base_ms = 100\nretry_max_secs = 1\n"
    );
    Arc::new(instance_config(
        dir.path(),
        Backend::Embedded,
        &repo().join("adapters"),
        &unique_prefix("oc"),
        &instance,
        env,
    ))
}

async fn start(config: Arc<crossgate::config::Config>) -> Gateway {
    let (store, _) = crossgate::backend::open(&config.store).await.unwrap();
    Gateway::start_with(config, store, None).await
}

async fn send(gw: &Gateway, method: reqwest::Method, path: &str, body: &Value) -> Reply {
    send_json(&http(), method, &gw.url(path), body, None).await
}

/// The command of a 202 answer once it is final.
async fn settled(gw: &Gateway, accepted: &Reply) -> Value {
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    let id = accepted.body["commands"][0]["id"].as_str().unwrap();
    command_in(gw, id, &["confirmed", "dead"]).await
}

async fn first_id(gw: &Gateway, what: &str) -> String {
    let r = get(&http(), &gw.url(&format!("/v1/{what}"))).await;
    r.body["items"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", r.text))
        .to_string()
}

/// Registers a canonical listing for `instance` (a catalogue import); its id.
async fn register_listing(gw: &Gateway, instance: &str, listing: Value) -> String {
    let h = [("Content-Type".to_string(), "application/json".to_string())];
    let url = gw.url(&format!("/v1/instances/{instance}/listings"));
    let r = post(&http(), &url, &serde_json::to_vec(&listing).unwrap(), &h).await;
    assert_eq!(r.status, 200, "{}", r.text);
    first_id(gw, &format!("listings?instance={instance}")).await
}

/// The id of the first order of `instance`, once its poller has brought one in.
async fn polled_order(gw: &Gateway, instance: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = get(&http(), &gw.url(&format!("/v1/orders?instance={instance}"))).await;
        if let Some(id) = r.body["items"][0]["id"].as_str() {
            return id.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the order was never polled: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// WooCommerce: stock, price and status in one PUT of the product; a shipment adds the
/// customer note with the tracking, then completes the order.
#[tokio::test]
async fn woocommerce_takes_product_updates_and_completes_orders() {
    let product: Value =
        serde_json::from_slice(&fixture("woocommerce/rest-v3-product-retrieve-794.json")).unwrap();
    let order: Value =
        serde_json::from_slice(&fixture("woocommerce/rest-v3-order-retrieve-727.json")).unwrap();
    let (p, o) = (product.clone(), order.clone());
    let mock = ChannelMock::new(
        ("authorization", &basic("ck_test", "cs_test")),
        vec![
            Endpoint {
                method: "PUT",
                path: "/wp-json/wc/v3/products/{id}",
                schema: Some(schema_file(
                    "woocommerce/outbound/product_update.schema.json",
                )),
                answer: Box::new(move |b| {
                    let mut p = p.clone();
                    for (k, v) in b.as_object().unwrap() {
                        p[k] = v.clone();
                    }
                    (200, p)
                }),
            },
            Endpoint {
                method: "POST",
                path: "/wp-json/wc/v3/orders/{id}/notes",
                schema: Some(schema_file(
                    "woocommerce/outbound/order_note_create.schema.json",
                )),
                answer: Box::new(|b| {
                    (
                        201,
                        json!({"id": 281, "author": "system", "date_created": "2017-03-21T16:46:41", "note": b["note"], "customer_note": b["customer_note"]}),
                    )
                }),
            },
            Endpoint {
                method: "PUT",
                path: "/wp-json/wc/v3/orders/{id}",
                schema: Some(schema_file("woocommerce/outbound/order_update.schema.json")),
                answer: Box::new(move |b| {
                    let mut o = o.clone();
                    o["status"] = b["status"].clone();
                    (200, o)
                }),
            },
        ],
    );
    let base = serve(mock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let instance = format!(
        r#"id = "woo"
adapter = "woocommerce"
account = "shop.example"
secrets = {{ webhook = "${{W}}", consumer_key = "${{CK}}", consumer_secret = "${{CS}}" }}
settings = {{ currency = "USD", api_base = "{base}/wp-json/wc/v3" }}"#
    );
    let gw = start(gateway_config(
        &dir,
        &instance,
        &[("W", "woo-secret"), ("CK", "ck_test"), ("CS", "cs_test")],
    ))
    .await;
    // The product and the order come in by their signed webhooks.
    for (n, (body, topic)) in [(&product, "product.updated"), (&order, "order.updated")]
        .into_iter()
        .enumerate()
    {
        use base64::Engine;
        let bytes = serde_json::to_vec(body).unwrap();
        let sig = base64::engine::general_purpose::STANDARD.encode(
            crossgate::adapter::signature::hmac_sha256(b"woo-secret", &[&bytes]),
        );
        let h = [
            ("X-WC-Webhook-Signature".to_string(), sig),
            ("X-WC-Webhook-Topic".to_string(), topic.to_string()),
            ("X-WC-Webhook-Delivery-ID".to_string(), format!("d{n}")),
            ("Content-Type".to_string(), "application/json".to_string()),
        ];
        let r = post(&http(), &gw.url("/webhooks/woo"), &bytes, &h).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let listing = first_id(&gw, "listings?instance=woo").await;
    let r = send(&gw, reqwest::Method::PATCH, &format!("/v1/listings/{listing}"), &json!({"stock": 12, "price": {"amount": "24.50", "currency": "USD"}, "status": "inactive"})).await;
    let cmd = settled(&gw, &r).await;
    assert_eq!(cmd["state"], "confirmed", "{cmd}");
    let puts = mock.calls_to("PUT", "/wp-json/wc/v3/products/794");
    assert_eq!(puts.len(), 1);
    assert_eq!(
        puts[0].body,
        json!({"manage_stock": true, "stock_quantity": 12, "regular_price": "24.50", "status": "private"})
    );
    // Only the price: the other keys are left out.
    let r = send(
        &gw,
        reqwest::Method::PATCH,
        &format!("/v1/listings/{listing}"),
        &json!({"price": {"amount": "25.00", "currency": "USD"}}),
    )
    .await;
    settled(&gw, &r).await;
    assert_eq!(
        mock.calls_to("PUT", "/wp-json/wc/v3/products/794")[1].body,
        json!({"manage_stock": true, "regular_price": "25.00"})
    );

    let order_id = first_id(&gw, "orders?instance=woo").await;
    let r = send(&gw, reqwest::Method::POST, &format!("/v1/orders/{order_id}/shipments"), &json!({"carrier": "USPS", "tracking_number": "9400111899223", "tracking_url": "https://tools.usps.com/go/TrackConfirmAction?tLabels=9400111899223"})).await;
    let cmd = settled(&gw, &r).await;
    assert_eq!(cmd["state"], "confirmed", "{cmd}");
    assert_eq!(cmd["channel_refs"]["tracking_note"], "281");
    let note = &mock.calls_to("POST", "/wp-json/wc/v3/orders/727/notes")[0].body;
    assert_eq!(
        note["note"],
        "Shipped with USPS, tracking number 9400111899223 https://tools.usps.com/go/TrackConfirmAction?tLabels=9400111899223"
    );
    assert_eq!(note["customer_note"], true);
    assert_eq!(
        mock.calls_to("PUT", "/wp-json/wc/v3/orders/727")[0].body,
        json!({"status": "completed"})
    );
    // Woo's order update came after the note.
    let order_of_calls: Vec<String> = mock
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.method.clone() + " " + &c.target)
        .collect();
    assert!(
        order_of_calls.ends_with(&[
            "POST /wp-json/wc/v3/orders/727/notes".into(),
            "PUT /wp-json/wc/v3/orders/727".into()
        ]),
        "{order_of_calls:?}"
    );
    assert!(
        mock.violations.lock().unwrap().is_empty(),
        "{:?}",
        mock.violations.lock().unwrap()
    );
    gw.stop().await;
}

/// A mock SP-API: patchListingsItem (INVALID for an impossible quantity), searchOrders
/// (Amazon's getOrder example) and confirmShipment (checked against Amazon's ordersV0 model).
fn amazon_mock() -> Arc<ChannelMock> {
    let model: Value =
        serde_json::from_slice(&fixture("amazon/sp-api-ordersV0.openapi.json")).unwrap();
    let order: Value =
        serde_json::from_slice(&fixture("amazon/sp-api-2026-01-01-getOrder-example.json")).unwrap();
    ChannelMock::new(
        ("x-amz-access-token", "Atza|test"),
        vec![
            Endpoint {
                method: "PATCH",
                path: "/listings/2021-08-01/items/{seller}/{sku}",
                schema: Some(schema_file(
                    "amazon_2026/outbound/listings_item_patch.schema.json",
                )),
                answer: Box::new(|b| {
                    let quantity = b["patches"][0]["value"][0]["quantity"].as_i64();
                    if quantity == Some(999_999) {
                        (
                            200,
                            json!({"sku": "GIFT-MUG-01", "status": "INVALID", "submissionId": "f1dc2914-75dd-11ea-bc55-0242ac130003", "issues": [{"code": "90220", "message": "'fulfillment_availability' quantity exceeds the maximum", "severity": "ERROR", "attributeName": "fulfillment_availability"}]}),
                        )
                    } else {
                        (
                            200,
                            json!({"sku": "GIFT-MUG-01", "status": "ACCEPTED", "submissionId": "f1dc2914-75dd-11ea-bc55-0242ac130003", "issues": []}),
                        )
                    }
                }),
            },
            Endpoint {
                method: "GET",
                path: "/orders/2026-01-01/orders",
                schema: None,
                answer: Box::new(move |_| (200, json!({"orders": [order["order"].clone()]}))),
            },
            Endpoint {
                method: "POST",
                path: "/orders/v0/orders/{id}/shipmentConfirmation",
                schema: Some(swagger_definition(&model, "ConfirmShipmentRequest")),
                answer: Box::new(|_| (204, Value::Null)),
            },
        ],
    )
}

/// Amazon: stock and price as JSON Patch operations on the listing (only the patches the
/// command needs); an INVALID answer makes the command dead with Amazon's issue; a shipment
/// confirmation valid against Amazon's own ordersV0 model, with every line of the order.
#[tokio::test]
async fn amazon_takes_listing_patches_and_shipment_confirmations() {
    let mock = amazon_mock();
    let base = serve(mock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let instance = format!(
        r#"id = "amzuk"
adapter = "amazon_2026"
account = "A2EUQ1WTGCTBG2"
poll = true
secrets = {{ access_token = "${{T}}" }}
settings = {{ api_base = "{base}", marketplace_id = "A1F83G8C2ARO7P", seller_id = "A2EUQ1WTGCTBG2" }}"#
    );
    let gw = start(gateway_config(&dir, &instance, &[("T", "Atza|test")])).await;
    // An Amazon listing comes in as a canonical listing (a catalogue import), by SKU.
    let id = register_listing(&gw, "amzuk", json!({"external_id": "B0EXAMPLE1", "revision": {"updated_at": "2026-03-01T10:00:00Z"}, "sku": "GIFT-MUG/01", "title": "Gift mug", "price": {"amount": "12.99", "currency": "GBP"}, "stock": 4, "status": "active"})).await;
    let r = send(
        &gw,
        reqwest::Method::PATCH,
        &format!("/v1/listings/{id}"),
        &json!({"stock": 7, "price": {"amount": "13.49", "currency": "GBP"}}),
    )
    .await;
    let cmd = settled(&gw, &r).await;
    assert_eq!(cmd["state"], "confirmed", "{cmd}");
    let patch = &mock.calls_to("PATCH", "/listings/2021-08-01/items/")[0];
    // The SKU is one path segment, URL-encoded.
    assert_eq!(
        patch.target,
        "/listings/2021-08-01/items/A2EUQ1WTGCTBG2/GIFT-MUG%2F01?marketplaceIds=A1F83G8C2ARO7P"
    );
    assert_eq!(
        patch.body,
        json!({"productType": "PRODUCT", "patches": [
            {"op": "replace", "path": "/attributes/fulfillment_availability", "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": 7}]},
            {"op": "replace", "path": "/attributes/purchasable_offer", "value": [{"marketplace_id": "A1F83G8C2ARO7P", "currency": "GBP", "our_price": [{"schedule": [{"value_with_tax": 13.49}]}]}]},
        ]})
    );
    // The amount is the exact decimal text as a JSON number, never through a float.
    assert!(
        serde_json::to_string(&patch.body)
            .unwrap()
            .contains("\"value_with_tax\":13.49")
    );
    // Stock only: one patch; Amazon says INVALID: dead with Amazon's issue.
    let r = send(
        &gw,
        reqwest::Method::PATCH,
        &format!("/v1/listings/{id}"),
        &json!({"stock": 999_999}),
    )
    .await;
    let cmd = settled(&gw, &r).await;
    assert_eq!(cmd["state"], "dead", "{cmd}");
    assert!(
        cmd["reason"]
            .as_str()
            .unwrap()
            .contains("quantity exceeds the maximum"),
        "{cmd}"
    );
    assert_eq!(
        mock.calls_to("PATCH", "/listings/")[1].body["patches"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Status cannot go to Amazon: refused before anything is stored.
    let r = send(
        &gw,
        reqwest::Method::PATCH,
        &format!("/v1/listings/{id}"),
        &json!({"status": "inactive"}),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text);

    // The order, polled from searchOrders, then its shipment (every line, in full).
    let order = polled_order(&gw, "amzuk").await;
    let r = send(
        &gw,
        reqwest::Method::POST,
        &format!("/v1/orders/{order}/shipments"),
        &json!({"carrier": "Royal Mail", "tracking_number": "JD000390000001234567"}),
    )
    .await;
    let cmd = settled(&gw, &r).await;
    assert_eq!(cmd["state"], "confirmed", "{cmd}");
    let confirm = &mock.calls_to(
        "POST",
        "/orders/v0/orders/202-1234567-8901234/shipmentConfirmation",
    )[0]
    .body;
    assert_eq!(confirm["marketplaceId"], "A1F83G8C2ARO7P");
    assert_eq!(
        confirm["packageDetail"]["orderItems"],
        json!([{"orderItemId": "20212345678901", "quantity": 3}])
    );
    assert_eq!(confirm["packageDetail"]["carrierCode"], "Royal Mail");
    assert!(
        confirm["packageDetail"]["packageReferenceId"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .is_ok()
    );
    assert!(
        mock.violations.lock().unwrap().is_empty(),
        "{:?}",
        mock.violations.lock().unwrap()
    );
    gw.stop().await;
}

/// A mock eBay: the Fulfillment API's getOrders (the first page of the eBay fixtures, as the
/// only page), bulkUpdatePriceQuantity (a status per item: 400 for an impossible quantity) and
/// createShippingFulfillment (201, no body).
fn ebay_mock() -> Arc<ChannelMock> {
    let mut page: Value = serde_json::from_slice(
        &std::fs::read(repo().join("tests/fixtures/ebay_rest/getOrders-page-1.json")).unwrap(),
    )
    .unwrap();
    page["total"] = json!(page["orders"].as_array().unwrap().len());
    ChannelMock::new(
        ("authorization", "Bearer v^1.1#i^1#test"),
        vec![
            Endpoint {
                method: "GET",
                path: "/sell/fulfillment/v1/order",
                schema: None,
                answer: Box::new(move |_| (200, page.clone())),
            },
            Endpoint {
                method: "POST",
                path: "/sell/inventory/v1/bulk_update_price_quantity",
                schema: Some(schema_file(
                    "ebay_rest/outbound/bulk_update_price_quantity.schema.json",
                )),
                answer: Box::new(|b| {
                    let r = &b["requests"][0];
                    let too_many =
                        r["shipToLocationAvailability"]["quantity"].as_i64() == Some(999_999);
                    let item = if too_many {
                        json!({"statusCode": 400, "sku": r["sku"], "offerId": r["offers"][0]["offerId"], "errors": [{"errorId": 25002, "domain": "API_INVENTORY", "category": "REQUEST", "message": "A user error has occurred. The quantity is not valid."}]})
                    } else {
                        json!({"statusCode": 200, "sku": r["sku"], "offerId": r["offers"][0]["offerId"], "errors": [], "warnings": []})
                    };
                    (200, json!({"responses": [item]}))
                }),
            },
            Endpoint {
                method: "POST",
                path: "/sell/fulfillment/v1/order/{id}/shipping_fulfillment",
                schema: Some(schema_file(
                    "ebay_rest/outbound/shipping_fulfillment.schema.json",
                )),
                answer: Box::new(|_| (201, Value::Null)),
            },
        ],
    )
}

/// eBay: stock and price of an offer in one bulkUpdatePriceQuantity request (eBay's per-item
/// status read: a 400 item makes the command dead with eBay's message); a shipping fulfillment
/// with every line of the polled order.
#[tokio::test]
async fn ebay_takes_price_quantity_and_shipping_fulfillments() {
    let mock = ebay_mock();
    let base = serve(mock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let instance = format!(
        r#"id = "ebayus"
adapter = "ebay_rest"
account = "seller-us"
poll = true
secrets = {{ access_token = "${{T}}" }}
settings = {{ api_base = "{base}" }}"#
    );
    let gw = start(gateway_config(&dir, &instance, &[("T", "v^1.1#i^1#test")])).await;
    let id = register_listing(&gw, "ebayus", json!({"external_id": "6546431010", "revision": {"updated_at": "2026-03-01T10:00:00Z"}, "sku": "LTO5-SAS-1025", "title": "LTO-5 tape drive", "price": {"amount": "120.00", "currency": "USD"}, "stock": 2, "status": "active"})).await;
    let r = send(
        &gw,
        reqwest::Method::PATCH,
        &format!("/v1/listings/{id}"),
        &json!({"stock": 5, "price": {"amount": "115.50", "currency": "USD"}}),
    )
    .await;
    let cmd = settled(&gw, &r).await;
    assert_eq!(cmd["state"], "confirmed", "{cmd}");
    assert_eq!(
        mock.calls_to("POST", "/sell/inventory/v1/bulk_update_price_quantity")[0].body,
        json!({"requests": [{"sku": "LTO5-SAS-1025", "shipToLocationAvailability": {"quantity": 5}, "offers": [{"offerId": "6546431010", "availableQuantity": 5, "price": {"value": "115.50", "currency": "USD"}}]}]})
    );
    let r = send(
        &gw,
        reqwest::Method::PATCH,
        &format!("/v1/listings/{id}"),
        &json!({"stock": 999_999}),
    )
    .await;
    let cmd = settled(&gw, &r).await;
    assert_eq!(cmd["state"], "dead", "{cmd}");
    assert!(
        cmd["reason"]
            .as_str()
            .unwrap()
            .contains("quantity is not valid"),
        "{cmd}"
    );

    let order = polled_order(&gw, "ebayus").await;
    let r = send(
        &gw,
        reqwest::Method::POST,
        &format!("/v1/orders/{order}/shipments"),
        &json!({"carrier": "USPS", "tracking_number": "9400111899223197428490"}),
    )
    .await;
    let cmd = settled(&gw, &r).await;
    assert_eq!(cmd["state"], "confirmed", "{cmd}");
    let f = &mock.calls_to("POST", "/sell/fulfillment/v1/order/")[0];
    assert!(f.target.ends_with("/shipping_fulfillment"), "{}", f.target);
    assert_eq!(f.body["shippingCarrierCode"], "USPS");
    assert_eq!(
        f.body["lineItems"],
        json!([{"lineItemId": "10082609613103", "quantity": 1}])
    );
    assert!(
        mock.violations.lock().unwrap().is_empty(),
        "{:?}",
        mock.violations.lock().unwrap()
    );
    gw.stop().await;
}
