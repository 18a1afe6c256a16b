//! Webhook ingest and the API over real HTTP on loopback, against both stores.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use common::*;
use crossgate::model::OrderId;
use crossgate::store::{DeadLetterQuery, OrderQuery, Store};
use crossgate::with_store;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

async fn start(backend: Backend) -> Gateway {
    Gateway::start(test_config(backend, &redis_url(), "")).await
}

/// Orders, events and dead letters currently stored.
async fn counts(gw: &Gateway) -> (usize, u64, usize) {
    with_store!(&gw.store, s => {
        let orders = s.list_orders(OrderQuery { instance: None, since: None, after: None, limit: 10_000 }).await.unwrap().items.len();
        let events = s.event_count().await.unwrap();
        let dls = s.list_dead_letters(DeadLetterQuery { instance: None, after: None, limit: 10_000 }).await.unwrap().items.len();
        (orders, events, dls)
    })
}

fn with_header(mut h: Vec<(String, String)>, name: &str, value: &str) -> Vec<(String, String)> {
    h.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    h.push((name.into(), value.into()));
    h
}

fn without_header(mut h: Vec<(String, String)>, name: &str) -> Vec<(String, String)> {
    h.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    h
}

/// (what it is, url, body, headers)
type Attempt<'a> = (&'a str, &'a str, Vec<u8>, Vec<(String, String)>);

async fn not_authentic_is_401_and_writes_nothing(backend: Backend) {
    let gw = start(backend).await;
    let c = http();
    let shop = gw.url("/webhooks/shop");
    let app = gw.url("/webhooks/app");
    let body = shopify_order(1001, "2024-04-02T09:00:00-05:00");
    let good = shopify_headers(&body, "wh-1", "orders/create");
    let app_body = serde_json::to_vec(&app_order("APP-1", "2024-05-01T10:00:00Z")).unwrap();
    let app_good = app_headers(&app_body, "msg_1");

    let mut tampered = body.clone();
    let pos = tampered.len() / 2;
    tampered[pos] ^= 0x01;
    let stale_ts = (Utc::now().timestamp() - 301).to_string();
    let future_ts = (Utc::now().timestamp() + 301).to_string();
    let cases: Vec<Attempt> = vec![
        ("tampered body", &shop, tampered, good.clone()),
        (
            "wrong secret",
            &shop,
            body.clone(),
            with_header(
                good.clone(),
                "X-Shopify-Hmac-Sha256",
                "Lxrq4JUdNYAb6TNGvuoCRpTlJuB0qUSr5WKNBkYCVDA=",
            ),
        ),
        (
            "missing signature header",
            &shop,
            body.clone(),
            without_header(good.clone(), "X-Shopify-Hmac-Sha256"),
        ),
        (
            "empty v1, signature",
            &app,
            app_body.clone(),
            with_header(app_good.clone(), "webhook-signature", "v1,"),
        ),
        (
            "timestamp 301 s old",
            &app,
            app_body.clone(),
            with_header(app_good.clone(), "webhook-timestamp", &stale_ts),
        ),
        (
            "timestamp 301 s ahead",
            &app,
            app_body.clone(),
            with_header(app_good.clone(), "webhook-timestamp", &future_ts),
        ),
        (
            "missing webhook-id",
            &app,
            app_body.clone(),
            without_header(app_good.clone(), "webhook-id"),
        ),
        ("no signature at all", &app, app_body.clone(), vec![]),
    ];
    for (name, url, b, h) in cases {
        let r = post(&c, url, &b, &h).await;
        assert_eq!(r.status, 401, "{name}: {}", r.text);
        assert_eq!(r.content_type, "application/problem+json", "{name}");
        assert_eq!(r.body["type"], "urn:crossgate:problem:signature", "{name}");
        assert!(
            r.body.get("detail").is_none(),
            "{name}: the answer does not say which check failed"
        );
    }
    assert_eq!(counts(&gw).await, (0, 0, 0), "nothing was written");
    // No dedupe key was left behind either: the same ids, now correctly signed, are new.
    assert_eq!(post(&c, &shop, &body, &good).await.body["status"], "stored");
    assert_eq!(
        post(&c, &app, &app_body, &app_headers(&app_body, "msg_1"))
            .await
            .body["status"],
        "stored"
    );
    assert_eq!(counts(&gw).await, (2, 2, 0));
    gw.stop().await;
}

