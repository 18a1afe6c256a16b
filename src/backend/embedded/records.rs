//! How records are kept: the records table points at the event holding each record's current
//! document (a document is stored once, in its event).

use redb::{Database, ReadableDatabase, ReadableTable};

use super::tables::*;
use super::{frame, unavailable, unframe};
use crate::model::{ChangeEvent, Order, Record, lifecycle};
use crate::store::{StoreError, StoreResult, parse_fact};

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
    let event: ChangeEvent =
        serde_json::from_slice(ev.value()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Some(event.record))
}

pub(super) fn read_record(db: &Database, id: &str) -> StoreResult<Option<Record>> {
    let r = db.begin_read().map_err(unavailable)?;
    let records = r.open_table(RECORDS).map_err(unavailable)?;
    let events = r.open_table(EVENTS).map_err(unavailable)?;
    record_in(&records, &events, id)
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
