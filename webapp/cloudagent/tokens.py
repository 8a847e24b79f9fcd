"""One CloudAgent token per account, shared by every thread and process that serves it.

CloudAgent kills the previous token at each mint and allows about 10 mints an hour, so a
worker that minted its own token would log every other worker out. Two stores, one protocol:

- SqliteTokenStore (one host): the token in SQLite; minting happens inside an immediate
  (write-locking) transaction, so concurrent callers in every process wait for one mint and
  then read its result.
- RedisTokenStore (several instances): the token, the mint lock and the mint budget in Redis,
  shared by every process of every instance.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import redis
from redis.exceptions import LockError, RedisError

__all__ = [
    "TokenConflict",
    "MintBudgetExhausted",
    "MintFailed",
    "RedisTokenStore",
    "SqliteTokenStore",
    "StoreUnavailable",
    "Token",
    "TokenStore",
    "account_key",
]

log = logging.getLogger("webapp.cloudagent")

TOKEN_LIFETIME = 3600.0  # CloudAgent's documented lifetime, used when a token's exp is unreadable
MINT_BUDGET = 10  # mint attempts allowed per account in any rolling MINT_WINDOW
MINT_WINDOW = 3600.0
REFRESH_MARGIN = 120.0  # replace a token this long before it expires
# A token of ours refused as invalid (not expired) means another party minted for the
# account: each of its mints signs us out, and ours sign it out. Counted once per token.
CONFLICT_WINDOW = 3600.0
CONFLICT_HOLD = 900.0  # after the second conflict in the window: no mint for this long
CONFLICT_BUDGET = 3  # mint attempts in MINT_WINDOW while any conflict is in the window


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: float

    def fresh(self, now: float, margin: float = REFRESH_MARGIN) -> bool:
        return now < self.expires_at - margin


class MintBudgetExhausted(Exception):
    """No mint was attempted: the budget is spent (str "budget"), or a recent failure holds
    attempts back (str "cooldown")."""


class MintFailed(Exception):
    """Generate Token did not give a token.

    `counted`: the attempt uses up budget (CloudAgent may have minted anyway, or may count
    refused attempts against its limit); not for bad credentials or a CloudAgent never
    reached. `hold`: seconds before the next attempt, so that no failure is retried on every
    request (an outage would otherwise spend the hour's budget in a second)."""

    def __init__(
        self,
        message: str,
        *,
        counted: bool = True,
        hold: float = 0.0,
        http_status: int | None = None,
        detail: str = "",
    ) -> None:
        super().__init__(message)
        self.counted = counted
        self.hold = hold
        # For a diagnosis (the go-live check): the answer's HTTP status and what it said,
        # never a token (CloudAgent's message text, or the kind of body it was).
        self.http_status = http_status
        self.detail = detail


class StoreUnavailable(Exception):
    """The shared store (Redis) did not answer: nothing was read, minted or sent."""


class TokenConflict(Exception):  # noqa: N818 (a state of the account, not a fault of ours)
    """Another party keeps minting tokens for the account: no mint until `until` (epoch
    seconds), so the two do not sign each other out all hour."""

    def __init__(self, until: float) -> None:
        super().__init__(f"sign-in conflict, not minting until {until:.0f}")
        self.until = until


def _fingerprint(token: str) -> str:
    """Names a token in the conflict log without keeping it."""
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def _conflict_rule(times: list[float], now: float) -> tuple[float | None, int | None]:
    """From the conflicts in the window: until when minting is held (None: it is not), and
    the mint budget (None: the usual one)."""
    recent = [t for t in times if now - t < CONFLICT_WINDOW]
    if not recent:
        return None, None
    hold = max(recent) + CONFLICT_HOLD if len(recent) >= 2 else None
    return (hold if hold is not None and hold > now else None), CONFLICT_BUDGET


def _log_conflict(account: str, until: float) -> None:
    log.error(
        "cloudagent: sign-in conflict on the CloudAgent account %s: a token this service "
        "minted was refused as invalid twice within the hour, so another system is minting "
        "tokens for the same account (each of its mints signs this service out, and each of "
        "ours signs it out). Not minting until %s UTC; saves are refused meanwhile. Fix: let "
        "only this service sign in with the account's API key (stop the other installation "
        "or script, or give it a CloudAgent account of its own).",
        account.rpartition("|")[2],
        time.strftime("%H:%M:%S", time.gmtime(until)),
    )


def account_key(account: str) -> str:
    """A short, stable name for an account (whose string holds a URL) in shared-store keys."""
    return hashlib.sha256(account.encode()).hexdigest()[:32]


def token_expiry(token: str, now: float) -> float:
    """The `exp` claim of a JWT-shaped token, read without verifying; else now + 60 min.

    The claim only schedules a refresh: a wrong value costs one refused call and a re-mint.
    """
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = float(claims["exp"])
    except Exception:  # any oddity (bad base64, JSON, types, 1e400) means "unreadable"
        return now + TOKEN_LIFETIME
    # An exp in the past or far future is more likely wrong than true.
    return exp if now < exp <= now + 24 * 3600 else now + TOKEN_LIFETIME


class TokenStore(Protocol):
    def ping(self) -> None: ...

    def current(self, account: str) -> Token | None: ...

    def replace(
        self,
        account: str,
        refused: str | None,
        mint: Callable[[], Token],
        *,
        conflict: bool = False,
    ) -> Token:
        """Return a usable token, minting one with `mint` only if the stored one is missing,
        near expiry, or is `refused`. `conflict`: `refused` was refused as invalid (another
        party minted). Raises MintBudgetExhausted, MintFailed or TokenConflict."""
        ...

    def conflict_until(self, account: str) -> float | None:
        """While a sign-in conflict holds minting back: until when (epoch seconds)."""
        ...

    def mint_budget_left(self, account: str) -> int:
        """Mint attempts still allowed in the rolling window (fewer during a conflict)."""
        ...


class SqliteTokenStore:
    """The single-host TokenStore: a SQLite file, locked across processes by SQLite itself."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        budget: int = MINT_BUDGET,
        window: float = MINT_WINDOW,
        lock_timeout: float = 60.0,
        clock: Callable[[], float] = time.time,
        on_conflict: Callable[[], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.budget = budget
        self.window = window
        self.lock_timeout = lock_timeout
        self.clock = clock
        self.on_conflict = on_conflict
        self._local = threading.local()
        # Threads of one process queue here first, so only one of them polls SQLite's lock.
        self._mint_lock = threading.Lock()
        # It holds a live credential: the service's user only, from the first write on (SQLite
        # gives its -wal and -shm files the main file's permissions). A new folder is 0700.
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Created only if new: closing a descriptor would drop SQLite's locks on it.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        for suffix in ("", "-wal", "-shm"):
            file = self.path.with_name(self.path.name + suffix)
            if file.exists():
                os.chmod(file, 0o600)  # as an older release may have left them
        with self._connect() as db:
            db.executescript(
                """
                CREATE TABLE IF NOT EXISTS tokens (
                    account TEXT PRIMARY KEY, token TEXT NOT NULL,
                    expires_at REAL NOT NULL, minted_at REAL NOT NULL);
                CREATE TABLE IF NOT EXISTS mint_log (
                    account TEXT NOT NULL, at REAL NOT NULL,
                    counted INTEGER NOT NULL, hold REAL NOT NULL);
                CREATE TABLE IF NOT EXISTS conflicts (
                    account TEXT NOT NULL, token TEXT NOT NULL, at REAL NOT NULL,
                    PRIMARY KEY (account, token));
                """
            )

    def _connect(self) -> sqlite3.Connection:
        # One connection per thread and process: sqlite3 connections must not cross a fork.
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=self.lock_timeout, isolation_level=None)
            _enable_wal(conn, timeout=self.lock_timeout)
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def ping(self) -> None:
        """Raise if the store cannot be read (readiness probe)."""
        self._connect().execute("SELECT 1 FROM tokens LIMIT 1").fetchone()

    def current(self, account: str) -> Token | None:
        row = (
            self._connect()
            .execute("SELECT token, expires_at FROM tokens WHERE account = ?", (account,))
            .fetchone()
        )
        return Token(row[0], row[1]) if row else None

    def mints_in_window(self, account: str) -> int:
        """Attempts that use up budget in the current window."""
        return (
            self._connect()
            .execute(
                "SELECT COUNT(*) FROM mint_log WHERE account = ? AND at > ? AND counted",
                (account, self.clock() - self.window),
            )
            .fetchone()[0]
        )

    def _oldest_attempt(self, account: str) -> float:
        return (
            self._connect()
            .execute(
                "SELECT MIN(at) FROM mint_log WHERE account = ? AND at > ? AND counted",
                (account, self.clock() - self.window),
            )
            .fetchone()[0]
        )

    def _cooling_down(self, account: str) -> bool:
        return bool(
            self._connect()
            .execute(
                "SELECT COUNT(*) FROM mint_log WHERE account = ? AND hold > 0 AND at + hold > ?",
                (account, self.clock()),
            )
            .fetchone()[0]
        )

    def _conflicts(self, account: str) -> list[float]:
        rows = self._connect().execute(
            "SELECT at FROM conflicts WHERE account = ? AND at > ?",
            (account, self.clock() - CONFLICT_WINDOW),
        )
        return [row[0] for row in rows]

    def mint_budget_left(self, account: str) -> int:
        _hold, conflict_budget = _conflict_rule(self._conflicts(account), self.clock())
        return max(0, (conflict_budget or self.budget) - self.mints_in_window(account))

    def conflict_until(self, account: str) -> float | None:
        now = self.clock()
        hold, budget = _conflict_rule(self._conflicts(account), now)
        if hold is None and budget is not None and self.mints_in_window(account) >= budget:
            hold = self._oldest_attempt(account) + self.window
        return hold

    def replace(
        self,
        account: str,
        refused: str | None,
        mint: Callable[[], Token],
        *,
        conflict: bool = False,
    ) -> Token:
        with self._mint_lock:
            db = self._connect()
            db.execute("BEGIN IMMEDIATE")  # waits while another process mints
            try:
                token = self._replace_locked(db, account, refused, mint, conflict)
            except BaseException:
                db.execute("COMMIT")  # keep the recorded attempt
                raise
            db.execute("COMMIT")
            return token

    def _replace_locked(
        self,
        db: sqlite3.Connection,
        account: str,
        refused: str | None,
        mint: Callable[[], Token],
        conflict: bool,
    ) -> Token:
        now = self.clock()
        stored = self.current(account)
        if stored and stored.value != refused and stored.fresh(now):
            return stored  # someone else minted while we waited
        new_conflict = False
        if conflict and stored and stored.value == refused and now < stored.expires_at:
            new_conflict = (
                db.execute(
                    "INSERT OR IGNORE INTO conflicts VALUES (?, ?, ?)",
                    (account, _fingerprint(refused), now),
                ).rowcount
                == 1
            )
            db.execute("DELETE FROM conflicts WHERE at <= ?", (now - CONFLICT_WINDOW,))
        if new_conflict and self.on_conflict is not None:
            self.on_conflict()
        hold = self.conflict_until(account)
        if hold is not None:
            if new_conflict:
                _log_conflict(account, hold)
            raise TokenConflict(hold)
        if self.mints_in_window(account) >= self.budget:
            raise MintBudgetExhausted("budget")
        if self._cooling_down(account):
            raise MintBudgetExhausted("cooldown")
        try:
            token = mint()
        except MintFailed as failure:
            db.execute(
                "INSERT INTO mint_log VALUES (?, ?, ?, ?)",
                (account, now, failure.counted, failure.hold),
            )
            raise
        db.execute("INSERT INTO mint_log VALUES (?, ?, 1, 0)", (account, now))
        db.execute("DELETE FROM mint_log WHERE at <= ?", (now - self.window,))
        db.execute(
            "INSERT OR REPLACE INTO tokens VALUES (?, ?, ?, ?)",
            (account, token.value, token.expires_at, now),
        )
        return token


class RedisTokenStore:
    """The several-instances TokenStore: every process of every instance shares, in Redis,

    - the token, a hash at `widget:token:<account key>` (value, expires_at, minted_at);
    - the mint lock, `widget:token-lock:<key>` (redis-py's Lock: a key with an owner and a
      timeout longer than a mint call, so a crashed holder frees it);
    - the mint budget, a sorted set `widget:mints:<key>` of attempt times, and a hold,
      `widget:mint-hold:<key>` (the time attempts may resume), after a failure that holds back.

    The semantics are SqliteTokenStore's: the token is re-read under the lock and minted only
    if missing, near expiry or the refused one; every attempt is counted *before* the call, so
    a crash mid-mint still counts. Any Redis failure raises StoreUnavailable, never a mint: a
    mint without the lock could start a storm. Threads of one process queue on a local lock
    first, so each process polls the Redis lock with one thread at most.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        budget: int = MINT_BUDGET,
        window: float = MINT_WINDOW,
        lock_timeout: float = 30.0,
        lock_wait: float | None = None,
        clock: Callable[[], float] = time.time,
        on_conflict: Callable[[], None] | None = None,
    ) -> None:
        self.redis = client
        self.budget = budget
        self.window = window
        self.lock_timeout = lock_timeout  # > one mint call: connect + read timeouts
        self.lock_wait = lock_timeout + 5 if lock_wait is None else lock_wait
        self.clock = clock
        self.on_conflict = on_conflict
        self._mint_lock = threading.Lock()

    @staticmethod
    def keys(account: str) -> dict[str, str]:
        key = account_key(account)
        return {
            "token": f"widget:token:{key}",
            "lock": f"widget:token-lock:{key}",
            "mints": f"widget:mints:{key}",
            "hold": f"widget:mint-hold:{key}",
            "conflicts": f"widget:token-conflicts:{key}",
        }

    def ping(self) -> None:
        try:
            self.redis.ping()
        except RedisError as error:
            raise StoreUnavailable(f"redis: {error}") from error

    def current(self, account: str) -> Token | None:
        try:
            fields = self.redis.hmget(self.keys(account)["token"], ["value", "expires_at"])
        except RedisError as error:
            raise StoreUnavailable(f"redis: {error}") from error
        if fields[0] is None or fields[1] is None:
            return None
        return Token(fields[0].decode(), float(fields[1]))

    def mints_in_window(self, account: str) -> int:
        """Attempts that use up budget in the current window."""
        key = self.keys(account)["mints"]
        return int(self.redis.zcount(key, f"({self.clock() - self.window}", "+inf"))

    def _cooling_down(self, account: str) -> bool:
        until = self.redis.get(self.keys(account)["hold"])
        return until is not None and float(until) > self.clock()

    def _conflicts(self, account: str) -> list[float]:
        key = self.keys(account)["conflicts"]
        found = self.redis.zrangebyscore(
            key, self.clock() - CONFLICT_WINDOW, "+inf", withscores=True
        )
        return [score for _member, score in found]

    def _conflict_block(self, account: str) -> float | None:
        now = self.clock()
        hold, budget = _conflict_rule(self._conflicts(account), now)
        if hold is None and budget is not None and self.mints_in_window(account) >= budget:
            oldest = self.redis.zrangebyscore(
                self.keys(account)["mints"],
                f"({now - self.window}",
                "+inf",
                start=0,
                num=1,
                withscores=True,
            )
            hold = (oldest[0][1] if oldest else now) + self.window
        return hold

    def mint_budget_left(self, account: str) -> int:
        try:
            _hold, conflict_budget = _conflict_rule(self._conflicts(account), self.clock())
            return max(0, (conflict_budget or self.budget) - self.mints_in_window(account))
        except RedisError as error:
            raise StoreUnavailable(f"redis: {error}") from error

    def conflict_until(self, account: str) -> float | None:
        try:
            return self._conflict_block(account)
        except RedisError as error:
            raise StoreUnavailable(f"redis: {error}") from error

    def replace(
        self,
        account: str,
        refused: str | None,
        mint: Callable[[], Token],
        *,
        conflict: bool = False,
    ) -> Token:
        if not self._mint_lock.acquire(timeout=self.lock_wait):
            raise MintBudgetExhausted("lock")
        try:
            lock = self.redis.lock(
                self.keys(account)["lock"],
                timeout=self.lock_timeout,
                sleep=0.05,
                blocking=True,
                blocking_timeout=self.lock_wait,
            )
            try:
                acquired = lock.acquire()
            except RedisError as error:
                raise StoreUnavailable(f"redis: {error}") from error
            if not acquired:
                log.error("token lock not acquired within %.0f s", self.lock_wait)
                raise MintBudgetExhausted("lock")
            try:
                return self._replace_locked(account, refused, mint, conflict)
            finally:
                try:
                    lock.release()
                except (LockError, RedisError) as error:
                    # Redis restarted or the lock timed out: it is free either way.
                    log.warning("token lock release failed: %s", error)
        finally:
            self._mint_lock.release()

    def _replace_locked(
        self, account: str, refused: str | None, mint: Callable[[], Token], conflict: bool
    ) -> Token:
        keys = self.keys(account)
        now = self.clock()
        attempt = f"{now:.6f}:{uuid.uuid4().hex}"
        try:
            stored = self.current(account)
            if stored and stored.value != refused and stored.fresh(now):
                return stored  # someone else minted while we waited
            new_conflict = False
            if conflict and stored and stored.value == refused and now < stored.expires_at:
                pipe = self.redis.pipeline()
                pipe.zadd(keys["conflicts"], {_fingerprint(refused): now}, nx=True)
                pipe.zremrangebyscore(keys["conflicts"], "-inf", now - CONFLICT_WINDOW)
                pipe.expire(keys["conflicts"], int(CONFLICT_WINDOW) + 60)
                new_conflict = pipe.execute()[0] == 1
            if new_conflict and self.on_conflict is not None:
                self.on_conflict()
            hold = self._conflict_block(account)
            if hold is not None:
                if new_conflict:
                    _log_conflict(account, hold)
                raise TokenConflict(hold)
            # Forget attempts older than the window, then count what is left.
            self.redis.zremrangebyscore(keys["mints"], "-inf", now - self.window)
            if self.mints_in_window(account) >= self.budget:
                raise MintBudgetExhausted("budget")
            if self._cooling_down(account):
                raise MintBudgetExhausted("cooldown")
            # Counted before the call: if this process dies mid-mint, the attempt still counts.
            pipe = self.redis.pipeline()
            pipe.zadd(keys["mints"], {attempt: now})
            pipe.expire(keys["mints"], int(self.window) + 60)
            pipe.execute()
        except RedisError as error:
            raise StoreUnavailable(f"redis: {error}") from error
        try:
            token = mint()
        except MintFailed as failure:
            if failure.hold or not failure.counted:
                # Hold further attempts back; bad credentials or never reached use no budget.
                try:
                    pipe = self.redis.pipeline()
                    if not failure.counted:
                        pipe.zrem(keys["mints"], attempt)
                    if failure.hold:
                        pipe.set(
                            keys["hold"], repr(now + failure.hold), px=int(failure.hold * 1000)
                        )
                    pipe.execute()
                except RedisError as error:
                    log.warning("could not record the mint hold: %s", error)
            raise
        try:
            pipe = self.redis.pipeline()
            pipe.hset(
                keys["token"],
                mapping={
                    "value": token.value,
                    "expires_at": repr(token.expires_at),
                    "minted_at": repr(now),
                },
            )
            # Gone an hour after it expires: a dead token is never worth keeping.
            pipe.expire(keys["token"], max(60, int(token.expires_at - now) + 3600))
            pipe.execute()
        except RedisError as error:
            # The mint happened: this caller uses the token; the others will re-mint under
            # the lock once Redis answers (one mint, within the budget).
            log.error("minted a token but could not store it in Redis: %s", error)
        return token


def _enable_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Put the store in WAL mode, waiting up to `timeout` seconds for other processes.

    The first switch of a new file needs an exclusive lock, and SQLite answers "database is
    locked" at once, without the busy timeout, to a process switching it at the same moment as
    another: gunicorn's workers all open the store as they boot on a new data folder, and one
    that fails to boot makes gunicorn stop the whole server."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)
