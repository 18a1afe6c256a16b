#!/usr/bin/env bash
# Ingest throughput of crossgate against a bare axum receiver (HMAC check + JSON parse only),
# measured in one run with the same load tool and the same payload (the 18 KB Shopify 2024-04
# order, a distinct order id per request). Also reports p50/p99, a steady 2,000 orders/s phase,
# and lost deliveries (acknowledged but not retrievable afterwards).
#
#   benches/ingest-ratio.sh                 # baseline, crossgate on the local Redis, embedded
#   AOF=1 benches/ingest-ratio.sh           # also crossgate on a Redis with appendfsync always
#   benches/ingest-ratio.sh --duration-secs 30 --concurrency 128
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
cargo build --release --locked --manifest-path benches/baseline-server/Cargo.toml \
  --target-dir target/baseline-server
./target/release/crossgate bench ingest "$@"

if [ "${AOF:-0}" = "1" ]; then
  dir=$(mktemp -d)
  port=6391
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly yes \
    --appendfsync always --dir "$dir" --logfile "$dir/redis.log"
  trap 'redis-cli -p '"$port"' shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
  for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  echo
  echo "== crossgate on Redis with AOF, appendfsync always =="
  ./target/release/crossgate bench ingest --targets baseline,redis --redis-url "redis://127.0.0.1:$port" "$@"
fi
