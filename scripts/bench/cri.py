"""The CRI figures: Kubernetes-style pod starts through containerd's CRI
plugin, wren's runtime handler against runc's in the same containerd, under
each containerd of the matrix (the host's 1.6, trixie's 1.7, sid's 2.1).

The kubelet's calls are made by `wren-cri-bench` (tests/src/bin), a Rust
client on the Kubernetes CRI proto that reuses the tests' harness; it
prints raw samples as JSON, summarised here."""

import json
import os

import procs
from stats import ratio, summary


def cri_pods(binary, shim, n, pods=20, parallel=4, rounds=3):
    """Per containerd: pod start latency (sandbox + one RuntimeDefault app
    container) and the total time of `pods` pod starts `parallel` at a time."""
    if not binary or not os.path.exists(binary):
        raise procs.Failed("wren-cri-bench is not built (scripts/bench.sh builds it)")
    env = dict(os.environ, WREN_SHIM_BIN=shim)
    _, out, err = procs.run([binary, "--n", str(n), "--pods", str(pods), "--parallel", str(parallel),
                             "--rounds", str(rounds)], env=env, timeout=3600)
    try:
        doc = json.loads(out)
    except ValueError:
        raise procs.Failed(f"wren-cri-bench printed no JSON: {err[-2000:]}")
    suites = []
    for s in doc["suites"]:
        if "not_measured" in s:
            suites.append(s)
            continue
        p, b = s["pod_start"], s["batch"]
        r, w = summary(p["runc"]), summary(p["wren"])
        br, bw = summary(b["runc"]), summary(b["wren"])
        suites.append({
            "suite": s["suite"], "containerd": s["containerd"],
            "pod_start": {"reference": r, "wren": w, "ratio": ratio(w, r)},
            "batch": {"pods": b["pods"], "parallel": b["parallel"],
                      "reference": br, "wren": bw, "ratio": ratio(bw, br)},
        })
    return {"suites": suites}
