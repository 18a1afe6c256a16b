-- Commits outbox writes planned on what was read, if no other outbox write of the instance
-- came between (the version has not moved). All keys are in the instance's slot.
-- KEYS: 1 version, then the keys the operations name.
-- ARGV: 1 expected version, 2 number of operations, then per operation four values:
--   op ('set', 'setpx', 'zadd', 'zrem'), key index (into KEYS), value, score or PX.
local cur = redis.call('GET', KEYS[1]) or '0'
if cur ~= ARGV[1] then return {'conflict'} end
local n = tonumber(ARGV[2])
local i = 3
for _ = 1, n do
  local op, key, value, extra = ARGV[i], KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2], ARGV[i + 3]
  if op == 'set' then redis.call('SET', key, value)
  elseif op == 'setpx' then redis.call('SET', key, value, 'PX', extra)
  elseif op == 'zadd' then redis.call('ZADD', key, extra, value)
  elseif op == 'zrem' then redis.call('ZREM', key, value)
  else return redis.error_reply('unknown outbox operation ' .. op) end
  i = i + 4
end
redis.call('INCR', KEYS[1])
return {'ok'}