#[tokio::test]
async fn not_authentic_is_401_and_writes_nothing_embedded() {
    not_authentic_is_401_and_writes_nothing(Backend::Embedded).await;
}

#[tokio::test]
async fn not_authentic_is_401_and_writes_nothing_redis() {
    not_authentic_is_401_and_writes_nothing(Backend::Redis).await;
}

#[tokio::test]
async fn shopify_vectors_pass_over_http() {
    let v: Value =
        serde_json::from_slice(&fixture("shopify/webhook-hmac-test-vectors.json")).unwrap();
    for vector in v["vectors"].as_array().unwrap() {
        let dir = tempfile::tempdir().unwrap();
        let secret = vector["secret"].as_str().unwrap();
        let tc = test_config_in(
            dir.path(),
            Backend::Embedded,
            &redis_url(),
            "",
            &repo().join("adapters"),
            &[("TEST_SHOPIFY_SECRET", secret)],
            &unique_prefix("v"),
        );
        let gw = Gateway::start(tc).await;
        let mut headers: Vec<(String, String)> = vector["other_headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        headers.push((
            vector["header"].as_str().unwrap().into(),
            vector["expected_hmac"].as_str().unwrap().into(),
        ));
        let r = post(
            &http(),
            &gw.url("/webhooks/shop"),
            vector["body"].as_str().unwrap().as_bytes(),
            &headers,
        )
        .await;
        // Authentic, so stored. The vector's body is {"foo":"bar"}, not a product with
        // variants: no listing can be read from it, so it is dead-lettered (202) with the reason.
        assert_eq!(r.status, 202, "{}", r.text);
        assert_eq!(r.body["status"], "dead_lettered");
        assert_eq!(r.body["errors"][0]["field"], "listings");
        gw.stop().await;
    }
}

