//! The embedded store: one redb file, no other service.
//!
//! Writes go through one writer thread that groups the operations waiting in its queue into a
//! single redb transaction and commits it with `Durability::Immediate` (fsync) before answering
//! any of them: "group commit". Each caller still gets its own result, and nothing is answered
//! before it is on disk. Reads use redb's MVCC snapshots on the blocking pool.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use tokio::sync::{mpsc, oneshot};

use super::{
    Cursor, CursorWrite, DeadLetter, DeadLetterQuery, DeadLetterReason, DeliverySource,
    Disposition, Housekeeping, IngestOutcome, OrderQuery, Page, Prepared, RawDelivery,
    Reconciliation, RecordResult, Store, StoreError, StoreResult, StreamEntry, decide, event_json,
    parse_fact, prepare,
};
use crate::fx::log::FxEntry;
use crate::fx::rates::RateDoc;
use crate::fx::{FxDraft, FxView};
use crate::model::{
    Change, ChangeEvent, Listing, ListingId, Order, OrderId, Record, RecordKind, lifecycle,
};

/// instance \0 dedupe id → delivery id \0 expires (ms)
const DEDUPE: TableDefinition<&str, &str> = TableDefinition::new("dedupe");
/// (expires ms, "d" + dedupe key | "r" + delivery id): what housekeeping removes when.
const EXPIRY: TableDefinition<(i64, &str), ()> = TableDefinition::new("expiry");
/// delivery id → frame(meta JSON, body)
const DELIVERIES: TableDefinition<&str, &[u8]> = TableDefinition::new("deliveries");
/// record id → frame(revision key, updated ms, sequence of the event holding its document).
/// The document is stored once, in the event log.
const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");
/// (instance, updated ms, order id), plus ("", updated ms, order id) for all instances.
const ORDER_INDEX: TableDefinition<(&str, i64, &str), ()> = TableDefinition::new("order_index");
/// The instance slot of the all-instances order index (never a valid instance id).
const ALL: &str = "";
/// sequence → ChangeEvent JSON (with the record document)
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// consumer group → last acknowledged sequence
const GROUPS: TableDefinition<&str, u64> = TableDefinition::new("groups");
/// id → DeadLetter JSON
const DEAD_LETTERS: TableDefinition<&str, &[u8]> = TableDefinition::new("dead_letters");
/// (dead-lettered ms, id)
const DEAD_LETTERS_BY_TIME: TableDefinition<(i64, &str), ()> =
    TableDefinition::new("dead_letters_by_time");

/// order id → (status rank of the highest stored snapshot or -1, highest fact rank or -1).
const LIFE: TableDefinition<&str, (i16, i16)> = TableDefinition::new("life");
/// (order id, fact id) → LifecycleFact JSON
const FACTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("facts");

/// (instance, cursor name) → the poller's state (JSON)
const CURSORS: TableDefinition<(&str, &str), &str> = TableDefinition::new("cursors");
/// (instance, delivery source, order id): which paths have seen an order (reconciliation)
const SEEN: TableDefinition<(&str, &str, &str), ()> = TableDefinition::new("seen");

/// FX: rate documents by hash (JSON).
const FX_DOCS: TableDefinition<&str, &[u8]> = TableDefinition::new("fx_docs");
/// FX log: sequence → entry JSON.
const FX_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("fx_log");
/// FX: conversion key → `entry id|fingerprint` of its latest entry; `~head` → `seq|hash`.
const FX_IDX: TableDefinition<&str, &str> = TableDefinition::new("fx_idx");
/// FX: order id → FxView JSON.
const FX_VIEWS: TableDefinition<&str, &[u8]> = TableDefinition::new("fx_views");
/// FX: orders waiting for a rate.
const FX_PENDING: TableDefinition<&str, ()> = TableDefinition::new("fx_pending");
const FX_HEAD_KEY: &str = "~head";
/// Tax: order id → Quote JSON.
const TAX_QUOTES: TableDefinition<&str, &[u8]> = TableDefinition::new("tax_quotes");
/// Tax: `customer key|year|order id` → CNY amount (the CBEC annual total's parts).
const TAX_ANNUAL: TableDefinition<&str, &str> = TableDefinition::new("tax_annual");

/// Jobs: (kind, key) → interaction or item info JSON.
const RECO_DATA: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("reco_data");
/// Jobs: (strategy, customer key) → list JSON.
const RECO_LISTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("reco_lists");
/// Jobs: (ranking key, position) → `[item, score, detail]` JSON.
const RECO_RANK: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("reco_rank");
/// Jobs: part → metadata JSON of the current results.
const RECO_META: TableDefinition<&str, &[u8]> = TableDefinition::new("reco_meta");

/// Most operations committed in one transaction.
const MAX_BATCH: usize = 512;

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn frame(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 4).sum());
    for p in parts {
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

fn unframe(mut bytes: &[u8]) -> StoreResult<Vec<&[u8]>> {
    let mut parts = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or_else(|| StoreError::Corrupt("truncated frame".into()))?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(StoreError::Corrupt("truncated frame".into()));
        }
        parts.push(&rest[..len]);
        bytes = &rest[len..];
    }
    Ok(parts)
}

enum Op {
    Ingest {
        delivery: Box<RawDelivery>,
        disposition: Disposition,
        cursor: Option<CursorWrite>,
        reply: oneshot::Sender<StoreResult<IngestOutcome>>,
    },
    Resolve {
        id: String,
        records: Vec<Record>,
        now: DateTime<Utc>,
        reply: oneshot::Sender<StoreResult<Vec<RecordResult>>>,
    },
    UpdateDeadLetter {
        id: String,
        reason: DeadLetterReason,
        reply: oneshot::Sender<StoreResult<DeadLetter>>,
    },
    Ack {
        group: String,
        ids: Vec<String>,
        reply: oneshot::Sender<StoreResult<()>>,
    },
    Housekeeping {
        now: DateTime<Utc>,
        reply: oneshot::Sender<StoreResult<Housekeeping>>,
    },
    /// Any other write, run inside the group transaction (FX log, job results).
    Run {
        f: RunFn,
        reply: oneshot::Sender<StoreResult<Box<dyn std::any::Any + Send>>>,
    },
}

