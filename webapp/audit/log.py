"""The audit trail: every save attempt, written before CloudAgent is called, completed after.

A row starts with the outcome `unknown`, so a process killed mid-call leaves a row that says
so. Credentials never enter it: only what the agent chose and what CloudAgent answered.
SQLAlchemy Core keeps the schema (webapp.audit.schema) engine-neutral: SQLite under
WIDGET_DATA_DIR by default, PostgreSQL (psycopg) when WIDGET_DATABASE_URL names one, shared by
every instance. SQLite takes one writer at a time across the host (webapp.audit.writelock);
a process's concurrent writes are committed together (webapp.audit.groupcommit).

Failures: begin() raises AuditUnavailable, so no save reaches CloudAgent unrecorded; finish()
never raises (the agent's answer matters more): it logs the row loudly and writes the
completion to the local journal (webapp.audit.journal) before the agent is answered; any
process of the instance replays it once the database answers (maintain()).

A worker that starts while the database is away (strict=False: gunicorn's master checked it
at the instance's first start) serves anyway, refusing saves as when the database goes away
later, and prepares the schema as soon as the database answers. maintain() also closes rows a
lost worker left open and settles `unknown` rows (webapp.audit.settle).
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from . import settle
from .groupcommit import GroupCommit
from .journal import Journal
from .schema import (
    TEXT_LIMIT,
    DatabaseUnreachable,
    SchemaError,
    prepare_schema,
    saves,
    short_error,
)
from .sqlite import private_database, sqlite_pragmas
from .writelock import WriteLock

log = logging.getLogger("webapp.audit")

UNKNOWN = "unknown"

# The hot path's statements, built once: building them per save (`.values(**row)`, fresh
# bind parameters) cost SQLAlchemy more CPU than SQLite spent running them.
_BEGIN = insert(saves)
# What begin() writes, in the table's order.
_BEGIN_COLUMNS = (
    "started_at",
    "request_id",
    "agent",
    "ucid",
    "did",
    "disposition",
    "pause",
    "pause_reason",
    "outcome",
    "instance",
    "callback_time",
)
_COMPLETE = update(saves).where(saves.c.id == bindparam("entry_id"))
# A journalled completion, applied only to a row still open, or closed by the sweep for want
# of news: applying one twice (a crash between applying and deleting it) changes nothing.
_COMPLETE_OPEN = update(saves).where(
    saves.c.id == bindparam("entry_id"),
    or_(
        saves.c.finished_at.is_(None),
        and_(saves.c.outcome == UNKNOWN, saves.c.reason == settle.WORKER_LOST),
    ),
)
# What finish() writes, and so all a journal entry may set.
_COMPLETION_KEYS = frozenset(
    ("finished_at", "outcome", "reason", "upstream_status", "upstream_text", "latency_ms")
)
_UCID_OF = select(saves.c.ucid, saves.c.agent).where(saves.c.id == bindparam("entry_id"))
_SAVES_SINCE = select(func.count(), func.min(saves.c.started_at)).where(
    saves.c.agent == bindparam("agent"), saves.c.started_at > bindparam("since")
)
# A save within its limit: the count and the row in one statement, the row only if the agent
# started fewer than `most` attempts since `since` (one statement fewer a save than counting
# first). PostgreSQL returns the id; SQLite's is the cursor's lastrowid (RETURNING needs
# SQLite 3.35).
_BEGIN_WITHIN_LIMIT = insert(saves).from_select(
    list(_BEGIN_COLUMNS),
    select(*(bindparam(name, type_=saves.c[name].type) for name in _BEGIN_COLUMNS)).where(
        select(func.count())
        .where(saves.c.agent == bindparam("agent"), saves.c.started_at > bindparam("since"))
        .scalar_subquery()
        < bindparam("most")
    ),
)
_BEGIN_WITHIN_LIMIT_RETURNING = _BEGIN_WITHIN_LIMIT.returning(saves.c.id)
_EARLIER = (
    select(
        saves.c.disposition,
        saves.c.outcome,
        saves.c.pause,
        saves.c.pause_reason,
        saves.c.callback_time,
    )
    .where(
        saves.c.ucid == bindparam("ucid"),
        saves.c.agent == bindparam("agent"),
        saves.c.id < bindparam("before"),
        saves.c.finished_at.is_not(None),
        # Attempts that may have changed what CloudAgent holds: refusals changed nothing.
        saves.c.outcome.in_(("queued", "saved", UNKNOWN)),
    )
    .order_by(saves.c.id.desc())
    .limit(1)
)
# The agent's latest successful saves on a DID, newest first (index ix_saves_agent_did_started):
# a bounded read, deduplicated in Python.
RECENT_SCAN = 100
_RECENT = (
    select(saves.c.disposition)
    .where(
        saves.c.agent == bindparam("agent"),
        saves.c.did == bindparam("did"),
        saves.c.outcome.in_(("queued", "saved")),
    )
    .order_by(saves.c.started_at.desc(), saves.c.id.desc())
    .limit(RECENT_SCAN)
)

# The readiness probe: the newest row's id, through the primary key.
_PROBE = select(saves.c.id).order_by(saves.c.id.desc()).limit(1)

# Retention: the oldest rows, a bounded batch at a time, through ix_saves_started.
PRUNE_BATCH = 1000
_OLDEST_BEFORE = (
    select(saves.c.id)
    .where(saves.c.started_at < bindparam("cutoff"))
    .order_by(saves.c.started_at)
    .limit(bindparam("batch"))
)
_PRUNE = delete(saves).where(saves.c.id.in_(_OLDEST_BEFORE.scalar_subquery()))
_COUNT_BEFORE = select(func.count()).where(saves.c.started_at < bindparam("cutoff"))

# PostgreSQL: a save limit's count and row under one lock per agent, for the transaction.
_AGENT_LOCK = text("SELECT pg_advisory_xact_lock(:key)")


def _lock_key(agent: str) -> int:
    return int.from_bytes(
        hashlib.sha256(b"widget-rate:" + agent.encode()).digest()[:8], "big", signed=True
    )


RETRY_PENDING_FOR = 600.0  # seconds a completion the journal refused is retried in memory
READY_RETRY = 1.0  # seconds between attempts to prepare the schema of an absent database
# A save takes at most a few CloudAgent calls and database waits: a row open longer than this
# belonged to a worker that died (create_app passes one from the configured timeouts).
LONGEST_SAVE = 180.0
MAINTAIN_EVERY = 30.0  # seconds between maintenance rounds; 2 while completions wait
SETTLE_WITHIN = 2 * 86400.0  # unknown rows younger than this are looked at each round


class RateLimited(Exception):  # noqa: N818 (a refusal, not a fault)
    """The agent has saved as often as the limit allows: `wait` seconds until the next."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"save limit reached, {wait:.1f} s to wait")
        self.wait = wait


