//! The bodies of the API's successful answers, as types: the handlers return them, the CLI
//! reads the daemon's answers into them, and a schema can be derived from them. Errors are
//! [`super::problem::Problem`] (RFC 9457).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::adapter::{FieldError, NormalizeError};
use crate::channel::poll::{PageReport, PollState};
use crate::fx::log::{FxEntry, PairReport};
use crate::store::{DeadLetter, Reconciliation, RecordResult};

/// What happened to a delivery (a webhook, a submission, an import chunk).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeliveryAnswer {
    pub status: DeliveryStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    /// `pending`: a thin webhook, stored; its record is being fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<Vec<RecordResult>>,
    /// One per item that did not map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letters: Option<Vec<DeadLetterAnswer>>,
    /// A webhook delivery that did not map as a whole: its dead letter, inline.
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<DeadLetterAnswer>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Stored,
    Duplicate,
    Ignored,
    DeadLettered,
    PartiallyDeadLettered,
    /// An unsigned activation ping (WooCommerce): nothing stored.
    Ping,
}

/// Why a delivery, or one of its items, was dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeadLetterAnswer {
    pub dead_letter_id: String,
    /// The item's index in the delivery (absent for the whole delivery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
    /// The error kind (`fields`, `parse`, ...).
    pub reason: String,
    pub detail: String,
    pub errors: Vec<FieldError>,
}

impl DeadLetterAnswer {
    pub fn new(dead_letter_id: &str, item: Option<usize>, e: &NormalizeError) -> Self {
        Self {
            dead_letter_id: dead_letter_id.to_string(),
            item,
            reason: e.kind().to_string(),
            detail: e.to_string(),
            errors: e.fields().to_vec(),
        }
    }
}

impl DeliveryAnswer {
    pub fn status(status: DeliveryStatus, delivery_id: Option<String>) -> Self {
        Self {
            status,
            delivery_id,
            fetch: None,
            records: None,
            dead_letters: None,
            dead_letter: None,
        }
    }
}

/// A page of a listing, items in order; `next_cursor` is absent on the last page.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> From<crate::store::Page<T>> for Page<T> {
    fn from(p: crate::store::Page<T>) -> Self {
        Self {
            items: p.items,
            next_cursor: p.next.map(|c| c.encode()),
        }
    }
}

/// `GET /v1/dead-letters/{id}`: the dead letter and the delivery it came from.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DeadLetterDetail {
    pub dead_letter: DeadLetter,
    pub delivery: Option<DeliveryView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DeliveryView {
    pub topic: Option<String>,
    pub headers: Vec<(String, String)>,
    pub dedupe_id: String,
    pub body: BodyView,
}

/// A raw body: text when it is UTF-8, else base64.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BodyView {
    /// `utf-8` or `base64`.
    pub encoding: String,
    pub data: String,
}

impl BodyView {
    pub fn of(bytes: &[u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(text) => Self {
                encoding: "utf-8".into(),
                data: text.to_string(),
            },
            Err(_) => {
                use base64::Engine;
                Self {
                    encoding: "base64".into(),
                    data: base64::engine::general_purpose::STANDARD.encode(bytes),
                }
            }
        }
    }
}

/// `POST /v1/dead-letters/{id}/replay`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ReplayAnswer {
    /// `resolved`, or `fetch_queued` for a thin webhook (202).
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<Vec<RecordResult>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `POST /v1/dead-letters/{id}/discard`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DiscardAnswer {
    pub dead_letter_id: String,
    /// `discarded`.
    pub status: String,
}

/// `GET /v1/instances/{instance}/reconciliation`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ReconciliationAnswer {
    pub instance: String,
    pub result: Reconciliation,
}

/// One FX log entry with the entry that superseded it, if any.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FxLogItem {
    #[serde(flatten)]
    pub entry: FxEntry,
    pub superseded_by: Option<String>,
    /// A conversion from a currency to itself (kept so every order has a row per reporting
    /// currency).
    pub identity: bool,
}

impl From<(FxEntry, Option<String>)> for FxLogItem {
    fn from((entry, superseded_by): (FxEntry, Option<String>)) -> Self {
        Self {
            identity: crate::fx::export::is_identity(&entry),
            entry,
            superseded_by,
        }
    }
}

/// `GET /v1/fx/log` (JSON): a page; `next_cursor` is null on the last one.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FxLogPage {
    pub items: Vec<FxLogItem>,
    pub next_cursor: Option<u64>,
}

/// `GET /v1/fx/checkpoints`: the signed checkpoints, and the key this daemon signs with (the
/// auditor checks against the public key they were given, not this one).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FxCheckpoints {
    pub key_id: Option<String>,
    /// Base64 of the 32-byte Ed25519 public key.
    pub public_key: Option<String>,
    pub checkpoints: Vec<crate::fx::checkpoint::Checkpoint>,
}

