//! The FX review index: what finance's review page reads instead of the whole log.
//!
//! The log is the source of truth; this index is derived from it and kept by [`catch_up`],
//! which reads the entries after the index's position and applies them with a
//! compare-and-set on that position (so replicas may run it concurrently, and a crash
//! between two batches loses nothing). It holds the orders' grand totals only:
//! - **buckets**: per rate date, channel, instance and currency pair, the count and sums of
//!   the current (not superseded) grand totals and how often each rate was used: the period's
//!   totals are a sum over at most days × channels × pairs buckets, whatever the number of
//!   orders;
//! - **rows**: one small row per grand-total entry in rate-date order (marked when superseded),
//!   so a page of rows is read without parsing the log;
//! - **orders**: each row's key under its order's id and number, so one order's rows are read
//!   without scanning the period.
//!
//! A revision's entry supersedes an earlier one: its bucket gets the new amounts and loses the
//! old ones, so the totals always count each order's current grand total once, as
//! [`super::log::report`] does (the tests check the two agree).

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::log::{FxEntry, GRAND_TOTAL, PairReport};
use super::store::FxStore;
use crate::model::Money;
use crate::store::StoreError;

/// Log entries read per catch-up step.
const BATCH: usize = 2_000;
/// Rows read per scan step.
const SCAN: usize = 1_000;

/// The tables of the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewTable {
    Buckets,
    Rows,
    Orders,
}

/// One bucket: a rate date, channel, instance and currency pair.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Grand-total entries ever logged here (superseded ones included).
    rows: u64,
    /// Current grand totals.
    count: u64,
    #[serde(with = "rust_decimal::serde::str")]
    from_sum: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    to_sum: Decimal,
    /// How many current grand totals used each rate.
    rates: BTreeMap<String, u64>,
}

/// One grand-total entry, as the review shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Row {
    pub seq: u64,
    pub rate_date: NaiveDate,
    pub channel: String,
    pub instance: String,
    pub order_id: String,
    /// The channel's order number; none for entries logged before entries carried it.
    pub number: Option<String>,
    pub from: Money,
    pub to: Money,
    #[serde(with = "rust_decimal::serde::str")]
    #[schemars(with = "Decimal")]
    pub rate: Decimal,
    pub superseded: bool,
}

impl Row {
    fn of(e: &FxEntry) -> Self {
        let order = e.order.as_ref();
        Row {
            seq: e.seq,
            rate_date: e.rate_date,
            channel: order.map(|o| o.channel.clone()).unwrap_or_default(),
            instance: order.map(|o| o.instance.clone()).unwrap_or_default(),
            order_id: e.order_id.clone(),
            number: order.map(|o| o.number.clone()),
            from: e.from,
            to: e.to,
            rate: e.rate,
            superseded: false,
        }
    }

    fn key(&self) -> String {
        format!("{}|{:020}", self.rate_date, self.seq)
    }

    /// Its keys in the orders table: under the order's id, and its number without `#`.
    fn order_keys(&self) -> Vec<String> {
        let key = self.key();
        let mut out = vec![format!("id:{}|{key}", self.order_id)];
        if let Some(n) = &self.number {
            out.push(format!("no:{}|{key}", n.strip_prefix('#').unwrap_or(n)));
        }
        out
    }

    fn bucket_key(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            self.rate_date,
            self.channel,
            self.instance,
            self.from.currency().code(),
            self.to.currency().code()
        )
    }
}

/// How far the index has read the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coverage {
    pub upto: u64,
    pub head: u64,
}

impl Coverage {
    pub fn complete(&self) -> bool {
        self.upto >= self.head
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("FX review {what}: {e}"))
}

