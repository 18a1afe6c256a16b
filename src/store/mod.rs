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

pub(crate) mod codec;
mod coord;
mod settings;
mod types;
mod write;

pub use coord::{BudgetState, Fence, Lease, LeaseState, Rate, RateBudget, SharedBudget, SlotRange};
pub use settings::{Backend, StoreSettings};
pub use types::*;
pub(crate) use write::{
    Prepared, decide, event_json, parse_doc, parse_event, parse_fact, parse_record, prepare,
};

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::{Listing, ListingId, Order, OrderId, Record};

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
    /// A fenced write came from a holder whose lease has passed to another replica.
    #[error("lease lost: {0}")]
    LeaseLost(String),
}

impl StoreError {
    /// The store's own failures, by kind; `None` for the caller's (not found, invalid).
    pub fn failure_kind(&self) -> Option<&'static str> {
        match self {
            StoreError::Unavailable(_) => Some("unavailable"),
            StoreError::Corrupt(_) => Some("corrupt"),
            StoreError::LeaseLost(_) => Some("lease_lost"),
            StoreError::NotFound | StoreError::Invalid(_) => None,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

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

    /// The orders whose customer key is `customer_key`, up to `limit`, in no set order (an
    /// order whose key changed in a later revision is not among them).
    fn orders_of_customer(
        &self,
        customer_key: &str,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<Order>>> + Send;

    fn get_listing(
        &self,
        id: &ListingId,
    ) -> impl Future<Output = StoreResult<Option<Listing>>> + Send;

    /// Orders by (updated_at, id), ascending, optionally of one instance.
    fn list_orders(&self, q: OrderQuery) -> impl Future<Output = StoreResult<Page<Order>>> + Send;

    /// Listings by (updated_at, id), ascending, optionally of one instance or one SKU.
    fn list_listings(
        &self,
        q: ListingQuery,
    ) -> impl Future<Output = StoreResult<Page<Listing>>> + Send;

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

    /// How many dead letters wait, by instance (instances with none are left out).
    fn dead_letters_waiting(
        &self,
    ) -> impl Future<Output = StoreResult<std::collections::BTreeMap<String, u64>>> + Send;

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

    /// How far each of these consumer groups is behind the stream (a group that never read
    /// is behind by every event).
    fn consumer_lag(
        &self,
        groups: &[&str],
    ) -> impl Future<Output = StoreResult<Vec<ConsumerLag>>> + Send;

    /// Removes expired dedupe keys and raw bodies (Redis expires them itself).
    fn housekeeping(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<Housekeeping>> + Send;

    /// Applies lifecycle facts that wait for another instance's order (Redis keeps instances
    /// in separate cluster slots, so such a fact is queued in its own instance's outbox and
    /// applied here; the embedded store applies every fact at ingest and returns 0).
    fn drain_lifecycle(&self) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Is the store reachable?
    fn ping(&self) -> impl Future<Output = StoreResult<()>> + Send;

    /// Can the store take a durable write now? Writes a probe through the same path as an
    /// ingest (a reachable Redis that refuses writes, or a stopped embedded writer, is not
    /// ready). What `/readyz` asks.
    fn ready(&self, now: DateTime<Utc>) -> impl Future<Output = StoreResult<()>> + Send;

    /// Takes `lease` for `holder`, or renews it when `holder` has it, for `ttl`. `Some` with
    /// the fencing token when held; `None` while another holder has it.
    fn lease(
        &self,
        lease: &Lease,
        holder: &str,
        ttl: Duration,
    ) -> impl Future<Output = StoreResult<Option<Fence>>> + Send;

    /// Gives `lease` up when `holder` has it (at shutdown, so another replica need not wait for
    /// it to expire).
    fn release(&self, lease: &Lease, holder: &str) -> impl Future<Output = StoreResult<()>> + Send;

    /// Who holds each of these leases.
    fn lease_states(
        &self,
        leases: &[Lease],
    ) -> impl Future<Output = StoreResult<Vec<LeaseState>>> + Send;

    /// The rate budget every replica shares, or `None` when this store serves one process
    /// (the channel client then keeps its own limiter).
    fn shared_budget(&self) -> Option<SharedBudget>;

    /// A Redis Cluster's slot ranges with their masters and replicas; empty for one node or
    /// the embedded store.
    fn slot_ranges(&self) -> impl Future<Output = StoreResult<Vec<SlotRange>>> + Send;
}
