"""The CloudAgent simulator: every documented response, tokens, call life-cycle, control API."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.helpers import DOCUMENTED_RESPONSES
from webapp.simulator import Simulator, create_app
from webapp.simulator import api as sim_api

CASES = DOCUMENTED_RESPONSES

TOKEN_URL = "/ca_apis/CAToken/generateToken"
DISPOSITION_URL = "/ca_apis/DispositionAPIV2"
USER, API_KEY = "demo", "demo-api-key"
DID, OTHER_DID = "914071327663", "918069000000"
SUPPORT_DID = "918069100000"  # the demo account's DID with a long list of its own
START = 1_700_000_000.0


class Clock:
    """A clock the tests move by hand."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Env:
    sim: Simulator
    clock: Clock
    client: FlaskClient

    def mint(self, username: str = USER, api_key: str | None = None) -> dict[str, Any]:
        if api_key is None:
            api_key = self.sim.accounts[username].api_key
        resp = self.client.post(TOKEN_URL, json={"userName": username}, headers={"apiKey": api_key})
        assert resp.status_code == 200
        return resp.get_json()

    def token(self, username: str = USER) -> str:
        return self.mint(username)["token"]

    def bearer(self, username: str = USER) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(username)}"}

    def post(self, body: Any, headers: dict[str, str]) -> dict[str, Any]:
        resp = self.client.post(DISPOSITION_URL, json=body, headers=headers)
        assert resp.status_code == 200
        return resp.get_json()


@pytest.fixture
def env() -> Env:
    clock = Clock()
    sim = Simulator(clock=clock)
    return Env(sim, clock, create_app(sim).test_client())


