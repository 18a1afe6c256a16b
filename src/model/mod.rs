//! The canonical model: orders, listings, money, countries. No IO here: this module knows
//! nothing about HTTP, Redis, files or the clock.

mod country;
mod ids;
pub mod lifecycle;
mod listing;
pub mod money;
mod order;
mod outbound;
pub mod payment_check;
mod record;
mod stock;

pub use country::{CountryCode, CountryError};
pub use ids::{IdError, ListingId, OrderId, StockId, validate_instance_id};
pub use lifecycle::{FactKind, LifecycleFact, Transition};
pub use listing::{Listing, ListingStatus, RatingSummary};
pub use money::{CurrencyCode, Money, MoneyError};
pub use order::{
    Address, AppOrder, ChannelKind, ChannelTaxLine, Customer, Discount, GATEWAY_ORDER_FIELDS, Hold,
    Order, OrderLine, OrderStatus, Payment, PaymentStatus, Revision, SettlementView, Shipment,
    ShipmentStatus, TOTALS_MISMATCH, Totals, Violation, is_hs_code,
};
pub use outbound::CommandField;
pub use payment_check::{PAYMENT_MISMATCH, PaymentOutcome, PaymentReconciliation};
pub use record::{Change, ChangeEvent, Record, RecordId, RecordKind};
pub use stock::{LocationStock, StockLevel};

/// The app order fixture (`tests/fixtures/app/order-jp.json`, JPY 10,760) as an order of
/// instance `app` with the given status and no payments of its own.
#[cfg(test)]
pub(crate) fn fixture_order(status: &str) -> Order {
    let json = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/app/order-jp.json"),
    )
    .unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let m = v.as_object_mut().unwrap();
    let id = OrderId::derive("app", "APP-2024-000123");
    for (k, val) in [
        ("id", id.as_str()),
        ("instance", "app"),
        ("channel", "app"),
        ("channel_kind", "mobile_app"),
        ("account", "acme"),
        ("status", status),
    ] {
        m.insert(k.into(), val.into());
    }
    m.insert("payments".into(), serde_json::json!([]));
    serde_json::from_value(v).unwrap()
}
