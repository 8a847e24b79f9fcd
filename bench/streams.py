"""`python -m bench.streams [N]`: what idle open panels cost on one instance, and how soon an
event reaches one (docs/benchmarks.md, "Open panels").

Starts the simulator in this process and the widget with the production command (asgi
worker, WIDGET_WORKERS=2, the receivers on), opens N event streams (default 2,000) with
valid contexts from plain asyncio sockets, and reports:
- memory: PSS summed over master and workers (/proc/<pid>/smaps_rollup) before and after,
  per panel;
- CPU: utime+stime of master and workers over an idle window (heartbeats on), per panel;
- delivery: Disconnects posted to the receivers, from the post to the event on its stream.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from tests.helpers import DID, launch_path, server_env
from webapp.simulator import Simulator, start_server

from .common import children, free_port, median, percentile

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "events-token-for-the-bench-0123456789"  # noqa: S105 (a bench-only value)
IDLE_SECONDS = 30.0


def pss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1])
    return total


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def stream_path(url: str, ucid: str) -> str:
    html = requests.get(url + launch_path(ucid), timeout=60).text
    start = html.index('data-events="') + len('data-events="')
    return html[start : html.index('"', start)].replace("&amp;", "&")


async def open_stream(port: int, path: str):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0], head[:200]
    return reader, writer


async def run(n: int, idle_seconds: float = IDLE_SECONDS) -> dict:
    sim = Simulator()
    upstream = start_server(sim)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = Path(tempfile.mkdtemp(prefix="widget-streams-"))
    env = server_env(upstream.url, data, WIDGET_BIND=f"127.0.0.1:{port}", WIDGET_WORKERS="2",
                     WIDGET_EVENTS_TOKEN=TOKEN, WIDGET_WRAPUP_SECONDS="120")  # fmt: skip
    log = (data / "gunicorn.log").open("wb")
    command = [str(ROOT / ".venv/bin/gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        for _ in range(600):
            try:
                if (
                    requests.get(url + "/healthz", timeout=2).status_code == 200
                    and len(children(proc.pid)) >= 2
                ):
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        pids = [proc.pid, *children(proc.pid)]
        # One panel page per 100 streams (a page per stream would bench the page, not the stream).
        paths = [stream_path(url, f"BENCH-{i}") for i in range(max(1, n // 100))]
        time.sleep(3)
        before = pss_kib(pids)
        opened = time.perf_counter()
        streams = []
        for i in range(n):
            streams.append(await open_stream(port, paths[i % len(paths)]))
        open_seconds = time.perf_counter() - opened
        await asyncio.sleep(5)
        after = pss_kib(pids)
        cpu0, t0 = cpu_seconds(pids), time.perf_counter()
        await asyncio.sleep(idle_seconds)
        cpu = cpu_seconds(pids) - cpu0
        idle = time.perf_counter() - t0
        # Delivery: a Disconnect per call, timed from the post to the event on a stream of it.
        latencies = []
        for i, _ in enumerate(paths[:20]):
            reader = streams[i][0]
            sent = time.perf_counter()
            event = {
                "eventType": "Call", "username": "demo", "action": "Disconnect",
                "ucid": f"BENCH-{i}", "monitor_ucid": "", "agent_id": "agent1", "did": DID,
                "event_time": "2026-12-03 10:35:54",
            }  # fmt: skip
            receiver = f"{url}/cloudagent/events/{TOKEN}/call"
            await asyncio.to_thread(requests.post, receiver, json=event, timeout=60)
            while b"event: call-ended" not in await asyncio.wait_for(reader.readline(), 60):
                pass
            latencies.append(time.perf_counter() - sent)
        for _, writer in streams:
            writer.close()
        return {
            "streams": n,
            "open_seconds": round(open_seconds, 2),
            "pss_before_mib": round(before / 1024, 1),
            "pss_after_mib": round(after / 1024, 1),
            "pss_per_panel_kib": round((after - before) / n, 1),
            "idle_window_s": round(idle, 1),
            "cpu_percent_of_one_core": round(100 * cpu / idle, 2),
            "cpu_us_per_panel_per_s": round(1e6 * cpu / idle / n, 3),
            "delivery_p50_ms": round(1000 * median(latencies)),
            "delivery_max_ms": round(1000 * max(latencies)),
            "delivery_p99_ms": round(1000 * percentile(latencies, 99)),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
        upstream.stop()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    print(json.dumps(asyncio.run(run(n)), indent=2))


if __name__ == "__main__":
    main()