def set_body(ucid: Any, /, **changes: Any) -> dict[str, Any]:
    """A valid Set body for a demo call; changes=None drops a key."""
    body = {
        "action": "Set",
        "userName": USER,
        "agentID": "agent1",
        "did": DID,
        "ucid": ucid,
        "disposition": "Interested",
        "comments": "called back",
        "pauseAfterDispose": "true",
        "pauseReason": "Break",
        "autoRelease": "false",
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


def renamed(body: dict[str, Any], key: str, wrong: str) -> dict[str, Any]:
    """'key wrong' in the cases file: the key is misspelt, so CloudAgent sees it as missing."""
    body = dict(body)
    body[wrong] = body.pop(key)
    return body


# --- one situation builder per documented case -------------------------------------------------

Situation = tuple[dict[str, str], dict[str, Any]]  # (headers, body) of the request to send


def live_call(env: Env, **changes: Any) -> Situation:
    call = env.sim.start_call("agent1", DID)
    return env.bearer(), set_body(call.ucid, **changes)


def wrapup_call(env: Env, **changes: Any) -> Situation:
    call = env.sim.start_call("agent1", DID)
    env.sim.hang_up(call.ucid)
    return env.bearer(), set_body(call.ucid, **changes)


def with_key_renamed(key: str, wrong: str) -> Callable[[Env], Situation]:
    def build(env: Env) -> Situation:
        headers, body = live_call(env)
        return headers, renamed(body, key, wrong)

    return build


def expired_token(env: Env) -> Situation:
    headers, body = live_call(env)
    env.clock.advance(3600)
    return headers, body


def invalid_token(env: Env) -> Situation:
    _, body = live_call(env)
    forged = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJkZW1vIn0.c2lnbmF0dXJl"
    return {"Authorization": f"Bearer {forged}"}, body


def basic_auth_with_token(env: Env) -> Situation:
    env.sim.add_account(
        "basic", "basic-key", "BASIC_AUTH", agents={"b1"}, dids={"911"}, dispositions=["Ok"]
    )
    call = env.sim.start_call("b1", "911")
    body = set_body(call.ucid, userName="basic", agentID="b1", did="911", disposition="Ok")
    return env.bearer("basic"), body


def set_twice_in_wrapup(env: Env) -> Situation:
    headers, body = wrapup_call(env)
    assert env.post(body, headers)["status"] == "Success"
    return headers, body


def queued_then_hung_up(env: Env) -> Situation:
    headers, body = live_call(env)
    assert env.post(body, headers)["message"] == "Disposition Queued Successfully"
    env.sim.hang_up(body["ucid"])
    return headers, body


def within_wrapup_time(env: Env) -> Situation:
    headers, body = wrapup_call(env)
    env.clock.advance(29.9)
    return headers, body


def wrapup_exceeded(env: Env) -> Situation:
    headers, body = wrapup_call(env)
    env.clock.advance(30)
    return headers, body


def other_agents_call(env: Env) -> Situation:
    call = env.sim.start_call("agent2", DID)
    return env.bearer(), set_body(call.ucid, agentID="agent1")


SITUATIONS: dict[str, Callable[[Env], Situation]] = {
    "token expired": expired_token,
    "no token": lambda env: ({}, live_call(env)[1]),
    "invalid token": invalid_token,
    "account set to Basic Auth, request sent with a token": basic_auth_with_token,
    "set while the call is live": live_call,
    "set after the call disconnected": wrapup_call,
    "set on a call already disposed": queued_then_hung_up,
    "userName key wrong": with_key_renamed("userName", "username"),
    "userName value unknown": lambda env: live_call(env, userName="nobody"),
    "userName key missing": lambda env: live_call(env, userName=None),
    "userName value empty": lambda env: live_call(env, userName=""),
    "action key wrong": with_key_renamed("action", "Action"),
    "action value wrong": lambda env: live_call(env, action="Save"),
    "action key missing": lambda env: live_call(env, action=None),
    "action value empty": lambda env: live_call(env, action=""),
    "agentID key wrong": with_key_renamed("agentID", "agentId"),
    "agentID value unknown": lambda env: live_call(env, agentID="agent9"),
    "agentID key missing": lambda env: live_call(env, agentID=None),
    "agentID value empty": lambda env: live_call(env, agentID=""),
    "ucid key wrong": with_key_renamed("ucid", "UCID"),
    "ucid value unknown (ucid 9012171, did 914071327663)": lambda env: live_call(
        env, ucid="9012171", did="914071327663"
    ),
    "ucid key missing": lambda env: live_call(env, ucid=None),
    "ucid value empty": lambda env: live_call(env, ucid=""),
    "disposition key wrong": with_key_renamed("disposition", "dispositon"),
    "disposition value unknown": lambda env: live_call(env, disposition="Maybe later"),
    "disposition key missing": lambda env: live_call(env, disposition=None),
    "disposition value empty": lambda env: live_call(env, disposition=""),
    "pauseAfterDispose true (or absent: true is the default) and no pauseReason": lambda env: (
        live_call(env, pauseAfterDispose=None, pauseReason=None)
    ),
    "in wrap-up (ACW), a second set": set_twice_in_wrapup,
    "in wrap-up (ACW), within the wrap-up time": within_wrapup_time,
    "wrap-up time exceeded": wrapup_exceeded,
    "valid ucid, but this agent is not on the call": other_agents_call,
}


@pytest.mark.parametrize("case", CASES, ids=[case["when"] for case in CASES])
def test_documented_response(env: Env, case: dict[str, Any]) -> None:
    build = SITUATIONS.get(case["when"])
    if build is None:
        pytest.fail(f"no situation builder for case {case['when']!r}: add one to SITUATIONS")
    headers, body = build(env)
    resp = env.client.post(DISPOSITION_URL, json=body, headers=headers)
    assert resp.status_code == 200
    assert resp.get_json() == case["body"]
    # Same key order as CloudAgent, in case a client compares raw text.
    assert list(json.loads(resp.get_data())) == list(case["body"])


def test_no_stale_situation_builders() -> None:
    assert set(SITUATIONS) == {case["when"] for case in CASES}


# --- tokens --------------------------------------------------------------------------------------


def _claims(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    def part(text: str) -> dict[str, Any]:
        return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))

    header, claims, signature = token.split(".")
    assert "=" not in token and signature
    return part(header), part(claims)


def test_token_is_jwt_shaped_and_lives_an_hour(env: Env) -> None:
    env.clock.now = START + 0.7
    body = env.mint()
    assert set(body) == {"token", "message"} and body["message"] == ""
    header, claims = _claims(body["token"])
    assert header == {"alg": "HS256", "typ": "JWT"}
    assert claims["sub"] == USER
    assert claims["iat"] == int(START)
    assert claims["exp"] == claims["iat"] + 3600
    assert claims["jti"] == 1
    assert _claims(env.token())[1]["jti"] == 2


