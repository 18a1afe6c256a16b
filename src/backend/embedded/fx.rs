use super::tables::*;
use super::{EmbeddedStore, unavailable};
use crate::fx::checkpoint::Checkpoint;
use crate::fx::log::FxEntry;
use crate::fx::rates::RateDoc;
use crate::fx::review::ReviewTable;
use crate::fx::store::FxStore;
use crate::fx::{FxDraft, FxView, Head};
use crate::store::{StoreError, StoreResult};
use chrono::Utc;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

impl FxStore for EmbeddedStore {
    async fn fx_put_doc(&self, doc: RateDoc) -> StoreResult<bool> {
        let json = serde_json::to_vec(&doc).map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.run(move |txn| {
            let mut t = txn.open_table(FX_DOCS).map_err(unavailable)?;
            if t.get(doc.hash.as_str()).map_err(unavailable)?.is_some() {
                return Ok(false);
            }
            t.insert(doc.hash.as_str(), json.as_slice())
                .map_err(unavailable)?;
            Ok(true)
        })
        .await
    }

    async fn fx_docs(&self) -> StoreResult<Vec<RateDoc>> {
        self.read(|db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(FX_DOCS).map_err(unavailable)?;
            let mut out = Vec::new();
            for item in t.iter().map_err(unavailable)? {
                let (_, v) = item.map_err(unavailable)?;
                out.push(
                    serde_json::from_slice(v.value())
                        .map_err(|e| StoreError::Corrupt(format!("rate document: {e}")))?,
                );
            }
            Ok(out)
        })
        .await
    }

    async fn fx_commit(
        &self,
        orders: Vec<(Vec<FxDraft>, FxView)>,
    ) -> StoreResult<Vec<Vec<FxEntry>>> {
        let orders = orders
            .into_iter()
            .map(|(drafts, view)| {
                let json =
                    serde_json::to_vec(&view).map_err(|e| StoreError::Invalid(e.to_string()))?;
                Ok((drafts, view, json))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        self.run(move |txn| {
            orders
                .iter()
                .map(|(drafts, view, json)| commit_one(txn, drafts, view, json))
                .collect()
        })
        .await
    }

    async fn fx_view(&self, order_id: &str) -> StoreResult<Option<FxView>> {
        let id = order_id.to_string();
        self.read(move |db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(FX_VIEWS).map_err(unavailable)?;
            t.get(id.as_str())
                .map_err(unavailable)?
                .map(|v| {
                    serde_json::from_slice(v.value())
                        .map_err(|e| StoreError::Corrupt(format!("fx view: {e}")))
                })
                .transpose()
        })
        .await
    }

    async fn fx_pending(&self) -> StoreResult<Vec<String>> {
        self.read(|db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(FX_PENDING).map_err(unavailable)?;
            let mut out = Vec::new();
            for item in t.iter().map_err(unavailable)? {
                let (k, _) = item.map_err(unavailable)?;
                out.push(k.value().to_string());
            }
            Ok(out)
        })
        .await
    }

    async fn fx_pending_count(&self) -> StoreResult<u64> {
        self.read(|db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(FX_PENDING).map_err(unavailable)?;
            t.len().map_err(unavailable)
        })
        .await
    }

    async fn fx_head(&self) -> StoreResult<Head> {
        self.read(|db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(FX_IDX).map_err(unavailable)?;
            Ok(t.get(FX_HEAD_KEY)
                .map_err(unavailable)?
                .and_then(|v| Head::decode(v.value()))
                .unwrap_or_else(Head::genesis))
        })
        .await
    }

    async fn fx_log(&self, after_seq: u64, limit: usize) -> StoreResult<Vec<(u64, String)>> {
        self.read(move |db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(FX_LOG).map_err(unavailable)?;
            let mut out = Vec::with_capacity(limit.min(4096));
            for item in t
                .range(after_seq.saturating_add(1)..)
                .map_err(unavailable)?
            {
                let (k, v) = item.map_err(unavailable)?;
                out.push((k.value(), String::from_utf8_lossy(v.value()).into_owned()));
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }

    async fn fx_put_checkpoint(&self, cp: Checkpoint) -> StoreResult<bool> {
        let json = serde_json::to_vec(&cp).map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.run(move |txn| {
            let mut t = txn.open_table(FX_CHECKPOINTS).map_err(unavailable)?;
            if t.get(cp.seq).map_err(unavailable)?.is_some() {
                return Ok(false);
            }
            t.insert(cp.seq, json.as_slice()).map_err(unavailable)?;
            Ok(true)
        })
        .await
    }

    async fn fx_checkpoints(&self) -> StoreResult<Vec<Checkpoint>> {
        self.read(|db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(FX_CHECKPOINTS).map_err(unavailable)?;
            let mut out = Vec::new();
            for item in t.iter().map_err(unavailable)? {
                let (_, v) = item.map_err(unavailable)?;
                out.push(
                    serde_json::from_slice(v.value())
                        .map_err(|e| StoreError::Corrupt(format!("FX checkpoint: {e}")))?,
                );
            }
            Ok(out)
        })
        .await
    }

    async fn fx_review_upto(&self) -> StoreResult<u64> {
        self.read(|db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(FX_IDX).map_err(unavailable)?;
            review_upto(&t)
        })
        .await
    }

    async fn fx_review_get(
        &self,
        table: ReviewTable,
        keys: Vec<String>,
    ) -> StoreResult<Vec<Option<String>>> {
        self.read(move |db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(review_table(table)).map_err(unavailable)?;
            keys.iter()
                .map(|k| {
                    Ok(t.get(k.as_str())
                        .map_err(unavailable)?
                        .map(|v| v.value().to_string()))
                })
                .collect()
        })
        .await
    }

    async fn fx_review_apply(
        &self,
        expect: u64,
        upto: u64,
        writes: Vec<(ReviewTable, String, String)>,
    ) -> StoreResult<bool> {
        self.run(move |txn| {
            let mut idx = txn.open_table(FX_IDX).map_err(unavailable)?;
            if review_upto(&idx)? != expect {
                return Ok(false);
            }
            for table in [ReviewTable::Buckets, ReviewTable::Rows, ReviewTable::Orders] {
                let mut t = txn.open_table(review_table(table)).map_err(unavailable)?;
                for (_, k, v) in writes.iter().filter(|(w, _, _)| *w == table) {
                    t.insert(k.as_str(), v.as_str()).map_err(unavailable)?;
                }
            }
            idx.insert(FX_REVIEW_KEY, upto.to_string().as_str())
                .map_err(unavailable)?;
            Ok(true)
        })
        .await
    }

    async fn fx_review_scan(
        &self,
        table: ReviewTable,
        start: String,
        end: String,
        limit: usize,
    ) -> StoreResult<Vec<(String, String)>> {
        self.read(move |db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(review_table(table)).map_err(unavailable)?;
            let mut out = Vec::new();
            if start >= end {
                return Ok(out);
            }
            for item in t.range(start.as_str()..end.as_str()).map_err(unavailable)? {
                let (k, v) = item.map_err(unavailable)?;
                out.push((k.value().to_string(), v.value().to_string()));
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }
}

fn review_table(table: ReviewTable) -> redb::TableDefinition<'static, &'static str, &'static str> {
    match table {
        ReviewTable::Buckets => FX_REVIEW_BUCKETS,
        ReviewTable::Rows => FX_REVIEW_ROWS,
        ReviewTable::Orders => FX_REVIEW_ORDERS,
    }
}

