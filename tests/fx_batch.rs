//! The FX job commits a pass's conversions together (issue 18): the embedded store in one
//! transaction, Redis in scripts of up to 50 orders. Each order's conversions must be chained
//! as if committed one by one, including a later revision of an order in the same batch that
//! supersedes the earlier one. Checked on both stores against one-by-one commits, and with
//! `fx verify`.

mod common;

use chrono::Utc;
use common::*;
use crossgate::fx::FxJob;
use crossgate::model::Record;
use crossgate::store::{Disposition, Store};

/// An app order dated 2017-02-01 (the ECB fixture's days), JPY `total` with one line.
fn order(external_id: &str, updated_at: &str, total: &str) -> Record {
    let mut o = stored_app_order("app", external_id, updated_at);
    o.placed_at = "2017-02-01T10:00:00+09:00".parse().unwrap();
    let jpy = |a: &str| {
        serde_json::from_value(serde_json::json!({"amount": a, "currency": "JPY"})).unwrap()
    };
    o.taxes_included = false;
    o.lines.truncate(1);
    o.lines[0].quantity = 1;
    o.lines[0].unit_price = jpy(total);
    o.lines[0].discount = jpy("0");
    o.lines[0].tax = jpy("0");
    o.totals.subtotal = jpy(total);
    o.totals.shipping = jpy("0");
    o.totals.discount = jpy("0");
    o.totals.tax = jpy("0");
    o.totals.grand_total = jpy(total);
    o.payments.clear();
    Record::Order(Box::new(o))
}

/// What must not depend on how the entries were committed (times and hashes do).
type Shape = (u64, String, String, String, String, Option<u64>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batched_pass_chains_as_one_by_one_would() {
    let ecb =
        std::fs::read(repo().join("../shared/fixtures/fx-ecb/eurofxref-hist-90d-2017-03-03.xml"))
            .unwrap();
    for backend in Backend::all() {
        let mut shapes: Vec<Vec<Shape>> = Vec::new();
        for batched in [true, false] {
            let tc = test_config(backend, &redis_url(), "");
            let (store, _) = crossgate::backend::open(&tc.config.store).await.unwrap();
            let got = crossgate::with_store!(&store, s => {
                use crossgate::fx::store::FxStore;
                let doc = crossgate::fx::document(crossgate::fx::rates::RateSource::Ecb, "t", &ecb, Utc::now()).unwrap();
                s.fx_put_doc(doc).await.unwrap();
                // A, B, then a later revision of A with another amount, in one batch.
                let records = [
                    order("FXB-A", "2017-02-01T10:00:00+09:00", "10000"),
                    order("FXB-B", "2017-02-01T10:00:00+09:00", "5000"),
                    order("FXB-A", "2017-02-01T11:00:00+09:00", "12000"),
                ];
                for (n, rec) in records.into_iter().enumerate() {
                    s.ingest(raw_delivery("app", &format!("fx-batch-{n}")), Disposition::Apply(vec![rec])).await.unwrap();
                }
                let job = FxJob::new(s, tc.config.fx.clone()).await.unwrap();
                if batched {
                    assert_eq!(job.pass(s, 100).await.unwrap().events, 3);
                } else {
                    for e in s.read_events("one-by-one", "t", 100).await.unwrap() {
                        if let Record::Order(o) = &e.event.record {
                            job.convert(s, o).await.unwrap();
                        }
                    }
                }
                let check = crossgate::fx::verify_log(s).await.unwrap();
                assert!(check.findings.is_empty(), "{backend:?}: {:?}", check.findings);
                let log = crossgate::fx::read_log(s).await.unwrap();
                let seq_of: std::collections::HashMap<String, u64> =
                    log.iter().map(|e| (e.id.clone(), e.seq)).collect();
                log.iter()
                    .map(|e| {
                        (
                            e.seq,
                            e.order_id.clone(),
                            e.part.clone(),
                            e.from.to_string(),
                            e.to.to_string(),
                            e.supersedes.as_ref().map(|id| seq_of[id]),
                        )
                    })
                    .collect::<Vec<Shape>>()
            });
            shapes.push(got);
        }
        assert_eq!(shapes[0], shapes[1], "{backend:?}: batched vs one by one");
        assert!(
            shapes[0].iter().any(|s| s.5.is_some()),
            "{backend:?}: A's second revision supersedes its first: {:?}",
            shapes[0]
        );
    }
}
