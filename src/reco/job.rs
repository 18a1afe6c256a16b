//! The recommendation and ranking jobs.
//!
//! 1. **Ingest** ([`ingest`]): read the event stream as consumer group `reco`, turn each order
//!    and listing event into the jobs' data ([`super::data`]), store it keyed by record, then
//!    acknowledge. A crash between the write and the acknowledgement re-reads the events and
//!    rewrites the same entries, so every event counts once in effect.
//! 2. **Compute** ([`recommend`], [`rankings`]): from everything stored, deterministically (the
//!    same data gives the same results, bit for bit), fit the strategies and score every
//!    customer; build the rankings per destination country and channel.
//! 3. **Publish**: each part replaces the previous results atomically.
//!
//! A run killed at any point leaves the previous results served; running again gives exactly
//! the results an uninterrupted run gives.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;
use tracing::Instrument;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::data::{Interaction, ItemInfo, Update, update_of};
use super::models::{self, Fitted, Inputs, Params, Train};
use super::ranking::{RankStats, rankings};
use crate::fx::FxSettings;
use crate::fx::book::RateBook;
use crate::fx::store::FxStore;
use crate::reco::store::{RecoKind, RecoPart, RecoResults, RecoStore, RecoWrite};
use crate::store::{Store, StoreError};

/// The consumer group of the jobs.
pub const RECO_GROUP: &str = "reco";

/// The strategy name under which the cold-start lists are published (customers `popular`
/// and `country:<CC>`).
pub const FALLBACK: &str = "~fallback";

/// The rankings the job builds.
pub const RANKINGS: &[&str] = &["sales", "revenue", "price", "rating", "rating_wilson"];

/// Whether a ranking key (`by|country|channel`) ranks the lowest score first (price does; the
/// others rank the highest first). The job's sort and the Redis read both follow it.
pub fn ranks_ascending(key: &str) -> bool {
    key.split('|').next() == Some("price")
}

/// What the jobs do (`[jobs]` in the config).
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// How often the daemon runs both jobs (`None`: only on demand, `crossgate jobs run`).
    pub every: Option<std::time::Duration>,
    /// Items kept per customer and strategy (the most `?k=` can ask for).
    pub list_len: usize,
    /// Strategies computed (all by default).
    pub strategies: Vec<String>,
    pub params: Params,
    /// Sales rankings: a sale's weight halves every `half_life_days`.
    pub half_life_days: f64,
    /// Entries kept per ranking.
    pub ranking_size: usize,
    /// Leave out what the customer already bought (on by default).
    pub exclude_purchased: bool,
    /// Rating rankings: the prior's weight in ratings (default: the mean rating count).
    pub rating_prior_count: Option<f64>,
    /// Events read per pass (each pass is written, then acknowledged).
    pub batch: usize,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            every: Some(std::time::Duration::from_secs(3600)),
            list_len: 20,
            strategies: models::STRATEGIES.iter().map(|s| s.to_string()).collect(),
            params: Params::default(),
            half_life_days: 14.0,
            ranking_size: 1000,
            exclude_purchased: true,
            rating_prior_count: None,
            batch: 2000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored job data is unreadable ({kind} entry {index}): {message}")]
    Data {
        kind: &'static str,
        index: usize,
        message: String,
    },
}

/// Progress of a long step (the CLI shows bars; the daemon shows nothing).
pub trait Progress: Sync {
    fn stage(&self, _name: &str, _total: Option<u64>) {}
    fn inc(&self, _n: u64) {}
}

/// No progress display.
pub struct Quiet;
impl Progress for Quiet {}

/// The write an update makes.
fn write_of(u: Update) -> Option<RecoWrite> {
    match u {
        Update::Order(i) => Some(RecoWrite {
            kind: RecoKind::Order,
            key: i.order_id.clone(),
            json: Some(serde_json::to_string(&i).expect("interactions serialize")),
        }),
        Update::RemoveOrder(id) => Some(RecoWrite {
            kind: RecoKind::Order,
            key: id,
            json: None,
        }),
        Update::Item(info) => Some(RecoWrite {
            kind: RecoKind::Item,
            key: info.listing_id.clone(),
            json: Some(serde_json::to_string(&info).expect("items serialize")),
        }),
        Update::None => None,
    }
}

