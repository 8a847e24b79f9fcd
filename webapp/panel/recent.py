"""The agent's recent dispositions on a DID, for the top of the list: read from the audit
trail, kept a short while in each process so that opening a panel costs no database read
most of the time."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..audit import AuditLog

log = logging.getLogger("webapp.panel")

SIZE = 5  # Alt+1 to Alt+5
TTL = 30.0  # seconds another process's saves may take to show here
MAX_ENTRIES = 20_000  # (agent, DID) pairs kept per process


class RecentChoices:
    def __init__(
        self,
        audit: AuditLog,
        *,
        ttl: float = TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.audit = audit
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[tuple[str, str], tuple[float, tuple[str, ...]]] = {}
        self._lock = threading.Lock()

    def get(self, agent: str, did: str, *, wait: bool = True) -> tuple[str, ...]:
        """The pair's recent dispositions. `wait=False` (a panel on the event loop) never
        reads the audit log: what memory holds, however old, else none."""
        key = (agent, did)
        entry = self._entries.get(key)  # a dict read is atomic: no lock on the common path
        if entry is not None and (not wait or self.clock() - entry[0] < self.ttl):
            return entry[1]
        if not wait:  # dropped since holds() said yes (the oldest pairs go past MAX_ENTRIES)
            return ()
        try:
            names = tuple(self.audit.recent_dispositions(agent, did, SIZE))
        except Exception as error:  # the panel opens without its Recent group
            log.warning("recent dispositions unavailable: %s", error)
            return entry[1] if entry is not None else ()
        self._put(key, names)
        return names

    def holds(self, agent: str, did: str) -> bool:
        """Whether get() answers from memory now, without reading the audit log."""
        entry = self._entries.get((agent, did))
        return entry is not None and self.clock() - entry[0] < self.ttl

    def saved(self, agent: str, did: str, disposition: str) -> None:
        """This process saw the agent's save go through: put it first straight away."""
        key = (agent, did)
        entry = self._entries.get(key)
        if entry is None:
            return  # read from the trail, with this save in it, when next asked
        names = (disposition, *(n for n in entry[1] if n != disposition))[:SIZE]
        self._put(key, names, loaded_at=entry[0])

    def _put(
        self, key: tuple[str, str], names: tuple[str, ...], loaded_at: float | None = None
    ) -> None:
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES and key not in self._entries:
                self._entries.pop(next(iter(self._entries)))  # the oldest pair goes
            self._entries[key] = (self.clock() if loaded_at is None else loaded_at, names)
