//! The tax and customs engine: one order + one rule pack (+ the rate book for thresholds in
//! foreign currencies) → which regime applies, every tax and duty line with who collects it,
//! the landed total, and an explanation of every rule evaluated. Pure and deterministic.
//!
//! `quote` classifies the lines, decides whether the sale is cross-border, selects the
//! destination's rule set (one file per regime in `regimes/`) and delegates to it, then rounds.
//!
//! Amounts are computed in the order's currency with full `Decimal` precision and rounded once
//! to its minor unit, half-up: per line, or per tax rate per invoice (Japan) and then allocated
//! to the lines so that they still add up.

mod calc;
mod levy;
mod regimes;
mod rounding;

use std::collections::BTreeMap;

use rust_decimal::{Decimal, RoundingStrategy};

use super::pack::{Pack, RoundingLevel};
use super::{Collector, Quote, QuoteContext, QuoteStatus, TaxLine};
use crate::fx::book::RateBook;
use crate::model::{CurrencyCode, Money, Order};
use calc::{Calc, Goods, money_text, pct, point_of_sale_collector, tax_kinds};
use regimes::Sale;
use rounding::round_lines;

/// Quotes one order.
pub fn quote(order: &Order, pack: &Pack, book: &RateBook, ctx: &QuoteContext) -> Quote {
    let ship_from = order_ship_from(order, ctx);
    let ctx = &QuoteContext {
        ship_from: ship_from.clone().unwrap_or_else(|_| ctx.ship_from.clone()),
        ..ctx.clone()
    };
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
    let dest = destination.clone().unwrap_or_default();
    let all = classify(&mut calc, &dest, &ctx.listings);
    if let Err(reason) = &ship_from {
        calc.miss(reason.clone());
    }
    // E-books are not shipped: they stay out of the consignment, its thresholds and duty.
    let (electronic, goods): (Vec<Goods>, Vec<Goods>) = all
        .iter()
        .cloned()
        .partition(|g| pack.is_electronic(&g.class));
    let (regime, annual) = match destination.as_deref() {
        None => {
            calc.miss("the order has no shipping or billing country".into());
            (None, None)
        }
        Some(dest) if goods.is_empty() && !electronic.is_empty() => {
            (electronic_supplies(&mut calc, dest, &electronic, ctx), None)
        }
        Some(dest) => {
            let applied = select_and_apply(&mut calc, dest, &goods, ctx);
            electronic_supplies(&mut calc, dest, &electronic, ctx);
            applied
        }
    };
    finish(calc, destination, &all, regime, annual)
}

/// Lines supplied electronically (e-books): no customs and no import thresholds; VAT or GST
/// where the buyer is, at that class's rate there, charged at the sale by the seller (or the
/// marketplace that collects). `ELECTRONIC` when the order has nothing else.
fn electronic_supplies(
    calc: &mut Calc,
    dest: &str,
    electronic: &[Goods],
    ctx: &QuoteContext,
) -> Option<String> {
    if electronic.is_empty() {
        return None;
    }
    let lines: Vec<String> = electronic.iter().map(|g| g.index.to_string()).collect();
    let inputs = [
        ("lines", lines.join(", ")),
        ("destination", dest.to_string()),
    ];
    if Some(dest) == ctx.seller_country.as_deref() {
        calc.step(
            "supply.electronic",
            &inputs,
            None,
            "domestic: not quoted".into(),
        );
        return Some("DOMESTIC".into());
    }
    calc.step(
        "supply.electronic",
        &inputs,
        None,
        "an electronic supply: taxed where the buyer is, no customs".into(),
    );
    let collector = point_of_sale_collector(calc.order);
    levy::point_of_sale(calc, dest, electronic, Decimal::ZERO, collector);
    Some("ELECTRONIC".into())
}

/// A line's HS code and named class: the line's own, else its listing's.
fn line_goods_facts(
    l: &crate::model::OrderLine,
    listing: Option<&super::ListingFacts>,
) -> (Option<String>, Option<(String, String)>) {
    let hs = l
        .hs_code
        .clone()
        .or_else(|| listing.and_then(|f| f.hs_code.clone()));
    let named = match (&l.tax_class, listing) {
        (Some(c), _) => Some((c.clone(), "the line".to_string())),
        (None, Some(f)) => f
            .tax_class
            .clone()
            .map(|c| (c, format!("listing {}", f.listing))),
        (None, None) => None,
    };
    (hs, named)
}

