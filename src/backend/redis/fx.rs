use super::*;
use crate::fx::checkpoint::Checkpoint;
use crate::fx::log::FxEntry;
use crate::fx::rates::RateDoc;
use crate::fx::review::ReviewTable;
use crate::fx::store::FxStore;
use crate::fx::{FxDraft, FxView, Head};

impl FxStore for RedisStore {
    async fn fx_put_doc(&self, doc: RateDoc) -> StoreResult<bool> {
        let json = serde_json::to_string(&doc).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let mut conn = self.conn();
        let added: i64 = redis::cmd("HSETNX")
            .arg(self.keys.fx("docs"))
            .arg(&doc.hash)
            .arg(json)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(added == 1)
    }

    async fn fx_docs(&self) -> StoreResult<Vec<RateDoc>> {
        let mut conn = self.conn();
        let all: Vec<(String, Vec<u8>)> = redis::cmd("HGETALL")
            .arg(self.keys.fx("docs"))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        all.into_iter()
            .map(|(_, v)| {
                serde_json::from_slice(&v)
                    .map_err(|e| StoreError::Corrupt(format!("rate document: {e}")))
            })
            .collect()
    }

    async fn fx_commit(
        &self,
        orders: Vec<(Vec<FxDraft>, FxView)>,
    ) -> StoreResult<Vec<Vec<FxEntry>>> {
        let mut out = Vec::with_capacity(orders.len());
        // Chunks keep each script short: Redis runs it without serving anyone else.
        for chunk in orders.chunks(FX_COMMIT_CHUNK) {
            out.extend(self.fx_commit_chunk(chunk).await?);
        }
        Ok(out)
    }

    async fn fx_view(&self, order_id: &str) -> StoreResult<Option<FxView>> {
        self.get_json(self.keys.fx_view(order_id), "fx view").await
    }

    async fn fx_pending(&self) -> StoreResult<Vec<String>> {
        let mut conn = self.conn();
        redis::cmd("SMEMBERS")
            .arg(self.keys.fx("pending"))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn fx_pending_count(&self) -> StoreResult<u64> {
        redis::cmd("SCARD")
            .arg(self.keys.fx("pending"))
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)
    }

    async fn fx_head(&self) -> StoreResult<Head> {
        let mut conn = self.conn();
        let head: Option<String> = redis::cmd("GET")
            .arg(self.keys.fx("head"))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(head
            .as_deref()
            .and_then(Head::decode)
            .unwrap_or_else(Head::genesis))
    }

    async fn fx_log(&self, after_seq: u64, limit: usize) -> StoreResult<Vec<(u64, String)>> {
        // Entries are a hash of zero-padded sequence numbers; read by sequence up to the head
        // (and past it, so entries written beyond a damaged head are still seen).
        let mut conn = self.conn();
        let total: u64 = redis::cmd("HLEN")
            .arg(self.keys.fx("log"))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let head = self.fx_head().await?.seq;
        let last = head.max(total) + 16;
        let mut out = Vec::new();
        let mut next = after_seq + 1;
        while out.len() < limit && next <= last {
            let to = (next + (limit - out.len()) as u64 - 1).min(last);
            let fields: Vec<String> = (next..=to).map(|s| format!("{s:020}")).collect();
            let values: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(self.keys.fx("log"))
                .arg(&fields)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            for (seq, v) in (next..=to).zip(values) {
                if let Some(v) = v {
                    out.push((seq, v));
                }
            }
            next = to + 1;
        }
        Ok(out)
    }

    async fn fx_put_checkpoint(&self, cp: Checkpoint) -> StoreResult<bool> {
        let json = serde_json::to_string(&cp).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let mut conn = self.conn();
        let added: i64 = redis::cmd("HSETNX")
            .arg(self.keys.fx("checkpoints"))
            .arg(format!("{:020}", cp.seq))
            .arg(json)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(added == 1)
    }

    async fn fx_checkpoints(&self) -> StoreResult<Vec<Checkpoint>> {
        let mut conn = self.conn();
        let mut all: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(self.keys.fx("checkpoints"))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        all.sort();
        all.into_iter()
            .map(|(_, v)| {
                serde_json::from_str(&v)
                    .map_err(|e| StoreError::Corrupt(format!("FX checkpoint: {e}")))
            })
            .collect()
    }

    async fn fx_review_upto(&self) -> StoreResult<u64> {
        let v: Option<String> = redis::cmd("GET")
            .arg(self.keys.fx("review"))
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        v.map_or(Ok(0), |v| {
            v.parse()
                .map_err(|e| StoreError::Corrupt(format!("FX review position: {e}")))
        })
    }

