"""Plain helpers shared by the test modules: constants, the settings the tests give the app,
an opened panel, and the production server in a subprocess.

Test modules import constants and pure functions from here (`DID`, `outcome_of`); anything
bound to a fixture's app, client or server reaches them as a fixture from tests/conftest.py
(`panels`, `make_app`, `production_server`), as Flask's tutorial hands out `AuthActions`.
Functions that multiprocessing runs in spawned children live here too: a child imports them
by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import logging
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from bench.common import children, free_port
from webapp.cloudagent import (
    CloudAgentClient,
    RedisTokenStore,
    SqliteTokenStore,
    Token,
    TokenConflict,
)
from webapp.cloudagent.tokens import CONFLICT_HOLD
from webapp.panel.launch import signed_query

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
# Every response of CloudAgent's API page, as data (the brief's table, restated).
DOCUMENTED_RESPONSES = json.loads(
    (ROOT / "tests" / "data" / "cloudagent_responses.json").read_text(encoding="utf-8")
)["cases"]

DID = "914071327663"
# The wrap-up clock's accessible name in English: role timer, "Wrap-up time left 1:59".
WRAPUP_TIMER = re.compile(r"^Wrap-up time left")
SUPPORT = "918069100000"  # the demo account's second line: 60 dispositions, callbacks
LAUNCH_SECRET = "launch-secret-for-tests-0123456789"
CRM_ORIGIN = "https://crm.example.com"
# The smallest production configuration (no simulator, no demo mode).
LIVE = {
    "WIDGET_CLOUDAGENT_USERNAME": "acme",
    "WIDGET_CLOUDAGENT_API_KEY": "k" * 32,
    "WIDGET_SECRET_KEY": "s" * 32,
    "WIDGET_LAUNCH_SECRET": "l" * 32,
}
# Seconds the app waits for CloudAgent's answer in tests that do not test that wait: wide, so
# a busy machine never turns a normal answer into "CloudAgent did not answer in time". Tests
# of a lost answer set a shorter one and make the simulator answer well after it.
READ_TIMEOUT = 60
# What CloudAgent says when it refuses our sign-in: never to be echoed to the agent.
UPSTREAM_AUTH_TEXTS = (
    "invalid token",
    "token expired",
    "token generation limit",
    "invalid username or apikey",
    "token should not be null",
)


# -- the app's settings -----------------------------------------------------------------------


def widget_env(upstream_url: str, data_dir: str | os.PathLike, **extra: str) -> dict[str, str]:
    """WIDGET_* settings of a production-like app talking to `upstream_url`, then `extra`."""
    return {
        "WIDGET_CLOUDAGENT_URL": upstream_url,
        "WIDGET_CLOUDAGENT_USERNAME": "demo",
        "WIDGET_CLOUDAGENT_API_KEY": "demo-api-key",
        "WIDGET_SECRET_KEY": "secret-key-for-tests-0123456789",
        "WIDGET_LAUNCH_SECRET": LAUNCH_SECRET,
        "WIDGET_FRAME_ANCESTORS": CRM_ORIGIN,
        "WIDGET_DATA_DIR": str(data_dir),
        "WIDGET_CLOUDAGENT_CONNECT_TIMEOUT": "30",
        "WIDGET_CLOUDAGENT_READ_TIMEOUT": str(READ_TIMEOUT),
        "WIDGET_ALLOW_INSECURE": "1",  # the simulator on loopback speaks http://
    } | extra


def server_env(upstream_url: str, data_dir: str | os.PathLike, **settings: str) -> dict[str, str]:
    """A production server's environment for the tests: this process's without its WIDGET_*
    variables, the tests' widget settings for `upstream_url`, then `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIDGET_")}
    return env | widget_env(upstream_url, data_dir) | settings


def marked_block(document: str, marker: str) -> str:
    """The fenced block right after `<!-- marker -->` in a markdown document: its text."""
    found = re.findall(rf"<!-- {re.escape(marker)} -->\n```[\w-]*\n(.*?)\n```\n", document, re.S)
    assert len(found) == 1, f"expected one block marked {marker!r}, found {len(found)}"
    return found[0]


