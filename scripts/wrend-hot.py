#!/usr/bin/env python3
"""Writes manager/wrend-hot.txt: the functions wrend runs in a typical life
(start, run/exec/stop/rm of containers, health checks, list, inspect, logs,
events), found by running an unstripped release wrend under valgrind's
callgrind. manager/build.rs turns the list into a linker script that puts
those functions together at the front of wrend's text, so the few pages
wrend executes are not scattered among the ~1 MB it never runs (the kernel
maps a file's text in folio-sized pieces: one hot function in a cold stretch
makes the whole stretch resident). See docs/ARCHITECTURE.md, "wrend's
resident text".

Names are stored without the legacy-mangling hash (`17h<16 hex>E`), which
changes with features and profile; C functions are stored as their libc.a
member (`libc.a:malloc.o`). A stale or incomplete list only costs memory, never correctness.

Usage: scripts/wrend-hot.py WREND WREN SHIM  (WREND: a release build with
strip=false). Run by `make wrend-hot`; needs root, valgrind, busybox-static.

glibc picks memcpy, strlen... variants for the CPU at run time (IFUNC), and
valgrind's virtual CPU is not the host's: every variant of a family seen
(`memmove-avx-unaligned-erms.o` -> `memmove-*.o`) is listed.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "manager", "wrend-hot.txt")
# The static C libraries wrend links: glibc and gcc's unwinder (the crt
# registers frame info at start).
ARCHIVES = ["/usr/lib/x86_64-linux-gnu/libc.a",
            subprocess.run(["gcc", "-print-file-name=libgcc_eh.a"], capture_output=True,
                           text=True).stdout.strip()]


def workload(wrend, wren, shim, cg_out):
    work = tempfile.mkdtemp(prefix="wh-", dir="/tmp")
    rootfs = os.path.join(work, "rootfs")
    os.makedirs(os.path.join(rootfs, "bin"))
    for d in ("proc", "dev", "sys", "etc", "tmp"):
        os.makedirs(os.path.join(rootfs, d))
    shutil.copy("/bin/busybox", os.path.join(rootfs, "bin", "busybox"))
    for c in ("sh", "sleep", "true"):
        os.symlink("busybox", os.path.join(rootfs, "bin", c))
    root = os.path.join(work, "r")
    log = open(os.path.join(work, "vg.log"), "w")
    # wrend re-executes itself once for its malloc tunables
    # (wren_runtime::malloc_tunables), and valgrind does not follow an exec:
    # start it as the re-executed wrend, with what that one gets.
    env = dict(os.environ, _WREN_TUNED="1", GLIBC_TUNABLES="glibc.malloc.tcache_count=0:glibc.malloc.arena_max=1")
    d = subprocess.Popen(["valgrind", "--tool=callgrind", "--demangle=no", f"--callgrind-out-file={cg_out}",
                          wrend, "--root", root, "--shim", shim, "--default-network", "none"],
                         stderr=log, stdout=log, env=env)

    def wr(*a, check=False):
        return subprocess.run([wren, "--root", root, *a], capture_output=True, timeout=120, check=check)
    try:
        for _ in range(300):
            if wr("ls").returncode == 0:
                break
            time.sleep(0.2)
        for n in ("a", "b", "c"):
            wr("run", "-d", "--restart", "always", "--rootfs", rootfs, n, "--", "sleep", "100000", check=True)
        wr("run", "--rm", "--rootfs", rootfs, "t", "--", "true")
        wr("run", "-d", "--rootfs", rootfs, "--health-cmd", "true", "--health-interval", "1s", "h",
           "--", "sleep", "1000")
        for a in (("ls",), ("ls", "--json"), ("inspect", "a"), ("exec", "a", "true"), ("logs", "a"),
                  ("stop", "a"), ("start", "a"), ("kill", "c")):
            wr(*a)
        try:
            subprocess.run([wren, "--root", root, "events"], capture_output=True, timeout=2)
        except subprocess.TimeoutExpired:
            pass
        time.sleep(3)
        for n in ("a", "b", "c", "h"):
            wr("rm", "-f", n)
        time.sleep(3)  # the shims' departures
    finally:
        d.terminate()
        d.wait(timeout=120)
        log.close()
        if not any(line.split(" ")[4].startswith(work + "/") for line in open("/proc/self/mountinfo")):
            shutil.rmtree(work, ignore_errors=True)


def executed(cg_out, binary):
    """Function names callgrind saw run in `binary`."""
    names, objs, cur, out = {}, {}, None, set()
    for line in open(cg_out):
        m = re.match(r"^(c?)(ob|fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if not m:
            continue
        called, kind, i, name = m.groups()
        if kind == "ob":
            if name:
                objs[i] = name
            if not called:
                cur = objs[i]
        else:
            if name:
                names[i] = name
            # Code in the hot section of an already ordered wrend shows as
            # object "???" (valgrind maps only `.text` to the binary).
            if not called and cur and os.path.basename(cur) in (os.path.basename(binary), "???"):
                out.add(re.sub(r"'\d+$", "", names[i]))
    return out


def c_members():
    """C function name -> `archive.a:member.o` that defines it; and the
    members that hold an IFUNC resolver (`memchr.o` picks among
    `memchr-*.o`)."""
    out, ifunc = {}, set()
    for archive in ARCHIVES:
        if not os.path.exists(archive):
            continue
        res = subprocess.run(["nm", "-A", archive], capture_output=True, text=True).stdout
        for line in res.splitlines():
            m = re.match(r"^[^:]+:([^:]+):[0-9a-f]* [TtWwi] (\S+)$", line)
            if m:
                out.setdefault(m.group(2), f"{os.path.basename(archive)}:{m.group(1)}")
            if " i " in line and m:
                ifunc.add(m.group(1))
    return out, ifunc


def main():
    binary, wren, shim = (os.path.abspath(a) for a in sys.argv[1:4])
    cg = tempfile.mktemp(prefix="wrend-cg-", dir="/tmp")
    workload(binary, wren, shim, cg)
    names = executed(cg, binary)
    os.unlink(cg)
    members, ifunc = c_members()
    rust, c = set(), set()
    for n in names:
        # LLVM's local copies (`name.1234`) are numbered anew by every
        # build: list the name and any copy of it.
        base = re.sub(r"\.\d+$", "", n)
        if n.startswith("_ZN"):
            rust.add(re.sub(r"17h[0-9a-f]{16}E$", "17h*", base))
        elif n.startswith("_R") or n == "main":
            rust.add(base)
            if base != n:
                rust.add(base + ".*")
        elif n in members:
            archive, member = members[n].split(":", 1)
            family = member.removesuffix(".o").split("-", 1)[0]
            if archive == "libc.a" and "-" in member and family + ".o" in ifunc:
                member = family + "-*.o"
            c.add(f"{archive}:{member}")
    # Seen natively (perf record -e minor-faults -d) but not under valgrind:
    # the C start code, the static loader's object set-up, and strcmp, which
    # valgrind's own replacement serves.
    c.update(["crt1.o", "libc.a:dl-object.o", "libc.a:dl-setup_hash.o", "libc.a:strcmp-*.o"])
    # Rust functions a native wrend ran with 200 idle containers after 30
    # `run --rm` (the same perf trace) that this workload's callgrind run
    # did not list: each cost a 64 KiB fault-around window of cold text.
    rust.update([
        "_ZN12wren_manager5wrend14shim_lifecycle57_$LT$impl$u20$wren_manager..wrend..registry"
        "..Registry$GT$11shim_exited17h*",
        "_ZN12wren_manager5wrend14shim_lifecycle57_$LT$impl$u20$wren_manager..wrend..registry"
        "..Registry$GT$8departed17h*",
        "_ZN4core3ptr164drop_in_place$LT$$u5b$$LP$wren_ttrpc..server..Responder$C$core..result"
        "..Result$LT$alloc..vec..Vec$LT$u8$GT$$C$ttrpc..proto..compiled..ttrpc..Status$GT$$RP$$u5d"
        "$GT$17h*",
        "_RNvXsi_NtCsjrHSEGnQ3l9_3std4pathNtB5_10ComponentsNtNtNtNtCsgEmfK2I1SDS_4core4iter6traits"
        "8iterator8Iterator4next",
        "_ZN78_$LT$wren_manager..wrend..record..Record$u20$as$u20$core..default..Default$GT$7default17h*",
        "_ZN4core3ptr115drop_in_place$LT$core..option..Option$LT$alloc..boxed..Box$LT$wren_manager"
        "..wrend..health..HealthConfig$GT$$GT$$GT$17h*",
        # a B-tree node merge: `rm` of one of many containers
        "_ZN5alloc11collections5btree4node29BalancingContext$LT$K$C$V$GT$25merge_tracking_child_edge17h*",
    ])
    if len(rust) < 100:
        sys.exit(f"only {len(rust)} Rust functions ran under callgrind: the workload failed "
                 f"(see its valgrind log); {os.path.relpath(OUT)} left as it was")
    lines = sorted(c) + sorted(x for x in rust if re.fullmatch(r"[A-Za-z0-9_.$*]+", x))
    with open(OUT, "w") as f:
        f.write("# wrend's hot functions: scripts/wrend-hot.py (make wrend-hot) writes this.\n")
        f.write("\n".join(lines) + "\n")
    print(f"{len(c)} libc members, {len(rust)} Rust functions -> {os.path.relpath(OUT)}")


if __name__ == "__main__":
    main()
