"""Reading what CloudAgent posts: a Subscribe API call event, or a Callback URL call summary.

Nothing here trusts the payload: every field is checked for its type and length, names are
read as CloudAgent spells them in its documentation and in real payloads (`dId`, `Did`,
`DId`; `monitor_ucid`, `monitorUCID`; `UCID`), and anything that is not an object with a
call id is Malformed. The account's `Apikey`, present in every summary, is compared here and
never kept: `redacted()` is what may be logged.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

MAX_BODY = 64 * 1024  # bytes: a summary is about 1.5 KiB; anything this large is not one
FIELD_MAX = 250  # characters kept of any one field (a disposition is at most 100 upstream)
ID_MAX = 64  # a ucid, agent or DID longer than this is not one
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
ACTIONS = ("Calling", "Answered", "Disconnect")
AUTO_DISPOSITION = "wrap up time exceeded"  # "Wrap up time exceeded :120", CloudAgent's own
SECRET_FIELDS = ("apikey", "api_key")


class Malformed(ValueError):
    """Not a payload this service can read; the reason is safe to log (it echoes nothing)."""


class Forbidden(ValueError):
    """Readable, but not the account's: another user name, or a wrong Apikey."""


@dataclass(frozen=True)
class CallEvent:
    action: str  # Calling, Answered, Disconnect
    ucid: str
    monitor_ucid: str
    agent: str
    did: str
    happened_at: float | None  # event_time (else eventTime), epoch seconds


@dataclass(frozen=True)
class CallSummary:
    ucid: str
    monitor_ucid: str
    agent: str
    did: str
    disposition: str  # "" when CloudAgent sent none (unanswered, "send immediately")
    happened_at: float | None  # EndTime, epoch seconds

    @property
    def auto(self) -> bool:
        """Whether CloudAgent chose it itself: wrap-up ran out with nothing chosen."""
        return is_auto(self.disposition)


def is_auto(disposition: str | None) -> bool:
    return bool(disposition) and disposition.strip().lower().startswith(AUTO_DISPOSITION)


def read_body(body: bytes, form: Mapping[str, str], *, summary: bool) -> dict[str, Any]:
    """The payload as an object, from a JSON body, a form field holding JSON (`data` for a
    summary; for a call event any single field), or, for a summary, a JSON array whose first
    element is it."""
    text = form.get("data") if form else None
    if text is None and form and not summary and len(form) == 1:
        text = next(iter(form.values()))
    if text is None:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise Malformed("body is not UTF-8") from error
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise Malformed("not JSON") from error
    if isinstance(payload, list) and summary and payload:
        payload = payload[0]
    if not isinstance(payload, dict):
        raise Malformed("not a JSON object")
    return payload


def _field(payload: Mapping[str, Any], *names: str, limit: int = FIELD_MAX) -> str:
    """The first of `names` present (case-insensitively), as a string; "" if none."""
    lowered = {str(k).lower(): v for k, v in payload.items()}
    for name in names:
        value = lowered.get(name.lower())
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise Malformed(f"{name} is not a string")
        text = str(value).strip()
        if len(text) > limit:
            raise Malformed(f"{name} is too long")
        if any(ord(c) < 32 for c in text):
            raise Malformed(f"{name} holds control characters")
        return text
    return ""


def _time(payload: Mapping[str, Any], zone: ZoneInfo, *names: str) -> float | None:
    """A `YYYY-MM-DD HH:MM:SS` time, read in CloudAgent's zone; None when absent or unreadable
    (a bad time is no reason to lose the event: the time of receipt is what counts)."""
    text = _field(payload, *names, limit=32)
    if not text:
        return None
    try:
        return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=zone).timestamp()
    except ValueError:
        return None


def _ids(payload: Mapping[str, Any], ucid: str, monitor: str) -> tuple[str, str]:
    first = _field(payload, ucid, limit=ID_MAX)
    second = _field(payload, monitor, limit=ID_MAX)
    if not first and not second:
        raise Malformed("no ucid")
    return first or second, second


def _account(payload: Mapping[str, Any], username: str, *names: str) -> None:
    given = _field(payload, *names, limit=ID_MAX)
    if given and given.lower() != username.lower():
        raise Forbidden("another account's event")


def call_event(payload: Mapping[str, Any], *, username: str, zone: ZoneInfo) -> CallEvent | None:
    """A Subscribe API call event; None for another kind of event (eventType not Call)."""
    kind = _field(payload, "eventType", limit=ID_MAX)
    if kind and kind.lower() != "call":
        _account(payload, username, "username")
        return None
    action = _field(payload, "action", limit=ID_MAX)
    known = {a.lower(): a for a in ACTIONS}
    if action.lower() not in known:
        raise Malformed("unknown action")
    ucid, monitor = _ids(payload, "ucid", "monitor_ucid")
    _account(payload, username, "username")
    return CallEvent(
        action=known[action.lower()],
        ucid=ucid,
        monitor_ucid=monitor,
        agent=_field(payload, "agent_id", limit=ID_MAX),
        did=_field(payload, "did", limit=ID_MAX),
        happened_at=_time(payload, zone, "event_time", "eventTime"),
    )


def call_summary(
    payload: Mapping[str, Any], *, username: str, api_key: str, zone: ZoneInfo
) -> CallSummary:
    """A Callback URL summary. Its `Apikey`, when present, must be the account's (compared in
    constant time); a summary without one is taken on the path's token alone."""
    lowered = {str(k).lower(): v for k, v in payload.items()}
    given = lowered.get("apikey")
    if given is not None and not _same_key(given, api_key):
        raise Forbidden("not the account's Apikey")
    ucid, monitor = _ids(payload, "UCID", "monitorUCID")
    _account(payload, username, "UserName", "username")
    return CallSummary(
        ucid=ucid,
        monitor_ucid=monitor if monitor != ucid else "",
        agent=_field(payload, "AgentID", limit=ID_MAX),
        did=_field(payload, "dId", limit=ID_MAX),  # any case: dId, Did, DId
        disposition=_field(payload, "Disposition"),
        happened_at=_time(payload, zone, "EndTime"),
    )


def _same_key(given: Any, api_key: str) -> bool:
    """In constant time: a summary's key must not be guessable from how fast it is refused."""
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), api_key.encode())


def redacted(payload: Any) -> Any:
    """The payload with the account's key blanked, for a log line."""
    if isinstance(payload, dict):
        return {
            k: ("****" if str(k).lower() in SECRET_FIELDS else redacted(v))
            for k, v in payload.items()
        }
    if isinstance(payload, list):
        return [redacted(v) for v in payload]
    return payload
