//! Leases on the embedded store. The database file is locked by one process, so the holders
//! of a lease are tasks of this process: the leases live in memory, with the same semantics as
//! on Redis (expiry, renewal, tokens that grow with every change of holder). There is no shared
//! rate budget: the channel client keeps its own limiter.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::{Fence, Lease, LeaseState};

#[derive(Default)]
pub(super) struct Leases {
    held: Mutex<HashMap<Lease, Held>>,
}

struct Held {
    holder: Option<String>,
    token: u64,
    until: Instant,
}

impl Leases {
    pub(super) fn take(&self, lease: &Lease, holder: &str, ttl: Duration) -> Option<Fence> {
        let now = Instant::now();
        let mut held = self.held.lock().expect("lease lock");
        let h = held.entry(lease.clone()).or_insert(Held {
            holder: None,
            token: 0,
            until: now,
        });
        let free = h.holder.is_none() || h.until <= now;
        if h.holder.as_deref() == Some(holder) && h.until > now {
            h.until = now + ttl;
        } else if free {
            h.holder = Some(holder.to_string());
            h.token += 1;
            h.until = now + ttl;
        } else {
            return None;
        }
        Some(Fence {
            lease: lease.clone(),
            token: h.token,
        })
    }

    /// A fenced write may go only while its token is the lease's current one.
    pub(super) fn check(&self, fence: &Fence) -> crate::store::StoreResult<()> {
        let held = self.held.lock().expect("lease lock");
        match held.get(&fence.lease) {
            Some(h) if h.token != fence.token => Err(crate::store::StoreError::LeaseLost(format!(
                "lease {}/{} has passed to token {}",
                fence.lease.scope, fence.lease.name, h.token
            ))),
            _ => Ok(()),
        }
    }

    pub(super) fn release(&self, lease: &Lease, holder: &str) {
        if let Some(h) = self.held.lock().expect("lease lock").get_mut(lease)
            && h.holder.as_deref() == Some(holder)
        {
            h.holder = None;
        }
    }

    pub(super) fn states(&self, leases: &[Lease]) -> Vec<LeaseState> {
        let now = Instant::now();
        let held = self.held.lock().expect("lease lock");
        leases
            .iter()
            .map(|l| {
                let h = held.get(l).filter(|h| h.until > now);
                LeaseState {
                    lease: l.clone(),
                    holder: h.and_then(|h| h.holder.clone()),
                    token: held.get(l).map_or(0, |h| h.token),
                    expires_in_ms: h.map(|h| (h.until - now).as_millis() as u64),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_held_by_one_holder_and_its_token_grows_with_each_change() {
        let l = Leases::default();
        let lease = Lease::poller("shop");
        let a = l.take(&lease, "a", Duration::from_secs(60)).expect("free");
        assert_eq!(l.take(&lease, "b", Duration::from_secs(60)), None);
        assert_eq!(
            l.take(&lease, "a", Duration::from_secs(60)),
            Some(a.clone())
        );
        l.release(&lease, "a");
        let b = l
            .take(&lease, "b", Duration::from_millis(1))
            .expect("released");
        assert!(b.token > a.token);
        std::thread::sleep(Duration::from_millis(5));
        let c = l
            .take(&lease, "a", Duration::from_secs(60))
            .expect("expired");
        assert!(c.token > b.token);
        assert_eq!(l.states(&[lease])[0].holder.as_deref(), Some("a"));
    }
}
