//! The values the store contract takes and gives: deliveries, dispositions, dead letters,
//! queries and pages, stream entries.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::adapter::FieldError;
use crate::model::{Change, ChangeEvent, Record, RecordKind};

/// An authentic delivery as received (bytes exactly as sent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawDelivery {
    /// Gateway-assigned id (time-ordered).
    pub delivery_id: String,
    pub instance: String,
    /// The sender's idempotency id (or a body hash).
    pub dedupe_id: String,
    pub received_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Headers an adapter needs to re-normalize the delivery (topic, ids). Never signatures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// How it reached the gateway (reconciliation compares pushed and polled orders).
    #[serde(default)]
    pub source: DeliverySource,
    /// The trace id of the request (or poll page) that brought it: what its answer's
    /// `X-Trace-Id` header said, and what its log lines carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(skip)]
    pub body: Vec<u8>,
}

/// How a delivery reached the gateway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliverySource {
    /// Pushed by the channel (a signed webhook).
    #[default]
    Webhook,
    /// A page the poller fetched from the channel's API.
    Poll,
    /// Submitted through the API or a file import.
    Submitted,
    /// Written by one of the gateway's own jobs (a reconciled-payments fact).
    Derived,
}

impl DeliverySource {
    pub fn as_str(&self) -> &'static str {
        match self {
            DeliverySource::Webhook => "webhook",
            DeliverySource::Poll => "poll",
            DeliverySource::Submitted => "submitted",
            DeliverySource::Derived => "derived",
        }
    }
}

/// A poller's position, written in the same atomic write as the page it follows (so a crash
/// never skips a page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorWrite {
    /// e.g. `poll` or `backfill`.
    pub name: String,
    /// Opaque JSON of the poller's state.
    pub value: String,
    /// The lease the poller writes under: the write is refused when the lease has moved on.
    pub fence: Option<super::Fence>,
}

/// What a reconciliation found for one instance: orders only one path has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Reconciliation {
    /// Seen by polling, never pushed.
    pub polled_not_pushed: Vec<String>,
    /// Pushed, never seen by polling.
    pub pushed_not_polled: Vec<String>,
}

/// What the gateway decided for a delivery before storing it.
#[derive(Debug, Clone)]
pub enum Disposition {
    /// Normalized into these records.
    Apply(Vec<Record>),
    /// Authentic but not normalizable: park it (dead letter id = delivery id).
    DeadLetter(DeadLetterReason),
    /// A delivery of several items (a list page, a CSV file): the records of the items that
    /// mapped, and a dead letter per item that did not (id = `<delivery id>-<item index>`).
    Partial {
        records: Vec<Record>,
        failures: Vec<(usize, DeadLetterReason)>,
    },
    /// Authentic, but of a topic the adapter does not map.
    Ignore,
}

impl Disposition {
    /// The records to write and the dead letters to create for a delivery.
    pub(crate) fn parts(&self, delivery: &RawDelivery) -> (&[Record], Vec<DeadLetter>) {
        let dl = |id: String, item: Option<usize>, reason: &DeadLetterReason| DeadLetter {
            id,
            delivery_id: delivery.delivery_id.clone(),
            item,
            instance: delivery.instance.clone(),
            received_at: delivery.received_at,
            dead_lettered_at: delivery.received_at,
            reason: reason.clone(),
            failed_replays: 0,
            trace_id: delivery.trace_id.clone(),
        };
        match self {
            Disposition::Apply(records) => (records, Vec::new()),
            Disposition::Ignore => (&[], Vec::new()),
            Disposition::DeadLetter(reason) => {
                (&[], vec![dl(delivery.delivery_id.clone(), None, reason)])
            }
            Disposition::Partial { records, failures } => (
                records,
                failures
                    .iter()
                    .map(|(i, reason)| {
                        dl(
                            item_dead_letter_id(&delivery.delivery_id, *i),
                            Some(*i),
                            reason,
                        )
                    })
                    .collect(),
            ),
        }
    }
}

/// The dead letter id of one item of a multi-item delivery.
pub fn item_dead_letter_id(delivery_id: &str, index: usize) -> String {
    format!("{delivery_id}-{index}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DeadLetterReason {
    /// `parse`, `fields`, `no_mapping`.
    pub kind: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldErrorRecord>,
}

/// A stored copy of an adapter field error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FieldErrorRecord {
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub problem: String,
}

impl From<&FieldError> for FieldErrorRecord {
    fn from(e: &FieldError) -> Self {
        Self {
            field: e.field.clone(),
            source: e.source.clone(),
            problem: e.problem.clone(),
        }
    }
}