/// Reads the stream until it is drained; returns the number of events read.
pub async fn ingest<S: Store + RecoStore>(
    store: &S,
    batch: usize,
    progress: &dyn Progress,
) -> Result<u64, StoreError> {
    let mut total = 0;
    progress.stage("reading events", None);
    loop {
        let events = store.read_events(RECO_GROUP, "reco-job", batch).await?;
        if events.is_empty() {
            return Ok(total);
        }
        let writes: Vec<RecoWrite> = events
            .iter()
            .filter_map(|e| write_of(update_of(&e.event)))
            .collect();
        if !writes.is_empty() {
            store.reco_apply(writes).await?;
        }
        let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        store.ack_events(RECO_GROUP, &ids).await?;
        total += ids.len() as u64;
        progress.inc(ids.len() as u64);
    }
}

/// Everything the jobs keep.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub orders: Vec<Interaction>,
    pub items: Vec<ItemInfo>,
}

/// Reads the jobs' data from the store.
pub async fn load<S: Store + RecoStore>(store: &S) -> Result<Snapshot, JobError> {
    fn parse<T: serde::de::DeserializeOwned>(
        rows: Vec<String>,
        kind: &'static str,
    ) -> Result<Vec<T>, JobError> {
        rows.iter()
            .enumerate()
            .map(|(index, r)| {
                serde_json::from_str(r).map_err(|e| JobError::Data {
                    kind,
                    index,
                    message: e.to_string(),
                })
            })
            .collect()
    }
    let orders = parse(store.reco_load(RecoKind::Order).await?, "order")?;
    let items = parse(store.reco_load(RecoKind::Item).await?, "item")?;
    Ok(Snapshot { orders, items })
}

/// The matrices the strategies are fitted on.
pub struct Dataset {
    /// Customer keys, sorted (index = user).
    pub customers: Vec<String>,
    /// Items, sorted (index = item).
    pub items: Vec<String>,
    pub train: Train,
    pub docs: Vec<String>,
    pub segment_of: Vec<Option<u32>>,
    pub segments: usize,
}

impl Dataset {
    pub fn item_index(&self, item: &str) -> Option<usize> {
        self.items.binary_search_by(|i| i.as_str().cmp(item)).ok()
    }
    pub fn customer_index(&self, c: &str) -> Option<usize> {
        self.customers.binary_search_by(|i| i.as_str().cmp(c)).ok()
    }
}

