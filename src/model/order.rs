//! The canonical order every channel is normalized into.

use chrono::{DateTime, FixedOffset};
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CountryCode, CurrencyCode, Money, OrderId};

/// What kind of sales channel a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    WebShop,
    Social,
    MobileApp,
    Phone,
    Marketplace,
    /// A payment provider (Stripe, WeChat Pay): it moves orders of other channels through their life.
    Payment,
}

impl ChannelKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ChannelKind::WebShop => "web_shop",
            ChannelKind::Social => "social",
            ChannelKind::MobileApp => "mobile_app",
            ChannelKind::Phone => "phone",
            ChannelKind::Marketplace => "marketplace",
            ChannelKind::Payment => "payment",
        }
    }
}

/// Where an order stands in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Created,
    Paid,
    Fulfilled,
    Delivered,
    Cancelled,
    PartiallyRefunded,
    Refunded,
}

impl OrderStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            OrderStatus::Created => "created",
            OrderStatus::Paid => "paid",
            OrderStatus::Fulfilled => "fulfilled",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::PartiallyRefunded => "partially_refunded",
            OrderStatus::Refunded => "refunded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "created" => OrderStatus::Created,
            "paid" => OrderStatus::Paid,
            "fulfilled" | "shipped" => OrderStatus::Fulfilled,
            "delivered" => OrderStatus::Delivered,
            "cancelled" => OrderStatus::Cancelled,
            "partially_refunded" => OrderStatus::PartiallyRefunded,
            "refunded" => OrderStatus::Refunded,
            _ => return None,
        })
    }
}

/// Which version of a channel record this is. A newer revision replaces an older one; an older
/// one never overwrites a newer one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Revision {
    /// The channel's last-modified time of the record (RFC 3339, original offset kept).
    pub updated_at: DateTime<FixedOffset>,
    /// A version counter, when the channel has one; it orders revisions with the same `updated_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
}

