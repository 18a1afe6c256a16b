//! Metrics from start-up (issue 17, item 3): HELP and TYPE lines, and each configured
//! instance's series at zero before the first event; submissions and imports move a counter.
//! (Its own test binary: the recorder is process-wide.)

mod common;

use common::*;

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn series_exist_from_start_up_and_submissions_are_counted() {
    let gw = Gateway::start(test_config(Backend::Embedded, &redis_url(), "")).await;
    let c = http();
    let text = get(&c, &gw.url("/metrics")).await.text;
    for (name, kind) in [
        ("crossgate_deliveries_total", "counter"),
        ("crossgate_imports_total", "counter"),
        ("crossgate_dead_letters_total", "counter"),
        ("crossgate_config_reloads_total", "counter"),
        ("crossgate_cluster_topology_changes_total", "counter"),
    ] {
        assert!(text.contains(&format!("# HELP {name} ")), "{name}: {text}");
        assert!(
            text.contains(&format!("# TYPE {name} {kind}")),
            "{name}: {text}"
        );
    }
    for instance in ["shop", "app", "phone"] {
        let s = format!("crossgate_deliveries_total{{instance=\"{instance}\",outcome=\"stored\"}}");
        assert_eq!(value(&text, &s), Some(0.0), "{s}: {text}");
    }
    let s = "crossgate_config_reloads_total{trigger=\"sighup\",outcome=\"refused\"}";
    assert_eq!(value(&text, s), Some(0.0), "{text}");

    // A call-centre order, then its retry: one stored, one duplicate.
    let body = serde_json::to_vec(&app_order("CC-M1", "2024-05-02T10:00:00+02:00")).unwrap();
    let headers = vec![
        ("Idempotency-Key".to_string(), "cc-m1".to_string()),
        ("Content-Type".into(), "application/json".into()),
    ];
    for _ in 0..2 {
        let r = post(&c, &gw.url("/v1/instances/phone/orders"), &body, &headers).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let text = get(&c, &gw.url("/metrics")).await.text;
    let imported = |outcome: &str| {
        value(
            &text,
            &format!("crossgate_imports_total{{instance=\"phone\",outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!(imported("stored"), Some(1.0), "{text}");
    assert_eq!(imported("duplicate"), Some(1.0), "{text}");
    assert_eq!(imported("dead_lettered"), Some(0.0), "{text}");

    // A webhook: both stages timed; no store failure counted.
    let order = shopify_order(7001, "2024-04-02T09:00:00-05:00");
    let h = shopify_headers(&order, "wh-metrics-1", "orders/create");
    let r = post(&c, &gw.url("/webhooks/shop"), &order, &h).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let text = get(&c, &gw.url("/metrics")).await.text;
    let stage = |s: &str| {
        value(
            &text,
            &format!("crossgate_stage_duration_seconds_count{{stage=\"{s}\"}}"),
        )
        .unwrap_or(0.0)
    };
    assert!(stage("verify_and_normalize") >= 1.0, "{text}");
    assert!(
        stage("store_write") >= 3.0,
        "two submissions and the webhook: {text}"
    );
    assert_eq!(
        value(&text, "crossgate_store_errors_total{kind=\"unavailable\"}"),
        Some(0.0),
        "{text}"
    );

    // A jobs run asked for through the API: its duration and its success are recorded.
    let r = post(&c, &gw.url("/v1/jobs/run"), b"", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let text = get(&c, &gw.url("/metrics")).await.text;
    assert_eq!(
        value(&text, "crossgate_jobs_duration_seconds_count"),
        Some(1.0),
        "{text}"
    );
    let last = value(&text, "crossgate_jobs_last_success_timestamp_seconds").unwrap();
    assert!((chrono::Utc::now().timestamp() as f64 - last).abs() < 60.0);
    gw.stop().await;
}

/// A polled instance's last caught-up poll and its lag behind now, against a mock Graph API
/// with no orders (Meta's empty page).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caught_up_poll_sets_its_lag_and_last_success() {
    use axum::routing::get as route_get;
    let app = axum::Router::new().route(
        "/{cms}/commerce_orders",
        route_get(|| async { axum::Json(serde_json::json!({ "data": [] })) }),
    );
    let base = serve_mock(app).await;
    let dir = tempfile::tempdir().unwrap();
    let instance = format!(
        "id = \"meta-m\"\nadapter = \"meta_commerce\"\naccount = \"acme\"\npoll = true\nsecrets = {{ access_token = \"${{TEST_META_TOKEN}}\" }}\nsettings = {{ api_base = \"{base}\", cms_id = \"1\" }}\n"
    );
    let cfg = instance_config(
        dir.path(),
        Backend::Embedded,
        &repo().join("adapters"),
        &unique_prefix("metricspoll"),
        &instance,
        &[("TEST_META_TOKEN", "EAAG-token")],
    );
    let (store, _) = crossgate::backend::open(&cfg.store).await.unwrap();
    let gw = Gateway::start_with(std::sync::Arc::new(cfg), store, Some(dir)).await;
    let c = http();
    let series = |name: &str| format!("{name}{{instance=\"meta-m\"}}");
    let mut text = String::new();
    for _ in 0..100 {
        text = get(&c, &gw.url("/metrics")).await.text;
        if value(
            &text,
            &series("crossgate_poll_last_success_timestamp_seconds"),
        )
        .is_some()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let last = value(
        &text,
        &series("crossgate_poll_last_success_timestamp_seconds"),
    )
    .unwrap_or_else(|| panic!("no caught-up poll: {text}"));
    assert!(
        (chrono::Utc::now().timestamp() as f64 - last).abs() < 60.0,
        "{last}"
    );
    let lag = value(&text, &series("crossgate_poll_lag_seconds")).unwrap();
    assert!((0.0..60.0).contains(&lag), "caught up: lag {lag}");
    assert!(
        text.contains("# TYPE crossgate_poll_lag_seconds gauge"),
        "{text}"
    );
    gw.stop().await;
}

/// Dead letters waiting per instance, counted by each store, shown from the daemon's first
/// housekeeping pass. (An instance of its own: the gauge is process-wide.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_waiting_are_a_gauge_per_instance() {
    for backend in Backend::all() {
        let dir = tempfile::tempdir().unwrap();
        let instance = "id = \"dl-shop\"\nadapter = \"shopify\"\naccount = \"dl.myshopify.com\"\nsecrets = { webhook = \"${TEST_SHOPIFY_SECRET}\" }\n";
        let secrets: Vec<(String, String)> = test_env();
        let env: Vec<(&str, &str)> = secrets
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let config = std::sync::Arc::new(instance_config(
            dir.path(),
            backend,
            &repo().join("adapters"),
            &unique_prefix("dlgauge"),
            instance,
            &env,
        ));
        let (store, _) = crossgate::backend::open(&config.store).await.unwrap();
        // Two authentic Shopify deliveries that are no orders: two dead letters.
        for n in 0..2 {
            let body = format!("{{\"foo\":{n}}}").into_bytes();
            let mut h = crossgate::adapter::Headers::default();
            for (k, v) in shopify_headers(&body, &format!("wh-dl-{n}"), "orders/create") {
                h.push(&k, &v);
            }
            crossgate::with_store!(&store, s => crossgate::pipeline::ingest(s, &config, "dl-shop", &h, body, chrono::Utc::now()).await)
                .unwrap();
        }
        let waiting = crossgate::with_store!(&store, s => crossgate::store::Store::dead_letters_waiting(s).await).unwrap();
        assert_eq!(waiting.get("dl-shop"), Some(&2), "{backend:?}: {waiting:?}");
        // Start from 0, so that this backend's count is what is seen.
        crossgate::telemetry::set_dead_letters_waiting(&["dl-shop"], &Default::default());
        let gw = Gateway::start_with(config.clone(), store, Some(dir)).await;
        let c = http();
        let series = "crossgate_dead_letters_waiting{instance=\"dl-shop\"}";
        let mut text = String::new();
        for _ in 0..50 {
            text = get(&c, &gw.url("/metrics")).await.text;
            if value(&text, series) == Some(2.0) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(value(&text, series), Some(2.0), "{backend:?}: {text}");
        gw.stop().await;
    }
}

/// FX conversions and tax quotes are counted by outcome, and an order whose totals contradict
/// their parts moves the holds counter (the recorder is process-wide: deltas).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversions_quotes_and_holds_are_counted() {
    // An instance of its own (the recorder is shared with the other tests of this binary).
    let dir = tempfile::tempdir().unwrap();
    let instance = format!(
        "id = \"mx-shop\"\nadapter = \"shopify\"\naccount = \"mx.myshopify.com\"\nsecrets = {{ webhook = \"${{W}}\" }}\n[fx]\nreporting_currencies = [\"EUR\"]\n[tax]\nrules_dir = \"{}\"\nseller_country = \"CN\"\n",
        repo().join("config/rules").display()
    );
    let config = instance_config(
        dir.path(),
        Backend::Embedded,
        &repo().join("adapters"),
        &unique_prefix("mx"),
        &instance,
        &[("W", SHOPIFY_SECRET)],
    );
    let config = std::sync::Arc::new(config);
    let (store, _) = crossgate::backend::open(&config.store).await.unwrap();
    let gw = Gateway::start_with(config, store, None).await;
    let c = http();
    let before = get(&c, &gw.url("/metrics")).await.text;
    let at = |text: &str, s: &str| value(text, s).unwrap_or(0.0);
    let holds = "crossgate_holds_total{kind=\"totals_mismatch\"}";
    let pending = "crossgate_fx_conversions_total{outcome=\"fx_pending\"}";
    let (quoted, tax_pending) = (
        "crossgate_tax_quotes_total{outcome=\"quoted\"}",
        "crossgate_tax_quotes_total{outcome=\"tax_pending\"}",
    );
    for s in [
        holds,
        pending,
        quoted,
        tax_pending,
        "crossgate_fx_pending_orders",
    ] {
        assert!(value(&before, s).is_some(), "{s} from start-up: {before}");
    }
    // One order that adds up (no rates are loaded: fx_pending; shipped to Brazil, which no
    // rule pack covers: tax_pending), one that does not.
    let mut good: serde_json::Value =
        serde_json::from_slice(&shopify_order(6_100_001, "2024-04-02T09:00:00-05:00")).unwrap();
    good["order"]["shipping_address"]["country_code"] = serde_json::json!("BR");
    good["order"]["shipping_address"]["country"] = serde_json::json!("Brazil");
    let good = serde_json::to_vec(&good).unwrap();
    let mut bad: serde_json::Value =
        serde_json::from_slice(&shopify_order(6_100_002, "2024-04-02T09:00:00-05:00")).unwrap();
    bad["order"]["total_price"] = serde_json::json!("1.00");
    bad["order"]["total_price_set"]["shop_money"]["amount"] = serde_json::json!("1.00");
    bad["order"]["total_price_set"]["presentment_money"]["amount"] = serde_json::json!("1.00");
    let bad = serde_json::to_vec(&bad).unwrap();
    for (i, body) in [good, bad].iter().enumerate() {
        let h = shopify_headers(body, &format!("m-{i}"), "orders/create");
        let r = post(&c, &gw.url("/webhooks/mx-shop"), body, &h).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let now = get(&c, &gw.url("/metrics")).await.text;
        let fx = at(&now, pending) - at(&before, pending);
        let tax = at(&now, quoted) + at(&now, tax_pending)
            - at(&before, quoted)
            - at(&before, tax_pending);
        if fx >= 1.0 && tax >= 1.0 {
            assert_eq!(at(&now, holds) - at(&before, holds), 1.0, "{now}");
            // The store's index of held quotes agrees with the quotes counted (this store
            // holds only this test's orders).
            let held = crossgate::with_store!(&gw.store, s => crossgate::tax::store::TaxStore::tax_pending_count(s).await).unwrap();
            assert_eq!(
                held as f64,
                at(&now, tax_pending) - at(&before, tax_pending),
                "{now}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "fx {fx}, tax {tax}: {now}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    gw.stop().await;
}
