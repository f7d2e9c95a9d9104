"""`make bench`: wren against the reference (runc + containerd-shim-runc-v2),
side by side in one run, reported as medians, spread and ratios.

    python3 scripts/bench --wren-oci target/release/wren-oci \\
        --shim target/release/containerd-shim-wren-v2 --bundle B --out target/bench

Starts its own containerd (own root, state, sockets, namespace) under a
temp dir in --out, imports a locally built busybox image, measures, and
removes everything it started, also on failure or Ctrl-C. A figure that
cannot be measured is reported with the reason. Never fails on a number.
"""

import argparse
import datetime
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import breakdown  # noqa: E402
import checkpoint  # noqa: E402
import cri  # noqa: E402
import figures  # noqa: E402
import image  # noqa: E402
import images  # noqa: E402
import network  # noqa: E402
import procs  # noqa: E402
import report  # noqa: E402
import standalone  # noqa: E402
from containerd import Containerd  # noqa: E402

ALL = ["ctr_run_rm", "ctr_exec", "memory", "throughput", "seccomp", "storm", "density", "cri", "runtime_alone",
       "standalone", "images", "network", "breakdown", "checkpoint"]


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=30, help="runs per side for the timed figures (>= 30)")
    p.add_argument("--levels", default="1,10,50", help="idle container counts for the memory figure")
    p.add_argument("--throughput", type=int, default=50, help="containers per throughput round")
    p.add_argument("--parallel", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3, help="throughput rounds per side")
    p.add_argument("--storm", type=int, default=100, help="containers in the start storm")
    p.add_argument("--storm-parallel", type=int, default=8)
    p.add_argument("--storm-rounds", type=int, default=3, help="start storm rounds per side")
    p.add_argument("--density", type=int, default=200, help="idle containers for the density figure")
    p.add_argument("--breakdown-n", type=int, default=10)
    p.add_argument("--only", default=",".join(ALL), help="comma-separated subset of " + ",".join(ALL))
    p.add_argument("--wren-oci", required=True)
    p.add_argument("--shim", required=True)
    p.add_argument("--wrend", default="")
    p.add_argument("--wren", default="")
    p.add_argument("--cri-bench", default="", help="the wren-cri-bench binary (CRI figures)")
    p.add_argument("--cri-pods", type=int, default=20, help="pods per CRI batch")
    p.add_argument("--bundle", required=True, help="an OCI bundle running /bin/true")
    p.add_argument("--out", required=True)
    return p.parse_args()


def missing(*cmds):
    """Why containerd figures cannot run here, or None."""
    for c in cmds:
        if shutil.which(c) is None:
            return f"{c} is not installed"
    if not os.path.exists(image.BUSYBOX):
        return "busybox-static is not installed"
    return None


def measure(figs, key, fn, *a, **kw):
    """figs[key] = fn(...), or the reason it could not be measured."""
    print(f"bench: {key} …", flush=True)
    t = time.time()
    try:
        figs[key] = fn(*a, **kw)
    except Exception as e:  # one figure's failure must not stop the others
        if not isinstance(e, (procs.Failed, OSError)):
            traceback.print_exc()
        text = str(e).strip()
        figs[key] = {"not_measured": text or repr(e)}
        print(f"bench: {key}: not measured: {figs[key]['not_measured']}", flush=True)
    else:
        r = figs[key].get("ratio")
        print(f"bench: {key} done in {time.time() - t:.0f}s" + (f", ratio {r:.2f}" if r else ""), flush=True)


def not_measured(figs, keys, why):
    for k in keys:
        figs.setdefault(k, {"not_measured": why})


