//! FX: dated reference rates (ECB, plus finance's manual table), conversion of every order into
//! the reporting currencies at the rate in force when it was placed, and the append-only,
//! hash-chained FX log finance exports, verifies and reports on.
//!
//! `rates` and `book` and `log` are pure. The [`FxJob`] (run by the daemon on the store's event
//! stream) converts orders and commits their log entries; `sync` reads rate documents from a
//! URL or a file into the store.

pub mod book;
pub mod checkpoint;
mod ecb_hist;
pub mod export;
pub mod log;
pub mod rates;
pub mod review;
pub mod store;
mod verify;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use book::{Converted, RateBook, Rounding};
use log::{FxEntry, conversion_key, fingerprint};
use rates::{RateDoc, RateSource};

pub use export::{LogFilter, Parts, export_all, export_page};
pub use verify::{Verification, verify_log};

use crate::fx::store::FxStore;
use crate::model::{ChangeEvent, CurrencyCode, Money, Order, Record, RecordKind};
use crate::store::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FxError {
    /// No rate for a currency within the maximum age: the order waits (`fx_pending`).
    #[error(
        "no {currency} rate on or before {date} (within {max_age_days} days) from the ECB or the manual table"
    )]
    Missing {
        currency: String,
        date: NaiveDate,
        max_age_days: i64,
    },
    #[error("{0}")]
    Document(String),
    #[error("amount {0} is out of range for conversion")]
    Overflow(String),
}

/// FX settings (`[fx]` in the gateway config).
#[derive(Debug, Clone)]
pub struct FxSettings {
    pub reporting: Vec<CurrencyCode>,
    pub max_age_days: i64,
    pub rounding: Rounding,
    /// Where the scheduled refresh reads ECB rates (a URL or a file path).
    pub ecb_source: Option<String>,
    /// Finance's manual table (a file).
    pub manual_rates: Option<std::path::PathBuf>,
    /// Local time in Frankfurt after which the daily refresh runs.
    pub refresh_after: chrono::NaiveTime,
    /// Signed checkpoints of the log, when a key is configured.
    pub checkpoints: Option<checkpoint::CheckpointSettings>,
}

impl Default for FxSettings {
    fn default() -> Self {
        Self {
            reporting: vec![CurrencyCode::parse("EUR").expect("EUR")],
            max_age_days: 4,
            rounding: Rounding::default(),
            ecb_source: None,
            manual_rates: None,
            refresh_after: chrono::NaiveTime::from_hms_opt(16, 30, 0).expect("valid time"),
            checkpoints: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FxStatus {
    Converted,
    /// A rate is missing: the order is held until it arrives.
    FxPending,
}

impl FxStatus {
    /// The name the API and the metrics use.
    pub fn as_str(&self) -> &'static str {
        match self {
            FxStatus::Converted => "converted",
            FxStatus::FxPending => "fx_pending",
        }
    }
}

/// An order's amounts in one reporting currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Reporting {
    /// `subtotal`, `shipping`, `discount`, `tax`, `grand_total`.
    pub totals: BTreeMap<String, Money>,
    /// Each line's amount, in line order.
    pub lines: Vec<Money>,
}

/// The FX state of an order revision (what `GET /v1/orders/{id}/fx` shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FxView {
    pub order_id: String,
    pub revision: String,
    pub status: FxStatus,
    /// Why it is pending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reporting: BTreeMap<String, Reporting>,
    pub updated_at: DateTime<Utc>,
}

/// One conversion to commit: the store decides whether it is new (by `key` and `fingerprint`)
/// and chains it.
#[derive(Debug, Clone)]
pub struct FxDraft {
    pub key: String,
    pub fingerprint: String,
    pub order_id: String,
    pub revision: String,
    pub order: log::OrderRef,
    pub part: String,
    pub from: Money,
    pub converted: Converted,
}

impl FxDraft {
    /// The entry this draft becomes at `seq` after `prev_hash`.
    pub fn entry(
        &self,
        seq: u64,
        supersedes: Option<String>,
        at: DateTime<Utc>,
        prev_hash: &str,
    ) -> FxEntry {
        let c = &self.converted;
        let mut e = FxEntry {
            seq,
            id: format!("fx.{seq}"),
            order_id: self.order_id.clone(),
            revision: self.revision.clone(),
            order: Some(self.order.clone()),
            part: self.part.clone(),
            from: self.from,
            to: c.to,
            rate: c.rate(),
            rate_date: c.rate_date(),
            from_leg: c.from_leg.clone(),
            to_leg: c.to_leg.clone(),
            rounding: c.rule.clone(),
            supersedes,
            logged_at: at,
            prev_hash: prev_hash.into(),
            hash: String::new(),
        };
        e.hash = e.compute_hash();
        e
    }
}

