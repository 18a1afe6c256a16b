//! The Redis store: one connection manager, keys from [`keys`], scripts from [`scripts`], and
//! one file per concern (writes, records, dead letters, event streams, and the FX, tax and
//! recommendation storage the domains define).
//!
//! Durability: Redis answers a write after it is in its AOF; with `appendfsync always` that is
//! after fsync. `redis_require_fsync` makes start-up refuse a server that is not set up so.

mod contract;
mod dead_letters;
mod events;
mod fx;
mod keys;
mod reco;
mod records;
mod scripts;
mod tax;
mod write;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::Value;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::de::DeserializeOwned;

use crate::model::{
    Change, ChangeEvent, Listing, ListingId, Order, OrderId, Record, RecordKind, Transition,
    lifecycle,
};
use crate::store::{
    Cursor, CursorWrite, DeadLetter, DeadLetterQuery, DeadLetterReason, DeliverySource,
    Disposition, Housekeeping, IngestOutcome, OrderQuery, Page, Prepared, RawDelivery,
    Reconciliation, RecordResult, StoreError, StoreResult, StreamEntry, parse_fact, parse_record,
    prepare,
};
use keys::Keys;
use scripts::Scripts;

/// Settings of the Redis store.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    pub url: String,
    pub prefix: String,
    pub timeout: Duration,
    pub require_fsync: bool,
    pub dedupe_ttl: Duration,
    pub raw_retention: Duration,
    /// Instances whose streams and indexes are read by cross-instance queries.
    pub instances: Vec<String>,
}

#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    opts: Arc<RedisOptions>,
    keys: Keys,
    scripts: Arc<Scripts>,
    /// (stream, group) pairs known to exist, so XGROUP CREATE runs once per process.
    groups: Arc<Mutex<HashSet<(String, String)>>>,
}

/// What start-up learned about the server's persistence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persistence {
    pub appendonly: Option<String>,
    pub appendfsync: Option<String>,
}

impl Persistence {
    pub fn fsyncs_every_write(&self) -> bool {
        self.appendonly.as_deref() == Some("yes") && self.appendfsync.as_deref() == Some("always")
    }
}

impl RedisStore {
    /// Connects, and checks the server's persistence when `require_fsync` is set.
    pub async fn connect(opts: RedisOptions) -> StoreResult<(Self, Persistence)> {
        let client = redis::Client::open(opts.url.as_str())
            .map_err(|e| StoreError::Invalid(format!("redis url: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(opts.timeout))
            .set_response_timeout(Some(opts.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let mut conn = tokio::time::timeout(
            opts.timeout * 2,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| StoreError::Unavailable("redis connection timed out".into()))?
        .map_err(unavailable)?;
        let persistence = Persistence {
            appendonly: config_get(&mut conn, "appendonly").await,
            appendfsync: config_get(&mut conn, "appendfsync").await,
        };
        if opts.require_fsync && !persistence.fsyncs_every_write() {
            return Err(StoreError::Invalid(format!(
                "redis_require_fsync is set but the server has appendonly={} appendfsync={}; \
                 run Redis with --appendonly yes --appendfsync always",
                persistence.appendonly.as_deref().unwrap_or("(unknown)"),
                persistence.appendfsync.as_deref().unwrap_or("(unknown)")
            )));
        }
        let store = Self {
            conn,
            keys: Keys::new(opts.prefix.clone()),
            scripts: Arc::new(Scripts::new()),
            opts: Arc::new(opts),
            groups: Arc::new(Mutex::new(HashSet::new())),
        };
        Ok((store, persistence))
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Deletes every key of this store's prefix (for tests).
    pub async fn flush_prefix(&self) -> StoreResult<u64> {
        let mut conn = self.conn();
        let pattern = self.keys.all();
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    fn instance_of(id: &str) -> StoreResult<&str> {
        // Ids are `<letter>.<instance>.<suffix>`.
        let rest = id
            .split_once('.')
            .map(|(_, r)| r)
            .ok_or_else(|| StoreError::Invalid(format!("id '{id}' names no instance")))?;
        rest.rsplit_once('.')
            .map(|(i, _)| i)
            .ok_or_else(|| StoreError::Invalid(format!("id '{id}' names no instance")))
    }

    fn instances_for(&self, only: Option<&String>) -> Vec<String> {
        match only {
            Some(i) => vec![i.clone()],
            None => self.opts.instances.clone(),
        }
    }

    /// A JSON value stored as a string, or `None` when the key does not exist.
    async fn get_json<T: DeserializeOwned>(
        &self,
        key: String,
        what: &str,
    ) -> StoreResult<Option<T>> {
        let mut conn = self.conn();
        let v: Option<Vec<u8>> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        v.map(|v| {
            serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
        })
        .transpose()
    }
}

async fn config_get(conn: &mut ConnectionManager, name: &str) -> Option<String> {
    let v: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query_async(conn)
        .await;
    v.ok().and_then(|v| v.get(1).cloned())
}

fn bulk_str(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}
