"""The `checkpoint` figure: `checkpoint` and `restore --detach` of one
container, wren-oci against runc, both in the Debian sid tree (its criu
4.2 runs on this kernel, the host's may not; its runc is the reference),
for an idle busybox container and one holding 256 MiB of touched anonymous
memory. Runs alternate runc and wren (which goes first alternates too).

Each command's time is split in two: CRIU's own (the last relative
timestamp of its dump.log / restore.log, log level 4 for both runtimes)
and the rest, the runtime's overhead around it (starting criu, the RPC,
cgroup, state and descriptors files).

The whole loop runs in one shell inside the tree's mount namespace
(entered once, as the tests do), timing each command with `date +%s%N`;
that shell's fork/exec cost is the same for both sides.
"""

import json
import os
import shutil
import subprocess
import tempfile

import procs
import stats

TREE = os.path.join(os.environ.get("WREN_TREES", "/var/tmp/wren-trees"), "sid")

ENTER = r"""T=$1; shift
mount --bind "$T" "$T"; mount --make-private "$T"
mount -t proc proc "$T/proc"
mount --rbind /sys "$T/sys"; mount --make-rslave "$T/sys"
mount --rbind /dev "$T/dev"; mount --make-rslave "$T/dev"
mkdir -p "$T/run/criu"; mount -t tmpfs tmpfs "$T/run/criu"
mkdir -p "$T/.oldroot"
cd "$T"; pivot_root . .oldroot; cd /
umount -l /.oldroot
exec "$@"
"""

# Touches 256 MiB (every page written), says so, then sleeps; its stdio
# is the container's own /dev/null so runc's dump needs no external files.
HOLD_C = r"""
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(void) {
    int n = open("/dev/null", O_RDWR);
    dup2(n, 0); dup2(n, 1); dup2(n, 2);
    size_t size = 256u << 20;
    char *p = malloc(size);
    if (!p) return 1;
    for (size_t i = 0; i < size; i += 4096) p[i] = (char)i | 1;
    int f = open("/tmp/ready", O_CREAT | O_WRONLY, 0644);
    close(f);
    for (;;) pause();
}
"""

LOOP = r"""set -u
D=$1; N=$2
cd "$D"
ms() { echo $(( ($2 - $1) / 1000000 )); }
last() { tail -1 "$1" 2>/dev/null | sed -n 's/^(\([ 0-9.]*\)).*/\1/p' | tr -d ' '; }
i=0
while [ $i -lt "$N" ]; do
  for case in idle mem; do
    [ -f "$D/b-$case/config.json" ] || continue
    if [ $((i % 2)) = 0 ]; then order="runc wren"; else order="wren runc"; fi
    for rt in $order; do
      if [ $rt = runc ]; then R="runc --root $D/runc-root"; else R="$D/wren-oci --root $D/wren-root"; fi
      id=ck-$case-$rt-$i
      rm -f "$D/b-$case/rootfs/tmp/ready"
      $R run -d --bundle "$D/b-$case" $id </dev/null >/dev/null 2>"$D/err" || { echo "ERR $rt $case run: $(cat $D/err)"; continue; }
      k=0; while [ ! -f "$D/b-$case/rootfs/tmp/ready" ] && [ $k -lt 200 ]; do sleep 0.05; k=$((k+1)); done
      sleep 0.2
      img=$D/img-$rt; rm -rf "$img"
      a=$(date +%s%N); $R checkpoint --image-path "$img" $id >/dev/null 2>"$D/err"; rc=$?; b=$(date +%s%N)
      if [ $rc != 0 ]; then echo "ERR $rt $case checkpoint: $(cat $D/err)"; $R delete -f $id >/dev/null 2>&1; continue; fi
      cd_=$(last "$img/dump.log")
      a2=$(date +%s%N); $R restore -d --image-path "$img" --bundle "$D/b-$case" $id </dev/null >/dev/null 2>"$D/err"; rc=$?; b2=$(date +%s%N)
      if [ $rc != 0 ]; then echo "ERR $rt $case restore: $(cat $D/err)"; $R delete -f $id >/dev/null 2>&1; continue; fi
      rs_=$(last "$img/restore.log")
      $R delete -f $id >/dev/null 2>&1
      echo "OK $rt $case $(ms $a $b) $cd_ $(ms $a2 $b2) $rs_"
    done
  done
  i=$((i+1))
done
"""


def _bundle(d, name, args):
    b = os.path.join(d, name)
    rootfs = os.path.join(b, "rootfs")
    for sub in ("bin", "proc", "sys", "dev", "tmp", "etc"):
        os.makedirs(os.path.join(rootfs, sub), exist_ok=True)
    shutil.copy("/bin/busybox", os.path.join(rootfs, "bin/busybox"))
    for a in ("sh", "sleep", "touch"):
        os.symlink("busybox", os.path.join(rootfs, "bin", a))
    procs.run(["chroot", TREE, "runc", "spec", "--bundle", "/" + os.path.relpath(b, TREE)])
    path = os.path.join(b, "config.json")
    with open(path) as f:
        spec = json.load(f)
    spec["process"]["terminal"] = False
    spec["process"]["args"] = args
    spec["root"]["readonly"] = False
    with open(path, "w") as f:
        json.dump(spec, f)
    return rootfs


