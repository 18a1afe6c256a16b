//! The Redis store.
//!
//! Key layout (documented in ARCHITECTURE.md). Every key of one channel instance carries the hash
//! tag `{<instance>}`, so each multi-key script touches a single cluster slot:
//!
//! | key | type | what |
//! |---|---|---|
//! | `P:{I}:dd:<dedupe id>` | string, EX dedupe TTL | delivery id that first used this id |
//! | `P:{I}:raw:<delivery id>` | hash `meta`, `body`, EX raw retention | the raw delivery |
//! | `P:{I}:rec:<record id>` | hash `rev`, `ms`, `doc` | an order or listing |
//! | `P:{I}:orders` | sorted set, score = updated ms | order ids for listing by time |
//! | `P:{I}:events` | stream | change events (never trimmed) |
//! | `P:{I}:dl:<id>` | string | a dead letter (JSON) |
//! | `P:{I}:dls` | sorted set, score = dead-lettered ms | dead letter ids |
//!
//! `P` is the configured prefix, `I` the instance id. Delivery ids (`d.<instance>.<uuid>`) and
//! record ids (`o.<instance>.<hash>`) carry the instance, so any key can be found from an id.
//!
//! Durability: Redis answers a write after it is in its AOF; with `appendfsync always` that is
//! after fsync. `redis_require_fsync` makes start-up refuse a server that is not set up so.

mod fx;
mod reco;
mod tax;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};

use crate::model::{
    Change, ChangeEvent, Listing, ListingId, Order, OrderId, Record, RecordKind, Transition,
    lifecycle,
};
use crate::store::{
    Cursor, CursorWrite, DeadLetter, DeadLetterQuery, DeadLetterReason, DeliverySource,
    Disposition, Housekeeping, IngestOutcome, OrderQuery, Page, Prepared, RawDelivery,
    Reconciliation, RecordResult, Store, StoreError, StoreResult, StreamEntry, parse_fact,
    parse_record, prepare,
};

