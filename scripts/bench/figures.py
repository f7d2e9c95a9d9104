"""The measurements against the reference, each alternating reference and
wren run by run (A B A B ...) so machine noise hits both alike. Each
function returns the figure's results (raw samples included) or raises
`procs.Failed` saying why it could not be measured.

A run that fails is tried once more (with a fresh container id) and the
failure is kept in `FAILURES`, which the report lists: a rare failure is a
bug to see, not a reason to lose the figure.
"""

import concurrent.futures
import itertools
import os
import subprocess
import threading
import time

import procs
from containerd import RUNC, WREN
from image import IMAGE
from stats import ratio, summary

WARMUP = 2
FAILURES = []
_failures_lock = threading.Lock()


def retried(figure, runtime):
    """Decorator: fn(), or once more if it fails; the failure goes to
    FAILURES."""
    def wrap(fn):
        def call(*a):
            try:
                return fn(*a)
            except procs.Failed as e:
                with _failures_lock:
                    FAILURES.append({"figure": figure, "runtime": runtime, "error": str(e)})
                return fn(*a)
        return call
    return wrap


def alternate(n, ref, wren, warmup=WARMUP):
    """Call ref(i) and wren(i) alternately n + warmup times; the first
    `warmup` pairs only warm caches. Returns (ref samples, wren samples)."""
    a, b = [], []
    for i in range(n + warmup):
        x = ref(i)
        y = wren(i)
        if i >= warmup:
            a.append(x)
            b.append(y)
    return a, b


def pair(ref_samples, wren_samples, unit="ms"):
    r, w = summary(ref_samples, unit), summary(wren_samples, unit)
    return {"reference": r, "wren": w, "ratio": ratio(w, r)}


def ctr_run_rm(cd, n):
    """`ctr run --rm` of /bin/true: the whole ctr process."""
    seq = itertools.count()

    def one(runtime, tag):
        return retried("ctr_run_rm", runtime)(lambda i: procs.run(
            cd.run_rm_cmd(runtime, IMAGE, f"rr-{tag}-{next(seq)}", "/bin/true"))[0])
    return pair(*alternate(n, one(RUNC, "r"), one(WREN, "w")))


def ctr_exec(cd, n):
    """`ctr task exec` of /bin/true into a running (sleeping) container."""
    ids = {RUNC: "exec-r", WREN: "exec-w"}
    try:
        for runtime, cid in ids.items():
            cd.run_detached(runtime, IMAGE, cid, "sleep", "1000000")

        seq = itertools.count()

        def one(runtime):
            cid = ids[runtime]
            return retried("ctr_exec", runtime)(lambda i: procs.run(
                cd.ctr_cmd("tasks", "exec", "--exec-id", f"x{next(seq)}", cid, "/bin/true"))[0])
        return pair(*alternate(n, one(RUNC), one(WREN)))
    finally:
        for cid in ids.values():
            cd.remove(cid)


def _shim_memory(cd, runtime):
    shims = []
    for pid in cd.shim_pids(runtime):
        m = procs.memory(pid)
        if m:
            shims.append(dict(m, pid=pid))
    return shims


def memory(cd, levels, settle_s=3.0):
    """Shim PSS, RSS and threads with 1, 10, 50 idle containers per runtime.

    Both runtimes grow in step (the containers of one runtime are started,
    then the other's), and all shims serving our containerd are counted."""
    counts = {RUNC: 0, WREN: 0}
    tags = {RUNC: "r", WREN: "w"}
    seq = itertools.count()
    out = {"levels": []}
    try:
        for level in levels:
            for runtime in (RUNC, WREN):
                start = retried("memory", runtime)(lambda: cd.run_detached(
                    runtime, IMAGE, f"idle-{tags[runtime]}-{next(seq)}", "sleep", "1000000"))
                while counts[runtime] < level:
                    start()
                    counts[runtime] += 1
            time.sleep(settle_s)
            row = {"containers": level}
            for runtime in (RUNC, WREN):
                shims = _shim_memory(cd, runtime)
                pss = sum(s["pss_kib"] for s in shims)
                rss = sum(s["rss_kib"] for s in shims)
                threads = sorted(s["threads"] for s in shims)
                row[runtime] = {
                    "shims": len(shims),
                    "pss_kib_total": pss,
                    "rss_kib_total": rss,
                    "pss_kib_per_container": pss / level,
                    "rss_kib_per_container": rss / level,
                    "threads_per_shim": summary(threads, "threads") if threads else None,
                    "per_shim": shims,
                }
            out["levels"].append(row)
            print(f"  {level:3d} idle: " + "; ".join(
                f"{rt}: {row[rt]['shims']} shims, PSS {row[rt]['pss_kib_total'] / 1024:.1f} MiB, "
                f"threads {row[rt]['threads_per_shim']['median'] if row[rt]['threads_per_shim'] else '-'}"
                for rt in (RUNC, WREN)), flush=True)
        # Where one idle shim of each runtime spends its memory.
        out["mappings"] = {}
        for runtime in (RUNC, WREN):
            pids = cd.shim_pids(runtime)
            if pids:
                out["mappings"][runtime] = {"pid": pids[0], "by_mapping": procs.smaps_by_mapping(pids[0])}
    finally:
        cd.remove_all()
    return out


def throughput(cd, total, parallel, rounds):
    """`total` containers (`ctr run --rm` of /bin/true: create, start, wait,
    delete), `parallel` at a time; total wall time per round."""
    seq = itertools.count()

    def batch(runtime, tag):
        def go(r):
            @retried("throughput", runtime)
            def one(i):
                procs.run(cd.run_rm_cmd(runtime, IMAGE, f"tp-{tag}-{next(seq)}", "/bin/true"))
            t = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
                list(pool.map(one, range(total)))
            procs.reap()
            return (time.perf_counter() - t) * 1000.0
        return go
    res = pair(*alternate(rounds, batch(RUNC, "r"), batch(WREN, "w"), warmup=0))
    res.update(containers=total, parallel=parallel)
    return res


