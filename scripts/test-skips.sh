#!/usr/bin/env bash
# After `cargo test`: list every test that skipped itself (written by
# wren_tests::skip to target/test-skips/skips.tsv) so a skip is never
# mistaken for a pass, and fail when run as root while a test skipped for a
# reason a CI machine must not have (a missing tool or binary, or "needs
# root" although we are root). Host limits (architecture, CPU count, a
# cgroup controller this kernel lacks) are listed but allowed.
#
#   scripts/test-skips.sh clear    before the run
#   scripts/test-skips.sh report   after it
#   scripts/test-skips.sh add CLASS TEST WHY
#                                  a skip decided outside cargo test
#                                  (scripts/test-musl.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
file="${CARGO_TARGET_DIR:-target}/test-skips/skips.tsv"
case "${1:-report}" in
clear)
  rm -f "$file"
  ;;
report)
  if [ ! -s "$file" ]; then
    echo "skipped tests: 0"
    exit 0
  fi
  n=$(wc -l <"$file")
  echo "skipped tests: $n"
  sort "$file" | awk -F'\t' '{ printf "  SKIPPED [%s] %s: %s\n", $1, $2, $3 }'
  if [ "$(id -u)" = 0 ]; then
    bad=$(awk -F'\t' '$1 == "missing" || $1 == "not-root"' "$file" | wc -l)
    if [ "$bad" -gt 0 ]; then
      echo "error: $bad test(s) skipped as root for a reason CI must not have (install or build what is missing)" >&2
      exit 1
    fi
  fi
  ;;
add)
  [ $# -eq 4 ] || { echo "usage: $0 add CLASS TEST WHY" >&2; exit 2; }
  mkdir -p "$(dirname "$file")"
  printf '%s\t%s\t%s\n' "$2" "$3" "$4" >>"$file"
  ;;
*)
  echo "usage: $0 clear|report|add CLASS TEST WHY" >&2
  exit 2
  ;;
esac
