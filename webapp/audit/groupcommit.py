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
on disk. There is no thread of its own to start or stop; one connection is kept between
batches for whichever thread leads (close() gives it back). A GroupCommit belongs to the
process that made it: the app is built in each gunicorn worker (gunicorn.conf.py, preload_app
False).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, exc

T = TypeVar("T")

log = logging.getLogger("webapp.audit")


class _Slot:
    """One write, and what became of it."""

    __slots__ = ("write", "woken", "done", "result", "error")

    def __init__(self, write: Callable[[Connection], Any], woken: threading.Event | None) -> None:
        self.write = write
        # Set when done, or when this thread is to lead. None for a leader's own write: its
        # thread runs it, so nobody waits (an Event costs more than the write's bookkeeping).
        self.woken = woken
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None

    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        self.result, self.error, self.done = result, error, True
        if self.woken is not None:
            self.woken.set()

    def lead(self) -> None:
        """Wake this queued write's thread to lead."""
        if self.woken is not None:
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
        # One connection kept between batches, used by the leader only (one at a time):
        # checking one out of the pool and back in for each batch cost more calls than the
        # batch's own statements. Any error gives it back (a fresh one next time).
        self._conn: Connection | None = None
        self._pid = 0

    def run(self, write: Callable[[Connection], T]) -> T:
        """Run `write` in a committed transaction, maybe with others' writes; its result, or
        the error that stopped it."""
        # The Event made outside the mutex, on a guess checked under it: uncontended, none.
        slot = _Slot(write, threading.Event() if self._leading else None)
        with self._mutex:
            lead = not self._leading
            if lead:
                self._leading = True
            else:
                if slot.woken is None:  # a leader started meanwhile
                    slot.woken = threading.Event()
                self._queue.append(slot)
        if lead:  # nobody was writing: this thread leads, its own write first
            self._lead([slot])
        else:
            slot.woken.wait()
            if not slot.done:  # this thread is to lead: its own write is still queued
                self._lead([])
        if slot.error is not None:
            raise slot.error
        return slot.result

    def _lead(self, batch: list[_Slot]) -> None:
        rounds = self._max_rounds
        try:
            # Up to a few batches: what queued during one is committed at once, rather than
            # after waking another thread to lead, which under load waits for a CPU.
            while True:
                if batch:
                    self._commit(batch)
                    rounds -= 1
                with self._mutex:
                    if not self._queue:
                        self._leading = False
                        return
                    if not rounds:
                        self._queue[0].lead()
                        return
                    batch = self._queue[: self._max_batch]
                    del self._queue[: self._max_batch]
        except BaseException as error:  # nobody else would wake the writers of this batch
            for slot in batch:
                if not slot.done:
                    slot.finish(error=error)
            with self._mutex:
                if self._queue:
                    self._queue[0].lead()
                else:
                    self._leading = False
            raise

    def _connection(self) -> Connection:
        conn = self._conn
        if conn is None or self._pid != os.getpid():  # a forked child opens its own
            conn = self._conn = self._engine.connect()
            self._pid = os.getpid()
        return conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            try:
                conn.close()  # back to the pool, which rolls back or discards it
            except Exception as error:  # noqa: BLE001 (the write's own error matters more)
                log.warning("audit connection not returned cleanly: %s", error)

    def close(self) -> None:
        """Give the kept connection back to the pool (before the engine is disposed of); a
        later write takes another."""
        with self._mutex:
            if self._leading:
                return  # a write is under way: its connection goes with the engine's pool
            conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            conn.close()

    def _commit(self, batch: list[_Slot]) -> None:
        results: list[Any] = []
        committed = False
        try:
            # The connection first: no process waits for its pool while holding the host's
            # lock. pysqlite begins the transaction at the first INSERT, under the lock.
            conn = self._connection()
            with self._lock():
                with conn.begin():
                    for slot in batch:
                        results.append(slot.write(conn))
                committed = True
        except Exception as error:
            self._drop_connection()
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
        except BaseException:  # interrupted: a connection in no known state is not kept
            self._drop_connection()
            raise
        for slot, result in zip(batch, results, strict=True):
            slot.finish(result)


def _refused(error: Exception) -> bool:
    """An error a write caused by itself (a constraint, a value the database will not take),
    rather than one of the database or of the way to it."""
    return isinstance(error, exc.SQLAlchemyError) and not isinstance(
        error, (exc.OperationalError, exc.TimeoutError)
    )