/// Builds the dataset: every customer and item of the snapshot gets an index; the interactions
/// that `include` accepts go into the training matrix (one count per order and item).
pub fn dataset(snap: &Snapshot, include: impl Fn(&Interaction) -> bool) -> Dataset {
    let customers: Vec<String> = snap
        .orders
        .iter()
        .map(|o| o.customer.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let items: Vec<String> = snap
        .orders
        .iter()
        .flat_map(|o| o.lines.iter().map(|l| l.item.clone()))
        .chain(snap.items.iter().map(|i| i.item.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let cidx = |c: &str| customers.binary_search_by(|x| x.as_str().cmp(c)).ok();
    let iidx = |i: &str| items.binary_search_by(|x| x.as_str().cmp(i)).ok();

    let mut triples = Vec::new();
    // Text: the item's listing (lowest listing id), else its latest order line's title.
    let mut docs: Vec<Option<String>> = vec![None; items.len()];
    let mut listed = vec![false; items.len()];
    let mut items_sorted: Vec<&ItemInfo> = snap.items.iter().collect();
    items_sorted.sort_by(|a, b| a.listing_id.cmp(&b.listing_id));
    for info in items_sorted {
        if let Some(i) = iidx(&info.item)
            && !listed[i]
        {
            docs[i] = Some(info.document());
            listed[i] = true;
        }
    }
    let mut title_at: Vec<Option<(DateTime<Utc>, &str)>> = vec![None; items.len()];
    // Segment: destination country and demographic segment of the customer's latest order.
    let mut latest: Vec<Option<(DateTime<Utc>, &str, String)>> = vec![None; customers.len()];
    for o in &snap.orders {
        let Some(u) = cidx(&o.customer) else { continue };
        let at = o.placed_at.to_utc();
        let key = (at, o.order_id.as_str());
        if latest[u].as_ref().is_none_or(|(t, id, _)| (*t, *id) < key) {
            let seg = format!(
                "{}|{}",
                o.country.as_deref().unwrap_or("*"),
                o.segment.as_deref().unwrap_or("*")
            );
            latest[u] = Some((at, o.order_id.as_str(), seg));
        }
        let use_it = include(o);
        for l in &o.lines {
            let Some(i) = iidx(&l.item) else { continue };
            if !listed[i] && title_at[i].is_none_or(|(t, _)| t < at) {
                title_at[i] = Some((at, l.title.as_str()));
            }
            if use_it {
                triples.push((u as u32, i as u32, 1.0f32, at.timestamp()));
            }
        }
    }
    let docs: Vec<String> = docs
        .into_iter()
        .zip(&title_at)
        .map(|(d, t)| {
            d.or_else(|| t.map(|(_, s)| s.to_string()))
                .unwrap_or_default()
        })
        .collect();
    let mut names: BTreeMap<String, u32> = BTreeMap::new();
    for l in latest.iter().flatten() {
        let n = names.len() as u32;
        names.entry(l.2.clone()).or_insert(n);
    }
    // Stable segment numbers: by name.
    let ordered: Vec<String> = names.keys().cloned().collect();
    let segment_of = latest
        .iter()
        .map(|l| {
            l.as_ref()
                .and_then(|(_, _, s)| ordered.binary_search(s).ok())
                .map(|i| i as u32)
        })
        .collect();
    let train = Train::with_times(customers.len(), items.len(), &triples);
    Dataset {
        segments: ordered.len(),
        customers,
        items,
        train,
        docs,
        segment_of,
    }
}

/// Time spent per strategy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct StrategyTime {
    pub strategy: String,
    pub fit_seconds: f64,
    pub score_seconds: f64,
}

/// Per strategy: each customer's top `k` (item index, score).
pub type Lists = Vec<(String, Vec<Vec<(u32, f32)>>)>;

/// Fits the wanted strategies and scores every customer.
pub fn recommend(
    ds: &Dataset,
    settings: &JobSettings,
    progress: &dyn Progress,
) -> (Lists, Vec<StrategyTime>) {
    let wanted: Vec<&str> = settings.strategies.iter().map(String::as_str).collect();
    progress.stage("fitting models", None);
    let inputs = Inputs {
        train: &ds.train,
        docs: &ds.docs,
        segment_of: &ds.segment_of,
        segments: ds.segments,
    };
    let fitted = Fitted::fit(&inputs, settings.params.clone(), &wanted);
    let mut lists = Vec::new();
    let mut times = Vec::new();
    for s in models::STRATEGIES.iter().filter(|s| wanted.contains(s)) {
        progress.stage(&format!("scoring {s}"), Some(ds.customers.len() as u64));
        let started = Instant::now();
        let per_user = fitted.with_model(s, |m| score_all(ds, m, settings, progress));
        if let Some(per_user) = per_user {
            times.push(StrategyTime {
                strategy: s.to_string(),
                fit_seconds: fitted.seconds(s),
                score_seconds: started.elapsed().as_secs_f64(),
            });
            lists.push((s.to_string(), per_user));
        }
    }
    (lists, times)
}

fn score_all(
    ds: &Dataset,
    m: &dyn models::Model,
    settings: &JobSettings,
    progress: &dyn Progress,
) -> Vec<Vec<(u32, f32)>> {
    models::par_map(ds.customers.len(), |u| {
        let mut scores = vec![0f32; ds.items.len()];
        m.score(u, &mut scores);
        let exclude: Vec<usize> = if settings.exclude_purchased {
            ds.train.user_items(u).map(|(i, _)| i).collect()
        } else {
            Vec::new()
        };
        if u % 256 == 0 {
            progress.inc(256);
        }
        models::top_k(&scores, settings.list_len, &exclude)
    })
}

/// The cold-start lists: overall and per destination country, by number of buyers.
pub fn fallback_lists(snap: &Snapshot, k: usize) -> Vec<(String, Vec<(String, f32)>)> {
    let mut buyers: BTreeMap<String, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    for o in &snap.orders {
        for l in &o.lines {
            for seg in ["popular".to_string()]
                .into_iter()
                .chain(o.country.as_deref().map(|c| format!("country:{c}")))
            {
                buyers
                    .entry(seg)
                    .or_default()
                    .entry(l.item.as_str())
                    .or_default()
                    .insert(o.customer.as_str());
            }
        }
    }
    buyers
        .into_iter()
        .map(|(seg, items)| {
            let mut v: Vec<(String, f32)> = items
                .into_iter()
                .map(|(i, c)| (i.to_string(), c.len() as f32))
                .collect();
            v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            v.truncate(k);
            (seg, v)
        })
        .collect()
}

/// Which jobs to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Which {
    pub recommend: bool,
    pub rank: bool,
}

/// What a run did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct RunReport {
    pub events_read: u64,
    pub orders: usize,
    pub customers: usize,
    pub items: usize,
    pub strategies: Vec<StrategyTime>,
    pub rankings: usize,
    pub rank_stats: RankStats,
    pub ingest_seconds: f64,
    pub load_seconds: f64,
    pub rank_seconds: f64,
    pub publish_seconds: f64,
    pub total_seconds: f64,
}

