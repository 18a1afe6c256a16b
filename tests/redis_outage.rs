//! A Redis outage in the middle of a run: the test owns a redis-server with AOF
//! (`appendfsync always`), kills it with SIGKILL while deliveries flow, keeps it down for a few
//! seconds and starts it again on the same data directory.
//!
//! Pass: every delivery answered 2xx is stored afterwards; while Redis is down the gateway
//! answers 503 (never 2xx); after the restart the gateway recovers by itself and every delivery
//! (retried by the sender as channels do) is stored exactly once. `/readyz` tells the truth when
//! Redis answers PING but refuses writes.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use crossgate::model::OrderId;
use tokio::sync::Mutex;

#[derive(Default)]
struct Log {
    acked: HashSet<u64>,
    /// (time answered, status) of every attempt.
    attempts: Vec<(Instant, u16)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_survive_a_redis_crash_and_outage_gets_503() {
    let mut redis = RedisServer::start(true);
    let tc = test_config(Backend::Redis, &redis.url(), "");
    let gw = Arc::new(Gateway::start(tc).await);
    let c = http();
    let url = gw.url("/webhooks/shop");
    let log = Arc::new(Mutex::new(Log::default()));
    let total = 600u64;
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));

    // Senders: like a channel, retry every non-2xx (and connection error) with a short backoff.
    let mut senders = Vec::new();
    for _ in 0..8 {
        let (c, url, log, next) = (c.clone(), url.clone(), log.clone(), next.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return;
                }
                let body = shopify_order(7_000_000 + i, "2024-04-02T09:00:00-05:00");
                let headers = shopify_headers(&body, &format!("out-{i}"), "orders/create");
                for attempt in 0..200 {
                    let mut req = c.post(&url).body(body.clone());
                    for (k, v) in &headers {
                        req = req.header(k.as_str(), v.as_str());
                    }
                    let status = match req.send().await {
                        Ok(r) => r.status().as_u16(),
                        Err(_) => 0,
                    };
                    let mut l = log.lock().await;
                    l.attempts.push((Instant::now(), status));
                    if (200..300).contains(&status) {
                        l.acked.insert(i);
                        break;
                    }
                    drop(l);
                    assert!(attempt < 199, "delivery {i} never accepted");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }

    // Let some deliveries through, then crash Redis, keep it down, restart it.
    while log.lock().await.acked.len() < 150 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    redis.kill();
    let down_from = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let down_until = Instant::now();
    redis.restart();

    for s in senders {
        s.await.unwrap();
    }
    let log = log.lock().await;
    // While Redis was certainly down (allowing 1.5 s for in-flight answers on either side),
    // nothing was acknowledged, and the gateway said 503.
    let during: Vec<u16> = log
        .attempts
        .iter()
        .filter(|(t, _)| *t > down_from + Duration::from_millis(1500) && *t < down_until)
        .map(|(_, s)| *s)
        .collect();
    assert!(
        !during.is_empty(),
        "deliveries were attempted during the outage"
    );
    assert!(
        during.iter().all(|s| *s == 503),
        "answers during the outage: {:?}",
        during.iter().collect::<HashSet<_>>()
    );
    assert_eq!(
        log.acked.len() as u64,
        total,
        "every delivery was eventually accepted"
    );

    // Every acknowledged delivery is stored, once.
    for i in 0..total {
        let id = OrderId::derive("shop", &(7_000_000 + i).to_string());
        let r = get(&c, &gw.url(&format!("/v1/orders/{id}"))).await;
        assert_eq!(
            r.status, 200,
            "acknowledged order {i} is missing after the Redis restart"
        );
    }
    let listed = get(&c, &gw.url("/v1/orders?instance=shop&limit=500")).await;
    let mut count = listed.body["items"].as_array().unwrap().len();
    let mut cursor = listed.body["next_cursor"].as_str().map(str::to_string);
    while let Some(cur) = cursor {
        let page = get(
            &c,
            &gw.url(&format!("/v1/orders?instance=shop&limit=500&cursor={cur}")),
        )
        .await;
        count += page.body["items"].as_array().unwrap().len();
        cursor = page.body["next_cursor"].as_str().map(str::to_string);
    }
    assert_eq!(count as u64, total, "no duplicates");
    let metrics = get(&c, &gw.url("/metrics")).await.text;
    assert!(
        metrics.contains("outcome=\"unavailable\""),
        "the outage shows in the metrics"
    );
    let failed_writes = metrics
        .lines()
        .find(|l| l.starts_with("crossgate_store_errors_total{kind=\"unavailable\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(
        failed_writes >= 1.0,
        "the failed writes are counted: {metrics}"
    );
    if let Ok(gw) = Arc::try_unwrap(gw) {
        gw.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_aof_a_redis_crash_loses_acknowledged_data() {
    // The negative control: it proves the test above can detect loss. A Redis without
    // persistence forgets everything on SIGKILL, and the gateway's start-up check reports it.
    let mut redis = RedisServer::start(false);
    let tc = test_config(Backend::Redis, &redis.url(), "");
    let gw = Gateway::start(tc).await;
    let c = http();
    let body = shopify_order(8_000_001, "2024-04-02T09:00:00-05:00");
    let r = post(
        &c,
        &gw.url("/webhooks/shop"),
        &body,
        &shopify_headers(&body, "ctl", "orders/create"),
    )
    .await;
    assert_eq!(r.status, 200);
    redis.restart();
    let id = OrderId::derive("shop", "8000001");
    let mut status = 0;
    for _ in 0..50 {
        status = get(&c, &gw.url(&format!("/v1/orders/{id}"))).await.status;
        if status != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 404, "without AOF the acknowledged order is gone");
    let (_, persistence) =
        crossgate::backend::redis::RedisStore::connect(crossgate::backend::redis::RedisOptions {
            target: crossgate::backend::redis::Target::Node(redis.url()),
            prefix: "x".into(),
            timeout: Duration::from_secs(1),
            require_fsync: false,
            dedupe_ttl: Duration::from_secs(3600),
            raw_retention: Duration::from_secs(3600),
            instances: vec![],
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!persistence.fsyncs_every_write());
    let refused =
        crossgate::backend::redis::RedisStore::connect(crossgate::backend::redis::RedisOptions {
            target: crossgate::backend::redis::Target::Node(redis.url()),
            prefix: "x".into(),
            timeout: Duration::from_secs(1),
            require_fsync: true,
            dedupe_ttl: Duration::from_secs(3600),
            raw_retention: Duration::from_secs(3600),
            instances: vec![],
            ..Default::default()
        })
        .await;
    assert!(
        refused.is_err(),
        "redis_require_fsync refuses a server without AOF"
    );
    gw.stop().await;
}

/// A Redis that answers PING but refuses writes (here `min-replicas-to-write 1` with no replica:
/// NOREPLICAS; a full disk under `stop-writes-on-bgsave-error`, or a replica, refuse the same way)
/// is not ready: `/readyz` answers 503 while deliveries would fail, and 200 again once writes
/// are taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_redis_answers_ping_but_refuses_writes() {
    let redis = RedisServer::start(false);
    let gw = Gateway::start(test_config(Backend::Redis, &redis.url(), "")).await;
    let c = http();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &redis.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(get(&c, &gw.url("/readyz")).await.status, 200);

    assert_eq!(cli(&["CONFIG", "SET", "min-replicas-to-write", "1"]), "OK");
    assert_eq!(cli(&["PING"]), "PONG", "Redis still answers PING");
    let r = get(&c, &gw.url("/readyz")).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.content_type, "application/problem+json");
    // And indeed a delivery cannot be stored: 503, never 2xx.
    let body = shopify_order(9101, "2024-04-02T09:00:00-05:00");
    let h = shopify_headers(&body, "w-9101", "orders/create");
    let d = post(&c, &gw.url("/webhooks/shop"), &body, &h).await;
    assert_eq!(d.status, 503, "{}", d.text);

    assert_eq!(cli(&["CONFIG", "SET", "min-replicas-to-write", "0"]), "OK");
    assert_eq!(get(&c, &gw.url("/readyz")).await.status, 200);
    let d = post(&c, &gw.url("/webhooks/shop"), &body, &h).await;
    assert_eq!(d.status, 200, "{}", d.text);
    gw.stop().await;
}
