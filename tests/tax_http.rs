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

async fn submit_listing(c: &reqwest::Client, gw: &Gateway, listing: serde_json::Value) {
    let body = serde_json::to_vec(&listing).unwrap();
    let h = [("Content-Type".to_string(), "application/json".to_string())];
    let r = post(c, &gw.url("/v1/instances/app/listings"), &body, &h).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

fn listing(external_id: &str, sku: &str, tax: serde_json::Value) -> serde_json::Value {
    let mut l = json!({
        "external_id": external_id,
        "revision": { "updated_at": "2024-04-01T10:00:00Z" },
        "sku": sku,
        "title": format!("Item {external_id}"),
        "status": "active",
    });
    l.as_object_mut()
        .unwrap()
        .extend(tax.as_object().unwrap().clone());
    l
}

/// The tax job takes a line's class and HS code from the instance's listing of its SKU when the
/// line names none (the explanation says so), and holds the order when the listings disagree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_names_the_tax_class_of_the_lines_of_its_sku() {
    for backend in Backend::all() {
        let gw = Gateway::start(test_config(backend, &redis_url(), "")).await;
        let c = http();
        submit_listing(
            &c,
            &gw,
            listing("L-TEA", "TEA-MATCHA-100", json!({"tax_class": "food"})),
        )
        .await;
        // The canonical form takes digits only; the refusal names the field.
        let dotted = listing("L-CUP", "CUP-CHAWAN-01", json!({"hs_code": "6912.00"}));
        let h = [("Content-Type".to_string(), "application/json".to_string())];
        let url = gw.url("/v1/instances/app/listings");
        let r = post(&c, &url, &serde_json::to_vec(&dotted).unwrap(), &h).await;
        assert_eq!(r.status, 422);
        assert_eq!(r.body["errors"][0]["field"], "hs_code", "{}", r.text);
        submit_listing(
            &c,
            &gw,
            listing("L-CUP", "CUP-CHAWAN-01", json!({"hs_code": "691200"})),
        )
        .await;
        // The app's order to Japan, its lines stripped of their HS codes.
        let body = std::fs::read(repo().join("tests/fixtures/app/order-jp.json")).unwrap();
        let mut o: serde_json::Value = serde_json::from_slice(&body).unwrap();
        o["external_id"] = json!("TAX-LISTING");
        for l in o["lines"].as_array_mut().unwrap() {
            l.as_object_mut().unwrap().remove("hs_code");
        }
        let b = serde_json::to_vec(&o).unwrap();
        let r = post(&c, &gw.url("/webhooks/app"), &b, &app_headers(&b, "tax-l")).await;
        assert_eq!(r.status, 200);
        let id = OrderId::derive("app", "TAX-LISTING");
        let q = stored_quote(&c, &gw, &id).await;
        assert_eq!(q["status"], "quoted", "{backend:?}: {q}");
        let class_steps: Vec<(String, String, String)> = q["explanation"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["rule"] == "goods_class")
            .map(|s| {
                let text = |k: &str| s["inputs"][k].as_str().unwrap_or_default().to_string();
                (
                    text("by"),
                    text("hs_code"),
                    s["outcome"].as_str().unwrap().into(),
                )
            })
            .collect();
        let tea = crossgate::model::ListingId::derive("app", "L-TEA");
        assert_eq!(
            class_steps,
            [
                (
                    format!("named by listing {}", tea.as_str()),
                    String::new(),
                    "food".to_string()
                ),
                (
                    "no HS prefix rule".to_string(),
                    "691200".to_string(),
                    "standard".to_string()
                ),
            ],
            "{backend:?}"
        );

        // A second listing of the cup's SKU gives another HS code: quoted again, it is held.
        submit_listing(
            &c,
            &gw,
            listing("L-CUP-2", "CUP-CHAWAN-01", json!({"hs_code": "691110"})),
        )
        .await;
        let r = c
            .post(gw.url(&format!("/v1/orders/{}/quote", id.as_str())))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let q: serde_json::Value = r.json().await.unwrap();
        assert_eq!(q["status"], "tax_pending", "{backend:?}: {q}");
        assert!(
            q["missing"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m == "line 1: the listings of the line's SKU give different HS codes"),
            "{q}"
        );
        gw.stop().await;
    }
}