impl Revision {
    /// A key that sorts like the revision: updated_at (µs, UTC), then sequence, then a content
    /// hash, so two different payloads with the same revision converge on the same winner
    /// whatever order they arrive in.
    pub fn ordering_key(&self, content_hash: &str) -> String {
        let micros = self.updated_at.timestamp_micros();
        let biased = (micros as i128 + i128::from(i64::MAX) + 1) as u128;
        format!(
            "{:020}:{:020}:{}",
            biased,
            self.sequence.unwrap_or(0),
            content_hash
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Cross-channel customer key: a salted hash of the normalized email or phone. Set by the
    /// gateway; the same buyer on two channels gets the same key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Age band, where the channel provides one (e.g. `25-34`); a demographic segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_band: Option<String>,
    /// Gender, where the channel provides it; a demographic segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
}

impl Customer {
    /// The cross-channel key: `c.` + the first 128 bits of HMAC-SHA256(salt, identity) in hex,
    /// where identity is `email:` + the trimmed, lower-cased email, else `phone:` + the phone's
    /// digits (with a leading `+` kept). `None` when neither is usable.
    pub fn derive_key(&self, salt: &[u8]) -> Option<String> {
        let identity = self
            .email
            .as_deref()
            .map(|e| e.trim().to_lowercase())
            .filter(|e| e.contains('@') && e.len() > 2)
            .map(|e| format!("email:{e}"))
            .or_else(|| {
                let p = self.phone.as_deref()?.trim();
                let digits: String = p.chars().filter(char::is_ascii_digit).collect();
                (digits.len() >= 7).then(|| {
                    let plus = if p.starts_with('+') || p.starts_with("00") {
                        "+"
                    } else {
                        ""
                    };
                    let digits = if p.starts_with("00") {
                        &digits[2..]
                    } else {
                        &digits
                    };
                    format!("phone:{plus}{digits}")
                })
            })?;
        Some(keyed(salt, &identity))
    }

    /// The key of a buyer known only by their account on one channel instance (no email or
    /// phone, e.g. a loyalty card): `account:<instance>:<external id>`, hashed like
    /// [`Customer::derive_key`]. It never matches across instances; email or phone do.
    pub fn derive_account_key(&self, salt: &[u8], instance: &str) -> Option<String> {
        let id = self.external_id.as_deref()?.trim();
        (!id.is_empty()).then(|| keyed(salt, &format!("account:{instance}:{id}")))
    }
}

fn keyed(salt: &[u8], identity: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(salt).expect("any key length");
    mac.update(identity.as_bytes());
    format!("c.{}", hex::encode(&mac.finalize().into_bytes()[..16]))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// State, province or prefecture (code or name as the channel gives it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    pub country: CountryCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLine {
    /// The channel's id of the line, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// The channel's product id, when it has one (used to join listings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    pub title: String,
    /// Units ordered (at least 1).
    pub quantity: u32,
    /// Price of one unit, as the channel states it (tax-inclusive if `taxes_included`). When the
    /// channel states only a line amount, this is that amount divided by the quantity.
    pub unit_price: Money,
    /// The amount of the whole line (price × quantity) when the channel states it (Amazon's
    /// ItemPrice); calculations prefer it to unit price × quantity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_total: Option<Money>,
    /// Discount allocated to the whole line (not per unit), positive.
    pub discount: Money,
    /// Tax the channel reports for the whole line.
    pub tax: Money,
    /// Harmonized System code (6 to 10 digits), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hs_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_country: Option<CountryCode>,
    /// The line's tax class when the channel or the app names it (`books`, `food`, …: a class
    /// the tax rule pack declares); otherwise the class comes from the HS code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_class: Option<String>,
    /// The country of the warehouse this line ships from, when the channel says (otherwise
    /// the instance's `ship_from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ship_from: Option<CountryCode>,
}

/// A discount on the order (code or automatic), positive amount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Discount {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub amount: Money,
}

/// A tax line as the channel reported it (not computed by the gateway).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelTaxLine {
    pub title: String,
    /// Rate as a fraction (0.06 = 6 %), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    #[serde(with = "opt_decimal_str")]
    pub rate: Option<Decimal>,
    pub amount: Money,
    /// True when the channel (marketplace) collects and remits this tax itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_liable: Option<bool>,
}

/// Order totals, all in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    /// Sum of line prices before order-level discounts.
    pub subtotal: Money,
    pub shipping: Money,
    /// Total discounts, positive.
    pub discount: Money,
    pub tax: Money,
    pub grand_total: Money,
}

/// The same order totals in a second currency, when the channel states both (Shopify's
/// shop money vs presentment money: the buyer paid in `Order::currency`; the shop books in this).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SettlementView {
    pub currency: CurrencyCode,
    pub totals: Totals,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Pending,
    Authorized,
    Paid,
    PartiallyRefunded,
    Refunded,
    Failed,
    Voided,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Payment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    pub status: PaymentStatus,
    pub amount: Money,
    /// Amount refunded so far, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunded: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_at: Option<DateTime<FixedOffset>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShipmentStatus {
    Pending,
    Shipped,
    InTransit,
    Delivered,
    Failed,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Shipment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracking_numbers: Vec<String>,
    pub status: ShipmentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipped_at: Option<DateTime<FixedOffset>>,
}

/// Why an order is held back from downstream processing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hold {
    /// `fx_pending`, `tax_pending`, `totals_mismatch` or `payment_mismatch`.
    pub kind: String,
    pub reason: String,
    /// The figure the channel stated (`totals_mismatch`; `payment_mismatch`: the payments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stated: Option<Money>,
    /// The figure its parts add up to (`totals_mismatch`; `payment_mismatch`: the grand total).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computed: Option<Money>,
}

/// The hold kind of an order whose stated totals contradict their parts.
pub const TOTALS_MISMATCH: &str = "totals_mismatch";

