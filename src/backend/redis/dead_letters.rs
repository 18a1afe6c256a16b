//! Dead letters: pages, reads, resolution by replay, and recording a failed replay.

use super::keys::Index;
use super::write::{parse_changes, prepare_in, results};
use super::*;

impl RedisStore {
    pub(super) async fn dead_letters_page(
        &self,
        q: DeadLetterQuery,
    ) -> StoreResult<Page<DeadLetter>> {
        let (merged, next) = self
            .merged_page(
                q.instance.as_ref(),
                Index::DeadLetters,
                i64::MIN / 2,
                q.after.as_ref(),
                q.limit,
            )
            .await?;
        let mut items = Vec::with_capacity(merged.len());
        for (_, id, inst) in &merged {
            // A dead letter resolved between the index read and this read is skipped.
            if let Some(dl) = self
                .get_json(self.keys.of(inst).dead_letter(id), "dead letter")
                .await?
            {
                items.push(dl);
            }
        }
        Ok(Page { items, next })
    }

    pub(super) async fn dead_letter(&self, id: &str) -> StoreResult<Option<DeadLetter>> {
        let inst = Self::instance_of(id)?;
        self.get_json(self.keys.of(inst).dead_letter(id), "dead letter")
            .await
    }

    pub(super) async fn resolve(
        &self,
        id: &str,
        records: Vec<Record>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<RecordResult>> {
        let inst = Self::instance_of(id)?;
        let prepared = prepare_in(inst, &records)?;
        let dl = self.dead_letter(id).await?.ok_or(StoreError::NotFound)?;
        let mut inv = self.scripts.resolve.prepare_invoke();
        let ik = self.keys.of(inst);
        inv.key(ik.dead_letter(id))
            .key(ik.index(Index::DeadLetters))
            .key(ik.raw(&dl.delivery_id))
            .key(ik.events())
            .key(ik.index(Index::Orders))
            .key(ik.dead_letters_of(&dl.delivery_id));
        inv.arg(id)
            .arg(self.opts.raw_retention.as_secs())
            .arg(now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
            .arg(prepared.len())
            .arg(&dl.delivery_id);
        self.push_records(&mut inv, inst, &prepared);
        let mut conn = self.conn();
        let reply: Vec<Value> = inv.invoke_async(&mut conn).await.map_err(unavailable)?;
        match reply.first().and_then(bulk_str).as_deref() {
            Some("notfound") => Err(StoreError::NotFound),
            Some("resolved") => results(&prepared, parse_changes(&reply[1..])?),
            other => Err(StoreError::Corrupt(format!(
                "unexpected resolve reply {other:?}"
            ))),
        }
    }

    pub(super) async fn record_failed_replay(
        &self,
        id: &str,
        reason: DeadLetterReason,
    ) -> StoreResult<DeadLetter> {
        let mut dl = self.dead_letter(id).await?.ok_or(StoreError::NotFound)?;
        dl.reason = reason;
        dl.failed_replays += 1;
        let json = serde_json::to_string(&dl).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let mut conn = self.conn();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.keys.of(&dl.instance).dead_letter(id))
            .arg(json)
            .arg("XX")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        set.map(|_| dl).ok_or(StoreError::NotFound)
    }

    /// ZCARD of each instance's dead-letter index.
    pub(super) async fn dead_letter_counts(&self) -> StoreResult<BTreeMap<String, u64>> {
        let instances = self.opts.instances.clone();
        if instances.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut pipe = redis::pipe();
        for inst in &instances {
            pipe.cmd("ZCARD")
                .arg(self.keys.of(inst).index(Index::DeadLetters));
        }
        let counts: Vec<u64> = pipe
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(instances
            .into_iter()
            .zip(counts)
            .filter(|(_, n)| *n > 0)
            .collect())
    }
}
