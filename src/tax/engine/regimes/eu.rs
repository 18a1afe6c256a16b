//! The EU: up to EUR 150 intrinsic value the IOSS applies (VAT at sale, and the flat duty per
//! tariff sub-heading where the pack dates one); above it duty and import VAT at the border.

use super::super::calc::{Raw, convert_from};
use super::super::levy::{Valuation, import_taxes, point_of_sale};
use super::{Applied, Calc, Regime, Sale};
use rust_decimal::Decimal;

pub(super) struct Eu;

impl Regime for Eu {
    fn apply(&self, calc: &mut Calc, sale: &Sale) -> Applied {
        match calc.within("EU_IOSS_MAX", sale.intrinsic, true, "intrinsic value") {
            Some(true) => {
                point_of_sale(calc, sale.dest, sale.goods, sale.shipping, sale.pos);
                flat_duty(calc, sale);
                "EU_IOSS".into()
            }
            Some(false) => {
                let (goods, shipping) = (sale.goods, sale.shipping);
                import_taxes(calc, "EU", sale.dest, goods, shipping, Valuation::Cif, true);
                "EU_IMPORT".into()
            }
            None => "EU".into(),
        }
    }
}

/// The flat customs duty on low-value consignments: a fixed EUR amount per distinct 6-digit
/// tariff sub-heading, from the date the pack gives it.
fn flat_duty(calc: &mut Calc, sale: &Sale) {
    let Some(t) = calc.pack.threshold("EU_FLAT_DUTY", calc.date).cloned() else {
        return;
    };
    let mut subheadings: Vec<String> = Vec::new();
    for g in sale.goods {
        match &g.hs {
            Some(h) if h.len() >= 6 => {
                if !subheadings.contains(&h[..6].to_string()) {
                    subheadings.push(h[..6].to_string());
                }
            }
            _ => calc.miss(format!(
                "line {}: the EU flat duty counts tariff sub-headings, and the line has no 6-digit HS code",
                g.index
            )),
        }
    }
    let eur = t.amount * Decimal::from(subheadings.len());
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
    if let Some(v) = convert_from(calc, eur, t.currency) {
        calc.raw.push(Raw {
            kind: "duty".into(),
            jurisdiction: "EU".into(),
            applies_to: "order".into(),
            base: sale.intrinsic,
            rate: None,
            amount: v,
            collector: sale.pos,
            source: t.source.clone(),
            fixed: true,
        });
    }
}
