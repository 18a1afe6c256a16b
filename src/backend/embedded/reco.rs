use super::tables::*;
use super::{EmbeddedStore, unavailable};
use crate::reco::store::{RankEntry, RecoKind, RecoPart, RecoResults, RecoStore, RecoWrite};
use crate::store::{StoreError, StoreResult};
use redb::ReadableDatabase;

impl RecoStore for EmbeddedStore {
    async fn reco_apply(&self, writes: Vec<RecoWrite>) -> StoreResult<()> {
        self.run(move |txn| {
            let mut t = txn.open_table(RECO_DATA).map_err(unavailable)?;
            for w in writes {
                let key = (w.kind.as_str(), w.key.as_str());
                match &w.json {
                    Some(j) => {
                        t.insert(key, j.as_bytes()).map_err(unavailable)?;
                    }
                    None => {
                        t.remove(key).map_err(unavailable)?;
                    }
                }
            }
            Ok(())
        })
        .await
    }

    async fn reco_load(&self, kind: RecoKind) -> StoreResult<Vec<String>> {
        self.read(move |db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(RECO_DATA).map_err(unavailable)?;
            let k = kind.as_str();
            let mut out = Vec::new();
            for item in t.range((k, "")..).map_err(unavailable)? {
                let (key, v) = item.map_err(unavailable)?;
                if key.value().0 != k {
                    break;
                }
                out.push(
                    String::from_utf8(v.value().to_vec())
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                );
            }
            Ok(out)
        })
        .await
    }

    async fn reco_reset(&self, group: &str) -> StoreResult<()> {
        let group = group.to_string();
        self.run(move |txn| {
            txn.delete_table(RECO_DATA).map_err(unavailable)?;
            txn.open_table(RECO_DATA).map_err(unavailable)?;
            let mut g = txn.open_table(GROUPS).map_err(unavailable)?;
            g.remove(group.as_str()).map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn reco_publish(&self, results: RecoResults) -> StoreResult<()> {
        self.run(move |txn| {
            let part = match &results {
                RecoResults::Recommendations { .. } => RecoPart::Recommendations,
                RecoResults::Rankings { .. } => RecoPart::Rankings,
            };
            let meta = match results {
                RecoResults::Recommendations { meta, lists } => {
                    txn.delete_table(RECO_LISTS).map_err(unavailable)?;
                    let mut t = txn.open_table(RECO_LISTS).map_err(unavailable)?;
                    for (strategy, customer, json) in &lists {
                        t.insert((strategy.as_str(), customer.as_str()), json.as_bytes())
                            .map_err(unavailable)?;
                    }
                    meta
                }
                RecoResults::Rankings { meta, sets } => {
                    txn.delete_table(RECO_RANK).map_err(unavailable)?;
                    let mut t = txn.open_table(RECO_RANK).map_err(unavailable)?;
                    for (key, entries) in &sets {
                        for (pos, (item, score, detail)) in entries.iter().enumerate() {
                            let json = serde_json::to_vec(&(item, score, detail))
                                .map_err(|e| StoreError::Invalid(e.to_string()))?;
                            t.insert((key.as_str(), pos as u32), json.as_slice())
                                .map_err(unavailable)?;
                        }
                    }
                    meta
                }
            };
            let mut m = txn.open_table(RECO_META).map_err(unavailable)?;
            m.insert(part.as_str(), meta.as_bytes())
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn reco_list(&self, strategy: &str, customer: &str) -> StoreResult<Option<String>> {
        let (strategy, customer) = (strategy.to_string(), customer.to_string());
        self.read(move |db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(RECO_LISTS).map_err(unavailable)?;
            Ok(t.get((strategy.as_str(), customer.as_str()))
                .map_err(unavailable)?
                .map(|v| String::from_utf8_lossy(v.value()).into_owned()))
        })
        .await
    }

    async fn reco_ranking(&self, key: &str, k: usize) -> StoreResult<Option<Vec<RankEntry>>> {
        let key = key.to_string();
        self.read(move |db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(RECO_RANK).map_err(unavailable)?;
            let mut out = Vec::new();
            for item in t
                .range((key.as_str(), 0u32)..=(key.as_str(), u32::MAX))
                .map_err(unavailable)?
                .take(k)
            {
                let (_, v) = item.map_err(unavailable)?;
                let e: RankEntry = serde_json::from_slice(v.value())
                    .map_err(|e| StoreError::Corrupt(format!("ranking entry: {e}")))?;
                out.push(e);
            }
            Ok((!out.is_empty()).then_some(out))
        })
        .await
    }

    async fn reco_meta(&self, part: RecoPart) -> StoreResult<Option<String>> {
        self.read(move |db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(RECO_META).map_err(unavailable)?;
            Ok(t.get(part.as_str())
                .map_err(unavailable)?
                .map(|v| String::from_utf8_lossy(v.value()).into_owned()))
        })
        .await
    }
}
