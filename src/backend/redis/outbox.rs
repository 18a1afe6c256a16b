//! The outbox in Redis. A write reads what it needs, plans with the queue rules of
//! `crate::outbox::queue` in Rust, and commits with `outbox_commit.lua` only if no other outbox
//! write of the instance came between (the instance's version); else it reads again. All keys
//! of an instance's outbox are in its slot.

use super::*;
use crate::outbox::queue::{self, TargetQueue, Writes};
use crate::outbox::store::{Enqueued, Idempotency, OutboxQuery, OutboxStore, RetryError};
use crate::outbox::{Command, IdempotencyRecord};

/// Tries before a write gives up on a busy outbox (each retry reads again).
const TRIES: usize = 50;

/// Plans `$body` (with `$plan` in scope) on a fresh read until its commit lands: the body's
/// value, or `too_busy` after `TRIES` conflicts. `?` in the body returns from the caller.
macro_rules! optimistic {
    ($store:expr, $instance:expr, $plan:ident => $body:expr) => {{
        let mut landed = Err($store.too_busy($instance));
        for attempt in 0..TRIES {
            let mut $plan = Plan::default();
            let answer = $body;
            if $plan.ops.is_empty() || $store.outbox_commit($plan).await? {
                landed = Ok(answer);
                break;
            }
            conflict_pause(attempt).await;
        }
        landed
    }};
}

/// After a conflict: a random pause that grows with the attempts (up to 20 ms), so writers of
/// one queue stop colliding in lockstep.
async fn conflict_pause(attempt: usize) {
    use rand::Rng;
    let cap_us = (200u64 << attempt.min(7)).min(20_000);
    let us = rand::rng().random_range(0..=cap_us);
    tokio::time::sleep(std::time::Duration::from_micros(us)).await;
}

/// The writes of one commit, as the script's keys and operations, and the values read that
/// they were planned on (a target's version, an idempotency key's absence): the commit lands
/// only if none has changed since.
#[derive(Default)]
struct Plan {
    checks: Vec<(String, String)>,
    keys: Vec<String>,
    ops: Vec<[String; 4]>,
}

impl Plan {
    /// The commit needs `key` still to hold `expected` ('' for absent).
    fn check(&mut self, key: String, expected: String) {
        if !self.checks.iter().any(|(k, _)| k == &key) {
            self.checks.push((key, expected));
        }
    }

    /// The key's index among the operations' keys (1-based; the script adds the checks).
    fn key(&mut self, key: String) -> String {
        let i = match self.keys.iter().position(|k| k == &key) {
            Some(i) => i,
            None => {
                self.keys.push(key);
                self.keys.len() - 1
            }
        };
        (i + 1).to_string()
    }

    fn op(&mut self, op: &str, key: String, value: String, extra: String) {
        let k = self.key(key);
        self.ops.push([op.into(), k, value, extra]);
    }
}

fn json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Invalid(e.to_string()))
}

fn parse<T: DeserializeOwned>(bytes: &[u8], what: &str) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

impl RedisStore {
    /// The current value of `key` ('' when absent), recorded as a check of the plan.
    async fn read_check(&self, plan: &mut Plan, key: String) -> StoreResult<()> {
        let v: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        plan.check(key, v.unwrap_or_default());
        Ok(())
    }

    /// A target's queue and its open commands, in queue order.
    async fn outbox_target(
        &self,
        plan: &mut Plan,
        instance: &str,
        target: &str,
    ) -> StoreResult<(TargetQueue, Vec<Command>)> {
        let ik = self.keys.of(instance);
        // The version first: a write that lands after this read changes it.
        self.read_check(plan, ik.command_version(target)).await?;
        let q: TargetQueue = self
            .get_json(ik.command_queue(target), "outbox queue")
            .await?
            .unwrap_or_default();
        if q.open.is_empty() {
            return Ok((q, Vec::new()));
        }
        let keys: Vec<String> = q.open.iter().map(|id| ik.command(id)).collect();
        let raw: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        let mut open = Vec::with_capacity(raw.len());
        for (id, v) in q.open.iter().zip(raw) {
            let v = v.ok_or_else(|| {
                StoreError::Corrupt(format!("outbox queue names a missing command {id}"))
            })?;
            open.push(parse(&v, "outbound command")?);
        }
        Ok((q, open))
    }