/// The amounts of an order that are converted, by part name.
pub fn parts(order: &Order) -> Vec<(String, Money)> {
    let t = &order.totals;
    let mut out = vec![
        ("total.subtotal".to_string(), t.subtotal),
        ("total.shipping".to_string(), t.shipping),
        ("total.discount".to_string(), t.discount),
        ("total.tax".to_string(), t.tax),
        (log::GRAND_TOTAL.to_string(), t.grand_total),
    ];
    for (i, l) in order.lines.iter().enumerate() {
        if let Ok(m) = l.amount() {
            out.push((format!("line[{i}].amount"), m));
        }
    }
    out
}

/// Converts every part of an order into every reporting currency: the drafts and the view, or
/// the view of a pending order (with every missing rate).
pub fn convert_order(
    order: &Order,
    revision: &str,
    book: &RateBook,
    settings: &FxSettings,
    now: DateTime<Utc>,
) -> (Vec<FxDraft>, FxView) {
    let mut drafts = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    let mut reporting = BTreeMap::new();
    let order_parts = parts(order);
    for to in &settings.reporting {
        let mut rep = Reporting {
            totals: BTreeMap::new(),
            lines: Vec::new(),
        };
        for (part, from) in &order_parts {
            match book.convert(*from, *to, order.placed_at, &settings.rounding) {
                Ok(c) => {
                    if let Some(name) = part.strip_prefix("total.") {
                        rep.totals.insert(name.to_string(), c.to);
                    } else {
                        rep.lines.push(c.to);
                    }
                    drafts.push(FxDraft {
                        key: conversion_key(order.id.as_str(), part, to.code()),
                        fingerprint: fingerprint(from, to.code(), &c.from_leg, &c.to_leg, &c.rule),
                        order_id: order.id.as_str().to_string(),
                        revision: revision.to_string(),
                        order: log::OrderRef::of(order),
                        part: part.clone(),
                        from: *from,
                        converted: c,
                    });
                }
                Err(e) => {
                    let m = e.to_string();
                    if !missing.contains(&m) {
                        missing.push(m);
                    }
                }
            }
        }
        reporting.insert(to.code().to_string(), rep);
    }
    if missing.is_empty() {
        (
            drafts,
            FxView {
                order_id: order.id.as_str().to_string(),
                revision: revision.to_string(),
                status: FxStatus::Converted,
                missing,
                reporting,
                updated_at: now,
            },
        )
    } else {
        // Nothing is logged for a revision until all of it converts.
        (
            Vec::new(),
            FxView {
                order_id: order.id.as_str().to_string(),
                revision: revision.to_string(),
                status: FxStatus::FxPending,
                missing,
                reporting: BTreeMap::new(),
                updated_at: now,
            },
        )
    }
}

/// The order revision key used in the log (same ordering as the store's).
pub fn revision_key(order: &Order) -> String {
    let json = serde_json::to_vec(order).expect("orders serialize");
    let hash = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(&json)[..8]);
    order.revision.ordering_key(&hash)
}

/// Reads a rate document from a URL (https) or a file: ECB XML, or the manual TOML table.
pub async fn read_document(
    source: RateSource,
    location: &str,
    now: DateTime<Utc>,
) -> Result<RateDoc, FxError> {
    let bytes = read_document_bytes(location).await?;
    document(source, location, &bytes, now)
}

/// The bytes of a rate document at a URL or in a file.
pub async fn read_document_bytes(location: &str) -> Result<Vec<u8>, FxError> {
    Ok(
        if location.starts_with("https://") || location.starts_with("http://") {
            crate::outbound::check_base_url(location)
                .map_err(|p| FxError::Document(format!("{location}: {p}")))?;
            let client = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .redirect(reqwest::redirect::Policy::limited(3))
                .build()
                .map_err(|e| FxError::Document(e.to_string()))?;
            let resp = client
                .get(location)
                .send()
                .await
                .map_err(|e| FxError::Document(format!("{location}: {}", e.without_url())))?;
            if !resp.status().is_success() {
                return Err(FxError::Document(format!(
                    "{location} answered {}",
                    resp.status()
                )));
            }
            resp.bytes()
                .await
                .map_err(|e| FxError::Document(format!("{location}: {e}")))?
                .to_vec()
        } else {
            std::fs::read(location).map_err(|e| FxError::Document(format!("{location}: {e}")))?
        },
    )
}

