//! One contract, two stores: every behaviour the `Store` trait promises, checked against the
//! embedded redb store and a real Redis server.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::{redis_url, stored_app_order, unique_prefix};
use crossgate::backend::embedded::{EmbeddedOptions, EmbeddedStore};
use crossgate::backend::redis::{RedisOptions, RedisStore};
use crossgate::model::{Change, Order, OrderId, Record, RecordKind};
use crossgate::store::{
    CursorWrite, DeadLetterQuery, DeadLetterReason, DeliverySource, Disposition, IngestOutcome,
    OrderQuery, RawDelivery, Store, StoreError,
};

const INST: &str = "shop";
const OTHER: &str = "app";

fn order(instance: &str, external_id: &str, updated_at: &str) -> Record {
    Record::Order(Box::new(stored_app_order(
        instance,
        external_id,
        updated_at,
    )))
}

/// An order whose customer has the key `key` (as the pipeline sets it with the salt).
fn order_of_customer(instance: &str, external_id: &str, updated_at: &str, key: &str) -> Record {
    let Record::Order(mut o) = order(instance, external_id, updated_at) else {
        unreachable!()
    };
    o.customer
        .as_mut()
        .expect("the app order has a customer")
        .key = Some(key.into());
    Record::Order(o)
}

/// The orders of a customer key, in every instance; a revision that changes the key moves the
/// order to the new key.
async fn customers<S: crossgate::backend::Stores>(store: &S, now: DateTime<Utc>) {
    let ids = |orders: Vec<Order>| {
        let mut ids: Vec<String> = orders
            .into_iter()
            .map(|o| o.id.as_str().to_string())
            .collect();
        ids.sort();
        ids
    };
    for (inst, ext, dedupe) in [(INST, "C-1", "c-1"), (OTHER, "C-2", "c-2")] {
        let o = order_of_customer(inst, ext, "2024-05-01T10:00:00+09:00", "c.alpha");
        let stored = store
            .ingest(delivery(inst, dedupe, now), Disposition::Apply(vec![o]))
            .await
            .unwrap();
        assert_eq!(changes(&stored), [Change::Created]);
    }
    let both = [
        OrderId::derive(OTHER, "C-2").as_str().to_string(),
        OrderId::derive(INST, "C-1").as_str().to_string(),
    ];
    let mut want = both.to_vec();
    want.sort();
    assert_eq!(
        ids(store.orders_of_customer("c.alpha", 10).await.unwrap()),
        want
    );
    assert_eq!(
        store.orders_of_customer("c.alpha", 1).await.unwrap().len(),
        1
    );
    assert!(
        store
            .orders_of_customer("c.nobody", 10)
            .await
            .unwrap()
            .is_empty()
    );
    // The customer changed their address: the revision carries another key.
    let moved = order_of_customer(INST, "C-1", "2024-05-02T10:00:00+09:00", "c.beta");
    let stored = store
        .ingest(delivery(INST, "c-3", now), Disposition::Apply(vec![moved]))
        .await
        .unwrap();
    assert_eq!(changes(&stored), [Change::Updated]);
    assert_eq!(
        ids(store.orders_of_customer("c.alpha", 10).await.unwrap()),
        [OrderId::derive(OTHER, "C-2").as_str().to_string()]
    );
    assert_eq!(
        ids(store.orders_of_customer("c.beta", 10).await.unwrap()),
        [OrderId::derive(INST, "C-1").as_str().to_string()]
    );
}

fn delivery(instance: &str, dedupe: &str, at: DateTime<Utc>) -> RawDelivery {
    RawDelivery {
        delivery_id: crossgate::pipeline::new_delivery_id(instance),
        instance: instance.into(),
        dedupe_id: dedupe.into(),
        received_at: at,
        topic: Some("orders/create".into()),
        headers: vec![("x-shopify-topic".into(), "orders/create".into())],
        source: DeliverySource::Webhook,
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        body: format!("{{\"raw\":\"{dedupe}\"}}").into_bytes(),
    }
}

fn changes(outcome: &IngestOutcome) -> Vec<Change> {
    match outcome {
        IngestOutcome::Stored { records, .. } => records.iter().map(|r| r.change).collect(),
        IngestOutcome::Duplicate { .. } => panic!("unexpected duplicate"),
    }
}

/// A lifecycle fact reported by `source` about order `external_id` of instance INST.
fn fact(source: &str, id: &str, external_id: &str, kind: serde_json::Value) -> Record {
    let mut v = serde_json::json!({
        "id": format!("{source}:{id}"),
        "order_id": OrderId::derive(INST, external_id).as_str(),
        "order_instance": INST,
        "order_external_id": external_id,
        "source_instance": source,
        "at": "2024-05-02T10:00:00Z",
    });
    for (k, val) in kind.as_object().unwrap() {
        v[k] = val.clone();
    }
    Record::Fact(Box::new(serde_json::from_value(v).unwrap()))
}

fn payment(status: &str, refunded: Option<&str>) -> serde_json::Value {
    let mut p = serde_json::json!({
        "type": "payment",
        "payment": { "id": "pi_1", "gateway": "stripe", "status": status,
                     "amount": { "amount": "10760", "currency": "JPY" } }
    });
    if let Some(r) = refunded {
        p["payment"]["refunded"] = serde_json::json!({ "amount": r, "currency": "JPY" });
    }
    p
}

fn order_with_status(external_id: &str, updated_at: &str, status: &str) -> Record {
    match order(INST, external_id, updated_at) {
        Record::Order(mut o) => {
            o.status = crossgate::model::OrderStatus::parse(status).unwrap();
            o.payments.clear();
            Record::Order(o)
        }
        _ => unreachable!(),
    }
}