    fn plan_writes(
        &self,
        plan: &mut Plan,
        instance: &str,
        target: &str,
        writes: &Writes,
    ) -> StoreResult<()> {
        let ik = self.keys.of(instance);
        for c in &writes.commands {
            plan.op("set", ik.command(&c.id), json(c)?, String::new());
            let ms = c.created_at.timestamp_millis().to_string();
            plan.op("zadd", ik.commands(), c.id.clone(), ms);
        }
        plan.op(
            "set",
            ik.command_queue(target),
            json(&writes.queue)?,
            String::new(),
        );
        plan.op(
            "incr",
            ik.command_version(target),
            String::new(),
            String::new(),
        );
        match writes.due {
            Some(d) => plan.op(
                "zadd",
                ik.commands_due(),
                target.to_string(),
                d.timestamp_millis().to_string(),
            ),
            None => plan.op("zrem", ik.commands_due(), target.to_string(), String::new()),
        }
        Ok(())
    }

    /// Commits a plan; `false` when a value it was planned on has changed.
    async fn outbox_commit(&self, plan: Plan) -> StoreResult<bool> {
        let mut eval = redis::cmd("EVALSHA");
        eval.arg(&*self.scripts.outbox_sha)
            .arg(plan.checks.len() + plan.keys.len());
        for (k, _) in &plan.checks {
            eval.arg(k);
        }
        eval.arg(&plan.keys).arg(plan.checks.len());
        for (_, expected) in &plan.checks {
            eval.arg(expected);
        }
        eval.arg(plan.ops.len());
        for op in &plan.ops {
            eval.arg(op);
        }
        let reply = self
            .scripted_transaction(vec![eval], &self.scripts.outbox)
            .await?;
        match reply.first().and_then(bulk_str).as_deref() {
            Some("ok") => Ok(true),
            Some("conflict") => Ok(false),
            other => Err(StoreError::Corrupt(format!(
                "unexpected outbox commit reply {other:?}"
            ))),
        }
    }

    fn too_busy(&self, instance: &str) -> StoreError {
        StoreError::Unavailable(format!(
            "the outbox of {instance} is too busy: {TRIES} writes came first"
        ))
    }

    async fn enqueue_once(
        &self,
        plan: &mut Plan,
        instance: &str,
        commands: &[Command],
        idem: Option<&Idempotency>,
    ) -> StoreResult<Enqueued> {
        let now = Utc::now();
        let ik = self.keys.of(instance);
        if let Some(idem) = idem {
            let key = ik.idempotency(&idem.key);
            let record: Option<IdempotencyRecord> =
                self.get_json(key.clone(), "idempotency record").await?;
            if record.is_none() {
                // Two calls with one new key: only the first commit lands.
                plan.check(key, String::new());
            }
            if let Some(r) = crate::outbox::store::live_record(record, now) {
                return Ok(if r.fingerprint == idem.fingerprint {
                    Enqueued::Repeat(r.command_ids)
                } else {
                    Enqueued::KeyReused
                });
            }
        }
        // Planned target by target on what was read, each seeing the ones before it.
        let mut seen: BTreeMap<String, (TargetQueue, Vec<Command>)> = BTreeMap::new();
        let mut stored = Vec::with_capacity(commands.len());
        for cmd in commands {
            let target = cmd.target.key();
            let (q, open) = match seen.remove(&target) {
                Some(s) => s,
                None => self.outbox_target(plan, instance, &target).await?,
            };
            let writes = queue::enqueue(q, open.clone(), cmd.clone(), now);
            let new = writes
                .commands
                .last()
                .expect("enqueue writes the new command")
                .clone();
            let still_open: Vec<Command> = open
                .into_iter()
                .filter(|c| writes.queue.open.contains(&c.id))
                .chain(std::iter::once(new.clone()))
                .collect();
            self.plan_writes(plan, instance, &target, &writes)?;
            seen.insert(target, (writes.queue, still_open));
            stored.push(new);
        }
        if let Some(idem) = idem {
            let record = IdempotencyRecord {
                fingerprint: idem.fingerprint.clone(),
                command_ids: stored.iter().map(|c| c.id.clone()).collect(),
                expires_at: now + idem.ttl,
            };
            plan.op(
                "setpx",
                ik.idempotency(&idem.key),
                json(&record)?,
                idem.ttl.as_millis().to_string(),
            );
        }
        Ok(Enqueued::Stored(stored))
    }
}

impl OutboxStore for RedisStore {
    async fn outbox_enqueue(
        &self,
        instance: &str,
        commands: Vec<Command>,
        idempotency: Option<Idempotency>,
    ) -> StoreResult<Enqueued> {
        crate::outbox::store::one_instance(instance, &commands)?;
        optimistic!(self, instance, plan => {
            self.enqueue_once(&mut plan, instance, &commands, idempotency.as_ref())
                .await?
        })
    }

