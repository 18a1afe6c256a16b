//! The FX log: one append-only entry per conversion, chained by hashes so that any change,
//! deletion or reordering of stored entries is detected by [`verify`].
//!
//! `hash = SHA-256(prev_hash ‖ the entry's JSON with an empty hash)`. The JSON is the struct
//! serialized in its declared field order (deterministic).

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::book::{Leg, RateBook, RoundingMode, convert_amount};
use crate::model::Money;

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Where the converted order came from, as the merchant's books know it: what joins the log
/// to them. Part of the hashed entry (entries logged before it existed have none and keep
/// their hashes; exports look their orders up instead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OrderRef {
    /// Adapter name, e.g. `shopify`.
    pub channel: String,
    pub instance: String,
    /// The merchant's account on the channel.
    pub account: String,
    /// The channel's id of the order.
    pub external_id: String,
    /// The channel's order number (`#1001`), else the channel's order id.
    pub number: String,
    pub placed_at: DateTime<FixedOffset>,
}

impl OrderRef {
    pub fn of(order: &crate::model::Order) -> Self {
        OrderRef {
            channel: order.channel.clone(),
            instance: order.instance.clone(),
            account: order.account.clone(),
            external_id: order.external_id.clone(),
            number: order
                .number
                .clone()
                .unwrap_or_else(|| order.external_id.clone()),
            placed_at: order.placed_at,
        }
    }
}

/// One conversion, as logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FxEntry {
    /// Position in the log, from 1.
    pub seq: u64,
    /// `fx.<seq>`.
    pub id: String,
    pub order_id: String,
    /// The order revision converted (its ordering key).
    pub revision: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<OrderRef>,
    /// What was converted: `total.grand_total`, `line[2].amount`, …
    pub part: String,
    pub from: Money,
    pub to: Money,
    /// Target units per source unit (10 decimals; the legs are authoritative).
    #[serde(with = "rust_decimal::serde::str")]
    #[schemars(with = "Decimal")]
    pub rate: Decimal,
    pub rate_date: NaiveDate,
    pub from_leg: Leg,
    pub to_leg: Leg,
    /// e.g. `half_up:2`.
    pub rounding: String,
    /// The entry this one replaces (an earlier revision of the same part, or other rates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<String>,
    pub logged_at: DateTime<Utc>,
    pub prev_hash: String,
    pub hash: String,
}

impl FxEntry {
    pub fn compute_hash(&self) -> String {
        let mut copy = self.clone();
        copy.hash = String::new();
        let json = serde_json::to_vec(&copy).expect("entries serialize");
        let mut h = Sha256::new();
        h.update(self.prev_hash.as_bytes());
        h.update(&json);
        hex::encode(h.finalize())
    }

    /// What identifies the same conversion: an unchanged amount at unchanged rates.
    pub fn fingerprint(&self) -> String {
        fingerprint(
            &self.from,
            &self.to_leg.currency,
            &self.from_leg,
            &self.to_leg,
            &self.rounding,
        )
    }
}

/// The identity of a conversion's inputs (amount, currency pair, rate legs, rule).
pub fn fingerprint(from: &Money, to: &str, from_leg: &Leg, to_leg: &Leg, rule: &str) -> String {
    let text = format!(
        "{}|{}|{}|{}|{}|{}|{}|{}|{}",
        from.amount(),
        from.currency().code(),
        to,
        from_leg.per_eur,
        from_leg.date,
        from_leg.doc_hash,
        to_leg.per_eur,
        to_leg.date,
        rule
    );
    hex::encode(&Sha256::digest(text.as_bytes())[..16])
}

/// The key under which the latest entry of one conversion is found: order, part, target.
pub fn conversion_key(order_id: &str, part: &str, to: &str) -> String {
    format!("{order_id}|{part}|{to}")
}

/// A problem `fx verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Finding {
    /// The entry (`fx.<seq>`) or the position where the chain breaks.
    pub entry: String,
    pub problem: String,
}

/// Checks the chain and recomputes every entry: its amount from its legs, and with a `book`
/// each leg from the stored rate document it names (without one, as an auditor holding only
/// an export does, the legs are taken as written).
pub fn verify(entries: &[FxEntry], book: Option<&RateBook>) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut prev = GENESIS.to_string();
    let mut expected_seq = 1u64;
    for e in entries {
        let name = format!("fx.{}", e.seq);
        if e.seq != expected_seq {
            out.push(Finding {
                entry: name.clone(),
                problem: format!(
                    "out of sequence: expected fx.{expected_seq} here (an entry was deleted or moved)"
                ),
            });
        }
        if e.id != name {
            out.push(Finding {
                entry: name.clone(),
                problem: format!("id '{}' does not match its position", e.id),
            });
        }
        if e.prev_hash != prev {
            out.push(Finding {
                entry: name.clone(),
                problem: "chain broken: prev_hash is not the previous entry's hash (deleted, reordered or altered before it)".into(),
            });
        }
        if e.compute_hash() != e.hash {
            out.push(Finding {
                entry: name.clone(),
                problem: "hash mismatch: the entry was altered".into(),
            });
        }
        if let Some(p) = recompute(e, book) {
            out.push(Finding {
                entry: name.clone(),
                problem: p,
            });
        }
        prev = e.hash.clone();
        expected_seq = e.seq + 1;
    }
    out
}

