//! The order lifecycle: payments, shipments, refunds and cancellations reported by any channel
//! (the order's own, or a payment provider's) move an order through its states.
//!
//! Facts are kept as a set per order (keyed by fact id, so a re-delivered fact changes nothing).
//! The effective status is the *join* of the latest snapshot's status and every fact's status
//! in the order created < paid < fulfilled < delivered < partially_refunded < refunded <
//! cancelled. A join is commutative, associative and idempotent, so:
//! - events applied in any order give the same final state;
//! - a stale or out-of-order event never moves an order backwards.
//!
//! Limitation, by design: with several payments of which only one is fully refunded, the order
//! reads "refunded" (the join cannot un-refund); each payment keeps its own status.

use chrono::{DateTime, FixedOffset};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Order, OrderId, OrderStatus, Payment, PaymentStatus, Shipment, ShipmentStatus};

/// What a fact reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FactKind {
    Payment {
        payment: Payment,
    },
    Shipment {
        shipment: Shipment,
    },
    Cancellation {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Written by the gateway's payments job, never by an adapter: the order's payment facts
    /// were reconciled with it and justify `status` (see [`super::payment_check`]). Payment
    /// facts move the order only through this fact (or the view's own reconciliation).
    PaymentsReconciled {
        status: OrderStatus,
    },
}

/// One lifecycle fact about an order. (No `deny_unknown_fields`: serde cannot combine it with
/// the flattened kind; facts are only ever built by adapters, never read from senders.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LifecycleFact {
    /// Stable id: the same fact re-delivered has the same id.
    pub id: String,
    /// The order it is about (which may be another instance's order).
    pub order_id: OrderId,
    /// The instance and external id of that order, as the fact named it.
    pub order_instance: String,
    pub order_external_id: String,
    /// The instance that reported the fact.
    pub source_instance: String,
    pub at: DateTime<FixedOffset>,
    #[serde(flatten)]
    pub kind: FactKind,
}

/// Rank of a status in the lifecycle order.
pub fn rank(s: OrderStatus) -> u8 {
    match s {
        OrderStatus::Created => 0,
        OrderStatus::Paid => 1,
        OrderStatus::Fulfilled => 2,
        OrderStatus::Delivered => 3,
        OrderStatus::PartiallyRefunded => 4,
        OrderStatus::Refunded => 5,
        OrderStatus::Cancelled => 6,
    }
}

pub fn from_rank(r: u8) -> OrderStatus {
    match r {
        0 => OrderStatus::Created,
        1 => OrderStatus::Paid,
        2 => OrderStatus::Fulfilled,
        3 => OrderStatus::Delivered,
        4 => OrderStatus::PartiallyRefunded,
        5 => OrderStatus::Refunded,
        _ => OrderStatus::Cancelled,
    }
}

/// The order status a payment in this state claims.
pub fn payment_order_status(s: PaymentStatus) -> OrderStatus {
    match s {
        PaymentStatus::Pending | PaymentStatus::Failed | PaymentStatus::Voided => {
            OrderStatus::Created
        }
        PaymentStatus::Authorized | PaymentStatus::Paid => OrderStatus::Paid,
        PaymentStatus::PartiallyRefunded => OrderStatus::PartiallyRefunded,
        PaymentStatus::Refunded => OrderStatus::Refunded,
    }
}

/// The order status a fact implies on its own.
pub fn fact_status(kind: &FactKind) -> OrderStatus {
    match kind {
        FactKind::Payment { payment } => payment_order_status(payment.status),
        FactKind::Shipment { shipment } => match shipment.status {
            ShipmentStatus::Pending | ShipmentStatus::Failed | ShipmentStatus::Cancelled => {
                OrderStatus::Created
            }
            ShipmentStatus::Shipped | ShipmentStatus::InTransit => OrderStatus::Fulfilled,
            ShipmentStatus::Delivered => OrderStatus::Delivered,
        },
        FactKind::Cancellation { .. } => OrderStatus::Cancelled,
        FactKind::PaymentsReconciled { status } => *status,
    }
}

/// The highest rank the facts move an order to on their own (0 when there are none): payment
/// facts only claim a status, and count once reconciled.
pub fn facts_rank<'a>(facts: impl IntoIterator<Item = &'a LifecycleFact>) -> u8 {
    facts.into_iter().map(|f| f.rank()).max().unwrap_or(0)
}

fn payment_rank(s: PaymentStatus) -> u8 {
    match s {
        PaymentStatus::Pending => 0,
        PaymentStatus::Failed => 1,
        PaymentStatus::Authorized => 2,
        PaymentStatus::Paid => 3,
        PaymentStatus::PartiallyRefunded => 4,
        PaymentStatus::Refunded => 5,
        PaymentStatus::Voided => 6,
    }
}

fn shipment_rank(s: ShipmentStatus) -> u8 {
    match s {
        ShipmentStatus::Pending => 0,
        ShipmentStatus::Failed => 1,
        ShipmentStatus::Cancelled => 2,
        ShipmentStatus::Shipped => 3,
        ShipmentStatus::InTransit => 4,
        ShipmentStatus::Delivered => 5,
    }
}

