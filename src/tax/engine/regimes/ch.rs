//! Switzerland: duty and import VAT on every consignment, and the import VAT is not collected
//! when it comes to no more than the pack's minimum (in CHF).

use rust_decimal::Decimal;

use super::super::levy::{Valuation, import_taxes};
use super::{Applied, Calc, Regime, Sale};
use crate::model::CurrencyCode;

pub(super) struct Switzerland;

impl Regime for Switzerland {
    fn apply(&self, calc: &mut Calc, sale: &Sale) -> Applied {
        let first = calc.raw.len();
        let (goods, shipping) = (sale.goods, sale.shipping);
        import_taxes(calc, "CH", "CH", goods, shipping, Valuation::Cif, true);
        let vat: Decimal = calc.raw[first..]
            .iter()
            .filter(|r| r.kind == "vat")
            .map(|r| r.amount)
            .sum();
        let chf = CurrencyCode::parse("CHF").expect("CHF");
        if let Some(min) = calc.pack.threshold("CH_MIN_IMPORT_VAT", calc.date).cloned()
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
                if waived { "not collected" } else { "collected" }.into(),
            );
            if waived {
                for r in calc.raw[first..].iter_mut().filter(|r| r.kind == "vat") {
                    r.amount = Decimal::ZERO;
                }
            }
        }
        "CH_IMPORT".into()
    }
}
