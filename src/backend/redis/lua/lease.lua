-- Takes or renews a lease. KEYS: 1 the lease (hash holder, token; expires), 2 its fence (the
-- last token granted; never expires, so tokens only grow). ARGV: 1 holder, 2 ttl ms.
-- Returns the token when `holder` has the lease now, false when another holder has it.
local holder = redis.call('HGET', KEYS[1], 'holder')
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(redis.call('HGET', KEYS[1], 'token'))
end
if holder then return false end
local token = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'token', token)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return token
