//! The outbox part of the store contract (`OutboxStore`), one suite run against the embedded
//! store, a Redis node and a Redis Cluster: coalescing, idempotency keys, claims that run out
//! after a crash, settling, retries, listing and depth.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use crossgate::backend::embedded::{EmbeddedOptions, EmbeddedStore};
use crossgate::backend::redis::{RedisOptions, RedisStore};
use crossgate::model::{CommandField, CurrencyCode, Money};
use crossgate::outbox::store::{Enqueued, Idempotency, OutboxQuery, OutboxStore, RetryError};
use crossgate::outbox::{
    Action, Command, CommandState, ListingChange, ShipmentConfirmation, Target,
};

const INST: &str = "shop-ob";

fn listing(id: &str) -> Target {
    Target::Listing {
        listing_id: id.into(),
        external_id: format!("v-{id}"),
        product_id: None,
        sku: None,
        stock_ref: None,
    }
}

fn stock(target: &str, n: i64, at: DateTime<Utc>) -> Command {
    Command::new(
        INST,
        listing(target),
        Action::Listing(ListingChange {
            stock: Some(n),
            ..Default::default()
        }),
        at,
    )
}

fn shipment(order: &str, at: DateTime<Utc>) -> Command {
    Command::new(
        INST,
        Target::Order {
            order_id: order.into(),
            external_id: "1001".into(),
        },
        Action::Shipment(ShipmentConfirmation {
            carrier: "DHL".into(),
            tracking_number: "JD0002".into(),
            tracking_url: None,
            lines: vec![],
        }),
        at,
    )
}

async fn stored<S: OutboxStore>(
    s: &S,
    cmds: Vec<Command>,
    idem: Option<Idempotency>,
) -> Vec<Command> {
    match s.outbox_enqueue(INST, cmds, idem).await.unwrap() {
        Enqueued::Stored(c) => c,
        other => panic!("not stored: {other:?}"),
    }
}

fn key(k: &str, fingerprint: &str, ttl: Duration) -> Option<Idempotency> {
    Some(Idempotency {
        key: k.into(),
        fingerprint: fingerprint.into(),
        ttl,
    })
}

