"""Flask app serving the simulator: CloudAgent's two endpoints plus the /sim/ control API.

Each API request first takes the next matching fault, if any (see `faults`), then sleeps the
latency setting, then is answered normally or as the fault says.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from flask import Flask, Response, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import Headers

from . import api, faults, subscribe
from .control import control, current_simulator
from .faults import Fault
from .state import Simulator

UNDERSCORE_HEADERS = "simulator.underscore_headers"  # set by server.RequestHandler


def create_app(simulator: Simulator | None = None) -> Flask:
    """Build the app; without a simulator, one is made from SIMULATOR_* environment variables."""
    app = Flask(__name__)
    # Keep CloudAgent's key order in bodies; Flask sorts keys by default.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["simulator"] = simulator if simulator is not None else _simulator_from_env()
    app.add_url_rule(
        "/ca_apis/CAToken/generateToken", "generate_token", _generate_token, methods=["POST"]
    )
    app.add_url_rule("/ca_apis/DispositionAPIV2", "disposition", _disposition, methods=["POST"])
    # The Subscribe API (another host at CloudAgent; here beside the others).
    for path, handler, method in (
        (subscribe.SUBSCRIBE_PATH, subscribe.subscribe, "POST"),
        (subscribe.LIST_PATH, subscribe.list_subscriptions, "GET"),
        (subscribe.UNSUBSCRIBE_PATH, subscribe.unsubscribe, "POST"),
    ):
        app.add_url_rule(path, handler.__name__, _subscription_view(handler), methods=[method])
    app.register_blueprint(control)
    return app


def _simulator_from_env() -> Simulator:
    return Simulator(
        latency=float(os.environ.get("SIMULATOR_LATENCY", "0")),
        wrapup_seconds=float(os.environ.get("SIMULATOR_WRAPUP_SECONDS", "30")),
    )


def _answer(handler: api.Handler, kind_of: Callable[[object], str]) -> ResponseReturnValue:
    sim = current_simulator()
    # force=True: parse whatever the content type; a non-JSON body becomes None -> 400.
    body = request.get_json(force=True, silent=True)
    kind = kind_of(body)
    fault = sim.take_fault(kind)  # taken on arrival, so faults go to requests in their order
    _sleep(sim.latency)  # outside the lock, so slow answers still overlap
    if fault is None:
        status, answer = handler(sim, request.headers, body)
        return jsonify(answer), status
    return _faulty_answer(sim, fault, handler, kind, body)


def _faulty_answer(
    sim: Simulator, fault: Fault, handler: api.Handler, kind: str, body: object
) -> ResponseReturnValue:
    canned = faults.CANNED_ANSWERS.get(fault.kind)
    if canned is not None or not isinstance(body, dict):
        # The handler will not count this request (it never runs, or stops at the bad body),
        # but a request that consumed a fault is always counted.
        sim.count_request(kind, api.username_of(body))
    if fault.kind != "lost_answer":
        _sleep(fault.delay)
    if canned is not None:
        status, content_type, text = canned
        return Response(text, status=status, content_type=content_type)
    status, answer = handler(sim, request.headers, body)
    answer = faults.alter_list(fault.kind, answer)
    if fault.kind == "lost_answer":
        # Processed (a Set is queued or applied), but the client gives up before this ends.
        _sleep(fault.delay)
    return jsonify(answer), status


def _sleep(seconds: float) -> None:
    # Never called under the simulator's lock.
    if seconds > 0:
        time.sleep(seconds)


def _subscription_view(handler: Callable[..., subscribe.Answer]) -> Callable[[], Response]:
    def view() -> Response:
        sim = current_simulator()
        _sleep(sim.latency)
        body = request.get_json(force=True, silent=True)
        headers = Headers(request.headers)
        # `api_key` as sent: werkzeug's server drops underscored names (see server.py).
        for name, value in request.environ.get(UNDERSCORE_HEADERS, {}).items():
            headers[name] = value
        status, content_type, text = handler(sim, headers, body)
        return Response(text, status=status, content_type=content_type)

    return view


def _generate_token() -> ResponseReturnValue:
    return _answer(api.generate_token, lambda _body: "generateToken")


def _disposition() -> ResponseReturnValue:
    return _answer(api.disposition, api.disposition_kind)
