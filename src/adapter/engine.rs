//! The declarative engine: evaluates an adapter's mappings over a document tree and builds
//! canonical records. Pure: no IO, no clock. Every field problem is collected (not just the first)
//! with the canonical field path and the source path it was read from.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone};
use rust_decimal::Decimal;

use super::error::FieldError;
use super::path::Scope;
use super::spec::{
    AddressMapping, DateFormat, Each, Expr, ExprKind, FactMapping, ListingMapping, Lookup,
    MoneySpec, NamedDateFormat, OrderMapping, TotalsMapping,
};
use super::tree::Node;
use crate::model::money::parse_decimal;
use crate::model::{
    Address, ChannelKind, ChannelTaxLine, CountryCode, CurrencyCode, Customer, Discount, FactKind,
    LifecycleFact, Listing, ListingId, ListingStatus, Money, Order, OrderId, OrderLine,
    OrderStatus, Payment, PaymentStatus, Revision, SettlementView, Shipment, ShipmentStatus,
    Totals, validate_instance_id,
};

/// Who the records belong to; set by the gateway from the channel instance.
#[derive(Debug, Clone, Copy)]
pub struct RecordContext<'a> {
    pub instance: &'a str,
    pub channel: &'a str,
    pub channel_kind: ChannelKind,
    pub account: &'a str,
    /// The instance's `settings` from the gateway config.
    pub settings: &'a BTreeMap<String, String>,
    /// When the gateway received the payload: dates far after it are refused.
    pub received_at: chrono::DateTime<chrono::Utc>,
}

/// An evaluated expression.
#[derive(Debug, Clone)]
enum Val<'a> {
    Node(&'a Node<'a>),
    Text(Cow<'a, str>),
    Decimal(Decimal),
}

impl Val<'_> {
    fn text(&self) -> Result<Cow<'_, str>, String> {
        match self {
            Val::Node(n) => n
                .scalar_text()
                .map(Cow::Borrowed)
                .ok_or_else(|| format!("expected a text value, found {}", n.type_name())),
            Val::Text(t) => Ok(Cow::Borrowed(t.as_ref())),
            Val::Decimal(d) => Ok(Cow::Owned(d.to_string())),
        }
    }
}

fn is_blank_val(v: &Val<'_>, absent: &[String]) -> bool {
    match v {
        Val::Node(n) => is_absent_node(n, absent),
        Val::Text(t) => t.trim().is_empty(),
        Val::Decimal(_) => false,
    }
}

/// Missing-like: null, blank, or one of the channel's "no value" texts.
fn is_absent_node(n: &Node<'_>, absent: &[String]) -> bool {
    n.is_blank()
        || (!absent.is_empty()
            && n.scalar_text()
                .is_some_and(|t| absent.iter().any(|a| a == t.trim())))
}

/// Evaluates an expression; `Ok(None)` when the value is absent (missing, null or blank).
fn eval<'a>(e: &'a Expr, scope: Scope<'a>) -> Result<Option<Val<'a>>, String> {
    let base = match &e.kind {
        ExprKind::Path(p) => p.get(scope).map(Val::Node),
        ExprKind::Value(v) => Some(Val::Text(Cow::Borrowed(v.as_str()))),
        ExprKind::Coalesce(items) => {
            let mut found = None;
            for item in items {
                if let Some(v) = eval(item, scope)? {
                    found = Some(v);
                    break;
                }
            }
            found
        }
        ExprKind::Sum(p) => {
            let mut total = Decimal::ZERO;
            for node in p
                .get_all(scope)
                .into_iter()
                .filter(|n| !is_absent_node(n, scope.absent))
            {
                let d = node_decimal(node)?;
                total = total
                    .checked_add(d)
                    .ok_or_else(|| "sum is out of range".to_string())?;
            }
            Some(Val::Decimal(total))
        }
        ExprKind::Join { parts, sep } => {
            let mut texts = Vec::new();
            for part in parts {
                if let Some(v) = eval(part, scope)? {
                    texts.push(v.text()?.trim().to_string());
                }
            }
            (!texts.is_empty()).then(|| Val::Text(Cow::Owned(texts.join(sep))))
        }
        ExprKind::Difference(a, b) => match (eval(a, scope)?, eval(b, scope)?) {
            (Some(x), Some(y)) => Some(Val::Decimal(
                val_decimal(&x)?
                    .checked_sub(val_decimal(&y)?)
                    .ok_or_else(|| "difference is out of range".to_string())?,
            )),
            _ => None,
        },
        ExprKind::Setting(name) => scope
            .settings
            .get(name)
            .map(|v| Val::Text(Cow::Borrowed(v.as_str()))),
        ExprKind::When { path, then } => {
            let hit = match path.get(scope) {
                None => false,
                Some(Node::Bool(b)) => *b,
                Some(n) => !is_absent_node(n, scope.absent) && n.scalar_text() != Some("false"),
            };
            hit.then_some(Val::Text(Cow::Borrowed(then.as_str())))
        }
    };
    let base = base.filter(|v| {
        !is_blank_val(v, scope.absent)
            && (e.absent_if.is_empty()
                || !v
                    .text()
                    .is_ok_and(|t| e.absent_if.iter().any(|a| a == t.trim())))
    });
    let base = match (e.lookup, base) {
        (Some(Lookup::CountryName), Some(v)) => {
            let text = v.text()?.trim().to_string();
            // A value that is already a code, or no known name, is left for validation to judge.
            match CountryCode::from_name(&text) {
                Ok(c) if text.len() > 2 => Some(Val::Text(Cow::Owned(c.as_str().to_string()))),
                _ => Some(v),
            }
        }
        (_, v) => v,
    };
    let mapped = match (&e.map, base) {
        (Some(map), Some(v)) => {
            let key = v.text()?;
            map.get(key.trim())
                .map(|m| Val::Text(Cow::Borrowed(m.as_str())))
        }
        (_, v) => v,
    };
    Ok(mapped.or_else(|| {
        e.default
            .as_ref()
            .map(|d| Val::Text(Cow::Borrowed(d.as_str())))
    }))
}

