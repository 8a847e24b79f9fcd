"""Flask app serving the simulator: CloudAgent's two endpoints plus the /sim/ control API."""

from __future__ import annotations

import os
import time

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from . import api
from .control import control, current_simulator
from .state import Simulator


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
    app.register_blueprint(control)
    return app


def _simulator_from_env() -> Simulator:
    return Simulator(
        latency=float(os.environ.get("SIMULATOR_LATENCY", "0")),
        wrapup_seconds=float(os.environ.get("SIMULATOR_WRAPUP_SECONDS", "30")),
    )


def _answer(handler: api.Handler) -> ResponseReturnValue:
    sim = current_simulator()
    if sim.latency > 0:
        time.sleep(sim.latency)  # outside the lock, so slow answers still overlap
    # force=True: parse whatever the content type; a non-JSON body becomes None -> 400.
    status, body = handler(sim, request.headers, request.get_json(force=True, silent=True))
    return jsonify(body), status


def _generate_token() -> ResponseReturnValue:
    return _answer(api.generate_token)


def _disposition() -> ResponseReturnValue:
    return _answer(api.disposition)
