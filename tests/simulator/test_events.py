"""The simulator's side of CloudAgent's events: the Subscribe API over real HTTP, call events
and call summaries delivered to a loopback receiver (pytest_httpserver), in both summary
shapes, with retries, the auto-disposition, and never holding up the simulator."""

from __future__ import annotations

import json
import re
import socket
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.helpers import DID, Clock, wait_for
from webapp.simulator import start_server
from webapp.simulator.state import DispositionRequest, SetAttempt

KEY = {"api_key": "demo-api-key", "username": "demo"}
TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
CALL_FIELDS = {
    "eventType", "eventTime", "username", "action", "call_type", "ucid", "monitor_ucid",
    "agent_id", "skill", "caller_id", "did", "agent_number", "event_time",
}  # fmt: skip


def api(upstream, method, path, body=None, headers=KEY):
    return requests.request(method, upstream.url + path, json=body, headers=headers, timeout=60)


def received(httpserver, path):
    return [request for request, _ in httpserver.log if request.path == path]


def deliveries(upstream, kind=None, outcome=None):
    found = requests.get(upstream.url + "/sim/deliveries", timeout=60).json()
    return [d for d in found if kind in (None, d["kind"]) and outcome in (None, d["outcome"])]


def settled(upstream, count, kind=None):
    """The first `count` deliveries (of `kind`) once each has its outcome."""
    wait_for(
        lambda: len([d for d in deliveries(upstream, kind) if d["outcome"] != "pending"]) >= count,
        what=f"{count} {kind or ''} deliveries",
    )
    return deliveries(upstream, kind)


def subscribe(upstream, httpserver, path="/call"):
    httpserver.expect_request(path, method="POST").respond_with_data("", 204)
    answer = api(upstream, "POST", "/events/subscribe", {"callEventsURL": httpserver.url_for(path)})
    assert answer.status_code == 200, answer.text