type RunFn =
    Box<dyn FnOnce(&WriteTransaction) -> StoreResult<Box<dyn std::any::Any + Send>> + Send>;

/// Settings of the embedded store.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    pub dedupe_ttl: Duration,
    pub raw_retention: Duration,
    /// redb page cache size in bytes.
    pub cache_bytes: usize,
}

#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    tx: mpsc::Sender<Op>,
}

impl EmbeddedStore {
    /// Opens (or creates) the database file and starts the writer thread.
    pub fn open(path: &Path, options: EmbeddedOptions) -> StoreResult<Self> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let db = Database::builder()
            .set_cache_size(options.cache_bytes)
            .create(path)
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        let db = Arc::new(db);
        // Create every table up front so readers never see a missing table.
        {
            let txn = db.begin_write().map_err(unavailable)?;
            txn.open_table(DEDUPE).map_err(unavailable)?;
            txn.open_table(EXPIRY).map_err(unavailable)?;
            txn.open_table(DELIVERIES).map_err(unavailable)?;
            txn.open_table(RECORDS).map_err(unavailable)?;
            txn.open_table(ORDER_INDEX).map_err(unavailable)?;
            txn.open_table(EVENTS).map_err(unavailable)?;
            txn.open_table(GROUPS).map_err(unavailable)?;
            txn.open_table(DEAD_LETTERS).map_err(unavailable)?;
            txn.open_table(DEAD_LETTERS_BY_TIME).map_err(unavailable)?;
            txn.open_table(LIFE).map_err(unavailable)?;
            txn.open_table(FACTS).map_err(unavailable)?;
            txn.open_table(CURSORS).map_err(unavailable)?;
            txn.open_table(SEEN).map_err(unavailable)?;
            txn.open_table(FX_DOCS).map_err(unavailable)?;
            txn.open_table(FX_LOG).map_err(unavailable)?;
            txn.open_table(FX_IDX).map_err(unavailable)?;
            txn.open_table(FX_VIEWS).map_err(unavailable)?;
            txn.open_table(FX_PENDING).map_err(unavailable)?;
            txn.open_table(TAX_QUOTES).map_err(unavailable)?;
            txn.open_table(RECO_DATA).map_err(unavailable)?;
            txn.open_table(RECO_LISTS).map_err(unavailable)?;
            txn.open_table(RECO_RANK).map_err(unavailable)?;
            txn.open_table(RECO_META).map_err(unavailable)?;
            txn.open_table(TAX_ANNUAL).map_err(unavailable)?;
            txn.commit().map_err(unavailable)?;
        }
        let next_seq = {
            let r = db.begin_read().map_err(unavailable)?;
            let events = r.open_table(EVENTS).map_err(unavailable)?;
            events
                .last()
                .map_err(unavailable)?
                .map(|(k, _)| k.value() + 1)
                .unwrap_or(1)
        };
        let (tx, rx) = mpsc::channel(4096);
        let writer = Writer {
            db: db.clone(),
            options,
            next_seq,
        };
        std::thread::Builder::new()
            .name("crossgate-redb-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(unavailable)?;
        Ok(Self { db, tx })
    }

    async fn send<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<StoreResult<T>>) -> Op,
    ) -> StoreResult<T> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?
    }

    /// Runs `f` in the writer's next group transaction (durable when this returns `Ok`).
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let out = self
            .send(|reply| Op::Run {
                f: Box::new(move |txn| {
                    f(txn).map(|v| Box::new(v) as Box<dyn std::any::Any + Send>)
                }),
                reply,
            })
            .await?;
        out.downcast::<T>()
            .map(|b| *b)
            .map_err(|_| StoreError::Corrupt("writer returned another type".into()))
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(unavailable)?
    }
}

struct Writer {
    db: Arc<Database>,
    options: EmbeddedOptions,
    next_seq: u64,
}

/// A reply to send once the batch is committed.
enum Reply {
    Ingest(
        oneshot::Sender<StoreResult<IngestOutcome>>,
        StoreResult<IngestOutcome>,
    ),
    Resolve(
        oneshot::Sender<StoreResult<Vec<RecordResult>>>,
        StoreResult<Vec<RecordResult>>,
    ),
    DeadLetter(
        oneshot::Sender<StoreResult<DeadLetter>>,
        StoreResult<DeadLetter>,
    ),
    Ack(oneshot::Sender<StoreResult<()>>, StoreResult<()>),
    Housekeeping(
        oneshot::Sender<StoreResult<Housekeeping>>,
        StoreResult<Housekeeping>,
    ),
    Run(
        oneshot::Sender<StoreResult<Box<dyn std::any::Any + Send>>>,
        StoreResult<Box<dyn std::any::Any + Send>>,
    ),
}

impl Reply {
    fn send(self) {
        // A caller that went away (request timed out) simply does not get its answer.
        let _ = match self {
            Reply::Ingest(tx, r) => tx.send(r).map_err(drop),
            Reply::Resolve(tx, r) => tx.send(r).map_err(drop),
            Reply::DeadLetter(tx, r) => tx.send(r).map_err(drop),
            Reply::Ack(tx, r) => tx.send(r).map_err(drop),
            Reply::Housekeeping(tx, r) => tx.send(r).map_err(drop),
            Reply::Run(tx, r) => tx.send(r).map_err(drop),
        };
    }

