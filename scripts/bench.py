#!/usr/bin/env python3
"""Side-by-side benchmarks of wren against runc (the reference).

Every figure alternates reference and wren run by run, so machine noise
hits both alike; the report gives medians, spread and the ratio, and says
why a figure could not be measured instead of leaving it out.
"""
import argparse, json, os, shutil, statistics, subprocess, tempfile, time

def timed(cmd):
    t = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.decode().strip()}")
    return dt * 1000.0

def summary(xs):
    xs = sorted(xs)
    return {"median_ms": statistics.median(xs), "p10_ms": xs[len(xs) // 10], "p90_ms": xs[(len(xs) * 9) // 10], "n": len(xs)}

def bench_run(args, root_w, root_r):
    ref, wren = [], []
    for i in range(args.n + 2):
        a = timed(["runc", "--root", root_r, "run", "--bundle", args.bundle, f"bench-r-{os.getpid()}-{i}"])
        b = timed([args.wren_oci, "--root", root_w, "run", "--bundle", args.bundle, f"bench-w-{os.getpid()}-{i}"])
        if i >= 2:  # the first runs warm caches
            ref.append(a); wren.append(b)
    return summary(ref), summary(wren)

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=30)
    p.add_argument("--wren-oci", required=True)
    p.add_argument("--bundle", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    results, rows = {}, []
    root_w = tempfile.mkdtemp(prefix="wren-bench-")
    root_r = tempfile.mkdtemp(prefix="runc-bench-")
    try:
        if shutil.which("runc") is None:
            rows.append(("`wren-oci run` vs `runc run` of /bin/true", None, None, "runc is not installed"))
        else:
            try:
                ref, wren = bench_run(args, root_w, root_r)
                results["runtime_run_true"] = {"reference": ref, "wren": wren, "ratio": wren["median_ms"] / ref["median_ms"], "target": 0.25}
                rows.append(("`wren-oci run` vs `runc run` of /bin/true", ref, wren, None))
            except RuntimeError as e:
                rows.append(("`wren-oci run` vs `runc run` of /bin/true", None, None, str(e)))
    finally:
        shutil.rmtree(root_w, ignore_errors=True)
        shutil.rmtree(root_r, ignore_errors=True)
    uname = os.uname()
    lines = [f"# wren benchmarks", "", f"Machine: {uname.sysname} {uname.release}, {os.cpu_count()} CPUs; N={args.n} alternating runs per side.", "",
             "| figure | reference median (p10–p90) | wren median (p10–p90) | ratio | target | met |",
             "|---|---|---|---|---|---|"]
    for name, ref, wren, why in rows:
        if why:
            lines.append(f"| {name} | not measured: {why} | | | | |")
            continue
        ratio = wren["median_ms"] / ref["median_ms"]
        target = 0.25
        lines.append(f"| {name} | {ref['median_ms']:.1f} ms ({ref['p10_ms']:.1f}–{ref['p90_ms']:.1f}) | "
                     f"{wren['median_ms']:.1f} ms ({wren['p10_ms']:.1f}–{wren['p90_ms']:.1f}) | {ratio:.2f}× | ≤ {target}× | {'yes' if ratio <= target else 'no'} |")
    report = "\n".join(lines) + "\n"
    open(os.path.join(args.out, "report.md"), "w").write(report)
    json.dump(results, open(os.path.join(args.out, "results.json"), "w"), indent=2)
    print(report)

if __name__ == "__main__":
    main()