    async fn outbox_get(&self, id: &str) -> StoreResult<Option<Command>> {
        let Some(instance) = Command::instance_of(id) else {
            return Ok(None);
        };
        self.get_json(self.keys.of(instance).command(id), "outbound command")
            .await
    }

    async fn outbox_list(&self, q: OutboxQuery) -> StoreResult<Page<Command>> {
        let ik = self.keys.of(&q.instance);
        let max = match &q.after {
            Some(c) => c.millis.to_string(),
            None => "+inf".into(),
        };
        let mut items = Vec::new();
        let mut offset = 0usize;
        // Newest first; a page of ids at a time, filtered by state.
        loop {
            let ids: Vec<(String, i64)> = redis::cmd("ZREVRANGEBYSCORE")
                .arg(ik.commands())
                .arg(&max)
                .arg("-inf")
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(offset)
                .arg(200)
                .query_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            if ids.is_empty() {
                break;
            }
            offset += ids.len();
            let keys: Vec<String> = ids.iter().map(|(id, _)| ik.command(id)).collect();
            let raw: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            for v in raw.into_iter().flatten() {
                let cmd: Command = parse(&v, "outbound command")?;
                if q.state.is_none_or(|s| s == cmd.state) {
                    items.push(cmd);
                }
            }
            if items.len() > q.limit {
                break;
            }
        }
        // Same-millisecond ties: (ms, id) descending, after the cursor.
        items.sort_by(|a, b| {
            (b.created_at.timestamp_millis(), &b.id).cmp(&(a.created_at.timestamp_millis(), &a.id))
        });
        if let Some(c) = &q.after {
            items.retain(|x| {
                (x.created_at.timestamp_millis(), x.id.as_str()) < (c.millis, c.id.as_str())
            });
        }
        let next = Cursor::page_end(&mut items, q.limit, |c| {
            (c.created_at.timestamp_millis(), c.id.as_str())
        });
        Ok(Page { items, next })
    }

    async fn outbox_claim(
        &self,
        instance: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        max: usize,
    ) -> StoreResult<Vec<Command>> {
        let ik = self.keys.of(instance);
        optimistic!(self, instance, plan => {
            let due: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                .arg(ik.commands_due())
                .arg("-inf")
                .arg(now.timestamp_millis())
                .arg("LIMIT")
                .arg(0)
                .arg(max)
                .query_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            let mut claimed = Vec::with_capacity(due.len());
            for target in due {
                let (q, open) = self.outbox_target(&mut plan, instance, &target).await?;
                let writes = match open.into_iter().next() {
                    Some(head) => queue::claim(q, head, until),
                    None => Writes {
                        commands: vec![],
                        queue: q,
                        due: None,
                    },
                };
                claimed.extend(writes.commands.first().cloned());
                self.plan_writes(&mut plan, instance, &target, &writes)?;
            }
            claimed
        })
    }

    async fn outbox_settle(&self, cmd: Command, now: DateTime<Utc>) -> StoreResult<()> {
        let instance = cmd.instance.clone();
        let target = cmd.target.key();
        optimistic!(self, &instance, plan => {
            let (q, open) = self.outbox_target(&mut plan, &instance, &target).await?;
            let writes = queue::settle(q, open, cmd.clone(), now);
            self.plan_writes(&mut plan, &instance, &target, &writes)?
        })
    }

    async fn outbox_retry(&self, id: &str, now: DateTime<Utc>) -> Result<Command, RetryError> {
        let instance = Command::instance_of(id).ok_or(StoreError::NotFound)?;
        let outcome: Result<Command, crate::outbox::queue::RetryRefusal> = optimistic!(self, instance, plan => {
            let cmd = self.outbox_get(id).await?.ok_or(StoreError::NotFound)?;
            let target = cmd.target.key();
            let (q, open) = self.outbox_target(&mut plan, instance, &target).await?;
            match queue::retry(q, open, cmd, now) {
                Ok(writes) => {
                    self.plan_writes(&mut plan, instance, &target, &writes)?;
                    Ok(writes.commands[0].clone())
                }
                Err(refusal) => Err(refusal),
            }
        })?;
        Ok(outcome?)
    }

    async fn outbox_depth(&self, instance: &str) -> StoreResult<u64> {
        let ik = self.keys.of(instance);
        let targets: Vec<String> = redis::cmd("ZRANGE")
            .arg(ik.commands_due())
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        let mut n = 0u64;
        for t in targets {
            let q: TargetQueue = self
                .get_json(ik.command_queue(&t), "outbox queue")
                .await?
                .unwrap_or_default();
            n += q.open.len() as u64;
        }
        Ok(n)
    }
}
