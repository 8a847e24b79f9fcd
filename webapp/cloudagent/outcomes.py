"""Reading CloudAgent's answers into outcomes the agent understands.

CloudAgent reports almost every error inside a 200 response, in one of two body shapes
(`{"status", "message"}` or `{"status", "details"}`), with `status` spelled "Success", "Fail",
"false" or "Error". Every body is untrusted text: it is matched, never echoed as markup, and
anything unexpected becomes an `unavailable` outcome instead of an exception.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ALREADY_DISPOSED",
    "DISPOSITION_MAX",
    "QUEUED",
    "REJECTED",
    "RESULT_UNKNOWN",
    "SAVED",
    "UNAVAILABLE",
    "Outcome",
]

QUEUED = "queued"
SAVED = "saved"
ALREADY_DISPOSED = "already_disposed"
REJECTED = "rejected"
UNAVAILABLE = "unavailable"
# Reasons after which CloudAgent may or may not have applied the Set: no answer in time, or
# one nobody could read (a gateway's 502 page may follow a Set that went through).
RESULT_UNKNOWN = ("lost_answer", "bad_response")

RAW_LIMIT = 2000  # characters of an upstream body kept for the log
DISPOSITION_MAX = 250  # the Set API's limit on a disposition name


def N_(message: str) -> str:  # noqa: N802 (gettext's name for it)
    """Marks an agent's message for the translation catalogues. The library speaks English;
    the app shows each message in the agent's language (webapp/i18n.py)."""
    return message


@dataclass(frozen=True)
class Outcome:
    """What happened to one request, in the agent's words, with the upstream facts for the log."""

    kind: str
    message: str
    reason: str = ""
    upstream_status: str | None = None
    upstream_text: str | None = None
    http_status: int | None = None
    raw: str = ""

    @property
    def ok(self) -> bool:
        return self.kind in (QUEUED, SAVED)