def test_token_expires_at_exp(env: Env) -> None:
    headers = env.bearer()
    get = {"action": "get", "userName": USER}
    env.clock.advance(3599)
    assert env.post(get, headers)["status"] == "Success"
    env.clock.advance(1)
    assert env.post(get, headers)["message"] == "Token Expired"


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        ({}, {"apiKey": API_KEY}, "UserName is null"),
        ({"userName": ""}, {"apiKey": API_KEY}, "UserName is null"),
        ({"userName": "nobody"}, {"apiKey": API_KEY}, "Invalid userName or apiKey"),
        ({"userName": USER}, {"apiKey": "wrong"}, "Invalid userName or apiKey"),
        ({"userName": USER}, {}, "Invalid userName or apiKey"),
    ],
    ids=["userName missing", "userName empty", "unknown user", "wrong apiKey", "no apiKey"],
)
def test_generate_token_errors(env: Env, body: dict, headers: dict, message: str) -> None:
    resp = env.client.post(TOKEN_URL, json=body, headers=headers)
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "false", "message": message, "data": None}


def test_new_mint_invalidates_previous_token(env: Env) -> None:
    get = {"action": "get", "userName": USER}
    old, new = env.bearer(), env.bearer()
    assert env.post(get, old)["message"] == "Invalid Token"
    assert env.post(get, new)["status"] == "Success"


def test_expired_token_is_invalid_once_superseded(env: Env) -> None:
    get = {"action": "get", "userName": USER}
    old = env.bearer()
    env.clock.advance(4000)
    assert env.post(get, old)["message"] == "Token Expired"
    env.token()
    assert env.post(get, old)["message"] == "Invalid Token"


def test_eleventh_mint_in_an_hour_is_refused(env: Env) -> None:
    tokens = [env.token() for _ in range(10)]
    refused = env.mint()
    assert refused == {
        "status": "false",
        "message": "Token generation limit exceeded. Please try after some time.",
        "data": None,
    }
    # A refused mint leaves the current token working.
    get = {"action": "get", "userName": USER}
    assert env.post(get, {"Authorization": f"Bearer {tokens[-1]}"})["status"] == "Success"
    env.clock.advance(3599)
    assert "token" not in env.mint()
    env.clock.advance(1)
    assert "token" in env.mint()
    stats = env.sim.stats()
    assert stats["mints"] == {USER: 11}
    assert stats["mint_attempts"] == {USER: 13}


def test_limit_is_per_account(env: Env) -> None:
    env.sim.add_account("other", "other-key", agents={"o1"})
    for _ in range(10):
        env.token()
    assert "token" in env.mint("other", "other-key")


def test_expire_and_rotate_token(env: Env) -> None:
    get = {"action": "get", "userName": USER}
    headers = env.bearer()
    env.sim.expire_token(USER)
    assert env.post(get, headers)["message"] == "Token Expired"

    headers = env.bearer()
    outsider = env.sim.rotate_token(USER)
    assert env.post(get, headers)["message"] == "Invalid Token"
    assert env.post(get, {"Authorization": f"Bearer {outsider}"})["status"] == "Success"
    assert env.sim.stats()["mints"] == {USER: 3}
    assert env.sim.mint_times(USER) == [START] * 3


# --- authentication variants ---------------------------------------------------------------------


@pytest.fixture
def basic(env: Env) -> Env:
    env.sim.add_account(
        "basic",
        "basic-key",
        "BASIC_AUTH",
        agents={"b1"},
        dids={"911"},
        dispositions=["Ok", "Not ok"],
        pause_reasons=["Break"],
    )
    return env


def test_basic_auth_account_uses_api_key(basic: Env) -> None:
    get = {"action": "get", "userName": "basic"}
    assert basic.post(get, {"apiKey": "basic-key"}) == {
        "status": "Success",
        "details": ["Ok", "Not ok"],
    }
    call = basic.sim.start_call("b1", "911")
    body = set_body(call.ucid, userName="basic", agentID="b1", did="911", disposition="Ok")
    assert basic.post(body, {"apiKey": "basic-key"})["message"] == "Disposition Queued Successfully"


