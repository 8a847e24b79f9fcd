"""The in-page call context: a signed, time-limited token instead of a session cookie.

A cross-site iframe does not get its cookies back in current browsers, so the verified launch
is carried by the page itself and sent with every htmx request.
"""

from __future__ import annotations

from functools import lru_cache

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from .launch import Launch

SALT = "widget.call-context"


@lru_cache(maxsize=4)
def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=SALT)  # made once: every panel and save use it


class ContextError(Exception):
    """The context token is missing, forged or foreign (expired=False), or too old."""

    def __init__(self, expired: bool = False) -> None:
        super().__init__("expired" if expired else "invalid")
        self.expired = expired


def issue(launch: Launch, secret: str, language: str | None = None) -> str:
    """The context of a panel opened now (in `language`, for every answer it gets)."""
    payload = {"u": launch.ucid, "a": launch.agent_id, "d": launch.did}
    if language:
        payload["l"] = language
    return _serializer(secret).dumps(payload)


def read(token: str, secret: str, max_age: int) -> Launch:
    try:
        payload = _serializer(secret).loads(token, max_age=max_age)
    except SignatureExpired:
        raise ContextError(expired=True) from None
    except BadSignature:
        raise ContextError() from None
    if not isinstance(payload, dict) or not all(
        isinstance(payload.get(k), str) for k in ("u", "a", "d")
    ):
        raise ContextError()
    language = payload.get("l")
    return Launch(
        ucid=payload["u"],
        agent_id=payload["a"],
        did=payload["d"],
        language=language if isinstance(language, str) else None,
    )