/// Recomputes one entry from the rate documents it names; `Some(problem)` on a mismatch.
fn recompute(e: &FxEntry, book: Option<&RateBook>) -> Option<String> {
    for leg in [&e.from_leg, &e.to_leg] {
        if let Some(p) = book.and_then(|b| check_leg(leg, b)) {
            return Some(p);
        }
    }
    let mode = e
        .rounding
        .split_once(':')
        .and_then(|(m, _)| RoundingMode::parse(m));
    let Some(mode) = mode else {
        return Some(format!("unknown rounding rule '{}'", e.rounding));
    };
    match convert_amount(
        e.from.amount(),
        e.from_leg.per_eur,
        e.to_leg.per_eur,
        mode,
        e.to.currency().minor_units(),
    ) {
        Ok(v) if v == e.to.amount() => None,
        Ok(v) => Some(format!(
            "recomputed {} {} but the entry says {}",
            v,
            e.to.currency().code(),
            e.to.amount()
        )),
        Err(err) => Some(err.to_string()),
    }
}

fn check_leg(leg: &Leg, book: &RateBook) -> Option<String> {
    match leg.source.as_str() {
        "fixed" => (leg.currency != "EUR" || leg.per_eur != Decimal::ONE)
            .then(|| format!("{}: a fixed leg must be EUR at 1", leg.currency)),
        "ecb" => {
            let Some(doc) = book.doc(&leg.doc_hash) else {
                return Some(format!(
                    "{}: rate document {} is not stored",
                    leg.currency, leg.doc_hash
                ));
            };
            let rate = doc
                .days
                .iter()
                .find(|d| d.date == leg.date)
                .and_then(|d| d.rates.get(&leg.currency));
            match rate {
                Some(r) if *r == leg.per_eur => None,
                Some(r) => Some(format!(
                    "{} on {}: the document says {r}, the entry {}",
                    leg.currency, leg.date, leg.per_eur
                )),
                None => Some(format!(
                    "{} on {}: not in document {}",
                    leg.currency, leg.date, leg.doc_hash
                )),
            }
        }
        "manual" => {
            let Some(doc) = book.doc(&leg.doc_hash) else {
                return Some(format!(
                    "{}: manual table {} is not stored",
                    leg.currency, leg.doc_hash
                ));
            };
            let m = doc.manual.iter().find(|m| {
                m.currency == leg.currency
                    && m.valid_from <= leg.date
                    && m.valid_to.is_none_or(|t| leg.date <= t)
            })?;
            let expected = match &leg.via {
                None => m.rate,
                Some(base) => {
                    if let Some(p) = check_leg(base, book) {
                        return Some(p);
                    }
                    m.rate * base.per_eur
                }
            };
            (expected != leg.per_eur).then(|| {
                format!(
                    "{} on {}: the manual table gives {expected}, the entry {}",
                    leg.currency, leg.date, leg.per_eur
                )
            })
        }
        other => Some(format!("unknown rate source '{other}'")),
    }
}

/// The entries superseded by later ones (for exports: `superseded_by`).
pub fn superseded_by(entries: &[FxEntry]) -> BTreeMap<String, String> {
    entries
        .iter()
        .filter_map(|e| e.supersedes.as_ref().map(|s| (s.clone(), e.id.clone())))
        .collect()
}

/// The part of an order that the report sums: its grand total.
pub const GRAND_TOTAL: &str = "total.grand_total";

/// One line of the daily report: a currency pair on one day, over the orders' grand totals
/// (every other part is a piece of the grand total; adding them too counted each order several
/// times).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PairReport {
    pub from: String,
    pub to: String,
    /// Orders converted (each order's current grand total, once).
    pub count: u64,
    #[serde(with = "rust_decimal::serde::str")]
    #[schemars(with = "Decimal")]
    pub from_sum: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    #[schemars(with = "Decimal")]
    pub to_sum: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    #[schemars(with = "Decimal")]
    pub min_rate: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    #[schemars(with = "Decimal")]
    pub max_rate: Decimal,
    /// The same source amounts at the rates of `revalued_at`, minus `to_sum` (a revaluation;
    /// zero when a rate of that day is missing).
    #[serde(with = "rust_decimal::serde::str")]
    #[schemars(with = "Decimal")]
    pub revaluation: Decimal,
    /// The day whose rates the revaluation uses.
    pub revalued_at: Option<NaiveDate>,
}