/// A rate document from its bytes.
pub fn document(
    source: RateSource,
    origin: &str,
    bytes: &[u8],
    now: DateTime<Utc>,
) -> Result<RateDoc, FxError> {
    let hash = rates::sha256_hex(bytes);
    Ok(match source {
        RateSource::Ecb => RateDoc {
            source,
            hash,
            fetched_at: now,
            origin: origin.to_string(),
            days: rates::parse_ecb(bytes)?,
            manual: Vec::new(),
        },
        RateSource::Manual => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| FxError::Document(format!("{origin}: not UTF-8")))?;
            RateDoc {
                source,
                hash,
                fetched_at: now,
                origin: origin.to_string(),
                days: Vec::new(),
                manual: rates::parse_manual(text)?,
            }
        }
    })
}

/// The consumer group of the FX job on the event stream.
pub const FX_GROUP: &str = "fx";

/// What a pass of the FX job did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FxPass {
    /// Events read (orders and others).
    pub events: u64,
    pub orders: u64,
    pub entries: u64,
    pub pending: u64,
}

/// Converts orders as their events arrive, and pending orders when rates arrive.
pub struct FxJob {
    pub settings: Arc<FxSettings>,
    book: RateBook,
    docs_seen: usize,
}

impl FxJob {
    pub async fn new<S: Store + FxStore>(
        store: &S,
        settings: Arc<FxSettings>,
    ) -> Result<Self, StoreError> {
        let docs = store.fx_docs().await?;
        let n = docs.len();
        Ok(Self {
            book: RateBook::new(docs, settings.max_age_days),
            settings,
            docs_seen: n,
        })
    }

    pub fn book(&self) -> &RateBook {
        &self.book
    }

    /// Reloads the rate book when documents were added; returns whether it changed.
    pub async fn refresh_book<S: Store + FxStore>(
        &mut self,
        store: &S,
    ) -> Result<bool, StoreError> {
        let docs = store.fx_docs().await?;
        if docs.len() == self.docs_seen {
            return Ok(false);
        }
        self.docs_seen = docs.len();
        self.book = RateBook::new(docs, self.settings.max_age_days);
        Ok(true)
    }

    /// Converts one order revision and commits it.
    pub async fn convert<S: Store + FxStore>(
        &self,
        store: &S,
        order: &Order,
    ) -> Result<(FxView, Vec<FxEntry>), StoreError> {
        let mut done = self.convert_all(store, &[order]).await?;
        Ok(done.remove(0))
    }

    /// Converts orders and stores them in one commit (in order: see [`FxStore::fx_commit`]).
    async fn convert_all<S: Store + FxStore>(
        &self,
        store: &S,
        orders: &[&Order],
    ) -> Result<Vec<(FxView, Vec<FxEntry>)>, StoreError> {
        if orders.is_empty() {
            return Ok(Vec::new());
        }
        let converted: Vec<(Vec<FxDraft>, FxView)> = orders
            .iter()
            .map(|o| convert_order(o, &revision_key(o), &self.book, &self.settings, Utc::now()))
            .collect();
        let views: Vec<FxView> = converted.iter().map(|(_, v)| v.clone()).collect();
        let entries = store.fx_commit(converted).await?;
        for v in &views {
            metrics::counter!(crate::telemetry::names::FX_CONVERSIONS, "outcome" => v.status.as_str())
                .increment(1);
        }
        Ok(views.into_iter().zip(entries).collect())
    }

    /// Reads order events (at least once; commits are idempotent) and converts each order.
    pub async fn pass<S: Store + FxStore>(
        &self,
        store: &S,
        max: usize,
    ) -> Result<FxPass, StoreError> {
        let mut out = FxPass::default();
        let batch = store.read_events(FX_GROUP, "fx-job", max).await?;
        out.events = batch.len() as u64;
        let orders: Vec<&Order> = batch.iter().filter_map(|e| order_of(&e.event)).collect();
        // One commit for the batch: one fsync on the embedded store, not one per order.
        for (view, entries) in self.convert_all(store, &orders).await? {
            out.orders += 1;
            out.entries += entries.len() as u64;
            if view.status == FxStatus::FxPending {
                out.pending += 1;
            }
        }
        let ids: Vec<String> = batch.iter().map(|e| e.id.clone()).collect();
        if !ids.is_empty() {
            store.ack_events(FX_GROUP, &ids).await?;
        }
        Ok(out)
    }

