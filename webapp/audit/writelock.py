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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class WriteLock:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._threads = threading.Lock()
        self._fd: int | None = None
        self._pid = -1

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # a forked worker opens its own
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._threads:
            fd = self._file()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
