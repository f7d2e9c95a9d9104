"""A busybox OCI image, built locally from Debian's busybox-static and
written as an OCI layout tar that `ctr images import` takes (no registry is
reachable). The same image the shim tests build (tests/src/containerd.rs).
"""

import gzip
import hashlib
import io
import json
import os
import tarfile

IMAGE = "docker.io/library/wren-busybox:bench"
BUSYBOX = "/bin/busybox"


def _root_owned(ti):
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    ti.mtime = 0
    return ti


def _layer(rootfs):
    """(gzipped layer bytes, diff_id) of the tree at `rootfs`."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        t.add(rootfs, arcname=".", filter=_root_owned)
    data = raw.getvalue()
    diff_id = "sha256:" + hashlib.sha256(data).hexdigest()
    gz = gzip.compress(data, mtime=0)
    return gz, diff_id


def _blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)


def build(workdir, applets):
    """Write `workdir`/busybox-oci.tar; returns its path."""
    rootfs = os.path.join(workdir, "image-rootfs")
    for d in ("bin", "proc", "sys", "dev", "tmp", "etc"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    with open(BUSYBOX, "rb") as src, open(os.path.join(rootfs, "bin", "busybox"), "wb") as dst:
        dst.write(src.read())
    os.chmod(os.path.join(rootfs, "bin", "busybox"), 0o755)
    for a in applets:
        if a != "busybox":
            os.symlink("busybox", os.path.join(rootfs, "bin", a))
    layout = os.path.join(workdir, "layout")
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    gz, diff_id = _layer(rootfs)
    layer_digest, layer_size = _blob(layout, gz)
    config = {
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    config_digest, config_size = _blob(layout, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest, "size": layer_size}],
    }
    manifest_digest, manifest_size = _blob(layout, json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest_size,
            "annotations": {"io.containerd.image.name": IMAGE,
                            "org.opencontainers.image.ref.name": "bench"},
        }],
    }
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    out = os.path.join(workdir, "busybox-oci.tar")
    with tarfile.open(out, "w") as t:
        for name in ("index.json", "oci-layout", "blobs"):
            t.add(os.path.join(layout, name), arcname=name, filter=_root_owned)
    return out
