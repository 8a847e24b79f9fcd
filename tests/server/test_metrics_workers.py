"""/metrics under the production server: 4 gunicorn workers, each counting its own requests,
and every scrape, whichever worker answers it, adds them all up exactly."""

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import DID, all_at_once, outcome_of, summary
from webapp.simulator import Simulator, start_server

TOKEN = "metrics-token-for-tests-0123456789"
SAVES = 60
FORGED = 12
SCRAPES = 12


@pytest.fixture(scope="module")
def stack(production_server, quiet_werkzeug, tmp_path_factory):
    sim = Simulator(latency=0.02)
    upstream = start_server(sim)
    folder = tmp_path_factory.mktemp("metrics")
    try:
        server = production_server(
            upstream.url,
            name="metrics",
            workers=4,
            WIDGET_WORKERS="4",
            WIDGET_THREADS="16",
            WIDGET_SAVES_PER_MINUTE="10000",
            WIDGET_METRICS_TOKEN=TOKEN,
            PROMETHEUS_MULTIPROC_DIR=str(folder),
        )
        yield sim, server, folder
    finally:
        upstream.stop()


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    response = requests.get(
        url + "/metrics",
        headers={"Authorization": f"Bearer {TOKEN}", "Connection": "close"},
        timeout=300,
    )
    assert response.status_code == 200, response.text[:500]
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def counts(samples) -> dict[str, float]:
    """The figures this test checks, from one scrape."""

    def value(name, **labels):
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    return {
        "queued": value("widget_saves_total", outcome="queued"),
        "invalid": value("widget_saves_total", outcome="invalid"),
        "refused_csrf": value("widget_requests_refused_total", reason="csrf"),
        "panel_loads": value("widget_panel_loads_total"),
        "sets": value("widget_upstream_request_duration_seconds_count", action="set"),
        "audit_writes": value("widget_audit_write_duration_seconds_count"),
        "mints": value("widget_token_mints_total"),
        "mint_attempts": value("widget_token_mint_attempts_total"),
        "budget_left": value("widget_token_mint_budget_remaining"),
        "list_misses": value("widget_dispositions_cache_total", result="miss"),
    }


def test_counters_add_up_across_workers_whichever_answers(stack):
    sim, server, folder = stack
    calls = [sim.start_call("agent1", DID) for _ in range(SAVES)]
    with ThreadPoolExecutor(16) as pool:
        panels = list(pool.map(lambda call: server.open_panel(call.ucid), calls))
    forged = [panel | {"csrf_token": "forged"} for panel in panels[:FORGED]]

    responses = all_at_once(server.save, panels + forged)

    outcomes = [outcome_of(r) for r in responses]
    assert outcomes == ["queued"] * SAVES + ["invalid"] * FORGED, summary(responses)
    # Every worker keeps its own files; more than one of them served this test.
    writers = {re.search(r"_(\d+)\.db$", p.name).group(1) for p in folder.glob("counter_*.db")}
    assert len(writers) >= 2, (sorted(p.name for p in folder.iterdir()), server.log())

    expected = {
        "queued": SAVES,
        "invalid": 0,  # forged CSRF tokens are refused requests, not saves
        "refused_csrf": FORGED,
        "panel_loads": SAVES,
        "sets": SAVES,
        "audit_writes": SAVES,
        "mints": 1,
        "mint_attempts": 1,
        "budget_left": 9,
    }
    # New connections: the kernel spreads them over the workers' sockets.
    with ThreadPoolExecutor(4) as pool:
        scrapes = list(pool.map(lambda _: counts(scrape(server.url)), range(SCRAPES)))
    for got in scrapes:
        assert {k: got[k] for k in expected} == expected, server.log()
        # Each worker keeps the list in its own memory: one load per worker at most.
        assert 1 <= got["list_misses"] <= len(server.workers)
    server.check_workers_unchanged()
