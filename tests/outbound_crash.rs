//! `kill -9` of the daemon while outbound commands are in flight (issue 15), on the embedded
//! store, several times. After the last restart, every accepted stock update has reached the
//! mock Shopify in effect: each listing ends at the last level accepted for it, no listing
//! ever went back to an older level, and no accepted command was lost or given up on.

mod common;

use std::collections::BTreeMap;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::shopify_mock::{LOCATION, Shop, TOKEN, mock_shopify};
use common::*;
use serde_json::{Value, json};
use tokio::sync::Mutex;

fn write_config(dir: &std::path::Path, port: u16, mock: &str) -> std::path::PathBuf {
    let text = format!(
        r#"adapters_dir = "{adapters}"
[server]
listen = "127.0.0.1:{port}"
[store]
backend = "embedded"
path = "{db}"
[log]
level = "warn"
[outbox]
claim_secs = 1
retry_base_ms = 100
retry_max_secs = 1
[[instance]]
id = "shop"
adapter = "shopify"
account = "crash.myshopify.com"
secrets = {{ webhook = "${{TEST_SHOPIFY_SECRET}}", access_token = "${{TEST_SHOPIFY_TOKEN}}" }}
settings = {{ api_base = "{mock}/admin/api/2024-04", location_id = "{LOCATION}" }}
"#,
        adapters = repo().join("adapters").display(),
        db = dir.join("crash.redb").display()
    );
    let file = dir.join("crash.toml");
    std::fs::write(&file, text).unwrap();
    file
}

fn spawn(config: &std::path::Path) -> Child {
    spawn_daemon(
        config,
        &[
            ("TEST_SHOPIFY_SECRET", SHOPIFY_SECRET),
            ("TEST_SHOPIFY_TOKEN", TOKEN),
        ],
    )
}

/// What the senders sent: per listing, the last level accepted (answered 202) and every level
/// sent (a request cut off by the kill may have been stored without its answer arriving);
/// every accepted command id.
#[derive(Default)]
struct Accepted {
    last: BTreeMap<String, i64>,
    sent: BTreeMap<String, Vec<i64>>,
    ids: Vec<String>,
}