/// 1,000 signed deliveries: 850 orders, 50 newer revisions of some of them, 100 re-sent
/// deliveries (same webhook id). Shuffled and sent 16 at a time.
async fn dedupe_and_revisions(backend: Backend) {
    let gw = start(backend).await;
    let c = http();
    let url = gw.url("/webhooks/shop");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let t0 = "2024-04-02T09:00:00-05:00";
    let t1 = "2024-04-03T09:00:00-05:00";
    let mut deliveries: Vec<(u64, String, Vec<u8>)> = (0..850u64)
        .map(|i| (i, format!("wh-{i}"), shopify_order(5_000_000 + i, t0)))
        .collect();
    let revised: Vec<u64> = rand::seq::index::sample(&mut rng, 850, 50)
        .into_iter()
        .map(|i| i as u64)
        .collect();
    for &i in &revised {
        deliveries.push((i, format!("wh-rev-{i}"), shopify_order(5_000_000 + i, t1)));
    }
    for _ in 0..100 {
        let pick = deliveries[rng.random_range(0..deliveries.len())].clone();
        deliveries.push(pick);
    }
    assert_eq!(deliveries.len(), 1000);
    deliveries.shuffle(&mut rng);

    let replies = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let sem = Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = Vec::new();
    for (i, wh, body) in deliveries {
        let (c, url, replies, permit) = (
            c.clone(),
            url.clone(),
            replies.clone(),
            sem.clone().acquire_owned().await.unwrap(),
        );
        tasks.push(tokio::spawn(async move {
            let r = post(
                &c,
                &url,
                &body,
                &shopify_headers(&body, &wh, "orders/updated"),
            )
            .await;
            replies.lock().await.push((i, r.status, r.body));
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let replies = replies.lock().await;
    assert!(
        replies.iter().all(|(_, s, _)| *s == 200),
        "every delivery is answered 200"
    );
    let status = |s: &str| replies.iter().filter(|(_, _, b)| b["status"] == s).count();
    assert_eq!(status("duplicate"), 100);
    assert_eq!(status("stored"), 900);
    let change = |c: &str| {
        replies
            .iter()
            .filter(|(_, _, b)| b["records"].get(0).is_some_and(|r| r["change"] == c))
            .count()
    };
    assert_eq!(change("created"), 850);
    assert_eq!(change("updated") + change("stale"), 50);

    let (orders, events, dls) = counts(&gw).await;
    assert_eq!((orders, dls), (850, 0));
    assert_eq!(
        events as usize,
        850 + change("updated"),
        "one event per write, none for stale"
    );
    let revised: HashSet<u64> = revised.into_iter().collect();
    let want_t1 = DateTime::parse_from_rfc3339(t1).unwrap();
    let want_t0 = DateTime::parse_from_rfc3339(t0).unwrap();
    for i in 0..850u64 {
        let id = OrderId::derive("shop", &(5_000_000 + i).to_string());
        let r = get(&c, &gw.url(&format!("/v1/orders/{id}"))).await;
        assert_eq!(r.status, 200);
        let updated =
            DateTime::parse_from_rfc3339(r.body["revision"]["updated_at"].as_str().unwrap())
                .unwrap();
        let want = if revised.contains(&i) {
            want_t1
        } else {
            want_t0
        };
        assert_eq!(updated, want, "order {i} has its latest revision");
    }
    gw.stop().await;
}

#[tokio::test]
async fn dedupe_and_revisions_embedded() {
    dedupe_and_revisions(Backend::Embedded).await;
}

#[tokio::test]
async fn dedupe_and_revisions_redis() {
    dedupe_and_revisions(Backend::Redis).await;
}

/// Every dead letter of a listing, following its cursor one item at a time.
async fn all_dead_letters(
    c: &reqwest::Client,
    gw: &Gateway,
    query: &str,
) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut url = gw.url(&format!("/v1/dead-letters?limit=1&{query}"));
    loop {
        let page = get(c, &url).await;
        assert_eq!(page.status, 200, "{query}: {}", page.text);
        out.extend(page.body["items"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(cur) => url = gw.url(&format!("/v1/dead-letters?limit=1&{query}&cursor={cur}")),
            None => return out,
        }
    }
}

/// The dead-letter listing by kind and time: each kind's letters, together all of them; a
/// period without any gives none; bad filters are refused.
async fn dead_letter_filters(c: &reqwest::Client, gw: &Gateway, total: usize) {
    let today = chrono::Utc::now().date_naive();
    let (parse, fields) = (
        all_dead_letters(c, gw, "kind=parse").await,
        all_dead_letters(c, gw, "kind=fields").await,
    );
    assert!(parse.iter().all(|d| d["reason"]["kind"] == "parse"));
    assert!(fields.iter().all(|d| d["reason"]["kind"] == "fields"));
    assert!(!parse.is_empty() && !fields.is_empty());
    assert_eq!(parse.len() + fields.len(), total);
    let within = format!("since={today}&until={today}");
    assert_eq!(all_dead_letters(c, gw, &within).await.len(), total);
    let before = format!("until={}", today.pred_opt().unwrap());
    assert!(all_dead_letters(c, gw, &before).await.is_empty());
    let after = format!("since={}", today.succ_opt().unwrap());
    assert!(all_dead_letters(c, gw, &after).await.is_empty());
    for bad in [
        "kind=bogus".to_string(),
        format!("since={}&until={today}", today.succ_opt().unwrap()),
        "until=soon".to_string(),
    ] {
        let r = get(c, &gw.url(&format!("/v1/dead-letters?{bad}"))).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
}

async fn bad_input(backend: Backend) {
    let gw = start(backend).await;
    let c = http();
    let shop = gw.url("/webhooks/shop");
    let app = gw.url("/webhooks/app");

    let app_with = |name: &str, f: &dyn Fn(&mut Value)| {
        let mut v = app_order(&format!("BAD-{name}"), "2024-05-01T10:00:00Z");
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let huge_number = String::from_utf8(shopify_order(77, "2024-04-02T09:00:00-05:00"))
        .unwrap()
        .replacen(
            "\"total_price\": \"598.94\"",
            &format!("\"total_price\": {}", "9".repeat(400)),
            1,
        )
        .replace(
            "\"amount\": \"598.94\"",
            &format!("\"amount\": {}", "9".repeat(400)),
        );
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_note = String::from_utf8(shopify_order(79, "2024-04-02T09:00:00-05:00"))
        .unwrap()
        .replacen("\"note\": null", &format!("\"note\": {deep}"), 1)
        .into_bytes();
    assert!(
        deep_note.len() > 20_000,
        "the fixture has a note to replace"
    );
    // (name, url, body, expected field in the error, or None for a parse error)
    let cases: Vec<(&str, &str, Vec<u8>, Option<&str>)> = vec![
        (
            "not json",
            &shop,
            b"<html>this is not json</html>".to_vec(),
            None,
        ),
        (
            "wrong types",
            &app,
            app_with("types", &|v| v["lines"][0]["quantity"] = json!("two")),
            Some("lines[0].quantity"),
        ),
        (
            "400-digit number",
            &shop,
            huge_number.into_bytes(),
            Some("totals.grand_total.amount"),
        ),
        (
            "nesting 10,000 deep (shopify)",
            &shop,
            deep.into_bytes(),
            // The 128-level cap holds even where the adapter reads nothing (issue 10).
            None,
        ),
        (
            "nesting 10,000 deep in the unread note (shopify)",
            &shop,
            deep_note,
            None,
        ),
        (
            "invalid currency",
            &app,
            app_with("cur", &|v| v["currency"] = json!("US$")),
            Some("currency"),
        ),
        (
            "negative quantity",
            &app,
            app_with("neg", &|v| v["lines"][0]["quantity"] = json!(-1)),
            Some("lines[0].quantity"),
        ),
        (
            "duplicate key",
            &app,
            br#"{"external_id":"DUP","external_id":"DUP2"}"#.to_vec(),
            None,
        ),
        (
            "gateway field set by sender",
            &app,
            app_with("gw", &|v| v["instance"] = json!("other")),
            Some("instance"),
        ),
    ];
    let mut expected_dls = 0;
    for (i, (name, url, body, field)) in cases.into_iter().enumerate() {
        let headers = if url.ends_with("/shop") {
            shopify_headers(&body, &format!("bad-{i}"), "orders/create")
        } else {
            app_headers(&body, &format!("msg_bad_{i}"))
        };
        let r = post(&c, url, &body, &headers).await;
        assert_eq!(r.status, 202, "{name}: {}", r.text);
        assert_eq!(r.body["status"], "dead_lettered", "{name}");
        expected_dls += 1;
        match field {
            None => assert_eq!(r.body["reason"], "parse", "{name}: {}", r.text),
            Some(f) => {
                let fields: Vec<&str> = r.body["errors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|e| e["field"].as_str())
                    .collect();
                assert!(
                    fields.contains(&f),
                    "{name}: expected an error at {f}, got {fields:?}"
                );
            }
        }
        // No partial write: no order, no event; the dead letter holds the delivery.
        let (orders, events, dls) = counts(&gw).await;
        assert_eq!((orders, events, dls), (0, 0, expected_dls), "{name}");
        let dl_id = r.body["dead_letter_id"].as_str().unwrap();
        let dl = get(&c, &gw.url(&format!("/v1/dead-letters/{dl_id}"))).await;
        assert_eq!(dl.status, 200);
        assert_eq!(
            dl.body["delivery"]["body"]["data"].as_str().map(str::len),
            std::str::from_utf8(&body).ok().map(str::len),
            "{name}: raw body kept byte for byte"
        );
        assert_eq!(
            get(&c, &gw.url("/healthz")).await.status,
            200,
            "{name}: still serving"
        );
    }
    // A 2 MiB body is refused before anything else, with nothing written.
    let big = vec![b' '; 2 * 1024 * 1024];
    let r = post(
        &c,
        &shop,
        &big,
        &shopify_headers(&big, "big", "orders/create"),
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.text);
    assert_eq!(r.content_type, "application/problem+json");
    assert_eq!(counts(&gw).await, (0, 0, expected_dls));
    assert_eq!(get(&c, &gw.url("/healthz")).await.status, 200);
    dead_letter_filters(&c, &gw, expected_dls).await;
    // And good deliveries still go through.
    let ok = shopify_order(78, "2024-04-02T09:00:00-05:00");
    assert_eq!(
        post(&c, &shop, &ok, &shopify_headers(&ok, "ok", "orders/create"))
            .await
            .body["status"],
        "stored"
    );
    gw.stop().await;
}

#[tokio::test]
async fn bad_input_is_dead_lettered_without_partial_writes_embedded() {
    bad_input(Backend::Embedded).await;
}

#[tokio::test]
async fn bad_input_is_dead_lettered_without_partial_writes_redis() {
    bad_input(Backend::Redis).await;
}

/// An adapter bug parks deliveries; after ops fix the adapter file, a replay stores them.
async fn dead_letter_replay_after_adapter_fix(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let adapters = copy_adapters(dir.path(), "adapters", &["shopify", "app"]);
    let good = std::fs::read_to_string(adapters.join("shopify.toml")).unwrap();
    // A broken mapping: the external id read from a field Shopify does not send.
    std::fs::write(
        adapters.join("shopify.toml"),
        good.replacen("external_id = \"id\"", "external_id = \"order_uuid\"", 1),
    )
    .unwrap();
    let prefix = unique_prefix("dl");
    let body = shopify_order(4242, "2024-04-02T09:00:00-05:00");

    let tc = test_config_in(
        dir.path(),
        backend,
        &redis_url(),
        "",
        &adapters,
        &[],
        &prefix,
    );
    let gw = Gateway::start(tc).await;
    let c = http();
    let r = post(
        &c,
        &gw.url("/webhooks/shop"),
        &body,
        &shopify_headers(&body, "wh-dl", "orders/create"),
    )
    .await;
    assert_eq!(r.status, 202);
    assert_eq!(r.body["errors"][0]["field"], "external_id");
    assert_eq!(r.body["errors"][0]["source"], "order_uuid");
    let dl_id = r.body["dead_letter_id"].as_str().unwrap().to_string();
    // Replaying with the broken adapter fails again and counts the attempt.
    let again = post(
        &c,
        &gw.url(&format!("/v1/dead-letters/{dl_id}/replay")),
        b"",
        &[],
    )
    .await;
    assert_eq!(again.status, 422, "{}", again.text);
    assert_eq!(again.content_type, "application/problem+json");
    assert_eq!(again.body["failed_replays"], 1);
    gw.stop_keep_data().await;

    // Ops fix the file and restart; the replay now stores the order and removes the dead letter.
    std::fs::write(adapters.join("shopify.toml"), good).unwrap();
    let tc = test_config_in(
        dir.path(),
        backend,
        &redis_url(),
        "",
        &adapters,
        &[],
        &prefix,
    );
    let gw = loop {
        // The embedded store's file is released once the previous writer thread exits.
        match crossgate::backend::open(&tc.config.store).await {
            Ok((store, _)) => break Gateway::start_with(tc.config.clone(), store, None).await,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    };
    let listed = get(&c, &gw.url("/v1/dead-letters")).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    let ok = post(
        &c,
        &gw.url(&format!("/v1/dead-letters/{dl_id}/replay")),
        b"",
        &[],
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.body["records"][0]["change"], "created");
    let id = OrderId::derive("shop", "4242");
    assert_eq!(
        get(&c, &gw.url(&format!("/v1/orders/{id}"))).await.status,
        200
    );
    assert_eq!(
        get(&c, &gw.url("/v1/dead-letters")).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        post(
            &c,
            &gw.url(&format!("/v1/dead-letters/{dl_id}/replay")),
            b"",
            &[]
        )
        .await
        .status,
        404
    );
    // The original delivery id is still remembered: a channel retry is a duplicate.
    let retry = post(
        &c,
        &gw.url("/webhooks/shop"),
        &body,
        &shopify_headers(&body, "wh-dl", "orders/create"),
    )
    .await;
    assert_eq!(retry.body["status"], "duplicate");
    gw.stop().await;
}

#[tokio::test]
async fn dead_letter_replay_after_adapter_fix_embedded() {
    dead_letter_replay_after_adapter_fix(Backend::Embedded).await;
}

#[tokio::test]
async fn dead_letter_replay_after_adapter_fix_redis() {
    dead_letter_replay_after_adapter_fix(Backend::Redis).await;
}

#[tokio::test]
async fn api_pagination_errors_health_and_metrics() {
    let gw = start(Backend::Embedded).await;
    let c = http();
    let url = gw.url("/webhooks/shop");
    for i in 0..7u64 {
        let body = shopify_order(9_000 + i, &format!("2024-04-0{}T09:00:00-05:00", 1 + i % 5));
        assert_eq!(
            post(
                &c,
                &url,
                &body,
                &shopify_headers(&body, &format!("p-{i}"), "orders/create")
            )
            .await
            .status,
            200
        );
    }
    // Cursor pagination returns every order once, in (updated_at, id) order.
    let mut seen = Vec::new();
    let mut next = Some(gw.url("/v1/orders?instance=shop&limit=3"));
    while let Some(u) = next {
        let page = get(&c, &u).await;
        assert_eq!(page.status, 200, "{}", page.text);
        for o in page.body["items"].as_array().unwrap() {
            seen.push((
                o["revision"]["updated_at"].as_str().unwrap().to_string(),
                o["id"].as_str().unwrap().to_string(),
            ));
        }
        next = page.body["next_cursor"]
            .as_str()
            .map(|cur| gw.url(&format!("/v1/orders?instance=shop&limit=3&cursor={cur}")));
    }
    assert_eq!(seen.len(), 7);
    assert_eq!(
        seen.iter().map(|(_, id)| id).collect::<HashSet<_>>().len(),
        7
    );
    let since = get(&c, &gw.url("/v1/orders?since=2024-04-04")).await;
    assert_eq!(
        since.body["items"].as_array().unwrap().len(),
        2,
        "updated on 04-04 and 04-05 (UTC 14:00)"
    );

    for (path, status) in [
        ("/v1/orders?limit=0", 400),
        ("/v1/orders?limit=100000", 400),
        ("/v1/orders?since=yesterday", 400),
        ("/v1/orders?cursor=%%%", 400),
        ("/v1/orders?instance=nope", 400),
        // `channel` names a channel, never an instance id: refused with a pointer to `instance`.
        ("/v1/orders?channel=shop", 400),
        ("/v1/dead-letters?channel=shop", 400),
        ("/v1/orders/o.shop.0000000000000000", 404),
        ("/v1/orders/not-an-id", 404),
        ("/v1/listings/l.shop.0000000000000000", 404),
        ("/v1/dead-letters/d.shop.nothing", 404),
        ("/nowhere", 404),
    ] {
        let r = get(&c, &gw.url(path)).await;
        assert_eq!(r.status, status, "{path}: {}", r.text);
        assert_eq!(r.content_type, "application/problem+json", "{path}");
        assert_eq!(r.body["status"], status, "{path}");
    }
    let unknown = post(&c, &gw.url("/webhooks/nope"), b"{}", &[]).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(get(&c, &gw.url("/readyz")).await.status, 200);

    let metrics = get(&c, &gw.url("/metrics")).await.text;
    for needle in [
        "crossgate_deliveries_total{instance=\"shop\",outcome=\"stored\"}",
        "crossgate_deliveries_total{instance=\"(unknown)\",outcome=\"unknown_instance\"}",
        "crossgate_ingest_duration_seconds_bucket{instance=\"shop\"",
    ] {
        assert!(metrics.contains(needle), "metrics lack {needle}");
    }
    assert!(
        !metrics.contains("nope"),
        "unknown instance names never become labels"
    );
    gw.stop().await;
}

#[tokio::test]
async fn api_token_protects_v1() {
    let dir = tempfile::tempdir().unwrap();
    let tc = test_config_in(
        dir.path(),
        Backend::Embedded,
        &redis_url(),
        "api_token = \"${TEST_API_TOKEN}\"\nread_token = \"${TEST_READ_TOKEN}\"",
        &repo().join("adapters"),
        &[
            ("TEST_API_TOKEN", "s3cr3t-token"),
            ("TEST_READ_TOKEN", "r3ad-only"),
        ],
        &unique_prefix("tok"),
    );
    let gw = Gateway::start(tc).await;
    let c = http();
    assert_eq!(get(&c, &gw.url("/v1/orders")).await.status, 401);
    let wrong = c
        .get(gw.url("/v1/orders"))
        .bearer_auth("s3cr3t-tokeN")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = c
        .get(gw.url("/v1/orders"))
        .bearer_auth("s3cr3t-token")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    // The read-only token may GET, and nothing else.
    let reader = authorized("r3ad-only");
    assert_eq!(get(&reader, &gw.url("/v1/orders")).await.status, 200);
    let write = post(&reader, &gw.url("/v1/jobs/run"), b"", &[]).await;
    assert_eq!(write.status, 403, "{}", write.text);
    assert_eq!(write.content_type, "application/problem+json");
    let full = post(
        &authorized("s3cr3t-token"),
        &gw.url("/v1/jobs/run"),
        b"",
        &[],
    )
    .await;
    assert_ne!(full.status, 403, "{}", full.text);
    // Webhooks and health stay reachable without the API token.
    assert_eq!(get(&c, &gw.url("/healthz")).await.status, 200);
    let body = shopify_order(1, "2024-04-02T09:00:00-05:00");
    assert_eq!(
        post(
            &c,
            &gw.url("/webhooks/shop"),
            &body,
            &shopify_headers(&body, "t", "orders/create")
        )
        .await
        .status,
        200
    );
    gw.stop().await;
}

#[tokio::test]
async fn canonical_app_orders_round_trip() {
    let gw = start(Backend::Embedded).await;
    let c = http();
    let body = std::fs::read(repo().join("tests/fixtures/app/order-jp.json")).unwrap();
    let r = post(
        &c,
        &gw.url("/webhooks/app"),
        &body,
        &app_headers(&body, "msg_rt"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.body["records"][0]["id"].as_str().unwrap();
    let stored = get(&c, &gw.url(&format!("/v1/orders/{id}"))).await.body;
    let sent: Value = serde_json::from_slice(&body).unwrap();
    // Every field the app sent comes back unchanged; the gateway added its own.
    let mut expected: HashMap<String, Value> = serde_json::from_value(sent).unwrap();
    expected.insert("id".into(), json!(id));
    expected.insert("instance".into(), json!("app"));
    expected.insert("channel".into(), json!("app"));
    expected.insert("channel_kind".into(), json!("mobile_app"));
    expected.insert("account".into(), json!("merchant-app"));
    // ... and the cross-channel customer key (a salted hash, never the email itself).
    let key = stored["customer"]["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("c.") && !key.contains("hanako"));
    expected.get_mut("customer").unwrap()["key"] = json!(key);
    let mut got: HashMap<String, Value> = serde_json::from_value(stored).unwrap();
    // The FX or tax job may already have held the order (this store has no rates): a gateway
    // field, not something the app sent.
    if let Some(h) = got.remove("holds") {
        for hold in h.as_array().unwrap() {
            let kind = hold["kind"].as_str().unwrap();
            assert!(["fx_pending", "tax_pending"].contains(&kind), "{h}");
        }
    }
    assert_eq!(got, expected);
    assert_eq!(
        got["placed_at"], "2024-05-01T19:02:58+09:00",
        "the original offset is kept"
    );
    gw.stop().await;
}
