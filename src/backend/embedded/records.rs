//! How records are kept: the records table points at the event holding each record's current
//! document (a document is stored once, in its event).

use redb::{Database, ReadableDatabase, ReadableTable};

use super::tables::*;
use super::{frame, unavailable, unframe};
use crate::model::{Listing, LocationStock, Order, Record, lifecycle};
use crate::store::{Cursor, ListingQuery, Page, StoreError, StoreResult, parse_event, parse_fact};

/// What the records table keeps per record.
pub(super) struct RecordEntry {
    pub(super) rev: String,
    pub(super) updated_ms: i64,
    /// The event holding the record's current document.
    pub(super) seq: u64,
}

impl RecordEntry {
    pub(super) fn encode(&self) -> Vec<u8> {
        frame(&[
            self.rev.as_bytes(),
            &self.updated_ms.to_le_bytes(),
            &self.seq.to_le_bytes(),
        ])
    }

    pub(super) fn decode(bytes: &[u8]) -> StoreResult<Self> {
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
pub(super) fn record_in(
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
    Ok(Some(parse_event(ev.value())?.record))
}

/// An order as presented: its snapshot with the lifecycle facts applied.
pub(super) fn order_view(
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

/// (ms, id) of a time index `(slot, ms, id)` from `since_ms` after the cursor, up to `limit`,
/// and the next page's cursor when more follow (the order and listing indexes).
pub(super) fn time_index_ids(
    index: &impl ReadableTable<(&'static str, i64, &'static str), ()>,
    slot: &str,
    since_ms: i64,
    after: Option<&Cursor>,
    limit: usize,
) -> StoreResult<Page<(i64, String)>> {
    use std::ops::Bound;
    let lower = match after {
        Some(c) if c.millis >= since_ms => Bound::Excluded((slot, c.millis, c.id.as_str())),
        _ => Bound::Included((slot, since_ms, "")),
    };
    let upper = Bound::Included((slot, i64::MAX, "\u{10FFFF}"));
    let mut ids: Vec<(i64, String)> = Vec::with_capacity(limit + 1);
    for item in index
        .range::<(&str, i64, &str)>((lower, upper))
        .map_err(unavailable)?
    {
        let (k, _) = item.map_err(unavailable)?;
        let (_, ms, id) = k.value();
        ids.push((ms, id.to_string()));
        if ids.len() > limit {
            break;
        }
    }
    let next = Cursor::page_end(&mut ids, limit, |(ms, id)| (*ms, id));
    Ok(Page { items: ids, next })
}

/// A listing as presented: with the stock levels of its stock item, where it names one.
pub(super) fn listing_view(
    records: &impl ReadableTable<&'static str, &'static [u8]>,
    events: &impl ReadableTable<u64, &'static [u8]>,
    by_ref: &impl ReadableTable<(&'static str, &'static str, &'static str), ()>,
    mut listing: Listing,
) -> StoreResult<Listing> {
    let Some(stock_ref) = listing.stock_ref.clone() else {
        return Ok(listing);
    };
    let inst = listing.instance.clone();
    let range =
        (inst.as_str(), stock_ref.as_str(), "")..=(inst.as_str(), stock_ref.as_str(), "\u{10FFFF}");
    let mut levels = Vec::new();
    for item in by_ref
        .range::<(&str, &str, &str)>(range)
        .map_err(unavailable)?
    {
        let (k, _) = item.map_err(unavailable)?;
        if let Some(Record::Stock(s)) = record_in(records, events, k.value().2)? {
            levels.push(*s);
        }
    }
    listing.stock_levels = LocationStock::of(levels);
    Ok(listing)
}

/// One listing, as presented.
pub(super) fn read_listing(db: &Database, id: &str) -> StoreResult<Option<Listing>> {
    let r = db.begin_read().map_err(unavailable)?;
    let records = r.open_table(RECORDS).map_err(unavailable)?;
    let events = r.open_table(EVENTS).map_err(unavailable)?;
    let by_ref = r.open_table(STOCK_BY_REF).map_err(unavailable)?;
    match record_in(&records, &events, id)? {
        Some(Record::Listing(l)) => listing_view(&records, &events, &by_ref, *l).map(Some),
        Some(_) => Err(StoreError::Corrupt(format!("{id} is not a listing"))),
        None => Ok(None),
    }
}

/// A page of listings: by the time index, or, for one SKU, from its entries.
pub(super) fn listings_page(db: &Database, q: &ListingQuery) -> StoreResult<Page<Listing>> {
    let since_ms = q.since.map(|s| s.timestamp_millis()).unwrap_or(i64::MIN);
    let r = db.begin_read().map_err(unavailable)?;
    let records = r.open_table(RECORDS).map_err(unavailable)?;
    let events = r.open_table(EVENTS).map_err(unavailable)?;
    let by_ref = r.open_table(STOCK_BY_REF).map_err(unavailable)?;
    let listing = |id: &str| match record_in(&records, &events, id)? {
        Some(Record::Listing(l)) => listing_view(&records, &events, &by_ref, *l),
        Some(_) => Err(StoreError::Corrupt(format!("{id} is not a listing"))),
        None => Err(StoreError::Corrupt(format!("index points at missing {id}"))),
    };
    let Some(sku) = &q.sku else {
        let index = r.open_table(LISTING_INDEX).map_err(unavailable)?;
        let slot = q.instance.as_deref().unwrap_or(ALL);
        let Page { items: ids, next } =
            time_index_ids(&index, slot, since_ms, q.after.as_ref(), q.limit)?;
        let items = ids
            .iter()
            .map(|(_, id)| listing(id))
            .collect::<StoreResult<Vec<_>>>()?;
        return Ok(Page { items, next });
    };
    let skus = r.open_table(LISTING_SKU).map_err(unavailable)?;
    let mut candidates = Vec::new();
    // One instance: the SKU's own range; every instance: the whole (small-keyed) table.
    let entries = match q.instance.as_deref() {
        Some(inst) => skus.range::<(&str, &str, &str)>(
            (inst, sku.as_str(), "")..=(inst, sku.as_str(), "\u{10FFFF}"),
        ),
        None => skus.range::<(&str, &str, &str)>(..),
    };
    for item in entries.map_err(unavailable)? {
        let (k, _) = item.map_err(unavailable)?;
        let (inst, s, id) = k.value();
        if s != sku || q.instance.as_deref().is_some_and(|i| i != inst) {
            continue;
        }
        let l = listing(id)?;
        let ms = l.revision.updated_at.timestamp_millis();
        if l.sku.as_ref() == Some(sku) && ms >= since_ms {
            candidates.push((ms, id.to_string(), l));
        }
    }
    Ok(Page::of_candidates(candidates, q.after.as_ref(), q.limit))
}

/// Builds the listing indexes from the stored listings once (files written before they
/// existed); runs at open, before the writer starts.
pub(super) fn index_listings_once(db: &Database) -> StoreResult<()> {
    const DONE: &str = "listings_built";
    let txn = db.begin_write().map_err(unavailable)?;
    {
        let mut meta = txn.open_table(STORE_META).map_err(unavailable)?;
        if meta.get(DONE).map_err(unavailable)?.is_some() {
            return Ok(());
        }
        let records = txn.open_table(RECORDS).map_err(unavailable)?;
        let events = txn.open_table(EVENTS).map_err(unavailable)?;
        let mut index = txn.open_table(LISTING_INDEX).map_err(unavailable)?;
        let mut skus = txn.open_table(LISTING_SKU).map_err(unavailable)?;
        for item in records.range::<&str>("l."..).map_err(unavailable)? {
            let (k, _) = item.map_err(unavailable)?;
            let id = k.value();
            if !id.starts_with("l.") {
                break;
            }
            let Some(Record::Listing(l)) = record_in(&records, &events, id)? else {
                continue;
            };
            let ms = l.revision.updated_at.timestamp_millis();
            for slot in [l.instance.as_str(), ALL] {
                index.insert((slot, ms, id), ()).map_err(unavailable)?;
            }
            if let Some(sku) = l.sku.as_deref().filter(|s| !s.is_empty()) {
                skus.insert((l.instance.as_str(), sku, id), ())
                    .map_err(unavailable)?;
            }
        }
        meta.insert(DONE, chrono::Utc::now().to_rfc3339().as_str())
            .map_err(unavailable)?;
    }
    txn.commit().map_err(unavailable)
}
