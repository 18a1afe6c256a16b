//! The canonical listing: a product offer (one sellable SKU) on one channel.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ChannelKind, ListingId, Money, Revision};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListingStatus {
    Active,
    Inactive,
    Draft,
    Deleted,
}

impl ListingStatus {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => ListingStatus::Active,
            "inactive" => ListingStatus::Inactive,
            "draft" => ListingStatus::Draft,
            "deleted" => ListingStatus::Deleted,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Listing {
    /// Gateway id, derived from instance and external id.
    pub id: ListingId,
    pub instance: String,
    /// Adapter name, e.g. `shopify`.
    pub channel: String,
    pub channel_kind: ChannelKind,
    pub account: String,
    /// The channel's id of the offer (variant id where the channel has variants).
    pub external_id: String,
    /// The channel's product id grouping variants, when different from `external_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    pub revision: Revision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Money>,
    /// Units available, when the channel reports stock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock: Option<i64>,
    /// The channel's id of the listing's stock item, where stock is reported apart from the
    /// listing (Shopify: the variant's `inventory_item_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock_ref: Option<String>,
    /// Stock per location from the channel's stock level reports about `stock_ref`, newest
    /// first by location. Filled in by the gateway when a listing is read; not stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stock_levels: Vec<super::LocationStock>,
    pub status: ListingStatus,
    /// Harmonized System code of the goods (6 to 10 digits), when the channel gives one; the
    /// tax job uses it for order lines that carry none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hs_code: Option<String>,
    /// The goods' tax class when the channel names one (a class the tax rule pack declares);
    /// it applies to order lines of this listing's SKU that name no class themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_class: Option<String>,
    /// Customer ratings, where the channel reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<RatingSummary>,
}

/// A listing's ratings as the channel reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RatingSummary {
    /// Number of ratings.
    pub count: u64,
    /// Mean rating (decimal string, e.g. "4.6").
    #[serde(with = "rust_decimal::serde::str")]
    #[schemars(with = "String")]
    pub average: rust_decimal::Decimal,
    /// Highest possible rating (default 5).
    #[serde(default = "default_scale")]
    pub scale: u8,
    /// Ratings counted as positive (e.g. 4 and 5 stars), for the Wilson lower bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positive: Option<u64>,
}

fn default_scale() -> u8 {
    5
}

impl Listing {
    pub fn validate(&self) -> Vec<super::Violation> {
        let mut v = Vec::new();
        if self.external_id.trim().is_empty() {
            v.push(super::Violation {
                path: "external_id".into(),
                message: "must not be empty".into(),
            });
        }
        if let Some(p) = &self.price
            && p.is_negative()
        {
            v.push(super::Violation {
                path: "price".into(),
                message: "must not be negative".into(),
            });
        }
        if let Some(hs) = &self.hs_code
            && !super::is_hs_code(hs)
        {
            v.push(super::Violation {
                path: "hs_code".into(),
                message: "must be 6 to 10 digits".into(),
            });
        }
        v
    }
}