/// Merges a payment into a list: same id → the furthest-along version (ties: the larger refund),
/// otherwise appended. Order-independent.
pub(super) fn merge_payment(list: &mut Vec<Payment>, p: &Payment) {
    let key = |x: &Payment| (payment_rank(x.status), x.refunded.map(|m| m.amount()));
    match p
        .id
        .as_ref()
        .and_then(|id| list.iter_mut().find(|x| x.id.as_ref() == Some(id)))
    {
        Some(existing) => {
            if key(p) > key(existing) {
                *existing = p.clone();
            }
        }
        None => {
            if !list.contains(p) {
                list.push(p.clone());
            }
        }
    }
}

fn merge_shipment(list: &mut Vec<Shipment>, s: &Shipment) {
    match s
        .id
        .as_ref()
        .and_then(|id| list.iter_mut().find(|x| x.id.as_ref() == Some(id)))
    {
        Some(existing) => {
            if shipment_rank(s.status) > shipment_rank(existing.status) {
                *existing = s.clone();
            }
        }
        None => {
            if !list.contains(s) {
                list.push(s.clone());
            }
        }
    }
}

/// The order as the gateway presents it: the channel's latest snapshot with every fact applied.
/// `floor` is the highest status rank any stored snapshot of the order had (a newer snapshot
/// that reports an earlier state does not move the order back either). Facts are applied in a
/// canonical order (by id), so the result does not depend on arrival. Payment facts are
/// reconciled with the snapshot: they raise the status only when they match it, and otherwise
/// add a `payment_mismatch` hold.
pub fn view(mut order: Order, facts: &[LifecycleFact], floor: u8) -> Order {
    let mut sorted: Vec<&LifecycleFact> = facts.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    // The facts' payments, merged once: reconciled on their own, then merged into the
    // snapshot's (merging is a join by payment id, so the two steps give the one-step result).
    let fact_payments = super::payment_check::fact_payments(&sorted);
    let check = super::payment_check::check(&order, &fact_payments);
    let mut payments = order.payments.clone();
    for p in &fact_payments {
        merge_payment(&mut payments, p);
    }
    let mut shipments = order.shipments.clone();
    for f in &sorted {
        if let FactKind::Shipment { shipment } = &f.kind {
            merge_shipment(&mut shipments, shipment);
        }
    }
    // Sorting keeps the merged lists canonical as well.
    payments.sort_by(|a, b| (&a.id, payment_rank(a.status)).cmp(&(&b.id, payment_rank(b.status))));
    shipments
        .sort_by(|a, b| (&a.id, shipment_rank(a.status)).cmp(&(&b.id, shipment_rank(b.status))));
    order.payments = payments;
    order.shipments = shipments;
    let paid_rank = check.as_ref().map_or(0, |c| c.rank());
    let r = rank(order.status)
        .max(floor)
        .max(facts_rank(facts.iter()))
        .max(paid_rank);
    order.status = from_rank(r);
    if let Some(c) = check {
        order.holds.extend(c.hold);
        order.payment_reconciliation = Some(c.reconciliation);
    }
    order
}

/// A change of an order's effective status, carried by the event that caused it. `from` is
/// absent when the event created the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    pub order_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<OrderStatus>,
    pub to: OrderStatus,
}

/// The transition (if any) when an order's snapshot rank and fact rank change.
/// `None` ranks mean "not stored yet"; effective status = max(snapshot floor, facts).
pub fn transition(
    order_id: &str,
    before: (Option<u8>, Option<u8>),
    after: (Option<u8>, Option<u8>),
) -> Option<Transition> {
    let eff = |(s, f): (Option<u8>, Option<u8>)| s.map(|s| s.max(f.unwrap_or(0)));
    let (b, a) = (eff(before), eff(after)?);
    match b {
        Some(b) if a <= b => None,
        _ => Some(Transition {
            order_id: order_id.to_string(),
            from: b.map(from_rank),
            to: from_rank(a),
        }),
    }
}

impl LifecycleFact {
    pub fn validate(&self) -> Vec<super::Violation> {
        let mut v = Vec::new();
        let mut bad = |path: &str, message: &str| {
            v.push(super::Violation {
                path: path.into(),
                message: message.into(),
            })
        };
        if self.id.trim().is_empty() {
            bad("id", "must not be empty");
        }
        if self.order_external_id.trim().is_empty() {
            bad("order_external_id", "must not be empty");
        }
        if let FactKind::Payment { payment } = &self.kind {
            if payment.amount.is_negative() {
                bad("payment.amount", "must not be negative");
            }
            if let Some(r) = &payment.refunded
                && (r.is_negative() || r.currency() != payment.amount.currency())
            {
                bad(
                    "payment.refunded",
                    "must be a non-negative amount in the payment's currency",
                );
            }
        }
        v
    }

