"""The standalone mode, without containerd: a private `wrend` (own --root)
and the `wren` CLI. Measured only when target/release/wrend and wren exist.

Figures: `wren run --rm` vs `runc run` of /bin/true on the same bundle, and
the memory of wrend plus its shims with 1, 10 and 50 idle containers.
"""

import contextlib
import os
import shutil
import tempfile
import time

import procs
from stats import summary
from figures import alternate, pair


class Wrend:
    def __init__(self, wrend, wren, shim, root, env=None):
        self.wren_bin = wren
        self.root = root
        os.makedirs(root, exist_ok=True)
        self._log = open(os.path.join(root, "wrend.log"), "w")
        # --default-network none: these figures compare the runtime with
        # runc (no networking), and nothing may land in the host's network
        # namespace.
        self.proc = procs.spawn([wrend, "--root", root, "--shim", shim, "--default-network", "none"],
                                env=env, stderr=self._log)
        deadline = time.time() + 20
        while True:
            if self.proc.poll() is not None:
                raise procs.Failed(f"wrend exited with {self.proc.returncode}: {self.log_tail()}")
            _, _, err = self.wren("ls", check=False)
            if self.proc.poll() is None and not err.strip():
                break
            if time.time() > deadline:
                self.proc.kill()
                procs.wait(self.proc)
                raise procs.Failed(f"wrend did not answer: {err.strip()}")
            time.sleep(0.1)

    def log_tail(self):
        try:
            return open(os.path.join(self.root, "wrend.log")).read()[-2000:]
        except OSError:
            return ""

    def wren_cmd(self, *args):
        return [self.wren_bin, "--root", self.root, *args]

    def wren(self, *args, check=True, timeout=60):
        return procs.run(self.wren_cmd(*args), check=check, timeout=timeout)

    def shim_pids(self):
        def ours(args):
            return (os.path.basename(args[0]) == "containerd-shim-wren-v2"
                    and "-address" in args
                    and self.root in "".join(args[args.index("-address") + 1:][:1]))
        return procs.pids_where(ours)

    def close(self, names):
        with procs.no_interrupts():
            self._close(names)

    def _close(self, names):
        for n in names:
            self.wren("rm", "-f", n, check=False, timeout=30)
        procs.stop(self.proc)
        self._log.close()
        for pid in self.shim_pids():
            procs.kill_pid(pid)
        for line in reversed(open("/proc/self/mountinfo").read().splitlines()):
            target = line.split(" ")[4]
            if target.startswith(self.root + "/"):
                procs.run(["umount", "-l", target], check=False)
        procs.reap()


def built(args):
    """Both release binaries of the standalone mode exist."""
    return bool(args.wrend and os.path.exists(args.wrend) and args.wren and os.path.exists(args.wren))


@contextlib.contextmanager
def running(args, env=None, prefix="wb-"):
    """A private wrend for the bench, stopped and cleaned up on the way out.

    Its root is short and under /run: wrend's shim sockets live in
    <root>/run/s/<64 hex digits>, which must fit in a unix socket path
    (108 bytes). Not /tmp: on these machines creating a file or directory
    anywhere under /tmp takes ~0.5 ms (elsewhere on the same ext4 ~20 us),
    and a run creates about ten. The reference's state goes beside it
    (`run_rm`), so both pay the same filesystem. The root is removed unless
    something is still mounted there.
    """
    w = None
    root = tempfile.mkdtemp(prefix=prefix, dir="/run")
    try:
        w = Wrend(args.wrend, args.wren, args.shim, root, env=env)
        yield w
    finally:
        if w:
            w.close([])
        if not any(line.split(" ")[4].startswith(root + "/")
                   for line in open("/proc/self/mountinfo").read().splitlines()):
            shutil.rmtree(root, ignore_errors=True)


def run_rm(w, bundle, n):
    """`wren run --rm` vs `runc run` of /bin/true, same bundle, both
    runtimes' state on the same filesystem."""
    root = os.path.join(w.root, "runc-root")
    tag = os.getpid()

    def ref(i):
        return procs.run(["runc", "--root", root, "run", "--bundle", bundle, f"bench-sr-{tag}-{i}"])[0]

    def wren(i):
        return w.wren("run", "--rm", "--bundle", bundle, f"bench-sw-{tag}-{i}")[0]
    return pair(*alternate(n, ref, wren))


def memory(w, rootfs, levels, settle_s=3.0, extra=()):
    """wrend's and its shims' PSS/RSS/threads with idle containers (`extra`:
    more `run` flags, e.g. a health check)."""
    names, out = [], {"levels": []}
    try:
        for level in levels:
            while len(names) < level:
                name = f"bench-idle-{os.getpid()}-{len(names)}"
                w.wren("run", "-d", "--rootfs", rootfs, *extra, name, "--", "sleep", "1000000")
                names.append(name)
            time.sleep(settle_s)
            d = procs.memory(w.proc.pid)
            shims = [dict(m, pid=p) for p in w.shim_pids() if (m := procs.memory(p))]
            pss = sum(s["pss_kib"] for s in shims)
            rss = sum(s["rss_kib"] for s in shims)
            threads = sorted(s["threads"] for s in shims)
            out["levels"].append({
                "containers": level,
                "wrend": d,
                "shims": len(shims),
                "pss_kib_total": pss,
                "rss_kib_total": rss,
                "pss_kib_per_container": pss / level,
                "threads_per_shim": summary(threads, "threads") if threads else None,
            })
            print(f"  {level:3d} idle under wrend: wrend RSS {d['rss_kib'] if d else '?'} KiB, "
                  f"{len(shims)} shims, PSS {pss / 1024:.1f} MiB", flush=True)
    finally:
        for n in names:
            w.wren("rm", "-f", n, check=False, timeout=30)
    return out
