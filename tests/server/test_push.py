"""The push channel on the production server (gunicorn's asgi worker, several workers): an
open panel's event stream gets its call's Disconnect and summary posted to the receivers,
whichever worker took the post; an expired or forged context gets no stream; a reconnect
with Last-Event-ID gets only what is newer."""

import time

import pytest
import requests

from tests.helpers import DID, EventStream, events_url
from webapp.simulator import Simulator, start_server

WORKERS = 2
EVENTS_TOKEN = "events-token-for-server-tests-0123456789"
WAIT = 60.0  # seconds: a busy machine's bound, not the product's 2 s (make bench measures it)


@pytest.fixture(scope="module")
def server(production_server, quiet_werkzeug):
    upstream = start_server(Simulator())
    try:
        yield production_server(
            upstream.url,
            name="push",
            workers=WORKERS,
            WIDGET_WORKERS=str(WORKERS),
            WIDGET_EVENTS_TOKEN=EVENTS_TOKEN,
            WIDGET_WRAPUP_SECONDS="120",
            WIDGET_CONTEXT_MAX_AGE="60",
        )
    finally:
        upstream.stop()


def disconnect(ucid):
    return {
        "eventType": "Call", "username": "demo", "action": "Disconnect", "ucid": ucid,
        "monitor_ucid": "", "agent_id": "agent1", "did": DID,
        "event_time": "2026-12-03 10:35:54",
    }  # fmt: skip


def call_summary(ucid, disposition="Interested"):
    return {
        "UCID": ucid, "AgentID": "agent1", "Did": DID, "Disposition": disposition,
        "EndTime": "2026-12-03 10:36:30", "UserName": "demo", "Apikey": "demo-api-key",
    }  # fmt: skip


def post(server, kind, payload):
    answer = requests.post(
        f"{server.url}/cloudagent/events/{EVENTS_TOKEN}/{kind}", json=payload, timeout=WAIT
    )
    assert answer.status_code == 200 and answer.json()["result"] == "accepted", answer.text
    return answer


def test_the_stream_is_an_event_stream_that_is_never_cached(server):
    url, _ = events_url(server.url, "PUSH-HEADERS-1")
    with requests.get(url, stream=True, timeout=WAIT) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Accel-Buffering"] == "no"


def test_every_open_panel_of_the_call_hears_of_its_disconnect_and_summary_on_any_worker(server):
    ucid = "PUSH-LIVE-1"
    url, _ = events_url(server.url, ucid)
    # More streams than workers: with reuse_port the kernel spreads them, and each post
    # below lands on one worker; every stream must hear it all the same.
    streams = [EventStream(url) for _ in range(6)]
    other = EventStream(events_url(server.url, "PUSH-LIVE-OTHER")[0])
    try:
        time.sleep(1)  # let them register: an event before that comes as the current state
        post(server, "call", disconnect(ucid))
        for stream in streams:
            event, event_id, data = stream.next()
            assert (event, data["ucid"], data["ended"], data["confirmed"]) == (
                "call-ended", ucid, True, None,
            )  # fmt: skip
            assert 0 < data["wrapupLeft"] <= 120 and event_id == data["id"]
        post(server, "summary", call_summary(ucid))
        for stream in streams:
            event, _, data = stream.next()
            assert event == "confirmed"
            assert data["confirmed"] == {
                "disposition": "Interested",
                "matches": None,
                "auto": False,
            }
        assert other.messages.empty(), "another call's panel heard of this call"
    finally:
        for stream in streams + [other]:
            stream.close()
    server.check_workers_unchanged()


def test_a_reconnect_gets_what_is_newer_than_its_last_event_id_and_nothing_else(server):
    ucid = "PUSH-REPLAY-1"
    url, _ = events_url(server.url, ucid)
    ended = post(server, "call", disconnect(ucid))
    assert ended.status_code == 200
    first = EventStream(url)
    _, ended_id, data = first.next()  # opened after the Disconnect: the current state
    assert data["ended"] and data["confirmed"] is None
    first.close()
    post(server, "summary", call_summary(ucid, "Not interested"))
    # Back after a blip: the summary, posted meanwhile, is replayed.
    again = EventStream(url, **{"Last-Event-ID": str(ended_id)})
    event, newer_id, data = again.next()
    assert event == "confirmed" and newer_id > ended_id
    assert data["confirmed"]["disposition"] == "Not interested"
    again.close()
    # Up to date: nothing is sent but heartbeats.
    current = EventStream(url, **{"Last-Event-ID": str(newer_id)})
    time.sleep(2)
    assert current.messages.empty()
    current.close()


def signed(secret, age=0, ucid="PUSH-REFUSED-1"):
    """A call context as webapp.panel.context issues it, signed `age` seconds ago."""
    from itsdangerous import TimestampSigner, URLSafeTimedSerializer

    from webapp.panel.context import SALT

    class Then(TimestampSigner):
        def get_timestamp(self):
            return int(time.time()) - age

    serializer = URLSafeTimedSerializer(secret, salt=SALT, signer=Then)
    return serializer.dumps({"u": ucid, "a": "agent1", "d": DID})


def test_a_forged_or_expired_context_gets_no_stream(server):
    stream = server.url + "/disposition/events"
    forged = signed("another-secret-key-0123456789-abcdef")
    for refused in (stream, f"{stream}?context=x", f"{stream}?context={forged}"):
        answer = requests.get(refused, timeout=WAIT)
        assert (answer.status_code, answer.text) == (403, "invalid\n")
        assert not answer.headers["Content-Type"].startswith("text/event-stream")
    # WIDGET_CONTEXT_MAX_AGE is 60 s here: a context signed 61 s ago is expired.
    old = signed("secret-key-for-tests-0123456789", age=61)
    answer = requests.get(f"{stream}?context={old}", timeout=WAIT)
    assert (answer.status_code, answer.text) == (403, "expired\n")


def test_a_stream_ends_when_its_context_does_and_is_not_opened_again(server):
    # WIDGET_CONTEXT_MAX_AGE is 60 s here: a context signed 55 s ago has 5 s left.
    secret = "secret-key-for-tests-0123456789"
    url = f"{server.url}/disposition/events?context={signed(secret, age=55, ucid='PUSH-AGE-1')}"
    stream = EventStream(url)
    try:
        assert stream.ended.wait(WAIT), "the stream outlived its context"
    finally:
        stream.close()
    again = requests.get(url, timeout=WAIT)  # what the panel's EventSource does next
    assert (again.status_code, again.text) == (403, "expired\n")
