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

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::data::{Interaction, ItemInfo, Update, update_of};
use super::models::{self, Fitted, Inputs, Params, Train};
use super::rank;
use crate::fx::FxSettings;
use crate::fx::book::RateBook;
use crate::fx::book::Rounding;
use crate::fx::store::FxStore;
use crate::model::{CurrencyCode, Money};
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
                triples.push((u as u32, i as u32, 1.0f32));
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
    let train = Train::new(customers.len(), items.len(), &triples);
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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

/// Counts of what a ranking run could not use.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RankStats {
    /// Order lines whose amount has no rate into the reporting currency (left out of revenue;
    /// they count in units).
    pub lines_without_rate: u64,
    /// Listing prices without a rate (left out of the price ranking).
    pub prices_without_rate: u64,
}

#[derive(Default)]
struct Acc {
    units: u64,
    units_decayed: f64,
    revenue: Decimal,
    revenue_decayed: Decimal,
    /// Latest order unit price in the reporting currency: (time, order id, price).
    last_price: Option<(DateTime<Utc>, String, Decimal)>,
}

/// One ranking's entries: (item, score, detail JSON), in rank order.
pub type RankingSet = (String, Vec<(String, f64, String)>);

fn to_reporting(
    amount: Decimal,
    currency: &str,
    at: chrono::DateTime<chrono::FixedOffset>,
    to: CurrencyCode,
    book: &RateBook,
    rounding: &Rounding,
) -> Option<Decimal> {
    if currency == to.code() {
        return Some(amount);
    }
    let from = CurrencyCode::parse(currency).ok()?;
    let money = Money::new(amount.round_dp(from.minor_units()), from).ok()?;
    book.convert(money, to, at, rounding)
        .ok()
        .map(|c| c.to.amount())
}

