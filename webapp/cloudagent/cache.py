"""The dispositions list, cached per (account, DID) so opening a panel costs no upstream call.

A fresh entry is served as is; a stale one is served while one background refresh runs; a
failed refresh keeps the stale list. Only a key never loaded waits for CloudAgent, and then
concurrent callers wait for the same single fetch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .client import DispositionList

log = logging.getLogger("webapp.cloudagent")

RETRY_AFTER = 30.0  # seconds between refresh attempts while refreshes fail
Fetch = Callable[[str, str, str], DispositionList]


@dataclass
class _Entry:
    value: DispositionList
    loaded_at: float
    refreshing: bool = False


class DispositionCache:
    def __init__(
        self,
        fetch: Fetch,
        *,
        account: str,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self.account = account
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, str], threading.Lock] = {}

    def get(self, agent_id: str, did: str, ucid: str) -> DispositionList:
        key = (self.account, did)
        with self._lock:
            entry = self._entries.get(key)
            if entry and self.clock() - entry.loaded_at >= self.ttl and not entry.refreshing:
                entry.refreshing = True
                threading.Thread(
                    target=self._refresh, args=(key, agent_id, did, ucid), daemon=True
                ).start()
            if entry:
                return entry.value
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # one first load per key; the others wait for it and read its result
            with self._lock:
                entry = self._entries.get(key)
            if entry:
                return entry.value
            result = self._fetch(agent_id, did, ucid)
            if result.ok:
                with self._lock:
                    self._entries[key] = _Entry(result, self.clock())
            return result

    def _refresh(self, key: tuple[str, str], agent_id: str, did: str, ucid: str) -> None:
        try:
            result = self._fetch(agent_id, did, ucid)
        except Exception:  # a refresh thread must never die with the entry stuck refreshing
            log.exception("dispositions refresh for did %s failed", key[1])
            result = None
        with self._lock:
            entry = self._entries[key]
            if result is not None and result.ok:
                self._entries[key] = _Entry(result, self.clock())
            else:
                entry.refreshing = False
                # Try again after a short pause, not on every panel load while CloudAgent is down.
                entry.loaded_at = self.clock() - self.ttl + min(self.ttl, RETRY_AFTER)
                if result is not None:
                    log.warning(
                        "dispositions refresh for did %s failed (%s); serving the stale list",
                        key[1],
                        result.error and result.error.reason,
                    )

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
