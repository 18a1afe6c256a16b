//! FX over real HTTP on both stores: ECB rates loaded from the real fixtures, orders converted
//! at the rate in force when they were placed (a Saturday uses Friday's), a missing rate holds
//! the order until rates arrive, the log is exactly one entry per conversion (with re-deliveries
//! and revisions), its CSV export sums to the converted totals, and tampering is detected.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use common::*;
use crossgate::model::OrderId;
use rust_decimal::Decimal;
use serde_json::{Value, json};

fn ecb_90d() -> Vec<u8> {
    fixture("fx-ecb/eurofxref-hist-90d-2017-03-03.xml")
}

async fn load_rates(c: &reqwest::Client, gw: &Gateway, body: &[u8]) -> Value {
    let r = c
        .post(gw.url("/v1/fx/rates?source=ecb&origin=test"))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    r.json().await.unwrap()
}

/// An app order (JPY 10,760 grand total) placed at `placed_at`.
fn order(id: &str, placed_at: &str, updated_at: &str) -> Value {
    let mut o = app_order(id, updated_at);
    o["placed_at"] = json!(placed_at);
    o
}

async fn post_order(c: &reqwest::Client, gw: &Gateway, o: &Value, msg: &str) {
    let body = serde_json::to_vec(o).unwrap();
    let r = post(c, &gw.url("/webhooks/app"), &body, &app_headers(&body, msg)).await;
    assert!(r.status == 200, "{}", r.text);
}

