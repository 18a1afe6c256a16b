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

use crate::adapter::{Headers, NormalizeError, Routed, SignatureError};
use crate::config::{Config, Instance};
use crate::store::{
    DeadLetter, DeliverySource, Disposition, IngestOutcome, RecordResult, Store, StoreError,
};

mod cpu;
mod dispose;
mod write;

pub use cpu::{INLINE_CPU_MAX_BYTES, on_cpu};
pub use dispose::{
    Disposed, FETCH_PENDING, Problems, Scope, Sorted, dead_letter_reason, dispose, fetch_pending,
    needs_fetch, record_context, route, set_customer_keys, sort,
};
pub use write::{Arrival, new_delivery_id, settle_dead_letter, store_delivery};

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
    pub errors: Problems,
}

impl IngestReport {
    /// The report of a stored delivery: its problems count only when this write created dead
    /// letters (a duplicate stored nothing new).
    fn new(outcome: IngestOutcome, problems: Problems, fetch_pending: bool) -> Self {
        let errors = match &outcome {
            IngestOutcome::Stored { dead_letters, .. } if !dead_letters.is_empty() => problems,
            _ => Vec::new(),
        };
        Self {
            fetch_pending,
            outcome,
            errors,
        }
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
    let mapped = match how {
        Submission::AdapterFormat => return dispose(inst, &Headers::default(), body),
        Submission::CanonicalOrder => inst.adapter.map_canonical(body, &record_context(inst)),
        Submission::CanonicalListing => inst
            .adapter
            .map_canonical_listing(body, &record_context(inst)),
    };
    let (disposition, errors) = sort(mapped).disposition(inst, Scope::Delivery);
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
    let dedupe_id = match idempotency_key {
        Some(k) => format!("key:{k}"),
        None => format!("body-sha256:{}", hex::encode(sha2::Sha256::digest(&body))),
    };
    let topic = match how {
        Submission::AdapterFormat => None,
        Submission::CanonicalOrder => Some(CANONICAL_TOPIC.to_string()),
        Submission::CanonicalListing => Some(CANONICAL_LISTING_TOPIC.to_string()),
    };
    let delivery =
        Arrival::new(DeliverySource::Submitted, dedupe_id, topic).delivery(&inst.id, body, now);
    let outcome = store_delivery(store, delivery, d.disposition, None).await?;
    Ok(IngestReport::new(outcome, d.errors, false))
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
    let started = std::time::Instant::now();
    let (body, checked) = {
        use tracing::Instrument;
        let (inst, headers) = (inst.clone(), headers.clone());
        let span =
            tracing::info_span!("verify_and_normalize", instance = %inst.id, bytes = body.len());
        on_cpu(body.len(), move || {
            let checked = verify_and_dispose(&inst, &headers, &body, now);
            (body, checked)
        })
        .instrument(span)
        .await
    };
    crate::telemetry::record_stage("verify_and_normalize", started);
    let d = match checked? {
        Checked::Ping => return Ok(Ingested::Ping),
        Checked::Disposed(d) => d,
    };
    let fetch_pending = needs_fetch(inst, d.topic.as_deref());
    let arrival = Arrival {
        headers: inst.adapter.kept_headers(headers),
        ..Arrival::new(DeliverySource::Webhook, d.dedupe_id, d.topic)
    };
    let delivery = arrival.delivery(&inst.id, body, now);
    let outcome = store_delivery(store, delivery, d.disposition, None).await?;
    Ok(Ingested::Delivery(IngestReport::new(
        outcome,
        d.errors,
        fetch_pending,
    )))
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
                fetch_pending("queued for another fetch by a replay request"),
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
    settle_dead_letter(store, inst, id, result, now)
        .await?
        .map_err(|kept| ReplayError::StillFailing(Box::new(kept)))
}
