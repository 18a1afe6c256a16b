-- Runs inside MULTI/EXEC right after the raw delivery was written (HSET + EXPIRE), so the
-- large body never passes through Lua (Redis hashes every byte of every Lua string).
-- KEYS: 1 dedupe, 2 raw, 3 events, 4 dead-letter index, 5 orders, 6 dead letters of this
-- delivery (set), 7 the orders this delivery's source has seen (set), 8 the poller's cursor,
-- 9 the fence of the poller's lease, 10.. records (3n), then dead letters (m).
-- ARGV: 1 delivery id, 2 dedupe ttl, 3 received ms, 4 at, 5 n, 6 m, 7 cursor ('' = none),
-- 8 record the seen orders ('1'/'0'), 9 fencing token ('' = none), 10.. records (7 each),
-- then dead letters (id, json).
--
-- Fencing: a poller writes its page with the token its lease was granted with. When the lease
-- has since passed to another replica, the fence holds a newer token and nothing is written,
-- so a paused replica cannot commit an old page over the new holder's cursor.
if ARGV[9] ~= '' and redis.call('GET', KEYS[9]) ~= ARGV[9] then
  redis.call('DEL', KEYS[2])
  return {'fenced', redis.call('GET', KEYS[9]) or ''}
end
if ARGV[7] ~= '' then redis.call('SET', KEYS[8], ARGV[7]) end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  redis.call('DEL', KEYS[2])
  return {'duplicate', redis.call('GET', KEYS[1]) or ''}
end
local n = tonumber(ARGV[5])
local m = tonumber(ARGV[6])
local changes = apply(3, 5, 10, 10, n, ARGV[1], ARGV[4])
if ARGV[8] == '1' then
  for i = 1, n do
    local b = 10 + (i - 1) * 7
    if ARGV[b + 1] == 'order' then redis.call('SADD', KEYS[7], ARGV[b]) end
  end
end
for j = 1, m do
  local b = 10 + n * 7 + (j - 1) * 2
  redis.call('SET', KEYS[9 + 3 * n + j], ARGV[b + 1])
  redis.call('ZADD', KEYS[4], ARGV[3], ARGV[b])
  redis.call('SADD', KEYS[6], ARGV[b])
end
if m > 0 then redis.call('PERSIST', KEYS[2]) end
table.insert(changes, 1, 'stored')
return changes
