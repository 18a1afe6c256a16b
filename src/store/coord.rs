//! How replicas coordinate through the store: leases with fencing tokens (one active poller per
//! instance, one runner per job) and shared rate budgets (one quota per channel instance for
//! every replica). The embedded store is one process (redb locks its file), so it keeps both in
//! memory; Redis keeps them in the store, next to the data they guard.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::StoreResult;

/// A lease: `name` within a `scope` (an instance id, whose keys it shares a slot with, or
/// [`Lease::JOBS`] for the jobs).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Lease {
    pub scope: String,
    pub name: String,
}

impl Lease {
    /// The scope of the jobs' leases.
    pub const JOBS: &'static str = "jobs";

    /// The live poller of an instance.
    pub fn poller(instance: &str) -> Self {
        Self {
            scope: instance.to_string(),
            name: "poll".into(),
        }
    }

    /// The outbox worker of an instance.
    pub fn outbox(instance: &str) -> Self {
        Self {
            scope: instance.to_string(),
            name: "outbox".into(),
        }
    }

    /// A job that runs on one replica at a time (the jobs are `replica::Job`).
    pub fn job(name: &str) -> Self {
        Self {
            scope: Self::JOBS.into(),
            name: name.to_string(),
        }
    }
}

/// A held lease: the fencing token it was granted with. Writes carry it; once the lease has
/// passed to another holder (whose token is larger), the store refuses them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fence {
    pub lease: Lease,
    pub token: u64,
}

/// Who holds a lease now (for `crossgate cluster status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LeaseState {
    pub lease: Lease,
    pub holder: Option<String>,
    /// The last token granted (0 when never granted).
    pub token: u64,
    pub expires_in_ms: Option<u64>,
}

/// A range of a Redis Cluster's slots, its master and replicas, as `CLUSTER SLOTS` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SlotRange {
    pub start: u16,
    pub end: u16,
    pub master: String,
    pub replicas: Vec<String>,
}

/// What is left of a shared rate budget now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BudgetState {
    pub instance: String,
    pub name: String,
    pub per_second: f64,
    pub burst: u32,
    /// Requests that may go at once now (0 ..= burst).
    pub available: u32,
}

/// A declared request rate: `per_second` on average, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

/// A rate budget shared by every replica, keyed by (instance, name). Implemented by the stores
/// that many replicas share; the channel client holds it as a trait object, so it needs no
/// store type.
pub trait RateBudget: Send + Sync {
    /// Takes one request from the budget: zero when it may go now, else how long to wait before
    /// asking again (nothing was taken).
    fn take<'a>(
        &'a self,
        instance: &'a str,
        name: &'a str,
        rate: Rate,
    ) -> BoxFuture<'a, StoreResult<Duration>>;

    /// The channel said `Retry-After`: no replica takes from this budget for `wait`.
    fn defer<'a>(
        &'a self,
        instance: &'a str,
        name: &'a str,
        rate: Rate,
        wait: Duration,
    ) -> BoxFuture<'a, StoreResult<()>>;

    /// How many requests could go at once now, without taking any.
    fn available<'a>(
        &'a self,
        instance: &'a str,
        name: &'a str,
        rate: Rate,
    ) -> BoxFuture<'a, StoreResult<u32>>;
}

pub type SharedBudget = Arc<dyn RateBudget>;
