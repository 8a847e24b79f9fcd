"""Per-agent limits on saves, counted in a store every worker process shares.

Fixed windows: simple, cheap (one upsert per save), and at worst lets through twice the limit
across a window boundary, which is fine for stopping a stuck key or a runaway script.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol


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
