"""The audit trail: written before CloudAgent is called, completed after, readable and
exportable by operators, and free of credentials."""

import csv
import io
import json
import multiprocessing
import os
import signal
from pathlib import Path

from tests.helpers import DID, LAUNCH_SECRET, outcome_of, wait_for, widget_env
from webapp import create_app
from webapp.audit import AuditLog, sqlite_url


def rows(app, **filters):
    return list(app.extensions["audit"].rows(**filters))


def test_each_attempt_is_recorded_before_the_call_and_completed_after(
    app, web, simulator, monkeypatch, panels
):
    call = simulator.start_call("agent1", DID)
    panel = panels.open(call.ucid)
    client = app.extensions["cloudagent"]
    real = client.set_disposition
    seen_before = []

    def spy(**kwargs):
        seen_before.extend(rows(app))
        return real(**kwargs)

    monkeypatch.setattr(client, "set_disposition", spy)
    assert outcome_of(panel.save(pause="y", pause_reason="Lunch", comments="private")) == "queued"
    (pending,) = seen_before
    assert pending["outcome"] == "unknown" and pending["finished_at"] is None
    (row,) = rows(app)
    assert row["id"] == pending["id"]
    assert {
        k: row[k] for k in ("agent", "ucid", "did", "disposition", "pause", "pause_reason")
    } == {
        "agent": "agent1",
        "ucid": call.ucid,
        "did": DID,
        "disposition": "Interested",
        "pause": True,
        "pause_reason": "Lunch",
    }
    assert (row["outcome"], row["upstream_status"]) == ("queued", "Success")
    assert row["upstream_text"] == "Disposition Queued Successfully"
    assert row["latency_ms"] > 0 and row["finished_at"] >= row["started_at"]
    assert len(row["request_id"]) == 32
    assert "private" not in json.dumps(row)  # comments are the customer's business, not the trail's


def test_refused_and_failed_saves_are_recorded_too(app, web, simulator, panels):
    call = simulator.start_call("agent1", DID)
    panel = panels.open(call.ucid, agent="agent2")
    panel.save()
    app.extensions["cloudagent"].base_url = "http://127.0.0.1:9"
    panel.save()
    panel.save(disposition="")  # our own validation: never reached CloudAgent, not an attempt
    assert [(r["outcome"], r["reason"]) for r in rows(app)] == [
        ("rejected", "call_context"),
        ("unavailable", "unreachable"),
    ]


def _save_in_child(env, path, form):
    app = create_app(env)
    app.test_client().post(path, data=form)


def test_a_process_killed_mid_call_leaves_a_row_saying_unknown(
    upstream, simulator, tmp_path, panels
):
    # The child waits on CloudAgent far longer than any machine takes to see its row.
    env = widget_env(upstream.url, tmp_path, WIDGET_CLOUDAGENT_READ_TIMEOUT="120")
    app = create_app(env)
    call = simulator.start_call("agent1", DID)
    panel = panels.on(app.test_client()).open(call.ucid)
    form = {
        "context": panel.field("context"),
        "csrf_token": panel.field("csrf_token"),
        "disposition": "Interested",
    }
    simulator.add_fault("Set", "slow", delay=600)  # CloudAgent hangs: the child is killed
    child = multiprocessing.get_context("spawn").Process(
        target=_save_in_child, args=(env, "/disposition/save", form)
    )
    child.start()
    log = AuditLog(sqlite_url(tmp_path))
    try:
        wait_for(lambda: list(log.rows()), timeout=300, what="the child's audit row")
    finally:
        os.kill(child.pid, signal.SIGKILL)
    child.join()
    simulator.clear_faults()
    (row,) = log.rows()
    assert row["outcome"] == "unknown" and row["finished_at"] is None
    assert row["ucid"] == call.ucid


