"""What CloudAgent said, in a real browser, across sites: a panel opened after its Disconnect
says the call ended, runs the wrap-up clock and tells the host `call-ended` (source
cloudagent) once, and a `call-ended` from the host then keeps one clock; a panel opened after
its call summary shows what CloudAgent recorded and tells the host `confirmed`.

The events are posted to the widget's receivers as CloudAgent would (tests/events has the
simulator delivering them); each test has calls of its own."""

import pytest
from playwright.sync_api import expect

from tests.helpers import (
    DID,
    WRAPUP_TIMER,
    assert_accessible_and_narrow,
    call_summary_of,
    choose,
    disconnect_event,
    host_says,
    open_call,
    outcome,
    received,
)

pytestmark = pytest.mark.browser

WAIT = 30_000  # ms: what a busy machine may need, never what a fast one waits


def seconds_left(timer):
    minutes, seconds = timer.inner_text().rsplit(" ", 1)[-1].split(":")
    return int(minutes) * 60 + int(seconds)


def test_a_panel_opened_after_the_disconnect_runs_the_clock_and_tells_the_host(
    page, sites, simulator, cloudagent_says, shoot
):
    call = simulator.start_call("agent1", DID)
    simulator.hang_up(call.ucid)
    cloudagent_says("call", disconnect_event(call.ucid))
    frame = open_call(page, sites, call.ucid)
    expect(frame.get_by_text("CloudAgent says this call has ended.")).to_be_visible(timeout=WAIT)
    timer = frame.get_by_role("timer", name=WRAPUP_TIMER)
    expect(timer).to_be_visible(timeout=WAIT)
    assert 0 < seconds_left(frame.locator("#wrapup-time")) <= 120
    assert_accessible_and_narrow(page.locator("#widget"), 360, shoot, "panel-360-cloudagent-ended")
    (ended,) = received(page, 1, "call-ended")
    assert ended["data"] == {
        "type": "cloudagent-disposition", "version": 1, "event": "call-ended",
        "ucid": call.ucid, "source": "cloudagent",
    }  # fmt: skip
    host_says(page, "call-ended", wrapupSeconds=3600)  # later than CloudAgent's: one clock
    page.wait_for_timeout(300)
    assert seconds_left(frame.locator("#wrapup-time")) <= 120
    assert frame.get_by_role("timer").count() == 1
    choose(frame, "Sale closed")
    frame.get_by_role("button", name="Save disposition").click()
    assert outcome(frame)[0] == "saved"
    expect(timer).to_be_hidden()
    assert len(received(page, 1, "call-ended")) == 1  # told once
    assert not page.errors


@pytest.mark.parametrize(
    "saved, kept, words, matches",
    [
        ("Interested", "Interested", "CloudAgent recorded “Interested”, as you saved it.", True),
        ("Interested", "Not interested", "not what you saved", False),
        (None, "Wrap up time exceeded :120", "its automatic disposition", False),
    ],
)
def test_a_panel_opened_after_the_summary_shows_what_cloudagent_recorded(
    page, sites, simulator, cloudagent_says, shoot, saved, kept, words, matches
):
    call = simulator.start_call("agent1", DID)
    if saved:
        frame = open_call(page, sites, call.ucid)
        choose(frame, saved)
        frame.get_by_role("button", name="Save disposition").click()
        assert outcome(frame)[0] == "queued"
    cloudagent_says("call", disconnect_event(call.ucid))
    cloudagent_says("summary", call_summary_of(call.ucid, kept))
    frame = open_call(page, sites, call.ucid)
    shown = frame.get_by_role("status").locator(f'[data-confirmed="{kept}"]')
    expect(shown).to_contain_text(words, timeout=WAIT)
    name = f"panel-360-cloudagent-confirmed-{'match' if matches else 'other'}-{bool(saved)}"
    assert_accessible_and_narrow(page.locator("#widget"), 360, shoot, name)
    expect(frame.get_by_role("timer", name=WRAPUP_TIMER)).to_be_hidden()  # final: no clock
    # CloudAgent has closed the call: the panel looks finished, as after "saved".
    expect(frame.get_by_role("button", name="Save disposition")).to_be_disabled()
    expect(frame.get_by_label("Disposition", exact=True)).to_be_hidden()
    (confirmed,) = received(page, 1, "confirmed")
    assert confirmed["data"] == {
        "type": "cloudagent-disposition", "version": 1, "event": "confirmed",
        "ucid": call.ucid, "disposition": kept, "matches": matches,
    }  # fmt: skip
    assert not page.errors
