"""Faults the simulator can be told to inject, so the widget's error paths can be exercised.

A fault names the requests it applies to (`action`: "get", "Set", "generateToken" or "any") and
what goes wrong (`kind`); `count` is how many matching requests it spoils (-1: until cleared).
Pure Python like `state`: the Flask layer (`app`) turns a fault into an answer.

Kinds:

- replacing the answer; the request is NOT processed (no state change, no mint):
  `http_500`, `http_502`, `http_503` (an HTML error page, `text/html`), `empty` (200, no body),
  `not_json` (200, `text/plain`), `json_list` (200, `[]`), `json_number` (200, `42`),
  `no_status` (200, `{"message": "OK"}`), `status_error` (200, CloudAgent's "Error" status);
- processed normally: `slow` (sleeps `delay` seconds first), `lost_answer` (sleeps `delay`
  seconds after processing, so a Set IS applied but the client times out before the answer);
- altering a get's list (action "get" only): `html_names` (the account's names plus hostile
  ones), `huge_list` (5,000 generated names plus the account's). A Set still validates against
  the account's real list; a get that fails (e.g. an expired token) is answered as usual.

`delay` is slept (never under the simulator's lock) by every kind, after the latency setting:
before processing for `slow`, after it for `lost_answer`, before the faulty answer otherwise.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

FAULT_ACTIONS = ("get", "Set", "generateToken", "any")

_HTTP_ERRORS = {
    "http_500": (500, "Internal Server Error"),
    "http_502": (502, "Bad Gateway"),
    "http_503": (503, "Service Temporarily Unavailable"),
}


def _html_page(status: int, reason: str) -> str:
    title = f"{status} {reason}"
    return f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"


_JSON = "application/json"

# kind -> (HTTP status, Content-Type, body) of the answer sent instead of processing the request.
CANNED_ANSWERS: dict[str, tuple[int, str, str]] = {
    **{
        kind: (status, "text/html", _html_page(status, reason))
        for kind, (status, reason) in _HTTP_ERRORS.items()
    },
    "empty": (200, _JSON, ""),
    "not_json": (200, "text/plain", "Service temporarily unavailable"),
    "json_list": (200, _JSON, "[]"),
    "json_number": (200, _JSON, "42"),
    "no_status": (200, _JSON, json.dumps({"message": "OK"})),
    "status_error": (
        200,
        _JSON,
        json.dumps(
            {"status": "Error", "details": "Unable to Dispose . Please retry after some time."},
            separators=(",", ":"),
        ),
    ),
}

HOSTILE_NAMES = ("<script>alert(1)</script>", "<img src=x onerror=alert(2)>", 'Tom & "Jerry"')
HUGE_LIST_SIZE = 5000
LIST_KINDS = ("html_names", "huge_list")  # alter a successful get's list
PROCESSED_KINDS = ("slow", "lost_answer", *LIST_KINDS)  # the request is processed normally
FAULT_KINDS = (*CANNED_ANSWERS, *PROCESSED_KINDS)
DELAYED_KINDS = ("slow", "lost_answer")  # meaningless without a delay


@dataclass(frozen=True)
class Fault:
    id: int
    action: str
    kind: str
    count: int  # as added; -1 = until cleared
    delay: float = 0.0
    remaining: int = 1  # requests still to spoil; -1 = until cleared

    def matches(self, action: str) -> bool:
        return self.action in ("any", action)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.action,
            "kind": self.kind,
            "count": self.count,
            "remaining": self.remaining,
            "delay": self.delay,
        }


def validate(action: object, kind: object, count: object, delay: object) -> tuple[int, float]:
    """Check a fault's settings; raises ValueError saying what is wrong. Answers (count, delay)."""
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
    if action not in FAULT_ACTIONS:
        raise ValueError(
            f"unknown fault action {action!r}; expected one of {', '.join(FAULT_ACTIONS)}"
        )
    if kind in LIST_KINDS and action != "get":
        raise ValueError(f"fault kind {kind} only applies to action 'get', not {action!r}")
    if isinstance(count, bool) or not isinstance(count, int) or (count < 1 and count != -1):
        raise ValueError(
            f"fault count must be a whole number >= 1, or -1 (until cleared): {count!r}"
        )
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not math.isfinite(delay):
        raise ValueError(f"fault delay must be a number of seconds: {delay!r}")
    if delay < 0:
        raise ValueError(f"fault delay must be >= 0: {delay!r}")
    if kind in DELAYED_KINDS and delay <= 0:
        raise ValueError(f"fault kind {kind} needs a delay > 0 seconds")
    return count, float(delay)


def alter_list(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """A get's answer with its list changed by a list fault; other answers are left as they are."""
    details = body.get("details")
    if kind not in LIST_KINDS or body.get("status") != "Success" or not isinstance(details, list):
        return body
    if kind == "html_names":
        names = [*details, *HOSTILE_NAMES]
    else:
        generated = [f"Disposition {i:04d}" for i in range(1, HUGE_LIST_SIZE + 1)]
        names = [*generated, *details]
    return {**body, "details": names}
