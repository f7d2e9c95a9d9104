"""A private containerd for the bench: its own root, state, sockets and
namespace under one directory, CRI off, with both `io.containerd.runc.v2`
(containerd-shim-runc-v2 from the system) and `io.containerd.wren.v2` (the
built shim, through a bin dir put first on containerd's PATH) available.

`close()` removes everything it made: containers and tasks, shims still
alive, mounts under its directory, the namespace's cgroups and the shims'
state directories.
"""

import concurrent.futures
import os
import shutil
import time

import procs

RUNC = "io.containerd.runc.v2"
WREN = "io.containerd.wren.v2"
SHIM_BINARIES = {RUNC: "containerd-shim-runc-v2", WREN: "containerd-shim-wren-v2"}


class Containerd:
    def __init__(self, workdir, namespace, wren_shim, env_extra=None, debug=False):
        self.dir = workdir
        self.namespace = namespace
        self.sock = os.path.join(workdir, "c.sock")
        self.proc = None
        os.makedirs(os.path.join(workdir, "bin"), exist_ok=True)
        link = os.path.join(workdir, "bin", "containerd-shim-wren-v2")
        if not os.path.exists(link):
            os.symlink(os.path.realpath(wren_shim), link)
        with open(os.path.join(workdir, "config.toml"), "w") as f:
            f.write(f'version = 2\nroot = "{workdir}/root"\nstate = "{workdir}/state"\n'
                    'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                    f'[grpc]\n  address = "{self.sock}"\n'
                    f'[ttrpc]\n  address = "{self.sock}.ttrpc"\n')
        env = dict(os.environ)
        env["PATH"] = os.path.join(workdir, "bin") + ":" + env.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        env.update(env_extra or {})
        self.log_path = os.path.join(workdir, "containerd.log")
        self._log = open(self.log_path, "w")
        self.proc = procs.spawn(
            ["containerd", "--config", os.path.join(workdir, "config.toml"),
             "--log-level", "debug" if debug else "warn"],
            env=env, stderr=self._log)
        deadline = time.time() + 20
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None:
                raise procs.Failed(f"containerd exited: {self.log_tail()}")
            if time.time() > deadline:
                raise procs.Failed(f"containerd did not start: {self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self, n=20):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def ctr_cmd(self, *args):
        return ["ctr", "--address", self.sock, "--namespace", self.namespace, *args]

    def ctr(self, *args, timeout=120, check=True):
        """Run ctr; returns (ms, stdout, stderr)."""
        return procs.run(self.ctr_cmd(*args), timeout=timeout, check=check)

    def import_image(self, tar):
        self.ctr("images", "import", tar)

    def run_rm_cmd(self, runtime, image, cid, *args, extra=()):
        return self.ctr_cmd("run", "--rm", "--runtime", runtime, *extra, image, cid, *args)

    def run_detached(self, runtime, image, cid, *args):
        self.ctr("run", "-d", "--runtime", runtime, image, cid, *args)

    def remove(self, cid):
        """Kill and delete the task and the container `cid` (best effort)."""
        self.ctr("tasks", "kill", "--all", "--signal", "SIGKILL", cid, check=False, timeout=30)
        for _ in range(50):
            _, out, _ = self.ctr("tasks", "delete", "--force", cid, check=False, timeout=30)
            _, ls, _ = self.ctr("tasks", "ls", "--quiet", check=False, timeout=30)
            if cid not in ls.split():
                break
            time.sleep(0.1)
        self.ctr("containers", "delete", cid, check=False, timeout=30)

    def remove_all(self, parallel=4):
        _, out, _ = self.ctr("containers", "ls", "--quiet", check=False, timeout=30)
        ids = out.split()
        with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
            list(pool.map(self.remove, ids))

    def shim_pids(self, runtime):
        """Live shim daemons of `runtime` serving this containerd."""
        binary = SHIM_BINARIES[runtime]

        def ours(args):
            return (os.path.basename(args[0]) == binary
                    and "-address" in args
                    and args[args.index("-address") + 1:][:1] == [self.sock])
        return procs.pids_where(ours)

    def all_shim_pids(self):
        return self.shim_pids(RUNC) + self.shim_pids(WREN)

    def close(self):
        """Stop everything this containerd started (Ctrl-C ignored meanwhile)."""
        with procs.no_interrupts():
            self._close()

    def _close(self):
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None:
                self.remove_all()
        except Exception as e:  # cleanup goes on regardless
            print(f"bench: cleanup of containers failed: {e}")
        procs.stop(self.proc)
        self.proc = None
        self._log.close()
        # Shims that outlived containerd: kill them (they are ours, found by
        # our socket address) and remove the sockets they leave behind.
        leftover = self.all_shim_pids()
        sockets = self._shim_sockets() if leftover else []
        for pid in leftover:
            procs.kill_pid(pid)
        time.sleep(0.2)
        for path in sockets:
            if os.path.exists(path):
                os.unlink(path)
        for line in reversed(open("/proc/self/mountinfo").read().splitlines()):
            target = line.split(" ")[4]
            if target.startswith(self.dir + "/"):
                procs.run(["umount", "-l", target], check=False)
        self._remove_cgroups()
        for parent in ("/run/containerd/runc", "/run/containerd/wren"):
            shutil.rmtree(os.path.join(parent, self.namespace), ignore_errors=True)
        procs.reap()

    def _shim_sockets(self):
        """Socket paths of the shims of this containerd's bundles."""
        tasks = os.path.join(self.dir, "state", "io.containerd.runtime.v2.task", self.namespace)
        found = []
        for cid in os.listdir(tasks) if os.path.isdir(tasks) else []:
            try:
                addr = open(os.path.join(tasks, cid, "address")).read().strip()
            except OSError:
                continue
            path = addr[len("unix://"):] if addr.startswith("unix://") else ""
            if path.startswith("/run/containerd/s/") or path.startswith(self.dir + "/"):
                found.append(path)
        return found

    def _remove_cgroups(self):
        root = "/sys/fs/cgroup"
        for ctrl in os.listdir(root):
            base = os.path.join(root, ctrl, self.namespace)
            if not os.path.isdir(base):
                continue
            for cg in os.listdir(base):
                path = os.path.join(base, cg)
                if not os.path.isdir(path):
                    continue
                procs_file = os.path.join(path, "cgroup.procs")
                try:
                    for pid in open(procs_file).read().split():
                        procs.kill_pid(int(pid))
                except OSError:
                    pass
            for _ in range(20):
                try:
                    for cg in os.listdir(base):
                        path = os.path.join(base, cg)
                        if os.path.isdir(path):
                            os.rmdir(path)
                    os.rmdir(base)
                    break
                except OSError:
                    procs.reap()
                    time.sleep(0.1)
