//! The central store: one [`Store`] trait, two backends (embedded redb, Redis), one contract test
//! suite (`tests/store_contract.rs`) that runs against both.
//!
//! What a store keeps:
//! - the **raw delivery inbox**: every authentic delivery's bytes, kept until processed, then for
//!   `raw_retention` (dead-lettered ones until they are replayed);
//! - **dedupe keys** per instance and delivery id, for `dedupe_ttl`;
//! - **orders and listings**, upserted by (instance, external id): an older revision never
//!   overwrites a newer one;
//! - one append-only **event stream** of record changes, read by consumer groups;
//! - **dead letters**: authentic deliveries that could not be normalized, with the reason.
//!
//! Architecture invariant: [`Store::ingest`] is one atomic write. Either the dedupe key, the raw
//! delivery and its outcome (records + events, or a dead letter) are all durably stored, or none
//! is. A 2xx is only sent after it returns `Ok`.

pub mod embedded;
pub mod redis;

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::adapter::FieldError;
use crate::fx::log::FxEntry;
use crate::fx::rates::RateDoc;
use crate::fx::{FxDraft, FxView};
use crate::model::{
    Change, ChangeEvent, Listing, ListingId, Order, OrderId, Record, RecordKind, Transition,
    lifecycle,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or did not confirm the write; the caller answers 503 and
    /// the sender retries.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be read back.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("not found")]
    NotFound,
    #[error("invalid request: {0}")]
    Invalid(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

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
}

/// What a reconciliation found for one instance: orders only one path has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterReason {
    /// `parse`, `fields`, `no_mapping`.
    pub kind: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldErrorRecord>,
}

/// A stored copy of an adapter field error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// Where a page of a listing starts: the (time, id) of the last item of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub millis: i64,
    pub id: String,
}

impl Cursor {
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

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
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

/// What a housekeeping pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Housekeeping {
    pub dedupe_keys_expired: u64,
    pub raw_bodies_expired: u64,
}

/// What the recommendation and ranking jobs keep per record: an order's interaction or a
/// listing's item info (JSON, see [`crate::reco::data`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoKind {
    Order,
    Item,
}

impl RecoKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            RecoKind::Order => "orders",
            RecoKind::Item => "items",
        }
    }
}

/// One write of the jobs' data: `json: None` removes the entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoWrite {
    pub kind: RecoKind,
    pub key: String,
    pub json: Option<String>,
}

/// The results a job run publishes; each part replaces the previous run's part atomically
/// (readers see the old results or the new ones, never a mix).
#[derive(Debug, Clone, PartialEq)]
pub enum RecoResults {
    /// Per strategy, per customer: the list (JSON).
    Recommendations {
        meta: String,
        lists: Vec<(String, String, String)>,
    },
    /// Per ranking key (`by|country|channel`), the entries in rank order: (item, score,
    /// detail JSON). Scores ascend for `price`, descend otherwise.
    Rankings {
        meta: String,
        sets: Vec<(String, Vec<RankEntry>)>,
    },
}

/// One ranking entry: (item, score, detail JSON).
pub type RankEntry = (String, f64, String);

/// Which results a job publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoPart {
    Recommendations,
    Rankings,
}

impl RecoPart {
    pub fn as_str(&self) -> &'static str {
        match self {
            RecoPart::Recommendations => "recommend",
            RecoPart::Rankings => "rank",
        }
    }
}

