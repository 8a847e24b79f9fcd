"""The dispositions list, cached per (account, DID) so opening a panel costs no upstream call.

A fresh entry is served as is; a stale one is served while one background refresh runs; a
failed refresh keeps the stale list. Only a key never loaded waits for CloudAgent, and then
concurrent callers wait for the same single fetch and share its answer, failed or not.

DispositionCache keeps the lists in process memory (one host); RedisDispositionCache shares
them between instances through Redis, with a short in-process copy in front.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

from .client import DispositionList
from .tokens import StoreUnavailable, account_key

__all__ = ["LIST_RETRY_AFTER", "DispositionCache", "RedisDispositionCache"]

log = logging.getLogger("webapp.cloudagent")

LIST_RETRY_AFTER = 30.0  # seconds between refresh attempts while a list fails to load
# Seconds a list that could not be loaded at all is answered from that failure, not fetched
# again: panels opened meanwhile, and requests that would fetch it, cost CloudAgent nothing.
FAILED_BACKOFF = 5.0
Fetch = Callable[[str, str, str], DispositionList]
# Told how each lookup was answered: "hit", "stale" (served while refreshed), "miss" (fetched
# from CloudAgent) or "error" (no list to give).
OnResult = Callable[[str], None]


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
        on_result: OnResult | None = None,
    ) -> None:
        self._fetch = fetch
        self.account = account
        self.ttl = ttl
        self.clock = clock
        self.on_result = on_result
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, str], threading.Lock] = {}
        self._failed: dict[tuple[str, str], tuple[DispositionList, int, float]] = {}
        self._ticks = itertools.count()  # orders callers and failures (clocks may tie)

    def get(self, agent_id: str, did: str, ucid: str, *, wait: bool = True) -> DispositionList:
        """The DID's list. A list once loaded is never dropped, so after holds() this never
        waits, `wait` or not (the argument is RedisDispositionCache's)."""
        result, how = self._get(agent_id, did, ucid)
        if self.on_result is not None:
            self.on_result(how)
        return result

    def holds(self, did: str) -> bool:
        """Whether get() for this DID answers from memory now, without waiting for
        CloudAgent (a stale list is answered while a thread refreshes it)."""
        return (self.account, did) in self._entries

    def _get(self, agent_id: str, did: str, ucid: str) -> tuple[DispositionList, str]:
        key = (self.account, did)
        with self._lock:
            entry = self._entries.get(key)
            stale = entry is not None and self.clock() - entry.loaded_at >= self.ttl
            if entry and stale and not entry.refreshing:
                entry.refreshing = True
                threading.Thread(
                    target=self._refresh, args=(key, agent_id, did, ucid), daemon=True
                ).start()
            if entry:
                return entry.value, ("stale" if stale else "hit")
            loading = self._loading.setdefault(key, threading.Lock())
            asked = next(self._ticks)
        with loading:  # one first load per key; the others wait for it and read its result
            with self._lock:
                entry = self._entries.get(key)
                failed = self._failed.get(key)
            if entry:
                return entry.value, "hit"
            if failed and (failed[1] > asked or self.clock() - failed[2] < FAILED_BACKOFF):
                # The load this caller waited for failed, or one failed a moment ago: share
                # its answer rather than ask again. After the back-off, a caller (Try again)
                # fetches anew.
                return failed[0], "error"
            result = self._fetch(agent_id, did, ucid)
            with self._lock:
                if result.ok:
                    self._entries[key] = _Entry(result, self.clock())
                    self._failed.pop(key, None)
                else:
                    self._failed[key] = (result, next(self._ticks), self.clock())
            return result, ("miss" if result.ok else "error")

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
                entry.loaded_at = self.clock() - self.ttl + min(self.ttl, LIST_RETRY_AFTER)
                if result is not None:
                    log.warning(
                        "dispositions refresh for did %s failed (%s); serving the stale list",
                        key[1],
                        result.error and result.error.reason,
                    )

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


@dataclass
class _Local:
    value: DispositionList
    loaded_at: float  # wall-clock time CloudAgent gave this list (shared across instances)
    checked: float  # monotonic time this process last looked at Redis (or tried to)
    refreshing: bool = False  # a local refresh runs (only while Redis is unreachable)


class RedisDispositionCache:
    """The dispositions cache shared by every instance through Redis, with a short in-process
    copy in front of it.

    - A panel load within `local_ttl` seconds of this process's last look at Redis costs no
      network call at all; otherwise one GET.
    - A list older than `ttl` is served while one refresh runs, across every instance: the
      refresher is whoever wins `SET NX` on `widget:dispositions-refresh:<account key>:<did>`,
      which expires after `refresh_lock` seconds, so after a failed refresh nobody tries again
      before then (and the stale list is kept).
    - A DID never loaded: one fetch across instances; the others wait for its result.
    - Redis unreachable: the process's own copy is served (refreshed from CloudAgent directly
      when stale), or CloudAgent is asked directly; Redis is tried again after `local_ttl`.
    """

    def __init__(
        self,
        fetch: Fetch,
        *,
        account: str,
        redis: Redis,
        ttl: float = 300.0,
        local_ttl: float = 5.0,
        refresh_lock: float = 30.0,
        keep: float = 7 * 24 * 3600.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        on_result: OnResult | None = None,
    ) -> None:
        self.on_result = on_result
        self._fetch = fetch
        self.account = account
        self.redis = redis
        self.ttl = ttl
        self.local_ttl = min(local_ttl, ttl)
        self.refresh_lock = max(1.0, refresh_lock)
        self.keep = keep  # a stale list outlives CloudAgent outages in Redis this long
        self.clock = clock
        self.monotonic = monotonic
        self._prefix = f"widget:dispositions:{account_key(account)}:"
        self._refresh_prefix = f"widget:dispositions-refresh:{account_key(account)}:"
        self._load_prefix = f"widget:dispositions-load:{account_key(account)}:"
        self._local: dict[str, _Local] = {}
        self._lock = threading.Lock()
        self._loading: dict[str, threading.RLock] = {}
        self._failed: dict[str, tuple[DispositionList, float]] = {}  # per DID: (answer, when)

    def ping(self) -> None:
        try:
            self.redis.ping()
        except RedisError as error:
            raise StoreUnavailable(f"redis: {error}") from error

    def get(self, agent_id: str, did: str, ucid: str, *, wait: bool = True) -> DispositionList:
        """The DID's list. `wait=False` (a panel on the event loop, after holds()) answers
        from this process's copy however long since it was checked against Redis."""
        result, how = self._get(agent_id, did, ucid, wait)
        if self.on_result is not None:
            self.on_result(how)
        return result

    def holds(self, did: str) -> bool:
        """Whether get() for this DID answers from this process's copy now, with neither
        Redis nor CloudAgent asked."""
        local = self._local.get(did)
        return local is not None and self.monotonic() - local.checked < self.local_ttl

    def _get(
        self, agent_id: str, did: str, ucid: str, wait: bool = True
    ) -> tuple[DispositionList, str]:
        local = self._local.get(did)  # a dict read is atomic: no lock on the common path
        if local and (not wait or self.monotonic() - local.checked < self.local_ttl):
            # The common case: memory only, no network.
            return local.value, self._age(local.loaded_at)
        try:
            shared = self._read(did)
        except RedisError as error:
            return self._without_redis(did, local, error, (agent_id, did, ucid))
        if shared is not None:
            value, loaded_at = shared
            with self._lock:
                self._local[did] = _Local(value, loaded_at, self.monotonic())
            if self.clock() - loaded_at >= self.ttl:
                self._refresh_shared(did, (agent_id, did, ucid))
            return value, self._age(loaded_at)
        return self._first_load(did, (agent_id, did, ucid))

    def _age(self, loaded_at: float) -> str:
        return "stale" if self.clock() - loaded_at >= self.ttl else "hit"

    # -- Redis -------------------------------------------------------------------------------

    def _read(self, did: str) -> tuple[DispositionList, float] | None:
        raw = self.redis.get(self._prefix + did)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            names = tuple(str(name) for name in data["names"])
            return DispositionList(names=names), float(data["loaded_at"])
        except (ValueError, KeyError, TypeError):
            log.warning("dispositions for did %s: unreadable entry in Redis, reloading", did)
            return None

    def _write(self, did: str, value: DispositionList, loaded_at: float) -> None:
        entry = json.dumps({"names": list(value.names), "loaded_at": loaded_at})
        self.redis.set(self._prefix + did, entry, ex=int(self.ttl + self.keep))

    def _claim(self, prefix: str, did: str) -> bool:
        """True if this process is now the one loader or refresher of `did` across instances
        (the claim expires by itself after refresh_lock seconds)."""
        return bool(self.redis.set(prefix + did, "1", nx=True, ex=int(self.refresh_lock)))

    def _refresh_shared(self, did: str, args: tuple[str, str, str]) -> None:
        try:
            if not self._claim(self._refresh_prefix, did):
                return  # another process refreshes, or one failed recently
        except RedisError as error:
            log.warning("dispositions for did %s: Redis unreachable (%s)", did, error)
            return
        threading.Thread(target=self._refresh, args=(did, args), daemon=True).start()

    def _refresh(self, did: str, args: tuple[str, str, str]) -> None:
        try:
            result = self._fetch(*args)
        except Exception:  # a refresh thread must never die silently
            log.exception("dispositions refresh for did %s failed", did)
            return
        if not result.ok:
            # The refresh lock expires after refresh_lock seconds: the next try, anywhere.
            log.warning(
                "dispositions refresh for did %s failed (%s); serving the stale list",
                did,
                result.error and result.error.reason,
            )
            return
        self._store(did, result)
        with contextlib.suppress(RedisError):
            self.redis.delete(self._refresh_prefix + did)

    def _store(self, did: str, result: DispositionList) -> None:
        loaded_at = self.clock()
        with self._lock:
            self._local[did] = _Local(result, loaded_at, self.monotonic())
        try:
            self._write(did, result, loaded_at)
        except RedisError as error:
            log.warning("dispositions for did %s: not written to Redis (%s)", did, error)

    def _first_load(self, did: str, args: tuple[str, str, str]) -> tuple[DispositionList, str]:
        with self._loading_lock(did):  # one first load per process; its other threads wait
            with self._lock:
                local = self._local.get(did)
                failed = self._failed.get(did)
            if local and self.monotonic() - local.checked < self.local_ttl:
                return local.value, "hit"
            if failed and self.monotonic() - failed[1] < FAILED_BACKOFF:
                return failed[0], "error"  # failed a moment ago: not asked again yet
            claimed = False
            try:
                shared = self._read(did)
                if shared is None:
                    claimed = self._claim(self._load_prefix, did)
                    if not claimed:
                        shared = self._wait_for_other(did)
            except RedisError as error:
                return self._without_redis(did, None, error, args)
            if shared is not None:
                with self._lock:
                    self._local[did] = _Local(shared[0], shared[1], self.monotonic())
                return shared[0], "hit"
            result = self._fetch(*args)
            if result.ok:
                self._store(did, result)
                self._failed.pop(did, None)
            else:
                self._failed[did] = (result, self.monotonic())
            if claimed:
                with contextlib.suppress(RedisError):
                    self.redis.delete(self._load_prefix + did)
            return result, ("miss" if result.ok else "error")

    def _wait_for_other(self, did: str) -> tuple[DispositionList, float] | None:
        """Another process loads `did`: wait for its result while it holds the claim."""
        deadline = self.monotonic() + self.refresh_lock
        while self.monotonic() < deadline:
            time.sleep(0.05)
            shared = self._read(did)
            if shared is not None:
                return shared
            if not self.redis.exists(self._load_prefix + did):
                return None  # it failed: load it ourselves
        return None

    # -- Redis unreachable -------------------------------------------------------------------

    def _without_redis(
        self, did: str, local: _Local | None, error: Exception, args: tuple[str, str, str]
    ) -> tuple[DispositionList, str]:
        log.warning("dispositions for did %s: Redis unreachable (%s), using memory", did, error)
        if local is None:
            return self._load_directly(did, args)
        with self._lock:
            local.checked = self.monotonic()  # try Redis again after local_ttl, not every load
            stale = self.clock() - local.loaded_at >= self.ttl and not local.refreshing
            if stale:
                local.refreshing = True
        if stale:
            threading.Thread(
                target=self._refresh_local, args=(did, local, args), daemon=True
            ).start()
        return local.value, self._age(local.loaded_at)

    def _load_directly(self, did: str, args: tuple[str, str, str]) -> tuple[DispositionList, str]:
        """A DID with no copy in memory while Redis is away: CloudAgent directly, one fetch
        per process at a time, and a failure answered for FAILED_BACKOFF seconds as with
        Redis up, so an outage of both costs CloudAgent one call per DID per back-off, not
        one per panel and save."""
        with self._loading_lock(did):  # reentrant: _first_load may already hold it
            with self._lock:
                local = self._local.get(did)
                failed = self._failed.get(did)
            if local and self.monotonic() - local.checked < self.local_ttl:
                return local.value, "hit"  # another thread loaded it while this one waited
            if failed and self.monotonic() - failed[1] < FAILED_BACKOFF:
                return failed[0], "error"
            result = self._fetch(*args)
            with self._lock:
                if result.ok:
                    self._local[did] = _Local(result, self.clock(), self.monotonic())
                    self._failed.pop(did, None)
                else:
                    self._failed[did] = (result, self.monotonic())
            return result, ("miss" if result.ok else "error")

    def _loading_lock(self, did: str) -> threading.RLock:
        with self._lock:
            return self._loading.setdefault(did, threading.RLock())

    def _refresh_local(self, did: str, local: _Local, args: tuple[str, str, str]) -> None:
        try:
            result = self._fetch(*args)
        except Exception:
            log.exception("dispositions refresh for did %s failed", did)
            result = None
        with self._lock:
            if result is not None and result.ok:
                self._local[did] = _Local(result, self.clock(), self.monotonic())
            else:
                local.refreshing = False
                local.loaded_at = self.clock() - self.ttl + min(self.ttl, LIST_RETRY_AFTER)

    def clear(self) -> None:
        with self._lock:
            self._local.clear()
        with contextlib.suppress(RedisError):
            for key in self.redis.scan_iter(match=self._prefix + "*"):
                self.redis.delete(key)
