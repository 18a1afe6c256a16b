//! Lifecycle facts (payments, shipments, refunds, cancellations) from a fact mapping.

use super::super::error::FieldError;
use super::super::path::Scope;
use super::super::spec::FactMapping;
use super::super::tree::Node;
use crate::model::{FactKind, LifecycleFact, OrderId, validate_instance_id};

use super::*;

/// Maps a document to one lifecycle fact.
pub fn map_fact<'a>(
    m: &'a FactMapping,
    doc: &'a Node<'a>,
    ctx: &RecordContext<'_>,
    absent: &'a [String],
) -> Result<LifecycleFact, Vec<FieldError>> {
    let mut ev = Eval::default();
    let top = Scope::new(doc)
        .with_absent(absent)
        .with_settings(ctx.settings);
    let Some(root) = record_root(&mut ev, m.root.as_ref(), top, false) else {
        return Err(ev.errors);
    };
    let s = top.with_record(root).with_current(root);
    let id = ev.req("id", &m.id, s, val_text);
    let order_external_id = ev.req("order_external_id", &m.order_external_id, s, val_text);
    let order_instance = match &m.order_instance {
        Some(e) => ev.req("order_instance", e, s, |v| {
            let t = val_text(v)?;
            validate_instance_id(&t).map_err(|e| e.to_string())?;
            Ok(t)
        }),
        None => Some(ctx.instance.to_string()),
    };
    let at = ev.req("at", &m.at, s, |v| {
        val_datetime(v, m.at.date.as_ref(), s.settings)
    });
    let kind = if let Some(p) = &m.payment {
        let parts = PaymentParts {
            id: p.id.as_ref(),
            gateway: p.gateway.as_ref(),
            status: &p.status,
            amount: &p.amount,
            refunded: p.refunded.as_ref(),
            processed_at: p.processed_at.as_ref(),
        };
        ev.payment("payment", parts, s, None)
            .map(|payment| FactKind::Payment { payment })
    } else if let Some(sh) = &m.shipment {
        let parts = ShipmentParts {
            id: sh.id.as_ref(),
            carrier: sh.carrier.as_ref(),
            tracking_numbers: sh.tracking_numbers.as_ref(),
            status: &sh.status,
            shipped_at: sh.shipped_at.as_ref(),
        };
        ev.shipment("shipment", parts, s)
            .map(|shipment| FactKind::Shipment { shipment })
    } else {
        let reason = m
            .cancellation
            .as_ref()
            .and_then(|c| ev.text("cancellation.reason", c.reason.as_ref(), s));
        Some(FactKind::Cancellation { reason })
    };
    if !ev.errors.is_empty() {
        return Err(ev.errors);
    }
    let (Some(id), Some(external), Some(order_instance), Some(at), Some(kind)) =
        (id, order_external_id, order_instance, at, kind)
    else {
        return Err(ev.errors);
    };
    Ok(LifecycleFact {
        id: format!("{}:{id}", ctx.instance),
        order_id: OrderId::derive(&order_instance, &external),
        order_instance,
        order_external_id: external,
        source_instance: ctx.instance.to_string(),
        at,
        kind,
    })
}
