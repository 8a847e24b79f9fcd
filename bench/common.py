"""Small helpers shared by the benchmark's processes: launch links, progress lines, percentiles,
CPU time."""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

CLK_TCK = os.sysconf("SC_CLK_TCK")


def launch_path(ucid: str, agent: str, did: str, secret: str, now: float | None = None) -> str:
    """A signed launch link as a CRM makes it (README: HMAC-SHA256 of the sorted `name=value`
    lines of every parameter but `sig`). Written here from the documented contract rather than
    imported from the app."""
    params = {"ucid": ucid, "agentID": agent, "did": did, "ts": str(int(now or time.time()))}
    canonical = "\n".join(f"{name}={value}" for name, value in sorted(params.items()))
    params["sig"] = hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()
    return "/disposition?" + urlencode(params)


def say(message: str) -> None:
    """A progress line on stderr (stdout is the report's)."""
    print(message, file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), linear between the closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far, all cores, from /proc/stat: how
    much of the machine was in use over a run, whoever used it. Idle and iowait are not busy;
    steal (time the host gave other guests) is."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])  # user .. steal; guest time is already counted in user
    return total - idle, total


def _stat_fields(stat: str) -> list[str]:
    """The fields of a /proc/<pid>/stat line after the command name, which is in parentheses
    and may itself hold spaces and parentheses: fields[0] is the state (field 3 of proc(5))."""
    return stat[stat.rindex(")") + 2 :].split()


def stat_ticks(stat: str) -> int:
    """utime + stime, in clock ticks, of one /proc/<pid>/stat line (the process and its
    threads, dead threads included; not its children)."""
    fields = _stat_fields(stat)
    return int(fields[11]) + int(fields[12])


def stat_parent(stat: str) -> int:
    """The parent pid of one /proc/<pid>/stat line."""
    return int(_stat_fields(stat)[1])


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes (those still alive)."""
    return sum(cpu_by_pid(pids).values())


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds used so far by each of these processes still alive."""
    found = {}
    for pid in pids:
        try:
            found[pid] = stat_ticks(Path(f"/proc/{pid}/stat").read_text()) / CLK_TCK
        except OSError:
            continue
    return found


def _threads_files(pids: list[int], name: str) -> Iterator[str]:
    """The text of /proc/<pid>/task/<tid>/<name> for every thread alive in these processes
    (a thread or process gone meanwhile is skipped)."""
    for pid in pids:
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                yield (task / name).read_text()
            except OSError:
                continue


def switches(pids: list[int]) -> int:
    """Context switches so far, voluntary and not, of every thread alive in these processes
    (/proc/<pid>/task/<tid>/status). A thread that waits (for the GIL, a lock, a socket) is
    switched out: a count, the same on a fast machine and a slow one for the same waits. Like
    run_ns, only over a window in which the threads stay."""
    return sum(
        int(line.split()[1])
        for status in _threads_files(pids, "status")
        for line in status.splitlines()
        if "ctxt_switches:" in line  # voluntary_… and nonvoluntary_…
    )


def run_ns(pids: list[int]) -> int:
    """Nanoseconds on a CPU so far of every thread alive in these processes (the first field
    of /proc/<pid>/task/<tid>/schedstat): finer than the 10 ms ticks of /proc/<pid>/stat, but
    a thread that has ended is no longer counted, so only a cross-check over a window in which
    the threads stay (a server's pools do)."""
    total = 0
    for schedstat in _threads_files(pids, "schedstat"):
        try:
            total += int(schedstat.split()[0])
        except (ValueError, IndexError):
            continue
    return total


def _parents() -> dict[int, int]:
    """Every process's parent pid, from /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parents[int(entry.name)] = stat_parent((entry / "stat").read_text())
        except (OSError, ValueError, IndexError):
            continue
    return parents


def children(pid: int) -> list[int]:
    """Pids whose parent is `pid`, from /proc."""
    return sorted(child for child, parent in _parents().items() if parent == pid)


def descendants(root: int, parents: dict[int, int]) -> list[int]:
    """`root` and every process below it (children, their children...), given each process's
    parent: a server's whole tree, master first."""
    below: dict[int, list[int]] = {}
    for child, parent in parents.items():
        below.setdefault(parent, []).append(child)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop(0)
        tree.append(pid)
        todo += sorted(below.get(pid, []))
    return tree


def process_tree(root: int) -> list[int]:
    """`root` and every process below it now, from /proc."""
    return descendants(root, _parents())


def connections_per_process(port: int, pids: list[int]) -> list[int]:
    """How many established TCP connections to local `port` each process holds (by its file
    descriptors), in the order of `pids`: how a server's processes share the clients."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    counts = []
    for pid in pids:
        found = 0
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            fds = []
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                found += 1
        counts.append(found)
    return counts
