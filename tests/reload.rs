//! Reloading adapters, rule packs and manual rates without a restart (issue 14): a fixed
//! adapter takes effect for the next delivery and for dead-letter replay; a broken file, or a
//! change that needs a restart, leaves the running configuration in use and is reported.

mod common;

use common::*;
use crossgate::model::OrderId;

/// A gateway whose Shopify adapter reads the external id from a field Shopify does not send.
async fn start_broken(backend: Backend) -> (Gateway, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let adapters = copy_adapters(dir.path(), "adapters", &["shopify", "app"]);
    let good = std::fs::read_to_string(adapters.join("shopify.toml")).unwrap();
    std::fs::write(
        adapters.join("shopify.toml"),
        good.replacen("external_id = \"id\"", "external_id = \"order_uuid\"", 1),
    )
    .unwrap();
    let tc = test_config_in(
        dir.path(),
        backend,
        &redis_url(),
        "",
        &adapters,
        &[],
        &unique_prefix("reload"),
    );
    (Gateway::start(tc).await, dir, good)
}

async fn deliver(gw: &Gateway, id: u64, webhook_id: &str) -> Reply {
    let body = shopify_order(id, "2024-04-02T09:00:00-05:00");
    let h = shopify_headers(&body, webhook_id, "orders/create");
    post(&http(), &gw.url("/webhooks/shop"), &body, &h).await
}

async fn reload(gw: &Gateway) -> Reply {
    post(&http(), &gw.url("/v1/admin/reload"), b"", &[]).await
}

async fn generation(gw: &Gateway) -> serde_json::Value {
    get(&http(), &gw.url("/v1/admin/config")).await.body
}

async fn a_fixed_adapter_takes_effect_without_a_restart(backend: Backend) {
    let (gw, dir, good) = start_broken(backend).await;
    let adapters = dir.path().join("adapters");
    let c = http();
    let first = deliver(&gw, 4242, "wh-r1").await;
    assert_eq!(first.status, 202, "{}", first.text);
    assert_eq!(first.body["errors"][0]["field"], "external_id");
    let dl = first.body["dead_letter_id"].as_str().unwrap().to_string();
    let before = generation(&gw).await;
    assert_eq!(before["generation"], 1);
    assert!(
        !before["rule_packs"].as_array().unwrap().is_empty(),
        "{before}"
    );
    let digest = |v: &serde_json::Value| {
        v["adapters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "shopify")
            .unwrap()["digest"]
            .clone()
    };

    // A file that does not parse: refused with its place, the running adapter stays.
    std::fs::write(adapters.join("shopify.toml"), "name = \"shopify\"\n[[[").unwrap();
    let refused = reload(&gw).await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert_eq!(refused.content_type, "application/problem+json");
    let problems = refused.body["problems"].to_string();
    assert!(problems.contains("shopify.toml"), "{problems}");
    let status = generation(&gw).await;
    assert_eq!(status["generation"], 1);
    assert_eq!(digest(&status), digest(&before));
    assert!(
        status["last_failure"]["problems"]
            .to_string()
            .contains("shopify.toml"),
        "{status}"
    );
    // Still the old (broken-mapping) adapter: the next delivery is dead-lettered the same way.
    let second = deliver(&gw, 4243, "wh-r2").await;
    assert_eq!(
        second.body["errors"][0]["field"], "external_id",
        "{}",
        second.text
    );

    // A change that needs a restart is refused and named, even with a good adapter beside it.
    std::fs::write(adapters.join("shopify.toml"), &good).unwrap();
    let file = dir.path().join("gateway.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("level = \"warn\"", "level = \"debug\"")).unwrap();
    let restart = reload(&gw).await;
    assert_eq!(restart.status, 409, "{}", restart.text);
    assert!(
        restart.body["problems"].to_string().contains("[log]"),
        "{}",
        restart.text
    );
    assert_eq!(generation(&gw).await["generation"], 1);

    // The fixed file alone: applied; replay and the next delivery use it.
    std::fs::write(&file, text).unwrap();
    let applied = reload(&gw).await;
    assert_eq!(applied.status, 200, "{}", applied.text);
    assert_eq!(applied.body["generation"], 2);
    assert_eq!(
        applied.body["adapters_changed"],
        serde_json::json!(["shopify"])
    );
    let after = generation(&gw).await;
    assert_eq!(after["generation"], 2);
    assert!(after["last_failure"].is_null(), "{after}");
    assert_ne!(digest(&after), digest(&before));

    let replayed = post(
        &c,
        &gw.url(&format!("/v1/dead-letters/{dl}/replay")),
        b"",
        &[],
    )
    .await;
    assert_eq!(replayed.status, 200, "{}", replayed.text);
    assert_eq!(replayed.body["records"][0]["change"], "created");
    let third = deliver(&gw, 4244, "wh-r3").await;
    assert_eq!(third.status, 200, "{}", third.text);
    for id in ["4242", "4244"] {
        let oid = OrderId::derive("shop", id);
        assert_eq!(
            get(&c, &gw.url(&format!("/v1/orders/{oid}"))).await.status,
            200
        );
    }
    let metrics = get(&c, &gw.url("/metrics")).await.text;
    for outcome in ["applied", "refused"] {
        assert!(
            metrics.contains(&format!(
                "crossgate_config_reloads_total{{trigger=\"api\",outcome=\"{outcome}\"}}"
            )),
            "{outcome}"
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_fixed_adapter_takes_effect_without_a_restart_embedded() {
    a_fixed_adapter_takes_effect_without_a_restart(Backend::Embedded).await;
}

#[tokio::test]
async fn a_fixed_adapter_takes_effect_without_a_restart_redis() {
    a_fixed_adapter_takes_effect_without_a_restart(Backend::Redis).await;
}

#[tokio::test]
async fn reload_needs_the_api_token() {
    let tc = test_config(
        Backend::Embedded,
        &redis_url(),
        "api_token = \"${TEST_APP_SECRET}\"",
    );
    let gw = Gateway::start(tc).await;
    let r = reload(&gw).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(get(&http(), &gw.url("/v1/admin/config")).await.status, 401);
    gw.stop().await;
}
