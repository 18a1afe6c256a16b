//! The FX review index (what the console's FX review reads) against the log it is derived
//! from, on both stores: after conversions, revisions that supersede entries of an earlier
//! batch and of the same batch, and two replicas catching up at once, its totals equal the
//! report computed from the whole log, and its rows are exactly the export's grand totals.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use common::*;
use crossgate::backend::embedded::{EmbeddedOptions, EmbeddedStore};
use crossgate::backend::redis::{RedisOptions, RedisStore};
use crossgate::fx::log::{self, ReportRange};
use crossgate::fx::review::{self, Selection};
use crossgate::fx::{FxJob, FxSettings, LogFilter, Parts};
use crossgate::model::{CurrencyCode, Order, OrderId};
use serde_json::json;

/// An app order in `currency`, on `channel`, placed on February `day` 2017 (a revision
/// `rev`: a later revision may move the day, so its conversion supersedes the earlier one).
fn order(i: usize, currency: &str, channel: &str, day: u32, rev: u32) -> Order {
    let ext = format!("R-{i}");
    let text = serde_json::to_string(&app_order(&ext, &format!("2017-03-0{rev}T10:00:00Z")))
        .unwrap()
        .replace("\"JPY\"", &format!("\"{currency}\""));
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["placed_at"] = json!(format!("2017-02-{day:02}T11:00:00+01:00"));
    v["number"] = json!(format!("#{ext}"));
    v["id"] = json!(OrderId::derive(channel, &ext).as_str());
    v["instance"] = json!(channel);
    v["channel"] = json!(channel);
    v["channel_kind"] = json!("mobile_app");
    v["account"] = json!("acct");
    serde_json::from_value(v).unwrap()
}

const CURRENCIES: [&str; 3] = ["JPY", "USD", "GBP"];
const CHANNELS: [&str; 2] = ["app", "phone"];

fn first(i: usize) -> Order {
    order(
        i,
        CURRENCIES[i % 3],
        CHANNELS[i % 2],
        1 + (i % 20) as u32,
        1,
    )
}

fn revised(i: usize, rev: u32) -> Order {
    order(i, CURRENCIES[i % 3], CHANNELS[i % 2], 21 + rev, rev)
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2017, 2, d).unwrap()
}

async fn job<S: crossgate::backend::Stores>(store: &S) -> FxJob {
    let doc = crossgate::fx::document(
        crossgate::fx::rates::RateSource::Ecb,
        "test",
        &fixture("fx-ecb/eurofxref-hist-90d-2017-03-03.xml"),
        Utc::now(),
    )
    .unwrap();
    store.fx_put_doc(doc).await.unwrap();
    let settings = FxSettings {
        reporting: vec![
            CurrencyCode::parse("EUR").unwrap(),
            CurrencyCode::parse("CNY").unwrap(),
        ],
        ..FxSettings::default()
    };
    FxJob::new(store, Arc::new(settings)).await.unwrap()
}

/// The selections compared: the month, a week, each currency and channel, one order.
fn selections() -> Vec<Selection> {
    let sel =
        |from, to, currency: Option<&str>, channel: Option<&str>, order: Option<&str>| Selection {
            from: day(from),
            to: day(to),
            currency: currency.map(str::to_string),
            channel: channel.map(str::to_string),
            order: order.map(str::to_string),
        };
    vec![
        sel(1, 28, None, None, None),
        sel(3, 9, None, None, None),
        sel(1, 28, Some("USD"), None, None),
        sel(1, 28, Some("CNY"), Some("phone"), None),
        sel(1, 28, None, Some("app"), None),
        sel(1, 28, None, None, Some("R-4")),
        sel(1, 28, None, None, Some("#R-9")),
        sel(22, 28, Some("GBP"), None, None),
    ]
}

