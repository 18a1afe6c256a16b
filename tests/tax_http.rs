//! Customs and tax in the daemon, over HTTP: every incoming cross-border order is quoted with
//! the active rule pack and the quote stored; an order no rule covers is held as tax_pending;
//! POST /v1/quote answers without storing.

mod common;

use std::time::Duration;

use common::*;
use crossgate::model::OrderId;
use serde_json::json;

async fn stored_quote(c: &reqwest::Client, gw: &Gateway, id: &OrderId) -> serde_json::Value {
    for _ in 0..200 {
        let r = get(c, &gw.url(&format!("/v1/orders/{}/tax", id.as_str()))).await;
        if r.status == 200 {
            return r.body;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("order {id} was never quoted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_orders_are_quoted_and_held_when_no_rule_covers_them() {
    for backend in Backend::all() {
        let gw = Gateway::start(test_config(backend, &redis_url(), "")).await;
        let c = http();
        // The app's order ships to Japan: JPY 10,760 retail → taxable 6,456 ≤ 10,000: exempt.
        let body = std::fs::read(repo().join("tests/fixtures/app/order-jp.json")).unwrap();
        let r = post(
            &c,
            &gw.url("/webhooks/app"),
            &body,
            &app_headers(&body, "tax-jp"),
        )
        .await;
        assert_eq!(r.status, 200);
        let q = stored_quote(&c, &gw, &OrderId::derive("app", "APP-2024-000123")).await;
        assert_eq!(q["regime"], "JP_LOW_VALUE", "{backend:?}: {q}");
        assert_eq!(q["pack_version"], "2026.11");
        assert!(
            q["explanation"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["rule"] == "threshold.JP_LOW_VALUE_MAX")
        );

        // The same order shipped to Brazil: no rule in the pack, so it is held.
        let mut o: serde_json::Value = serde_json::from_slice(&body).unwrap();
        o["external_id"] = json!("TAX-BR");
        o["shipping_address"]["country"] = json!("BR");
        let b = serde_json::to_vec(&o).unwrap();
        post(&c, &gw.url("/webhooks/app"), &b, &app_headers(&b, "tax-br")).await;
        let id = OrderId::derive("app", "TAX-BR");
        let q = stored_quote(&c, &gw, &id).await;
        assert_eq!(q["status"], "tax_pending");
        let order = get(&c, &gw.url(&format!("/v1/orders/{}", id.as_str())))
            .await
            .body;
        let holds: Vec<&str> = order["holds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["kind"].as_str().unwrap())
            .collect();
        assert!(holds.contains(&"tax_pending"), "{order}");

        // A quote on demand (nothing stored): the repository's example order to Germany.
        let example =
            std::fs::read(repo().join("tests/fixtures/quote/order-de-tshirts.json")).unwrap();
        let r = c
            .post(gw.url("/v1/quote"))
            .body(example)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let q: serde_json::Value = r.json().await.unwrap();
        // VAT 19 %: 39.80 → 7.562 → 7.56; 89.00 → 16.91; shipping 6.00 → 1.14; flat duty 2 × EUR 3.
        assert_eq!(q["regime"], "EU_IOSS");
        assert_eq!(q["tax_total"]["amount"], "31.61");
        let bad = c
            .post(gw.url("/v1/quote"))
            .body("{\"currency\": \"EUR\"}")
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400);
        gw.stop().await;
    }
}
