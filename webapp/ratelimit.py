"""Per-agent limits on saves, counted in a store every worker process shares.

Fixed windows: simple, cheap (one upsert per save), and at worst lets through twice the limit
across a window boundary, which is fine for stopping a stuck key or a runaway script.

SqliteRateLimiter counts for one host; RedisRateLimiter counts for every instance at once.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from redis import Redis
from redis.exceptions import RedisError

from .writelock import WriteLock

log = logging.getLogger("webapp")


class RateLimiter(Protocol):
    def hit(self, key: str) -> float:
        """Count one event for `key`; 0 if allowed, else seconds until it would be."""
        ...


class SqliteRateLimiter:
    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        limit: int,
        window: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.limit = limit
        self.window = window
        self.clock = clock
        self._local = threading.local()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = WriteLock(self.path.with_name(self.path.name + ".lock"))
        self._connect().executescript(
            """
            CREATE TABLE IF NOT EXISTS hits (
                key TEXT NOT NULL, window INTEGER NOT NULL, count INTEGER NOT NULL,
                PRIMARY KEY (key, window));
            """
        )

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def hit(self, key: str) -> float:
        now = self.clock()
        window = math.floor(now / self.window)
        db = self._connect()
        with self._lock.held():
            count = db.execute(
                "INSERT INTO hits VALUES (?, ?, 1) ON CONFLICT (key, window) "
                "DO UPDATE SET count = count + 1 RETURNING count",
                (key, window),
            ).fetchone()[0]
            if count == 1:  # first hit of a new window: forget the old ones
                db.execute("DELETE FROM hits WHERE window < ?", (window - 1,))
        if count <= self.limit:
            return 0.0
        return (window + 1) * self.window - now

    def ping(self) -> None:
        self._connect().execute("SELECT COUNT(*) FROM hits").fetchone()


class MemoryRateLimiter:
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


class RedisRateLimiter:
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