fn node_decimal(n: &Node) -> Result<Decimal, String> {
    match n {
        Node::Number(t) | Node::String(t) => parse_decimal(t.trim()).map_err(|e| match e {
            crate::model::MoneyError::OutOfRange => "number is out of range".to_string(),
            _ => "is not a plain decimal number".to_string(),
        }),
        other => Err(format!("expected a number, found {}", other.type_name())),
    }
}

fn val_decimal(v: &Val<'_>) -> Result<Decimal, String> {
    match v {
        Val::Decimal(d) => Ok(*d),
        Val::Node(n) => node_decimal(n),
        Val::Text(t) => node_decimal(&Node::String(Cow::Borrowed(t.as_ref()))),
    }
}

fn val_text(v: &Val<'_>) -> Result<String, String> {
    v.text().map(|t| t.trim().to_string())
}

fn val_quantity(v: &Val<'_>) -> Result<u32, String> {
    let d = val_decimal(v).map_err(|_| "must be a whole number".to_string())?;
    if d.is_sign_negative() && !d.is_zero() {
        return Err("is negative; quantities must be at least 1".into());
    }
    if d.fract() != Decimal::ZERO {
        return Err("is not a whole number".into());
    }
    let q = u32::try_from(d.mantissa() / 10i128.pow(d.scale()))
        .map_err(|_| "is too large".to_string())?;
    if q == 0 {
        return Err("must be at least 1".into());
    }
    Ok(q)
}

fn val_i64(v: &Val<'_>) -> Result<i64, String> {
    let d = val_decimal(v)?;
    if d.fract() != Decimal::ZERO {
        return Err("is not a whole number".into());
    }
    i64::try_from(d.trunc()).map_err(|_| "is out of range".to_string())
}

fn val_bool(v: &Val<'_>) -> Result<bool, String> {
    if let Val::Node(Node::Bool(b)) = v {
        return Ok(*b);
    }
    match val_text(v)?.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" => Ok(true),
        "false" | "0" | "no" | "n" => Ok(false),
        _ => Err("is not a boolean".into()),
    }
}

fn val_currency(v: &Val<'_>) -> Result<CurrencyCode, String> {
    // Some channels (Stripe) send lower-case codes; upper-casing is the only leniency.
    let t = val_text(v)?;
    CurrencyCode::parse(&t.to_ascii_uppercase()).map_err(|e| e.to_string())
}

fn val_country(v: &Val<'_>) -> Result<CountryCode, String> {
    CountryCode::parse(&val_text(v)?).map_err(|e| e.to_string())
}

