//! Records (orders and listings) and the change events the store appends for them.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{LifecycleFact, Listing, ListingId, Order, OrderId, Revision, StockLevel, Transition};

/// The earliest instant a record's dates may name (1990-01-01T00:00:00Z).
pub const EARLIEST_PLAUSIBLE: DateTime<Utc> = DateTime::from_timestamp(631_152_000, 0).unwrap();

/// How far after its receipt a record's date may lie (clock skew, a channel's time zone).
pub const FUTURE_TOLERANCE: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// A canonical record produced by an adapter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", content = "record", rename_all = "snake_case")]
pub enum Record {
    Order(Box<Order>),
    Listing(Box<Listing>),
    /// A payment, shipment or cancellation reported about an order (see `model::lifecycle`).
    Fact(Box<LifecycleFact>),
    /// Units available of a stock item at a location (see `model::stock`).
    Stock(Box<StockLevel>),
}

impl Record {
    pub fn kind(&self) -> RecordKind {
        match self {
            Record::Order(_) => RecordKind::Order,
            Record::Listing(_) => RecordKind::Listing,
            Record::Fact(_) => RecordKind::Fact,
            Record::Stock(_) => RecordKind::Stock,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Record::Order(o) => o.id.as_str(),
            Record::Listing(l) => l.id.as_str(),
            Record::Fact(f) => &f.id,
            Record::Stock(s) => s.id.as_str(),
        }
    }

    /// The instance whose delivery produced the record.
    pub fn instance(&self) -> &str {
        match self {
            Record::Order(o) => &o.instance,
            Record::Listing(l) => &l.instance,
            Record::Fact(f) => &f.source_instance,
            Record::Stock(s) => &s.instance,
        }
    }

    /// Orders and listings have revisions; facts never change.
    pub fn revision(&self) -> Option<&Revision> {
        match self {
            Record::Order(o) => Some(&o.revision),
            Record::Listing(l) => Some(&l.revision),
            Record::Stock(s) => Some(&s.revision),
            Record::Fact(_) => None,
        }
    }

    pub fn validate(&self) -> Vec<super::Violation> {
        match self {
            Record::Order(o) => o.validate(),
            Record::Listing(l) => l.validate(),
            Record::Fact(f) => f.validate(),
            Record::Stock(s) => s.validate(),
        }
    }

    /// [`Record::validate`], plus every date that cannot be true of a record received at
    /// `received_at`: before [`EARLIEST_PLAUSIBLE`] (a year-0000 order can never get an exchange
    /// rate) or more than [`FUTURE_TOLERANCE`] after it.
    pub fn validate_at(&self, received_at: DateTime<Utc>) -> Vec<super::Violation> {
        let mut violations = self.validate();
        for (path, at) in self.dates() {
            let at = at.with_timezone(&Utc);
            let problem = if at < EARLIEST_PLAUSIBLE {
                "is before 1990-01-01; no channel record is that old"
            } else if at > received_at + FUTURE_TOLERANCE {
                "is more than a day after the record was received"
            } else {
                continue;
            };
            violations.push(super::Violation {
                path,
                message: problem.into(),
            });
        }
        violations
    }

    /// The record's dates, by field path.
    fn dates(&self) -> Vec<(String, DateTime<chrono::FixedOffset>)> {
        let mut out = Vec::new();
        match self {
            Record::Order(o) => {
                out.push(("placed_at".to_string(), o.placed_at));
                out.push(("revision.updated_at".to_string(), o.revision.updated_at));
                for (i, p) in o.payments.iter().enumerate() {
                    if let Some(at) = p.processed_at {
                        out.push((format!("payments[{i}].processed_at"), at));
                    }
                }
                for (i, s) in o.shipments.iter().enumerate() {
                    if let Some(at) = s.shipped_at {
                        out.push((format!("shipments[{i}].shipped_at"), at));
                    }
                }
            }
            Record::Listing(l) => {
                out.push(("revision.updated_at".to_string(), l.revision.updated_at))
            }
            Record::Fact(f) => out.push(("at".to_string(), f.at)),
            Record::Stock(s) => {
                out.push(("revision.updated_at".to_string(), s.revision.updated_at))
            }
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Order,
    Listing,
    Fact,
    Stock,
}

impl RecordKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            RecordKind::Order => "order",
            RecordKind::Listing => "listing",
            RecordKind::Fact => "fact",
            RecordKind::Stock => "stock",
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
    /// A fact about another instance's order: stored, and applied to the order by the lifecycle
    /// worker (Redis keeps each instance in its own cluster slot).
    Queued,
}

impl Change {
    pub fn as_str(&self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Unchanged => "unchanged",
            Change::Stale => "stale",
            Change::Queued => "queued",
        }
    }

    /// Whether the change wrote the record (and appended an event).
    pub fn wrote(&self) -> bool {
        matches!(self, Change::Created | Change::Updated)
    }
}

/// One entry of the store's append-only event stream: a record was created or changed, or a
/// fact was recorded.
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
    /// The order's effective status changed (a new order, a newer snapshot or a fact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transition: Option<Transition>,
}

/// A typed reference to a stored record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecordId {
    Order(OrderId),
    Listing(ListingId),
}
