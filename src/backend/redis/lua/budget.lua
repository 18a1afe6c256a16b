-- A shared rate budget (GCRA). KEYS: 1 the theoretical arrival time in µs of server time.
-- ARGV: 1 emission interval µs (1 s / rate), 2 burst, 3 what to do: `take`, `defer` or `peek`,
-- 4 the defer in µs.
-- Server time, so replicas whose clocks differ share one budget.
-- - take: 0 when the request may go (and takes it), else the µs to wait before asking again
--   (nothing taken);
-- - defer (`Retry-After`): pushes the budget so that no request goes for that long; 0;
-- - peek: how many requests could go at once now (0 ..= burst); nothing taken.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tolerance = interval * burst
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local function store(new_tat)
  redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
end
if ARGV[3] == 'peek' then
  return math.max(0, math.min(burst, math.floor((now + tolerance - tat) / interval)))
end
if ARGV[3] == 'defer' then
  local until_tat = now + tonumber(ARGV[4]) + tolerance - interval
  if until_tat > tat then store(until_tat) end
  return 0
end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if now < allow_at then return allow_at - now end
store(new_tat)
return 0
