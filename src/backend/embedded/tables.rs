//! The redb tables of the embedded store. Every table is created when the store opens, so
//! readers never meet a missing one.

use redb::{Database, TableDefinition};

use super::unavailable;
use crate::store::StoreResult;

/// instance \0 dedupe id → delivery id \0 expires (ms)
pub(super) const DEDUPE: TableDefinition<&str, &str> = TableDefinition::new("dedupe");
/// (expires ms, "d" + dedupe key | "r" + delivery id): what housekeeping removes when.
pub(super) const EXPIRY: TableDefinition<(i64, &str), ()> = TableDefinition::new("expiry");
/// delivery id → frame(meta JSON, body)
pub(super) const DELIVERIES: TableDefinition<&str, &[u8]> = TableDefinition::new("deliveries");
/// record id → frame(revision key, updated ms, sequence of the event holding its document).
/// The document is stored once, in the event log.
pub(super) const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");
/// (instance, updated ms, order id), plus ("", updated ms, order id) for all instances.
pub(super) const ORDER_INDEX: TableDefinition<(&str, i64, &str), ()> =
    TableDefinition::new("order_index");
/// The instance slot of the all-instances order index (never a valid instance id).
pub(super) const ALL: &str = "";
/// sequence → ChangeEvent JSON (with the record document)
/// (instance or `ALL`, updated ms, listing id) → (): listings by their channel update time.
pub(super) const LISTING_INDEX: TableDefinition<(&str, i64, &str), ()> =
    TableDefinition::new("listing_index");
/// (instance, SKU, listing id) → (): the listings of a SKU (an entry whose listing has since
/// changed SKU stays; readers check the listing's current SKU).
pub(super) const LISTING_SKU: TableDefinition<(&str, &str, &str), ()> =
    TableDefinition::new("listing_sku");
/// (instance, stock item, stock level id) → (): the levels (one per location) of a stock item.
pub(super) const STOCK_BY_REF: TableDefinition<(&str, &str, &str), ()> =
    TableDefinition::new("stock_by_ref");
/// What the store did once to its own layout (e.g. `listings_built`) → when.
pub(super) const STORE_META: TableDefinition<&str, &str> = TableDefinition::new("store_meta");
pub(super) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// consumer group → last acknowledged sequence
pub(super) const GROUPS: TableDefinition<&str, u64> = TableDefinition::new("groups");
/// id → DeadLetter JSON
pub(super) const DEAD_LETTERS: TableDefinition<&str, &[u8]> = TableDefinition::new("dead_letters");
/// (dead-lettered ms, id)
pub(super) const DEAD_LETTERS_BY_TIME: TableDefinition<(i64, &str), ()> =
    TableDefinition::new("dead_letters_by_time");

/// order id → (status rank of the highest stored snapshot or -1, highest fact rank or -1).
pub(super) const LIFE: TableDefinition<&str, (i16, i16)> = TableDefinition::new("life");
/// (order id, fact id) → LifecycleFact JSON
pub(super) const FACTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("facts");

/// (instance, cursor name) → the poller's state (JSON)
pub(super) const CURSORS: TableDefinition<(&str, &str), &str> = TableDefinition::new("cursors");
/// The readiness probe: name → when it was last written (µs since the epoch).
pub(super) const PROBE: TableDefinition<&str, i64> = TableDefinition::new("probe");
/// (instance, delivery source, order id): which paths have seen an order (reconciliation)
pub(super) const SEEN: TableDefinition<(&str, &str, &str), ()> = TableDefinition::new("seen");

/// (customer key, order id): the orders of a customer (entries of a key an order no longer
/// has are skipped by readers).
pub(super) const CUSTOMER_ORDERS: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("customer_orders");

/// FX: rate documents by hash (JSON).
pub(super) const FX_DOCS: TableDefinition<&str, &[u8]> = TableDefinition::new("fx_docs");
/// FX log: sequence → entry JSON.
pub(super) const FX_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("fx_log");
/// FX: conversion key → `entry id|fingerprint` of its latest entry; `~head` → `seq|hash`.
pub(super) const FX_IDX: TableDefinition<&str, &str> = TableDefinition::new("fx_idx");
/// FX: order id → FxView JSON.
pub(super) const FX_VIEWS: TableDefinition<&str, &[u8]> = TableDefinition::new("fx_views");
/// FX: orders waiting for a rate.
pub(super) const FX_PENDING: TableDefinition<&str, ()> = TableDefinition::new("fx_pending");
pub(super) const FX_HEAD_KEY: &str = "~head";
/// FX: signed checkpoints, sequence → JSON (append-only).
pub(super) const FX_CHECKPOINTS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("fx_checkpoints");
/// FX review index (`crate::fx::review`): bucket key → bucket JSON, and
/// `rate date|seq` → row JSON. How far it covers the log is `~review` in `FX_IDX`.
pub(super) const FX_REVIEW_BUCKETS: TableDefinition<&str, &str> =
    TableDefinition::new("fx_review_buckets");
pub(super) const FX_REVIEW_ROWS: TableDefinition<&str, &str> =
    TableDefinition::new("fx_review_rows");
/// FX review index: `id:<order id>|<row key>` and `no:<order number>|<row key>` → row key
/// (the rows of an order).
pub(super) const FX_REVIEW_ORDERS: TableDefinition<&str, &str> =
    TableDefinition::new("fx_review_orders");