@pytest.mark.parametrize(
    ("username", "api_key", "message"),
    [
        ("basic", "wrong", "Invalid User Details"),
        ("basic", "", "Api Key Should Not be Null or Empty."),
        ("nobody", "basic-key", "Invalid User Details"),
        ("", "basic-key", "Username Should Not be Null or Empty."),
        (USER, API_KEY, "Token Should Not be Null or Empty."),
    ],
    ids=["wrong key", "empty key", "unknown user", "no user", "token account"],
)
def test_api_key_errors(basic: Env, username: str, api_key: str, message: str) -> None:
    body = {"action": "get", "userName": username}
    assert basic.post(body, {"apiKey": api_key}) == {
        "status": "false",
        "message": message,
        "data": None,
    }


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", ""])
def test_empty_bearer_is_a_missing_token(env: Env, header: str) -> None:
    body = {"action": "get", "userName": USER}
    assert env.post(body, {"Authorization": header})["message"] == (
        "Token Should Not be Null or Empty."
    )


def test_token_of_another_account(basic: Env) -> None:
    basic.sim.add_account("other", "other-key", agents={"o1"})
    body = {"action": "get", "userName": USER}
    assert basic.post(body, basic.bearer("other"))["message"] == "Invalid User Details"


# --- get and Set details -------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["get", "GET", "Get"])
def test_get_returns_disposition_list(env: Env, action: str) -> None:
    assert env.post({"action": action, "userName": USER}, env.bearer()) == {
        "status": "Success",
        "details": [
            "Interested",
            "Not interested",
            "Call back later",
            "Wrong number",
            "Sale closed",
        ],
    }


@pytest.mark.parametrize("action", ["set", "SET", "Set"])
def test_set_action_is_case_insensitive(env: Env, action: str) -> None:
    headers, body = live_call(env, action=action)
    assert env.post(body, headers)["message"] == "Disposition Queued Successfully"


@pytest.mark.parametrize("pause", ["true", "TRUE", None, ""])
def test_pause_reason_required_when_pausing(env: Env, pause: str | None) -> None:
    headers, body = live_call(env, pauseAfterDispose=pause, pauseReason="")
    assert env.post(body, headers) == {"details": "Provide pause reason", "status": "Fail"}


def test_pause_reason_must_be_known(env: Env) -> None:
    headers, body = live_call(env, pauseReason="Nap")
    assert env.post(body, headers) == {"details": "pauseReason is Invalid", "status": "Fail"}


@pytest.mark.parametrize("reason", [None, "", "Nap"])
def test_no_pause_needs_no_reason(env: Env, reason: str | None) -> None:
    headers, body = live_call(env, pauseAfterDispose="false", pauseReason=reason)
    assert env.post(body, headers)["status"] == "Success"


def test_long_ucid_fails_with_error(env: Env) -> None:
    headers = env.bearer()
    assert env.post(set_body("1" * 20), headers) == {
        "status": "Error",
        "details": "Unable to Dispose . Please retry after some time.",
    }
    assert env.post(set_body("1" * 19), headers)["details"] == (
        f"Invalid ucid [{'1' * 19}] or did [{DID}]"
    )


def test_did_must_match_the_call(env: Env) -> None:
    headers, body = live_call(env, did=OTHER_DID)
    assert env.post(body, headers) == {
        "details": f"Invalid ucid [{body['ucid']}] or did [{OTHER_DID}]",
        "status": "Fail",
    }


def test_a_did_with_a_list_of_its_own_lists_and_takes_only_those(env: Env) -> None:
    support = env.sim.accounts[USER].did_dispositions[SUPPORT_DID]
    answer = env.post({"action": "get", "userName": USER, "did": SUPPORT_DID}, env.bearer())
    assert answer == {"status": "Success", "details": support}
    assert len(support) == 60 and len(set(support)) == 60
    call = env.sim.start_call("agent1", SUPPORT_DID)
    headers = env.bearer()
    body = set_body(call.ucid, did=SUPPORT_DID, disposition="Refund initiated")
    assert env.post(body, headers)["status"] == "Success"
    other = env.sim.start_call("agent1", DID)
    body = set_body(other.ucid, disposition="Refund initiated")  # not on this DID's list
    assert env.post(body, headers) == {"details": "Invalid Disposition", "status": "Fail"}


