"""Per-source limits on what is posted to the receivers: a flood from one address (a
misconfigured relay, a scanner that found the token) is answered 429 before it costs a
database write, and never slows the agents' saves.

The counting is webapp.ratelimit's: in each process's memory on one host, in Redis across
instances. The source is the peer's address, or, behind a proxy listed in
WIDGET_TRUSTED_PROXIES, the last address it names in X-Forwarded-For.
"""

from __future__ import annotations

from typing import Protocol

from flask import Flask, Request, current_app

from ..config import Settings
from ..ratelimit import MemoryRateLimiter, RedisRateLimiter
from ..stores import shared_redis

# CloudAgent posts about four deliveries per call (Calling, Answered, Disconnect, summary),
# from a few addresses: 6,000 a minute from one source is ~1,500 calls a minute, well above
# a large contact centre's rate, and far below what would hurt the service.
EVENTS_PER_MINUTE = 6000


class SourceLimiter(Protocol):
    def hit(self, key: str) -> float:
        """0 if the source may post now, else the seconds to wait."""
        ...


def source_of(request: Request) -> str:
    peer = request.remote_addr or "unknown"
    trusted = current_app.extensions["trusted_proxy"]
    if not trusted(peer):
        return peer
    forwarded = [a.strip() for a in request.headers.get("X-Forwarded-For", "").split(",")]
    for address in reversed([a for a in forwarded if a]):
        if not trusted(address):
            return address[:64]
    return peer


def make_limiter(
    app: Flask, settings: Settings, per_minute: int = EVENTS_PER_MINUTE
) -> SourceLimiter:
    client = shared_redis(app, settings)
    if client is None:
        return MemoryRateLimiter(limit=per_minute, window=60)
    return RedisRateLimiter(client, limit=per_minute, window=60, prefix="widget:events-rate:")
