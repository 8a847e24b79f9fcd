"""Panels answered on the asgi worker's event loop (webapp.panel.onloop). In process, through
`wsgi:app`'s Router as the worker calls it: a panel from memory runs in the loop's thread and
reads nothing that could wait, even when what it was held for is dropped before it reads.
Then on the production server, one worker, receivers off: the page is the one the pool
would have made, and a panel that must wait for CloudAgent waits in the pool, so panels
answered from memory go on meanwhile. Were it taken on the loop, every connection of the
worker would wait with it."""

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.helpers import DID, SUPPORT, http_scope, in_loop, launch_path
from webapp.push import Router
from webapp.simulator import Simulator, start_server
from webapp.simulator import app as simulator_app

_TOKENS = re.compile(r'(name="(?:context|csrf_token)"[^>]*value=")[^"]*"|(context=)[^"&]*')


def asgi_get(router: Router, path: str) -> tuple[int, bytes, threading.Thread]:
    """GET `path` through the Router as gunicorn's asgi worker calls it, in a loop of its own
    thread: the status, the body, and the loop's thread."""
    route, _, query = path.partition("?")
    scope = http_scope(path=route, query=query.encode(), headers=[(b"host", b"widget")])
    sent = []

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)

    async def serve():
        await router(scope, receive, send)
        return threading.current_thread()

    loop_thread = in_loop(serve)
    return sent[0]["status"], sent[1]["body"], loop_thread


class Reads:
    """Every read of the panel's that could wait, with the thread it ran in, and each of the
    recent choices' reads with its `wait`."""

    def __init__(self, app, monkeypatch):
        self.waiting: list[tuple[str, threading.Thread]] = []
        self.recent: list[tuple[threading.Thread, bool]] = []
        recent, cache = app.extensions["recent"], app.extensions["dispositions"]
        audit_read, fetch, get = recent.audit.recent_dispositions, cache._fetch, recent.get

        def audit(*args):
            self.waiting.append(("audit log", threading.current_thread()))
            return audit_read(*args)

        def cloudagent(*args):
            self.waiting.append(("CloudAgent", threading.current_thread()))
            return fetch(*args)

        def recent_get(agent, did, *, wait=True):
            self.recent.append((threading.current_thread(), wait))
            return get(agent, did, wait=wait)

        monkeypatch.setattr(recent.audit, "recent_dispositions", audit)
        monkeypatch.setattr(cache, "_fetch", cloudagent)
        monkeypatch.setattr(recent, "get", recent_get)


def test_a_panel_from_memory_runs_on_the_loop_and_reads_nothing_that_could_wait(
    make_app, simulator, monkeypatch
):
    app = make_app()
    router = Router(app, threads=4)
    reads = Reads(app, monkeypatch)
    path = launch_path(simulator.start_call("agent1", DID).ucid)
    status, body, loop = asgi_get(router, path)
    assert status == 200 and simulator.account("demo").dispositions_for(DID)[0].encode() in body
    # The first load read its list and recent choices in a pool thread.
    assert [what for what, thread in reads.waiting] == ["CloudAgent", "audit log"]
    assert all(thread is not loop for _, thread in reads.waiting)
    assert reads.recent == [(reads.recent[0][0], True)] and reads.recent[0][0] is not loop

    reads.waiting.clear()
    reads.recent.clear()
    status, body, loop = asgi_get(router, path)
    assert status == 200 and simulator.account("demo").dispositions_for(DID)[0].encode() in body
    assert reads.recent == [(loop, False)]  # in the loop's own thread, from memory only
    assert reads.waiting == []


def test_a_panel_whose_recent_choices_go_after_the_question_still_reads_nothing_that_waits(
    make_app, simulator, monkeypatch
):
    app = make_app()
    router = Router(app, threads=4)
    path = launch_path(simulator.start_call("agent1", DID).ucid)
    assert asgi_get(router, path)[0] == 200  # held now
    recent = app.extensions["recent"]
    on_loop = router._wsgi.on_loop  # the app's own question, as wsgi:app's bridge asks it

    def then_dropped(environ):  # as past MAX_ENTRIES a pool thread's new pair drops the oldest
        answer = on_loop(environ)
        recent._entries.clear()
        return answer

    monkeypatch.setattr(router._wsgi, "on_loop", then_dropped)
    reads = Reads(app, monkeypatch)
    status, body, loop = asgi_get(router, path)
    assert status == 200 and simulator.account("demo").dispositions_for(DID)[0].encode() in body
    assert reads.recent == [(loop, False)]
    assert reads.waiting == []  # the panel opens without its Recent group, at once


@pytest.fixture(scope="module")
def served(production_server, quiet_werkzeug):
    simulator = Simulator()
    upstream = start_server(simulator)
    try:
        server = production_server(upstream.url, name="onloop", workers=1, WIDGET_WORKERS="1")
        yield server, simulator
    finally:
        upstream.stop()


def without_tokens(html: str) -> str:
    return _TOKENS.sub(lambda m: (m.group(1) or m.group(2)) + "…", html)


def test_a_panel_from_memory_is_the_page_the_pool_made(served):
    server, simulator = served
    call = simulator.start_call("agent1", DID)
    path = launch_path(call.ucid)
    first = requests.get(server.url + path, timeout=60)  # its list and recent choices read
    again = requests.get(server.url + path, timeout=60)  # from memory: on the loop
    assert first.status_code == again.status_code == 200
    assert first.headers["Content-Encoding"] == again.headers["Content-Encoding"] == "gzip"
    assert simulator.account("demo").dispositions_for(DID)[0] in again.text
    # The same but for its tokens, which name the second they were made in.
    assert without_tokens(first.text) == without_tokens(again.text)
    assert len(_TOKENS.findall(first.text)) >= 2


def test_a_panel_waiting_for_cloudagent_holds_up_no_panel_answered_from_memory(served, monkeypatch):
    server, simulator = served
    held = launch_path(simulator.start_call("agent2", DID).ucid, "agent2")
    assert requests.get(server.url + held, timeout=60).status_code == 200  # now in memory

    arrived, gate = threading.Event(), threading.Event()

    def at_the_gate(seconds: float) -> None:  # the simulator's latency, as a gate
        if seconds > 0:
            arrived.set()
            assert gate.wait(120), "the test never opened the gate"

    monkeypatch.setattr(simulator_app, "_sleep", at_the_gate)
    monkeypatch.setattr(simulator, "latency", 1.0)
    waiting = launch_path(simulator.start_call("agent3", SUPPORT).ucid, "agent3", SUPPORT)
    with ThreadPoolExecutor(1) as pool:
        first_load = pool.submit(requests.get, server.url + waiting, timeout=120)
        try:
            assert arrived.wait(60), "the panel never asked CloudAgent for its list"
            for _ in range(5):
                page = requests.get(server.url + held, timeout=30)
                assert page.status_code == 200
                assert simulator.account("demo").dispositions_for(DID)[0] in page.text
            assert not first_load.done()  # still at the gate all along
        finally:
            gate.set()
        answer = first_load.result()
    assert answer.status_code == 200
    assert simulator.account("demo").dispositions_for(SUPPORT)[0] in answer.text
