//! The daemon against its own OpenAPI document (issue 17): schemathesis (from PyPI, in a venv
//! this test creates under `target/tmp`) generates requests for every operation, from the
//! document's schemas and beyond them, against a gateway holding real data (a signed Shopify
//! order, a dead letter, a listing and an outbound command), with the API token. It passes
//! with no server error and no answer that the document does not describe (status, media
//! type, headers, body schema).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// The schemathesis release the run is pinned to.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";
const TOKEN: &str = "conformance-token";

/// `st`, installed once into a venv under the target directory.
fn schemathesis() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("schemathesis-4.32.5");
    let st = venv.join("bin/st");
    if st.exists() {
        return st;
    }
    let run = |cmd: &mut Command| {
        let out = cmd.output().expect("python3 runs");
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    run(Command::new(venv.join("bin/pip")).args(["install", "--quiet", SCHEMATHESIS]));
    st
}

fn json_headers() -> Vec<(String, String)> {
    vec![("Content-Type".into(), "application/json".into())]
}

/// The first item's id of a `/v1` page.
async fn first_id(c: &reqwest::Client, gw: &Gateway, path: &str) -> String {
    let r = get(c, &gw.url(path)).await;
    r.body["items"][0]["id"]
        .as_str()
        .or_else(|| r.body["items"][0]["dead_letter_id"].as_str())
        .unwrap_or_else(|| panic!("{path}: {}", r.text))
        .to_string()
}

/// Real records for the operations that read them: ids by path parameter.
async fn seed(gw: &Gateway, c: &reqwest::Client) -> Vec<(&'static str, String)> {
    let order = shopify_order(450_789_469, "2024-04-02T09:00:00-05:00");
    let h = shopify_headers(&order, "conformance-1", "orders/create");
    let r = post(c, &gw.url("/webhooks/shop"), &order, &h).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let broken = String::from_utf8(shopify_order(2, "2024-04-02T09:00:00-05:00"))
        .unwrap()
        .replace("\"quantity\": 1", "\"quantity\": \"one\"")
        .into_bytes();
    let h = shopify_headers(&broken, "conformance-2", "orders/create");
    let r = post(c, &gw.url("/webhooks/shop"), &broken, &h).await;
    assert_eq!(
        r.status, 202,
        "the broken order is dead-lettered: {}",
        r.text
    );
    let listing = json!({"external_id": "632910392", "revision": {"updated_at": "2026-03-01T10:00:00Z"}, "sku": "IPOD2008PINK", "title": "IPod Nano - 8GB", "price": {"amount": "199.00", "currency": "USD"}, "stock": 4, "status": "active"});
    let body = serde_json::to_vec(&listing).unwrap();
    let r = post(
        c,
        &gw.url("/v1/instances/shop/listings"),
        &body,
        &json_headers(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let listing_id = first_id(c, gw, "/v1/listings?instance=shop").await;
    let r = send_json(
        c,
        reqwest::Method::PATCH,
        &gw.url(&format!("/v1/listings/{listing_id}")),
        &json!({"stock": 3}),
        None,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let command = r.body["commands"][0]["id"].as_str().unwrap().to_string();
    vec![
        ("/v1/orders/{id}", first_id(c, gw, "/v1/orders").await),
        ("/v1/listings/{id}", listing_id),
        (
            "/v1/dead-letters/{id}",
            first_id(c, gw, "/v1/dead-letters").await,
        ),
        ("/v1/outbound/{id}", command),
    ]
}

/// schemathesis's configuration: the ids of real records for each family of paths, and the
/// configured instance for `{instance}`.
fn st_config(dir: &Path, ids: &[(&str, String)]) -> PathBuf {
    let mut text = String::from("[parameters]\n\"path.instance\" = \"shop\"\n");
    for (prefix, id) in ids {
        let prefix = prefix.trim_end_matches("{id}");
        let regex = format!("^{}", regex_escape(prefix));
        text.push_str(&format!(
            "\n[[operations]]\ninclude-path-regex = {}\nparameters = {{ \"path.id\" = \"{id}\" }}\n",
            Value::String(regex)
        ));
    }
    let path = dir.join("schemathesis.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_answers_as_its_openapi_document_says() {
    let st = schemathesis();
    let dir = tempfile::tempdir().unwrap();
    let tc = test_config_in(
        dir.path(),
        Backend::Embedded,
        &redis_url(),
        "api_token = \"${TEST_API_TOKEN}\"",
        &repo().join("adapters"),
        &[("TEST_API_TOKEN", TOKEN)],
        &unique_prefix("oas"),
    );
    let gw = Gateway::start(tc).await;
    let c = authorized(TOKEN);
    let served = get(&c, &gw.url("/openapi.json")).await;
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("schemas/openapi.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        served.body, committed,
        "GET /openapi.json is the committed document"
    );
    let ids = seed(&gw, &c).await;
    let config = st_config(dir.path(), &ids);
    let checks = "not_a_server_error,status_code_conformance,content_type_conformance,\
                  response_headers_conformance,response_schema_conformance";
    let mut cmd = tokio::process::Command::new(&st);
    cmd.arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(gw.url("/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--checks", checks])
        .args(["--max-examples", "25", "--workers", "2"])
        .args(["--request-timeout", "20", "--no-color"])
        .current_dir(dir.path())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(600), cmd.output())
        .await
        .expect("schemathesis finishes within 10 minutes")
        .expect("schemathesis runs");
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}");
    assert!(
        out.status.success(),
        "schemathesis found answers the document does not describe:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains("Tested:"),
        "schemathesis tested the operations: {report}"
    );
    gw.stop().await;
}
