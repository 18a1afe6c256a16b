-- Upserts the records passed after the fixed arguments; shared by ingest and replay.
-- Expects `KEYS[events_key]`, `KEYS[orders_key]`, three keys per record from
-- `KEYS[first_record_key]`, and per record 7 ARGV entries (id, kind, rev, ms, doc, rank, order)
-- from `ARGV[first_record_arg]`.
--
-- Per kind, the three keys are: order `rec:<id>`, `life:<id>`, `cust:<customer key>` (the
-- orders of a customer; `rec:<id>` when it has none, and then its `order` argument, which
-- carries an order's customer key, is empty); listing `rec:<id>`,
-- `listings` (its index by updated time), `sku:<sku>` (the listings of a SKU; `rec:<id>` when
-- it has none, and then its `order` argument, which carries a listing's SKU, is empty); fact
-- about an order of the same instance (`fact`) `life:<order>`, `rec:<order>`, `rec:<order>`;
-- stock level `rec:<id>`, `stockref:<stock item>`, `rec:<id>`; fact about another instance's
-- order (`fact_out`, rev = that instance) the outbox three times.
--
-- Lifecycle: `life:<order>` holds the facts (`f:<fact id>` → JSON) and `~rank`, the highest
-- fact rank; `rec:<order>` holds `srank`, the highest snapshot rank. The effective status is
-- the larger of the two; an event that raises it carries `order`, `from`, `to` (ranks).
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
    local key = KEYS[first_record_key + (i - 1) * 3]
    local key2 = KEYS[first_record_key + (i - 1) * 3 + 1]
    local key3 = KEYS[first_record_key + (i - 1) * 3 + 2]
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
          if order_id ~= '' then redis.call('SADD', key3, id) end
          if before == nil or after > before then
            for _, v in ipairs({'order', id, 'from', before or '', 'to', after}) do
              args[#args + 1] = v
            end
          end
        elseif kind == 'stock' then
          -- A stock level: its document, and its place in its stock item's set.
          redis.call('HSET', key, 'rev', rev, 'ms', ms, 'doc', doc)
          redis.call('SADD', key2, id)
        else
          redis.call('HSET', key, 'rev', rev, 'ms', ms, 'doc', doc)
          -- A listing: its place in the time index, and in its SKU's set (a SKU that changed
          -- leaves the old set naming it; readers check the listing's current SKU).
          redis.call('ZADD', key2, ms, id)
          if order_id ~= '' then redis.call('SADD', key3, id) end
        end
        redis.call('XADD', KEYS[events_key], '*', unpack(args))
      end
      out[#out + 1] = change
    end
  end
  return out
end
