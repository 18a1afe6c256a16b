//! Recommendations and rankings end to end, on both stores: orders pushed by the app's signed
//! webhook and a listing submitted through the API go through the event stream into the jobs;
//! the results are served over HTTP on loopback.

mod common;

use common::*;
use crossgate::fx::store::FxStore;
use crossgate::reco::job::{self, Quiet, Which};
use crossgate::reco::rank;
use serde_json::{Value, json};

/// (order id, buyer's email, [(sku, unit price in JPY)]).
type Basket<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// Inside the ECB fixture's 90 days.
const PLACED: &str = "2017-03-01T19:03:11+09:00";

/// An app order by `email` for `skus` (quantity 2 each, unit price from the list).
fn order(id: &str, email: &str, skus: &[(&str, &str)]) -> Vec<u8> {
    let mut o = app_order(id, PLACED);
    o["placed_at"] = json!(PLACED);
    o["customer"] = json!({"email": email});
    let template = o["lines"][0].clone();
    let mut subtotal = 0i64;
    o["lines"] = skus
        .iter()
        .enumerate()
        .map(|(i, (sku, price))| {
            let mut l = template.clone();
            l["line_id"] = json!((i + 1).to_string());
            l["sku"] = json!(sku);
            l["title"] = json!(format!("{sku} item"));
            l["unit_price"] = json!({"amount": price, "currency": "JPY"});
            l["tax"] = json!({"amount": "0", "currency": "JPY"});
            subtotal += 2 * price.parse::<i64>().unwrap();
            l
        })
        .collect();
    o["totals"] = json!({
        "subtotal": {"amount": subtotal.to_string(), "currency": "JPY"},
        "shipping": {"amount": "0", "currency": "JPY"},
        "discount": {"amount": "0", "currency": "JPY"},
        "tax": {"amount": "0", "currency": "JPY"},
        "grand_total": {"amount": subtotal.to_string(), "currency": "JPY"},
    });
    o.as_object_mut().unwrap().remove("payments");
    serde_json::to_vec(&o).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_results_are_served_over_http() {
    for backend in Backend::all() {
        let gw = Gateway::start(test_config(backend, &redis_url(), "")).await;
        let c = http();
        // Real ECB rates (JPY orders are ranked by revenue and price in EUR).
        let ecb = shared_fixtures().join("fx-ecb/eurofxref-hist-90d-2017-03-03.xml");
        let doc = crossgate::fx::read_document(
            crossgate::fx::rates::RateSource::Ecb,
            ecb.to_str().unwrap(),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        let book = crossgate::fx::book::RateBook::new(vec![doc.clone()], 4);
        crossgate::with_store!(&gw.store, s => s.fx_put_doc(doc).await).unwrap();
        let baskets: [Basket; 5] = [
            (
                "R-1",
                "a@example.com",
                &[("TEA", "2480"), ("CUP", "5500"), ("WHISK", "1800")],
            ),
            (
                "R-2",
                "b@example.com",
                &[("TEA", "2480"), ("CUP", "5500"), ("WHISK", "1800")],
            ),
            ("R-3", "c@example.com", &[("TEA", "2480"), ("CUP", "5500")]),
            ("R-4", "d@example.com", &[("SPOON", "600")]),
            ("R-5", "e@example.com", &[("TEA", "2480")]),
        ];
        for (id, email, skus) in baskets {
            let body = order(id, email, skus);
            let r = post(&c, &gw.url("/webhooks/app"), &body, &app_headers(&body, id)).await;
            assert_eq!(r.status, 200, "{backend:?} {id}: {:?}", r.body);
        }
        // A catalogue entry with ratings: 600 positive of 1,000.
        let listing = json!({
            "external_id": "L-WHISK",
            "revision": {"updated_at": "2024-05-01T00:00:00Z"},
            "sku": "WHISK",
            "title": "Bamboo matcha whisk",
            "category": "tea tools",
            "price": {"amount": "1500", "currency": "JPY"},
            "status": "active",
            "rating": {"count": 1000, "average": "3.9", "positive": 600},
        });
        let body = serde_json::to_vec(&listing).unwrap();
        let r = post(
            &c,
            &gw.url("/v1/instances/app/listings"),
            &body,
            &[("Content-Type".into(), "application/json".into())],
        )
        .await;
        assert_eq!(r.status, 200, "{backend:?}: {:?}", r.body);

        let settings = gw.config.jobs.clone();
        let which = Which {
            recommend: true,
            rank: true,
        };
        let report = crossgate::with_store!(&gw.store, s => job::run(s, &settings, &gw.config.fx, which, &Quiet).await)
            .unwrap();
        assert_eq!(report.orders, 5, "{backend:?}");
        assert_eq!(report.customers, 5);
        assert_eq!(report.items, 4);

        // Customer c bought tea and a cup, like a and b, who also bought the whisk.
        let key_c = crossgate::model::Customer {
            email: Some("c@example.com".into()),
            ..Default::default()
        }
        .derive_key(CUSTOMER_SALT.as_bytes())
        .unwrap();
        for strategy in ["item_knn", "user_knn", "blended"] {
            let r = get(
                &c,
                &gw.url(&format!(
                    "/v1/recommendations/{key_c}?k=1&strategy={strategy}"
                )),
            )
            .await;
            assert_eq!(r.status, 200, "{backend:?} {strategy}: {:?}", r.body);
            assert_eq!(
                r.body["items"][0]["item"], "WHISK",
                "{backend:?} {strategy}: {}",
                r.body
            );
            assert_eq!(r.body["fallback"], Value::Null);
        }
        // An unknown customer: most bought in their country, else overall.
        let r = get(&c, &gw.url("/v1/recommendations/c.unknown?k=2&country=jp")).await;
        assert_eq!(r.body["fallback"], "country", "{}", r.body);
        assert_eq!(r.body["items"][0]["item"], "TEA", "4 buyers: {}", r.body);
        let r = get(&c, &gw.url("/v1/recommendations/c.unknown?k=2&country=FR")).await;
        assert_eq!(r.body["fallback"], "popular");
        assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
        let r = get(&c, &gw.url("/v1/recommendations/c.unknown?strategy=magic")).await;
        assert_eq!(r.status, 400);
        assert!(r.body["detail"].as_str().unwrap().contains("strategy"));
        let r = get(&c, &gw.url("/v1/recommendations/c.unknown?k=0")).await;
        assert_eq!(r.status, 400);

        // Sales: TEA sold 2 units in each of 4 orders.
        let r = get(
            &c,
            &gw.url("/v1/rankings?by=sales&country=JP&channel=app&k=2"),
        )
        .await;
        assert_eq!(r.status, 200, "{backend:?}: {:?}", r.body);
        assert_eq!(r.body["items"][0]["item"], "TEA");
        assert_eq!(r.body["items"][0]["units"], 8);
        assert_eq!(r.body["currency"], "EUR");
        // Price, cheapest first: the spoon (order price), then the whisk's listing price.
        let r = get(&c, &gw.url("/v1/rankings?by=price&k=2")).await;
        let items: Vec<&str> = r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["item"].as_str().unwrap())
            .collect();
        assert_eq!(items, ["SPOON", "WHISK"], "{}", r.body);
        let eur = crossgate::model::CurrencyCode::parse("EUR").unwrap();
        let jpy = crossgate::model::CurrencyCode::parse("JPY").unwrap();
        let at = chrono::DateTime::parse_from_rfc3339(PLACED).unwrap();
        let spoon = book
            .convert(
                crossgate::model::Money::parse("600", jpy).unwrap(),
                eur,
                at,
                &Default::default(),
            )
            .unwrap();
        assert_eq!(
            r.body["items"][0]["price"]["amount"],
            spoon.to.amount().to_string()
        );
        assert_eq!(r.body["items"][0]["source"], "order");
        assert_eq!(r.body["items"][1]["source"], "listing");
        // Revenue in EUR: the cup's 4 units at JPY 5,500 in 3 orders.
        let r = get(&c, &gw.url("/v1/rankings?by=revenue&k=1")).await;
        assert_eq!(r.body["items"][0]["item"], "CUP", "{}", r.body);
        // Rating: the Wilson lower bound of 600/1000 is 0.5693.
        let r = get(&c, &gw.url("/v1/rankings?by=rating_wilson")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["items"][0]["item"], "WHISK");
        assert_eq!(r.body["items"][0]["wilson"], 0.5693);
        let w = r.body["items"][0]["score"].as_f64().unwrap();
        assert!((w - rank::wilson_lower_bound(600, 1000, rank::Z95)).abs() < 1e-12);
        let r = get(&c, &gw.url("/v1/rankings?by=sales&country=ZZ")).await;
        assert_eq!(r.status, 404);
        let r = get(&c, &gw.url("/v1/rankings?by=stars")).await;
        assert_eq!(r.status, 400);
        gw.stop().await;
    }
}
