"""Panels answered on the asgi worker's event loop (webapp.panel.onloop) on the production
server, one worker, receivers off: the page is the one the pool would have made, and a panel
that must wait for CloudAgent waits in the pool, so panels answered from memory go on
meanwhile. Were it taken on the loop, every connection of the worker would wait with it."""

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.helpers import DID, SUPPORT, launch_path
from webapp.simulator import Simulator, start_server
from webapp.simulator import app as simulator_app

_TOKENS = re.compile(r'(name="(?:context|csrf_token)"[^>]*value=")[^"]*"|(context=)[^"&]*')


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
