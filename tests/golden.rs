//! Golden-file tests for adapters: every case in `tests/golden/cases.toml` is normalized and
//! compared with its golden output. `UPDATE_GOLDEN=1 cargo test --test golden` rewrites them.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::{repo, shared_fixtures};
use crossgate::adapter::{Headers, RecordContext, Registry, Target};
use crossgate::pipeline::{self, Sorted};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Cases {
    case: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    adapter: String,
    /// The payload file; or see `wrap`.
    #[serde(default)]
    fixture: Option<String>,
    /// A JSON document built from a TOML table in which "@file:<path>" strings are replaced by
    /// the parsed JSON of that fixture (for documents a channel sends in several parts).
    #[serde(default)]
    wrap: Option<toml::Value>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    golden: String,
    /// Instance settings (e.g. currency for channels whose products do not state it).
    #[serde(default)]
    settings: BTreeMap<String, String>,
    /// Map the document as this record kind ("order", "listing") instead of routing it by its
    /// topic: documents assembled by a fetch or a poll are routed by how they were obtained.
    #[serde(default)]
    record: Option<String>,
    expect: Expect,
}

/// Facts read off the payload by hand.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    records: usize,
    /// The first order's (or listing's) external id, read off the payload.
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    grand_total: Option<String>,
    #[serde(default)]
    lines: Option<usize>,
    #[serde(default)]
    country: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    error_field: Option<String>,
    /// Items that fail to map (multi-item documents).
    #[serde(default)]
    failures: usize,
    #[serde(default)]
    listings: Option<usize>,
    #[serde(default)]
    price: Option<String>,
    /// Facts: the payment amount, and the order the fact is about.
    #[serde(default)]
    amount: Option<String>,
    #[serde(default)]
    order: Option<String>,
    /// The delivery is authentic but of a topic the adapter does not map.
    #[serde(default)]
    ignored: bool,
    /// A thin webhook: the id of the record the gateway fetches.
    #[serde(default)]
    fetch: Option<String>,
}

fn fixture_path(f: &str) -> PathBuf {
    match f.strip_prefix("repo:") {
        Some(p) => repo().join(p),
        None => shared_fixtures().join(f),
    }
}

/// A fixture's JSON, or the part of it a JSON pointer names (`file.json#/payload/Orders/0`).
fn load(spec: &str) -> Value {
    let (file, pointer) = spec.split_once('#').unwrap_or((spec, ""));
    let v: Value = serde_json::from_slice(&std::fs::read(fixture_path(file)).unwrap()).unwrap();
    v.pointer(pointer)
        .unwrap_or_else(|| panic!("{spec}: no such part"))
        .clone()
}

/// Expands "@file:<fixture>[#pointer]" strings; a table with an "@file" key starts from that
/// object and adds its other keys (how a poller attaches detail responses to a record).
fn expand(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => match s.strip_prefix("@file:") {
            Some(f) => load(f),
            None => Value::String(s.clone()),
        },
        toml::Value::Table(t) if t.contains_key("@file") => {
            let mut base = load(t["@file"].as_str().expect("@file takes a path"));
            let obj = base
                .as_object_mut()
                .expect("@file must name an object to extend");
            for (k, v) in t.iter().filter(|(k, _)| *k != "@file") {
                obj.insert(k.clone(), expand(v));
            }
            base
        }
        toml::Value::Table(t) => {
            Value::Object(t.iter().map(|(k, v)| (k.clone(), expand(v))).collect())
        }
        toml::Value::Array(a) => Value::Array(a.iter().map(expand).collect()),
        other => serde_json::to_value(other).unwrap(),
    }
}

impl Case {
    fn name(&self) -> String {
        self.fixture.clone().unwrap_or_else(|| self.golden.clone())
    }

    fn body(&self) -> Vec<u8> {
        match (&self.fixture, &self.wrap) {
            (Some(f), None) => std::fs::read(fixture_path(f)).unwrap(),
            (None, Some(w)) => serde_json::to_vec_pretty(&expand(w)).unwrap(),
            _ => panic!("{}: give exactly one of fixture and wrap", self.golden),
        }
    }
}

