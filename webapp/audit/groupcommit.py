"""Group commit: concurrent SQLite writes of a process committed together, by one of the
threads that asked for them.

Every audit write takes the host's write lock (webapp.audit.writelock). When each request thread
wrote on its own, a thread holding the lock could wait milliseconds for the GIL before it
got to commit, and the threads behind it queued: at 200 agents saving, an audit write took
p50 3.5 ms but p90 63 ms and p99 over 170 ms. A writer thread of its own (tried next) cut the
tail, but the two thread hand-offs per write (to the writer and back) cost more than the
writes under load.

So a thread that finds nobody writing writes at once, itself, and takes along whatever other
threads queued meanwhile (the leader); a thread that finds a leader at work queues its write
and waits. A leader commits the batch holding its own write, then what queued meanwhile, up
to a few batches, then hands the lead to the first thread still queued. Each caller returns
only once its own write is committed: a save still reaches CloudAgent only after its row is
on disk. There is no thread of its own to start or stop. A GroupCommit belongs to the process
that made it: the app is built in each gunicorn worker (gunicorn.conf.py, preload_app False).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, exc

T = TypeVar("T")

log = logging.getLogger("webapp.audit")


class _Slot:
    """One queued write, and what became of it."""

    __slots__ = ("write", "woken", "done", "result", "error")

    def __init__(self, write: Callable[[Connection], Any]) -> None:
        self.write = write
        self.woken = threading.Event()  # set when done, or when this thread is to lead
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None

    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        self.result, self.error, self.done = result, error, True
        self.woken.set()


class GroupCommit:
    def __init__(
        self,
        engine: Engine,
        lock: Callable[[], AbstractContextManager[Any]],
        *,
        max_batch: int = 256,
        max_rounds: int = 8,
    ) -> None:
        self._engine = engine
        self._lock = lock
        self._max_batch = max_batch
        self._max_rounds = max_rounds
        self._queue: list[_Slot] = []
        self._mutex = threading.Lock()
        self._leading = False

    def run(self, write: Callable[[Connection], T]) -> T:
        """Run `write` in a committed transaction, maybe with others' writes; its result, or
        the error that stopped it."""
        slot = _Slot(write)
        with self._mutex:
            self._queue.append(slot)
            lead = not self._leading
            self._leading = True
        if not lead:
            slot.woken.wait()
        if not slot.done:  # this thread leads: its own write is still queued
            self._lead()
        if slot.error is not None:
            raise slot.error
        return slot.result

    def _lead(self) -> None:
        batch: list[_Slot] = []
        try:
            # Up to a few batches: what queued during one is committed at once, rather than
            # after waking another thread to lead, which under load waits for a CPU.
            for _ in range(self._max_rounds):
                with self._mutex:
                    batch = self._queue[: self._max_batch]
                    del self._queue[: self._max_batch]
                if not batch:
                    break
                self._commit(batch)
        except BaseException as error:  # nobody else would wake the writers of this batch
            for slot in batch:
                if not slot.done:
                    slot.finish(error=error)
            raise
        finally:
            with self._mutex:
                if self._queue:
                    self._queue[0].woken.set()  # the next leader; still self._leading
                else:
                    self._leading = False

    def _commit(self, batch: list[_Slot]) -> None:
        results: list[Any] = []
        committed = False
        try:
            # The connection first: no process waits for its pool while holding the host's
            # lock. pysqlite begins the transaction at the first INSERT, under the lock.
            with self._engine.connect() as conn, self._lock():
                with conn.begin():
                    for slot in batch:
                        results.append(slot.write(conn))
                committed = True
        except Exception as error:
            if committed:  # only releasing the lock failed: the rows are on disk
                log.error("audit write lock not released cleanly: %s", error)
            elif len(results) < len(batch) and len(batch) > 1 and _refused(error):
                # A write the database refused on its own merits fails alone, not its batch.
                for slot in batch:
                    self._commit([slot])
                return
            else:
                # The database cannot be written (gone, locked, full, no connection free),
                # or the commit failed: everyone waiting hears.
                for slot in batch:
                    slot.finish(error=error)
                return
        for slot, result in zip(batch, results, strict=True):
            slot.finish(result)


def _refused(error: Exception) -> bool:
    """An error a write caused by itself (a constraint, a value the database will not take),
    rather than one of the database or of the way to it."""
    return isinstance(error, exc.SQLAlchemyError) and not isinstance(
        error, (exc.OperationalError, exc.TimeoutError)
    )
