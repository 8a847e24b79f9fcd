"""How every audit connection to SQLite is set up: WAL, a long busy timeout, NORMAL sync."""

from __future__ import annotations

import sqlite3
import time
from typing import Any


def sqlite_pragmas(dbapi_connection: Any, _record: Any = None) -> None:
    """SQLAlchemy's `connect` listener for the audit database."""
    # WAL lets every worker write while others read; NORMAL sync survives a process crash.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    enable_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def enable_wal(conn: sqlite3.Connection | sqlite3.Cursor, timeout: float = 30.0) -> None:
    """Put `conn`'s database in WAL mode, waiting up to `timeout` seconds for other processes.

    The first switch of a new file needs an exclusive lock, and SQLite answers "database is
    locked" at once, without the busy timeout, to a process switching it at the same moment as
    another: gunicorn's workers all open the audit log as they boot on a new data folder, and
    one that fails to boot makes gunicorn stop the whole server. A file already in WAL mode
    stays so, and then the pragma takes no such lock."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)