# -- the panel, as the CRM's iframe and htmx use it ---------------------------------------------


def newest_embed_release() -> tuple[str, str]:
    """The newest published release of embed.js and its integrity (tests/data)."""
    releases = json.loads((ROOT / "tests" / "data" / "embed_releases.json").read_text())
    version = max(releases, key=lambda v: tuple(map(int, v.split("."))))
    return version, releases[version]


def launch_path(ucid: str, agent: str = "agent1", did: str = DID, **extra: str) -> str:
    """A signed launch link's path and query, as a CRM makes it now."""
    query = signed_query({"ucid": ucid, "agentID": agent, "did": did} | extra, LAUNCH_SECRET)
    return "/disposition?" + urlencode(query)


def hidden(html: str, name: str) -> re.Match | None:
    return re.search(rf'name="{name}"[^>]*value="([^"]*)"|value="([^"]*)"[^>]*name="{name}"', html)


def hidden_value(html: str, name: str) -> str:
    match = hidden(html, name)
    assert match, f"no hidden {name} in the page:\n{html[:2000]}"
    return next(g for g in match.groups() if g is not None)


def outcome_of(response) -> str | None:
    """The data-outcome of a save's answer (a Flask test response or a requests response)."""
    text = response.get_data(as_text=True) if hasattr(response, "get_data") else response.text
    match = re.search(r'data-outcome="([a-z_]+)"', text)
    return match.group(1) if match else None


class Panel:
    """An opened panel on a Flask test client: its page, and what a save posts."""

    def __init__(self, web, path: str) -> None:
        self.web = web
        self.response = web.get(path)
        self.html = self.response.get_data(as_text=True)
        assert "Set-Cookie" not in self.response.headers

    def field(self, name: str) -> str:
        return hidden_value(self.html, name)

    def save(self, **fields):
        form = {
            "context": self.field("context"),
            "csrf_token": self.field("csrf_token"),
            "disposition": "Interested",
            "comments": "",
        } | fields
        form = {k: v for k, v in form.items() if v is not None}
        response = self.web.post("/disposition/save", data=form, headers={"HX-Request": "true"})
        assert "Set-Cookie" not in response.headers
        return response


class Panels:
    """Opens panels the way a CRM's iframe does, on a test client (the `panels` fixture)."""

    def __init__(self, get_web: Callable[[], object]) -> None:
        self._get_web = get_web  # called when first needed: a test may never use the default

    def open(self, ucid: str, agent: str = "agent1", did: str = DID, **extra: str) -> Panel:
        return Panel(self._get_web(), launch_path(ucid, agent, did, **extra))

    def on(self, web) -> Panels:
        """The same, on another app's test client."""
        return Panels(lambda: web)


# -- several processes --------------------------------------------------------------------------


def save_many(url: str, store: str, ucid: str, did: str, calls: int) -> list[str]:
    """One worker process (spawned): its own client and token store connection, `calls` saves
    on 8 threads. `store` is a SQLite file, or a redis:// URL for the shared Redis store."""
    if store.startswith("redis://"):
        from webapp.stores import redis_client

        token_store = RedisTokenStore(redis_client(store))
    else:
        token_store = SqliteTokenStore(store)
    client = CloudAgentClient(
        base_url=url,
        username="demo",
        api_key="demo-api-key",
        token_store=token_store,
        connect_timeout=30,
        read_timeout=READ_TIMEOUT,
    )

    def save(i: int) -> str:
        outcome = client.set_disposition(
            agent_id="agent1", did=did, ucid=ucid, disposition="Interested", comments=f"#{i}"
        )
        return outcome.kind

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(save, range(calls)))


def prepare_schema_in_child(url: str) -> int:
    """The audit schema's start-up step, in a spawned process."""
    from webapp.audit import prepare_schema

    return prepare_schema(url)


