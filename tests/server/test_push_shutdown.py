"""A graceful stop of the production server (SIGTERM to gunicorn's master) with panels'
event streams open: the streams are ended at once, so the instance stops well within
graceful_timeout (20 s, gunicorn.conf.py) instead of waiting it out on idle panels, and a
save in flight still gets its answer; the same when a worker is recycled after
max_requests. The panels' EventSource then reconnects elsewhere with back-off and
resynchronises (tests/server/test_push.py, the reconnect)."""

import signal
import subprocess
import threading
import time

import pytest
import requests

from bench.common import children
from tests.helpers import EventStream, events_url, outcome_of, wait_for
from webapp.simulator import Simulator, start_server

EVENTS_TOKEN = "events-token-for-server-tests-0123456789"
STREAMS = 6
# Well under graceful_timeout (20 s) yet generous for a busy machine: without the fix the
# master waits the full 20 s for the open streams.
STOPPED_WITHIN = 10.0
SAVE_SECONDS = 4.0  # CloudAgent's answer to the save in flight, held that long


@pytest.fixture
def upstream(quiet_werkzeug):
    sim = Simulator()
    running = start_server(sim)
    yield sim, running.url
    running.stop()


def test_a_graceful_stop_ends_open_streams_at_once_and_finishes_a_save_in_flight(
    production_server, upstream
):
    sim, url = upstream
    server = production_server(
        url, name="push-stop", workers=2, WIDGET_WORKERS="2", WIDGET_EVENTS_TOKEN=EVENTS_TOKEN
    )
    streams = [
        EventStream(events_url(server.url, f"STOP-STREAM-{i}")[0], timeout=60)
        for i in range(STREAMS)
    ]
    call = sim.start_call("agent1", "914071327663")
    panel = server.open_panel(call.ucid)
    time.sleep(1)  # the streams are registered by now; none has ended
    assert not any(stream.ended.is_set() for stream in streams)

    sim.add_fault("Set", "slow", delay=SAVE_SECONDS)
    answers: list[requests.Response] = []
    saving = threading.Thread(target=lambda: answers.append(server.save(panel)))
    saving.start()
    # The simulator takes the fault when the Set arrives, then holds the answer.
    wait_for(lambda: not sim.faults(), what="the save reached CloudAgent")

    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    try:
        server.proc.wait(timeout=STOPPED_WITHIN)
    except subprocess.TimeoutExpired:
        pytest.fail(f"gunicorn still running {STOPPED_WITHIN:g} s after SIGTERM:\n{server.log()}")
    stopped = time.monotonic() - signalled
    for stream in streams:
        assert stream.ended.wait(timeout=1), "a stream was still open after the master exited"
    saving.join(timeout=60)
    assert answers and answers[0].status_code == 200, server.log()
    assert outcome_of(answers[0]) == "queued"
    assert stopped < STOPPED_WITHIN
    log = server.log_path.read_text(errors="replace")
    assert "Forcing close" not in log, "gunicorn cut connections at graceful_timeout"


def test_a_worker_recycled_after_max_requests_ends_its_streams_at_once(production_server, upstream):
    _, url = upstream
    requests_per_worker = 30
    server = production_server(
        url,
        name="push-recycle",
        workers=1,
        WIDGET_WORKERS="1",
        WIDGET_EVENTS_TOKEN=EVENTS_TOKEN,
        GUNICORN_CMD_ARGS=f"--max-requests {requests_per_worker}",
    )
    stream = EventStream(events_url(server.url, "RECYCLE-STREAM-1")[0], timeout=60)
    time.sleep(1)
    assert not stream.ended.is_set()
    first = server.workers
    for _ in range(requests_per_worker):  # the worker's quota: it is replaced
        requests.get(server.url + "/healthz", headers={"Connection": "close"}, timeout=60)
    # Without the fix the old worker holds on to the stream for graceful_timeout (20 s).
    assert stream.ended.wait(timeout=STOPPED_WITHIN), f"the stream stayed open:\n{server.log()}"
    wait_for(lambda: children(server.proc.pid) not in ([], first), what="a new worker")
