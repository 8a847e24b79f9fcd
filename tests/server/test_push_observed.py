"""The event streams as an operator sees them, on the production server (two asgi workers):
each stream's one request log line when it ends (duration, events sent, why it ended; never
its context), and /metrics counting them across workers: open streams, opened, ended by
reason, refused, messages delivered."""

import json

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import DID, EventStream, disconnect_event, events_url, wait_for
from webapp.simulator import Simulator, start_server

EVENTS_TOKEN = "events-token-for-server-tests-0123456789"
METRICS_TOKEN = "metrics-token-for-tests-0123456789"
STREAMS = 3


@pytest.fixture
def server(production_server, quiet_werkzeug, tmp_path):
    upstream = start_server(Simulator())
    try:
        yield production_server(
            upstream.url,
            name="push-observed",
            workers=2,
            WIDGET_WORKERS="2",
            WIDGET_EVENTS_TOKEN=EVENTS_TOKEN,
            WIDGET_METRICS_TOKEN=METRICS_TOKEN,
            PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        )
    finally:
        upstream.stop()


def scrape(server) -> dict[tuple[str, tuple], float]:
    response = requests.get(
        server.url + "/metrics",
        headers={"Authorization": f"Bearer {METRICS_TOKEN}", "Connection": "close"},
        timeout=60,
    )
    assert response.status_code == 200, response.text[:500]
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def total(samples, name, **labels) -> float:
    """The sum over every sample of `name` whose labels include `labels` (all workers)."""
    return sum(
        value
        for (sample, have), value in samples.items()
        if sample == name and set(labels.items()) <= set(have)
    )


def stream_lines(server) -> list[dict]:
    lines = []
    for text in server.log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(text)
        except ValueError:
            continue
        if record.get("message") == "request" and record.get("path") == "/disposition/events":
            lines.append(record)
    return lines


def test_streams_are_logged_once_each_and_counted_across_workers(server):
    ucid = "OBSERVED-1"
    url = events_url(server.url, ucid)[0]
    context = url.partition("context=")[2].partition("&")[0]
    before = scrape(server)
    assert total(before, "widget_event_streams_open") == 0
    for reason in ("client_gone", "shutdown"):
        assert ("widget_event_streams_ended_total", (("reason", reason),)) in before

    streams = [EventStream(url) for _ in range(STREAMS)]
    wait_for(
        lambda: total(scrape(server), "widget_event_streams_open") == STREAMS,
        what="the open streams counted",
    )
    answer = requests.post(
        f"{server.url}/cloudagent/events/{EVENTS_TOKEN}/call", json=disconnect_event(ucid),
        timeout=60,
    )  # fmt: skip
    assert answer.status_code == 200
    for stream in streams:
        assert stream.next()[0] == "call-ended"
    for stream in streams:
        stream.close()
    wait_for(
        lambda: total(scrape(server), "widget_event_streams_open") == 0,
        what="the closed streams no longer counted",
    )
    refused = requests.get(server.url + "/disposition/events?context=forged", timeout=60)
    assert refused.status_code == 403

    samples = scrape(server)
    assert total(samples, "widget_event_streams_opened_total") == STREAMS
    assert total(samples, "widget_event_streams_ended_total", reason="client_gone") == STREAMS
    assert total(samples, "widget_event_streams_ended_total", reason="shutdown") == 0
    assert total(samples, "widget_event_stream_messages_total", event="call-ended") == STREAMS
    assert total(samples, "widget_event_streams_refused_total", reason="context") == 1

    wait_for(lambda: len(stream_lines(server)) == STREAMS + 1, what="a log line per stream")
    lines = stream_lines(server)
    ended = [line for line in lines if line["status"] == 200]
    assert len(ended) == STREAMS
    for line in ended:
        assert line["logger"] == "webapp.request" and line["method"] == "GET"
        assert (line["ucid"], line["agent"], line["events"], line["ended"]) == (
            ucid, "agent1", 1, "client_gone",
        )  # fmt: skip
        assert line["duration_ms"] > 0 and len(line["request_id"]) >= 8
    assert len({line["request_id"] for line in ended}) == STREAMS
    (forged,) = [line for line in lines if line["status"] == 403]
    assert forged["reason"] == "context"

    # A graceful stop: the open stream's line says so.
    last = EventStream(events_url(server.url, "OBSERVED-2")[0])
    wait_for(lambda: total(scrape(server), "widget_event_streams_open") == 1, what="open")
    server.stop()
    assert last.ended.wait(timeout=60)
    (stopped,) = [line for line in stream_lines(server) if line.get("ucid") == "OBSERVED-2"]
    assert (stopped["ended"], stopped["events"]) == ("shutdown", 0)

    log = server.log_path.read_text(errors="replace")
    assert context not in log and "context=" not in log, "a context reached the log"
    assert DID  # the call's DID is not a secret; the context signing it is
