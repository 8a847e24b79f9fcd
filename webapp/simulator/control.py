"""The /sim/ control API: lets tests and the demo page start calls, hang up, expire tokens...

Faults make the next API answers misbehave (kinds and their effects: see `faults`):

- `POST /sim/faults` with JSON `{"action": "Set", "kind": "http_502", "count": 1, "delay": 0}`
  (`action`: "get", "Set", "generateToken" or "any"; `count` defaults to 1, -1 = until
  cleared; `delay` in seconds defaults to 0) queues a fault: 201 with it as JSON (`id`,
  `action`, `kind`, `count`, `remaining`, `delay`); bad input is a 400 `{"error": "..."}`.
  Each API request consumes at most one fault, the first added that matches it.
- `GET /sim/faults` lists the faults still waiting; `DELETE /sim/faults` clears them (204).
- `POST /sim/reset` clears them too; `GET /sim/stats` counts those served in `faults_served`.

CloudAgent's events (see `events`): `POST /sim/callback-url` with JSON `{"url": "...",
"encoding": "form"}` sets an account's Callback URL (`username` defaults to the demo account;
`encoding` "form", a field `data` holding JSON, or "json", a JSON body; an empty url clears it),
`GET /sim/callback-url?username=demo` reads it, and `GET /sim/deliveries` lists the last
deliveries (call events and summaries), oldest first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from .state import DEMO_USERNAME, Call, Simulator

control = Blueprint("simulator_control", __name__, url_prefix="/sim")


def current_simulator() -> Simulator:
    return current_app.extensions["simulator"]


def _fields() -> Mapping[str, Any]:
    """The request's JSON object or its form fields; the demo page posts a plain form."""
    if request.is_json:
        data = request.get_json(silent=True)
        return data if isinstance(data, dict) else {}
    return request.form


def call_json(call: Call) -> dict[str, Any]:
    # The applied disposition wins; while live, show what is queued.
    shown = call.applied or call.pending
    return {
        "ucid": call.ucid,
        "monitorUCID": call.monitor_ucid,
        "callerID": call.caller_id,
        "agentID": call.agent_id,
        "did": call.did,
        "state": call.state,
        "disposition": call.disposition,
        "queued": call.queued,
        "disposed": call.disposed,
        "comments": shown.comments if shown else None,
        "pauseAfterDispose": shown.pause_after_dispose if shown else None,
        "pauseReason": shown.pause_reason if shown else None,
        "attempts": [
            {
                "at": a.at,
                "sent": a.sent,
                "outcome": a.outcome,
            }
            for a in call.attempts
        ],
    }


@control.errorhandler(KeyError)
def _not_found(error: KeyError) -> ResponseReturnValue:
    return jsonify(error=str(error.args[0]) if error.args else "not found"), 404


@control.errorhandler(ValueError)
def _bad_request(error: ValueError) -> ResponseReturnValue:
    return jsonify(error=str(error)), 400


@control.post("/calls")
def start_call() -> ResponseReturnValue:
    data = _fields()
    agent_id, did = data.get("agentID"), data.get("did")
    if not isinstance(agent_id, str) or not agent_id or not isinstance(did, str) or not did:
        raise ValueError("agentID and did are required")
    ucid, caller = data.get("ucid") or None, data.get("callerID") or None
    call = current_simulator().start_call(
        agent_id,
        did,
        str(ucid) if ucid is not None else None,
        str(caller) if caller is not None else None,
    )
    return jsonify(call_json(call)), 201


@control.get("/calls")
def list_calls() -> ResponseReturnValue:
    return jsonify([call_json(call) for call in current_simulator().list_calls()])


@control.get("/calls/<ucid>")
def get_call(ucid: str) -> ResponseReturnValue:
    call = current_simulator().get_call(ucid)
    if call is None:
        raise KeyError(f"unknown ucid {ucid}")
    return jsonify(call_json(call))


@control.post("/calls/<ucid>/hangup")
def hang_up(ucid: str) -> ResponseReturnValue:
    return jsonify(call_json(current_simulator().hang_up(ucid)))


@control.post("/calls/<ucid>/expire-wrapup")
def expire_wrapup(ucid: str) -> ResponseReturnValue:
    return jsonify(call_json(current_simulator().expire_wrapup(ucid)))


@control.post("/tokens/<username>/expire")
def expire_token(username: str) -> ResponseReturnValue:
    current_simulator().expire_token(username)
    return jsonify(username=username, expired=True)


@control.post("/tokens/<username>/rotate")
def rotate_token(username: str) -> ResponseReturnValue:
    return jsonify(username=username, token=current_simulator().rotate_token(username))


@control.get("/stats")
def stats() -> ResponseReturnValue:
    return jsonify(current_simulator().stats())


@control.post("/reset")
def reset() -> ResponseReturnValue:
    current_simulator().reset()
    return jsonify(reset=True)


@control.post("/faults")
def add_fault() -> ResponseReturnValue:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValueError('expected a JSON object {"action": ..., "kind": ..., "count": 1}')
    unknown = sorted(set(data) - {"action", "kind", "count", "delay"})
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    fault = current_simulator().add_fault(
        data.get("action"),
        data.get("kind"),
        count=data.get("count", 1),
        delay=data.get("delay", 0.0),
    )
    return jsonify(fault.to_json()), 201


@control.get("/faults")
def list_faults() -> ResponseReturnValue:
    return jsonify([fault.to_json() for fault in current_simulator().faults()])


@control.delete("/faults")
def clear_faults() -> ResponseReturnValue:
    current_simulator().clear_faults()
    return "", 204


@control.post("/latency")
def set_latency() -> ResponseReturnValue:
    data = request.get_json(silent=True)
    seconds = data.get("seconds") if isinstance(data, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ValueError('expected JSON {"seconds": <number>}')
    current_simulator().set_latency(seconds)
    return jsonify(latency=current_simulator().latency)


@control.post("/callback-url")
def set_callback_url() -> ResponseReturnValue:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValueError('expected JSON {"url": "...", "encoding": "form" or "json"}')
    url, encoding = data.get("url") or "", data.get("encoding", "form")
    username = data.get("username", DEMO_USERNAME)
    if not isinstance(url, str) or (url and not url.startswith(("http://", "https://"))):
        raise ValueError("url must be an http(s) URL, or empty to clear it")
    if encoding not in ("form", "json"):
        raise ValueError("encoding must be 'form' (a field `data` holding JSON) or 'json'")
    sim = current_simulator()
    if sim.account(username) is None:
        raise KeyError(f"unknown username {username}")
    sim.events.set_callback_url(username, url, encoding)
    return _callback_json(sim, username)


@control.get("/callback-url")
def get_callback_url() -> ResponseReturnValue:
    return _callback_json(current_simulator(), request.args.get("username", DEMO_USERNAME))


def _callback_json(sim: Simulator, username: str) -> ResponseReturnValue:
    url, encoding = sim.events.callback_url(username)
    return jsonify(username=username, url=url, encoding=encoding)


@control.get("/deliveries")
def deliveries() -> ResponseReturnValue:
    return jsonify(current_simulator().events.deliverer.deliveries())