fn normalize(registry: &Registry, case: &Case) -> Value {
    let adapter = registry
        .get(&case.adapter)
        .unwrap_or_else(|| panic!("no adapter {}", case.adapter));
    let body = case.body();
    if let Ok(dir) = std::env::var("GOLDEN_DUMP") {
        std::fs::write(format!("{dir}/{}", case.golden.replace('/', "_")), &body).unwrap();
    }
    let mut headers = Headers::default();
    for (k, v) in &case.headers {
        headers.push(k, v);
    }
    let ctx = RecordContext {
        instance: "golden",
        channel: adapter.name(),
        channel_kind: adapter.spec().channel_kind,
        account: "golden-account",
        settings: &case.settings,
        received_at: chrono::Utc::now(),
    };
    // A thin webhook: the gateway fetches the record it names; show the id it would fetch.
    if case.record.is_none()
        && let Some(f) = &adapter.spec().fetch
    {
        let doc = adapter.parse(&body).unwrap();
        let topic = adapter.topic(&headers, Some(&doc));
        if topic.as_ref().is_some_and(|t| f.topics.contains(t)) {
            let id =
                f.id.get(crossgate::adapter::path::Scope::new(&doc))
                    .and_then(|n| n.scalar_text().map(str::to_string));
            return json!({ "fetch": { "topic": topic, "id": id } });
        }
    }
    let routed = match case.record.as_deref() {
        None => adapter.normalize(&headers, &body, &ctx),
        Some(kind) => {
            let target = match kind {
                "order" => Target::Order,
                "listing" => Target::Listing,
                "stock" => Target::Stock,
                other => match other.strip_prefix("fact:") {
                    Some(name) => Target::Fact(name),
                    None => panic!("record = {other:?}"),
                },
            };
            adapter
                .parse(&body)
                .and_then(|doc| adapter.map(&doc, target, &ctx))
        }
    };
    // The gateway's own sorting of an adapter's answer (the one disposal path).
    match pipeline::sort(routed) {
        Sorted::Items {
            records, failures, ..
        } => {
            let failures: Vec<Value> = failures
                .iter()
                .map(|(item, e)| json!({ "item": item, "kind": e.kind(), "errors": e.fields() }))
                .collect();
            if failures.is_empty() {
                json!({ "records": records })
            } else {
                json!({ "records": records, "failures": failures })
            }
        }
        Sorted::Ignored => json!({ "ignored": true }),
        Sorted::Refused(e) => json!({ "error": { "kind": e.kind(), "errors": e.fields() } }),
    }
}