@pytest.mark.parametrize("value", ["2026-11-29 10:30", "2027-01-01 00:00", ""])
def test_a_callback_time_in_cloudagents_form_is_taken_and_kept(env: Env, value: str) -> None:
    headers, body = live_call(env, disposition="Call back later", callBackTime=value)
    assert env.post(body, headers)["message"] == "Disposition Queued Successfully"
    (attempt,) = env.sim.get_call(body["ucid"]).attempts
    assert attempt.sent["callBackTime"] == value and attempt.request.callback_time == value


@pytest.mark.parametrize(
    "value",
    ["2026-11-29T10:30", "2026-11-29 10:30:00", "29-11-2026 10:30", "2026-02-30 10:30",
     "2026-11-29 25:00", "tomorrow", "2026-11-29 10:30 ", "２０２６-11-29 10:30"],
)  # fmt: skip
def test_a_malformed_callback_time_is_refused_and_nothing_is_set(env: Env, value: str) -> None:
    """Assumed (docs/cloudagent.md): CloudAgent refuses a callBackTime not in its format."""
    headers, body = live_call(env, disposition="Call back later", callBackTime=value)
    assert env.post(body, headers) == {"details": "Invalid callBackTime", "status": "Fail"}
    call = env.sim.get_call(body["ucid"])
    assert call.queued is None and call.attempts[0].outcome == "Invalid callBackTime"


def test_numeric_values_are_read_as_text(env: Env) -> None:
    call = env.sim.start_call("agent1", DID, ucid="1234567890123456")
    body = set_body(1234567890123456, did=int(DID), pauseAfterDispose=False)
    assert env.post(body, env.bearer())["message"] == "Disposition Queued Successfully"
    assert call.queued == "Interested"


@pytest.mark.parametrize("url", [TOKEN_URL, DISPOSITION_URL])
@pytest.mark.parametrize("data", ["not json", "[1, 2]", '"text"', ""])
def test_non_object_body_is_a_400(env: Env, url: str, data: str) -> None:
    resp = env.client.post(url, data=data, content_type="application/json")
    assert resp.status_code == 400
    assert resp.get_json() == {"status": "false", "message": "Invalid request body", "data": None}


# --- call life-cycle -----------------------------------------------------------------------------


def test_queued_disposition_applied_at_hang_up(env: Env) -> None:
    headers, body = live_call(env, comments="wants a demo")
    call = env.sim.get_call(body["ucid"])
    assert env.post(body, headers)["message"] == "Disposition Queued Successfully"
    assert (call.state, call.queued, call.disposed) == ("live", "Interested", False)

    env.sim.hang_up(call.ucid)
    assert (call.state, call.queued, call.disposition, call.disposed) == (
        "wrapup",
        None,
        "Interested",
        True,
    )
    assert call.applied.comments == "wants a demo"
    assert env.post(set_body(call.ucid, disposition="Sale closed"), headers) == {
        "details": "This call is already Disposed.",
        "status": "Fail",
    }
    assert call.disposition == "Interested"
    assert [a.outcome for a in call.attempts] == ["queued", "already_disposed"]


def test_later_set_while_live_replaces_queued(env: Env) -> None:
    headers, body = live_call(env)
    env.post(body, headers)
    env.post(set_body(body["ucid"], disposition="Sale closed", pauseReason="Lunch"), headers)
    call = env.sim.hang_up(body["ucid"])
    assert call.disposition == "Sale closed"
    assert call.applied.pause_reason == "Lunch"


def test_wrapup_ends_with_the_clock() -> None:
    clock = Clock()
    sim = Simulator(clock=clock, wrapup_seconds=5)
    call = sim.start_call("agent1", DID)
    clock.advance(100)
    assert call.state == "live"
    sim.hang_up(call.ucid)
    clock.advance(4.9)
    assert call.state == "wrapup"
    clock.advance(0.1)
    assert call.state == "closed"
    assert not call.disposed


def test_hang_up_without_disposition_then_save(env: Env) -> None:
    headers, body = wrapup_call(env)
    assert env.post(body, headers)["details"] == "Disposition saved successfully"
    assert env.sim.get_call(body["ucid"]).disposition == "Interested"


