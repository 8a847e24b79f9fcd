"""Probes for load balancers and orchestrators. Neither calls CloudAgent."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

log = logging.getLogger("webapp")

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """The process is up and answering."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Ready for traffic: the configuration was valid (or the app would not exist) and the
    service's own stores answer."""
    checks = {}
    for name, probe in current_app.extensions["readiness"].items():
        try:
            probe()
            checks[name] = "ok"
        except Exception as error:  # a probe's failure is the answer, not a crash
            log.error("readiness check %s failed: %s", name, error)
            checks[name] = "failed"
    ready = all(value == "ok" for value in checks.values())
    return jsonify(status="ready" if ready else "not ready", checks=checks), (200 if ready else 503)
