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
    gw.stop().await;
}
