//! Record mappings: how orders, lifecycle facts and listings are read from a payload.

use schemars::JsonSchema;
use serde::Deserialize;

use super::*;

/// How an order is read. Paths are relative to `root` unless anchored (`$` document, `^` order).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderMapping {
    /// Where the order object is (default: the document root). A `coalesce` handles payloads
    /// that are sometimes wrapped (`{"order": {...}}`) and sometimes not.
    #[serde(default)]
    pub root: Option<Expr>,
    /// For documents holding several orders (list responses, CSV groups): one order per
    /// element of this array, relative to `root`. Each is mapped and validated on its own.
    /// When the path is absent the root itself is the one order, so one mapping reads both a
    /// single order and a list page.
    #[serde(default)]
    pub each: Option<Each>,
    pub external_id: Expr,
    #[serde(default)]
    pub number: Option<Expr>,
    /// The channel's last-modified time; it orders revisions.
    pub updated_at: Expr,
    /// A version counter, when the channel has one.
    #[serde(default)]
    pub sequence: Option<Expr>,
    pub placed_at: Expr,
    /// Must give one of: created, paid, fulfilled, delivered, cancelled, partially_refunded, refunded.
    pub status: Expr,
    /// The currency the buyer paid in (presentment currency).
    pub currency: Expr,
    #[serde(default)]
    pub taxes_included: Option<Expr>,
    #[serde(default)]
    pub customer: Option<CustomerMapping>,
    #[serde(default)]
    pub billing_address: Option<AddressMapping>,
    #[serde(default)]
    pub shipping_address: Option<AddressMapping>,
    pub lines: LinesMapping,
    #[serde(default)]
    pub discounts: Option<DiscountsMapping>,
    #[serde(default)]
    pub tax_lines: Option<TaxLinesMapping>,
    pub totals: TotalsMapping,
    /// The same totals in the merchant's settlement currency (Shopify shop money).
    #[serde(default)]
    pub settlement: Option<SettlementMapping>,
    #[serde(default)]
    pub payments: Option<PaymentsMapping>,
    #[serde(default)]
    pub shipments: Option<ShipmentsMapping>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerMapping {
    #[serde(default)]
    pub external_id: Option<Expr>,
    #[serde(default)]
    pub email: Option<Expr>,
    #[serde(default)]
    pub phone: Option<Expr>,
    #[serde(default)]
    pub name: Option<Expr>,
    /// Age band (a demographic segment for recommendations).
    #[serde(default)]
    pub age_band: Option<Expr>,
    /// Gender (a demographic segment for recommendations).
    #[serde(default)]
    pub gender: Option<Expr>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressMapping {
    /// Where the address object is; no address when it is absent.
    pub root: Expr,
    #[serde(default)]
    pub name: Option<Expr>,
    #[serde(default)]
    pub company: Option<Expr>,
    #[serde(default)]
    pub line1: Option<Expr>,
    #[serde(default)]
    pub line2: Option<Expr>,
    #[serde(default)]
    pub city: Option<Expr>,
    #[serde(default)]
    pub region: Option<Expr>,
    #[serde(default)]
    pub postal_code: Option<Expr>,
    /// ISO 3166-1 alpha-2 code.
    pub country: Expr,
    #[serde(default)]
    pub phone: Option<Expr>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinesMapping {
    pub each: Each,
    /// Skip elements where this holds a value (e.g. Magento's child items of a bundle, whose
    /// price is on the parent).
    #[serde(default)]
    pub skip_when: Option<Expr>,
    #[serde(default)]
    pub line_id: Option<Expr>,
    #[serde(default)]
    pub sku: Option<Expr>,
    #[serde(default)]
    pub product_id: Option<Expr>,
    pub title: Expr,
    pub quantity: Expr,
    /// Price of one unit. Give this or `line_total`.
    #[serde(default)]
    pub unit_price: Option<MoneySpec>,
    /// Amount of the whole line (price × quantity), for channels that state that instead of a
    /// unit price (Amazon ItemPrice); the unit price is then derived.
    #[serde(default)]
    pub line_total: Option<MoneySpec>,
    /// Discount on the whole line; zero when omitted.
    #[serde(default)]
    pub discount: Option<MoneySpec>,
    /// Tax on the whole line; zero when omitted.
    #[serde(default)]
    pub tax: Option<MoneySpec>,
    #[serde(default)]
    pub hs_code: Option<Expr>,
    #[serde(default)]
    pub origin_country: Option<Expr>,
    /// The line's tax class, when the channel names one (a product's tax category); it
    /// overrides the class derived from the HS code. Must be a class the rule pack declares.
    #[serde(default)]
    pub tax_class: Option<Expr>,
    /// The country of the warehouse the line ships from (ISO alpha-2).
    #[serde(default)]
    pub ship_from: Option<Expr>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscountsMapping {
    pub each: Each,
    #[serde(default)]
    pub code: Option<Expr>,
    pub amount: MoneySpec,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaxLinesMapping {
    pub each: Each,
    pub title: Expr,
    #[serde(default)]
    pub rate: Option<Expr>,
    pub amount: MoneySpec,
    #[serde(default)]
    pub channel_liable: Option<Expr>,
}

/// Order totals. Omitted parts are derived: subtotal = Σ line amounts, shipping = 0,
/// discount = Σ line discounts (else Σ order discounts), tax = Σ line tax, grand total =
/// subtotal − discount + shipping (+ tax unless prices include it). A part whose amount is
/// absent from a particular payload (Amazon states no total for pending orders) is derived the
/// same way.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TotalsMapping {
    /// How far the stated totals may be from what their parts add up to, in minor units per
    /// order line (the channel's own rounding). Beyond it the order is stored but held as
    /// `totals_mismatch`: not converted, not quoted, not counted in rankings.
    #[serde(default = "default_totals_tolerance")]
    pub tolerance_minor_units_per_line: u32,
    /// Charges the channel adds into its grand total that the canonical totals do not carry
    /// (tips, duties, fees); each is zero when absent. Read only for the totals check.
    #[serde(default)]
    pub charges: Vec<MoneySpec>,
    #[serde(default)]
    pub subtotal: Option<MoneySpec>,
    #[serde(default)]
    pub shipping: Option<MoneySpec>,
    #[serde(default)]
    pub discount: Option<MoneySpec>,
    #[serde(default)]
    pub tax: Option<MoneySpec>,
    #[serde(default)]
    pub grand_total: Option<MoneySpec>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SettlementMapping {
    pub currency: Expr,
    pub subtotal: MoneySpec,
    pub shipping: MoneySpec,
    pub discount: MoneySpec,
    pub tax: MoneySpec,
    pub grand_total: MoneySpec,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentsMapping {
    pub each: Each,
    #[serde(default)]
    pub id: Option<Expr>,
    #[serde(default)]
    pub gateway: Option<Expr>,
    /// Must give one of: pending, authorized, paid, partially_refunded, refunded, failed, voided.
    pub status: Expr,
    pub amount: MoneySpec,
    #[serde(default)]
    pub processed_at: Option<Expr>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipmentsMapping {
    pub each: Each,
    #[serde(default)]
    pub id: Option<Expr>,
    #[serde(default)]
    pub carrier: Option<Expr>,
    /// Path (relative to the shipment, `[*]` allowed) to the tracking numbers.
    #[serde(default)]
    pub tracking_numbers: Option<Each>,
    /// Must give one of: pending, shipped, in_transit, delivered, failed, cancelled.
    pub status: Expr,
    #[serde(default)]
    pub shipped_at: Option<Expr>,
}

/// How one lifecycle fact is read from a document. Exactly one of `payment`, `shipment`,
/// `cancellation`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FactMapping {
    /// Where the fact's object is (default: the document root); `^` paths start here.
    #[serde(default)]
    pub root: Option<Expr>,
    /// Stable id of the fact on the channel (an event id); a re-delivery has the same id.
    pub id: Expr,
    /// The order's id on its channel (e.g. Stripe `metadata.order_id`, WeChat `out_trade_no`).
    pub order_external_id: Expr,
    /// The instance that owns the order (e.g. `{ setting = "orders_instance" }` for a payment
    /// provider); this instance when omitted.
    #[serde(default)]
    pub order_instance: Option<Expr>,
    /// When it happened.
    pub at: Expr,
    #[serde(default)]
    pub payment: Option<PaymentFactMapping>,
    #[serde(default)]
    pub shipment: Option<ShipmentFactMapping>,
    #[serde(default)]
    pub cancellation: Option<CancellationMapping>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentFactMapping {
    /// The payment's id (e.g. a Stripe payment intent), so later facts update the same payment.
    #[serde(default)]
    pub id: Option<Expr>,
    #[serde(default)]
    pub gateway: Option<Expr>,
    /// Must give one of: pending, authorized, paid, partially_refunded, refunded, failed, voided.
    pub status: Expr,
    /// The payment's amount; its `currency` is required (a fact has no order currency).
    pub amount: MoneySpec,
    /// The amount refunded so far.
    #[serde(default)]
    pub refunded: Option<MoneySpec>,
    #[serde(default)]
    pub processed_at: Option<Expr>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipmentFactMapping {
    #[serde(default)]
    pub id: Option<Expr>,
    #[serde(default)]
    pub carrier: Option<Expr>,
    #[serde(default)]
    pub tracking_numbers: Option<Each>,
    /// Must give one of: pending, shipped, in_transit, delivered, failed, cancelled.
    pub status: Expr,
    #[serde(default)]
    pub shipped_at: Option<Expr>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancellationMapping {
    #[serde(default)]
    pub reason: Option<Expr>,
}

/// How listings are read: one listing per element of `each` (e.g. per variant).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListingMapping {
    /// Where the product object is (default: the document root); `^` paths start here.
    #[serde(default)]
    pub root: Option<Expr>,
    /// One listing per element (e.g. `variants`); one listing for the root when omitted.
    #[serde(default)]
    pub each: Option<Each>,
    pub external_id: Expr,
    #[serde(default)]
    pub product_id: Option<Expr>,
    pub updated_at: Expr,
    #[serde(default)]
    pub sku: Option<Expr>,
    pub title: Expr,
    #[serde(default)]
    pub description: Option<Expr>,
    #[serde(default)]
    pub category: Option<Expr>,
    #[serde(default)]
    pub brand: Option<Expr>,
    #[serde(default)]
    pub price: Option<MoneySpec>,
    /// The currency of `price` when its spec gives none.
    #[serde(default)]
    pub currency: Option<Expr>,
    #[serde(default)]
    pub stock: Option<Expr>,
    /// The channel's id of the stock item, where stock is reported apart from the listing
    /// (Shopify: the variant's `inventory_item_id`); `[stock]` levels naming it show on the
    /// listing.
    #[serde(default)]
    pub stock_ref: Option<Expr>,
    /// Must give one of: active, inactive, draft, deleted.
    pub status: Expr,
    /// Harmonized System code (dots and spaces are dropped).
    #[serde(default)]
    pub hs_code: Option<Expr>,
    /// A tax class of the rule pack (e.g. `books`); order lines of the SKU that name none
    /// take it.
    #[serde(default)]
    pub tax_class: Option<Expr>,
    /// Number of customer ratings; with `rating_average`, the listing's rating summary.
    #[serde(default)]
    pub rating_count: Option<Expr>,
    /// Mean rating (on a scale of `rating_scale`, default 5).
    #[serde(default)]
    pub rating_average: Option<Expr>,
    #[serde(default)]
    pub rating_scale: Option<u8>,
    /// Ratings counted as positive (for the Wilson lower bound).
    #[serde(default)]
    pub rating_positive: Option<Expr>,
}

/// Stock levels reported apart from listings (Shopify's `inventory_levels/update`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StockMapping {
    /// Where the level object is (default: the document root).
    #[serde(default)]
    pub root: Option<Expr>,
    /// One level per element, when the document carries several.
    #[serde(default)]
    pub each: Option<Each>,
    /// The stock item's id, as the listings' `stock_ref` gives it.
    pub stock_ref: Expr,
    /// The location's id; omit for channels with one stock per item.
    #[serde(default)]
    pub location: Option<Expr>,
    /// Units available; absent (or null) means the channel does not track the item's stock.
    #[serde(default)]
    pub available: Option<Expr>,
    pub updated_at: Expr,
}
