#!/usr/bin/env python3
"""Image figures of the standalone mode (`make bench-images`), measured side by
side in one run against one private docker-registry on 127.0.0.1:

- `wren pull` + unpack of a 3-layer ~50 MB image vs `podman pull` (private
  storage root, overlay driver) when podman is installed, and vs `skopeo copy`
  to an OCI layout (download and write only, no unpack: a floor);
- a second image sharing two layers: only its own layer is fetched (bytes);
- `wren run --rm IMAGE true` vs `wren run --rm --rootfs DIR true` and vs
  `podman run --rm --runtime runc --network none IMAGE true`;
- wrend's RSS idle, and with 50 idle image containers vs 50 rootfs ones.

Needs root, the release binaries (REL, default target/release), busybox-static,
docker-registry and skopeo. Prints a small table; never fails on a number.
"""

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

REL = os.environ.get("REL", "target/release")
N = int(os.environ.get("BENCH_N", "10"))
WREN, WREND, SHIM = (os.path.abspath(os.path.join(REL, b)) for b in
                     ("wren", "wrend", "containerd-shim-wren-v2"))


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


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


def median(xs):
    return statistics.median(xs) if xs else float("nan")


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


def main():
    for b in (WREN, WREND, SHIM):
        if not os.path.exists(b):
            sys.exit(f"{b} is not built (make release)")
    work = tempfile.mkdtemp(prefix="bi-", dir="/tmp")
    procs = []
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
        wrend = subprocess.Popen([WREND, "--root", root, "--shim", SHIM],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(wrend)
        wren = [WREN, "--root", root]
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
        podman = podman_cmd(work)
        wt, st, pt = [], [], []
        for i in range(N):
            subprocess.run(wren + ["rmi", big], capture_output=True)
            wt.append(timed(pull + [big]))
            if have_podman:
                subprocess.run(podman + ["rmi", "-a", "-f"], capture_output=True)
                pt.append(timed(podman + ["pull", "-q", "--tls-verify=false", big]))
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
        for i in range(N * 2):
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
        for n in names:
            sh(wren + ["rm", "-f", n])
        names = []
        for i in range(50):
            sh(wren + ["run", "-d", "--rootfs", rootfs, f"ir{i}", "--", "/bin/busybox", "sleep", "100000"])
            names.append(f"ir{i}")
        time.sleep(3)
        rss_rootfs = vmrss(wrend.pid)
        for n in names:
            sh(wren + ["rm", "-f", n])

        print(f"image: 3 layers, {size / 1e6:.1f} MB compressed; N={N}")
        print(f"pull+unpack  wren {median(wt):.3f} s   skopeo copy (no unpack) {median(st):.3f} s"
              f"   ratio {median(wt) / median(st):.2f}")
        if pt:
            print(f"pull+unpack  wren {median(wt):.3f} s   podman pull {median(pt):.3f} s"
                  f"   ratio {median(wt) / median(pt):.2f}")
        print(f"second image sharing 2 layers: {out}")
        print(f"run --rm true  image {median(ri) * 1000:.1f} ms   rootfs {median(rr) * 1000:.1f} ms"
              f"   ratio {median(ri) / median(rr):.2f}")
        if rp:
            print(f"run --rm true  wren image {median(ri) * 1000:.1f} ms   podman (runc) "
                  f"{median(rp) * 1000:.1f} ms   ratio {median(ri) / median(rp):.2f}")
        print(f"wrend VmRSS  idle {rss_idle} KiB   50 image containers {rss_img} KiB"
              f"   50 rootfs containers {rss_rootfs} KiB")
    finally:
        if shutil.which("podman"):
            subprocess.run(podman_cmd(work) + ["rmi", "-a", "-f"], capture_output=True)
            # podman's overlay driver bind-mounts its own storage directory.
            subprocess.run(["umount", os.path.join(work, "podman/root/overlay")],
                           capture_output=True)
        for p in reversed(procs):
            p.terminate()
            p.wait()
        if not any(f" {work}/" in line for line in open("/proc/self/mountinfo")):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
