"""The receivers CloudAgent posts to, against hostile and clumsy input: a wrong token, another
account, a wrong Apikey, junk, oversized bodies, repeats, events out of order or for calls
nobody has open, a flood from one source, the database away. Never a 5xx for what was
posted, never a secret in the logs, never a later state turned back."""

import json
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.exc import OperationalError

from tests.helpers import DID

TOKEN = "events-token-for-tests-0123456789abcdef"
METRICS = "metrics-token-for-tests-0123456789"
CALL = f"/cloudagent/events/{TOKEN}/call"
SUMMARY = f"/cloudagent/events/{TOKEN}/summary"


@pytest.fixture
def app(make_app):
    return make_app(
        WIDGET_EVENTS_TOKEN=TOKEN, WIDGET_METRICS_TOKEN=METRICS, WIDGET_WRAPUP_SECONDS="120"
    )


def event(action="Disconnect", ucid="u-100", **changes):
    body = {
        "eventType": "Call", "eventTime": "2026-12-03 10:35:55", "username": "demo",
        "action": action, "call_type": "Inbound", "ucid": ucid, "monitor_ucid": f"m-{ucid}",
        "agent_id": "agent1", "skill": "General", "caller_id": "9198", "did": DID,
        "agent_number": "9188", "event_time": "2026-12-03 10:35:54",
    }  # fmt: skip
    return body | changes


def summary(ucid="u-100", disposition="Interested", **changes):
    body = {
        "monitorUCID": "m-" + ucid, "UCID": ucid, "Did": DID, "AgentID": "agent1",
        "Disposition": disposition, "Comments": "", "Status": "Answered",
        "StartTime": "2026-12-03 10:30:00", "EndTime": "2026-12-03 10:35:54",
        "UserName": "demo", "Apikey": "demo-api-key",
    }  # fmt: skip
    return body | changes


def post_summary(web, body, shape="form"):
    if shape == "form":
        return web.post(SUMMARY, data={"data": json.dumps(body)})
    if shape == "array":
        return web.post(SUMMARY, json=[body])
    return web.post(SUMMARY, json=body)


def counts(web):
    text = web.get("/metrics", headers={"Authorization": f"Bearer {METRICS}"}).get_data(True)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith(("widget_cloudagent_events", "widget_confirmations"))
    }


def counted(web, kind, result):
    key = (("kind", kind), ("result", result))
    return counts(web).get(("widget_cloudagent_events_total", key), 0)


def state(app, ucid):
    return app.extensions["call_events"].call_state(ucid)


def test_without_a_token_both_routes_are_404(make_app):
    web = make_app().test_client()
    assert web.post("/cloudagent/events/x/call", json=event()).status_code == 404
    assert web.post("/cloudagent/events/x/summary", json=summary()).status_code == 404


def test_a_disconnect_ends_the_call_and_a_repeat_changes_nothing(app, web):
    answer = web.post(CALL, json=event())
    assert (answer.status_code, answer.json) == (200, {"result": "accepted"})
    assert "Set-Cookie" not in answer.headers
    first = state(app, "u-100")
    assert first.ended and first.wrapup_left(120) > 100
    assert state(app, "m-u-100").ended  # matched by the monitor ucid too
    later = event(event_time="2026-12-03 10:40:00")  # another time: still the same end
    assert web.post(CALL, json=event()).json == {"result": "duplicate"}
    assert web.post(CALL, json=later).json == {"result": "duplicate"}
    assert state(app, "u-100").ended_at == first.ended_at
    assert counted(web, "call", "accepted") == 1 and counted(web, "call", "duplicate") == 2


def test_calling_and_answered_after_a_disconnect_do_not_reopen_the_call(app, web):
    assert web.post(CALL, json=event()).status_code == 200
    for action in ("Answered", "Calling", "answered"):
        assert web.post(CALL, json=event(action)).json == {"result": "ignored"}
    assert state(app, "u-100").ended
    assert web.post(CALL, json=event(eventType="Agent")).json == {"result": "ignored"}


def test_an_event_as_a_form_field_holding_json_is_read_too(app, web):
    answer = web.post(CALL, data={"payload": json.dumps(event(ucid="u-form"))})
    assert answer.json == {"result": "accepted"} and state(app, "u-form").ended