    /// The rank this fact moves its order to on its own: a payment fact's claim counts only
    /// once reconciled with the order, so it has none.
    pub fn rank(&self) -> u8 {
        match self.kind {
            FactKind::Payment { .. } => 0,
            _ => rank(fact_status(&self.kind)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CurrencyCode, Money};
    use proptest::prelude::*;

    fn order() -> Order {
        crate::model::fixture_order("created")
    }

    fn at(h: u32) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(&format!("2024-05-0{}T10:00:00+00:00", 1 + h % 8)).unwrap()
    }

    fn fact(id: &str, h: u32, kind: FactKind) -> LifecycleFact {
        LifecycleFact {
            id: id.into(),
            order_id: OrderId::derive("app", "APP-2024-000123"),
            order_instance: "app".into(),
            order_external_id: "APP-2024-000123".into(),
            source_instance: "stripe".into(),
            at: at(h),
            kind,
        }
    }

    fn payment(id: &str, status: PaymentStatus, refunded: Option<i64>) -> FactKind {
        let jpy = CurrencyCode::parse("JPY").unwrap();
        FactKind::Payment {
            payment: Payment {
                id: Some(id.into()),
                gateway: Some("stripe".into()),
                status,
                amount: Money::from_minor_units(10760, jpy).unwrap(),
                refunded: refunded.map(|r| Money::from_minor_units(r, jpy).unwrap()),
                processed_at: None,
            },
        }
    }

    fn shipment(id: &str, status: ShipmentStatus) -> FactKind {
        FactKind::Shipment {
            shipment: Shipment {
                id: Some(id.into()),
                carrier: Some("Yamato".into()),
                tracking_numbers: vec!["1234".into()],
                status,
                shipped_at: None,
            },
        }
    }

    fn events() -> Vec<LifecycleFact> {
        vec![
            fact(
                "pay:authorized",
                0,
                payment("pi_1", PaymentStatus::Authorized, None),
            ),
            fact("pay:paid", 1, payment("pi_1", PaymentStatus::Paid, None)),
            fact("ship:shipped", 2, shipment("s1", ShipmentStatus::Shipped)),
            fact("ship:transit", 3, shipment("s1", ShipmentStatus::InTransit)),
            fact(
                "ship:delivered",
                4,
                shipment("s1", ShipmentStatus::Delivered),
            ),
            fact(
                "refund:1",
                5,
                payment("pi_1", PaymentStatus::PartiallyRefunded, Some(500)),
            ),
            fact(
                "refund:2",
                6,
                payment("pi_1", PaymentStatus::Refunded, Some(10760)),
            ),
        ]
    }

    #[test]
    fn in_order_the_order_ends_refunded_with_one_payment_and_one_shipment() {
        let v = view(order(), &events(), 0);
        assert_eq!(v.status, OrderStatus::Refunded);
        assert_eq!(v.payments.len(), 1);
        assert_eq!(v.payments[0].status, PaymentStatus::Refunded);
        assert_eq!(v.shipments.len(), 1);
        assert_eq!(v.shipments[0].status, ShipmentStatus::Delivered);
    }

    #[test]
    fn a_stale_fact_never_moves_an_order_backwards() {
        let mut facts = events();
        let before = view(order(), &facts, 0);
        facts.push(fact(
            "late:authorized",
            0,
            payment("pi_1", PaymentStatus::Authorized, None),
        ));
        facts.push(fact(
            "late:pending",
            0,
            shipment("s1", ShipmentStatus::Pending),
        ));
        let after = view(order(), &facts, 0);
        assert_eq!(after, before);
    }

    #[test]
    fn transitions_only_when_the_effective_status_rises() {
        let t = |b, a| transition("o", b, a).map(|t| (t.from, t.to));
        // A new order: from nothing to its status (raised by facts that came first).
        assert_eq!(
            t((None, None), (Some(0), None)),
            Some((None, OrderStatus::Created))
        );
        assert_eq!(
            t((None, Some(1)), (Some(0), Some(1))),
            Some((None, OrderStatus::Paid))
        );
        // A fact about an order not stored yet: no transition until the order arrives.
        assert_eq!(t((None, None), (None, Some(1))), None);
        // Paid, then a fact saying shipped.
        assert_eq!(
            t((Some(1), Some(1)), (Some(1), Some(2))),
            Some((Some(OrderStatus::Paid), OrderStatus::Fulfilled))
        );
        // A fact below the current state changes nothing.
        assert_eq!(t((Some(3), None), (Some(3), Some(1))), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn shuffled_facts_give_the_same_final_order(
            perm in Just(events()).prop_shuffle(),
            dup in 0usize..7,
        ) {
            let mut shuffled = perm.clone();
            // A re-delivered fact (same id) changes nothing.
            shuffled.push(perm[dup].clone());
            let expected = view(order(), &events(), 0);
            prop_assert_eq!(view(order(), &shuffled, 0), expected);
            // Applying one at a time, the status never decreases.
            let mut seen = Vec::new();
            let mut last = 0;
            for f in &shuffled {
                seen.push(f.clone());
                let r = rank(view(order(), &seen, 0).status);
                prop_assert!(r >= last);
                last = r;
            }
        }
    }
}
