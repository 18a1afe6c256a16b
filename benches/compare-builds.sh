#!/usr/bin/env bash
# Ingest throughput and latency of two builds of crossgate, alternated in one run so that the
# machine's noise falls on both alike: each round runs `bench ingest` with the first binary, then
# the second, on the embedded store (fsync per commit, the default) and on a Redis with AOF and
# `appendfsync always` (every acknowledged write fsynced, production's strictest mode;
# APPENDFSYNC=everysec for the common one). Every acknowledged delivery is checked to be stored
# ("lost" column).
#
#   [APPENDFSYNC=everysec] benches/compare-builds.sh BEFORE_BIN AFTER_BIN [ROUNDS] [-- bench ingest options]
#
# Build the two binaries from the two commits with `cargo build --release --locked` (a git
# worktree per commit, or one worktree checked out twice); results go to stdout and to
# target/compare-builds/<label>-<round>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
before=${1:?usage: benches/compare-builds.sh BEFORE_BIN AFTER_BIN [ROUNDS] [-- options]}
after=${2:?usage: benches/compare-builds.sh BEFORE_BIN AFTER_BIN [ROUNDS] [-- options]}
rounds=${3:-3}
shift $(($# < 3 ? $# : 3))
[ "${1:-}" = "--" ] && shift
extra=("$@")
[ ${#extra[@]} -eq 0 ] && extra=(--duration-secs 15 --steady-secs 15)

out=target/compare-builds
mkdir -p "$out"
dir=$(mktemp -d)
port=${REDIS_PORT:-6391}
redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly yes \
  --appendfsync "${APPENDFSYNC:-always}" --dir "$dir" --logfile "$dir/redis.log"
trap 'redis-cli -p '"$port"' shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done

for round in $(seq 1 "$rounds"); do
  for label in before after; do
    bin=$before
    [ "$label" = after ] && bin=$after
    echo "== round $round: $label ($bin) =="
    "$bin" --config config/gateway.toml bench ingest --targets redis,embedded \
      --redis-url "redis://127.0.0.1:$port" --json-out "$out/$label-$round.json" "${extra[@]}"
    redis-cli -p "$port" flushall >/dev/null
  done
done
