//! The ingest pipeline: the one path every pushed delivery takes, shared by the HTTP server,
//! dead-letter replay and the CLI.
//!
//! Order of work for a delivery (the body limit is enforced before this, by the server):
//! 1. signature check on the raw bytes (constant time), else [`IngestError::Unauthorized`];
//! 2. parse and normalize (pure CPU, microseconds) into records, or a dead-letter reason;
//! 3. one atomic store write: dedupe check, raw delivery, records + events or dead letter;
//! 4. only then the caller answers 2xx.
//!
//! Normalizing before the write (rather than after the answer) keeps the write atomic and lets
//! the answer say what happened; it is safe because normalization does no IO.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::adapter::{Headers, NormalizeError, RecordContext, Routed, SignatureError};
use crate::config::{Config, Instance};
use crate::store::{
    DeadLetter, DeadLetterReason, Disposition, FieldErrorRecord, IngestOutcome, RawDelivery,
    RecordResult, Store, StoreError,
};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("no channel instance '{0}'")]
    UnknownInstance(String),
    #[error("instance '{0}' does not accept pushed deliveries")]
    NoWebhook(String),
    #[error("delivery is not authentic: {0}")]
    Unauthorized(SignatureError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a pushed request turned out to be.
#[derive(Debug)]
pub enum Ingested {
    Delivery(IngestReport),
    /// An unsigned activation ping (WooCommerce): answered 200, nothing stored.
    Ping,
}

/// What happened to a delivery.
#[derive(Debug)]
pub struct IngestReport {
    /// A thin webhook, stored; its record is being fetched.
    pub fetch_pending: bool,
    pub outcome: IngestOutcome,
    /// Why the delivery (None) or some of its items were dead-lettered.
    pub errors: Vec<(Option<usize>, NormalizeError)>,
}

/// A new gateway delivery id: `d.<instance>.<time-ordered uuid>`.
pub fn new_delivery_id(instance: &str) -> String {
    format!("d.{instance}.{}", uuid::Uuid::now_v7().simple())
}

pub fn record_context(inst: &Instance) -> RecordContext<'_> {
    RecordContext {
        instance: &inst.id,
        channel: inst.adapter.name(),
        channel_kind: inst.adapter.spec().channel_kind,
        account: &inst.account,
        settings: &inst.settings,
        received_at: Utc::now(),
    }
}

pub fn dead_letter_reason(e: &NormalizeError) -> DeadLetterReason {
    DeadLetterReason {
        kind: e.kind().to_string(),
        message: e.to_string(),
        errors: e.fields().iter().map(FieldErrorRecord::from).collect(),
    }
}

/// What the gateway decided for an authentic delivery, before storing it.
#[derive(Debug)]
pub struct Disposed {
    pub disposition: Disposition,
    pub topic: Option<String>,
    pub dedupe_id: String,
    /// Every problem, by item (None for the whole delivery).
    pub errors: Vec<(Option<usize>, NormalizeError)>,
}

/// Parses and maps a delivery with its instance's adapter (pure).
pub fn route(
    inst: &Instance,
    headers: &Headers,
    body: &[u8],
) -> (Result<Routed, NormalizeError>, Option<String>, String) {
    let adapter = &inst.adapter;
    let doc = adapter.parse(body);
    let dedupe_id = adapter.dedupe_id(headers, doc.as_ref().ok(), body);
    let topic = adapter.topic(headers, doc.as_ref().ok());
    let mapped = doc.and_then(|doc| {
        let target = adapter.route(topic.as_deref());
        adapter.map(&doc, target, &record_context(inst))
    });
    (mapped, topic, dedupe_id)
}

/// Sets the cross-channel customer key of each order (when a salt is configured).
pub fn set_customer_keys(inst: &Instance, records: &mut [crate::model::Record]) {
    let Some(salt) = &inst.customer_key_salt else {
        return;
    };
    for r in records {
        if let crate::model::Record::Order(o) = r
            && let Some(c) = &mut o.customer
        {
            let salt = salt.expose().as_bytes();
            c.key = c
                .derive_key(salt)
                .or_else(|| c.derive_account_key(salt, &inst.id));
        }
    }
}

/// The dead-letter kind of a thin webhook waiting for its record to be fetched.
pub const FETCH_PENDING: &str = "fetch_pending";

/// Whether deliveries of this topic only name a record the gateway fetches (thin webhooks).
pub fn needs_fetch(inst: &Instance, topic: Option<&str>) -> bool {
    match (&inst.adapter.spec().fetch, topic) {
        (Some(f), Some(t)) => f.topics.iter().any(|x| x == t),
        _ => false,
    }
}

