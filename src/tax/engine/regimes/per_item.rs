//! Regimes whose threshold applies to each item's value: every item at or below it means tax
//! at sale; any item above it means import taxes for the consignment.

use super::super::levy::{Valuation, import_taxes, point_of_sale};
use super::{Applied, Calc, Regime, Sale};

pub(super) struct PerItem {
    threshold: &'static str,
    /// Whether an item exactly at the threshold is still below it.
    inclusive: bool,
    jurisdiction: &'static str,
    at_sale: &'static str,
    at_import: &'static str,
}

/// Norway VOEC: items strictly below NOK 3,000.
pub(super) const NO: PerItem = PerItem {
    threshold: "NO_VOEC_ITEM_MAX",
    inclusive: false,
    jurisdiction: "NO",
    at_sale: "NO_VOEC",
    at_import: "NO_IMPORT",
};

/// Singapore: low-value goods up to SGD 400.
pub(super) const SG: PerItem = PerItem {
    threshold: "SG_LVG_ITEM_MAX",
    inclusive: true,
    jurisdiction: "SG",
    at_sale: "SG_LVG",
    at_import: "SG_IMPORT",
};

impl Regime for PerItem {
    fn apply(&self, calc: &mut Calc, sale: &Sale) -> Applied {
        let mut all = Some(true);
        for g in sale.goods {
            let what = format!("item value (line {})", g.index);
            match calc.within(self.threshold, g.unit, self.inclusive, &what) {
                Some(true) => {}
                Some(false) => all = all.map(|_| false),
                None => all = None,
            }
        }
        let j = self.jurisdiction;
        match all {
            Some(true) => {
                point_of_sale(calc, j, sale.goods, sale.shipping, sale.pos);
                self.at_sale.into()
            }
            Some(false) => {
                let (goods, shipping) = (sale.goods, sale.shipping);
                import_taxes(calc, j, j, goods, shipping, Valuation::Cif, true);
                self.at_import.into()
            }
            None => j.into(),
        }
    }
}