def test_a_wrong_token_is_404_and_no_token_is_ever_logged(app, web, caplog):
    caplog.set_level(logging.INFO, logger="webapp")
    wrong = "/cloudagent/events/" + "x" * len(TOKEN)
    assert web.post(wrong + "/call", json=event()).status_code == 404
    assert web.post(TOKEN.join(["/cloudagent/events/", "/agent"]), json={}).status_code == 404
    web.post(CALL, json=event())
    web.post(SUMMARY, data={"data": json.dumps(summary(Apikey="wrong-key"))})
    web.post(SUMMARY, data={"data": json.dumps(summary())})
    assert TOKEN not in caplog.text and "x" * 20 not in caplog.text
    assert "demo-api-key" not in caplog.text and "wrong-key" not in caplog.text
    logged = [getattr(r, "fields", {}).get("path") for r in caplog.records]
    assert "/cloudagent/events/****/call" in logged and "/cloudagent/events/****/agent" in logged
    assert not state(app, "x" * 10).ended


@pytest.mark.parametrize("shape", ["form", "json", "array"])
def test_a_summary_in_each_shape_is_taken(app, web, shape):
    answer = post_summary(web, summary(ucid=f"u-{shape}"), shape)
    assert (answer.status_code, answer.json) == (200, {"result": "accepted"})
    got = state(app, f"u-{shape}")
    assert got.confirmed_disposition == "Interested" and got.matches is None  # no save
    assert got.wrapup_left(120) is None  # final: no clock


def test_the_did_is_read_in_any_case_and_the_apikey_is_never_stored(app, web):
    for name in ("dId", "DId", "did"):
        body = summary(ucid=f"u-{name}") | {name: "918069000000"}
        body.pop("Did")
        assert post_summary(web, body).json == {"result": "accepted"}
    rows = app.extensions["call_events"].events_since(0)
    assert {r["did"] for r in rows} == {"918069000000"}
    assert "demo-api-key" not in json.dumps(rows, default=str)


@pytest.mark.parametrize(
    "body, path",
    [
        (event(username="another"), CALL),
        (summary(UserName="another"), SUMMARY),
        (summary(Apikey="wrong-key"), SUMMARY),
        (summary(Apikey=12345), SUMMARY),
        (summary(Apikey=""), SUMMARY),
    ],
)
def test_another_account_or_a_wrong_apikey_is_refused(app, web, body, path):
    answer = web.post(path, json=body)
    assert (answer.status_code, answer.json) == (403, {"result": "refused"})
    assert not state(app, "u-100").ended


def test_a_summary_without_an_apikey_is_taken_on_the_token_alone(app, web):
    body = summary()
    body.pop("Apikey")
    assert post_summary(web, body).json == {"result": "accepted"}


JUNK = [
    b"not json",
    b"\xff\xfe",
    b"[]",
    b"null",
    b'"Disconnect"',
    json.dumps(event(ucid="", monitor_ucid="")).encode(),
    json.dumps(event(ucid={"a": 1}, monitor_ucid=None)).encode(),
    json.dumps(event(ucid=True, monitor_ucid=None)).encode(),
    json.dumps(event(ucid="u" * 65)).encode(),
    json.dumps(event(ucid="u\n1")).encode(),
    b"[" * 5000 + b"]" * 5000,
]


@pytest.mark.parametrize("body", JUNK)
def test_malformed_input_is_a_400_never_a_5xx(app, web, body):
    for path in (CALL, SUMMARY):
        answer = web.post(path, data=body, content_type="application/json")
        assert (answer.status_code, answer.json) == (400, {"result": "malformed"}), path


def test_an_unknown_action_is_malformed(app, web):
    for action in ("Hold", ["Disconnect"], None):
        answer = web.post(CALL, json=event(action=action))
        assert (answer.status_code, answer.json) == (400, {"result": "malformed"})


def test_wrong_types_in_a_summary_are_malformed(app, web):
    for body in (summary(Disposition=["x"]), summary(AgentID={"a": 1}), summary(UCID=1.5)):
        assert post_summary(web, body).status_code == 400


def test_unreadable_times_are_no_reason_to_lose_an_event(app, web):
    body = event(event_time="03/12/2026", eventTime=None)
    assert web.post(CALL, json=body).json == {"result": "accepted"}
    assert state(app, "u-100").ended


def test_an_oversized_body_is_413(app, web):
    big = event(skill="x" * 70_000)
    assert web.post(CALL, json=big).status_code == 413
    assert web.post(SUMMARY, data={"data": json.dumps(summary(Comments="x" * 70_000))}).json == {
        "result": "too_large"
    }
    assert counted(web, "call", "too_large") == 1 and counted(web, "summary", "too_large") == 1


def test_a_larger_summary_than_an_agents_form_is_still_taken(app, web):
    body = summary(Comments="c" * 30_000)  # over the app's 16 KiB for forms, under 64 KiB
    assert post_summary(web, body).status_code == 200