/// Coalescing and idempotency keys.
async fn enqueue_rules<S: OutboxStore>(s: &S) {
    let now = Utc::now();
    let mut first = stock("l1", 5, now);
    first.action = Action::Listing(ListingChange {
        stock: Some(5),
        price: Some(Money::parse("9.50", CurrencyCode::parse("EUR").unwrap()).unwrap()),
        status: None,
    });
    let a = stored(
        s,
        vec![first.clone()],
        key("k1", "f1", Duration::from_secs(60)),
    )
    .await;
    assert_eq!(a[0].id, first.id);
    // The same call again: the first call's commands; the key with another request: refused.
    assert_eq!(
        s.outbox_enqueue(
            INST,
            vec![stock("l1", 6, now)],
            key("k1", "f1", Duration::from_secs(60))
        )
        .await
        .unwrap(),
        Enqueued::Repeat(vec![first.id.clone()])
    );
    assert_eq!(
        s.outbox_enqueue(
            INST,
            vec![stock("l1", 6, now)],
            key("k1", "f2", Duration::from_secs(60))
        )
        .await
        .unwrap(),
        Enqueued::KeyReused
    );
    // A later level for the unsent listing replaces the first and keeps its price.
    let b = stored(s, vec![stock("l1", 7, now)], None).await;
    assert_eq!(b[0].replaces, vec![first.id.clone()]);
    let Action::Listing(c) = &b[0].action else {
        panic!()
    };
    assert_eq!((c.stock, c.price.is_some()), (Some(7), true));
    let old = s.outbox_get(&first.id).await.unwrap().unwrap();
    assert_eq!(old.state, CommandState::Coalesced);
    assert_eq!(old.coalesced_into.as_deref(), Some(b[0].id.as_str()));
    // A key kept for a millisecond is forgotten after it.
    stored(
        s,
        vec![stock("l9", 1, now)],
        key("short", "f", Duration::from_millis(1)),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    stored(
        s,
        vec![stock("l9", 2, now)],
        key("short", "g", Duration::from_millis(1)),
    )
    .await;
    // Commands of another instance are refused.
    let mut foreign = stock("l1", 1, now);
    foreign.instance = "elsewhere".into();
    assert!(s.outbox_enqueue(INST, vec![foreign], None).await.is_err());
}

/// Claims, a crash (a claim that runs out), settling and what becomes due next.
async fn claims_and_settling<S: OutboxStore>(s: &S) {
    let now = Utc::now();
    let a = stored(s, vec![stock("c1", 1, now)], None).await.remove(0);
    let until = now + chrono::Duration::seconds(30);
    let claimed = s.outbox_claim(INST, now, until, 10).await.unwrap();
    let head = claimed
        .iter()
        .find(|c| c.id == a.id)
        .expect("due at once")
        .clone();
    assert_eq!(head.state, CommandState::Sent);
    // With the channel: a later level waits behind it, and nothing of c1 is claimed again…
    let b = stored(s, vec![stock("c1", 2, now)], None).await.remove(0);
    assert!(b.replaces.is_empty(), "a sent command is not replaced");
    let again = s.outbox_claim(INST, now, until, 10).await.unwrap();
    assert!(
        again.iter().all(|c| !c.target.key().ends_with("c1")),
        "{again:?}"
    );
    // …until its claim runs out (the worker died): then it is taken again.
    let later = until + chrono::Duration::milliseconds(1);
    let retaken = s
        .outbox_claim(INST, later, later + chrono::Duration::seconds(30), 10)
        .await
        .unwrap();
    let mut head = retaken
        .into_iter()
        .find(|c| c.id == a.id)
        .expect("taken again");
    // Settled confirmed: the next one is due.
    head.state = CommandState::Confirmed;
    head.confirmed = vec![CommandField::Stock];
    head.due_at = None;
    s.outbox_settle(head, later).await.unwrap();
    let next = s
        .outbox_claim(INST, later, later + chrono::Duration::seconds(30), 10)
        .await
        .unwrap();
    let mut next = next
        .into_iter()
        .find(|c| c.id == b.id)
        .expect("next is due");
    // A failed attempt: not due before its time, due after.
    next.state = CommandState::Failed;
    next.due_at = Some(later + chrono::Duration::seconds(5));
    s.outbox_settle(next.clone(), later).await.unwrap();
    let early = s
        .outbox_claim(
            INST,
            later + chrono::Duration::seconds(4),
            later + chrono::Duration::seconds(60),
            10,
        )
        .await
        .unwrap();
    assert!(early.iter().all(|c| c.id != b.id));
    let due = s
        .outbox_claim(
            INST,
            later + chrono::Duration::seconds(6),
            later + chrono::Duration::seconds(60),
            10,
        )
        .await
        .unwrap();
    assert!(due.iter().any(|c| c.id == b.id));
    assert_eq!(
        s.outbox_get(&a.id).await.unwrap().unwrap().state,
        CommandState::Confirmed
    );
}

/// Dead commands: retried, unless a newer command for the listing exists; shipments always.
async fn retries<S: OutboxStore>(s: &S) {
    let now = Utc::now();
    let until = now + chrono::Duration::seconds(30);
    let a = stored(s, vec![stock("r1", 1, now), shipment("o1", now)], None).await;
    let mut claimed = s.outbox_claim(INST, now, until, 100).await.unwrap();
    claimed.retain(|c| c.id == a[0].id || c.id == a[1].id);
    assert_eq!(claimed.len(), 2);
    for mut c in claimed {
        c.state = CommandState::Dead;
        c.reason = Some("refused".into());
        c.due_at = None;
        s.outbox_settle(c, now).await.unwrap();
    }
    let retried = s.outbox_retry(&a[1].id, now).await.unwrap();
    assert_eq!(retried.state, CommandState::Queued);
    let listing_retry = s.outbox_retry(&a[0].id, now).await.unwrap();
    assert_eq!(listing_retry.state, CommandState::Queued);
    // Dead again, then a newer level: retrying the old one would overwrite it.
    let mut c = s
        .outbox_claim(INST, now, until, 100)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.id == a[0].id)
        .unwrap();
    c.state = CommandState::Dead;
    s.outbox_settle(c, now).await.unwrap();
    stored(s, vec![stock("r1", 2, now)], None).await;
    assert!(matches!(
        s.outbox_retry(&a[0].id, now).await,
        Err(RetryError::Refused(_))
    ));
    assert!(matches!(
        s.outbox_retry("ob.shop-ob.nope", now).await,
        Err(RetryError::Store(_))
    ));
}

