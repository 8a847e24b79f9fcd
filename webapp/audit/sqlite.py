"""How every audit connection to SQLite is set up: WAL, a long busy timeout, NORMAL sync."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path
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


def private_database(path: Path) -> None:
    """Create the database file readable by the service's user only, before SQLite opens it:
    SQLite gives its -wal and -shm files the main file's permissions, so they are private from
    the first write on. A new data folder is created 0700; files an older release left more
    open are closed up."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _create_private(path)
    os.chmod(path, 0o600)
    for file in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        # Another process's SQLite may remove them at any moment (its last connection closing:
        # the hello and widget masters of `make bench` check one data folder at once, and so
        # does a new instance starting beside an old one). Gone is as private as it gets.
        with contextlib.suppress(FileNotFoundError):
            os.chmod(file, 0o600)


def _create_private(path: Path) -> None:
    """A new, empty file 0600; an existing one is left alone. Never an open() and close() of a
    file SQLite may hold in this process: closing any descriptor of a file drops every POSIX
    lock the process holds on it, SQLite's included."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
