"""Where the time goes in one wren container start.

wren's processes append CLOCK_MONOTONIC marks to the file named by
`WREN_TIMING` (runtime/src/timing.rs: the shim's `start` and daemon, the
runtime library, the container init). The bench adds its own marks around
the command it times (`ctr.begin`/`ctr.end`, `oci.begin`/`oci.end`) with
Python's `time.monotonic_ns()`, the same clock. A run's phases are the gaps
between consecutive milestones, which are causally ordered (each happens
after the one before it), so a phase is never negative.
"""

import json
import os
import time

import procs
from containerd import WREN
from image import IMAGE
from stats import summary

# Milestones of `ctr run --rm` through the wren shim, in causal order.
CTR_MILESTONES = [
    "ctr.begin", "shim.start", "shim.serving", "rpc.create", "runtime.create", "runtime.spec", "runtime.seccomp",
    "runtime.spawn", "init.stage1", "init.config", "init.cgroups", "init.namespaces", "init.stage2",
    "init.mounts", "init.hooks", "init.pivot", "init.paths", "init.ready",
    "runtime.created", "rpc.created", "rpc.start", "init.released", "init.execve",
    "shim.exited", "rpc.delete", "runtime.delete", "runtime.deleted", "rpc.deleted",
    "rpc.shutdown", "rpc.shutdown.done", "ctr.end",
]
# Milestones of `wren-oci run` (no containerd, no shim).
OCI_MILESTONES = [
    "oci.begin", "runtime.create", "runtime.spec", "runtime.seccomp", "runtime.spawn", "init.stage1", "init.config",
    "init.cgroups", "init.namespaces", "init.stage2", "init.mounts", "init.hooks", "init.pivot",
    "init.paths", "init.ready", "runtime.created", "runtime.start", "init.released",
    "init.execve", "runtime.delete", "runtime.deleted", "oci.end",
]
# Milestones of `wren run --rm` through wrend and its shim (no containerd).
WREND_MILESTONES = [
    "wren.begin", "wrend.create", "wrend.shim", "shim.start", "shim.serving", "wrend.connected",
    "rpc.create", "runtime.create", "runtime.spec", "runtime.seccomp", "runtime.spawn",
    "init.stage1", "init.config", "init.cgroups",
    "init.namespaces", "init.stage2", "init.mounts", "init.hooks", "init.pivot", "init.paths",
    "init.ready", "runtime.created", "rpc.created", "wrend.created", "wrend.start", "rpc.start",
    "init.released", "init.execve", "shim.exited", "wrend.exit", "wrend.delete", "rpc.delete",
    "runtime.delete", "runtime.deleted", "rpc.deleted", "rpc.shutdown", "rpc.shutdown.done",
    "wrend.departed", "wren.end",
]
# Marks whose place depends on the spec: seccomp loads before `ready`, or
# after the start when process.noNewPrivileges is set. Put in by time.
FLOATING = ["init.seccomp"]

