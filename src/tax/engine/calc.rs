//! The working state of one quote: the steps explained so far, what is missing, the raw
//! (unrounded) tax lines, and the lookups every regime shares (rates, thresholds, FX).

use chrono::NaiveDate;
use rust_decimal::{Decimal, RoundingStrategy};

use super::super::pack::{DutyLookup, DutyRate, Pack};
use super::super::{Collector, Step};
use crate::fx::book::{RateBook, Rounding};
use crate::model::{ChannelKind, CurrencyCode, Money, Order};

/// A line of the order as the rules see it.
#[derive(Debug, Clone)]
pub(super) struct Goods {
    pub(super) index: usize,
    pub(super) hs: Option<String>,
    /// Country of origin, when the channel says.
    pub(super) origin: Option<String>,
    pub(super) class: String,
    /// Price paid for the line, after line discounts (tax-inclusive when the channel says so).
    pub(super) gross: Decimal,
    /// The same without VAT when prices include it (else `gross`).
    pub(super) net: Decimal,
    pub(super) unit: Decimal,
}

pub(super) struct Raw {
    pub(super) kind: String,
    pub(super) jurisdiction: String,
    pub(super) applies_to: String,
    pub(super) base: Decimal,
    pub(super) rate: Option<Decimal>,
    pub(super) amount: Decimal,
    pub(super) collector: Collector,
    pub(super) source: String,
    /// Already a final money amount (a converted flat duty).
    pub(super) fixed: bool,
}

pub(super) struct Calc<'a> {
    pub(super) order: &'a Order,
    pub(super) pack: &'a Pack,
    pub(super) book: &'a RateBook,
    pub(super) date: NaiveDate,
    pub(super) steps: Vec<Step>,
    pub(super) missing: Vec<String>,
    pub(super) raw: Vec<Raw>,
}

pub(super) fn pct(rate: Decimal) -> Decimal {
    rate / Decimal::from(100)
}

pub(super) fn money_text(v: Decimal, c: CurrencyCode) -> String {
    format!(
        "{} {}",
        v.round_dp_with_strategy(
            c.minor_units().max(2),
            RoundingStrategy::MidpointAwayFromZero
        ),
        c.code()
    )
}

impl<'a> Calc<'a> {
    pub(super) fn step(
        &mut self,
        rule: &str,
        inputs: &[(&str, String)],
        comparison: Option<String>,
        outcome: String,
    ) {
        self.steps.push(Step {
            rule: rule.to_string(),
            inputs: inputs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            comparison,
            outcome,
        });
    }

    pub(super) fn miss(&mut self, m: String) {
        if !self.missing.contains(&m) {
            self.missing.push(m);
        }
    }

    pub(super) fn currency(&self) -> CurrencyCode {
        self.order.currency
    }

    /// `v` (in the order currency) in `to`, at the order-date rate; explained.
    pub(super) fn convert(&mut self, v: Decimal, to: CurrencyCode, why: &str) -> Option<Decimal> {
        if to == self.currency() {
            return Some(v);
        }
        let from = self.currency();
        let amount = Money::new(
            v.round_dp_with_strategy(from.minor_units(), RoundingStrategy::MidpointAwayFromZero),
            from,
        )
        .ok()?;
        match self
            .book
            .convert(amount, to, self.order.placed_at, &Rounding::default())
        {
            Ok(c) => {
                self.step(
                    "fx.convert",
                    &[
                        ("for", why.to_string()),
                        ("amount", money_text(v, from)),
                        ("rate", c.rate().to_string()),
                        ("rate_date", c.rate_date().to_string()),
                        (
                            "source",
                            format!("{} / {}", c.from_leg.source, c.to_leg.source),
                        ),
                    ],
                    None,
                    format!("{} {}", c.to.amount(), to.code()),
                );
                Some(c.to.amount())
            }
            Err(e) => {
                self.miss(format!("{why}: {e}"));
                None
            }
        }
    }

    /// `v` in the order currency compared with a threshold; `None` when it cannot be decided.
    pub(super) fn within(
        &mut self,
        id: &str,
        v: Decimal,
        inclusive: bool,
        what: &str,
    ) -> Option<bool> {
        let Some(t) = self.pack.threshold(id, self.date).cloned() else {
            self.miss(format!(
                "no {id} threshold in pack {} on {}",
                self.pack.version, self.date
            ));
            return None;
        };
        let value = self.convert(v, t.currency, what)?;
        let ok = if inclusive {
            value <= t.amount
        } else {
            value < t.amount
        };
        self.step(
            &format!("threshold.{id}"),
            &[
                (what, format!("{value} {}", t.currency.code())),
                ("source", t.source.clone()),
            ],
            Some(format!(
                "{value} {} {} {}",
                if inclusive { "<=" } else { "<" },
                t.amount,
                t.currency.code()
            )),
            if ok { "within".into() } else { "above".into() },
        );
        Some(ok)
    }

    pub(super) fn threshold_value(&mut self, id: &str) -> Option<Decimal> {
        match self.pack.threshold(id, self.date) {
            Some(t) => Some(t.amount),
            None => {
                self.miss(format!(
                    "no {id} in pack {} on {}",
                    self.pack.version, self.date
                ));
                None
            }
        }
    }