/// Upserts the records passed after the fixed arguments; shared by ingest and replay.
/// Expects `KEYS[events_key]`, `KEYS[orders_key]`, two keys per record from
/// `KEYS[first_record_key]`, and per record 7 ARGV entries (id, kind, rev, ms, doc, rank, order)
/// from `ARGV[first_record_arg]`.
///
/// Per kind, the two keys are: order `rec:<id>`, `life:<id>`; listing `rec:<id>` twice; fact
/// about an order of the same instance (`fact`) `life:<order>`, `rec:<order>`; fact about
/// another instance's order (`fact_out`, rev = that instance) the outbox twice.
///
/// Lifecycle: `life:<order>` holds the facts (`f:<fact id>` → JSON) and `~rank`, the highest
/// fact rank; `rec:<order>` holds `srank`, the highest snapshot rank. The effective status is
/// the larger of the two; an event that raises it carries `order`, `from`, `to` (ranks).
const APPLY_LUA: &str = r#"
local function mx(a, b) if a > b then return a else return b end end
local function fact(life, rec, events, id, rank, order_id, doc, delivery, at)
  if redis.call('HSETNX', life, 'f:' .. id, doc) == 0 then return 'unchanged' end
  local fr = tonumber(redis.call('HGET', life, '~rank') or '-1')
  local args = {'kind', 'fact', 'change', 'created', 'id', id, 'delivery', delivery, 'at', at,
    'record', doc}
  if rank > fr then
    redis.call('HSET', life, '~rank', rank)
    local sr = redis.call('HGET', rec, 'srank')
    if sr then
      sr = tonumber(sr)
      local before = mx(sr, mx(fr, 0))
      local after = mx(sr, rank)
      if after > before then
        for _, v in ipairs({'order', order_id, 'from', before, 'to', after}) do
          args[#args + 1] = v
        end
      end
    end
  end
  redis.call('XADD', events, '*', unpack(args))
  return 'created'
end
local function apply(events_key, orders_key, first_record_key, first_record_arg, n, delivery, at)
  local out = {}
  for i = 1, n do
    local b = first_record_arg + (i - 1) * 7
    local id, kind, rev, ms, doc = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
    local rank, order_id = tonumber(ARGV[b + 5]), ARGV[b + 6]
    local key = KEYS[first_record_key + (i - 1) * 2]
    local key2 = KEYS[first_record_key + (i - 1) * 2 + 1]
    if kind == 'fact' then
      out[#out + 1] = fact(key, key2, KEYS[events_key], id, rank, order_id, doc, delivery, at)
    elseif kind == 'fact_out' then
      redis.call('XADD', key, '*', 'order_instance', rev, 'id', id, 'rank', rank,
        'order', order_id, 'doc', doc, 'delivery', delivery, 'at', at)
      out[#out + 1] = 'queued'
    else
      local cur = redis.call('HGET', key, 'rev')
      local change
      if not cur then change = 'created'
      elseif rev > cur then change = 'updated'
      elseif rev == cur then change = 'unchanged'
      else change = 'stale' end
      if change == 'created' or change == 'updated' then
        local args = {'kind', kind, 'change', change, 'id', id, 'delivery', delivery, 'at', at,
          'record', doc}
        if kind == 'order' then
          local fr = mx(tonumber(redis.call('HGET', key2, '~rank') or '-1'), 0)
          local sr = rank
          local before = nil
          if cur then
            local old = tonumber(redis.call('HGET', key, 'srank') or '0')
            before = mx(old, fr)
            sr = mx(sr, old)
          end
          local after = mx(sr, fr)
          redis.call('HSET', key, 'rev', rev, 'ms', ms, 'doc', doc, 'srank', sr)
          redis.call('ZADD', KEYS[orders_key], ms, id)
          if before == nil or after > before then
            for _, v in ipairs({'order', id, 'from', before or '', 'to', after}) do
              args[#args + 1] = v
            end
          end
        else
          redis.call('HSET', key, 'rev', rev, 'ms', ms, 'doc', doc)
        end
        redis.call('XADD', KEYS[events_key], '*', unpack(args))
      end
      out[#out + 1] = change
    end
  end
  return out
end
"#;

/// Applies one fact taken from an instance's outbox to its order (in the order's slot).
/// KEYS: 1 life, 2 rec, 3 events. ARGV: id, rank, order id, doc, delivery, at.
const FACT_LUA: &str = r#"
return fact(KEYS[1], KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5],
  ARGV[6])
"#;

/// Commits FX log entries if the head is still the one they were chained on.
/// KEYS: 1 head, 2 log, 3 index, 4 the order's view, 5 pending set.
/// ARGV: 1 expected head ('' = none), 2 new head, 3 n entries, then (seq, json)…, then m index
/// updates, then (key, value)…, then view JSON, order id, pending flag.
const FX_COMMIT_LUA: &str = r#"
local cur = redis.call('GET', KEYS[1]) or ''
if cur ~= ARGV[1] then return 'conflict' end
local n = tonumber(ARGV[3])
local i = 4
for _ = 1, n do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  i = i + 2
end
local m = tonumber(ARGV[i])
i = i + 1
for _ = 1, m do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  i = i + 2
end
if n > 0 then redis.call('SET', KEYS[1], ARGV[2]) end
redis.call('SET', KEYS[4], ARGV[i])
if ARGV[i + 2] == '1' then redis.call('SADD', KEYS[5], ARGV[i + 1])
else redis.call('SREM', KEYS[5], ARGV[i + 1]) end
return 'ok'
"#;

/// The consumer group of the lifecycle outboxes.
const OUTBOX_GROUP: &str = "lifecycle";

/// Runs inside MULTI/EXEC right after the raw delivery was written (HSET + EXPIRE), so the
/// large body never passes through Lua (Redis hashes every byte of every Lua string).
/// KEYS: 1 dedupe, 2 raw, 3 events, 4 dead-letter index, 5 orders, 6 dead letters of this
/// delivery (set), 7 the orders this delivery's source has seen (set), 8 the poller's cursor,
/// 9.. records (2n), then dead letters (m).
/// ARGV: 1 delivery id, 2 dedupe ttl, 3 received ms, 4 at, 5 n, 6 m, 7 cursor ('' = none),
/// 8 record the seen orders ('1'/'0'), 9.. records (7 each), then dead letters (id, json).
const INGEST_LUA: &str = r#"
if ARGV[7] ~= '' then redis.call('SET', KEYS[8], ARGV[7]) end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  redis.call('DEL', KEYS[2])
  return {'duplicate', redis.call('GET', KEYS[1]) or ''}
end
local n = tonumber(ARGV[5])
local m = tonumber(ARGV[6])
local changes = apply(3, 5, 9, 9, n, ARGV[1], ARGV[4])
if ARGV[8] == '1' then
  for i = 1, n do
    local b = 9 + (i - 1) * 7
    if ARGV[b + 1] == 'order' then redis.call('SADD', KEYS[7], ARGV[b]) end
  end
end
for j = 1, m do
  local b = 9 + n * 7 + (j - 1) * 2
  redis.call('SET', KEYS[8 + 2 * n + j], ARGV[b + 1])
  redis.call('ZADD', KEYS[4], ARGV[3], ARGV[b])
  redis.call('SADD', KEYS[6], ARGV[b])
end
if m > 0 then redis.call('PERSIST', KEYS[2]) end
table.insert(changes, 1, 'stored')
return changes
"#;

/// KEYS: 1 dead letter, 2 dead-letter index, 3 raw, 4 events, 5 orders, 6 dead letters of the
/// delivery (set), 7.. records (2 each).
/// ARGV: 1 id, 2 raw retention, 3 at, 4 record count, 5 delivery id, 6.. records.
const RESOLVE_LUA: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'notfound'} end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[6], ARGV[1])
if redis.call('SCARD', KEYS[6]) == 0 then redis.call('EXPIRE', KEYS[3], ARGV[2]) end
local changes = apply(4, 5, 7, 6, tonumber(ARGV[4]), ARGV[5], ARGV[3])
table.insert(changes, 1, 'resolved')
return changes
"#;

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

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
    /// The ingest script's text and SHA-1 (EVALSHA inside MULTI/EXEC).
    ingest: Arc<str>,
    ingest_sha: Arc<str>,
    resolve: Arc<Script>,
    fact: Arc<Script>,
    fx_commit_script: Arc<Script>,
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
            ingest_sha: Script::new(&format!("{APPLY_LUA}\n{INGEST_LUA}"))
                .get_hash()
                .into(),
            ingest: format!("{APPLY_LUA}\n{INGEST_LUA}").into(),
            resolve: Arc::new(Script::new(&format!("{APPLY_LUA}\n{RESOLVE_LUA}"))),
            fact: Arc::new(Script::new(&format!("{APPLY_LUA}\n{FACT_LUA}"))),
            fx_commit_script: Arc::new(Script::new(FX_COMMIT_LUA)),
            opts: Arc::new(opts),
            groups: Arc::new(Mutex::new(HashSet::new())),
        };
        Ok((store, persistence))
    }

    /// Tax keys share the `{tax}` hash tag (quotes and CBEC annual totals).
    fn tax_key(&self, rest: &str) -> String {
        format!("{}:{{tax}}:{}", self.opts.prefix, rest)
    }

    /// FX keys share the `{fx}` hash tag (one cluster slot: the log is one chain).
    fn fx_key(&self, rest: &str) -> String {
        format!("{}:{{fx}}:{}", self.opts.prefix, rest)
    }

    /// Recommendation and ranking keys share the `{reco}` hash tag: a publish flips one
    /// generation pointer, and everything it points at lives in the same slot.
    fn reco_key(&self, rest: &str) -> String {
        format!("{}:{{reco}}:{}", self.opts.prefix, rest)
    }

    fn key(&self, instance: &str, rest: &str) -> String {
        format!("{}:{{{}}}:{}", self.opts.prefix, instance, rest)
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Deletes every key of this store's prefix (for tests).
    pub async fn flush_prefix(&self) -> StoreResult<u64> {
        let mut conn = self.conn();
        let pattern = format!("{}:*", self.opts.prefix);
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

    /// The two keys and the kind argument of each record (see `APPLY_LUA`).
    fn record_keys(&self, instance: &str, p: &Prepared) -> ([String; 2], &'static str) {
        match p.kind {
            RecordKind::Order => (
                [
                    self.key(instance, &format!("rec:{}", p.id)),
                    self.key(instance, &format!("life:{}", p.id)),
                ],
                "order",
            ),
            RecordKind::Listing => {
                let k = self.key(instance, &format!("rec:{}", p.id));
                ([k.clone(), k], "listing")
            }
            RecordKind::Fact if p.order_instance == instance => (
                [
                    self.key(instance, &format!("life:{}", p.order_id)),
                    self.key(instance, &format!("rec:{}", p.order_id)),
                ],
                "fact",
            ),
            RecordKind::Fact => {
                let k = self.key(instance, "outbox");
                ([k.clone(), k], "fact_out")
            }
        }
    }

    fn push_records(
        &self,
        inv: &mut redis::ScriptInvocation<'_>,
        instance: &str,
        prepared: &[Prepared],
    ) {
        let mut kinds = Vec::with_capacity(prepared.len());
        for p in prepared {
            let ([k1, k2], kind) = self.record_keys(instance, p);
            inv.key(k1).key(k2);
            kinds.push(kind);
        }
        for (p, kind) in prepared.iter().zip(kinds) {
            inv.arg(&p.id)
                .arg(kind)
                .arg(record_rev(p))
                .arg(p.updated_millis)
                .arg(&p.json)
                .arg(p.rank)
                .arg(&p.order_id);
        }
    }

    /// Applies the facts waiting in the instances' outboxes to their orders. Idempotent (a fact
    /// is recorded once per id), so a crash between apply and acknowledge only repeats work.
    pub async fn drain_outboxes(&self, max: usize) -> StoreResult<u64> {
        let mut applied = 0;
        for inst in self.opts.instances.clone() {
            let outbox = self.key(&inst, "outbox");
            self.ensure_group(&outbox, OUTBOX_GROUP).await?;
            let mut conn = self.conn();
            for start in ["0", ">"] {
                let reply: Value = redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(OUTBOX_GROUP)
                    .arg("gateway")
                    .arg("COUNT")
                    .arg(max)
                    .arg("STREAMS")
                    .arg(&outbox)
                    .arg(start)
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)?;
                for (sid, f) in stream_entries(&reply)? {
                    let get = |k: &str| {
                        f.get(k).and_then(bulk_str).ok_or_else(|| {
                            StoreError::Corrupt(format!("outbox entry {sid} without {k}"))
                        })
                    };
                    let order_inst = get("order_instance")?;
                    let order_id = get("order")?;
                    let _: Value = self
                        .fact
                        .key(self.key(&order_inst, &format!("life:{order_id}")))
                        .key(self.key(&order_inst, &format!("rec:{order_id}")))
                        .key(self.key(&order_inst, "events"))
                        .arg(get("id")?)
                        .arg(get("rank")?)
                        .arg(&order_id)
                        .arg(get("doc")?)
                        .arg(get("delivery")?)
                        .arg(get("at")?)
                        .invoke_async(&mut conn)
                        .await
                        .map_err(unavailable)?;
                    let _: Value = redis::pipe()
                        .cmd("XACK")
                        .arg(&outbox)
                        .arg(OUTBOX_GROUP)
                        .arg(&sid)
                        .cmd("XDEL")
                        .arg(&outbox)
                        .arg(&sid)
                        .query_async(&mut conn)
                        .await
                        .map_err(unavailable)?;
                    applied += 1;
                }
            }
        }
        Ok(applied)
    }

    /// Orders as presented: each snapshot with its lifecycle facts applied.
    async fn order_views(&self, ids: &[(String, String)]) -> StoreResult<Vec<Option<Order>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (inst, id) in ids {
            pipe.cmd("HMGET")
                .arg(self.key(inst, &format!("rec:{id}")))
                .arg("doc")
                .arg("srank")
                .cmd("HGETALL")
                .arg(self.key(inst, &format!("life:{id}")));
        }
        let mut conn = self.conn();
        let replies: Vec<Value> = pipe.query_async(&mut conn).await.map_err(unavailable)?;
        let mut out = Vec::with_capacity(ids.len());
        for ((_, id), pair) in ids.iter().zip(replies.chunks(2)) {
            let [rec, life] = pair else {
                return Err(StoreError::Corrupt("short pipeline reply".into()));
            };
            let (doc, srank): (Option<Vec<u8>>, Option<String>) =
                redis::from_redis_value(rec.clone()).map_err(unavailable)?;
            let Some(doc) = doc else {
                out.push(None);
                continue;
            };
            let order = match parse_record(&doc)? {
                Record::Order(o) => *o,
                _ => return Err(StoreError::Corrupt(format!("{id} is not an order"))),
            };
            let life: BTreeMap<String, Vec<u8>> =
                redis::from_redis_value(life.clone()).map_err(unavailable)?;
            let facts = life
                .iter()
                .filter(|(k, _)| k.starts_with("f:"))
                .map(|(_, v)| parse_fact(v))
                .collect::<StoreResult<Vec<_>>>()?;
            let floor = srank.and_then(|s| s.parse::<u8>().ok()).unwrap_or(0);
            out.push(Some(lifecycle::view(order, &facts, floor)));
        }
        Ok(out)
    }

    async fn ensure_group(&self, stream: &str, group: &str) -> StoreResult<()> {
        let key = (stream.to_string(), group.to_string());
        if self.groups.lock().expect("lock").contains(&key) {
            return Ok(());
        }
        let mut conn = self.conn();
        let r: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream)
            .arg(group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match r {
            Ok(()) => {}
            Err(e) if e.to_string().contains("BUSYGROUP") => {}
            Err(e) => return Err(unavailable(e)),
        }
        self.groups.lock().expect("lock").insert(key);
        Ok(())
    }

    async fn read_doc(&self, instance: &str, id: &str) -> StoreResult<Option<Record>> {
        let mut conn = self.conn();
        let doc: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(self.key(instance, &format!("rec:{id}")))
            .arg("doc")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        doc.map(|d| parse_record(&d)).transpose()
    }

    /// (ms, id) pairs of one instance's order index after a cursor, up to `limit`.
    async fn index_page(
        &self,
        instance: &str,
        index: &str,
        since_ms: i64,
        after: Option<&Cursor>,
        limit: usize,
    ) -> StoreResult<Vec<(i64, String)>> {
        let mut conn = self.conn();
        let key = self.key(instance, index);
        let start_ms = after.map(|c| c.millis.max(since_ms)).unwrap_or(since_ms);
        let mut out = Vec::with_capacity(limit);
        let mut offset = 0usize;
        loop {
            let batch = limit + 16;
            let raw: Vec<(String, f64)> = redis::cmd("ZRANGE")
                .arg(&key)
                .arg(start_ms)
                .arg("+inf")
                .arg("BYSCORE")
                .arg("LIMIT")
                .arg(offset)
                .arg(batch)
                .arg("WITHSCORES")
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            let got = raw.len();
            for (id, score) in raw {
                let ms = score as i64;
                let skip = after.is_some_and(|c| ms == c.millis && id.as_str() <= c.id.as_str());
                if !skip {
                    out.push((ms, id));
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
            if got < batch {
                return Ok(out);
            }
            offset += got;
        }
    }

    /// One page of an index across the instances (one, or all): (ms, id, instance) in (ms, id)
    /// order, and the cursor of the next page when there is one.
    async fn merged_page(
        &self,
        only: Option<&String>,
        index: &str,
        since_ms: i64,
        after: Option<&Cursor>,
        limit: usize,
    ) -> StoreResult<(Vec<(i64, String, String)>, Option<Cursor>)> {
        let mut merged: Vec<(i64, String, String)> = Vec::new();
        for inst in self.instances_for(only) {
            for (ms, id) in self
                .index_page(&inst, index, since_ms, after, limit + 1)
                .await?
            {
                merged.push((ms, id, inst.clone()));
            }
        }
        merged.sort();
        let more = merged.len() > limit;
        merged.truncate(limit);
        let next = more.then(|| {
            let (ms, id, _) = merged.last().expect("more implies items");
            Cursor {
                millis: *ms,
                id: id.clone(),
            }
        });
        Ok((merged, next))
    }

    fn instances_for(&self, only: Option<&String>) -> Vec<String> {
        match only {
            Some(i) => vec![i.clone()],
            None => self.opts.instances.clone(),
        }
    }
}

/// The `rev` argument: the revision key, or for a fact the instance of its order.
fn record_rev(p: &Prepared) -> &str {
    match p.kind {
        RecordKind::Fact => &p.order_instance,
        _ => &p.rev_key,
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

fn parse_changes(values: &[Value]) -> StoreResult<Vec<Change>> {
    values
        .iter()
        .map(|v| match v {
            Value::BulkString(b) => match b.as_slice() {
                b"created" => Ok(Change::Created),
                b"updated" => Ok(Change::Updated),
                b"unchanged" => Ok(Change::Unchanged),
                b"stale" => Ok(Change::Stale),
                b"queued" => Ok(Change::Queued),
                other => Err(StoreError::Corrupt(format!(
                    "unexpected script reply {}",
                    String::from_utf8_lossy(other)
                ))),
            },
            other => Err(StoreError::Corrupt(format!(
                "unexpected script reply {other:?}"
            ))),
        })
        .collect()
}

fn bulk_str(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn results(prepared: &[Prepared], changes: Vec<Change>) -> StoreResult<Vec<RecordResult>> {
    if changes.len() != prepared.len() {
        return Err(StoreError::Corrupt(
            "script returned the wrong number of results".into(),
        ));
    }
    Ok(prepared
        .iter()
        .zip(changes)
        .map(|(p, change)| RecordResult {
            kind: p.kind,
            id: p.id.clone(),
            change,
        })
        .collect())
}

/// Turns a stream entry's fields back into a change event.
fn event_from_fields(fields: &BTreeMap<String, Value>, instance: &str) -> StoreResult<ChangeEvent> {
    let get = |k: &str| {
        fields
            .get(k)
            .and_then(bulk_str)
            .ok_or_else(|| StoreError::Corrupt(format!("event without {k}")))
    };
    let kind = match get("kind")?.as_str() {
        "order" => RecordKind::Order,
        "listing" => RecordKind::Listing,
        "fact" => RecordKind::Fact,
        other => return Err(StoreError::Corrupt(format!("event kind {other}"))),
    };
    let change = match get("change")?.as_str() {
        "created" => Change::Created,
        "updated" => Change::Updated,
        other => return Err(StoreError::Corrupt(format!("event change {other}"))),
    };
    let at = DateTime::parse_from_rfc3339(&get("at")?)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?
        .to_utc();
    let rank = |k: &str| {
        fields
            .get(k)
            .and_then(bulk_str)
            .and_then(|s| s.parse::<u8>().ok())
            .map(lifecycle::from_rank)
    };
    let transition = match (fields.get("order").and_then(bulk_str), rank("to")) {
        (Some(order_id), Some(to)) => Some(Transition {
            order_id,
            from: rank("from"),
            to,
        }),
        _ => None,
    };
    Ok(ChangeEvent {
        transition,
        kind,
        change,
        record_id: get("id")?,
        instance: instance.to_string(),
        delivery_id: get("delivery")?,
        at,
        record: parse_record(get("record")?.as_bytes())?,
    })
}

impl Store for RedisStore {
    async fn get_cursor(&self, instance: &str, name: &str) -> StoreResult<Option<String>> {
        let mut conn = self.conn();
        redis::cmd("GET")
            .arg(self.key(instance, &format!("cursor:{name}")))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn reconcile(
        &self,
        instance: &str,
        since: Option<DateTime<Utc>>,
    ) -> StoreResult<Reconciliation> {
        let mut conn = self.conn();
        let poll = self.key(instance, "seen:poll");
        let push = self.key(instance, "seen:webhook");
        let (mut only_poll, mut only_push): (Vec<String>, Vec<String>) = redis::pipe()
            .cmd("SDIFF")
            .arg(&poll)
            .arg(&push)
            .cmd("SDIFF")
            .arg(&push)
            .arg(&poll)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if let Some(since) = since {
            let orders = self.key(instance, "orders");
            for list in [&mut only_poll, &mut only_push] {
                if list.is_empty() {
                    continue;
                }
                let mut pipe = redis::pipe();
                for id in list.iter() {
                    pipe.cmd("ZSCORE").arg(&orders).arg(id);
                }
                let scores: Vec<Option<f64>> =
                    pipe.query_async(&mut conn).await.map_err(unavailable)?;
                let keep: Vec<String> = list
                    .iter()
                    .zip(scores)
                    .filter(|(_, s)| s.is_some_and(|ms| ms as i64 >= since.timestamp_millis()))
                    .map(|(id, _)| id.clone())
                    .collect();
                *list = keep;
            }
        }
        only_poll.sort();
        only_push.sort();
        Ok(Reconciliation {
            polled_not_pushed: only_poll,
            pushed_not_polled: only_push,
        })
    }

    async fn ingest_with_cursor(
        &self,
        delivery: RawDelivery,
        disposition: Disposition,
        cursor: Option<CursorWrite>,
    ) -> StoreResult<IngestOutcome> {
        let inst = delivery.instance.as_str();
        let (records, dead_letters) = disposition.parts(&delivery);
        let prepared = records
            .iter()
            .map(prepare)
            .collect::<StoreResult<Vec<_>>>()?;
        if prepared.iter().any(|p| p.instance != inst) {
            return Err(StoreError::Invalid(
                "records must belong to the delivery's instance".into(),
            ));
        }
        let dead_letters = dead_letters
            .into_iter()
            .map(|dl| serde_json::to_string(&dl).map(|json| (dl.id, json)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let meta =
            serde_json::to_string(&delivery).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let at = delivery
            .received_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let raw_key = self.key(inst, &format!("raw:{}", delivery.delivery_id));
        let mut keys = vec![
            self.key(inst, &format!("dd:{}", delivery.dedupe_id)),
            raw_key.clone(),
            self.key(inst, "events"),
            self.key(inst, "dls"),
            self.key(inst, "orders"),
            self.key(inst, &format!("dlof:{}", delivery.delivery_id)),
            self.key(inst, &format!("seen:{}", delivery.source.as_str())),
            self.key(
                inst,
                &format!(
                    "cursor:{}",
                    cursor.as_ref().map(|c| c.name.as_str()).unwrap_or("-")
                ),
            ),
        ];
        let mut kinds = Vec::with_capacity(prepared.len());
        for p in &prepared {
            let ([k1, k2], kind) = self.record_keys(inst, p);
            keys.push(k1);
            keys.push(k2);
            kinds.push(kind);
        }
        keys.extend(
            dead_letters
                .iter()
                .map(|(id, _)| self.key(inst, &format!("dl:{id}"))),
        );
        let mut eval = redis::cmd("EVALSHA");
        eval.arg(&*self.ingest_sha).arg(keys.len()).arg(&keys);
        eval.arg(&delivery.delivery_id)
            .arg(self.opts.dedupe_ttl.as_secs())
            .arg(delivery.received_at.timestamp_millis())
            .arg(&at)
            .arg(prepared.len())
            .arg(dead_letters.len())
            .arg(cursor.as_ref().map(|c| c.value.as_str()).unwrap_or(""))
            .arg(
                if matches!(
                    delivery.source,
                    DeliverySource::Webhook | DeliverySource::Poll
                ) {
                    "1"
                } else {
                    "0"
                },
            );
        for (p, kind) in prepared.iter().zip(kinds) {
            eval.arg(&p.id)
                .arg(kind)
                .arg(record_rev(p))
                .arg(p.updated_millis)
                .arg(&p.json)
                .arg(p.rank)
                .arg(&p.order_id);
        }
        for (id, json) in &dead_letters {
            eval.arg(id).arg(json);
        }
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HSET")
            .arg(&raw_key)
            .arg("meta")
            .arg(&meta)
            .arg("body")
            .arg(&delivery.body)
            .ignore()
            .cmd("EXPIRE")
            .arg(&raw_key)
            .arg(self.opts.raw_retention.as_secs())
            .ignore()
            .add_command(eval);
        let mut conn = self.conn();
        let reply: Vec<Value> = match pipe.query_async::<(Vec<Value>,)>(&mut conn).await {
            Ok((reply,)) => reply,
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                // Redis restarted and lost its script cache. Nothing but the raw key (with its
                // TTL) was written; load the script and run the same transaction again.
                let _: String = redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(&*self.ingest)
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)?;
                let (reply,): (Vec<Value>,) =
                    pipe.query_async(&mut conn).await.map_err(unavailable)?;
                reply
            }
            Err(e) => return Err(unavailable(e)),
        };
        let head = reply.first().and_then(bulk_str).unwrap_or_default();
        match head.as_str() {
            "duplicate" => Ok(IngestOutcome::Duplicate {
                original_delivery_id: reply.get(1).and_then(bulk_str).unwrap_or_default(),
            }),
            "stored" => Ok(IngestOutcome::Stored {
                records: results(&prepared, parse_changes(&reply[1..])?)?,
                delivery_id: delivery.delivery_id,
                dead_letters: dead_letters.into_iter().map(|(id, _)| id).collect(),
                ignored: matches!(disposition, Disposition::Ignore),
            }),
            other => Err(StoreError::Corrupt(format!(
                "unexpected ingest reply '{other}'"
            ))),
        }
    }

    async fn get_order(&self, id: &OrderId) -> StoreResult<Option<Order>> {
        let ids = [(id.instance().to_string(), id.as_str().to_string())];
        Ok(self.order_views(&ids).await?.pop().flatten())
    }

    async fn get_listing(&self, id: &ListingId) -> StoreResult<Option<Listing>> {
        match self.read_doc(id.instance(), id.as_str()).await? {
            Some(Record::Listing(l)) => Ok(Some(*l)),
            Some(_) => Err(StoreError::Corrupt(format!("{id} is not a listing"))),
            None => Ok(None),
        }
    }

    async fn list_orders(&self, q: OrderQuery) -> StoreResult<Page<Order>> {
        let since_ms = q
            .since
            .map(|s| s.timestamp_millis())
            .unwrap_or(i64::MIN / 2);
        let (merged, next) = self
            .merged_page(
                q.instance.as_ref(),
                "orders",
                since_ms,
                q.after.as_ref(),
                q.limit,
            )
            .await?;
        let ids: Vec<(String, String)> = merged
            .iter()
            .map(|(_, id, inst)| (inst.clone(), id.clone()))
            .collect();
        let mut items = Vec::with_capacity(ids.len());
        for ((_, id), order) in ids.iter().zip(self.order_views(&ids).await?) {
            items.push(
                order
                    .ok_or_else(|| StoreError::Corrupt(format!("index points at missing {id}")))?,
            );
        }
        Ok(Page { items, next })
    }

    async fn get_delivery(&self, delivery_id: &str) -> StoreResult<Option<RawDelivery>> {
        let inst = Self::instance_of(delivery_id)?;
        let mut conn = self.conn();
        let (meta, body): (Option<Vec<u8>>, Option<Vec<u8>>) = redis::cmd("HMGET")
            .arg(self.key(inst, &format!("raw:{delivery_id}")))
            .arg("meta")
            .arg("body")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let (Some(meta), Some(body)) = (meta, body) else {
            return Ok(None);
        };
        let mut d: RawDelivery =
            serde_json::from_slice(&meta).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        d.body = body;
        Ok(Some(d))
    }

    async fn list_dead_letters(&self, q: DeadLetterQuery) -> StoreResult<Page<DeadLetter>> {
        let (merged, next) = self
            .merged_page(
                q.instance.as_ref(),
                "dls",
                i64::MIN / 2,
                q.after.as_ref(),
                q.limit,
            )
            .await?;
        let mut items = Vec::with_capacity(merged.len());
        let mut conn = self.conn();
        for (_, id, inst) in &merged {
            let json: Option<Vec<u8>> = redis::cmd("GET")
                .arg(self.key(inst, &format!("dl:{id}")))
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            if let Some(json) = json {
                items.push(
                    serde_json::from_slice(&json)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                );
            }
        }
        Ok(Page { items, next })
    }

    async fn get_dead_letter(&self, id: &str) -> StoreResult<Option<DeadLetter>> {
        let inst = Self::instance_of(id)?;
        let mut conn = self.conn();
        let json: Option<Vec<u8>> = redis::cmd("GET")
            .arg(self.key(inst, &format!("dl:{id}")))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        json.map(|j| serde_json::from_slice(&j).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    async fn resolve_dead_letter(
        &self,
        id: &str,
        records: Vec<Record>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<RecordResult>> {
        let inst = Self::instance_of(id)?;
        let prepared = records
            .iter()
            .map(prepare)
            .collect::<StoreResult<Vec<_>>>()?;
        if prepared.iter().any(|p| p.instance != inst) {
            return Err(StoreError::Invalid(
                "records must belong to the delivery's instance".into(),
            ));
        }
        let dl = self
            .get_dead_letter(id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let mut inv = self.resolve.prepare_invoke();
        inv.key(self.key(inst, &format!("dl:{id}")))
            .key(self.key(inst, "dls"))
            .key(self.key(inst, &format!("raw:{}", dl.delivery_id)))
            .key(self.key(inst, "events"))
            .key(self.key(inst, "orders"))
            .key(self.key(inst, &format!("dlof:{}", dl.delivery_id)));
        inv.arg(id)
            .arg(self.opts.raw_retention.as_secs())
            .arg(now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
            .arg(prepared.len())
            .arg(&dl.delivery_id);
        self.push_records(&mut inv, inst, &prepared);
        let mut conn = self.conn();
        let reply: Vec<Value> = inv.invoke_async(&mut conn).await.map_err(unavailable)?;
        match reply.first().and_then(bulk_str).as_deref() {
            Some("notfound") => Err(StoreError::NotFound),
            Some("resolved") => results(&prepared, parse_changes(&reply[1..])?),
            other => Err(StoreError::Corrupt(format!(
                "unexpected resolve reply {other:?}"
            ))),
        }
    }

    async fn update_dead_letter(
        &self,
        id: &str,
        reason: DeadLetterReason,
    ) -> StoreResult<DeadLetter> {
        let mut dl = self
            .get_dead_letter(id)
            .await?
            .ok_or(StoreError::NotFound)?;
        dl.reason = reason;
        dl.failed_replays += 1;
        let json = serde_json::to_string(&dl).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let mut conn = self.conn();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key(&dl.instance, &format!("dl:{id}")))
            .arg(json)
            .arg("XX")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        set.map(|_| dl).ok_or(StoreError::NotFound)
    }

    async fn read_events(
        &self,
        group: &str,
        consumer: &str,
        max: usize,
    ) -> StoreResult<Vec<StreamEntry>> {
        let mut out = Vec::new();
        for inst in self.opts.instances.clone() {
            if out.len() >= max {
                break;
            }
            let stream = self.key(&inst, "events");
            self.ensure_group(&stream, group).await?;
            let mut conn = self.conn();
            // This consumer's delivered-but-unacknowledged entries first, then new ones.
            for start in ["0", ">"] {
                let want = max - out.len();
                if want == 0 {
                    break;
                }
                let reply: Value = redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(group)
                    .arg(consumer)
                    .arg("COUNT")
                    .arg(want)
                    .arg("STREAMS")
                    .arg(&stream)
                    .arg(start)
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)?;
                let entries = stream_entries(&reply)?;
                let n = entries.len();
                for (id, fields) in entries {
                    out.push(StreamEntry {
                        id: format!("{inst}|{id}"),
                        event: event_from_fields(&fields, &inst)?,
                    });
                }
                if start == "0" && n > 0 {
                    break; // drain pending before taking new ones
                }
            }
        }
        Ok(out)
    }

    async fn ack_events(&self, group: &str, ids: &[String]) -> StoreResult<()> {
        let mut by_instance: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for id in ids {
            let (inst, sid) = id
                .split_once('|')
                .ok_or_else(|| StoreError::Invalid(format!("bad event id {id}")))?;
            by_instance.entry(inst).or_default().push(sid);
        }
        let mut conn = self.conn();
        for (inst, sids) in by_instance {
            let _: u64 = redis::cmd("XACK")
                .arg(self.key(inst, "events"))
                .arg(group)
                .arg(&sids)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    async fn event_count(&self) -> StoreResult<u64> {
        let mut conn = self.conn();
        let mut total = 0;
        for inst in &self.opts.instances {
            let n: u64 = redis::cmd("XLEN")
                .arg(self.key(inst, "events"))
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            total += n;
        }
        Ok(total)
    }

    async fn housekeeping(&self, _now: DateTime<Utc>) -> StoreResult<Housekeeping> {
        // Dedupe keys and processed raw bodies carry TTLs; Redis expires them itself.
        Ok(Housekeeping::default())
    }

    async fn drain_lifecycle(&self) -> StoreResult<u64> {
        self.drain_outboxes(256).await
    }

    async fn ping(&self) -> StoreResult<()> {
        let mut conn = self.conn();
        let pong: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!(
                "unexpected PING reply {pong}"
            )))
        }
    }
}

/// Entries of an XREADGROUP reply for one stream: (id, fields).
fn stream_entries(reply: &Value) -> StoreResult<Vec<(String, BTreeMap<String, Value>)>> {
    let streams = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(a) => a.clone(),
        Value::Map(m) => m
            .iter()
            .map(|(k, v)| Value::Array(vec![k.clone(), v.clone()]))
            .collect(),
        other => return Err(StoreError::Corrupt(format!("XREADGROUP reply {other:?}"))),
    };
    let mut out = Vec::new();
    for s in streams {
        let Value::Array(pair) = s else { continue };
        let Some(Value::Array(entries)) = pair.get(1) else {
            continue;
        };
        for e in entries {
            let Value::Array(parts) = e else { continue };
            let (Some(id), Some(Value::Array(kv))) =
                (parts.first().and_then(bulk_str), parts.get(1))
            else {
                // A pending entry whose message was deleted reads as (id, nil); skip it.
                continue;
            };
            let mut fields = BTreeMap::new();
            for chunk in kv.chunks(2) {
                if let [k, v] = chunk
                    && let Some(k) = bulk_str(k)
                {
                    fields.insert(k, v.clone());
                }
            }
            out.push((id, fields));
        }
    }
    Ok(out)
}
