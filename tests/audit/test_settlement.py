"""No completion lost, no row left open or unknown when something can say more (issue 22):
the local journal of completions the database refused, replayed once and only once; rows a
lost worker left open closed as unknown; unknown rows settled from later saves and from
CloudAgent's call summary; `audit list --unsettled`. On SQLite here; tests/shared/ repeats
what matters on PostgreSQL, through gunicorn."""

import os
import stat
import time

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import OperationalError

from tests.helpers import DID
from webapp.audit import JOURNAL_NAME, Attempt, AuditLog, sqlite_url
from webapp.audit.schema import saves

ANSWERED = dict(upstream_status="Success", upstream_text="Disposition Queued Successfully")


def attempt(ucid="u1", disposition="Interested", agent="agent1"):
    return Attempt(
        agent=agent, ucid=ucid, did=DID, disposition=disposition, pause=False, pause_reason=""
    )


@pytest.fixture
def make_log(tmp_path):
    made = []

    def make(instance="widget-a", **options):
        log = AuditLog(
            sqlite_url(tmp_path),
            instance=instance,
            journal=tmp_path / JOURNAL_NAME,
            **options,
        )
        made.append(log)
        return log

    yield make
    for log in made:
        log.close()


def away(*_args, **_kwargs):
    raise OperationalError("UPDATE saves", {}, Exception("the database is away"))


def finish(log, entry, outcome="queued", reason=None, **answer):
    log.finish(
        entry,
        outcome=outcome,
        reason=reason or outcome,
        upstream_status=answer.get("upstream_status", "Success"),
        upstream_text=answer.get("upstream_text"),
        latency_ms=12.0,
    )


def row(log, entry):
    (found,) = [r for r in log.rows() if r["id"] == entry]
    return found


# -- the journal ---------------------------------------------------------------------------------


def test_a_refused_completion_is_journalled_on_disk_and_replayed_by_another_process(
    make_log, tmp_path, monkeypatch
):
    log = make_log()
    entry = log.begin(attempt())
    monkeypatch.setattr(log, "_complete", away)
    monkeypatch.setattr(log, "start_maintenance", lambda *a, **k: None)  # no replay here
    finish(log, entry)  # never raises: the agent hears CloudAgent's answer
    assert row(log, entry)["finished_at"] is None and log.pending() == 1
    journal = tmp_path / JOURNAL_NAME
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o700
    log.close()  # the process ends (a worker replaced, a crash): nothing in its memory counts

    successor = make_log()
    assert successor.replay_journal() == 1
    done = row(successor, entry)
    assert (done["outcome"], done["reason"], done["upstream_status"]) == (
        "queued",
        "queued",
        "Success",
    )
    assert done["finished_at"] is not None and successor.pending() == 0
    assert successor.replay_journal() == 0


def test_replaying_an_entry_twice_changes_nothing(make_log, monkeypatch):
    """A crash between applying an entry and deleting it: the second replay finds the row no
    longer open and drops the entry, whatever it says."""
    log = make_log()
    first, second = log.begin(attempt()), log.begin(attempt())
    log.journal.add(first, {"finished_at": time.time(), "outcome": "queued", "reason": "queued"})
    finish(log, second, outcome="saved")  # completed the normal way meanwhile
    log.journal.add(second, {"finished_at": time.time(), "outcome": "rejected", "reason": "x"})
    assert log.replay_journal() == 1
    log.journal.add(first, {"finished_at": time.time(), "outcome": "rejected", "reason": "x"})
    assert log.replay_journal() == 0
    assert (row(log, first)["outcome"], row(log, second)["outcome"]) == ("queued", "saved")
    assert log.pending() == 0


def test_an_unreadable_entry_stays_and_blocks_no_other(make_log):
    log = make_log()
    first, second = log.begin(attempt()), log.begin(attempt())
    log.journal.add(first, {"no_such_column": 1, "outcome": "saved"})
    log.journal.add(second, {"finished_at": time.time(), "outcome": "queued", "reason": "queued"})
    assert log.replay_journal() == 1
    assert row(log, second)["outcome"] == "queued" and row(log, first)["finished_at"] is None
    assert log.pending() == 1  # kept, logged, for an operator to look at


