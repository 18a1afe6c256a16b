//! The embedded store's writes. Each runs on the writer thread inside the batch's one
//! transaction ([`Tx`]); nothing here commits.

use chrono::{DateTime, Utc};
use redb::{ReadableTable, WriteTransaction};

use super::records::RecordEntry;
use super::tables::*;
use super::writer::Tx;
use super::{BODY_ZSTD, frame, unavailable};
use crate::model::{Change, Record, RecordKind, lifecycle};
use crate::store::{
    CursorWrite, DeadLetter, DeadLetterReason, DeliverySource, Disposition, Housekeeping,
    IngestOutcome, Prepared, RawDelivery, RecordResult, StoreError, StoreResult, codec, decide,
    event_json, prepare,
};

/// A delivery made ready to write: records serialized, dead letters and the raw delivery
/// encoded and compressed. This is done by the caller, so the single writer thread spends its
/// time on the trees only.
pub(super) struct Ready {
    /// The delivery, its body moved into `stored_raw`.
    delivery: RawDelivery,
    prepared: Vec<Prepared>,
    dead_letters: Vec<(DeadLetter, Vec<u8>)>,
    ignored: bool,
    /// The raw delivery as stored: frame(meta, compressed body, `zstd`).
    stored_raw: Vec<u8>,
}

/// Everything that can fail for a reason other than storage, done before the first write, so
/// an error never leaves part of a delivery behind.
pub(super) fn ready(mut delivery: RawDelivery, disposition: Disposition) -> StoreResult<Ready> {
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
    let body = std::mem::take(&mut delivery.body);
    let stored_raw = frame(&[&codec::pack_doc(&meta), &codec::pack_body(&body), BODY_ZSTD]);
    Ok(Ready {
        delivery,
        prepared,
        dead_letters,
        ignored: matches!(disposition, Disposition::Ignore),
        stored_raw,
    })
}