    /// The rate of a tax kind for a goods class (falling back to nothing: a missing class rate
    /// holds the order).
    pub(super) fn rate(
        &mut self,
        jurisdiction: &str,
        kind: &str,
        class: &str,
    ) -> Option<(Decimal, String)> {
        match self
            .pack
            .rate(jurisdiction, kind, class, self.date)
            .cloned()
        {
            Some(r) => {
                let name = format!("rate.{kind}");
                let seen = self.steps.iter().any(|s| {
                    s.rule == name
                        && s.inputs.get("jurisdiction").map(String::as_str) == Some(jurisdiction)
                        && s.inputs.get("class").map(String::as_str) == Some(class)
                });
                if !seen {
                    self.step(
                        &name,
                        &[
                            ("jurisdiction", jurisdiction.to_string()),
                            ("class", class.to_string()),
                            ("effective_from", r.valid.from.to_string()),
                            ("source", r.source.clone()),
                        ],
                        None,
                        format!("{} %", r.rate),
                    );
                }
                Some((r.rate, r.source))
            }
            None => {
                self.miss(format!(
                    "no {kind} rate for goods class '{class}' in {jurisdiction} on {} (pack {})",
                    self.date, self.pack.version
                ));
                None
            }
        }
    }

    pub(super) fn duty_rate(&mut self, destination: &str, g: &Goods) -> Option<(Decimal, String)> {
        let Some(hs) = g.hs.as_deref() else {
            self.miss(format!(
                "line {}: no HS code, so no duty rule can apply",
                g.index
            ));
            return None;
        };
        let origin = g.origin.as_deref();
        match self.pack.duty_for(destination, hs, origin, self.date) {
            DutyLookup::Rule(d) => {
                let mut inputs = vec![
                    ("line", g.index.to_string()),
                    ("hs_code", hs.to_string()),
                    ("prefix", d.hs_prefix.clone()),
                    ("source", d.source.clone()),
                ];
                match d.rate.clone() {
                    DutyRate::Percent(r) => {
                        let rule = if d.origin.is_empty() {
                            "any origin".to_string()
                        } else {
                            format!("origin {}", d.origin.join(", "))
                        };
                        inputs.push(("origin", origin.unwrap_or("unknown").into()));
                        inputs.push(("rule", rule));
                        self.step("duty.rate", &inputs, None, format!("{r} %"));
                        Some((r, d.source.clone()))
                    }
                    DutyRate::Hold(reason) => {
                        // The explanation says which rule holds the line, not only `missing`.
                        self.step("duty.rate", &inputs, None, format!("held: {reason}"));
                        self.miss(format!("line {} (HS {hs}): {reason}", g.index));
                        None
                    }
                }
            }
            DutyLookup::OriginNeeded => {
                self.miss(format!(
                    "line {} (HS {hs}): the {destination} duty depends on the country of origin, \
                     which the line does not give",
                    g.index
                ));
                None
            }
            DutyLookup::NoRule => {
                self.miss(format!(
                    "line {} (HS {hs}): no {destination} duty rule in pack {}",
                    g.index, self.pack.version
                ));
                None
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn push(
        &mut self,
        kind: &str,
        jurisdiction: &str,
        applies_to: String,
        base: Decimal,
        rate: Option<Decimal>,
        amount: Decimal,
        collector: Collector,
        source: String,
    ) {
        self.raw.push(Raw {
            kind: kind.into(),
            jurisdiction: jurisdiction.into(),
            applies_to,
            base,
            rate,
            amount,
            collector,
            source,
            fixed: false,
        });
    }
}

/// Seller, or the marketplace when the channel is one (deemed supplier).
pub(super) fn point_of_sale_collector(order: &Order) -> Collector {
    match order.channel_kind {
        ChannelKind::Marketplace | ChannelKind::Social => Collector::Marketplace,
        _ => Collector::Seller,
    }
}

/// The tax kinds of a jurisdiction (CA provinces: HST replaces GST; QST/PST add to it).
pub(super) fn tax_kinds(pack: &Pack, jurisdiction: &str, d: NaiveDate) -> Vec<(String, String)> {
    if let Some(province) = jurisdiction.strip_prefix("CA-") {
        let p = format!("CA-{province}");
        if pack.rate(&p, "hst", "standard", d).is_some() {
            return vec![(p, "hst".into())];
        }
        let mut v = vec![("CA".to_string(), "gst".to_string())];
        for k in ["qst", "pst"] {
            if pack.rate(&p, k, "standard", d).is_some() {
                v.push((p.clone(), k.to_string()));
            }
        }
        return v;
    }
    let mut kinds: Vec<String> = pack
        .rates_in(jurisdiction)
        .filter(|r| r.valid.covers(d))
        .map(|r| r.kind.clone())
        .collect();
    kinds.sort();
    kinds.dedup();
    kinds
        .into_iter()
        .map(|k| (jurisdiction.to_string(), k))
        .collect()
}

/// The VAT/GST kinds of point-of-sale and import taxes (not consumption tax in CN, which has
/// its own formula).
pub(super) fn sales_kinds(calc: &Calc, jurisdiction: &str) -> Vec<(String, String)> {
    tax_kinds(calc.pack, jurisdiction, calc.date)
        .into_iter()
        .filter(|(j, k)| !(j == "CN" && k == "consumption_tax"))
        .collect()
}

pub(super) fn convert_from(calc: &mut Calc, v: Decimal, from: CurrencyCode) -> Option<Decimal> {
    let to = calc.currency();
    if from == to {
        return Some(v);
    }
    let amount = Money::new(v, from).ok()?;
    match calc
        .book
        .convert(amount, to, calc.order.placed_at, &Rounding::default())
    {
        Ok(c) => {
            calc.step(
                "fx.convert",
                &[
                    ("amount", format!("{v} {}", from.code())),
                    ("rate", c.rate().to_string()),
                    ("rate_date", c.rate_date().to_string()),
                ],
                None,
                format!("{} {}", c.to.amount(), to.code()),
            );
            Some(c.to.amount())
        }
        Err(e) => {
            calc.miss(format!("the flat duty in the order currency: {e}"));
            None
        }
    }
}
