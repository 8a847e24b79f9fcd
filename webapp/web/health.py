"""Probes for load balancers and orchestrators. Neither calls CloudAgent."""

from __future__ import annotations

import logging
import time

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
    body: dict[str, object] = {"status": "ready" if ready else "not ready", "checks": checks}
    conflict = _sign_in_conflict()
    if conflict:
        body["sign_in_conflict"] = conflict
    return jsonify(body), (200 if ready else 503)


def _sign_in_conflict() -> dict[str, str] | None:
    """Saves are refused while another system keeps signing in to the account. Still ready:
    every instance shares the account, so taking one out of service would not help."""
    try:
        until = current_app.extensions["cloudagent"].sign_in_conflict()
    except Exception:  # the token store's own check above already reports it
        return None
    if until is None:
        return None
    return {
        "until": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until)),
        "cause": "another system is signing in to the same CloudAgent account, so saves "
        "are refused",
        "fix": "let only this service sign in with the account's API key",
    }