/// Decides what to store for an authentic delivery (pure).
pub fn dispose(inst: &Instance, headers: &Headers, body: &[u8]) -> Disposed {
    let (mut mapped, topic, dedupe_id) = route(inst, headers, body);
    if needs_fetch(inst, topic.as_deref()) {
        // Stored now, parked until the fetch worker has the full record.
        return Disposed {
            disposition: Disposition::DeadLetter(DeadLetterReason {
                kind: FETCH_PENDING.into(),
                message: "thin webhook: the record is being fetched from the channel API".into(),
                errors: Vec::new(),
            }),
            topic,
            dedupe_id,
            errors: Vec::new(),
        };
    }
    if let Ok(Routed::Items(items)) = &mut mapped {
        for item in items {
            if let Ok(records) = &mut item.result {
                set_customer_keys(inst, records);
            }
        }
    }
    let (disposition, errors) = match mapped {
        Err(e) => (
            Disposition::DeadLetter(dead_letter_reason(&e)),
            vec![(None, e)],
        ),
        Ok(Routed::Ignored) => (Disposition::Ignore, Vec::new()),
        Ok(Routed::Items(mut items)) if items.len() == 1 => match items.remove(0).result {
            Ok(records) => (Disposition::Apply(records), Vec::new()),
            Err(e) => (
                Disposition::DeadLetter(dead_letter_reason(&e)),
                vec![(None, e)],
            ),
        },
        Ok(Routed::Items(items)) => {
            let mut records = Vec::new();
            let mut failures = Vec::new();
            let mut errors = Vec::new();
            for item in items {
                match item.result {
                    Ok(r) => records.extend(r),
                    Err(e) => {
                        failures.push((item.index, dead_letter_reason(&e)));
                        errors.push((Some(item.index), e));
                    }
                }
            }
            let d = if failures.is_empty() {
                Disposition::Apply(records)
            } else {
                Disposition::Partial { records, failures }
            };
            (d, errors)
        }
    };
    Disposed {
        disposition,
        topic,
        dedupe_id,
        errors,
    }
}

/// The topic recorded for canonical order JSON submitted through the API (so a replay reads it
/// the same way).
pub const CANONICAL_TOPIC: &str = "crossgate/canonical-order";

/// How a delivery submitted through the API or the CLI is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submission {
    /// In the instance adapter's own format (a CSV file for the phone adapter).
    AdapterFormat,
    /// Canonical order JSON (call-centre tools, like the app).
    CanonicalOrder,
    /// Canonical listing JSON (a catalogue import).
    CanonicalListing,
}

/// The topic a canonical listing submission is stored under (so that a replay reads it as one).
pub const CANONICAL_LISTING_TOPIC: &str = "crossgate/canonical-listing";

/// Decides what to store for a submitted delivery (pure).
fn dispose_submission(inst: &Instance, how: Submission, body: &[u8]) -> Disposed {
    let routed = match how {
        Submission::AdapterFormat => return dispose(inst, &Headers::default(), body),
        Submission::CanonicalOrder => inst.adapter.map_canonical(body, &record_context(inst)),
        Submission::CanonicalListing => inst
            .adapter
            .map_canonical_listing(body, &record_context(inst)),
    };
    let (disposition, errors) = match routed.and_then(Routed::into_records) {
        Ok(mut records) => {
            set_customer_keys(inst, &mut records);
            (Disposition::Apply(records), Vec::new())
        }
        Err(e) => (
            Disposition::DeadLetter(dead_letter_reason(&e)),
            vec![(None, e)],
        ),
    };
    Disposed {
        disposition,
        topic: None,
        dedupe_id: String::new(),
        errors,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// A canonical submission that does not map: the caller is told every problem and nothing
    /// is stored (dead letters are for channel deliveries, which cannot be answered back).
    #[error("the submission is not valid: {0}")]
    Invalid(NormalizeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stores a delivery submitted by an authenticated caller (API token or local CLI): no
/// signature, otherwise the same path as a webhook. `idempotency_key` makes retries safe; without
/// one the body's hash is used. A canonical order or listing that does not map is refused
/// ([`SubmitError::Invalid`]); a file in the adapter's format (an import) keeps the webhook
/// behaviour, its bad items dead-lettered beside the good ones.
pub async fn submit<S: Store>(
    store: &S,
    inst: &Arc<Instance>,
    how: Submission,
    idempotency_key: Option<&str>,
    body: Vec<u8>,
    now: DateTime<Utc>,
) -> Result<IngestReport, SubmitError> {
    let (body, mut d) = {
        let inst = inst.clone();
        on_cpu(body.len(), move || {
            let d = dispose_submission(&inst, how, &body);
            (body, d)
        })
        .await
    };
    if how != Submission::AdapterFormat
        && matches!(d.disposition, Disposition::DeadLetter(_))
        && let Some((_, e)) = d.errors.pop()
    {
        return Err(SubmitError::Invalid(e));
    }
    use sha2::Digest;
    d.dedupe_id = match idempotency_key {
        Some(k) => format!("key:{k}"),
        None => format!("body-sha256:{}", hex::encode(sha2::Sha256::digest(&body))),
    };
    let delivery = RawDelivery {
        delivery_id: new_delivery_id(&inst.id),
        instance: inst.id.clone(),
        dedupe_id: d.dedupe_id,
        received_at: now,
        topic: match how {
            Submission::AdapterFormat => None,
            Submission::CanonicalOrder => Some(CANONICAL_TOPIC.to_string()),
            Submission::CanonicalListing => Some(CANONICAL_LISTING_TOPIC.to_string()),
        },
        headers: Vec::new(),
        source: crate::store::DeliverySource::Submitted,
        body,
    };
    let outcome = store.ingest(delivery, d.disposition).await?;
    let errors = match &outcome {
        IngestOutcome::Stored { dead_letters, .. } if !dead_letters.is_empty() => d.errors,
        _ => Vec::new(),
    };
    Ok(IngestReport {
        fetch_pending: false,
        outcome,
        errors,
    })
}

/// Bodies up to this size are verified and normalized on the async worker that received them:
/// their work is bounded by their size (linear parsers) and stays well under a millisecond.
/// Larger ones go to the CPU pool.
pub const INLINE_CPU_MAX_BYTES: usize = 32 * 1024;

/// At most this many CPU-heavy jobs run at once on tokio's blocking pool (one per core, at
/// least two). Callers wait for a slot without blocking an async worker, so the request timeout
/// still applies while they wait.
fn cpu_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        tokio::sync::Semaphore::new(cores.max(2))
    })
}

