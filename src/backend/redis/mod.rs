//! The Redis store: one connection manager, keys from [`keys`], scripts from [`scripts`], and
//! one file per concern (writes, records, dead letters, event streams, and the FX, tax and
//! recommendation storage the domains define).
//!
//! Durability: Redis answers a write after it is in its AOF; with `appendfsync always` that is
//! after fsync. `redis_require_fsync` makes start-up refuse a server that is not set up so.

mod conn;
mod contract;
mod coord;
mod dead_letters;
mod events;
mod fx;
mod keys;
mod lag;
mod outbox;
mod reco;
mod records;
mod scripts;
mod tax;
mod write;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::Value;
use serde::de::DeserializeOwned;

use crate::model::{
    Change, ChangeEvent, Listing, ListingId, Order, OrderId, Record, RecordKind, Transition,
    lifecycle,
};
use crate::store::{
    ConsumerLag, Cursor, CursorWrite, DeadLetter, DeadLetterQuery, DeadLetterReason,
    DeliverySource, Disposition, Housekeeping, IngestOutcome, ListingQuery, OrderQuery, Page,
    Prepared, RawDelivery, Reconciliation, RecordResult, StoreError, StoreResult, StreamEntry,
    codec, parse_fact, parse_record, prepare,
};
pub use conn::Target;
use conn::{Conn, WritePool};
use keys::Keys;
use scripts::Scripts;

/// Settings of the Redis store.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    pub target: Target,
    pub prefix: String,
    pub timeout: Duration,
    pub require_fsync: bool,
    pub dedupe_ttl: Duration,
    pub raw_retention: Duration,
    /// A delivery is acknowledged only after this many replicas have its write (`WAIT`).
    pub replica_acks: u32,
    /// How long an acknowledged write waits for its replicas before it is answered 503.
    pub replica_ack_timeout: Duration,
    /// Instances whose streams and indexes are read by cross-instance queries.
    pub instances: Vec<String>,
}

impl Default for RedisOptions {
    /// One server on the default port, no replica acknowledgements (for tools and tests;
    /// the daemon builds its options from the validated config).
    fn default() -> Self {
        Self {
            target: Target::Node("redis://127.0.0.1:6379".into()),
            prefix: "cg".into(),
            timeout: Duration::from_secs(2),
            require_fsync: false,
            dedupe_ttl: Duration::from_secs(7 * 24 * 3600),
            raw_retention: Duration::from_secs(14 * 24 * 3600),
            replica_acks: 0,
            replica_ack_timeout: Duration::from_secs(1),
            instances: Vec::new(),
        }
    }
}

#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    /// Dedicated connections for writes that wait for replicas (`replica_acks > 0`).
    acked_writes: Option<Arc<WritePool>>,
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
    /// Connects, and checks the server's persistence when `require_fsync` is set (on every
    /// node of a cluster).
    pub async fn connect(opts: RedisOptions) -> StoreResult<(Self, Persistence)> {
        let mut conn = conn::open(&opts).await?;
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
        let acked_writes = if opts.replica_acks > 0 {
            Some(Arc::new(
                WritePool::open(&opts, ACKED_WRITE_CONNECTIONS).await?,
            ))
        } else {
            None
        };
        let store = Self {
            conn,
            acked_writes,
            keys: Keys::new(opts.prefix.clone()),
            scripts: Arc::new(Scripts::new()),
            opts: Arc::new(opts),
            groups: Arc::new(Mutex::new(HashSet::new())),
        };
        for inst in store.opts.instances.clone() {
            store.index_listings_once(&inst).await?;
        }
        Ok((store, persistence))
    }

    fn conn(&self) -> Conn {
        self.conn.clone()
    }

    /// Deletes every key of this store's prefix (for tests), on every master of a cluster.
    pub async fn flush_prefix(&self) -> StoreResult<u64> {
        let mut conn = self.conn();
        let masters: Vec<String> = match conn.slot_ranges().await? {
            r if r.is_empty() => vec!["(node)".into()],
            r => r
                .into_iter()
                .map(|r| r.master)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        };
        let pattern = self.keys.all();
        let mut deleted = 0;
        for node in masters {
            let mut cursor: u64 = 0;
            loop {
                let reply = conn
                    .on_node(
                        &node,
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(&pattern)
                            .arg("COUNT")
                            .arg(1000)
                            .clone(),
                    )
                    .await?;
                let (next, keys): (u64, Vec<String>) =
                    redis::from_redis_value(reply).map_err(unavailable)?;
                // One key per UNLINK: keys of different slots cannot share a command.
                for key in keys {
                    let n: u64 = redis::cmd("UNLINK")
                        .arg(key)
                        .query_async(&mut conn)
                        .await
                        .map_err(unavailable)?;
                    deleted += n;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(deleted)
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

/// How many dedicated connections carry writes that wait for replicas.
const ACKED_WRITE_CONNECTIONS: usize = 8;

/// A setting as every node has it; `None` when a node cannot tell, and `"mixed"` when the
/// nodes of a cluster disagree (which fails the fsync check).
async fn config_get(conn: &mut Conn, name: &str) -> Option<String> {
    let replies = conn
        .on_every_node(redis::cmd("CONFIG").arg("GET").arg(name).clone())
        .await
        .ok()?;
    let mut seen = BTreeSet::new();
    for (_, v) in replies {
        let v: Vec<String> = redis::from_redis_value(v).ok()?;
        seen.insert(v.get(1).cloned()?);
    }
    match seen.len() {
        1 => seen.pop_first(),
        0 => None,
        _ => Some("mixed".into()),
    }
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
