"""Audit retention: `flask audit prune` removes what is older than WIDGET_AUDIT_RETENTION_DAYS,
in small transactions taken like any other audit write (SQLite: under the host's write lock,
one batch at a time), so saves wait at most for one batch."""

import time
from contextlib import contextmanager

import pytest
from sqlalchemy import event, insert

from tests.helpers import DID, LIVE
from webapp.audit.schema import saves
from webapp.config import ConfigError, load_settings

DAY = 86400


def add_rows(audit, *, days_ago: float, count: int) -> None:
    started = time.time() - days_ago * DAY
    row = dict(started_at=started, agent="agent1", ucid="u", did=DID, disposition="Interested",
               pause=False, outcome="saved")  # fmt: skip
    with audit.engine.begin() as conn:
        conn.execute(insert(saves), [row] * count)


def prune(app, *args):
    result = app.test_cli_runner().invoke(args=["audit", "prune", *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def trail(app):
    """The app's audit log with 2,500 attempts of 500 days ago, 5 of 300 and 3 of today."""
    audit = app.extensions["audit"]
    add_rows(audit, days_ago=500, count=2500)
    add_rows(audit, days_ago=300, count=5)
    add_rows(audit, days_ago=0, count=3)
    return audit


def test_prune_removes_what_is_older_than_the_retention_in_batches_under_the_write_lock(app, trail):
    held = []  # the host's write lock, while held
    taken = []  # each time it was taken
    host_lock = trail._group._lock

    @contextmanager
    def watched_lock():
        with host_lock():
            held.append(True)
            taken.append(True)
            yield
            held.pop()

    trail._group._lock = watched_lock
    deletes = []  # (rows removed, whether the lock was held)
    commits = []

    def after(_conn, cursor, statement, *_args):
        if statement.lstrip().upper().startswith("DELETE"):
            deletes.append((cursor.rowcount, bool(held)))

    event.listen(trail.engine, "after_cursor_execute", after)
    event.listen(trail.engine, "commit", lambda _conn: commits.append(True))

    assert "would remove 2500 attempt(s)" in prune(app, "--dry-run")
    assert len(list(trail.rows())) == 2508 and deletes == []

    assert "removed 2500 attempt(s)" in prune(app)  # the default: 400 days
    assert deletes == [(1000, True), (1000, True), (500, True)]
    assert len(taken) == len(commits) == 3  # a transaction per batch, the lock between them free
    assert len(list(trail.rows())) == 8

    assert "removed 5 attempt(s)" in prune(app, "--days", "200")
    assert len(list(trail.rows())) == 3
    assert "removed 0 attempt(s)" in prune(app)


def test_the_retention_comes_from_the_configuration(make_app):
    app = make_app(WIDGET_AUDIT_RETENTION_DAYS="30")
    audit = app.extensions["audit"]
    add_rows(audit, days_ago=31, count=2)
    add_rows(audit, days_ago=29, count=1)
    assert "removed 2 attempt(s)" in prune(app) and "older than 30 days" in prune(app)
    assert len(list(audit.rows())) == 1


def test_saves_go_on_after_a_prune(app, trail, panels, simulator):
    prune(app)
    panel = panels.on(app.test_client()).open(simulator.start_call("agent1", DID).ucid)
    assert panel.save().status_code == 200
    assert len(list(trail.rows())) == 9


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "a year", "99999999999"])
def test_the_retention_must_be_a_whole_number_of_days(value):
    with pytest.raises(ConfigError, match="^WIDGET_AUDIT_RETENTION_DAYS: "):
        load_settings(LIVE | {"WIDGET_AUDIT_RETENTION_DAYS": value})
    assert load_settings(LIVE).audit_retention_days == 400
    assert load_settings(LIVE | {"WIDGET_AUDIT_RETENTION_DAYS": "1"}).audit_retention_days == 1


def test_prune_refuses_a_days_override_below_one(app):
    result = app.test_cli_runner().invoke(args=["audit", "prune", "--days", "0"])
    assert result.exit_code != 0
