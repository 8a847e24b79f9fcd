"""The save load generator, a process of its own: `python -m bench.load CONFIG.json OUT.json`.

Every agent is a coroutine with its own keep-alive HTTP/1.1 connection (as each agent's
browser has), opened before the clock starts; on the start signal each waits a random part of
one latency period (so they do not move in lock-step waves), then does its saves back to back
(a closed loop: the concurrency is the number of agents). Each request's
time is measured from just before its bytes are written to just after the last byte of the
answer is read. The HTTP client is a few lines of asyncio streams, so that the generator costs
little CPU per request on a machine it shares with the service.

Runs, alternated so that both sides see the same machine state:
  direct  - the same number of agents calling the simulator's DispositionAPIV2 directly with
            the `direct` account's token and the body the widget sends;
  widget  - the agents saving through the widget (POST /disposition/save with the context and
            CSRF token of a panel each opened beforehand).
then the errors run (many agents, a fixed number of saves), and diagnostic pairs at other
concurrencies.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import sys
import time
from collections import Counter
from urllib.parse import urlencode, urlsplit

from .common import (
    connections_per_process,
    cpu_seconds,
    launch_path,
    machine_ticks,
    median,
    percentile,
)

TIMEOUT = 60.0
DIAGNOSTIC_PAIRS = 3  # pairs at each --diagnostic concurrency; the median is reported
_HIDDEN = {
    name: re.compile(
        rf'name="{name}"[^>]*value="([^"]*)"|value="([^"]*)"[^>]*name="{name}"'.encode()
    )
    for name in ("context", "csrf_token")
}
_OUTCOME = re.compile(rb'data-outcome="([a-z_]+)"')


class Closed(Exception):
    """The server closed the connection."""


class Connection:
    """One HTTP/1.1 keep-alive connection; reopened when the server closes it."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.hostport = f"{self.host}:{self.port}"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.headers: dict[str, str] = {}  # the last answer's, names in lower case

    async def connect(self) -> None:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(
        self, method: str, target: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        await self.connect()
        assert self.reader is not None and self.writer is not None
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.hostport}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        status_line = await self.reader.readline()
        if not status_line:
            self.close()
            raise Closed("connection closed before the answer")
        status = int(status_line.split()[1])
        length, chunked, close = None, False, False
        self.headers = {}
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            self.headers[name] = value
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value:
                chunked = True
            elif name == "connection" and value == "close":
                close = True
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    while (await self.reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            data = b"".join(parts)
        elif length is not None:
            data = await self.reader.readexactly(length)
        else:
            data = await self.reader.read()
            close = True
        if close:
            self.close()
        return status, data


async def open_panels(config: dict, agents: list[str], parallel: int = 50) -> dict[str, bytes]:
    """Each agent opens its panel once: the save form's fields (context, CSRF token), encoded."""
    calls = config["widget_calls"]
    gate = asyncio.Semaphore(parallel)
    forms: dict[str, bytes] = {}

    async def one(agent: str) -> None:
        call = calls[agent]
        path = launch_path(call["ucid"], agent, call["did"], config["launch_secret"])
        async with gate:
            conn = Connection(config["widget_url"])
            try:
                status, html = await asyncio.wait_for(
                    conn.request("GET", path, {"Accept-Encoding": "identity"}), TIMEOUT
                )
            finally:
                conn.close()
        if status != 200:
            raise RuntimeError(f"panel for {agent}: HTTP {status}: {html[:300]!r}")
        fields = {}
        for name, pattern in _HIDDEN.items():
            match = pattern.search(html)
            if not match:
                raise RuntimeError(f"panel for {agent}: no {name} field: {html[:500]!r}")
            fields[name] = next(g for g in match.groups() if g is not None).decode()
        if config["disposition"].encode() not in html:
            raise RuntimeError(f"panel for {agent}: the disposition list did not load")
        fields |= {
            "disposition": config["disposition"],
            "comments": "Benchmark save: the customer asked for a call back on Monday.",
            "pause_reason": "Break",  # the hidden select is still submitted, as a browser does
        }
        forms[agent] = urlencode(fields).encode()

    await asyncio.gather(*(one(agent) for agent in agents))
    return forms


def _widget_save(forms: dict[str, bytes], tag: str = ""):
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "HX-Request": "true",
        "Accept-Encoding": "identity",
    }

    counter = iter(range(10**9))

    async def save(conn: Connection, agent: str) -> str:
        # The request id names the run in the widget's log (which keeps a sane X-Request-ID),
        # so the benchmark can read the server's own time for the saves of each run.
        ids = {"X-Request-ID": f"{tag}.{next(counter)}"} if tag else {}
        status, body = await conn.request("POST", "/disposition/save", headers | ids, forms[agent])
        match = _OUTCOME.search(body)
        outcome = match.group(1).decode() if match else "none"
        return f"{status} {outcome}"

    return save


