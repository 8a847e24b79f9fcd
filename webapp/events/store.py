"""What CloudAgent said about calls, kept in the audit database (table `call_events`).

Two kinds of row: `ended` (its Disconnect) and `confirmed` (its call summary, with the
disposition it kept). The table is the source of truth for the panel when it opens and, later,
for the push channel: a row's id only grows, so `events_since(last_id)` is a replay.

Writes go through the audit log's (webapp.audit.AuditLog.transaction: SQLite's host-wide
write lock and group commit, or PostgreSQL), so they are as safe as a save's. Every write is
idempotent: a delivery CloudAgent repeats finds its row (`dedup`) and changes nothing, and
nothing received late turns a later state back (a call stays ended; a confirmation is only
replaced by one CloudAgent made later).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from ..audit import UNKNOWN, AuditLog
from ..audit.schema import call_events, saves
from ..audit.settle import APPLIED, LIKELY_APPLIED, settle_from_summary
from .parse import CallEvent, CallSummary, is_auto

ENDED = "ended"
CONFIRMED = "confirmed"
# What a delivery did (the receivers' answer and the metric's `result`).
ACCEPTED = "accepted"
DUPLICATE = "duplicate"
STALE = "stale"
# How a confirmation compares with what the widget saved (widget_confirmations_total).
MATCH = "match"
MISMATCH = "mismatch"
NO_SAVE = "no_save"
WENT_THROUGH = ("queued", "saved")  # saves CloudAgent took

_OF_CALL = or_(
    call_events.c.ucid == bindparam("ucid"), call_events.c.monitor_ucid == bindparam("ucid")
)
_STATE = select(call_events).where(_OF_CALL).order_by(call_events.c.id)
_BY_DEDUP = select(call_events.c.id).where(call_events.c.dedup == bindparam("dedup"))
_LATEST = select(func.max(call_events.c.id))
_SINCE = (
    select(call_events)
    .where(call_events.c.id > bindparam("last_id"))
    .order_by(call_events.c.id)
    .limit(bindparam("limit"))
)


@dataclass(frozen=True)
class CallState:
    """What the service knows of a call from CloudAgent, for its panel."""

    ucid: str
    ended_at: float | None = None  # when the Disconnect was received (not CloudAgent's time)
    confirmed_disposition: str | None = None
    confirmed_at: float | None = None  # when the summary was received
    auto: bool = False  # the confirmed disposition is CloudAgent's own (wrap-up ran out)
    matches: bool | None = None  # it is the widget's latest save; None: the widget saved none
    last_id: int = 0  # the newest row it was read from

    @property
    def ended(self) -> bool:
        return self.ended_at is not None or self.confirmed_at is not None

    def wrapup_left(self, wrapup_seconds: int | None, now: float | None = None) -> int | None:
        """Seconds of wrap-up left, counted from the Disconnect's receipt (a skewed upstream
        clock never shortens it); None without a wrap-up time, a Disconnect, or once the
        summary came (the disposition is final)."""
        if wrapup_seconds is None or self.ended_at is None or self.confirmed_at is not None:
            return None
        now = time.time() if now is None else now
        return max(0, int(wrapup_seconds - max(0.0, now - self.ended_at)))


@dataclass(frozen=True)
class Recorded:
    """What a delivery did: its result, and for a confirmation how it compares."""

    result: str  # accepted, duplicate, stale
    comparison: str | None = None  # match, mismatch, no_save (a confirmation accepted)
    event_id: int | None = None


def _dedup(*parts: str | float | None) -> str:
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()


class EventStore:
    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit

    # -- writes --------------------------------------------------------------------------

    def record_ended(self, event: CallEvent, received_at: float | None = None) -> Recorded:
        """A Disconnect: the call has ended. One row per call: a second Disconnect (a
        retry, or one with another time) changes nothing, so the wrap-up clock keeps the
        first receipt."""
        now = time.time() if received_at is None else received_at
        row = dict(
            ucid=event.ucid,
            monitor_ucid=event.monitor_ucid or None,
            kind=ENDED,
            agent=event.agent or None,
            did=event.did or None,
            happened_at=event.happened_at,
            received_at=now,
            dedup=_dedup(ENDED, event.ucid),
        )

        def write(conn: Connection) -> Recorded:
            if conn.execute(_BY_DEDUP, {"dedup": row["dedup"]}).first() is not None:
                return Recorded(DUPLICATE)
            return Recorded(ACCEPTED, event_id=_insert(conn, row))

        return self._write(write)

    def record_confirmed(self, summary: CallSummary, received_at: float | None = None) -> Recorded:
        """A call summary with a disposition: CloudAgent kept it. Compared with the widget's
        latest queued or saved disposition for the call (or one still unanswered), written
        beside each of the call's audit rows (`confirmed_disposition`, `confirmed_at`), and the
        call's `unknown` rows settled from it. A summary repeated is a duplicate; one
        CloudAgent made earlier than the confirmation already kept (EndTime) is stale and
        changes nothing."""
        now = time.time() if received_at is None else received_at
        ids = [u for u in (summary.ucid, summary.monitor_ucid) if u]
        row = dict(
            ucid=summary.ucid,
            monitor_ucid=summary.monitor_ucid or None,
            kind=CONFIRMED,
            agent=summary.agent or None,
            did=summary.did or None,
            disposition=summary.disposition,
            happened_at=summary.happened_at,
            received_at=now,
            dedup=_dedup(CONFIRMED, summary.ucid, summary.disposition, summary.happened_at),
        )

        def write(conn: Connection) -> Recorded:
            if conn.execute(_BY_DEDUP, {"dedup": row["dedup"]}).first() is not None:
                return Recorded(DUPLICATE)
            kept = _latest_confirmation(conn, ids)
            if kept is not None and not _later(summary.happened_at, kept.happened_at):
                return Recorded(STALE)
            expected = _expected(conn, ids, summary.disposition)
            if expected is None:
                comparison = NO_SAVE
            else:
                comparison = MATCH if expected == summary.disposition else MISMATCH
            row.update(expected=expected, result=comparison)
            event_id = _insert(conn, row)
            conn.execute(
                update(saves)
                .where(saves.c.ucid.in_(ids))
                .values(confirmed_disposition=summary.disposition, confirmed_at=now)
            )
            for ucid in ids:
                settle_from_summary(conn, ucid, summary.disposition, now)
            return Recorded(ACCEPTED, comparison, event_id)

        return self._write(write)

    def _write(self, write: Any) -> Recorded:
        try:
            return self.audit.transaction(write)
        except IntegrityError:
            # PostgreSQL: the same delivery, committed meanwhile by another instance.
            return Recorded(DUPLICATE)

    # -- reads ---------------------------------------------------------------------------

    def call_state(self, ucid: str) -> CallState:
        """What CloudAgent said of the call (by ucid or monitor ucid); empty if nothing."""
        with self.audit.engine.connect() as conn:
            rows = conn.execute(_STATE, {"ucid": ucid}).all()
        return state_of(ucid, rows)

    def events_since(self, last_id: int, limit: int = 500) -> list[dict[str, Any]]:
        """The rows after `last_id`, oldest first: what a push channel replays."""
        with self.audit.engine.connect() as conn:
            rows = conn.execute(_SINCE, {"last_id": last_id, "limit": limit})
            return [dict(r._mapping) for r in rows]

    def latest_id(self) -> int:
        """The newest row's id (0 with none): where a push channel starts reading."""
        with self.audit.engine.connect() as conn:
            return int(conn.execute(_LATEST).scalar() or 0)

    def unconfirmed(self, before: float, limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Saves that went through (queued, saved) started before `before` that no call
        summary confirmed, oldest first."""
        query = (
            select(saves)
            .where(
                saves.c.outcome.in_(WENT_THROUGH),
                saves.c.confirmed_at.is_(None),
                saves.c.started_at < before,
            )
            .order_by(saves.c.started_at, saves.c.id)
        )
        if limit:
            query = query.limit(limit)
        with self.audit.engine.connect() as conn:
            for row in conn.execute(query):
                yield dict(row._mapping)

    def mismatches(
        self, since: float | None = None, limit: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Calls whose summary named another disposition than the widget's latest save of
        it, oldest first."""
        query = (
            select(call_events)
            .where(call_events.c.kind == CONFIRMED, call_events.c.result == MISMATCH)
            .order_by(call_events.c.id)
        )
        if since is not None:
            query = query.where(call_events.c.received_at >= since)
        if limit:
            query = query.limit(limit)
        with self.audit.engine.connect() as conn:
            for row in conn.execute(query):
                yield dict(row._mapping)


def state_of(ucid: str, rows: Any) -> CallState:
    """A call's state from its rows (oldest first): the first Disconnect, and the
    confirmation CloudAgent made last."""
    ended_at = None
    confirmed = None
    last_id = 0
    for row in rows:
        last_id = max(last_id, row.id)
        if row.kind == ENDED and ended_at is None:
            ended_at = row.received_at
        elif row.kind == CONFIRMED and (
            confirmed is None or _later(row.happened_at, confirmed.happened_at)
        ):
            confirmed = row
    if confirmed is None:
        return CallState(ucid, ended_at=ended_at, last_id=last_id)
    return CallState(
        ucid,
        ended_at=ended_at,
        confirmed_disposition=confirmed.disposition,
        confirmed_at=confirmed.received_at,
        auto=is_auto(confirmed.disposition),
        matches=None if confirmed.result == NO_SAVE else confirmed.result == MATCH,
        last_id=last_id,
    )


def _later(new: float | None, kept: float | None) -> bool:
    """Whether a summary made at `new` comes after one made at `kept`: without both times,
    the one kept stays (a repeat without a time says nothing newer)."""
    return new is not None and kept is not None and new > kept


def _insert(conn: Connection, row: dict[str, Any]) -> int:
    return int(conn.execute(insert(call_events).values(**row)).inserted_primary_key[0])


def _latest_confirmation(conn: Connection, ids: list[str]) -> Any:
    query = (
        select(call_events.c.happened_at)
        .where(
            call_events.c.kind == CONFIRMED,
            or_(call_events.c.ucid.in_(ids), call_events.c.monitor_ucid.in_(ids)),
        )
        .order_by(call_events.c.happened_at.desc().nulls_last(), call_events.c.id.desc())
        .limit(1)
    )
    return conn.execute(query).first()


def _expected(conn: Connection, ids: list[str], kept: str) -> str | None:
    """What CloudAgent's summary is compared with: the widget's latest save of the call that
    CloudAgent took (queued or saved), unless a later save whose answer is not known yet asked
    for what CloudAgent kept: a save in wrap-up is applied, answered and summarised by
    CloudAgent at once, and the summary can come before the answer. Such a save (in flight,
    or its answer lost, and not settled as not applied) never makes a mismatch by itself: only
    with no save taken does the latest of them stand for what the widget asked. None: the
    widget sent nothing for the call."""
    took = (
        select(saves.c.id, saves.c.disposition)
        .where(and_(saves.c.ucid.in_(ids), saves.c.outcome.in_(WENT_THROUGH)))
        .order_by(saves.c.id.desc())
        .limit(1)
    )
    latest = conn.execute(took).first()
    pending = (
        select(saves.c.disposition)
        .where(
            saves.c.ucid.in_(ids),
            saves.c.outcome == UNKNOWN,
            or_(saves.c.settled.is_(None), saves.c.settled.in_((APPLIED, LIKELY_APPLIED))),
            saves.c.id > (latest.id if latest is not None else 0),
        )
        .order_by(saves.c.id.desc())
    )
    asked = list(conn.execute(pending).scalars())
    if kept in asked:
        return kept
    if latest is not None:
        return latest.disposition
    return asked[0] if asked else None
