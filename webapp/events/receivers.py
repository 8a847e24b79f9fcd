"""The receivers CloudAgent posts to: `POST /cloudagent/events/<token>/call` (Subscribe API
call events) and `/summary` (the Callback URL's call summary). Registered only with
WIDGET_EVENTS_TOKEN set; otherwise both paths are the service's ordinary 404.

Every answer is small JSON, `{"result": "..."}`, and chosen so that CloudAgent, which retries
what fails, retries only what may succeed later:

- 200 accepted, duplicate (a repeat), stale (older than what is kept), ignored (Calling,
  Answered, another event type, a summary without a disposition);
- 400 malformed: not JSON, not an object, wrong types, no ucid, an unknown action;
- 403 refused: another account's user name, or a summary's Apikey not the account's;
- 404, no result: a wrong token, as if the path did not exist;
- 413 too_large: a body over 64 KiB;
- 429 rate_limited: over the per-source limit (webapp.events.limits), with Retry-After;
- 503 unavailable: the audit database is away; Retry-After, so that CloudAgent's retries
  bring it once it is back. Not bad input: the only 5xx, and never for what was posted.

No browser posts here: no cookies are read or set, and CSRF does not apply (the panel's
CSRF token is checked by its own form only). Nothing secret is logged: the path's token is
masked by webapp.web.logs, and a summary's Apikey is never kept.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import redis
from flask import Blueprint, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge

from ..audit import AuditUnavailable
from ..web.logs import annotate
from . import parse
from .limits import SourceLimiter, source_of
from .store import ACCEPTED, EventStore

log = logging.getLogger("webapp.events")

bp = Blueprint("events", __name__)

# The metric's `result`, a closed set (docs/operations.md).
IGNORED = "ignored"
MALFORMED = "malformed"
REFUSED = "refused"
TOO_LARGE = "too_large"
RATE_LIMITED = "rate_limited"
UNAVAILABLE = "unavailable"
RESULTS = (ACCEPTED, "duplicate", "stale", IGNORED, MALFORMED, REFUSED, TOO_LARGE,
           RATE_LIMITED, UNAVAILABLE)  # fmt: skip
KINDS = ("call", "summary")
RETRY_AFTER_UNAVAILABLE = 30  # seconds: CloudAgent's retry finds the database back


def _answer(kind: str, result: str, status: int = 200, **headers: str) -> ResponseReturnValue:
    annotate(event_kind=kind, event_result=result)
    counted = current_app.extensions.get("metrics")
    if counted is not None:
        counted.cloudagent_event(kind, result)
    response = jsonify(result=result)
    response.status_code = status
    response.headers.update(headers)
    return response


def _admit(kind: str, token: str) -> ResponseReturnValue | None:
    """A refusal before the payload is read: wrong token, too many, too large."""
    expected = current_app.config["WIDGET"].events_token.encode()
    if not hmac.compare_digest(token.encode("utf-8", "replace"), expected):
        annotate(event_kind=kind, event_result="not_found")
        return Response("not found\n", 404, {"Content-Type": "text/plain; charset=utf-8"})
    limiter: SourceLimiter = current_app.extensions["events_limiter"]
    wait = limiter.hit(source_of(request))
    if wait:
        return _answer(kind, RATE_LIMITED, 429, **{"Retry-After": str(max(1, round(wait)))})
    if (request.content_length or 0) > parse.MAX_BODY:
        return _answer(kind, TOO_LARGE, 413)
    return None


def _payload(kind: str) -> dict:
    """The posted object; raises Malformed or RequestEntityTooLarge."""
    request.max_content_length = parse.MAX_BODY  # the app's 16 KiB is for agents' forms
    body = request.get_data(cache=True)
    form = request.form if request.mimetype == "application/x-www-form-urlencoded" else {}
    return parse.read_body(body, form, summary=kind == "summary")


def _zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["WIDGET"].cloudagent_timezone)


def _store() -> EventStore:
    return current_app.extensions["call_events"]


@bp.post("/cloudagent/events/<token>/call")
def call_event(token: str) -> ResponseReturnValue:
    refused = _admit("call", token)
    if refused is not None:
        return refused
    settings = current_app.config["WIDGET"]
    event, refused = _parsed(
        "call",
        lambda payload: parse.call_event(
            payload, username=settings.cloudagent_username, zone=_zone()
        ),
    )
    if refused is not None:
        return refused
    if event is None or event.action != "Disconnect":
        # Calling and Answered change nothing the panel shows (yet): taken, not kept.
        return _answer("call", IGNORED)
    annotate(ucid=event.ucid, agent=event.agent)
    return _stored("call", lambda: _store().record_ended(event, time.time()))


@bp.post("/cloudagent/events/<token>/summary")
def call_summary(token: str) -> ResponseReturnValue:
    refused = _admit("summary", token)
    if refused is not None:
        return refused
    settings = current_app.config["WIDGET"]
    summary, refused = _parsed(
        "summary",
        lambda payload: parse.call_summary(
            payload,
            username=settings.cloudagent_username,
            api_key=settings.cloudagent_api_key,
            zone=_zone(),
        ),
    )
    if refused is not None:
        return refused
    annotate(ucid=summary.ucid, agent=summary.agent)
    if not summary.disposition:
        # Unanswered, or "send callback immediately": nothing kept to confirm.
        return _answer("summary", IGNORED)
    return _stored("summary", lambda: _store().record_confirmed(summary, time.time()))


def _parsed(kind: str, read: Callable[[dict], Any]) -> tuple[Any, ResponseReturnValue | None]:
    """The posted payload read by `read`, or the answer that refuses it (too large,
    malformed, another account's)."""
    try:
        return read(_payload(kind)), None
    except RequestEntityTooLarge:
        return None, _answer(kind, TOO_LARGE, 413)
    except parse.Malformed as error:
        log.warning("CloudAgent %s refused: %s", _NAMES[kind], error)
        return None, _answer(kind, MALFORMED, 400)
    except parse.Forbidden as error:
        log.warning("CloudAgent %s refused: %s", _NAMES[kind], error)
        return None, _answer(kind, REFUSED, 403)


_NAMES = {"call": "call event", "summary": "call summary"}  # as the log lines say them


def _stored(kind: str, write: object) -> ResponseReturnValue:
    try:
        recorded = write()  # type: ignore[operator]
    except (AuditUnavailable, SQLAlchemyError, OSError) as error:
        log.error("CloudAgent %s event not stored, database unavailable: %s", kind, error)
        return _answer(kind, UNAVAILABLE, 503, **{"Retry-After": str(RETRY_AFTER_UNAVAILABLE)})
    if recorded.comparison is not None:
        annotate(confirmation=recorded.comparison)
        counted = current_app.extensions.get("metrics")
        if counted is not None:
            counted.confirmation(recorded.comparison)
        if recorded.comparison == "mismatch":
            log.warning("CloudAgent kept another disposition than the widget's latest save")
    if recorded.result == ACCEPTED:
        _wake_push()
    return _answer(kind, recorded.result)


def _wake_push() -> None:
    """Tell open panels' streams (webapp.push) to read the new row: this worker's at once,
    every instance's through Redis. Only a wake-up: a lost one costs latency, not the row."""
    hub = current_app.extensions.get("push")
    if hub is not None:
        hub.notify()
    client = current_app.extensions.get("redis")
    if client is not None:
        from ..push.hub import CHANNEL

        try:
            client.publish(CHANNEL, b"1")
        except redis.RedisError as error:
            log.warning("push wake-up not published (panels learn it at the next poll): %s", error)
