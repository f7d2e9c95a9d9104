#!/usr/bin/env bash
# A Debian userland for the version-matrix tests: `scripts/debian-tree.sh
# SUITE` builds (once) /var/tmp/wren-trees/SUITE with containerd, runc,
# criu and what they need, from the mirror apt already uses (see
# ../shared/reference/modern-userland.md): trixie has containerd 1.7.24,
# sid 2.1.9. A tree is complete when its .complete marker exists; an
# interrupted build is removed and made again. Prints the tree's path.
set -euo pipefail
suite=${1:?usage: debian-tree.sh trixie|sid}
base=${WREN_TREES:-/var/tmp/wren-trees}
tree=$base/$suite
packages=containerd,runc,criu,iproute2,iptables,ca-certificates,libseccomp2,containernetworking-plugins
# A tree made with another package list is made again.
if [ "$(cat "$tree/.complete" 2>/dev/null)" = "$packages" ]; then
  echo "$tree"
  exit 0
fi
command -v debootstrap >/dev/null || {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null
}
mirror=${WREN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
rm -rf "$tree"
mkdir -p "$base"
debootstrap --variant=minbase --include="$packages" "$suite" "$tree" "$mirror" >&2
echo "$packages" >"$tree/.complete"
echo "$tree"