def test_expire_wrapup_closes_even_a_live_call(env: Env) -> None:
    call = env.sim.start_call("agent1", DID)
    assert env.sim.expire_wrapup(call.ucid).state == "closed"
    env.sim.hang_up(call.ucid)  # a late hang-up changes nothing
    assert call.state == "closed"


def test_rejected_sets_are_recorded_on_the_call(env: Env) -> None:
    headers, body = live_call(env, disposition="Nope")
    env.post(body, headers)
    env.post(set_body(body["ucid"], agentID="agent2"), headers)
    call = env.sim.get_call(body["ucid"])
    assert [(a.request.agent_id, a.outcome) for a in call.attempts] == [
        ("agent1", "Invalid Disposition"),
        ("agent2", "Agent is not on this call."),
    ]
    assert call.queued is None


def test_attempts_keep_fields_as_sent(env: Env) -> None:
    headers, body = live_call(env, pauseAfterDispose=None, pauseReason="Lunch", comments=None)
    env.clock.advance(7)
    env.post(body, headers)
    (attempt,) = env.sim.get_call(body["ucid"]).attempts
    assert attempt.sent["pauseAfterDispose"] is None and attempt.sent["comments"] is None
    assert (attempt.sent["pauseReason"], attempt.sent["autoRelease"]) == ("Lunch", "false")
    assert attempt.request.pause_after_dispose is True and attempt.request.comments == ""
    assert (attempt.outcome, attempt.at) == ("queued", START + 7)


def test_start_call_ucids_and_validation(env: Env) -> None:
    call = env.sim.start_call("agent3", OTHER_DID)
    assert len(call.ucid) == 16 and call.ucid.isdigit()
    with pytest.raises(ValueError, match="unknown agent"):
        env.sim.start_call("agent9", DID)
    with pytest.raises(ValueError, match="not a DID"):
        env.sim.start_call("agent1", "123")
    with pytest.raises(ValueError, match="already exists"):
        env.sim.start_call("agent1", DID, ucid=call.ucid)


def test_concurrent_sets_in_wrapup_save_once(env: Env) -> None:
    headers, body = wrapup_call(env)
    results: list[dict[str, Any]] = []

    def send() -> None:
        results.append(sim_api.disposition(env.sim, headers, body)[1])

    threads = [threading.Thread(target=send) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    saved = [r for r in results if r.get("details") == "Disposition saved successfully"]
    assert len(saved) == 1 and len(results) == 16


# --- control API ---------------------------------------------------------------------------------


def test_control_calls(env: Env) -> None:
    resp = env.client.post("/sim/calls", json={"agentID": "agent1", "did": DID})
    assert resp.status_code == 201
    call = resp.get_json()
    assert call == {
        "ucid": call["ucid"],
        "monitorUCID": call["monitorUCID"],  # another id, as CloudAgent's events carry
        "callerID": call["callerID"],
        "agentID": "agent1",
        "did": DID,
        "state": "live",
        "disposition": None,
        "queued": None,
        "disposed": False,
        "comments": None,
        "pauseAfterDispose": None,
        "pauseReason": None,
        "attempts": [],
    }
    resp = env.client.post("/sim/calls", data={"agentID": "agent2", "did": DID, "ucid": "42"})
    assert resp.status_code == 201 and resp.get_json()["ucid"] == "42"

    assert [c["ucid"] for c in env.client.get("/sim/calls").get_json()] == [call["ucid"], "42"]
    assert env.client.get("/sim/calls/42").get_json()["agentID"] == "agent2"

    env.post(set_body("42", agentID="agent2"), env.bearer())
    hung = env.client.post("/sim/calls/42/hangup").get_json()
    assert (hung["state"], hung["disposition"], hung["disposed"]) == ("wrapup", "Interested", True)
    assert (hung["comments"], hung["pauseAfterDispose"], hung["pauseReason"]) == (
        "called back",
        True,
        "Break",
    )
    assert env.client.post("/sim/calls/42/expire-wrapup").get_json()["state"] == "closed"


@pytest.mark.parametrize(
    "data",
    [{}, {"agentID": "agent1"}, {"agentID": "agent9", "did": DID}, {"agentID": 1, "did": DID}],
)
def test_control_start_call_rejects_bad_input(env: Env, data: dict) -> None:
    resp = env.client.post("/sim/calls", json=data)
    assert resp.status_code == 400
    assert "error" in resp.get_json()


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/sim/calls/404"),
        ("post", "/sim/calls/404/hangup"),
        ("post", "/sim/calls/404/expire-wrapup"),
        ("post", "/sim/tokens/nobody/expire"),
        ("post", "/sim/tokens/nobody/rotate"),
        ("post", f"/sim/tokens/{USER}/expire"),  # known user, but no token yet
    ],
)
def test_control_unknown_is_404(env: Env, method: str, url: str) -> None:
    resp = getattr(env.client, method)(url)
    assert resp.status_code == 404
    assert set(resp.get_json()) == {"error"}


