//! Signature check and normalization of the 18 KB Shopify 2024-04 order: the CPU part of the
//! ingest path, without HTTP or storage. Run: cargo bench --bench ingest

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

criterion_group!(benches, bench);
criterion_main!(benches);