def all_at_once(work: Callable, items: Iterable, timeout: float = 120) -> list:
    """`work(item)` for every item, each on its own thread, released together by a barrier."""
    items = list(items)
    barrier = threading.Barrier(len(items))

    def one(item):
        barrier.wait(timeout=timeout)
        return work(item)

    with ThreadPoolExecutor(len(items)) as pool:
        return list(pool.map(one, items))


class FakeFetch:
    """A disposition-list fetch for the caches: answers `results` in turn (the last one from
    then on) and counts its calls. With a `gate`, each call waits until the test opens it, so
    a test decides what happens while a fetch is in flight instead of racing a sleep."""

    def __init__(self, *results, gate: threading.Event | None = None) -> None:
        self.results = list(results)
        self.calls = 0
        self.gate = gate
        self.entered = threading.Event()  # a call has started
        self.lock = threading.Lock()

    def __call__(self, agent_id: str, did: str, ucid: str):
        with self.lock:
            self.calls += 1
            result = self.results.pop(0) if len(self.results) > 1 else self.results[0]
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(300), "the test never opened the gate"
        return result


class Clock:
    """A clock that moves only when a test says so."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def wait_for(predicate: Callable[[], object], timeout: float = 60.0, what: str = "") -> None:
    """Until `predicate()` holds. The deadline only stops a hung test: it returns as soon as
    the condition holds, so a wide one costs nothing on a fast machine."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting{': ' + what if what else ''}"
        time.sleep(0.005)


def summary(responses: Iterable[requests.Response]) -> str:
    """Counts of (status, outcome), and one sample body of each, for failure messages."""
    counts: dict = {}
    samples: dict = {}
    for response in responses:
        key = (response.status_code, outcome_of(response))
        counts[key] = counts.get(key, 0) + 1
        samples.setdefault(key, response.text[:400])
    return f"counts={counts}\nsamples={samples}"


class GunicornServer:
    """gunicorn serving wsgi:app as in production, with `env` (WIDGET_BIND is set here)."""

    def __init__(self, data_dir: Path, env: dict[str, str], *, name="gunicorn", workers=4,
                 probe="/healthz") -> None:  # fmt: skip
        data_dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.expected_workers = workers
        self.probe = probe
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.env = env | {"WIDGET_BIND": f"127.0.0.1:{port}"}
        # A file, not a pipe: nobody reads while the test runs, and a full pipe would block.
        self.log_path = data_dir / "gunicorn.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(GUNICORN), "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.workers: list[int] = []
        self._ids = iter(range(10**9))
        self._ids_lock = threading.Lock()
        self.sent: dict[str, str] = {}  # request id -> this server's name, for every save

    def log(self, lines: int = 40) -> str:
        """The server's output for a failure message, condensed: gunicorn's own lines, the
        service's warnings and errors, its mints and any 5xx, repeats counted, not the
        thousands of per-request INFO lines."""
        every = self.log_path.read_text(errors="replace").splitlines()
        counts: dict[str, int] = {}
        for line in every:
            try:
                record = json.loads(line)
            except ValueError:
                key = line  # gunicorn's own, timestamped
            else:
                message = str(record.get("message"))
                if record.get("level") == "INFO" and not (
                    message.startswith("cloudagent: minted")
                    or (message == "request" and int(record.get("status", 0)) >= 500)
                ):
                    continue
                if message == "request":
                    message = json.dumps(record)
                key = f"{record.get('level')} {record.get('logger')}: {message}"
            counts[key] = counts.get(key, 0) + 1
        shown = [f"{n} x {key}" if n > 1 else key for key, n in counts.items()][-lines:]
        return f"{self.name} output ({len(every)} lines), condensed:\n" + "\n".join(shown)

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until the probe answers 200 and every worker has forked."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"{self.name} exited with {self.proc.returncode} during start-up:\n{self.log()}"
                )
            workers = children(self.proc.pid)
            try:
                ready = requests.get(self.url + self.probe, timeout=10).status_code == 200
            except requests.RequestException:
                ready = False
            # The probe answers once one worker is up; wait for all of them to have forked.
            if ready and len(workers) >= self.expected_workers:
                self.workers = workers
                return
            time.sleep(0.1)
        pytest.fail(
            f"{self.name} not ready within {timeout:g} s (workers {children(self.proc.pid)}, "
            f"{self.probe} failing or fewer than {self.expected_workers} workers):\n{self.log()}"
        )

    def open_panel(self, ucid: str, agent: str = "agent1") -> dict[str, str]:
        """GET a panel as the iframe does; its context and CSRF token, for saves."""
        response = requests.get(
            self.url + launch_path(ucid, agent=agent), headers={"Connection": "close"}, timeout=300
        )
        assert response.status_code == 200, (
            f"GET panel: {response.status_code} {response.text[:300]}\n{self.log()}"
        )
        assert '<option value="Interested">' in response.text, "the disposition list did not load"
        return {name: hidden_value(response.text, name) for name in ("context", "csrf_token")}

    def save(self, panel: dict[str, str], **fields: str) -> requests.Response:
        """POST a save as htmx does, tagged with a request id this server remembers."""
        with self._ids_lock:
            request_id = f"test-save-{self.name}-{next(self._ids):06d}"
            self.sent[request_id] = self.name
        return requests.post(
            self.url + "/disposition/save",
            data=panel | {"disposition": "Interested", "comments": ""} | fields,
            headers={"HX-Request": "true", "Connection": "close", "X-Request-ID": request_id},
            timeout=300,
        )

    def check_workers_unchanged(self) -> None:
        """No worker died, timed out or was replaced while the test ran."""
        assert self.proc.poll() is None, f"{self.name} exited:\n{self.log()}"
        assert children(self.proc.pid) == self.workers, (
            f"worker pids changed from {self.workers} to {children(self.proc.pid)}:\n{self.log()}"
        )

    def stop(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=25)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
        finally:
            self._log.close()