def test_control_tokens(env: Env) -> None:
    get = {"action": "get", "userName": USER}
    headers = env.bearer()
    assert env.client.post(f"/sim/tokens/{USER}/expire").get_json() == {
        "username": USER,
        "expired": True,
    }
    assert env.post(get, headers)["message"] == "Token Expired"
    rotated = env.client.post(f"/sim/tokens/{USER}/rotate").get_json()
    assert env.post(get, {"Authorization": f"Bearer {rotated['token']}"})["status"] == "Success"


def test_control_stats_and_reset(env: Env) -> None:
    headers = env.bearer()
    env.mint(api_key="wrong")
    env.client.post(TOKEN_URL, json={}, headers={"apiKey": API_KEY})
    env.post({"action": "get", "userName": USER}, headers)
    env.post({"action": "nope", "userName": USER}, headers)
    env.post(set_body("1"), headers)
    env.post(set_body("2"), {})  # counted even when auth fails
    env.sim.start_call("agent1", DID)

    stats = env.client.get("/sim/stats").get_json()
    assert stats["requests"] == {"generateToken": 3, "get": 1, "Set": 2, "other": 1}
    assert stats["mints"] == {USER: 1}
    assert stats["mint_attempts"] == {USER: 2}
    assert stats["calls"] == {"live": 1, "wrapup": 0, "closed": 0}

    assert env.client.post("/sim/reset").status_code == 200
    stats = env.client.get("/sim/stats").get_json()
    assert stats["requests"] == {"generateToken": 0, "get": 0, "Set": 0, "other": 0}
    assert stats["mints"] == {} and env.client.get("/sim/calls").get_json() == []
    # Tokens are forgotten, accounts are kept.
    assert env.post({"action": "get", "userName": USER}, headers)["message"] == "Invalid Token"
    assert "token" in env.mint()


def test_control_latency(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("webapp.simulator.app.time.sleep", slept.append)
    env.mint()
    assert slept == []

    resp = env.client.post("/sim/latency", json={"seconds": 0.3})
    assert resp.get_json() == {"latency": 0.3}
    env.mint()
    env.post({"action": "get", "userName": USER}, {})
    env.client.get("/sim/stats")  # the control API is never slowed down
    assert slept == [0.3, 0.3]

    for bad in ({"seconds": -1}, {"seconds": "1"}, {"seconds": True}, {}):
        assert env.client.post("/sim/latency", json=bad).status_code == 400


# --- app factory and entry point -----------------------------------------------------------------


def test_create_app_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMULATOR_LATENCY", "0.25")
    monkeypatch.setenv("SIMULATOR_WRAPUP_SECONDS", "5")
    sim = create_app().extensions["simulator"]
    assert (sim.latency, sim.wrapup_seconds) == (0.25, 5.0)


def test_given_simulator_is_used() -> None:
    sim = Simulator(seed=False)
    assert create_app(sim).extensions["simulator"] is sim
    assert sim.accounts == {}


def test_main_runs_threaded_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from webapp.simulator import __main__ as entry

    served: dict[str, Any] = {}

    def fake_run_simple(host: str, port: int, app: Any, **options: Any) -> None:
        served.update(host=host, port=port, app=app, **options)

    monkeypatch.setattr(entry, "run_simple", fake_run_simple)
    entry.main(["--port", "9001", "--latency", "0.1"])
    assert (served["host"], served["port"], served["threaded"]) == ("127.0.0.1", 9001, True)
    assert served["app"].extensions["simulator"].latency == 0.1
    out = capsys.readouterr().out
    assert "http://127.0.0.1:9001" in out and "demo-api-key" in out
    assert SUPPORT_DID in out
