"""One SQLite writer at a time across the host's worker processes, queued by the kernel.

SQLite serialises writers itself, but a writer that finds the database locked sleeps in
steps of 1 to 100 ms before it tries again: under a burst of saves those sleeps, not the
writes, made up most of a save's time. An flock() waiter is woken the moment the lock is
released, and the threads of one process queue on a plain lock first.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path


class WriteLock:
    """`with lock.held():` holds it. A context manager of its own rather than a generator's
    (contextlib): the lock is taken twice a save, and the generator's machinery cost three
    times the calls of the lock itself."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._threads = threading.Lock()
        self._fd = -1
        self._pid = -1  # no process's: the first use opens the file

    def _file(self) -> int:
        if self._pid != os.getpid():  # a forked worker opens its own
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd

    def held(self) -> WriteLock:
        return self

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            fcntl.flock(self._file(), fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *_exc: object) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()
