//! A stock level: units available of one stock item at one location, as a channel reports it
//! apart from the listing (Shopify's `inventory_levels/update` names an inventory item and a
//! location, not a product or variant). A listing whose `stock_ref` names the item shows its
//! levels.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Revision, StockId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StockLevel {
    /// Gateway id, derived from instance, stock item and location.
    pub id: StockId,
    pub instance: String,
    /// Adapter name, e.g. `shopify`.
    pub channel: String,
    pub account: String,
    /// The channel's id of the stock item (Shopify: `inventory_item_id`).
    pub stock_ref: String,
    /// The channel's id of the location (warehouse, shop); empty when the channel has one.
    pub location: String,
    /// Units available; absent when the channel does not track stock for the item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<i64>,
    pub revision: Revision,
}

impl StockLevel {
    /// The id of a stock item's level at a location.
    pub fn id_for(instance: &str, stock_ref: &str, location: &str) -> StockId {
        StockId::derive(instance, &format!("{stock_ref}@{location}"))
    }

    pub fn validate(&self) -> Vec<super::Violation> {
        let mut v = Vec::new();
        if self.stock_ref.trim().is_empty() {
            v.push(super::Violation {
                path: "stock_ref".into(),
                message: "must not be empty".into(),
            });
        }
        v
    }
}

/// A listing's stock at one location, from the stock level records naming its `stock_ref`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationStock {
    pub location: String,
    /// Absent when the channel does not track stock for the item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<i64>,
    pub updated_at: chrono::DateTime<chrono::FixedOffset>,
}

impl LocationStock {
    /// A listing's stock per location from its stock item's levels, by location.
    pub fn of(levels: impl IntoIterator<Item = StockLevel>) -> Vec<LocationStock> {
        let mut out: Vec<LocationStock> = levels
            .into_iter()
            .map(|l| LocationStock {
                location: l.location,
                available: l.available,
                updated_at: l.revision.updated_at,
            })
            .collect();
        out.sort_by(|a, b| a.location.cmp(&b.location));
        out
    }
}
