-- KEYS: 1 dead letter, 2 dead-letter index, 3 raw, 4 events, 5 orders, 6 dead letters of the
-- delivery (set), 7.. records (3 each).
-- ARGV: 1 id, 2 raw retention, 3 at, 4 record count, 5 delivery id, 6.. records.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'notfound'} end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[6], ARGV[1])
if redis.call('SCARD', KEYS[6]) == 0 then redis.call('EXPIRE', KEYS[3], ARGV[2]) end
local changes = apply(4, 5, 7, 6, tonumber(ARGV[4]), ARGV[5], ARGV[3])
table.insert(changes, 1, 'resolved')
return changes
