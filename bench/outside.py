"""CPU per request of the widget as served, measured from outside: `python -m bench.outside`.

The quick check after each change (about 40 s; issue 21's two CPU figures). It starts the bench
simulator answering at once (latency 0, bench/simulator.py), then the widget (`wsgi:app`) and
the bare Flask hello app (`bench.hello:app`), both under `gunicorn -c gunicorn.conf.py` with the
same environment and worker count (bench/services.py). Each run then sends, to each figure in
turn, N requests from C concurrent clients, each on its own keep-alive connection and each
sending its next request when the last answer arrived:

  hello  GET /hello on the hello server;
  panel  GET of signed launch links, one per live call of 200 agents, in turn;
  save   POST /disposition/save with the form a panel holds (context, CSRF token, disposition,
         comments, the hidden pause reason), `HX-Request: true`; every answer must say
         data-outcome="queued" (the simulator queues at once, so the widget's CPU is measured).

Every request carries Chromium's Accept-Encoding and Accept-Language, as wrk's do in `make
bench` (a save the language its panel's htmx sends). Each client sends one request first, not
counted (connected, accepted, its thread warm). The CPU of a figure is the time on a CPU of
every thread of the server's master and workers (/proc/<pid>/task/<tid>/schedstat, in ns),
read just before the first counted request and just after the last, divided by N. The order
of the figures turns every run, so hello and the widget alternate; the report gives the
median of the runs and their spread (min–max). utime + stime from /proc/<pid>/stat is the
cross-check: it counts in clock ticks (10 ms per process), and 600 hello requests are a few
hundred ms, so a run's hello moved by ±8 % on that alone, and the ratio with it.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import itertools
import json
import os
import re
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from math import nan
from pathlib import Path

from .common import (
    connections_per_process,
    cpu_by_pid,
    launch_path,
    median,
    process_tree,
    run_ns,
    say,
    switches,
)
from .load import Connection, _spread, open_panels
from .services import Running, Service, source_tree, start_services
from .wrk import ACCEPT_ENCODING, ACCEPT_LANGUAGE

AGENTS = 200  # live calls the panels and saves go round
TIMEOUT = 30.0
_OUTCOME = re.compile(rb'data-outcome="([a-z_]+)"')
# The figures of issue 21, bar and goal: (figure, median key, bar, goal, unit).
BARS = {"panel_over_hello": (2.0, 1.25), "save_ms": (2.0, 1.0)}

Request = tuple[str, str, dict[str, str], bytes]
_BROWSER = {"Accept-Encoding": ACCEPT_ENCODING, "Accept-Language": ACCEPT_LANGUAGE}


class Failed(Exception):
    """An answer that is not what the browser would get."""


def decoded(headers: dict[str, str], body: bytes) -> bytes:
    """The body as the browser reads it, whatever the server compressed it with."""
    encoding = headers.get("content-encoding", "identity")
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        import brotli

        return brotli.decompress(body)
    if encoding == "identity":
        return body
    raise Failed(f"an answer in {encoding!r}, which this bench cannot read")


def summary(values: list[float]) -> dict:
    """Median and spread of one figure's runs."""
    return {"median": median(values), "min": min(values), "max": max(values)}


async def phase(
    url: str,
    master: int,
    count: int,
    clients: int,
    request: Callable[[int], Request],
    check: Callable[[int, dict[str, str], bytes], None],
) -> dict:
    """`count` requests (request(i), i = 0, 1, ...) from `clients` keep-alive connections,
    closed loop; the CPU of the server tree under `master` over them."""
    conns = [Connection(url) for _ in range(clients)]
    numbers = itertools.count()

    async def one(conn: Connection) -> None:
        status, body = await asyncio.wait_for(conn.request(*request(next(numbers))), TIMEOUT)
        check(status, conn.headers, body)

    async def client(conn: Connection, n: int) -> None:
        for _ in range(n):
            await one(conn)

    try:
        await asyncio.gather(*(one(conn) for conn in conns))  # not counted
        pids = process_tree(master)
        spread = connections_per_process(conns[0].port, pids[1:])
        before, before_ns, before_sw = cpu_by_pid(pids), run_ns(pids), switches(pids)
        began = time.perf_counter()
        await asyncio.gather(
            *(client(c, n) for c, n in zip(conns, _spread(count, clients), strict=True))
        )
        wall = time.perf_counter() - began
        after, after_ns, after_sw = cpu_by_pid(pids), run_ns(pids), switches(pids)
    finally:
        for conn in conns:
            conn.close()
    if sorted(process_tree(master)) != sorted(pids):
        raise Failed("a server process came or went during the run")
    used = {pid: after[pid] - before[pid] for pid in pids}
    total = sum(used.values())
    return {
        "requests": count,
        "wall_s": round(wall, 3),
        "per_s": round(count / wall, 1),
        "cpu_ms": round(total * 1000 / count, 4),
        "cpu_s": round(total, 3),
        # The same from the threads' schedstat, in ns (common.run_ns): a cross-check.
        "run_ms": round((after_ns - before_ns) / 1e6 / count, 4),
        # Context switches of the server's threads per request (common.switches): each wait
        # for the GIL after a system call in the pool thread shows here.
        "switches": round((after_sw - before_sw) / count, 2),
        "master_cpu_s": round(used[master], 3),
        "workers_cpu_s": [round(used[pid], 3) for pid in pids[1:]],
        "connections_per_worker": spread,
    }


