//! Records (orders and listings) and the change events the store appends for them.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Listing, ListingId, Order, OrderId, Revision};

/// A canonical record produced by an adapter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", content = "record", rename_all = "snake_case")]
pub enum Record {
    Order(Box<Order>),
    Listing(Box<Listing>),
}

impl Record {
    pub fn kind(&self) -> RecordKind {
        match self {
            Record::Order(_) => RecordKind::Order,
            Record::Listing(_) => RecordKind::Listing,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Record::Order(o) => o.id.as_str(),
            Record::Listing(l) => l.id.as_str(),
        }
    }

    pub fn instance(&self) -> &str {
        match self {
            Record::Order(o) => &o.instance,
            Record::Listing(l) => &l.instance,
        }
    }

    pub fn revision(&self) -> &Revision {
        match self {
            Record::Order(o) => &o.revision,
            Record::Listing(l) => &l.revision,
        }
    }

    pub fn validate(&self) -> Vec<super::Violation> {
        match self {
            Record::Order(o) => o.validate(),
            Record::Listing(l) => l.validate(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Order,
    Listing,
}

impl RecordKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            RecordKind::Order => "order",
            RecordKind::Listing => "listing",
        }
    }
}

/// What an upsert did to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// First time the gateway sees this record.
    Created,
    /// A newer revision replaced the stored one.
    Updated,
    /// The same revision was already stored; nothing changed.
    Unchanged,
    /// An older revision arrived after a newer one; it was not applied.
    Stale,
}

impl Change {
    pub fn as_str(&self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Unchanged => "unchanged",
            Change::Stale => "stale",
        }
    }

    /// Whether the change wrote the record (and appended an event).
    pub fn wrote(&self) -> bool {
        matches!(self, Change::Created | Change::Updated)
    }
}

/// One entry of the store's append-only event stream: a record was created or changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeEvent {
    pub kind: RecordKind,
    pub change: Change,
    pub record_id: String,
    pub instance: String,
    /// The delivery that carried the change.
    pub delivery_id: String,
    pub at: DateTime<Utc>,
    /// The record as stored after the change.
    pub record: Record,
}

/// A typed reference to a stored record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecordId {
    Order(OrderId),
    Listing(ListingId),
}
