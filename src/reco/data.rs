//! What the recommendation and ranking jobs keep from the event stream (pure): one
//! [`Interaction`] per order (who bought what, how many, for how much, when, where, on which
//! channel) and one [`ItemInfo`] per listing (the item's text, price and ratings).
//!
//! Both are keyed by the record they come from and overwritten by its newer revisions, so
//! reading an event twice changes nothing: the jobs process each event once in effect.
//! They hold no PII: the customer is the salted customer key, and the segment is an age band,
//! a gender and a destination country.

use chrono::{DateTime, FixedOffset, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::model::{
    ChangeEvent, Listing, ListingStatus, Money, Order, OrderLine, OrderStatus, RatingSummary,
    Record,
};

/// An order as the jobs see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    pub order_id: String,
    /// The cross-channel customer key.
    pub customer: String,
    /// The channel (adapter name, e.g. `shopify`).
    pub channel: String,
    /// Destination country (shipping, else billing address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Demographic segment the channel gave (age band, gender), e.g. `age:25-34`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    pub placed_at: DateTime<FixedOffset>,
    pub currency: String,
    pub lines: Vec<Line>,
}

/// One line: the item (SKU, else the channel's product id), units and the net amount.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    pub item: String,
    pub title: String,
    pub qty: u32,
    /// Line amount after line discounts, in the order currency.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
}

/// A listing as the jobs see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemInfo {
    pub listing_id: String,
    pub item: String,
    pub channel: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<RatingSummary>,
    pub active: bool,
    pub updated_at: DateTime<Utc>,
}

impl ItemInfo {
    /// The text the content-based strategy reads.
    pub fn document(&self) -> String {
        [
            Some(self.title.as_str()),
            self.description.as_deref(),
            self.category.as_deref(),
            self.brand.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ")
    }
}

/// What one event means for the jobs' data.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// The order's interaction is (now) this one.
    Order(Interaction),
    /// The order no longer counts (cancelled, or no longer attributable to a customer).
    RemoveOrder(String),
    Item(ItemInfo),
    /// Not relevant (a fact, an unchanged or stale record).
    None,
}

/// The item an order line is: its SKU, else the channel's product id.
pub fn item_of_line(l: &OrderLine) -> Option<String> {
    l.sku
        .as_deref()
        .or(l.product_id.as_deref())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The demographic segment of an order's customer, when the channel gave one.
pub fn segment_of(o: &Order) -> Option<String> {
    let c = o.customer.as_ref()?;
    let parts: Vec<String> = [("age", &c.age_band), ("gender", &c.gender)]
        .into_iter()
        .filter_map(|(k, v)| {
            v.as_deref()
                .map(|v| format!("{k}:{}", v.trim().to_lowercase()))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("|"))
}

/// The interaction of an order, or `None` when it does not count: no customer key (the
/// gateway cannot tell buyers apart), cancelled, or no line with an item id.
pub fn interaction(o: &Order) -> Option<Interaction> {
    let customer = o.customer.as_ref()?.key.clone()?;
    if o.status == OrderStatus::Cancelled {
        return None;
    }
    let lines: Vec<Line> = o
        .lines
        .iter()
        .filter(|l| l.quantity > 0)
        .filter_map(|l| {
            let item = item_of_line(l)?;
            let gross = l
                .line_total
                .as_ref()
                .map(|t| t.amount())
                .unwrap_or_else(|| l.unit_price.amount() * Decimal::from(l.quantity));
            Some(Line {
                item,
                title: l.title.clone(),
                qty: l.quantity,
                amount: gross - l.discount.amount(),
            })
        })
        .collect();
    if lines.is_empty() {
        return None;
    }
    Some(Interaction {
        order_id: o.id.as_str().to_string(),
        customer,
        channel: o.channel.clone(),
        country: o
            .shipping_address
            .as_ref()
            .or(o.billing_address.as_ref())
            .map(|a| a.country.as_str().to_string()),
        segment: segment_of(o),
        placed_at: o.placed_at,
        currency: o.currency.code().to_string(),
        lines,
    })
}

/// The item of a listing: its SKU, else the listing's own id on the channel.
pub fn item_info(l: &Listing) -> ItemInfo {
    ItemInfo {
        listing_id: l.id.as_str().to_string(),
        item: l
            .sku
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(&l.external_id)
            .to_string(),
        channel: l.channel.clone(),
        title: l.title.clone(),
        description: l.description.clone(),
        category: l.category.clone(),
        brand: l.brand.clone(),
        price: l.price,
        rating: l.rating.clone(),
        active: l.status == ListingStatus::Active,
        updated_at: l.revision.updated_at.to_utc(),
    }
}

/// What an event means for the jobs (pure).
pub fn update_of(e: &ChangeEvent) -> Update {
    if !e.change.wrote() {
        return Update::None;
    }
    match &e.record {
        // An order whose numbers contradict each other is not counted until corrected.
        Record::Order(o) if o.has_hold(crate::model::TOTALS_MISMATCH) => {
            Update::RemoveOrder(o.id.as_str().to_string())
        }
        Record::Order(o) => match interaction(o) {
            Some(i) => Update::Order(i),
            None => Update::RemoveOrder(o.id.as_str().to_string()),
        },
        Record::Listing(l) => Update::Item(item_info(l)),
        Record::Fact(_) | Record::Stock(_) => Update::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(json: &str) -> Order {
        crate::tax::order_from_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn order_lines_become_items_with_net_amounts() {
        let mut o = order(include_str!(
            "../../tests/fixtures/quote/order-de-tshirts.json"
        ));
        o.customer = Some(crate::model::Customer {
            key: Some("c.abc".into()),
            age_band: Some("25-34".into()),
            ..Default::default()
        });
        let i = interaction(&o).expect("counts");
        assert_eq!(i.customer, "c.abc");
        assert_eq!(i.country.as_deref(), Some("DE"));
        assert_eq!(i.segment.as_deref(), Some("age:25-34"));
        assert_eq!(i.lines.len(), o.lines.len());
        for (l, ol) in i.lines.iter().zip(&o.lines) {
            assert_eq!(
                l.amount,
                ol.unit_price.amount() * Decimal::from(ol.quantity) - ol.discount.amount()
            );
        }
    }

    #[test]
    fn no_customer_key_or_cancelled_does_not_count() {
        let mut o = order(include_str!(
            "../../tests/fixtures/quote/order-de-tshirts.json"
        ));
        o.customer = None;
        assert_eq!(interaction(&o), None);
        o.customer = Some(crate::model::Customer {
            key: Some("c.abc".into()),
            ..Default::default()
        });
        assert!(interaction(&o).is_some());
        o.status = OrderStatus::Cancelled;
        assert_eq!(interaction(&o), None);
    }
}
