//! No personal data and no secret ever appears in logs (at every level, down to trace),
//! in error answers or in metrics. Canary values are pushed through every path: stored orders,
//! dead letters, refused signatures, replays.

mod common;

use common::*;
use serde_json::json;

const CANARIES: &[&str] = &[
    "Zqxvyl Canarytest",
    "canary+gw@example.invalid",
    "+86 138 0013 8000",
    "77 Canary Wharf Lane",
    "Canaryville",
];

fn canary_order(external_id: &str) -> serde_json::Value {
    let mut v = app_order(external_id, "2024-05-01T10:00:00Z");
    v["customer"] = json!({"email": CANARIES[1], "phone": CANARIES[2], "name": CANARIES[0]});
    v["shipping_address"] = json!({
        "name": CANARIES[0], "line1": CANARIES[3], "city": CANARIES[4],
        "postal_code": "CN1 1AA", "country": "GB", "phone": CANARIES[2]
    });
    v
}

fn assert_clean(what: &str, text: &str) {
    for c in CANARIES.iter().chain([&SHOPIFY_SECRET, &APP_SECRET]) {
        assert!(!text.contains(c), "{what} contains {c:?}");
    }
}

#[tokio::test]
async fn canaries_never_reach_logs_answers_or_metrics() {
    let capture = LogCapture::default();
    crossgate::telemetry::init_logging_to("trace", true, capture.clone());
    let gw = Gateway::start(test_config(Backend::Embedded, &redis_url(), "")).await;
    let c = http();
    let app = gw.url("/webhooks/app");
    let shop = gw.url("/webhooks/shop");

    // A good order full of personal data.
    let body = serde_json::to_vec(&canary_order("PII-1")).unwrap();
    let r = post(&c, &app, &body, &app_headers(&body, "msg_pii_1")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_clean("a stored answer", &r.text);

    // Bad orders whose bad fields hold the canaries.
    let mut wrong_type = canary_order("PII-2");
    wrong_type["lines"][0]["quantity"] = json!(CANARIES[0]);
    let mut wrong_country = canary_order("PII-3");
    wrong_country["shipping_address"]["country"] = json!(CANARIES[4]);
    let mut wrong_currency = canary_order("PII-4");
    wrong_currency["currency"] = json!(CANARIES[1]);
    for (i, v) in [wrong_type, wrong_country, wrong_currency]
        .into_iter()
        .enumerate()
    {
        let b = serde_json::to_vec(&v).unwrap();
        let r = post(&c, &app, &b, &app_headers(&b, &format!("msg_pii_bad_{i}"))).await;
        assert_eq!(r.status, 202, "{}", r.text);
        assert_clean("a dead-letter answer", &r.text);
        // Replaying fails again; its answer is clean too.
        let dl = r.body["dead_letter_id"].as_str().unwrap();
        let replay = post(
            &c,
            &gw.url(&format!("/v1/dead-letters/{dl}/replay")),
            b"",
            &[],
        )
        .await;
        assert_eq!(replay.status, 422);
        assert_clean("a replay answer", &replay.text);
    }

    // Not JSON at all, with canaries inside.
    let junk = format!("name={} email={}", CANARIES[0], CANARIES[1]).into_bytes();
    let r = post(
        &c,
        &shop,
        &junk,
        &shopify_headers(&junk, "pii-junk", "orders/create"),
    )
    .await;
    assert_eq!(r.status, 202);
    assert_clean("a parse-error answer", &r.text);

    // Refused signatures, with canaries in headers and body.
    let mut h = app_headers(&body, CANARIES[1]);
    h.retain(|(k, _)| k != "webhook-signature");
    h.push(("webhook-signature".into(), format!("v1,{}", CANARIES[0])));
    let r = post(&c, &app, &body, &h).await;
    assert_eq!(r.status, 401);
    assert_clean("a 401 answer", &r.text);

    // A Shopify order with canaries in the customer fields.
    let shop_body = String::from_utf8(shopify_order(555, "2024-04-02T09:00:00-05:00"))
        .unwrap()
        .replace("bob.norman@mail.example.com", CANARIES[1])
        .replace("Chestnut Street 92", CANARIES[3])
        .into_bytes();
    let r = post(
        &c,
        &shop,
        &shop_body,
        &shopify_headers(&shop_body, "pii-shop", "orders/create"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_clean("a Shopify answer", &r.text);

    assert_clean("metrics", &get(&c, &gw.url("/metrics")).await.text);
    gw.stop().await;

    let logs = String::from_utf8(capture.bytes()).unwrap();
    assert!(
        logs.contains("delivery dead-lettered") && logs.contains("delivery refused"),
        "the capture really holds the gateway's logs:\n{logs}"
    );
    assert!(logs.lines().count() > 10, "trace-level logs were captured");
    assert_clean("the logs", &logs);
}
