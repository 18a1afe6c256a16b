//! China cross-border e-commerce (CBEC): within the single-transaction and annual limits,
//! consumption tax and VAT at the pack's factor (70 %) of the statutory amounts and no duty;
//! a single indivisible item above the single limit pays them in full; otherwise the order is
//! general trade (duty, VAT and consumption tax in full, collected at import).

use rust_decimal::Decimal;

use super::super::super::Collector;
use super::super::levy::china_taxes;
use super::{Applied, Calc, Regime, Sale};
use crate::model::CurrencyCode;

pub(super) struct CrossBorderEcommerce;

impl Regime for CrossBorderEcommerce {
    fn apply(&self, calc: &mut Calc, sale: &Sale) -> Applied {
        let price = sale.intrinsic + sale.shipping;
        let single = calc.within("CN_CBEC_SINGLE_MAX", price, true, "transaction value");
        let cny = CurrencyCode::parse("CNY").expect("CNY");
        let price_cny = calc.convert(price, cny, "annual total");
        let annual_max = calc.threshold_value("CN_CBEC_ANNUAL_MAX");
        let factor = calc.threshold_value("CN_CBEC_FACTOR");
        let (Some(single), Some(p), Some(max), Some(factor)) =
            (single, price_cny, annual_max, factor)
        else {
            return "CN".into();
        };
        let before = sale.ctx.annual_cny_before;
        let after = before + p;
        let annual_ok = after <= max;
        calc.step(
            "threshold.CN_CBEC_ANNUAL_MAX",
            &[
                ("before", format!("{before} CNY")),
                ("this order", format!("{p} CNY")),
            ],
            Some(format!("{after} CNY <= {max} CNY")),
            if annual_ok { "within" } else { "above" }.into(),
        );
        let one_item = sale.goods.len() == 1 && calc.order.lines[0].quantity == 1;
        let (goods, shipping) = (sale.goods, sale.shipping);
        let counted = |id| Applied {
            id,
            annual_cny_addition: Some(p),
        };
        if single && annual_ok {
            china_taxes(calc, goods, shipping, factor, false, sale.pos);
            counted("CN_CBEC")
        } else if !single && one_item && annual_ok {
            china_taxes(calc, goods, shipping, Decimal::ONE, true, sale.pos);
            counted("CN_CBEC_FULL")
        } else {
            let at_import = Collector::CarrierAtImport;
            china_taxes(calc, goods, shipping, Decimal::ONE, true, at_import);
            "CN_GENERAL_TRADE".into()
        }
    }
}