# -- ASGI in process: the asgi worker's calls, without the worker -------------------------------


def in_loop(coroutine_function: Callable[[], Any]) -> Any:
    """Run `coroutine_function()` in a loop of its own, in a thread of its own: a browser
    test's Playwright may hold this thread's event loop."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, coroutine_function()).result()


def http_scope(method="GET", path="/x", query=b"", headers=()) -> dict[str, Any]:
    """An ASGI `http` scope as gunicorn's asgi worker makes it."""
    return {
        "type": "http", "method": method, "path": path, "query_string": query,
        "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 8000),
        "client": ("10.0.0.7", 50123), "root_path": "", "headers": list(headers),
    }  # fmt: skip


# -- the push channel on a production server ---------------------------------------------------


def events_url(server_url: str, ucid: str) -> tuple[str, str]:
    """A panel opened on the server as the iframe does: its event stream's URL (the page's
    data-events), and the page."""
    page = requests.get(server_url + launch_path(ucid), timeout=60)
    assert page.status_code == 200, page.text[:300]
    html = page.text
    start = html.index('data-events="') + len('data-events="')
    return server_url + html[start : html.index('"', start)].replace("&amp;", "&"), html


class EventStream:
    """A panel's open event stream, read in a thread: its messages as (event, id, data);
    `ended` is set once the server has ended it (or it broke). Once the constructor returns
    the server has registered the stream (it does so before it answers), so an event posted
    from then on reaches it."""

    def __init__(self, url: str, timeout: float = 60.0, **headers: str) -> None:
        self.timeout = timeout
        self.response = requests.get(url, stream=True, timeout=timeout, headers=headers)
        assert self.response.status_code == 200, self.response.text
        self.messages: queue.Queue = queue.Queue()
        self.ended = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            for line in self.response.iter_lines(decode_unicode=True):
                if line:
                    name, _, value = line.partition(": ")
                    fields[name] = value
                elif "data" in fields:
                    self.messages.put(
                        (
                            time.monotonic(),
                            fields["event"],
                            int(fields.get("id") or 0),
                            json.loads(fields["data"]),
                        )
                    )
                    fields = {}
                else:
                    fields = {}
        except (requests.RequestException, OSError, AttributeError, ValueError):  # closed
            pass
        finally:
            self.ended.set()

    def next_timed(self) -> tuple[float, str, int, dict]:
        """The next message and when it arrived (time.monotonic())."""
        return self.messages.get(timeout=self.timeout)

    def next(self) -> tuple[str, int, dict]:
        return self.next_timed()[1:]

    def close(self) -> None:
        """Closed at once: the reader thread, blocked in a read until the next heartbeat
        (15 s), holds the response's buffer, so the socket is shut down under it first."""
        sock = getattr(self.response.raw.connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.response.close()


def two_push_instances(
    start: Callable[..., GunicornServer],
    upstream_url: str,
    *,
    redis_url: str,
    database_url: str,
    events_token: str,
    workers: int = 2,
    **settings: str,
) -> list[GunicornServer]:
    """Two instances as behind a load balancer, with the push channel on: gunicorn's asgi
    worker from gunicorn.conf.py, `workers` each, sharing one Redis and one PostgreSQL.
    `start` is the production_server fixture."""
    return [
        start(
            upstream_url,
            name=name,
            workers=workers,
            probe="/readyz",
            WIDGET_INSTANCE_NAME=name,
            WIDGET_WORKERS=str(workers),
            WIDGET_REDIS_URL=redis_url,
            WIDGET_DATABASE_URL=database_url,
            WIDGET_EVENTS_TOKEN=events_token,
            WIDGET_WRAPUP_SECONDS="120",
            **settings,
        )
        for name in ("widget-a", "widget-b")
    ]


# -- the panel in a browser (Playwright's page and frame objects) ------------------------------


def open_call(page, sites, ucid: str, **query: str):
    """The CRM page for a call, framing the panel; the panel's frame once it can be used."""
    params = "&".join(f"{k}={v}" for k, v in ({"ucid": ucid} | query).items())
    page.goto(f"{sites.crm}/call?{params}")
    frame = page.frame_locator("#widget")
    frame.get_by_role("button", name="Save disposition").wait_for()
    return frame


def disconnect_event(ucid: str) -> dict:
    """A Subscribe API call event: the call on the sales line ended (as CloudAgent posts it)."""
    return {
        "eventType": "Call", "username": "demo", "action": "Disconnect", "ucid": ucid,
        "monitor_ucid": "", "agent_id": "agent1", "did": DID,
        "event_time": "2026-12-03 10:35:54",
    }  # fmt: skip


def call_summary_of(ucid: str, disposition: str) -> dict:
    """The Callback URL's call summary: what CloudAgent kept for the call."""
    return {
        "UCID": ucid, "AgentID": "agent1", "Did": DID, "Disposition": disposition,
        "EndTime": "2026-12-03 10:36:30", "UserName": "demo", "Apikey": "demo-api-key",
    }  # fmt: skip


def host_says(page, event: str, **fields) -> None:
    """The CRM page posts to the widget's frame, as the guide shows, to the widget's origin."""
    message = {"type": "cloudagent-disposition-host", "version": 1, "event": event} | fields
    page.evaluate(
        """([message, origin]) =>
            document.getElementById("widget").contentWindow.postMessage(message, origin)""",
        [message, page.evaluate("new URL(document.getElementById('widget').src).origin")],
    )


def outcome(frame) -> tuple[str, str]:
    """The outcome shown in the panel's status region: its kind and its text."""
    element = frame.get_by_role("status").locator("[data-outcome]")
    element.wait_for()
    return element.get_attribute("data-outcome"), element.inner_text()


def received(page, count: int = 1, event: str = "outcome") -> list:
    """The CRM page's messages of one event (outcome by default), once there are `count`."""
    found = f"window.received.filter((m) => m.data && m.data.event === {json.dumps(event)})"
    page.wait_for_function(f"{found}.length >= {count}")
    return page.evaluate(found)


def choose(frame, disposition: str = "Interested", comments: str | None = None) -> None:
    frame.get_by_label("Disposition", exact=True).select_option(disposition)
    if comments is not None:
        frame.get_by_label("Comments").fill(comments)


# Each state of the panel, and how a test gets there: a step with the simulator, the agent to
# open it as, CloudAgent down, or a save with no disposition chosen (the browser check lifted).
PANEL_STATES = {
    "idle": None,
    "queued": lambda sim, ucid: None,
    "saved": lambda sim, ucid: sim.hang_up(ucid),
    "already_disposed": lambda sim, ucid: sim.expire_wrapup(ucid),
    "rejected": "agent2",
    "unavailable": "down",
    "invalid": "no-choice",
}


@contextmanager
def panel_in_state(browser, sites, simulator, monkeypatch, state: str, width: int, **query: str):
    """A CRM page `width` px wide framing a panel in `state` (see PANEL_STATES), in whatever
    language `query` asks for: the frame's element. By ids, which every language shares."""
    context = browser.new_context(viewport={"width": width, "height": 640})
    page = context.new_page()
    try:
        call = simulator.start_call("agent1", DID)
        step = PANEL_STATES[state]
        agent = "agent2" if step == "agent2" else "agent1"
        params = urlencode({"ucid": call.ucid, "agent": agent, "width": width} | query)
        page.goto(f"{sites.crm}/call?{params}")
        frame = page.frame_locator("#widget")
        save = frame.locator("#save")
        save.wait_for()
        if state != "idle":
            if step != "no-choice":
                frame.locator("#disposition").select_option("Interested")
                frame.locator("#comments").fill("Customer asked for a call back next week.")
            if callable(step):
                step(simulator, call.ucid)
            if step == "down":
                monkeypatch.setattr(
                    sites.widget_app.extensions["cloudagent"], "base_url", "http://127.0.0.1:9"
                )
            if step == "no-choice":
                frame.locator("#disposition").evaluate("el => el.removeAttribute('required')")
            save.click()
            assert outcome(frame)[0] == state
        yield page.locator("#widget")
    finally:
        context.close()


def assert_accessible_and_narrow(frame_element, width: int, shoot, name: str) -> None:
    """The framed panel: axe finds nothing, no horizontal scroll at `width`; a screenshot."""
    from axe_playwright_python.sync_playwright import Axe  # browser tests only

    widget = frame_element.element_handle().content_frame()  # the panel's own document
    violations = Axe().run(widget)
    assert violations.violations_count == 0, violations.generate_report()
    overflow = widget.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"horizontal scroll of {overflow}px at {width}px"
    shoot(frame_element, name)


# -- real Redis and PostgreSQL servers (tests/conftest.py's fixtures) -----------------------


def shared_state_missing(what):
    """Skip loudly on a developer's machine without the servers; fail under CI=true."""
    if os.environ.get("CI"):
        pytest.fail(f"{what}: required under CI (.ci/run installs it)")
    pytest.skip(f"SHARED-STATE TESTS SKIPPED: {what}")


def wait_started(check, what, timeout, proc, log_path):
    """Until `check()` is true, or fail with the server's log once it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.05)
    output = Path(log_path).read_text(errors="replace")[-3000:]
    pytest.fail(f"{what} did not start (exit {proc.poll()}):\n{output}")


REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """redis-server on a loopback port, with no persistence: a restart loses everything,
    which is the worst case the service must survive."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="widget-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None
        self.start()

    def start(self):
        log_path = self.dir / "redis.log"
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.dir),
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_started(lambda: self.client().ping(), "redis-server", 60, self.proc, log_path)

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=2)

    def kill(self):
        """Gone at once, as in a crash: no save, no goodbye to the clients."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._log.close()

    def restart(self):
        self.kill()
        self.start()

    def stop(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def pg_bindir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_pg_version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _pg_version(path):
    part = Path(path).parts[-3]
    return int(part) if part.isdigit() else 0


class PostgresServer:
    """A throw-away cluster: initdb in a temporary folder, trust auth on loopback, no fsync.
    PostgreSQL refuses to run as root: as root it runs as the `postgres` user."""

    def __init__(self, bindir):
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="widget-pg-"))
        self.port = free_port()
        self.as_user = []
        if os.geteuid() == 0:
            import pwd

            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                shared_state_missing("running as root and no 'postgres' user to run PostgreSQL as")
            os.chown(self.dir, account.pw_uid, account.pw_gid)
            # setpriv execs postgres itself (no parent in between), so signals reach it.
            self.as_user = [
                "setpriv",
                f"--reuid={account.pw_uid}",
                f"--regid={account.pw_gid}",
                "--clear-groups",
                "--",
            ]
        data = self.dir / "data"
        done = subprocess.run(
            [
                *self.as_user,
                str(bindir / "initdb"),
                "-D", str(data),
                "-U", "postgres",
                "--auth=trust",
                "-E", "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            pytest.fail(f"initdb failed:\n{done.stdout}\n{done.stderr}")
        self.proc = None
        self.start()

    def start(self):
        log_path = self.dir / "postgres.log"
        self._log = open(log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                *self.as_user,
                str(self.bindir / "postgres"),
                "-D", str(self.dir / "data"),
                "-k", str(self.dir),
                "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1",
                "-c", "fsync=off",
                "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off",
                "-c", "max_connections=300",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_started(self._ready, "postgres", 120, self.proc, log_path)

    def url(self, database="postgres"):
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def connect(self, database="postgres"):
        import psycopg

        return psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname={database}",
            autocommit=True,
            connect_timeout=3,
        )

    def _ready(self):
        with self.connect() as conn:
            conn.execute("SELECT 1")
        return True

    def create_database(self):
        name = f"widget_{uuid.uuid4().hex[:12]}"
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def block(self, database):
        """The database goes away: no new connections, every open one terminated."""
        with self.connect() as conn:
            conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (database,),
            )

    def unblock(self, database):
        with self.connect() as conn:
            conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')

    def stop(self):
        if self.proc and self.proc.poll() is None:
            # SIGINT: postgres' fast shutdown.
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# -- token conflicts: the rule both token stores keep ------------------------------------------

CONFLICT_ACCOUNT = "https://in1-ccaas-api.ozonetel.com|acme"


class Minter:
    """Mints numbered tokens valid for an hour of the test's clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.count = 0

    def __call__(self) -> Token:
        self.count += 1
        return Token(f"t{self.count}", self.clock() + 3600)


