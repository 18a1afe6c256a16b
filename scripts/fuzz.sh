#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 600), seeded with the shared
# channel fixtures, one after the other: scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs: cargo-fuzz (installed from crates.io when missing) and libFuzzer, which cargo-fuzz
# builds through libfuzzer-sys with the C++ compiler. The toolchain here is stable only;
# cargo-fuzz passes -Z flags (sanitizer coverage), which stable rustc accepts with
# RUSTC_BOOTSTRAP=1, set below. AddressSanitizer is used (cargo-fuzz's default).
#
# Crashes land in fuzz/artifacts/<target>/. Copy each into fuzz/regressions/<target>/ (and fix
# it): `cargo test --test fuzz_regressions` replays every file there without instrumentation.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(json_tree xml_tree csv_groups signature_headers adapter_engine)
fi
export RUSTC_BOOTSTRAP=1
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
python3 scripts/fuzz_seeds.py fuzz/corpus
for t in "${targets[@]}"; do
  echo "== $t: ${secs}s"
  mkdir -p "fuzz/artifacts/$t"
  (cd fuzz && cargo fuzz run --release "$t" "corpus/$t" "regressions/$t" -- \
      -max_total_time="$secs" -max_len=262144 -timeout=10 -rss_limit_mb=4096 \
      -print_final_stats=1 -artifact_prefix="artifacts/$t/") 2>&1 | tee "fuzz/artifacts/$t.log" \
    | grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY|Done)" || true
done
