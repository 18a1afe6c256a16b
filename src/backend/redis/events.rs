//! The event streams (one per instance, read through consumer groups) and the lifecycle
//! outboxes that carry facts to an order of another instance.

use super::keys::Index;
use super::*;

/// The consumer group of the lifecycle outboxes.
const OUTBOX_GROUP: &str = "lifecycle";

impl RedisStore {
    /// Applies the facts waiting in the instances' outboxes to their orders. Idempotent (a fact
    /// is recorded once per id), so a crash between apply and acknowledge only repeats work.
    pub(super) async fn drain_outboxes(&self, max: usize) -> StoreResult<u64> {
        let mut applied = 0;
        for inst in self.opts.instances.clone() {
            let outbox = self.keys.of(&inst).outbox();
            self.ensure_group(&outbox, OUTBOX_GROUP).await?;
            let mut conn = self.conn();
            for start in ["0", ">"] {
                let reply: Value = redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(OUTBOX_GROUP)
                    .arg("gateway")
                    .arg("COUNT")
                    .arg(max)
                    .arg("STREAMS")
                    .arg(&outbox)
                    .arg(start)
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)?;
                for (sid, f) in stream_entries(&reply)? {
                    let get = |k: &str| {
                        f.get(k).and_then(bulk_str).ok_or_else(|| {
                            StoreError::Corrupt(format!("outbox entry {sid} without {k}"))
                        })
                    };
                    let order_inst = get("order_instance")?;
                    let order_id = get("order")?;
                    let _: Value = self
                        .scripts
                        .fact
                        .key(self.keys.of(&order_inst).lifecycle(&order_id))
                        .key(self.keys.of(&order_inst).record(&order_id))
                        .key(self.keys.of(&order_inst).events())
                        .arg(get("id")?)
                        .arg(get("rank")?)
                        .arg(&order_id)
                        .arg(bulk_bytes(&f, "doc").ok_or_else(|| {
                            StoreError::Corrupt(format!("outbox entry {sid} without doc"))
                        })?)
                        .arg(get("delivery")?)
                        .arg(get("at")?)
                        .invoke_async(&mut conn)
                        .await
                        .map_err(unavailable)?;
                    let _: Value = redis::pipe()
                        .cmd("XACK")
                        .arg(&outbox)
                        .arg(OUTBOX_GROUP)
                        .arg(&sid)
                        .cmd("XDEL")
                        .arg(&outbox)
                        .arg(&sid)
                        .query_async(&mut conn)
                        .await
                        .map_err(unavailable)?;
                    applied += 1;
                }
            }
        }
        Ok(applied)
    }

    pub(super) async fn ensure_group(&self, stream: &str, group: &str) -> StoreResult<()> {
        let key = (stream.to_string(), group.to_string());
        if self.groups.lock().expect("lock").contains(&key) {
            return Ok(());
        }
        let mut conn = self.conn();
        let r: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream)
            .arg(group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match r {
            Ok(()) => {}
            Err(e) if e.to_string().contains("BUSYGROUP") => {}
            Err(e) => return Err(unavailable(e)),
        }
        self.groups.lock().expect("lock").insert(key);
        Ok(())
    }

    pub(super) async fn read_stream(
        &self,
        group: &str,
        consumer: &str,
        max: usize,
    ) -> StoreResult<Vec<StreamEntry>> {
        let mut out = Vec::new();
        for inst in self.opts.instances.clone() {
            if out.len() >= max {
                break;
            }
            let stream = self.keys.of(&inst).events();
            self.ensure_group(&stream, group).await?;
            let mut conn = self.conn();
            // This consumer's delivered-but-unacknowledged entries first, then new ones.
            for start in ["0", ">"] {
                let want = max - out.len();
                if want == 0 {
                    break;
                }
                let reply: Value = redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(group)
                    .arg(consumer)
                    .arg("COUNT")
                    .arg(want)
                    .arg("STREAMS")
                    .arg(&stream)
                    .arg(start)
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)?;
                let entries = stream_entries(&reply)?;
                let n = entries.len();
                for (id, fields) in entries {
                    out.push(StreamEntry {
                        id: format!("{inst}|{id}"),
                        event: event_from_fields(&fields, &inst)?,
                    });
                }
                if start == "0" && n > 0 {
                    break; // drain pending before taking new ones
                }
            }
        }
        Ok(out)
    }

    pub(super) async fn ack_stream(&self, group: &str, ids: &[String]) -> StoreResult<()> {
        let mut by_instance: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for id in ids {
            let (inst, sid) = id
                .split_once('|')
                .ok_or_else(|| StoreError::Invalid(format!("bad event id {id}")))?;
            by_instance.entry(inst).or_default().push(sid);
        }
        let mut conn = self.conn();
        for (inst, sids) in by_instance {
            let _: u64 = redis::cmd("XACK")
                .arg(self.keys.of(inst).events())
                .arg(group)
                .arg(&sids)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    pub(super) async fn stream_len(&self) -> StoreResult<u64> {
        let mut conn = self.conn();
        let mut total = 0;
        for inst in &self.opts.instances {
            let n: u64 = redis::cmd("XLEN")
                .arg(self.keys.of(inst).events())
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            total += n;
        }
        Ok(total)
    }
}

/// Turns a stream entry's fields back into a change event.
fn event_from_fields(fields: &BTreeMap<String, Value>, instance: &str) -> StoreResult<ChangeEvent> {
    let get = |k: &str| {
        fields
            .get(k)
            .and_then(bulk_str)
            .ok_or_else(|| StoreError::Corrupt(format!("event without {k}")))
    };
    let kind = match get("kind")?.as_str() {
        "order" => RecordKind::Order,
        "listing" => RecordKind::Listing,
        "stock" => RecordKind::Stock,
        "fact" => RecordKind::Fact,
        other => return Err(StoreError::Corrupt(format!("event kind {other}"))),
    };
    let change = match get("change")?.as_str() {
        "created" => Change::Created,
        "updated" => Change::Updated,
        other => return Err(StoreError::Corrupt(format!("event change {other}"))),
    };
    let at = DateTime::parse_from_rfc3339(&get("at")?)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?
        .to_utc();
    let rank = |k: &str| {
        fields
            .get(k)
            .and_then(bulk_str)
            .and_then(|s| s.parse::<u8>().ok())
            .map(lifecycle::from_rank)
    };
    let transition = match (fields.get("order").and_then(bulk_str), rank("to")) {
        (Some(order_id), Some(to)) => Some(Transition {
            order_id,
            from: rank("from"),
            to,
        }),
        _ => None,
    };
    Ok(ChangeEvent {
        transition,
        kind,
        change,
        record_id: get("id")?,
        instance: instance.to_string(),
        delivery_id: get("delivery")?,
        at,
        record: parse_record(
            bulk_bytes(fields, "record")
                .ok_or_else(|| StoreError::Corrupt("event without record".into()))?,
        )?,
    })
}

/// A stream entry's field as the bytes stored (documents may be compressed, so not text).
fn bulk_bytes<'a>(fields: &'a BTreeMap<String, Value>, key: &str) -> Option<&'a [u8]> {
    match fields.get(key) {
        Some(Value::BulkString(b)) => Some(b),
        _ => None,
    }
}

