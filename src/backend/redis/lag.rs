//! How far the consumer groups are behind the instances' event streams: one `XINFO GROUPS`
//! per stream, and for a group that is behind, the id of its oldest unacknowledged entry (a
//! stream id starts with the millisecond it was appended).

use super::*;

/// One group on one stream, as `XINFO GROUPS` reports it.
struct GroupInfo {
    pending: u64,
    last_delivered: String,
    /// Entries not yet delivered to the group (`None` when Redis cannot tell).
    lag: Option<u64>,
}

impl RedisStore {
    pub(super) async fn stream_lag(&self, groups: &[&str]) -> StoreResult<Vec<ConsumerLag>> {
        let mut out: Vec<ConsumerLag> = groups
            .iter()
            .map(|g| ConsumerLag {
                group: g.to_string(),
                behind: 0,
                oldest: None,
            })
            .collect();
        for inst in self.opts.instances.clone() {
            let stream = self.keys.of(&inst).events();
            let infos = self.group_infos(&stream).await?;
            for lag in &mut out {
                let (behind, oldest) = match infos.get(&lag.group) {
                    Some(info) => self.behind_of(&stream, &lag.group, info).await?,
                    None => self.unread(&stream).await?,
                };
                lag.behind += behind;
                lag.oldest = match (lag.oldest, oldest) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        Ok(out)
    }

    async fn group_infos(&self, stream: &str) -> StoreResult<BTreeMap<String, GroupInfo>> {
        let mut conn = self.conn();
        let reply: redis::RedisResult<Value> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(stream)
            .query_async(&mut conn)
            .await;
        let reply = match reply {
            Ok(v) => v,
            // No stream yet: nothing was appended, so no group is behind on it.
            Err(e) if e.to_string().contains("no such key") => return Ok(BTreeMap::new()),
            Err(e) => return Err(unavailable(e)),
        };
        let Value::Array(groups) = reply else {
            return Err(StoreError::Corrupt(format!("XINFO GROUPS reply {reply:?}")));
        };
        let mut out = BTreeMap::new();
        for g in &groups {
            let f = fields_of(g);
            let int = |k: &str| match f.get(k) {
                Some(Value::Int(n)) => Some((*n).max(0) as u64),
                _ => None,
            };
            let Some(name) = f.get("name").and_then(bulk_str) else {
                continue;
            };
            let last_delivered = f
                .get("last-delivered-id")
                .and_then(bulk_str)
                .unwrap_or_else(|| "0-0".into());
            let info = GroupInfo {
                pending: int("pending").unwrap_or(0),
                last_delivered,
                lag: int("lag"),
            };
            out.insert(name, info);
        }
        Ok(out)
    }

    /// What a group has not acknowledged on one stream, and when the oldest of it came.
    async fn behind_of(
        &self,
        stream: &str,
        group: &str,
        info: &GroupInfo,
    ) -> StoreResult<(u64, Option<DateTime<Utc>>)> {
        let mut conn = self.conn();
        let undelivered = match info.lag {
            Some(n) => n,
            // Redis cannot count them (it can after entries were deleted): the stream's
            // length is an upper bound.
            None => redis::cmd("XLEN")
                .arg(stream)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?,
        };
        let oldest_id = if info.pending > 0 {
            // XPENDING's summary: [count, smallest id, greatest id, consumers].
            let summary: Value = redis::cmd("XPENDING")
                .arg(stream)
                .arg(group)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            match summary {
                Value::Array(parts) => parts.get(1).and_then(bulk_str),
                _ => None,
            }
        } else if undelivered > 0 {
            self.first_id(stream, &format!("({}", info.last_delivered))
                .await?
        } else {
            None
        };
        Ok((
            info.pending + undelivered,
            oldest_id.as_deref().and_then(id_time),
        ))
    }

    /// A group that does not exist yet has read nothing of the stream.
    async fn unread(&self, stream: &str) -> StoreResult<(u64, Option<DateTime<Utc>>)> {
        let mut conn = self.conn();
        let len: u64 = redis::cmd("XLEN")
            .arg(stream)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let first = self.first_id(stream, "-").await?;
        Ok((len, first.as_deref().and_then(id_time)))
    }

    /// The id of the first entry at or after `start` (`(id` excludes `id`).
    async fn first_id(&self, stream: &str, start: &str) -> StoreResult<Option<String>> {
        let mut conn = self.conn();
        let reply: Value = redis::cmd("XRANGE")
            .arg(stream)
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(match reply {
            Value::Array(entries) => entries.first().and_then(|e| match e {
                Value::Array(parts) => parts.first().and_then(bulk_str),
                _ => None,
            }),
            _ => None,
        })
    }
}

/// A reply's fields: a RESP3 map, or RESP2's flat list of names and values.
fn fields_of(v: &Value) -> BTreeMap<String, Value> {
    let pairs: Vec<(Value, Value)> = match v {
        Value::Map(m) => m.clone(),
        Value::Array(flat) => flat
            .chunks(2)
            .filter_map(|c| match c {
                [k, v] => Some((k.clone(), v.clone())),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    pairs
        .into_iter()
        .filter_map(|(k, v)| bulk_str(&k).map(|k| (k, v)))
        .collect()
}

/// When a stream entry was appended: its id's millisecond part.
fn id_time(id: &str) -> Option<DateTime<Utc>> {
    let ms = id.split_once('-').map_or(id, |(ms, _)| ms).parse().ok()?;
    DateTime::from_timestamp_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_id_says_when_it_was_appended() {
        let t = id_time("1733600000123-4").unwrap();
        assert_eq!(t.timestamp_millis(), 1_733_600_000_123);
        assert_eq!(id_time("x-1"), None);
    }
}
