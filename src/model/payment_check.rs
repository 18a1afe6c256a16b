//! Payment reconciliation: whether the payments reported about an order (by the order's channel
//! or by a payment provider) justify the status they claim.
//!
//! A payment fact only *claims* a status. It moves the order to `paid` (or a refund status) only
//! when it is in the order's currency and the captured payments cover the grand total, or when
//! the order's own channel already reports it paid (its refunds then need no capture to match).
//! A payment in another currency, captured payments below the grand total, or refunds beyond
//! what was paid give the order a `payment_mismatch` hold; a payment in another currency or a
//! short total pays nothing. Money captured beyond the grand total is recorded as an
//! overpayment.
//!
//! Pure: the order snapshot and its payment facts in, a [`PaymentCheck`] out. The store's view
//! applies it on every read; the payments job writes what it justifies as a derived fact, so the
//! rise of the status also appears on the event stream.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::lifecycle::{FactKind, LifecycleFact, payment_order_status, rank};
use super::{Hold, Money, Order, OrderStatus, Payment, PaymentStatus};

/// The hold kind of an order whose payments do not match it.
pub const PAYMENT_MISMATCH: &str = "payment_mismatch";

/// How an order's reported payments compare with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentOutcome {
    /// No payment has been captured or authorized yet (failed, pending or voided ones only).
    Unpaid,
    /// The captured payments equal the grand total.
    Paid,
    /// The captured payments exceed the grand total (`overpaid` says by how much).
    Overpaid,
    /// The order's channel reports it paid; the payments reported are refunds or partial
    /// captures of it.
    PaidPerChannel,
    /// The captured payments are below the grand total (held).
    Short,
    /// A payment or refund is in another currency than the order (held).
    CurrencyMismatch,
    /// More was refunded than was paid (held; the refund still counts: the money went back).
    OverRefunded,
}

/// What the gateway concluded from an order's payment facts (shown on the order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentReconciliation {
    pub outcome: PaymentOutcome,
    /// Authorized or captured payments in the order's currency.
    pub captured: Money,
    /// Refunded in the order's currency.
    pub refunded: Money,
    pub grand_total: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overpaid: Option<Money>,
    /// The status the payments justify (absent when they justify none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justifies: Option<OrderStatus>,
}

/// The result of reconciling an order's payment facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentCheck {
    pub reconciliation: PaymentReconciliation,
    /// `payment_mismatch` when the payments contradict the order.
    pub hold: Option<Hold>,
}

impl PaymentCheck {
    /// The status rank the payments justify (0: none).
    pub fn rank(&self) -> u8 {
        self.reconciliation.justifies.map(rank).unwrap_or(0)
    }
}

fn captures(status: PaymentStatus) -> bool {
    matches!(
        status,
        PaymentStatus::Authorized
            | PaymentStatus::Paid
            | PaymentStatus::PartiallyRefunded
            | PaymentStatus::Refunded
    )
}

fn mismatch(reason: &str, stated: Money, computed: Money) -> Hold {
    Hold {
        kind: PAYMENT_MISMATCH.into(),
        reason: reason.into(),
        stated: Some(stated),
        computed: Some(computed),
    }
}

