#!/usr/bin/env bash
# release-musl.sh MUSL_TRIPLE SECCOMP_LIBDIR: the release wren-oci and
# containerd-shim-wren-v2 for musl (docs/ARCHITECTURE.md, "wren-oci and the
# shim on musl"), static and non-PIE like the other release binaries.
# Prints the directory that holds both; prints nothing (and says why on
# stderr) where the machine lacks the Rust musl target or musl-gcc, and the
# glibc release builds of both are used instead.
set -euo pipefail
triple=$1 seccomp_libdir=$2
if ! rustup target list --installed 2>/dev/null | grep -qx "$triple"; then
  echo "release-musl: Rust target $triple is not installed (rustup target add $triple); wren-oci and the shim stay on glibc" >&2
  exit 0
fi
if ! command -v musl-gcc >/dev/null 2>&1; then
  echo "release-musl: musl-gcc is missing (apt-get install musl-tools); wren-oci and the shim stay on glibc" >&2
  exit 0
fi
# libseccomp's static archive in a directory of its own: the glibc
# directory would also hand glibc's libc.a to the musl link.
lib=target/$triple/seccomp
mkdir -p "$lib"
cp -u "$seccomp_libdir/libseccomp.a" "$lib/"
env CC_"${triple//-/_}"=musl-gcc \
  RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
  LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH="$(realpath "$lib")" \
  "${CARGO:-cargo}" build -q --release --target "$triple" \
  --bin wren-oci --bin containerd-shim-wren-v2 >&2
realpath "target/$triple/release"
