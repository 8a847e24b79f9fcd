"""Per-agent limits on saves, counted where every worker process sees them.

Each limiter's begin() records the save's audit row if the agent may save, or raises
RateLimited. AuditRateLimiter counts for one host from the audit trail itself, in the same
write as the row (exact, however many saves arrive at once); RedisRateLimiter counts for
every instance at once, in fixed windows (one INCR per save; at worst twice the limit across a
window boundary, fine for stopping a runaway script).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from redis import Redis
from redis.exceptions import RedisError

from .audit import RateLimited

if TYPE_CHECKING:
    from .audit import Attempt, AuditLog

log = logging.getLogger("webapp")


class RateLimiter(Protocol):
    def begin(self, audit: AuditLog, attempt: Attempt) -> int:
        """The attempt's audit row, if its agent may save now; else RateLimited."""
        ...

    def ping(self) -> None: ...


class _Counting:
    """A limiter that counts on its own (hit), then writes the row."""

    def hit(self, key: str) -> float:
        raise NotImplementedError

    def begin(self, audit: AuditLog, attempt: Attempt) -> int:
        wait = self.hit(attempt.agent)
        if wait:
            raise RateLimited(wait)
        return audit.begin(attempt)


class AuditRateLimiter:
    """Single host: count the agent's saves in the audit trail, which records every save that
    reaches this point anyway, in the write of the save's own row: one indexed read and no
    write of its own. A sliding window: the agent may save again when the oldest save in it
    is a window old."""

    def __init__(self, audit: AuditLog, *, limit: int, window: float) -> None:
        self.audit = audit
        self.limit = limit
        self.window = window

    def begin(self, audit: AuditLog, attempt: Attempt) -> int:
        return audit.begin(attempt, limit=(self.limit, self.window))

    def ping(self) -> None:
        self.audit.ping()


class MemoryRateLimiter(_Counting):
    """Counts in this process only: RedisRateLimiter's stand-in while Redis is unreachable."""

    def __init__(
        self, *, limit: int, window: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._counts: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> float:
        now = self.clock()
        window = math.floor(now / self.window)
        with self._lock:
            count = self._counts.get((key, window), 0) + 1
            self._counts[(key, window)] = count
            if count == 1:
                for old in [k for k in self._counts if k[1] < window - 1]:
                    del self._counts[old]
        return 0.0 if count <= self.limit else (window + 1) * self.window - now

    def ping(self) -> None:
        pass


class RedisRateLimiter(_Counting):
    """Fixed windows counted in Redis (INCR + EXPIRE in one MULTI/EXEC), shared by every
    instance: `<prefix><key>:<window number>`, expiring after two windows.

    When Redis does not answer, each process counts on its own (MemoryRateLimiter) rather
    than refuse saves: the limit stops runaways; it must not take the service down with it.
    """

    def __init__(
        self,
        client: Redis,
        *,
        limit: int,
        window: float,
        prefix: str = "widget:rate:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = client
        self.limit = limit
        self.window = window
        self.prefix = prefix
        self.clock = clock
        self._fallback = MemoryRateLimiter(limit=limit, window=window, clock=clock)
        self._warned = 0.0

    def hit(self, key: str) -> float:
        now = self.clock()
        window = math.floor(now / self.window)
        name = f"{self.prefix}{key}:{window}"
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.incr(name)
            pipe.expire(name, math.ceil(self.window * 2))
            count = int(pipe.execute()[0])
        except RedisError as error:
            if time.monotonic() - self._warned > 10:  # once in a while, not once per save
                self._warned = time.monotonic()
                log.warning("rate limits: Redis unreachable (%s), counting per process", error)
            return self._fallback.hit(key)
        if count <= self.limit:
            return 0.0
        return (window + 1) * self.window - now

    def ping(self) -> None:
        self.redis.ping()