fn val_datetime(
    v: &Val<'_>,
    format: Option<&DateFormat>,
    settings: &BTreeMap<String, String>,
) -> Result<DateTime<FixedOffset>, String> {
    let format = format.unwrap_or(&DateFormat::Named(NamedDateFormat::Rfc3339));
    match format {
        DateFormat::Named(NamedDateFormat::Rfc3339) => DateTime::parse_from_rfc3339(&val_text(v)?)
            .map_err(|_| "is not an RFC 3339 date-time with offset".into()),
        DateFormat::Named(NamedDateFormat::Rfc2822) => DateTime::parse_from_rfc2822(&val_text(v)?)
            .map_err(|_| "is not an RFC 2822 date-time".into()),
        DateFormat::Named(NamedDateFormat::Unix) => {
            let secs = val_i64(v).map_err(|e| format!("unix seconds {e}"))?;
            DateTime::from_timestamp(secs, 0)
                .map(|d| d.fixed_offset())
                .ok_or_else(|| "unix seconds out of range".into())
        }
        DateFormat::Named(NamedDateFormat::UnixMs) => {
            let ms = val_i64(v).map_err(|e| format!("unix milliseconds {e}"))?;
            DateTime::from_timestamp_millis(ms)
                .map(|d| d.fixed_offset())
                .ok_or_else(|| "unix milliseconds out of range".into())
        }
        DateFormat::Pattern(p) => {
            // `zone = "setting:<name>"` reads the zone from the instance settings (a shop's own
            // time zone).
            let zone_name = match p.zone.strip_prefix("setting:") {
                Some(name) => settings
                    .get(name)
                    .ok_or_else(|| {
                        format!("the instance has no '{name}' setting for the time zone")
                    })?
                    .as_str(),
                None => p.zone.as_str(),
            };
            let zone: chrono_tz::Tz = zone_name
                .parse()
                .map_err(|_| format!("unknown time zone '{zone_name}'"))?;
            let naive = NaiveDateTime::parse_from_str(&val_text(v)?, &p.pattern)
                .map_err(|_| format!("does not match the pattern '{}'", p.pattern))?;
            zone.from_local_datetime(&naive)
                .single()
                .map(|d| d.fixed_offset())
                .ok_or_else(|| format!("is not a single instant in {zone_name}"))
        }
    }
}

fn describe(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Path(p) => p.as_str().to_string(),
        ExprKind::Value(_) => "value".into(),
        ExprKind::Coalesce(items) => {
            let inner: Vec<String> = items.iter().map(describe).collect();
            format!("coalesce({})", inner.join(", "))
        }
        ExprKind::Sum(p) => format!("sum({p})"),
        ExprKind::Join { parts, .. } => {
            let inner: Vec<String> = parts.iter().map(describe).collect();
            format!("join({})", inner.join(", "))
        }
        ExprKind::When { path, .. } => format!("when({path})"),
        ExprKind::Setting(name) => format!("setting({name})"),
        ExprKind::Difference(a, b) => format!("difference({}, {})", describe(a), describe(b)),
    }
}

/// Collects field errors while records are assembled.
/// The parts of a payment mapping (an order's payments, or a payment fact).
#[derive(Clone, Copy)]
struct PaymentParts<'a> {
    id: Option<&'a Expr>,
    gateway: Option<&'a Expr>,
    status: &'a Expr,
    amount: &'a MoneySpec,
    refunded: Option<&'a MoneySpec>,
    processed_at: Option<&'a Expr>,
}

#[derive(Clone, Copy)]
struct ShipmentParts<'a> {
    id: Option<&'a Expr>,
    carrier: Option<&'a Expr>,
    tracking_numbers: Option<&'a Each>,
    status: &'a Expr,
    shipped_at: Option<&'a Expr>,
}

#[derive(Default)]
struct Eval {
    errors: Vec<FieldError>,
}

impl Eval {
    fn fail(&mut self, field: &str, e: Option<&Expr>, problem: String) {
        self.errors.push(FieldError {
            field: field.to_string(),
            source: e.map(describe),
            problem,
        });
    }

    /// An optional value converted by `conv`; conversion problems are recorded.
    fn opt<'a, T>(
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
    fn req<'a, T>(
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
                self.fail(field, Some(e), "is required but missing".into());
                None
            }
            Err(problem) => {
                self.fail(field, Some(e), problem);
                None
            }
        }
    }

    fn text<'a>(&mut self, field: &str, e: Option<&'a Expr>, scope: Scope<'a>) -> Option<String> {
        self.opt(field, e, scope, val_text)
    }

    fn money<'a>(
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
    fn payment<'a>(
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

    fn shipment<'a>(
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

    fn money_or_zero<'a>(
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

    fn address<'a>(
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

    fn totals<'a>(
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
fn is_stated(spec: &MoneySpec, scope: Scope<'_>) -> bool {
    matches!(eval(&spec.amount, scope), Ok(Some(_)) | Err(_))
}

