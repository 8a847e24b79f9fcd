"""wrk, the HTTP load generator behind the throughput figures: find (or install) it, run it
against one URL and read its summary into numbers, with the CPU the server and wrk used."""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import time

from .common import cpu_seconds, say

ACCEPT_ENCODING = "gzip, deflate, br, zstd"  # what Chromium sends
# ... and its Accept-Language with an English UI: the panel parses it when the launch link
# names no language (a cost the bench left out until the fourth round, docs/benchmarks.md).
ACCEPT_LANGUAGE = "en-US,en;q=0.9"

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def ensure_wrk() -> str:
    """wrk's path; installed with apt-get when missing and we are root, else exit saying how."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        say("wrk is missing: apt-get install -y wrk")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        command = ["apt-get", "install", "-y", "-q", "wrk"]
        if subprocess.run(command, env=env, check=False).returncode != 0:  # noqa: S603
            subprocess.run(["apt-get", "update", "-q"], env=env, check=False)  # noqa: S603,S607
            subprocess.run(command, env=env, check=False)  # noqa: S603
        found = shutil.which("wrk")
    if not found:
        sys.exit(
            "bench: wrk (the HTTP load generator) is not installed and could not be installed "
            "here (it needs root and apt-get). Install it: `sudo apt-get install wrk` on "
            "Debian/Ubuntu, `brew install wrk` on macOS, then run `make bench` again."
        )
    return found


def wrk_version(binary: str) -> str:
    """e.g. "wrk debian/4.1.0-3+b2" (the first line, without its build details)."""
    return subprocess.run(  # noqa: S603
        [binary, "--version"], capture_output=True, text=True, check=False
    ).stdout.split(" [")[0]


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def _found(pattern: str, text: str) -> str | None:
    match = re.search(pattern, text)
    return match.group(1) if match else None


def wrk(binary: str, url: str, connections: int, seconds: float, pids: list[int]) -> dict:
    """One wrk run: requests, req/s, p50/p99, non-2xx answers, socket errors, and the cores
    used by the server's processes `pids` and by wrk itself over the run."""
    threads = max(1, min(connections, len(os.sched_getaffinity(0))))
    command = [
        binary,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--latency",
        "-H",
        f"Accept-Encoding: {ACCEPT_ENCODING}",
        "-H",
        f"Accept-Language: {ACCEPT_LANGUAGE}",
        url,
    ]
    # RUSAGE_CHILDREN counts the children that have ended: over the run, only wrk does.
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    before = cpu_seconds(pids)
    began = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603
    wall = time.perf_counter() - began
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    result = {
        "requests": requests,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "non_2xx": int(_found(r"Non-2xx or 3xx responses: (\d+)", out) or 0),
        "socket_errors": _found(r"Socket errors: (.*)", out) or "",
        "cpu_cores_server": round((cpu_seconds(pids) - before) / wall, 2),
        "cpu_cores_wrk": round(
            (
                after_children.ru_utime
                + after_children.ru_stime
                - before_children.ru_utime
                - before_children.ru_stime
            )
            / wall,
            2,
        ),
    }
    for pct in ("50", "99"):
        match = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.MULTILINE)
        result[f"p{pct}_ms"] = round(_ms(match.group(1)), 2) if match else None
    return result
