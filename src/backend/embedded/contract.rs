//! The core store contract on redb: reads on MVCC snapshots, writes through the writer.

use super::records::{
    RecordEntry, listings_page, order_view, read_listing, record_in, time_index_ids,
};
use super::tables::*;
use super::{EmbeddedStore, unavailable, unframe};
use std::ops::Bound;

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use crate::model::{Listing, ListingId, Order, OrderId, Record};
use crate::store::{
    ConsumerLag, Cursor, CursorWrite, DeadLetter, DeadLetterQuery, DeadLetterReason,
    DeliverySource, Disposition, Housekeeping, IngestOutcome, ListingQuery, OrderQuery, Page,
    RawDelivery, Reconciliation, RecordResult, Store, StoreError, StoreResult, StreamEntry, codec,
    parse_doc, parse_event,
};

impl Store for EmbeddedStore {
    async fn ingest_with_cursor(
        &self,
        delivery: RawDelivery,
        disposition: Disposition,
        cursor: Option<CursorWrite>,
    ) -> StoreResult<IngestOutcome> {
        if let Some(f) = cursor.as_ref().and_then(|c| c.fence.as_ref()) {
            self.leases.check(f)?;
        }
        let ready = super::write::ready(delivery, disposition)?;
        self.write(move |tx| tx.ingest(ready, cursor)).await
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

    async fn orders_of_customer(
        &self,
        customer_key: &str,
        limit: usize,
    ) -> StoreResult<Vec<Order>> {
        let key = customer_key.to_string();
        self.read(move |db| {
            let r = db.begin_read().map_err(unavailable)?;
            let by_customer = r.open_table(CUSTOMER_ORDERS).map_err(unavailable)?;
            let records = r.open_table(RECORDS).map_err(unavailable)?;
            let events = r.open_table(EVENTS).map_err(unavailable)?;
            let life = r.open_table(LIFE).map_err(unavailable)?;
            let facts = r.open_table(FACTS).map_err(unavailable)?;
            let mut out = Vec::new();
            let range = (key.as_str(), "")..=(key.as_str(), "\u{10FFFF}");
            for item in by_customer.range(range).map_err(unavailable)? {
                let (k, _) = item.map_err(unavailable)?;
                let (_, id) = k.value();
                if let Some(Record::Order(o)) = record_in(&records, &events, id)?
                    && o.customer.as_ref().and_then(|c| c.key.as_deref()) == Some(key.as_str())
                {
                    out.push(order_view(&life, &facts, *o)?);
                    if out.len() == limit {
                        break;
                    }
                }
            }
            Ok(out)
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
        self.read(move |db| read_listing(db, &id)).await
    }

    async fn list_orders(&self, q: OrderQuery) -> StoreResult<Page<Order>> {
        self.read(move |db| {
            let since_ms = q.since.map(|s| s.timestamp_millis()).unwrap_or(i64::MIN);
            let slot = q.instance.clone().unwrap_or_else(|| ALL.to_string());
            let r = db.begin_read().map_err(unavailable)?;
            let records = r.open_table(RECORDS).map_err(unavailable)?;
            let events = r.open_table(EVENTS).map_err(unavailable)?;
            let index = r.open_table(ORDER_INDEX).map_err(unavailable)?;
            let life = r.open_table(LIFE).map_err(unavailable)?;
            let facts = r.open_table(FACTS).map_err(unavailable)?;
            let Page { items: ids, next } =
                time_index_ids(&index, &slot, since_ms, q.after.as_ref(), q.limit)?;
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
            Ok(Page { items, next })
        })
        .await
    }

    async fn list_listings(&self, q: ListingQuery) -> StoreResult<Page<Listing>> {
        self.read(move |db| listings_page(db, &q)).await
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
            // Two parts: a body stored before compression; three: compressed.
            let (meta, body) = match parts.as_slice() {
                [m, b] => (*m, b.to_vec()),
                [m, b, enc] if *enc == super::BODY_ZSTD => (*m, codec::unpack_body(b)?),
                _ => return Err(StoreError::Corrupt(format!("delivery {id}"))),
            };
            let mut d: RawDelivery = parse_doc(meta)?;
            d.body = body;
            Ok(Some(d))
        })
        .await
    }

    async fn dead_letters_waiting(&self) -> StoreResult<std::collections::BTreeMap<String, u64>> {
        self.read(|db| {
            let r = db.begin_read().map_err(unavailable)?;
            let dls = r.open_table(DEAD_LETTERS).map_err(unavailable)?;
            let mut out = std::collections::BTreeMap::new();
            for item in dls.iter().map_err(unavailable)? {
                let (k, _) = item.map_err(unavailable)?;
                // Dead letter ids are "d.<instance>.<…>"; instance ids have no dots.
                if let Some(inst) = k.value().split('.').nth(1) {
                    *out.entry(inst.to_string()).or_insert(0) += 1;
                }
            }
            Ok(out)
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
        self.write(move |tx| tx.resolve(&id, &records, now)).await
    }

    async fn update_dead_letter(
        &self,
        id: &str,
        reason: DeadLetterReason,
    ) -> StoreResult<DeadLetter> {
        let id = id.to_string();
        self.run(move |txn| super::write::update_dead_letter(txn, &id, reason))
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
                let event = parse_event(v.value())?;
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
        self.run(move |txn| super::write::ack(txn, &group, &ids))
            .await
    }

    async fn event_count(&self) -> StoreResult<u64> {
        self.read(|db| {
            let r = db.begin_read().map_err(unavailable)?;
            let t = r.open_table(EVENTS).map_err(unavailable)?;
            t.len().map_err(unavailable)
        })
        .await
    }

    async fn consumer_lag(&self, groups: &[&str]) -> StoreResult<Vec<ConsumerLag>> {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        self.read(move |db| {
            let r = db.begin_read().map_err(unavailable)?;
            let offsets = r.open_table(GROUPS).map_err(unavailable)?;
            let events = r.open_table(EVENTS).map_err(unavailable)?;
            let last = match events.last().map_err(unavailable)? {
                Some((k, _)) => k.value(),
                None => 0,
            };
            let mut out = Vec::with_capacity(groups.len());
            for group in groups {
                let offset = offsets
                    .get(group.as_str())
                    .map_err(unavailable)?
                    .map_or(0, |v| v.value());
                // Event keys are consecutive from 1, so the difference counts them.
                let oldest = match events.range(offset + 1..).map_err(unavailable)?.next() {
                    Some(item) => {
                        let (_, v) = item.map_err(unavailable)?;
                        Some(parse_event(v.value())?.at)
                    }
                    None => None,
                };
                out.push(ConsumerLag {
                    group,
                    behind: last.saturating_sub(offset),
                    oldest,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn housekeeping(&self, now: DateTime<Utc>) -> StoreResult<Housekeeping> {
        self.run(move |txn| super::write::housekeeping(txn, now))
            .await
    }

    async fn drain_lifecycle(&self) -> StoreResult<u64> {
        Ok(0)
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|db| db.begin_read().map(drop).map_err(unavailable))
            .await
    }

    async fn ready(&self, now: DateTime<Utc>) -> StoreResult<()> {
        // Through the writer thread, committed like an ingest (a stopped writer is not ready).
        let stamp = now.timestamp_micros();
        self.write(move |tx| {
            let mut t = tx.txn.open_table(PROBE).map_err(unavailable)?;
            t.insert("readyz", stamp).map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn lease(
        &self,
        lease: &crate::store::Lease,
        holder: &str,
        ttl: std::time::Duration,
    ) -> StoreResult<Option<crate::store::Fence>> {
        Ok(self.leases.take(lease, holder, ttl))
    }

    async fn release(&self, lease: &crate::store::Lease, holder: &str) -> StoreResult<()> {
        self.leases.release(lease, holder);
        Ok(())
    }

    async fn lease_states(
        &self,
        leases: &[crate::store::Lease],
    ) -> StoreResult<Vec<crate::store::LeaseState>> {
        Ok(self.leases.states(leases))
    }

    fn shared_budget(&self) -> Option<crate::store::SharedBudget> {
        None
    }

    async fn slot_ranges(&self) -> StoreResult<Vec<crate::store::SlotRange>> {
        Ok(Vec::new())
    }
}
