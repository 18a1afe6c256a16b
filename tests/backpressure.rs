//! Backpressure (issue 18): while the background jobs are more than `[server]
//! max_consumer_lag` events behind, deliveries get 503 with Retry-After (nothing is stored, so
//! the sender's retry is the delivery), reads still answer, and the lag is a metric; once the
//! jobs catch up, deliveries are taken again. Another "replica" holds the FX job's lease and
//! does no work, so the FX consumer group falls behind on purpose.
//! (Its own test binary: the metrics recorder is process-wide.)

mod common;

use std::time::Duration;

use common::*;
use crossgate::store::Store;

async fn deliver(c: &reqwest::Client, gw: &Gateway, n: usize) -> Reply {
    let id = format!("BP-{n}");
    let body = serde_json::to_vec(&app_order(&id, "2024-05-01T19:03:11+09:00")).unwrap();
    post(c, &gw.url("/webhooks/app"), &body, &app_headers(&body, &id)).await
}

fn gauge(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_wait_while_the_background_jobs_are_behind() {
    for backend in Backend::all() {
        let tc = test_config(backend, &redis_url(), "max_consumer_lag = 3");
        let (store, _) = crossgate::backend::open(&tc.config.store).await.unwrap();
        let lease = crossgate::replica::Job::Fx.lease();
        let ttl = Duration::from_secs(600);
        let held = crossgate::with_store!(&store, s => s.lease(&lease, "elsewhere", ttl).await);
        assert!(held.unwrap().is_some(), "{backend:?}");
        let gw = Gateway::start_with(tc.config.clone(), store.clone(), tc.dir).await;
        let c = http();

        // Accepted until the lag measured each second passes 3 events; then refused.
        let mut stored = 0;
        let refusal = loop {
            let r = deliver(&c, &gw, stored).await;
            if r.status == 503 {
                break r;
            }
            assert_eq!(r.status, 200, "{backend:?}: {}", r.text);
            stored += 1;
            assert!(stored < 200, "{backend:?}: never refused");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(stored > 3, "{backend:?}: refused at {stored}");
        assert_eq!(
            refusal.body["type"], "urn:crossgate:problem:backlogged",
            "{}",
            refusal.text
        );
        assert!(
            refusal.body["detail"]
                .as_str()
                .unwrap()
                .ends_with("events behind (limit 3)"),
            "{}",
            refusal.text
        );
        // The refused order was not stored; reads still answer.
        let refused = crossgate::model::OrderId::derive("app", &format!("BP-{stored}"));
        let r = get(&c, &gw.url(&format!("/v1/orders/{}", refused.as_str()))).await;
        assert_eq!(r.status, 404, "{backend:?}");
        let metrics = get(&c, &gw.url("/metrics")).await.text;
        let fx_lag = gauge(&metrics, "crossgate_consumer_lag_events{group=\"fx\"}").unwrap();
        // Measured once a second, so it may trail the last deliveries: over the limit.
        assert!(fx_lag > 3.0, "{backend:?}: {fx_lag} events behind");
        let age = gauge(&metrics, "crossgate_consumer_lag_seconds{group=\"fx\"}").unwrap();
        assert!(
            age > 0.0,
            "{backend:?}: the oldest unprocessed event has an age"
        );
        assert!(
            gauge(&metrics, "crossgate_backpressure_refusals_total").unwrap() >= 1.0,
            "{backend:?}"
        );

        // The other replica lets go: the FX job takes its lease, catches up, and deliveries
        // are taken again.
        crossgate::with_store!(&store, s => s.release(&lease, "elsewhere").await).unwrap();
        let mut again = None;
        for _ in 0..300 {
            let r = deliver(&c, &gw, stored).await;
            if r.status == 200 {
                again = Some(r);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            again.is_some(),
            "{backend:?}: deliveries were never taken again"
        );
        gw.stop().await;
    }
}
