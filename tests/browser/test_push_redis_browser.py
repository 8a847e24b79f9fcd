"""The panel live across two instances, in a real browser across sites: the panel is served
by instance A (gunicorn's asgi worker), CloudAgent's Disconnect and summary are posted to
instance B, and the two share one Redis (B's wake-up reaches A's workers) and one PostgreSQL
(B compares the summary with the save A recorded). The open panel starts its wrap-up clock,
shows what CloudAgent recorded and tells the host `call-ended` and `confirmed`, with no CRM
code. tests/shared/test_push_two_instances.py shows the wake-up is Redis's, not the poll's."""

import pytest
from playwright.sync_api import expect

from tests.helpers import (
    DID,
    WRAPUP_TIMER,
    call_summary_of,
    choose,
    disconnect_event,
    open_call,
    outcome,
    received,
)

pytestmark = pytest.mark.browser

WAIT = 30_000  # ms: what a busy machine may need, never what a fast one waits


def test_a_panel_on_one_instance_goes_live_on_what_the_other_instance_took(
    page, live_sites_on_redis, cloudagent_says_to_the_other_instance
):
    sites, cloudagent_says = live_sites_on_redis, cloudagent_says_to_the_other_instance
    call = sites.sim.simulator.start_call("agent1", DID)
    # The panel's stream, answered by A: A registered it before answering, so what B takes
    # from now on is news to a listening panel, not a state it reads on opening.
    with page.expect_response(lambda r: "/disposition/events" in r.url, timeout=WAIT) as stream:
        frame = open_call(page, sites, call.ucid)
    assert stream.value.status == 200
    assert stream.value.url.startswith(sites.widget)
    timer = frame.get_by_role("timer", name=WRAPUP_TIMER)
    expect(frame.locator("main[data-events]")).to_have_count(1)
    expect(timer).to_have_count(0)
    choose(frame, "Interested")
    frame.get_by_role("button", name="Save disposition").click()
    assert outcome(frame)[0] == "queued"  # saved on A: the call is live

    sites.sim.simulator.hang_up(call.ucid)
    cloudagent_says("call", disconnect_event(call.ucid))  # to B
    expect(frame.get_by_text("CloudAgent says this call has ended.")).to_be_visible(timeout=WAIT)
    expect(timer).to_be_visible(timeout=WAIT)
    (ended,) = received(page, 1, "call-ended")
    assert ended["data"] == {
        "type": "cloudagent-disposition", "version": 1, "event": "call-ended",
        "ucid": call.ucid, "source": "cloudagent",
    }  # fmt: skip

    cloudagent_says("summary", call_summary_of(call.ucid, "Interested"))  # to B
    confirmed = frame.get_by_role("status").locator("[data-confirmed]")
    expect(confirmed).to_have_attribute("data-confirmed", "Interested", timeout=WAIT)
    expect(confirmed).to_have_text("CloudAgent recorded “Interested”, as you saved it.")
    (told,) = received(page, 1, "confirmed")
    assert told["data"] | {"type": None} == {
        "type": None, "version": 1, "event": "confirmed", "ucid": call.ucid,
        "disposition": "Interested", "matches": True,
    }  # fmt: skip
    expect(timer).to_be_hidden()  # the disposition is final: the clock stops
    assert len(received(page, 1, "call-ended")) == 1  # told once
    assert not page.errors