/// Builds every ranking for every (country, channel) segment, `*` meaning all.
#[expect(clippy::too_many_lines, reason = "split owed, issue 11")]
pub fn rankings(
    snap: &Snapshot,
    book: &RateBook,
    fx: &FxSettings,
    settings: &JobSettings,
) -> (Vec<RankingSet>, RankStats, Option<DateTime<Utc>>) {
    let to = fx.reporting[0];
    let mut stats = RankStats::default();
    let as_of = snap.orders.iter().map(|o| o.placed_at.to_utc()).max();
    let mut acc: BTreeMap<(String, String), BTreeMap<String, Acc>> = BTreeMap::new();
    for o in &snap.orders {
        let at = o.placed_at.to_utc();
        let age = as_of.map_or(0.0, |a| (a - at).num_seconds() as f64 / 86_400.0);
        let w = rank::decay(age, settings.half_life_days);
        let wd = rank::decay_decimal(age, settings.half_life_days);
        let country = o.country.clone().unwrap_or_else(|| "*".into());
        let segments = [
            ("*".to_string(), "*".to_string()),
            (country.clone(), "*".to_string()),
            ("*".to_string(), o.channel.clone()),
            (country, o.channel.clone()),
        ];
        let segments: BTreeSet<(String, String)> = segments.into_iter().collect();
        let dp = CurrencyCode::parse(&o.currency).map_or(2, |c| c.minor_units());
        for l in &o.lines {
            let amount = to_reporting(l.amount, &o.currency, o.placed_at, to, book, &fx.rounding);
            if amount.is_none() {
                stats.lines_without_rate += 1;
            }
            // The unit price in the order currency (half-up), then converted like any amount.
            let unit = (l.amount / Decimal::from(l.qty.max(1)))
                .round_dp_with_strategy(dp, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
            let unit = amount.and(to_reporting(
                unit,
                &o.currency,
                o.placed_at,
                to,
                book,
                &fx.rounding,
            ));
            for seg in &segments {
                let a = acc
                    .entry(seg.clone())
                    .or_default()
                    .entry(l.item.clone())
                    .or_default();
                a.units += l.qty as u64;
                a.units_decayed += l.qty as f64 * w;
                if let Some(v) = amount {
                    a.revenue += v;
                    a.revenue_decayed += v * wd;
                }
                // The order id is cloned only when this line is the newest price.
                if let Some(unit) = unit
                    && a.last_price
                        .as_ref()
                        .is_none_or(|(t, id, _)| (*t, id.as_str()) < (at, o.order_id.as_str()))
                {
                    a.last_price = Some((at, o.order_id.clone(), unit));
                }
            }
        }
    }
    // Listings: price (converted at the newest order's date, or today) and ratings, per channel.
    let price_at = as_of
        .unwrap_or_else(Utc::now)
        .with_timezone(&chrono::FixedOffset::east_opt(0).expect("UTC"));
    let mut listed: BTreeMap<(String, String), BTreeMap<String, Vec<&ItemInfo>>> = BTreeMap::new();
    for info in snap.items.iter().filter(|i| i.active) {
        for seg in [
            ("*".to_string(), "*".to_string()),
            ("*".to_string(), info.channel.clone()),
        ] {
            listed
                .entry(seg)
                .or_default()
                .entry(info.item.clone())
                .or_default()
                .push(info);
        }
    }
    // The rating prior: the mean over every rated listing, weighted by count.
    let rated: Vec<&ItemInfo> = snap.items.iter().filter(|i| i.rating.is_some()).collect();
    let (sum, n) = rated.iter().fold((0.0, 0u64), |(s, n), i| {
        let r = i.rating.as_ref().expect("rated");
        let norm = r.average.to_f64().unwrap_or(0.0) / r.scale.max(1) as f64;
        (s + norm * r.count as f64, n + r.count)
    });
    let prior_mean = if n > 0 { sum / n as f64 } else { 0.0 };
    let prior_count = settings
        .rating_prior_count
        .unwrap_or_else(|| n as f64 / rated.len().max(1) as f64);

    let mut segments: BTreeSet<(String, String)> = acc.keys().cloned().collect();
    segments.extend(listed.keys().cloned());
    let mut out: Vec<RankingSet> = Vec::new();
    let money = |v: Decimal| json!({"amount": v.round_dp(to.minor_units()).to_string(), "currency": to.code()});
    for seg in segments {
        let sales = acc.get(&seg);
        let listings = listed.get(&seg);
        let key = |by: &str| format!("{by}|{}|{}", seg.0, seg.1);
        let mut sets: BTreeMap<&str, Vec<(String, f64, String)>> = BTreeMap::new();
        if let Some(sales) = sales {
            for (item, a) in sales {
                let detail = json!({
                    "units": a.units,
                    "units_decayed": (a.units_decayed * 1e4).round() / 1e4,
                    "revenue": money(a.revenue),
                    "revenue_decayed": money(a.revenue_decayed),
                })
                .to_string();
                sets.entry("sales").or_default().push((
                    item.clone(),
                    a.units_decayed,
                    detail.clone(),
                ));
                if a.revenue_decayed > Decimal::ZERO {
                    let score = a
                        .revenue_decayed
                        .round_dp(to.minor_units())
                        .to_f64()
                        .unwrap_or(0.0);
                    sets.entry("revenue")
                        .or_default()
                        .push((item.clone(), score, detail));
                }
            }
        }
        // Items in the segment: sold there, or listed on its channel.
        let mut present: BTreeSet<&String> = sales.map(|s| s.keys().collect()).unwrap_or_default();
        if let Some(l) = listings {
            present.extend(l.keys());
        }
        for item in present {
            let infos: Vec<&ItemInfo> = listings
                .and_then(|l| l.get(item))
                .cloned()
                .or_else(|| {
                    // A country segment: the item's listings on the segment's channel (or any).
                    listed
                        .get(&("*".to_string(), seg.1.clone()))
                        .and_then(|l| l.get(item))
                        .cloned()
                })
                .unwrap_or_default();
            // Price: the lowest current listing price, else the latest order unit price.
            let mut listing_price: Option<Decimal> = None;
            for info in &infos {
                if let Some(p) = &info.price {
                    match to_reporting(
                        p.amount(),
                        p.currency().code(),
                        price_at,
                        to,
                        book,
                        &fx.rounding,
                    ) {
                        Some(v) => listing_price = Some(listing_price.map_or(v, |x| x.min(v))),
                        None => stats.prices_without_rate += 1,
                    }
                }
            }
            let price = listing_price.map(|p| (p, "listing")).or_else(|| {
                sales
                    .and_then(|s| s.get(item))
                    .and_then(|a| a.last_price.as_ref())
                    .map(|(_, _, p)| (*p, "order"))
            });
            if let Some((p, source)) = price {
                sets.entry("price").or_default().push((
                    item.clone(),
                    p.to_f64().unwrap_or(0.0),
                    json!({"price": money(p), "source": source}).to_string(),
                ));
            }
            // Rating: the listing with the most ratings.
            if let Some(r) = infos
                .iter()
                .filter_map(|i| i.rating.as_ref())
                .max_by_key(|r| r.count)
            {
                let norm = r.average.to_f64().unwrap_or(0.0) / r.scale.max(1) as f64;
                let bayes = rank::bayesian_average(norm, r.count, prior_mean, prior_count);
                let wilson = r
                    .positive
                    .map(|p| rank::wilson_lower_bound(p, r.count, rank::Z95));
                let detail = json!({
                    "average": r.average.to_string(),
                    "scale": r.scale,
                    "count": r.count,
                    "positive": r.positive,
                    "bayesian": (bayes * r.scale as f64 * 1e4).round() / 1e4,
                    "wilson": wilson.map(|w| (w * 1e4).round() / 1e4),
                })
                .to_string();
                sets.entry("rating")
                    .or_default()
                    .push((item.clone(), bayes, detail.clone()));
                if let Some(w) = wilson {
                    sets.entry("rating_wilson")
                        .or_default()
                        .push((item.clone(), w, detail));
                }
            }
        }
        for (by, mut entries) in sets {
            // The order Redis gives for equal scores: by item, descending when the ranking is.
            if ranks_ascending(by) {
                entries.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            } else {
                entries.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
            }
            entries.truncate(settings.ranking_size);
            out.push((key(by), entries));
        }
    }
    (out, stats, as_of)
}

/// Which jobs to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Which {
    pub recommend: bool,
    pub rank: bool,
}

/// What a run did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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

/// One run: ingest new events, compute, publish.
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
    let events_read = ingest(store, settings.batch.max(1), progress).await?;
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
