//! The outbox in redb: every change is one write transaction, so the queue rules of
//! `crate::outbox::queue` run on what is committed, with no other writer in between.

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tables::*;
use super::{EmbeddedStore, unavailable};
use crate::outbox::queue::{self, TargetQueue, Writes};
use crate::outbox::store::{Enqueued, Idempotency, OutboxQuery, OutboxStore, RetryError};
use crate::outbox::{Command, IdempotencyRecord};
use crate::store::{Cursor, Page, StoreError, StoreResult};

/// A target's queue as stored, with the due entry it has in `OUTBOX_DUE`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StoredQueue {
    queue: TargetQueue,
    due_ms: Option<i64>,
}

fn json<T: Serialize>(v: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| StoreError::Invalid(e.to_string()))
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn get_command(txn: &WriteTransaction, id: &str) -> StoreResult<Option<Command>> {
    let t = txn.open_table(OUTBOX).map_err(unavailable)?;
    let v = t.get(id).map_err(unavailable)?;
    v.map(|v| parse(v.value(), "outbound command")).transpose()
}

/// A target's queue and its open commands, in queue order.
fn load_target(
    txn: &WriteTransaction,
    instance: &str,
    target: &str,
) -> StoreResult<(StoredQueue, Vec<Command>)> {
    let stored: StoredQueue = {
        let t = txn.open_table(OUTBOX_QUEUES).map_err(unavailable)?;
        let v = t.get((instance, target)).map_err(unavailable)?;
        match v {
            Some(v) => parse(v.value(), "outbox queue")?,
            None => StoredQueue::default(),
        }
    };
    let mut open = Vec::with_capacity(stored.queue.open.len());
    for id in &stored.queue.open {
        open.push(get_command(txn, id)?.ok_or_else(|| {
            StoreError::Corrupt(format!("outbox queue names a missing command {id}"))
        })?);
    }
    Ok((stored, open))
}

/// Writes what a queue rule decided for one target.
fn apply(
    txn: &WriteTransaction,
    instance: &str,
    target: &str,
    old_due: Option<i64>,
    writes: Writes,
) -> StoreResult<()> {
    {
        let mut t = txn.open_table(OUTBOX).map_err(unavailable)?;
        let mut by_time = txn.open_table(OUTBOX_BY_TIME).map_err(unavailable)?;
        for c in &writes.commands {
            let fresh = t
                .insert(c.id.as_str(), json(c)?.as_slice())
                .map_err(unavailable)?
                .is_none();
            if fresh {
                let key = (instance, c.created_at.timestamp_millis(), c.id.as_str());
                by_time.insert(key, ()).map_err(unavailable)?;
            }
        }
    }
    let due_ms = writes.due.map(|d| d.timestamp_millis());
    let mut due = txn.open_table(OUTBOX_DUE).map_err(unavailable)?;
    if let Some(old) = old_due {
        due.remove((instance, old, target)).map_err(unavailable)?;
    }
    if let Some(ms) = due_ms {
        due.insert((instance, ms, target), ())
            .map_err(unavailable)?;
    }
    let stored = StoredQueue {
        queue: writes.queue,
        due_ms,
    };
    let mut q = txn.open_table(OUTBOX_QUEUES).map_err(unavailable)?;
    q.insert((instance, target), json(&stored)?.as_slice())
        .map_err(unavailable)?;
    Ok(())
}

/// The earlier call's answer for this key, or `None` when the key is new (or expired).
fn repeated(
    txn: &WriteTransaction,
    instance: &str,
    idem: &Idempotency,
    now: DateTime<Utc>,
) -> StoreResult<Option<Enqueued>> {
    let t = txn.open_table(OUTBOX_IDEMPOTENCY).map_err(unavailable)?;
    let v = t.get((instance, idem.key.as_str())).map_err(unavailable)?;
    let record: Option<IdempotencyRecord> = v
        .map(|v| parse(v.value(), "idempotency record"))
        .transpose()?;
    Ok(crate::outbox::store::live_record(record, now).map(|r| {
        if r.fingerprint == idem.fingerprint {
            Enqueued::Repeat(r.command_ids)
        } else {
            Enqueued::KeyReused
        }
    }))
}