def measure(wren_oci, n, work):
    """The figure: per case (idle, mem) and side, checkpoint and restore
    times with CRIU's share; raises when it cannot run here."""
    for p in ("usr/sbin/criu", "usr/sbin/runc", ".complete"):
        if not os.path.exists(os.path.join(TREE, p)):
            raise OSError(f"the sid tree ({TREE}) lacks {p}: scripts/debian-tree.sh sid")
    d = tempfile.mkdtemp(prefix="wren-bench-ck-", dir=os.path.join(TREE, "tmp"))
    try:
        inner = "/" + os.path.relpath(d, TREE)
        shutil.copy(wren_oci, os.path.join(d, "wren-oci"))
        _bundle(d, "b-idle", ["sh", "-c", "exec </dev/null >/dev/null 2>&1; touch /tmp/ready; "
                                         "while :; do sleep 1; done"])
        cases = ["idle"]
        if shutil.which("gcc"):
            rootfs = _bundle(d, "b-mem", ["/hold"])
            src = os.path.join(d, "hold.c")
            with open(src, "w") as f:
                f.write(HOLD_C)
            procs.run(["gcc", "-static", "-O2", "-o", os.path.join(rootfs, "hold"), src])
            cases.append("mem")
        with open(os.path.join(d, "loop.sh"), "w") as f:
            f.write(LOOP)
        env = dict(os.environ, PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        out = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-ec", ENTER, "sh",
             TREE, "/bin/sh", inner + "/loop.sh", inner, str(n)],
            env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60 * max(n, 5))
        procs.reap()
        samples = {}
        errors = []
        for line in out.stdout.splitlines():
            w = line.split()
            if w[:1] == ["ERR"]:
                errors.append(line)
            if w[:1] != ["OK"] or len(w) != 7 or "" in w:
                continue
            _, rt, case, ck, ck_criu, rs, rs_criu = w
            s = samples.setdefault(case, {}).setdefault(rt, {k: [] for k in (
                "checkpoint", "checkpoint_criu", "checkpoint_rest",
                "restore", "restore_criu", "restore_rest")})
            for op, total, criu in (("checkpoint", ck, ck_criu), ("restore", rs, rs_criu)):
                t, c = float(total), float(criu) * 1000.0
                s[op].append(t)
                s[op + "_criu"].append(c)
                s[op + "_rest"].append(t - c)
        if not samples:
            raise procs.Failed("no run succeeded: " + "; ".join(errors[:3] or [out.stderr.strip()[-500:]]))
        fig = {"cases": {}, "errors": errors[:10], "runs": n}
        for case in cases:
            per = samples.get(case, {})
            if "runc" not in per or "wren" not in per:
                fig["cases"][case] = {"not_measured": "; ".join(e for e in errors if f" {case} " in e)[:500]}
                continue
            c = {rt: {k: stats.summary(v) for k, v in per[rt].items()} for rt in ("runc", "wren")}
            c["ratio_checkpoint"] = stats.ratio(c["wren"]["checkpoint"], c["runc"]["checkpoint"])
            c["ratio_restore"] = stats.ratio(c["wren"]["restore"], c["runc"]["restore"])
            fig["cases"][case] = c
        first = fig["cases"].get("idle", {})
        if "ratio_checkpoint" in first:
            fig["ratio"] = first["ratio_checkpoint"]
        return fig
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _cell(s):
    return f"{s['median']:.0f} ({s['p10']:.0f}–{s['p90']:.0f})"


def section(fig):
    """The report's lines for the figure (none when it was not asked for)."""
    if fig is None:
        return []
    out = ["## Checkpoint and restore (CRIU, sid tree)", ""]
    if "not_measured" in fig:
        return out + [f"Not measured: {fig['not_measured']}", ""]
    out += ["`checkpoint` then `restore --detach` of one container, runc 1.3.6 and wren-oci in the "
            "sid tree's mount namespace with its criu, alternating; ms, median (p10–p90). "
            "\"criu\" is CRIU's own time from its log, \"rest\" the runtime's overhead around it.", ""]
    names = {"idle": "idle busybox", "mem": "256 MiB touched anonymous memory"}
    rows = []
    for case, c in fig["cases"].items():
        if "not_measured" in c:
            rows.append((names.get(case, case), "not measured", c["not_measured"], "", "", "", ""))
            continue
        for op in ("checkpoint", "restore"):
            rows.append((f"{names.get(case, case)}: {op}", _cell(c["runc"][op]), _cell(c["runc"][op + "_criu"]),
                         _cell(c["runc"][op + "_rest"]), _cell(c["wren"][op]), _cell(c["wren"][op + "_criu"]),
                         _cell(c["wren"][op + "_rest"])))
    header = ["case", "runc total", "runc criu", "runc rest", "wren total", "wren criu", "wren rest"]
    out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    if fig.get("errors"):
        out += ["", "Failed runs: " + "; ".join(fig["errors"])[:800]]
    return out + [""]


def lines(fig):
    """A short text summary for the console."""
    return section(fig)
