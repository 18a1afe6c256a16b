//! Japan: goods for personal use are valued at a fraction of the retail price; at or below the
//! low-value limit nothing is due, above it duty and consumption tax at import.

use rust_decimal::Decimal;

use super::super::calc::money_text;
use super::super::levy::{Valuation, import_taxes};
use super::{Applied, Calc, Regime, Sale};

pub(super) struct Japan;

impl Regime for Japan {
    fn apply(&self, calc: &mut Calc, sale: &Sale) -> Applied {
        let currency = calc.currency();
        let factor = calc
            .threshold_value("JP_PERSONAL_USE_FACTOR")
            .unwrap_or(Decimal::ONE);
        let taxable = sale.intrinsic * factor;
        calc.step(
            "jp.taxable_value",
            &[
                ("retail", money_text(sale.intrinsic, currency)),
                ("factor", factor.to_string()),
            ],
            None,
            money_text(taxable, currency),
        );
        match calc.within("JP_LOW_VALUE_MAX", taxable, true, "taxable value") {
            Some(true) => "JP_LOW_VALUE".into(),
            Some(false) => {
                let (goods, shipping) = (sale.goods, sale.shipping);
                import_taxes(calc, "JP", "JP", goods, shipping, Valuation::Cif, true);
                "JP_IMPORT".into()
            }
            None => "JP".into(),
        }
    }
}