impl Hold {
    /// A hold that carries only a reason (`fx_pending`, `tax_pending`).
    pub fn new(kind: &str, reason: String) -> Self {
        Self {
            kind: kind.to_string(),
            reason,
            stated: None,
            computed: None,
        }
    }
}

/// A canonical order. The first block of fields is set by the gateway; the rest comes from the
/// channel through its adapter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Order {
    /// Gateway id, derived from instance and external id.
    pub id: OrderId,
    /// Channel instance id (from the gateway config).
    pub instance: String,
    /// Adapter name, e.g. `shopify`.
    pub channel: String,
    pub channel_kind: ChannelKind,
    /// The merchant's account on the channel (shop domain, seller id…).
    pub account: String,

    /// The channel's id of the order.
    pub external_id: String,
    /// The human-facing order number, when different from the id (`#1001`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    pub revision: Revision,
    pub status: OrderStatus,
    /// When the buyer placed the order (RFC 3339, the channel's offset kept).
    pub placed_at: DateTime<FixedOffset>,
    /// The currency the buyer paid in; every amount below is in it.
    pub currency: CurrencyCode,
    /// True when line prices include tax.
    pub taxes_included: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<Customer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_address: Option<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_address: Option<Address>,
    pub lines: Vec<OrderLine>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discounts: Vec<Discount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tax_lines: Vec<ChannelTaxLine>,
    pub totals: Totals,
    /// The totals in the merchant's settlement currency, when the channel gives a second view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement: Option<SettlementView>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payments: Vec<Payment>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shipments: Vec<Shipment>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<Hold>,
    /// How the payments reported about the order compare with it (set by the gateway's view
    /// when payment facts are about the order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_reconciliation: Option<super::payment_check::PaymentReconciliation>,
}

/// Fields of an order that the gateway sets; a channel payload may not carry them.
pub const GATEWAY_ORDER_FIELDS: &[&str] = &[
    "id",
    "instance",
    "channel",
    "channel_kind",
    "account",
    "holds",
    "payment_reconciliation",
];

/// The order as the merchant's app or a call-centre tool submits it: the canonical order
/// without [`GATEWAY_ORDER_FIELDS`]. A schema only (the submission is read as an [`Order`]).
pub struct AppOrder;

impl schemars::JsonSchema for AppOrder {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "AppOrder".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut schema = Order::json_schema(generator);
        if let Some(obj) = schema.as_object_mut() {
            obj.insert(
                "title".into(),
                "Order (as posted by the merchant app)".into(),
            );
            if let Some(props) = obj.get_mut("properties").and_then(|p| p.as_object_mut()) {
                for f in GATEWAY_ORDER_FIELDS {
                    props.remove(*f);
                }
            }
            if let Some(req) = obj.get_mut("required").and_then(|r| r.as_array_mut()) {
                req.retain(|v| !GATEWAY_ORDER_FIELDS.contains(&v.as_str().unwrap_or_default()));
            }
        }
        schema
    }
}

/// A rule an order broke; `path` names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub path: String,
    pub message: String,
}

impl OrderLine {
    /// The line amount: the channel's stated line total, else unit price × quantity.
    pub fn amount(&self) -> Result<Money, crate::model::MoneyError> {
        match self.line_total {
            Some(t) => Ok(t),
            None => self.unit_price.checked_mul_qty(self.quantity),
        }
    }
}

impl Order {
    /// Whether a hold of this kind is on the order.
    pub fn has_hold(&self, kind: &str) -> bool {
        self.holds.iter().any(|h| h.kind == kind)
    }