/// What the store did with one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RecordResult {
    pub kind: RecordKind,
    pub id: String,
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// The dedupe id was seen before; nothing was written.
    Duplicate { original_delivery_id: String },
    /// Stored: the records' results, the dead letters created, or "ignored".
    Stored {
        delivery_id: String,
        records: Vec<RecordResult>,
        dead_letters: Vec<String>,
        ignored: bool,
    },
}

/// A parked delivery (or one item of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DeadLetter {
    /// The delivery id, or `<delivery id>-<item>` for one item of a multi-item delivery.
    pub id: String,
    /// The raw delivery it comes from.
    pub delivery_id: String,
    /// Which item of the delivery, when it holds several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
    pub instance: String,
    pub received_at: DateTime<Utc>,
    pub dead_lettered_at: DateTime<Utc>,
    pub reason: DeadLetterReason,
    /// Replays that failed so far.
    #[serde(default)]
    pub failed_replays: u32,
    /// The trace id of the delivery it comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// Where a page of a listing starts: the (time, id) of the last item of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub millis: i64,
    pub id: String,
}

impl Cursor {
    /// The end of a page read with one item to spare: keeps the first `limit` items and, when
    /// the spare one was there, answers the cursor of the last kept (the next page starts
    /// after it).
    pub fn page_end<T>(
        items: &mut Vec<T>,
        limit: usize,
        key: impl Fn(&T) -> (i64, &str),
    ) -> Option<Cursor> {
        let more = items.len() > limit;
        items.truncate(limit);
        more.then(|| {
            let (millis, id) = key(items.last().expect("more implies items"));
            Cursor {
                millis,
                id: id.to_string(),
            }
        })
    }

    pub fn encode(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{}|{}", self.millis, self.id))
    }

    pub fn decode(s: &str) -> Option<Self> {
        use base64::Engine;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (m, id) = text.split_once('|')?;
        Some(Self {
            millis: m.parse().ok()?,
            id: id.to_string(),
        })
    }
}

#[derive(Debug, Clone)]
pub struct OrderQuery {
    pub instance: Option<String>,
    /// Orders whose channel `updated_at` is at or after this instant.
    pub since: Option<DateTime<Utc>>,
    pub after: Option<Cursor>,
    pub limit: usize,
}

/// Listings by (channel `updated_at`, id), ascending.
#[derive(Debug, Clone)]
pub struct ListingQuery {
    pub instance: Option<String>,
    /// Only the listings of this SKU (exactly).
    pub sku: Option<String>,
    /// Listings whose channel `updated_at` is at or after this instant.
    pub since: Option<DateTime<Utc>>,
    pub after: Option<Cursor>,
    pub limit: usize,
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
}

impl<T> Page<T> {
    /// One page of candidates given as (updated ms, id, item), in any order: sorted, those
    /// at or before the cursor dropped, `limit` kept, and the cursor of the last when more
    /// follow. (For small candidate sets, such as the listings of one SKU.)
    pub fn of_candidates(
        mut candidates: Vec<(i64, String, T)>,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Self {
        candidates.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut kept: Vec<(i64, String, T)> = candidates
            .into_iter()
            .filter(|(ms, id, _)| {
                after.is_none_or(|c| (*ms, id.as_str()) > (c.millis, c.id.as_str()))
            })
            .take(limit + 1)
            .collect();
        let next = Cursor::page_end(&mut kept, limit, |(ms, id, _)| (*ms, id));
        Page {
            items: kept.into_iter().map(|(_, _, t)| t).collect(),
            next,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DeadLetterQuery {
    pub instance: Option<String>,
    pub after: Option<Cursor>,
    pub limit: usize,
}

/// An event read from the stream, with the id to acknowledge it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    pub id: String,
    pub event: ChangeEvent,
}

/// How far a consumer group is behind the event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerLag {
    pub group: String,
    /// Events it has not acknowledged (delivered or not).
    pub behind: u64,
    /// When the oldest of them was appended; `None` when it is caught up.
    pub oldest: Option<DateTime<Utc>>,
}

/// What a housekeeping pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Housekeeping {
    pub dedupe_keys_expired: u64,
    pub raw_bodies_expired: u64,
    /// Outbox `Idempotency-Key`s past their time (Redis expires them itself).
    pub idempotency_keys_expired: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip() {
        let c = Cursor {
            millis: -5,
            id: "o.x.0123|weird".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("!!"), None);
    }
}
