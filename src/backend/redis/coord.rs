//! Leases with fencing tokens and shared rate budgets, kept in Redis (see `store::coord`).

use std::time::Duration;

use futures_util::future::BoxFuture;

use super::*;
use crate::store::{Fence, Lease, LeaseState, Rate, RateBudget};

impl RedisStore {
    pub(super) async fn take_lease(
        &self,
        lease: &Lease,
        holder: &str,
        ttl: Duration,
    ) -> StoreResult<Option<Fence>> {
        let [key, fence] = self.keys.lease(lease);
        let mut conn = self.conn();
        let token: Option<u64> = self
            .scripts
            .lease
            .key(key)
            .key(fence)
            .arg(holder)
            .arg(ttl.as_millis().max(1) as u64)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(token.map(|token| Fence {
            lease: lease.clone(),
            token,
        }))
    }

    pub(super) async fn give_up_lease(&self, lease: &Lease, holder: &str) -> StoreResult<()> {
        let [key, _] = self.keys.lease(lease);
        let mut conn = self.conn();
        let _: i64 = self
            .scripts
            .release
            .key(key)
            .arg(holder)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    pub(super) async fn read_leases(&self, leases: &[Lease]) -> StoreResult<Vec<LeaseState>> {
        let mut out = Vec::with_capacity(leases.len());
        let mut conn = self.conn();
        for lease in leases {
            let [key, fence] = self.keys.lease(lease);
            // Two keys of one slot: one pipeline.
            let (holder, ttl, token): (Option<String>, i64, Option<u64>) = redis::pipe()
                .cmd("HGET")
                .arg(&key)
                .arg("holder")
                .cmd("PTTL")
                .arg(&key)
                .cmd("GET")
                .arg(&fence)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            out.push(LeaseState {
                lease: lease.clone(),
                holder,
                token: token.unwrap_or(0),
                expires_in_ms: u64::try_from(ttl).ok(),
            });
        }
        Ok(out)
    }

    /// One call of the budget script (`take`, `defer` or `peek`; see `lua/budget.lua`).
    async fn budget_call(
        &self,
        instance: &str,
        name: &str,
        rate: Rate,
        (mode, defer): (&str, Duration),
    ) -> StoreResult<u64> {
        let interval_us = (1_000_000.0 / rate.per_second.max(1e-6)).round() as u64;
        let mut conn = self.conn();
        self.scripts
            .budget
            .key(self.keys.of(instance).budget(name))
            .arg(interval_us.max(1))
            .arg(rate.burst.max(1))
            .arg(mode)
            .arg(defer.as_micros() as u64)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)
    }
}

impl RateBudget for RedisStore {
    fn available<'a>(
        &'a self,
        instance: &'a str,
        name: &'a str,
        rate: Rate,
    ) -> BoxFuture<'a, StoreResult<u32>> {
        Box::pin(async move {
            let n = self
                .budget_call(instance, name, rate, ("peek", Duration::ZERO))
                .await?;
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        })
    }

    fn take<'a>(
        &'a self,
        instance: &'a str,
        name: &'a str,
        rate: Rate,
    ) -> BoxFuture<'a, StoreResult<Duration>> {
        Box::pin(async move {
            self.budget_call(instance, name, rate, ("take", Duration::ZERO))
                .await
                .map(Duration::from_micros)
        })
    }

    fn defer<'a>(
        &'a self,
        instance: &'a str,
        name: &'a str,
        rate: Rate,
        wait: Duration,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            self.budget_call(instance, name, rate, ("defer", wait))
                .await
                .map(drop)
        })
    }
}
