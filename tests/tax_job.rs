//! The tax job stores a pass's quotes in one commit per batch (issue 18). A buyer's China CBEC
//! annual total depends on their earlier orders, so a batch must give every order the quote it
//! would get if the orders were quoted and stored one by one: checked on both stores with
//! seven CNY 4,000 orders of one buyer (the seventh passes the CNY 26,000 annual limit) mixed
//! with other buyers' orders.

mod common;

use std::sync::Arc;

use common::*;
use crossgate::model::{OrderId, Record};
use crossgate::store::{Disposition, Store};
use crossgate::tax::store::TaxStore;
use crossgate::tax::{SellerSettings, ShipMode, TaxJob, TaxSettings};

fn cbec_order(external_id: &str, buyer: &str) -> Record {
    let mut o = stored_app_order("app", external_id, "2025-05-01T10:00:00+08:00");
    let cny = |a: &str| {
        serde_json::from_value(serde_json::json!({"amount": a, "currency": "CNY"})).unwrap()
    };
    o.currency = serde_json::from_value(serde_json::json!("CNY")).unwrap();
    o.taxes_included = false;
    o.placed_at = "2025-05-01T10:00:00+08:00".parse().unwrap();
    if let Some(a) = o.shipping_address.as_mut() {
        a.country = crossgate::model::CountryCode::parse("CN").unwrap();
    }
    o.customer.as_mut().unwrap().key = Some(buyer.into());
    o.lines.truncate(1);
    let line = &mut o.lines[0];
    line.quantity = 1;
    line.unit_price = cny("4000.00");
    line.discount = cny("0");
    line.tax = cny("0");
    line.hs_code = Some("6109100010".into());
    o.totals.subtotal = cny("4000.00");
    o.totals.shipping = cny("0");
    o.totals.discount = cny("0");
    o.totals.tax = cny("0");
    o.totals.grand_total = cny("4000.00");
    o.payments.clear();
    Record::Order(Box::new(o))
}

/// (order id, status, regime, tax total) of every quote, by order id.
async fn quotes<S: TaxStore>(store: &S, ids: &[OrderId]) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for id in ids {
        let q = store.tax_quote(id.as_str()).await.unwrap().expect("quoted");
        out.push((
            q.order_id.clone(),
            format!("{:?}", q.status),
            q.regime.clone().unwrap_or_default(),
            q.tax_total
                .map(|t| t.amount().to_string())
                .unwrap_or_default(),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batched_pass_quotes_as_one_by_one_would() {
    for backend in Backend::all() {
        let mut results = Vec::new();
        for batched in [true, false] {
            let tc = test_config(backend, &redis_url(), "");
            let settings = TaxSettings {
                packs: tc.config.tax.packs.clone(),
                seller: SellerSettings {
                    seller_country: Some("HK".into()),
                    ship_from: Some("HK".into()),
                    mode: ShipMode::Courier,
                },
                instances: Default::default(),
            };
            let job = TaxJob::new(Arc::new(settings), 4);
            let (store, _) = crossgate::backend::open(&tc.config.store).await.unwrap();
            let mut ids = Vec::new();
            for n in 0..10 {
                // Buyer A on every order but the 3rd, 6th and 9th, which are buyer B's.
                let buyer = if n % 3 == 2 { "c.buyer-b" } else { "c.buyer-a" };
                let ext = format!("CBEC-{n}");
                ids.push(OrderId::derive("app", &ext));
                let rec = cbec_order(&ext, buyer);
                crossgate::with_store!(&store, s => s.ingest(raw_delivery("app", &format!("cbec-{n}")), Disposition::Apply(vec![rec])).await)
                    .unwrap();
            }
            let got = crossgate::with_store!(&store, s => {
                if batched {
                    let (read, quoted) = job.pass(s, 100).await.unwrap();
                    assert_eq!((read, quoted), (10, 10));
                } else {
                    for id in &ids {
                        let o = s.get_order(id).await.unwrap().unwrap();
                        job.quote(s, &o, &crossgate::fx::book::RateBook::new(Vec::new(), 4))
                            .await
                            .unwrap();
                    }
                }
                quotes(s, &ids).await
            });
            results.push(got);
        }
        assert_eq!(results[0], results[1], "{backend:?}: batched vs one by one");
        // Buyer A's 7th order (CBEC-9) passes CNY 26,000 (6 × 4,000 before it): not CBEC.
        let regimes: Vec<&str> = results[0].iter().map(|q| q.2.as_str()).collect();
        assert_eq!(regimes[0], "CN_CBEC", "{backend:?}: {regimes:?}");
        assert_ne!(regimes[9], "CN_CBEC", "{backend:?}: {:?}", results[0]);
    }
}