    /// The `totals_mismatch` holds of an order whose stated numbers contradict each other:
    /// the grand total against subtotal − discount + shipping (+ tax when prices exclude it),
    /// and each stated line total against quantity × unit price. `minor_units_per_line` is the
    /// adapter's tolerance: the grand total may be off by that many minor units per line; a
    /// line total by as much, or by half a minor unit per unit where the channel's unit price
    /// is itself a rounded share of the line. `charges` are what the channel adds into its
    /// grand total beyond these parts (tips, duties). Empty when the numbers agree.
    pub fn totals_mismatches(&self, minor_units_per_line: u32, charges: Decimal) -> Vec<Hold> {
        let unit = Decimal::new(1, self.currency.minor_units());
        let per_line = unit * Decimal::from(minor_units_per_line);
        let lines = Decimal::from(self.lines.len().max(1) as u64);
        let t = &self.totals;
        let tax = if self.taxes_included {
            Decimal::ZERO
        } else {
            t.tax.amount()
        };
        let mut out = Vec::new();
        let expected =
            t.subtotal.amount() - t.discount.amount() + t.shipping.amount() + tax + charges;
        if (t.grand_total.amount() - expected).abs() > per_line * lines {
            let parts = match (self.taxes_included, charges.is_zero()) {
                (true, true) => "subtotal − discount + shipping (prices include tax)",
                (true, false) => "subtotal − discount + shipping + charges (prices include tax)",
                (false, true) => "subtotal − discount + shipping + tax",
                (false, false) => "subtotal − discount + shipping + tax + charges",
            };
            out.push(self.mismatch(
                "totals.grand_total",
                parts,
                t.grand_total.amount(),
                expected,
            ));
        }
        for (i, line) in self.lines.iter().enumerate() {
            let Some(total) = &line.line_total else {
                continue;
            };
            let qty = Decimal::from(line.quantity);
            let expected = line.unit_price.amount() * qty;
            let allowed = per_line.max(unit * qty / Decimal::TWO);
            if (total.amount() - expected).abs() > allowed {
                let field = format!("lines[{i}].line_total");
                out.push(self.mismatch(&field, "quantity × unit_price", total.amount(), expected));
            }
        }
        out
    }

    fn mismatch(&self, field: &str, parts: &str, stated: Decimal, computed: Decimal) -> Hold {
        let money = |d: Decimal| Money::new(d, self.currency).ok();
        Hold {
            kind: TOTALS_MISMATCH.to_string(),
            reason: format!(
                "{field} is {stated} {c} but {parts} is {computed} {c}; held until a corrected revision arrives",
                c = self.currency
            ),
            stated: money(stated),
            computed: money(computed),
        }
    }

    /// Checks the invariants the type system does not: currencies agree, quantities are at least
    /// one, amounts that must be non-negative are, HS codes are 6-10 digits.
    pub fn validate(&self) -> Vec<Violation> {
        let mut c = Checker {
            currency: self.currency,
            out: Vec::new(),
        };
        if self.external_id.trim().is_empty() {
            c.fail("external_id".into(), "must not be empty".into());
        }
        if self.lines.is_empty() {
            c.fail("lines".into(), "an order needs at least one line".into());
        }
        for (i, line) in self.lines.iter().enumerate() {
            if line.quantity == 0 {
                c.fail(format!("lines[{i}].quantity"), "must be at least 1".into());
            }
            c.money(format!("lines[{i}].unit_price"), &line.unit_price);
            if let Some(t) = &line.line_total {
                c.money(format!("lines[{i}].line_total"), t);
            }
            c.money(format!("lines[{i}].discount"), &line.discount);
            c.money(format!("lines[{i}].tax"), &line.tax);
            if let Some(hs) = &line.hs_code
                && !is_hs_code(hs)
            {
                c.fail(
                    format!("lines[{i}].hs_code"),
                    "must be 6 to 10 digits".into(),
                );
            }
        }
        for (i, d) in self.discounts.iter().enumerate() {
            c.money(format!("discounts[{i}].amount"), &d.amount);
        }
        for (i, t) in self.tax_lines.iter().enumerate() {
            c.money(format!("tax_lines[{i}].amount"), &t.amount);
        }
        for (i, p) in self.payments.iter().enumerate() {
            c.money(format!("payments[{i}].amount"), &p.amount);
        }
        c.totals("totals", &self.totals);
        if let Some(s) = &self.settlement {
            c.currency = s.currency;
            c.totals("settlement.totals", &s.totals);
        }
        c.out
    }
}

