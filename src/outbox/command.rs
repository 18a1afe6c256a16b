//! Outbound commands: what the gateway must tell a channel, as the API accepted it, with its
//! attempts and its state. Pure values; the queue rules are in `queue`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::{CommandField as Field, Money};

/// Where a command is in its life.
///
/// `queued` → `sent` (a request is with the channel) → `confirmed`; a failed attempt that
/// retrying can fix makes it `failed` until its next attempt; `dead` after the last attempt or
/// an answer retrying cannot fix; `coalesced` when a later command for the same listing took
/// its place before it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommandState {
    Queued,
    Sent,
    Confirmed,
    Failed,
    Dead,
    Coalesced,
}

impl CommandState {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "sent" => Self::Sent,
            "confirmed" => Self::Confirmed,
            "failed" => Self::Failed,
            "dead" => Self::Dead,
            "coalesced" => Self::Coalesced,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Confirmed => "confirmed",
            Self::Failed => "failed",
            Self::Dead => "dead",
            Self::Coalesced => "coalesced",
        }
    }

    /// A command in this state will never be sent again (unless retried by hand).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Confirmed | Self::Dead | Self::Coalesced)
    }
}

/// What a command is about: one listing, or one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    Listing {
        listing_id: String,
        /// The channel's id of the offer (variant id where the channel has variants).
        external_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        product_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sku: Option<String>,
        /// The channel's id of the listing's stock item (Shopify's `inventory_item_id`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stock_ref: Option<String>,
    },
    Order {
        order_id: String,
        /// The channel's order id.
        external_id: String,
    },
}

impl Target {
    /// The key commands are ordered by: one queue per listing or order.
    pub fn key(&self) -> String {
        match self {
            Target::Listing { listing_id, .. } => format!("listing:{listing_id}"),
            Target::Order { order_id, .. } => format!("order:{order_id}"),
        }
    }
}

/// A listing's status as a command sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SetStatus {
    Active,
    Inactive,
}

impl SetStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SetStatus::Active => "active",
            SetStatus::Inactive => "inactive",
        }
    }
}

/// What a listing update sets; every field is an absolute value, so a later one replaces an
/// earlier one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListingChange {
    /// Units available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<SetStatus>,
}

impl ListingChange {
    /// The fields this change sets.
    pub fn fields(&self) -> Vec<Field> {
        let mut f = Vec::new();
        if self.stock.is_some() {
            f.push(Field::Stock);
        }
        if self.price.is_some() {
            f.push(Field::Price);
        }
        if self.status.is_some() {
            f.push(Field::Status);
        }
        f
    }

    /// This change with `later` applied over it: `later`'s fields win.
    pub fn then(&self, later: &ListingChange) -> ListingChange {
        ListingChange {
            stock: later.stock.or(self.stock),
            price: later.price.or(self.price),
            status: later.status.or(self.status),
        }
    }

    /// This change without the fields in `done` (already confirmed by the channel: sending
    /// them again could undo what happened on the channel since, a sale lowering stock).
    pub fn without(&self, done: &[Field]) -> ListingChange {
        ListingChange {
            stock: self.stock.filter(|_| !done.contains(&Field::Stock)),
            price: self.price.filter(|_| !done.contains(&Field::Price)),
            status: self.status.filter(|_| !done.contains(&Field::Status)),
        }
    }
}

/// A shipment to confirm to the channel an order came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipmentConfirmation {
    /// The carrier's name as the channel knows it (`DHL`, `UPS`, `Royal Mail`).
    pub carrier: String,
    pub tracking_number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_url: Option<String>,
    /// The lines shipped; empty means every line of the order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<ShipmentLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipmentLine {
    /// The order line's id, as in the canonical order (`lines[].line_id`).
    pub line_id: String,
    pub quantity: u32,
}

/// What a command asks the channel to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    Listing(ListingChange),
    Shipment(ShipmentConfirmation),
}

impl Action {
    pub fn fields(&self) -> Vec<Field> {
        match self {
            Action::Listing(c) => c.fields(),
            Action::Shipment(_) => vec![Field::Shipment],
        }
    }
}

/// One request to the channel and what came of it. Never the channel's whole answer: its
/// status, the channel's id of what it made, and its error text (bounded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    /// The adapter's operation (`stock`, `price`, `shipment`…).
    pub operation: String,
    pub outcome: AttemptOutcome,
    /// The HTTP status, when the channel answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The channel's error text, or the transport problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The channel accepted the operation.
    Confirmed,
    /// 429: the channel asked to wait.
    Throttled,
    /// 5xx, a timeout or a broken connection: worth another attempt.
    Retryable,
    /// An answer retrying cannot fix (4xx, or a 2xx whose body says it failed).
    Refused,
    /// The gateway could not build the request (a missing channel id or setting).
    Unbuildable,
}

/// A command as stored: what was asked, and everything that happened to it since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Command {
    /// `ob.<instance>.<uuid v7>`.
    pub id: String,
    pub instance: String,
    pub target: Target,
    pub action: Action,
    pub state: CommandState,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When it is due for its next attempt (`queued`, `failed`), or when a `sent` command's
    /// claim runs out and another worker may take it (after a crash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<DateTime<Utc>>,
    /// The fields the channel has confirmed so far.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub confirmed: Vec<Field>,
    /// The adapter operations the channel has confirmed so far (a field is confirmed once
    /// every operation that sends it is).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations_done: Vec<String>,
    /// The channel's ids of what it made, by operation (a fulfillment id).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub channel_refs: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// Why it is dead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The later command that took its place (`coalesced`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coalesced_into: Option<String>,
    /// The earlier unsent commands this one replaced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaces: Vec<String>,
}

impl Command {
    /// A new command for `instance`, queued now.
    pub fn new(instance: &str, target: Target, action: Action, now: DateTime<Utc>) -> Self {
        Self {
            id: format!("ob.{instance}.{}", uuid::Uuid::now_v7().simple()),
            instance: instance.to_string(),
            target,
            action,
            state: CommandState::Queued,
            created_at: now,
            updated_at: now,
            due_at: Some(now),
            confirmed: Vec::new(),
            operations_done: Vec::new(),
            channel_refs: BTreeMap::new(),
            attempts: Vec::new(),
            reason: None,
            coalesced_into: None,
            replaces: Vec::new(),
        }
    }

    /// The instance an id belongs to (`ob.<instance>.<uuid>`); instance ids have no dots.
    pub fn instance_of(id: &str) -> Option<&str> {
        let rest = id.strip_prefix("ob.")?;
        let (instance, uuid) = rest.rsplit_once('.')?;
        (!instance.is_empty() && !uuid.is_empty()).then_some(instance)
    }

    /// The fields still to send.
    pub fn pending_fields(&self) -> Vec<Field> {
        self.action
            .fields()
            .into_iter()
            .filter(|f| !self.confirmed.contains(f))
            .collect()
    }

    /// The number of attempts that asked the channel and failed in a way worth retrying.
    pub fn failed_attempts(&self) -> usize {
        self.attempts
            .iter()
            .filter(|a| {
                matches!(
                    a.outcome,
                    AttemptOutcome::Throttled | AttemptOutcome::Retryable
                )
            })
            .count()
    }
}

/// What a repeated call with the same `Idempotency-Key` is answered with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// SHA-256 of the request (method, path, body): the same key with another request is
    /// refused.
    pub fingerprint: String,
    pub command_ids: Vec<String>,
    pub expires_at: DateTime<Utc>,
}
