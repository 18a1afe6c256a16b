-- Commits some orders' FX log entries if the head is still the one they were chained on.
-- KEYS: 1 head, 2 log, 3 index, 4 pending set, then each order's view.
-- ARGV: 1 expected head ('' = none), 2 new head, 3 n entries, then (seq, json)…, then m index
-- updates, then (key, value)…, then for each order in KEYS' order: view JSON, order id,
-- pending flag.
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
for k = 5, #KEYS do
  redis.call('SET', KEYS[k], ARGV[i])
  if ARGV[i + 2] == '1' then redis.call('SADD', KEYS[4], ARGV[i + 1])
  else redis.call('SREM', KEYS[4], ARGV[i + 1]) end
  i = i + 3
end
return 'ok'
