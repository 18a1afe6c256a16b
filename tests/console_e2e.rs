//! The console end to end in a real browser (issue 16): a gateway with the API token whose
//! Shopify adapter is broken (it reads the order id from a field Shopify does not send), two
//! real signed Shopify orders that dead-letter, and `tests/e2e/console.test.mjs` driving
//! Debian's Chromium (`/usr/bin/chromium`, which `.ci/run` installs) with playwright-core
//! from npm (installed here into `tests/e2e/node_modules` from its lock file). Screenshots go
//! to `target/e2e-artifacts/`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

const TOKEN: &str = "console-e2e-token";
/// The read-only token (`[server] read_token`).
const READ_TOKEN: &str = "console-e2e-reader";
const ORDER_NUMBER: u64 = 450_789_469;

/// playwright-core, from the lock file, once.
fn install_playwright(dir: &Path) {
    if dir.join("node_modules/playwright-core").exists() {
        return;
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .output()
        .expect("npm runs (Node.js is needed for the console's browser tests)");
    assert!(
        out.status.success(),
        "npm ci: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until the app order `external_id` is converted.
async fn converted(gw: &Gateway, external_id: &str) {
    let id = crossgate::model::OrderId::derive("app", external_id);
    let c = authorized(TOKEN);
    for _ in 0..400 {
        let r = get(&c, &gw.url(&format!("/v1/orders/{}/fx", id.as_str()))).await;
        if r.status == 200 && r.body["status"] == "converted" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{external_id} was never converted");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_works_in_a_real_browser() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "the console's browser test needs Debian's Chromium: apt-get install chromium"
    );
    let e2e = repo().join("tests/e2e");
    install_playwright(&e2e);
    let dir = tempfile::tempdir().unwrap();
    let adapters = copy_adapters(dir.path(), "adapters", &["shopify", "app", "phone"]);
    let good = std::fs::read_to_string(adapters.join("shopify.toml")).unwrap();
    let broken = good.replacen("external_id = \"id\"", "external_id = \"order_uuid\"", 1);
    std::fs::write(adapters.join("shopify.toml"), broken).unwrap();
    let tc = test_config_in(
        dir.path(),
        Backend::Embedded,
        &redis_url(),
        "api_token = \"${TEST_API_TOKEN}\"\nread_token = \"${TEST_READ_TOKEN}\"",
        &adapters,
        &[("TEST_API_TOKEN", TOKEN), ("TEST_READ_TOKEN", READ_TOKEN)],
        &unique_prefix("e2e"),
    );
    let gw = Gateway::start(tc).await;
    let c = authorized(TOKEN);
    let order = shopify_order(ORDER_NUMBER, "2024-04-02T09:00:00-05:00");
    let h = shopify_headers(&order, "e2e-1", "orders/create");
    let r = post(&c, &gw.url("/webhooks/shop"), &order, &h).await;
    assert_eq!(
        r.status, 202,
        "the broken adapter dead-letters it: {}",
        r.text
    );
    let broken = String::from_utf8(shopify_order(2, "2024-04-02T09:00:00-05:00"))
        .unwrap()
        .replace("\"quantity\": 1", "\"quantity\": \"one\"")
        .into_bytes();
    let h = shopify_headers(&broken, "e2e-2", "orders/create");
    let r = post(&c, &gw.url("/webhooks/shop"), &broken, &h).await;
    assert_eq!(r.status, 202, "{}", r.text);

    // Finance's side: the ECB's rates for early 2017 and three app orders converted at them.
    let rates = fixture("fx-ecb/eurofxref-hist-90d-2017-03-03.xml");
    let r = post(
        &c,
        &gw.url("/v1/fx/rates?source=ecb&origin=e2e"),
        &rates,
        &[],
    )
    .await;
    assert!(r.status < 300, "{}", r.text);
    for (n, (currency, day)) in [("USD", "15"), ("GBP", "16"), ("JPY", "20")]
        .iter()
        .enumerate()
    {
        let id = format!("FX-{n}");
        let text = serde_json::to_string(&app_order(&id, "2017-02-15T11:00:00+01:00"))
            .unwrap()
            .replace("\"JPY\"", &format!("\"{currency}\""));
        let mut o: serde_json::Value = serde_json::from_str(&text).unwrap();
        o["placed_at"] = serde_json::json!(format!("2017-02-{day}T11:00:00+01:00"));
        let body = serde_json::to_vec(&o).unwrap();
        let r = post(
            &c,
            &gw.url("/webhooks/app"),
            &body,
            &app_headers(&body, &id),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        converted(&gw, &id).await;
    }

    let artifacts = repo().join("target/e2e-artifacts");
    let mut cmd = tokio::process::Command::new("node");
    cmd.args(["--test", "console.test.mjs"])
        .current_dir(&e2e)
        .env("CONSOLE_BASE", &gw.base)
        .env("CONSOLE_TOKEN", TOKEN)
        .env("READ_TOKEN", READ_TOKEN)
        .env("ORDER_NUMBER", ORDER_NUMBER.to_string())
        .env("CUSTOMER_EMAIL", "bob.norman@mail.example.com")
        .env("ARTIFACTS", &artifacts)
        .env("ADAPTER_FILE", adapters.join("shopify.toml"))
        .env("FIXED_ADAPTER", repo().join("adapters/shopify.toml"))
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .expect("the browser test finishes within 5 minutes")
        .expect("node runs");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("# pass 1"), "{report}");
    for shot in [
        "overview",
        "dead-letter",
        "order",
        "fx-review",
        "overview-narrow",
    ] {
        assert!(artifacts.join(format!("{shot}.png")).exists(), "{shot}.png");
    }
    gw.stop().await;
}
