"""The per-agent save limit counted in the audit trail (AuditLog.begin with `limit`), on SQLite
and PostgreSQL: the count and the row in one statement, a refusal writing nothing and saying
how long to wait, and exact when many threads save at once."""

import threading
import time

import pytest
from sqlalchemy import event, insert

from tests.helpers import DID
from webapp.audit import Attempt, AuditLog, RateLimited, sqlite_url
from webapp.audit.schema import saves

WINDOW = 60.0


@pytest.fixture(params=["sqlite", "postgresql"])
def audit(request, tmp_path):
    if request.param == "sqlite":
        url = sqlite_url(tmp_path)
    else:
        server = request.getfixturevalue("postgres_server")
        url = server.url(server.create_database())
    log = AuditLog(url, instance="limit-test")
    yield log
    log.close()


def attempt(agent="agent1", **changes):
    values = dict(
        agent=agent, ucid="u1", did=DID, disposition="Interested", pause=False, pause_reason=""
    )
    return Attempt(**(values | changes))


def statements(audit):
    """The SQL statements sent, as they happen (a list that grows)."""
    sent = []
    event.listen(audit.engine, "before_cursor_execute", lambda *args: sent.append(args[2]))
    return sent


def test_saves_within_the_limit_are_recorded_then_refused_with_the_wait(audit):
    ids = [audit.begin(attempt(ucid=f"u{i}"), limit=(3, WINDOW)) for i in range(3)]
    oldest = min(row["started_at"] for row in audit.rows())
    audit.begin(attempt(agent="agent2"), limit=(3, WINDOW))  # each agent has a limit of its own

    with pytest.raises(RateLimited) as refused:
        audit.begin(attempt(ucid="u9"), limit=(3, WINDOW))
    waited = time.time()

    assert ids == sorted(ids) and len(set(ids)) == 3
    assert oldest + WINDOW - waited <= refused.value.wait <= WINDOW
    rows = list(audit.rows(agent="agent1"))
    assert [row["id"] for row in rows] == ids  # the refusal wrote nothing
    assert {row["ucid"] for row in rows} == {"u0", "u1", "u2"}


def test_the_row_written_within_the_limit_holds_the_attempt(audit):
    entry = audit.begin(
        attempt(pause=True, pause_reason="Lunch", request_id="r1", callback_time=""),
        limit=(3, WINDOW),
    )
    (row,) = audit.rows()
    assert row["id"] == entry
    assert {k: row[k] for k in ("agent", "ucid", "did", "disposition", "outcome")} == {
        "agent": "agent1",
        "ucid": "u1",
        "did": DID,
        "disposition": "Interested",
        "outcome": "unknown",
    }
    assert row["pause"] is True and row["pause_reason"] == "Lunch"
    assert row["request_id"] == "r1" and row["instance"] == "limit-test"
    assert row["callback_time"] is None and row["finished_at"] is None
    assert abs(row["started_at"] - time.time()) < 5


def test_only_attempts_inside_the_window_count(audit):
    with audit.engine.begin() as conn:
        for age in (WINDOW + 1, WINDOW + 30):
            conn.execute(
                insert(saves).values(
                    started_at=time.time() - age,
                    agent="agent1",
                    ucid="old",
                    did=DID,
                    disposition="Interested",
                    pause=False,
                    outcome="queued",
                )
            )
    audit.begin(attempt(), limit=(1, WINDOW))
    with pytest.raises(RateLimited):
        audit.begin(attempt(), limit=(1, WINDOW))


def test_a_limit_of_zero_still_lets_one_save_a_window_through(audit):
    audit.begin(attempt(), limit=(0, WINDOW))
    with pytest.raises(RateLimited):
        audit.begin(attempt(), limit=(0, WINDOW))


def test_a_save_within_the_limit_is_one_statement_and_a_refusal_two(audit):
    sent = statements(audit)
    audit.begin(attempt(), limit=(1, WINDOW))
    lock = 1 if audit.engine.dialect.name == "postgresql" else 0  # the agent's advisory lock
    assert len(sent) == lock + 1 and sent[-1].startswith("INSERT")
    with pytest.raises(RateLimited):
        audit.begin(attempt(), limit=(1, WINDOW))
    assert len(sent) == 2 * lock + 3 and sent[-1].startswith("SELECT")


def test_saves_at_once_from_many_threads_stop_exactly_at_the_limit(audit):
    results = []
    start = threading.Barrier(20)

    def save(i):
        start.wait()
        try:
            results.append(audit.begin(attempt(ucid=f"u{i}"), limit=(5, WINDOW)))
        except RateLimited as refused:
            results.append(refused)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sum(isinstance(r, int) for r in results) == 5
    assert sum(isinstance(r, RateLimited) for r in results) == 15
    assert len(list(audit.rows())) == 5