fn parse_enum<T>(
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

fn payment_status(s: &str) -> Option<PaymentStatus> {
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

fn shipment_status(s: &str) -> Option<ShipmentStatus> {
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

/// Finds the record root an optional `root` expression points at (default: the document).
fn record_root<'a>(
    ev: &mut Eval,
    root: Option<&'a Expr>,
    top: Scope<'a>,
    array_ok: bool,
) -> Option<&'a Node<'a>> {
    let Some(e) = root else {
        return Some(top.document);
    };
    match eval(e, top) {
        Ok(Some(Val::Node(n @ Node::Object(_)))) => Some(n),
        // With `each`, the root may be the array itself (`{"orders": [...]}`).
        Ok(Some(Val::Node(n @ Node::Array(_)))) if array_ok => Some(n),
        Ok(Some(_)) => {
            ev.fail("root", Some(e), "expected an object".into());
            None
        }
        Ok(None) => {
            ev.fail("root", Some(e), "is required but missing".into());
            None
        }
        Err(p) => {
            ev.fail("root", Some(e), p);
            None
        }
    }
}

/// Maps a document to its orders: one, or one per element of `each`. Each result carries every
/// problem of that order, with its field path.
pub fn map_orders<'a>(
    m: &'a OrderMapping,
    doc: &'a Node<'a>,
    ctx: &RecordContext<'_>,
    absent: &'a [String],
) -> Vec<Result<Order, Vec<FieldError>>> {
    let mut ev = Eval::default();
    let top = Scope::new(doc)
        .with_absent(absent)
        .with_settings(ctx.settings);
    let Some(root) = record_root(&mut ev, m.root.as_ref(), top, m.each.is_some()) else {
        return vec![Err(ev.errors)];
    };
    let Some(each) = &m.each else {
        return vec![map_order(m, top.with_record(root), ctx)];
    };
    // An array (even an empty page) gives one order per element; when the path is absent
    // the root itself is the one order, so one mapping reads single orders and list pages.
    let scope = top.with_record(root);
    let items = if each.0.has_wildcard() || each.0.get(scope).is_some() {
        each.0.elements(scope)
    } else {
        vec![root]
    };
    items
        .into_iter()
        .map(|item| map_order(m, top.with_record(item), ctx))
        .collect()
}

/// Maps one order whose root is `scope.record`.
#[expect(clippy::too_many_lines, reason = "split owed, issue 11")]
fn map_order(
    m: &OrderMapping,
    scope: Scope<'_>,
    ctx: &RecordContext<'_>,
) -> Result<Order, Vec<FieldError>> {
    let mut ev = Eval::default();

    let external_id = ev.req("external_id", &m.external_id, scope, val_text);
    let number = ev.text("number", m.number.as_ref(), scope);
    let updated_at = ev.req("revision.updated_at", &m.updated_at, scope, |v| {
        val_datetime(v, m.updated_at.date.as_ref(), scope.settings)
    });
    let sequence = ev.opt("revision.sequence", m.sequence.as_ref(), scope, |v| {
        val_i64(v).and_then(|i| u64::try_from(i).map_err(|_| "must not be negative".into()))
    });
    let placed_at = ev.req("placed_at", &m.placed_at, scope, |v| {
        val_datetime(v, m.placed_at.date.as_ref(), scope.settings)
    });
    let status = ev.req(
        "status",
        &m.status,
        scope,
        parse_enum(
            "order status",
            "created, paid, fulfilled, delivered, cancelled, partially_refunded, refunded",
            OrderStatus::parse,
        ),
    );
    let currency = ev.req("currency", &m.currency, scope, val_currency);
    let taxes_included = ev
        .opt("taxes_included", m.taxes_included.as_ref(), scope, val_bool)
        .unwrap_or(false);

    let customer = m.customer.as_ref().and_then(|c| {
        let customer = Customer {
            external_id: ev.text("customer.external_id", c.external_id.as_ref(), scope),
            email: ev.text("customer.email", c.email.as_ref(), scope),
            phone: ev.text("customer.phone", c.phone.as_ref(), scope),
            name: ev.text("customer.name", c.name.as_ref(), scope),
            key: None,
            age_band: ev.text("customer.age_band", c.age_band.as_ref(), scope),
            gender: ev.text("customer.gender", c.gender.as_ref(), scope),
        };
        let any = customer.external_id.is_some()
            || customer.email.is_some()
            || customer.phone.is_some()
            || customer.name.is_some();
        any.then_some(customer)
    });
    let billing_address = ev.address("billing_address", m.billing_address.as_ref(), scope);
    let shipping_address = ev.address("shipping_address", m.shipping_address.as_ref(), scope);

    // Everything below needs the currency; without it, report what we have.
    let Some(currency) = currency else {
        return Err(ev.errors);
    };

    let mut lines = Vec::new();
    let line_nodes = m.lines.each.0.elements(scope);
    if line_nodes.is_empty() {
        ev.fail(
            "lines",
            None,
            format!("no lines found at '{}'", m.lines.each.0),
        );
    }
    for (i, node) in line_nodes.into_iter().enumerate() {
        let s = scope.with_current(node);
        let l = &m.lines;
        if let Some(skip) = &l.skip_when
            && matches!(eval(skip, s), Ok(Some(_)))
        {
            continue;
        }
        let f = |name: &str| format!("lines[{i}].{name}");
        let line = (|| {
            let title = ev.req(&f("title"), &l.title, s, val_text);
            let quantity = ev.req(&f("quantity"), &l.quantity, s, val_quantity);
            let line_total = l
                .line_total
                .as_ref()
                .and_then(|spec| ev.money(&f("line_total"), spec, s, Some(currency)));
            let unit_price = match &l.unit_price {
                Some(spec) => ev.money(&f("unit_price"), spec, s, Some(currency)),
                // Only a line amount: the unit price is that amount over the quantity, rounded
                // half-up to the minor unit when it does not divide evenly.
                None => match (line_total, quantity) {
                    (Some(t), Some(q)) => {
                        let unit = (t.amount() / Decimal::from(q)).round_dp_with_strategy(
                            currency.minor_units(),
                            rust_decimal::RoundingStrategy::MidpointAwayFromZero,
                        );
                        Money::new(unit, currency).ok()
                    }
                    _ => None,
                },
            };
            let discount = ev.money_or_zero(&f("discount"), l.discount.as_ref(), s, currency);
            let tax = ev.money_or_zero(&f("tax"), l.tax.as_ref(), s, currency);
            let line = OrderLine {
                line_id: ev.text(&f("line_id"), l.line_id.as_ref(), s),
                sku: ev.text(&f("sku"), l.sku.as_ref(), s),
                product_id: ev.text(&f("product_id"), l.product_id.as_ref(), s),
                // Tariff codes are often written with dots or spaces ("0902.10").
                hs_code: ev
                    .text(&f("hs_code"), l.hs_code.as_ref(), s)
                    .map(|h| h.replace(['.', ' '], "")),
                tax_class: ev.text(&f("tax_class"), l.tax_class.as_ref(), s),
                ship_from: ev.opt(&f("ship_from"), l.ship_from.as_ref(), s, val_country),
                origin_country: ev.opt(
                    &f("origin_country"),
                    l.origin_country.as_ref(),
                    s,
                    val_country,
                ),
                title: title?,
                quantity: quantity?,
                unit_price: unit_price?,
                line_total,
                discount: discount?,
                tax: tax?,
            };
            Some(line)
        })();
        if let Some(line) = line {
            lines.push(line);
        }
    }

    let mut discounts = Vec::new();
    if let Some(d) = &m.discounts {
        for (i, node) in d.each.0.elements(scope).into_iter().enumerate() {
            let s = scope.with_current(node);
            let code = ev.text(&format!("discounts[{i}].code"), d.code.as_ref(), s);
            if let Some(amount) = ev.money(
                &format!("discounts[{i}].amount"),
                &d.amount,
                s,
                Some(currency),
            ) {
                discounts.push(Discount { code, amount });
            }
        }
    }

    let mut tax_lines = Vec::new();
    if let Some(t) = &m.tax_lines {
        for (i, node) in t.each.0.elements(scope).into_iter().enumerate() {
            let s = scope.with_current(node);
            let f = |name: &str| format!("tax_lines[{i}].{name}");
            let title = ev.req(&f("title"), &t.title, s, val_text);
            let rate = ev.opt(&f("rate"), t.rate.as_ref(), s, val_decimal);
            let amount = ev.money(&f("amount"), &t.amount, s, Some(currency));
            let channel_liable =
                ev.opt(&f("channel_liable"), t.channel_liable.as_ref(), s, val_bool);
            if let (Some(title), Some(amount)) = (title, amount) {
                tax_lines.push(ChannelTaxLine {
                    title,
                    rate,
                    amount,
                    channel_liable,
                });
            }
        }
    }

    let totals = ev.totals(
        &m.totals,
        scope,
        currency,
        &lines,
        &discounts,
        taxes_included,
    );
    let mut charges = Decimal::ZERO;
    for (i, spec) in m.totals.charges.iter().enumerate() {
        if is_stated(spec, scope)
            && let Some(c) = ev.money(&format!("totals.charges[{i}]"), spec, scope, Some(currency))
        {
            charges += c.amount();
        }
    }

    // A settlement view exists only when the payload carries its currency (older payload shapes
    // have a single currency).
    let settlement = m.settlement.as_ref().and_then(|st| {
        let cur = ev.opt(
            "settlement.currency",
            Some(&st.currency),
            scope,
            val_currency,
        )?;
        let f = |n: &str| format!("settlement.totals.{n}");
        let subtotal = ev.money(&f("subtotal"), &st.subtotal, scope, Some(cur));
        let shipping = ev.money(&f("shipping"), &st.shipping, scope, Some(cur));
        let discount = ev.money(&f("discount"), &st.discount, scope, Some(cur));
        let tax = ev.money(&f("tax"), &st.tax, scope, Some(cur));
        let grand_total = ev.money(&f("grand_total"), &st.grand_total, scope, Some(cur));
        Some(SettlementView {
            currency: cur,
            totals: Totals {
                subtotal: subtotal?,
                shipping: shipping?,
                discount: discount?,
                tax: tax?,
                grand_total: grand_total?,
            },
        })
    });

    let mut payments = Vec::new();
    if let Some(p) = &m.payments {
        for (i, node) in p.each.0.elements(scope).into_iter().enumerate() {
            let parts = PaymentParts {
                id: p.id.as_ref(),
                gateway: p.gateway.as_ref(),
                status: &p.status,
                amount: &p.amount,
                refunded: None,
                processed_at: p.processed_at.as_ref(),
            };
            let s = scope.with_current(node);
            if let Some(payment) = ev.payment(&format!("payments[{i}]"), parts, s, Some(currency)) {
                payments.push(payment);
            }
        }
    }

    let mut shipments = Vec::new();
    if let Some(sh) = &m.shipments {
        for (i, node) in sh.each.0.elements(scope).into_iter().enumerate() {
            let parts = ShipmentParts {
                id: sh.id.as_ref(),
                carrier: sh.carrier.as_ref(),
                tracking_numbers: sh.tracking_numbers.as_ref(),
                status: &sh.status,
                shipped_at: sh.shipped_at.as_ref(),
            };
            let s = scope.with_current(node);
            if let Some(shipment) = ev.shipment(&format!("shipments[{i}]"), parts, s) {
                shipments.push(shipment);
            }
        }
    }

    if !ev.errors.is_empty() {
        return Err(ev.errors);
    }
    let (Some(external_id), Some(updated_at), Some(placed_at), Some(status), Some(totals)) =
        (external_id, updated_at, placed_at, status, totals)
    else {
        // Every None above recorded an error, except arithmetic overflow in derived totals.
        return Err(vec![FieldError {
            field: "totals".into(),
            source: None,
            problem: "derived totals are out of range".into(),
        }]);
    };
    let mut order = Order {
        id: OrderId::derive(ctx.instance, &external_id),
        instance: ctx.instance.to_string(),
        channel: ctx.channel.to_string(),
        channel_kind: ctx.channel_kind,
        account: ctx.account.to_string(),
        external_id,
        number,
        revision: Revision {
            updated_at,
            sequence,
        },
        status,
        placed_at,
        currency,
        taxes_included,
        customer,
        billing_address,
        shipping_address,
        lines,
        discounts,
        tax_lines,
        totals,
        settlement,
        payments,
        shipments,
        holds: Vec::new(),
        payment_reconciliation: None,
    };
    order.holds = order.totals_mismatches(m.totals.tolerance_minor_units_per_line, charges);
    Ok(order)
}

/// Maps a document to one lifecycle fact.
pub fn map_fact<'a>(
    m: &'a FactMapping,
    doc: &'a Node<'a>,
    ctx: &RecordContext<'_>,
    absent: &'a [String],
) -> Result<LifecycleFact, Vec<FieldError>> {
    let mut ev = Eval::default();
    let top = Scope::new(doc)
        .with_absent(absent)
        .with_settings(ctx.settings);
    let Some(root) = record_root(&mut ev, m.root.as_ref(), top, false) else {
        return Err(ev.errors);
    };
    let s = top.with_record(root).with_current(root);
    let id = ev.req("id", &m.id, s, val_text);
    let order_external_id = ev.req("order_external_id", &m.order_external_id, s, val_text);
    let order_instance = match &m.order_instance {
        Some(e) => ev.req("order_instance", e, s, |v| {
            let t = val_text(v)?;
            validate_instance_id(&t).map_err(|e| e.to_string())?;
            Ok(t)
        }),
        None => Some(ctx.instance.to_string()),
    };
    let at = ev.req("at", &m.at, s, |v| {
        val_datetime(v, m.at.date.as_ref(), s.settings)
    });
    let kind = if let Some(p) = &m.payment {
        let parts = PaymentParts {
            id: p.id.as_ref(),
            gateway: p.gateway.as_ref(),
            status: &p.status,
            amount: &p.amount,
            refunded: p.refunded.as_ref(),
            processed_at: p.processed_at.as_ref(),
        };
        ev.payment("payment", parts, s, None)
            .map(|payment| FactKind::Payment { payment })
    } else if let Some(sh) = &m.shipment {
        let parts = ShipmentParts {
            id: sh.id.as_ref(),
            carrier: sh.carrier.as_ref(),
            tracking_numbers: sh.tracking_numbers.as_ref(),
            status: &sh.status,
            shipped_at: sh.shipped_at.as_ref(),
        };
        ev.shipment("shipment", parts, s)
            .map(|shipment| FactKind::Shipment { shipment })
    } else {
        let reason = m
            .cancellation
            .as_ref()
            .and_then(|c| ev.text("cancellation.reason", c.reason.as_ref(), s));
        Some(FactKind::Cancellation { reason })
    };
    if !ev.errors.is_empty() {
        return Err(ev.errors);
    }
    let (Some(id), Some(external), Some(order_instance), Some(at), Some(kind)) =
        (id, order_external_id, order_instance, at, kind)
    else {
        return Err(ev.errors);
    };
    Ok(LifecycleFact {
        id: format!("{}:{id}", ctx.instance),
        order_id: OrderId::derive(&order_instance, &external),
        order_instance,
        order_external_id: external,
        source_instance: ctx.instance.to_string(),
        at,
        kind,
    })
}