class AuditUnavailable(Exception):
    """The audit log cannot be written: the save must not go ahead."""


@dataclass(frozen=True)
class Attempt:
    agent: str
    ucid: str
    did: str
    disposition: str
    pause: bool
    pause_reason: str
    request_id: str | None = None
    callback_time: str = ""  # as sent to CloudAgent, YYYY-MM-DD HH:MM


@dataclass(frozen=True)
class Earlier:
    """An earlier attempt on a call, as the audit trail keeps it."""

    disposition: str
    outcome: str
    pause: bool
    pause_reason: str
    callback_time: str

    def same_as(self, attempt: Attempt) -> bool:
        """Whether it sent what `attempt` sends (comments aside: the trail does not keep them)."""
        return (self.disposition, self.pause, self.pause_reason, self.callback_time) == (
            attempt.disposition,
            attempt.pause,
            attempt.pause_reason or "",
            attempt.callback_time or "",
        )


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'audit.sqlite3'}"


def prepare_database(url: str, wait: float = 10.0) -> int:
    """What an instance's first start checks (gunicorn's master, before any worker): the
    database answers within `wait` seconds and its schema is this release's (created or
    migrated); SchemaError otherwise. A new SQLite file is made private first."""
    engine = create_engine(url)
    try:
        if engine.dialect.name == "sqlite":
            private_database(Path(engine.url.database or "."))
    finally:
        engine.dispose()
    return prepare_schema(url, wait=wait)


