//! `kill -9` the daemon under load on the embedded store, several times. After each restart,
//! every delivery that was answered 2xx before the kill is stored.

mod common;

use std::collections::HashSet;
use std::process::Child;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use crossgate::model::OrderId;
use tokio::sync::Mutex;

fn write_config(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    let text = format!(
        r#"adapters_dir = "{}"
[server]
listen = "127.0.0.1:{port}"
[store]
backend = "embedded"
path = "{}"
[log]
level = "warn"
[[instance]]
id = "shop"
adapter = "shopify"
account = "crash.myshopify.com"
secrets = {{ webhook = "${{TEST_SHOPIFY_SECRET}}" }}
"#,
        repo().join("adapters").display(),
        dir.join("crash.redb").display()
    );
    let file = dir.join("crash.toml");
    std::fs::write(&file, text).unwrap();
    file
}

fn spawn(config: &std::path::Path) -> Child {
    spawn_daemon(config, &[("TEST_SHOPIFY_SECRET", SHOPIFY_SECRET)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_deliveries_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = write_config(dir.path(), port);
    let c = http();
    let acked = Arc::new(Mutex::new(HashSet::<u64>::new()));
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));

    for round in 0..4 {
        let mut child = spawn(&config);
        wait_ready(&c, &base).await;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut senders = Vec::new();
        for _ in 0..8 {
            let (c, url, acked, next, stop) = (
                c.clone(),
                format!("{base}/webhooks/shop"),
                acked.clone(),
                next.clone(),
                stop.clone(),
            );
            senders.push(tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let body = shopify_order(3_000_000 + i, "2024-04-02T09:00:00-05:00");
                    let headers = shopify_headers(&body, &format!("crash-{i}"), "orders/create");
                    let mut req = c.post(&url).body(body);
                    for (k, v) in &headers {
                        req = req.header(k.as_str(), v.as_str());
                    }
                    // Connection errors (the daemon is gone) just end this sender's round.
                    match req.send().await {
                        Ok(r) if r.status().is_success() => {
                            acked.lock().await.insert(i);
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(700 + 300 * round)).await;
        // SIGKILL under load: no shutdown handler runs.
        child.kill().unwrap();
        child.wait().unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for s in senders {
            s.await.unwrap();
        }
    }

    let mut child = spawn(&config);
    wait_ready(&c, &base).await;
    let acked = acked.lock().await;
    assert!(
        acked.len() > 200,
        "the test ran under real load ({} acknowledged)",
        acked.len()
    );
    let mut missing = Vec::new();
    for i in acked.iter() {
        let id = OrderId::derive("shop", &(3_000_000 + i).to_string());
        let r = c
            .get(format!("{base}/v1/orders/{id}"))
            .send()
            .await
            .unwrap();
        if r.status() != 200 {
            missing.push(*i);
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        missing.is_empty(),
        "acknowledged but lost after kill -9: {missing:?}"
    );
}