@dataclass(frozen=True)
class Reply:
    """One parsed upstream answer: the body's fields, or why there are none."""

    http_status: int
    body: dict[str, Any] | None
    raw: str

    @property
    def status(self) -> str:
        value = (self.body or {}).get("status")
        return value.strip() if isinstance(value, str) else ""

    @property
    def text(self) -> str:
        body = self.body or {}
        for key in ("details", "message"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
        return ""

    @property
    def succeeded(self) -> bool:
        return self.status.lower() == "success"

    @property
    def token_refused(self) -> bool:
        """True for the answers that mean our bearer token was not accepted."""
        return not self.succeeded and _normal(self.text) in TOKEN_REFUSALS

    @property
    def token_invalid(self) -> bool:
        """Refused as invalid rather than expired: the token was replaced by a newer mint."""
        return not self.succeeded and _normal(self.text) == "invalid token"


def parse_reply(http_status: int, raw: str) -> Reply:
    try:
        body = json.loads(raw) if raw.strip() else None
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        body = None
    return Reply(http_status, body if isinstance(body, dict) else None, raw[:RAW_LIMIT])


def _normal(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".")


TOKEN_REFUSALS = {"token expired", "invalid token", "token should not be null or empty"}

# Upstream texts (normalised) that this service's own settings caused: the agent cannot fix them.
_CONFIGURATION = {
    "api key should not be null or empty",
    "username should not be null or empty",
    "invalid user details",
    "invalid action",
}

# Substring of the normalised upstream text -> (kind, reason, the agent's words). First match wins.
_KNOWN: tuple[tuple[str, str, str, str], ...] = (
    ("already disposed", ALREADY_DISPOSED, "already_disposed",
     N_("This call already has a disposition, so nothing was changed.")),
    ("agent is not on this call", REJECTED, "call_context",
     N_("CloudAgent says you are not on this call, so it did not take the disposition.")),
    ("invalid agent", REJECTED, "call_context",
     N_("CloudAgent does not recognise your agent ID. The disposition was not saved.")),
    ("invalid ucid", REJECTED, "call_context",
     N_("CloudAgent does not know this call (its UCID or DID). The disposition was not saved.")),
    ("empty disposition code", REJECTED, "input", N_("Choose a disposition, then save again.")),
    ("invalid disposition", REJECTED, "input",
     N_("CloudAgent does not accept that disposition. Choose another one from the list.")),
    ("provide pause reason", REJECTED, "input",
     N_("Choose a pause reason, or untick Pause after this call.")),
    ("pausereason is invalid", REJECTED, "input",
     N_("CloudAgent does not accept that pause reason. Choose another one.")),
    ("callbacktime", REJECTED, "input",
     N_("CloudAgent does not accept that callback time. Choose another one.")),
    ("unable to dispose", UNAVAILABLE, "busy",
     N_("CloudAgent could not take the disposition just now. Save again in a moment.")),
)  # fmt: skip

CONFIGURATION_MESSAGE = N_(
    "CloudAgent refused this widget's account settings. The disposition was not saved: "
    "please tell your supervisor."
)
SIGN_IN_MESSAGE = N_(
    "CloudAgent did not accept the widget's sign-in. The disposition was not saved: "
    "save again in a moment."
)
UNREADABLE_MESSAGE = N_(
    "CloudAgent sent an answer the widget could not read. The disposition may not have been "
    "saved: save again in a moment."
)


def _outcome(kind: str, message: str, reason: str, reply: Reply) -> Outcome:
    return Outcome(
        kind=kind,
        message=message,
        reason=reason,
        upstream_status=reply.status or None,
        upstream_text=reply.text or None,
        http_status=reply.http_status,
        raw=reply.raw,
    )


def set_outcome(reply: Reply) -> Outcome:
    """Read the answer to action=Set into what the agent is told."""
    if reply.body is None or not reply.status:
        return _outcome(UNAVAILABLE, UNREADABLE_MESSAGE, "bad_response", reply)
    text = _normal(reply.text)
    if reply.succeeded:
        if "queued" in text:
            return _outcome(
                QUEUED,
                N_("It will be applied when the call ends. You can still change it until then."),
                "queued",
                reply,
            )
        return _outcome(SAVED, N_("CloudAgent has recorded the disposition."), "saved", reply)
    return refusal_outcome(reply)


def refusal_outcome(reply: Reply) -> Outcome:
    """Read a non-success answer (to either action) into what the agent is told."""
    text = _normal(reply.text)
    if text in TOKEN_REFUSALS:
        return _outcome(UNAVAILABLE, SIGN_IN_MESSAGE, "token", reply)
    if text in _CONFIGURATION:
        return _outcome(REJECTED, CONFIGURATION_MESSAGE, "configuration", reply)
    for needle, kind, reason, message in _KNOWN:
        if needle in text:
            return _outcome(kind, message, reason, reply)
    if reply.status.lower() == "error":
        return _outcome(
            UNAVAILABLE,
            N_(
                "CloudAgent reported an error. The disposition may not have been saved: "
                "save again in a moment."
            ),
            "upstream_error",
            reply,
        )
    return _outcome(
        REJECTED, N_("CloudAgent refused the disposition. It was not saved."), "refused", reply
    )


def dispositions_from(reply: Reply) -> tuple[str, ...] | None:
    """The disposition names of a successful action=get answer, or None if none can be read.

    The answer's shape is undocumented: accept a list under `details`, `data` or `message`,
    of strings or of objects naming the disposition under a few likely keys.
    """
    if reply.body is None or not reply.succeeded:
        return None
    for key in ("details", "data", "message"):
        items = reply.body.get(key)
        if isinstance(items, list):
            break
    else:
        return None
    names: dict[str, None] = {}
    for item in items:
        if isinstance(item, dict):
            item = next(
                (
                    item[k]
                    for k in ("disposition", "name", "reason", "dispositionName")
                    if isinstance(item.get(k), str)
                ),
                None,
            )
        # A name CloudAgent could not take back (over its 250-character limit) is left out.
        if isinstance(item, str) and 0 < len(item.strip()) <= DISPOSITION_MAX:
            names[item.strip()] = None
    return tuple(names) if names else None