/// The lines, net of line discounts; classes named by the line or its listing, else from HS
/// codes; VAT removed when included.
fn classify(calc: &mut Calc, dest: &str, listings: &super::LineListings) -> Vec<Goods> {
    let (order, pack, date) = (calc.order, calc.pack, calc.date);
    let mut goods = Vec::new();
    for (i, l) in order.lines.iter().enumerate() {
        let gross = l.amount().map(|m| m.amount()).unwrap_or_default() - l.discount.amount();
        let listing = match listings.get(&i) {
            Some(Ok(f)) => Some(f),
            Some(Err(reason)) => {
                calc.miss(format!("line {i}: {reason}"));
                None
            }
            None => None,
        };
        let (hs, named) = line_goods_facts(l, listing);
        let named = named.as_ref().map(|(c, by)| (c.as_str(), by.as_str()));
        let class = match pack.line_class(hs.as_deref(), named) {
            Ok((class, by)) => {
                let hs_text = hs.clone().unwrap_or_default();
                let inputs = [("line", i.to_string()), ("hs_code", hs_text), ("by", by)];
                calc.step("goods_class", &inputs, None, class.clone());
                class
            }
            Err(reason) => {
                calc.miss(format!("line {i}: {reason}"));
                super::pack::STANDARD.to_string()
            }
        };
        let net = if order.taxes_included {
            let kind = tax_kinds(pack, dest, date).into_iter().next();
            match kind.and_then(|(j, k)| pack.rate(&j, &k, &class, date).map(|r| r.rate)) {
                Some(r) => gross / (Decimal::ONE + pct(r)),
                None => gross,
            }
        } else {
            gross
        };
        goods.push(Goods {
            index: i,
            hs,
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
    let (currency, shipping) = (order.currency, order.totals.shipping.amount());
    calc.step(
        "order",
        &[
            ("destination", dest.to_string()),
            ("date", date.to_string()),
            ("goods_value", money_text(intrinsic, currency)),
            ("shipping", money_text(shipping, currency)),
            ("prices_include_tax", order.taxes_included.to_string()),
            ("pack", pack.version.clone()),
        ],
        None,
        format!("{} line(s)", goods.len()),
    );
    goods
}

/// Domestic, intra-EU, or a cross-border sale into a regime the pack knows: the regime id,
/// and for China CBEC what the order adds to the buyer's annual total.
fn select_and_apply(
    calc: &mut Calc,
    dest: &str,
    goods: &[Goods],
    ctx: &QuoteContext,
) -> (Option<String>, Option<Decimal>) {
    let pack = calc.pack;
    let seller_country = ctx.seller_country.as_deref();
    let from = ctx.ship_from.as_deref();
    // Shipped from a warehouse in the destination country, the sale is domestic there too.
    if Some(dest) == seller_country || Some(dest) == from {
        calc.step(
            "cross_border",
            &[
                ("seller_country", seller_country.unwrap_or("").into()),
                ("ship_from", from.unwrap_or("").into()),
            ],
            None,
            "domestic: not quoted".into(),
        );
        return (Some("DOMESTIC".into()), None);
    }
    let is_eu = |c: &str| pack.regime_of(c).is_some_and(|r| r.kind == "eu");
    if let Some(f) = from.filter(|f| *f != dest && is_eu(f) && is_eu(dest)) {
        calc.miss(format!(
            "shipped from {f} to {dest}: an intra-EU distance sale (OSS), not an import; not modelled"
        ));
        return (None, None);
    }
    let Some(regime) = pack.regime_of(dest) else {
        calc.miss(format!(
            "no rule for destination {dest} in pack {}",
            pack.version
        ));
        return (None, None);
    };
    let inputs = [("destination", dest.to_string())];
    calc.step(
        "regime.select",
        &inputs,
        None,
        format!("rule set {}", regime.kind),
    );
    let Some(rules) = regimes::for_kind(&regime.kind) else {
        calc.miss(format!("regime kind {} is not implemented", regime.kind));
        calc.step("regime", &[], None, "UNKNOWN".into());
        return (Some("UNKNOWN".into()), None);
    };
    let sale = Sale {
        dest,
        goods,
        shipping: calc.order.totals.shipping.amount(),
        intrinsic: goods.iter().map(|g| g.net).sum(),
        pos: point_of_sale_collector(calc.order),
        ctx,
    };
    let applied = rules.apply(calc, &sale);
    calc.step("regime", &[], None, applied.id.to_string());
    (Some(applied.id.to_string()), applied.annual_cny_addition)
}

/// Rounds the lines and builds the quote: totals only when nothing is missing.
fn finish(
    mut calc: Calc,
    destination: Option<String>,
    goods: &[Goods],
    regime: Option<String>,
    annual_addition: Option<Decimal>,
) -> Quote {
    let (order, pack) = (calc.order, calc.pack);
    let currency = order.currency;
    let shipping = order.totals.shipping.amount();
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
    let channel_difference = m(order.totals.tax.amount() - at_sale);
    let quoted = calc.missing.is_empty();
    Quote {
        order_id: order.id.as_str().to_string(),
        pack_version: pack.version.clone(),
        destination,
        regime,
        status: if quoted {
            QuoteStatus::Quoted
        } else {
            QuoteStatus::TaxPending
        },
        missing: calc.missing,
        currency,
        totals_by_kind: if quoted {
            totals_by_kind(&lines, currency)
        } else {
            BTreeMap::new()
        },
        lines: if quoted { lines } else { Vec::new() },
        tax_total: quoted.then(|| m(tax_total)),
        landed_total: quoted.then(|| m(landed)),
        channel_tax: order.totals.tax,
        channel_difference: (quoted && !channel_difference.amount().is_zero())
            .then_some(channel_difference),
        annual_cny_addition: annual_addition.filter(|_| quoted),
        explanation: calc.steps,
    }
}

fn totals_by_kind(lines: &[TaxLine], currency: CurrencyCode) -> BTreeMap<String, Money> {
    let mut by_kind: BTreeMap<String, Money> = BTreeMap::new();
    for l in lines {
        let e = by_kind
            .entry(l.kind.clone())
            .or_insert(Money::zero(currency));
        *e = Money::new(e.amount() + l.amount.amount(), currency).unwrap_or(*e);
    }
    by_kind
}

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
