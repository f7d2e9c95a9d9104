#!/usr/bin/env bash
# Build the fuzz targets in fuzz/ with a STABLE toolchain and run each one for
# a bounded time, then replay the committed seed corpus.
#
# cargo-fuzz needs nightly only for its sanitizers; its coverage
# instrumentation is plain codegen flags that stable rustc accepts. So we pass
# the same flags cargo-fuzz passes with `--sanitizer none`, build with
# ordinary cargo, and link libFuzzer through libfuzzer-sys (needs a C++
# compiler). With nightly and cargo-fuzz installed, `cargo fuzz run <target>`
# in this directory works as well (same layout).
#
#   scripts/fuzz.sh [target...]     FUZZ_SECONDS=60 per target by default
#   FUZZ_SECONDS=0 scripts/fuzz.sh  replay the corpus only
set -euo pipefail
cd "$(dirname "$0")/.."
: "${FUZZ_SECONDS:=60}"
: "${FUZZ_RSS_MB:=2048}"
triple="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/target/fuzz}"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# --target keeps the flags off build scripts and proc-macros.
cargo build --release --manifest-path fuzz/Cargo.toml --target "$triple" --bins

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(spec start_stdin setup_message stdio_uri ttrpc_frame ttrpc_connection wrend_request)
fi
bin="$CARGO_TARGET_DIR/$triple/release"
for t in "${targets[@]}"; do
  seeds="fuzz/seeds/$t"
  work="$CARGO_TARGET_DIR/corpus/$t"
  mkdir -p "$work" "fuzz/artifacts/$t"
  echo "== $t: replay $(ls "$seeds" 2>/dev/null | wc -l) seeds"
  # Replay: every committed input (regressions included) must pass.
  "$bin/$t" -rss_limit_mb="$FUZZ_RSS_MB" -runs=0 "$seeds" >/dev/null 2>&1 || {
    "$bin/$t" -rss_limit_mb="$FUZZ_RSS_MB" -runs=0 "$seeds"; exit 1; }
  if [ "$FUZZ_SECONDS" -gt 0 ]; then
    echo "== $t: fuzz for ${FUZZ_SECONDS}s"
    log="$CARGO_TARGET_DIR/$t.log"
    status=0
    "$bin/$t" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb="$FUZZ_RSS_MB" \
      -malloc_limit_mb="$FUZZ_RSS_MB" -max_len=65536 -print_final_stats=1 \
      -artifact_prefix="fuzz/artifacts/$t/" "$work" "$seeds" >"$log" 2>&1 || status=$?
    grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$log" || true
    # A panic, a timeout (hang) or an OOM (unbounded allocation) makes
    # libFuzzer exit non-zero and leave crash-*/timeout-*/oom-* behind.
    if [ "$status" -ne 0 ]; then
      tail -40 "$log" >&2
      echo "fuzz target $t failed (status $status): $(ls fuzz/artifacts/$t 2>/dev/null)" >&2
      echo "reproduce: $bin/$t fuzz/artifacts/$t/<file>; then add it to $seeds" >&2
      exit 1
    fi
  fi
done
