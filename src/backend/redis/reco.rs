use super::*;
use crate::reco::store::{RankEntry, RecoKind, RecoPart, RecoResults, RecoStore, RecoWrite};

impl RecoStore for RedisStore {
    async fn reco_apply(&self, writes: Vec<RecoWrite>) -> StoreResult<()> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for w in &writes {
            let key = self.keys.reco(w.kind.as_str());
            match &w.json {
                Some(j) => pipe.cmd("HSET").arg(key).arg(&w.key).arg(j).ignore(),
                None => pipe.cmd("HDEL").arg(key).arg(&w.key).ignore(),
            };
        }
        let mut conn = self.conn();
        pipe.query_async::<()>(&mut conn).await.map_err(unavailable)
    }

    async fn reco_load(&self, kind: RecoKind) -> StoreResult<Vec<String>> {
        let mut conn = self.conn();
        let key = self.keys.reco(kind.as_str());
        let mut cursor: u64 = 0;
        let mut all: Vec<(String, String)> = Vec::new();
        loop {
            let (next, page): (u64, Vec<(String, String)>) = redis::cmd("HSCAN")
                .arg(&key)
                .arg(cursor)
                .arg("COUNT")
                .arg(2000)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            all.extend(page);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        // HSCAN may return a field twice while the hash is rehashed; key order, once each.
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all.dedup_by(|a, b| a.0 == b.0);
        Ok(all.into_iter().map(|(_, v)| v).collect())
    }

    async fn reco_reset(&self, group: &str) -> StoreResult<()> {
        let mut conn = self.conn();
        for kind in [RecoKind::Order, RecoKind::Item] {
            let _: u64 = redis::cmd("DEL")
                .arg(self.keys.reco(kind.as_str()))
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
        }
        for inst in self.opts.instances.clone() {
            let stream = self.keys.of(&inst).events();
            let _: redis::RedisResult<u64> = redis::cmd("XGROUP")
                .arg("DESTROY")
                .arg(&stream)
                .arg(group)
                .query_async(&mut conn)
                .await;
            self.groups
                .lock()
                .expect("lock")
                .remove(&(stream, group.to_string()));
        }
        Ok(())
    }

    async fn reco_publish(&self, results: RecoResults) -> StoreResult<()> {
        let part = match &results {
            RecoResults::Recommendations { .. } => RecoPart::Recommendations,
            RecoResults::Rankings { .. } => RecoPart::Rankings,
        };
        let mut conn = self.conn();
        let generation: u64 = redis::cmd("INCR")
            .arg(self.keys.reco("seq"))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let gens_key = self.keys.reco_generations(part.as_str());
        let keys_key = |g: u64| self.keys.reco_generation_keys(part.as_str(), g);
        // Register the generation before writing it, so a crash mid-write leaves keys the
        // next publish finds and removes.
        let _: () = redis::cmd("SADD")
            .arg(&gens_key)
            .arg(generation)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let mut written: Vec<String> = Vec::new();
        let meta = match results {
            RecoResults::Recommendations { meta, lists } => {
                let mut by_strategy: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
                for (st, c, j) in &lists {
                    by_strategy.entry(st).or_default().push((c, j));
                }
                for (st, entries) in by_strategy {
                    let key = self.keys.reco_recs(generation, st);
                    for chunk in entries.chunks(1000) {
                        let mut cmd = redis::cmd("HSET");
                        cmd.arg(&key);
                        for (c, j) in chunk {
                            cmd.arg(*c).arg(*j);
                        }
                        let _: u64 = cmd.query_async(&mut conn).await.map_err(unavailable)?;
                    }
                    written.push(key);
                }
                meta
            }
            RecoResults::Rankings { meta, sets } => {
                // A list in the order the job ranked them: the store applies no rule of its own.
                for (set, entries) in &sets {
                    let key = self.keys.reco_ranking(generation, set);
                    for chunk in entries.chunks(1000) {
                        let mut push = redis::cmd("RPUSH");
                        push.arg(&key);
                        for entry in chunk {
                            let json = serde_json::to_string(entry)
                                .map_err(|e| StoreError::Invalid(e.to_string()))?;
                            push.arg(json);
                        }
                        let _: u64 = push.query_async(&mut conn).await.map_err(unavailable)?;
                    }
                    written.push(key);
                }
                meta
            }
        };
        if !written.is_empty() {
            let _: u64 = redis::cmd("SADD")
                .arg(keys_key(generation))
                .arg(&written)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
        }
        // The flip: readers move to the new generation in one step.
        let mut flip = redis::pipe();
        flip.atomic()
            .cmd("SET")
            .arg(self.keys.reco_current(part.as_str()))
            .arg(generation)
            .ignore()
            .cmd("SET")
            .arg(self.keys.reco_meta(part.as_str()))
            .arg(&meta)
            .ignore();
        flip.query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)?;
        // Then every older generation (including any a crash left half-written) goes.
        let gens: Vec<u64> = redis::cmd("SMEMBERS")
            .arg(&gens_key)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        for g in gens.into_iter().filter(|g| *g != generation) {
            let keys: Vec<String> = redis::cmd("SMEMBERS")
                .arg(keys_key(g))
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            let mut pipe = redis::pipe();
            for k in keys {
                pipe.cmd("UNLINK").arg(k).ignore();
            }
            pipe.cmd("UNLINK").arg(keys_key(g)).ignore();
            pipe.cmd("SREM").arg(&gens_key).arg(g).ignore();
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    async fn reco_list(&self, strategy: &str, customer: &str) -> StoreResult<Option<String>> {
        let g = self.reco_generation(RecoPart::Recommendations).await?;
        if g == 0 {
            return Ok(None);
        }
        let mut conn = self.conn();
        redis::cmd("HGET")
            .arg(self.keys.reco_recs(g, strategy))
            .arg(customer)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn reco_ranking(&self, key: &str, k: usize) -> StoreResult<Option<Vec<RankEntry>>> {
        let g = self.reco_generation(RecoPart::Rankings).await?;
        if g == 0 || k == 0 {
            return Ok(None);
        }
        let mut conn = self.conn();
        let entries: Vec<String> = redis::cmd("LRANGE")
            .arg(self.keys.reco_ranking(g, key))
            .arg(0)
            .arg(k as i64 - 1)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if entries.is_empty() {
            return Ok(None);
        }
        entries
            .iter()
            .map(|e| {
                serde_json::from_str(e)
                    .map_err(|e| StoreError::Corrupt(format!("ranking entry: {e}")))
            })
            .collect::<StoreResult<Vec<RankEntry>>>()
            .map(Some)
    }

    async fn reco_meta(&self, part: RecoPart) -> StoreResult<Option<String>> {
        let mut conn = self.conn();
        redis::cmd("GET")
            .arg(self.keys.reco_meta(part.as_str()))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)
    }
}

impl RedisStore {
    /// The generation of a part's current results (0: never published).
    async fn reco_generation(&self, part: RecoPart) -> StoreResult<u64> {
        let mut conn = self.conn();
        let g: Option<u64> = redis::cmd("GET")
            .arg(self.keys.reco_current(part.as_str()))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(g.unwrap_or(0))
    }
}