async fn fx_view(c: &reqwest::Client, gw: &Gateway, id: &OrderId, want: &str) -> Value {
    for _ in 0..200 {
        let r = get(c, &gw.url(&format!("/v1/orders/{}/fx", id.as_str()))).await;
        if r.status == 200 && r.body["status"] == want {
            return r.body;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("order {id} never reached FX status {want}");
}

fn dec(v: &Value) -> Decimal {
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_convert_at_the_rate_of_their_day() {
    for backend in Backend::all() {
        let gw = Gateway::start(test_config(backend, &redis_url(), "")).await;
        let c = http();
        let r = load_rates(&c, &gw, &ecb_90d()).await;
        assert_eq!(r["days"], 64);

        // Placed on Saturday 2017-03-04 (10:00 in Tokyo is 02:00 in Frankfurt): Friday's rates,
        // JPY 120.83 and CNY 7.2872 per EUR.
        post_order(
            &c,
            &gw,
            &order(
                "FX-SAT",
                "2017-03-04T10:00:00+09:00",
                "2017-03-04T10:00:00+09:00",
            ),
            "fx-sat",
        )
        .await;
        let v = fx_view(&c, &gw, &OrderId::derive("app", "FX-SAT"), "converted").await;
        let eur = &v["reporting"]["EUR"]["totals"]["grand_total"];
        let cny = &v["reporting"]["CNY"]["totals"]["grand_total"];
        // 10760 / 120.83 = 89.0507… → 89.05; 10760 × 7.2872 / 120.83 = 648.931… → 648.93.
        assert_eq!(
            eur,
            &json!({"amount": "89.05", "currency": "EUR"}),
            "{backend:?}: {v}"
        );
        assert_eq!(
            cny,
            &json!({"amount": "648.93", "currency": "CNY"}),
            "{backend:?}: {v}"
        );
        let log = get(&c, &gw.url("/v1/fx/log?order=o.app.x")).await;
        assert_eq!(log.status, 200);
        let log = get(
            &c,
            &gw.url(&format!(
                "/v1/fx/log?parts=all&order={}",
                OrderId::derive("app", "FX-SAT").as_str()
            )),
        )
        .await;
        let items = log.body["items"].as_array().unwrap();
        // 5 totals + 2 lines, in 2 currencies.
        assert_eq!(items.len(), 14, "{}", log.text);
        let gt = items
            .iter()
            .find(|e| e["part"] == "total.grand_total" && e["to"]["currency"] == "EUR")
            .unwrap();
        assert_eq!(gt["rate_date"], "2017-03-03");
        assert_eq!(gt["from_leg"]["source"], "ecb");
        assert_eq!(gt["from_leg"]["per_eur"], "120.83");
        assert_eq!(gt["rounding"], "half_up:2");
        assert_eq!(
            gt["from_leg"]["doc_hash"].as_str().unwrap(),
            crossgate::fx::rates::sha256_hex(&ecb_90d())
        );

        // Placed a week after the file's last day: beyond the 4-day maximum age. Held.
        post_order(
            &c,
            &gw,
            &order(
                "FX-LATE",
                "2017-03-10T12:00:00+01:00",
                "2017-03-10T12:00:00+01:00",
            ),
            "fx-late",
        )
        .await;
        let id = OrderId::derive("app", "FX-LATE");
        let v = fx_view(&c, &gw, &id, "fx_pending").await;
        assert!(v["missing"][0].as_str().unwrap().contains("JPY"), "{v}");
        let o = get(&c, &gw.url(&format!("/v1/orders/{}", id.as_str())))
            .await
            .body;
        assert_eq!(o["holds"][0]["kind"], "fx_pending");
        assert!(
            o["totals"]["grand_total"]["amount"] == "10760",
            "the order itself is untouched"
        );

        // Rates for 2017-03-09 arrive (a one-day document, built here in the ECB format from
        // the 03-03 values): the waiting order is converted without anyone asking.
        let text = String::from_utf8(ecb_90d()).unwrap();
        let start = text.find("<Cube time=\"2017-03-03\">").unwrap();
        let end = start + text[start..].find("</Cube>").unwrap() + "</Cube>".len();
        let day = text[start..end].replace("2017-03-03", "2017-03-09");
        let doc = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><gesmes:Envelope xmlns:gesmes=\"http://www.gesmes.org/xml/2002-08-01\" xmlns=\"http://www.ecb.int/vocabulary/2002-08-01/eurofxref\"><Cube>{day}</Cube></gesmes:Envelope>"
        );
        load_rates(&c, &gw, doc.as_bytes()).await;
        let v = fx_view(&c, &gw, &id, "converted").await;
        assert_eq!(
            v["reporting"]["EUR"]["totals"]["grand_total"]["amount"],
            "89.05"
        );
        let o = get(&c, &gw.url(&format!("/v1/orders/{}", id.as_str())))
            .await
            .body;
        assert!(o["holds"].as_array().is_none_or(|h| h.is_empty()), "{o}");

        let v = get(&c, &gw.url("/v1/fx/verify")).await.body;
        assert_eq!(v["findings"], json!([]), "{v}");
        assert_eq!(v["entries"], 28);
        gw.stop().await;
    }
}

/// The daily report counts orders and adds their grand totals (not every part of each order):
/// per pair, 1,000 orders and exactly the converted grand totals.
async fn report_adds_up(c: &reqwest::Client, gw: &Gateway, view_sum: &BTreeMap<String, Decimal>) {
    let report = get(c, &gw.url("/v1/fx/report?date=2017-02-15")).await;
    assert_eq!(report.status, 200, "{}", report.text);
    for cur in ["EUR", "CNY"] {
        let pair = report.body["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["from"] == "JPY" && p["to"] == cur)
            .unwrap_or_else(|| panic!("no JPY/{cur} in {}", report.text));
        assert_eq!(pair["count"], 1000, "{pair}");
        assert_eq!(dec(&pair["to_sum"]), view_sum[cur], "{cur}: {pair}");
    }
    // A range around the day, revalued at a chosen later day: the same orders and sums, and
    // the revaluation is the sum over orders of (grand total at 2017-03-03's rates − as
    // converted), each rounded like the conversion.
    let range = get(
        c,
        &gw.url("/v1/fx/report?from=2017-02-13&to=2017-02-17&revalue_at=2017-03-03"),
    )
    .await;
    assert_eq!(range.status, 200, "{}", range.text);
    let pair = range.body["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["from"] == "JPY" && p["to"] == "EUR")
        .unwrap()
        .clone();
    assert_eq!(pair["count"], 1000, "{pair}");
    assert_eq!(dec(&pair["to_sum"]), view_sum["EUR"]);
    assert_eq!(pair["revalued_at"], "2017-03-03");
    // 900 orders of JPY 10,760 and 100 of JPY 10,860 at JPY 120.83 per EUR (2017-03-03).
    let at_march =
        Decimal::from(900) * Decimal::new(8905, 2) + Decimal::from(100) * Decimal::new(8988, 2);
    assert_eq!(
        dec(&pair["revaluation"]),
        at_march - view_sum["EUR"],
        "{pair}"
    );
    let bad = get(c, &gw.url("/v1/fx/report?from=2017-02-17&to=2017-02-13")).await;
    assert_eq!(bad.status, 400, "{}", bad.text);
}

/// 1,000 orders, 100 re-deliveries, 100 revisions with new amounts and 50 without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_entry_per_conversion_and_the_export_adds_up() {
    for backend in Backend::all() {
        let gw = Gateway::start(test_config(backend, &redis_url(), "")).await;
        let c = http();
        load_rates(&c, &gw, &ecb_90d()).await;
        let placed = "2017-02-15T11:00:00+01:00";
        let mut sends: Vec<(Value, String)> = Vec::new();
        for i in 0..1000 {
            sends.push((
                order(&format!("E-{i}"), placed, "2017-02-15T11:00:00+01:00"),
                format!("e-{i}"),
            ));
        }
        for i in 0..100 {
            sends.push((
                order(&format!("E-{i}"), placed, "2017-02-15T11:00:00+01:00"),
                format!("e-{i}"),
            ));
        }
        for i in 100..200 {
            // A later revision: shipping and grand total up by JPY 100.
            let mut o = order(&format!("E-{i}"), placed, "2017-02-16T11:00:00+01:00");
            o["totals"]["shipping"]["amount"] = json!("900");
            o["totals"]["grand_total"]["amount"] = json!("10860");
            sends.push((o, format!("e-{i}-rev")));
        }
        for i in 200..250 {
            // A later revision with the same amounts (a status change).
            let mut o = order(&format!("E-{i}"), placed, "2017-02-16T11:00:00+01:00");
            o["status"] = json!("fulfilled");
            sends.push((o, format!("e-{i}-rev")));
        }
        let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
        let mut tasks = Vec::new();
        // Revisions go after their originals (the originals are sent first, in order).
        for (o, msg) in sends {
            let (c, url, permit) = (
                c.clone(),
                gw.url("/webhooks/app"),
                sem.clone().acquire_owned().await.unwrap(),
            );
            tasks.push(tokio::spawn(async move {
                let body = serde_json::to_vec(&o).unwrap();
                let r = post(&c, &url, &body, &app_headers(&body, &msg)).await;
                drop(permit);
                assert_eq!(r.status, 200, "{}", r.text);
            }));
            if tasks.len() == 1000 {
                for t in tasks.drain(..) {
                    t.await.unwrap();
                }
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        // Wait for the FX job to have converted every current revision.
        let mut entries: Vec<Value> = Vec::new();
        for _ in 0..600 {
            let csv = c
                .get(gw.url("/v1/fx/log?format=csv&parts=all"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let lines: Vec<&str> = csv.lines().collect();
            let header: Vec<&str> = lines[0].split(',').collect();
            entries = lines[1..]
                .iter()
                .map(|l| {
                    let cells: Vec<&str> = l.split(',').collect();
                    Value::Object(
                        header
                            .iter()
                            .zip(cells)
                            .map(|(h, v)| (h.to_string(), json!(v)))
                            .collect(),
                    )
                })
                .collect();
            // 1,000 × 7 parts × 2 currencies, plus the 100 revisions' 2 changed parts × 2.
            if entries.len() >= 14_000 + 400 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(entries.len(), 14_400, "{backend:?}");
        // Exactly one current entry per (order, part, currency).
        let mut current: HashMap<(String, String, String), u32> = HashMap::new();
        let mut superseded = 0;
        for e in &entries {
            if e["superseded_by"].as_str().unwrap().is_empty() {
                *current
                    .entry((
                        e["order_id"].as_str().unwrap().into(),
                        e["part"].as_str().unwrap().into(),
                        e["to_currency"].as_str().unwrap().into(),
                    ))
                    .or_default() += 1;
            } else {
                superseded += 1;
                // Only the revised amounts were superseded.
                let part = e["part"].as_str().unwrap();
                assert!(
                    part == "total.shipping" || part == "total.grand_total",
                    "{e}"
                );
            }
        }
        let dup: Vec<_> = current.iter().filter(|(_, n)| **n != 1).take(3).collect();
        assert!(
            dup.is_empty(),
            "{backend:?}: {dup:?} {:?}",
            entries
                .iter()
                .filter(|e| {
                    dup.first().is_some_and(|d| {
                        e["order_id"] == d.0.0.as_str() && e["part"] == d.0.1.as_str()
                    })
                })
                .collect::<Vec<_>>()
        );
        assert_eq!(current.len(), 14_000);
        assert_eq!(superseded, 400);
        // The export's current grand totals sum to the orders' converted grand totals.
        let mut export_sum: BTreeMap<String, Decimal> = BTreeMap::new();
        for e in entries.iter().filter(|e| {
            e["part"] == "total.grand_total" && e["superseded_by"].as_str().unwrap().is_empty()
        }) {
            *export_sum
                .entry(e["to_currency"].as_str().unwrap().into())
                .or_default() += dec(&e["to_amount"]);
        }
        let mut view_sum: BTreeMap<String, Decimal> = BTreeMap::new();
        for i in 0..1000 {
            let v = get(
                &c,
                &gw.url(&format!(
                    "/v1/orders/{}/fx",
                    OrderId::derive("app", &format!("E-{i}")).as_str()
                )),
            )
            .await
            .body;
            for cur in ["EUR", "CNY"] {
                *view_sum.entry(cur.into()).or_default() +=
                    dec(&v["reporting"][cur]["totals"]["grand_total"]["amount"]);
            }
        }
        assert_eq!(export_sum, view_sum);
        report_adds_up(&c, &gw, &view_sum).await;
        let v = get(&c, &gw.url("/v1/fx/verify")).await.body;
        assert_eq!(v["findings"], json!([]));
        gw.stop().await;
    }
}
