//! The error collector (`Eval`): reads fields of a mapping into model values, recording every
//! problem with its canonical path and source instead of stopping at the first.

use rust_decimal::Decimal;

use super::super::error::FieldError;
use super::super::path::Scope;
use super::super::spec::{AddressMapping, Each, Expr, MoneySpec, TotalsMapping};
use super::super::tree::Node;
use crate::model::{
    Address, CurrencyCode, Discount, Money, OrderLine, Payment, PaymentStatus, Shipment,
    ShipmentStatus, Totals,
};

use super::*;

/// Collects field errors while records are assembled.
/// The parts of a payment mapping (an order's payments, or a payment fact).
#[derive(Clone, Copy)]
pub(super) struct PaymentParts<'a> {
    pub(super) id: Option<&'a Expr>,
    pub(super) gateway: Option<&'a Expr>,
    pub(super) status: &'a Expr,
    pub(super) amount: &'a MoneySpec,
    pub(super) refunded: Option<&'a MoneySpec>,
    pub(super) processed_at: Option<&'a Expr>,
}

#[derive(Clone, Copy)]
pub(super) struct ShipmentParts<'a> {
    pub(super) id: Option<&'a Expr>,
    pub(super) carrier: Option<&'a Expr>,
    pub(super) tracking_numbers: Option<&'a Each>,
    pub(super) status: &'a Expr,
    pub(super) shipped_at: Option<&'a Expr>,
}

#[derive(Default)]
pub(super) struct Eval {
    pub(super) errors: Vec<FieldError>,
}

impl Eval {
    pub(super) fn fail(&mut self, field: &str, e: Option<&Expr>, problem: String) {
        self.errors.push(FieldError {
            field: field.to_string(),
            source: e.map(describe),
            problem,
        });
    }

    /// An optional value converted by `conv`; conversion problems are recorded.
    pub(super) fn opt<'a, T>(
        &mut self,
        field: &str,
        e: Option<&'a Expr>,
        scope: Scope<'a>,
        conv: impl FnOnce(&Val<'a>) -> Result<T, String>,
    ) -> Option<T> {
        let e = e?;
        match eval(e, scope).and_then(|v| v.map(|v| conv(&v)).transpose()) {
            Ok(v) => v,
            Err(problem) => {
                self.fail(field, Some(e), problem);
                None
            }
        }
    }

    /// A required value; absence is recorded as an error.
    pub(super) fn req<'a, T>(
        &mut self,
        field: &str,
        e: &'a Expr,
        scope: Scope<'a>,
        conv: impl FnOnce(&Val<'a>) -> Result<T, String>,
    ) -> Option<T> {
        match eval(e, scope) {
            Ok(Some(v)) => match conv(&v) {
                Ok(t) => Some(t),
                Err(problem) => {
                    self.fail(field, Some(e), problem);
                    None
                }
            },
            Ok(None) => {
                self.fail(field, Some(e), why_missing(e, scope));
                None
            }
            Err(problem) => {
                self.fail(field, Some(e), problem);
                None
            }
        }
    }

