//! The United States: no VAT; duty on formal entries, and a de minimis only on the dates the
//! pack gives one (it was suspended for all countries from 2025-08-29).

use super::super::levy::{Valuation, import_taxes};
use super::{Applied, Calc, Regime, Sale};

pub(super) struct Us;

impl Regime for Us {
    fn apply(&self, calc: &mut Calc, sale: &Sale) -> Applied {
        let de_minimis = if calc.pack.threshold("US_DE_MINIMIS", calc.date).is_some() {
            calc.within("US_DE_MINIMIS", sale.intrinsic, true, "shipment value")
        } else {
            let date = calc.date.to_string();
            calc.step(
                "threshold.US_DE_MINIMIS",
                &[("date", date)],
                None,
                "no de minimis on this date (suspended for all countries from 2025-08-29)".into(),
            );
            Some(false)
        };
        match de_minimis {
            Some(true) => "US_DE_MINIMIS".into(),
            Some(false) => {
                let (goods, shipping) = (sale.goods, sale.shipping);
                import_taxes(calc, "US", "US", goods, shipping, Valuation::Fob, false);
                "US_FORMAL".into()
            }
            None => "US".into(),
        }
    }
}