/// Runs CPU-bound work (signature check, parse, normalize) off the async workers when `bytes`
/// is large, so one slow body cannot starve the other requests. If the caller's future is
/// dropped (its request timed out), the work still finishes in the background and keeps its
/// slot until then, so the number of CPU jobs stays bounded.
pub async fn on_cpu<T: Send + 'static>(
    bytes: usize,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    if bytes <= INLINE_CPU_MAX_BYTES {
        return work();
    }
    let permit = cpu_slots()
        .acquire()
        .await
        .expect("the CPU pool is never closed");
    // The permit lives in the closure: released when the work ends, or when a task that never
    // ran is dropped (runtime shutdown).
    let task = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    });
    match task.await {
        Ok(v) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => panic!("the runtime shut down while CPU work was queued"),
    }
}

/// The authenticated part of a pushed delivery's work, done on the CPU pool for large bodies.
enum Checked {
    Ping,
    Disposed(Disposed),
}

fn verify_and_dispose(
    inst: &Instance,
    headers: &Headers,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Checked, IngestError> {
    if inst.adapter.is_unsigned_ping(headers, body) {
        return Ok(Checked::Ping);
    }
    inst.adapter
        .verify(
            headers,
            body,
            &|name: &str| inst.secret(name),
            now.timestamp(),
        )
        .map_err(IngestError::Unauthorized)?;
    Ok(Checked::Disposed(dispose(inst, headers, body)))
}

/// Verifies, normalizes and stores one pushed delivery.
pub async fn ingest<S: Store>(
    store: &S,
    config: &Config,
    instance_id: &str,
    headers: &Headers,
    body: Vec<u8>,
    now: DateTime<Utc>,
) -> Result<Ingested, IngestError> {
    let inst: &Arc<Instance> = config
        .instances
        .get(instance_id)
        .ok_or_else(|| IngestError::UnknownInstance(instance_id.to_string()))?;
    if inst.adapter.spec().webhook.is_none() {
        return Err(IngestError::NoWebhook(instance_id.to_string()));
    }
    let (body, checked) = {
        let (inst, headers) = (inst.clone(), headers.clone());
        on_cpu(body.len(), move || {
            let checked = verify_and_dispose(&inst, &headers, &body, now);
            (body, checked)
        })
        .await
    };
    let d = match checked? {
        Checked::Ping => return Ok(Ingested::Ping),
        Checked::Disposed(d) => d,
    };
    let fetch_pending = needs_fetch(inst, d.topic.as_deref());
    let delivery = RawDelivery {
        delivery_id: new_delivery_id(&inst.id),
        instance: inst.id.clone(),
        dedupe_id: d.dedupe_id,
        received_at: now,
        topic: d.topic,
        headers: inst.adapter.kept_headers(headers),
        source: crate::store::DeliverySource::Webhook,
        body,
    };
    let outcome = store.ingest(delivery, d.disposition).await?;
    if let IngestOutcome::Stored { records, .. } = &outcome
        && records
            .iter()
            .any(|r| r.change == crate::model::Change::Queued)
    {
        // Apply facts about other instances' orders now; the daemon's lifecycle loop retries
        // whatever this does not finish.
        if let Err(e) = store.drain_lifecycle().await {
            tracing::warn!(error = %e, "lifecycle outbox not drained; will retry");
        }
    }
    let errors = match &outcome {
        IngestOutcome::Stored { dead_letters, .. } if !dead_letters.is_empty() => d.errors,
        _ => Vec::new(),
    };
    Ok(Ingested::Delivery(IngestReport {
        fetch_pending,
        outcome,
        errors,
    }))
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no dead letter '{0}'")]
    NotFound(String),
    #[error("the raw delivery of '{0}' is gone")]
    RawMissing(String),
    #[error("dead letter '{id}' belongs to instance '{instance}', which is not configured")]
    UnknownInstance { id: String, instance: String },
    #[error("still not normalizable: {}", .0.reason.message)]
    StillFailing(Box<DeadLetter>),
    /// A thin webhook: the gateway fetches its record; it was queued for another fetch.
    #[error("'{0}' is a thin webhook; it is queued for the fetch worker")]
    FetchQueued(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Normalizes a dead letter again with the current adapter; on success the records are stored
/// and the dead letter removed in one write.
pub async fn replay_dead_letter<S: Store>(
    store: &S,
    config: &Config,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Vec<RecordResult>, ReplayError> {
    let dl = store
        .get_dead_letter(id)
        .await?
        .ok_or_else(|| ReplayError::NotFound(id.to_string()))?;
    let raw = store
        .get_delivery(id)
        .await?
        .ok_or_else(|| ReplayError::RawMissing(id.to_string()))?;
    let inst = config
        .instances
        .get(&dl.instance)
        .ok_or_else(|| ReplayError::UnknownInstance {
            id: id.to_string(),
            instance: dl.instance.clone(),
        })?;
    let mut headers = Headers::default();
    for (k, v) in &raw.headers {
        headers.push(k, v);
    }
    if needs_fetch(inst, raw.topic.as_deref()) {
        store
            .update_dead_letter(
                id,
                DeadLetterReason {
                    kind: FETCH_PENDING.into(),
                    message: "queued for another fetch by a replay request".into(),
                    errors: Vec::new(),
                },
            )
            .await?;
        return Err(ReplayError::FetchQueued(id.to_string()));
    }
    let mapped = match raw.topic.as_deref() {
        Some(CANONICAL_TOPIC) => inst.adapter.map_canonical(&raw.body, &record_context(inst)),
        Some(CANONICAL_LISTING_TOPIC) => inst
            .adapter
            .map_canonical_listing(&raw.body, &record_context(inst)),
        _ => route(inst, &headers, &raw.body).0,
    };
    // A dead letter of one item replays that item; a whole-delivery dead letter needs every
    // item to map now.
    let result = mapped.and_then(|routed| match (dl.item, routed) {
        (Some(i), Routed::Items(mut items)) if i < items.len() => items.swap_remove(i).result,
        (Some(_), _) => Err(NormalizeError::Fields(vec![crate::adapter::FieldError {
            field: "item".into(),
            source: None,
            problem: "the delivery no longer has this item".into(),
        }])),
        (None, routed) => routed.into_records(),
    });
    match result {
        Ok(mut records) => {
            set_customer_keys(inst, &mut records);
            Ok(store.resolve_dead_letter(id, records, now).await?)
        }
        Err(e) => {
            let updated = store.update_dead_letter(id, dead_letter_reason(&e)).await?;
            Err(ReplayError::StillFailing(Box::new(updated)))
        }
    }
}

#[cfg(test)]
mod cpu_pool_tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "current_thread")]
    async fn a_large_body_does_not_hold_the_async_worker() {
        // One async thread. The CPU job waits for a signal that only that thread can send: run
        // inline it would block the thread (and time out); on the pool the thread stays free.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let job = tokio::spawn(on_cpu(INLINE_CPU_MAX_BYTES + 1, move || {
            rx.recv_timeout(Duration::from_secs(10)).is_ok()
        }));
        tokio::task::yield_now().await;
        tx.send(()).unwrap();
        assert!(
            job.await.unwrap(),
            "the async thread ran while the CPU job waited"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_small_body_is_handled_where_it_arrived() {
        let here = std::thread::current().id();
        assert_eq!(
            on_cpu(1024, move || std::thread::current().id()).await,
            here
        );
    }
}