def _clip(text: str | None, limit: int = TEXT_LIMIT) -> str | None:
    return None if text is None else text[:limit]


class AuditLog:
    def __init__(
        self,
        url: str,
        *,
        instance: str | None = None,
        journal: Path | None = None,
        strict: bool = True,
        longest_save: float = LONGEST_SAVE,
    ) -> None:
        """`journal`: the file completions wait in while the database is away (without one,
        only this process's memory). `strict`: an unreachable database stops start-up
        (SchemaError) after a 10 s wait; otherwise the log starts without it, and prepares the
        schema once it answers."""
        self.url = url
        self.instance = instance
        self.longest_save = longest_save
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
        self._postgres = self.engine.dialect.name == "postgresql"
        # PostgreSQL queues concurrent writers well by itself; SQLite takes one at a time.
        self._group: GroupCommit | None = None
        if self.engine.dialect.name == "sqlite":
            database = Path(self.engine.url.database or ".")
            private_database(database)
            event.listen(self.engine, "connect", sqlite_pragmas)
            lock = WriteLock(database.with_name(database.name + ".lock"))
            self._group = GroupCommit(self.engine, lock.held)
        self._pending: list[tuple[float, int, dict[str, Any]]] = []
        self._pending_lock = threading.Lock()
        self._retrier: threading.Thread | None = None
        self._closed = threading.Event()
        self._maintainer: threading.Thread | None = None
        self.journal = Journal(journal, self.where) if journal is not None else None
        self._ready = False
        self._ready_lock = threading.Lock()
        self._ready_tried = 0.0
        try:
            prepare_schema(url, wait=10.0 if strict else 0.0)
            self._ready = True
        except DatabaseUnreachable as error:
            if strict:
                raise
            log.error(
                "%s; serving without it: saves are refused (nothing sent) until it answers",
                error,
            )

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

    def transaction(self, write: Callable[[Connection], Any]) -> Any:
        """Run `write` in a committed transaction, as the trail's own writes are (SQLite: the
        host's write lock, the process's group commit), once the schema is ready; raises
        AuditUnavailable, or the database's error."""
        if not self._ensure_ready():
            raise AuditUnavailable("the audit database has not answered since this start")
        return self._write(write)

    @property
    def ready(self) -> bool:
        """Whether the schema has been checked (at start, or since the database came back)."""
        return self._ready

    def _ensure_ready(self) -> bool:
        """Prepare the schema of a database absent at start, at most once a second across the
        process's threads; whether it is ready."""
        if self._ready:
            return True
        if not self._ready_lock.acquire(blocking=False):
            return False  # another thread is trying right now
        try:
            if self._ready or time.monotonic() - self._ready_tried < READY_RETRY:
                return self._ready
            self._ready_tried = time.monotonic()
            try:
                prepare_schema(self.url, wait=0.0)
            except DatabaseUnreachable:
                return False
            except SchemaError as error:  # a newer schema: nothing this release may write
                log.error("audit log not usable: %s", error)
                return False
            self._ready = True
            log.warning("audit database %s answers again: schema ready, saves resume", self.where)
            return True
        finally:
            self._ready_lock.release()

    def ping(self) -> None:
        """Raise if the trail cannot be read (readiness probe). One row by primary key: the
        same cost however many rows the trail holds (a count would read them all)."""
        if not self._ensure_ready():
            raise AuditUnavailable("the audit database has not answered since this start")
        with self.engine.connect() as conn:
            conn.execute(_PROBE).first()

    def begin(self, attempt: Attempt, limit: tuple[int, float] | None = None) -> int:
        """Record an attempt before calling CloudAgent; its outcome reads `unknown` until
        finish() is called.

        With `limit` (saves, seconds), only if the agent has started fewer than that many
        attempts in the last that many seconds; else RateLimited (nothing recorded). The
        count and the row are one statement, in one write: SQLite takes one writer at a time
        on the host, and PostgreSQL locks the agent for the transaction, so the limit is exact
        however many saves arrive at once."""
        if not self._ensure_ready():
            log.error("audit log unreachable since this start: save refused before CloudAgent")
            raise AuditUnavailable("the audit database has not answered since this start")
        now = time.time()
        values = dict(
            started_at=now,
            request_id=attempt.request_id,
            agent=attempt.agent,
            ucid=attempt.ucid,
            did=attempt.did,
            disposition=attempt.disposition,
            pause=attempt.pause,
            pause_reason=attempt.pause_reason or None,
            outcome=UNKNOWN,
            instance=self.instance,
            callback_time=attempt.callback_time or None,
        )

        if limit is not None:
            most, window = limit
            values["since"] = now - window
            # The limit refuses a save only with an attempt in the window: even a limit of 0
            # lets one through.
            values["most"] = max(most, 1)

        def write(conn: Connection) -> tuple[int, float]:
            """(the row's id, 0), or (0, seconds to wait) with nothing written."""
            if limit is None:
                return int(conn.execute(_BEGIN, values).inserted_primary_key[0]), 0.0
            if self._postgres:
                conn.execute(_AGENT_LOCK, {"key": _lock_key(attempt.agent)})
                entry = conn.execute(_BEGIN_WITHIN_LIMIT_RETURNING, values).scalar()
            else:
                result = conn.execute(_BEGIN_WITHIN_LIMIT, values)
                entry = result.lastrowid if result.rowcount == 1 else None
            if entry is not None:
                return int(entry), 0.0
            # Refused: the wait, from the oldest attempt in the window (the agent still locked;
            # none only if rows vanished meanwhile: then a whole window).
            _count, oldest = conn.execute(_SAVES_SINCE, values).one()
            return 0, window if oldest is None else max(0.001, oldest + window - now)

        try:
            result = self._write(write)
        except (SQLAlchemyError, OSError) as error:  # OSError: the host's write lock
            log.error(
                "audit log unreachable (%s): save refused before CloudAgent", short_error(error)
            )
            raise AuditUnavailable(str(error)) from error
        entry, wait = result
        if wait:
            raise RateLimited(wait)
        return entry

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
        A refused write is logged with the whole row (ERROR) and kept in the journal, on disk,
        before this returns; maintain() applies it once the database answers."""
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
            self._keep(entry_id, values, short_error(error))
            return
        if reason in ("saved_earlier", "saved_earlier_other"):
            # This save learned what became of the agent's earlier one: write it down now.
            try:
                self.settle_unknown(after=entry_id)
            except (SQLAlchemyError, OSError) as error:
                log.warning("audit: earlier attempt not settled now (%s)", short_error(error))

    def _keep(self, entry_id: int, values: dict[str, Any], why: str) -> None:
        """A completion the database refused: into the journal, else this process's memory."""
        if self.journal is not None:
            try:
                self.journal.add(entry_id, values)
            except (sqlite3.Error, OSError) as error:
                log.error("audit journal %s not writable: %s", self.journal.path, error)
            else:
                log.error(
                    "audit log unreachable (%s): row %s NOT completed yet, kept in the journal "
                    "%s until the database answers; the row: %s",
                    why,
                    entry_id,
                    self.journal.path,
                    values,
                )
                self.start_maintenance()  # this process replays it too, not only at restart
                return
        log.error(
            "audit log unreachable (%s): row %s NOT completed yet, retrying from memory "
            "(lost if this process ends first); the row: %s",
            why,
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
        """Completions still waiting for the database, journalled or in memory."""
        with self._pending_lock:
            waiting = len(self._pending)
        return waiting + (self.journal.count() if self.journal is not None else 0)

    # -- maintenance: the journal, rows a lost worker left open, unknown rows ----------------

    def replay_journal(self) -> int:
        """Apply the journalled completions of this database, each to its row if still open;
        how many were applied. Stops at the first the database cannot take (still away); one
        it refuses on its merits stays in the journal, logged, and the rest go on."""
        if self.journal is None:
            return 0
        applied = 0
        after = 0
        while True:
            entries = self.journal.entries(after=after)
            for entry in entries:
                after = entry.id
                values = {k: v for k, v in entry.values.items() if k in _COMPLETION_KEYS}
                if "finished_at" not in values or "outcome" not in values:
                    log.error("audit journal entry %s unreadable, kept: %r", entry.id, entry)
                    continue
                params = {"entry_id": entry.entry_id, **values}
                try:
                    done = self._write(
                        lambda conn, p=params: conn.execute(_COMPLETE_OPEN, p).rowcount
                    )
                except (OperationalError, PoolTimeout, OSError):
                    raise  # the database is away: the next round tries again
                except SQLAlchemyError as error:
                    log.error(
                        "audit row %s: its journalled completion refused (%s), kept: %s",
                        entry.entry_id,
                        short_error(error),
                        entry.values,
                    )
                    continue
                if done:
                    applied += 1
                    log.warning("audit row %s completed from the journal", entry.entry_id)
                else:
                    log.warning(
                        "audit row %s already closed or gone: its journalled completion dropped",
                        entry.entry_id,
                    )
                self.journal.remove(entry)
            if len(entries) < 200:
                return applied

    def close_abandoned(self, older_than: float | None = None) -> int:
        """Close as `unknown` (reason worker_lost) this instance's rows open for longer than
        a save can take: their worker died mid-save. How many."""
        if self.instance is None:
            return 0
        now = time.time()
        before = now - (self.longest_save if older_than is None else older_than)
        closed = int(
            self._write(lambda conn: settle.close_abandoned(conn, self.instance, before, now))
        )
        if closed:
            log.warning(
                "audit: %d row(s) of instance %s left open by a lost worker closed as unknown "
                "(worker_lost)",
                closed,
                self.instance,
            )
        return closed

    def settle_unknown(self, *, after: int | None = None, since: float | None = None) -> int:
        """Settle `unknown` rows from the next attempt on their call (webapp.audit.settle):
        with `after`, those before that row on its call; else those started since `since`
        (default: the last two days). How many."""
        with self.engine.connect() as conn:
            if after is not None:
                call = conn.execute(_UCID_OF, {"entry_id": after}).first()
                if call is None:
                    return 0
                found = [c for c in settle.candidates(conn, ucid=call.ucid) if c[0] < after]
            else:
                since = time.time() - SETTLE_WITHIN if since is None else since
                found = settle.candidates(conn, since=since)
        settled = 0
        for entry_id, ucid, agent in found:
            step = partial(
                settle.settle_from_next_attempt,
                entry_id=entry_id,
                ucid=ucid,
                agent=agent,
                now=time.time(),
            )
            settled += bool(self._write(step))
        if settled:
            log.info("audit: %d unknown row(s) settled from later saves", settled)
        return settled

    def settle_from_summary(self, ucid: str, disposition: str) -> int:
        """CloudAgent's call summary (its Callback URL, once the service takes it) says which
        disposition the call ended with: every `unknown` row of the call is settled `applied`
        if it sent that disposition, else `not_applied` (settled_by `call_summary`, over any
        earlier settlement from a later save). How many rows were settled."""
        now = time.time()
        return int(
            self._write(lambda conn: settle.settle_from_summary(conn, ucid, disposition, now))
        )

    def maintain(self) -> None:
        """One round: apply journalled completions, close rows a lost worker left open,
        settle unknown rows. Never raises: a database still away is tried next round."""
        if not self._ensure_ready():
            return
        try:
            self.replay_journal()
            self.close_abandoned()
            self.settle_unknown()
        except (SQLAlchemyError, OSError, sqlite3.Error) as error:
            log.warning("audit maintenance postponed: %s", short_error(error))

    def start_maintenance(self, every: float = MAINTAIN_EVERY) -> None:
        """maintain() now and every `every` seconds (every 2 s while completions wait), in a
        thread of this process's own (gunicorn.conf.py starts one in each worker)."""

        def run() -> None:
            while not self._closed.is_set():
                self.maintain()
                waiting = self.journal is not None and self._journal_waits()
                if self._closed.wait(2.0 if waiting or not self._ready else every):
                    return

        with self._pending_lock:
            if self._maintainer is None and not self._closed.is_set():
                self._maintainer = threading.Thread(
                    target=run, name="audit-maintenance", daemon=True
                )
                self._maintainer.start()

    def _journal_waits(self) -> bool:
        try:
            return bool(self.journal and self.journal.count())
        except (sqlite3.Error, OSError):
            return True

    def close(self) -> None:
        """Stop retrying and maintaining, and close the database connections."""
        self._closed.set()
        for thread in (self._retrier, self._maintainer):
            if thread is not None:
                thread.join(timeout=10)
        if self.journal is not None:
            self.journal.close()
        if self._group is not None:
            self._group.close()
        self.engine.dispose()

    def prune(self, cutoff: float, *, batch: int = PRUNE_BATCH, dry_run: bool = False) -> int:
        """Remove the attempts started before `cutoff` (epoch seconds); how many (with
        `dry_run`, how many there are, removing none).

        `batch` rows per transaction, each written as any other audit write (SQLite: under
        the host's write lock, in the process's group commit), so saves wait at most one
        batch's delete, never the whole prune."""
        if dry_run:
            with self.engine.connect() as conn:
                return int(conn.execute(_COUNT_BEFORE, {"cutoff": cutoff}).scalar() or 0)
        params = {"cutoff": cutoff, "batch": batch}
        removed = 0
        while True:
            done = int(self._write(lambda conn: conn.execute(_PRUNE, params).rowcount))
            removed += done
            if done < batch:
                return removed

    def recent_dispositions(self, agent: str, did: str, limit: int = 5) -> list[str]:
        """The agent's last distinct dispositions on this DID that CloudAgent took (queued or
        saved), newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(_RECENT, {"agent": agent, "did": did}).scalars()
            return list(dict.fromkeys(rows))[:limit]

    def earlier_attempt(self, ucid: str, agent: str, before: int) -> Earlier | None:
        """This agent's latest attempt on the call before row `before` that went through or
        may have (queued, saved, or unknown): what it sent and what became of it. A later
        one that went through supersedes an earlier one whose answer was lost."""
        params = {"ucid": ucid, "agent": agent, "before": before}
        try:
            with self.engine.connect() as conn:
                row = conn.execute(_EARLIER, params).first()
            if row is None:
                return None
            return Earlier(
                disposition=row.disposition,
                outcome=row.outcome,
                pause=bool(row.pause),
                pause_reason=row.pause_reason or "",
                callback_time=row.callback_time or "",
            )
        except SQLAlchemyError as error:
            # CloudAgent has answered: report its answer as is rather than fail.
            log.error(
                "audit log unreachable (%s): earlier attempts not consulted", short_error(error)
            )
            return None

    def rows(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        agent: str | None = None,
        ucid: str | None = None,
        limit: int | None = None,
        unsettled: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Attempts, oldest first, filtered by start time, agent and ucid; with `unsettled`,
        only the rows still open or `unknown` with nothing learned since."""
        query = select(saves).order_by(saves.c.started_at, saves.c.id)
        if unsettled:
            query = query.where(settle.OPEN_OR_UNSETTLED)
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
