"""The per-agent save limit on one host is exact under concurrency: 200 saves at once, over 4
gunicorn workers, at a limit of 5 a minute, and exactly 5 reach CloudAgent."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers import DID, all_at_once, outcome_of, summary
from webapp.simulator import Simulator, start_server

LIMIT = 5
CLIENTS = 200


@pytest.fixture
def stack(production_server, quiet_werkzeug):
    sim = Simulator(latency=0.02)
    upstream = start_server(sim)
    try:
        server = production_server(
            upstream.url,
            name="limit",
            workers=4,
            WIDGET_WORKERS="4",
            WIDGET_THREADS="64",
            WIDGET_SAVES_PER_MINUTE=str(LIMIT),
        )
        yield sim, server
    finally:
        upstream.stop()


def test_200_concurrent_saves_at_a_limit_of_5_send_exactly_5(stack):
    sim, server = stack
    calls = [sim.start_call("agent1", DID) for _ in range(CLIENTS)]
    with ThreadPoolExecutor(32) as pool:
        panels = list(pool.map(lambda call: server.open_panel(call.ucid), calls))
    sets_before = sim.stats()["requests"]["Set"]

    responses = all_at_once(server.save, panels)

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * LIMIT + [429] * (CLIENTS - LIMIT), summary(responses)
    assert sorted(outcome_of(r) for r in responses) == sorted(
        ["queued"] * LIMIT + ["unavailable"] * (CLIENTS - LIMIT)
    )
    assert sim.stats()["requests"]["Set"] - sets_before == LIMIT
    limited = [r for r in responses if r.status_code == 429]
    assert all(1 <= int(r.headers["Retry-After"]) <= 60 for r in limited)
    assert all("Too many saves in a short time. Nothing was sent" in r.text for r in limited)
    server.check_workers_unchanged()
