//! `crossgate import` (the real binary) with the phone CSV: bad rows reported by line and
//! column, good orders stored, re-import idempotent, both straight into the store and through a
//! running daemon; and the call-centre JSON endpoint.

mod common;

use std::process::Command;

use common::*;
use serde_json::{Value, json};

fn import(config: &std::path::Path, file: &std::path::Path, extra: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_crossgate"))
        .envs(test_env())
        .arg("--config")
        .arg(config)
        .args(["import", "--adapter", "phone", "--json", "--file"])
        .arg(file)
        .args(extra)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "stdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), report)
}

fn lines_and_columns(report: &Value) -> Vec<(u64, String)> {
    report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["column"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn import_into_the_store_reports_bad_rows_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let tc = test_config_in(
        dir.path(),
        Backend::Embedded,
        &redis_url(),
        "",
        &repo().join("adapters"),
        &[],
        &unique_prefix("imp"),
    );
    let file = repo().join("tests/fixtures/phone/orders.csv");
    let (code, report) = import(&tc.config.file, &file, &[]);
    assert_eq!(code, 2, "some rows were refused: {report}");
    assert_eq!(report["orders"], 5);
    assert_eq!(report["stored"], 3);
    assert_eq!(report["failed"], 2);
    assert_eq!(
        lines_and_columns(&report),
        [(5, "quantity".to_string()), (7, "unit_price".to_string())]
    );
    assert_eq!(report["errors"][0]["value"], "three");

    // The same file again stores nothing new.
    let (_, again) = import(&tc.config.file, &file, &[]);
    assert_eq!(
        (again["stored"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(3))
    );

    // The operator fixes the two rows: only those orders are new.
    let fixed = std::fs::read_to_string(&file)
        .unwrap()
        .replace(",three,", ",3,")
        .replace(",abc,", ",15.00,");
    let fixed_path = dir.path().join("fixed.csv");
    std::fs::write(&fixed_path, fixed).unwrap();
    let (code, report) = import(&tc.config.file, &fixed_path, &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        (report["stored"].as_u64(), report["unchanged"].as_u64()),
        (Some(2), Some(3))
    );

    // What was stored is what the file says.
    let (store, _) = crossgate::backend::open(&tc.config.store).await.unwrap();
    let crossgate::backend::AnyStore::Embedded(s) = store else {
        unreachable!()
    };
    use crossgate::store::Store;
    let o = s
        .get_order(&crossgate::model::OrderId::derive("phone", "P-1004"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(o.lines.len(), 2);
    assert_eq!(o.totals.grand_total.amount().to_string(), "28.30"); // 8.40 + 15.00 + 4.90 shipping
    assert_eq!(o.placed_at.to_rfc3339(), "2024-05-02T12:05:00+02:00"); // Berlin summer time
    assert!(o.customer.as_ref().unwrap().key.is_some());
}

// Multi-threaded: the daemon keeps serving while the test waits for the CLI process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_through_a_running_daemon_and_the_json_endpoint() {
    for backend in Backend::all() {
        let tc = test_config(backend, &redis_url(), "");
        let config_file = tc.config.file.clone();
        let gw = Gateway::start(tc).await;
        let file = repo().join("tests/fixtures/phone/orders.csv");
        let (code, report) = import(&config_file, &file, &["--url", &gw.base]);
        assert_eq!(code, 2, "{report}");
        assert_eq!(report["stored"], 3, "{backend:?}: {report}");
        let c = http();
        let r = get(&c, &gw.url("/v1/orders?instance=phone")).await;
        let ids: Vec<&str> = r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["external_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), 3, "{ids:?}");
        for id in ["P-1001", "P-1002", "P-1005"] {
            assert!(ids.contains(&id), "{id} missing: {ids:?}");
        }
        // Nothing of the refused orders was stored, not even as a dead letter.
        let dl = get(&c, &gw.url("/v1/dead-letters?instance=phone")).await;
        assert_eq!(dl.body["items"].as_array().unwrap().len(), 0);

        // Call-centre JSON: one canonical order, retried with the same Idempotency-Key.
        let body = serde_json::to_vec(&app_order("CC-1", "2024-05-02T10:00:00+02:00")).unwrap();
        let headers = vec![
            ("Idempotency-Key".to_string(), "cc-1-attempt".to_string()),
            ("Content-Type".into(), "application/json".into()),
        ];
        let r = post(&c, &gw.url("/v1/instances/phone/orders"), &body, &headers).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["records"][0]["change"], "created");
        let r = post(&c, &gw.url("/v1/instances/phone/orders"), &body, &headers).await;
        assert_eq!(r.body["status"], "duplicate");
        let o = get(
            &c,
            &gw.url(&format!(
                "/v1/orders/{}",
                crossgate::model::OrderId::derive("phone", "CC-1").as_str()
            )),
        )
        .await;
        assert_eq!(o.body["channel_kind"], "phone");
        // A bad order: 422 with every problem by field, and nothing stored (issue 10: dead
        // letters are for channel deliveries; an API caller can be told).
        let mut bad = app_order("CC-2", "2024-05-02T10:00:00+02:00");
        bad["lines"][0]["quantity"] = json!(0);
        bad["currency"] = json!("US$");
        let bad = serde_json::to_vec(&bad).unwrap();
        let r = post(&c, &gw.url("/v1/instances/phone/orders"), &bad, &[]).await;
        assert_eq!(r.status, 422, "{}", r.text);
        assert_eq!(r.content_type, "application/problem+json");
        let fields: Vec<&str> = r.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(fields.contains(&"currency"), "{}", r.text);
        assert!(
            !r.text.contains("US$"),
            "no payload value is quoted: {}",
            r.text
        );
        // A body that is not JSON at all: 422 too, naming the whole body.
        let r = post(
            &c,
            &gw.url("/v1/instances/phone/orders"),
            b"order=CC-3",
            &[],
        )
        .await;
        assert_eq!(r.status, 422, "{}", r.text);
        assert_eq!(r.body["errors"][0]["field"], "$", "{}", r.text);
        assert_eq!(r.body["reason"], "parse");
        let dl = get(&c, &gw.url("/v1/dead-letters?instance=phone")).await;
        assert_eq!(
            dl.body["items"].as_array().unwrap().len(),
            0,
            "no dead letter"
        );
        assert_eq!(
            get(
                &c,
                &gw.url(&format!(
                    "/v1/orders/{}",
                    crossgate::model::OrderId::derive("phone", "CC-2").as_str()
                ))
            )
            .await
            .status,
            404
        );
        // Channels do not submit through the API: they push signed webhooks.
        let r = post(&c, &gw.url("/v1/instances/shop/orders"), &body, &[]).await;
        assert_eq!(r.status, 400);
        gw.stop().await;
    }
}