class Figures:
    """What each figure sends and accepts, against one set of running services."""

    def __init__(self, running: Running, forms: dict[str, bytes]) -> None:
        self.running = running
        self.agents = sorted(forms)
        self.forms = forms
        self.disposition = running.sim_info["dispositions"][0].encode()
        self.links: list[str] = []
        self.sign()

    def sign(self) -> None:
        """Fresh launch links (they are valid for 10 minutes)."""
        calls, secret = self.running.calls, self.running.launch_secret
        self.links = [
            launch_path(calls[a]["ucid"], a, calls[a]["did"], secret) for a in self.agents
        ]

    def hello(self, _i: int) -> Request:
        return "GET", "/hello", _BROWSER, b""

    def panel(self, i: int) -> Request:
        return "GET", self.links[i % len(self.links)], _BROWSER, b""

    def save(self, i: int) -> Request:
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "HX-Request": "true",
            "Accept-Encoding": ACCEPT_ENCODING,
            "Accept-Language": "en",  # the panel's htmx names its language
        }
        return "POST", "/disposition/save", headers, self.forms[self.agents[i % len(self.agents)]]

    @staticmethod
    def check_hello(status: int, headers: dict[str, str], body: bytes) -> None:
        if status != 200 or decoded(headers, body) != b"hello":
            raise Failed(f"hello answered {status}: {body[:200]!r}")

    def check_panel(self, status: int, headers: dict[str, str], body: bytes) -> None:
        if status != 200 or self.disposition not in decoded(headers, body):
            raise Failed(f"a panel answered {status} without its list: {body[:300]!r}")

    @staticmethod
    def check_save(status: int, headers: dict[str, str], body: bytes) -> None:
        match = _OUTCOME.search(decoded(headers, body))
        if status != 200 or not match or match.group(1) != b"queued":
            raise Failed(f"a save answered {status}, not queued: {body[:300]!r}")

    def run(self, name: str, count: int, clients: int) -> dict:
        running = self.running
        server, url = (
            (running.hello, running.hello_url)
            if name == "hello"
            else (running.widget, running.widget_url)
        )
        check = {"hello": self.check_hello, "panel": self.check_panel, "save": self.check_save}
        request = {"hello": self.hello, "panel": self.panel, "save": self.save}
        return asyncio.run(phase(url, server.proc.pid, count, clients, request[name], check[name]))


