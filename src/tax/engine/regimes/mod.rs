//! One rule set per file, chosen by the pack's regime `kind`. Each decides which of its
//! sub-regimes applies (the thresholds are explained as steps) and levies the taxes; `quote`
//! only selects and delegates.
//!
//! To add a regime: write a file here with a type implementing [`Regime`], add its `kind` to
//! [`for_kind`], and give the pack a `[[regimes]]` entry of that kind with its thresholds.

mod ca;
mod ch;
mod cn;
mod eu;
mod jp;
mod low_value;
mod per_item;
mod us;

use rust_decimal::Decimal;

use super::super::{Collector, QuoteContext};
use super::calc::{Calc, Goods};

/// What a regime is given: the cross-border sale, already classified and valued.
pub(in crate::tax::engine) struct Sale<'s> {
    /// Destination country (ISO alpha-2).
    pub(in crate::tax::engine) dest: &'s str,
    pub(in crate::tax::engine) goods: &'s [Goods],
    /// The delivery charge, in the order currency.
    pub(in crate::tax::engine) shipping: Decimal,
    /// The goods' value net of VAT, without transport.
    pub(in crate::tax::engine) intrinsic: Decimal,
    /// Who collects tax charged at the point of sale (seller, or a marketplace).
    pub(in crate::tax::engine) pos: Collector,
    pub(in crate::tax::engine) ctx: &'s QuoteContext,
}

/// The sub-regime that applied (e.g. `EU_IOSS`), or the regime's own id when a threshold could
/// not be decided (the quote then holds on what is missing).
pub(in crate::tax::engine) struct Applied {
    pub(in crate::tax::engine) id: &'static str,
    /// China CBEC: what this order adds to the buyer's annual total (CNY).
    pub(in crate::tax::engine) annual_cny_addition: Option<Decimal>,
}

impl From<&'static str> for Applied {
    fn from(id: &'static str) -> Self {
        Self {
            id,
            annual_cny_addition: None,
        }
    }
}

pub(in crate::tax::engine) trait Regime: Sync {
    fn apply(&self, calc: &mut Calc, sale: &Sale) -> Applied;
}

/// The rule set of a pack regime kind.
pub(in crate::tax::engine) fn for_kind(kind: &str) -> Option<&'static dyn Regime> {
    Some(match kind {
        "eu" => &eu::Eu,
        "uk" => &low_value::UK,
        "au" => &low_value::AU,
        "nz" => &low_value::NZ,
        "no" => &per_item::NO,
        "sg" => &per_item::SG,
        "us" => &us::Us,
        "cn_cbec" => &cn::CrossBorderEcommerce,
        "ch" => &ch::Switzerland,
        "jp" => &jp::Japan,
        "ca" => &ca::Canada,
        _ => return None,
    })
}
