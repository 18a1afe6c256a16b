//! Writes: the ingest transaction and the record arguments the Lua `apply` function reads.

use super::keys::Index;
use super::*;

impl RedisStore {
    /// The three keys and the kind argument of each record (see `apply.lua`).
    pub(super) fn record_keys(&self, instance: &str, p: &Prepared) -> ([String; 3], &'static str) {
        let ik = self.keys.of(instance);
        match p.kind {
            RecordKind::Order => {
                let rec = ik.record(&p.id);
                let customer = match &p.customer_key {
                    Some(key) => ik.customer(key),
                    None => rec.clone(),
                };
                ([rec, ik.lifecycle(&p.id), customer], "order")
            }
            RecordKind::Listing => {
                let rec = ik.record(&p.id);
                let sku = match &p.sku {
                    Some(sku) => ik.sku(sku),
                    None => rec.clone(),
                };
                ([rec, ik.index(Index::Listings), sku], "listing")
            }
            RecordKind::Stock => {
                let rec = ik.record(&p.id);
                let by_ref = ik.stock_ref(p.stock_ref.as_deref().unwrap_or_default());
                ([rec.clone(), by_ref, rec], "stock")
            }
            RecordKind::Fact if p.order_instance == instance => {
                let rec = ik.record(&p.order_id);
                ([ik.lifecycle(&p.order_id), rec.clone(), rec], "fact")
            }
            RecordKind::Fact => {
                let k = ik.outbox();
                ([k.clone(), k.clone(), k], "fact_out")
            }
        }
    }

    /// The `order` argument of a record: a listing's SKU and an order's customer key (empty
    /// without one), else the order.
    fn order_arg(p: &Prepared) -> &str {
        match p.kind {
            RecordKind::Listing => p.sku.as_deref().unwrap_or(""),
            RecordKind::Order => p.customer_key.as_deref().unwrap_or(""),
            _ => &p.order_id,
        }
    }

    pub(super) fn push_records(
        &self,
        inv: &mut redis::ScriptInvocation<'_>,
        instance: &str,
        prepared: &[Prepared],
    ) {
        let mut kinds = Vec::with_capacity(prepared.len());
        for p in prepared {
            let ([k1, k2, k3], kind) = self.record_keys(instance, p);
            inv.key(k1).key(k2).key(k3);
            kinds.push(kind);
        }
        for (p, kind) in prepared.iter().zip(kinds) {
            inv.arg(&p.id)
                .arg(kind)
                .arg(record_rev(p))
                .arg(p.updated_millis)
                .arg(p.stored_doc())
                .arg(p.rank)
                .arg(Self::order_arg(p));
        }
    }