LABELS = {
    ("ctr.begin", "shim.start"): "ctr + containerd: container record, snapshot, exec `shim start`",
    ("shim.start", "shim.serving"): "shim spawn: `start` execs the daemon, which sets up and serves",
    ("shim.serving", "rpc.create"): "containerd connects and sends Create",
    ("rpc.create", "runtime.create"): "shim Create: rootfs mount, stdio, options",
    ("runtime.create", "runtime.spawn"): "runtime: load + validate spec, seccomp compile, state dir, cgroup2 dir",
    ("runtime.create", "runtime.spec"): "runtime: load + validate spec, rootfs, namespaces",
    ("runtime.spec", "runtime.seccomp"): "seccomp filter: memory/disk cache lookup, or libseccomp compile on a miss",
    ("runtime.seccomp", "runtime.spawn"): "runtime: capabilities, state dir, cgroup2 dir",
    ("oci.begin", "runtime.create"): "wren-oci process start, argument parsing",
    ("runtime.spawn", "init.stage1"): "clone3 + execveat of the sealed init binary (caller: v1 cgroup dirs meanwhile)",
    ("init.stage1", "init.config"): "init stage 1: thread check, wait for, receive and decode its config",
    ("init.config", "init.cgroups"): "join the container's v1 cgroups (writes to `tasks`)",
    ("init.cgroups", "init.namespaces"): "rlimits, join and unshare namespaces",
    ("init.config", "init.namespaces"): "join cgroups, rlimits, join and unshare namespaces",
    ("init.namespaces", "init.stage2"): "clone3 of stage 2 (pid 1 of the new pid namespace)",
    ("init.stage2", "init.mounts"): "mounts and /dev (caller: cgroup resources meanwhile)",
    ("init.mounts", "init.hooks"): "hooks: a round trip for prestart/createRuntime, createContainer (none in the spec: skipped)",
    ("init.hooks", "init.pivot"): "pivot_root",
    ("init.pivot", "init.paths"): "console, read-only and masked paths, hostname, sysctl",
    ("init.paths", "init.ready"): "caps, user, cwd, executable lookup",
    ("init.paths", "init.seccomp"): "seccomp filter load (before caps are dropped)",
    ("init.seccomp", "init.ready"): "caps, user, cwd, executable lookup",
    ("init.ready", "runtime.created"): "caller: ready received, state file written",
    ("runtime.created", "rpc.created"): "shim after create: bookkeeping, TaskCreate event",
    ("runtime.created", "runtime.start"): "wren-oci between create and start",
    ("rpc.created", "rpc.start"): "containerd between Create and Start",
    ("rpc.start", "init.released"): "Start: open the exec fifo, init released",
    ("runtime.start", "init.released"): "start: open the exec fifo, init released",
    ("init.released", "init.execve"): "startContainer hooks, close fds, execve",
    ("init.released", "init.seccomp"): "seccomp filter load (noNewPrivileges: after start)",
    ("init.seccomp", "init.execve"): "close fds, execve",
    ("init.execve", "shim.exited"): "/bin/true runs and exits; the shim sees its pidfd",
    ("shim.exited", "rpc.delete"): "TaskExit event, Wait reply, ctr asks for the delete",
    ("rpc.delete", "runtime.delete"): "shim Delete before the runtime: exit status, stdio",
    ("runtime.delete", "runtime.deleted"): "runtime delete: cgroups, state dir",
    ("runtime.deleted", "rpc.deleted"): "shim Delete after the runtime: rootfs unmount, TaskDelete event",
    ("rpc.deleted", "rpc.shutdown"): "containerd between Delete and Shutdown",
    ("rpc.shutdown", "rpc.shutdown.done"): "shim Shutdown",
    ("rpc.shutdown.done", "ctr.end"): "containerd: bundle, container and snapshot removal; ctr exits",
    ("shim.exited", "ctr.end"): "exit event, Wait reply, task + container delete, shim exit, ctr exit",
    ("init.execve", "runtime.delete"): "/bin/true runs and exits; wren-oci sees the exit",
    ("runtime.deleted", "oci.end"): "wren-oci exits",
    ("init.execve", "oci.end"): "/bin/true runs and exits; wren-oci waits, deletes, exits",
}

# Phases of the wrend path: wrend (not containerd) is the shim's client.
WREND_LABELS = {**LABELS,
    ("wren.begin", "wrend.create"): "wren CLI start, connect, Create request",
    ("wrend.create", "wrend.shim"): "wrend: validate, write spec and record, stdio fifos",
    ("wrend.shim", "shim.start"): "wrend forks and execs `shim start`",
    ("shim.serving", "wrend.connected"): "`start` returns the address; wrend connects, Connect call",
    ("wrend.connected", "rpc.create"): "wrend sends Create",
    ("rpc.created", "wrend.created"): "Create reply reaches wrend; record saved",
    ("wrend.created", "wrend.start"): "Create reply reaches wren; wren asks to Start",
    ("wrend.start", "rpc.start"): "wrend sends Start",
    ("shim.exited", "wrend.exit"): "TaskExit event reaches wrend",
    ("wrend.exit", "wrend.delete"): "Wait reply reaches wren; wren asks to delete",
    ("wrend.delete", "rpc.delete"): "wrend sends Delete",
    ("rpc.deleted", "rpc.shutdown"): "wrend sends Shutdown",
    ("rpc.shutdown.done", "wrend.departed"): "shim exits (loggers, event flush); wrend sees its pidfd",
    ("wrend.departed", "wren.end"): "Delete reply reaches wren; wren exits",
}