/// The index's totals and rows for every selection equal what the whole log says.
async fn agrees_with_the_log<S: crossgate::backend::Stores>(store: &S, book_job: &FxJob) {
    let entries = crossgate::fx::read_log(store).await.unwrap();
    let superseded = log::superseded_by(&entries);
    for (i, sel) in selections().into_iter().enumerate() {
        let filter = LogFilter {
            from: Some(sel.from),
            to: Some(sel.to),
            currency: sel.currency.clone(),
            channel: sel.channel.clone(),
            order: sel.order.clone(),
            parts: Parts::GrandTotal,
            ..LogFilter::default()
        };
        let selected: Vec<_> = entries.iter().filter(|e| filter.matches(e)).collect();
        let current = selected
            .iter()
            .copied()
            .filter(|e| !superseded.contains_key(&e.id));
        let range = ReportRange {
            from: sel.from,
            to: sel.to,
            revalue_at: None,
        };
        let mut want = log::report_of(current, &range, book_job.book());
        for p in &mut want {
            p.revaluation = rust_decimal::Decimal::ZERO;
            p.revalued_at = None;
        }
        let got = review::totals(store, &sel).await.unwrap();
        assert!(i > 0 || !want.is_empty(), "the month selects something");
        assert_eq!(got.pairs, want, "{sel:?}");
        assert_eq!(got.rows, selected.len() as u64, "{sel:?}");
        let rows = review::scan_rows(store, &sel, usize::MAX).await.unwrap();
        let mut from_rows: Vec<(u64, bool)> = rows.iter().map(|r| (r.seq, r.superseded)).collect();
        from_rows.sort_unstable();
        let from_log: Vec<(u64, bool)> = selected
            .iter()
            .map(|e| (e.seq, superseded.contains_key(&e.id)))
            .collect();
        assert_eq!(from_rows, from_log, "{sel:?}");
        let by_date: Vec<NaiveDate> = rows.iter().map(|r| r.rate_date).collect();
        assert!(by_date.is_sorted(), "rows come in rate-date order");
        let used: BTreeMap<_, _> = got.used.iter().map(|(k, v)| (k.clone(), v.len())).collect();
        assert!(used.values().all(|days| *days > 0), "{used:?}");
    }
}

async fn index_follows_the_log<S: crossgate::backend::Stores>(store: &S) {
    let job = job(store).await;
    for i in 0..40 {
        job.convert(store, &first(i)).await.unwrap();
    }
    let head = store.fx_head().await.unwrap().seq;
    let c = review::catch_up(store, usize::MAX).await.unwrap();
    assert_eq!((c.upto, c.head), (head, head));
    assert!(c.complete());
    agrees_with_the_log(store, &job).await;

    // Revisions: orders 0..10 once (superseding entries of the batch above), orders 10..15
    // twice before the index catches up (the second supersedes the first in the same batch).
    for i in 0..15 {
        job.convert(store, &revised(i, 2)).await.unwrap();
    }
    for i in 10..15 {
        job.convert(store, &revised(i, 3)).await.unwrap();
    }
    let behind = review::catch_up(store, 0).await.unwrap();
    assert!(!behind.complete(), "no batch applied yet: {behind:?}");
    review::catch_up(store, usize::MAX).await.unwrap();
    agrees_with_the_log(store, &job).await;
    let month = review::totals(store, &selections()[0]).await.unwrap();
    let current: u64 = month.pairs.iter().map(|p| p.count).sum();
    // 40 orders × 2 reporting currencies current; 15 + 5 revisions × 2 superseded.
    assert_eq!(
        (month.rows, current),
        (120, 80),
        "superseded rows are kept, not counted"
    );

    // Two replicas catch up at once: each batch is applied exactly once.
    for i in 40..60 {
        job.convert(store, &first(i)).await.unwrap();
    }
    for i in 15..20 {
        job.convert(store, &revised(i, 2)).await.unwrap();
    }
    let (a, b) = tokio::join!(
        review::catch_up(store, usize::MAX),
        review::catch_up(store, usize::MAX)
    );
    assert!(a.unwrap().complete() || b.unwrap().complete());
    let c = review::catch_up(store, usize::MAX).await.unwrap();
    assert_eq!(c.upto, store.fx_head().await.unwrap().seq);
    agrees_with_the_log(store, &job).await;
}

#[tokio::test]
async fn the_embedded_review_index_agrees_with_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(
        &dir.path().join("r.redb"),
        EmbeddedOptions {
            dedupe_ttl: std::time::Duration::from_secs(3600),
            raw_retention: std::time::Duration::from_secs(3600),
            cache_bytes: 32 << 20,
        },
    )
    .unwrap();
    index_follows_the_log(&store).await;
}

#[tokio::test]
async fn the_redis_review_index_agrees_with_the_log() {
    let (store, _) = RedisStore::connect(RedisOptions {
        target: crossgate::backend::redis::Target::Node(redis_url()),
        prefix: unique_prefix("review"),
        timeout: std::time::Duration::from_secs(2),
        instances: CHANNELS.iter().map(|c| c.to_string()).collect(),
        ..Default::default()
    })
    .await
    .expect("a Redis server must answer at CROSSGATE_TEST_REDIS_URL or 127.0.0.1:6379");
    index_follows_the_log(&store).await;
    store.flush_prefix().await.unwrap();
}
