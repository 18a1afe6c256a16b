//! Trace ids (issue 17): every answer names its request's trace id in `X-Trace-Id` (the
//! sender's W3C `traceparent` one when it sent a valid one), the stored delivery and its dead
//! letter keep it, and the request's JSON log lines carry it, so ops can go from a channel's
//! complaint ("delivery X got a 202") to the delivery, the dead letter and the logs.

mod common;

use common::*;
use crossgate::store::Store;

const SENDER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

async fn deliver(
    gw: &Gateway,
    body: &[u8],
    id: &str,
    traceparent: Option<&str>,
) -> (u16, String, serde_json::Value) {
    let mut req = http().post(gw.url("/webhooks/shop")).body(body.to_vec());
    for (k, v) in shopify_headers(body, id, "orders/create") {
        req = req.header(k, v);
    }
    if let Some(t) = traceparent {
        req = req.header("traceparent", t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let trace = resp.headers()["x-trace-id"].to_str().unwrap().to_string();
    (status, trace, resp.json().await.unwrap())
}

#[tokio::test]
async fn a_delivery_its_dead_letter_and_its_logs_carry_one_trace_id() {
    let capture = LogCapture::default();
    crossgate::telemetry::init_logging_to("debug", true, capture.clone());
    let gw = Gateway::start(test_config(Backend::Embedded, &redis_url(), "")).await;

    // A new trace id per request: 32 hex digits, never twice the same.
    let (status, first, answer) = deliver(
        &gw,
        &shopify_order(5_000_001, "2024-04-02T09:00:00-05:00"),
        "t-1",
        None,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        first.len() == 32 && first.bytes().all(|b| b.is_ascii_hexdigit()),
        "{first}"
    );
    let delivery_id = answer["delivery_id"].as_str().unwrap();
    let stored = gw.store.clone();
    let raw = crossgate::with_store!(&stored, s => s.get_delivery(delivery_id).await)
        .unwrap()
        .unwrap();
    assert_eq!(raw.trace_id.as_deref(), Some(first.as_str()));

    // The sender's trace continues; a body that does not map is parked with it.
    let mut bad: serde_json::Value =
        serde_json::from_slice(&shopify_order(5_000_002, "2024-04-02T09:00:00-05:00")).unwrap();
    bad["order"]["line_items"][0]["quantity"] = serde_json::json!("many");
    let traceparent = format!("00-{SENDER_TRACE}-00f067aa0ba902b7-01");
    let (status, trace, answer) = deliver(
        &gw,
        &serde_json::to_vec(&bad).unwrap(),
        "t-2",
        Some(&traceparent),
    )
    .await;
    assert_eq!((status, trace.as_str()), (202, SENDER_TRACE), "{answer}");
    let dl_id = answer["dead_letter_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    let dl = get(&http(), &gw.url(&format!("/v1/dead-letters/{dl_id}"))).await;
    assert_eq!(
        dl.body["dead_letter"]["trace_id"], SENDER_TRACE,
        "{}",
        dl.text
    );

    // An invalid traceparent (all zero) is not continued.
    let (_, fresh, _) = deliver(
        &gw,
        &shopify_order(5_000_003, "2024-04-02T09:00:00-05:00"),
        "t-3",
        Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
    )
    .await;
    assert_ne!(fresh, "00000000000000000000000000000000");
    assert_ne!(fresh, first);

    // Every API answer names one too, errors included.
    let r = http().get(gw.url("/v1/orders/nope")).send().await.unwrap();
    assert_eq!(r.headers()["x-trace-id"].len(), 32);
    gw.stop().await;

    // The JSON log lines of the parked delivery carry the sender's trace id.
    let logs = String::from_utf8(capture.bytes()).unwrap();
    let lines: Vec<&str> = logs.lines().filter(|l| l.contains(SENDER_TRACE)).collect();
    assert!(!lines.is_empty(), "no log line carries the trace id");
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["span"]["trace_id"], SENDER_TRACE, "{l}");
    }
}