def mark(path, cid, ev):
    line = json.dumps({"t": time.monotonic_ns(), "pid": os.getpid(), "id": cid, "ev": ev}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def read_marks(path):
    """{container id: {event: first time in ns}}."""
    runs = {}
    with open(path) as f:
        for line in f:
            try:
                m = json.loads(line)
            except ValueError:
                continue
            runs.setdefault(m["id"], {}).setdefault(m["ev"], m["t"])
    return runs


def chain(events, milestones):
    """The run's milestones present, in order, with floating marks put in by
    time: [(event, t)]."""
    present = [(ev, events[ev]) for ev in milestones if ev in events]
    for ev in FLOATING:
        if ev in events:
            t = events[ev]
            idx = next((i for i, (_, u) in enumerate(present) if u > t), len(present))
            present.insert(idx, (ev, t))
    return present


def summarise(runs, milestones, labels=None):
    """Median and spread of every phase over `runs` (dicts of events)."""
    phases, order, totals, backwards = {}, [], [], []
    for events in runs:
        c = chain(events, milestones)
        if len(c) < 2:
            continue
        totals.append((c[-1][1] - c[0][1]) / 1e6)
        for (a, ta), (b, tb) in zip(c, c[1:]):
            if (a, b) not in phases:
                phases[(a, b)] = []
                order.append((a, b))
            phases[(a, b)].append((tb - ta) / 1e6)
            if tb < ta:
                backwards.append(f"{a} → {b}")
    if not totals:
        raise procs.Failed("no timing marks were written (is WREN_TIMING reaching the shim?)")
    total = summary(totals)
    out = []
    for a, b in order:
        s = summary(phases[(a, b)])
        out.append({"from": a, "to": b, "label": (labels or LABELS).get((a, b), f"{a} → {b}"),
                    "ms": s, "share": s["median"] / total["median"] if total["median"] else 0})
    # A milestone list that is not causally ordered shows up here.
    return {"runs": len(totals), "total": total, "phases": out, "backwards": sorted(set(backwards))}


def ctr_runs(cd, timing_path, n, extra=(), tag="bd"):
    """n (+1 warm-up) `ctr run --rm` of /bin/true through wren, marked."""
    ids = []
    for i in range(n + 1):
        cid = f"{tag}-{i}"
        mark(timing_path, cid, "ctr.begin")
        procs.run(cd.run_rm_cmd(WREN, IMAGE, cid, "/bin/true", extra=extra),
                  after=lambda: mark(timing_path, cid, "ctr.end"))
        if i > 0:
            ids.append(cid)
    marks = read_marks(timing_path)
    return summarise([marks[c] for c in ids if c in marks], CTR_MILESTONES)


def seccomp_own(cd, timing_path, n):
    """wren's own seccomp cost per create, from the timing marks: the shim's
    Create and Start (rpc.create → rpc.created plus rpc.start →
    rpc.started, the part of a `ctr run` wren answers for) with ctr's
    `--seccomp` minus without, n runs of each alternating after two
    warm-up pairs, warm filter cache. The difference of two whole `ctr run`
    medians (the seccomp row) cannot resolve tenths of a millisecond:
    ctr and containerd add ~60 ms with a spread of ±10 ms."""
    ids = {True: [], False: []}
    for i in range(n + 2):
        for sec in (True, False):
            cid = f"so-{'s' if sec else 'n'}-{i}"
            procs.run(cd.run_rm_cmd(WREN, IMAGE, cid, "/bin/true", extra=("--seccomp",) if sec else ()))
            if i >= 2:
                ids[sec].append(cid)
    marks = read_marks(timing_path)
    need = ("rpc.create", "rpc.created", "rpc.start", "rpc.started")

    def own(cid):
        ev = marks.get(cid, {})
        if not all(k in ev for k in need):
            return None
        return ((ev["rpc.created"] - ev["rpc.create"]) + (ev["rpc.started"] - ev["rpc.start"])) / 1e6
    with_, without = ([x for x in map(own, ids[sec]) if x is not None] for sec in (True, False))
    if not with_ or not without:
        raise procs.Failed("no rpc.create/rpc.started marks were written (is WREN_TIMING reaching the shim?)")
    w, wo = summary(with_), summary(without)
    return {"with": w, "without": wo, "cost_ms": w["median"] - wo["median"]}


def oci_runs(wren_oci, bundle, workdir, timing_path, n):
    """n (+1 warm-up) `wren-oci run` of /bin/true, marked."""
    env = dict(os.environ, WREN_TIMING=timing_path)
    root = os.path.join(workdir, "timing-root")
    ids = []
    for i in range(n + 1):
        cid = f"bench-t-{os.getpid()}-{i}"
        mark(timing_path, cid, "oci.begin")
        procs.run([wren_oci, "--root", root, "run", "--bundle", bundle, cid], env=env,
                  after=lambda: mark(timing_path, cid, "oci.end"))
        if i > 0:
            ids.append(cid)
    marks = read_marks(timing_path)
    return summarise([marks[c] for c in ids if c in marks], OCI_MILESTONES)


def wrend_runs(w, bundle, timing_path, n):
    """n (+1 warm-up) `wren run --rm` of /bin/true through a wrend started
    with WREN_TIMING (its shims inherit it), marked."""
    env = dict(os.environ, WREN_TIMING=timing_path)
    ids = []
    for i in range(n + 1):
        cid = f"bench-wt-{os.getpid()}-{i}"
        mark(timing_path, cid, "wren.begin")
        procs.run(w.wren_cmd("run", "--rm", "--bundle", bundle, cid), env=env,
                  after=lambda: mark(timing_path, cid, "wren.end"))
        if i > 0:
            ids.append(cid)
    marks = read_marks(timing_path)
    return summarise([marks[c] for c in ids if c in marks], WREND_MILESTONES, WREND_LABELS)