/// Lifecycle facts: applied whatever the order of arrival, never moving an order backwards, and
/// every rise of an order's status is a transition on the event stream.
async fn lifecycle<S: crossgate::backend::Stores>(store: &S) {
    let now = Utc::now();
    let id = OrderId::derive(INST, "L-1");
    let ingest = |source: &'static str, dedupe: &'static str, records: Vec<Record>| async move {
        let out = store
            .ingest(delivery(source, dedupe, now), Disposition::Apply(records))
            .await
            .unwrap();
        // Redis queues facts about another instance's order; apply them as the daemon would,
        // then reconcile payments with their orders (the daemon's payments job).
        store.drain_lifecycle().await.unwrap();
        crossgate::payments::catch_up(store).await.unwrap();
        changes(&out)
    };

    // A payment provider reports the payment before the shop's order arrives.
    let c = ingest(
        OTHER,
        "f-paid",
        vec![fact(OTHER, "paid", "L-1", payment("paid", None))],
    )
    .await;
    assert!(
        matches!(c[..], [Change::Created] | [Change::Queued]),
        "{c:?}"
    );
    assert!(store.get_order(&id).await.unwrap().is_none());

    // The order arrives as "created": it reads "paid", with the provider's payment.
    let c = ingest(
        INST,
        "o-1",
        vec![order_with_status("L-1", "2024-05-01T10:00:00Z", "created")],
    )
    .await;
    assert_eq!(c, [Change::Created]);
    let o = store.get_order(&id).await.unwrap().unwrap();
    assert_eq!(o.status.as_str(), "paid");
    assert_eq!(o.payments.len(), 1);

    // The shop reports a shipment (a fact of the order's own instance).
    let shipped = serde_json::json!({
        "type": "shipment",
        "shipment": { "id": "s1", "carrier": "Yamato", "tracking_numbers": ["1234"], "status": "shipped" }
    });
    let c = ingest(
        INST,
        "f-ship",
        vec![fact(INST, "ship", "L-1", shipped.clone())],
    )
    .await;
    assert_eq!(c, [Change::Created]);
    assert_eq!(
        store.get_order(&id).await.unwrap().unwrap().status.as_str(),
        "fulfilled"
    );

    // The same fact again (a new delivery of it) changes nothing.
    let c = ingest(
        INST,
        "f-ship-again",
        vec![fact(INST, "ship", "L-1", shipped)],
    )
    .await;
    assert_eq!(c, [Change::Unchanged]);

    // A stale fact (authorized) and a newer snapshot that still says "created" move nothing back.
    ingest(
        OTHER,
        "f-auth",
        vec![fact(OTHER, "auth", "L-1", payment("authorized", None))],
    )
    .await;
    let c = ingest(
        INST,
        "o-2",
        vec![order_with_status("L-1", "2024-05-03T10:00:00Z", "created")],
    )
    .await;
    assert_eq!(c, [Change::Updated]);
    let o = store.get_order(&id).await.unwrap().unwrap();
    assert_eq!(o.status.as_str(), "fulfilled");
    assert_eq!(o.payments[0].status, crossgate::model::PaymentStatus::Paid);

    // A full refund.
    ingest(
        OTHER,
        "f-refund",
        vec![fact(
            OTHER,
            "refund",
            "L-1",
            payment("refunded", Some("10760")),
        )],
    )
    .await;
    let o = store.get_order(&id).await.unwrap().unwrap();
    assert_eq!(o.status.as_str(), "refunded");
    assert_eq!(o.payments.len(), 1);
    assert_eq!(
        o.payments[0].refunded.unwrap().amount().to_string(),
        "10760"
    );
    let listed = store
        .list_orders(OrderQuery {
            instance: Some(INST.into()),
            since: None,
            after: None,
            limit: 100,
        })
        .await
        .unwrap();
    let l = listed.items.iter().find(|o| o.id == id).unwrap();
    assert_eq!(l.status.as_str(), "refunded", "listing shows the same view");

    // The stream: each rise of the status is a transition, in order.
    let mut transitions = Vec::new();
    loop {
        let batch = store.read_events("lifecycle-test", "c", 500).await.unwrap();
        if batch.is_empty() {
            break;
        }
        for e in &batch {
            if let Some(t) = &e.event.transition
                && t.order_id == id.as_str()
            {
                transitions.push((t.from.map(|s| s.as_str()), t.to.as_str()));
            }
        }
        let ids: Vec<String> = batch.iter().map(|e| e.id.clone()).collect();
        store.ack_events("lifecycle-test", &ids).await.unwrap();
    }
    assert_eq!(
        transitions,
        [
            // The order arrives "created"; the provider's payment, reconciled with it, pays it.
            (None, "created"),
            (Some("created"), "paid"),
            (Some("paid"), "fulfilled"),
            (Some("fulfilled"), "refunded")
        ]
    );
}

fn payment_of(id: &str, amount: &str, currency: &str) -> serde_json::Value {
    serde_json::json!({
        "type": "payment",
        "payment": { "id": id, "gateway": "wechat_pay", "status": "paid",
                     "amount": { "amount": amount, "currency": currency } }
    })
}

