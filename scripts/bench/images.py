"""The image figures of the standalone mode (part of `make bench`; alone:
`make bench-images`), measured side by side in one run against one private
docker-registry on 127.0.0.1:

- `wren pull` + unpack of a 3-layer ~50 MB image vs `podman pull` (private
  storage root, overlay driver), vs `ctr image pull` + unpack (the host's
  containerd, started privately by the bench: own root, state and socket;
  overlayfs snapshotter) and vs `skopeo copy` to an OCI layout (download and
  write only, no unpack: a floor); fresh stores each run, runs alternated;
- a second image sharing two layers: only its own layer is fetched (bytes);
- `wren run --rm IMAGE true` vs `wren run --rm --rootfs DIR true` and vs
  `podman run --rm --runtime runc --network none IMAGE true`;
- wrend's RSS idle, and with 50 idle image containers vs 50 rootfs ones.

Needs root, the release binaries, busybox-static, docker-registry and
skopeo; podman and containerd/ctr when present. Never fails on a number.
"""

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time

from containerd import Containerd
from stats import summary


def sh(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise OSError(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip() or p.stdout.strip()}")
    return p


def blob(layout, data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs/sha256", d), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + d, "size": len(data)}


def layer(files):
    """(gzipped tar, diff id) of {path: (mode, bytes) | ('link', target)}."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for path, (kind, data) in files.items():
            ti = tarfile.TarInfo(path)
            if kind == "link":
                ti.type, ti.linkname = tarfile.SYMTYPE, data
                t.addfile(ti)
            else:
                ti.mode, ti.size = kind, len(data)
                t.addfile(ti, io.BytesIO(data))
    tar = raw.getvalue()
    return gzip.compress(tar, compresslevel=1, mtime=0), "sha256:" + hashlib.sha256(tar).hexdigest()


def image(layout, tag, layers):
    descs, diffs = [], []
    for gz, diff in layers:
        descs.append(dict(blob(layout, gz), mediaType="application/vnd.oci.image.layer.v1.tar+gzip"))
        diffs.append(diff)
    cfg = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["true"], "Env": ["PATH=/bin"]},
           "rootfs": {"type": "layers", "diff_ids": diffs}}
    c = dict(blob(layout, json.dumps(cfg).encode()), mediaType="application/vnd.oci.image.config.v1+json")
    m = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
         "config": c, "layers": descs}
    md = dict(blob(layout, json.dumps(m).encode()), mediaType=m["mediaType"],
              annotations={"org.opencontainers.image.ref.name": tag})
    idx_path = os.path.join(layout, "index.json")
    idx = json.load(open(idx_path)) if os.path.exists(idx_path) else {"schemaVersion": 2, "manifests": []}
    idx["manifests"].append(md)
    json.dump(idx, open(idx_path, "w"))


def timed(cmd):
    t = time.perf_counter()
    sh(cmd)
    return time.perf_counter() - t


def vmrss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def podman_cmd(work):
    """podman on a private storage root under `work` (overlay driver)."""
    proot = os.path.join(work, "podman")
    return ["podman", "--root", proot + "/root", "--runroot", proot + "/run",
            "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs",
            "--events-backend", "none"]


def measure(wren_bin, wrend_bin, shim, n=10):
    """The figures as a dict (raw samples in seconds, sizes in bytes,
    RSS in KiB)."""
    wren_bin, wrend_bin, shim = (os.path.abspath(b) for b in (wren_bin, wrend_bin, shim))
    for b in (wren_bin, wrend_bin, shim):
        if not os.path.exists(b):
            raise OSError(f"{b} is not built (make release)")
    for tool in ("docker-registry", "skopeo"):
        if shutil.which(tool) is None:
            raise OSError(f"{tool} is not installed")
    # Under /tmp: unix socket paths (the shims') must stay under 108 bytes.
    work = tempfile.mkdtemp(prefix="bi-", dir="/tmp")
    # podman refuses a runroot path over 50 characters: a short dir of its own.
    pwork = tempfile.mkdtemp(prefix="bp-", dir="/tmp")
    procs = []
    cd = None
    try:
        layout = os.path.join(work, "layout")
        os.makedirs(os.path.join(layout, "blobs/sha256"))
        json.dump({"imageLayoutVersion": "1.0.0"}, open(os.path.join(layout, "oci-layout"), "w"))
        busybox = open("/bin/busybox", "rb").read()
        applets = sh(["/bin/busybox", "--list"]).stdout.split()
        base = {"bin/busybox": (0o755, busybox)}
        base.update({f"bin/{a}": ("link", "busybox") for a in applets if a != "busybox"})
        l1 = layer(base)
        l2 = layer({f"opt/a/{i}": (0o644, os.urandom(1 << 20)) for i in range(24)})
        l3 = layer({f"opt/b/{i}": (0o644, os.urandom(1 << 20)) for i in range(24)})
        l4 = layer({"opt/c": (0o644, b"small\n")})
        image(layout, "big", [l1, l2, l3])
        image(layout, "second", [l1, l2, l4])
        size = sum(len(x[0]) for x in (l1, l2, l3))

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        addr = f"127.0.0.1:{port}"
        cfg = os.path.join(work, "registry.yml")
        open(cfg, "w").write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                             f"    rootdirectory: {work}/storage\nhttp:\n  addr: {addr}\n")
        procs.append(subprocess.Popen(["docker-registry", "serve", cfg],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        for tag in ("big", "second"):
            sh(["skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false",
                f"oci:{layout}:{tag}", f"docker://{addr}/bench/{tag}:1"])

        root = os.path.join(work, "w")
        os.makedirs(root)
        # --default-network none: compared with podman's --network none,
        # and nothing may land in the host's network namespace (the
        # networking figure is network.py's, in a namespace of its own).
        wrend = subprocess.Popen([wrend_bin, "--root", root, "--shim", shim, "--default-network", "none"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(wrend)
        wren = [wren_bin, "--root", root]
        for _ in range(100):
            if subprocess.run(wren + ["ls"], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        rss_idle = vmrss(wrend.pid)
        big = f"{addr}/bench/big:1"
        second = f"{addr}/bench/second:1"
        pull = wren + ["pull", "--insecure-registry", addr]

        # Pull + unpack (fresh store each time) vs podman pull (its own
        # private storage, overlay driver) and skopeo copy (download only).
        have_podman = shutil.which("podman") is not None
        podman = podman_cmd(pwork)
        # ctr image pull unpacks into the overlayfs snapshotter.
        have_ctr = shutil.which("containerd") is not None and shutil.which("ctr") is not None
        if have_ctr:
            cd = Containerd(os.path.join(work, "containerd"), f"wren-bench-img-{os.getpid()}", shim)
        wt, st, pt, ct = [], [], [], []
        for i in range(n):
            subprocess.run(wren + ["rmi", big], capture_output=True)
            wt.append(timed(pull + [big]))
            if have_podman:
                subprocess.run(podman + ["rmi", "-a", "-f"], capture_output=True)
                pt.append(timed(podman + ["pull", "-q", "--tls-verify=false", big]))
            if cd:
                cd.ctr("images", "rm", "--sync", big, check=False)
                ct.append(timed(cd.ctr_cmd("images", "pull", "--plain-http", big)))
            dst = os.path.join(work, f"sk{i}")
            st.append(timed(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false",
                             f"docker://{big}", f"oci:{dst}:x"]))
            shutil.rmtree(dst, ignore_errors=True)
        out = sh(pull + [second]).stdout.strip()

        # wren run --rm: image vs rootfs (the big image's base: busybox).
        rootfs = os.path.join(work, "rootfs")
        os.makedirs(os.path.join(rootfs, "bin"))
        shutil.copy("/bin/busybox", os.path.join(rootfs, "bin/busybox"))
        os.symlink("busybox", os.path.join(rootfs, "bin/true"))
        ri, rr, rp = [], [], []
        for i in range(n * 2):
            ri.append(timed(wren + ["run", "--rm", "--name", f"bi{i}", big, "/bin/true"]))
            rr.append(timed(wren + ["run", "--rm", "--rootfs", rootfs, f"br{i}", "--", "/bin/true"]))
            if have_podman:
                # Its default nofile/nproc limits exceed this VM's hard
                # limits (runc cannot raise them): ask for small ones.
                rp.append(timed(podman + ["run", "--rm", "--runtime", "runc", "--network", "none",
                                          "--ulimit", "nofile=1024:1024",
                                          "--ulimit", "nproc=1024:1024", big, "/bin/true"]))

        # wrend RSS with 50 idle image containers, then 50 rootfs ones.
        names = []
        for i in range(50):
            sh(wren + ["run", "-d", "--name", f"ii{i}", big, "sleep", "100000"])
            names.append(f"ii{i}")
        time.sleep(3)
        rss_img = vmrss(wrend.pid)
        for c in names:
            sh(wren + ["rm", "-f", c])
        names = []
        for i in range(50):
            sh(wren + ["run", "-d", "--rootfs", rootfs, f"ir{i}", "--", "/bin/busybox", "sleep", "100000"])
            names.append(f"ir{i}")
        time.sleep(3)
        rss_rootfs = vmrss(wrend.pid)
        for c in names:
            sh(wren + ["rm", "-f", c])

        s = lambda xs: summary(xs, "s") if xs else None  # noqa: E731
        return {
            "image_bytes": size, "n": n,
            "pull": {"wren": s(wt), "podman": s(pt), "ctr": s(ct), "skopeo": s(st)},
            "second_image": out,
            "run_rm": {"image": s(ri), "rootfs": s(rr), "podman": s(rp)},
            "wrend_rss_kib": {"idle": rss_idle, "image_50": rss_img, "rootfs_50": rss_rootfs},
        }
    finally:
        if cd:
            cd.close()
        if shutil.which("podman"):
            subprocess.run(podman_cmd(pwork) + ["rmi", "-a", "-f"], capture_output=True)
            # podman's overlay driver bind-mounts its own storage directory.
            subprocess.run(["umount", os.path.join(pwork, "podman/root/overlay")],
                           capture_output=True)
        if not any(f" {pwork}/" in line for line in open("/proc/self/mountinfo")):
            shutil.rmtree(pwork, ignore_errors=True)
        for p in reversed(procs):
            p.terminate()
            p.wait()
        if not any(f" {work}/" in line for line in open("/proc/self/mountinfo")):
            shutil.rmtree(work, ignore_errors=True)


def lines(f):
    """The figures as text lines (for `make bench-images` and the log)."""
    def med(k, w):
        x = f[k][w]
        return x["median"] if x else None
    out = [f"image: 3 layers, {f['image_bytes'] / 1e6:.1f} MB compressed; N={f['n']}"]
    w = med("pull", "wren")
    for ref in ("podman", "ctr", "skopeo"):
        r = med("pull", ref)
        if r:
            out.append(f"pull+unpack  wren {w:.3f} s   {ref} {r:.3f} s   ratio {w / r:.2f}")
    out.append(f"second image sharing 2 layers: {f['second_image']}")
    ri = med("run_rm", "image")
    for ref in ("rootfs", "podman"):
        r = med("run_rm", ref)
        if r:
            out.append(f"run --rm true  wren image {ri * 1000:.1f} ms   {ref} {r * 1000:.1f} ms"
                       f"   ratio {ri / r:.2f}")
    m = f["wrend_rss_kib"]
    out.append(f"wrend VmRSS  idle {m['idle']} KiB   50 image containers {m['image_50']} KiB"
               f"   50 rootfs containers {m['rootfs_50']} KiB")
    return out
