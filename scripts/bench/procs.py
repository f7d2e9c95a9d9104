"""Processes of the bench driver.

The driver is a child subreaper: PID 1 on these machines does not reap, so
shims and containers orphaned by `ctr`/containerd end up as our children.
`reap()` collects those zombies without ever taking the exit status of a
command we are waiting for (those are registered while they run). Also the
/proc readings the memory figures need (PSS, RSS, threads).
"""

import contextlib
import ctypes
import os
import signal
import subprocess
import tempfile
import threading
import time

PR_SET_CHILD_SUBREAPER = 36

_lock = threading.Lock()
_waiting = set()


def become_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}")


class Failed(RuntimeError):
    """A command exited non-zero; carries its stderr."""


def spawn(cmd, env=None, stdout=None, stderr=None):
    """Start `cmd` registered, so `reap` leaves its exit status alone."""
    with _lock:
        p = subprocess.Popen(
            cmd, env=env, stdin=subprocess.DEVNULL,
            stdout=stdout if stdout is not None else subprocess.DEVNULL,
            stderr=stderr if stderr is not None else subprocess.DEVNULL,
            start_new_session=False)
        _waiting.add(p.pid)
    return p


def wait(p, timeout=None):
    """Wait for a process from `spawn` and forget it (it stays registered
    when the wait times out, so it can be killed and waited for again)."""
    rc = p.wait(timeout=timeout)
    with _lock:
        _waiting.discard(p.pid)
    return rc


def stop(p, timeout=10):
    """SIGTERM a process from `spawn` if it still runs, SIGKILL it after
    `timeout` seconds, and wait for it."""
    if p.poll() is None:
        p.terminate()
        try:
            wait(p, timeout=timeout)
            return
        except Exception:
            p.kill()
    wait(p)


def run(cmd, env=None, timeout=120, check=True, after=None):
    """Run `cmd` to completion; returns (ms, stdout, stderr).

    Output goes to files, not pipes: a detached container inherits the
    command's stdio and would hold a pipe open forever. The time covers the
    whole process, from fork to exit; `after` is called right after the
    exit, before orphans are reaped.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        fired = []

        def kill():
            fired.append(True)
            p.kill()
        t = time.perf_counter()
        p = spawn(cmd, env=env, stdout=out, stderr=err)
        # A blocking waitpid, not Popen.wait(timeout): that one polls with
        # sleeps of up to 50 ms and would blur every time measured here.
        watchdog = threading.Timer(timeout, kill)
        watchdog.start()
        rc = wait(p)
        ms = (time.perf_counter() - t) * 1000.0
        watchdog.cancel()
        if fired:
            raise Failed(f"{' '.join(cmd)}: timed out after {timeout}s")
        if after:
            after()
        out.seek(0)
        err.seek(0)
        o, e = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    reap()
    if check and rc != 0:
        raise Failed(f"{' '.join(cmd)}: exit {rc}: {e.strip() or o.strip()}")
    return ms, o, e


def _stat(pid):
    """(state, ppid) of `pid`, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rfind(")") + 2:].split(" ")
    return rest[0], int(rest[1])


def _children():
    """Our children's pids, from /proc/self/task/*/children (orphans
    reparented to this subreaper included): a handful of reads, where a scan
    of all of /proc reads one file per process on the machine and, done
    under the lock after every command, held up the other threads' spawns
    (and so their timings) by more the more containers were running."""
    pids = set()
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return pids
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                pids.update(int(p) for p in f.read().split())
        except (OSError, ValueError):
            pass
    return pids


def reap():
    """Collect zombie children nobody waits for (orphaned shims, containers)."""
    with _lock:
        for pid in _children() - _waiting:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def pids_where(pred):
    """Live (non-zombie) pids whose argv satisfies `pred`."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        args = cmdline(int(name))
        st = _stat(int(name))
        if args and st and st[0] != "Z" and pred(args):
            found.append(int(name))
    return sorted(found)


def memory(pid):
    """{'pss_kib', 'rss_kib', 'threads'} of a live process, or None."""
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k == "Pss":
                    out["pss_kib"] = int(v.split()[0])
                elif k == "Rss":
                    out["rss_kib"] = int(v.split()[0])
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    out["threads"] = int(line.split()[1])
    except (OSError, ValueError):
        return None
    return out if len(out) == 3 else None


def smaps_by_mapping(pid):
    """{mapping name: {'rss_kib', 'pss_kib', 'private_dirty_kib'}} from
    /proc/<pid>/smaps; anonymous mappings are grouped as "[anon]"."""
    out, cur = {}, None
    keys = {"Rss": "rss_kib", "Pss": "pss_kib", "Private_Dirty": "private_dirty_kib"}
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                head = line.split()
                if not head:
                    continue
                if "-" in head[0] and not head[0].endswith(":"):
                    name = " ".join(head[5:]) or "[anon]"
                    cur = out.setdefault(name, {v: 0 for v in keys.values()})
                elif cur is not None and head[0].rstrip(":") in keys:
                    cur[keys[head[0].rstrip(":")]] += int(head[1])
    except OSError:
        return None
    return {k: v for k, v in out.items() if v["rss_kib"]}


def kill_pid(pid, sig=9):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


@contextlib.contextmanager
def no_interrupts():
    """Ctrl-C is ignored inside (for cleanup that must finish)."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
