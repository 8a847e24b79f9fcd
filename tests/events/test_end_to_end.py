"""The simulator subscribed to the app served on a loopback port, as CloudAgent would be: a
call hung up leaves the call ended in the app, and its summary confirms the audit rows,
counted as a match, a mismatch (another tool's disposition, CloudAgent's automatic one) or no
save; the panel opened afterwards carries the state; `audit unconfirmed` and `audit
mismatches` list what needs a look."""

import json
import re

import pytest
import requests
from werkzeug.serving import make_server

from tests.helpers import DID, wait_for
from webapp.simulator import ServerThread
from webapp.simulator.state import DispositionRequest, SetAttempt

TOKEN = "events-token-for-tests-0123456789abcdef"
METRICS = "metrics-token-for-tests-0123456789"
KEY = {"api_key": "demo-api-key", "username": "demo"}


@pytest.fixture
def app(make_app):
    return make_app(
        WIDGET_EVENTS_TOKEN=TOKEN, WIDGET_METRICS_TOKEN=METRICS, WIDGET_WRAPUP_SECONDS="120"
    )


@pytest.fixture
def served(app, upstream):
    """The app on a loopback port, subscribed to the simulator's call events and summaries."""
    running = ServerThread(make_server("127.0.0.1", 0, app, threaded=True))
    base = f"{running.url}/cloudagent/events/{TOKEN}"
    answer = requests.post(
        upstream.url + "/events/subscribe", json={"callEventsURL": base + "/call"},
        headers=KEY, timeout=60,
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    answer = requests.post(
        upstream.url + "/sim/callback-url", json={"url": base + "/summary"}, timeout=60
    )
    assert answer.status_code == 200
    yield running
    running.stop()


def delivered(upstream, count):
    def done():
        found = requests.get(upstream.url + "/sim/deliveries", timeout=60).json()
        return len([d for d in found if d["outcome"] == "delivered"]) >= count

    wait_for(done, what=f"{count} deliveries")


def call_state_of(html):
    found = re.search(r"data-call-state='([^']*)'", html)
    return json.loads(found.group(1).replace("&#34;", '"')) if found else None


def metric(web, name, **labels):
    text = web.get("/metrics", headers={"Authorization": f"Bearer {METRICS}"}).get_data(True)
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    found = re.search(rf"^{name}\{{{re.escape(wanted)}\}} ([0-9.]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_the_simulators_events_reach_the_app_and_confirm_the_trail(
    app, web, served, upstream, panels, runner_app
):
    sim = upstream.simulator
    store = app.extensions["call_events"]

    # A queued disposition applied at hang-up: ended, then confirmed as saved.
    kept = sim.start_call("agent1", DID)
    assert panels.open(kept.ucid).save(disposition="Interested").status_code == 200
    sim.hang_up(kept.ucid)
    delivered(upstream, 4)  # Calling, Answered, Disconnect, summary
    wait_for(lambda: store.call_state(kept.ucid).confirmed_disposition, what="the summary")
    state = store.call_state(kept.ucid)
    assert state.ended and state.matches is True and not state.auto
    (row,) = app.extensions["audit"].rows(ucid=kept.ucid)
    assert (row["outcome"], row["confirmed_disposition"]) == ("queued", "Interested")

    # Another tool replaced the widget's queued disposition: a mismatch.
    other = sim.start_call("agent2", DID)
    assert panels.open(other.ucid, agent="agent2").save(disposition="Interested").status_code == 200
    request = DispositionRequest("agent2", "Not interested", "", pause_after_dispose=False)
    assert sim.submit_disposition(other, SetAttempt(request, {})) == "queued"
    sim.hang_up(other.ucid)
    delivered(upstream, 8)

    # Nothing saved, wrap-up ran out: CloudAgent's own disposition, no save to compare.
    left = sim.start_call("agent3", DID)
    sim.hang_up(left.ucid)
    wait_for(lambda: store.call_state(left.ucid).ended, what="the Disconnect")
    opened = panels.open(left.ucid, agent="agent3")
    page_state = call_state_of(opened.html)
    assert page_state["ended"] and page_state["confirmed"] is None
    assert 0 < page_state["wrapupLeft"] <= 120
    sim.expire_wrapup(left.ucid)
    delivered(upstream, 12)
    wait_for(lambda: store.call_state(left.ucid).confirmed_disposition, what="the summary")
    auto = store.call_state(left.ucid)
    assert auto.auto and auto.matches is None
    page_state = call_state_of(panels.open(left.ucid, agent="agent3").html)
    assert page_state["confirmed"] == {
        "disposition": "Wrap up time exceeded :30", "matches": None, "auto": True,
    }  # fmt: skip
    assert page_state["wrapupLeft"] is None

    wait_for(lambda: store.call_state(other.ucid).confirmed_disposition, what="the summary")
    assert store.call_state(other.ucid).matches is False
    for result, count in (("match", 1), ("mismatch", 1), ("no_save", 1)):
        assert metric(web, "widget_confirmations_total", result=result) == count
    assert metric(web, "widget_cloudagent_events_total", kind="call", result="accepted") == 3
    assert metric(web, "widget_cloudagent_events_total", kind="call", result="ignored") == 6

    # The CLI: the mismatch listed; nothing left unconfirmed once the summaries came.
    listed = runner_app(["audit", "mismatches", "--jsonl"])
    (line,) = [json.loads(x) for x in listed.stdout.splitlines()]
    assert (line["ucid"], line["saved"], line["cloudagent"]) == (
        other.ucid, "Interested", "Not interested",
    )  # fmt: skip
    assert runner_app(["audit", "unconfirmed", "--older-than", "0s"]).stdout == ""


def test_audit_unconfirmed_lists_saves_no_summary_confirmed(app, panels, simulator, runner_app):
    call = simulator.start_call("agent1", DID)
    assert panels.open(call.ucid).save(disposition="Interested").status_code == 200
    fresh = runner_app(["audit", "unconfirmed", "--older-than", "10m"])
    assert fresh.stdout == "" and "0 save(s)" in fresh.stderr
    old = runner_app(["audit", "unconfirmed", "--older-than", "0s"])
    assert call.ucid in old.stdout and "queued" in old.stdout and "1 save(s)" in old.stderr
    wrong = runner_app(["audit", "unconfirmed", "--older-than", "soon"])
    assert wrong.exit_code == 2 and "is not an age" in wrong.output


@pytest.fixture
def runner_app(app):
    runner = app.test_cli_runner(mix_stderr=False) if _mixes() else app.test_cli_runner()

    def run(args):
        return runner.invoke(args=args)

    return run


def _mixes():
    import inspect

    from click.testing import CliRunner

    return "mix_stderr" in inspect.signature(CliRunner.__init__).parameters
