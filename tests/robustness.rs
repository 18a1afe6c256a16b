//! Robustness as a hostile sender or a sloppy channel would test it (issue 10), over real HTTP:
//! totals that contradict themselves are held, implausible values are field errors, error texts
//! never quote payload values, and transport tricks are answered from the headers.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use crossgate::model::OrderId;
use serde_json::{Value, json};

/// The Shopify fixture (parts add up to 598.94) with its stated total replaced.
fn shopify_with_total(id: u64, updated_at: &str, total: &str) -> Vec<u8> {
    let text = String::from_utf8(shopify_order(id, updated_at)).unwrap();
    let from = "\"total_price_set\": {\"shop_money\": {\"amount\": \"598.94\", \"currency_code\": \"USD\"}, \"presentment_money\": {\"amount\": \"598.94\"";
    assert!(text.contains(from), "the fixture states its total set");
    let to = format!(
        "\"total_price_set\": {{\"shop_money\": {{\"amount\": \"{total}\", \"currency_code\": \"USD\"}}, \"presentment_money\": {{\"amount\": \"{total}\""
    );
    text.replacen(from, &to, 1).into_bytes()
}

async fn post_shopify(gw: &Gateway, body: &[u8], webhook_id: &str) -> Reply {
    let headers = shopify_headers(body, webhook_id, "orders/create");
    post(&http(), &gw.url("/webhooks/shop"), body, &headers).await
}

async fn order_json(gw: &Gateway, id: &OrderId) -> Value {
    let r = get(&http(), &gw.url(&format!("/v1/orders/{}", id.as_str()))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

fn holds_of<'a>(order: &'a Value, kind: &str) -> Vec<&'a Value> {
    order["holds"]
        .as_array()
        .map(|h| h.iter().filter(|h| h["kind"] == kind).collect())
        .unwrap_or_default()
}