/// Held while a run or a reset is in progress (see [`run`]).
static RUNNING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Forgets the jobs' data and rewinds their consumer group (`jobs run --rebuild`); waits for a
/// run in progress.
pub async fn reset<S: RecoStore>(store: &S) -> Result<(), StoreError> {
    let _running = RUNNING.lock().await;
    store.reco_reset(RECO_GROUP).await
}

/// One run: ingest new events, compute, publish. Its span (`jobs_run`, with `jobs_ingest`
/// under it) is a child of the request that asked for it, or the root of the daemon's
/// scheduled run.
#[tracing::instrument(name = "jobs_run", skip_all, fields(recommend = which.recommend, rank = which.rank))]
pub async fn run<S: Store + FxStore + RecoStore>(
    store: &S,
    settings: &JobSettings,
    fx: &FxSettings,
    which: Which,
    progress: &dyn Progress,
) -> Result<RunReport, JobError> {
    // One run at a time in this process: the daemon's schedule and on-demand runs
    // (`POST /v1/jobs/run`) read the same consumer group and publish the same results.
    let _running = RUNNING.lock().await;
    let started = Instant::now();
    let events_read = ingest(store, settings.batch.max(1), progress)
        .instrument(tracing::info_span!("jobs_ingest"))
        .await?;
    let ingest_seconds = started.elapsed().as_secs_f64();
    let t = Instant::now();
    progress.stage("loading interactions", None);
    let snap = load(store).await?;
    let load_seconds = t.elapsed().as_secs_f64();
    let mut report = RunReport {
        events_read,
        orders: snap.orders.len(),
        customers: 0,
        items: 0,
        strategies: Vec::new(),
        rankings: 0,
        rank_stats: RankStats::default(),
        ingest_seconds,
        load_seconds,
        rank_seconds: 0.0,
        publish_seconds: 0.0,
        total_seconds: 0.0,
    };
    let generated_at = Utc::now();
    if which.recommend {
        let ds = blocking(|| dataset(&snap, |_| true));
        report.customers = ds.customers.len();
        report.items = ds.items.len();
        let (lists, times) = blocking(|| recommend(&ds, settings, progress));
        report.strategies = times.clone();
        let t = Instant::now();
        progress.stage("publishing recommendations", None);
        let mut out = Vec::new();
        for (strategy, per_user) in &lists {
            for (u, list) in per_user.iter().enumerate() {
                let v: Vec<(&str, f32)> = list
                    .iter()
                    .map(|(i, s)| (ds.items[*i as usize].as_str(), *s))
                    .collect();
                out.push((
                    strategy.clone(),
                    ds.customers[u].clone(),
                    serde_json::to_string(&v).expect("lists serialize"),
                ));
            }
        }
        for (seg, v) in fallback_lists(&snap, settings.list_len) {
            out.push((
                FALLBACK.to_string(),
                seg,
                serde_json::to_string(&v).expect("lists serialize"),
            ));
        }
        let meta = json!({
            "generated_at": generated_at,
            "orders": snap.orders.len(),
            "customers": ds.customers.len(),
            "items": ds.items.len(),
            "list_len": settings.list_len,
            "exclude_purchased": settings.exclude_purchased,
            "strategies": times,
        })
        .to_string();
        store
            .reco_publish(RecoResults::Recommendations { meta, lists: out })
            .await?;
        report.publish_seconds += t.elapsed().as_secs_f64();
    }
    if which.rank {
        let t = Instant::now();
        progress.stage("ranking", None);
        let book = RateBook::new(store.fx_docs().await?, fx.max_age_days);
        let (sets, stats, as_of) = blocking(|| rankings(&snap, &book, fx, settings));
        report.rank_seconds = t.elapsed().as_secs_f64();
        report.rankings = sets.len();
        report.rank_stats = stats.clone();
        let t = Instant::now();
        let meta = json!({
            "generated_at": generated_at,
            "as_of": as_of,
            "currency": fx.reporting[0].code(),
            "half_life_days": settings.half_life_days,
            "orders": snap.orders.len(),
            "stats": stats,
        })
        .to_string();
        store
            .reco_publish(RecoResults::Rankings { meta, sets })
            .await?;
        report.publish_seconds += t.elapsed().as_secs_f64();
    }
    report.total_seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Runs CPU-heavy work without stalling other tasks of a multi-threaded runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// The current results' metadata of a part, parsed.
pub async fn meta<S: Store + RecoStore>(
    store: &S,
    part: RecoPart,
) -> Result<Option<serde_json::Value>, StoreError> {
    Ok(store
        .reco_meta(part)
        .await?
        .and_then(|m| serde_json::from_str(&m).ok()))
}