/// `GET /v1/fx/report?date=` or `?from=&to=` (and `revalue_at=`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FxReportAnswer {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub pairs: Vec<PairReport>,
}

/// `GET /v1/fx/review`: a period's grand totals from the FX review index.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FxReviewAnswer {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// The last FX log entry the index covers, and the log's last entry: when they differ the
    /// answer leaves out the newest conversions.
    pub indexed_upto: u64,
    pub log_head: u64,
    /// Per currency pair, the current grand totals (as `/v1/fx/report` counts them, without
    /// the revaluation).
    pub pairs: Vec<PairReport>,
    /// Grand-total entries selected, superseded ones included.
    pub rows_total: u64,
    /// The first `limit` of them, by rate date.
    pub rows: Vec<crate::fx::review::Row>,
    /// Each rate used, per pair and day, and by how many current grand totals.
    pub rates_used: Vec<RateUsed>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RateUsed {
    pub from: String,
    pub to: String,
    pub date: NaiveDate,
    #[serde(with = "rust_decimal::serde::str")]
    #[schemars(with = "rust_decimal::Decimal")]
    pub rate: rust_decimal::Decimal,
    pub count: u64,
}

/// `POST /v1/fx/rates`: the rate document as stored.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RatesStored {
    /// False when the same document was stored before.
    pub stored: bool,
    pub hash: String,
    pub days: usize,
    pub first_day: Option<NaiveDate>,
    pub last_day: Option<NaiveDate>,
}

/// `GET /v1/recommendations/{customer_key}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RecommendationsAnswer {
    pub customer_key: String,
    pub strategy: String,
    /// `country` or `popular` when the customer is not known to the jobs yet.
    pub fallback: Option<String>,
    pub generated_at: Option<Value>,
    pub items: Vec<ScoredItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ScoredItem {
    pub item: String,
    pub score: f32,
}

/// `GET /v1/rankings`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RankingAnswer {
    pub by: String,
    pub country: String,
    pub channel: String,
    pub currency: Option<Value>,
    pub as_of: Option<Value>,
    pub generated_at: Option<Value>,
    pub items: Vec<RankedItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RankedItem {
    pub rank: usize,
    pub item: String,
    pub score: f64,
    /// What the score is made of (units, revenue, rating counts, ...).
    #[serde(flatten)]
    pub detail: BTreeMap<String, Value>,
}

/// `POST|GET /v1/instances/{instance}/backfill`: a backfill run by the daemon, and how far it
/// has got. A run resumes from its cursor, so starting it again after a stop continues.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BackfillStatus {
    pub instance: String,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub running: bool,
    /// Pages, orders and dead-lettered items taken in by this run.
    pub pages: u64,
    pub orders: u64,
    pub failed: u64,
    /// The window being polled.
    pub window_since: Option<DateTime<Utc>>,
    pub window_until: Option<DateTime<Utc>>,
    /// When done: orders updated before this are taken in; and the totals over every run.
    pub watermark: Option<DateTime<Utc>>,
    pub total_pages: u64,
    pub total_orders: u64,
    /// Why the run stopped, when it failed.
    pub error: Option<String>,
}

impl BackfillStatus {
    /// A run just started.
    pub fn started(instance: &str, since: DateTime<Utc>, until: Option<DateTime<Utc>>) -> Self {
        Self {
            instance: instance.to_string(),
            since: Some(since),
            until,
            running: true,
            ..Self::default()
        }
    }

    /// One more page taken in.
    pub fn page(&mut self, p: &PageReport) {
        self.pages += 1;
        self.orders += p.orders as u64;
        self.failed += p.failed as u64;
        self.window_since = p.window_since.or(self.window_since);
        self.window_until = p.window_until.or(self.window_until);
    }

    /// The run is done: the watermark and the totals over every run.
    pub fn finished(&mut self, state: &PollState) {
        self.running = false;
        self.watermark = state.watermark;
        self.total_pages = state.pages;
        self.total_orders = state.orders;
    }
}

/// `GET /healthz`, `GET /readyz`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Status {
    pub status: String,
}

impl Status {
    pub fn new(status: &str) -> Self {
        Self {
            status: status.into(),
        }
    }
}

/// `PATCH /v1/listings/{id}`, `POST /v1/listings/updates`, `POST /v1/orders/{id}/shipments`:
/// the commands stored in the outbox (202).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CommandsAccepted {
    pub commands: Vec<crate::outbox::Command>,
    /// The call repeated an earlier one with the same `Idempotency-Key`: these are the
    /// earlier call's commands (as they are now), and nothing new was stored.
    pub repeated: bool,
}