def test_a_journal_entry_of_another_database_is_left_alone(make_log, tmp_path):
    log = make_log()
    entry = log.begin(attempt())
    other = AuditLog(sqlite_url(tmp_path / "elsewhere"), journal=tmp_path / JOURNAL_NAME)
    other.journal.add(entry, {"finished_at": time.time(), "outcome": "saved", "reason": "saved"})
    other.close()
    assert log.replay_journal() == 0 and row(log, entry)["finished_at"] is None


def test_without_a_writable_journal_the_completion_is_retried_from_memory(
    make_log, monkeypatch, caplog
):
    log = make_log()
    entry = log.begin(attempt())
    monkeypatch.setattr(log.journal, "add", lambda *a: (_ for _ in ()).throw(OSError("full")))
    real = log._complete
    monkeypatch.setattr(log, "_complete", away)
    finish(log, entry)
    assert "retrying from memory" in caplog.text and log.pending() == 1
    monkeypatch.setattr(log, "_complete", real)
    deadline = time.monotonic() + 120
    while log.pending() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert row(log, entry)["outcome"] == "queued"


# -- rows a lost worker left open ---------------------------------------------------------------


def test_rows_left_open_by_a_lost_worker_are_closed_as_unknown_only_if_old_and_ours(make_log):
    log = make_log(longest_save=100.0)
    now = time.time()
    old = dict(agent="agent1", ucid="u", did=DID, disposition="Interested", pause=False,
               outcome="unknown")  # fmt: skip
    with log.engine.begin() as conn:
        ours_old = conn.execute(
            insert(saves).values(old | {"started_at": now - 200, "instance": "widget-a"})
        ).inserted_primary_key[0]
        ours_young = conn.execute(
            insert(saves).values(old | {"started_at": now - 10, "instance": "widget-a"})
        ).inserted_primary_key[0]
        theirs = conn.execute(
            insert(saves).values(old | {"started_at": now - 200, "instance": "widget-b"})
        ).inserted_primary_key[0]
    assert log.close_abandoned() == 1
    closed = row(log, ours_old)
    assert (closed["outcome"], closed["reason"]) == ("unknown", "worker_lost")
    assert closed["finished_at"] is not None
    assert row(log, ours_young)["finished_at"] is None and row(log, theirs)["finished_at"] is None
    assert log.close_abandoned() == 0
    # A save that was only slow, not lost, still writes what CloudAgent said.
    finish(log, ours_old, outcome="queued")
    assert row(log, ours_old)["outcome"] == "queued"
    # ...and so does its journalled completion.
    log.journal.add(ours_young, {"finished_at": now, "outcome": "saved", "reason": "saved"})
    assert log.close_abandoned(older_than=0) == 1  # ours_young; never another instance's
    assert row(log, theirs)["finished_at"] is None
    assert log.replay_journal() == 1 and row(log, ours_young)["outcome"] == "saved"


# -- unknown rows settled -----------------------------------------------------------------------


def _attempts(log, *outcomes, ucid="u1"):
    """Rows on one call, finished with these (outcome, reason) pairs in turn: their ids."""
    ids = []
    for outcome, reason in outcomes:
        entry = log.begin(attempt(ucid=ucid))
        finish(log, entry, outcome=outcome, reason=reason)
        ids.append(entry)
    return ids


@pytest.mark.parametrize(
    "later, settled",
    [
        (("saved", "saved_earlier"), "applied"),
        (("already_disposed", "saved_earlier_other"), "likely_applied"),
        (("saved", "saved"), "not_applied"),
        (("queued", "queued"), "superseded"),
    ],
)
def test_an_unknown_row_is_settled_by_the_next_save_of_the_call(make_log, later, settled):
    log = make_log()
    unknown, refused, _ = _attempts(
        log, ("unknown", "lost_answer"), ("unavailable", "mint_failed"), later
    )
    if later[1] not in ("saved_earlier", "saved_earlier_other"):
        assert row(log, unknown)["settled"] is None  # the next maintenance round does it
        assert log.settle_unknown() == 1
    found = row(log, unknown)
    assert (found["outcome"], found["settled"], found["settled_by"]) == (
        "unknown",
        settled,
        "later_save",
    )
    assert found["settled_at"] is not None and row(log, refused)["settled"] is None
    assert log.settle_unknown() == 0


