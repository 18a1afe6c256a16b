//! This process as one replica among several: its name in leases, and the leases it holds.
//! Replicas coordinate only through the store (see `store::coord`): the live poller of an
//! instance and each background job run where their lease is held.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::store::{Fence, Lease, Store};

pub struct Replica {
    /// The holder name: host, process id and a random suffix (a restarted process is a new
    /// holder, so it never renews a lease its previous life held).
    pub id: String,
    /// How long a lease lasts unless renewed.
    pub ttl: Duration,
    held: Mutex<BTreeMap<Lease, bool>>,
}

impl Replica {
    pub fn new(ttl: Duration) -> Self {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "host".into());
        let suffix: u32 = rand::random();
        Self {
            id: format!("{host}-{}-{suffix:08x}", std::process::id()),
            ttl,
            held: Mutex::new(BTreeMap::new()),
        }
    }

    /// Takes or renews `lease` for the replica's lease time.
    pub async fn hold<S: Store>(&self, store: &S, lease: &Lease) -> Option<Fence> {
        self.hold_for(store, lease, self.ttl).await
    }

    /// Takes or renews `lease` for `ttl`; `None` when another replica has it or the store
    /// cannot say (then nothing runs: doing the work twice is worse than doing it late).
    pub async fn hold_for<S: Store>(
        &self,
        store: &S,
        lease: &Lease,
        ttl: Duration,
    ) -> Option<Fence> {
        let fence = match store.lease(lease, &self.id, ttl).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(scope = %lease.scope, lease = %lease.name, error = %e, "lease cannot be renewed");
                None
            }
        };
        self.note(lease, fence.is_some());
        fence
    }

    /// Records whether `lease` is held, for the metrics and the log.
    fn note(&self, lease: &Lease, now: bool) {
        let before = self
            .held
            .lock()
            .expect("lease map")
            .insert(lease.clone(), now)
            .unwrap_or(false);
        let labels = [
            ("scope", lease.scope.clone()),
            ("lease", lease.name.clone()),
        ];
        metrics::gauge!(crate::telemetry::names::LEASE_HELD, &labels).set(f64::from(u8::from(now)));
        if before != now {
            let event = if now { "acquired" } else { "lost" };
            metrics::counter!(crate::telemetry::names::LEASE_CHANGES, "lease" => lease.name.clone(), "event" => event).increment(1);
            tracing::info!(scope = %lease.scope, lease = %lease.name, replica = %self.id, event, "lease changed hands");
        }
    }

    /// Gives up every lease this replica holds (at shutdown, so the next holder need not wait
    /// for them to expire).
    pub async fn release_all<S: Store>(&self, store: &S) {
        let held: Vec<Lease> = self
            .held
            .lock()
            .expect("lease map")
            .iter()
            .filter(|(_, h)| **h)
            .map(|(l, _)| l.clone())
            .collect();
        for lease in held {
            if let Err(e) = store.release(&lease, &self.id).await {
                tracing::warn!(lease = %lease.name, error = %e, "lease not released; it expires by itself");
            }
            self.note(&lease, false);
        }
    }
}

/// The jobs that run on one replica at a time, each under its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    Fx,
    Tax,
    Lifecycle,
    Fetch,
    Reco,
}

impl Job {
    pub const ALL: [Job; 5] = [Job::Fx, Job::Tax, Job::Lifecycle, Job::Fetch, Job::Reco];

    /// The job's lease (named `fx`, `tax`, `lifecycle`, `fetch`, `reco`).
    pub fn lease(self) -> Lease {
        Lease::job(match self {
            Job::Fx => "fx",
            Job::Tax => "tax",
            Job::Lifecycle => "lifecycle",
            Job::Fetch => "fetch",
            Job::Reco => "reco",
        })
    }
}

/// What `crossgate cluster status` and `GET /v1/cluster` show: the store's nodes and slots,
/// who holds each lease, and what is left of each shared rate budget.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ClusterStatus {
    /// `embedded`, `redis` (one node) or `redis-cluster`.
    pub store: String,
    pub slots: Vec<crate::store::SlotRange>,
    pub leases: Vec<crate::store::LeaseState>,
    pub budgets: Vec<crate::store::BudgetState>,
}

/// Reads the status of the replicas' coordination from the store.
pub async fn status<S: Store>(
    store: &S,
    config: &crate::config::Config,
) -> crate::store::StoreResult<ClusterStatus> {
    let slots = store.slot_ranges().await?;
    let mut leases: Vec<Lease> = config
        .instances
        .values()
        .filter(|i| i.poll)
        .map(|i| Lease::poller(&i.id))
        .collect();
    leases.extend(Job::ALL.map(Job::lease));
    let leases = store.lease_states(&leases).await?;
    let mut budgets = Vec::new();
    if let Some(shared) = store.shared_budget() {
        for inst in config.instances.values() {
            // Budgets exist only where a channel client calls: the instance's API.
            if inst.adapter.spec().api.is_none() {
                continue;
            }
            let limits = crate::channel::client::DeclaredLimits::of(inst.adapter.spec());
            for l in limits.iter() {
                let rate = l.rate();
                budgets.push(crate::store::BudgetState {
                    available: shared.available(&inst.id, l.name(), rate).await?,
                    instance: inst.id.clone(),
                    name: l.name().to_string(),
                    per_second: rate.per_second,
                    burst: rate.burst,
                });
            }
        }
    }
    let store_kind = match (config.store.backend, slots.is_empty()) {
        (crate::store::Backend::Embedded, _) => "embedded",
        (_, true) => "redis",
        (_, false) => "redis-cluster",
    };
    Ok(ClusterStatus {
        store: store_kind.into(),
        slots,
        leases,
        budgets,
    })
}

/// Counts changes of the cluster's masters (a failover, a resharding) as this replica sees
/// them, every few seconds; nothing on one node.
pub async fn watch_topology<S: Store>(store: S) {
    let mut last: Option<Vec<(u16, String)>> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        let Ok(ranges) = store.slot_ranges().await else {
            continue;
        };
        if ranges.is_empty() {
            return;
        }
        let masters: Vec<(u16, String)> = ranges.into_iter().map(|r| (r.start, r.master)).collect();
        if last.as_ref().is_some_and(|l| *l != masters) {
            metrics::counter!(crate::telemetry::names::CLUSTER_TOPOLOGY_CHANGES).increment(1);
            tracing::warn!(
                masters = masters.len(),
                "the cluster's masters changed (failover or resharding)"
            );
        }
        last = Some(masters);
    }
}
/// How far the background consumers that run all the time (FX, tax, payments) are behind the
/// event stream, as this replica last measured it: deliveries wait (503, pollers pause) while
/// it is over `[server] max_consumer_lag`, so a burst cannot grow the backlog without bound.
#[derive(Debug, Default)]
pub struct Backlog {
    behind: std::sync::atomic::AtomicU64,
}

impl Backlog {
    pub fn set(&self, behind: u64) {
        self.behind
            .store(behind, std::sync::atomic::Ordering::Relaxed);
    }

    /// Events behind, when over `limit` (0: no limit).
    pub fn over(&self, limit: u64) -> Option<u64> {
        let behind = self.behind.load(std::sync::atomic::Ordering::Relaxed);
        (limit > 0 && behind > limit).then_some(behind)
    }
}