    /// Tries every pending order again (after new rates).
    pub async fn retry_pending<S: Store + FxStore>(&self, store: &S) -> Result<FxPass, StoreError> {
        let mut out = FxPass::default();
        for id in store.fx_pending().await? {
            let Ok(oid) = crate::model::OrderId::parse(&id) else {
                continue;
            };
            let Some(order) = store.get_order(&oid).await? else {
                continue;
            };
            if order.has_hold(crate::model::TOTALS_MISMATCH) {
                continue;
            }
            let (view, entries) = self.convert(store, &order).await?;
            out.orders += 1;
            out.entries += entries.len() as u64;
            if view.status == FxStatus::FxPending {
                out.pending += 1;
            }
        }
        Ok(out)
    }
}

/// The order of an order event (created or updated snapshot), unless its numbers contradict
/// each other (`totals_mismatch`): such a revision is neither converted nor quoted.
fn order_of(e: &ChangeEvent) -> Option<&Order> {
    match (&e.kind, &e.record) {
        (RecordKind::Order, Record::Order(o))
            if e.change.wrote() && !o.has_hold(crate::model::TOTALS_MISMATCH) =>
        {
            Some(o)
        }
        _ => None,
    }
}

/// The log head: the last entry's sequence number and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

impl Head {
    pub fn genesis() -> Self {
        Head {
            seq: 0,
            hash: log::GENESIS.to_string(),
        }
    }

    pub fn encode(&self) -> String {
        format!("{}|{}", self.seq, self.hash)
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (seq, hash) = s.split_once('|')?;
        Some(Head {
            seq: seq.parse().ok()?,
            hash: hash.to_string(),
        })
    }
}

/// Chains the drafts that are new: a draft whose key's latest entry has the same fingerprint
/// is already logged (a re-delivery); otherwise it becomes the next entry and supersedes that
/// latest entry. Returns the entries, the index updates (key → `id|fingerprint`) and the new
/// head. Shared by both stores (run inside their atomic write).
pub fn chain(
    drafts: &[FxDraft],
    head: &Head,
    latest: impl Fn(&str) -> Option<String>,
    now: DateTime<Utc>,
) -> (Vec<FxEntry>, Vec<(String, String)>, Head) {
    let mut head = head.clone();
    let mut entries = Vec::new();
    let mut index = Vec::new();
    for d in drafts {
        let prior = latest(&d.key);
        let (prior_id, prior_fp) = match prior.as_deref().and_then(|v| v.split_once('|')) {
            Some((id, fp)) => (Some(id.to_string()), Some(fp.to_string())),
            None => (None, None),
        };
        if prior_fp.as_deref() == Some(d.fingerprint.as_str()) {
            continue;
        }
        let e = d.entry(head.seq + 1, prior_id, now, &head.hash);
        head = Head {
            seq: e.seq,
            hash: e.hash.clone(),
        };
        index.push((d.key.clone(), format!("{}|{}", e.id, d.fingerprint)));
        entries.push(e);
    }
    (entries, index, head)
}

/// Reads the whole log, parsed (an unparsable entry is an error here; `verify_log` reports
/// it instead).
pub async fn read_log<S: Store + FxStore>(store: &S) -> Result<Vec<FxEntry>, StoreError> {
    let (entries, unreadable) = verify::read_raw(store).await?;
    match unreadable.first() {
        Some(f) => Err(StoreError::Corrupt(format!(
            "FX log entry {} {}",
            f.entry, f.problem
        ))),
        None => Ok(entries),
    }
}

/// The report over a range of rate dates (see [`log::report`]).
pub async fn report<S: Store + FxStore>(
    store: &S,
    range: &log::ReportRange,
    max_age_days: i64,
) -> Result<Vec<log::PairReport>, StoreError> {
    let book = RateBook::new(store.fx_docs().await?, max_age_days);
    let entries = read_log(store).await?;
    Ok(log::report(&entries, range, &book))
}

#[cfg(test)]
mod tests {
    use super::FxStatus;

    #[test]
    fn status_names_are_the_serialized_ones() {
        for s in [FxStatus::Converted, FxStatus::FxPending] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