/// Collects violations; `currency` is the currency amounts must be in.
struct Checker {
    currency: CurrencyCode,
    out: Vec<Violation>,
}

impl Checker {
    fn fail(&mut self, path: String, message: String) {
        self.out.push(Violation { path, message });
    }

    /// A non-negative amount in the expected currency.
    fn money(&mut self, path: String, m: &Money) {
        if m.currency() != self.currency {
            let msg = format!(
                "currency {} differs from the expected currency {}",
                m.currency(),
                self.currency
            );
            self.fail(path.clone(), msg);
        }
        if m.is_negative() {
            self.fail(path, "must not be negative".into());
        }
    }

    fn totals(&mut self, prefix: &str, t: &Totals) {
        for (name, m) in [
            ("subtotal", &t.subtotal),
            ("shipping", &t.shipping),
            ("discount", &t.discount),
            ("tax", &t.tax),
            ("grand_total", &t.grand_total),
        ] {
            self.money(format!("{prefix}.{name}"), m);
        }
    }
}

/// Serde helper: an optional decimal written as a JSON string.
pub(crate) mod opt_decimal_str {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_str(&d.normalize().to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| crate::model::money::parse_decimal(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// An HS code as the gateway stores it: 6 to 10 digits (the six of the Harmonized System,
/// then a destination's national subdivisions).
pub fn is_hs_code(hs: &str) -> bool {
    (6..=10).contains(&hs.len()) && hs.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(a: &str) -> Money {
        Money::parse(a, CurrencyCode::parse("USD").unwrap()).unwrap()
    }

    /// An order of `lines` lines with the given parts and stated grand total.
    fn order_with(parts: [&str; 5], lines: usize, taxes_included: bool) -> Order {
        let [subtotal, shipping, discount, tax, grand] = parts;
        let json = serde_json::json!({
            "id": "o.t.0000000000000000", "instance": "t", "channel": "t",
            "channel_kind": "web_shop", "account": "t", "external_id": "1",
            "revision": {"updated_at": "2024-01-01T00:00:00Z"}, "status": "created",
            "placed_at": "2024-01-01T00:00:00Z", "currency": "USD",
            "taxes_included": taxes_included,
            "lines": (0..lines).map(|i| serde_json::json!({
                "title": format!("l{i}"), "quantity": 1,
                "unit_price": {"amount": "1.00", "currency": "USD"},
                "discount": {"amount": "0.00", "currency": "USD"},
                "tax": {"amount": "0.00", "currency": "USD"}})).collect::<Vec<_>>(),
            "totals": {
                "subtotal": {"amount": subtotal, "currency": "USD"},
                "shipping": {"amount": shipping, "currency": "USD"},
                "discount": {"amount": discount, "currency": "USD"},
                "tax": {"amount": tax, "currency": "USD"},
                "grand_total": {"amount": grand, "currency": "USD"}}
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn totals_that_add_up_are_not_held() {
        let o = order_with(["597.00", "0.00", "10.00", "11.94", "598.94"], 3, false);
        assert!(o.totals_mismatches(0, Decimal::ZERO).is_empty());
        // Prices including tax: the tax is inside the subtotal.
        let o = order_with(["100.00", "5.00", "0.00", "15.97", "105.00"], 1, true);
        assert!(o.totals_mismatches(0, Decimal::ZERO).is_empty());
        // A tip the canonical totals do not carry, declared as a charge.
        let o = order_with(["597.00", "0.00", "10.00", "11.94", "603.94"], 3, false);
        assert!(o.totals_mismatches(0, Decimal::new(500, 2)).is_empty());
    }

    #[test]
    fn totals_that_contradict_their_parts_are_held_with_both_figures() {
        for stated in ["0.00", "598.95", "1000000.00"] {
            let o = order_with(["597.00", "0.00", "10.00", "11.94", stated], 3, false);
            let holds = o.totals_mismatches(0, Decimal::ZERO);
            assert_eq!(holds.len(), 1, "{stated}");
            assert_eq!(holds[0].kind, TOTALS_MISMATCH);
            assert_eq!(holds[0].stated, Some(usd(stated)));
            assert_eq!(holds[0].computed, Some(usd("598.94")));
        }
        // The default tolerance: one minor unit per line.
        let o = order_with(["597.00", "0.00", "10.00", "11.94", "598.97"], 3, false);
        assert!(o.totals_mismatches(1, Decimal::ZERO).is_empty());
        let o = order_with(["597.00", "0.00", "10.00", "11.94", "598.98"], 3, false);
        assert_eq!(o.totals_mismatches(1, Decimal::ZERO).len(), 1);
    }

    #[test]
    fn a_line_total_is_checked_against_its_unit_price() {
        let mut o = order_with(["10.00", "0.00", "0.00", "0.00", "10.00"], 1, false);
        o.lines[0].quantity = 3;
        o.lines[0].unit_price = usd("3.33");
        // 10.00 over 3 units: a unit price of 3.33 is the channel's rounded share.
        o.lines[0].line_total = Some(usd("10.00"));
        assert!(o.totals_mismatches(1, Decimal::ZERO).is_empty());
        o.lines[0].line_total = Some(usd("12.00"));
        let holds = o.totals_mismatches(1, Decimal::ZERO);
        assert_eq!(holds.len(), 1);
        assert!(
            holds[0].reason.starts_with("lines[0].line_total"),
            "{}",
            holds[0].reason
        );
    }

    proptest::proptest! {
        #[test]
        fn held_exactly_when_off_by_more_than_the_tolerance(
            subtotal in 0i64..10_000_000, shipping in 0i64..100_000, tax in 0i64..1_000_000,
            discount_share in 0i64..100, lines in 1usize..6, tolerance in 0u32..3, off in -20i64..20,
        ) {
            let discount = subtotal * discount_share / 100;
            let grand = subtotal - discount + shipping + tax + off;
            let cents = |c: i64| Decimal::new(c, 2).to_string();
            let o = order_with([&cents(subtotal), &cents(shipping), &cents(discount), &cents(tax),
                &cents(grand)], lines, false);
            let held = !o.totals_mismatches(tolerance, Decimal::ZERO).is_empty();
            let allowed = i64::from(tolerance) * lines as i64;
            proptest::prop_assert_eq!(held, off.abs() > allowed);
        }
    }

    #[test]
    fn customer_keys_normalize_email_then_phone() {
        let c = |email: Option<&str>, phone: Option<&str>| Customer {
            external_id: None,
            email: email.map(Into::into),
            phone: phone.map(Into::into),
            name: None,
            ..Default::default()
        };
        let salt = b"0123456789abcdef";
        let k = c(Some("Bob@Example.com "), None).derive_key(salt).unwrap();
        assert_eq!(
            c(Some("bob@example.com"), Some("+1 555")).derive_key(salt),
            Some(k.clone())
        );
        assert!(k.starts_with("c.") && k.len() == 34);
        assert_ne!(
            c(Some("bob@example.com"), None).derive_key(b"another-salt-0000"),
            Some(k)
        );
        // Phones: formatting and the 00 international prefix do not matter.
        let p = c(None, Some("+49 (30) 1234-5678")).derive_key(salt);
        assert_eq!(c(None, Some("0049 30 12345678")).derive_key(salt), p);
        assert!(p.is_some());
        assert_eq!(c(Some("not-an-email"), Some("12")).derive_key(salt), None);
    }
}
