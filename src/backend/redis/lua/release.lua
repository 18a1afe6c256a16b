-- Gives a lease up, only while `holder` has it (a compare-and-delete). KEYS: 1 the lease.
-- ARGV: 1 holder. The fence stays, so the next holder's token is still larger.
if redis.call('HGET', KEYS[1], 'holder') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