/// Applies the log's new entries to the index, at most `max_batches` batches of 2,000
/// entries (the daemon calls it after each FX pass; a page calls it with a small budget and
/// says how far the index covers).
pub async fn catch_up<S: FxStore>(store: &S, max_batches: usize) -> Result<Coverage, StoreError> {
    let mut upto = store.fx_review_upto().await?;
    let head = store.fx_head().await?.seq;
    for _ in 0..max_batches {
        if upto >= head {
            break;
        }
        let raw = store.fx_log(upto, BATCH).await?;
        let Some(last) = raw.last().map(|(s, _)| *s) else {
            break;
        };
        let entries = raw
            .iter()
            .map(|(seq, json)| {
                serde_json::from_str::<FxEntry>(json)
                    .map_err(|e| corrupt(&format!("entry {seq}"), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let writes = changes(store, &entries).await?;
        // Another replica may have applied this batch first: then read where it got to.
        store.fx_review_apply(upto, last, writes).await?;
        upto = store.fx_review_upto().await?;
    }
    Ok(Coverage { upto, head })
}

/// The writes for a batch of log entries, in sequence order.
async fn changes<S: FxStore>(
    store: &S,
    entries: &[FxEntry],
) -> Result<Vec<(ReviewTable, String, String)>, StoreError> {
    let totals: Vec<&FxEntry> = entries.iter().filter(|e| e.part == GRAND_TOTAL).collect();
    let mut rows: BTreeMap<u64, Row> = BTreeMap::new();
    // Entries superseded by this batch that an earlier batch indexed.
    for e in &totals {
        if let Some(prior) = e.supersedes.as_deref().and_then(seq_of)
            && prior < entries[0].seq
        {
            let raw = store.fx_log(prior - 1, 1).await?;
            let (_, json) = raw
                .into_iter()
                .find(|(s, _)| *s == prior)
                .ok_or_else(|| corrupt("log", format!("entry {prior} is missing")))?;
            let entry: FxEntry = serde_json::from_str(&json).map_err(|e| corrupt("entry", e))?;
            rows.insert(prior, Row::of(&entry));
        }
    }
    let mut keys: Vec<String> = rows.values().map(Row::bucket_key).collect();
    keys.extend(totals.iter().map(|e| Row::of(e).bucket_key()));
    keys.sort();
    keys.dedup();
    let stored = store
        .fx_review_get(ReviewTable::Buckets, keys.clone())
        .await?;
    let mut buckets: HashMap<String, Bucket> = HashMap::new();
    for (k, v) in keys.into_iter().zip(stored) {
        let b = match v {
            Some(json) => serde_json::from_str(&json).map_err(|e| corrupt("bucket", e))?,
            None => Bucket::default(),
        };
        buckets.insert(k, b);
    }
    let mut written: Vec<u64> = Vec::new();
    for e in totals {
        let row = Row::of(e);
        if let Some(b) = buckets.get_mut(&row.bucket_key()) {
            b.add(&row);
        }
        if let Some(prior) = e.supersedes.as_deref().and_then(seq_of)
            && let Some(old) = rows.get_mut(&prior)
        {
            if let Some(b) = buckets.get_mut(&old.bucket_key()) {
                b.remove(old);
            }
            old.superseded = true;
            written.push(prior);
        }
        written.push(row.seq);
        rows.insert(row.seq, row);
    }
    written.sort_unstable();
    written.dedup();
    let mut writes = Vec::new();
    for r in written.iter().filter_map(|s| rows.get(s)) {
        let key = r.key();
        for order_key in r.order_keys() {
            writes.push((ReviewTable::Orders, order_key, key.clone()));
        }
        let json = serde_json::to_string(r).map_err(|e| corrupt("row", e))?;
        writes.push((ReviewTable::Rows, key, json));
    }
    for (k, b) in buckets {
        let json = serde_json::to_string(&b).map_err(|e| corrupt("bucket", e))?;
        writes.push((ReviewTable::Buckets, k, json));
    }
    Ok(writes)
}

/// `fx.<seq>` → seq.
fn seq_of(id: &str) -> Option<u64> {
    id.strip_prefix("fx.")?.parse().ok()
}

impl Bucket {
    fn add(&mut self, r: &Row) {
        self.rows += 1;
        self.count += 1;
        self.from_sum += r.from.amount();
        self.to_sum += r.to.amount();
        *self.rates.entry(r.rate.to_string()).or_default() += 1;
    }

    fn remove(&mut self, r: &Row) {
        self.count = self.count.saturating_sub(1);
        self.from_sum -= r.from.amount();
        self.to_sum -= r.to.amount();
        let key = r.rate.to_string();
        if let Some(n) = self.rates.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.rates.remove(&key);
            }
        }
    }
}

/// Which grand totals the review shows: a period of rate dates, and optionally a currency
/// (either side), a channel and an order (its id, or its number with or without `#`).
#[derive(Debug, Clone)]
pub struct Selection {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub currency: Option<String>,
    pub channel: Option<String>,
    pub order: Option<String>,
}

impl Selection {
    /// The key range of the period (keys start with their rate date).
    fn range(&self) -> (String, String) {
        let end = self.to.succ_opt().unwrap_or(self.to);
        (self.from.to_string(), end.to_string())
    }

    fn pair_matches(&self, from: &str, to: &str) -> bool {
        self.currency
            .as_deref()
            .is_none_or(|c| c == from || c == to)
    }

    fn row_matches(&self, r: &Row) -> bool {
        self.pair_matches(r.from.currency().code(), r.to.currency().code())
            && self.channel.as_deref().is_none_or(|c| c == r.channel)
            && self.order.as_deref().is_none_or(|o| {
                r.order_id == o
                    || r.number
                        .as_deref()
                        .is_some_and(|n| n == o || n.strip_prefix('#') == Some(o))
            })
    }
}

/// The selection's totals: per currency pair, and the rates used per day.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// As [`super::log::report`] counts them (without a revaluation).
    pub pairs: Vec<PairReport>,
    /// Grand-total entries in the selection, superseded ones included.
    pub rows: u64,
    /// Per pair and rate date, each rate used and how often.
    pub used: BTreeMap<(String, String), BTreeMap<NaiveDate, BTreeMap<Decimal, u64>>>,
}

impl Totals {
    fn add(&mut self, day: NaiveDate, from: &str, to: &str, b: &Bucket) -> Result<(), StoreError> {
        self.rows += b.rows;
        if b.count == 0 {
            return Ok(());
        }
        let used = self
            .used
            .entry((from.to_string(), to.to_string()))
            .or_default()
            .entry(day)
            .or_default();
        for (rate, n) in &b.rates {
            let rate: Decimal = rate.parse().map_err(|e| corrupt("rate", e))?;
            *used.entry(rate).or_default() += n;
        }
        let (low, high) = (used.keys().next().copied(), used.keys().last().copied());
        let i = match self.pairs.iter().position(|p| p.from == from && p.to == to) {
            Some(i) => i,
            None => {
                self.pairs.push(PairReport {
                    from: from.to_string(),
                    to: to.to_string(),
                    count: 0,
                    from_sum: Decimal::ZERO,
                    to_sum: Decimal::ZERO,
                    min_rate: low.unwrap_or_default(),
                    max_rate: high.unwrap_or_default(),
                    revaluation: Decimal::ZERO,
                    revalued_at: None,
                });
                self.pairs.len() - 1
            }
        };
        let p = &mut self.pairs[i];
        p.count += b.count;
        p.from_sum += b.from_sum;
        p.to_sum += b.to_sum;
        p.min_rate = low.map_or(p.min_rate, |l| p.min_rate.min(l));
        p.max_rate = high.map_or(p.max_rate, |h| p.max_rate.max(h));
        Ok(())
    }
}

/// The selection's totals, from the buckets (or, for one order, from its rows).
pub async fn totals<S: FxStore>(store: &S, sel: &Selection) -> Result<Totals, StoreError> {
    let mut out = Totals::default();
    if sel.order.is_some() {
        for r in order_rows(store, sel).await? {
            let mut b = Bucket::default();
            b.add(&r);
            if r.superseded {
                b.remove(&r);
            }
            out.add(
                r.rate_date,
                r.from.currency().code(),
                r.to.currency().code(),
                &b,
            )?;
        }
    } else {
        let (start, end) = sel.range();
        for (key, json) in scan(store, ReviewTable::Buckets, start, &end, usize::MAX).await? {
            let parts: Vec<&str> = key.split('|').collect();
            let [day, channel, _instance, from, to] = parts[..] else {
                return Err(corrupt("bucket key", "not date|channel|instance|from|to"));
            };
            if !sel.pair_matches(from, to) || sel.channel.as_deref().is_some_and(|c| c != channel) {
                continue;
            }
            let day: NaiveDate = day.parse().map_err(|e| corrupt("bucket date", e))?;
            let b: Bucket = serde_json::from_str(&json).map_err(|e| corrupt("bucket", e))?;
            out.add(day, from, to, &b)?;
        }
    }
    out.pairs
        .sort_by(|a, b| (&a.from, &a.to).cmp(&(&b.from, &b.to)));
    Ok(out)
}

/// The rows of the selection's order (by its id or number), through the orders table.
async fn order_rows<S: FxStore>(store: &S, sel: &Selection) -> Result<Vec<Row>, StoreError> {
    let Some(order) = sel.order.as_deref() else {
        return Ok(Vec::new());
    };
    let mut keys = Vec::new();
    for prefix in [
        format!("id:{order}|"),
        format!("no:{}|", order.strip_prefix('#').unwrap_or(order)),
    ] {
        // Every key under the prefix: `|` is followed by `}` in byte order.
        let end = format!("{}}}", &prefix[..prefix.len() - 1]);
        for (_, row_key) in scan(store, ReviewTable::Orders, prefix, &end, usize::MAX).await? {
            keys.push(row_key);
        }
    }
    keys.sort();
    keys.dedup();
    let (start, end) = sel.range();
    keys.retain(|k| *k >= start && *k < end);
    let mut out = Vec::new();
    for json in store
        .fx_review_get(ReviewTable::Rows, keys)
        .await?
        .into_iter()
        .flatten()
    {
        let r: Row = serde_json::from_str(&json).map_err(|e| corrupt("row", e))?;
        if sel.row_matches(&r) {
            out.push(r);
        }
    }
    Ok(out)
}

/// The selection's first `limit` rows, in rate-date then sequence order.
pub async fn scan_rows<S: FxStore>(
    store: &S,
    sel: &Selection,
    limit: usize,
) -> Result<Vec<Row>, StoreError> {
    if sel.order.is_some() {
        let mut rows = order_rows(store, sel).await?;
        rows.truncate(limit);
        return Ok(rows);
    }
    let (start, end) = sel.range();
    let mut out = Vec::new();
    let mut next = start;
    while out.len() < limit {
        let page = store
            .fx_review_scan(ReviewTable::Rows, next.clone(), end.clone(), SCAN)
            .await?;
        let Some((last, _)) = page.last() else { break };
        next = format!("{last}\0");
        let full = page.len() < SCAN;
        for (_, json) in page {
            let r: Row = serde_json::from_str(&json).map_err(|e| corrupt("row", e))?;
            if sel.row_matches(&r) {
                out.push(r);
                if out.len() == limit {
                    break;
                }
            }
        }
        if full {
            break;
        }
    }
    Ok(out)
}

/// Every key and value of a table in `[start, end)`.
async fn scan<S: FxStore>(
    store: &S,
    table: ReviewTable,
    start: String,
    end: &str,
    limit: usize,
) -> Result<Vec<(String, String)>, StoreError> {
    let mut out = Vec::new();
    let mut next = start;
    while out.len() < limit {
        let page = store
            .fx_review_scan(table, next.clone(), end.to_string(), SCAN)
            .await?;
        let done = page.len() < SCAN;
        if let Some((last, _)) = page.last() {
            next = format!("{last}\0");
        }
        out.extend(page);
        if done {
            break;
        }
    }
    Ok(out)
}
