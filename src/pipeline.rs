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

/// What happened to a delivery.
#[derive(Debug)]
pub struct IngestReport {
    pub outcome: IngestOutcome,
    /// Why the delivery was dead-lettered, when it was.
    pub error: Option<NormalizeError>,
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
    }
}

fn dead_letter_reason(e: &NormalizeError) -> DeadLetterReason {
    DeadLetterReason {
        kind: e.kind().to_string(),
        message: e.to_string(),
        errors: e.fields().iter().map(FieldErrorRecord::from).collect(),
    }
}

/// Decides what to store for an authentic delivery (pure).
pub fn dispose(
    inst: &Instance,
    headers: &Headers,
    body: &[u8],
) -> (Disposition, Option<String>, String, Option<NormalizeError>) {
    let adapter = &inst.adapter;
    let doc = adapter.parse(body);
    let dedupe_id = adapter.dedupe_id(headers, doc.as_ref().ok(), body);
    let topic = adapter.topic(headers, doc.as_ref().ok());
    let mapped = doc.and_then(|doc| {
        let target = adapter.route(topic.as_deref());
        adapter.map(&doc, target, &record_context(inst))
    });
    match mapped {
        Ok(Routed::Records(records)) => (Disposition::Apply(records), topic, dedupe_id, None),
        Ok(Routed::Ignored) => (Disposition::Ignore, topic, dedupe_id, None),
        Err(e) => (
            Disposition::DeadLetter(dead_letter_reason(&e)),
            topic,
            dedupe_id,
            Some(e),
        ),
    }
}

/// Verifies, normalizes and stores one pushed delivery.
pub async fn ingest<S: Store>(
    store: &S,
    config: &Config,
    instance_id: &str,
    headers: &Headers,
    body: Vec<u8>,
    now: DateTime<Utc>,
) -> Result<IngestReport, IngestError> {
    let inst: &Arc<Instance> = config
        .instances
        .get(instance_id)
        .ok_or_else(|| IngestError::UnknownInstance(instance_id.to_string()))?;
    if inst.adapter.spec().webhook.is_none() {
        return Err(IngestError::NoWebhook(instance_id.to_string()));
    }
    inst.adapter
        .verify(headers, &body, &inst.webhook_secrets(), now.timestamp())
        .map_err(IngestError::Unauthorized)?;
    let (disposition, topic, dedupe_id, error) = dispose(inst, headers, &body);
    let delivery = RawDelivery {
        delivery_id: new_delivery_id(&inst.id),
        instance: inst.id.clone(),
        dedupe_id,
        received_at: now,
        topic,
        headers: inst.adapter.kept_headers(headers),
        body,
    };
    let outcome = store.ingest(delivery, disposition).await?;
    let error = match &outcome {
        IngestOutcome::Stored {
            dead_lettered: true,
            ..
        } => error,
        _ => None,
    };
    Ok(IngestReport { outcome, error })
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
    let (disposition, _, _, _) = dispose(inst, &headers, &raw.body);
    match disposition {
        Disposition::Apply(records) => Ok(store.resolve_dead_letter(id, records, now).await?),
        Disposition::Ignore => Ok(store.resolve_dead_letter(id, Vec::new(), now).await?),
        Disposition::DeadLetter(reason) => {
            let updated = store.update_dead_letter(id, reason).await?;
            Err(ReplayError::StillFailing(Box::new(updated)))
        }
    }
}
