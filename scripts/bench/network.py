"""The networking figure of issue #18 (part of `make bench`; alone:
`BENCH_ONLY=network`): `wren run --rm --network bridge -p
127.0.0.1:PORT:80 IMAGE true` vs `podman run --rm --runtime runc --network
bridge -p 127.0.0.1:PORT:80 IMAGE true`, alternating, on the same image from
one private docker-registry.

Both sides use the standard CNI plugins (/usr/lib/cni: bridge, host-local,
portmap, firewall): wren always does; podman is pointed at its CNI backend
(a private containers.conf with `network_backend = "cni"` and a private
network config dir, so its default network is its own built-in bridge
conflist), not netavark, its default here.

Everything runs in a network namespace the bench makes (a holder process,
`lo` up): the registry, wrend, podman, their bridges, veths and iptables
rules. Nothing lands in the host's namespace, traffic goes only to that
namespace's 127.0.0.1, and killing the holder (after wrend and the
registry) takes every interface and rule with it. Also timed, for scale:
both with `--network none`.
"""

import contextlib
import ctypes
import os
import shutil
import socket
import tempfile
import time

import procs
from figures import alternate
from images import image, layer, podman_cmd
from stats import summary

CLONE_NEWNET = 0x40000000


def _setns(fd):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns(CLONE_NEWNET): {os.strerror(err)}")