    pub(super) fn text<'a>(
        &mut self,
        field: &str,
        e: Option<&'a Expr>,
        scope: Scope<'a>,
    ) -> Option<String> {
        self.opt(field, e, scope, val_text)
    }

    pub(super) fn money<'a>(
        &mut self,
        field: &str,
        spec: &'a MoneySpec,
        scope: Scope<'a>,
        default_currency: Option<CurrencyCode>,
    ) -> Option<Money> {
        let amount = self.req(&format!("{field}.amount"), &spec.amount, scope, val_decimal);
        let currency = match &spec.currency {
            Some(c) => self.req(&format!("{field}.currency"), c, scope, val_currency),
            None => default_currency,
        };
        let (amount, currency) = (amount?, currency?);
        let result = if spec.minor_units {
            if amount.fract() != Decimal::ZERO {
                Err("minor-unit amount is not a whole number".to_string())
            } else {
                i64::try_from(amount)
                    .map_err(|_| "amount is out of range".to_string())
                    .and_then(|u| Money::from_minor_units(u, currency).map_err(|e| e.to_string()))
            }
        } else if spec.round {
            let mut rounded = amount;
            rounded = rounded.round_dp_with_strategy(
                currency.minor_units(),
                rust_decimal::RoundingStrategy::MidpointAwayFromZero,
            );
            Money::new(rounded, currency).map_err(|e| e.to_string())
        } else {
            Money::new(amount, currency).map_err(|e| e.to_string())
        };
        match result {
            Ok(m) => Some(m),
            Err(problem) => {
                self.fail(&format!("{field}.amount"), Some(&spec.amount), problem);
                None
            }
        }
    }

    /// A payment read from `s`; `None` (with errors recorded) when a required part is missing.
    pub(super) fn payment<'a>(
        &mut self,
        prefix: &str,
        p: PaymentParts<'a>,
        s: Scope<'a>,
        currency: Option<CurrencyCode>,
    ) -> Option<Payment> {
        let f = |name: &str| format!("{prefix}.{name}");
        let status = self.req(
            &f("status"),
            p.status,
            s,
            parse_enum(
                "payment status",
                "pending, authorized, paid, partially_refunded, refunded, failed, voided",
                payment_status,
            ),
        );
        let amount = self.money(&f("amount"), p.amount, s, currency);
        let refunded = p
            .refunded
            .and_then(|r| self.money(&f("refunded"), r, s, amount.map(|a| a.currency())));
        let processed_at = self.opt(&f("processed_at"), p.processed_at, s, |v| {
            val_datetime(v, p.processed_at.and_then(|e| e.date.as_ref()), s.settings)
        });
        let id = self.text(&f("id"), p.id, s);
        let gateway = self.text(&f("gateway"), p.gateway, s);
        Some(Payment {
            id,
            gateway,
            status: status?,
            amount: amount?,
            refunded,
            processed_at,
        })
    }

    pub(super) fn shipment<'a>(
        &mut self,
        prefix: &str,
        sh: ShipmentParts<'a>,
        s: Scope<'a>,
    ) -> Option<Shipment> {
        let f = |name: &str| format!("{prefix}.{name}");
        let status = self.req(
            &f("status"),
            sh.status,
            s,
            parse_enum(
                "shipment status",
                "pending, shipped, in_transit, delivered, failed, cancelled",
                shipment_status,
            ),
        );
        let tracking_numbers = sh
            .tracking_numbers
            .map(|each| {
                each.0
                    .elements(s)
                    .into_iter()
                    .filter_map(|n| n.scalar_text().map(|t| t.trim().to_string()))
                    .filter(|t| !t.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let shipped_at = self.opt(&f("shipped_at"), sh.shipped_at, s, |v| {
            val_datetime(v, sh.shipped_at.and_then(|e| e.date.as_ref()), s.settings)
        });
        let id = self.text(&f("id"), sh.id, s);
        let carrier = self.text(&f("carrier"), sh.carrier, s);
        Some(Shipment {
            id,
            carrier,
            tracking_numbers,
            status: status?,
            shipped_at,
        })
    }

    pub(super) fn money_or_zero<'a>(
        &mut self,
        field: &str,
        spec: Option<&'a MoneySpec>,
        scope: Scope<'a>,
        currency: CurrencyCode,
    ) -> Option<Money> {
        match spec {
            Some(s) => self.money(field, s, scope, Some(currency)),
            None => Some(Money::zero(currency)),
        }
    }

    pub(super) fn address<'a>(
        &mut self,
        field: &str,
        m: Option<&'a AddressMapping>,
        scope: Scope<'a>,
    ) -> Option<Address> {
        let m = m?;
        let root = match eval(&m.root, scope) {
            Ok(Some(Val::Node(n @ Node::Object(_)))) => n,
            Ok(None) => return None,
            Ok(Some(_)) => {
                self.fail(field, Some(&m.root), "expected an object".into());
                return None;
            }
            Err(problem) => {
                self.fail(field, Some(&m.root), problem);
                return None;
            }
        };
        let s = scope.with_current(root);
        // An address without a country (masked by the channel, say) is no address: there is
        // nothing to ship to or tax by. A country that is present but not valid is an error.
        if matches!(eval(&m.country, s), Ok(None)) {
            return None;
        }
        let country = self.req(&format!("{field}.country"), &m.country, s, val_country);
        let address = Address {
            name: self.text(&format!("{field}.name"), m.name.as_ref(), s),
            company: self.text(&format!("{field}.company"), m.company.as_ref(), s),
            line1: self.text(&format!("{field}.line1"), m.line1.as_ref(), s),
            line2: self.text(&format!("{field}.line2"), m.line2.as_ref(), s),
            city: self.text(&format!("{field}.city"), m.city.as_ref(), s),
            region: self.text(&format!("{field}.region"), m.region.as_ref(), s),
            postal_code: self.text(&format!("{field}.postal_code"), m.postal_code.as_ref(), s),
            country: country?,
            phone: self.text(&format!("{field}.phone"), m.phone.as_ref(), s),
        };
        Some(address)
    }

    pub(super) fn totals<'a>(
        &mut self,
        m: &'a TotalsMapping,
        scope: Scope<'a>,
        currency: CurrencyCode,
        lines: &[OrderLine],
        discounts: &[Discount],
        taxes_included: bool,
    ) -> Option<Totals> {
        let sum = |f: &dyn Fn(&OrderLine) -> Option<Money>| -> Option<Money> {
            lines.iter().try_fold(Money::zero(currency), |acc, l| {
                f(l).and_then(|m| acc.checked_add(&m).ok())
            })
        };
        // A part whose amount this payload does not carry is derived as if omitted.
        let stated = |spec: &'a Option<MoneySpec>| spec.as_ref().filter(|s| is_stated(s, scope));
        let subtotal = match stated(&m.subtotal) {
            Some(s) => self.money("totals.subtotal", s, scope, Some(currency)),
            None => sum(&|l| l.amount().ok()),
        };
        let shipping = self.money_or_zero("totals.shipping", stated(&m.shipping), scope, currency);
        let discount = match stated(&m.discount) {
            Some(s) => self.money("totals.discount", s, scope, Some(currency)),
            None if lines.iter().any(|l| !l.discount.amount().is_zero()) => {
                sum(&|l| Some(l.discount))
            }
            None => discounts.iter().try_fold(Money::zero(currency), |acc, d| {
                acc.checked_add(&d.amount).ok()
            }),
        };
        let tax = match stated(&m.tax) {
            Some(s) => self.money("totals.tax", s, scope, Some(currency)),
            None => sum(&|l| Some(l.tax)),
        };
        let grand_total = match stated(&m.grand_total) {
            Some(spec) => self.money("totals.grand_total", spec, scope, Some(currency)),
            // Not stated (Amazon states no total for pending orders): derived.
            None => (|| {
                let mut t = subtotal?.checked_sub(&discount?).ok()?;
                t = t.checked_add(&shipping?).ok()?;
                if !taxes_included {
                    t = t.checked_add(&tax?).ok()?;
                }
                Some(t)
            })(),
        };
        Some(Totals {
            subtotal: subtotal?,
            shipping: shipping?,
            discount: discount?,
            tax: tax?,
            grand_total: grand_total?,
        })
    }
}