pub(super) const FX_REVIEW_KEY: &str = "~review";
/// Tax: order id → Quote JSON.
pub(super) const TAX_QUOTES: TableDefinition<&str, &[u8]> = TableDefinition::new("tax_quotes");
/// Tax: orders whose latest quote is tax_pending.
pub(super) const TAX_PENDING: TableDefinition<&str, ()> = TableDefinition::new("tax_pending");
/// Tax: `customer key|year|order id` → CNY amount (the CBEC annual total's parts).
pub(super) const TAX_ANNUAL: TableDefinition<&str, &str> = TableDefinition::new("tax_annual");

/// Jobs: (kind, key) → interaction or item info JSON.
pub(super) const RECO_DATA: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("reco_data");
/// Jobs: (strategy, customer key) → list JSON.
pub(super) const RECO_LISTS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("reco_lists");
/// Jobs: (ranking key, position) → `[item, score, detail]` JSON.
pub(super) const RECO_RANK: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("reco_rank");
/// Jobs: part → metadata JSON of the current results.
pub(super) const RECO_META: TableDefinition<&str, &[u8]> = TableDefinition::new("reco_meta");

/// Outbox: command id → Command JSON.
pub(super) const OUTBOX: TableDefinition<&str, &[u8]> = TableDefinition::new("outbox");
/// Outbox: (instance, created ms, command id) → (): commands by time.
pub(super) const OUTBOX_BY_TIME: TableDefinition<(&str, i64, &str), ()> =
    TableDefinition::new("outbox_by_time");
/// Outbox: (instance, target key) → the target's queue JSON, with when it is due.
pub(super) const OUTBOX_QUEUES: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("outbox_queues");
/// Outbox: (instance, due ms, target key) → (): the queues with a command due.
pub(super) const OUTBOX_DUE: TableDefinition<(&str, i64, &str), ()> =
    TableDefinition::new("outbox_due");
/// Outbox: (instance, Idempotency-Key) → IdempotencyRecord JSON.
pub(super) const OUTBOX_IDEMPOTENCY: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("outbox_idempotency");

/// Creates every table (idempotent).
pub(super) fn create_all(db: &Database) -> StoreResult<()> {
    let txn = db.begin_write().map_err(unavailable)?;
    txn.open_table(DEDUPE).map_err(unavailable)?;
    txn.open_table(EXPIRY).map_err(unavailable)?;
    txn.open_table(DELIVERIES).map_err(unavailable)?;
    txn.open_table(RECORDS).map_err(unavailable)?;
    txn.open_table(ORDER_INDEX).map_err(unavailable)?;
    txn.open_table(LISTING_INDEX).map_err(unavailable)?;
    txn.open_table(LISTING_SKU).map_err(unavailable)?;
    txn.open_table(STORE_META).map_err(unavailable)?;
    txn.open_table(STOCK_BY_REF).map_err(unavailable)?;
    txn.open_table(EVENTS).map_err(unavailable)?;
    txn.open_table(GROUPS).map_err(unavailable)?;
    txn.open_table(DEAD_LETTERS).map_err(unavailable)?;
    txn.open_table(DEAD_LETTERS_BY_TIME).map_err(unavailable)?;
    txn.open_table(LIFE).map_err(unavailable)?;
    txn.open_table(FACTS).map_err(unavailable)?;
    txn.open_table(CURSORS).map_err(unavailable)?;
    txn.open_table(PROBE).map_err(unavailable)?;
    txn.open_table(SEEN).map_err(unavailable)?;
    txn.open_table(CUSTOMER_ORDERS).map_err(unavailable)?;
    txn.open_table(FX_DOCS).map_err(unavailable)?;
    txn.open_table(FX_LOG).map_err(unavailable)?;
    txn.open_table(FX_IDX).map_err(unavailable)?;
    txn.open_table(FX_VIEWS).map_err(unavailable)?;
    txn.open_table(FX_PENDING).map_err(unavailable)?;
    txn.open_table(FX_CHECKPOINTS).map_err(unavailable)?;
    txn.open_table(FX_REVIEW_BUCKETS).map_err(unavailable)?;
    txn.open_table(FX_REVIEW_ROWS).map_err(unavailable)?;
    txn.open_table(FX_REVIEW_ORDERS).map_err(unavailable)?;
    txn.open_table(TAX_QUOTES).map_err(unavailable)?;
    txn.open_table(RECO_DATA).map_err(unavailable)?;
    txn.open_table(RECO_LISTS).map_err(unavailable)?;
    txn.open_table(RECO_RANK).map_err(unavailable)?;
    txn.open_table(RECO_META).map_err(unavailable)?;
    txn.open_table(TAX_ANNUAL).map_err(unavailable)?;
    txn.open_table(TAX_PENDING).map_err(unavailable)?;
    txn.open_table(OUTBOX).map_err(unavailable)?;
    txn.open_table(OUTBOX_BY_TIME).map_err(unavailable)?;
    txn.open_table(OUTBOX_QUEUES).map_err(unavailable)?;
    txn.open_table(OUTBOX_DUE).map_err(unavailable)?;
    txn.open_table(OUTBOX_IDEMPOTENCY).map_err(unavailable)?;
    txn.commit().map_err(unavailable)
}
