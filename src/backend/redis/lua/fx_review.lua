-- Applies a batch to the FX review index if it still covers the log up to the expected entry.
-- KEYS: 1 position, 2 bucket keys (sorted set, lexical), 3 buckets (hash), 4 row keys (sorted
-- set, lexical), 5 rows (hash).
-- ARGV: 1 expected position, 2 new position, 3 n buckets, then (key, json)…, then m rows, then
-- (key, json)….
local cur = redis.call('GET', KEYS[1]) or '0'
if cur ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[3])
local i = 4
for _ = 1, n do
  redis.call('ZADD', KEYS[2], 0, ARGV[i])
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  i = i + 2
end
local m = tonumber(ARGV[i])
i = i + 1
for _ = 1, m do
  redis.call('ZADD', KEYS[4], 0, ARGV[i])
  redis.call('HSET', KEYS[5], ARGV[i], ARGV[i + 1])
  i = i + 2
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
