-- Commits outbox writes planned on what was read, if none of the values they were planned on
-- has changed (a queue's version, an idempotency key's absence). All keys are in the
-- instance's slot.
-- KEYS: the m checked keys, then the keys the operations name.
-- ARGV: 1 m, then the m expected values ('' = absent), then the number of operations, then
-- per operation four values: op ('set', 'setpx', 'incr', 'zadd', 'zrem'), key index (among
-- the operations' keys, from 1), value, score or PX.
local m = tonumber(ARGV[1])
for c = 1, m do
  local cur = redis.call('GET', KEYS[c]) or ''
  if cur ~= ARGV[1 + c] then return {'conflict'} end
end
local n = tonumber(ARGV[2 + m])
local i = 3 + m
for _ = 1, n do
  local op, key, value, extra = ARGV[i], KEYS[m + tonumber(ARGV[i + 1])], ARGV[i + 2], ARGV[i + 3]
  if op == 'set' then redis.call('SET', key, value)
  elseif op == 'setpx' then redis.call('SET', key, value, 'PX', extra)
  elseif op == 'incr' then redis.call('INCR', key)
  elseif op == 'zadd' then redis.call('ZADD', key, extra, value)
  elseif op == 'zrem' then redis.call('ZREM', key, value)
  else return redis.error_reply('unknown outbox operation ' .. op) end
  i = i + 4
end
return {'ok'}
