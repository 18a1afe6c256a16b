//! Regimes with one consignment threshold: at or below it the seller (or marketplace) charges
//! VAT/GST at sale and no duty is due; above it duty and import VAT are paid at the border.

use super::super::levy::{Valuation, import_taxes, point_of_sale};
use super::{Applied, Calc, Regime, Sale};

pub(super) struct LowValue {
    /// The pack threshold compared with the goods' value, and what that value is called.
    threshold: &'static str,
    value_name: &'static str,
    jurisdiction: &'static str,
    valuation: Valuation,
    at_sale: &'static str,
    at_import: &'static str,
    undecided: &'static str,
}

/// UK: low-value goods up to GBP 135 (VAT at sale), above it import VAT and duty.
pub(super) const UK: LowValue = LowValue {
    threshold: "UK_LOW_VALUE_MAX",
    value_name: "consignment value",
    jurisdiction: "GB",
    valuation: Valuation::Cif,
    at_sale: "UK_LOW_VALUE",
    at_import: "UK_IMPORT",
    undecided: "UK",
};

/// Australia: GST on low-value imported goods up to AUD 1,000, customs valued FOB.
pub(super) const AU: LowValue = LowValue {
    threshold: "AU_LVG_MAX",
    value_name: "customs value",
    jurisdiction: "AU",
    valuation: Valuation::Fob,
    at_sale: "AU_LVIG",
    at_import: "AU_IMPORT",
    undecided: "AU",
};

/// New Zealand: GST on low-value goods up to NZD 1,000, customs valued CIF.
pub(super) const NZ: LowValue = LowValue {
    threshold: "NZ_LVG_MAX",
    value_name: "customs value",
    jurisdiction: "NZ",
    valuation: Valuation::Cif,
    at_sale: "NZ_LVG",
    at_import: "NZ_IMPORT",
    undecided: "NZ",
};

impl Regime for LowValue {
    fn apply(&self, calc: &mut Calc, sale: &Sale) -> Applied {
        let j = self.jurisdiction;
        match calc.within(self.threshold, sale.intrinsic, true, self.value_name) {
            Some(true) => {
                point_of_sale(calc, j, sale.goods, sale.shipping, sale.pos);
                self.at_sale.into()
            }
            Some(false) => {
                let (goods, shipping) = (sale.goods, sale.shipping);
                import_taxes(calc, j, j, goods, shipping, self.valuation, true);
                self.at_import.into()
            }
            None => self.undecided.into(),
        }
    }
}