    async fn fx_review_get(
        &self,
        table: ReviewTable,
        keys: Vec<String>,
    ) -> StoreResult<Vec<Option<String>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        redis::cmd("HMGET")
            .arg(self.keys.fx(review_keys(table).1))
            .arg(&keys)
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)
    }

    async fn fx_review_apply(
        &self,
        expect: u64,
        upto: u64,
        writes: Vec<(ReviewTable, String, String)>,
    ) -> StoreResult<bool> {
        let tables = [ReviewTable::Buckets, ReviewTable::Rows, ReviewTable::Orders];
        let mut inv = self.scripts.fx_review.prepare_invoke();
        inv.key(self.keys.fx("review"));
        for t in tables {
            let (keys, values) = review_keys(t);
            inv.key(self.keys.fx(keys)).key(self.keys.fx(values));
        }
        inv.arg(expect).arg(upto).arg(writes.len());
        for (table, k, v) in &writes {
            let i = tables.iter().position(|t| t == table).unwrap_or(0);
            inv.arg(i).arg(k).arg(v);
        }
        let applied: i64 = inv
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(applied == 1)
    }

    async fn fx_review_scan(
        &self,
        table: ReviewTable,
        start: String,
        end: String,
        limit: usize,
    ) -> StoreResult<Vec<(String, String)>> {
        if start >= end {
            return Ok(Vec::new());
        }
        let (keys, values) = review_keys(table);
        let mut conn = self.conn();
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.keys.fx(keys))
            .arg(format!("[{start}"))
            .arg(format!("({end}"))
            .arg("BYLEX")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let found: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.keys.fx(values))
            .arg(&members)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(members
            .into_iter()
            .zip(found)
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect())
    }
}

/// The sorted set of a review table's keys (lexical) and the hash of its values.
fn review_keys(table: ReviewTable) -> (&'static str, &'static str) {
    match table {
        ReviewTable::Buckets => ("review_bucket_keys", "review_buckets"),
        ReviewTable::Rows => ("review_row_keys", "review_rows"),
        ReviewTable::Orders => ("review_order_keys", "review_orders"),
    }
}

/// Orders per FX commit script.
const FX_COMMIT_CHUNK: usize = 50;

impl RedisStore {
    /// Some orders' FX commit, optimistic: read the head and the index, chain every order in
    /// Rust (SHA-256 is not available in Lua), each seeing the index entries the ones before it
    /// wrote, then commit them in one script only if the head has not moved.
    async fn fx_commit_chunk(
        &self,
        orders: &[(Vec<FxDraft>, FxView)],
    ) -> StoreResult<Vec<Vec<FxEntry>>> {
        let views = orders
            .iter()
            .map(|(_, v)| serde_json::to_string(v).map_err(|e| StoreError::Invalid(e.to_string())))
            .collect::<StoreResult<Vec<_>>>()?;
        let keys: Vec<String> = orders
            .iter()
            .flat_map(|(drafts, _)| drafts.iter().map(|d| d.key.clone()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut conn = self.conn();
        for _ in 0..50 {
            let head_text: Option<String> = redis::cmd("GET")
                .arg(self.keys.fx("head"))
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            let latest: Vec<Option<String>> = if keys.is_empty() {
                Vec::new()
            } else {
                redis::cmd("HMGET")
                    .arg(self.keys.fx("idx"))
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)?
            };
            let mut index: std::collections::HashMap<String, String> = keys
                .iter()
                .zip(latest)
                .filter_map(|(k, v)| v.map(|v| (k.clone(), v)))
                .collect();
            let mut head = head_text
                .as_deref()
                .and_then(Head::decode)
                .unwrap_or_else(Head::genesis);
            let now = Utc::now();
            let (mut per_order, mut updates) = (Vec::new(), Vec::new());
            for (drafts, _) in orders {
                let (entries, written, next) =
                    crate::fx::chain(drafts, &head, |k| index.get(k).cloned(), now);
                index.extend(written.iter().cloned());
                updates.extend(written);
                per_order.push(entries);
                head = next;
            }
            let mut inv = self.scripts.fx_commit.prepare_invoke();
            inv.key(self.keys.fx("head"))
                .key(self.keys.fx("log"))
                .key(self.keys.fx("idx"))
                .key(self.keys.fx("pending"));
            for (_, view) in orders {
                inv.key(self.keys.fx_view(&view.order_id));
            }
            let n: usize = per_order.iter().map(Vec::len).sum();
            inv.arg(head_text.unwrap_or_default())
                .arg(head.encode())
                .arg(n);
            for e in per_order.iter().flatten() {
                let json =
                    serde_json::to_string(e).map_err(|e| StoreError::Invalid(e.to_string()))?;
                inv.arg(format!("{:020}", e.seq)).arg(json);
            }
            inv.arg(updates.len());
            for (k, v) in &updates {
                inv.arg(k).arg(v);
            }
            for ((_, view), json) in orders.iter().zip(&views) {
                let pending = view.status == crate::fx::FxStatus::FxPending;
                inv.arg(json)
                    .arg(&view.order_id)
                    .arg(if pending { "1" } else { "0" });
            }
            let reply: String = inv.invoke_async(&mut conn).await.map_err(unavailable)?;
            if reply == "ok" {
                return Ok(per_order);
            }
        }
        Err(StoreError::Unavailable(
            "the FX log head kept moving; retry".into(),
        ))
    }
}