/// What a report covers: conversions whose rate date is within `from..=to`, revalued at the
/// rates of `revalue_at` (default: the newest stored ECB day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub revalue_at: Option<NaiveDate>,
}

/// Per currency pair: the current (not superseded) grand-total entries in the range.
pub fn report(entries: &[FxEntry], range: &ReportRange, book: &RateBook) -> Vec<PairReport> {
    let superseded = superseded_by(entries);
    let current = entries.iter().filter(|e| !superseded.contains_key(&e.id));
    report_of(current, range, book)
}

/// Per currency pair: the grand-total entries in the range among `current`, entries already
/// known not to be superseded (a selection of the log, whose superseding entries may lie
/// outside it, as an export marks them).
pub fn report_of<'a>(
    current: impl Iterator<Item = &'a FxEntry>,
    range: &ReportRange,
    book: &RateBook,
) -> Vec<PairReport> {
    let mut pairs: BTreeMap<(String, String), PairReport> = BTreeMap::new();
    let latest = range.revalue_at.or_else(|| book.latest_ecb_day());
    for e in
        current.filter(|e| (range.from..=range.to).contains(&e.rate_date) && e.part == GRAND_TOTAL)
    {
        let key = (
            e.from.currency().code().to_string(),
            e.to.currency().code().to_string(),
        );
        let p = pairs.entry(key.clone()).or_insert_with(|| PairReport {
            from: key.0.clone(),
            to: key.1.clone(),
            count: 0,
            from_sum: Decimal::ZERO,
            to_sum: Decimal::ZERO,
            min_rate: e.rate,
            max_rate: e.rate,
            revaluation: Decimal::ZERO,
            revalued_at: latest,
        });
        p.count += 1;
        p.from_sum += e.from.amount();
        p.to_sum += e.to.amount();
        p.min_rate = p.min_rate.min(e.rate);
        p.max_rate = p.max_rate.max(e.rate);
        if let Some(day) = latest {
            let legs = (book.leg(&key.0, day), book.leg(&key.1, day));
            if let (Ok(f), Ok(t)) = legs {
                let mode = e
                    .rounding
                    .split_once(':')
                    .and_then(|(m, _)| RoundingMode::parse(m))
                    .unwrap_or(RoundingMode::HalfUp);
                if let Ok(v) = convert_amount(
                    e.from.amount(),
                    f.per_eur,
                    t.per_eur,
                    mode,
                    e.to.currency().minor_units(),
                ) {
                    p.revaluation += v - e.to.amount();
                }
            }
        }
    }
    pairs.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, day: &str, supersedes: Option<&str>) -> FxEntry {
        serde_json::from_value(serde_json::json!({
            "seq": 1, "id": id, "order_id": "o.shop.x", "revision": "r",
            "part": GRAND_TOTAL,
            "from": {"amount": "10.00", "currency": "GBP"},
            "to": {"amount": "11.70", "currency": "EUR"},
            "rate": "1.17", "rate_date": day,
            "from_leg": {"currency": "GBP", "per_eur": "0.85", "date": day, "source": "ecb", "doc_hash": "d"},
            "to_leg": {"currency": "EUR", "per_eur": "1", "date": day, "source": "fixed"},
            "rounding": "half_up:2", "logged_at": "2017-02-15T10:00:00Z",
            "supersedes": supersedes,
            "prev_hash": GENESIS, "hash": "h"
        }))
        .unwrap()
    }

    #[test]
    fn a_selection_counts_what_the_whole_log_supersedes_as_superseded() {
        // The order's first conversion is in February; its revision moved it to March.
        let first = entry("fx.1", "2017-02-15", None);
        let revised = entry("fx.2", "2017-03-01", Some("fx.1"));
        let book = RateBook::new(Vec::new(), 4);
        let february = ReportRange {
            from: NaiveDate::from_ymd_opt(2017, 2, 1).unwrap(),
            to: NaiveDate::from_ymd_opt(2017, 2, 28).unwrap(),
            revalue_at: None,
        };
        let whole = [first.clone(), revised];
        assert!(report(&whole, &february, &book).is_empty());
        // A selection of February alone no longer holds the revision: the caller says which
        // entries are current.
        assert!(report_of(std::iter::empty(), &february, &book).is_empty());
        assert_eq!(
            report_of([&first].into_iter(), &february, &book)[0].count,
            1
        );
        assert_eq!(report(&[first], &february, &book)[0].count, 1);
    }
}
