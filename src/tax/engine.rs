//! The tax and customs engine: one order + one rule pack (+ the rate book for thresholds in
//! foreign currencies) → which regime applies, every tax and duty line with who collects it,
//! the landed total, and an explanation of every rule evaluated. Pure and deterministic.
//!
//! Amounts are computed in the order's currency with full `Decimal` precision and rounded once
//! to its minor unit, half-up: per line, or per tax rate per invoice (Japan) and then allocated
//! to the lines so that they still add up.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::{Decimal, RoundingStrategy};

use super::pack::{DutyLookup, DutyRate, Pack, RoundingLevel};
use super::{Collector, Quote, QuoteContext, QuoteStatus, ShipMode, Step, TaxLine};
use crate::fx::book::{RateBook, Rounding};
use crate::model::{ChannelKind, CurrencyCode, Money, Order};

/// A line of the order as the rules see it.
#[derive(Debug, Clone)]
struct Goods {
    index: usize,
    hs: Option<String>,
    /// Country of origin, when the channel says.
    origin: Option<String>,
    class: String,
    /// Price paid for the line, after line discounts (tax-inclusive when the channel says so).
    gross: Decimal,
    /// The same without VAT when prices include it (else `gross`).
    net: Decimal,
    unit: Decimal,
}

struct Raw {
    kind: String,
    jurisdiction: String,
    applies_to: String,
    base: Decimal,
    rate: Option<Decimal>,
    amount: Decimal,
    collector: Collector,
    source: String,
    /// Already a final money amount (a converted flat duty).
    fixed: bool,
}

struct Calc<'a> {
    order: &'a Order,
    pack: &'a Pack,
    book: &'a RateBook,
    date: NaiveDate,
    steps: Vec<Step>,
    missing: Vec<String>,
    raw: Vec<Raw>,
}

fn pct(rate: Decimal) -> Decimal {
    rate / Decimal::from(100)
}