@contextlib.contextmanager
def in_netns(path):
    """The calling thread (and every process it starts) in the network
    namespace at `path`, and back in the original one afterwards."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    ns = os.open(path, os.O_RDONLY)
    try:
        _setns(ns)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(ns)
        os.close(home)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def measure(wren_bin, wrend_bin, shim, n=10):
    """The figure as a dict (raw samples in ms)."""
    wren_bin, wrend_bin, shim = (os.path.abspath(b) for b in (wren_bin, wrend_bin, shim))
    # wrend runs its CNI helper, wren-net, from beside itself.
    helper = os.path.join(os.path.dirname(wrend_bin), "wren-net")
    for b in (wren_bin, wrend_bin, shim, helper):
        if not os.path.exists(b):
            raise OSError(f"{b} is not built (make release)")
    for tool in ("docker-registry", "skopeo", "podman", "unshare"):
        if shutil.which(tool) is None:
            raise OSError(f"{tool} is not installed")
    for p in ("bridge", "host-local", "portmap", "firewall"):
        if not os.path.exists(os.path.join("/usr/lib/cni", p)):
            raise OSError(f"CNI plugin /usr/lib/cni/{p} is not installed")
    # Under /tmp: unix socket paths (the shims') must stay under 108 bytes;
    # podman refuses a runroot path over 50 characters.
    work = tempfile.mkdtemp(prefix="bn-", dir="/tmp")
    pwork = tempfile.mkdtemp(prefix="bq-", dir="/tmp")
    holder = procs.spawn(["unshare", "--net", "sleep", "infinity"])
    procs_in_ns = []
    podman = podman_cmd(pwork)
    conf = os.path.join(pwork, "containers.conf")
    with open(conf, "w") as f:
        f.write('[network]\nnetwork_backend = "cni"\ncni_plugin_dirs = ["/usr/lib/cni"]\n'
                f'network_config_dir = "{pwork}/cni"\n')
    penv = dict(os.environ, CONTAINERS_CONF=conf)
    # podman's CNI default network keeps its leases (host-local) under
    # /var/lib/cni/networks/podman: removed afterwards if the bench made it.
    leases = [d for d in ("/var/lib/cni/networks/podman", "/var/lib/cni/networks") if not os.path.exists(d)]
    ns = f"/proc/{holder.pid}/ns/net"
    try:
        for _ in range(100):
            if os.readlink(ns) != os.readlink("/proc/self/ns/net"):
                break
            time.sleep(0.05)
        else:
            raise OSError("unshare --net did not start")
        with in_netns(ns):
            procs.run(["ip", "link", "set", "lo", "up"])
            layout = os.path.join(work, "layout")
            os.makedirs(os.path.join(layout, "blobs/sha256"))
            with open(os.path.join(layout, "oci-layout"), "w") as f:
                f.write('{"imageLayoutVersion": "1.0.0"}')
            busybox = open("/bin/busybox", "rb").read()
            applets = procs.run(["/bin/busybox", "--list"])[1].split()
            base = {"bin/busybox": (0o755, busybox)}
            base.update({f"bin/{a}": ("link", "busybox") for a in applets if a != "busybox"})
            image(layout, "net", [layer(base)])

            port = free_port()
            addr = f"127.0.0.1:{port}"
            cfg = os.path.join(work, "registry.yml")
            with open(cfg, "w") as f:
                f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                        f"    rootdirectory: {work}/storage\nhttp:\n  addr: {addr}\n")
            procs_in_ns.append(procs.spawn(["docker-registry", "serve", cfg]))
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            ref = f"{addr}/bench/net:1"
            procs.run(["skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false",
                       f"oci:{layout}:net", f"docker://{ref}"])

            root = os.path.join(work, "w")
            os.makedirs(root)
            wrend = procs.spawn([wrend_bin, "--root", root, "--shim", shim])
            procs_in_ns.append(wrend)
            wren = [wren_bin, "--root", root]
            for _ in range(100):
                try:
                    if not procs.run(wren + ["ls"])[2].strip():
                        break
                except procs.Failed:
                    pass
                time.sleep(0.1)
            else:
                raise OSError("wrend did not answer")
            procs.run(wren + ["pull", "--insecure-registry", addr, ref])
            procs.run(podman + ["pull", "-q", "--tls-verify=false", ref], env=penv)
            backend = procs.run(podman + ["info", "--format", "{{.Host.NetworkBackend}}"],
                                env=penv)[1].strip()

            wport, pport = free_port(), free_port()
            ulimits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]

            def podman_run(net):
                # Its default nofile/nproc limits exceed this VM's hard
                # limits (runc cannot raise them): ask for small ones.
                def one(i):
                    pub = ["-p", f"127.0.0.1:{pport}:80"] if net == "bridge" else []
                    return procs.run(podman + ["run", "--rm", "--runtime", "runc", "--network", net,
                                               *pub, *ulimits, ref, "true"], env=penv)[0]
                return one

            def wren_run(net):
                def one(i):
                    pub = ["-p", f"127.0.0.1:{wport}:80"] if net == "bridge" else []
                    return procs.run(wren + ["run", "--rm", "--network", net, *pub,
                                             "--name", f"n{net[0]}{i}", ref, "true"])[0]
                return one

            pb, wb = alternate(n, podman_run("bridge"), wren_run("bridge"))
            pn, wn = alternate(n, podman_run("none"), wren_run("none"))
            # Nothing may be left attached: every container was --rm.
            left = procs.run(wren + ["ls"], check=False)[1].strip().splitlines()[1:]
            res = {
                "n": n, "podman_network_backend": backend,
                "bridge": {"reference": summary(pb), "wren": summary(wb)},
                "none": {"reference": summary(pn), "wren": summary(wn)},
                "left": left,
            }
            for k in ("bridge", "none"):
                r = res[k]
                r["ratio"] = r["wren"]["median"] / r["reference"]["median"]
            res["ratio"] = res["bridge"]["ratio"]
            res["reference"], res["wren"] = res["bridge"]["reference"], res["bridge"]["wren"]
            return res
    finally:
        if shutil.which("podman"):
            procs.run(podman + ["rm", "-a", "-f"], env=penv, check=False)
            procs.run(podman + ["rmi", "-a", "-f"], env=penv, check=False)
            # podman's overlay driver bind-mounts its own storage directory.
            procs.run(["umount", os.path.join(pwork, "podman/root/overlay")], check=False)
        for p in reversed(procs_in_ns):
            procs.stop(p)
        procs.stop(holder)
        for d in leases:
            shutil.rmtree(d, ignore_errors=True)
        for d in (pwork, work):
            if not any(f" {d}/" in line for line in open("/proc/self/mountinfo")):
                shutil.rmtree(d, ignore_errors=True)


def lines(f):
    out = [f"network: podman's backend {f['podman_network_backend']}; N={f['n']}"]
    for k in ("bridge", "none"):
        r = f[k]
        out.append(f"run --rm --network {k} true  wren {r['wren']['median']:.1f} ms "
                   f"({r['wren']['p10']:.1f}-{r['wren']['p90']:.1f})   podman "
                   f"{r['reference']['median']:.1f} ms ({r['reference']['p10']:.1f}-"
                   f"{r['reference']['p90']:.1f})   ratio {r['ratio']:.2f}")
    return out
