"""The work one panel load and one save do in process, counted, not timed:
`python -m bench.work` (a few seconds), `python -m bench.work --top 30` for what does it.

Counts are the same on a fast machine and a busy one: Python function calls and calls into C
(`sys.setprofile`, this thread only: the request runs in it), SQL statements sent to the
database, and templates rendered. tests/bench/test_work_budget.py holds them to the budget in
tests/data/work_budget.json, so a change that makes either path do much more work fails on
the day it is written, whatever the machine's speed (docs/benchmarks.md, "The work budget").
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from flask import Flask, template_rendered
from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
DID = "914071327663"  # the simulator's sales line: 5 dispositions, one with callbacks
SAMPLES = 5  # the fewest of these: the steady path, without a once-a-minute refresh
_FIELD = {
    name: re.compile(rf'name="{name}"[^>]*value="([^"]*)"') for name in ("context", "csrf_token")
}


@dataclass
class Work:
    calls: int = 0  # Python functions and C functions called
    sql: int = 0  # statements sent to the database
    renders: int = 0  # templates rendered
    by_function: collections.Counter = field(default_factory=collections.Counter, repr=False)

    def summary(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if k != "by_function"}


@contextmanager
def counting(app: Flask) -> Iterator[Work]:
    """Count the work done in this thread (and the app's SQL and renders) inside the block."""
    work = Work()
    engine = app.extensions["audit"].engine

    def on_call(frame, what, arg) -> None:  # noqa: ANN001 (sys.setprofile's signature)
        if what == "call":
            work.calls += 1
            code = frame.f_code
            work.by_function[f"{code.co_filename.rpartition('/')[2]}:{code.co_name}"] += 1
        elif what == "c_call":
            work.calls += 1
            work.by_function[f"C:{getattr(arg, '__qualname__', arg)}"] += 1

    def on_sql(*_args: object) -> None:
        work.sql += 1

    def on_render(*_args: object, **_kwargs: object) -> None:
        work.renders += 1

    event.listen(engine, "before_cursor_execute", on_sql)
    template_rendered.connect(on_render, app)
    sys.setprofile(on_call)
    try:
        yield work
    finally:
        sys.setprofile(None)
        template_rendered.disconnect(on_render, app)
        event.remove(engine, "before_cursor_execute", on_sql)


def _fields(html: str) -> dict[str, str]:
    return {name: pattern.search(html).group(1) for name, pattern in _FIELD.items()}


def measure(app: Flask, start_call: Callable[[], str], secret: str) -> dict[str, Work]:
    """The fewest of SAMPLES panel loads and saves (each save on a call of its own, queued),
    after one of each to warm the caches up. `start_call()` starts a live call: its ucid."""
    from webapp.panel.launch import signed_query

    client = app.test_client()

    def panel_url() -> str:
        query = signed_query({"ucid": start_call(), "agentID": "agent1", "did": DID}, secret)
        return "/disposition?" + urlencode(query)

    def one_save(url: str) -> Callable[[], object]:
        form = _fields(client.get(url).get_data(as_text=True))
        form |= {"disposition": "Interested", "comments": "Wants a brochure"}
        return lambda: client.post("/disposition/save", data=form, headers={"HX-Request": "true"})

    headers = {"Accept-Encoding": "gzip, br"}
    client.get(panel_url(), headers=headers)
    one_save(panel_url())()
    panels, saves = [], []
    for _ in range(SAMPLES):
        url = panel_url()
        with counting(app) as work:
            assert client.get(url, headers=headers).status_code == 200
        panels.append(work)
        save = one_save(panel_url())
        with counting(app) as work:
            answer = save()
        assert 'data-outcome="queued"' in answer.get_data(as_text=True), answer.status
        saves.append(work)
    return {"panel": min(panels, key=lambda w: w.calls), "save": min(saves, key=lambda w: w.calls)}


def measured() -> dict[str, Work]:
    """The work of the app as the tests configure it, against the simulator in this process."""
    sys.path.insert(0, str(ROOT))
    from tests.helpers import LAUNCH_SECRET, widget_env
    from webapp import create_app
    from webapp.simulator import Simulator, start_server

    simulator = Simulator()
    upstream = start_server(simulator)
    try:
        with tempfile.TemporaryDirectory() as data:
            app = create_app(widget_env(upstream.url, data))
            try:
                return measure(app, lambda: simulator.start_call("agent1", DID).ucid, LAUNCH_SECRET)
            finally:
                app.extensions["audit"].close()
    finally:
        upstream.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.work", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--top", type=int, default=0, help="list the N most called functions")
    args = parser.parse_args(argv)
    work = measured()
    print(json.dumps({name: w.summary() for name, w in work.items()}, indent=2))
    for name, w in work.items():
        if args.top:
            print(f"\n{name}: the {args.top} most called")
            for function, count in w.by_function.most_common(args.top):
                print(f"  {count:6d}  {function}")


if __name__ == "__main__":
    main()