def test_the_cli_lists_and_exports_with_filters(app, web, simulator, panels):
    one = simulator.start_call("agent1", DID)
    two = simulator.start_call("agent2", DID)
    panels.open(one.ucid).save()
    panels.open(two.ucid, agent="agent2").save(disposition="Wrong number")
    runner = app.test_cli_runner()

    listed = runner.invoke(args=["audit", "list"])
    assert listed.exit_code == 0, listed.output
    assert one.ucid in listed.output and two.ucid in listed.output

    exported = runner.invoke(args=["audit", "export", "--format", "csv", "--agent", "agent2"])
    assert exported.exit_code == 0
    (row,) = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert (row["ucid"], row["disposition"], row["outcome"]) == (two.ucid, "Wrong number", "queued")

    jsonl = runner.invoke(args=["audit", "export", "--format", "jsonl", "--ucid", one.ucid])
    (line,) = jsonl.stdout.splitlines()
    assert json.loads(line)["agent"] == "agent1"
    assert json.loads(line)["started_at"].endswith("+00:00")

    future = runner.invoke(args=["audit", "export", "--format", "jsonl", "--since", "2999-01-01"])
    assert future.stdout == ""
    past = runner.invoke(args=["audit", "list", "--until", "2000-01-01"])
    assert one.ucid not in past.output
    bad = runner.invoke(args=["audit", "list", "--since", "yesterday"])
    assert bad.exit_code == 2 and "--since" in bad.output


def test_credentials_appear_in_no_page_log_or_audit_row(
    upstream, simulator, tmp_path, caplog, capfd, panels
):
    caplog.set_level("DEBUG")
    env = widget_env(upstream.url, tmp_path)
    app = create_app(env)
    web = app.test_client()
    bodies = []
    call = simulator.start_call("agent1", DID)
    panel = panels.on(web).open(call.ucid)
    bodies.append(panel.html)
    bodies.append(panel.save().get_data(as_text=True))
    simulator.expire_token("demo")  # a re-mint on the way
    bodies.append(panel.save().get_data(as_text=True))
    simulator.rotate_token("demo")
    bodies.append(panel.save(pause="y").get_data(as_text=True))
    bodies.append(web.get("/readyz").get_data(as_text=True))
    bodies.append(web.get("/disposition?ucid=1&sig=x").get_data(as_text=True))
    runner = app.test_cli_runner()
    exported = runner.invoke(args=["audit", "export", "--format", "jsonl"]).stdout

    secrets = [
        env["WIDGET_CLOUDAGENT_API_KEY"],
        env["WIDGET_SECRET_KEY"],
        LAUNCH_SECRET,
        *simulator._issued,  # every token CloudAgent handed out
    ]
    assert len(secrets) >= 5
    stored = b"".join(p.read_bytes() for p in Path(tmp_path).glob("audit.sqlite3*"))
    haystacks = {
        "pages": "\n".join(bodies),
        "caplog": caplog.text,
        "stderr": capfd.readouterr().err,
        "export": exported,
        "audit file": stored.decode("latin-1"),
    }
    for name, text in haystacks.items():
        for secret in secrets:
            assert secret not in text, f"a credential leaked into {name}"


def test_a_host_write_lock_that_cannot_be_taken_refuses_the_save_before_cloudagent(
    app, web, simulator, monkeypatch, panels
):
    """SQLite's host-wide write lock failing (a lock file that cannot be opened or locked) is
    the audit log being unavailable: nothing is sent, the agent is told so."""
    call = simulator.start_call("agent1", DID)
    panel = panels.open(call.ucid)

    def no_lock():
        raise OSError(37, "No locks available")

    monkeypatch.setattr(app.extensions["audit"]._group, "_lock", no_lock)
    response = panel.save()
    assert response.status_code == 503 and outcome_of(response) == "unavailable"
    assert "audit log is unreachable" in response.get_data(as_text=True)
    assert simulator.stats()["requests"]["Set"] == 0
    assert rows(app) == []
