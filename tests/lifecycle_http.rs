//! Payments and shipments from any channel move orders through their life, over real HTTP:
//! a Stripe event (signed) pays and refunds a Shopify order; a WeChat Pay notification (MD5
//! signed XML) pays an app order and gets WeChat's XML acknowledgement. Both stores.

mod common;

use base64::Engine as _;

use common::*;
use crossgate::adapter::signature::{hmac_sha256, wechat_v2_params, wechat_v2_sign};
use crossgate::model::{Customer, OrderId};
use serde_json::{Value, json};

fn stripe_headers(body: &[u8]) -> Vec<(String, String)> {
    let t = chrono::Utc::now().timestamp().to_string();
    let sig = hex::encode(hmac_sha256(
        STRIPE_SECRET.as_bytes(),
        &[t.as_bytes(), b".", body],
    ));
    vec![
        ("Stripe-Signature".into(), format!("t={t},v1={sig}")),
        ("Content-Type".into(), "application/json".into()),
    ]
}

/// A Stripe event around one of Stripe's canonical example objects, for order `order_id`.
fn stripe_event(id: &str, kind: &str, fixture_name: &str, order_id: &str, patch: Value) -> Vec<u8> {
    let mut object: Value = serde_json::from_slice(&fixture(fixture_name)).unwrap();
    object["metadata"] = json!({ "order_id": order_id });
    for (k, v) in patch.as_object().unwrap() {
        object[k] = v.clone();
    }
    serde_json::to_vec(&json!({
        "id": id, "object": "event", "type": kind, "created": 1_714_557_600,
        "api_version": "2024-04-10", "data": { "object": object }
    }))
    .unwrap()
}

/// The WeChat Pay documentation's notification for `out_trade_no`, re-signed with the test key.
/// The doc example repeats <coupon_fee>; real notifications number it (coupon_fee_0), which is
/// what the second one becomes here (a repeated parameter is refused as ambiguous).
fn wechat_notification(out_trade_no: &str) -> Vec<u8> {
    let text =
        String::from_utf8(fixture("wechatpay/v2-pay-result-notify-doc-example.xml")).unwrap();
    let second = text.rfind("<coupon_fee>").unwrap();
    let mut text = format!(
        "{}{}",
        &text[..second],
        text[second..]
            .replacen("<coupon_fee>", "<coupon_fee_0>", 1)
            .replacen("</coupon_fee>", "</coupon_fee_0>", 1)
    );
    text = text.replace(
        "<![CDATA[1409811653]]>",
        &format!("<![CDATA[{out_trade_no}]]>"),
    );
    let params: Vec<(String, String)> = wechat_v2_params(text.as_bytes())
        .unwrap()
        .into_iter()
        .filter(|(k, _)| k != "sign")
        .collect();
    let sign = wechat_v2_sign(&params, WECHAT_API_KEY);
    text.replace("B552ED6B279343CB493C5DD0D78AB241", &sign)
        .into_bytes()
}

