"""Where a request's CPU goes, by part: `python -m bench.profile panel|save|hello`.

Starts the bench simulator answering at once and the widget and hello servers with one worker
each (bench/services.py), drives one of them with the closed loop of bench/outside.py (8
clients), and records that worker with py-spy (`--gil`: only the thread holding the GIL is
sampled, so waits are left out; C code that releases the GIL is missed too). Each sample is
given to the first part, in PARTS order, that has a function on its stack; the table gives
each part's share and, with `--cpu-ms` (the CPU per request bench.outside measured without the
profiler), its milliseconds. py-spy is not in the project's requirements: install it apart
(`python3 -m venv /tmp/prof && /tmp/prof/bin/pip install py-spy`) and pass `--py-spy`.
Root can attach to the worker; others may need `sysctl kernel.yama.ptrace_scope=0`.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from .common import process_tree
from .load import open_panels
from .outside import AGENTS, Figures
from .services import Service, start_services

# (part, functions whose presence on a stack puts the sample in it), first match wins.
PARTS: list[tuple[str, tuple[str, ...]]] = [
    ("the audit trail", ("AuditLog.", "GroupCommit.", "AuditRateLimiter.")),
    ("the CloudAgent call", ("CloudAgentClient.",)),
    ("template render", ("render_template", "Template.render", "Shells.page")),
    ("gzip", ("compress (compression.py)",)),
    ("the request's log line", ("_finish (logs.py)", "_start (logs.py)")),
    (
        "launch check, context and CSRF tokens",
        ("verify (launch.py)", "issue (context.py)", "read (context.py)", "csrf_"),
    ),
    ("WTForms", ("DispositionForm", "_form (views.py)", "Form.validate")),
    ("security headers", ("secure_headers",)),
    ("the rest of the view", ("launch (views.py)", "save (views.py)")),
    ("Flask and werkzeug", ("Flask.",)),
    (
        "from the loop to Flask's thread and back",
        (
            "ThreadedWSGI",
            "Pool.",
            "_settle (bridge.py)",
            "WSGIResponder",
            "WSGIMiddleware",
            "_chain_future",
            "_WorkItem",
            "run_coroutine_threadsafe",
            "call_soon_threadsafe",
            "run_in_executor",
            "Future.",
        ),
    ),  # fmt: skip
    (
        "gunicorn's asgi worker",
        ("ASGIProtocol", "PythonProtocol", "BaseEventLoop", "_SelectorSocketTransport"),
    ),
]
_IDLE = ("Condition.wait", "SimpleQueue.get", "EpollSelector.select", "Future.result")
_FRAME = re.compile(r" \(([^)]*/)?([^/)]+):\d+\)")


def parts(raw: str) -> tuple[Counter[str], int]:
    """Samples per part from py-spy's raw output (`stack;stack;... count` per line)."""
    counts: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, number = line.rpartition(" ")
        frames = [
            _FRAME.sub(r" (\2)", f)
            for f in stack.split(";")
            if not f.startswith(("thread (", "process "))
        ]
        if not frames or not number.isdigit() or any(i in frames[-1] for i in _IDLE):
            continue
        total += int(number)
        joined = ";".join(frames)
        part = next((name for name, marks in PARTS if any(m in joined for m in marks)), "other")
        counts[part] += int(number)
    return counts, total


def record(which: str, seconds: int, py_spy: str, native: bool = False) -> str:
    """py-spy's raw samples of the widget's (or hello's) one worker under the closed loop."""
    services: list[Service] = []
    tmp = Path(tempfile.mkdtemp(prefix="widget-profile-"))
    try:
        running = start_services(tmp, services, latency=0, agents=AGENTS, workers=1)
        calls = {a: running.calls[a] for a in running.agents[:AGENTS]}
        config = {
            "widget_calls": calls,
            "launch_secret": running.launch_secret,
            "widget_url": running.widget_url,
            "disposition": running.sim_info["dispositions"][0],
        }
        figures = Figures(running, asyncio.run(open_panels(config, sorted(calls))))
        figures.run(which, 1000, 8)  # warm
        server = running.hello if which == "hello" else running.widget
        worker = process_tree(server.proc.pid)[1]
        out = tmp / "samples.txt"
        command = [py_spy, "record", "-p", str(worker), "-d", str(seconds), "-r", "250"]
        if native:  # C frames too (a crc32, a struct pack): for reading stacks, not parts
            command.append("--native")
        spy = subprocess.Popen(  # noqa: S603
            [*command, "--gil", "--threads", "-f", "raw", "-o", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while spy.poll() is None:
            figures.sign()
            figures.run(which, 500, 8)
        return out.read_text()
    finally:
        for service in reversed(services):
            service.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("which", choices=["panel", "save", "hello"])
    parser.add_argument("--seconds", type=int, default=12)
    parser.add_argument("--py-spy", default="py-spy")
    parser.add_argument("--cpu-ms", type=float, help="CPU per request, from bench.outside")
    parser.add_argument("--native", action="store_true", help="record C frames too (slower)")
    parser.add_argument("--raw", type=Path, help="also keep py-spy's raw samples in this file")
    args = parser.parse_args(argv)
    raw = record(args.which, args.seconds, args.py_spy, args.native)
    if args.raw:
        args.raw.write_text(raw)
    counts, total = parts(raw)
    print(f"| part ({args.which}, {total} samples) | share | ms per request |")
    print("| --- | --- | --- |")
    for name, count in counts.most_common():
        share = count / total
        ms = f"{share * args.cpu_ms:.2f}" if args.cpu_ms else ""
        print(f"| {name} | {100 * share:.0f} % | {ms} |")


if __name__ == "__main__":
    main()
