//! The store operations a disposal ends in: a new delivery ([`store_delivery`]) or a parked
//! one settled ([`settle_dead_letter`]). Both apply lifecycle facts about other instances'
//! orders right after the write (the daemon's lifecycle loop retries what this leaves).

use chrono::{DateTime, Utc};
use tracing::Instrument;

use super::dispose::{dead_letter_reason, set_customer_keys};
use crate::adapter::NormalizeError;
use crate::config::Instance;
use crate::model::{Change, Record};
use crate::store::{
    CursorWrite, DeadLetter, DeliverySource, Disposition, IngestOutcome, RawDelivery, RecordResult,
    Store, StoreError,
};

/// A new gateway delivery id: `d.<instance>.<time-ordered uuid>`.
pub fn new_delivery_id(instance: &str) -> String {
    format!("d.{instance}.{}", uuid::Uuid::now_v7().simple())
}

/// How a delivery reached the gateway: what the raw delivery record keeps beside its body.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub source: DeliverySource,
    /// The sender's idempotency id, or one the gateway derives.
    pub dedupe_id: String,
    pub topic: Option<String>,
    /// Headers needed to read the body again (never signatures).
    pub headers: Vec<(String, String)>,
}

impl Arrival {
    pub fn new(source: DeliverySource, dedupe_id: String, topic: Option<String>) -> Self {
        Self {
            source,
            dedupe_id,
            topic,
            headers: Vec::new(),
        }
    }

    /// The raw delivery record, under a new delivery id.
    pub fn delivery(self, instance: &str, body: Vec<u8>, now: DateTime<Utc>) -> RawDelivery {
        RawDelivery {
            delivery_id: new_delivery_id(instance),
            instance: instance.to_string(),
            dedupe_id: self.dedupe_id,
            received_at: now,
            topic: self.topic,
            headers: self.headers,
            source: self.source,
            trace_id: crate::telemetry::current_trace_id(),
            body,
        }
    }
}

/// Stores a new delivery with its disposition (and a poller's cursor, in the same atomic
/// write). Durable when `Ok`.
pub async fn store_delivery<S: Store>(
    store: &S,
    delivery: RawDelivery,
    disposition: Disposition,
    cursor: Option<CursorWrite>,
) -> Result<IngestOutcome, StoreError> {
    let started = std::time::Instant::now();
    // Orders the numbers put on hold, by id: counted once their revision is written.
    let held: Vec<(String, Vec<String>)> = match &disposition {
        Disposition::Apply(records) | Disposition::Partial { records, .. } => records
            .iter()
            .filter_map(|r| match r {
                Record::Order(o) if !o.holds.is_empty() => Some((
                    r.id().to_string(),
                    o.holds.iter().map(|h| h.kind.clone()).collect(),
                )),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let span = tracing::info_span!("store_write", delivery = %delivery.delivery_id);
    let outcome = store
        .ingest_with_cursor(delivery, disposition, cursor)
        .instrument(span)
        .await
        .inspect_err(|e| {
            if let Some(kind) = e.failure_kind() {
                crate::telemetry::count_store_error(kind);
            }
        })?;
    crate::telemetry::record_stage("store_write", started);
    if let IngestOutcome::Stored { records, .. } = &outcome {
        for (id, kinds) in &held {
            if records.iter().any(|r| &r.id == id && r.change.wrote()) {
                kinds.iter().for_each(|k| crate::telemetry::count_hold(k));
            }
        }
        drain_if_queued(store, records).await;
    }
    Ok(outcome)
}

/// Settles a dead letter read again (a replay, a fetched thin webhook): its records are stored
/// and the dead letter removed in one write, or it is kept with the new reason
/// (`Ok(Err(dead letter))`).
pub async fn settle_dead_letter<S: Store>(
    store: &S,
    inst: &Instance,
    id: &str,
    result: Result<Vec<Record>, NormalizeError>,
    now: DateTime<Utc>,
) -> Result<Result<Vec<RecordResult>, DeadLetter>, StoreError> {
    match result {
        Ok(mut records) => {
            set_customer_keys(inst, &mut records);
            let results = store.resolve_dead_letter(id, records, now).await?;
            drain_if_queued(store, &results).await;
            Ok(Ok(results))
        }
        Err(e) => Ok(Err(store
            .update_dead_letter(id, dead_letter_reason(&e))
            .await?)),
    }
}

/// Applies facts about other instances' orders now, when the write queued one.
async fn drain_if_queued<S: Store>(store: &S, records: &[RecordResult]) {
    if records.iter().any(|r| r.change == Change::Queued)
        && let Err(e) = store.drain_lifecycle().await
    {
        tracing::warn!(error = %e, "lifecycle outbox not drained; will retry");
    }
}
