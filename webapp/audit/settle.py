"""Settling what the trail could not say at the time: rows a lost worker left open, and what
became of `unknown` saves.

A row's `outcome` stays what the agent was told. What is learned later goes beside it:
`settled` (what became of the save), `settled_by` (the evidence) and `settled_at`.

- A row still open after the longest a save can take belonged to a worker that died mid-save
  (killed, out of memory): it is closed as `unknown`, reason `worker_lost`. Only the rows of
  this instance: another instance's open rows may be saves still in flight there.
- An `unknown` row is settled by the agent's **next attempt on the same call** that reached
  CloudAgent (refusals, which changed nothing, are passed over):

  - `saved` with reason `saved_earlier` (already disposed, same values): `applied`;
  - `already_disposed` with reason `saved_earlier_other`: `likely_applied` (the call was
    disposed before the next save, most likely by this one);
  - `saved` with any other reason: `not_applied` (CloudAgent still took a disposition, so this
    one never landed: a queued one would have been applied at hang-up);
  - `queued`: `superseded` (the call was live: the next save replaced whatever this one did);
  - `unknown`, or no next attempt yet: it stays unsettled, with nothing to go on.

- `settle_from_summary(ucid, disposition)`: CloudAgent's own account of the call (its Callback
  URL's call summary) settles every unknown row of the call, over a later save's evidence:
  `applied` if the row sent that disposition, else `not_applied`.

A row with no evidence stays `unknown`; `flask --app wsgi audit list --unsettled` lists them.
Every statement only touches rows still unsettled (or, for a summary, not settled by one), so
any number of processes may run them at once.
"""

from __future__ import annotations

from sqlalchemy import Connection, and_, bindparam, or_, select, update

from .schema import saves

UNKNOWN = "unknown"
WORKER_LOST = "worker_lost"
APPLIED = "applied"
LIKELY_APPLIED = "likely_applied"
NOT_APPLIED = "not_applied"
SUPERSEDED = "superseded"
LATER_SAVE = "later_save"
CALL_SUMMARY = "call_summary"
# Attempts that reached CloudAgent and were answered in good order, or may have been.
_REACHED = ("queued", "saved", "already_disposed", UNKNOWN)

_CLOSE_ABANDONED = (
    update(saves)
    .where(
        saves.c.finished_at.is_(None),
        saves.c.instance == bindparam("of_instance"),
        saves.c.started_at < bindparam("before"),
    )
    .values(finished_at=bindparam("closed_at"), outcome=UNKNOWN, reason=WORKER_LOST)
)
_NEXT_ATTEMPT = (
    select(saves.c.outcome, saves.c.reason)
    .where(
        saves.c.ucid == bindparam("ucid"),
        saves.c.agent == bindparam("agent"),
        saves.c.id > bindparam("after"),
        saves.c.outcome.in_(_REACHED),
    )
    .order_by(saves.c.id)
    .limit(1)
)
_UNSETTLED = and_(saves.c.outcome == UNKNOWN, saves.c.settled.is_(None))
_SETTLE = (
    update(saves)
    .where(saves.c.id == bindparam("entry_id"), _UNSETTLED)
    .values(settled=bindparam("verdict"), settled_by=LATER_SAVE, settled_at=bindparam("now"))
)
# Open rows, and unknown ones still unsettled: what `audit list --unsettled` shows.
OPEN_OR_UNSETTLED = or_(saves.c.finished_at.is_(None), _UNSETTLED)


def close_abandoned(conn: Connection, instance: str, before: float, now: float) -> int:
    """Close this instance's rows still open that started before `before`; how many."""
    params = {"of_instance": instance, "before": before, "closed_at": now}
    return int(conn.execute(_CLOSE_ABANDONED, params).rowcount or 0)


def candidates(
    conn: Connection, *, ucid: str | None = None, since: float | None = None, limit: int = 500
) -> list[tuple[int, str, str]]:
    """(id, ucid, agent) of finished unknown rows not yet settled, newest first."""
    query = (
        select(saves.c.id, saves.c.ucid, saves.c.agent)
        .where(_UNSETTLED, saves.c.finished_at.is_not(None))
        .order_by(saves.c.started_at.desc())
        .limit(limit)
    )
    if ucid is not None:
        query = query.where(saves.c.ucid == ucid)
    if since is not None:
        query = query.where(saves.c.started_at >= since)
    return [(row.id, row.ucid, row.agent) for row in conn.execute(query)]


def verdict_of(outcome: str, reason: str | None) -> str | None:
    """What the next attempt's answer says of an unknown one before it (see the table)."""
    if reason == "saved_earlier":
        return APPLIED
    if reason == "saved_earlier_other":
        return LIKELY_APPLIED
    if outcome == "saved":
        return NOT_APPLIED
    if outcome == "queued":
        return SUPERSEDED
    return None


def settle_from_next_attempt(
    conn: Connection, entry_id: int, ucid: str, agent: str, now: float
) -> bool:
    """Settle one unknown row from the agent's next attempt on the call, if it tells."""
    following = conn.execute(_NEXT_ATTEMPT, {"ucid": ucid, "agent": agent, "after": entry_id})
    row = following.first()
    verdict = verdict_of(row.outcome, row.reason) if row is not None else None
    if verdict is None:
        return False
    done = conn.execute(_SETTLE, {"entry_id": entry_id, "verdict": verdict, "now": now})
    return bool(done.rowcount)


def settle_from_summary(conn: Connection, ucid: str, disposition: str, now: float) -> int:
    """Settle the call's unknown rows from CloudAgent's summary of it; how many."""
    summarised = and_(
        saves.c.ucid == ucid,
        saves.c.outcome == UNKNOWN,
        saves.c.finished_at.is_not(None),
        or_(saves.c.settled_by.is_(None), saves.c.settled_by != CALL_SUMMARY),
    )
    settled = 0
    for verdict, matches in (
        (APPLIED, saves.c.disposition == disposition),
        (NOT_APPLIED, saves.c.disposition != disposition),
    ):
        statement = (
            update(saves)
            .where(summarised, matches)
            .values(settled=verdict, settled_by=CALL_SUMMARY, settled_at=now)
        )
        settled += int(conn.execute(statement).rowcount or 0)
    return settled