fn money_text(v: Decimal, c: CurrencyCode) -> String {
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
    fn step(
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

    fn miss(&mut self, m: String) {
        if !self.missing.contains(&m) {
            self.missing.push(m);
        }
    }

    fn currency(&self) -> CurrencyCode {
        self.order.currency
    }

    /// `v` (in the order currency) in `to`, at the order-date rate; explained.
    fn convert(&mut self, v: Decimal, to: CurrencyCode, why: &str) -> Option<Decimal> {
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
    fn within(&mut self, id: &str, v: Decimal, inclusive: bool, what: &str) -> Option<bool> {
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

    fn threshold_value(&mut self, id: &str) -> Option<Decimal> {
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
    fn rate(&mut self, jurisdiction: &str, kind: &str, class: &str) -> Option<(Decimal, String)> {
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

    fn duty_rate(&mut self, destination: &str, g: &Goods) -> Option<(Decimal, String)> {
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
    fn push(
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
fn point_of_sale_collector(order: &Order) -> Collector {
    match order.channel_kind {
        ChannelKind::Marketplace | ChannelKind::Social => Collector::Marketplace,
        _ => Collector::Seller,
    }
}

/// The tax kinds of a jurisdiction (CA provinces: HST replaces GST; QST/PST add to it).
fn tax_kinds(pack: &Pack, jurisdiction: &str, d: NaiveDate) -> Vec<(String, String)> {
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
        .rates
        .iter()
        .filter(|r| r.jurisdiction == jurisdiction && r.valid.covers(d))
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
fn sales_kinds(calc: &Calc, jurisdiction: &str) -> Vec<(String, String)> {
    tax_kinds(calc.pack, jurisdiction, calc.date)
        .into_iter()
        .filter(|(j, k)| !(j == "CN" && k == "consumption_tax"))
        .collect()
}

/// VAT/GST charged at sale on the goods and the delivery charge.
fn point_of_sale(
    calc: &mut Calc,
    jurisdiction: &str,
    goods: &[Goods],
    shipping: Decimal,
    collector: Collector,
) {
    let kinds = sales_kinds(calc, jurisdiction);
    if kinds.is_empty() {
        calc.miss(format!(
            "no sales tax rates for {jurisdiction} on {}",
            calc.date
        ));
        return;
    }
    let inclusive = calc.order.taxes_included;
    for g in goods {
        for (j, k) in &kinds {
            if let Some((rate, source)) = calc.rate(j, k, &g.class) {
                let (base, amount) = if inclusive {
                    let tax = g.gross * pct(rate) / (Decimal::ONE + pct(rate));
                    (g.gross - tax, tax)
                } else {
                    (g.gross, g.gross * pct(rate))
                };
                calc.push(
                    k,
                    j,
                    format!("line[{}]", g.index),
                    base,
                    Some(rate),
                    amount,
                    collector,
                    source,
                );
            }
        }
    }
    if shipping > Decimal::ZERO {
        // The delivery charge follows the standard rate (it is part of the supply).
        for (j, k) in &kinds {
            if let Some((rate, source)) = calc.rate(j, k, "standard") {
                let (base, amount) = if inclusive {
                    let tax = shipping * pct(rate) / (Decimal::ONE + pct(rate));
                    (shipping - tax, tax)
                } else {
                    (shipping, shipping * pct(rate))
                };
                calc.push(
                    k,
                    j,
                    "shipping".into(),
                    base,
                    Some(rate),
                    amount,
                    collector,
                    source,
                );
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Valuation {
    /// Goods + transport and insurance to the border.
    Cif,
    /// Goods only (transport goes into the import-VAT base instead).
    Fob,
}

/// Duty at the border, then import VAT/GST on customs value + duty + transport.
fn import_taxes(
    calc: &mut Calc,
    duty_destination: &str,
    tax_jurisdiction: &str,
    goods: &[Goods],
    shipping: Decimal,
    valuation: Valuation,
    with_sales_tax: bool,
) -> Decimal {
    let total: Decimal = goods.iter().map(|g| g.net).sum();
    let kinds = if with_sales_tax {
        sales_kinds(calc, tax_jurisdiction)
    } else {
        Vec::new()
    };
    let mut duty_total = Decimal::ZERO;
    let mut allocated = Decimal::ZERO;
    for (n, g) in goods.iter().enumerate() {
        // Transport allocated by value; the last line takes the remainder (exact sum).
        let share = if n + 1 == goods.len() {
            shipping - allocated
        } else if total.is_zero() {
            Decimal::ZERO
        } else {
            shipping * g.net / total
        };
        allocated += share;
        let customs_value = match valuation {
            Valuation::Cif => g.net + share,
            Valuation::Fob => g.net,
        };
        let mut duty = Decimal::ZERO;
        if let Some((rate, source)) = calc.duty_rate(duty_destination, g) {
            duty = customs_value * pct(rate);
            calc.push(
                "duty",
                duty_destination,
                format!("line[{}]", g.index),
                customs_value,
                Some(rate),
                duty,
                Collector::CarrierAtImport,
                source,
            );
        }
        duty_total += duty;
        let vat_base = g.net + share + duty;
        for (j, k) in &kinds {
            if let Some((rate, source)) = calc.rate(j, k, &g.class) {
                calc.push(
                    k,
                    j,
                    format!("line[{}]", g.index),
                    vat_base,
                    Some(rate),
                    vat_base * pct(rate),
                    Collector::CarrierAtImport,
                    source,
                );
            }
        }
    }
    duty_total
}

/// China: consumption tax and VAT, `factor` (0.7 within the CBEC limits) of the statutory
/// amounts: CT = P·c/(1−c), VAT = (P + duty + CT)·v.
fn china_taxes(
    calc: &mut Calc,
    goods: &[Goods],
    shipping: Decimal,
    factor: Decimal,
    with_duty: bool,
    collector: Collector,
) {
    let total: Decimal = goods.iter().map(|g| g.net).sum();
    let mut allocated = Decimal::ZERO;
    for (n, g) in goods.iter().enumerate() {
        let share = if n + 1 == goods.len() {
            shipping - allocated
        } else if total.is_zero() {
            Decimal::ZERO
        } else {
            shipping * g.net / total
        };
        allocated += share;
        let price = g.net + share;
        let mut duty = Decimal::ZERO;
        if with_duty {
            let Some((rate, source)) = calc.duty_rate("CN", g) else {
                continue;
            };
            duty = price * pct(rate);
            calc.push(
                "duty",
                "CN",
                format!("line[{}]", g.index),
                price,
                Some(rate),
                duty,
                collector,
                source,
            );
        }
        let c = calc
            .pack
            .rate("CN", "consumption_tax", &g.class, calc.date)
            .map(|r| (r.rate, r.source.clone()));
        let Some((v, vsource)) = calc.rate("CN", "vat", &g.class) else {
            continue;
        };
        let c_rate = c.as_ref().map(|(r, _)| pct(*r)).unwrap_or(Decimal::ZERO);
        let base = price + duty;
        let ct = base * c_rate / (Decimal::ONE - c_rate) * factor;
        let vat = base * pct(v) / (Decimal::ONE - c_rate) * factor;
        if let Some((cr, csource)) = c {
            calc.push(
                "consumption_tax",
                "CN",
                format!("line[{}]", g.index),
                base,
                Some(cr),
                ct,
                collector,
                csource,
            );
        }
        calc.push(
            "vat",
            "CN",
            format!("line[{}]", g.index),
            base,
            Some(v),
            vat,
            collector,
            vsource,
        );
        calc.step(
            "cn.comprehensive_rate",
            &[
                ("line", g.index.to_string()),
                ("c", format!("{}", c_rate * Decimal::from(100))),
                ("v", v.to_string()),
                ("factor", factor.to_string()),
            ],
            None,
            format!(
                "(c+v)/(1−c)×factor = {} % of {}",
                ((c_rate + pct(v)) / (Decimal::ONE - c_rate) * factor * Decimal::from(100))
                    .round_dp(4),
                money_text(base, calc.currency())
            ),
        );
    }
}

/// Quotes one order.
/// Where the order ships from: the lines' warehouse when they name one (all the same), else
/// the instance's. `Err` when the lines ship from several places (one quote per shipment is
/// not modelled).
fn order_ship_from(order: &Order, ctx: &QuoteContext) -> Result<Option<String>, String> {
    let mut named: Vec<&str> = order
        .lines
        .iter()
        .filter_map(|l| l.ship_from.as_ref().map(|c| c.as_str()))
        .collect();
    named.sort_unstable();
    named.dedup();
    match named[..] {
        [] => Ok(ctx.ship_from.clone()),
        [one] if order.lines.iter().all(|l| l.ship_from.is_some()) => Ok(Some(one.to_string())),
        _ => Err(format!(
            "the lines ship from several places ({}); one quote per shipment is not modelled",
            if named.is_empty() {
                "unknown".into()
            } else {
                named.join(", ")
            }
        )),
    }
}

pub fn quote(order: &Order, pack: &Pack, book: &RateBook, ctx: &QuoteContext) -> Quote {
    let ship_from = order_ship_from(order, ctx);
    let ctx = &QuoteContext {
        ship_from: ship_from.clone().unwrap_or_else(|_| ctx.ship_from.clone()),
        ..ctx.clone()
    };
    let currency = order.currency;
    let date = order.placed_at.date_naive();
    let mut calc = Calc {
        order,
        pack,
        book,
        date,
        steps: Vec::new(),
        missing: Vec::new(),
        raw: Vec::new(),
    };
    let destination = order
        .shipping_address
        .as_ref()
        .or(order.billing_address.as_ref())
        .map(|a| a.country.as_str().to_string());
    let shipping = order.totals.shipping.amount();

    // The lines, net of line discounts; classes from HS codes; VAT removed when included.
    let dest = destination.clone().unwrap_or_default();
    let mut goods = Vec::new();
    for (i, l) in order.lines.iter().enumerate() {
        let gross = l.amount().map(|m| m.amount()).unwrap_or_default() - l.discount.amount();
        let class = match pack.line_class(l.hs_code.as_deref(), l.tax_class.as_deref()) {
            Ok((class, by)) => {
                let hs = l.hs_code.clone().unwrap_or_default();
                let inputs = [("line", i.to_string()), ("hs_code", hs), ("by", by)];
                calc.step("goods_class", &inputs, None, class.clone());
                class
            }
            Err(reason) => {
                calc.miss(format!("line {i}: {reason}"));
                super::pack::STANDARD.to_string()
            }
        };
        let net = if order.taxes_included {
            let kind = tax_kinds(pack, &dest, date).into_iter().next();
            match kind.and_then(|(j, k)| pack.rate(&j, &k, &class, date).map(|r| r.rate)) {
                Some(r) => gross / (Decimal::ONE + pct(r)),
                None => gross,
            }
        } else {
            gross
        };
        goods.push(Goods {
            index: i,
            hs: l.hs_code.clone(),
            origin: l.origin_country.map(|c| c.as_str().to_string()),
            class,
            gross,
            net,
            unit: if l.quantity > 0 {
                net / Decimal::from(l.quantity)
            } else {
                net
            },
        });
    }
    let intrinsic: Decimal = goods.iter().map(|g| g.net).sum();
    calc.step(
        "order",
        &[
            ("destination", dest.clone()),
            ("date", date.to_string()),
            ("goods_value", money_text(intrinsic, currency)),
            ("shipping", money_text(shipping, currency)),
            ("prices_include_tax", order.taxes_included.to_string()),
            ("pack", pack.version.clone()),
        ],
        None,
        format!("{} line(s)", goods.len()),
    );

    let mut regime_id: Option<String> = None;
    let mut annual_addition = None;
    let seller_country = ctx.seller_country.as_deref();
    let from = ctx.ship_from.as_deref();
    // Shipped from a warehouse in the destination country, the sale is domestic there too.
    let cross_border = destination
        .as_deref()
        .is_some_and(|d| Some(d) != seller_country && Some(d) != from);
    let intra_eu = |d: &str| {
        from.is_some_and(|f| {
            f != d
                && pack.regime_of(f).is_some_and(|r| r.kind == "eu")
                && pack.regime_of(d).is_some_and(|r| r.kind == "eu")
        })
    };
    if let Err(reason) = &ship_from {
        calc.miss(reason.clone());
    }
    if destination.is_none() {
        calc.miss("the order has no shipping or billing country".into());
    } else if !cross_border {
        regime_id = Some("DOMESTIC".into());
        calc.step(
            "cross_border",
            &[
                ("seller_country", seller_country.unwrap_or("").into()),
                ("ship_from", from.unwrap_or("").into()),
            ],
            None,
            "domestic: not quoted".into(),
        );
    } else if intra_eu(&dest) {
        calc.miss(format!(
            "shipped from {} to {dest}: an intra-EU distance sale (OSS), not an import; not modelled",
            from.unwrap_or("")
        ));
    } else if let Some(regime) = pack.regime_of(&dest).cloned() {
        calc.step(
            "regime.select",
            &[("destination", dest.clone())],
            None,
            format!("rule set {}", regime.kind),
        );
        let pos = point_of_sale_collector(order);
        let id = match regime.kind.as_str() {
            "eu" => match calc.within("EU_IOSS_MAX", intrinsic, true, "intrinsic value") {
                Some(true) => {
                    point_of_sale(&mut calc, &dest, &goods, shipping, pos);
                    if let Some(t) = pack.threshold("EU_FLAT_DUTY", date).cloned() {
                        let mut subheadings: Vec<String> = Vec::new();
                        for g in &goods {
                            match &g.hs {
                                Some(h) if h.len() >= 6 => {
                                    if !subheadings.contains(&h[..6].to_string()) {
                                        subheadings.push(h[..6].to_string());
                                    }
                                }
                                _ => calc.miss(format!("line {}: the EU flat duty counts tariff sub-headings, and the line has no 6-digit HS code", g.index)),
                            }
                        }
                        let n = Decimal::from(subheadings.len());
                        let eur = t.amount * n;
                        calc.step(
                            "eu.flat_duty",
                            &[
                                ("sub_headings", subheadings.join(",")),
                                ("per_sub_heading", format!("{} EUR", t.amount)),
                                ("source", t.source.clone()),
                            ],
                            None,
                            format!("{eur} EUR"),
                        );
                        if let Some(v) = convert_from(&mut calc, eur, t.currency) {
                            calc.raw.push(Raw {
                                kind: "duty".into(),
                                jurisdiction: "EU".into(),
                                applies_to: "order".into(),
                                base: intrinsic,
                                rate: None,
                                amount: v,
                                collector: pos,
                                source: t.source.clone(),
                                fixed: true,
                            });
                        }
                    }
                    "EU_IOSS"
                }
                Some(false) => {
                    import_taxes(
                        &mut calc,
                        "EU",
                        &dest,
                        &goods,
                        shipping,
                        Valuation::Cif,
                        true,
                    );
                    "EU_IMPORT"
                }
                None => "EU",
            },
            "uk" => match calc.within("UK_LOW_VALUE_MAX", intrinsic, true, "consignment value") {
                Some(true) => {
                    point_of_sale(&mut calc, "GB", &goods, shipping, pos);
                    "UK_LOW_VALUE"
                }
                Some(false) => {
                    import_taxes(
                        &mut calc,
                        "GB",
                        "GB",
                        &goods,
                        shipping,
                        Valuation::Cif,
                        true,
                    );
                    "UK_IMPORT"
                }
                None => "UK",
            },
            "us" => {
                let de_minimis = if pack.threshold("US_DE_MINIMIS", date).is_some() {
                    calc.within("US_DE_MINIMIS", intrinsic, true, "shipment value")
                } else {
                    calc.step(
                        "threshold.US_DE_MINIMIS",
                        &[("date", date.to_string())],
                        None,
                        "no de minimis on this date (suspended for all countries from 2025-08-29)"
                            .into(),
                    );
                    Some(false)
                };
                match de_minimis {
                    Some(true) => "US_DE_MINIMIS",
                    Some(false) => {
                        import_taxes(
                            &mut calc,
                            "US",
                            "US",
                            &goods,
                            shipping,
                            Valuation::Fob,
                            false,
                        );
                        "US_FORMAL"
                    }
                    None => "US",
                }
            }
            "cn_cbec" => {
                let price = intrinsic + shipping;
                let single = calc.within("CN_CBEC_SINGLE_MAX", price, true, "transaction value");
                let price_cny = calc.convert(
                    price,
                    CurrencyCode::parse("CNY").expect("CNY"),
                    "annual total",
                );
                let annual_max = calc.threshold_value("CN_CBEC_ANNUAL_MAX");
                let factor = calc.threshold_value("CN_CBEC_FACTOR");
                match (single, price_cny, annual_max, factor) {
                    (Some(single), Some(p), Some(max), Some(factor)) => {
                        let after = ctx.annual_cny_before + p;
                        let annual_ok = after <= max;
                        calc.step(
                            "threshold.CN_CBEC_ANNUAL_MAX",
                            &[
                                ("before", format!("{} CNY", ctx.annual_cny_before)),
                                ("this order", format!("{p} CNY")),
                            ],
                            Some(format!("{after} CNY <= {max} CNY")),
                            if annual_ok {
                                "within".into()
                            } else {
                                "above".into()
                            },
                        );
                        let one_item = goods.len() == 1 && order.lines[0].quantity == 1;
                        if single && annual_ok {
                            china_taxes(&mut calc, &goods, shipping, factor, false, pos);
                            annual_addition = Some(p);
                            "CN_CBEC"
                        } else if !single && one_item && annual_ok {
                            china_taxes(&mut calc, &goods, shipping, Decimal::ONE, true, pos);
                            annual_addition = Some(p);
                            "CN_CBEC_FULL"
                        } else {
                            china_taxes(
                                &mut calc,
                                &goods,
                                shipping,
                                Decimal::ONE,
                                true,
                                Collector::CarrierAtImport,
                            );
                            "CN_GENERAL_TRADE"
                        }
                    }
                    _ => "CN",
                }
            }
            "au" => match calc.within("AU_LVG_MAX", intrinsic, true, "customs value") {
                Some(true) => {
                    point_of_sale(&mut calc, "AU", &goods, shipping, pos);
                    "AU_LVIG"
                }
                Some(false) => {
                    import_taxes(
                        &mut calc,
                        "AU",
                        "AU",
                        &goods,
                        shipping,
                        Valuation::Fob,
                        true,
                    );
                    "AU_IMPORT"
                }
                None => "AU",
            },
            "nz" => match calc.within("NZ_LVG_MAX", intrinsic, true, "customs value") {
                Some(true) => {
                    point_of_sale(&mut calc, "NZ", &goods, shipping, pos);
                    "NZ_LVG"
                }
                Some(false) => {
                    import_taxes(
                        &mut calc,
                        "NZ",
                        "NZ",
                        &goods,
                        shipping,
                        Valuation::Cif,
                        true,
                    );
                    "NZ_IMPORT"
                }
                None => "NZ",
            },
            "no" | "sg" => {
                let (id, inclusive, juris) = if regime.kind == "no" {
                    ("NO_VOEC_ITEM_MAX", false, "NO")
                } else {
                    ("SG_LVG_ITEM_MAX", true, "SG")
                };
                let mut all = Some(true);
                for g in &goods {
                    match calc.within(
                        id,
                        g.unit,
                        inclusive,
                        &format!("item value (line {})", g.index),
                    ) {
                        Some(true) => {}
                        Some(false) => all = all.map(|_| false),
                        None => all = None,
                    }
                }
                match (all, juris) {
                    (Some(true), "NO") => {
                        point_of_sale(&mut calc, "NO", &goods, shipping, pos);
                        "NO_VOEC"
                    }
                    (Some(true), _) => {
                        point_of_sale(&mut calc, "SG", &goods, shipping, pos);
                        "SG_LVG"
                    }
                    (Some(false), "NO") => {
                        import_taxes(
                            &mut calc,
                            "NO",
                            "NO",
                            &goods,
                            shipping,
                            Valuation::Cif,
                            true,
                        );
                        "NO_IMPORT"
                    }
                    (Some(false), _) => {
                        import_taxes(
                            &mut calc,
                            "SG",
                            "SG",
                            &goods,
                            shipping,
                            Valuation::Cif,
                            true,
                        );
                        "SG_IMPORT"
                    }
                    (None, j) => {
                        if j == "NO" {
                            "NO"
                        } else {
                            "SG"
                        }
                    }
                }
            }
            "ch" => {
                let first = calc.raw.len();
                import_taxes(
                    &mut calc,
                    "CH",
                    "CH",
                    &goods,
                    shipping,
                    Valuation::Cif,
                    true,
                );
                let vat: Decimal = calc.raw[first..]
                    .iter()
                    .filter(|r| r.kind == "vat")
                    .map(|r| r.amount)
                    .sum();
                let chf = CurrencyCode::parse("CHF").expect("CHF");
                if let Some(min) = calc.pack.threshold("CH_MIN_IMPORT_VAT", date).cloned()
                    && let Some(vat_chf) = calc.convert(vat, chf, "import VAT")
                {
                    let waived = vat_chf <= min.amount;
                    calc.step(
                        "threshold.CH_MIN_IMPORT_VAT",
                        &[
                            ("import_vat", format!("{vat_chf} CHF")),
                            ("source", min.source.clone()),
                        ],
                        Some(format!("{vat_chf} CHF <= {} CHF", min.amount)),
                        if waived {
                            "not collected".into()
                        } else {
                            "collected".into()
                        },
                    );
                    if waived {
                        for r in calc.raw[first..].iter_mut().filter(|r| r.kind == "vat") {
                            r.amount = Decimal::ZERO;
                        }
                    }
                }
                "CH_IMPORT"
            }
            "jp" => {
                let factor = calc
                    .threshold_value("JP_PERSONAL_USE_FACTOR")
                    .unwrap_or(Decimal::ONE);
                let taxable = intrinsic * factor;
                calc.step(
                    "jp.taxable_value",
                    &[
                        ("retail", money_text(intrinsic, currency)),
                        ("factor", factor.to_string()),
                    ],
                    None,
                    money_text(taxable, currency),
                );
                match calc.within("JP_LOW_VALUE_MAX", taxable, true, "taxable value") {
                    Some(true) => "JP_LOW_VALUE",
                    Some(false) => {
                        import_taxes(
                            &mut calc,
                            "JP",
                            "JP",
                            &goods,
                            shipping,
                            Valuation::Cif,
                            true,
                        );
                        "JP_IMPORT"
                    }
                    None => "JP",
                }
            }
            "ca" => {
                let province = order
                    .shipping_address
                    .as_ref()
                    .and_then(|a| a.region.clone())
                    .map(|r| r.trim().to_uppercase())
                    .filter(|r| r.len() == 2);
                match province {
                    None => {
                        calc.miss("Canada: the province (shipping_address.region, e.g. ON) decides GST/HST/PST".into());
                        "CA"
                    }
                    Some(p) => {
                        let juris = format!("CA-{p}");
                        let near = matches!(ctx.ship_from.as_deref(), Some("US" | "MX"))
                            && ctx.mode == ShipMode::Courier;
                        calc.step(
                            "ca.thresholds",
                            &[
                                (
                                    "ship_from",
                                    ctx.ship_from.clone().unwrap_or_else(|| "unknown".into()),
                                ),
                                ("mode", format!("{:?}", ctx.mode).to_lowercase()),
                            ],
                            None,
                            if near {
                                "CUSMA courier thresholds".into()
                            } else {
                                "general thresholds".into()
                            },
                        );
                        if near {
                            match (
                                calc.within(
                                    "CA_COURIER_TAX_MAX",
                                    intrinsic,
                                    true,
                                    "value for duty",
                                ),
                                calc.within(
                                    "CA_COURIER_DUTY_MAX",
                                    intrinsic,
                                    true,
                                    "value for duty",
                                ),
                            ) {
                                (Some(true), _) => "CA_LOW_VALUE",
                                (Some(false), Some(true)) => {
                                    import_taxes(
                                        &mut calc,
                                        "CA",
                                        &juris,
                                        &goods,
                                        shipping,
                                        Valuation::Fob,
                                        true,
                                    );
                                    // Duty-free up to CAD 150: drop the duty lines.
                                    calc.raw.retain(|r| r.kind != "duty");
                                    calc.missing.retain(|m| !m.contains("duty rule"));
                                    "CA_TAX_ONLY"
                                }
                                (Some(false), Some(false)) => {
                                    import_taxes(
                                        &mut calc,
                                        "CA",
                                        &juris,
                                        &goods,
                                        shipping,
                                        Valuation::Fob,
                                        true,
                                    );
                                    "CA_IMPORT"
                                }
                                _ => "CA",
                            }
                        } else {
                            match calc.within("CA_OTHER_MAX", intrinsic, true, "value for duty") {
                                Some(true) => "CA_LOW_VALUE",
                                Some(false) => {
                                    import_taxes(
                                        &mut calc,
                                        "CA",
                                        &juris,
                                        &goods,
                                        shipping,
                                        Valuation::Fob,
                                        true,
                                    );
                                    "CA_IMPORT"
                                }
                                None => "CA",
                            }
                        }
                    }
                }
            }
            other => {
                calc.miss(format!("regime kind {other} is not implemented"));
                "UNKNOWN"
            }
        };
        regime_id = Some(id.to_string());
        calc.step("regime", &[], None, id.to_string());
    } else {
        calc.miss(format!(
            "no rule for destination {dest} in pack {}",
            pack.version
        ));
    }

    // Rounding.
    let level = destination
        .as_deref()
        .and_then(|d| pack.regime_of(d))
        .map(|r| r.rounding)
        .unwrap_or(RoundingLevel::PerLine);
    let lines = round_lines(&calc.raw, currency, level);
    if level == RoundingLevel::PerInvoicePerRate && !lines.is_empty() {
        calc.step(
            "rounding",
            &[],
            None,
            "once per tax rate per invoice, allocated to lines (largest remainder)".into(),
        );
    }

    let tax_total: Decimal = lines.iter().map(|l| l.amount.amount()).sum();
    let mut by_kind: BTreeMap<String, Money> = BTreeMap::new();
    for l in &lines {
        let e = by_kind
            .entry(l.kind.clone())
            .or_insert(Money::zero(currency));
        *e = Money::new(e.amount() + l.amount.amount(), currency).unwrap_or(*e);
    }
    let m = |v: Decimal| {
        Money::new(
            v.round_dp_with_strategy(
                currency.minor_units(),
                RoundingStrategy::MidpointAwayFromZero,
            ),
            currency,
        )
        .unwrap_or(Money::zero(currency))
    };
    let goods_net: Decimal = goods.iter().map(|g| g.net).sum();
    let shipping_net = if order.taxes_included {
        lines
            .iter()
            .filter(|l| l.applies_to == "shipping")
            .fold(shipping, |s, l| s - l.amount.amount())
    } else {
        shipping
    };
    let landed = goods_net + shipping_net + tax_total;
    // The channel's own tax figure against what is collected at sale.
    let at_sale: Decimal = lines
        .iter()
        .filter(|l| l.kind != "duty" && l.collector != Collector::CarrierAtImport)
        .map(|l| l.amount.amount())
        .sum();
    let channel_tax = order.totals.tax.amount();
    let channel_difference = m(channel_tax - at_sale);
    let status = if calc.missing.is_empty() {
        QuoteStatus::Quoted
    } else {
        QuoteStatus::TaxPending
    };
    Quote {
        order_id: order.id.as_str().to_string(),
        pack_version: pack.version.clone(),
        destination,
        regime: regime_id,
        status,
        missing: calc.missing,
        currency,
        lines: if status == QuoteStatus::Quoted {
            lines
        } else {
            Vec::new()
        },
        tax_total: (status == QuoteStatus::Quoted).then(|| m(tax_total)),
        totals_by_kind: if status == QuoteStatus::Quoted {
            by_kind
        } else {
            BTreeMap::new()
        },
        landed_total: (status == QuoteStatus::Quoted).then(|| m(landed)),
        channel_tax: order.totals.tax,
        channel_difference: (status == QuoteStatus::Quoted
            && !channel_difference.amount().is_zero())
        .then_some(channel_difference),
        annual_cny_addition: annual_addition.filter(|_| status == QuoteStatus::Quoted),
        explanation: calc.steps,
    }
}

fn convert_from(calc: &mut Calc, v: Decimal, from: CurrencyCode) -> Option<Decimal> {
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

/// Rounds the raw lines: each on its own, or per (kind, jurisdiction, rate, collector) group
/// once and then allocated by largest remainder so the lines add up to the group's total.
fn round_lines(raw: &[Raw], c: CurrencyCode, level: RoundingLevel) -> Vec<TaxLine> {
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
