"""The in-page call context: a signed, time-limited token instead of a session cookie.

A cross-site iframe does not get its cookies back in current browsers, so the verified launch
is carried by the page itself and sent with every htmx request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from functools import lru_cache
from json.encoder import encode_basestring_ascii
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode, int_to_bytes

from .launch import Launch

SALT = "widget.call-context"


class _Signer(TimestampSigner):
    """itsdangerous's signer, keeping each derived key: it derives the key again (an HMAC)
    for every token it signs or reads."""

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        keys = self.__dict__.setdefault("_derived", {})
        key = keys.get(secret_key)
        if key is None:
            key = keys[secret_key] = super().derive_key(secret_key)
        return key


class _Serializer(URLSafeTimedSerializer):
    """itsdangerous's URL-safe timed serializer with its signer and JSON encoder made once
    rather than per token, and without the zlib it tries on every payload: a context is some
    sixty bytes, which zlib never shortens (a compressed token, marked by a leading ".",
    still reads)."""

    default_signer = _Signer  # Serializer.__init__ copies it to the instance

    def make_signer(self, salt: str | bytes | None = None) -> TimestampSigner:
        if salt is not None and salt != self.salt:
            return super().make_signer(salt)
        signer = self.__dict__.get("_signer")
        if signer is None:
            signer = self._signer = super().make_signer(salt)
        return signer

    def dump_payload(self, obj: Any) -> bytes:
        return base64_encode(_COMPACT_JSON(obj).encode())


# itsdangerous's compact JSON (its _CompactJSON.dumps), with the encoder made once rather
# than per token.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":")).encode


@lru_cache(maxsize=4)
def _serializer(secret: str) -> URLSafeTimedSerializer:
    return _Serializer(secret, salt=SALT)  # made once: every panel and save use it


class ContextError(Exception):
    """The context token is missing, forged or foreign (expired=False), or too old."""

    def __init__(self, expired: bool = False) -> None:
        super().__init__("expired" if expired else "invalid")
        self.expired = expired


def issue(launch: Launch, secret: str, language: str | None = None) -> str:
    """The context of a panel opened now (in `language`, for every answer it gets).

    The token `_serializer(secret).dumps(payload)` makes, made here in one pass from the
    serializer's payload and its signer's (kept) key: payload, timestamp and HMAC-SHA1
    signature, each URL-safe base64, joined by ".". Through itsdangerous's signer and
    algorithm it took some twenty calls and a Python HMAC object per panel (a panel's CPU, by
    part: docs/benchmarks.md, "Fourth round").
    tests/panel/test_context.py holds it to the serializer's own token, both ways."""
    serializer = _serializer(secret)
    signed = b"%s.%s" % (
        base64_encode(_payload(launch, language)),
        base64_encode(int_to_bytes(int(time.time()))),
    )
    key = serializer.make_signer().derive_key()  # both kept: see _Serializer and _Signer
    # hmac.new, not hmac.digest: OpenSSL's one-shot HMAC lets go of the GIL, and in a pool
    # thread getting it back cost two context switches whenever the loop was waiting for it.
    signature = base64_encode(hmac.new(key, signed, hashlib.sha1).digest())
    return (signed + b"." + signature).decode("ascii")


def _payload(launch: Launch, language: str | None) -> bytes:
    """What dump_payload's JSON makes of {"u", "a", "d"[, "l"]}, its strings written by the
    same C function: a third of the encoder's work."""
    quoted = encode_basestring_ascii
    text = f'{{"u":{quoted(launch.ucid)},"a":{quoted(launch.agent_id)},"d":{quoted(launch.did)}'
    if language:
        text += f',"l":{quoted(language)}'
    return (text + "}").encode()


def read(token: str, secret: str, max_age: int) -> Launch:
    return read_issued(token, secret, max_age)[0]


def read_issued(token: str, secret: str, max_age: int) -> tuple[Launch, float]:
    """The call, and when its panel opened (epoch seconds): it expires `max_age` after."""
    try:
        payload, issued = _serializer(secret).loads(token, max_age=max_age, return_timestamp=True)
    except SignatureExpired:
        raise ContextError(expired=True) from None
    except BadSignature:
        raise ContextError() from None
    if not isinstance(payload, dict) or not all(
        isinstance(payload.get(k), str) for k in ("u", "a", "d")
    ):
        raise ContextError()
    language = payload.get("l")
    call = Launch(
        ucid=payload["u"],
        agent_id=payload["a"],
        did=payload["d"],
        language=language if isinstance(language, str) else None,
    )
    return call, issued.timestamp()