def measure(running: Running, requests: int, clients: int, runs: int) -> dict:
    """The runs against `running` (latency 0), after a warm-up; raw and summarised."""
    config = {
        "widget_calls": {a: running.calls[a] for a in running.agents[:AGENTS]},
        "launch_secret": running.launch_secret,
        "widget_url": running.widget_url,
        "disposition": running.sim_info["dispositions"][0],
    }
    # Each agent's panel once, over 50 connections: the save forms, and every worker's cache.
    forms = asyncio.run(open_panels(config, sorted(config["widget_calls"])))
    figures = Figures(running, forms)
    # Warm-up, not counted: more connections than the runs', so that every worker serves some.
    for name in ("hello", "panel", "save"):
        figures.run(name, max(requests // 2, 8 * clients), 4 * clients)
    order = ["hello", "panel", "save"]
    raw: list[dict] = []
    for index in range(runs):
        figures.sign()
        run = {}
        for name in order if index % 2 == 0 else order[::-1]:
            run[name] = figures.run(name, requests, clients)
        hello_ms = run["hello"]["run_ms"]
        run["panel_over_hello"] = round(run["panel"]["run_ms"] / hello_ms, 3) if hello_ms else nan
        raw.append(run)
        say(
            f"  run {index + 1}: CPU per request hello {run['hello']['run_ms']:.3f} ms, panel "
            f"{run['panel']['run_ms']:.3f} ms ({run['panel_over_hello']:.2f}x), save "
            f"{run['save']['run_ms']:.3f} ms"
        )
    for service in running.services:
        service.alive_or_die()
    result = {
        "requests": requests,
        "clients": clients,
        "runs": raw,
        # The threads' ns (run_ms); /proc's clock ticks (cpu_ms) are the cross-check below.
        "hello_ms": summary([r["hello"]["run_ms"] for r in raw]),
        "panel_ms": summary([r["panel"]["run_ms"] for r in raw]),
        "save_ms": summary([r["save"]["run_ms"] for r in raw]),
        "panel_over_hello": summary([r["panel_over_hello"] for r in raw]),
    }
    hello_ms = result["hello_ms"]["median"]
    result["panel_over_hello_of_medians"] = (
        round(result["panel_ms"]["median"] / hello_ms, 3) if hello_ms else nan
    )
    # Where the CPU went: the masters' share of each server's, over all runs.
    for name in ("hello", "panel", "save"):
        master = sum(r[name]["master_cpu_s"] for r in raw)
        total = sum(r[name]["cpu_s"] for r in raw)
        result[f"{name}_master_share"] = round(master / total, 3) if total else None
        result[f"{name}_per_s"] = median([r[name]["per_s"] for r in raw])
        result[f"{name}_proc_ms"] = median([r[name]["cpu_ms"] for r in raw])
        result[f"{name}_switches"] = median([r[name]["switches"] for r in raw])
    return result


def run(workers: int | None, requests: int, clients: int, runs: int, tmp: Path) -> dict:
    """Starts the simulator (latency 0), the widget and hello, measures, stops them all."""
    services: list[Service] = []
    try:
        running = start_services(tmp, services, latency=0, agents=AGENTS, workers=workers)
        say(
            f"CPU per request from outside: gunicorn {running.config['worker_class']}, "
            f"{running.config['workers']} workers each server, CloudAgent answering at once; "
            f"{runs} runs of {requests} requests from {clients} clients per figure"
        )
        result = measure(running, requests, clients, runs)
        result["gunicorn_config"] = running.config
        return result
    finally:
        for service in reversed(services):
            service.stop()


def _ms(s: dict, unit: str = " ms", digits: int = 3) -> tuple[str, str]:
    return (
        f"{s['median']:.{digits}f}{unit}",
        f"{s['min']:.{digits}f}–{s['max']:.{digits}f}{unit}",
    )


def table(result: dict) -> str:
    """The quick command's table: medians, spread, bars and goals of issue 21."""
    (ratio_bar, ratio_goal), (save_bar, save_goal) = BARS["panel_over_hello"], BARS["save_ms"]
    rows = [
        ("hello CPU per request", *_ms(result["hello_ms"]), "", ""),
        ("panel CPU per request", *_ms(result["panel_ms"]), "", ""),
        (
            "panel ÷ hello",
            *_ms(result["panel_over_hello"], "×", 2),
            f"≤ {ratio_bar:g}×",
            f"≤ {ratio_goal:g}×",
        ),
        (
            "save CPU per request",
            *_ms(result["save_ms"]),
            f"≤ {save_bar:g} ms",
            f"≤ {save_goal:g} ms",
        ),
    ]
    lines = ["| figure | median | min–max | bar | goal |", "| --- | --- | --- | --- | --- |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.outside", description=__doc__)
    add = parser.add_argument
    add("--requests", type=int, default=600, help="requests per figure per run (600)")
    add("--clients", type=int, default=8, help="concurrent keep-alive clients (8)")
    add("--runs", type=int, default=5, help="runs, hello and the widget alternated (5)")
    add("--workers", type=int, help="gunicorn workers of each server (WIDGET_WORKERS, else 4)")
    add("--json", help="also write the raw numbers to this file")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.requests < 1 or args.clients < 1:
        parser.error("--runs, --requests and --clients must be at least 1")

    source = source_tree()
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="widget-outside-"))
    began = time.perf_counter()
    try:
        result = run(args.workers, args.requests, args.clients, args.runs, tmp)
    except Failed as error:
        sys.exit(f"bench.outside: {error}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["source"] = source
    result["load_average"] = {"start": load_before, "end": os.getloadavg()}
    result["seconds"] = round(time.perf_counter() - began, 1)
    c = result["gunicorn_config"]
    dirty = f" + {len(source['uncommitted'])} uncommitted files" if source["uncommitted"] else ""
    print(f"Source: {source['commit']} {source['subject']!r}{dirty}")
    print(
        f"Servers: gunicorn.conf.py, {c['worker_class']} worker, {c['workers']} workers, widget "
        "and hello alike; simulator latency 0"
    )
    print(
        f"{args.runs} runs x {args.requests} requests x {args.clients} clients per figure; "
        "load average at start "
        + ", ".join(f"{x:.1f}" for x in load_before)
        + ", at end "
        + ", ".join(f"{x:.1f}" for x in os.getloadavg())
    )
    print()
    print(table(result))
    print()
    print(
        f"Masters' share of the CPU: hello {result['hello_master_share']:.0%}, panel "
        f"{result['panel_master_share']:.0%}, save {result['save_master_share']:.0%}. "
        f"Requests/s (median, {args.clients} clients): hello {result['hello_per_s']:.0f}, "
        f"panel {result['panel_per_s']:.0f}, save {result['save_per_s']:.0f}. Cross-check "
        f"from /proc's clock ticks (medians): hello {result['hello_proc_ms']:.3f}, panel "
        f"{result['panel_proc_ms']:.3f}, save {result['save_proc_ms']:.3f} ms. Context "
        f"switches per request (medians): hello {result['hello_switches']:.1f}, panel "
        f"{result['panel_switches']:.1f}, save {result['save_switches']:.1f}. "
        f"{result['seconds']:.0f} s in all."
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