fn enqueue_in(
    txn: &WriteTransaction,
    instance: &str,
    commands: Vec<Command>,
    idem: Option<Idempotency>,
) -> StoreResult<Enqueued> {
    let now = Utc::now();
    if let Some(idem) = &idem
        && let Some(answer) = repeated(txn, instance, idem, now)?
    {
        return Ok(answer);
    }
    let mut stored = Vec::with_capacity(commands.len());
    for cmd in commands {
        let target = cmd.target.key();
        let (q, open) = load_target(txn, instance, &target)?;
        let writes = queue::enqueue(q.queue, open, cmd, now);
        stored.push(
            writes
                .commands
                .last()
                .expect("enqueue writes the new command")
                .clone(),
        );
        apply(txn, instance, &target, q.due_ms, writes)?;
    }
    if let Some(idem) = idem {
        let record = IdempotencyRecord {
            fingerprint: idem.fingerprint,
            command_ids: stored.iter().map(|c| c.id.clone()).collect(),
            expires_at: now + idem.ttl,
        };
        let mut t = txn.open_table(OUTBOX_IDEMPOTENCY).map_err(unavailable)?;
        t.insert((instance, idem.key.as_str()), json(&record)?.as_slice())
            .map_err(unavailable)?;
        // Housekeeping removes it when its time is up ("i" + instance \0 key).
        let mut exp = txn.open_table(EXPIRY).map_err(unavailable)?;
        let entry = format!("i{instance}\0{}", idem.key);
        exp.insert((record.expires_at.timestamp_millis(), entry.as_str()), ())
            .map_err(unavailable)?;
    }
    Ok(Enqueued::Stored(stored))
}

/// Removes an idempotency record (`instance \0 key`) whose time is up; `true` when it did (a
/// later call may have stored a new record under the same key since).
pub(super) fn expire_idempotency(
    txn: &WriteTransaction,
    entry: &str,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let Some((instance, key)) = entry.split_once('\0') else {
        return Ok(false);
    };
    let mut t = txn.open_table(OUTBOX_IDEMPOTENCY).map_err(unavailable)?;
    let expired = match t.get((instance, key)).map_err(unavailable)? {
        Some(v) => parse::<IdempotencyRecord>(v.value(), "idempotency record")?.expires_at <= now,
        None => false,
    };
    if expired {
        t.remove((instance, key)).map_err(unavailable)?;
    }
    Ok(expired)
}

fn claim_in(
    txn: &WriteTransaction,
    instance: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    max: usize,
) -> StoreResult<Vec<Command>> {
    let due: Vec<String> = {
        let t = txn.open_table(OUTBOX_DUE).map_err(unavailable)?;
        let range = (instance, i64::MIN, "")..=(instance, now.timestamp_millis(), "\u{10FFFF}");
        let mut out = Vec::new();
        for item in t.range(range).map_err(unavailable)?.take(max) {
            let (k, _) = item.map_err(unavailable)?;
            out.push(k.value().2.to_string());
        }
        out
    };
    let mut claimed = Vec::with_capacity(due.len());
    for target in due {
        let (q, open) = load_target(txn, instance, &target)?;
        let Some(head) = open.into_iter().next() else {
            apply(
                txn,
                instance,
                &target,
                q.due_ms,
                Writes {
                    commands: vec![],
                    queue: q.queue,
                    due: None,
                },
            )?;
            continue;
        };
        let writes = queue::claim(q.queue, head, until);
        claimed.push(writes.commands[0].clone());
        apply(txn, instance, &target, q.due_ms, writes)?;
    }
    Ok(claimed)
}