/// Payments that contradict their order (another currency, less than the grand total) hold it
/// instead of paying it; payments that cover it pay it; an overpayment is recorded.
async fn payment_mismatch<S: crossgate::backend::Stores>(store: &S) {
    use crossgate::model::{PAYMENT_MISMATCH, PaymentOutcome};
    let now = Utc::now();
    let ingest = |source: &'static str, dedupe: &'static str, records: Vec<Record>| async move {
        store
            .ingest(delivery(source, dedupe, now), Disposition::Apply(records))
            .await
            .unwrap();
        store.drain_lifecycle().await.unwrap();
        crossgate::payments::catch_up(store).await.unwrap();
    };
    let view = |ext: &'static str| async move {
        store
            .get_order(&OrderId::derive(INST, ext))
            .await
            .unwrap()
            .unwrap()
    };
    for ext in ["P-1", "P-2", "P-3"] {
        let dedupe = Box::leak(format!("o-{ext}").into_boxed_str());
        let o = order_with_status(ext, "2024-05-01T10:00:00Z", "created");
        ingest(INST, dedupe, vec![o]).await;
    }
    // CNY 0.01 for a JPY 10,760 order: held, not paid.
    ingest(
        OTHER,
        "p1-a",
        vec![fact(OTHER, "p1a", "P-1", payment_of("w1", "0.01", "CNY"))],
    )
    .await;
    let o = view("P-1").await;
    assert_eq!(o.status.as_str(), "created");
    assert!(o.has_hold(PAYMENT_MISMATCH), "{:?}", o.holds);
    let r = o.payment_reconciliation.unwrap();
    assert_eq!(r.outcome, PaymentOutcome::CurrencyMismatch);
    assert_eq!(r.justifies, None);

    // 5,000 of 10,760 is short; a second payment of 5,760 completes it.
    ingest(
        OTHER,
        "p2-a",
        vec![fact(OTHER, "p2a", "P-2", payment_of("w2", "5000", "JPY"))],
    )
    .await;
    let o = view("P-2").await;
    assert_eq!(o.status.as_str(), "created");
    let hold = o.holds.iter().find(|h| h.kind == PAYMENT_MISMATCH).unwrap();
    assert_eq!(hold.stated.unwrap().amount().to_string(), "5000");
    assert_eq!(hold.computed.unwrap().amount().to_string(), "10760");
    ingest(
        OTHER,
        "p2-b",
        vec![fact(OTHER, "p2b", "P-2", payment_of("w3", "5760", "JPY"))],
    )
    .await;
    let o = view("P-2").await;
    assert_eq!(o.status.as_str(), "paid");
    assert!(!o.has_hold(PAYMENT_MISMATCH), "{:?}", o.holds);
    assert_eq!(
        o.payment_reconciliation.unwrap().outcome,
        PaymentOutcome::Paid
    );

    // 11,000 for 10,760: paid, and the overpayment is recorded.
    ingest(
        OTHER,
        "p3-a",
        vec![fact(OTHER, "p3a", "P-3", payment_of("w4", "11000", "JPY"))],
    )
    .await;
    let o = view("P-3").await;
    assert_eq!(o.status.as_str(), "paid");
    let r = o.payment_reconciliation.unwrap();
    assert_eq!(r.outcome, PaymentOutcome::Overpaid);
    assert_eq!(r.overpaid.unwrap().amount().to_string(), "240");

    // The stream: only the orders whose payments matched rose to paid.
    let mut paid = Vec::new();
    loop {
        let batch = store.read_events("payments-test", "c", 500).await.unwrap();
        if batch.is_empty() {
            break;
        }
        for e in &batch {
            if let Some(t) = &e.event.transition
                && t.to.as_str() == "paid"
            {
                paid.push(t.order_id.clone());
            }
        }
        let ids: Vec<String> = batch.iter().map(|e| e.id.clone()).collect();
        store.ack_events("payments-test", &ids).await.unwrap();
    }
    let want = |ext| OrderId::derive(INST, ext).as_str().to_string();
    assert!(!paid.contains(&want("P-1")), "{paid:?}");
    assert!(
        paid.contains(&want("P-2")) && paid.contains(&want("P-3")),
        "{paid:?}"
    );
}

