"""Group commit: the SQLite writes of a process's request threads, committed together by one
writer thread.

Every audit write takes the host's write lock (webapp.writelock). A request thread holding it
could wait milliseconds for the GIL before it got to commit, and with two writes per save from
64 threads a worker the lock became the queue: at 200 agents saving, an audit write took p50
3.5 ms but p90 63 ms and p99 over 170 ms. Here one thread per process takes the lock once for
everything queued since its last commit, and each caller still returns only once its own
write is committed: a save still reaches CloudAgent only after its row is on disk.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

T = TypeVar("T")
Write = Callable[[Connection], Any]


class GroupCommit:
    def __init__(
        self,
        engine: Engine,
        lock: Callable[[], AbstractContextManager[Any]],
        *,
        max_batch: int = 256,
    ) -> None:
        self._engine = engine
        self._lock = lock
        self._max_batch = max_batch
        self._queue: list[tuple[Write, Future[Any]]] = []
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = -1
        self._closed = False

    def run(self, write: Callable[[Connection], T]) -> T:
        """Run `write` in the writer's next transaction; its result once committed, or the
        error that stopped it."""
        future: Future[T] = Future()
        with self._wake:
            if self._closed:
                raise RuntimeError("group commit closed")
            self._queue.append((write, future))
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._write_batches, name="audit-writer", daemon=True
                )
                self._thread.start()
            self._wake.notify()
        return future.result()

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop the writer."""
        with self._wake:
            self._closed = True
            self._wake.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _write_batches(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._closed:
                    self._wake.wait()
                if not self._queue:
                    return
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
            self._commit(batch)

    def _commit(self, batch: list[tuple[Write, Future[Any]]]) -> None:
        try:
            with self._lock(), self._engine.begin() as conn:
                results = [write(conn) for write, _ in batch]
        except OperationalError as error:
            # The database cannot be written (gone, locked, disk full): everyone waiting hears.
            for _, future in batch:
                future.set_exception(error)
            return
        except Exception as error:
            if len(batch) == 1:
                batch[0][1].set_exception(error)
                return
            # A write the database refused on its own merits fails alone, not its batch.
            for item in batch:
                self._commit([item])
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)
