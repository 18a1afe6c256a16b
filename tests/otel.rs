//! Traces exported with OpenTelemetry (issue 17): with `[telemetry] otlp_endpoint` set, a
//! webhook delivery's spans reach an OTLP/HTTP receiver (JSON) on loopback, under the trace id
//! its answer named, as a tree: the request's span, and under it the verify-and-normalize and
//! store-write stages; and a jobs run asked for over the API nests its stages under that
//! request. No attribute carries personal data from the order. (Its own test
//! binary: the tracing subscriber is process-wide.)

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use common::*;
use serde_json::Value;

const SENDER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

/// Every span the receiver was sent: (trace id, span id, parent span id, name, attributes).
fn spans(bodies: &[Value]) -> Vec<Span> {
    let mut out = Vec::new();
    for b in bodies {
        for rs in b["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for s in ss["spans"].as_array().into_iter().flatten() {
                    out.push((
                        s["traceId"].as_str().unwrap_or("").to_ascii_lowercase(),
                        s["spanId"].as_str().unwrap_or("").to_ascii_lowercase(),
                        s["parentSpanId"]
                            .as_str()
                            .unwrap_or("")
                            .to_ascii_lowercase(),
                        s["name"].as_str().unwrap_or("").to_string(),
                        s["attributes"].to_string(),
                    ));
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deliverys_spans_reach_the_collector_as_one_tree() {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = received.clone();
    let collector = serve_mock(axum::Router::new().route(
        "/v1/traces",
        post(move |axum::Json(body): axum::Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body);
                axum::Json(serde_json::json!({}))
            }
        }),
    ))
    .await;
    crossgate::telemetry::init_tracing_to(
        "info",
        true,
        std::io::sink,
        &crossgate::telemetry::TraceExport {
            otlp_endpoint: Some(collector),
            service_name: "crossgate-test".into(),
        },
    );
    let gw = Gateway::start(test_config(Backend::Embedded, &redis_url(), "")).await;
    let body = shopify_order(7_700_001, "2024-04-02T09:00:00-05:00");
    let mut req = http().post(gw.url("/webhooks/shop")).body(body.clone());
    for (k, v) in shopify_headers(&body, "otel-1", "orders/create") {
        req = req.header(k, v);
    }
    let resp = req
        .header(
            "traceparent",
            format!("00-{SENDER_TRACE}-b7ad6b7169203331-01"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-trace-id"], SENDER_TRACE);

    let ours = spans_of(
        &received,
        SENDER_TRACE,
        &["request", "verify_and_normalize", "store_write"],
    )
    .await;
    let by_name = |n: &str| ours.iter().find(|s| s.3 == n).unwrap();
    let request = by_name("request");
    // The request's span continues the sender's trace (its parent is the sender's span).
    assert_eq!(request.2, "b7ad6b7169203331", "{ours:?}");
    for stage in ["verify_and_normalize", "store_write"] {
        assert_eq!(
            by_name(stage).2,
            request.1,
            "{stage} is a child of the request: {ours:?}"
        );
    }
    // Attributes carry ids and sizes, never the order's personal data.
    let order: Value = serde_json::from_slice(&body).unwrap();
    let email = order["order"]["email"].as_str().unwrap();
    let street = order["order"]["shipping_address"]["address1"]
        .as_str()
        .unwrap();
    for s in &ours {
        assert!(!s.4.contains(email) && !s.4.contains(street), "{s:?}");
    }

    // The jobs run asked for over the API: its stages are children of that request.
    let resp = http()
        .post(gw.url("/v1/jobs/run"))
        .header(
            "traceparent",
            format!("00-{JOBS_TRACE}-c7ad6b7169203331-01"),
        )
        .header("Content-Type", "application/json")
        .body(r#"{"rank": false}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let jobs = spans_of(
        &received,
        JOBS_TRACE,
        &["request", "jobs_run", "jobs_ingest"],
    )
    .await;
    let by_name = |n: &str| jobs.iter().find(|s| s.3 == n).unwrap();
    assert_eq!(by_name("jobs_run").2, by_name("request").1, "{jobs:?}");
    assert_eq!(by_name("jobs_ingest").2, by_name("jobs_run").1, "{jobs:?}");
    gw.stop().await;
}

const JOBS_TRACE: &str = "1bf7651916cd43dd8448eb211c80319d";

type Span = (String, String, String, String, String);

/// The spans of `trace`, once every one of `names` has arrived (20 s at most).
async fn spans_of(received: &Mutex<Vec<Value>>, trace: &str, names: &[&str]) -> Vec<Span> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        tokio::task::spawn_blocking(crossgate::telemetry::otel::flush)
            .await
            .unwrap();
        let ours: Vec<_> = spans(&received.lock().unwrap())
            .into_iter()
            .filter(|s| s.0 == trace)
            .collect();
        let have: Vec<&str> = ours.iter().map(|s| s.3.as_str()).collect();
        if names.iter().all(|n| have.contains(n)) {
            return ours;
        }
        assert!(
            Instant::now() < deadline,
            "spans of {trace} so far: {have:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