def on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def containerd_figures(args, work, figs, only, levels, applets):
    why = missing("containerd", "ctr", "runc", "containerd-shim-runc-v2")
    keys = [k for k in ("ctr_run_rm", "ctr_exec", "memory", "throughput", "seccomp", "storm", "density")
            if k in only]
    if why:
        return not_measured(figs, keys, why)
    if not keys:
        return
    cd = None
    try:
        cd = Containerd(os.path.join(work, "containerd"), f"wren-bench-{os.getpid()}", args.shim)
        cd.import_image(image.build(os.path.join(work, "image"), applets))
        if "ctr_run_rm" in only:
            measure(figs, "ctr_run_rm", figures.ctr_run_rm, cd, args.n)
        if "ctr_exec" in only:
            measure(figs, "ctr_exec", figures.ctr_exec, cd, args.n)
        if "memory" in only:
            measure(figs, "memory", figures.memory, cd, levels)
        if "throughput" in only:
            measure(figs, "throughput", figures.throughput, cd, args.throughput, args.parallel, args.rounds)
        if "seccomp" in only:
            measure(figs, "seccomp", figures.ctr_run_rm_seccomp, cd, args.n)
        if "storm" in only:
            measure(figs, "storm", figures.start_storm, cd, args.storm, args.storm_parallel,
                    args.storm_rounds)
        if "density" in only:
            measure(figs, "density", figures.memory, cd, [args.density])
    except procs.Failed as e:
        not_measured(figs, keys, f"private containerd: {str(e).strip()}")
    finally:
        if cd:
            cd.close()


def standalone_figures(args, work, figs, levels):
    if not standalone.built(args):
        return not_measured(figs, ["standalone_run_rm", "standalone_memory"], "wrend not built")
    if shutil.which("runc") is None:
        figs["standalone_run_rm"] = {"not_measured": "runc is not installed"}
    try:
        with standalone.running(args) as w:
            if "standalone_run_rm" not in figs:
                measure(figs, "standalone_run_rm", standalone.run_rm, w, args.bundle, args.n)
            measure(figs, "standalone_memory", standalone.memory, w,
                    os.path.join(args.bundle, "rootfs"), levels)
        # Idle containers with a health check every 2 s: checks are timers
        # in wrend's loop, so wrend must stay within its budget. A fresh
        # wrend: the one above keeps its heap's high-water mark.
        with standalone.running(args) as w:
            measure(figs, "standalone_memory_health", standalone.memory, w,
                    os.path.join(args.bundle, "rootfs"), levels, 3.0,
                    ("--health-cmd", "true", "--health-interval", "2s"))
    except procs.Failed as e:
        not_measured(figs, ["standalone_run_rm", "standalone_memory", "standalone_memory_health"],
                     f"wrend: {str(e).strip()}")


def breakdown_figures(args, work, figs, applets):
    timing = os.path.join(work, "timing.jsonl")
    why = missing("containerd", "ctr")
    if why:
        not_measured(figs, ["breakdown_ctr", "breakdown_ctr_seccomp", "seccomp_own"], why)
    else:
        cd = None
        try:
            cd = Containerd(os.path.join(work, "containerd-timing"), f"wren-bench-t-{os.getpid()}",
                            args.shim, env_extra={"WREN_TIMING": timing}, debug=True)
            cd.import_image(image.build(os.path.join(work, "image-t"), applets))
            measure(figs, "breakdown_ctr", breakdown.ctr_runs, cd, timing, args.breakdown_n)
            measure(figs, "breakdown_ctr_seccomp", breakdown.ctr_runs, cd, timing, args.breakdown_n,
                    extra=("--seccomp",), tag="bds")
            measure(figs, "seccomp_own", breakdown.seccomp_own, cd, timing, max(args.breakdown_n, 20))
        except procs.Failed as e:
            not_measured(figs, ["breakdown_ctr", "breakdown_ctr_seccomp", "seccomp_own"],
                         f"private containerd: {str(e).strip()}")
        finally:
            if cd:
                cd.close()
    measure(figs, "breakdown_oci", breakdown.oci_runs, args.wren_oci, args.bundle, work,
            os.path.join(work, "timing-oci.jsonl"), args.breakdown_n)
    if not standalone.built(args):
        return not_measured(figs, ["breakdown_wrend"], "wrend not built")
    timing_wrend = os.path.join(work, "timing-wrend.jsonl")
    try:
        with standalone.running(args, env=dict(os.environ, WREN_TIMING=timing_wrend),
                                prefix="wt-") as w:
            measure(figs, "breakdown_wrend", breakdown.wrend_runs, w, args.bundle, timing_wrend,
                    args.breakdown_n)
    except procs.Failed as e:
        not_measured(figs, ["breakdown_wrend"], f"wrend: {str(e).strip()}")


