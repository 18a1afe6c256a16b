//! Crash safety of the jobs: `crossgate jobs run` killed with SIGKILL while it reads the event
//! stream, then run again, publishes exactly what an uninterrupted run publishes (Redis).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use crossgate::pipeline::{self, Submission};
use crossgate::reco::store::{RecoKind, RecoStore};
use crossgate::reco::{job, models};
use serde_json::json;

const ORDERS: usize = 1500;

/// Deterministic orders: 150 customers, 120 SKUs in 12 themes (customers favour a theme).
fn orders() -> Vec<(String, Vec<u8>)> {
    let themes = [
        "tea", "coffee", "yoga", "garden", "kitchen", "travel", "desk", "bath", "camping",
        "baking", "music", "pets",
    ];
    let mut seed: u64 = 42;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    (0..ORDERS)
        .map(|n| {
            let customer = next(150);
            let theme = if next(4) == 0 {
                next(12)
            } else {
                customer % 12
            };
            let lines: Vec<serde_json::Value> = (0..1 + next(3))
                .map(|i| {
                    let sku = theme * 10 + next(10);
                    json!({
                        "line_id": (i + 1).to_string(),
                        "sku": format!("SKU-{sku:03}"),
                        "title": format!("{} item {}", themes[theme as usize], sku % 10),
                        "quantity": 1 + next(3),
                        "unit_price": {"amount": format!("{}.50", 5 + sku), "currency": "EUR"},
                        "discount": {"amount": "0", "currency": "EUR"},
                        "tax": {"amount": "0", "currency": "EUR"},
                    })
                })
                .collect();
            let day = 1 + n % 28;
            let at = format!("2017-02-{day:02}T10:00:00+01:00");
            let country = ["DE", "FR", "IT"][(customer % 3) as usize];
            let o = json!({
                "external_id": format!("CR-{n}"),
                "revision": {"updated_at": at},
                "status": "paid",
                "placed_at": at,
                "currency": "EUR",
                "taxes_included": false,
                "customer": {"email": format!("buyer{customer}@example.com")},
                "shipping_address": {"country": country},
                "lines": lines,
                "totals": {
                    "subtotal": {"amount": "1", "currency": "EUR"},
                    "shipping": {"amount": "0", "currency": "EUR"},
                    "discount": {"amount": "0", "currency": "EUR"},
                    "tax": {"amount": "0", "currency": "EUR"},
                    "grand_total": {"amount": "1", "currency": "EUR"},
                },
            });
            (format!("CR-{n}"), serde_json::to_vec(&o).unwrap())
        })
        .collect()
}

async fn load(tc: &TestConfig) -> crossgate::backend::redis::RedisStore {
    let (store, _) = crossgate::backend::open(&tc.config.store).await.unwrap();
    let crossgate::backend::AnyStore::Redis(store) = store else {
        panic!("a Redis config")
    };
    let inst = tc.config.instances.get("app").unwrap().clone();
    for (id, body) in orders() {
        let r = pipeline::submit(
            &store,
            &inst,
            Submission::CanonicalOrder,
            Some(&id),
            body,
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        assert!(r.errors.is_empty(), "{id}: {:?}", r.errors);
    }
    store
}

fn jobs_run(dir: &std::path::Path, rebuild: bool) -> std::process::Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_crossgate"));
    cmd.arg("--config")
        .arg(dir.join("gateway.toml"))
        .args(["jobs", "run", "--batch", "10"]);
    if rebuild {
        cmd.arg("--rebuild");
    }
    cmd.envs(test_env())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Every published result: lists per strategy and customer, and the rankings.
async fn results(store: &impl RecoStore, customers: &[String]) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for s in models::STRATEGIES {
        for c in customers {
            out.push((format!("{s}/{c}"), store.reco_list(s, c).await.unwrap()));
        }
    }
    for by in job::RANKINGS {
        for country in ["*", "DE", "FR", "IT"] {
            for channel in ["*", "app"] {
                let key = format!("{by}|{country}|{channel}");
                let r = store.reco_ranking(&key, 1000).await.unwrap();
                out.push((key, r.map(|v| format!("{v:?}"))));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_resumes_to_the_same_results() {
    let (ref_dir, crash_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg = |dir: &std::path::Path, tag: &str| {
        test_config_in(
            dir,
            Backend::Redis,
            &redis_url(),
            "",
            &repo().join("adapters"),
            &[],
            &unique_prefix(tag),
        )
    };
    let (ref_cfg, crash_cfg) = (
        cfg(ref_dir.path(), "reco-ref"),
        cfg(crash_dir.path(), "reco-crash"),
    );
    let (reference, crashed) = (load(&ref_cfg).await, load(&crash_cfg).await);

    // The reference: one uninterrupted run.
    assert!(jobs_run(ref_dir.path(), true).wait().unwrap().success());

    // The crashed run: SIGKILL once part of the stream is in the jobs' data.
    let mut child = jobs_run(crash_dir.path(), true);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{}:{{reco}}:orders", crash_cfg.config.store.redis_prefix);
    while Instant::now() < deadline {
        seen = redis::cmd("HLEN")
            .arg(&key)
            .query_async::<usize>(&mut conn)
            .await
            .unwrap();
        if seen >= 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        (100..ORDERS).contains(&seen),
        "killed after {seen} of {ORDERS} orders were read: not mid-run"
    );
    assert!(
        crashed
            .reco_meta(crossgate::reco::store::RecoPart::Recommendations)
            .await
            .unwrap()
            .is_none(),
        "nothing was published by the killed run"
    );
    // Resume (no --rebuild): it continues from the group's position.
    assert!(jobs_run(crash_dir.path(), false).wait().unwrap().success());

    let data_ref = reference.reco_load(RecoKind::Order).await.unwrap();
    let data_crash = crashed.reco_load(RecoKind::Order).await.unwrap();
    assert_eq!(data_ref.len(), ORDERS);
    assert_eq!(data_ref, data_crash);
    let snap = job::load(&reference).await.unwrap();
    let mut customers: Vec<String> = snap.orders.iter().map(|o| o.customer.clone()).collect();
    customers.sort();
    customers.dedup();
    assert_eq!(customers.len(), 150);
    let (a, b) = (
        results(&reference, &customers).await,
        results(&crashed, &customers).await,
    );
    assert!(
        a.iter().filter(|(_, v)| v.is_some()).count() > customers.len() * 6,
        "results were published"
    );
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }
    let _ = reference.flush_prefix().await;
    let _ = crashed.flush_prefix().await;
}
