-- A shared rate budget (GCRA). KEYS: 1 the theoretical arrival time in µs of server time.
-- ARGV: 1 emission interval µs (1 s / rate), 2 burst, 3 defer µs (0 = take one request).
-- Server time, so replicas whose clocks differ share one budget. Returns 0 when the request
-- may go (and takes it), else the µs to wait before asking again (nothing taken). A defer
-- (`Retry-After`) pushes the budget so that no request goes for that long.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tolerance = interval * burst
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local defer = tonumber(ARGV[3])
if defer > 0 then
  local until_tat = now + defer + tolerance - interval
  if until_tat > tat then
    redis.call('SET', KEYS[1], string.format('%d', until_tat), 'PX', math.ceil((until_tat - now) / 1000) + 1000)
  end
  return 0
end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if now < allow_at then return allow_at - now end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return 0