def main():
    args = parse()
    only = set(args.only.split(","))
    levels = [int(x) for x in args.levels.split(",")]
    if os.geteuid() != 0:
        print("bench: needs root (containers, mounts, cgroups)", file=sys.stderr)
        return 1
    procs.become_subreaper()
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    os.makedirs(args.out, exist_ok=True)
    args.out = os.path.abspath(args.out)
    args.bundle = os.path.abspath(args.bundle)
    work = tempfile.mkdtemp(prefix="run-", dir=args.out)
    applets = procs.run([image.BUSYBOX, "--list"])[1].split() if os.path.exists(image.BUSYBOX) else []
    figs = {}
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": report.machine(),
        "config": {"n": args.n, "warmup": figures.WARMUP, "levels": levels, "throughput": args.throughput,
                   "parallel": args.parallel, "rounds": args.rounds, "breakdown_n": args.breakdown_n},
        "figures": figs,
    }
    interrupted = False
    try:
        containerd_figures(args, work, figs, only, levels, applets)
        if "cri" in only:
            measure(figs, "cri", cri.cri_pods, args.cri_bench, args.shim, min(args.n, 20),
                    args.cri_pods, args.parallel)
        if "runtime_alone" in only:
            if shutil.which("runc") is None:
                figs["runtime_alone"] = {"not_measured": "runc is not installed"}
            else:
                measure(figs, "runtime_alone", figures.runtime_alone, args.wren_oci, args.bundle, work, args.n)
        if "standalone" in only:
            # The density figure's count too: wrend's RSS with that many idle containers.
            sl = sorted(set(levels + ([args.density] if "density" in only else [])))
            standalone_figures(args, work, figs, sl)
        if "images" in only:
            if not standalone.built(args):
                figs["images"] = {"not_measured": "wrend not built"}
            else:
                # Pulls of ~50 MB: fewer runs than the millisecond figures.
                measure(figs, "images", images.measure, args.wren, args.wrend, args.shim,
                        max(5, min(args.n, 10)))
                if "not_measured" not in figs["images"]:
                    print("\n".join(images.lines(figs["images"])), flush=True)
        if "network" in only:
            if not standalone.built(args):
                figs["network"] = {"not_measured": "wrend not built"}
            else:
                measure(figs, "network", network.measure, args.wren, args.wrend, args.shim,
                        max(5, min(args.n, 20)))
                if "not_measured" not in figs["network"]:
                    print("\n".join(network.lines(figs["network"])), flush=True)
        if "breakdown" in only:
            breakdown_figures(args, work, figs, applets)
        if "checkpoint" in only:
            # CRIU dumps and restores: fewer runs than the millisecond figures.
            measure(figs, "checkpoint", checkpoint.measure, args.wren_oci, max(5, min(args.n, 15)), work)
            print("\n".join(checkpoint.lines(figs["checkpoint"])), flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("bench: interrupted; cleaning up", file=sys.stderr, flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        procs.reap()
        left = [line.split(" ")[4] for line in open("/proc/self/mountinfo").read().splitlines()
                if line.split(" ")[4].startswith(work + "/")]
        if left:
            print(f"bench: mounts left under {work}, not removing it: {left}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if interrupted:
        return 130
    results["failures"] = figures.FAILURES
    text = report.write(args.out, results)
    print()
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
