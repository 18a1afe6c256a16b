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
        // Deleted only while `holder` has it (a compare-and-delete, atomic as one script).
        let _: i64 = redis::Script::new(
            "if redis.call('HGET', KEYS[1], 'holder') == ARGV[1] then \
             return redis.call('DEL', KEYS[1]) end return 0",
        )
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

    async fn budget_call(
        &self,
        instance: &str,
        name: &str,
        rate: Rate,
        defer: Duration,
    ) -> StoreResult<Duration> {
        let interval_us = (1_000_000.0 / rate.per_second.max(1e-6)).round() as u64;
        let mut conn = self.conn();
        let wait_us: u64 = self
            .scripts
            .budget
            .key(self.keys.of(instance).budget(name))
            .arg(interval_us.max(1))
            .arg(rate.burst.max(1))
            .arg(defer.as_micros() as u64)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(Duration::from_micros(wait_us))
    }
}

/// The budget's arrival time against server time: how many requests could go at once.
const PEEK: &str = "local t = redis.call('TIME') \
    return {tonumber(t[1]) * 1000000 + tonumber(t[2]), redis.call('GET', KEYS[1]) or '0'}";

impl RedisStore {
    async fn budget_peek(&self, instance: &str, name: &str, rate: Rate) -> StoreResult<u32> {
        let mut conn = self.conn();
        let (now, tat): (i64, String) = redis::Script::new(PEEK)
            .key(self.keys.of(instance).budget(name))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let tat: i64 = tat.parse().unwrap_or(0);
        let interval = 1_000_000.0 / rate.per_second.max(1e-6);
        // A request may go while tat + interval - burst·interval <= now.
        let slack = (now - tat.max(now)) as f64 + f64::from(rate.burst) * interval;
        Ok(((slack / interval).floor().max(0.0) as u32).min(rate.burst))
    }
}

impl RateBudget for RedisStore {
    fn available<'a>(
        &'a self,
        instance: &'a str,
        name: &'a str,
        rate: Rate,
    ) -> BoxFuture<'a, StoreResult<u32>> {
        Box::pin(self.budget_peek(instance, name, rate))
    }

    fn take<'a>(
        &'a self,
        instance: &'a str,
        name: &'a str,
        rate: Rate,
    ) -> BoxFuture<'a, StoreResult<Duration>> {
        Box::pin(self.budget_call(instance, name, rate, Duration::ZERO))
    }

    fn defer<'a>(
        &'a self,
        instance: &'a str,
        name: &'a str,
        rate: Rate,
        wait: Duration,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            self.budget_call(instance, name, rate, wait.max(Duration::from_micros(1)))
                .await
                .map(drop)
        })
    }
}