/// The store contract. See the module docs for what each part keeps.
pub trait Store: Send + Sync + 'static {
    /// Atomically: check the dedupe id; if new, store the raw delivery and its disposition
    /// (records with revision check + events, a dead letter, or "ignored"). Durable when `Ok`.
    fn ingest(
        &self,
        delivery: RawDelivery,
        disposition: Disposition,
    ) -> impl Future<Output = StoreResult<IngestOutcome>> + Send {
        self.ingest_with_cursor(delivery, disposition, None)
    }

    /// [`Store::ingest`], and in the same atomic write, the poller's cursor.
    fn ingest_with_cursor(
        &self,
        delivery: RawDelivery,
        disposition: Disposition,
        cursor: Option<CursorWrite>,
    ) -> impl Future<Output = StoreResult<IngestOutcome>> + Send;

    /// A poller's cursor, as last written with a page.
    fn get_cursor(
        &self,
        instance: &str,
        name: &str,
    ) -> impl Future<Output = StoreResult<Option<String>>> + Send;

    /// Orders of an instance seen only by polling, or only pushed, with channel `updated_at`
    /// at or after `since` (all when `None`).
    fn reconcile(
        &self,
        instance: &str,
        since: Option<DateTime<Utc>>,
    ) -> impl Future<Output = StoreResult<Reconciliation>> + Send;

    fn get_order(&self, id: &OrderId) -> impl Future<Output = StoreResult<Option<Order>>> + Send;

    fn get_listing(
        &self,
        id: &ListingId,
    ) -> impl Future<Output = StoreResult<Option<Listing>>> + Send;

    /// Orders by (updated_at, id), ascending, optionally of one instance.
    fn list_orders(&self, q: OrderQuery) -> impl Future<Output = StoreResult<Page<Order>>> + Send;

    /// The raw delivery (meta and body), while it is retained.
    fn get_delivery(
        &self,
        delivery_id: &str,
    ) -> impl Future<Output = StoreResult<Option<RawDelivery>>> + Send;

    fn list_dead_letters(
        &self,
        q: DeadLetterQuery,
    ) -> impl Future<Output = StoreResult<Page<DeadLetter>>> + Send;

    fn get_dead_letter(
        &self,
        id: &str,
    ) -> impl Future<Output = StoreResult<Option<DeadLetter>>> + Send;

    /// A replay succeeded: apply the records and remove the dead letter, atomically.
    fn resolve_dead_letter(
        &self,
        id: &str,
        records: Vec<Record>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<Vec<RecordResult>>> + Send;

    /// A replay failed again: keep the dead letter with the new reason.
    fn update_dead_letter(
        &self,
        id: &str,
        reason: DeadLetterReason,
    ) -> impl Future<Output = StoreResult<DeadLetter>> + Send;

    /// Reads events for a consumer group: first the ones delivered to it but not acknowledged,
    /// then new ones. At least once: an unacknowledged event is read again.
    fn read_events(
        &self,
        group: &str,
        consumer: &str,
        max: usize,
    ) -> impl Future<Output = StoreResult<Vec<StreamEntry>>> + Send;

    fn ack_events(
        &self,
        group: &str,
        ids: &[String],
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Number of events in the stream.
    fn event_count(&self) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Removes expired dedupe keys and raw bodies (Redis expires them itself).
    fn housekeeping(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<Housekeeping>> + Send;

    /// Applies lifecycle facts that wait for another instance's order (Redis keeps instances
    /// in separate cluster slots, so such a fact is queued in its own instance's outbox and
    /// applied here; the embedded store applies every fact at ingest and returns 0).
    fn drain_lifecycle(&self) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Stores a rate document (idempotent by its hash); `true` when it is new.
    fn fx_put_doc(&self, doc: RateDoc) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Every stored rate document.
    fn fx_docs(&self) -> impl Future<Output = StoreResult<Vec<RateDoc>>> + Send;

    /// Atomically: appends the new conversions to the FX log (chained; see
    /// [`crate::fx::chain`]), updates the conversion index, stores the order's FX view and
    /// its place in the pending set. Returns the entries appended.
    fn fx_commit(
        &self,
        drafts: Vec<FxDraft>,
        view: FxView,
    ) -> impl Future<Output = StoreResult<Vec<FxEntry>>> + Send;

    fn fx_view(&self, order_id: &str) -> impl Future<Output = StoreResult<Option<FxView>>> + Send;

    /// Orders waiting for a rate.
    fn fx_pending(&self) -> impl Future<Output = StoreResult<Vec<String>>> + Send;

    /// The FX log head as last committed (sequence and hash of the newest entry): `fx verify`
    /// checks the stored entries end there (a deleted tail is noticed).
    fn fx_head(&self) -> impl Future<Output = StoreResult<crate::fx::Head>> + Send;

    /// Raw FX log entries (sequence, JSON) after `after_seq`, in sequence order, as stored
    /// (`fx verify` reads them raw so that a damaged entry is reported, not skipped).
    fn fx_log(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<(u64, String)>>> + Send;

    /// Stores an order's tax quote and, atomically, its share of the buyer's CBEC annual total.
    fn tax_commit(
        &self,
        quote: crate::tax::Quote,
        annual: Option<crate::tax::AnnualEntry>,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn tax_quote(
        &self,
        order_id: &str,
    ) -> impl Future<Output = StoreResult<Option<crate::tax::Quote>>> + Send;

    /// A buyer's CBEC purchases in a year (CNY), without the given order's own share.
    fn tax_annual(
        &self,
        customer_key: &str,
        year: i32,
        excluding_order: &str,
    ) -> impl Future<Output = StoreResult<rust_decimal::Decimal>> + Send;

    /// Writes the jobs' per-record data (idempotent: keyed by record).
    fn reco_apply(&self, writes: Vec<RecoWrite>) -> impl Future<Output = StoreResult<()>> + Send;

    /// Every entry of one kind of the jobs' data (JSON), in key order.
    fn reco_load(&self, kind: RecoKind) -> impl Future<Output = StoreResult<Vec<String>>> + Send;

    /// Forgets the jobs' data and rewinds their consumer group to the start of the stream
    /// (`jobs run --rebuild`).
    fn reco_reset(&self, group: &str) -> impl Future<Output = StoreResult<()>> + Send;

    /// Replaces one part of the published results, atomically.
    fn reco_publish(&self, results: RecoResults) -> impl Future<Output = StoreResult<()>> + Send;

    /// A customer's list for a strategy (JSON), from the current results.
    fn reco_list(
        &self,
        strategy: &str,
        customer: &str,
    ) -> impl Future<Output = StoreResult<Option<String>>> + Send;

    /// The first `k` entries of a ranking (see [`RecoResults::Rankings`]).
    fn reco_ranking(
        &self,
        key: &str,
        k: usize,
    ) -> impl Future<Output = StoreResult<Option<Vec<(String, f64, String)>>>> + Send;

    /// The metadata of the current results of a part (JSON), if it was ever published.
    fn reco_meta(&self, part: RecoPart)
    -> impl Future<Output = StoreResult<Option<String>>> + Send;

    /// Is the store reachable?
    fn ping(&self) -> impl Future<Output = StoreResult<()>> + Send;
}

/// A record ready to be written: its JSON and the key that orders its revisions.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub kind: RecordKind,
    pub id: String,
    pub instance: String,
    /// Orders and listings: the revision ordering key. Facts: empty (they never change).
    pub rev_key: String,
    /// Orders and listings: the channel's updated time. Facts: the time of the fact.
    pub updated_millis: i64,
    /// Orders: the status rank of this snapshot; facts: the rank the fact implies.
    pub rank: u8,
    /// The order a fact is about (the order itself for an order).
    pub order_id: String,
    pub order_instance: String,
    pub json: String,
}

pub(crate) fn prepare(record: &Record) -> StoreResult<Prepared> {
    let json = serde_json::to_string(record)
        .map_err(|e| StoreError::Invalid(format!("record cannot be serialized: {e}")))?;
    let (rev_key, updated_millis) = match record.revision() {
        Some(rev) => {
            let hash = hex::encode(&Sha256::digest(json.as_bytes())[..8]);
            (rev.ordering_key(&hash), rev.updated_at.timestamp_millis())
        }
        None => (String::new(), 0),
    };
    let (rank, order_id, order_instance) = match record {
        Record::Order(o) => (
            lifecycle::rank(o.status),
            o.id.as_str().to_string(),
            o.instance.clone(),
        ),
        Record::Fact(f) => (
            f.rank(),
            f.order_id.as_str().to_string(),
            f.order_instance.clone(),
        ),
        Record::Listing(_) => (0, String::new(), String::new()),
    };
    let updated_millis = match record {
        Record::Fact(f) => f.at.timestamp_millis(),
        _ => updated_millis,
    };
    Ok(Prepared {
        kind: record.kind(),
        id: record.id().to_string(),
        instance: record.instance().to_string(),
        rev_key,
        updated_millis,
        rank,
        order_id,
        order_instance,
        json,
    })
}

/// Decides what an upsert does, given the stored revision key (if any).
pub(crate) fn decide(stored: Option<&str>, incoming: &str) -> Change {
    match stored {
        None => Change::Created,
        Some(s) if incoming > s => Change::Updated,
        Some(s) if incoming == s => Change::Unchanged,
        Some(_) => Change::Stale,
    }
}

/// The JSON of a [`ChangeEvent`], built around the already serialized record.
pub(crate) fn event_json(
    p: &Prepared,
    change: Change,
    delivery_id: &str,
    at: DateTime<Utc>,
    transition: Option<&Transition>,
) -> String {
    let q = |s: &str| serde_json::to_string(s).expect("strings serialize");
    let transition = transition
        .map(|t| {
            format!(
                r#","transition":{}"#,
                serde_json::to_string(t).expect("transitions serialize")
            )
        })
        .unwrap_or_default();
    format!(
        r#"{{"kind":"{}","change":"{}","record_id":{},"instance":{},"delivery_id":{},"at":{},"record":{}{}}}"#,
        p.kind.as_str(),
        change.as_str(),
        q(&p.id),
        q(&p.instance),
        q(delivery_id),
        q(&at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        p.json,
        transition
    )
}

/// Reads a stored fact (kept as its record document).
pub(crate) fn parse_fact(json: &[u8]) -> StoreResult<crate::model::LifecycleFact> {
    match parse_record(json)? {
        Record::Fact(f) => Ok(*f),
        other => Err(StoreError::Corrupt(format!(
            "{} stored as a fact",
            other.id()
        ))),
    }
}

/// Reads a stored record document.
pub(crate) fn parse_record(json: &[u8]) -> StoreResult<Record> {
    serde_json::from_slice(json).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_decisions() {
        assert_eq!(decide(None, "b"), Change::Created);
        assert_eq!(decide(Some("a"), "b"), Change::Updated);
        assert_eq!(decide(Some("b"), "b"), Change::Unchanged);
        assert_eq!(decide(Some("c"), "b"), Change::Stale);
    }

    #[test]
    fn event_json_is_a_change_event() {
        let order: crate::model::Order =
            serde_json::from_str(include_str!("../../tests/fixtures/app/order-jp.json"))
                .map(|mut o: serde_json::Value| {
                    let m = o.as_object_mut().unwrap();
                    m.insert("id".into(), "o.app.0123456789abcdef".into());
                    m.insert("instance".into(), "app".into());
                    m.insert("channel".into(), "app".into());
                    m.insert("channel_kind".into(), "mobile_app".into());
                    m.insert("account".into(), "acme".into());
                    o
                })
                .and_then(serde_json::from_value)
                .unwrap();
        let record = Record::Order(Box::new(order));
        let p = prepare(&record).unwrap();
        let at = DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z")
            .unwrap()
            .to_utc();
        let t = crate::model::lifecycle::transition(
            "o.app.0123456789abcdef",
            (None, None),
            (Some(1), None),
        );
        let json = event_json(&p, Change::Created, "d\"1", at, t.as_ref());
        let event: ChangeEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(event.record, record);
        assert_eq!(event.transition, t);
        assert_eq!(event.delivery_id, "d\"1");
        assert_eq!(event.at, at);
    }

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

/// The store a config selects.
#[derive(Clone)]
pub enum AnyStore {
    Embedded(embedded::EmbeddedStore),
    Redis(redis::RedisStore),
}

/// Runs `$body` with `$s` bound to the concrete store inside an [`AnyStore`].
#[macro_export]
macro_rules! with_store {
    ($any:expr, $s:ident => $body:expr) => {
        match $any {
            $crate::store::AnyStore::Embedded($s) => $body,
            $crate::store::AnyStore::Redis($s) => $body,
        }
    };
}

/// Opens the configured store. For Redis, also reports whether the server fsyncs every write.
pub async fn open(
    cfg: &crate::config::Config,
) -> StoreResult<(AnyStore, Option<redis::Persistence>)> {
    use crate::config::Backend;
    let s = &cfg.store;
    match s.backend {
        Backend::Embedded => {
            let store = embedded::EmbeddedStore::open(
                &s.path,
                embedded::EmbeddedOptions {
                    dedupe_ttl: s.dedupe_ttl,
                    raw_retention: s.raw_retention,
                    cache_bytes: s.cache_bytes,
                },
            )?;
            Ok((AnyStore::Embedded(store), None))
        }
        Backend::Redis => {
            let (store, persistence) = redis::RedisStore::connect(redis::RedisOptions {
                url: s.redis_url.expose().to_string(),
                prefix: s.redis_prefix.clone(),
                timeout: s.redis_timeout,
                require_fsync: s.redis_require_fsync,
                dedupe_ttl: s.dedupe_ttl,
                raw_retention: s.raw_retention,
                instances: cfg.instances.keys().cloned().collect(),
            })
            .await?;
            Ok((AnyStore::Redis(store), Some(persistence)))
        }
    }
}