/// Entries of an XREADGROUP reply for one stream: (id, fields).
fn stream_entries(reply: &Value) -> StoreResult<Vec<(String, BTreeMap<String, Value>)>> {
    let streams = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(a) => a.clone(),
        Value::Map(m) => m
            .iter()
            .map(|(k, v)| Value::Array(vec![k.clone(), v.clone()]))
            .collect(),
        other => return Err(StoreError::Corrupt(format!("XREADGROUP reply {other:?}"))),
    };
    let mut out = Vec::new();
    for s in streams {
        let Value::Array(pair) = s else { continue };
        let Some(Value::Array(entries)) = pair.get(1) else {
            continue;
        };
        for e in entries {
            let Value::Array(parts) = e else { continue };
            let (Some(id), Some(Value::Array(kv))) =
                (parts.first().and_then(bulk_str), parts.get(1))
            else {
                // A pending entry whose message was deleted reads as (id, nil); skip it.
                continue;
            };
            let mut fields = BTreeMap::new();
            for chunk in kv.chunks(2) {
                if let [k, v] = chunk
                    && let Some(k) = bulk_str(k)
                {
                    fields.insert(k, v.clone());
                }
            }
            out.push((id, fields));
        }
    }
    Ok(out)
}

impl RedisStore {
    /// Builds an instance's listing indexes from its event stream once (stores written before
    /// the indexes existed); a marker key records that it was done. Every listing write is on
    /// the stream with its document, in order, so the last one read sets the index entry.
    pub(super) async fn index_listings_once(&self, instance: &str) -> StoreResult<()> {
        let ik = self.keys.of(instance);
        let marker = ik.listings_built();
        let mut conn = self.conn();
        let done: Option<String> = redis::cmd("GET")
            .arg(&marker)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if done.is_some() {
            return Ok(());
        }
        let mut start = "-".to_string();
        loop {
            let reply: Value = redis::cmd("XRANGE")
                .arg(ik.events())
                .arg(&start)
                .arg("+")
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            // XRANGE answers the entries alone; XREADGROUP's shape is [[stream, entries]].
            let entries =
                stream_entries(&Value::Array(vec![Value::Array(vec![Value::Nil, reply])]))?;
            let Some((last, _)) = entries.last() else {
                break;
            };
            start = format!("({last}");
            let mut pipe = redis::pipe();
            for (_, fields) in &entries {
                let event = event_from_fields(fields, instance)?;
                let Record::Listing(l) = event.record else {
                    continue;
                };
                let ms = l.revision.updated_at.timestamp_millis();
                pipe.cmd("ZADD")
                    .arg(ik.index(Index::Listings))
                    .arg(ms)
                    .arg(l.id.as_str())
                    .ignore();
                if let Some(sku) = l.sku.as_deref().filter(|s| !s.is_empty()) {
                    pipe.cmd("SADD")
                        .arg(ik.sku(sku))
                        .arg(l.id.as_str())
                        .ignore();
                }
            }
            let () = pipe.query_async(&mut conn).await.map_err(unavailable)?;
        }
        let () = redis::cmd("SET")
            .arg(&marker)
            .arg("1")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
