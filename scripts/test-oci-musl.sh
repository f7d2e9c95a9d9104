#!/usr/bin/env bash
# test-oci-musl.sh MUSL_TRIPLE SECCOMP_LIBDIR: part of `make test`. The
# release wren-oci is the musl build (scripts/release-oci.sh), which the
# dev-profile suites do not run: build it and run every suite that drives
# wren-oci again with it (WREN_TEST_OCI). Where the machine cannot build
# it, the run is listed as a skipped test (host), as the glibc release
# wren-oci is then what `make bench` and `make install` use.
set -euo pipefail
cd "$(dirname "$0")/.."
oci=$(bash scripts/release-oci.sh "$1" "$2")
if [ -z "$oci" ]; then
  bash scripts/test-skips.sh add host "make test: suites on the musl wren-oci" \
    "cannot build wren-oci for $1 (see above)"
  exit 0
fi
echo "the wren-oci suites again, on the musl release build $oci"
WREN_TEST_OCI=$oci "${CARGO:-cargo}" test -p wren-tests --no-fail-fast \
  --test runtime --test runtime_features --test runc_fidelity --test security_escape \
  --test security_hardening --test seccomp_cache --test timing --test checkpoint