async fn order(c: &reqwest::Client, gw: &Gateway, id: &OrderId) -> Value {
    // Facts about another instance's order are applied right after the write (Redis: from the
    // outbox); the daemon loop covers retries. Poll briefly for either.
    for _ in 0..50 {
        let r = get(c, &gw.url(&format!("/v1/orders/{}", id.as_str()))).await;
        if r.status == 200 {
            return r.body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("order {id} not found");
}

#[tokio::test]
async fn payment_providers_move_orders_through_their_life() {
    for backend in Backend::all() {
        let gw = Gateway::start(test_config(backend, &redis_url(), "")).await;
        let c = http();
        stripe_moves_a_shopify_order(&c, &gw, backend).await;
        wechat_pay_pays_the_app_order(&c, &gw).await;
        wechat_pay_refunds_the_app_order(&c, &gw).await;
        gw.stop().await;
    }
}

/// A Shopify order created unpaid, paid and then refunded by Stripe; duplicates, forgeries and
/// a late stale update change nothing; a payment naming no order is dead-lettered.
async fn stripe_moves_a_shopify_order(c: &reqwest::Client, gw: &Gateway, backend: Backend) {
    // A Shopify order that is not paid yet.
    let body = String::from_utf8(shopify_order(7001, "2024-05-01T10:00:00Z"))
        .unwrap()
        .replace(
            "\"financial_status\": \"partially_refunded\"",
            "\"financial_status\": \"pending\"",
        )
        .into_bytes();
    let r = post(
        c,
        &gw.url("/webhooks/shop"),
        &body,
        &shopify_headers(&body, "w-7001", "orders/create"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = OrderId::derive("shop", "7001");
    let o = order(c, gw, &id).await;
    assert_eq!(o["status"], "created", "{backend:?}");

    // Stripe: the payment succeeded (598.94 USD in cents).
    let paid = stripe_event(
        "evt_paid_7001",
        "payment_intent.succeeded",
        "stripe/fixtures3-payment_intent.json",
        "7001",
        json!({ "amount": 59894, "amount_received": 59894, "status": "succeeded" }),
    );
    let r = post(
        c,
        &gw.url("/webhooks/stripe"),
        &paid,
        &stripe_headers(&paid),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let o = order(c, gw, &id).await;
    assert_eq!(o["status"], "paid", "{backend:?}: {o}");
    let stripe_payment = o["payments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["gateway"] == "stripe")
        .unwrap();
    assert_eq!(
        stripe_payment["amount"],
        json!({ "amount": "598.94", "currency": "USD" })
    );

    // The same event again is a duplicate; a forged one is refused.
    let r = post(
        c,
        &gw.url("/webhooks/stripe"),
        &paid,
        &stripe_headers(&paid),
    )
    .await;
    assert_eq!(r.body["status"], "duplicate");
    let mut forged = stripe_headers(&paid);
    forged[0].1 = forged[0].1.replace("v1=", "v1=00");
    let r = post(c, &gw.url("/webhooks/stripe"), &paid, &forged).await;
    assert_eq!(r.status, 401);

    // A late Shopify update that still says "pending" does not move it back.
    let later = String::from_utf8(shopify_order(7001, "2024-05-02T10:00:00Z"))
        .unwrap()
        .replace(
            "\"financial_status\": \"partially_refunded\"",
            "\"financial_status\": \"pending\"",
        )
        .into_bytes();
    let r = post(
        c,
        &gw.url("/webhooks/shop"),
        &later,
        &shopify_headers(&later, "w-7001-2", "orders/updated"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(order(c, gw, &id).await["status"], "paid");

    // Stripe: the charge of that payment intent fully refunded.
    let refunded = stripe_event(
        "evt_refund_7001",
        "charge.refunded",
        "stripe/fixtures3-charge.json",
        "7001",
        json!({ "payment_intent": "pi_1PgafyB7WZ01zgkWSjxsAJo3", "amount": 59894, "amount_refunded": 59894, "refunded": true }),
    );
    let r = post(
        c,
        &gw.url("/webhooks/stripe"),
        &refunded,
        &stripe_headers(&refunded),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let o = order(c, gw, &id).await;
    assert_eq!(o["status"], "refunded", "{backend:?}: {o}");
    let stripe_payments: Vec<&Value> = o["payments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["gateway"] == "stripe")
        .collect();
    assert_eq!(
        stripe_payments.len(),
        1,
        "the refund updates the same payment: {o}"
    );
    assert_eq!(stripe_payments[0]["status"], "refunded");
    assert_eq!(stripe_payments[0]["refunded"]["amount"], "598.94");

    // A Stripe payment for an order whose id is missing: stored, dead-lettered, field named.
    let orphan = stripe_event(
        "evt_orphan",
        "payment_intent.succeeded",
        "stripe/fixtures3-payment_intent.json",
        "x",
        json!({}),
    );
    let mut v: Value = serde_json::from_slice(&orphan).unwrap();
    v["data"]["object"]["metadata"] = json!({});
    let orphan = serde_json::to_vec(&v).unwrap();
    let r = post(
        c,
        &gw.url("/webhooks/stripe"),
        &orphan,
        &stripe_headers(&orphan),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["errors"][0]["field"], "order_external_id");
}

/// WeChat Pay's notification for the app's order: acknowledged in WeChat's XML; CNY 0.01 for a
/// JPY order is held as a payment mismatch; a tampered notification is refused.
async fn wechat_pay_pays_the_app_order(c: &reqwest::Client, gw: &Gateway) {
    // WeChat Pay pays the app's order: the answer is WeChat's XML acknowledgement.
    // The app's order is not paid yet (no payment of its own), so WeChat's would pay it.
    let mut wx_order = app_order("WX-1", "2024-05-01T10:00:00Z");
    wx_order["status"] = "created".into();
    wx_order["payments"] = json!([]);
    let app_body = serde_json::to_vec(&wx_order).unwrap();
    let r = post(
        c,
        &gw.url("/webhooks/app"),
        &app_body,
        &app_headers(&app_body, "msg-wx-1"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let notify = wechat_notification("WX-1");
    let r = post(
        c,
        &gw.url("/webhooks/wechat"),
        &notify,
        &[("Content-Type".into(), "text/xml".into())],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.content_type.starts_with("text/xml"), "{}", r.content_type);
    assert!(
        r.text
            .contains("<return_code><![CDATA[SUCCESS]]></return_code>"),
        "{}",
        r.text
    );
    let o = order(c, gw, &OrderId::derive("app", "WX-1")).await;
    let wx = o["payments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["gateway"] == "wechat_pay")
        .unwrap();
    assert_eq!(wx["amount"], json!({ "amount": "0.01", "currency": "CNY" }));
    // CNY 0.01 does not pay a JPY order: it is held as a payment mismatch, not "paid".
    assert_eq!(o["status"], "created", "{o}");
    let hold = o["holds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["kind"] == "payment_mismatch")
        .unwrap_or_else(|| panic!("no payment_mismatch hold: {o}"));
    assert_eq!(
        hold["stated"],
        json!({ "amount": "0.01", "currency": "CNY" })
    );
    assert_eq!(hold["computed"], o["totals"]["grand_total"]);
    assert_eq!(o["payment_reconciliation"]["outcome"], "currency_mismatch");
    // A tampered notification (amount changed after signing) is refused, not acknowledged.
    let tampered = String::from_utf8(wechat_notification("WX-1"))
        .unwrap()
        .replace("<total_fee>1</total_fee>", "<total_fee>100</total_fee>");
    let r = post(c, &gw.url("/webhooks/wechat"), tampered.as_bytes(), &[]).await;
    assert_eq!(r.status, 401);
    assert!(!r.text.contains("SUCCESS"));
}

/// WeChat Pay's refund notification: no `sign`, the refund in `req_info` encrypted under the
/// MD5 of the API key (the fixture was encrypted with Python's `cryptography`, see
/// tests/fixtures/wechatpay/make_refund_notify.py). Decrypted, it refunds the payment its
/// transaction_id names; one encrypted under another key is refused.
async fn wechat_pay_refunds_the_app_order(c: &reqwest::Client, gw: &Gateway) {
    let mut o = app_order("1409811653", "2024-05-01T10:00:00Z");
    o["status"] = "created".into();
    o["payments"] = json!([]);
    let body = serde_json::to_vec(&o).unwrap();
    let r = post(
        c,
        &gw.url("/webhooks/app"),
        &body,
        &app_headers(&body, "msg-wx-r"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let xml = [("Content-Type".to_string(), "text/xml".to_string())];
    let r = post(
        c,
        &gw.url("/webhooks/wechat"),
        &wechat_notification("1409811653"),
        &xml,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let refund =
        std::fs::read(repo().join("tests/fixtures/wechatpay/v2-refund-notify.xml")).unwrap();
    let r = post(c, &gw.url("/webhooks/wechat"), &refund, &xml).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.text
            .contains("<return_code><![CDATA[SUCCESS]]></return_code>"),
        "{}",
        r.text
    );
    let id = OrderId::derive("app", "1409811653");
    let mut wx = Value::Null;
    for _ in 0..50 {
        let o = order(c, gw, &id).await;
        wx = o["payments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["gateway"] == "wechat_pay")
            .cloned()
            .unwrap_or(Value::Null);
        if wx["refunded"].is_object() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(wx["id"], "1004400740201409030005092168", "{wx}");
    assert_eq!(
        wx["refunded"],
        json!({ "amount": "0.01", "currency": "CNY" }),
        "{wx}"
    );
    // The same notification with its req_info from another key: refused, not acknowledged.
    let text = String::from_utf8(refund).unwrap();
    let start = text.find("<req_info><![CDATA[").unwrap() + 19;
    let end = text[start..].find("]]>").unwrap() + start;
    let forged = format!(
        "{}{}{}",
        &text[..start],
        base64::engine::general_purpose::STANDARD.encode([7u8; 64]),
        &text[end..]
    );
    let r = post(c, &gw.url("/webhooks/wechat"), forged.as_bytes(), &xml).await;
    assert_eq!(r.status, 401, "{}", r.text);
}

#[tokio::test]
async fn the_same_buyer_on_two_channels_is_one_customer() {
    let gw = Gateway::start(test_config(Backend::Embedded, &redis_url(), "")).await;
    let c = http();
    let body = shopify_order(7101, "2024-05-01T10:00:00Z");
    let r = post(
        &c,
        &gw.url("/webhooks/shop"),
        &body,
        &shopify_headers(&body, "w-7101", "orders/create"),
    )
    .await;
    assert_eq!(r.status, 200);
    // The app order of the same buyer, email typed differently.
    let mut app = app_order("C-1", "2024-05-01T10:00:00Z");
    app["customer"] = json!({ "email": "  Bob.Norman@MAIL.example.com ", "name": "Bob" });
    let app_body = serde_json::to_vec(&app).unwrap();
    let r = post(
        &c,
        &gw.url("/webhooks/app"),
        &app_body,
        &app_headers(&app_body, "msg-c-1"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let shop = order(&c, &gw, &OrderId::derive("shop", "7101")).await;
    let app = order(&c, &gw, &OrderId::derive("app", "C-1")).await;
    let key = shop["customer"]["key"].as_str().unwrap();
    assert_eq!(app["customer"]["key"].as_str(), Some(key));
    // The key is the salted HMAC of the normalized email, not the email.
    let expected = Customer {
        external_id: None,
        email: Some("bob.norman@mail.example.com".into()),
        ..Default::default()
    }
    .derive_key(CUSTOMER_SALT.as_bytes())
    .unwrap();
    assert_eq!(key, expected);
    assert!(!key.contains("bob"));
    gw.stop().await;
}

#[tokio::test]
async fn xml_attacks_on_an_xml_webhook_are_refused_fast() {
    let gw = Gateway::start(test_config(Backend::Embedded, &redis_url(), "")).await;
    let c = http();
    let billion = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><xml><sign>&lol3;</sign></xml>"#.to_string();
    let xxe = r#"<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><out_trade_no>&xxe;</out_trade_no><sign>X</sign></xml>"#.to_string();
    let deep = format!(
        "<xml>{}{}</xml>",
        "<a>".repeat(100_000),
        "</a>".repeat(100_000)
    );
    for (name, body) in [
        ("billion laughs", billion),
        ("xxe", xxe),
        ("100,000 deep", deep),
    ] {
        let started = std::time::Instant::now();
        let r = post(&c, &gw.url("/webhooks/wechat"), body.as_bytes(), &[]).await;
        assert_eq!(r.status, 401, "{name}: {}", r.text);
        assert!(
            !r.text.contains("root:"),
            "{name}: no file content may leak"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{name}: {:?}",
            started.elapsed()
        );
    }
    // Still serving.
    assert_eq!(get(&c, &gw.url("/healthz")).await.status, 200);
    gw.stop().await;
}
