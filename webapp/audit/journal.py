"""The local journal of audit completions the database would not take.

When CloudAgent has answered and the row cannot be completed (the database is away), the
completion is written here, on this host's disk, before the agent is answered; any process of
the instance replays it once the database answers (AuditLog.replay_journal), after a reload
or a crash as well. Memory alone lost them whenever the worker was replaced first.

One SQLite file under WIDGET_DATA_DIR (`audit-journal.sqlite3`, 0600 in the 0700 folder) in
WAL mode with synchronous=FULL: add() returns once the entry is on disk, through a crash of
the process or of the host. Each entry names the database it belongs to, so a journal never
completes rows of another database (WIDGET_DATABASE_URL changed meanwhile).

Replay is idempotent: an entry is applied only to a row still open (webapp.audit.log), so a
crash between applying an entry and deleting it leaves an entry whose second application
changes nothing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .sqlite import enable_wal, private_database

JOURNAL_NAME = "audit-journal.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    written_at REAL NOT NULL,
    database TEXT NOT NULL,
    entry_id INTEGER NOT NULL,
    row_values TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class Completion:
    """One journalled completion: the audit row `entry_id` and the values to complete it with."""

    id: int
    entry_id: int
    values: dict[str, Any]
    written_at: float


class Journal:
    def __init__(self, path: Path, database: str) -> None:
        """`database`: the audit database's URL without its password, stored with each entry."""
        self.path = Path(path)
        self.database = database
        # One connection per process, shared by its threads: closing any descriptor of a
        # file drops every POSIX lock the process holds on it, SQLite's included.
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():  # a forked process opens its own
            private_database(self.path)
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            enable_wal(conn)
            conn.execute("PRAGMA synchronous=FULL")  # on disk when add() returns
            conn.execute(_SCHEMA)
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def add(self, entry_id: int, values: dict[str, Any]) -> None:
        """Keep a completion until it is applied. Raises sqlite3.Error or OSError if the
        disk will not take it."""
        with self._lock:
            self._connection().execute(
                "INSERT INTO completions (written_at, database, entry_id, row_values) "
                "VALUES (?, ?, ?, ?)",
                (time.time(), self.database, entry_id, json.dumps(values)),
            )

    def entries(self, after: int = 0, limit: int = 200) -> list[Completion]:
        """This database's completions after journal id `after`, oldest first."""
        with self._lock:
            rows = self._connection().execute(
                "SELECT id, entry_id, row_values, written_at FROM completions "
                "WHERE database = ? AND id > ? ORDER BY id LIMIT ?",
                (self.database, after, limit),
            )
            return [Completion(r[0], r[1], json.loads(r[2]), r[3]) for r in rows.fetchall()]

    def remove(self, completion: Completion) -> None:
        with self._lock:
            self._connection().execute("DELETE FROM completions WHERE id = ?", (completion.id,))

    def count(self) -> int:
        """How many of this database's completions wait."""
        with self._lock:
            row = self._connection().execute(
                "SELECT count(*) FROM completions WHERE database = ?", (self.database,)
            )
            return int(row.fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