/// The inventory item ids of the fixture's variants, by listing id.
async fn listings(c: &reqwest::Client, base: &str) -> Vec<(String, u64)> {
    let r: Value = get(c, &format!("{base}/v1/listings?instance=shop"))
        .await
        .body;
    r["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["id"].as_str().unwrap().to_string(),
                l["stock_ref"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

/// Sends stock levels (rising, one counter for all) to the listings until the daemon is gone.
async fn send_levels(
    c: reqwest::Client,
    base: String,
    ids: Vec<String>,
    accepted: Arc<Mutex<Accepted>>,
    next: Arc<std::sync::atomic::AtomicI64>,
) {
    loop {
        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let listing = &ids[(n as usize) % ids.len()];
        // The lock is held across the call, so levels are accepted in counter order.
        let mut acc = accepted.lock().await;
        acc.sent.entry(listing.clone()).or_default().push(n);
        let r = c
            .patch(format!("{base}/v1/listings/{listing}"))
            .header("Content-Type", "application/json")
            .body(json!({ "stock": n }).to_string())
            .send()
            .await;
        match r {
            Ok(r) if r.status() == 202 => {
                let v: Value = r.json().await.unwrap();
                acc.last.insert(listing.clone(), n);
                acc.ids
                    .push(v["commands"][0]["id"].as_str().unwrap().to_string());
            }
            Ok(r) => panic!("unexpected answer {}", r.status()),
            Err(_) => return, // the daemon is gone
        }
    }
}

/// The level of each item at the mock now.
fn at_mock(shop: &Shop) -> BTreeMap<u64, i64> {
    shop.levels.lock().unwrap().iter().copied().collect()
}

/// Every item's level at the mock is at least the last accepted for it, and no command is
/// open.
async fn settled(c: &reqwest::Client, base: &str, shop: &Shop, want: &BTreeMap<u64, i64>) -> bool {
    let now = at_mock(shop);
    if want
        .iter()
        .any(|(item, n)| now.get(item).is_none_or(|m| m < n))
    {
        return false;
    }
    for state in ["queued", "sent", "failed"] {
        let r: Value = get(
            c,
            &format!("{base}/v1/outbound?instance=shop&status={state}"),
        )
        .await
        .body;
        if !r["items"].as_array().unwrap().is_empty() {
            return false;
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_commands_survive_kill_9() {
    let (mock, shop) = mock_shopify().await;
    *shop.inventory_delay.lock().unwrap() = Duration::from_millis(15);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = write_config(dir.path(), port, &mock);
    let c = http();
    let accepted = Arc::new(Mutex::new(Accepted::default()));
    let next = Arc::new(std::sync::atomic::AtomicI64::new(1));
    let mut items = BTreeMap::new();
    for round in 0..4 {
        let mut child = spawn(&config);
        wait_ready(&c, &base).await;
        if round == 0 {
            let product = fixture("shopify/rest-2024-04-product-get-632910392.json");
            let h = shopify_headers(&product, "p1", "products/update");
            let r = post(&c, &format!("{base}/webhooks/shop"), &product, &h).await;
            assert_eq!(r.status, 200, "{}", r.text);
            items = listings(&c, &base).await.into_iter().collect();
        }
        let ids: Vec<String> = items.keys().cloned().collect();
        let senders: Vec<_> = (0..2)
            .map(|_| {
                tokio::spawn(send_levels(
                    c.clone(),
                    base.clone(),
                    ids.clone(),
                    accepted.clone(),
                    next.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(600 + 250 * round)).await;
        // SIGKILL with commands queued and with the channel: no shutdown handler runs.
        child.kill().unwrap();
        child.wait().unwrap();
        for s in senders {
            s.await.unwrap();
        }
    }

    let mut child = spawn(&config);
    wait_ready(&c, &base).await;
    let acc = accepted.lock().await;
    assert!(
        acc.ids.len() > 100,
        "the test ran under load ({} accepted)",
        acc.ids.len()
    );
    let want: BTreeMap<u64, i64> = acc.last.iter().map(|(l, n)| (items[l], *n)).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !settled(&c, &base, &shop, &want).await {
        assert!(
            Instant::now() < deadline,
            "the outbox did not catch up: mock {:?}, want {want:?}",
            at_mock(&shop)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Each item ends at the last level accepted for it, or at a later one whose request was
    // stored but whose answer the kill cut off; never at a level not sent for it.
    let now = at_mock(&shop);
    for (listing, item) in &items {
        let sent = &acc.sent[listing];
        let last_sent_stored = now[item];
        assert!(
            sent.contains(&last_sent_stored),
            "item {item} is at a level never sent for it"
        );
        assert!(last_sent_stored >= acc.last[listing]);
    }
    // Never an older level after a newer one, per item (a command sent again after a crash
    // repeats its own level; that is the same level, not an older one).
    let history = shop.levels.lock().unwrap().clone();
    for item in want.keys() {
        let levels: Vec<i64> = history
            .iter()
            .filter(|(i, _)| i == item)
            .map(|(_, n)| *n)
            .collect();
        assert!(
            levels.windows(2).all(|w| w[0] <= w[1]),
            "item {item} went back: {levels:?}"
        );
    }
    // Every accepted command was confirmed or replaced by a later one; none is dead.
    let mut states = BTreeMap::<String, usize>::new();
    for id in &acc.ids {
        let r: Value = get(&c, &format!("{base}/v1/outbound/{id}")).await.body;
        *states
            .entry(r["state"].as_str().unwrap_or("missing").to_string())
            .or_default() += 1;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let ok = states.get("confirmed").copied().unwrap_or(0)
        + states.get("coalesced").copied().unwrap_or(0);
    assert_eq!(ok, acc.ids.len(), "{states:?}");
}
