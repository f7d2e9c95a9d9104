# wren: build, test, demo, bench. `make test` uses the fast dev profile and
# one build for the whole suite; `make bench` builds the lean release binaries.
CARGO ?= cargo
DEV := target/debug
# Release binaries are static and non-PIE (crt-static, relocation-model=
# static; libseccomp from its static archive). Non-PIE keeps data pages
# shared between shims instead of relocated privately in each (~0.2 MiB per
# idle shim); static drops the shared libraries' private relocation pages
# (~60 KiB per shim) and the dynamic loader from every start, which the
# container init (a re-exec of the same binary) pays too. User names are
# looked up in the image's own /etc/passwd, never through NSS; registry host
# names resolve through glibc's built-in files and dns sources (/etc/hosts,
# /etc/resolv.conf), which static glibc >= 2.34 has: only NSS modules
# (myhostname, resolve, mdns) are out of reach (docs/ARCHITECTURE.md). An explicit --target keeps the flags off
# build scripts and proc-macros.
TRIPLE ?= $(shell rustc -vV | sed -n 's/^host: //p')
REL := target/$(TRIPLE)/release
SECCOMP_LIBDIR ?= $(shell pkg-config --variable=libdir libseccomp 2>/dev/null || echo /usr/lib/$(TRIPLE))
RELEASE_FLAGS := RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
	LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=$(SECCOMP_LIBDIR)
PREFIX ?= /usr/local

.PHONY: all deps trees vm build release install test unit lint demo bench bench-images clean-demo fuzz fuzz-ci wrend-hot

all: build

deps:
	@bash scripts/install-deps.sh

# The containerd version matrix: Debian trixie (1.7) and sid (2.1) trees,
# built once under /var/tmp/wren-trees and reused (scripts/debian-tree.sh).
trees:
	@bash scripts/debian-tree.sh trixie >/dev/null
	@bash scripts/debian-tree.sh sid >/dev/null

# The pure cgroup v2 VM's kernel and initramfs, prepared once under
# /var/tmp/wren-vm (scripts/cgroupv2-vm.sh); x86_64 hosts only.
vm:
	@if [ "$$(uname -m)" = x86_64 ]; then bash scripts/cgroupv2-vm.sh prepare >/dev/null; fi

build:
	$(CARGO) build --workspace --bins

release:
	$(RELEASE_FLAGS) $(CARGO) build --release --target $(TRIPLE) --workspace --bins
	@bash scripts/release-musl.sh $(MUSL) $(SECCOMP_LIBDIR) > target/release-musl.dir

# The release wren-oci and shim: the musl builds where this machine can make
# them, else the glibc ones beside the others. Both are exec'd per container
# (the shim three times: start, daemon, each init) and re-exec themselves as
# its init; glibc's start-up costs ~0.5 ms of CPUID in a VM, musl's none
# (docs/ARCHITECTURE.md, "wren-oci and the shim on musl").
MUSL := $(shell uname -m)-unknown-linux-musl
MUSL_BIN = $$(d=$$(cat target/release-musl.dir 2>/dev/null); [ -n "$$d" ] && [ -x "$$d/$(1)" ] && echo "$$d/$(1)" || echo $(REL)/$(1))
OCI_BIN = $(call MUSL_BIN,wren-oci)
SHIM_BIN = $(call MUSL_BIN,containerd-shim-wren-v2)

# Regenerates manager/wrend-hot.txt, the functions a release wrend keeps
# together at the front of its text (docs/ARCHITECTURE.md, "wrend's resident
# text"): an unstripped release build in its own target dir, run under
# callgrind. Root, valgrind and busybox-static; a few minutes.
HOT_DIR := target/wrend-hot
wrend-hot:
	$(RELEASE_FLAGS) CARGO_PROFILE_RELEASE_STRIP=false CARGO_TARGET_DIR=$(HOT_DIR) \
		$(CARGO) build --release --target $(TRIPLE) --workspace --bins
	python3 scripts/wrend-hot.py $(HOT_DIR)/$(TRIPLE)/release/wrend \
		$(HOT_DIR)/$(TRIPLE)/release/wren $(HOT_DIR)/$(TRIPLE)/release/containerd-shim-wren-v2

install: release
	install -m 0755 $(OCI_BIN) $(DESTDIR)$(PREFIX)/bin/wren-oci
	install -m 0755 $(SHIM_BIN) $(DESTDIR)$(PREFIX)/bin/containerd-shim-wren-v2
	install -m 0755 $(REL)/wrend $(DESTDIR)$(PREFIX)/bin/wrend
	install -m 0755 $(REL)/wren $(DESTDIR)$(PREFIX)/bin/wren
	install -m 0755 $(REL)/wren-net $(DESTDIR)$(PREFIX)/bin/wren-net

# The whole suite: unit tests beside the code and the root integration
# tests in tests/. A test that cannot run here records why
# (wren_tests::skip); the list is printed after the run, and as root a skip
# that CI must not have (something missing) fails the target.
# tests/tests/cgroup_v2_vm.rs boots the VM once (~1-1.5 min, bounded by
# WREN_VM_TIMEOUT, default 480 s) for the cgroup v2 set.
test: deps trees vm build
	@bash scripts/test-skips.sh clear
	$(CARGO) test --workspace --no-fail-fast || { bash scripts/test-skips.sh report; exit 1; }
	@bash scripts/test-musl.sh $(MUSL) $(SECCOMP_LIBDIR) || { bash scripts/test-skips.sh report; exit 1; }
	@bash scripts/test-skips.sh report
	$(MAKE) fuzz-ci

# Fuzz every target in fuzz/ for FUZZ_SECONDS each (stable toolchain, see
# scripts/fuzz.sh), after replaying the committed seeds and regressions.
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh

# The bounded run `make test` does: seeds replayed, 10 s per target (a clean
# build of the instrumented targets costs ~400 CPU-seconds; see docs/SECURITY.md).
fuzz-ci:
	FUZZ_SECONDS=10 bash scripts/fuzz.sh

unit:
	$(CARGO) test --workspace --lib --bins

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Run one container from a bundled busybox rootfs.
demo: deps
	$(CARGO) build -p wren-oci
	@bash scripts/make-bundle.sh target/demo/bundle
	@echo "+ wren-oci run --bundle target/demo/bundle demo-$$$$"
	@$(DEV)/wren-oci --root target/demo/state run --bundle target/demo/bundle demo-$$$$

# Side-by-side benchmarks against runc + containerd-shim-runc-v2 (root; a few
# minutes). Never part of `make test`; never fails on a number. See
# docs/BENCHMARKS.md. BENCH_PUBLISH=1 copies the report to docs/bench/.
bench: deps trees release
	@REL=$(REL) OCI=$(OCI_BIN) SHIM=$(SHIM_BIN) bash scripts/bench.sh

# Only the image figures of the bench report (pull + unpack against podman
# and ctr, run --rm IMAGE, wrend RSS with image containers), against a
# private docker-registry.
bench-images: deps release
	@BENCH_ONLY=images REL=$(REL) OCI=$(OCI_BIN) bash scripts/bench.sh

clean-demo:
	rm -rf target/demo
