"""The audit trail: every save attempt, written before CloudAgent is called, completed after.

A row starts with the outcome `unknown`, so a process killed mid-call leaves a row that says
so. Credentials never enter it: only what the agent chose and what CloudAgent answered.
SQLAlchemy Core keeps the schema engine-neutral: SQLite under WIDGET_DATA_DIR by default,
PostgreSQL (psycopg) when WIDGET_DATABASE_URL names one, shared by every instance. SQLite
takes one writer at a time across the host (webapp.writelock); a process's concurrent writes
are committed together (webapp.groupcommit).

The schema carries a version (table `schema_version`, row `audit`). At start-up the tables
are created if missing and migrated step by step (MIGRATIONS) if older, under a lock (a
PostgreSQL advisory lock; SQLite's write lock), so instances starting together do it once.
A schema newer than this code stops start-up: an old release must not write to it.

Failures: begin() raises AuditUnavailable, so no save reaches CloudAgent unrecorded; finish()
never raises (the agent's answer matters more): it logs the row loudly, and keeps retrying
in the background for a while.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from .cloudagent.tokens import enable_wal
from .config import ConfigError
from .groupcommit import GroupCommit
from .writelock import WriteLock

log = logging.getLogger("webapp.audit")

UNKNOWN = "unknown"
TEXT_LIMIT = 500  # characters of upstream text kept

metadata = MetaData()
saves = Table(
    "saves",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("request_id", String(64)),
    Column("agent", String(64), nullable=False),
    Column("ucid", String(64), nullable=False),
    Column("did", String(64), nullable=False),
    Column("disposition", String(250), nullable=False),
    Column("pause", Boolean, nullable=False),
    Column("pause_reason", String(100)),
    Column("outcome", String(32), nullable=False),
    Column("reason", String(32)),
    Column("upstream_status", String(64)),
    Column("upstream_text", String(TEXT_LIMIT)),
    Column("latency_ms", Float),
    Column("instance", String(64)),  # schema 2: which instance served the save
    Index("ix_saves_ucid", "ucid"),
    Index("ix_saves_agent_started", "agent", "started_at"),
    Index("ix_saves_started", "started_at"),
)

COLUMNS = [column.name for column in saves.columns]

# The hot path's statements, built once: building them per save (`.values(**row)`, fresh
# bind parameters) cost SQLAlchemy more CPU than SQLite spent running them.
_BEGIN = insert(saves)
_COMPLETE = update(saves).where(saves.c.id == bindparam("entry_id"))
_SAVES_SINCE = select(func.count(), func.min(saves.c.started_at)).where(
    saves.c.agent == bindparam("agent"), saves.c.started_at > bindparam("since")
)
_LAST_UNKNOWN = (
    select(saves.c.disposition, saves.c.outcome)
    .where(
        saves.c.ucid == bindparam("ucid"),
        saves.c.agent == bindparam("agent"),
        saves.c.id < bindparam("before"),
        saves.c.finished_at.is_not(None),
    )
    .order_by(saves.c.id.desc())
    .limit(1)
)

schema_version = Table(
    "schema_version",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("version", Integer, nullable=False),
)

SCHEMA_VERSION = 2
# MIGRATIONS[n] brings a schema at version n - 1 to version n, inside the start-up transaction.
# A database made before versioning (a `saves` table, no version row) is version 1.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    2: lambda conn: conn.execute(text("ALTER TABLE saves ADD COLUMN instance VARCHAR(64)")),
}
PG_LOCK_ID = 0x7769_6467_6175_6474  # pg_advisory_xact_lock key for start-up migrations
RETRY_PENDING_FOR = 600.0  # seconds finish() keeps retrying a row the database refused


class AuditUnavailable(Exception):
    """The audit log cannot be written: the save must not go ahead."""


class SchemaError(ConfigError):
    """The audit database's schema is newer than this code knows, or the database cannot be
    reached at start-up: start-up stops with one line (a ConfigError, which create_app
    prefixes with the variable to look at)."""


@dataclass(frozen=True)
class Attempt:
    agent: str
    ucid: str
    did: str
    disposition: str
    pause: bool
    pause_reason: str
    request_id: str | None = None


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'audit.sqlite3'}"


def _clip(text: str | None, limit: int = TEXT_LIMIT) -> str | None:
    return None if text is None else text[:limit]


class AuditLog:
    def __init__(self, url: str, *, instance: str | None = None) -> None:
        self.instance = instance
        options: dict[str, Any] = {}
        if url.startswith("postgresql"):
            # Short waits: a save must not hang on a database that went away; reconnects
            # happen by themselves (pre-ping). Pool: ~10 connections per worker process.
            options |= {
                "pool_pre_ping": True,  # a server restart must not fail the next save
                "pool_size": 5,
                "max_overflow": 5,
                "pool_timeout": 5,
                "pool_recycle": 1800,
                "connect_args": {
                    "connect_timeout": 3,
                    "application_name": f"disposition-widget {instance or ''}".strip()[:63],
                    "options": "-c statement_timeout=5000",
                },
            }
        self.engine: Engine = create_engine(url, **options)
        # PostgreSQL queues concurrent writers well by itself; SQLite takes one at a time.
        self._group: GroupCommit | None = None
        if self.engine.dialect.name == "sqlite":
            database = Path(self.engine.url.database or ".")
            database.parent.mkdir(parents=True, exist_ok=True)
            event.listen(self.engine, "connect", _sqlite_pragmas)
            lock = WriteLock(database.with_name(database.name + ".lock"))
            self._group = GroupCommit(self.engine, lock.held)
        prepare_schema(url)
        self._pending: list[tuple[float, int, dict[str, Any]]] = []
        self._pending_lock = threading.Lock()
        self._retrier: threading.Thread | None = None
        self._closed = threading.Event()

    @property
    def where(self) -> str:
        """The database, for logs: never its password."""
        return self.engine.url.render_as_string(hide_password=True)

    def _write(self, write: Callable[[Connection], Any]) -> Any:
        """Run `write` in a committed transaction (SQLite: the process's next group commit)."""
        if self._group is not None:
            return self._group.run(write)
        with self.engine.begin() as conn:
            return write(conn)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(select(func.count()).select_from(saves)).scalar()

    def begin(self, attempt: Attempt) -> int:
        """Record an attempt before calling CloudAgent; its outcome reads `unknown` until
        finish() is called."""
        values = dict(
            started_at=time.time(),
            request_id=attempt.request_id,
            agent=attempt.agent,
            ucid=attempt.ucid,
            did=attempt.did,
            disposition=attempt.disposition,
            pause=attempt.pause,
            pause_reason=attempt.pause_reason or None,
            outcome=UNKNOWN,
            instance=self.instance,
        )
        try:
            return int(
                self._write(lambda conn: conn.execute(_BEGIN, values).inserted_primary_key[0])
            )
        except (SQLAlchemyError, OSError) as error:  # OSError: the host's write lock
            log.error("audit log unreachable (%s): save refused before CloudAgent", _short(error))
            raise AuditUnavailable(str(error)) from error

    def finish(
        self,
        entry_id: int,
        *,
        outcome: str,
        reason: str | None,
        upstream_status: str | None,
        upstream_text: str | None,
        latency_ms: float,
    ) -> None:
        """Complete the row. Never raises: CloudAgent has answered and the agent must hear it.
        A refused write is logged with the whole row (ERROR) and retried in the background."""
        values = dict(
            finished_at=time.time(),
            outcome=outcome,
            reason=reason,
            upstream_status=_clip(upstream_status, 64),
            upstream_text=_clip(upstream_text),
            latency_ms=round(latency_ms, 1),
        )
        try:
            self._complete(entry_id, values)
        except (SQLAlchemyError, OSError) as error:
            log.error(
                "audit log unreachable (%s): row %s NOT completed yet, retrying; the row: %s",
                _short(error),
                entry_id,
                values,
            )
            self._retry_later(entry_id, values)

    def _complete(self, entry_id: int, values: dict[str, Any]) -> None:
        params = {"entry_id": entry_id, **values}
        self._write(lambda conn: conn.execute(_COMPLETE, params))

    def _retry_later(self, entry_id: int, values: dict[str, Any]) -> None:
        with self._pending_lock:
            self._pending.append((time.monotonic() + RETRY_PENDING_FOR, entry_id, values))
            if self._retrier is None or not self._retrier.is_alive():
                self._retrier = threading.Thread(target=self._retry_pending, daemon=True)
                self._retrier.start()

    def _retry_pending(self, pause: float = 2.0) -> None:
        while not self._closed.wait(pause):
            with self._pending_lock:
                pending = list(self._pending)
            for item in pending:
                deadline, entry_id, values = item
                try:
                    self._complete(entry_id, values)
                    log.warning("audit row %s completed after a retry", entry_id)
                except (SQLAlchemyError, OSError):
                    if time.monotonic() < deadline:
                        continue
                    log.error(
                        "audit row %s given up: it stays 'unknown'; the row: %s", entry_id, values
                    )
                with self._pending_lock:
                    self._pending.remove(item)
            with self._pending_lock:
                if not self._pending:
                    self._retrier = None
                    return

    def pending(self) -> int:
        """Completions still waiting for the database (tests, diagnostics)."""
        with self._pending_lock:
            return len(self._pending)

    def close(self) -> None:
        """Stop retrying and close the database connections."""
        self._closed.set()
        retrier = self._retrier
        if retrier is not None:
            retrier.join(timeout=10)
        self.engine.dispose()

    def saves_since(self, agent: str, since: float) -> tuple[int, float | None]:
        """How many attempts the agent started since `since`, and when the oldest started."""
        with self.engine.connect() as conn:
            count, oldest = conn.execute(_SAVES_SINCE, {"agent": agent, "since": since}).one()
        return int(count), oldest

    def last_unknown(self, ucid: str, agent: str, before: int) -> str | None:
        """The disposition of this agent's latest earlier finished attempt on the call, if
        that attempt's result is unknown (its answer was lost). A later attempt that CloudAgent
        answered, whatever it said, means the unknown one is no longer the latest word."""
        params = {"ucid": ucid, "agent": agent, "before": before}
        try:
            with self.engine.connect() as conn:
                row = conn.execute(_LAST_UNKNOWN, params).first()
                return row.disposition if row is not None and row.outcome == UNKNOWN else None
        except SQLAlchemyError as error:
            # CloudAgent has answered: report its answer as is rather than fail.
            log.error("audit log unreachable (%s): earlier attempts not consulted", _short(error))
            return None

    def rows(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        agent: str | None = None,
        ucid: str | None = None,
        limit: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Attempts, oldest first, filtered by start time, agent and ucid."""
        query = select(saves).order_by(saves.c.started_at, saves.c.id)
        if since is not None:
            query = query.where(saves.c.started_at >= since)
        if until is not None:
            query = query.where(saves.c.started_at < until)
        if agent:
            query = query.where(saves.c.agent == agent)
        if ucid:
            query = query.where(saves.c.ucid == ucid)
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                yield dict(row._mapping)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets every worker write while others read; NORMAL sync survives a process crash.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    enable_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _short(error: Exception) -> str:
    """The first line of a database error: the driver's text, without the SQL statement."""
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0][:300]


def _migration_engine(url: str) -> Engine:
    """An engine for the start-up transaction. SQLite: real transactions (DDL included) that
    start with BEGIN IMMEDIATE, so processes starting together take turns."""
    engine = create_engine(url, poolclass=NullPool)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # let SQLAlchemy's BEGIN below count
            _sqlite_pragmas(dbapi_connection, _record)

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def prepare_schema(url: str, wait: float = 10.0) -> int:
    """Create the tables, or migrate them to SCHEMA_VERSION; return the version found.

    A database that does not answer is waited for up to `wait` seconds (instances and the
    database often start together), then start-up stops with SchemaError."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return _prepare_schema(url)
        except OperationalError as error:
            if time.monotonic() >= deadline:
                where = create_engine(url).url.render_as_string(hide_password=True)
                raise SchemaError(
                    f"the audit database {where} cannot be used: {_short(error)}"
                ) from error
            log.warning("audit database not ready (%s), waiting", _short(error))
            time.sleep(1.0)


def _prepare_schema(url: str) -> int:
    engine = _migration_engine(url)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_ID})
            had_saves = inspect(conn).has_table("saves")
            schema_version.create(conn, checkfirst=True)
            found = conn.execute(
                select(schema_version.c.version).where(schema_version.c.name == "audit")
            ).scalar()
            if found is None:
                # No version row: a database from before versioning (1), or a new one.
                found = 1 if had_saves else SCHEMA_VERSION
                conn.execute(insert(schema_version).values(name="audit", version=found))
            if found > SCHEMA_VERSION:
                raise SchemaError(
                    f"the audit database is at schema version {found}, newer than this "
                    f"release knows ({SCHEMA_VERSION}): upgrade the service"
                )
            if not had_saves:
                saves.create(conn)  # at the current version: nothing to migrate
            else:
                for version in range(found + 1, SCHEMA_VERSION + 1):
                    MIGRATIONS[version](conn)
                    log.warning("audit log schema migrated to version %d", version)
            conn.execute(
                update(schema_version)
                .where(schema_version.c.name == "audit")
                .values(version=SCHEMA_VERSION)
            )
        return found
    finally:
        engine.dispose()