    pub(super) async fn ingest(
        &self,
        delivery: RawDelivery,
        disposition: Disposition,
        cursor: Option<CursorWrite>,
    ) -> StoreResult<IngestOutcome> {
        let inst = delivery.instance.as_str();
        let (records, dead_letters) = disposition.parts(&delivery);
        let prepared = prepare_in(inst, records)?;
        let dead_letters = dead_letters
            .into_iter()
            .map(|dl| serde_json::to_string(&dl).map(|json| (dl.id, json)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let meta =
            serde_json::to_string(&delivery).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let at = delivery
            .received_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let ik = self.keys.of(inst);
        let raw_key = ik.raw(&delivery.delivery_id);
        let mut keys = vec![
            ik.dedupe(&delivery.dedupe_id),
            raw_key.clone(),
            ik.events(),
            ik.index(Index::DeadLetters),
            ik.index(Index::Orders),
            ik.dead_letters_of(&delivery.delivery_id),
            ik.seen(delivery.source.as_str()),
            // Always passed (the script sets it only with a value), so the key count is fixed.
            ik.cursor(cursor.as_ref().map(|c| c.name.as_str()).unwrap_or("-")),
            // The fence of the poller's lease; likewise always passed.
            self.keys.lease(&fence_lease(inst, cursor.as_ref()))[1].clone(),
        ];
        let mut kinds = Vec::with_capacity(prepared.len());
        for p in &prepared {
            let ([k1, k2, k3], kind) = self.record_keys(inst, p);
            keys.extend([k1, k2, k3]);
            kinds.push(kind);
        }
        keys.extend(
            dead_letters
                .iter()
                .map(|(id, _)| self.keys.of(inst).dead_letter(id)),
        );
        let mut eval = redis::cmd("EVALSHA");
        eval.arg(&*self.scripts.ingest_sha)
            .arg(keys.len())
            .arg(&keys);
        eval.arg(&delivery.delivery_id)
            .arg(self.opts.dedupe_ttl.as_secs())
            .arg(delivery.received_at.timestamp_millis())
            .arg(&at)
            .arg(prepared.len())
            .arg(dead_letters.len())
            .arg(cursor.as_ref().map(|c| c.value.as_str()).unwrap_or(""))
            .arg(
                if matches!(
                    delivery.source,
                    DeliverySource::Webhook | DeliverySource::Poll
                ) {
                    "1"
                } else {
                    "0"
                },
            )
            .arg(
                cursor
                    .as_ref()
                    .and_then(|c| c.fence.as_ref())
                    .map(|f| f.token.to_string())
                    .unwrap_or_default(),
            );
        for (p, kind) in prepared.iter().zip(kinds) {
            eval.arg(&p.id)
                .arg(kind)
                .arg(record_rev(p))
                .arg(p.updated_millis)
                .arg(p.stored_doc())
                .arg(p.rank)
                .arg(Self::order_arg(p));
        }
        for (id, json) in &dead_letters {
            eval.arg(id).arg(json);
        }
        let mut hset = redis::cmd("HSET");
        // `zbody`: the body compressed (see store::codec); bodies stored before are `body`.
        hset.arg(&raw_key)
            .arg("meta")
            .arg(codec::pack_doc(meta.as_bytes()))
            .arg("zbody")
            .arg(codec::pack_body(&delivery.body));
        let mut expire = redis::cmd("EXPIRE");
        expire.arg(&raw_key).arg(self.opts.raw_retention.as_secs());
        let reply = self
            .scripted_transaction(vec![hset, expire, eval], &self.scripts.ingest)
            .await?;
        let head = reply.first().and_then(bulk_str).unwrap_or_default();
        match head.as_str() {
            "fenced" => Err(StoreError::LeaseLost(format!(
                "the poller's lease of {inst} has passed to another replica (token {}); \
                 the page was not written",
                reply.get(1).and_then(bulk_str).unwrap_or_default()
            ))),
            "duplicate" => Ok(IngestOutcome::Duplicate {
                original_delivery_id: reply.get(1).and_then(bulk_str).unwrap_or_default(),
            }),
            "stored" => Ok(IngestOutcome::Stored {
                records: results(&prepared, parse_changes(&reply[1..])?)?,
                delivery_id: delivery.delivery_id,
                dead_letters: dead_letters.into_iter().map(|(id, _)| id).collect(),
                ignored: matches!(disposition, Disposition::Ignore),
            }),
            other => Err(StoreError::Corrupt(format!(
                "unexpected ingest reply '{other}'"
            ))),
        }
    }
}

/// The lease whose fence the ingest script checks: the poller's of the instance (when the write
/// carries no fence, the script ignores it).
fn fence_lease(instance: &str, cursor: Option<&CursorWrite>) -> crate::store::Lease {
    cursor
        .and_then(|c| c.fence.as_ref())
        .map(|f| f.lease.clone())
        .filter(|l| l.scope == instance)
        .unwrap_or_else(|| crate::store::Lease::poller(instance))
}

impl RedisStore {
    /// Runs `cmds` (the last an EVALSHA of `script`) as one MULTI/EXEC in one slot and
    /// returns the script's reply, after `WAIT` when writes need replica acknowledgements.
    /// When the server lost its script cache (a restart, a failover to a replica that never
    /// ran it, `SCRIPT FLUSH`), only the commands before the script ran (the ingest's raw key,
    /// with its TTL): the script is loaded (on every node of a cluster) and the same
    /// transaction runs again.
    pub(super) async fn scripted_transaction(
        &self,
        cmds: Vec<redis::Cmd>,
        script: &str,
    ) -> StoreResult<Vec<Value>> {
        let pipe = self.transaction(cmds);
        match self.run_transaction(&pipe).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                let mut conn = self.conn();
                let _: Value = redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(script)
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)?;
                self.run_transaction(&pipe).await
            }
            other => other,
        }
        .map_err(unavailable)
        .and_then(|reply| self.replicated(reply))
    }

    /// `cmds` in MULTI/EXEC, whose reply is the last command's. With `replica_acks`, followed
    /// by `WAIT` (which must run on the connection that wrote), whose reply is the number of
    /// replicas that acknowledged.
    fn transaction(&self, cmds: Vec<redis::Cmd>) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        if self.acked_writes.is_none() {
            pipe.atomic();
            for c in cmds {
                pipe.add_command(c);
            }
            return pipe;
        }
        pipe.cmd("MULTI").ignore();
        for c in cmds {
            pipe.add_command(c).ignore();
        }
        pipe.cmd("EXEC")
            .cmd("WAIT")
            .arg(self.opts.replica_acks)
            .arg(self.opts.replica_ack_timeout.as_millis() as u64);
        pipe
    }

    /// Runs a [`RedisStore::transaction`]: on the shared connection, or with `replica_acks` on
    /// a connection of its own (`WAIT` blocks the connection it runs on).
    async fn run_transaction(
        &self,
        pipe: &redis::Pipeline,
    ) -> redis::RedisResult<(Vec<Value>, Option<i64>)> {
        let Some(pool) = &self.acked_writes else {
            let all: Vec<Value> = pipe.query_async(&mut self.conn()).await?;
            return Ok((last_array(all)?, None));
        };
        let (exec, acks): (Vec<Value>, i64) = pipe.query_async(&mut pool.get()).await?;
        Ok((last_array(exec)?, Some(acks)))
    }

    /// The script's reply once the write reached `replica_acks` replicas; a write that did not
    /// is answered 503 (it is stored: the sender's retry is a duplicate, and its `WAIT` covers
    /// the first write too, because replication is ordered).
    fn replicated(&self, (reply, acks): (Vec<Value>, Option<i64>)) -> StoreResult<Vec<Value>> {
        match acks {
            Some(n) if n < i64::from(self.opts.replica_acks) => {
                metrics::counter!(crate::telemetry::names::REPLICA_ACK_SHORTFALLS).increment(1);
                Err(StoreError::Unavailable(format!(
                    "the write reached {n} of {} replicas within {} ms",
                    self.opts.replica_acks,
                    self.opts.replica_ack_timeout.as_millis()
                )))
            }
            _ => Ok(reply),
        }
    }
}