fn check_expectations(case: &Case, out: &Value) {
    let name = &case.name();
    if let Some(field) = &case.expect.error_field {
        let item_errors = out["failures"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|f| f["errors"].as_array().into_iter().flatten());
        let fields: Vec<&str> = out["error"]["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(item_errors)
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(
            fields.contains(&field.as_str()),
            "{name}: expected an error at {field}: {out}"
        );
        return;
    }
    if let Some(id) = &case.expect.fetch {
        assert_eq!(
            out["fetch"]["id"].as_str(),
            Some(id.as_str()),
            "{name}: {out}"
        );
        return;
    }
    assert_eq!(
        out["ignored"].as_bool().unwrap_or(false),
        case.expect.ignored,
        "{name}: ignored: {out}"
    );
    if case.expect.ignored {
        return;
    }
    let records = out["records"]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: {out}"));
    assert_eq!(
        records.len(),
        case.expect.records,
        "{name}: record count: {out}"
    );
    assert_eq!(
        out["failures"].as_array().map(Vec::len).unwrap_or(0),
        case.expect.failures,
        "{name}: failing items: {out}"
    );
    if let Some(n) = case.expect.listings {
        assert_eq!(
            records.iter().filter(|r| r["kind"] == "listing").count(),
            n,
            "{name}: listings"
        );
    }
    for r in records.iter().filter(|r| r["kind"] == "fact") {
        let rec = &r["record"];
        let part = if rec["type"] == "payment" {
            &rec["payment"]
        } else {
            &rec["shipment"]
        };
        if let Some(c) = &case.expect.currency {
            assert_eq!(
                part["amount"]["currency"].as_str(),
                Some(c.as_str()),
                "{name}: currency"
            );
        }
        if let Some(a) = &case.expect.amount {
            assert_eq!(
                part["amount"]["amount"].as_str(),
                Some(a.as_str()),
                "{name}: amount"
            );
        }
        if let Some(s) = &case.expect.status {
            assert_eq!(part["status"].as_str(), Some(s.as_str()), "{name}: status");
        }
        if let Some(o) = &case.expect.order {
            assert_eq!(
                rec["order_external_id"].as_str(),
                Some(o.as_str()),
                "{name}: order"
            );
        }
    }
    if let Some(id) = &case.expect.external_id {
        let first = records.iter().find(|r| r["kind"] != "fact");
        assert_eq!(
            first.and_then(|r| r["record"]["external_id"].as_str()),
            Some(id.as_str()),
            "{name}: external id"
        );
    }
    for r in records.iter().filter(|r| r["kind"] != "fact") {
        let rec = &r["record"];
        if let Some(c) = &case.expect.currency {
            assert_eq!(
                rec["currency"]
                    .as_str()
                    .or(rec["price"]["currency"].as_str()),
                Some(c.as_str()),
                "{name}: currency"
            );
        }
        if let Some(t) = &case.expect.grand_total {
            assert_eq!(
                rec["totals"]["grand_total"]["amount"].as_str(),
                Some(t.as_str()),
                "{name}: grand total"
            );
        }
        if let Some(n) = case.expect.lines {
            assert_eq!(
                rec["lines"].as_array().map(Vec::len),
                Some(n),
                "{name}: line count"
            );
        }
        if let Some(country) = &case.expect.country {
            let found = rec["shipping_address"]["country"]
                .as_str()
                .or(rec["billing_address"]["country"].as_str());
            assert_eq!(found, Some(country.as_str()), "{name}: country");
        }
        if let Some(s) = &case.expect.status {
            assert_eq!(rec["status"].as_str(), Some(s.as_str()), "{name}: status");
        }
        if let Some(p) = &case.expect.price {
            assert_eq!(
                rec["price"]["amount"].as_str(),
                Some(p.as_str()),
                "{name}: price"
            );
        }
    }
}

#[test]
fn adapters_match_their_golden_outputs() {
    let cases: Cases =
        toml::from_str(&std::fs::read_to_string(repo().join("tests/golden/cases.toml")).unwrap())
            .unwrap();
    let registry = Registry::load_dir(&repo().join("adapters")).unwrap();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for case in &cases.case {
        let out = normalize(&registry, case);
        check_expectations(case, &out);
        let mut text = serde_json::to_string_pretty(&out).unwrap();
        text.push('\n');
        let path = repo().join("tests/golden").join(&case.golden);
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &text).unwrap();
        } else {
            match std::fs::read_to_string(&path) {
                Ok(want) if want == text => {}
                Ok(_) => failures.push(format!("{} differs from {}", case.name(), path.display())),
                Err(_) => failures.push(format!(
                    "{} has no golden file {}",
                    case.name(),
                    path.display()
                )),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nreview, then run UPDATE_GOLDEN=1 cargo test --test golden",
        failures.join("\n")
    );
}

#[test]
fn normalization_is_deterministic() {
    let cases: Cases =
        toml::from_str(&std::fs::read_to_string(repo().join("tests/golden/cases.toml")).unwrap())
            .unwrap();
    let registry = Registry::load_dir(&repo().join("adapters")).unwrap();
    for case in &cases.case {
        assert_eq!(
            normalize(&registry, case),
            normalize(&registry, case),
            "{}",
            case.name()
        );
    }
}

/// WooCommerce names a product's tax class (`tax_class`, "" for its standard class): the
/// listing carries it for the tax job, and the blank standard slug carries none.
#[test]
fn a_woocommerce_product_names_its_tax_class() {
    let registry = Registry::load_dir(&repo().join("adapters")).unwrap();
    let adapter = registry.get("woocommerce").unwrap();
    let mut product: Value = serde_json::from_slice(
        &std::fs::read(fixture_path(
            "woocommerce/rest-v3-product-retrieve-794.json",
        ))
        .unwrap(),
    )
    .unwrap();
    let settings = [("currency".to_string(), "USD".to_string())].into();
    let ctx = RecordContext {
        instance: "golden",
        channel: adapter.name(),
        channel_kind: adapter.spec().channel_kind,
        account: "golden-account",
        settings: &settings,
        received_at: chrono::Utc::now(),
    };
    let class_of = |product: &Value| {
        let body = serde_json::to_vec(product).unwrap();
        let doc = adapter.parse(&body).unwrap();
        let routed = adapter.map(&doc, Target::Listing, &ctx).unwrap();
        match &routed.into_records().unwrap()[..] {
            [crossgate::model::Record::Listing(l)] => l.tax_class.clone(),
            other => panic!("one listing expected, got {other:?}"),
        }
    };
    assert_eq!(class_of(&product), None);
    product["tax_class"] = json!("books");
    assert_eq!(class_of(&product).as_deref(), Some("books"));
}
