"""The audit log's schema: the `saves` and `call_events` tables, the schema version, and the
start-up migrations.

The schema carries a version (table `schema_version`, row `audit`). At start-up the tables
are created if missing and migrated step by step (MIGRATIONS) if older, under a lock (a
PostgreSQL advisory lock; SQLite's write lock), so instances starting together do it once.
A schema newer than this code stops start-up: an old release must not write to it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
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
    create_engine,
    event,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from ..config import ConfigError
from .sqlite import sqlite_pragmas

log = logging.getLogger("webapp.audit")

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
    Column("callback_time", String(16)),  # schema 3: callBackTime as sent, YYYY-MM-DD HH:MM
    # Schema 4: what became of an `unknown` save, learned later (webapp.audit.settle).
    Column("settled", String(32)),  # applied, likely_applied, not_applied, superseded
    Column("settled_by", String(32)),  # the evidence: later_save, call_summary
    Column("settled_at", Float),
    # Schema 5: what CloudAgent's call summary says the call ended with (webapp.events).
    Column("confirmed_disposition", String(250)),
    Column("confirmed_at", Float),
    Index("ix_saves_ucid", "ucid"),
    Index("ix_saves_agent_started", "agent", "started_at"),
    Index("ix_saves_started", "started_at"),
    Index("ix_saves_agent_did_started", "agent", "did", "started_at"),  # schema 3: Recent
    # Schema 4, partial: the few rows still open (the sweep of a killed worker's rows) and
    # the unknown ones still unsettled, found without reading the whole trail.
    Index(
        "ix_saves_open",
        "instance",
        "started_at",
        sqlite_where=text("finished_at IS NULL"),
        postgresql_where=text("finished_at IS NULL"),
    ),
    Index(
        "ix_saves_unsettled",
        "started_at",
        sqlite_where=text("outcome = 'unknown' AND settled IS NULL"),
        postgresql_where=text("outcome = 'unknown' AND settled IS NULL"),
    ),
    # Schema 5, partial: saves that went through and CloudAgent has not confirmed yet
    # (`audit unconfirmed`), found without reading the whole trail.
    Index(
        "ix_saves_unconfirmed",
        "started_at",
        sqlite_where=text("outcome IN ('queued', 'saved') AND confirmed_at IS NULL"),
        postgresql_where=text("outcome IN ('queued', 'saved') AND confirmed_at IS NULL"),
    ),
)

COLUMNS = [column.name for column in saves.columns]

# Schema 5: what CloudAgent said about calls (webapp.events): its Disconnect (`ended`) and
# its call summary (`confirmed`). The id only grows (SQLite AUTOINCREMENT never reuses one):
# it is the order in which the service learned things, and a push channel's event id.
call_events = Table(
    "call_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ucid", String(64), nullable=False),
    Column("monitor_ucid", String(64)),
    Column("kind", String(16), nullable=False),  # ended, confirmed
    Column("agent", String(64)),
    Column("did", String(64)),
    Column("disposition", String(250)),  # confirmed: what CloudAgent kept
    Column("expected", String(250)),  # confirmed: the widget's latest queued or saved one
    Column("result", String(16)),  # confirmed: match, mismatch, no_save
    Column("happened_at", Float),  # CloudAgent's own time for it (event_time, EndTime)
    Column("received_at", Float, nullable=False),
    # Idempotence: one row per (ucid, kind, what it says); a delivery repeated is not stored.
    Column("dedup", String(64), nullable=False, unique=True),
    Index("ix_call_events_ucid", "ucid"),
    Index("ix_call_events_monitor_ucid", "monitor_ucid"),
    Index("ix_call_events_kind_received", "kind", "received_at"),
    sqlite_autoincrement=True,
)

schema_version = Table(
    "schema_version",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("version", Integer, nullable=False),
)


def _to_version_3(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE saves ADD COLUMN callback_time VARCHAR(16)"))
    next(i for i in saves.indexes if i.name == "ix_saves_agent_did_started").create(conn)


def _to_version_4(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE saves ADD COLUMN settled VARCHAR(32)"))
    conn.execute(text("ALTER TABLE saves ADD COLUMN settled_by VARCHAR(32)"))
    conn.execute(text("ALTER TABLE saves ADD COLUMN settled_at FLOAT"))
    for index in saves.indexes:
        if index.name in ("ix_saves_open", "ix_saves_unsettled"):
            index.create(conn)


def _to_version_5(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE saves ADD COLUMN confirmed_disposition VARCHAR(250)"))
    conn.execute(text("ALTER TABLE saves ADD COLUMN confirmed_at FLOAT"))
    next(i for i in saves.indexes if i.name == "ix_saves_unconfirmed").create(conn)
    call_events.create(conn, checkfirst=True)


SCHEMA_VERSION = 5
# MIGRATIONS[n] brings a schema at version n - 1 to version n, inside the start-up transaction.
# A database made before versioning (a `saves` table, no version row) is version 1.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    2: lambda conn: conn.execute(text("ALTER TABLE saves ADD COLUMN instance VARCHAR(64)")),
    3: _to_version_3,
    4: _to_version_4,
    5: _to_version_5,
}
PG_LOCK_ID = 0x7769_6467_6175_6474  # pg_advisory_xact_lock key for start-up migrations


class SchemaError(ConfigError):
    """The audit database's schema is newer than this code knows, or the database cannot be
    reached at start-up: start-up stops with one line (a ConfigError, which create_app
    prefixes with the variable to look at)."""


class DatabaseUnreachable(SchemaError):
    """The audit database did not answer within the wait. Fatal at an instance's first start
    (a wrong URL); a worker restarted while the instance runs serves without it instead."""


def short_error(error: Exception) -> str:
    """The first line of a database error: the driver's text, without the SQL statement."""
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0][:300]


def _migration_engine(url: str) -> Engine:
    """An engine for the start-up transaction. SQLite: real transactions (DDL included) that
    start with BEGIN IMMEDIATE, so processes starting together take turns."""
    options: dict[str, Any] = {}
    if url.startswith("postgresql"):
        options["connect_args"] = {"connect_timeout": 3}  # a host gone silent must not hang
    engine = create_engine(url, poolclass=NullPool, **options)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # let SQLAlchemy's BEGIN below count
            sqlite_pragmas(dbapi_connection, _record)

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
                raise DatabaseUnreachable(
                    f"the audit database {where} cannot be used: {short_error(error)}"
                ) from error
            log.warning("audit database not ready (%s), waiting", short_error(error))
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
                call_events.create(conn, checkfirst=True)
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