/// Where the review index stands (`~review` in the FX index; 0 before its first batch).
fn review_upto(t: &impl ReadableTable<&'static str, &'static str>) -> StoreResult<u64> {
    match t.get(FX_REVIEW_KEY).map_err(unavailable)? {
        Some(v) => v
            .value()
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("FX review position: {e}"))),
        None => Ok(0),
    }
}

/// One order's FX commit inside the batch's transaction: what it reads (the log head, the
/// index) includes what the orders before it in the batch wrote.
fn commit_one(
    txn: &redb::WriteTransaction,
    drafts: &[FxDraft],
    view: &FxView,
    view_json: &[u8],
) -> StoreResult<Vec<FxEntry>> {
    let mut idx = txn.open_table(FX_IDX).map_err(unavailable)?;
    let head = idx
        .get(FX_HEAD_KEY)
        .map_err(unavailable)?
        .and_then(|v| Head::decode(v.value()))
        .unwrap_or_else(Head::genesis);
    let latest = |k: &str| idx.get(k).ok().flatten().map(|v| v.value().to_string());
    let (entries, updates, head) = crate::fx::chain(drafts, &head, latest, Utc::now());
    let mut log = txn.open_table(FX_LOG).map_err(unavailable)?;
    for e in &entries {
        let json = serde_json::to_vec(e).map_err(|e| StoreError::Invalid(e.to_string()))?;
        log.insert(e.seq, json.as_slice()).map_err(unavailable)?;
    }
    for (k, v) in &updates {
        idx.insert(k.as_str(), v.as_str()).map_err(unavailable)?;
    }
    if !entries.is_empty() {
        idx.insert(FX_HEAD_KEY, head.encode().as_str())
            .map_err(unavailable)?;
    }
    let mut views = txn.open_table(FX_VIEWS).map_err(unavailable)?;
    views
        .insert(view.order_id.as_str(), view_json)
        .map_err(unavailable)?;
    let mut pending = txn.open_table(FX_PENDING).map_err(unavailable)?;
    if view.status == crate::fx::FxStatus::FxPending {
        pending
            .insert(view.order_id.as_str(), ())
            .map_err(unavailable)?;
    } else {
        pending
            .remove(view.order_id.as_str())
            .map_err(unavailable)?;
    }
    Ok(entries)
}