/// A poller's cursor is written with its page; reconciliation compares polled and pushed orders.
async fn cursors_and_reconciliation<S: crossgate::backend::Stores>(store: &S) {
    let now = Utc::now();
    assert_eq!(store.get_cursor(INST, "poll").await.unwrap(), None);
    let mut page = delivery(INST, "poll-page-1", now);
    page.source = DeliverySource::Poll;
    store
        .ingest_with_cursor(
            page,
            Disposition::Apply(vec![
                order(INST, "R-1", "2024-06-01T00:00:00Z"),
                order(INST, "R-2", "2024-06-01T00:00:00Z"),
            ]),
            Some(CursorWrite {
                name: "poll".into(),
                value: r#"{"since":"2024-06-01T00:00:00Z"}"#.into(),
                fence: None,
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        store.get_cursor(INST, "poll").await.unwrap().as_deref(),
        Some(r#"{"since":"2024-06-01T00:00:00Z"}"#)
    );
    store
        .ingest(
            delivery(INST, "push-r", now),
            Disposition::Apply(vec![
                order(INST, "R-2", "2024-06-01T00:00:00Z"),
                order(INST, "R-3", "2024-06-02T00:00:00Z"),
            ]),
        )
        .await
        .unwrap();
    let r = store.reconcile(INST, None).await.unwrap();
    let id = |e: &str| OrderId::derive(INST, e).as_str().to_string();
    assert!(r.polled_not_pushed.contains(&id("R-1")));
    assert!(!r.polled_not_pushed.contains(&id("R-2")));
    assert!(r.pushed_not_polled.contains(&id("R-3")));
    assert!(!r.pushed_not_polled.contains(&id("R-2")));
    // Only recent orders: R-3 was updated on 2024-06-02.
    let since = DateTime::parse_from_rfc3339("2024-06-01T12:00:00Z")
        .unwrap()
        .to_utc();
    let r = store.reconcile(INST, Some(since)).await.unwrap();
    assert!(!r.polled_not_pushed.contains(&id("R-1")), "{r:?}");
    assert!(r.pushed_not_polled.contains(&id("R-3")));
}

/// The jobs' data and published results.
async fn reco_results<S: crossgate::backend::Stores>(store: &S) {
    use crossgate::reco::store::{RecoKind, RecoPart, RecoResults, RecoWrite};
    let put = |kind, key: &str, json: Option<&str>| RecoWrite {
        kind,
        key: key.into(),
        json: json.map(str::to_string),
    };
    assert_eq!(store.reco_meta(RecoPart::Rankings).await.unwrap(), None);
    assert_eq!(store.reco_ranking("sales|*|*", 10).await.unwrap(), None);
    store
        .reco_apply(vec![
            put(RecoKind::Order, "o.b", Some("{\"b\":1}")),
            put(RecoKind::Order, "o.a", Some("{\"a\":1}")),
            put(RecoKind::Item, "l.x", Some("{\"x\":1}")),
        ])
        .await
        .unwrap();
    // Rewriting is idempotent; a removal removes.
    store
        .reco_apply(vec![
            put(RecoKind::Order, "o.a", Some("{\"a\":2}")),
            put(RecoKind::Order, "o.b", None),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.reco_load(RecoKind::Order).await.unwrap(),
        vec!["{\"a\":2}"]
    );
    assert_eq!(
        store.reco_load(RecoKind::Item).await.unwrap(),
        vec!["{\"x\":1}"]
    );
    for generation in 1..=2 {
        let lists = vec![(
            "item_knn".to_string(),
            "c.1".to_string(),
            format!("[[\"SKU-{generation}\",1.0]]"),
        )];
        store
            .reco_publish(RecoResults::Recommendations {
                meta: format!("{{\"g\":{generation}}}"),
                lists,
            })
            .await
            .unwrap();
        let entries = vec![
            ("B".to_string(), 3.0, "{}".to_string()),
            ("A".to_string(), 3.0, "{}".to_string()),
            ("C".to_string(), generation as f64, "{}".to_string()),
        ];
        store
            .reco_publish(RecoResults::Rankings {
                meta: "{}".into(),
                sets: vec![
                    ("sales|*|*".into(), entries.clone()),
                    (
                        "price|*|*".into(),
                        vec![
                            ("Z".into(), 1.0, "{}".into()),
                            ("Y".into(), 2.0, "{}".into()),
                        ],
                    ),
                ],
            })
            .await
            .unwrap();
    }
    // Only the newest results are served, in the published order.
    assert_eq!(
        store.reco_list("item_knn", "c.1").await.unwrap().as_deref(),
        Some("[[\"SKU-2\",1.0]]")
    );
    assert_eq!(store.reco_list("item_knn", "c.2").await.unwrap(), None);
    assert_eq!(
        store
            .reco_meta(RecoPart::Recommendations)
            .await
            .unwrap()
            .as_deref(),
        Some("{\"g\":2}")
    );
    let top = store.reco_ranking("sales|*|*", 2).await.unwrap().unwrap();
    assert_eq!(
        top.iter().map(|e| (e.0.as_str(), e.1)).collect::<Vec<_>>(),
        [("B", 3.0), ("A", 3.0)]
    );
    let cheap = store.reco_ranking("price|*|*", 5).await.unwrap().unwrap();
    assert_eq!(cheap[0].0, "Z");
    // A reset forgets the jobs' data (the results stay served until the next publish).
    store.reco_reset("reco").await.unwrap();
    assert!(store.reco_load(RecoKind::Order).await.unwrap().is_empty());
    assert!(store.reco_list("item_knn", "c.1").await.unwrap().is_some());
}

fn reason() -> DeadLetterReason {
    DeadLetterReason {
        kind: "fields".into(),
        message: "1 field(s) invalid: lines[0].quantity: -1 is negative".into(),
        errors: Vec::new(),
    }
}

/// The store contract, run on each backend: its parts run in order on one store (later parts
/// count what earlier ones stored).
async fn contract<S: crossgate::backend::Stores>(store: &S) {
    let now = Utc::now();
    contract_ingest_and_reads(store, now).await;
    contract_revisions(store, now).await;
    contract_dead_letters(store, now).await;
    contract_listing_and_events(store, now).await;
    customers(store, now).await;
}

/// Dedupe, instances, and reads of exactly what was stored.
async fn contract_ingest_and_reads<S: crossgate::backend::Stores>(store: &S, now: DateTime<Utc>) {
    // Ready: a probe write goes through (what /readyz asks), repeatedly.
    store.ready(now).await.unwrap();
    store.ready(now).await.unwrap();

    // Created, then the same dedupe id again is a duplicate and writes nothing.
    let o1 = order(INST, "A-1", "2024-05-01T10:00:00+09:00");
    let id1 = OrderId::derive(INST, "A-1");
    let first = store
        .ingest(
            delivery(INST, "d-1", now),
            Disposition::Apply(vec![o1.clone()]),
        )
        .await
        .unwrap();
    assert_eq!(changes(&first), [Change::Created]);
    let first_delivery = match &first {
        IngestOutcome::Stored { delivery_id, .. } => delivery_id.clone(),
        _ => unreachable!(),
    };
    let events_after_first = store.event_count().await.unwrap();
    assert_eq!(events_after_first, 1);
    let dup = store
        .ingest(
            delivery(INST, "d-1", now),
            Disposition::Apply(vec![o1.clone()]),
        )
        .await
        .unwrap();
    assert_eq!(
        dup,
        IngestOutcome::Duplicate {
            original_delivery_id: first_delivery.clone()
        }
    );
    assert_eq!(
        store.event_count().await.unwrap(),
        1,
        "a duplicate appends no event"
    );
    // The same dedupe id on another instance is a different delivery.
    let other = store
        .ingest(
            delivery(OTHER, "d-1", now),
            Disposition::Apply(vec![order(OTHER, "A-1", "2024-05-01T10:00:00+09:00")]),
        )
        .await
        .unwrap();
    assert_eq!(changes(&other), [Change::Created]);

    // Reads return exactly what was stored.
    let got = store.get_order(&id1).await.unwrap().unwrap();
    assert_eq!(Record::Order(Box::new(got)), o1);
    assert!(
        store
            .get_order(&OrderId::derive(INST, "nope"))
            .await
            .unwrap()
            .is_none()
    );
    let raw = store.get_delivery(&first_delivery).await.unwrap().unwrap();
    assert_eq!(raw.body, b"{\"raw\":\"d-1\"}");
    assert_eq!(raw.topic.as_deref(), Some("orders/create"));
}

/// Revisions: newer wins, older never overwrites, same revision converges.
async fn contract_revisions<S: crossgate::backend::Stores>(store: &S, now: DateTime<Utc>) {
    // The order the first part stored.
    let id1 = OrderId::derive(INST, "A-1");
    // Newer revision wins; older never overwrites; the same revision is unchanged.
    let newer = order(INST, "A-1", "2024-05-02T10:00:00+09:00");
    let up = store
        .ingest(
            delivery(INST, "d-2", now),
            Disposition::Apply(vec![newer.clone()]),
        )
        .await
        .unwrap();
    assert_eq!(changes(&up), [Change::Updated]);
    let stale = store
        .ingest(
            delivery(INST, "d-3", now),
            Disposition::Apply(vec![order(INST, "A-1", "2024-05-01T12:00:00+09:00")]),
        )
        .await
        .unwrap();
    assert_eq!(changes(&stale), [Change::Stale]);
    let same = store
        .ingest(
            delivery(INST, "d-4", now),
            Disposition::Apply(vec![newer.clone()]),
        )
        .await
        .unwrap();
    assert_eq!(changes(&same), [Change::Unchanged]);
    assert_eq!(
        Record::Order(Box::new(store.get_order(&id1).await.unwrap().unwrap())),
        newer
    );
    assert_eq!(
        store.event_count().await.unwrap(),
        3,
        "created, created (other), updated"
    );

    // Same revision, different content: the same winner whatever the arrival order.
    let mut a = order(INST, "TIE", "2024-06-01T00:00:00Z");
    let mut b = a.clone();
    if let (Record::Order(x), Record::Order(y)) = (&mut a, &mut b) {
        x.number = Some("X".into());
        y.number = Some("Y".into());
    }
    store
        .ingest(
            delivery(INST, "tie-1", now),
            Disposition::Apply(vec![a.clone()]),
        )
        .await
        .unwrap();
    store
        .ingest(
            delivery(INST, "tie-2", now),
            Disposition::Apply(vec![b.clone()]),
        )
        .await
        .unwrap();
    let winner_ab = store
        .get_order(&OrderId::derive(INST, "TIE"))
        .await
        .unwrap()
        .unwrap()
        .number;
    let mut a2 = a.clone();
    let mut b2 = b.clone();
    for r in [&mut a2, &mut b2] {
        if let Record::Order(o) = r {
            o.external_id = "TIE2".into();
            o.id = OrderId::derive(INST, "TIE2");
        }
    }
    store
        .ingest(delivery(INST, "tie-3", now), Disposition::Apply(vec![b2]))
        .await
        .unwrap();
    store
        .ingest(delivery(INST, "tie-4", now), Disposition::Apply(vec![a2]))
        .await
        .unwrap();
    let winner_ba = store
        .get_order(&OrderId::derive(INST, "TIE2"))
        .await
        .unwrap()
        .unwrap()
        .number;
    assert_eq!(
        winner_ab, winner_ba,
        "tie-break does not depend on arrival order"
    );
}

/// Dead letters (whole and per item), pages with failed items, ignored deliveries.
async fn contract_dead_letters<S: crossgate::backend::Stores>(store: &S, now: DateTime<Utc>) {
    let t = |s: &str| s.to_string();
    // Dead letters: stored with the reason and the raw body, listed, updated, resolved.
    let dead = store
        .ingest(
            delivery(INST, "d-dead", now),
            Disposition::DeadLetter(reason()),
        )
        .await
        .unwrap();
    let dl_id = match dead {
        IngestOutcome::Stored {
            delivery_id,
            ref dead_letters,
            ref records,
            ..
        } => {
            assert!(records.is_empty());
            assert_eq!(dead_letters, std::slice::from_ref(&delivery_id));
            delivery_id
        }
        other => panic!("{other:?}"),
    };
    let listed = store
        .list_dead_letters(DeadLetterQuery {
            instance: Some(t(INST)),
            after: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].id, dl_id);
    assert_eq!(listed.items[0].reason, reason());
    assert!(
        store.get_delivery(&dl_id).await.unwrap().is_some(),
        "raw body kept"
    );
    let updated = store.update_dead_letter(&dl_id, reason()).await.unwrap();
    assert_eq!(updated.failed_replays, 1);
    let resolved = store
        .resolve_dead_letter(
            &dl_id,
            vec![order(INST, "FROM-DL", "2024-05-03T00:00:00Z")],
            now,
        )
        .await
        .unwrap();
    assert_eq!(resolved[0].change, Change::Created);
    assert_eq!(resolved[0].kind, RecordKind::Order);
    assert!(store.get_dead_letter(&dl_id).await.unwrap().is_none());
    assert!(matches!(
        store.resolve_dead_letter(&dl_id, vec![], now).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        store
            .get_order(&OrderId::derive(INST, "FROM-DL"))
            .await
            .unwrap()
            .is_some()
    );

    // A page of several items, one of which did not map: the others are stored, the failed one
    // is a dead letter of its own, and the raw page stays until that dead letter is resolved.
    let page = delivery(INST, "page-1", now);
    let page_id = page.delivery_id.clone();
    let partial = store
        .ingest(
            page,
            Disposition::Partial {
                records: vec![
                    order(INST, "PG-0", "2024-07-01T00:00:00Z"),
                    order(INST, "PG-2", "2024-07-01T00:00:00Z"),
                ],
                failures: vec![(1, reason())],
            },
        )
        .await
        .unwrap();
    let item_dl = crossgate::store::item_dead_letter_id(&page_id, 1);
    match &partial {
        IngestOutcome::Stored {
            records,
            dead_letters,
            ..
        } => {
            assert_eq!(records.len(), 2);
            assert_eq!(dead_letters, std::slice::from_ref(&item_dl));
        }
        other => panic!("{other:?}"),
    }
    let parked = store.get_dead_letter(&item_dl).await.unwrap().unwrap();
    assert_eq!(
        (parked.item, parked.delivery_id.as_str()),
        (Some(1), page_id.as_str())
    );
    store
        .resolve_dead_letter(
            &item_dl,
            vec![order(INST, "PG-1", "2024-07-01T00:00:00Z")],
            now,
        )
        .await
        .unwrap();
    assert!(
        store
            .get_order(&OrderId::derive(INST, "PG-1"))
            .await
            .unwrap()
            .is_some()
    );
    assert!(store.get_delivery(&page_id).await.unwrap().is_some());

    // Ignored deliveries are stored raw, but produce no record and no dead letter.
    let ignored = store
        .ingest(delivery(INST, "d-ign", now), Disposition::Ignore)
        .await
        .unwrap();
    assert!(matches!(
        ignored,
        IngestOutcome::Stored { ignored: true, .. }
    ));
}

/// Listing with cursors, and the event stream with consumer groups.
async fn contract_listing_and_events<S: crossgate::backend::Stores>(store: &S, now: DateTime<Utc>) {
    let t = |s: &str| s.to_string();
    // Listing by time with cursor pagination, per instance and across instances.
    for i in 0..25 {
        let ts = format!("2025-01-01T00:00:{:02}Z", i / 2); // pairs share a timestamp
        store
            .ingest(
                delivery(INST, &format!("p-{i}"), now),
                Disposition::Apply(vec![order(INST, &format!("P-{i:02}"), &ts)]),
            )
            .await
            .unwrap();
    }
    let since = DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
        .unwrap()
        .to_utc();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_orders(OrderQuery {
                instance: Some(t(INST)),
                since: Some(since),
                after: after.clone(),
                limit: 10,
            })
            .await
            .unwrap();
        assert!(page.items.len() <= 10);
        seen.extend(
            page.items
                .iter()
                .map(|o| (o.revision.updated_at.to_utc(), o.id.clone())),
        );
        match page.next {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 25, "every order exactly once");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "ordered by (updated_at, id)");
    let all = store
        .list_orders(OrderQuery {
            instance: None,
            since: None,
            after: None,
            limit: 500,
        })
        .await
        .unwrap();
    assert_eq!(
        all.items.len(),
        25 + 5 + 3,
        "A-1, TIE, TIE2, FROM-DL, PG-0..2 on shop + A-1 on app"
    );
    assert!(all.next.is_none());

    // The event stream: groups read everything once acknowledged; unacknowledged come back.
    let total = store.event_count().await.unwrap();
    let batch = store.read_events("jobs", "c1", 1000).await.unwrap();
    assert_eq!(batch.len() as u64, total);
    assert!(batch.iter().all(|e| e.event.change.wrote()));
    let again = store.read_events("jobs", "c1", 1000).await.unwrap();
    assert_eq!(
        again.len() as u64,
        total,
        "nothing acknowledged yet: read again"
    );
    // Read but not acknowledged is still behind, from the oldest event on.
    let lag = |store: &S, group: &'static str| {
        let store = store.clone();
        async move { store.consumer_lag(&[group]).await.unwrap().remove(0) }
    };
    let read = lag(store, "jobs").await;
    assert_eq!((read.group.as_str(), read.behind), ("jobs", total));
    let age = Utc::now() - read.oldest.expect("behind, so an oldest event");
    assert!(age < Duration::minutes(10), "{age}");
    let ids: Vec<String> = batch.iter().map(|e| e.id.clone()).collect();
    store.ack_events("jobs", &ids).await.unwrap();
    assert!(
        store
            .read_events("jobs", "c1", 1000)
            .await
            .unwrap()
            .is_empty()
    );
    let caught_up = lag(store, "jobs").await;
    assert_eq!((caught_up.behind, caught_up.oldest), (0, None));
    store
        .ingest(
            delivery(INST, "late", now),
            Disposition::Apply(vec![order(INST, "LATE", "2025-02-01T00:00:00Z")]),
        )
        .await
        .unwrap();
    assert_eq!(
        lag(store, "jobs").await.behind,
        1,
        "the new event, not yet read"
    );
    // A group that never read is behind by every event.
    assert_eq!(lag(store, "never-read").await.behind, total + 1);
    let late = store.read_events("jobs", "c1", 1000).await.unwrap();
    assert_eq!(late.len(), 1);
    assert_eq!(
        late[0].event.record_id,
        OrderId::derive(INST, "LATE").as_str()
    );
    // Another group reads from the start.
    assert_eq!(
        store
            .read_events("other", "c1", 10_000)
            .await
            .unwrap()
            .len() as u64,
        total + 1
    );

    store.ping().await.unwrap();
}

/// Dedupe ids are forgotten after their TTL (Redis expires them; the embedded store sweeps).
async fn expiry<S: crossgate::backend::Stores>(store: &S, ttl: Duration) {
    let long_ago = Utc::now() - ttl - Duration::seconds(5);
    let first = store
        .ingest(
            delivery(INST, "exp-1", long_ago),
            Disposition::Apply(vec![order(INST, "EXP", "2024-01-01T00:00:00Z")]),
        )
        .await
        .unwrap();
    assert!(matches!(first, IngestOutcome::Stored { .. }));
    store.housekeeping(Utc::now()).await.unwrap();
    let again = store
        .ingest(
            delivery(INST, "exp-1", Utc::now()),
            Disposition::Apply(vec![order(INST, "EXP", "2024-01-01T00:00:00Z")]),
        )
        .await
        .unwrap();
    assert_eq!(
        changes(&again),
        [Change::Unchanged],
        "accepted again, but the record is unchanged"
    );
}

/// Leases: one holder at a time, renewal keeps the token, a new holder gets a larger one, and
/// a page written under an old token is refused whole (nothing of it, not even its cursor).
async fn leases_and_fencing<S: crossgate::backend::Stores>(store: &S) {
    use crossgate::store::{Lease, StoreError};
    let lease = Lease::poller(INST);
    let ttl = std::time::Duration::from_millis(300);
    let a = store
        .lease(&lease, "replica-a", ttl)
        .await
        .unwrap()
        .expect("free");
    assert_eq!(store.lease(&lease, "replica-b", ttl).await.unwrap(), None);
    let renewed = store.lease(&lease, "replica-a", ttl).await.unwrap();
    assert_eq!(renewed, Some(a.clone()), "renewal keeps the token");
    let state = &store
        .lease_states(std::slice::from_ref(&lease))
        .await
        .unwrap()[0];
    assert_eq!(state.holder.as_deref(), Some("replica-a"));
    assert_eq!(state.token, a.token);
    // replica-a pauses past its lease; replica-b takes over.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let b = store
        .lease(&lease, "replica-b", ttl)
        .await
        .unwrap()
        .expect("expired");
    assert!(b.token > a.token, "{b:?} after {a:?}");
    let page = |dedupe: &str, fence: &crossgate::store::Fence, cursor: &str| {
        let mut d = delivery(INST, dedupe, Utc::now());
        d.source = DeliverySource::Poll;
        (
            d,
            Disposition::Apply(vec![order(INST, dedupe, "2024-07-01T00:00:00Z")]),
            Some(CursorWrite {
                name: "poll".into(),
                value: cursor.into(),
                fence: Some(fence.clone()),
            }),
        )
    };
    let (d, disp, cur) = page("FENCE-NEW", &b, "new");
    store.ingest_with_cursor(d, disp, cur).await.unwrap();
    let (d, disp, cur) = page("FENCE-OLD", &a, "old");
    let refused = store.ingest_with_cursor(d, disp, cur).await;
    assert!(
        matches!(refused, Err(StoreError::LeaseLost(_))),
        "{refused:?}"
    );
    assert_eq!(
        store.get_cursor(INST, "poll").await.unwrap().as_deref(),
        Some("new")
    );
    assert!(
        store
            .get_order(&OrderId::derive(INST, "FENCE-OLD"))
            .await
            .unwrap()
            .is_none(),
        "nothing of the fenced page is written"
    );
    // Released, the lease is free at once; tokens keep growing.
    store.release(&lease, "replica-b").await.unwrap();
    let c = store
        .lease(&lease, "replica-a", ttl)
        .await
        .unwrap()
        .expect("released");
    assert!(c.token > b.token);
    store.release(&lease, "replica-a").await.unwrap();
}

#[tokio::test]
async fn embedded_store_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(
        &dir.path().join("c.redb"),
        EmbeddedOptions {
            dedupe_ttl: std::time::Duration::from_secs(3600),
            raw_retention: std::time::Duration::from_secs(3600),
            cache_bytes: 32 << 20,
        },
    )
    .unwrap();
    contract(&store).await;
    lifecycle(&store).await;
    payment_mismatch(&store).await;
    cursors_and_reconciliation(&store).await;
    reco_results(&store).await;
    leases_and_fencing(&store).await;
    let report = store
        .housekeeping(Utc::now() + Duration::days(1))
        .await
        .unwrap();
    assert!(
        report.dedupe_keys_expired > 0 && report.raw_bodies_expired > 0,
        "{report:?}"
    );
    expiry(&store, Duration::hours(1)).await;
}

#[tokio::test]
async fn embedded_store_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.redb");
    let opts = EmbeddedOptions {
        dedupe_ttl: std::time::Duration::from_secs(3600),
        raw_retention: std::time::Duration::from_secs(3600),
        cache_bytes: 32 << 20,
    };
    {
        let store = EmbeddedStore::open(&path, opts.clone()).unwrap();
        store
            .ingest(
                delivery(INST, "keep", Utc::now()),
                Disposition::Apply(vec![order(INST, "KEEP", "2024-01-01T00:00:00Z")]),
            )
            .await
            .unwrap();
    }
    // The writer thread of the first handle may still hold the file briefly.
    let store = loop {
        match EmbeddedStore::open(&path, opts.clone()) {
            Ok(s) => break s,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    };
    assert!(
        store
            .get_order(&OrderId::derive(INST, "KEEP"))
            .await
            .unwrap()
            .is_some()
    );
    let dup = store
        .ingest(
            delivery(INST, "keep", Utc::now()),
            Disposition::Apply(vec![]),
        )
        .await
        .unwrap();
    assert!(matches!(dup, IngestOutcome::Duplicate { .. }));
    assert_eq!(store.event_count().await.unwrap(), 1);
    let next = store
        .ingest(
            delivery(INST, "keep-2", Utc::now()),
            Disposition::Apply(vec![order(INST, "KEEP2", "2024-01-01T00:00:00Z")]),
        )
        .await
        .unwrap();
    assert_eq!(changes(&next), [Change::Created]);
    assert_eq!(
        store.event_count().await.unwrap(),
        2,
        "sequence continues after reopen"
    );
}

async fn redis_store(ttl_secs: u64) -> RedisStore {
    let (store, _) = RedisStore::connect(RedisOptions {
        target: crossgate::backend::redis::Target::Node(redis_url()),
        prefix: unique_prefix("contract"),
        timeout: std::time::Duration::from_secs(2),
        require_fsync: false,
        dedupe_ttl: std::time::Duration::from_secs(ttl_secs),
        raw_retention: std::time::Duration::from_secs(3600),
        instances: vec![INST.into(), OTHER.into()],
        ..Default::default()
    })
    .await
    .expect("a Redis server must answer at CROSSGATE_TEST_REDIS_URL or 127.0.0.1:6379");
    store
}

#[tokio::test]
async fn redis_store_meets_the_contract() {
    let store = redis_store(3600).await;
    contract(&store).await;
    lifecycle(&store).await;
    payment_mismatch(&store).await;
    cursors_and_reconciliation(&store).await;
    reco_results(&store).await;
    leases_and_fencing(&store).await;
    store.flush_prefix().await.unwrap();
}

#[tokio::test]
async fn redis_rate_budget_is_shared_and_honours_retry_after() {
    use crossgate::store::{Rate, Store};
    let store = redis_store(3600).await;
    let budget = store.shared_budget().expect("Redis shares its budgets");
    let rate = Rate {
        per_second: 2.0,
        burst: 2,
    };
    // A burst of 2 goes at once; the third waits about one interval (500 ms).
    assert!(budget.take(INST, "api", rate).await.unwrap().is_zero());
    assert!(budget.take(INST, "api", rate).await.unwrap().is_zero());
    let wait = budget.take(INST, "api", rate).await.unwrap();
    assert!(
        wait > std::time::Duration::from_millis(400)
            && wait <= std::time::Duration::from_millis(500),
        "{wait:?}"
    );
    assert_eq!(budget.available(INST, "api", rate).await.unwrap(), 0);
    // Another budget of the same instance is separate.
    assert!(budget.take(INST, "detail:0", rate).await.unwrap().is_zero());
    // Retry-After 3 s: nobody goes for 3 s, whatever the burst.
    budget
        .defer(INST, "detail:0", rate, std::time::Duration::from_secs(3))
        .await
        .unwrap();
    let wait = budget.take(INST, "detail:0", rate).await.unwrap();
    assert!(
        wait > std::time::Duration::from_millis(2_900) && wait <= std::time::Duration::from_secs(3),
        "{wait:?}"
    );
    store.flush_prefix().await.unwrap();
}

#[tokio::test]
async fn redis_ingest_recovers_a_lost_script_cache() {
    // After a Redis restart (or SCRIPT FLUSH) the cached ingest script is gone.
    let store = redis_store(3600).await;
    let first = store
        .ingest(
            delivery(INST, "s-1", Utc::now()),
            Disposition::Apply(vec![order(INST, "S-1", "2024-01-01T00:00:00Z")]),
        )
        .await
        .unwrap();
    assert_eq!(changes(&first), [Change::Created]);
    let client = redis::Client::open(redis_url().as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    let second = store
        .ingest(
            delivery(INST, "s-2", Utc::now()),
            Disposition::Apply(vec![order(INST, "S-2", "2024-01-01T00:00:00Z")]),
        )
        .await
        .unwrap();
    assert_eq!(changes(&second), [Change::Created]);
    let dup = store
        .ingest(
            delivery(INST, "s-2", Utc::now()),
            Disposition::Apply(vec![order(INST, "S-2", "2024-01-01T00:00:00Z")]),
        )
        .await
        .unwrap();
    assert!(matches!(dup, IngestOutcome::Duplicate { .. }));
    assert_eq!(store.event_count().await.unwrap(), 2);
    store.flush_prefix().await.unwrap();
}

#[tokio::test]
async fn redis_dedupe_keys_expire() {
    let store = redis_store(1).await;
    let first = store
        .ingest(
            delivery(INST, "exp-1", Utc::now()),
            Disposition::Apply(vec![order(INST, "EXP", "2024-01-01T00:00:00Z")]),
        )
        .await
        .unwrap();
    assert!(matches!(first, IngestOutcome::Stored { .. }));
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let again = store
        .ingest(
            delivery(INST, "exp-1", Utc::now()),
            Disposition::Apply(vec![order(INST, "EXP", "2024-01-01T00:00:00Z")]),
        )
        .await
        .unwrap();
    assert_eq!(changes(&again), [Change::Unchanged]);
    store.flush_prefix().await.unwrap();
}
