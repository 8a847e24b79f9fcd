"""One CloudAgent token per account, shared by every thread and process on the host.

CloudAgent kills the previous token at each mint and allows about 10 mints an hour, so a
worker that minted its own token would log every other worker out. The store keeps the one
current token in SQLite; minting happens inside an immediate (write-locking) transaction, so
concurrent callers in every process wait for one mint and then read its result.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

TOKEN_LIFETIME = 3600.0  # CloudAgent's documented lifetime, used when a token's exp is unreadable
MINT_BUDGET = 10  # mint attempts allowed per account in any rolling MINT_WINDOW
MINT_WINDOW = 3600.0
REFRESH_MARGIN = 120.0  # replace a token this long before it expires


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

    A failed attempt uses up budget (CloudAgent may have minted anyway, or may count refused
    attempts against its limit) unless it gives a `hold`: refused for bad credentials, or
    never reached CloudAgent. Those only hold further attempts back for `hold` seconds, so a
    wrong API key or an outage neither hammers CloudAgent nor locks the account out."""

    def __init__(self, message: str, *, hold: float = 0.0) -> None:
        super().__init__(message)
        self.hold = hold


def token_expiry(token: str, now: float) -> float:
    """The `exp` claim of a JWT-shaped token, read without verifying; else now + 60 min.

    The claim only schedules a refresh: a wrong value costs one refused call and a re-mint.
    """
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return now + TOKEN_LIFETIME
    # An exp in the past or far future is more likely wrong than true.
    return exp if now < exp <= now + 24 * 3600 else now + TOKEN_LIFETIME


class TokenStore(Protocol):
    def ping(self) -> None: ...

    def current(self, account: str) -> Token | None: ...

    def replace(self, account: str, refused: str | None, mint: Callable[[], Token]) -> Token:
        """Return a usable token, minting one with `mint` only if the stored one is missing,
        near expiry, or is `refused`. Raises MintBudgetExhausted or MintFailed."""
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
    ) -> None:
        self.path = Path(path)
        self.budget = budget
        self.window = window
        self.lock_timeout = lock_timeout
        self.clock = clock
        self._local = threading.local()
        # Threads of one process queue here first, so only one of them polls SQLite's lock.
        self._mint_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(
                """
                CREATE TABLE IF NOT EXISTS tokens (
                    account TEXT PRIMARY KEY, token TEXT NOT NULL,
                    expires_at REAL NOT NULL, minted_at REAL NOT NULL);
                CREATE TABLE IF NOT EXISTS mint_attempts (
                    account TEXT NOT NULL, at REAL NOT NULL, hold REAL NOT NULL);
                """
            )
        os.chmod(self.path, 0o600)  # it holds a live credential

    def _connect(self) -> sqlite3.Connection:
        # One connection per thread and process: sqlite3 connections must not cross a fork.
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=self.lock_timeout, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def ping(self) -> None:
        """Raise if the store cannot be read (readiness probe)."""
        self._connect().execute("SELECT COUNT(*) FROM tokens").fetchone()

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
                "SELECT COUNT(*) FROM mint_attempts WHERE account = ? AND at > ? AND hold = 0",
                (account, self.clock() - self.window),
            )
            .fetchone()[0]
        )

    def _cooling_down(self, account: str) -> bool:
        return bool(
            self._connect()
            .execute(
                "SELECT COUNT(*) FROM mint_attempts "
                "WHERE account = ? AND hold > 0 AND at + hold > ?",
                (account, self.clock()),
            )
            .fetchone()[0]
        )

    def replace(self, account: str, refused: str | None, mint: Callable[[], Token]) -> Token:
        with self._mint_lock:
            db = self._connect()
            db.execute("BEGIN IMMEDIATE")  # waits while another process mints
            try:
                token = self._replace_locked(db, account, refused, mint)
            except BaseException:
                db.execute("COMMIT")  # keep the recorded attempt
                raise
            db.execute("COMMIT")
            return token

    def _replace_locked(
        self, db: sqlite3.Connection, account: str, refused: str | None, mint: Callable[[], Token]
    ) -> Token:
        now = self.clock()
        stored = self.current(account)
        if stored and stored.value != refused and stored.fresh(now):
            return stored  # someone else minted while we waited
        if self.mints_in_window(account) >= self.budget:
            raise MintBudgetExhausted("budget")
        if self._cooling_down(account):
            raise MintBudgetExhausted("cooldown")
        try:
            token = mint()
        except MintFailed as failure:
            db.execute("INSERT INTO mint_attempts VALUES (?, ?, ?)", (account, now, failure.hold))
            raise
        db.execute("INSERT INTO mint_attempts VALUES (?, ?, 0)", (account, now))
        db.execute("DELETE FROM mint_attempts WHERE at <= ?", (now - self.window,))
        db.execute(
            "INSERT OR REPLACE INTO tokens VALUES (?, ?, ?, ?)",
            (account, token.value, token.expires_at, now),
        )
        return token