/// The reply of the last command of an EXEC, as an array.
fn last_array(exec: Vec<Value>) -> redis::RedisResult<Vec<Value>> {
    match exec.into_iter().last() {
        Some(Value::Array(a)) => Ok(a),
        other => Err(redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "ingest transaction",
            format!("{other:?}"),
        ))),
    }
}

/// Prepares records for one script. Each script runs in the instance's slot, so every record
/// must belong to that instance.
pub(super) fn prepare_in(instance: &str, records: &[Record]) -> StoreResult<Vec<Prepared>> {
    let prepared = records
        .iter()
        .map(prepare)
        .collect::<StoreResult<Vec<_>>>()?;
    if prepared.iter().any(|p| p.instance != instance) {
        return Err(StoreError::Invalid(
            "records must belong to the delivery's instance".into(),
        ));
    }
    Ok(prepared)
}

/// The `rev` argument: the revision key, or for a fact the instance of its order.
fn record_rev(p: &Prepared) -> &str {
    match p.kind {
        RecordKind::Fact => &p.order_instance,
        _ => &p.rev_key,
    }
}

pub(super) fn parse_changes(values: &[Value]) -> StoreResult<Vec<Change>> {
    values
        .iter()
        .map(|v| match v {
            Value::BulkString(b) => match b.as_slice() {
                b"created" => Ok(Change::Created),
                b"updated" => Ok(Change::Updated),
                b"unchanged" => Ok(Change::Unchanged),
                b"stale" => Ok(Change::Stale),
                b"queued" => Ok(Change::Queued),
                other => Err(StoreError::Corrupt(format!(
                    "unexpected script reply {}",
                    String::from_utf8_lossy(other)
                ))),
            },
            other => Err(StoreError::Corrupt(format!(
                "unexpected script reply {other:?}"
            ))),
        })
        .collect()
}

pub(super) fn results(
    prepared: &[Prepared],
    changes: Vec<Change>,
) -> StoreResult<Vec<RecordResult>> {
    if changes.len() != prepared.len() {
        return Err(StoreError::Corrupt(
            "script returned the wrong number of results".into(),
        ));
    }
    Ok(prepared
        .iter()
        .zip(changes)
        .map(|(p, change)| RecordResult {
            kind: p.kind,
            id: p.id.clone(),
            change,
        })
        .collect())
}
