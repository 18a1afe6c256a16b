//! From an adapter's answer to what gets stored: the one place that decides records, per-item
//! dead letters, a whole-delivery dead letter or "ignored". Webhooks, submissions, imports,
//! the poller, the CLI's `replay` and the golden tests sort through [`sort`], and everything
//! that stores a new delivery goes through [`Sorted::disposition`]. A parked delivery read
//! again (API replay, a fetched thin webhook) is all-or-nothing and is settled by
//! [`super::settle_dead_letter`].

use chrono::Utc;

use crate::adapter::{Headers, NormalizeError, RecordContext, Routed};
use crate::config::Instance;
use crate::model::Record;
use crate::store::{DeadLetterReason, Disposition, FieldErrorRecord};

/// An adapter's answer, sorted.
#[derive(Debug)]
pub enum Sorted {
    /// Authentic, but of a topic the adapter does not map.
    Ignored,
    /// The document as a whole did not map (not parseable, no record root, ...).
    Refused(NormalizeError),
    /// The document's items: the records of those that mapped, and each failure by item index.
    Items {
        count: usize,
        records: Vec<Record>,
        failures: Vec<(usize, NormalizeError)>,
    },
}

/// How a delivery's items are dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A pushed or submitted delivery: a delivery of one item that fails is one dead letter for
    /// the whole delivery; several items fail one by one.
    Delivery,
    /// A polled page: every item fails on its own (`<delivery id>-<index>`), even when the page
    /// holds one.
    Page,
}

/// Every problem of a sorted delivery, by item (`None` for the whole delivery): what the caller
/// is told.
pub type Problems = Vec<(Option<usize>, NormalizeError)>;

/// Sorts an adapter's answer into records and failures (pure).
pub fn sort(mapped: Result<Routed, NormalizeError>) -> Sorted {
    match mapped {
        Err(e) => Sorted::Refused(e),
        Ok(Routed::Ignored) => Sorted::Ignored,
        Ok(Routed::Items(items)) => {
            let count = items.len();
            let mut records = Vec::new();
            let mut failures = Vec::new();
            for item in items {
                match item.result {
                    Ok(r) => records.extend(r),
                    Err(e) => failures.push((item.index, e)),
                }
            }
            Sorted::Items {
                count,
                records,
                failures,
            }
        }
    }
}

impl Sorted {
    /// What the store writes for a new delivery, with every problem for the caller. Sets the
    /// cross-channel customer key of each order first.
    pub fn disposition(self, inst: &Instance, scope: Scope) -> (Disposition, Problems) {
        match self {
            Sorted::Ignored => (Disposition::Ignore, Vec::new()),
            Sorted::Refused(e) => (
                Disposition::DeadLetter(dead_letter_reason(&e)),
                vec![(None, e)],
            ),
            Sorted::Items {
                count,
                mut records,
                mut failures,
            } => {
                set_customer_keys(inst, &mut records);
                if failures.is_empty() {
                    return (Disposition::Apply(records), Vec::new());
                }
                if scope == Scope::Delivery && count == 1 {
                    let (_, e) = failures.remove(0);
                    return (
                        Disposition::DeadLetter(dead_letter_reason(&e)),
                        vec![(None, e)],
                    );
                }
                let reasons = failures
                    .iter()
                    .map(|(i, e)| (*i, dead_letter_reason(e)))
                    .collect();
                let problems = failures.into_iter().map(|(i, e)| (Some(i), e)).collect();
                (
                    Disposition::Partial {
                        records,
                        failures: reasons,
                    },
                    problems,
                )
            }
        }
    }
}

pub fn dead_letter_reason(e: &NormalizeError) -> DeadLetterReason {
    DeadLetterReason {
        kind: e.kind().to_string(),
        message: e.to_string(),
        errors: e.fields().iter().map(FieldErrorRecord::from).collect(),
    }
}

pub fn record_context(inst: &Instance) -> RecordContext<'_> {
    RecordContext {
        instance: &inst.id,
        channel: inst.adapter.name(),
        channel_kind: inst.adapter.spec().channel_kind,
        account: &inst.account,
        settings: &inst.settings,
        received_at: Utc::now(),
    }
}

/// Sets the cross-channel customer key of each order (when a salt is configured).
pub fn set_customer_keys(inst: &Instance, records: &mut [Record]) {
    let Some(salt) = &inst.customer_key_salt else {
        return;
    };
    for r in records {
        if let Record::Order(o) = r
            && let Some(c) = &mut o.customer
        {
            let salt = salt.expose().as_bytes();
            c.key = c
                .derive_key(salt)
                .or_else(|| c.derive_account_key(salt, &inst.id));
        }
    }
}

/// The dead-letter kind of a thin webhook waiting for its record to be fetched.
pub const FETCH_PENDING: &str = "fetch_pending";

/// Whether deliveries of this topic only name a record the gateway fetches (thin webhooks).
pub fn needs_fetch(inst: &Instance, topic: Option<&str>) -> bool {
    match (&inst.adapter.spec().fetch, topic) {
        (Some(f), Some(t)) => f.topics.iter().any(|x| x == t),
        _ => false,
    }
}

/// The reason a thin webhook is parked with until the fetch worker has its record.
pub fn fetch_pending(message: &str) -> DeadLetterReason {
    DeadLetterReason {
        kind: FETCH_PENDING.into(),
        message: message.into(),
        errors: Vec::new(),
    }
}

/// Parses and maps a delivery with its instance's adapter (pure): the adapter's answer, the
/// delivery's topic and its dedupe id.
pub fn route(
    inst: &Instance,
    headers: &Headers,
    body: &[u8],
) -> (Result<Routed, NormalizeError>, Option<String>, String) {
    let adapter = &inst.adapter;
    let document = inst.document(body);
    let doc = adapter.parse(&document);
    let dedupe_id = adapter.dedupe_id(headers, doc.as_ref().ok(), body);
    let topic = adapter.topic(headers, doc.as_ref().ok());
    let mapped = doc.and_then(|doc| {
        let target = adapter.route(topic.as_deref());
        adapter.map(&doc, target, &record_context(inst))
    });
    (mapped, topic, dedupe_id)
}

/// What the gateway decided for an authentic delivery, before storing it.
#[derive(Debug)]
pub struct Disposed {
    pub disposition: Disposition,
    pub topic: Option<String>,
    pub dedupe_id: String,
    /// Every problem, by item (None for the whole delivery).
    pub errors: Problems,
}

/// Decides what to store for an authentic delivery in the adapter's format (pure).
pub fn dispose(inst: &Instance, headers: &Headers, body: &[u8]) -> Disposed {
    let (mapped, topic, dedupe_id) = route(inst, headers, body);
    if needs_fetch(inst, topic.as_deref()) {
        // Stored now, parked until the fetch worker has the full record.
        return Disposed {
            disposition: Disposition::DeadLetter(fetch_pending(
                "thin webhook: the record is being fetched from the channel API",
            )),
            topic,
            dedupe_id,
            errors: Vec::new(),
        };
    }
    let (disposition, errors) = sort(mapped).disposition(inst, Scope::Delivery);
    Disposed {
        disposition,
        topic,
        dedupe_id,
        errors,
    }
}