/// Maps a document to listings (one per element of `each`, or one for the root).
pub fn map_listings<'a>(
    m: &'a ListingMapping,
    doc: &'a Node<'a>,
    ctx: &RecordContext<'_>,
    absent: &'a [String],
) -> Result<Vec<Listing>, Vec<FieldError>> {
    let mut ev = Eval::default();
    let top = Scope::new(doc)
        .with_absent(absent)
        .with_settings(ctx.settings);
    let Some(root) = record_root(&mut ev, m.root.as_ref(), top, m.each.is_some()) else {
        return Err(ev.errors);
    };
    let scope = top.with_record(root);
    let items: Vec<&Node> = match &m.each {
        Some(each) => each.0.elements(scope),
        None => vec![root],
    };
    if items.is_empty() {
        ev.fail("listings", None, "no listings found".into());
    }
    let mut listings = Vec::new();
    for (i, node) in items.into_iter().enumerate() {
        let s = scope.with_current(node);
        let f = |name: &str| format!("listings[{i}].{name}");
        let external_id = ev.req(&f("external_id"), &m.external_id, s, val_text);
        let updated_at = ev.req(&f("revision.updated_at"), &m.updated_at, s, |v| {
            val_datetime(v, m.updated_at.date.as_ref(), s.settings)
        });
        let title = ev.req(&f("title"), &m.title, s, val_text);
        let status = ev.req(
            &f("status"),
            &m.status,
            s,
            parse_enum(
                "listing status",
                "active, inactive, draft, deleted",
                ListingStatus::parse,
            ),
        );
        let currency = ev.opt(&f("currency"), m.currency.as_ref(), s, val_currency);
        // A listing may have no price of its own (a variable product's variations do).
        let price = m
            .price
            .as_ref()
            .filter(|p| matches!(eval(&p.amount, s), Ok(Some(_)) | Err(_)))
            .and_then(|p| ev.money(&f("price"), p, s, currency));
        let rating_count = ev.opt(&f("rating_count"), m.rating_count.as_ref(), s, val_i64);
        let rating_average = ev.opt(
            &f("rating_average"),
            m.rating_average.as_ref(),
            s,
            val_decimal,
        );
        let rating_positive = ev.opt(
            &f("rating_positive"),
            m.rating_positive.as_ref(),
            s,
            val_i64,
        );
        let rating = match (rating_count, rating_average) {
            (Some(count), Some(average)) if count > 0 => Some(crate::model::RatingSummary {
                count: count as u64,
                average,
                scale: m.rating_scale.unwrap_or(5),
                positive: rating_positive.map(|p| p.clamp(0, count) as u64),
            }),
            _ => None,
        };
        let listing = Listing {
            id: ListingId::derive(ctx.instance, external_id.as_deref().unwrap_or_default()),
            instance: ctx.instance.to_string(),
            channel: ctx.channel.to_string(),
            channel_kind: ctx.channel_kind,
            account: ctx.account.to_string(),
            product_id: ev.text(&f("product_id"), m.product_id.as_ref(), s),
            sku: ev.text(&f("sku"), m.sku.as_ref(), s),
            description: ev.text(&f("description"), m.description.as_ref(), s),
            category: ev.text(&f("category"), m.category.as_ref(), s),
            brand: ev.text(&f("brand"), m.brand.as_ref(), s),
            stock: ev.opt(&f("stock"), m.stock.as_ref(), s, val_i64),
            price,
            external_id: external_id.unwrap_or_default(),
            revision: Revision {
                updated_at: updated_at.unwrap_or_default(),
                sequence: None,
            },
            title: title.unwrap_or_default(),
            status: status.unwrap_or(ListingStatus::Inactive),
            rating,
        };
        listings.push(listing);
    }
    if ev.errors.is_empty() {
        Ok(listings)
    } else {
        Err(ev.errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::tree::parse_json;

    fn expr(toml_value: &str) -> Expr {
        #[derive(serde::Deserialize)]
        struct W {
            e: Expr,
        }
        toml::from_str::<W>(&format!("e = {toml_value}")).unwrap().e
    }

    fn eval_text(e: &Expr, doc: &Node) -> Option<String> {
        eval(e, Scope::new(doc))
            .unwrap()
            .map(|v| v.text().unwrap().into_owned())
    }

    #[test]
    fn expressions() {
        let doc = parse_json(
            br#"{"a":"x","b":null,"c":"","cancelled_at":"2024-01-01","st":"paid","n":[{"v":"1.10"},{"v":"2.25"}],"f":"Bob","l":"Norman","flag":false}"#,
        )
        .unwrap();
        assert_eq!(eval_text(&expr(r#""a""#), &doc).as_deref(), Some("x"));
        assert_eq!(eval_text(&expr(r#""b""#), &doc), None);
        assert_eq!(eval_text(&expr(r#""c""#), &doc), None, "blank is absent");
        assert_eq!(
            eval_text(&expr(r#"{ coalesce = ["b", "c", "a"] }"#), &doc).as_deref(),
            Some("x")
        );
        assert_eq!(
            eval_text(&expr(r#"{ sum = "n[*].v" }"#), &doc).as_deref(),
            Some("3.35")
        );
        assert_eq!(
            eval_text(&expr(r#"{ sum = "missing[*].v" }"#), &doc).as_deref(),
            Some("0")
        );
        assert_eq!(
            eval_text(&expr(r#"{ join = ["f", "l", "b"] }"#), &doc).as_deref(),
            Some("Bob Norman")
        );
        assert_eq!(
            eval_text(
                &expr(r#"{ when = "cancelled_at", then = "cancelled" }"#),
                &doc
            )
            .as_deref(),
            Some("cancelled")
        );
        assert_eq!(
            eval_text(&expr(r#"{ when = "flag", then = "yes" }"#), &doc),
            None
        );
        assert_eq!(
            eval_text(&expr(r#"{ path = "st", map = { paid = "paid" } }"#), &doc).as_deref(),
            Some("paid")
        );
        assert_eq!(
            eval_text(&expr(r#"{ path = "a", map = { paid = "paid" } }"#), &doc),
            None,
            "unmapped is absent"
        );
        assert_eq!(
            eval_text(&expr(r#"{ path = "b", default = "created" }"#), &doc).as_deref(),
            Some("created")
        );
        assert_eq!(
            eval_text(&expr(r#"{ value = 0 }"#), &doc).as_deref(),
            Some("0")
        );
    }

    #[test]
    fn bad_expressions_are_rejected_when_read() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct W {
            e: Expr,
        }
        for bad in [
            r#"e = { path = "a", value = "b" }"#,
            r#"e = { }"#,
            r#"e = "a..b""#,
            r#"e = "items[*].x""#,
            r#"e = { when = "a" }"#,
            r#"e = { path = "a", sep = "," }"#,
            r#"e = { path = "a", unknown = 1 }"#,
        ] {
            assert!(toml::from_str::<W>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn conversions() {
        let q = |s: &str| val_quantity(&Val::Node(&Node::Number(s.into())));
        assert_eq!(q("3"), Ok(3));
        assert_eq!(q("3.0"), Ok(3));
        assert!(q("-1").unwrap_err().contains("negative"));
        assert!(q("0").is_err());
        assert!(q("1.5").is_err());
        assert!(q("99999999999").is_err());
        let dt = |s: &str, f: &str| {
            let fmt: DateFormat = serde_json::from_str(f).unwrap();
            val_datetime(
                &Val::Text(Cow::Owned(s.into())),
                Some(&fmt),
                &BTreeMap::new(),
            )
            .map(|d| d.to_rfc3339())
        };
        assert_eq!(
            dt("2008-01-10T11:00:00-05:00", r#""rfc3339""#).unwrap(),
            "2008-01-10T11:00:00-05:00"
        );
        assert_eq!(
            dt("Tue, 1 Jul 2003 10:52:37 +0200", r#""rfc2822""#).unwrap(),
            "2003-07-01T10:52:37+02:00"
        );
        assert_eq!(
            dt("1695600000", r#""unix""#).unwrap(),
            "2023-09-25T00:00:00+00:00"
        );
        assert_eq!(
            dt(
                "2024-03-05 10:00:00",
                r#"{"pattern":"%Y-%m-%d %H:%M:%S","zone":"Asia/Shanghai"}"#
            )
            .unwrap(),
            "2024-03-05T10:00:00+08:00"
        );
        assert_eq!(
            dt(
                "20240305100000",
                r#"{"pattern":"%Y%m%d%H%M%S","zone":"Asia/Shanghai"}"#
            )
            .unwrap(),
            "2024-03-05T10:00:00+08:00"
        );
        assert!(dt("2024-02-30T00:00:00Z", r#""rfc3339""#).is_err());
        assert!(dt("2024-01-01 00:00:00", r#""rfc3339""#).is_err());
        assert_eq!(
            val_currency(&Val::Text(Cow::Borrowed("usd")))
                .unwrap()
                .code(),
            "USD"
        );
    }
}