def test_an_unknown_row_with_nothing_after_it_stays_unknown(make_log):
    log = make_log()
    first, second = _attempts(log, ("unknown", "lost_answer"), ("unknown", "bad_response"))
    assert log.settle_unknown() == 0
    assert [row(log, e)["settled"] for e in (first, second)] == [None, None]


def test_the_call_summary_settles_every_unknown_row_of_the_call(make_log):
    log = make_log()
    sent_it = log.begin(attempt(ucid="u9", disposition="Interested"))
    finish(log, sent_it, outcome="unknown", reason="lost_answer")
    other = log.begin(attempt(ucid="u9", disposition="Wrong number", agent="agent2"))
    finish(log, other, outcome="unknown", reason="bad_response")
    later = log.begin(attempt(ucid="u9", disposition="Wrong number", agent="agent2"))
    finish(log, later, outcome="queued")
    assert log.settle_unknown() == 1  # `other`: superseded, for now
    untouched = log.begin(attempt(ucid="u10"))
    finish(log, untouched, outcome="unknown", reason="lost_answer")

    assert log.settle_from_summary("u9", "Interested") == 2
    assert (row(log, sent_it)["settled"], row(log, sent_it)["settled_by"]) == (
        "applied",
        "call_summary",
    )
    assert (row(log, other)["settled"], row(log, other)["settled_by"]) == (
        "not_applied",
        "call_summary",
    )
    assert row(log, later)["settled"] is None and row(log, untouched)["settled"] is None
    assert log.settle_from_summary("u9", "Interested") == 0  # told once is enough


def test_audit_list_unsettled_shows_what_remains(app):
    log = app.extensions["audit"]
    log.instance = "widget-a"
    _attempts(log, ("unknown", "lost_answer"), ("saved", "saved_earlier"))
    _attempts(log, ("unknown", "bad_response"), ucid="u2")
    _attempts(log, ("queued", "queued"), ucid="u3")
    log.begin(attempt(ucid="u4"))
    runner = app.test_cli_runner()
    shown = runner.invoke(args=["audit", "list", "--unsettled"])
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert len(lines) == 2 and " u2 " in lines[0] and " u4 " in lines[1]
    assert "2 attempt(s)" in shown.stderr
    every = runner.invoke(args=["audit", "list"]).stdout
    assert "unknown/applied" in every  # what became of it, beside what the agent was told


# -- a database away at start ---------------------------------------------------------------------


def test_a_lenient_log_starts_without_its_database_and_recovers_by_itself(tmp_path, monkeypatch):
    from webapp.audit import AuditUnavailable
    from webapp.audit import log as audit_log

    down = {"yes": True}
    real = audit_log.prepare_schema

    def prepare(url, wait=10.0):
        if down["yes"]:
            raise audit_log.DatabaseUnreachable("the audit database x cannot be used: refused")
        return real(url, wait)

    monkeypatch.setattr(audit_log, "prepare_schema", prepare)
    monkeypatch.setattr(audit_log, "READY_RETRY", 0.0)
    with pytest.raises(audit_log.SchemaError):
        AuditLog(sqlite_url(tmp_path))  # strict: a first start stops
    log = AuditLog(sqlite_url(tmp_path), strict=False)
    assert not log.ready
    with pytest.raises(AuditUnavailable):
        log.begin(attempt())
    with pytest.raises(AuditUnavailable):
        log.ping()
    log.maintain()  # never raises
    down["yes"] = False
    log.ping()
    assert log.ready and log.begin(attempt()) > 0
    log.close()
    assert os.path.exists(tmp_path / "audit.sqlite3")