def _direct_save(config: dict):
    direct = config["direct"]
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {direct['token']}",
        "Accept-Encoding": "identity",
    }
    bodies = {}
    for agent, call in direct["calls"].items():
        # The body the widget's client sends for a save without pause (client._body + Set).
        bodies[agent] = json.dumps(
            {
                "action": "Set",
                "userName": direct["username"],
                "agentID": agent,
                "did": call["did"],
                "ucid": call["ucid"],
                "autoRelease": "true",
                "disposition": config["disposition"],
                "comments": "Benchmark save: the customer asked for a call back on Monday.",
                "pauseAfterDispose": "false",
            }
        ).encode()

    async def save(conn: Connection, agent: str) -> str:
        status, body = await conn.request(
            "POST", "/ca_apis/DispositionAPIV2", headers, bodies[agent]
        )
        try:
            answer = json.loads(body)
        except ValueError:
            answer = {}
        message = str(answer.get("message") or answer.get("details") or "")
        if answer.get("status") == "Success":
            outcome = "queued" if "Queued" in message else "saved"
        else:
            outcome = "fail:" + message[:60]
        return f"{status} {outcome}"

    return save


async def closed_loop(
    url: str,
    agents: list[str],
    saves_each: list[int],
    save,
    pids: dict,
    stagger: float,
    servers: list[int] | None = None,
):
    """Every agent connects; on the start signal each waits a random part of `stagger` (so
    that agents do not save in lock-step waves, which no real floor does), then saves back to
    back."""
    rng = random.Random(len(agents))  # noqa: S311 - start offsets, not secrets
    offsets = [rng.uniform(0, stagger) for _ in agents]
    conns = [Connection(url) for _ in agents]
    await asyncio.gather(*(conn.connect() for conn in conns))
    start = asyncio.Event()
    times: list[float] = []
    outcomes: Counter[str] = Counter()

    async def agent_loop(conn: Connection, agent: str, count: int, offset: float) -> None:
        await start.wait()
        await asyncio.sleep(offset)
        for _ in range(count):
            began = time.perf_counter()
            try:
                result = await asyncio.wait_for(save(conn, agent), TIMEOUT)
            except (TimeoutError, OSError, Closed, ValueError, IndexError) as error:
                conn.close()
                result = f"error {type(error).__name__}"
            times.append((time.perf_counter() - began) * 1000)
            outcomes[result] += 1

    tasks = [
        asyncio.create_task(agent_loop(conn, agent, n, offset))
        for conn, agent, n, offset in zip(conns, agents, saves_each, offsets, strict=True)
    ]
    await asyncio.sleep(0.05)  # every task waits on the event
    cpu_before = {name: cpu_seconds(p) for name, p in pids.items()}
    own_before = time.process_time()
    windows: list[float] = []
    sampler = asyncio.create_task(_sample_machine(windows))
    began = time.perf_counter()
    start.set()
    spread = None
    if servers:
        # Which server process holds each agent's connection, once they are all accepted.
        await asyncio.sleep(min(1.0, stagger + 0.2))
        spread = connections_per_process(Connection(url).port, servers)
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - began
    cpu = {name: (cpu_seconds(p) - cpu_before[name]) / wall for name, p in pids.items()}
    cpu["load_generator"] = (time.process_time() - own_before) / wall
    sampler.cancel()
    for conn in conns:
        conn.close()
    ok = sum(n for key, n in outcomes.items() if key in ("200 queued", "200 saved"))
    return {
        "concurrency": len(agents),
        "requests": len(times),
        "ok": ok,
        "errors": len(times) - ok,
        "outcomes": dict(outcomes),
        "wall_s": round(wall, 3),
        "throughput_per_s": round(len(times) / wall, 1),
        "p50_ms": round(percentile(times, 50), 2),
        "p90_ms": round(percentile(times, 90), 2),
        "p99_ms": round(percentile(times, 99), 2),
        "max_ms": round(max(times), 2),
        "cpu_cores": {name: round(value, 3) for name, value in cpu.items()},
        # The whole machine's busy share in 100 ms windows: the round's median window, and
        # the share of windows at 95 % or more (ramp-up and tail included).
        "machine_busy": round(median(windows), 3) if windows else None,
        "machine_saturated": round(sum(w >= 0.95 for w in windows) / len(windows), 3)
        if windows
        else None,
        **({"connections_per_worker": spread} if spread is not None else {}),
    }


async def _sample_machine(windows: list[float], every: float = 0.1) -> None:
    """Append the machine's busy share of each `every`-second window until cancelled."""
    before = machine_ticks()
    while True:
        await asyncio.sleep(every)
        after = machine_ticks()
        busy, total = after[0] - before[0], after[1] - before[1]
        if total:
            windows.append(busy / total)
        before = after


