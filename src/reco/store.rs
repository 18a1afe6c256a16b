//! What the recommendation and ranking jobs need from a store: their per-record data, the
//! published results (replaced atomically per part) and their consumer group. Every backend
//! in `crate::backend` implements it; the contract suite checks both.

use std::future::Future;

use crate::store::StoreResult;

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
    /// detail JSON). The store keeps that order; it applies no ranking rule of its own.
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

pub trait RecoStore: Send + Sync + 'static {
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

    /// The first `k` entries of a ranking, in the order published (see
    /// [`RecoResults::Rankings`]).
    fn reco_ranking(
        &self,
        key: &str,
        k: usize,
    ) -> impl Future<Output = StoreResult<Option<Vec<RankEntry>>>> + Send;

    /// The metadata of the current results of a part (JSON), if it was ever published.
    fn reco_meta(&self, part: RecoPart)
    -> impl Future<Output = StoreResult<Option<String>>> + Send;
}
