//! What both backends do before they write: a record serialized once with its revision key
//! and lifecycle rank, the revision decision, and the event document.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::{StoreError, StoreResult};
use crate::model::{Change, ChangeEvent, Record, RecordKind, Transition, lifecycle};

/// A record ready to be written: its JSON and the key that orders its revisions.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub kind: RecordKind,
    pub id: String,
    pub instance: String,
    /// Orders and listings: the revision ordering key. Facts: empty (they never change).
    pub rev_key: String,
    /// Orders and listings: the channel's updated time. Facts: the time of the fact.
    pub updated_millis: i64,
    /// Orders: the status rank of this snapshot; facts: the rank the fact implies.
    pub rank: u8,
    /// The order a fact is about (the order itself for an order).
    pub order_id: String,
    pub order_instance: String,
    /// A listing's SKU (its index entry).
    pub sku: Option<String>,
    /// A stock level's stock item (its index entry).
    pub stock_ref: Option<String>,
    /// An order's customer key (its index entry: the orders of a customer).
    pub customer_key: Option<String>,
    pub json: String,
}

impl Prepared {
    /// The record's document as stored (see [`super::codec`]).
    pub fn stored_doc(&self) -> Vec<u8> {
        super::codec::pack_doc(self.json.as_bytes())
    }
}

pub(crate) fn prepare(record: &Record) -> StoreResult<Prepared> {
    // A listing's stock levels are read from the stock level records, never stored with it.
    let stripped;
    let record = match record {
        Record::Listing(l) if !l.stock_levels.is_empty() => {
            let mut l = l.clone();
            l.stock_levels.clear();
            stripped = Record::Listing(l);
            &stripped
        }
        _ => record,
    };
    let json = serde_json::to_string(record)
        .map_err(|e| StoreError::Invalid(format!("record cannot be serialized: {e}")))?;
    let (rev_key, updated_millis) = match record.revision() {
        Some(rev) => {
            let hash = hex::encode(&Sha256::digest(json.as_bytes())[..8]);
            (rev.ordering_key(&hash), rev.updated_at.timestamp_millis())
        }
        None => (String::new(), 0),
    };
    let (rank, order_id, order_instance) = match record {
        Record::Order(o) => (
            lifecycle::rank(o.status),
            o.id.as_str().to_string(),
            o.instance.clone(),
        ),
        Record::Fact(f) => (
            f.rank(),
            f.order_id.as_str().to_string(),
            f.order_instance.clone(),
        ),
        Record::Listing(_) | Record::Stock(_) => (0, String::new(), String::new()),
    };
    let updated_millis = match record {
        Record::Fact(f) => f.at.timestamp_millis(),
        _ => updated_millis,
    };
    Ok(Prepared {
        kind: record.kind(),
        id: record.id().to_string(),
        instance: record.instance().to_string(),
        rev_key,
        updated_millis,
        rank,
        order_id,
        order_instance,
        sku: match record {
            Record::Listing(l) => l.sku.clone().filter(|s| !s.is_empty()),
            _ => None,
        },
        stock_ref: match record {
            Record::Stock(s) => Some(s.stock_ref.clone()),
            _ => None,
        },
        customer_key: match record {
            Record::Order(o) => o.customer.as_ref().and_then(|c| c.key.clone()),
            _ => None,
        },
        json,
    })
}

/// Decides what an upsert does, given the stored revision key (if any).
pub(crate) fn decide(stored: Option<&str>, incoming: &str) -> Change {
    match stored {
        None => Change::Created,
        Some(s) if incoming > s => Change::Updated,
        Some(s) if incoming == s => Change::Unchanged,
        Some(_) => Change::Stale,
    }
}

/// The JSON of a [`ChangeEvent`], built around the already serialized record.
pub(crate) fn event_json(
    p: &Prepared,
    change: Change,
    delivery_id: &str,
    at: DateTime<Utc>,
    transition: Option<&Transition>,
) -> String {
    let q = |s: &str| serde_json::to_string(s).expect("strings serialize");
    let transition = transition
        .map(|t| {
            format!(
                r#","transition":{}"#,
                serde_json::to_string(t).expect("transitions serialize")
            )
        })
        .unwrap_or_default();
    format!(
        r#"{{"kind":"{}","change":"{}","record_id":{},"instance":{},"delivery_id":{},"at":{},"record":{}{}}}"#,
        p.kind.as_str(),
        change.as_str(),
        q(&p.id),
        q(&p.instance),
        q(delivery_id),
        q(&at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        p.json,
        transition
    )
}

/// Reads a stored fact (kept as its record document).
pub(crate) fn parse_fact(json: &[u8]) -> StoreResult<crate::model::LifecycleFact> {
    match parse_record(json)? {
        Record::Fact(f) => Ok(*f),
        other => Err(StoreError::Corrupt(format!(
            "{} stored as a fact",
            other.id()
        ))),
    }
}

/// Reads a stored document: a record, an event, a raw delivery's metadata (compressed or
/// not, see [`super::codec`]).
pub(crate) fn parse_doc<T: serde::de::DeserializeOwned>(stored: &[u8]) -> StoreResult<T> {
    let json = super::codec::unpack_doc(stored)?;
    serde_json::from_slice(&json).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Reads a stored record document.
pub(crate) fn parse_record(stored: &[u8]) -> StoreResult<Record> {
    parse_doc(stored)
}

/// Reads a stored event document.
pub(crate) fn parse_event(stored: &[u8]) -> StoreResult<ChangeEvent> {
    parse_doc(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_decisions() {
        assert_eq!(decide(None, "b"), Change::Created);
        assert_eq!(decide(Some("a"), "b"), Change::Updated);
        assert_eq!(decide(Some("b"), "b"), Change::Unchanged);
        assert_eq!(decide(Some("c"), "b"), Change::Stale);
    }

    #[test]
    fn event_json_is_a_change_event() {
        let order: crate::model::Order =
            serde_json::from_str(include_str!("../../tests/fixtures/app/order-jp.json"))
                .map(|mut o: serde_json::Value| {
                    let m = o.as_object_mut().unwrap();
                    m.insert("id".into(), "o.app.0123456789abcdef".into());
                    m.insert("instance".into(), "app".into());
                    m.insert("channel".into(), "app".into());
                    m.insert("channel_kind".into(), "mobile_app".into());
                    m.insert("account".into(), "acme".into());
                    o
                })
                .and_then(serde_json::from_value)
                .unwrap();
        let record = Record::Order(Box::new(order));
        let p = prepare(&record).unwrap();
        let at = DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z")
            .unwrap()
            .to_utc();
        let t = crate::model::lifecycle::transition(
            "o.app.0123456789abcdef",
            (None, None),
            (Some(1), None),
        );
        let json = event_json(&p, Change::Created, "d\"1", at, t.as_ref());
        let event: ChangeEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(event.record, record);
        assert_eq!(event.transition, t);
        assert_eq!(event.delivery_id, "d\"1");
        assert_eq!(event.at, at);
    }
}
