"""Panels answered from memory on the asgi worker's loop (webapp.panel.onloop) while Redis
and PostgreSQL are away: the production gunicorn (one worker, the receivers off) on both,
CloudAgent the simulator. A panel whose list and recent choices are held opens without asking
either; once its copy of the list comes due to be checked against Redis it goes to the pool,
which rides the outage out from memory as before; and with both back, panels still open."""

import time

import pytest
import requests

from tests.helpers import DID, launch_path
from webapp.stores import LOCAL_LIST_TTL


@pytest.fixture
def server(production_server, upstream, pg_url, own_redis_server, quiet_werkzeug):
    return production_server(
        upstream.url,
        name="onloop-outage",
        workers=1,
        probe="/readyz",
        WIDGET_WORKERS="1",
        WIDGET_REDIS_URL=own_redis_server.url,
        WIDGET_DATABASE_URL=pg_url,
    )


def test_panels_held_in_memory_open_while_redis_and_postgresql_are_away(
    server, simulator, pg_database, postgres_server, own_redis_server
):
    sim, database = simulator, pg_database
    first = sim.account("demo").dispositions_for(DID)[0]
    path = launch_path(sim.start_call("agent1", DID).ucid)

    def panel() -> tuple[int, bool]:
        answer = requests.get(server.url + path, timeout=60)
        return answer.status_code, first in answer.text

    assert panel() == (200, True)  # its list and recent choices read: held from now on
    own_redis_server.kill()
    postgres_server.block(database)
    try:
        assert [panel() for _ in range(5)] == [(200, True)] * 5  # on the loop, from memory
        time.sleep(LOCAL_LIST_TTL + 0.5)  # the list's copy is due to be checked against Redis
        assert [panel() for _ in range(5)] == [(200, True)] * 5  # the pool, then the loop
        assert "Redis unreachable" in server.log_path.read_text()  # the pool asked, once due
        assert requests.get(server.url + "/healthz", timeout=60).status_code == 200
    finally:
        postgres_server.unblock(database)
        own_redis_server.start()
    assert panel() == (200, True)