def test_summaries_repeated_late_or_older_never_turn_a_confirmation_back(app, web):
    assert post_summary(web, summary()).json == {"result": "accepted"}
    assert post_summary(web, summary()).json == {"result": "duplicate"}
    older = summary(disposition="Not interested", EndTime="2026-12-03 10:00:00")
    assert post_summary(web, older).json == {"result": "stale"}
    assert state(app, "u-100").confirmed_disposition == "Interested"
    newer = summary(disposition="Sale closed", EndTime="2026-12-03 11:00:00")
    assert post_summary(web, newer).json == {"result": "accepted"}
    assert state(app, "u-100").confirmed_disposition == "Sale closed"
    # A Disconnect arriving after the summary is kept, and the call stays confirmed.
    assert web.post(CALL, json=event()).json == {"result": "accepted"}
    got = state(app, "u-100")
    assert got.confirmed_disposition == "Sale closed" and got.wrapup_left(120) is None


def test_a_summary_without_a_disposition_is_ignored(app, web):
    assert post_summary(web, summary(disposition="")).json == {"result": "ignored"}
    assert state(app, "u-100").confirmed_disposition is None


def test_events_for_unknown_calls_are_kept_for_a_panel_that_opens_later(app, web):
    assert web.post(CALL, json=event(ucid="nobody-knows")).json == {"result": "accepted"}
    assert post_summary(web, summary(ucid="nobody-knows")).json == {"result": "accepted"}
    assert counts(web)[("widget_confirmations_total", (("result", "no_save"),))] == 1


def test_a_flood_from_one_source_is_429_with_retry_after(app, web):
    app.extensions["events_limiter"].limit = 3
    answers = [web.post(CALL, json=event(ucid=f"u-{i}")) for i in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    assert int(answers[-1].headers["Retry-After"]) >= 1
    other = web.post(CALL, json=event(ucid="u-9"), environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert other.status_code == 200  # per source
    assert counted(web, "call", "rate_limited") == 2


def test_the_database_away_is_503_with_retry_after_and_nothing_lost_later(app, web, monkeypatch):
    audit = app.extensions["audit"]

    def away(_write):
        raise OperationalError("INSERT", {}, Exception("the database is away"))

    monkeypatch.setattr(audit, "transaction", away)
    answer = web.post(CALL, json=event())
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "30"
    assert post_summary(web, summary()).status_code == 503
    monkeypatch.undo()
    assert web.post(CALL, json=event()).json == {"result": "accepted"}  # CloudAgent's retry
    assert counted(web, "call", "unavailable") == 1


def test_no_csrf_no_cookies_and_other_methods_are_405(app, web):
    assert web.get(CALL).status_code == 405
    answer = web.post(CALL, json=event(), headers={"Cookie": "session=x"})
    assert answer.status_code == 200 and "Set-Cookie" not in answer.headers


@pytest.mark.parametrize(
    ("sent", "kept", "matches"),
    [("Interested", "Interested", True), ("Interested", "Not interested", False)],
)
def test_a_summary_arriving_before_the_saves_answer_is_compared_with_that_save(
    app, web, sent, kept, matches
):
    # A save in wrap-up: CloudAgent applies it, answers and posts its summary at once; the
    # summary can reach the receivers before the save's own row is completed.
    from webapp.audit import Attempt

    audit = app.extensions["audit"]
    with app.app_context():
        audit.begin(Attempt(agent="agent1", ucid="u-race", did=DID, disposition=sent,
                            pause=False, pause_reason=""))  # fmt: skip
    assert post_summary(web, summary("u-race", kept)).status_code == 200
    assert state(app, "u-race").matches is matches
    result = "match" if matches else "mismatch"
    key = ("widget_confirmations_total", (("result", result),))
    assert counts(web).get(key) == 1


def test_a_save_still_in_flight_does_not_turn_an_applied_earlier_save_into_a_mismatch(app, web):
    # The agent's first save was queued; a second one (another tab, a double submit) is still
    # on its way when CloudAgent's summary of the first arrives: that is a match.
    from webapp.audit import Attempt

    audit = app.extensions["audit"]

    def attempt(disposition):
        return Attempt(agent="agent1", ucid="u-two", did=DID, disposition=disposition,
                       pause=False, pause_reason="")  # fmt: skip

    with app.app_context():
        first = audit.begin(attempt("Interested"))
        audit.finish(first, outcome="queued", reason="queued", upstream_status="200",
                     upstream_text="queued", latency_ms=1.0)  # fmt: skip
        audit.begin(attempt("Not interested"))  # in flight
    assert post_summary(web, summary("u-two", "Interested")).status_code == 200
    assert state(app, "u-two").matches is True