/// Newest first, by state, page by page; depth counts open commands.
async fn listing_and_depth<S: OutboxStore>(s: &S) {
    let base = Utc::now();
    let mut ids = Vec::new();
    for i in 0..5 {
        let at = base + chrono::Duration::milliseconds(i);
        ids.push(
            stored(s, vec![stock(&format!("p{i}"), i, at)], None)
                .await
                .remove(0)
                .id,
        );
    }
    let q = |after, state| OutboxQuery {
        instance: INST.into(),
        state,
        after,
        limit: 2,
    };
    let first = s
        .outbox_list(q(None, Some(CommandState::Queued)))
        .await
        .unwrap();
    assert_eq!(
        first.items.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        [ids[4].clone(), ids[3].clone()]
    );
    let second = s
        .outbox_list(q(first.next, Some(CommandState::Queued)))
        .await
        .unwrap();
    assert_eq!(
        second
            .items
            .iter()
            .map(|c| c.id.clone())
            .collect::<Vec<_>>(),
        [ids[2].clone(), ids[1].clone()]
    );
    let coalesced = s
        .outbox_list(q(None, Some(CommandState::Coalesced)))
        .await
        .unwrap();
    assert!(
        coalesced
            .items
            .iter()
            .all(|c| c.state == CommandState::Coalesced)
            && !coalesced.items.is_empty()
    );
    assert!(s.outbox_depth(INST).await.unwrap() >= 5);
    assert_eq!(s.outbox_depth("no-such").await.unwrap(), 0);
}

/// Many writers on one listing at once: every command is stored (writes that collide are
/// planned again, not refused), and all but the last are coalesced into one open command.
async fn contention<S: OutboxStore + Clone>(s: &S) {
    let now = Utc::now();
    let mut tasks = Vec::new();
    for w in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..10 {
                ids.push(
                    stored(&s, vec![stock("hot", w * 100 + i, now)], None)
                        .await
                        .remove(0)
                        .id,
                );
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    let mut open = 0;
    for id in &ids {
        let c = s.outbox_get(id).await.unwrap().unwrap();
        match c.state {
            CommandState::Queued => open += 1,
            CommandState::Coalesced => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((ids.len(), open), (160, 1));
}

async fn outbox_contract<S: OutboxStore + Clone>(s: &S) {
    contention(s).await;
    enqueue_rules(s).await;
    claims_and_settling(s).await;
    retries(s).await;
    listing_and_depth(s).await;
}

#[tokio::test]
async fn embedded_outbox_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(
        &dir.path().join("o.redb"),
        EmbeddedOptions {
            dedupe_ttl: Duration::from_secs(3600),
            raw_retention: Duration::from_secs(3600),
            cache_bytes: 32 << 20,
        },
    )
    .unwrap();
    outbox_contract(&store).await;
    // Housekeeping removes the keys whose time is up (Redis expires them by itself).
    use crossgate::store::Store;
    let report = store
        .housekeeping(Utc::now() + chrono::Duration::days(2))
        .await
        .unwrap();
    assert_eq!(
        report.idempotency_keys_expired, 2,
        "k1 and short: {report:?}"
    );
    let again = store
        .housekeeping(Utc::now() + chrono::Duration::days(2))
        .await
        .unwrap();
    assert_eq!(again.idempotency_keys_expired, 0);
}

#[tokio::test]
async fn redis_outbox_meets_the_contract() {
    let (store, _) = RedisStore::connect(RedisOptions {
        target: crossgate::backend::redis::Target::Node(redis_url()),
        prefix: unique_prefix("outbox"),
        timeout: Duration::from_secs(2),
        instances: vec![INST.into()],
        ..Default::default()
    })
    .await
    .unwrap();
    outbox_contract(&store).await;
    store.flush_prefix().await.unwrap();
}

/// On a Redis Cluster (3 masters, 3 replicas), with every write acknowledged by a replica
/// (`WAIT`): the outbox's keys and its script stay in the instance's slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_outbox_meets_the_contract() {
    let cluster = common::cluster::RedisCluster::start();
    let (store, _) = RedisStore::connect(RedisOptions {
        target: crossgate::backend::redis::Target::Cluster(cluster.urls()),
        prefix: unique_prefix("outbox-cl"),
        timeout: Duration::from_secs(5),
        replica_acks: 1,
        replica_ack_timeout: Duration::from_secs(2),
        instances: vec![INST.into()],
        ..Default::default()
    })
    .await
    .unwrap();
    outbox_contract(&store).await;
}
