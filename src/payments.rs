//! The payments job: reads the event stream and, for each order that a payment fact is about,
//! writes what the reconciled payments justify as a derived `payments_reconciled` fact.
//!
//! The order's view already reconciles its payments on every read
//! ([`crate::model::payment_check`]); this job makes the resulting rise of the status (to
//! `paid`, `partially_refunded`, `refunded`) a lifecycle transition on the event stream, as
//! every other rise is. Payment facts and orders arrive in any order, so both an order event
//! and a payment fact's event trigger a check. At least once: the derived fact's id is the same
//! for the same order and status, so a repeated pass changes nothing.

use std::collections::BTreeSet;

use chrono::Utc;

use crate::model::{FactKind, LifecycleFact, Order, OrderId, Record, RecordKind};
use crate::pipeline::Arrival;
use crate::store::{DeliverySource, Disposition, Store, StoreError};

/// The consumer group of the payments job.
pub const PAYMENTS_GROUP: &str = "payments";

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PaymentsPass {
    pub events: u64,
    /// Orders checked.
    pub orders: u64,
    /// Derived facts written (an order's status rose).
    pub reconciled: u64,
}

/// The order an event asks to check: a payment fact's order, or an order written (its payment
/// facts may have arrived first).
fn order_to_check(record: &Record, kind: RecordKind, wrote: bool) -> Option<&OrderId> {
    match (kind, record) {
        (RecordKind::Order, Record::Order(o)) if wrote => Some(&o.id),
        (RecordKind::Fact, Record::Fact(f)) if matches!(f.kind, FactKind::Payment { .. }) => {
            Some(&f.order_id)
        }
        _ => None,
    }
}

/// The derived fact for what an order's payments justify, if they justify a status.
pub fn reconciled_fact(view: &Order) -> Option<LifecycleFact> {
    let status = view.payment_reconciliation.as_ref()?.justifies?;
    Some(LifecycleFact {
        id: format!("payments-reconciled:{}", status.as_str()),
        order_id: view.id.clone(),
        order_instance: view.instance.clone(),
        order_external_id: view.external_id.clone(),
        source_instance: view.instance.clone(),
        at: Utc::now().fixed_offset(),
        kind: FactKind::PaymentsReconciled { status },
    })
}

async fn write_fact<S: Store>(store: &S, fact: LifecycleFact) -> Result<bool, StoreError> {
    let body = serde_json::to_vec(&fact)
        .map_err(|e| StoreError::Invalid(format!("derived fact cannot be serialized: {e}")))?;
    let delivery = Arrival::new(
        DeliverySource::Derived,
        format!("{}|{}", fact.order_id.as_str(), fact.id),
        Some("payments/reconciled".into()),
    )
    .delivery(&fact.source_instance, body, Utc::now());
    let outcome = store
        .ingest(
            delivery,
            Disposition::Apply(vec![Record::Fact(Box::new(fact))]),
        )
        .await?;
    Ok(match outcome {
        crate::store::IngestOutcome::Stored { records, .. } => {
            records.iter().any(|r| r.change.wrote())
        }
        crate::store::IngestOutcome::Duplicate { .. } => false,
    })
}

/// Reads up to `max` events, checks the orders they name and writes the derived facts; the
/// events are acknowledged only after that.
pub async fn pass<S: Store>(store: &S, max: usize) -> Result<PaymentsPass, StoreError> {
    let batch = store
        .read_events(PAYMENTS_GROUP, "payments-job", max)
        .await?;
    let mut out = PaymentsPass {
        events: batch.len() as u64,
        ..PaymentsPass::default()
    };
    let orders: BTreeSet<&OrderId> = batch
        .iter()
        .filter_map(|e| order_to_check(&e.event.record, e.event.kind, e.event.change.wrote()))
        .collect();
    for id in orders {
        out.orders += 1;
        // A payment before its order: the order's own event checks it when it arrives.
        let Some(view) = store.get_order(id).await? else {
            continue;
        };
        if let Some(fact) = reconciled_fact(&view)
            && write_fact(store, fact).await?
        {
            out.reconciled += 1;
        }
    }
    if !batch.is_empty() {
        let ids: Vec<String> = batch.iter().map(|e| e.id.clone()).collect();
        store.ack_events(PAYMENTS_GROUP, &ids).await?;
    }
    Ok(out)
}

/// Passes until the stream is caught up (for the daemon's loop, the CLI and tests).
pub async fn catch_up<S: Store>(store: &S) -> Result<PaymentsPass, StoreError> {
    let mut total = PaymentsPass::default();
    loop {
        let p = pass(store, 500).await?;
        if p.events == 0 {
            return Ok(total);
        }
        total.events += p.events;
        total.orders += p.orders;
        total.reconciled += p.reconciled;
    }
}
