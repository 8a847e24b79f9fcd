"""The simulator's fault injection: each kind's answer and effect, count semantics, control API."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from webapp.simulator import Fault, Simulator, create_app
from webapp.simulator.faults import FAULT_KINDS, HOSTILE_NAMES

TOKEN_URL = "/ca_apis/CAToken/generateToken"
DISPOSITION_URL = "/ca_apis/DispositionAPIV2"
USER, API_KEY = "demo", "demo-api-key"
DID = "914071327663"
NAMES = ["Interested", "Not interested", "Call back later", "Wrong number", "Sale closed"]
SLEEP = "webapp.simulator.app.time.sleep"


@dataclass
class Env:
    sim: Simulator
    client: FlaskClient
    headers: dict[str, str]  # a valid bearer token, minted before any fault is added

    def mint(self) -> TestResponse:
        return self.client.post(TOKEN_URL, json={"userName": USER}, headers={"apiKey": API_KEY})

    def get(self) -> TestResponse:
        return self.client.post(
            DISPOSITION_URL, json={"action": "get", "userName": USER}, headers=self.headers
        )

    def set(self, ucid: str, **changes: Any) -> TestResponse:
        body = {
            "action": "Set",
            "userName": USER,
            "agentID": "agent1",
            "did": DID,
            "ucid": ucid,
            "disposition": "Interested",
            "comments": "",
            "pauseAfterDispose": "false",
        } | changes
        return self.client.post(DISPOSITION_URL, json=body, headers=self.headers)

    def requests(self) -> dict[str, int]:
        return self.sim.stats()["requests"]


@pytest.fixture
def env() -> Env:
    sim = Simulator()
    client = create_app(sim).test_client()
    token = client.post(TOKEN_URL, json={"userName": USER}, headers={"apiKey": API_KEY})
    return Env(sim, client, {"Authorization": f"Bearer {token.get_json()['token']}"})


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """time.sleep as the simulator calls it, recorded instead of slept."""
    calls: list[float] = []
    monkeypatch.setattr(SLEEP, calls.append)
    return calls


def is_normal_set(resp: TestResponse) -> bool:
    return resp.status_code == 200 and resp.get_json() == {
        "status": "Success",
        "message": "Disposition Queued Successfully",
    }


# --- answers that replace processing ---------------------------------------------------------

CANNED: dict[str, tuple[int, str, bytes]] = {
    "http_500": (
        500,
        "text/html",
        b"<html><head><title>500 Internal Server Error</title></head>"
        b"<body><h1>500 Internal Server Error</h1></body></html>",
    ),
    "http_502": (
        502,
        "text/html",
        b"<html><head><title>502 Bad Gateway</title></head>"
        b"<body><h1>502 Bad Gateway</h1></body></html>",
    ),
    "http_503": (
        503,
        "text/html",
        b"<html><head><title>503 Service Temporarily Unavailable</title></head>"
        b"<body><h1>503 Service Temporarily Unavailable</h1></body></html>",
    ),
    "empty": (200, "application/json", b""),
    "not_json": (200, "text/plain", b"Service temporarily unavailable"),
    "json_list": (200, "application/json", b"[]"),
    "json_number": (200, "application/json", b"42"),
    "no_status": (200, "application/json", b'{"message": "OK"}'),
    "status_error": (
        200,
        "application/json",
        b'{"status":"Error","details":"Unable to Dispose . Please retry after some time."}',
    ),
}


def test_every_kind_is_covered() -> None:
    assert set(FAULT_KINDS) == {*CANNED, "slow", "lost_answer", "html_names", "huge_list"}


def assert_canned(resp: TestResponse, kind: str) -> None:
    status, content_type, body = CANNED[kind]
    assert (resp.status_code, resp.headers["Content-Type"], resp.data) == (
        status,
        content_type,
        body,
    )


@pytest.mark.parametrize("kind", CANNED)
def test_canned_set_is_not_processed(env: Env, kind: str) -> None:
    call = env.sim.start_call("agent1", DID)
    env.sim.add_fault("Set", kind)

    assert_canned(env.set(call.ucid), kind)
    assert (call.pending, call.applied, call.attempts) == (None, None, [])
    assert env.requests()["Set"] == 1
    assert env.sim.stats()["faults_served"] == {kind: 1}
    assert env.sim.faults() == []

    assert is_normal_set(env.set(call.ucid))  # consumed: the next Set is answered as usual
    assert call.queued == "Interested"


@pytest.mark.parametrize("kind", CANNED)
def test_canned_generate_token_mints_nothing(env: Env, kind: str) -> None:
    env.sim.add_fault("generateToken", kind)
    assert_canned(env.mint(), kind)
    stats = env.sim.stats()
    assert stats["mints"] == {USER: 1}  # the fixture's mint only
    assert stats["mint_attempts"] == {USER: 2}  # ... but the request was an attempt
    assert stats["requests"]["generateToken"] == 2
    assert env.get().get_json()["status"] == "Success"  # the fixture's token is still current


@pytest.mark.parametrize("kind", CANNED)
def test_canned_get(env: Env, kind: str) -> None:
    env.sim.add_fault("get", kind)
    assert_canned(env.get(), kind)
    assert env.requests()["get"] == 1
    assert env.get().get_json() == {"status": "Success", "details": NAMES}


def test_canned_answer_waits_its_delay(env: Env, slept: list[float]) -> None:
    env.sim.add_fault("get", "http_503", delay=2.5)
    assert env.get().status_code == 503
    assert slept == [2.5]


# --- slow and lost answers ---------------------------------------------------------------------


def test_slow_sleeps_then_processes(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    call = env.sim.start_call("agent1", DID)
    env.sim.set_latency(0.2)
    env.sim.add_fault("Set", "slow", delay=7)
    queued_when_slept: list[tuple[float, str | None]] = []
    monkeypatch.setattr(SLEEP, lambda s: queued_when_slept.append((s, call.queued)))

    assert is_normal_set(env.set(call.ucid))
    # Latency first, then the fault's delay, both before the Set was processed.
    assert queued_when_slept == [(0.2, None), (7.0, None)]
    assert call.queued == "Interested"
    assert env.sim.stats()["faults_served"] == {"slow": 1}


def test_lost_answer_processes_then_sleeps(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    call = env.sim.start_call("agent1", DID)
    env.sim.add_fault("Set", "lost_answer", delay=30)
    queued_when_slept: list[tuple[float, str | None]] = []
    monkeypatch.setattr(SLEEP, lambda s: queued_when_slept.append((s, call.queued)))

    assert is_normal_set(env.set(call.ucid))  # what the client would have got, had it waited
    assert queued_when_slept == [(30.0, "Interested")]  # applied before the answer was held
    assert [a.outcome for a in call.attempts] == ["queued"]
    assert env.requests()["Set"] == 1


def test_lost_answer_in_wrapup_saves(env: Env, slept: list[float]) -> None:
    call = env.sim.start_call("agent1", DID)
    env.sim.hang_up(call.ucid)
    env.sim.add_fault("Set", "lost_answer", delay=5)
    assert env.set(call.ucid).get_json()["details"] == "Disposition saved successfully"
    assert call.disposition == "Interested" and slept == [5.0]
    # The client, never having seen the answer, retries: the call is already disposed.
    assert env.set(call.ucid).get_json()["details"] == "This call is already Disposed."


def test_slow_generate_token_mints(env: Env, slept: list[float]) -> None:
    env.sim.add_fault("generateToken", "lost_answer", delay=3)
    assert "token" in env.mint().get_json()
    assert env.sim.stats()["mints"] == {USER: 2} and slept == [3.0]


# --- list faults -------------------------------------------------------------------------------


def test_html_names(env: Env) -> None:
    env.sim.add_fault("get", "html_names")
    details = env.get().get_json()["details"]
    assert details == [
        *NAMES,
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(2)>",
        'Tom & "Jerry"',
    ]
    assert list(HOSTILE_NAMES) == details[len(NAMES) :]
    assert env.get().get_json()["details"] == NAMES  # one request only


def test_huge_list_and_set_validates_against_real_list(env: Env) -> None:
    env.sim.add_fault("get", "huge_list", count=-1)
    resp = env.get()
    assert resp.status_code == 200 and resp.get_json()["status"] == "Success"
    details = resp.get_json()["details"]
    assert len(details) == 5000 + len(NAMES)
    assert details[:2] == ["Disposition 0001", "Disposition 0002"]
    assert details[4999] == "Disposition 5000" and details[5000:] == NAMES

    call = env.sim.start_call("agent1", DID)
    assert env.set(call.ucid, disposition="Disposition 0001").get_json() == {
        "details": "Invalid Disposition",
        "status": "Fail",
    }
    assert is_normal_set(env.set(call.ucid, disposition="Sale closed"))
    assert env.sim.stats()["faults_served"] == {"huge_list": 1}  # Sets don't consume it


def test_list_fault_leaves_a_failed_get_alone(env: Env) -> None:
    env.sim.add_fault("get", "html_names")
    env.sim.expire_token(USER)
    assert env.get().get_json() == {"status": "false", "message": "Token Expired", "data": None}
    assert env.sim.faults() == []  # consumed all the same


# --- count semantics ---------------------------------------------------------------------------


def test_count_n_then_normal(env: Env) -> None:
    env.sim.add_fault("get", "http_502", count=3)
    assert [env.get().status_code for _ in range(4)] == [502, 502, 502, 200]
    assert env.sim.stats()["faults_served"] == {"http_502": 3}
    assert env.requests()["get"] == 4


def test_count_minus_one_until_cleared(env: Env) -> None:
    fault = env.sim.add_fault("get", "empty", count=-1)
    assert [env.get().data for _ in range(5)] == [b""] * 5
    assert env.sim.faults() == [fault]  # remaining stays -1
    env.sim.clear_faults()
    assert env.get().get_json()["status"] == "Success"
    assert env.sim.stats()["faults_served"] == {"empty": 5}


def test_first_added_first_one_per_request(env: Env) -> None:
    env.sim.add_fault("get", "http_500")
    env.sim.add_fault("get", "http_503", count=2)
    env.sim.add_fault("get", "not_json")
    codes = [(r.status_code, r.mimetype) for r in (env.get() for _ in range(5))]
    assert codes == [
        (500, "text/html"),
        (503, "text/html"),
        (503, "text/html"),
        (200, "text/plain"),
        (200, "application/json"),
    ]


def test_faults_only_match_their_action(env: Env) -> None:
    call = env.sim.start_call("agent1", DID)
    set_fault = env.sim.add_fault("Set", "http_502")
    token_fault = env.sim.add_fault("generateToken", "http_500")
    env.sim.add_fault("get", "json_list")

    assert env.get().get_json() == []  # skips the Set and generateToken faults
    assert env.sim.faults() == [set_fault, token_fault]
    assert env.set(call.ucid).status_code == 502
    assert env.mint().status_code == 500
    assert env.sim.faults() == []


def test_any_matches_every_api_request(env: Env) -> None:
    call = env.sim.start_call("agent1", DID)
    env.sim.add_fault("any", "status_error", count=4)
    other = {"action": "Save", "userName": USER}
    answers = [
        env.get(),
        env.set(call.ucid),
        env.mint(),
        env.client.post(DISPOSITION_URL, json=other, headers=env.headers),
    ]
    assert [r.get_json()["status"] for r in answers] == ["Error"] * 4
    assert call.attempts == []
    assert env.requests() == {"generateToken": 2, "get": 1, "Set": 1, "other": 1}
    assert env.sim.stats()["faults_served"] == {"status_error": 4}


def test_earliest_matching_fault_wins_over_any(env: Env) -> None:
    env.sim.add_fault("Set", "http_500")
    env.sim.add_fault("any", "http_503")
    env.sim.add_fault("get", "http_502")
    assert env.get().status_code == 503  # the "any" fault was added before the "get" one
    assert env.get().status_code == 502
    assert [f.kind for f in env.sim.faults()] == ["http_500"]


def test_fault_on_non_json_body_is_counted(env: Env, slept: list[float]) -> None:
    env.sim.add_fault("any", "slow", delay=1)
    resp = env.client.post(DISPOSITION_URL, data="not json", headers=env.headers)
    assert resp.status_code == 400 and slept == [1.0]
    assert env.requests()["other"] == 1
    env.sim.add_fault("any", "http_502")
    assert env.client.post(DISPOSITION_URL, data="{", headers=env.headers).status_code == 502
    assert env.requests()["other"] == 2


def test_faults_are_consumed_once_across_threads() -> None:
    sim = Simulator()
    sim.add_fault("any", "http_500", count=50)
    taken: list[Fault | None] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for _ in range(20):
            taken.append(sim.take_fault("get"))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(fault is not None for fault in taken) == 50
    assert sim.faults() == [] and sim.stats()["faults_served"] == {"http_500": 50}


def test_fault_json_and_remaining(env: Env) -> None:
    fault = env.sim.add_fault("Set", "lost_answer", count=2, delay=1.5)
    assert fault.to_json() == {
        "id": fault.id,
        "action": "Set",
        "kind": "lost_answer",
        "count": 2,
        "remaining": 2,
        "delay": 1.5,
    }
    assert env.sim.take_fault("Set") == fault
    assert [f.remaining for f in env.sim.faults()] == [1]
    assert fault.remaining == 2  # faults are immutable snapshots


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("get", "http_404"), {}, "unknown fault kind 'http_404'"),
        (("set", "http_502"), {}, "unknown fault action 'set'"),
        (("other", "empty"), {}, "unknown fault action"),
        (("Set", "html_names"), {}, "only applies to action 'get'"),
        (("any", "huge_list"), {}, "only applies to action 'get'"),
        (("get", "empty"), {"count": 0}, "count"),
        (("get", "empty"), {"count": -2}, "count"),
        (("get", "empty"), {"count": 1.5}, "count"),
        (("get", "empty"), {"count": True}, "count"),
        (("get", "empty"), {"delay": -1}, "delay must be >= 0"),
        (("get", "empty"), {"delay": float("inf")}, "delay"),
        (("get", "empty"), {"delay": "1"}, "delay"),
        (("Set", "slow"), {}, "needs a delay > 0"),
        (("Set", "lost_answer"), {"delay": 0}, "needs a delay > 0"),
    ],
)
def test_add_fault_validates(args: tuple, kwargs: dict, message: str) -> None:
    sim = Simulator()
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        sim.add_fault(*args, **kwargs)
    assert sim.faults() == []


# --- control API -------------------------------------------------------------------------------


def test_control_faults(env: Env) -> None:
    resp = env.client.post(
        "/sim/faults", json={"action": "Set", "kind": "http_502", "count": 2, "delay": 0}
    )
    assert resp.status_code == 201
    added = resp.get_json()
    assert added == {
        "id": added["id"],
        "action": "Set",
        "kind": "http_502",
        "count": 2,
        "remaining": 2,
        "delay": 0.0,
    }
    defaults = env.client.post("/sim/faults", json={"action": "get", "kind": "empty"}).get_json()
    assert (defaults["count"], defaults["delay"]) == (1, 0.0)

    call = env.sim.start_call("agent1", DID)
    assert env.set(call.ucid).status_code == 502
    listed = env.client.get("/sim/faults").get_json()
    assert [(f["kind"], f["remaining"]) for f in listed] == [("http_502", 1), ("empty", 1)]

    resp = env.client.delete("/sim/faults")
    assert (resp.status_code, resp.data) == (204, b"")
    assert env.client.get("/sim/faults").get_json() == []
    assert is_normal_set(env.set(call.ucid))
    assert env.client.get("/sim/stats").get_json()["faults_served"] == {"http_502": 1}


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {},
        {"action": "Set"},
        {"kind": "http_502"},
        {"action": "Set", "kind": "teapot"},
        {"action": "Post", "kind": "http_502"},
        {"action": "Set", "kind": "http_502", "count": 0},
        {"action": "Set", "kind": "http_502", "count": "1"},
        {"action": "Set", "kind": "slow"},
        {"action": "Set", "kind": "slow", "delay": "5"},
        {"action": "Set", "kind": "html_names"},
        {"action": "Set", "kind": "http_502", "times": 2},
    ],
)
def test_control_faults_rejects_bad_input(env: Env, data: Any) -> None:
    if data is None:
        resp = env.client.post("/sim/faults", data="nope", content_type="application/json")
    else:
        resp = env.client.post(
            "/sim/faults", data=json.dumps(data), content_type="application/json"
        )
    assert resp.status_code == 400
    assert set(resp.get_json()) == {"error"} and resp.get_json()["error"]
    assert env.sim.faults() == []


def test_reset_clears_faults(env: Env) -> None:
    env.sim.add_fault("get", "http_500", count=-1)
    assert env.get().status_code == 500
    assert env.client.post("/sim/reset").status_code == 200
    assert env.client.get("/sim/faults").get_json() == []
    assert env.sim.stats()["faults_served"] == {}
    token = env.mint().get_json()["token"]  # reset forgot the tokens
    env.headers = {"Authorization": f"Bearer {token}"}
    assert env.get().get_json()["status"] == "Success"


def test_control_api_ignores_faults(env: Env) -> None:
    env.sim.add_fault("any", "http_500", count=-1)
    checks: list[Callable[[], TestResponse]] = [
        lambda: env.client.get("/sim/stats"),
        lambda: env.client.get("/sim/calls"),
        lambda: env.client.post("/sim/calls", json={"agentID": "agent1", "did": DID}),
    ]
    assert [check().status_code for check in checks] == [200, 200, 201]
    assert env.sim.stats()["faults_served"] == {}