def conflict_errors(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.ERROR and "sign-in conflict" in r.getMessage()
    ]


def check_the_conflict_rule(store, clock: Clock, caplog) -> None:
    """The rule every token store keeps (SQLite here, Redis in tests/shared)."""
    mint = Minter(clock)
    started = clock.now
    first = store.replace(CONFLICT_ACCOUNT, None, mint)
    clock.now += 60
    # One token of ours refused as invalid: someone else may have signed in once. Mint.
    second = store.replace(CONFLICT_ACCOUNT, first.value, mint, conflict=True)
    assert (first.value, second.value) == ("t1", "t2")
    assert store.conflict_until(CONFLICT_ACCOUNT) is None
    # A slow process reporting the same old token again is not a second conflict.
    assert store.replace(CONFLICT_ACCOUNT, first.value, mint, conflict=True) == second
    clock.now += 60
    with caplog.at_level(logging.ERROR, logger="webapp.cloudagent"):
        with pytest.raises(TokenConflict) as held:
            store.replace(CONFLICT_ACCOUNT, second.value, mint, conflict=True)
        assert held.value.until == clock.now + CONFLICT_HOLD
        assert store.conflict_until(CONFLICT_ACCOUNT) == clock.now + CONFLICT_HOLD
        with pytest.raises(TokenConflict):  # every other caller meanwhile: no mint, no log
            store.replace(CONFLICT_ACCOUNT, second.value, mint, conflict=True)
    errors = conflict_errors(caplog)
    assert len(errors) == 1, errors
    assert "another system is minting tokens for the same account" in errors[0]
    assert "Fix: let only this service sign in" in errors[0]
    assert "acme" in errors[0] and "t2" not in errors[0]
    assert mint.count == 2

    # After the hold, one more try; its token refused too starts another hold.
    clock.now += CONFLICT_HOLD + 1
    assert store.conflict_until(CONFLICT_ACCOUNT) is None
    third = store.replace(CONFLICT_ACCOUNT, second.value, mint, conflict=True)
    assert third.value == "t3"
    clock.now += 60
    with pytest.raises(TokenConflict):
        store.replace(CONFLICT_ACCOUNT, third.value, mint, conflict=True)
    # Three attempts are the most an hour of conflicts gets: then none until the first
    # of them leaves the hour, whatever the hold says.
    clock.now += CONFLICT_HOLD + 1
    with pytest.raises(TokenConflict) as held:
        store.replace(CONFLICT_ACCOUNT, third.value, mint, conflict=True)
    assert held.value.until == started + 3600
    assert store.conflict_until(CONFLICT_ACCOUNT) == held.value.until
    assert mint.count == 3 and store.mints_in_window(CONFLICT_ACCOUNT) == 3

    # An hour after the last conflict the account is as if nothing happened: the other
    # party stopped, so the new token stays good.
    clock.now += 3600
    assert store.conflict_until(CONFLICT_ACCOUNT) is None
    fourth = store.replace(CONFLICT_ACCOUNT, third.value, mint, conflict=True)
    assert fourth.value == "t4"
    assert store.replace(CONFLICT_ACCOUNT, None, mint) == fourth
    assert store.conflict_until(CONFLICT_ACCOUNT) is None