impl Tx<'_> {
    pub(super) fn ingest(
        &mut self,
        ready: Ready,
        cursor: Option<CursorWrite>,
    ) -> StoreResult<IngestOutcome> {
        let Ready {
            delivery,
            prepared,
            dead_letters,
            ignored,
            stored_raw,
        } = ready;
        let dedupe_key = format!("{}\0{}", delivery.instance, delivery.dedupe_id);
        let now_ms = delivery.received_at.timestamp_millis();
        if let Some(c) = &cursor {
            let mut t = self.txn.open_table(CURSORS).map_err(unavailable)?;
            t.insert(
                (delivery.instance.as_str(), c.name.as_str()),
                c.value.as_str(),
            )
            .map_err(unavailable)?;
        }
        {
            let mut dedupe = self.txn.open_table(DEDUPE).map_err(unavailable)?;
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
            let mut exp = self.txn.open_table(EXPIRY).map_err(unavailable)?;
            exp.insert((expires, format!("d{dedupe_key}").as_str()), ())
                .map_err(unavailable)?;
        }
        let records = self.apply(&prepared, &delivery.delivery_id, delivery.received_at)?;
        if matches!(
            delivery.source,
            DeliverySource::Webhook | DeliverySource::Poll
        ) {
            let mut seen = self.txn.open_table(SEEN).map_err(unavailable)?;
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
            put_dead_letter(self.txn, dl, json)?;
        }
        let dead_lettered = !dead_letters.is_empty();
        // The raw delivery: kept for the retention period, or until a dead letter is resolved.
        let mut deliveries = self.txn.open_table(DELIVERIES).map_err(unavailable)?;
        deliveries
            .insert(delivery.delivery_id.as_str(), stored_raw.as_slice())
            .map_err(unavailable)?;
        if !dead_lettered {
            let expires = now_ms + self.options.raw_retention.as_millis() as i64;
            let mut exp = self.txn.open_table(EXPIRY).map_err(unavailable)?;
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
        prepared: &[Prepared],
        delivery_id: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<RecordResult>> {
        let mut out = Vec::with_capacity(prepared.len());
        let mut records = self.txn.open_table(RECORDS).map_err(unavailable)?;
        let mut index = self.txn.open_table(ORDER_INDEX).map_err(unavailable)?;
        let mut events = self.txn.open_table(EVENTS).map_err(unavailable)?;
        let mut life = self.txn.open_table(LIFE).map_err(unavailable)?;
        let mut facts = self.txn.open_table(FACTS).map_err(unavailable)?;
        let rank = |r: i16| u8::try_from(r).ok();
        for p in prepared {
            if p.kind == RecordKind::Fact {
                let key = (p.order_id.as_str(), p.id.as_str());
                let change = if facts.get(key).map_err(unavailable)?.is_some() {
                    Change::Unchanged
                } else {
                    facts
                        .insert(key, p.stored_doc().as_slice())
                        .map_err(unavailable)?;
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
                        .insert(*self.next_seq, codec::pack_doc(json.as_bytes()).as_slice())
                        .map_err(unavailable)?;
                    *self.next_seq += 1;
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
                let seq = *self.next_seq;
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
                events
                    .insert(seq, codec::pack_doc(json.as_bytes()).as_slice())
                    .map_err(unavailable)?;
                *self.next_seq += 1;
                let entry = RecordEntry {
                    rev: p.rev_key.clone(),
                    updated_ms: p.updated_millis,
                    seq,
                };
                records
                    .insert(p.id.as_str(), entry.encode().as_slice())
                    .map_err(unavailable)?;
                if p.kind == RecordKind::Listing {
                    index_listing(self.txn, p, stored.as_ref().map(|o| o.updated_ms))?;
                }
                if let Some(stock_ref) = p.stock_ref.as_deref() {
                    let mut by_ref = self.txn.open_table(STOCK_BY_REF).map_err(unavailable)?;
                    by_ref
                        .insert((p.instance.as_str(), stock_ref, p.id.as_str()), ())
                        .map_err(unavailable)?;
                }
                if let Some(key) = p.customer_key.as_deref() {
                    let mut by_customer =
                        self.txn.open_table(CUSTOMER_ORDERS).map_err(unavailable)?;
                    by_customer
                        .insert((key, p.id.as_str()), ())
                        .map_err(unavailable)?;
                }
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

    pub(super) fn resolve(
        &mut self,
        id: &str,
        records: &[Record],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<RecordResult>> {
        let prepared = records
            .iter()
            .map(prepare)
            .collect::<StoreResult<Vec<_>>>()?;
        let dl = get_dead_letter_in(self.txn, id)?.ok_or(StoreError::NotFound)?;
        let results = self.apply(&prepared, &dl.delivery_id, now)?;
        let mut dls = self.txn.open_table(DEAD_LETTERS).map_err(unavailable)?;
        dls.remove(id).map_err(unavailable)?;
        let mut idx = self
            .txn
            .open_table(DEAD_LETTERS_BY_TIME)
            .map_err(unavailable)?;
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
            let mut exp = self.txn.open_table(EXPIRY).map_err(unavailable)?;
            exp.insert((expires, format!("r{}", dl.delivery_id).as_str()), ())
                .map_err(unavailable)?;
        }
        Ok(results)
    }
}

pub(super) fn put_dead_letter(
    txn: &WriteTransaction,
    dl: &DeadLetter,
    json: &[u8],
) -> StoreResult<()> {
    let mut dls = txn.open_table(DEAD_LETTERS).map_err(unavailable)?;
    dls.insert(dl.id.as_str(), json).map_err(unavailable)?;
    let mut idx = txn.open_table(DEAD_LETTERS_BY_TIME).map_err(unavailable)?;
    idx.insert((dl.dead_lettered_at.timestamp_millis(), dl.id.as_str()), ())
        .map_err(unavailable)?;
    Ok(())
}

pub(super) fn get_dead_letter_in(
    txn: &WriteTransaction,
    id: &str,
) -> StoreResult<Option<DeadLetter>> {
    let dls = txn.open_table(DEAD_LETTERS).map_err(unavailable)?;
    let value = dls.get(id).map_err(unavailable)?;
    value
        .map(|v| serde_json::from_slice(v.value()).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

pub(super) fn update_dead_letter(
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

pub(super) fn ack(txn: &WriteTransaction, group: &str, ids: &[String]) -> StoreResult<()> {
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

pub(super) fn housekeeping(
    txn: &WriteTransaction,
    now: DateTime<Utc>,
) -> StoreResult<Housekeeping> {
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
        } else if let Some(key) = entry.strip_prefix('i')
            && super::outbox::expire_idempotency(txn, key, now)?
        {
            report.idempotency_keys_expired += 1;
        }
    }
    Ok(report)
}

/// A listing's entries in the time index (moved from its previous update time) and under its
/// SKU.
fn index_listing(
    txn: &redb::WriteTransaction,
    p: &Prepared,
    old_ms: Option<i64>,
) -> StoreResult<()> {
    let mut index = txn.open_table(LISTING_INDEX).map_err(unavailable)?;
    for slot in [p.instance.as_str(), ALL] {
        if let Some(ms) = old_ms {
            index
                .remove((slot, ms, p.id.as_str()))
                .map_err(unavailable)?;
        }
        index
            .insert((slot, p.updated_millis, p.id.as_str()), ())
            .map_err(unavailable)?;
    }
    if let Some(sku) = &p.sku {
        let mut skus = txn.open_table(LISTING_SKU).map_err(unavailable)?;
        skus.insert((p.instance.as_str(), sku.as_str(), p.id.as_str()), ())
            .map_err(unavailable)?;
    }
    Ok(())
}