def _spread(total: int, agents: int) -> list[int]:
    return [total // agents + (1 if i < total % agents else 0) for i in range(agents)]


async def pair(config, forms, concurrency: int, saves_each: int, pids, tag: str = "") -> dict:
    """One direct run, then one widget run, with the same number of agents and saves."""
    widget_agents = sorted(config["widget_calls"])[:concurrency]
    direct_agents = sorted(config["direct"]["calls"])[:concurrency]
    counts = [saves_each] * concurrency
    stagger = config["stagger"]
    direct = await closed_loop(
        config["sim_url"], direct_agents, counts, _direct_save(config), pids, stagger
    )
    widget = await closed_loop(
        config["widget_url"],
        widget_agents,
        counts,
        _widget_save(forms, tag),
        pids,
        stagger,
        pids.get("widget"),
    )
    return {
        "direct": direct,
        "widget": widget,
        "overhead_p50_ms": round(widget["p50_ms"] - direct["p50_ms"], 2),
        "overhead_p99_ms": round(widget["p99_ms"] - direct["p99_ms"], 2),
    }


def _say(message: str) -> None:
    print(f"  [load] {message}", file=sys.stderr, flush=True)


async def main_async(config: dict) -> dict:
    pids = config.get("pids", {})
    latency = config["latency_runs"]
    errors = config["errors_run"]
    most = max(latency["concurrency"], errors["concurrency"], *config.get("diagnostic", [0]))
    agents = sorted(config["widget_calls"])[:most]
    began = time.perf_counter()
    forms = await open_panels(config, agents)
    _say(f"{len(forms)} panels opened in {time.perf_counter() - began:.1f} s")

    # A short pair first, not counted: connections, threads and caches warm on both sides.
    await pair(config, forms, latency["concurrency"], 1, pids)
    rounds = []
    for index in range(latency["rounds"]):
        tag = f"bench-round{index + 1}"
        result = await pair(
            config, forms, latency["concurrency"], latency["saves_per_agent"], pids, tag
        )
        rounds.append(result)
        _say(
            f"round {index + 1}: direct p50 {result['direct']['p50_ms']:.0f} "
            f"p99 {result['direct']['p99_ms']:.0f} ms, widget p50 "
            f"{result['widget']['p50_ms']:.0f} p99 {result['widget']['p99_ms']:.0f} ms, "
            f"widget {result['widget']['throughput_per_s']:.0f} saves/s, connections per "
            f"worker {result['widget'].get('connections_per_worker')}"
        )
    summary = {
        "rounds": rounds,
        "overhead_p50_ms_median": round(median([r["overhead_p50_ms"] for r in rounds]), 2),
        "overhead_p99_ms_median": round(median([r["overhead_p99_ms"] for r in rounds]), 2),
        "direct_p50_ms_median": round(median([r["direct"]["p50_ms"] for r in rounds]), 2),
        "direct_p99_ms_median": round(median([r["direct"]["p99_ms"] for r in rounds]), 2),
        "widget_p50_ms_median": round(median([r["widget"]["p50_ms"] for r in rounds]), 2),
        "widget_p99_ms_median": round(median([r["widget"]["p99_ms"] for r in rounds]), 2),
    }

    error_agents = sorted(config["widget_calls"])[: errors["concurrency"]]
    error_run = await closed_loop(
        config["widget_url"],
        error_agents,
        _spread(errors["saves"], len(error_agents)),
        _widget_save(forms, "bench-errors"),
        pids,
        config["stagger"],
        pids.get("widget"),
    )
    _say(
        f"errors run: {error_run['requests']} saves from {len(error_agents)} agents, "
        f"{error_run['errors']} errors, {error_run['outcomes']}"
    )

    # The simulator alone at the errors run's concurrency: its own time above the latency.
    direct_agents = sorted(config["direct"]["calls"])[: errors["concurrency"]]
    simulator_check = await closed_loop(
        config["sim_url"],
        direct_agents,
        [3] * len(direct_agents),
        _direct_save(config),
        pids,
        config["stagger"],
    )
    _say(
        f"simulator alone at {len(direct_agents)} agents: p50 {simulator_check['p50_ms']:.0f} "
        f"p99 {simulator_check['p99_ms']:.0f} ms, {simulator_check['throughput_per_s']:.0f}/s, "
        f"{simulator_check['cpu_cores']['simulator']:.2f} cores"
    )

    diagnostic = []
    for concurrency in config.get("diagnostic", []):
        pairs = [
            await pair(
                config,
                forms,
                concurrency,
                latency["saves_per_agent"],
                pids,
                f"bench-at{concurrency}",
            )
            for _ in range(DIAGNOSTIC_PAIRS)
        ]
        result = {
            "concurrency": concurrency,
            "pairs": pairs,
            "overhead_p50_ms": round(median([p["overhead_p50_ms"] for p in pairs]), 2),
            "overhead_p99_ms": round(median([p["overhead_p99_ms"] for p in pairs]), 2),
        }
        diagnostic.append(result)
        _say(
            f"diagnostic at {concurrency} agents, median of {len(pairs)} pairs: overhead p50 "
            f"{result['overhead_p50_ms']:.1f} p99 {result['overhead_p99_ms']:.1f} ms"
        )
    return {
        "latency": summary,
        "errors_run": error_run,
        "simulator_check": simulator_check,
        "diagnostic": diagnostic,
    }


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    with open(args[0]) as handle:
        config = json.load(handle)
    result = asyncio.run(main_async(config))
    with open(args[1], "w") as handle:
        json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()
