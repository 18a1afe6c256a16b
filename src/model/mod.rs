//! The canonical model: orders, listings, money, countries. No IO here: this module knows
//! nothing about HTTP, Redis, files or the clock.

mod country;
mod ids;
pub mod lifecycle;
mod listing;
pub mod money;
mod order;
mod record;

pub use country::{CountryCode, CountryError};
pub use ids::{IdError, ListingId, OrderId, validate_instance_id};
pub use lifecycle::{FactKind, LifecycleFact, Transition};
pub use listing::{Listing, ListingStatus, RatingSummary};
pub use money::{CurrencyCode, Money, MoneyError};
pub use order::{
    Address, ChannelKind, ChannelTaxLine, Customer, Discount, GATEWAY_ORDER_FIELDS, Hold, Order,
    OrderLine, OrderStatus, Payment, PaymentStatus, Revision, SettlementView, Shipment,
    ShipmentStatus, TOTALS_MISMATCH, Totals, Violation,
};
pub use record::{Change, ChangeEvent, Record, RecordId, RecordKind};