# The catalogues (translations/): what `make translations` extracts, and what is wrong with one.
# Babel's own keywords, as pybabel uses them, with ours: lazy_gettext and N_.
GETTEXT_KEYWORDS = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "lazy_gettext": None,
    "N_": None,
}
PLACEHOLDER = re.compile(r"%\((\w+)\)s")
STRAY_PERCENT = re.compile(r"%(?!\(\w+\)s)")  # the page would fail to format it


def marked_texts(root: Path = ROOT) -> set[str | tuple[str, str]]:
    """Every text marked for translation under `root`, extracted as babel.cfg says: a plural
    text as its (singular, plural) pair, as a catalogue holds it."""
    with (root / "babel.cfg").open(encoding="utf-8") as config:
        method_map, options_map = parse_mapping_cfg(config)
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(root), method_map, options_map, keywords=GETTEXT_KEYWORDS
    ):
        if isinstance(message, tuple):
            message = tuple(part for part in message if part) if all(message) else None
        if message:  # not a variable's value: those are marked where they are made
            found.add(message)
    return found


def read_catalogue(path: Path, language: str | None = None) -> Catalog:
    with path.open("rb") as source:
        return read_po(source, locale=language)


def catalogue_problems(catalogue: Catalog, expected: set[str | tuple[str, str]]) -> list[str]:
    """Everything wrong with a language's catalogue, in words."""
    found = []
    ids = {message.id for message in catalogue if message.id}
    found += [f"not in the catalogue: {text!r}" for text in sorted(expected - ids, key=str)]
    found += [f"no longer in the code: {text!r}" for text in sorted(ids - expected, key=str)]
    for message in catalogue:
        if not message.id:
            continue
        english = message.id if isinstance(message.id, tuple) else (message.id,)
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        if not all(forms) or message.fuzzy:
            found.append(f"not translated: {message.id!r}")
            continue
        names = set(PLACEHOLDER.findall(english[-1]))
        for form in forms:
            if set(PLACEHOLDER.findall(form)) != names:
                found.append(f"placeholders differ: {message.id!r} -> {form!r}")
            if STRAY_PERCENT.search(form):
                found.append(f"a % that is not a placeholder: {form!r}")
            if any(mark in form and all(mark not in e for e in english) for mark in "<>&"):
                found.append(f"markup the English does not have: {form!r}")
    found += [f"{message.id!r}: {errors}" for message, errors in catalogue.check()]
    return found
