#!/usr/bin/env bash
# make bench: figures measured side by side with the reference in the same
# run, alternating A B A B, reported as medians and ratios. Writes
# target/bench/report.md and target/bench/results.json.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/bench
mkdir -p "$out"
N=${BENCH_N:-30}
oci=$(realpath target/release/wren-oci)
WREN_OCI=$oci bash scripts/make-bundle.sh "$out/bundle" /bin/true
python3 scripts/bench.py --n "$N" --wren-oci "$oci" --bundle "$out/bundle" --out "$out"
