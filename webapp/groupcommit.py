"""Group commit: concurrent SQLite writes of a process committed together, by one of the
threads that asked for them.

Every audit write takes the host's write lock (webapp.writelock). When each request thread
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
on disk.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

T = TypeVar("T")


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
        self._closed = False

    def run(self, write: Callable[[Connection], T]) -> T:
        """Run `write` in a committed transaction, maybe with others' writes; its result, or
        the error that stopped it."""
        slot = _Slot(write)
        with self._mutex:
            if self._closed:
                raise RuntimeError("group commit closed")
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

    def close(self) -> None:
        """Refuse new writes; those already queued are still committed."""
        with self._mutex:
            self._closed = True

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
        try:
            with self._lock(), self._engine.begin() as conn:
                results = [slot.write(conn) for slot in batch]
        except OperationalError as error:
            # The database cannot be written (gone, locked, disk full): everyone waiting hears.
            for slot in batch:
                slot.finish(error=error)
            return
        except Exception as error:
            if len(batch) == 1:
                batch[0].finish(error=error)
                return
            # A write the database refused on its own merits fails alone, not its batch.
            for slot in batch:
                self._commit([slot])
            return
        for slot, result in zip(batch, results, strict=True):
            slot.finish(result)