def runtime_alone(wren_oci, bundle, workdir, n):
    """`wren-oci run` vs `runc run` of /bin/true on the same bundle. Both
    state roots are on a private tmpfs, as /run (runc's and wren-oci's
    default root) is on hosts; this machine's /run is ext4 mounted with
    `discard`, where removing a state directory can wait for the disk."""
    tmpfs = os.path.join(workdir, "roots")
    os.makedirs(tmpfs, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0700,size=64m", "tmpfs", tmpfs], check=True)
    try:
        return _runtime_alone(wren_oci, bundle, tmpfs, n)
    finally:
        subprocess.run(["umount", tmpfs], check=False)


def _runtime_alone(wren_oci, bundle, workdir, n):
    roots = {k: os.path.join(workdir, f"{k}-root") for k in ("runc", "wren")}
    tag = os.getpid()
    seq = itertools.count()

    @retried("runtime_alone", "runc")
    def ref(i):
        return procs.run(["runc", "--root", roots["runc"], "run", "--bundle", bundle,
                          f"bench-r-{tag}-{next(seq)}"])[0]

    @retried("runtime_alone", "wren-oci")
    def wren(i):
        return procs.run([wren_oci, "--root", roots["wren"], "run", "--bundle", bundle,
                          f"bench-w-{tag}-{next(seq)}"])[0]
    floor = []

    def wren_then_floor(i):
        ms = wren(i)
        f = procs.run(floor_cmd(bundle))[0]
        if i >= WARMUP:
            floor.append(f)
        return ms
    res = pair(*alternate(n, ref, wren_then_floor))
    res["floor"] = summary(floor, "ms")
    res["ratio_floor"] = res["wren"]["median"] / res["floor"]["median"]
    return res


def seccomp_cache_dir(cd):
    """The wren shim's on-disk filter cache for this containerd's namespace
    (runtime/src/seccomp/cache.rs: `<state_root>/@seccomp-cache`)."""
    return os.path.join("/run/containerd/wren", cd.namespace, "@seccomp-cache")


def ctr_run_rm_seccomp(cd, n):
    """`ctr run --rm --seccomp` of /bin/true (containerd's default profile):
    runc shim vs wren with a cold on-disk cache (emptied before each run) vs
    wren warm (cache kept); plus wren warm without the profile, so the
    seccomp cost per create is the warm difference in ms."""
    import shutil
    seq = itertools.count()

    def one(runtime, tag, extra=("--seccomp",), cold=False):
        def go(i):
            if cold:
                shutil.rmtree(seccomp_cache_dir(cd), ignore_errors=True)
            return retried("ctr_run_rm_seccomp", runtime)(lambda j: procs.run(
                cd.run_rm_cmd(runtime, IMAGE, f"rs-{tag}-{next(seq)}", "/bin/true", extra=extra))[0])(i)
        return go
    ref, cold, warm, plain = [], [], [], []
    for i in range(n + WARMUP):
        x = one(RUNC, "r")(i)
        c = one(WREN, "c", cold=True)(i)
        w = one(WREN, "w")(i)
        p = one(WREN, "p", extra=())(i)
        if i >= WARMUP:
            ref.append(x)
            cold.append(c)
            warm.append(w)
            plain.append(p)
    res = {"cold": pair(ref, cold), "warm": pair(ref, warm)}
    res["seccomp_cost_warm_ms"] = summary(warm, "ms")["median"] - summary(plain, "ms")["median"]
    res["wren_no_seccomp"] = summary(plain, "ms")
    res["ratio"] = res["warm"]["ratio"]
    return res


def start_storm(cd, total=100, parallel=8, rounds=3):
    """`total` `ctr run -d` of a sleeping busybox, `parallel` at a time:
    total wall time per round, runc shim and wren alternating round by
    round (which goes first alternates too), each round cleaned up before
    the next. One round is a single sample of a CPU-bound burst and moved
    by 30 % between runs, so the figure is the median of `rounds` and the
    report shows the per-round ratios."""
    seq = itertools.count()

    def storm(runtime, tag):
        def one(i):
            cd.run_detached(runtime, IMAGE, f"st-{tag}-{next(seq)}", "sleep", "1000000")
        try:
            t = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
                list(pool.map(one, range(total)))
            return (time.perf_counter() - t) * 1000.0
        finally:
            cd.remove_all(parallel)
    ref, wren = [], []
    for r in range(rounds):
        if r % 2 == 0:
            ref.append(storm(RUNC, "r"))
            wren.append(storm(WREN, "w"))
        else:
            wren.append(storm(WREN, "w"))
            ref.append(storm(RUNC, "r"))
        print(f"  storm round {r + 1}: runc {ref[-1]:.0f} ms, wren {wren[-1]:.0f} ms, "
              f"{wren[-1] / ref[-1]:.2f}×", flush=True)
    res = pair(ref, wren)
    res.update(containers=total, parallel=parallel,
               round_ratios=[w / r for r, w in zip(ref, wren)])
    return res


def floor_cmd(bundle):
    """The kernel's own cost: unshare of the bundle's namespaces + exec of
    /bin/true in its rootfs."""
    return ["unshare", "--mount", "--pid", "--fork", "--ipc", "--uts", "--net", "--cgroup",
            "chroot", os.path.join(bundle, "rootfs"), "/bin/true"]
