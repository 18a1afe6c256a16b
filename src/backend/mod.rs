//! The storage backends: embedded redb (the default) and Redis. Each implements the core
//! contract ([`crate::store::Store`]) and the storage traits the domains own
//! ([`crate::fx::store::FxStore`], [`crate::tax::store::TaxStore`],
//! [`crate::reco::store::RecoStore`]). `tests/store_contract.rs` runs one suite against both.
//!
//! Backends sit above the domains: they know the domains' storage types, the domains know
//! only their own traits.

pub mod embedded;
pub mod redis;

use crate::fx::store::FxStore;
use crate::outbox::store::OutboxStore;
use crate::reco::store::RecoStore;
use crate::store::{Backend, Store, StoreResult, StoreSettings};
use crate::tax::store::TaxStore;

/// Everything a store serves: what the daemon, the API and the CLI run on.
pub trait Stores: Store + FxStore + TaxStore + RecoStore + OutboxStore + Clone {}

impl<T: Store + FxStore + TaxStore + RecoStore + OutboxStore + Clone> Stores for T {}

/// The store the settings select.
#[derive(Clone)]
pub enum AnyStore {
    Embedded(embedded::EmbeddedStore),
    Redis(redis::RedisStore),
}

/// Runs `$body` with `$s` bound to the concrete store inside an [`AnyStore`].
#[macro_export]
macro_rules! with_store {
    ($any:expr, $s:ident => $body:expr) => {
        match $any {
            $crate::backend::AnyStore::Embedded($s) => $body,
            $crate::backend::AnyStore::Redis($s) => $body,
        }
    };
}

/// Opens the configured store. For Redis, also reports whether the server fsyncs every write.
pub async fn open(s: &StoreSettings) -> StoreResult<(AnyStore, Option<redis::Persistence>)> {
    match s.backend {
        Backend::Embedded => {
            let store = embedded::EmbeddedStore::open(
                &s.path,
                embedded::EmbeddedOptions {
                    dedupe_ttl: s.dedupe_ttl,
                    raw_retention: s.raw_retention,
                    cache_bytes: s.cache_bytes,
                },
            )?;
            Ok((AnyStore::Embedded(store), None))
        }
        Backend::Redis => {
            let (store, persistence) = redis::RedisStore::connect(redis::RedisOptions {
                target: if s.redis_nodes.is_empty() {
                    redis::Target::Node(s.redis_url.expose().to_string())
                } else {
                    redis::Target::Cluster(
                        s.redis_nodes
                            .iter()
                            .map(|n| n.expose().to_string())
                            .collect(),
                    )
                },
                replica_acks: s.replica_acks,
                replica_ack_timeout: s.replica_ack_timeout,
                prefix: s.redis_prefix.clone(),
                timeout: s.redis_timeout,
                require_fsync: s.redis_require_fsync,
                dedupe_ttl: s.dedupe_ttl,
                raw_retention: s.raw_retention,
                instances: s.instances.clone(),
            })
            .await?;
            Ok((AnyStore::Redis(store), Some(persistence)))
        }
    }
}