async fn wait_fx(gw: &Gateway, id: &OrderId, want: &str) -> Value {
    for _ in 0..400 {
        let r = get(&http(), &gw.url(&format!("/v1/orders/{}/fx", id.as_str()))).await;
        if r.status == 200 && r.body["status"] == want {
            return r.body;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("order {id} never reached FX status {want}");
}

async fn contradicting_totals(backend: Backend) {
    let gw = Gateway::start(test_config(backend, &redis_url(), "")).await;
    let c = http();
    // Shopify: only total_price_set changed; the parts still add up to 598.94.
    for (i, total) in ["0.00", "598.95", "1000000.00"].iter().enumerate() {
        let body = shopify_with_total(9100 + i as u64, "2024-04-02T09:00:00-05:00", total);
        let r = post_shopify(&gw, &body, &format!("mismatch-{i}")).await;
        assert_eq!(
            r.status, 200,
            "{total}: the authentic order is stored: {}",
            r.text
        );
        let o = order_json(&gw, &OrderId::derive("shop", &(9100 + i).to_string())).await;
        let holds = holds_of(&o, "totals_mismatch");
        assert_eq!(holds.len(), 1, "{total}: {o}");
        assert_eq!(holds[0]["stated"]["amount"], *total);
        assert_eq!(holds[0]["computed"]["amount"], "598.94");
    }
    // The unchanged order is not held.
    let fine = shopify_order(9200, "2024-04-02T09:00:00-05:00");
    assert_eq!(post_shopify(&gw, &fine, "fine").await.status, 200);
    let o = order_json(&gw, &OrderId::derive("shop", "9200")).await;
    assert!(holds_of(&o, "totals_mismatch").is_empty(), "{o}");

    // With rates loaded, a consistent order converts; a contradicting one is not converted
    // until a corrected revision arrives.
    let r = c
        .post(gw.url("/v1/fx/rates?source=ecb&origin=test"))
        .body(fixture("fx-ecb/eurofxref-hist-90d-2017-03-03.xml"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let app = |id: &str, updated: &str, grand: &str| {
        let mut o = app_order(id, updated);
        o["placed_at"] = json!("2017-02-01T10:00:00+09:00");
        o["totals"]["grand_total"]["amount"] = json!(grand);
        serde_json::to_vec(&o).unwrap()
    };
    let post_app = |body: Vec<u8>, msg: &'static str| {
        let url = gw.url("/webhooks/app");
        let c = c.clone();
        async move {
            let r = post(&c, &url, &body, &app_headers(&body, msg)).await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
    };
    post_app(
        app("HELD-1", "2017-02-01T10:00:00+09:00", "99999"),
        "msg_held_1",
    )
    .await;
    post_app(
        app("OK-1", "2017-02-01T10:00:00+09:00", "10760"),
        "msg_ok_1",
    )
    .await;
    let ok = OrderId::derive("app", "OK-1");
    let held = OrderId::derive("app", "HELD-1");
    wait_fx(&gw, &ok, "converted").await;
    // The FX job has passed the held order's event (it came first) without converting it.
    let r = get(&c, &gw.url(&format!("/v1/orders/{}/fx", held.as_str()))).await;
    assert_ne!(r.body["status"], "converted", "{}", r.text);
    let o = order_json(&gw, &held).await;
    assert_eq!(
        holds_of(&o, "totals_mismatch")[0]["computed"]["amount"],
        "10760"
    );
    // A corrected revision lifts the hold, and the order converts.
    post_app(
        app("HELD-1", "2017-02-01T11:00:00+09:00", "10760"),
        "msg_held_2",
    )
    .await;
    wait_fx(&gw, &held, "converted").await;
    let o = order_json(&gw, &held).await;
    assert!(holds_of(&o, "totals_mismatch").is_empty(), "{o}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contradicting_totals_are_held_embedded() {
    contradicting_totals(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contradicting_totals_are_held_redis() {
    contradicting_totals(Backend::Redis).await;
}

/// Fields the 202 answer names for a dead-lettered delivery.
fn error_fields(r: &Reply) -> Vec<String> {
    r.body["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["field"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn implausible_values_are_field_errors_that_quote_nothing() {
    let gw = Gateway::start(test_config(Backend::Embedded, &redis_url(), "")).await;
    let base = String::from_utf8(shopify_order(9300, "2024-04-02T09:00:00-05:00")).unwrap();
    let future = (chrono::Utc::now() + chrono::Duration::days(3))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let dated = |d: &str| {
        base.replace(
            "\"processed_at\": \"2008-01-10T11:00:00-05:00\"",
            &format!("\"processed_at\": \"{d}\""),
        )
        .into_bytes()
    };
    // (name, body, field that must be named, text that must not appear)
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "year 0000",
            dated("0000-01-01T00:00:00Z"),
            "placed_at",
            "0000-01-01",
        ),
        (
            "year 9999",
            dated("9999-12-31T23:59:59Z"),
            "placed_at",
            "9999-12-31",
        ),
        (
            "three days ahead",
            dated(&future),
            "placed_at",
            &future[..10],
        ),
        (
            "1989",
            dated("1989-12-31T23:00:00Z"),
            "placed_at",
            "1989-12-31",
        ),
        (
            "negative quantity",
            base.replace("\"quantity\": 1", "\"quantity\": -3")
                .into_bytes(),
            "lines[0].quantity",
            "-3",
        ),
        (
            "negative total",
            base.replace("\"amount\": \"598.94\"", "\"amount\": \"-598.94\"")
                .replacen(
                    "\"total_price\": \"598.94\"",
                    "\"total_price\": \"-598.94\"",
                    1,
                )
                .into_bytes(),
            "totals.grand_total",
            "-598.94",
        ),
        (
            "invalid country",
            base.replacen(
                "\"country_code\": \"US\"",
                "\"country_code\": \"ZQCANARY\"",
                1,
            )
            .into_bytes(),
            "billing_address.country",
            "ZQCANARY",
        ),
    ];
    for (i, (name, body, field, secret)) in cases.into_iter().enumerate() {
        let r = post_shopify(&gw, &body, &format!("implausible-{i}")).await;
        assert_eq!(r.status, 202, "{name}: {}", r.text);
        let fields = error_fields(&r);
        assert!(
            fields.iter().any(|f| f.starts_with(field)),
            "{name}: expected {field} in {fields:?}"
        );
        assert!(
            !r.text.contains(secret),
            "{name}: the answer quotes the value: {}",
            r.text
        );
        let dl = r.body["dead_letter_id"].as_str().unwrap();
        let stored = get(&http(), &gw.url(&format!("/v1/dead-letters/{dl}"))).await;
        let reason = stored.body["reason"].to_string();
        assert!(
            !reason.contains(secret),
            "{name}: the stored reason quotes the value: {reason}"
        );
    }
    // A duplicate key named like a canary: the key is not quoted either.
    let dup = base.replacen(
        "{\"order\": {",
        "{\"order\": {\"zq_canary_key\": 1, \"zq_canary_key\": 2, ",
        1,
    );
    let r = post_shopify(&gw, dup.as_bytes(), "dup-key").await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["reason"], "parse");
    assert!(!r.text.contains("zq_canary"), "{}", r.text);
    gw.stop().await;
}

/// Sends raw bytes and returns the first response head (status line and headers).
fn raw_exchange(addr: &str, request: &[u8]) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    s.write_all(request).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("no answer: {e}; got {:?}", String::from_utf8_lossy(&got)),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_transport_is_answered_from_the_headers() {
    let gw = Gateway::start(test_config(Backend::Embedded, &redis_url(), "")).await;
    let addr = gw.base.trim_start_matches("http://").to_string();
    let head = |extra: &str| {
        format!(
            "POST /webhooks/shop HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}\r\n"
        )
    };
    let cases = [
        (
            "announced body over the limit, waiting for 100-continue",
            head("Content-Length: 5000000\r\nExpect: 100-continue\r\n"),
            "HTTP/1.1 413",
        ),
        (
            "gzip before chunked",
            head("Transfer-Encoding: gzip, chunked\r\n") + "5\r\nhello\r\n0\r\n\r\n",
            "HTTP/1.1 501",
        ),
        (
            "compressed content",
            head("Content-Length: 2\r\nContent-Encoding: gzip\r\n") + "{}",
            "HTTP/1.1 415",
        ),
        (
            "chunk size that overflows",
            head("Transfer-Encoding: chunked\r\n") + "FFFFFFFFFFFFFFFFFFFFFF\r\nx\r\n",
            "HTTP/1.1 400",
        ),
    ];
    for (name, request, want) in cases {
        let addr = addr.clone();
        let answer = tokio::task::spawn_blocking(move || raw_exchange(&addr, request.as_bytes()))
            .await
            .unwrap();
        assert!(answer.starts_with(want), "{name}: {answer}");
        assert!(!answer.contains("100 Continue"), "{name}: {answer}");
    }
    // Nothing was stored, and the server still serves.
    let orders = get(&http(), &gw.url("/v1/orders?instance=shop")).await;
    assert_eq!(orders.body["items"].as_array().unwrap().len(), 0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_wechat_body_is_refused_before_it_is_parsed_whole() {
    let gw = Gateway::start(test_config(Backend::Embedded, &redis_url(), "")).await;
    // 100,000 distinct empty elements (889 kB), unsigned: refused at the 513th element.
    let mut body = String::from("<xml>");
    for i in 0..100_000 {
        body.push_str(&format!("<e{i}/>"));
    }
    body.push_str("</xml>");
    for _ in 0..3 {
        let r = post(&http(), &gw.url("/webhooks/wechat"), body.as_bytes(), &[]).await;
        assert_eq!(r.status, 401, "{}", r.text);
    }
    // Signed deliveries still go through beside them.
    let ok = shopify_order(9400, "2024-04-02T09:00:00-05:00");
    assert_eq!(post_shopify(&gw, &ok, "after-hostile").await.status, 200);
    gw.stop().await;
}
