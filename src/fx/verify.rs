//! `fx verify` on the store: the chain, the head, every entry recomputed from the stored rate
//! documents, and every current entry against its order as stored now. (Checking the log
//! against signed checkpoints is [`super::checkpoint::check_anchors`]: it needs only the
//! entries and the public key, so an auditor runs it where they hold the key.)

use std::collections::HashMap;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::book::RateBook;
use super::log::{self, Finding, FxEntry};
use super::store::FxStore;
use super::{parts, revision_key};
use crate::model::OrderId;
use crate::store::{Store, StoreError};

/// What `fx verify` found.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Verification {
    pub entries: u64,
    pub head_seq: u64,
    /// Orders whose current conversions were compared with the order as stored.
    #[serde(default)]
    pub orders_checked: u64,
    pub findings: Vec<Finding>,
}

/// Reads every stored entry; an unreadable one is a finding, not an error.
pub(super) async fn read_raw<S: FxStore>(
    store: &S,
) -> Result<(Vec<FxEntry>, Vec<Finding>), StoreError> {
    let mut entries = Vec::new();
    let mut findings = Vec::new();
    let mut after = 0;
    loop {
        let page = store.fx_log(after, 2000).await?;
        let Some(last) = page.last() else {
            return Ok((entries, findings));
        };
        after = last.0;
        for (seq, json) in page {
            match serde_json::from_str::<FxEntry>(&json) {
                Ok(e) => entries.push(e),
                Err(e) => findings.push(Finding {
                    entry: format!("fx.{seq}"),
                    problem: format!("cannot be read: {e}"),
                }),
            }
        }
    }
}

/// Recomputes every entry from the stored rate documents, checks the chain and the head, and
/// each order's current entries against the order.
pub async fn verify_log<S: Store + FxStore>(store: &S) -> Result<Verification, StoreError> {
    let book = RateBook::new(store.fx_docs().await?, 31);
    let head = store.fx_head().await?;
    let (entries, mut findings) = read_raw(store).await?;
    findings.extend(log::verify(&entries, Some(&book)));
    let last = entries.last().map(|e| (e.seq, e.hash.clone()));
    match last {
        Some((seq, hash)) if seq != head.seq || hash != head.hash => findings.push(Finding {
            entry: format!("fx.{}", head.seq),
            problem: format!(
                "the log ends at fx.{seq} but its head says fx.{} (entries after fx.{seq} were deleted, or the head was altered)",
                head.seq
            ),
        }),
        None if head.seq > 0 => findings.push(Finding {
            entry: format!("fx.{}", head.seq),
            problem: "the log is empty but its head says it is not".into(),
        }),
        _ => {}
    }
    let (orders_checked, order_findings) = check_orders(store, &entries).await?;
    findings.extend(order_findings);
    findings.sort_by_key(|f| seq_of(&f.entry));
    Ok(Verification {
        entries: entries.len() as u64,
        head_seq: head.seq,
        orders_checked,
        findings,
    })
}

fn seq_of(entry: &str) -> u64 {
    entry
        .strip_prefix("fx.")
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Compares every current (not superseded) entry with its order as stored: the order must
/// exist, and when its stored revision is the one the FX job last converted, the part's
/// amount must be the entry's source amount (a part unchanged by a later revision keeps its
/// earlier entry). An order at a newer revision is not compared: the FX job converts it next.
async fn check_orders<S: Store + FxStore>(
    store: &S,
    entries: &[FxEntry],
) -> Result<(u64, Vec<Finding>), StoreError> {
    let superseded = log::superseded_by(entries);
    let mut by_order: HashMap<&str, Vec<&FxEntry>> = HashMap::new();
    for e in entries.iter().filter(|e| !superseded.contains_key(&e.id)) {
        by_order.entry(e.order_id.as_str()).or_default().push(e);
    }
    // One order and its FX view per order, 32 reads in flight (one at a time, 100,000
    // entries took seconds of round trips). Owned ids: the futures borrow nothing but the
    // store, so the caller's future stays Send.
    let ids: Vec<String> = by_order.keys().map(|k| k.to_string()).collect();
    let looked_up: Vec<Result<_, StoreError>> = futures_util::stream::iter(ids)
        .map(|order_id| look_up(store, order_id))
        .buffer_unordered(32)
        .collect()
        .await;
    let mut findings = Vec::new();
    let mut checked = 0u64;
    for item in looked_up {
        let (order_id, order, view) = item?;
        let current = &by_order[order_id.as_str()];
        let Some(order) = order else {
            findings.extend(current.iter().map(|e| Finding {
                entry: e.id.clone(),
                problem: format!("its order {order_id} is not in the store"),
            }));
            continue;
        };
        let converted = view.is_some_and(|v| {
            v.status == super::FxStatus::Converted && v.revision == revision_key(&order)
        });
        if !converted {
            continue;
        }
        checked += 1;
        findings.extend(compare(&order, current));
    }
    Ok((checked, findings))
}

/// An order as stored and its FX view.
async fn look_up<S: Store + FxStore>(
    store: &S,
    order_id: String,
) -> Result<(String, Option<crate::model::Order>, Option<super::FxView>), StoreError> {
    let order = match OrderId::parse(&order_id) {
        Ok(id) => store.get_order(&id).await?,
        Err(_) => None,
    };
    let view = match &order {
        Some(_) => store.fx_view(&order_id).await?,
        None => None,
    };
    Ok((order_id, order, view))
}

/// Each current entry of an order against the order's amount of its part.
fn compare(order: &crate::model::Order, current: &[&FxEntry]) -> Vec<Finding> {
    let amounts: HashMap<String, crate::model::Money> = parts(order).into_iter().collect();
    let mut findings = Vec::new();
    for e in current {
        match amounts.get(&e.part) {
            Some(m) if *m == e.from => {}
            Some(m) => findings.push(Finding {
                entry: e.id.clone(),
                problem: format!(
                    "converts {} {} but the order's {} is {} {}",
                    e.from.amount(),
                    e.from.currency().code(),
                    e.part,
                    m.amount(),
                    m.currency().code()
                ),
            }),
            None => findings.push(Finding {
                entry: e.id.clone(),
                problem: format!("the order has no part {}", e.part),
            }),
        }
    }
    findings
}
