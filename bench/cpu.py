"""CPU per request inside the app, by part: `python -m bench.cpu` (about 30 s).

`make bench` measures the service as deployed, on a shared machine, so its absolute numbers
move with everything else running. This measures the other way round: the app alone, called
through Flask's test client in this process (no gunicorn, no sockets on the agent's side),
against the bench simulator with no latency in a process of its own, and counts this
process's CPU time (all its threads) per request. Each figure is the median of 5 runs of N
requests. It shows what each part of the panel costs (compression, the request's log line)
and what a save costs, next to the bare Flask "hello" app measured the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from flask import Flask

from .common import free_port, launch_path, median

ROOT = Path(__file__).resolve().parent.parent
LAUNCH_SECRET = secrets.token_hex(24)
_FIELD = {
    name: re.compile(rf'name="{name}"[^>]*value="([^"]*)"') for name in ("context", "csrf_token")
}


def per_request(run: Callable[[int], None], count: int, runs: int = 5) -> float:
    """Median CPU milliseconds of this process per request, over `runs` runs of `count`."""
    run(min(count, 300))  # warm: caches, pools, compiled statements
    samples = []
    for _ in range(runs):
        started = time.process_time()
        run(count)
        samples.append((time.process_time() - started) * 1000 / count)
    return median(samples)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="requests per run (2000)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="widget-cpu-") as tmp:
        info_path = Path(tmp) / "simulator.json"
        command = [sys.executable, "-m", "bench.simulator", "--port", str(free_port())]
        command += ["--latency", "0", "--agents", "200", "--out", str(info_path)]
        sim = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)  # noqa: S603
        try:
            deadline = time.monotonic() + 30
            while not info_path.exists():
                if sim.poll() is not None or time.monotonic() > deadline:
                    sys.exit("bench.cpu: the simulator did not start")
                time.sleep(0.05)
            # The app's log lines (one per request) go where a service's would: not a terminal.
            with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
                rows = measure(json.loads(info_path.read_text()), Path(tmp), args.requests)
        finally:
            sim.terminate()
            sim.wait(10)
    print("| request (in process, Flask test client) | CPU per request |")
    print("| --- | --- |")
    for label, ms in rows:
        print(f"| {label} | {ms:.3f} ms |")


def measure(info: dict, data_dir: Path, count: int) -> list[tuple[str, float]]:
    from webapp import create_app

    app = create_app(
        {
            "WIDGET_CLOUDAGENT_URL": info["url"],
            "WIDGET_CLOUDAGENT_USERNAME": info["widget"]["username"],
            "WIDGET_CLOUDAGENT_API_KEY": info["widget"]["api_key"],
            "WIDGET_SECRET_KEY": secrets.token_hex(24),
            "WIDGET_LAUNCH_SECRET": LAUNCH_SECRET,
            "WIDGET_DATA_DIR": str(data_dir),
            "WIDGET_SAVES_PER_MINUTE": "10000",
            "WIDGET_ALLOW_INSECURE": "1",  # the simulator on loopback speaks http://
        }
    )
    web = app.test_client()
    calls = list(info["widget"]["calls"].items())
    links = [launch_path(c["ucid"], agent, c["did"], LAUNCH_SECRET) for agent, c in calls]
    forms = []
    for link in links:
        page = web.get(link).get_data(as_text=True)
        fields = {name: pattern.search(page).group(1) for name, pattern in _FIELD.items()}
        # What the browser posts: the hidden pause reason goes along, empty.
        forms.append(
            fields
            | {"disposition": info["dispositions"][0], "comments": "bench", "pause_reason": ""}
        )

    def panels(encoding: str) -> Callable[[int], None]:
        def run(n: int) -> None:
            for i in range(n):
                response = web.get(links[i % len(links)], headers={"Accept-Encoding": encoding})
                assert response.status_code == 200

        return run

    def saves(n: int) -> None:
        for i in range(n):
            response = web.post(
                "/disposition/save", data=forms[i % len(forms)], headers={"HX-Request": "true"}
            )
            assert b'data-outcome="queued"' in response.data, response.data[:300]

    hello_app = Flask("hello")
    hello_app.get("/hello")(lambda: "hello")
    hello = hello_app.test_client()

    def hellos(n: int) -> None:
        for _ in range(n):
            assert hello.get("/hello").status_code == 200

    rows = [
        ("bare Flask hello", per_request(hellos, count)),
        ("panel, as served (gzip)", per_request(panels("gzip"), count)),
        ("panel, not compressed", per_request(panels("identity"), count)),
        ("save (CloudAgent answers at once)", per_request(saves, count)),
    ]
    request_log = logging.getLogger("webapp.request")
    request_log.disabled = True
    try:
        quiet = per_request(panels("identity"), count)
        rows.insert(3, ("panel, not compressed, no log line", quiet))
    finally:
        request_log.disabled = False
    return rows


if __name__ == "__main__":
    main()