impl OutboxStore for EmbeddedStore {
    async fn outbox_enqueue(
        &self,
        instance: &str,
        commands: Vec<Command>,
        idempotency: Option<Idempotency>,
    ) -> StoreResult<Enqueued> {
        crate::outbox::store::one_instance(instance, &commands)?;
        let instance = instance.to_string();
        self.run(move |txn| enqueue_in(txn, &instance, commands, idempotency))
            .await
    }

    async fn outbox_get(&self, id: &str) -> StoreResult<Option<Command>> {
        let id = id.to_string();
        self.read(move |db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(OUTBOX).map_err(unavailable)?;
            let v = t.get(id.as_str()).map_err(unavailable)?;
            v.map(|v| parse(v.value(), "outbound command")).transpose()
        })
        .await
    }

    async fn outbox_list(&self, q: OutboxQuery) -> StoreResult<Page<Command>> {
        self.read(move |db| {
            let r = db.begin_read().map_err(unavailable)?;
            let by_time = r.open_table(OUTBOX_BY_TIME).map_err(unavailable)?;
            let t = r.open_table(OUTBOX).map_err(unavailable)?;
            let inst = q.instance.as_str();
            let end = match &q.after {
                Some(c) => (inst, c.millis, c.id.as_str()),
                None => (inst, i64::MAX, "\u{10FFFF}"),
            };
            let mut items = Vec::new();
            for item in by_time
                .range((inst, i64::MIN, "")..end)
                .map_err(unavailable)?
                .rev()
            {
                let (k, _) = item.map_err(unavailable)?;
                let Some(v) = t.get(k.value().2).map_err(unavailable)? else {
                    continue;
                };
                let cmd: Command = parse(v.value(), "outbound command")?;
                if q.state.is_none_or(|s| s == cmd.state) {
                    items.push(cmd);
                    if items.len() > q.limit {
                        break;
                    }
                }
            }
            let next = Cursor::page_end(&mut items, q.limit, |c| {
                (c.created_at.timestamp_millis(), c.id.as_str())
            });
            Ok(Page { items, next })
        })
        .await
    }

    async fn outbox_claim(
        &self,
        instance: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        max: usize,
    ) -> StoreResult<Vec<Command>> {
        let instance = instance.to_string();
        self.run(move |txn| claim_in(txn, &instance, now, until, max))
            .await
    }

    async fn outbox_settle(&self, cmd: Command, now: DateTime<Utc>) -> StoreResult<()> {
        self.run(move |txn| {
            let instance = cmd.instance.clone();
            let target = cmd.target.key();
            let (q, open) = load_target(txn, &instance, &target)?;
            let writes = queue::settle(q.queue, open, cmd, now);
            apply(txn, &instance, &target, q.due_ms, writes)
        })
        .await
    }

    async fn outbox_retry(&self, id: &str, now: DateTime<Utc>) -> Result<Command, RetryError> {
        let id = id.to_string();
        let outcome = self
            .run(move |txn| {
                let cmd = get_command(txn, &id)?.ok_or(StoreError::NotFound)?;
                let instance = cmd.instance.clone();
                let target = cmd.target.key();
                let (q, open) = load_target(txn, &instance, &target)?;
                match queue::retry(q.queue, open, cmd, now) {
                    Ok(writes) => {
                        let cmd = writes.commands[0].clone();
                        apply(txn, &instance, &target, q.due_ms, writes)?;
                        Ok(Ok(cmd))
                    }
                    Err(refusal) => Ok(Err(refusal)),
                }
            })
            .await?;
        Ok(outcome?)
    }

    async fn outbox_depth(&self, instance: &str) -> StoreResult<u64> {
        let instance = instance.to_string();
        self.read(move |db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(OUTBOX_QUEUES).map_err(unavailable)?;
            let mut n = 0u64;
            for item in t
                .range((instance.as_str(), "")..=(instance.as_str(), "\u{10FFFF}"))
                .map_err(unavailable)?
            {
                let (_, v) = item.map_err(unavailable)?;
                let stored: StoredQueue = parse(v.value(), "outbox queue")?;
                n += stored.queue.open.len() as u64;
            }
            Ok(n)
        })
        .await
    }
}
