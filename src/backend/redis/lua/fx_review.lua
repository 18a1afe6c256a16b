-- Applies a batch to the FX review index if it still covers the log up to the expected entry.
-- KEYS: 1 position, then per table (0 buckets, 1 rows, 2 orders) its keys (sorted set,
-- lexical) and its values (hash): 2-3, 4-5, 6-7.
-- ARGV: 1 expected position, 2 new position, 3 n writes, then (table, key, json)….
local cur = redis.call('GET', KEYS[1]) or '0'
if cur ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[3])
local i = 4
for _ = 1, n do
  local t = tonumber(ARGV[i])
  redis.call('ZADD', KEYS[2 + 2 * t], 0, ARGV[i + 1])
  redis.call('HSET', KEYS[3 + 2 * t], ARGV[i + 1], ARGV[i + 2])
  i = i + 3
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
