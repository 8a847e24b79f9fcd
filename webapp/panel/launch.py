"""Signed launch links: the URL a CRM puts in the iframe's src.

`GET /disposition?ucid=U&agentID=A&did=D&ts=T&sig=S`, where `sig` is the lowercase hex
HMAC-SHA256, keyed with WIDGET_LAUNCH_SECRET, of every other parameter sorted by name and
written `name=value` (decoded), joined by "\\n". Extra parameters the CRM adds are signed too.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

REQUIRED = ("ucid", "agentID", "did")
FUTURE_SKEW = 60  # seconds a link may claim to come from the future (clock drift)
# A call's identifiers as CloudAgent issues them: short, printable, no spaces or markup.
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,63}")
_PARAM_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # int() would also take " +1_0" or "١٠"
MAX_PARAMS = 32
MAX_VALUE = 512


# Why a link was refused, as the host page is told (docs/embedding.md): a closed set that names
# the cause and echoes nothing of the link.
BAD_SIGNATURE = "bad_signature"
EXPIRED_LINK = "expired_link"
MALFORMED_LINK = "malformed_link"


class LaunchError(Exception):
    """The link is refused; str() says why, for the log only (never shown with its values);
    `reason` is one of the codes above, for the host page."""

    def __init__(self, detail: str, reason: str = MALFORMED_LINK) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Launch:
    ucid: str
    agent_id: str
    did: str
    extra: dict[str, str] = field(default_factory=dict)
    language: str | None = None  # the panel's language, once chosen (carried by the context)


def canonical(params: Mapping[str, str]) -> str:
    """The signed string: every parameter except `sig`, sorted by name, `name=value` lines."""
    return "\n".join(f"{name}={value}" for name, value in sorted(params.items()) if name != "sig")


def sign(params: Mapping[str, str], secret: str) -> str:
    return hmac.new(secret.encode(), canonical(params).encode(), hashlib.sha256).hexdigest()


def signed_query(
    params: Mapping[str, str], secret: str, now: float | None = None
) -> dict[str, str]:
    """`params` plus `ts` (now) and `sig`: what a CRM builds (used by the demo and tests)."""
    query = dict(params)
    query["ts"] = str(int(time.time() if now is None else now))
    query["sig"] = sign(query, secret)
    return query


def plain_pairs(query: str) -> list[tuple[str, str]] | None:
    """A query's (name, value) pairs when it holds nothing to decode, as a CRM's link of ids,
    digits and a hex signature does: what werkzeug's parser would give, for a fifth of its
    work on every panel. None for any other query (the caller parses it the usual way)."""
    if not query.isascii() or "%" in query or "+" in query:
        return None
    return [pair.partition("=")[::2] for pair in query.split("&") if pair]


def verify(
    items: Iterable[tuple[str, str]],
    secret: str,
    *,
    max_age: int,
    signing: bool = True,
    now: float | None = None,
) -> Launch:
    """Check a launch query given as (name, value) pairs; raise LaunchError if refused."""
    params: dict[str, str] = {}
    for name, value in items:
        if name in params:
            raise LaunchError(f"parameter {name!r} given twice")
        if not _PARAM_NAME.fullmatch(name):
            raise LaunchError("malformed parameter name")
        if "\n" in value or "\r" in value or len(value) > MAX_VALUE:
            raise LaunchError(f"parameter {name!r} has a malformed value")
        params[name] = value
    if len(params) > MAX_PARAMS:
        raise LaunchError("too many parameters")

    if signing:
        given = params.get("sig", "")
        if not _SIGNATURE.fullmatch(given):
            raise LaunchError("missing or malformed sig")
        if not hmac.compare_digest(given, sign(params, secret)):
            raise LaunchError("bad signature", BAD_SIGNATURE)
        raw_ts = params.get("ts", "")
        if not _TIMESTAMP.fullmatch(raw_ts):
            raise LaunchError("missing or malformed ts")
        ts = int(raw_ts)
        now = time.time() if now is None else now
        if not now - max_age <= ts <= now + FUTURE_SKEW:
            raise LaunchError("stale or future ts", EXPIRED_LINK)

    for name in REQUIRED:
        if not _IDENTIFIER.fullmatch(params.get(name, "")):
            raise LaunchError(f"missing or malformed {name}")
    extra = {k: v for k, v in params.items() if k not in (*REQUIRED, "ts", "sig")}
    return Launch(params["ucid"], params["agentID"], params["did"], extra)
