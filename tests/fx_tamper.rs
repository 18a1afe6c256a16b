//! The FX log is tamper-evident: changing a stored entry, deleting one or swapping two makes
//! `fx verify` fail and name the entry (library and the real binary, on Redis).

mod common;

use common::*;
use crossgate::backend::redis::{RedisOptions, RedisStore};
use crossgate::fx::store::FxStore;
use crossgate::fx::{FxJob, FxSettings};
use crossgate::model::Order;
use crossgate::store::Store;

fn order(external_id: &str) -> Order {
    let mut o = stored_app_order("shop", external_id, "2017-02-15T11:00:00+01:00");
    o.placed_at = "2017-02-15T11:00:00+01:00".parse().unwrap();
    o
}

async fn hget(r: &mut redis::aio::MultiplexedConnection, key: &str, seq: u64) -> String {
    redis::cmd("HGET")
        .arg(key)
        .arg(format!("{seq:020}"))
        .query_async(r)
        .await
        .unwrap()
}

async fn hset(r: &mut redis::aio::MultiplexedConnection, key: &str, seq: u64, v: &str) {
    let _: i64 = redis::cmd("HSET")
        .arg(key)
        .arg(format!("{seq:020}"))
        .arg(v)
        .query_async(r)
        .await
        .unwrap();
}

fn named(findings: &[crossgate::fx::log::Finding], entry: &str) -> bool {
    findings.iter().any(|f| f.entry == entry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_deleted_or_reordered_entries_are_named() {
    let prefix = unique_prefix("fxt");
    let (store, _) = RedisStore::connect(RedisOptions {
        target: crossgate::backend::redis::Target::Node(redis_url()),
        prefix: prefix.clone(),
        timeout: std::time::Duration::from_secs(2),
        require_fsync: false,
        dedupe_ttl: std::time::Duration::from_secs(3600),
        raw_retention: std::time::Duration::from_secs(3600),
        instances: vec!["shop".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let doc = crossgate::fx::document(
        crossgate::fx::rates::RateSource::Ecb,
        "fixture",
        &fixture("fx-ecb/eurofxref-hist-90d-2017-03-03.xml"),
        chrono::Utc::now(),
    )
    .unwrap();
    store.fx_put_doc(doc).await.unwrap();
    let job = FxJob::new(&store, std::sync::Arc::new(FxSettings::default()))
        .await
        .unwrap();
    for i in 0..3 {
        // Stored first, as every order the daemon converts is: `fx verify` checks each
        // conversion against its order.
        let o = order(&format!("T-{i}"));
        let delivery = crossgate::pipeline::Arrival::new(
            crossgate::store::DeliverySource::Webhook,
            format!("t-{i}"),
            Some("orders/create".into()),
        )
        .delivery("shop", b"{}".to_vec(), chrono::Utc::now());
        store
            .ingest(
                delivery,
                crossgate::store::Disposition::Apply(vec![crossgate::model::Record::Order(
                    Box::new(o.clone()),
                )]),
            )
            .await
            .unwrap();
        job.convert(&store, &o).await.unwrap();
    }
    let v = crossgate::fx::verify_log(&store).await.unwrap();
    assert_eq!(v.entries, 21, "3 orders × 7 parts × EUR");
    assert!(v.findings.is_empty(), "{:?}", v.findings);

    let client = redis::Client::open(redis_url()).unwrap();
    let mut r = client.get_multiplexed_async_connection().await.unwrap();
    let log = format!("{prefix}:{{fx}}:log");

    // 1. An amount changed.
    let original = hget(&mut r, &log, 5).await;
    let mut e: serde_json::Value = serde_json::from_str(&original).unwrap();
    e["to"]["amount"] = "99.99".into();
    hset(&mut r, &log, 5, &e.to_string()).await;
    let v = crossgate::fx::verify_log(&store).await.unwrap();
    assert!(named(&v.findings, "fx.5"), "{:?}", v.findings);
    // The same change with the hash recomputed: the chain after it breaks, and the amount
    // no longer follows from the stored rates.
    let mut forged: crossgate::fx::log::FxEntry = serde_json::from_value(e.clone()).unwrap();
    forged.hash = forged.compute_hash();
    hset(&mut r, &log, 5, &serde_json::to_string(&forged).unwrap()).await;
    let v = crossgate::fx::verify_log(&store).await.unwrap();
    assert!(
        v.findings
            .iter()
            .any(|f| f.entry == "fx.5" && f.problem.contains("recomputed")),
        "{:?}",
        v.findings
    );
    assert!(named(&v.findings, "fx.6"), "{:?}", v.findings);
    hset(&mut r, &log, 5, &original).await;
    assert!(
        crossgate::fx::verify_log(&store)
            .await
            .unwrap()
            .findings
            .is_empty()
    );

    // 2. An entry deleted.
    let _: i64 = redis::cmd("HDEL")
        .arg(&log)
        .arg(format!("{:020}", 8))
        .query_async(&mut r)
        .await
        .unwrap();
    let v = crossgate::fx::verify_log(&store).await.unwrap();
    assert!(
        v.findings
            .iter()
            .any(|f| f.entry == "fx.9" && f.problem.contains("fx.8")),
        "{:?}",
        v.findings
    );
    // The last one deleted: the head notices.
    let last = hget(&mut r, &log, 21).await;
    let _: i64 = redis::cmd("HDEL")
        .arg(&log)
        .arg(format!("{:020}", 21))
        .query_async(&mut r)
        .await
        .unwrap();
    let v = crossgate::fx::verify_log(&store).await.unwrap();
    assert!(named(&v.findings, "fx.21"), "{:?}", v.findings);
    hset(&mut r, &log, 21, &last).await;
    // fx.8 stays deleted: the binary below must name it as well.

    // 3. Two entries swapped, through the real binary.
    let a = hget(&mut r, &log, 2).await;
    let b = hget(&mut r, &log, 3).await;
    hset(&mut r, &log, 2, &b).await;
    hset(&mut r, &log, 3, &a).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = cli_redis_config(dir.path(), &prefix);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crossgate"))
        .arg("--config")
        .arg(&cfg)
        .args(["fx", "verify"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("fx.2:") && text.contains("fx.3:"), "{text}");
    assert!(
        text.contains("fx.8"),
        "the deleted entry is named too: {text}"
    );
    store.flush_prefix().await.unwrap();
}
