//! Signature check and normalization of the 18 KB Shopify 2024-04 order: the CPU part of the
//! ingest path, without HTTP or storage; and normalize throughput per payload format (JSON,
//! XML, CSV) in time per order. Run: cargo bench --bench ingest

use std::path::Path;

use base64::Engine;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use crossgate::adapter::signature::hmac_sha256;
use crossgate::adapter::{Headers, RecordContext, Registry};
use crossgate::model::ChannelKind;

fn bench(c: &mut Criterion) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let body = std::fs::read(
        repo.join("../shared/fixtures/shopify/rest-2024-04-order-get-450789469.json"),
    )
    .expect("the shared fixtures are beside the repository");
    let registry = Registry::load_dir(&repo.join("adapters")).unwrap();
    let shopify = registry.get("shopify").unwrap().clone();
    let secret = "bench-secret";
    let sig =
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256(secret.as_bytes(), &[&body]));
    let mut headers = Headers::default();
    headers.push("X-Shopify-Hmac-Sha256", &sig);
    headers.push("X-Shopify-Topic", "orders/create");
    headers.push("X-Shopify-Webhook-Id", "bench");
    let settings = std::collections::BTreeMap::new();
    let ctx = RecordContext {
        instance: "bench",
        channel: "shopify",
        channel_kind: ChannelKind::WebShop,
        account: "bench.myshopify.com",
        settings: &settings,
        received_at: chrono::Utc::now(),
    };

    let mut g = c.benchmark_group("shopify_order_18kb");
    g.throughput(Throughput::Elements(1));
    g.bench_function("verify_signature", |b| {
        b.iter(|| {
            shopify
                .verify(&headers, &body, &|_: &str| vec![secret], 0)
                .unwrap()
        })
    });
    g.bench_function("parse_tree", |b| b.iter(|| shopify.parse(&body).unwrap()));
    g.bench_function("serde_json_value_parse_reference", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(&body).unwrap())
    });
    g.bench_function("normalize", |b| {
        b.iter(|| shopify.normalize(&headers, &body, &ctx).unwrap())
    });
    g.bench_function("verify_and_normalize", |b| {
        b.iter(|| {
            shopify
                .verify(&headers, &body, &|_: &str| vec![secret], 0)
                .unwrap();
            shopify.normalize(&headers, &body, &ctx).unwrap()
        })
    });
    g.finish();
}

/// Normalize per format, per order: real payloads (JSON Shopify and Amazon; XML PrestaShop,
/// eBay and Amazon MWS) and a generated phone CSV of 200 orders (400 rows).
fn per_format(c: &mut Criterion) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = |p: &str| std::fs::read(repo.join("../shared/fixtures").join(p)).unwrap();
    let registry = Registry::load_dir(&repo.join("adapters")).unwrap();
    let mut settings = std::collections::BTreeMap::new();
    settings.insert("currency".to_string(), "EUR".to_string());
    settings.insert("timezone".to_string(), "Europe/Paris".to_string());

    // The phone CSV: the fixture's good orders, repeated with new ids.
    let fixture =
        String::from_utf8(std::fs::read(repo.join("tests/fixtures/phone/orders.csv")).unwrap())
            .unwrap();
    let mut lines = fixture.lines();
    let header = lines.next().unwrap();
    let good: Vec<&str> = lines
        .filter(|l| l.starts_with("P-1001") || l.starts_with("P-1005"))
        .collect();
    let mut csv = format!("{header}\n");
    for i in 0..100 {
        for l in &good {
            csv.push_str(&l.replacen("P-100", &format!("B-{i:04}-"), 1));
            csv.push('\n');
        }
    }
    let cases: Vec<(&str, &str, Vec<u8>, u64)> = vec![
        (
            "json_shopify_order_18kb",
            "shopify",
            shared("shopify/rest-2024-04-order-get-450789469.json"),
            1,
        ),
        (
            "json_amazon_2026_order",
            "amazon_2026",
            shared("amazon/sp-api-2026-01-01-getOrder-example.json"),
            1,
        ),
        (
            "xml_prestashop_order",
            "prestashop",
            shared("prestashop/webservice-order-1.xml"),
            1,
        ),
        (
            "xml_ebay_getorders",
            "ebay",
            shared("ebay/trading-GetOrdersResponse-with-taxes.xml"),
            0,
        ),
        ("csv_phone_200_orders", "phone", csv.into_bytes(), 200),
    ];
    let mut g = c.benchmark_group("normalize_per_order");
    for (name, adapter, body, orders) in cases {
        let a = registry.get(adapter).unwrap().clone();
        let ctx = RecordContext {
            instance: "bench",
            channel: adapter,
            channel_kind: a.spec().channel_kind,
            account: "bench",
            settings: &settings,
            received_at: chrono::Utc::now(),
        };
        let doc = a.parse(&body).unwrap();
        let routed = a
            .map(&doc, crossgate::adapter::Target::Order, &ctx)
            .unwrap();
        let n = match routed {
            crossgate::adapter::Routed::Items(items) => {
                let ok = items.iter().filter(|i| i.result.is_ok()).count() as u64;
                assert!(ok > 0, "{name}: nothing maps");
                if orders > 0 {
                    assert_eq!(ok, orders, "{name}");
                }
                ok
            }
            _ => panic!("{name}"),
        };
        g.throughput(Throughput::Elements(n));
        g.bench_function(name, |b| {
            b.iter(|| {
                let doc = a.parse(&body).unwrap();
                a.map(&doc, crossgate::adapter::Target::Order, &ctx)
                    .unwrap()
            })
        });
    }
    g.finish();
}

/// Tax quotes per second for a 5-line order (EU import: duty by HS code and import VAT; and the
/// IOSS path with the flat duty).
fn tax_quote(c: &mut Criterion) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pack = crossgate::tax::Pack::parse(
        &std::fs::read_to_string(repo.join("config/rules/2026.11.toml")).unwrap(),
    )
    .unwrap();
    let book = crossgate::fx::book::RateBook::new(Vec::new(), 4);
    let ctx = crossgate::tax::QuoteContext {
        seller_country: Some("CN".into()),
        ..Default::default()
    };
    let mut g = c.benchmark_group("tax_quote_5_lines");
    for (name, price) in [("eu_import", "90.00"), ("eu_ioss", "10.00")] {
        let mut v: serde_json::Value = serde_json::from_slice(
            &std::fs::read(repo.join("tests/fixtures/quote/order-de-tshirts.json")).unwrap(),
        )
        .unwrap();
        let line = v["lines"][0].clone();
        let mut lines = Vec::new();
        for (i, hs) in [
            "6109100010",
            "8517130000",
            "8471300000",
            "6912001000",
            "6109100010",
        ]
        .iter()
        .enumerate()
        {
            let mut l = line.clone();
            l["hs_code"] = (*hs).into();
            l["sku"] = format!("S-{i}").into();
            l["quantity"] = 1.into();
            l["unit_price"]["amount"] = price.into();
            lines.push(l);
        }
        v["lines"] = lines.into();
        let order = crossgate::tax::order_from_json(&serde_json::to_vec(&v).unwrap()).unwrap();
        let q = crossgate::tax::engine::quote(&order, &pack, &book, &ctx);
        assert_eq!(
            q.status,
            crossgate::tax::QuoteStatus::Quoted,
            "{:?}",
            q.missing
        );
        g.throughput(Throughput::Elements(1));
        g.bench_function(name, |b| {
            b.iter(|| crossgate::tax::engine::quote(&order, &pack, &book, &ctx))
        });
    }
    g.finish();
}

criterion_group!(benches, bench, per_format, tax_quote);
criterion_main!(benches);