def set_callback(upstream, url, encoding="form"):
    answer = requests.post(
        upstream.url + "/sim/callback-url", json={"url": url, "encoding": encoding}, timeout=60
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def dispose(simulator, call, disposition="Interested", comments="wants a quote"):
    request = DispositionRequest("agent1", disposition, comments, pause_after_dispose=False)
    return simulator.submit_disposition(call, SetAttempt(request, {}))


# -- the Subscribe API -------------------------------------------------------------------------


def test_the_subscribe_api_answers_as_documented_and_reads_api_key_as_sent(upstream):
    # `api_key` has an underscore: werkzeug's own server would drop it, the simulator keeps it.
    urls = {"callEventsURL": "https://w.example/cloudagent/events/t/call"}
    answer = api(upstream, "POST", "/events/subscribe", urls)
    assert (answer.status_code, answer.text) == (
        200,
        "Subscription added successfully for User: demo",
    )
    answer = api(upstream, "GET", "/events/subscriptions/list")
    assert answer.json() == {"agentEventsURL": "", "callEventsURL": urls["callEventsURL"]}
    answer = api(upstream, "POST", "/events/un-subscribe", {"eventType": "call"})
    assert answer.text == "Unsubscribed to call events successfully for User: demo"
    answer = api(upstream, "GET", "/events/subscriptions/list")
    assert answer.text == "Subscription doesnt exists for User: demo"  # the documented spelling
    answer = api(upstream, "POST", "/events/un-subscribe", {"eventType": "both"})
    assert answer.text == "Subscription doesn't exists for User: demo"
    assert upstream.simulator.stats()["subscription_requests"] == {
        "subscribe": 1, "list": 2, "unsubscribe": 2,
    }  # fmt: skip


@pytest.mark.parametrize(
    "headers",
    [
        {"api_key": "wrong", "username": "demo"},
        {"api_key": "demo-api-key", "username": "nobody"},
        {"username": "demo"},
        {"api-key": "demo-api-key", "username": "demo"},  # a hyphen is another header
        {"apiKey": "demo-api-key", "username": "demo"},  # the Disposition API's spelling
    ],
)
def test_a_wrong_key_or_user_name_is_unauthorized(upstream, headers):
    for method, path in (("POST", "/events/subscribe"), ("GET", "/events/subscriptions/list"),
                         ("POST", "/events/un-subscribe")):  # fmt: skip
        answer = api(upstream, method, path, {"callEventsURL": "https://x/", "eventType": "call"},
                     headers=headers)  # fmt: skip
        assert (answer.status_code, answer.text) == (401, "Unauthorized")
    assert upstream.simulator.events.subscription("demo") is None


def test_a_malformed_request_is_refused(upstream):
    assert (
        api(upstream, "POST", "/events/subscribe", {"callEventsURL": "ftp://x"}).status_code == 400
    )
    assert api(upstream, "POST", "/events/subscribe", {}).status_code == 400
    assert api(upstream, "POST", "/events/un-subscribe", {"eventType": "all"}).text == (
        "Invalid eventType"
    )


def test_subscribing_again_replaces_and_kinds_unsubscribe_one_at_a_time(upstream):
    api(upstream, "POST", "/events/subscribe", {"callEventsURL": "https://a/call"})
    both = {"callEventsURL": "https://b/call", "agentEventsURL": "https://b/agent"}
    api(upstream, "POST", "/events/subscribe", both)
    assert api(upstream, "GET", "/events/subscriptions/list").json() == {
        "agentEventsURL": "https://b/agent", "callEventsURL": "https://b/call",
    }  # fmt: skip
    api(upstream, "POST", "/events/un-subscribe", {"eventType": "agent"})
    assert api(upstream, "GET", "/events/subscriptions/list").json()["agentEventsURL"] == ""
    upstream.simulator.reset()  # forgets subscriptions like calls
    assert upstream.simulator.events.subscription("demo") is None


# -- call events ---------------------------------------------------------------------------------


def test_call_events_follow_the_call_to_the_subscribed_url(upstream, httpserver):
    subscribe(upstream, httpserver)
    started = requests.post(
        upstream.url + "/sim/calls",
        json={"agentID": "agent1", "did": DID, "callerID": "919812345678"},
        timeout=60,
    ).json()
    sent = settled(upstream, 2, "call")
    assert [d["payload"]["action"] for d in sent] == ["Calling", "Answered"]
    requests.post(upstream.url + f"/sim/calls/{started['ucid']}/hangup", timeout=60)
    sent = settled(upstream, 3, "call")
    assert [d["outcome"] for d in sent] == ["delivered"] * 3

    bodies = [json.loads(request.get_data()) for request in received(httpserver, "/call")]
    assert [b["action"] for b in bodies] == ["Calling", "Answered", "Disconnect"]
    for body in bodies:
        assert set(body) == CALL_FIELDS
        assert body["eventType"] == "Call" and body["username"] == "demo"
        assert body["ucid"] == started["ucid"] and body["monitor_ucid"] == started["monitorUCID"]
        assert body["monitor_ucid"] != body["ucid"]  # receivers must match on either
        assert (body["agent_id"], body["did"], body["caller_id"]) == ("agent1", DID, "919812345678")
        assert TIME.fullmatch(body["eventTime"]) and TIME.fullmatch(body["event_time"])
    assert all(
        r.headers["Content-Type"] == "application/json" for r in received(httpserver, "/call")
    )
    stats = upstream.simulator.stats()["deliveries"]
    assert (stats["call_delivered"], stats["call_failed"], stats["attempts"]) == (3, 0, 3)


def test_event_times_are_india_s_wall_clock(upstream, httpserver):
    clock = Clock(1_800_000_000.0)
    upstream.simulator.clock = clock
    subscribe(upstream, httpserver)
    upstream.simulator.start_call("agent1", DID)
    sent = settled(upstream, 2, "call")
    expected = datetime.fromtimestamp(clock.now, ZoneInfo("Asia/Kolkata"))
    assert sent[0]["payload"]["event_time"] == expected.strftime("%Y-%m-%d %H:%M:%S")
    assert sent[0]["payload"]["event_time"] == "2027-01-15 13:30:00"  # UTC 08:00 + 5:30


def test_no_subscription_no_events(upstream, httpserver):
    upstream.simulator.hang_up(upstream.simulator.start_call("agent1", DID).ucid)
    assert deliveries(upstream) == [] and upstream.simulator.stats()["deliveries"]["queued"] == 0


# -- call summaries ------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["form", "json"])
def test_a_summary_follows_the_call_in_either_shape(upstream, httpserver, encoding):
    httpserver.expect_request("/summary", method="POST").respond_with_data("ok")
    assert set_callback(upstream, httpserver.url_for("/summary"), encoding)["encoding"] == encoding
    assert requests.get(upstream.url + "/sim/callback-url", timeout=60).json()["url"] == (
        httpserver.url_for("/summary")
    )
    sim = upstream.simulator
    call = sim.start_call("agent1", DID)
    assert dispose(sim, call) == "queued"  # queued while live, applied at hang-up
    sim.hang_up(call.ucid)
    (delivery,) = settled(upstream, 1, "summary")
    assert delivery["outcome"] == "delivered" and delivery["encoding"] == encoding

    (request,) = received(httpserver, "/summary")
    if encoding == "form":
        assert request.mimetype == "application/x-www-form-urlencoded"
        summary = json.loads(request.form["data"])
    else:
        assert request.mimetype == "application/json"
        summary = request.get_json()
    assert summary["UCID"] == call.ucid and summary["monitorUCID"] == call.monitor_ucid
    assert (summary["AgentID"], summary["Did"], summary["CallerID"]) == (
        "agent1",
        DID,
        call.caller_id,
    )
    assert "dId" not in summary  # the observed spelling, not the documented one
    assert (summary["Disposition"], summary["Comments"]) == ("Interested", "wants a quote")
    assert (summary["Status"], summary["UserName"], summary["Apikey"]) == (
        "Answered", "demo", "demo-api-key",
    )  # fmt: skip
    assert TIME.fullmatch(summary["StartTime"]) and TIME.fullmatch(summary["EndTime"])


def test_a_disposition_saved_in_wrap_up_is_summarised_once(upstream, httpserver):
    httpserver.expect_request("/summary").respond_with_data("ok")
    set_callback(upstream, httpserver.url_for("/summary"))
    sim = upstream.simulator
    call = sim.start_call("agent1", DID)
    sim.hang_up(call.ucid)
    assert dispose(sim, call, "Sale closed", "") == "saved"
    assert dispose(sim, call) == "already_disposed"
    sim.expire_wrapup(call.ucid)  # nothing more to say about this call
    (summary,) = [d["payload"] for d in settled(upstream, 1, "summary")]
    assert summary["Disposition"] == "Sale closed"
    other = sim.start_call("agent2", DID)  # a later call's summary shows nothing came between
    sim.expire_wrapup(other.ucid)
    sent = settled(upstream, 2, "summary")
    assert [d["payload"]["UCID"] for d in sent] == [call.ucid, other.ucid]


def test_wrap_up_running_out_sends_the_automatic_disposition(upstream, httpserver):
    httpserver.expect_request("/summary").respond_with_data("ok")
    set_callback(upstream, httpserver.url_for("/summary"), "json")
    sim = upstream.simulator
    clock = Clock()
    sim.clock = clock
    call = sim.start_call("agent1", DID)
    sim.hang_up(call.ucid)  # nothing queued: wrap-up (30 s) runs on the clock
    assert deliveries(upstream, "summary") == []
    clock.now += 31  # the worker's idle sweep notices; no control call needed
    (delivery,) = settled(upstream, 1, "summary")
    assert delivery["payload"]["Disposition"] == "Wrap up time exceeded :30"
    assert delivery["payload"]["Comments"] == ""
    assert sim.get_call(call.ucid).disposition is None  # the call itself holds no disposition
    cut = sim.start_call("agent2", DID)
    requests.post(upstream.url + f"/sim/calls/{cut.ucid}/expire-wrapup", timeout=60)
    sent = settled(upstream, 2, "summary")
    assert [d["payload"]["Disposition"] for d in sent] == ["Wrap up time exceeded :30"] * 2
    assert [d["payload"]["UCID"] for d in sent] == [call.ucid, cut.ucid]  # each once


# -- delivery ----------------------------------------------------------------------------------


def test_a_5xx_is_tried_again_and_a_4xx_is_not(upstream, httpserver):
    httpserver.expect_oneshot_request("/summary").respond_with_data("busy", 503)
    httpserver.expect_request("/summary").respond_with_data("ok")
    set_callback(upstream, httpserver.url_for("/summary"))
    sim = upstream.simulator
    sim.expire_wrapup(sim.start_call("agent1", DID).ucid)
    (delivery,) = settled(upstream, 1, "summary")
    assert (delivery["outcome"], delivery["answers"]) == ("delivered", [503, 200])

    httpserver.clear()
    httpserver.expect_request("/summary").respond_with_data("gone", 410)
    sim.expire_wrapup(sim.start_call("agent1", DID).ucid)
    delivery = settled(upstream, 2, "summary")[1]
    assert (delivery["outcome"], delivery["answers"]) == ("failed", [410])

    httpserver.clear()
    httpserver.expect_request("/summary").respond_with_data("down", 502)
    sim.expire_wrapup(sim.start_call("agent1", DID).ucid)
    delivery = settled(upstream, 3, "summary")[2]
    assert (delivery["outcome"], delivery["answers"]) == ("failed", [502, 502, 502])
    stats = sim.stats()["deliveries"]
    assert (stats["summary_delivered"], stats["summary_failed"], stats["attempts"]) == (1, 2, 6)


def test_an_unreachable_receiver_never_holds_up_the_simulator(upstream):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    set_callback(upstream, f"http://127.0.0.1:{port}/summary")
    api(upstream, "POST", "/events/subscribe", {"callEventsURL": f"http://127.0.0.1:{port}/call"})
    for _ in range(2):
        answer = requests.post(upstream.url + "/sim/calls", json={"agentID": "agent1", "did": DID},
                               timeout=60)  # fmt: skip
        assert answer.status_code == 201
        assert requests.post(upstream.url + f"/sim/calls/{answer.json()['ucid']}/expire-wrapup",
                             timeout=60).status_code == 200  # fmt: skip
    sent = settled(upstream, 8)  # 2 calls x (Calling, Answered, Disconnect, summary)
    assert {d["outcome"] for d in sent} == {"failed"} and {d["attempts"] for d in sent} == {3}
    assert {d["error"] for d in sent} == {"ConnectionError"}


def test_the_deliveries_stop_with_the_server(simulator, httpserver):
    running = start_server(simulator)
    httpserver.expect_request("/summary").respond_with_data("ok")
    simulator.events.set_callback_url("demo", httpserver.url_for("/summary"))
    worker = simulator.events.deliverer._thread
    assert worker is not None and worker.is_alive()
    running.stop()
    assert not worker.is_alive()
