//! Rounding the raw lines to the currency's minor unit: per line, or once per tax rate per
//! invoice and then allocated to the lines (largest remainder) so they still add up.

use std::collections::BTreeMap;

use rust_decimal::{Decimal, RoundingStrategy};

use super::super::TaxLine;
use super::super::pack::RoundingLevel;
use super::calc::Raw;
use crate::model::{CurrencyCode, Money};

/// Rounds the raw lines: each on its own, or per (kind, jurisdiction, rate, collector) group
/// once and then allocated by largest remainder so the lines add up to the group's total.
pub(super) fn round_lines(raw: &[Raw], c: CurrencyCode, level: RoundingLevel) -> Vec<TaxLine> {
    let dp = c.minor_units();
    let half_up = |v: Decimal| v.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero);
    let mut rounded: Vec<Decimal> = raw
        .iter()
        .map(|r| if r.fixed { r.amount } else { half_up(r.amount) })
        .collect();
    if level == RoundingLevel::PerInvoicePerRate {
        let mut groups: BTreeMap<(String, String, String, String), Vec<usize>> = BTreeMap::new();
        for (i, r) in raw.iter().enumerate().filter(|(_, r)| !r.fixed) {
            groups
                .entry((
                    r.kind.clone(),
                    r.jurisdiction.clone(),
                    r.rate.map(|x| x.to_string()).unwrap_or_default(),
                    format!("{:?}", r.collector),
                ))
                .or_default()
                .push(i);
        }
        let unit = Decimal::new(1, dp);
        for idx in groups.values() {
            let total = half_up(idx.iter().map(|&i| raw[i].amount).sum());
            let floors: Vec<Decimal> = idx
                .iter()
                .map(|&i| {
                    raw[i]
                        .amount
                        .round_dp_with_strategy(dp, RoundingStrategy::ToZero)
                })
                .collect();
            let mut left = total - floors.iter().copied().sum::<Decimal>();
            let mut order: Vec<usize> = (0..idx.len()).collect();
            // Largest remainder first; ties by line order (deterministic).
            order.sort_by(|&a, &b| {
                (raw[idx[b]].amount - floors[b])
                    .cmp(&(raw[idx[a]].amount - floors[a]))
                    .then(a.cmp(&b))
            });
            let mut out = floors.clone();
            for k in order {
                if left < unit {
                    break;
                }
                out[k] += unit;
                left -= unit;
            }
            for (k, &i) in idx.iter().enumerate() {
                rounded[i] = out[k];
            }
        }
    }
    raw.iter()
        .zip(rounded)
        .map(|(r, amount)| TaxLine {
            kind: r.kind.clone(),
            jurisdiction: r.jurisdiction.clone(),
            applies_to: r.applies_to.clone(),
            base: Money::new(half_up(r.base), c).unwrap_or(Money::zero(c)),
            rate: r.rate,
            amount: Money::new(amount.max(Decimal::ZERO), c).unwrap_or(Money::zero(c)),
            collector: r.collector,
            source: r.source.clone(),
        })
        .collect()
}
