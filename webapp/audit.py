"""The audit trail: every save attempt, written before CloudAgent is called, completed after.

A row starts with the outcome `unknown`, so a process killed mid-call leaves a row that says
so. Credentials never enter it: only what the agent chose and what CloudAgent answered.
SQLAlchemy Core keeps the schema engine-neutral (SQLite by default).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)

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
    Index("ix_saves_ucid", "ucid"),
    Index("ix_saves_agent_started", "agent", "started_at"),
    Index("ix_saves_started", "started_at"),
)

COLUMNS = [column.name for column in saves.columns]


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


def _clip(text: str | None) -> str | None:
    return None if text is None else text[:TEXT_LIMIT]


class AuditLog:
    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            Path(self.engine.url.database or ".").parent.mkdir(parents=True, exist_ok=True)
            event.listen(self.engine, "connect", _sqlite_pragmas)
        metadata.create_all(self.engine)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(select(func.count()).select_from(saves)).scalar()

    def begin(self, attempt: Attempt) -> int:
        """Record an attempt before calling CloudAgent; its outcome reads `unknown` until
        finish() is called."""
        with self.engine.begin() as conn:
            result = conn.execute(
                insert(saves).values(
                    started_at=time.time(),
                    request_id=attempt.request_id,
                    agent=attempt.agent,
                    ucid=attempt.ucid,
                    did=attempt.did,
                    disposition=attempt.disposition,
                    pause=attempt.pause,
                    pause_reason=attempt.pause_reason or None,
                    outcome=UNKNOWN,
                )
            )
            return int(result.inserted_primary_key[0])

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
        with self.engine.begin() as conn:
            conn.execute(
                update(saves)
                .where(saves.c.id == entry_id)
                .values(
                    finished_at=time.time(),
                    outcome=outcome,
                    reason=reason,
                    upstream_status=_clip(upstream_status),
                    upstream_text=_clip(upstream_text),
                    latency_ms=round(latency_ms, 1),
                )
            )

    def last_unknown(self, ucid: str, agent: str, before: int) -> str | None:
        """The disposition of this agent's latest earlier attempt on the call whose result is
        unknown (its answer was lost), if any."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(saves.c.disposition)
                .where(
                    saves.c.ucid == ucid,
                    saves.c.agent == agent,
                    saves.c.id < before,
                    saves.c.outcome == UNKNOWN,
                )
                .order_by(saves.c.id.desc())
                .limit(1)
            ).scalar()

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
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
