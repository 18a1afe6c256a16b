//! What opening a store needs, and nothing more: `crate::backend::open` takes these settings,
//! not the whole gateway config.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// redb file on local disk; no other service needed.
    Embedded,
    /// A Redis server (configure it with AOF `appendfsync always` for durability).
    Redis,
}

/// The validated `[store]` section, plus the instance ids the Redis backend reads across.
#[derive(Clone)]
pub struct StoreSettings {
    pub backend: Backend,
    pub path: PathBuf,
    pub cache_bytes: usize,
    pub redis_url: Secret,
    /// Seed nodes of a Redis Cluster; when set, the store is in cluster mode.
    pub redis_nodes: Vec<Secret>,
    pub replica_acks: u32,
    pub replica_ack_timeout: Duration,
    /// How long leases last unless renewed.
    pub lease_ttl: Duration,
    pub redis_prefix: String,
    pub redis_timeout: Duration,
    pub redis_require_fsync: bool,
    pub dedupe_ttl: Duration,
    pub raw_retention: Duration,
    /// Instances whose streams and indexes cross-instance queries read (Redis keeps each
    /// instance in its own cluster slot).
    pub instances: Vec<String>,
}

impl fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: `Secret` prints it redacted.
        f.debug_struct("StoreSettings")
            .field("backend", &self.backend)
            .field("path", &self.path)
            .field("redis_url", &self.redis_url)
            .field("redis_nodes", &self.redis_nodes)
            .field("replica_acks", &self.replica_acks)
            .field("redis_prefix", &self.redis_prefix)
            .field("instances", &self.instances.len())
            .finish_non_exhaustive()
    }
}
