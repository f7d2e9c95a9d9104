#!/usr/bin/env bash
# make bench: wren against runc + containerd-shim-runc-v2, measured side by
# side in the same run (alternating A B A B), reported as medians, spread and
# ratios in target/bench/report.md, results.json and memory.svg. Needs root
# and the release binaries (`make bench` builds them). Never fails on a
# number. BENCH_N, BENCH_ONLY (comma list) and BENCH_ARGS tune it;
# BENCH_PUBLISH=1 copies the report and chart to docs/bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/bench
# The release binaries: `make bench` passes REL (the Makefile builds them
# for an explicit --target, non-PIE).
rel=${REL:-target/release}
mkdir -p "$out"
# wren-oci and the shim: OCI and SHIM if given (`make bench` passes the
# musl builds when it made them, scripts/release-musl.sh), else the ones
# beside the others.
oci=$(realpath "${OCI:-$rel/wren-oci}")
shim=$(realpath "${SHIM:-$rel/containerd-shim-wren-v2}")
WREN_OCI=$oci bash scripts/make-bundle.sh "$out/bundle" /bin/true
args=(--n "${BENCH_N:-30}" --wren-oci "$oci" --shim "$shim"
      --bundle "$out/bundle" --out "$out")
[ -x "$rel/wrend" ] && args+=(--wrend "$(realpath "$rel/wrend")")
[ -x "$rel/wren" ] && args+=(--wren "$(realpath "$rel/wren")")
# The CRI client of the CRI figures: the tests' harness, on the fast dev
# profile (it is the same client for both runtimes).
if cargo build -q -p wren-tests --features cri-bench --bin wren-cri-bench; then
  args+=(--cri-bench "$(realpath target/debug/wren-cri-bench)")
fi
[ -n "${BENCH_ONLY:-}" ] && args+=(--only "$BENCH_ONLY")
# shellcheck disable=SC2086
python3 scripts/bench "${args[@]}" ${BENCH_ARGS:-}
if [ "${BENCH_PUBLISH:-0}" = 1 ]; then
  mkdir -p docs/bench
  cp "$out/report.md" "$out/results.json" docs/bench/
  [ -f "$out/memory.svg" ] && cp "$out/memory.svg" docs/bench/
  echo "copied the report to docs/bench/"
fi
