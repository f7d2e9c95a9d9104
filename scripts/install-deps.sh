#!/usr/bin/env bash
# Install what wren needs to build and test on a Debian machine, only if
# something is missing. Safe to run again.
set -euo pipefail
need=()
command -v busybox >/dev/null 2>&1 && busybox --list >/dev/null 2>&1 || need+=(busybox-static)
[ -e /usr/include/seccomp.h ] || need+=(libseccomp-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v containerd >/dev/null 2>&1 || need+=(containerd)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v hyperfine >/dev/null 2>&1 || need+=(hyperfine)
# libfuzzer-sys compiles libFuzzer (C++) for `make fuzz`; setcap for the
# file-capability attack in tests/tests/security_hardening.rs.
command -v c++ >/dev/null 2>&1 || need+=(g++)
command -v setcap >/dev/null 2>&1 || need+=(libcap2-bin)
# wren pull speaks TLS through OpenSSL (native-tls); the image tests run a
# private registry (docker-registry), push to it with skopeo, and make an
# htpasswd file for its basic auth (apache2-utils) and a CA for its TLS
# (the openssl command).
pkg-config --exists openssl 2>/dev/null || need+=(libssl-dev)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
# The CRI test client's proto build (k8s-cri) needs protoc; the CRI tests'
# pause image is a static C program.
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
# CNI for the CRI pod-network tests; debootstrap for the containerd trees.
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
# The pure cgroup v2 VM (scripts/cgroupv2-vm.sh): QEMU and cpio for its
# initramfs; its kernel is downloaded with apt-get download, not installed.
if [ "$(uname -m)" = x86_64 ]; then
  command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
  command -v cpio >/dev/null 2>&1 || need+=(cpio)
fi
# The release wren-oci and shim are built for musl (scripts/release-musl.sh).
command -v musl-gcc >/dev/null 2>&1 || need+=(musl-tools)
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || [ -e /usr/lib/aarch64-linux-gnu/libc.a ] || need+=(libc6-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
# busybox-static provides /bin/busybox; make sure it is the static one.
if ! file -L "$(command -v busybox)" 2>/dev/null | grep -q static; then
  if [ -x /bin/busybox ] && ldd /bin/busybox 2>&1 | grep -q "not a dynamic"; then :; else
    echo "warning: busybox is not statically linked; test images may not run" >&2
  fi
fi
# The Rust musl target for the release wren-oci and shim, best effort: without it
# they are the glibc builds (scripts/release-musl.sh).
musl_target="$(uname -m)-unknown-linux-musl"
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed 2>/dev/null | grep -qx "$musl_target"; then
  rustup target add "$musl_target" >/dev/null 2>&1 ||
    echo "warning: could not add the Rust target $musl_target; the release wren-oci and shim stay on glibc" >&2
fi
