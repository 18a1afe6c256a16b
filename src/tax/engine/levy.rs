//! The two ways tax is levied that most regimes share: at the point of sale, and at import
//! (duty, then import VAT/GST on customs value + duty + transport); and China's formula.

use rust_decimal::Decimal;

use super::super::Collector;
use super::calc::{Calc, Goods, money_text, pct, sales_kinds};

/// VAT/GST charged at sale on the goods and the delivery charge.
pub(super) fn point_of_sale(
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
pub(super) enum Valuation {
    /// Goods + transport and insurance to the border.
    Cif,
    /// Goods only (transport goes into the import-VAT base instead).
    Fob,
}

/// Duty at the border, then import VAT/GST on customs value + duty + transport.
pub(super) fn import_taxes(
    calc: &mut Calc,
    duty_destination: &str,
    tax_jurisdiction: &str,
    goods: &[Goods],
    shipping: Decimal,
    valuation: Valuation,
    with_sales_tax: bool,
) -> Decimal {
    let kinds = if with_sales_tax {
        sales_kinds(calc, tax_jurisdiction)
    } else {
        Vec::new()
    };
    let mut duty_total = Decimal::ZERO;
    for (g, share) in goods.iter().zip(transport_shares(goods, shipping)) {
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
pub(super) fn china_taxes(
    calc: &mut Calc,
    goods: &[Goods],
    shipping: Decimal,
    factor: Decimal,
    with_duty: bool,
    collector: Collector,
) {
    for (g, share) in goods.iter().zip(transport_shares(goods, shipping)) {
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

/// The transport charge allocated to the lines by value; the last line takes the remainder, so
/// the shares add up to the charge exactly.
fn transport_shares(goods: &[Goods], shipping: Decimal) -> Vec<Decimal> {
    let total: Decimal = goods.iter().map(|g| g.net).sum();
    let mut allocated = Decimal::ZERO;
    let mut shares = Vec::with_capacity(goods.len());
    for (n, g) in goods.iter().enumerate() {
        let share = if n + 1 == goods.len() {
            shipping - allocated
        } else if total.is_zero() {
            Decimal::ZERO
        } else {
            shipping * g.net / total
        };
        allocated += share;
        shares.push(share);
    }
    shares
}
