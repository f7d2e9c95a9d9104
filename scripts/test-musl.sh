#!/usr/bin/env bash
# test-musl.sh MUSL_TRIPLE SECCOMP_LIBDIR: part of `make test`. The release
# wren-oci and shim are the musl builds (scripts/release-musl.sh), which the
# dev-profile suites do not run: build them and run every suite that drives
# wren-oci again with it (WREN_TEST_OCI), and every suite that drives the
# shim, through containerd or wrend, again with it (WREN_SHIM_BIN). Where
# the machine cannot build them, the runs are listed as skipped tests
# (host), as the glibc release builds are then what `make bench` and
# `make install` use.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(bash scripts/release-musl.sh "$1" "$2")
if [ -z "$dir" ]; then
  bash scripts/test-skips.sh add host "make test: suites on the musl wren-oci and shim" \
    "cannot build them for $1 (see above)"
  exit 0
fi
status=0
echo "the wren-oci suites again, on the musl release build $dir/wren-oci"
WREN_TEST_OCI=$dir/wren-oci "${CARGO:-cargo}" test -p wren-tests --no-fail-fast \
  --test runtime --test runtime_features --test runc_fidelity --test security_escape \
  --test security_hardening --test seccomp_cache --test timing --test checkpoint || status=1
echo "the shim suites again, on the musl release build $dir/containerd-shim-wren-v2"
WREN_SHIM_BIN=$dir/containerd-shim-wren-v2 "${CARGO:-cargo}" test -p wren-tests --no-fail-fast \
  --test shim_ctr --test shim_errors --test shim_events --test shim_faults \
  --test shim_lifecycle --test shim_stdio --test security_shim --test containerd_matrix \
  --test cri_pods --test cri_volumes --test wrend --test wrend_health --test wrend_network \
  --test compose --test images || status=1
exit $status