    fn fail(self, message: &str) {
        match self {
            Reply::Ingest(tx, _) => Reply::Ingest(tx, down(message)).send(),
            Reply::Resolve(tx, _) => Reply::Resolve(tx, down(message)).send(),
            Reply::DeadLetter(tx, _) => Reply::DeadLetter(tx, down(message)).send(),
            Reply::Ack(tx, _) => Reply::Ack(tx, down(message)).send(),
            Reply::Housekeeping(tx, _) => Reply::Housekeeping(tx, down(message)).send(),
            Reply::Run(tx, _) => Reply::Run(tx, down(message)).send(),
        }
    }
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        while let Some(first) = rx.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            self.commit_batch(batch);
        }
    }

    fn commit_batch(&mut self, batch: Vec<Op>) {
        let seq_before = self.next_seq;
        let txn = match self.db.begin_write() {
            Ok(t) => t,
            Err(e) => {
                let msg = format!("cannot begin a write: {e}");
                for op in batch {
                    op_reply_placeholder(op).fail(&msg);
                }
                return;
            }
        };
        let mut replies = Vec::with_capacity(batch.len());
        let mut fatal: Option<String> = None;
        for op in batch {
            if fatal.is_some() {
                replies.push(op_reply_placeholder(op));
                continue;
            }
            let reply = match op {
                Op::Ingest {
                    delivery,
                    disposition,
                    cursor,
                    reply,
                } => Reply::Ingest(reply, self.ingest(&txn, *delivery, disposition, cursor)),
                Op::Resolve {
                    id,
                    records,
                    now,
                    reply,
                } => Reply::Resolve(reply, self.resolve(&txn, &id, &records, now)),
                Op::UpdateDeadLetter { id, reason, reply } => {
                    Reply::DeadLetter(reply, update_dead_letter(&txn, &id, reason))
                }
                Op::Ack { group, ids, reply } => Reply::Ack(reply, ack(&txn, &group, &ids)),
                Op::Housekeeping { now, reply } => {
                    Reply::Housekeeping(reply, housekeeping(&txn, now))
                }
                Op::Run { f, reply } => Reply::Run(reply, f(&txn)),
            };
            if let Some(msg) = reply_fatal(&reply) {
                fatal = Some(msg);
            }
            replies.push(reply);
        }
        if let Some(msg) = fatal {
            // A storage error mid-batch: nothing of the batch is committed.
            drop(txn);
            self.next_seq = seq_before;
            for r in replies {
                r.fail(&msg);
            }
            return;
        }
        match txn.commit() {
            Ok(()) => replies.into_iter().for_each(Reply::send),
            Err(e) => {
                self.next_seq = seq_before;
                let msg = format!("commit failed: {e}");
                for r in replies {
                    r.fail(&msg);
                }
            }
        }
    }

    fn ingest(
        &mut self,
        txn: &WriteTransaction,
        delivery: RawDelivery,
        disposition: Disposition,
        cursor: Option<CursorWrite>,
    ) -> StoreResult<IngestOutcome> {
        // Everything that can fail for a reason other than storage is done before the first
        // write, so an error never leaves part of a delivery behind.
        let (records, dead_letters) = disposition.parts(&delivery);
        let prepared = records
            .iter()
            .map(prepare)
            .collect::<StoreResult<Vec<_>>>()?;
        let dead_letters = dead_letters
            .into_iter()
            .map(|dl| serde_json::to_vec(&dl).map(|json| (dl, json)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let meta = serde_json::to_vec(&delivery).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let dedupe_key = format!("{}\0{}", delivery.instance, delivery.dedupe_id);
        let now_ms = delivery.received_at.timestamp_millis();
        if let Some(c) = &cursor {
            let mut t = txn.open_table(CURSORS).map_err(unavailable)?;
            t.insert(
                (delivery.instance.as_str(), c.name.as_str()),
                c.value.as_str(),
            )
            .map_err(unavailable)?;
        }
        {
            let mut dedupe = txn.open_table(DEDUPE).map_err(unavailable)?;
            if let Some(existing) = dedupe.get(dedupe_key.as_str()).map_err(unavailable)? {
                let value = existing.value().to_string();
                let (original, expires) = value.split_once('\0').unwrap_or((&value, "0"));
                if expires.parse::<i64>().unwrap_or(0) > now_ms {
                    return Ok(IngestOutcome::Duplicate {
                        original_delivery_id: original.to_string(),
                    });
                }
            }
            let expires = now_ms + self.options.dedupe_ttl.as_millis() as i64;
            dedupe
                .insert(
                    dedupe_key.as_str(),
                    format!("{}\0{expires}", delivery.delivery_id).as_str(),
                )
                .map_err(unavailable)?;
            let mut exp = txn.open_table(EXPIRY).map_err(unavailable)?;
            exp.insert((expires, format!("d{dedupe_key}").as_str()), ())
                .map_err(unavailable)?;
        }
        let records = self.apply(txn, &prepared, &delivery.delivery_id, delivery.received_at)?;
        if matches!(
            delivery.source,
            DeliverySource::Webhook | DeliverySource::Poll
        ) {
            let mut seen = txn.open_table(SEEN).map_err(unavailable)?;
            for p in prepared.iter().filter(|p| p.kind == RecordKind::Order) {
                seen.insert(
                    (
                        delivery.instance.as_str(),
                        delivery.source.as_str(),
                        p.id.as_str(),
                    ),
                    (),
                )
                .map_err(unavailable)?;
            }
        }
        for (dl, json) in &dead_letters {
            put_dead_letter(txn, dl, json)?;
        }
        let dead_lettered = !dead_letters.is_empty();
        let ignored = matches!(disposition, Disposition::Ignore);
        // The raw delivery: kept for the retention period, or until a dead letter is resolved.
        let mut deliveries = txn.open_table(DELIVERIES).map_err(unavailable)?;
        deliveries
            .insert(
                delivery.delivery_id.as_str(),
                frame(&[&meta, &delivery.body]).as_slice(),
            )
            .map_err(unavailable)?;
        if !dead_lettered {
            let expires = now_ms + self.options.raw_retention.as_millis() as i64;
            let mut exp = txn.open_table(EXPIRY).map_err(unavailable)?;
            exp.insert((expires, format!("r{}", delivery.delivery_id).as_str()), ())
                .map_err(unavailable)?;
        }
        Ok(IngestOutcome::Stored {
            delivery_id: delivery.delivery_id,
            records,
            dead_letters: dead_letters.into_iter().map(|(dl, _)| dl.id).collect(),
            ignored,
        })
    }

    /// Upserts records with the revision check, records facts, and appends an event for each
    /// write (with the order's status transition, if any).
    fn apply(
        &mut self,
        txn: &WriteTransaction,
        prepared: &[Prepared],
        delivery_id: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<RecordResult>> {
        let mut out = Vec::with_capacity(prepared.len());
        let mut records = txn.open_table(RECORDS).map_err(unavailable)?;
        let mut index = txn.open_table(ORDER_INDEX).map_err(unavailable)?;
        let mut events = txn.open_table(EVENTS).map_err(unavailable)?;
        let mut life = txn.open_table(LIFE).map_err(unavailable)?;
        let mut facts = txn.open_table(FACTS).map_err(unavailable)?;
        let rank = |r: i16| u8::try_from(r).ok();
        for p in prepared {
            if p.kind == RecordKind::Fact {
                let key = (p.order_id.as_str(), p.id.as_str());
                let change = if facts.get(key).map_err(unavailable)?.is_some() {
                    Change::Unchanged
                } else {
                    facts.insert(key, p.json.as_bytes()).map_err(unavailable)?;
                    let (sr, fr) = life
                        .get(p.order_id.as_str())
                        .map_err(unavailable)?
                        .map(|v| v.value())
                        .unwrap_or((-1, -1));
                    let new_fr = fr.max(i16::from(p.rank));
                    life.insert(p.order_id.as_str(), (sr, new_fr))
                        .map_err(unavailable)?;
                    let t = lifecycle::transition(
                        &p.order_id,
                        (rank(sr), rank(fr)),
                        (rank(sr), rank(new_fr)),
                    );
                    let json = event_json(p, Change::Created, delivery_id, at, t.as_ref());
                    events
                        .insert(self.next_seq, json.as_bytes())
                        .map_err(unavailable)?;
                    self.next_seq += 1;
                    Change::Created
                };
                out.push(RecordResult {
                    kind: p.kind,
                    id: p.id.clone(),
                    change,
                });
                continue;
            }
            let stored = records
                .get(p.id.as_str())
                .map_err(unavailable)?
                .map(|v| RecordEntry::decode(v.value()))
                .transpose()?;
            let change = decide(stored.as_ref().map(|r| r.rev.as_str()), &p.rev_key);
            if change.wrote() {
                let seq = self.next_seq;
                let mut transition = None;
                if p.kind == RecordKind::Order {
                    let (sr, fr) = life
                        .get(p.id.as_str())
                        .map_err(unavailable)?
                        .map(|v| v.value())
                        .unwrap_or((-1, -1));
                    let new_sr = sr.max(i16::from(p.rank));
                    life.insert(p.id.as_str(), (new_sr, fr))
                        .map_err(unavailable)?;
                    transition = lifecycle::transition(
                        &p.id,
                        (stored.as_ref().and_then(|_| rank(sr)), rank(fr)),
                        (rank(new_sr), rank(fr)),
                    );
                }
                let json = event_json(p, change, delivery_id, at, transition.as_ref());
                events.insert(seq, json.as_bytes()).map_err(unavailable)?;
                self.next_seq += 1;
                let entry = RecordEntry {
                    rev: p.rev_key.clone(),
                    updated_ms: p.updated_millis,
                    seq,
                };
                records
                    .insert(p.id.as_str(), entry.encode().as_slice())
                    .map_err(unavailable)?;
                if p.kind == RecordKind::Order {
                    if let Some(old) = &stored {
                        index
                            .remove((p.instance.as_str(), old.updated_ms, p.id.as_str()))
                            .map_err(unavailable)?;
                        index
                            .remove((ALL, old.updated_ms, p.id.as_str()))
                            .map_err(unavailable)?;
                    }
                    index
                        .insert((p.instance.as_str(), p.updated_millis, p.id.as_str()), ())
                        .map_err(unavailable)?;
                    index
                        .insert((ALL, p.updated_millis, p.id.as_str()), ())
                        .map_err(unavailable)?;
                }
            }
            out.push(RecordResult {
                kind: p.kind,
                id: p.id.clone(),
                change,
            });
        }
        Ok(out)
    }

    fn resolve(
        &mut self,
        txn: &WriteTransaction,
        id: &str,
        records: &[Record],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<RecordResult>> {
        let prepared = records
            .iter()
            .map(prepare)
            .collect::<StoreResult<Vec<_>>>()?;
        let dl = get_dead_letter_in(txn, id)?.ok_or(StoreError::NotFound)?;
        let results = self.apply(txn, &prepared, &dl.delivery_id, now)?;
        let mut dls = txn.open_table(DEAD_LETTERS).map_err(unavailable)?;
        dls.remove(id).map_err(unavailable)?;
        let mut idx = txn.open_table(DEAD_LETTERS_BY_TIME).map_err(unavailable)?;
        idx.remove((dl.dead_lettered_at.timestamp_millis(), id))
            .map_err(unavailable)?;
        // The raw delivery expires once none of its items is parked any more.
        let others = dls
            .range(dl.delivery_id.as_str()..)
            .map_err(unavailable)?
            .filter_map(Result::ok)
            .take_while(|(k, _)| k.value().starts_with(dl.delivery_id.as_str()))
            .count();
        if others == 0 {
            let expires = now.timestamp_millis() + self.options.raw_retention.as_millis() as i64;
            let mut exp = txn.open_table(EXPIRY).map_err(unavailable)?;
            exp.insert((expires, format!("r{}", dl.delivery_id).as_str()), ())
                .map_err(unavailable)?;
        }
        Ok(results)
    }
}

/// The reply slot of an op whose batch failed before it ran.
fn op_reply_placeholder(op: Op) -> Reply {
    let m = "batch aborted";
    match op {
        Op::Ingest { reply, .. } => Reply::Ingest(reply, down(m)),
        Op::Resolve { reply, .. } => Reply::Resolve(reply, down(m)),
        Op::UpdateDeadLetter { reply, .. } => Reply::DeadLetter(reply, down(m)),
        Op::Ack { reply, .. } => Reply::Ack(reply, down(m)),
        Op::Housekeeping { reply, .. } => Reply::Housekeeping(reply, down(m)),
        Op::Run { reply, .. } => Reply::Run(reply, down(m)),
    }
}

fn down<T>(message: &str) -> StoreResult<T> {
    Err(StoreError::Unavailable(message.to_string()))
}

/// A storage (not business) error aborts the whole batch.
fn reply_fatal(r: &Reply) -> Option<String> {
    let err = match r {
        Reply::Ingest(_, Err(e)) => Some(e),
        Reply::Resolve(_, Err(e)) => Some(e),
        Reply::DeadLetter(_, Err(e)) => Some(e),
        Reply::Ack(_, Err(e)) => Some(e),
        Reply::Housekeeping(_, Err(e)) => Some(e),
        Reply::Run(_, Err(e)) => Some(e),
        _ => None,
    }?;
    matches!(err, StoreError::Unavailable(_) | StoreError::Corrupt(_)).then(|| err.to_string())
}

fn put_dead_letter(txn: &WriteTransaction, dl: &DeadLetter, json: &[u8]) -> StoreResult<()> {
    let mut dls = txn.open_table(DEAD_LETTERS).map_err(unavailable)?;
    dls.insert(dl.id.as_str(), json).map_err(unavailable)?;
    let mut idx = txn.open_table(DEAD_LETTERS_BY_TIME).map_err(unavailable)?;
    idx.insert((dl.dead_lettered_at.timestamp_millis(), dl.id.as_str()), ())
        .map_err(unavailable)?;
    Ok(())
}

fn get_dead_letter_in(txn: &WriteTransaction, id: &str) -> StoreResult<Option<DeadLetter>> {
    let dls = txn.open_table(DEAD_LETTERS).map_err(unavailable)?;
    let value = dls.get(id).map_err(unavailable)?;
    value
        .map(|v| serde_json::from_slice(v.value()).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

fn update_dead_letter(
    txn: &WriteTransaction,
    id: &str,
    reason: DeadLetterReason,
) -> StoreResult<DeadLetter> {
    let mut dl = get_dead_letter_in(txn, id)?.ok_or(StoreError::NotFound)?;
    dl.reason = reason;
    dl.failed_replays += 1;
    let json = serde_json::to_vec(&dl).map_err(|e| StoreError::Invalid(e.to_string()))?;
    put_dead_letter(txn, &dl, &json)?;
    Ok(dl)
}

fn ack(txn: &WriteTransaction, group: &str, ids: &[String]) -> StoreResult<()> {
    let Some(max) = ids
        .iter()
        .map(|i| {
            i.parse::<u64>()
                .map_err(|_| StoreError::Invalid(format!("bad event id {i}")))
        })
        .collect::<StoreResult<Vec<_>>>()?
        .into_iter()
        .max()
    else {
        return Ok(());
    };
    let mut groups = txn.open_table(GROUPS).map_err(unavailable)?;
    let current = groups
        .get(group)
        .map_err(unavailable)?
        .map(|v| v.value())
        .unwrap_or(0);
    if max > current {
        groups.insert(group, max).map_err(unavailable)?;
    }
    Ok(())
}

fn housekeeping(txn: &WriteTransaction, now: DateTime<Utc>) -> StoreResult<Housekeeping> {
    let now_ms = now.timestamp_millis();
    let mut report = Housekeeping::default();
    let mut exp = txn.open_table(EXPIRY).map_err(unavailable)?;
    let mut dedupe = txn.open_table(DEDUPE).map_err(unavailable)?;
    let mut deliveries = txn.open_table(DELIVERIES).map_err(unavailable)?;
    let dls = txn.open_table(DEAD_LETTERS).map_err(unavailable)?;
    let due: Vec<(i64, String)> = exp
        .range::<(i64, &str)>(..(now_ms, ""))
        .map_err(unavailable)?
        .filter_map(Result::ok)
        .map(|(k, _)| {
            let (ms, key) = k.value();
            (ms, key.to_string())
        })
        .collect();
    for (ms, entry) in due {
        exp.remove((ms, entry.as_str())).map_err(unavailable)?;
        if let Some(key) = entry.strip_prefix('d') {
            // Only remove the dedupe entry if it was not renewed with a later expiry.
            let stale = dedupe
                .get(key)
                .map_err(unavailable)?
                .map(|v| v.value().ends_with(&format!("\0{ms}")))
                .unwrap_or(false);
            if stale {
                dedupe.remove(key).map_err(unavailable)?;
                report.dedupe_keys_expired += 1;
            }
        } else if let Some(id) = entry.strip_prefix('r')
            && dls.get(id).map_err(unavailable)?.is_none()
            && deliveries.remove(id).map_err(unavailable)?.is_some()
        {
            report.raw_bodies_expired += 1;
        }
    }
    Ok(report)
}

/// What the records table keeps per record.
struct RecordEntry {
    rev: String,
    updated_ms: i64,
    /// The event holding the record's current document.
    seq: u64,
}

impl RecordEntry {
    fn encode(&self) -> Vec<u8> {
        frame(&[
            self.rev.as_bytes(),
            &self.updated_ms.to_le_bytes(),
            &self.seq.to_le_bytes(),
        ])
    }

    fn decode(bytes: &[u8]) -> StoreResult<Self> {
        match unframe(bytes)?.as_slice() {
            [rev, ms, seq] => Ok(Self {
                rev: String::from_utf8_lossy(rev).into_owned(),
                updated_ms: i64::from_le_bytes(
                    (*ms)
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("record entry".into()))?,
                ),
                seq: u64::from_le_bytes(
                    (*seq)
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("record entry".into()))?,
                ),
            }),
            _ => Err(StoreError::Corrupt("record entry".into())),
        }
    }
}

/// A record's current document, read through its entry and the event log.
fn record_in(
    records: &impl ReadableTable<&'static str, &'static [u8]>,
    events: &impl ReadableTable<u64, &'static [u8]>,
    id: &str,
) -> StoreResult<Option<Record>> {
    let Some(v) = records.get(id).map_err(unavailable)? else {
        return Ok(None);
    };
    let entry = RecordEntry::decode(v.value())?;
    let ev = events
        .get(entry.seq)
        .map_err(unavailable)?
        .ok_or_else(|| StoreError::Corrupt(format!("record {id} points at a missing event")))?;
    let event: ChangeEvent =
        serde_json::from_slice(ev.value()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Some(event.record))
}

fn read_record(db: &Database, id: &str) -> StoreResult<Option<Record>> {
    let r = db.begin_read().map_err(unavailable)?;
    let records = r.open_table(RECORDS).map_err(unavailable)?;
    let events = r.open_table(EVENTS).map_err(unavailable)?;
    record_in(&records, &events, id)
}

/// An order as presented: its snapshot with the lifecycle facts applied.
fn order_view(
    life: &impl ReadableTable<&'static str, (i16, i16)>,
    facts: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    order: Order,
) -> StoreResult<Order> {
    let id = order.id.as_str().to_string();
    let floor = life
        .get(id.as_str())
        .map_err(unavailable)?
        .map(|v| v.value().0)
        .and_then(|r| u8::try_from(r).ok())
        .unwrap_or(0);
    let mut list = Vec::new();
    for item in facts
        .range::<(&str, &str)>((id.as_str(), "")..)
        .map_err(unavailable)?
    {
        let (k, v) = item.map_err(unavailable)?;
        if k.value().0 != id {
            break;
        }
        list.push(parse_fact(v.value())?);
    }
    Ok(lifecycle::view(order, &list, floor))
}

impl Store for EmbeddedStore {
    async fn ingest_with_cursor(
        &self,
        delivery: RawDelivery,
        disposition: Disposition,
        cursor: Option<CursorWrite>,
    ) -> StoreResult<IngestOutcome> {
        self.send(|reply| Op::Ingest {
            delivery: Box::new(delivery),
            disposition,
            cursor,
            reply,
        })
        .await
    }

    async fn get_cursor(&self, instance: &str, name: &str) -> StoreResult<Option<String>> {
        let (instance, name) = (instance.to_string(), name.to_string());
        self.read(move |db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(CURSORS).map_err(unavailable)?;
            Ok(t.get((instance.as_str(), name.as_str()))
                .map_err(unavailable)?
                .map(|v| v.value().to_string()))
        })
        .await
    }

    async fn reconcile(
        &self,
        instance: &str,
        since: Option<DateTime<Utc>>,
    ) -> StoreResult<Reconciliation> {
        let instance = instance.to_string();
        self.read(move |db| {
            let r = db.begin_read().map_err(unavailable)?;
            let seen = r.open_table(SEEN).map_err(unavailable)?;
            let records = r.open_table(RECORDS).map_err(unavailable)?;
            let ids = |source: &str| -> StoreResult<std::collections::BTreeSet<String>> {
                let mut out = std::collections::BTreeSet::new();
                let lo = (instance.as_str(), source, "");
                let hi = (instance.as_str(), source, "\u{10FFFF}");
                for item in seen.range(lo..=hi).map_err(unavailable)? {
                    let (k, _) = item.map_err(unavailable)?;
                    out.insert(k.value().2.to_string());
                }
                Ok(out)
            };
            let recent = |id: &String| -> bool {
                let Some(since) = since else { return true };
                records
                    .get(id.as_str())
                    .ok()
                    .flatten()
                    .and_then(|v| RecordEntry::decode(v.value()).ok())
                    .is_some_and(|e| e.updated_ms >= since.timestamp_millis())
            };
            let polled = ids(DeliverySource::Poll.as_str())?;
            let pushed = ids(DeliverySource::Webhook.as_str())?;
            Ok(Reconciliation {
                polled_not_pushed: polled
                    .difference(&pushed)
                    .filter(|i| recent(i))
                    .cloned()
                    .collect(),
                pushed_not_polled: pushed
                    .difference(&polled)
                    .filter(|i| recent(i))
                    .cloned()
                    .collect(),
            })
        })
        .await
    }

    async fn get_order(&self, id: &OrderId) -> StoreResult<Option<Order>> {
        let id = id.as_str().to_string();
        self.read(move |db| {
            let r = db.begin_read().map_err(unavailable)?;
            let records = r.open_table(RECORDS).map_err(unavailable)?;
            let events = r.open_table(EVENTS).map_err(unavailable)?;
            let life = r.open_table(LIFE).map_err(unavailable)?;
            let facts = r.open_table(FACTS).map_err(unavailable)?;
            match record_in(&records, &events, &id)? {
                Some(Record::Order(o)) => order_view(&life, &facts, *o).map(Some),
                Some(_) => Err(StoreError::Corrupt(format!("{id} is not an order"))),
                None => Ok(None),
            }
        })
        .await
    }

    async fn get_listing(&self, id: &ListingId) -> StoreResult<Option<Listing>> {
        let id = id.as_str().to_string();
        self.read(move |db| match read_record(db, &id)? {
            Some(Record::Listing(l)) => Ok(Some(*l)),
            Some(_) => Err(StoreError::Corrupt(format!("{id} is not a listing"))),
            None => Ok(None),
        })
        .await
    }

    async fn list_orders(&self, q: OrderQuery) -> StoreResult<Page<Order>> {
        self.read(move |db| {
            let since_ms = q.since.map(|s| s.timestamp_millis()).unwrap_or(i64::MIN);
            let (start_ms, after_id) = match &q.after {
                Some(c) if c.millis >= since_ms => (c.millis, Some(c.id.clone())),
                _ => (since_ms, None),
            };
            let slot = q.instance.clone().unwrap_or_else(|| ALL.to_string());
            let r = db.begin_read().map_err(unavailable)?;
            let records = r.open_table(RECORDS).map_err(unavailable)?;
            let events = r.open_table(EVENTS).map_err(unavailable)?;
            let index = r.open_table(ORDER_INDEX).map_err(unavailable)?;
            let life = r.open_table(LIFE).map_err(unavailable)?;
            let facts = r.open_table(FACTS).map_err(unavailable)?;
            let lower = match &after_id {
                Some(a) => Bound::Excluded((slot.as_str(), start_ms, a.as_str())),
                None => Bound::Included((slot.as_str(), start_ms, "")),
            };
            let upper = Bound::Included((slot.as_str(), i64::MAX, "\u{10FFFF}"));
            let mut ids: Vec<(i64, String)> = Vec::with_capacity(q.limit + 1);
            for item in index
                .range::<(&str, i64, &str)>((lower, upper))
                .map_err(unavailable)?
            {
                let (k, _) = item.map_err(unavailable)?;
                let (_, ms, id) = k.value();
                ids.push((ms, id.to_string()));
                if ids.len() > q.limit {
                    break;
                }
            }
            let more = ids.len() > q.limit;
            ids.truncate(q.limit);
            let mut items = Vec::with_capacity(ids.len());
            for (_, id) in &ids {
                match record_in(&records, &events, id)? {
                    Some(Record::Order(o)) => items.push(order_view(&life, &facts, *o)?),
                    Some(_) => return Err(StoreError::Corrupt(format!("{id} is not an order"))),
                    None => {
                        return Err(StoreError::Corrupt(format!("index points at missing {id}")));
                    }
                }
            }
            let next = more.then(|| {
                let (ms, id) = ids.last().expect("more implies items");
                Cursor {
                    millis: *ms,
                    id: id.clone(),
                }
            });
            Ok(Page { items, next })
        })
        .await
    }

    async fn get_delivery(&self, delivery_id: &str) -> StoreResult<Option<RawDelivery>> {
        let id = delivery_id.to_string();
        self.read(move |db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(DELIVERIES).map_err(unavailable)?;
            let Some(v) = t.get(id.as_str()).map_err(unavailable)? else {
                return Ok(None);
            };
            let parts = unframe(v.value())?;
            let (meta, body) = match parts.as_slice() {
                [m, b] => (*m, *b),
                _ => return Err(StoreError::Corrupt(format!("delivery {id}"))),
            };
            let mut d: RawDelivery =
                serde_json::from_slice(meta).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            d.body = body.to_vec();
            Ok(Some(d))
        })
        .await
    }

    async fn list_dead_letters(&self, q: DeadLetterQuery) -> StoreResult<Page<DeadLetter>> {
        self.read(move |db| {
            let r = db.begin_read().map_err(unavailable)?;
            let idx = r.open_table(DEAD_LETTERS_BY_TIME).map_err(unavailable)?;
            let dls = r.open_table(DEAD_LETTERS).map_err(unavailable)?;
            let lower = match &q.after {
                Some(c) => Bound::Excluded((c.millis, c.id.as_str())),
                None => Bound::Unbounded,
            };
            let mut items = Vec::new();
            let mut more = false;
            for item in idx
                .range::<(i64, &str)>((lower, Bound::Unbounded))
                .map_err(unavailable)?
            {
                let (k, _) = item.map_err(unavailable)?;
                let (_, id) = k.value();
                let Some(v) = dls.get(id).map_err(unavailable)? else {
                    continue;
                };
                let dl: DeadLetter = serde_json::from_slice(v.value())
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                if q.instance.as_ref().is_some_and(|i| *i != dl.instance) {
                    continue;
                }
                if items.len() == q.limit {
                    more = true;
                    break;
                }
                items.push(dl);
            }
            let next = more.then(|| {
                let last: &DeadLetter = items.last().expect("more implies items");
                Cursor {
                    millis: last.dead_lettered_at.timestamp_millis(),
                    id: last.id.clone(),
                }
            });
            Ok(Page { items, next })
        })
        .await
    }

    async fn get_dead_letter(&self, id: &str) -> StoreResult<Option<DeadLetter>> {
        let id = id.to_string();
        self.read(move |db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(DEAD_LETTERS).map_err(unavailable)?;
            let v = t.get(id.as_str()).map_err(unavailable)?;
            v.map(|v| {
                serde_json::from_slice(v.value()).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .transpose()
        })
        .await
    }

    async fn resolve_dead_letter(
        &self,
        id: &str,
        records: Vec<Record>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<RecordResult>> {
        let id = id.to_string();
        self.send(|reply| Op::Resolve {
            id,
            records,
            now,
            reply,
        })
        .await
    }

    async fn update_dead_letter(
        &self,
        id: &str,
        reason: DeadLetterReason,
    ) -> StoreResult<DeadLetter> {
        let id = id.to_string();
        self.send(|reply| Op::UpdateDeadLetter { id, reason, reply })
            .await
    }

    async fn read_events(
        &self,
        group: &str,
        _consumer: &str,
        max: usize,
    ) -> StoreResult<Vec<StreamEntry>> {
        let group = group.to_string();
        self.read(move |db| {
            let r = db.begin_read().map_err(unavailable)?;
            let groups = r.open_table(GROUPS).map_err(unavailable)?;
            let offset = groups
                .get(group.as_str())
                .map_err(unavailable)?
                .map(|v| v.value())
                .unwrap_or(0);
            let events = r.open_table(EVENTS).map_err(unavailable)?;
            let mut out = Vec::with_capacity(max.min(4096));
            for item in events.range(offset + 1..).map_err(unavailable)?.take(max) {
                let (k, v) = item.map_err(unavailable)?;
                let event: ChangeEvent = serde_json::from_slice(v.value())
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                out.push(StreamEntry {
                    id: k.value().to_string(),
                    event,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn ack_events(&self, group: &str, ids: &[String]) -> StoreResult<()> {
        let group = group.to_string();
        let ids = ids.to_vec();
        self.send(|reply| Op::Ack { group, ids, reply }).await
    }

    async fn event_count(&self) -> StoreResult<u64> {
        self.read(|db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(EVENTS).map_err(unavailable)?;
            t.len().map_err(unavailable)
        })
        .await
    }

    async fn housekeeping(&self, now: DateTime<Utc>) -> StoreResult<Housekeeping> {
        self.send(|reply| Op::Housekeeping { now, reply }).await
    }

    async fn drain_lifecycle(&self) -> StoreResult<u64> {
        Ok(0)
    }

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

    async fn fx_commit(&self, drafts: Vec<FxDraft>, view: FxView) -> StoreResult<Vec<FxEntry>> {
        let view_json =
            serde_json::to_vec(&view).map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.run(move |txn| {
            let mut idx = txn.open_table(FX_IDX).map_err(unavailable)?;
            let head = idx
                .get(FX_HEAD_KEY)
                .map_err(unavailable)?
                .and_then(|v| crate::fx::Head::decode(v.value()))
                .unwrap_or_else(crate::fx::Head::genesis);
            let latest = |k: &str| idx.get(k).ok().flatten().map(|v| v.value().to_string());
            let (entries, updates, head) = crate::fx::chain(&drafts, &head, latest, Utc::now());
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
                .insert(view.order_id.as_str(), view_json.as_slice())
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

    async fn tax_commit(
        &self,
        quote: crate::tax::Quote,
        annual: Option<crate::tax::AnnualEntry>,
    ) -> StoreResult<()> {
        let json = serde_json::to_vec(&quote).map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.run(move |txn| {
            let mut q = txn.open_table(TAX_QUOTES).map_err(unavailable)?;
            q.insert(quote.order_id.as_str(), json.as_slice())
                .map_err(unavailable)?;
            if let Some(a) = annual {
                let key = format!("{}|{}|{}", a.customer_key, a.year, quote.order_id);
                let mut t = txn.open_table(TAX_ANNUAL).map_err(unavailable)?;
                match a.amount {
                    Some(v) => {
                        t.insert(key.as_str(), v.to_string().as_str())
                            .map_err(unavailable)?;
                    }
                    None => {
                        t.remove(key.as_str()).map_err(unavailable)?;
                    }
                }
            }
            Ok(())
        })
        .await
    }

    async fn tax_quote(&self, order_id: &str) -> StoreResult<Option<crate::tax::Quote>> {
        let id = order_id.to_string();
        self.read(move |db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(TAX_QUOTES).map_err(unavailable)?;
            t.get(id.as_str())
                .map_err(unavailable)?
                .map(|v| {
                    serde_json::from_slice(v.value())
                        .map_err(|e| StoreError::Corrupt(format!("tax quote: {e}")))
                })
                .transpose()
        })
        .await
    }

    async fn tax_annual(
        &self,
        customer_key: &str,
        year: i32,
        excluding_order: &str,
    ) -> StoreResult<rust_decimal::Decimal> {
        let prefix = format!("{customer_key}|{year}|");
        let skip = format!("{prefix}{excluding_order}");
        self.read(move |db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(TAX_ANNUAL).map_err(unavailable)?;
            let mut sum = rust_decimal::Decimal::ZERO;
            for item in t.range(prefix.as_str()..).map_err(unavailable)? {
                let (k, v) = item.map_err(unavailable)?;
                if !k.value().starts_with(prefix.as_str()) {
                    break;
                }
                if k.value() != skip {
                    sum += v
                        .value()
                        .parse::<rust_decimal::Decimal>()
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                }
            }
            Ok(sum)
        })
        .await
    }

    async fn fx_head(&self) -> StoreResult<crate::fx::Head> {
        self.read(|db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(FX_IDX).map_err(unavailable)?;
            Ok(t.get(FX_HEAD_KEY)
                .map_err(unavailable)?
                .and_then(|v| crate::fx::Head::decode(v.value()))
                .unwrap_or_else(crate::fx::Head::genesis))
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

    async fn reco_apply(&self, writes: Vec<crate::store::RecoWrite>) -> StoreResult<()> {
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

    async fn reco_load(&self, kind: crate::store::RecoKind) -> StoreResult<Vec<String>> {
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

    async fn reco_publish(&self, results: crate::store::RecoResults) -> StoreResult<()> {
        use crate::store::{RecoPart, RecoResults};
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

    async fn reco_ranking(
        &self,
        key: &str,
        k: usize,
    ) -> StoreResult<Option<Vec<(String, f64, String)>>> {
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
                let e: (String, f64, String) = serde_json::from_slice(v.value())
                    .map_err(|e| StoreError::Corrupt(format!("ranking entry: {e}")))?;
                out.push(e);
            }
            Ok((!out.is_empty()).then_some(out))
        })
        .await
    }

    async fn reco_meta(&self, part: crate::store::RecoPart) -> StoreResult<Option<String>> {
        self.read(move |db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(RECO_META).map_err(unavailable)?;
            Ok(t.get(part.as_str())
                .map_err(unavailable)?
                .map(|v| String::from_utf8_lossy(v.value()).into_owned()))
        })
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|db| db.begin_read().map(drop).map_err(unavailable))
            .await
    }
}
