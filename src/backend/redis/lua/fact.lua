-- Applies one fact taken from an instance's outbox to its order (in the order's slot).
-- KEYS: 1 life, 2 rec, 3 events. ARGV: id, rank, order id, doc, delivery, at.
return fact(KEYS[1], KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5],
  ARGV[6])
