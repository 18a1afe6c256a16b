//! Canada: the province (from the shipping address) decides GST, HST, QST or PST. Courier
//! shipments from the US or Mexico have the CUSMA thresholds (tax-free up to one value,
//! duty-free up to a higher one); everything else has the general low-value threshold.

use super::super::super::ShipMode;
use super::super::levy::{Valuation, import_taxes};
use super::{Applied, Calc, Regime, Sale};

pub(super) struct Canada;

impl Regime for Canada {
    fn apply(&self, calc: &mut Calc, sale: &Sale) -> Applied {
        let province = calc
            .order
            .shipping_address
            .as_ref()
            .and_then(|a| a.region.clone())
            .map(|r| r.trim().to_uppercase())
            .filter(|r| r.len() == 2);
        let Some(province) = province else {
            calc.miss(
                "Canada: the province (shipping_address.region, e.g. ON) decides GST/HST/PST"
                    .into(),
            );
            return "CA".into();
        };
        let juris = format!("CA-{province}");
        let ctx = sale.ctx;
        let cusma =
            matches!(ctx.ship_from.as_deref(), Some("US" | "MX")) && ctx.mode == ShipMode::Courier;
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
            if cusma {
                "CUSMA courier thresholds"
            } else {
                "general thresholds"
            }
            .into(),
        );
        let value = sale.intrinsic;
        let import = |calc: &mut Calc| {
            let (goods, shipping) = (sale.goods, sale.shipping);
            import_taxes(calc, "CA", &juris, goods, shipping, Valuation::Fob, true);
        };
        if !cusma {
            return match calc.within("CA_OTHER_MAX", value, true, "value for duty") {
                Some(true) => "CA_LOW_VALUE".into(),
                Some(false) => {
                    import(calc);
                    "CA_IMPORT".into()
                }
                None => "CA".into(),
            };
        }
        let tax_free = calc.within("CA_COURIER_TAX_MAX", value, true, "value for duty");
        let duty_free = calc.within("CA_COURIER_DUTY_MAX", value, true, "value for duty");
        match (tax_free, duty_free) {
            (Some(true), _) => "CA_LOW_VALUE".into(),
            (Some(false), Some(true)) => {
                import(calc);
                // Duty-free up to the courier duty threshold: drop the duty lines.
                calc.raw.retain(|r| r.kind != "duty");
                calc.missing.retain(|m| !m.contains("duty rule"));
                "CA_TAX_ONLY".into()
            }
            (Some(false), Some(false)) => {
                import(calc);
                "CA_IMPORT".into()
            }
            _ => "CA".into(),
        }
    }
}
