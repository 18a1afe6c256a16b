//! What FX needs from a store: rate documents, the chained FX log and each order's conversion
//! view. Every backend in `crate::backend` implements it; the contract suite checks both.

use std::future::Future;

use super::checkpoint::Checkpoint;
use super::log::FxEntry;
use super::rates::RateDoc;
use super::review::ReviewTable;
use super::{FxDraft, FxView, Head};
use crate::store::StoreResult;

pub trait FxStore: Send + Sync + 'static {
    /// Stores a rate document (idempotent by its hash); `true` when it is new.
    fn fx_put_doc(&self, doc: RateDoc) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Every stored rate document.
    fn fx_docs(&self) -> impl Future<Output = StoreResult<Vec<RateDoc>>> + Send;

    /// For each order in turn, atomically: appends its new conversions to the FX log
    /// (chained; see [`crate::fx::chain`]), updates the conversion index, stores the order's
    /// FX view and its place in the pending set. Returns the entries appended, per order. The
    /// embedded store commits the whole batch in one transaction (one fsync); Redis in scripts
    /// of up to 50 orders, each a compare-and-set on the log head.
    fn fx_commit(
        &self,
        orders: Vec<(Vec<FxDraft>, FxView)>,
    ) -> impl Future<Output = StoreResult<Vec<Vec<FxEntry>>>> + Send;

    fn fx_view(&self, order_id: &str) -> impl Future<Output = StoreResult<Option<FxView>>> + Send;

    /// Orders waiting for a rate.
    fn fx_pending(&self) -> impl Future<Output = StoreResult<Vec<String>>> + Send;

    /// How many orders wait for a rate (the gauge; without reading their ids).
    fn fx_pending_count(&self) -> impl Future<Output = StoreResult<u64>> + Send;

    /// The FX log head as last committed (sequence and hash of the newest entry): `fx verify`
    /// checks the stored entries end there (a deleted tail is noticed).
    fn fx_head(&self) -> impl Future<Output = StoreResult<Head>> + Send;

    /// Raw FX log entries (sequence, JSON) after `after_seq`, in sequence order, as stored
    /// (`fx verify` reads them raw so that a damaged entry is reported, not skipped).
    fn fx_log(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<(u64, String)>>> + Send;

    /// Stores a signed checkpoint (append-only: one per sequence number, never replaced);
    /// `true` when it is new.
    fn fx_put_checkpoint(&self, cp: Checkpoint) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Every stored checkpoint, oldest first.
    fn fx_checkpoints(&self) -> impl Future<Output = StoreResult<Vec<Checkpoint>>> + Send;

    /// The last log sequence the review index ([`crate::fx::review`]) covers (0: none).
    fn fx_review_upto(&self) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Values of a review table by key, `None` where there is none.
    fn fx_review_get(
        &self,
        table: ReviewTable,
        keys: Vec<String>,
    ) -> impl Future<Output = StoreResult<Vec<Option<String>>>> + Send;

    /// Atomically, if the index still covers up to `expect`: writes each (table, key, value)
    /// and moves the index to `upto`. `false` (and nothing written) when another writer moved
    /// it.
    fn fx_review_apply(
        &self,
        expect: u64,
        upto: u64,
        writes: Vec<(ReviewTable, String, String)>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Up to `limit` keys and values of a review table with `start <= key < end`, in key
    /// order.
    fn fx_review_scan(
        &self,
        table: ReviewTable,
        start: String,
        end: String,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<(String, String)>>> + Send;
}
