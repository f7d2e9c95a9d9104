#!/usr/bin/env bash
# make-bundle.sh DIR [ARGS...]: an OCI bundle with a busybox rootfs made from
# Debian's busybox-static and a default config running ARGS (default: a
# greeting). Used by `make demo` and the benchmarks.
set -euo pipefail
dir=$1; shift
oci=$(realpath "${WREN_OCI:-target/debug/wren-oci}")
rm -rf "$dir"
mkdir -p "$dir"/rootfs/{bin,proc,sys,dev,etc,tmp,root}
cp "$(command -v busybox)" "$dir/rootfs/bin/busybox"
for a in $("$dir/rootfs/bin/busybox" --list); do
  [ "$a" = busybox ] || ln -sf busybox "$dir/rootfs/bin/$a"
done
echo "root:x:0:0:root:/root:/bin/sh" > "$dir/rootfs/etc/passwd"
echo "root:x:0:" > "$dir/rootfs/etc/group"
(cd "$dir" && "$oci" spec)
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(sh -c 'echo "hello from $(hostname), pid $$ in its own namespaces"; id; uname -r')
python3 - "$dir/config.json" "${args[@]}" <<'PY'
import json, sys
path, args = sys.argv[1], sys.argv[2:]
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = args
json.dump(c, open(path, "w"), indent=2)
PY
