//! The bodies of the fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer), kept in the library so
//! that `tests/fuzz_regressions.rs` replays every saved crash input through the very same code
//! in an ordinary `cargo test`, without instrumentation. Each function must never panic and
//! checks the properties that must hold for any input.

use std::path::Path;
use std::sync::OnceLock;

use crate::adapter::spec::SignatureSpec;
use crate::adapter::{Headers, RecordContext, Registry, csv, tree, xml};

/// The shipped adapters (`adapters/` of this repository), loaded once.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("adapters");
        Registry::load_dir(&dir).expect("the shipped adapters load")
    })
}

/// The adapters in name order (a stable index for the first input byte).
fn adapters() -> Vec<&'static std::sync::Arc<crate::adapter::Adapter>> {
    let r = registry();
    let mut names: Vec<&str> = r.names().collect();
    names.sort_unstable();
    names.into_iter().filter_map(|n| r.get(n)).collect()
}

/// JSON: the full and the projected tree agree on validity; the full tree round-trips.
pub fn json_tree(data: &[u8]) {
    let full = tree::parse_json(data);
    if let Some(shopify) = registry().get("shopify") {
        let projected = shopify.parse(data);
        // A projection skips subtrees but checks their syntax and nesting, so it accepts exactly
        // what the full parse accepts, except duplicate keys inside skipped subtrees.
        if full.is_ok() {
            assert!(projected.is_ok(), "projected parse refused valid JSON");
        }
    }
    if let Ok(node) = full {
        let text = node.to_json().to_string();
        assert!(
            tree::parse_json(text.as_bytes()).is_ok(),
            "re-serialized tree does not parse"
        );
    }
}

/// XML: never panics; the capped parse accepts nothing the trusted parse refuses.
pub fn xml_tree(data: &[u8]) {
    let full = xml::parse_xml(data);
    let capped = xml::parse_xml_capped(data, crate::adapter::signature::WECHAT_V2_CAPS);
    if full.is_err() {
        assert!(
            capped.is_err(),
            "the capped parse accepted what the full parse refused"
        );
    }
    let _ = crate::adapter::signature::wechat_v2_params(data);
}

/// CSV: never panics; grouping keeps every row.
pub fn csv_groups(data: &[u8]) {
    let plain = csv::parse_csv(
        data,
        &csv::CsvOptions {
            delimiter: b',',
            group_by: None,
        },
    );
    let grouped = csv::parse_csv(
        data,
        &csv::CsvOptions {
            delimiter: b',',
            group_by: Some("order_ref".into()),
        },
    );
    if let (Ok(plain), Ok(grouped)) = (plain, grouped) {
        let rows = match plain.get("rows") {
            Some(tree::Node::Array(r)) => r.len(),
            _ => 0,
        };
        let grouped_rows: usize = match grouped.get("groups") {
            Some(tree::Node::Array(groups)) => groups
                .iter()
                .map(|g| match g.get("rows") {
                    Some(tree::Node::Array(r)) => r.len(),
                    _ => 0,
                })
                .sum(),
            _ => 0,
        };
        assert_eq!(rows, grouped_rows, "grouping lost or duplicated rows");
    }
}

/// Signature headers of every shipped scheme: never panics, and no fuzzed header forges a
/// signature (the secrets are fixed and the fuzzer cannot compute an HMAC).
pub fn signature_headers(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let with_webhooks: Vec<_> = adapters()
        .into_iter()
        .filter(|a| a.spec().webhook.is_some())
        .collect();
    let adapter = with_webhooks[usize::from(pick) % with_webhooks.len()];
    let split = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let value = String::from_utf8_lossy(&rest[..split]).into_owned();
    let body = rest.get(split + 1..).unwrap_or_default();
    let mut headers = Headers::default();
    for name in [
        "x-shopify-hmac-sha256",
        "x-wc-webhook-signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "stripe-signature",
        "authorization",
        "x-hub-signature-256",
        "x-webhook-secret",
    ] {
        headers.push(name, &value);
    }
    let lookup = |_: &str| vec!["fuzz-secret", "whsec_ZnV6ei1zZWNyZXQ="];
    let verdict = adapter.verify(&headers, body, &lookup, 1_700_000_000);
    let shared = matches!(
        adapter.spec().webhook.as_ref().map(|w| &w.signature),
        Some(SignatureSpec::SharedSecretHeader { .. })
    );
    if !shared {
        assert!(
            verdict.is_err(),
            "a fuzzed header verified for {}",
            adapter.name()
        );
    }
}

/// The adapter engine over every shipped adapter: parse and map never panic, and whatever maps
/// passes the model's own validation (the engine validates what it returns).
pub fn adapter_engine(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let all = adapters();
    let adapter = all[usize::from(pick) % all.len()];
    let settings = std::collections::BTreeMap::from([
        ("currency".to_string(), "USD".to_string()),
        ("timezone".to_string(), "Europe/Berlin".to_string()),
        ("marketplace_id".to_string(), "ATVPDKIKX0DER".to_string()),
        ("orders_instance".to_string(), "shop".to_string()),
    ]);
    let received_at = chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("a valid instant");
    let ctx = RecordContext {
        instance: "fuzz",
        channel: adapter.name(),
        channel_kind: adapter.spec().channel_kind,
        account: "fuzz",
        settings: &settings,
        received_at,
    };
    let Ok(doc) = adapter.parse(body) else {
        return;
    };
    for target in [
        crate::adapter::Target::Order,
        crate::adapter::Target::Listing,
        crate::adapter::Target::Stock,
    ] {
        if let Ok(crate::adapter::Routed::Items(items)) = adapter.map(&doc, target, &ctx) {
            for item in items {
                if let Ok(records) = item.result {
                    for r in &records {
                        assert!(
                            r.validate_at(received_at).is_empty(),
                            "{}: a mapped record fails validation",
                            adapter.name()
                        );
                    }
                }
            }
        }
    }
    let _ = adapter.map_canonical(body, &ctx);
}

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// Every target by name, for the regression replay.
pub const TARGETS: &[(&str, Target)] = &[
    ("json_tree", json_tree),
    ("xml_tree", xml_tree),
    ("csv_groups", csv_groups),
    ("signature_headers", signature_headers),
    ("adapter_engine", adapter_engine),
];