/// Reconciles `payments` (the order's payment facts, merged by payment id) with the order
/// snapshot. `None` when no payment fact is about the order.
///
/// Monotone in the facts, so the view never moves back as facts arrive: a payment in another
/// currency is held and left out (it cannot pay the order, but neither does it unpay it), and
/// more payments in the order's currency can only raise the captured total.
pub fn check(order: &Order, payments: &[Payment]) -> Option<PaymentCheck> {
    if payments.is_empty() {
        return None;
    }
    let total = order.totals.grand_total;
    let zero = Money::zero(order.currency);
    let in_currency = |p: &Payment| {
        p.amount.currency() == order.currency
            && p.refunded.is_none_or(|r| r.currency() == order.currency)
    };
    let (counted, foreign): (Vec<&Payment>, Vec<&Payment>) = payments
        .iter()
        .filter(|p| captures(p.status))
        .partition(|p| in_currency(p));
    let sum = |f: &dyn Fn(&Payment) -> Option<Money>| {
        counted
            .iter()
            .filter_map(|p| f(p))
            .try_fold(zero, |acc, m| acc.checked_add(&m))
    };
    let mut rec = PaymentReconciliation {
        outcome: PaymentOutcome::Unpaid,
        captured: zero,
        refunded: zero,
        grand_total: total,
        overpaid: None,
        justifies: None,
    };
    let (Ok(captured), Ok(refunded)) = (sum(&|p| Some(p.amount)), sum(&|p| p.refunded)) else {
        rec.outcome = PaymentOutcome::Short;
        let hold = mismatch("the payments cannot be added up", zero, total);
        return Some(PaymentCheck {
            reconciliation: rec,
            hold: Some(hold),
        });
    };
    rec.captured = captured;
    rec.refunded = refunded;
    let channel_says_paid = rank(order.status) >= rank(OrderStatus::Paid);
    let covered = channel_says_paid || captured.amount() >= total.amount();
    if !counted.is_empty() && covered {
        let claimed = counted
            .iter()
            .map(|p| rank(payment_order_status(p.status)))
            .max()
            .unwrap_or(0);
        rec.justifies = (claimed > 0).then(|| super::lifecycle::from_rank(claimed));
    }
    let (outcome, hold) = if let Some(p) = foreign.first() {
        let reason = "a payment or refund is in another currency than the order";
        (
            PaymentOutcome::CurrencyMismatch,
            Some(mismatch(reason, p.amount, total)),
        )
    } else if counted.is_empty() {
        (PaymentOutcome::Unpaid, None)
    } else if !covered {
        let reason = "the captured payments are below the grand total";
        (
            PaymentOutcome::Short,
            Some(mismatch(reason, captured, total)),
        )
    } else if refunded.amount() > captured.amount().max(total.amount()) {
        let reason = "more was refunded than was paid";
        (
            PaymentOutcome::OverRefunded,
            Some(mismatch(reason, refunded, total)),
        )
    } else if captured.amount() > total.amount() {
        rec.overpaid = captured.checked_sub(&total).ok();
        (PaymentOutcome::Overpaid, None)
    } else if captured.amount() == total.amount() {
        (PaymentOutcome::Paid, None)
    } else {
        (PaymentOutcome::PaidPerChannel, None)
    };
    rec.outcome = outcome;
    Some(PaymentCheck {
        reconciliation: rec,
        hold,
    })
}