/// Whether the payload carries a money part at all (an unreadable value counts, so that its
/// error is reported); a part it does not carry is derived or taken as zero.
pub(super) fn is_stated(spec: &MoneySpec, scope: Scope<'_>) -> bool {
    matches!(eval(&spec.amount, scope), Ok(Some(_)) | Err(_))
}

pub(super) fn parse_enum<T>(
    what: &str,
    allowed: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> impl Fn(&Val<'_>) -> Result<T, String> {
    let what = what.to_string();
    let allowed = allowed.to_string();
    move |v| {
        let t = val_text(v)?;
        parse(&t).ok_or_else(|| {
            format!("is not a {what} (one of: {allowed}); map the channel's value in the adapter")
        })
    }
}

pub(super) fn payment_status(s: &str) -> Option<PaymentStatus> {
    Some(match s {
        "pending" => PaymentStatus::Pending,
        "authorized" => PaymentStatus::Authorized,
        "paid" => PaymentStatus::Paid,
        "partially_refunded" => PaymentStatus::PartiallyRefunded,
        "refunded" => PaymentStatus::Refunded,
        "failed" => PaymentStatus::Failed,
        "voided" => PaymentStatus::Voided,
        _ => return None,
    })
}

pub(super) fn shipment_status(s: &str) -> Option<ShipmentStatus> {
    Some(match s {
        "pending" => ShipmentStatus::Pending,
        "shipped" => ShipmentStatus::Shipped,
        "in_transit" => ShipmentStatus::InTransit,
        "delivered" => ShipmentStatus::Delivered,
        "failed" => ShipmentStatus::Failed,
        "cancelled" => ShipmentStatus::Cancelled,
        _ => return None,
    })
}
