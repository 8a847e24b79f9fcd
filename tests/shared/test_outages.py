"""An instance outlives its dependencies' outages, and no audit completion is lost (issue 22).

The production gunicorn (2 workers) on Redis and PostgreSQL, CloudAgent the simulator:

- a save whose CloudAgent answer arrives after PostgreSQL went away is answered, and its
  completion kept in the local journal; every worker is then killed during the outage, the
  replacements start without the database (refusing saves, "nothing was sent"), and once it
  is back the instance serves again by itself and the row ends `queued`;
- a first start with an audit database that does not answer still stops with one line;
- an app started while Redis is away starts, and says it is not ready.
"""

import os
import signal
import subprocess
import threading
import time

import pytest
import requests

from bench.common import children
from tests.helpers import DID, GUNICORN, ROOT, outcome_of, server_env, wait_for
from webapp.audit import JOURNAL_NAME, AuditLog
from webapp.simulator import Simulator, start_server

WORKERS = 2
OUTAGE = 20.0  # seconds the database stays away
BACK_WITHIN = 60.0  # the bound: serving again within a minute of its return


def _answer(call):
    """The response, or None while nobody listens (workers booting)."""
    try:
        return call()
    except requests.RequestException:
        return None


@pytest.fixture
def instance(production_server, postgres_server, redis_server, quiet_werkzeug):
    database = postgres_server.create_database()
    sim = Simulator()
    upstream = start_server(sim)
    try:
        server = production_server(
            upstream.url,
            name="outage",
            workers=WORKERS,
            probe="/readyz",
            WIDGET_WORKERS=str(WORKERS),
            WIDGET_THREADS="8",
            WIDGET_REDIS_URL=redis_server.url,
            WIDGET_DATABASE_URL=postgres_server.url(database),
            WIDGET_INSTANCE_NAME="outage-a",
            WIDGET_TRUSTED_PROXIES="127.0.0.1",
        )
        yield sim, server, database
    finally:
        upstream.stop()


def test_workers_killed_during_a_database_outage_come_back_and_lose_no_completion(
    instance, postgres_server
):
    sim, server, database = instance
    kept_call, later_call = sim.start_call("agent1", DID), sim.start_call("agent2", DID)
    kept = server.open_panel(kept_call.ucid)
    later = server.open_panel(later_call.ucid, agent="agent2")

    # CloudAgent takes its time; the database dies while it does.
    sim.add_fault("Set", "slow", delay=3)
    answers = []
    saving = threading.Thread(target=lambda: answers.append(server.save(kept)))
    saving.start()
    wait_for(lambda: not sim.faults(), timeout=120, what="the Set to reach CloudAgent")
    postgres_server.block(database)
    went_away = time.monotonic()
    try:
        saving.join(timeout=120)
        (answer,) = answers
        assert answer.status_code == 200 and outcome_of(answer) == "queued", server.log()

        time.sleep(1.0)  # a second into the outage, every worker is replaced
        before = children(server.proc.pid)
        for pid in before:
            os.kill(pid, signal.SIGKILL)
        wait_for(
            lambda: (
                server.proc.poll() is not None
                or len(set(children(server.proc.pid)) - set(before)) == WORKERS
            ),
            timeout=120,
            what="gunicorn to replace its workers",
        )
        assert server.proc.poll() is None, f"the instance ended:\n{server.log()}"

        # The new workers serve without the database: not ready, saves refused, none sent.
        refused = None
        deadline = time.monotonic() + 120
        while refused is None and time.monotonic() < deadline:
            refused = _answer(lambda: server.save(later))
            time.sleep(0.2)
        assert refused is not None and refused.status_code == 503, server.log()
        assert "nothing was sent" in refused.text
        ready = _answer(lambda: requests.get(server.url + "/readyz", timeout=30))
        assert ready is not None and ready.status_code == 503
        sets_during = sim.stats()["requests"]["Set"]
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - went_away)))
    finally:
        postgres_server.unblock(database)
    back = time.monotonic()

    served = None
    while time.monotonic() - back < BACK_WITHIN:
        served = _answer(lambda: server.save(later))
        if served is not None and outcome_of(served) == "queued":
            break
        time.sleep(0.5)
    assert served is not None and outcome_of(served) == "queued", server.log()
    # Every worker serves again (reuse_port spreads new connections across them).
    for _ in range(10):
        assert outcome_of(server.save(later)) == "queued", server.log()
    assert requests.get(server.url + "/readyz", timeout=30).status_code == 200
    assert sim.stats()["requests"]["Set"] == sets_during + 11  # none sent while refused
    assert server.proc.poll() is None and "failed to boot" not in server.log(200)

    audit = AuditLog(postgres_server.url(database))
    try:
        wait_for(
            lambda: next(audit.rows(ucid=kept_call.ucid))["finished_at"] is not None,
            timeout=120,
            what="the journalled completion to be replayed",
        )
        (row,) = audit.rows(ucid=kept_call.ucid)
        assert (row["outcome"], row["reason"], row["instance"]) == ("queued", "queued", "outage-a")
        assert list(audit.rows(unsettled=True)) == []
    finally:
        audit.close()
    journal = server.env["WIDGET_DATA_DIR"] + "/" + JOURNAL_NAME
    assert oct(os.stat(journal).st_mode & 0o777) == "0o600"
    text = server.log(400)
    assert "kept in the journal" in text and "completed from the journal" in text
    assert "serving without it" in text


def test_a_first_start_with_an_unreachable_database_stops_in_one_line(tmp_path):
    env = server_env(
        "http://127.0.0.1:9",
        tmp_path,
        WIDGET_DATABASE_URL="postgresql+psycopg://widget:s3cret@127.0.0.1:9/widget",
        WIDGET_BIND="127.0.0.1:0",
    )
    done = subprocess.run(
        [str(GUNICORN), "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 3, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if "configuration error" in line]
    assert len(errors) == 1 and "s3cret" not in done.stderr
    assert errors[0].startswith(
        "configuration error: WIDGET_DATABASE_URL: the audit database "
        "postgresql+psycopg://widget:***@127.0.0.1:9/widget cannot be used"
    )
    assert "Booting worker" not in done.stderr  # the master stopped before any worker


def test_an_app_started_while_redis_is_away_starts_and_is_not_ready(make_app, down_redis_url):
    app = make_app(WIDGET_REDIS_URL=down_redis_url)
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 503 and ready.json["checks"]["rate_limits"] == "failed"