/// The payments reported by an order's facts, merged by payment id (see
/// [`super::lifecycle::merge_payment`]), in a canonical order.
pub fn fact_payments(facts: &[&LifecycleFact]) -> Vec<Payment> {
    let mut out = Vec::new();
    for f in facts {
        if let FactKind::Payment { payment } = &f.kind {
            super::lifecycle::merge_payment(&mut out, payment);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CurrencyCode;
    use proptest::prelude::*;

    fn order(status: &str) -> Order {
        crate::model::fixture_order(status)
    }

    fn pay(id: &str, status: PaymentStatus, amount: i64, cur: &str, refunded: i64) -> Payment {
        let c = CurrencyCode::parse(cur).unwrap();
        Payment {
            id: Some(id.into()),
            gateway: None,
            status,
            amount: Money::from_minor_units(amount, c).unwrap(),
            refunded: (refunded > 0).then(|| Money::from_minor_units(refunded, c).unwrap()),
            processed_at: None,
        }
    }

    fn outcome(c: &PaymentCheck) -> (PaymentOutcome, Option<OrderStatus>, bool) {
        let r = &c.reconciliation;
        (r.outcome, r.justifies, c.hold.is_some())
    }

    #[test]
    fn the_grand_total_in_the_order_currency_pays_the_order() {
        // The fixture's grand total is JPY 10,760.
        let c = check(
            &order("created"),
            &[pay("a", PaymentStatus::Paid, 10760, "JPY", 0)],
        );
        let c = c.unwrap();
        assert_eq!(
            outcome(&c),
            (PaymentOutcome::Paid, Some(OrderStatus::Paid), false)
        );
        assert_eq!(c.rank(), 1);
    }

    #[test]
    fn a_cent_in_another_currency_pays_nothing_and_holds() {
        let c = check(
            &order("created"),
            &[pay("w", PaymentStatus::Paid, 1, "CNY", 0)],
        )
        .unwrap();
        assert_eq!(outcome(&c), (PaymentOutcome::CurrencyMismatch, None, true));
        let h = c.hold.unwrap();
        assert_eq!(h.kind, PAYMENT_MISMATCH);
        assert_eq!(h.stated.unwrap().to_string(), "0.01 CNY");
        assert_eq!(h.computed.unwrap().to_string(), "10760 JPY");
        assert!(!h.reason.contains("0.01"), "reasons quote no values");
    }

    #[test]
    fn short_payments_hold_and_the_rest_completes_them() {
        let part = pay("a", PaymentStatus::Paid, 5000, "JPY", 0);
        let c = check(&order("created"), std::slice::from_ref(&part)).unwrap();
        assert_eq!(outcome(&c), (PaymentOutcome::Short, None, true));
        let rest = pay("b", PaymentStatus::Paid, 5760, "JPY", 0);
        let c = check(&order("created"), &[part, rest]).unwrap();
        assert_eq!(
            outcome(&c),
            (PaymentOutcome::Paid, Some(OrderStatus::Paid), false)
        );
    }

    #[test]
    fn an_overpayment_is_recorded_not_held() {
        let c = check(
            &order("created"),
            &[pay("a", PaymentStatus::Paid, 11000, "JPY", 0)],
        );
        let c = c.unwrap();
        assert_eq!(
            outcome(&c),
            (PaymentOutcome::Overpaid, Some(OrderStatus::Paid), false)
        );
        assert_eq!(c.reconciliation.overpaid.unwrap().to_string(), "240 JPY");
    }

    #[test]
    fn a_refund_of_an_order_the_channel_reports_paid_needs_no_capture() {
        // Shopify's refund fact carries the refunded amount only.
        let refund = pay("t", PaymentStatus::PartiallyRefunded, 500, "JPY", 500);
        let c = check(&order("paid"), &[refund]).unwrap();
        let want = (
            PaymentOutcome::PaidPerChannel,
            Some(OrderStatus::PartiallyRefunded),
            false,
        );
        assert_eq!(outcome(&c), want);
        // The same refund on an order nobody says is paid is short.
        let refund = pay("t", PaymentStatus::PartiallyRefunded, 500, "JPY", 500);
        let c = check(&order("created"), &[refund]).unwrap();
        assert_eq!(outcome(&c), (PaymentOutcome::Short, None, true));
    }

    #[test]
    fn refunding_more_than_was_paid_holds_but_keeps_the_refund() {
        let p = pay("a", PaymentStatus::Refunded, 10760, "JPY", 20000);
        let c = check(&order("created"), &[p]).unwrap();
        let want = (
            PaymentOutcome::OverRefunded,
            Some(OrderStatus::Refunded),
            true,
        );
        assert_eq!(outcome(&c), want);
    }

    #[test]
    fn failed_payments_are_unpaid_without_a_hold() {
        let c = check(
            &order("created"),
            &[pay("a", PaymentStatus::Failed, 10760, "JPY", 0)],
        );
        assert_eq!(outcome(&c.unwrap()), (PaymentOutcome::Unpaid, None, false));
        assert_eq!(check(&order("created"), &[]), None);
    }

    fn any_payment() -> impl Strategy<Value = Payment> {
        let status = prop_oneof![
            Just(PaymentStatus::Pending),
            Just(PaymentStatus::Failed),
            Just(PaymentStatus::Authorized),
            Just(PaymentStatus::Paid),
            Just(PaymentStatus::PartiallyRefunded),
            Just(PaymentStatus::Refunded),
        ];
        let cur = prop_oneof![Just("JPY"), Just("JPY"), Just("JPY"), Just("USD")];
        (0u8..6, status, 0i64..12000, cur, 0i64..12000)
            .prop_map(|(id, s, a, c, r)| pay(&format!("p{id}"), s, a, c, r))
    }

    fn merged(list: &[Payment]) -> Vec<Payment> {
        let mut out = Vec::new();
        for p in list {
            super::super::lifecycle::merge_payment(&mut out, p);
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// What payments justify never exceeds what they claim; a status is justified only by
        /// payments in the order's currency that cover the grand total; a shortfall or a
        /// foreign payment always holds.
        #[test]
        fn payments_justify_only_what_they_cover(
            list in proptest::collection::vec(any_payment(), 1..6),
        ) {
            let o = order("created");
            let ps = merged(&list);
            let c = check(&o, &ps).unwrap();
            let claimed = ps
                .iter()
                .map(|p| rank(payment_order_status(p.status)))
                .max()
                .unwrap_or(0);
            prop_assert!(c.rank() <= claimed);
            let r = &c.reconciliation;
            if c.rank() > 0 {
                prop_assert!(r.captured.amount() >= r.grand_total.amount());
            }
            let foreign = ps.iter().any(|p| captures(p.status) && p.amount.currency().code() != "JPY");
            if foreign || r.outcome == PaymentOutcome::Short {
                prop_assert!(c.hold.is_some());
            }
            // Adding one more payment in the order's currency never lowers what is justified.
            let more = pay("extra", PaymentStatus::Paid, 100, "JPY", 0);
            let mut bigger = ps.clone();
            bigger.push(more);
            prop_assert!(check(&o, &bigger).unwrap().rank() >= c.rank());
        }
    }
}
