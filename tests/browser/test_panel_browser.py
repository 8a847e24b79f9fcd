"""The panel in a real browser, framed by a CRM page on another site, used by its accessible
names as an agent would."""

import threading
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.helpers import (
    DID,
    PANEL_STATES,
    assert_accessible_and_narrow,
    choose,
    host_says,
    open_call,
    outcome,
    panel_in_state,
    received,
)

pytestmark = pytest.mark.browser


def test_save_while_live_is_queued_and_the_host_page_is_told(page, sites, simulator):
    call = simulator.start_call("agent1", DID)
    frame = open_call(page, sites, call.ucid)
    choose(frame, comments="Wants a brochure")
    frame.get_by_role("button", name="Save disposition").click()
    kind, text = outcome(frame)
    assert kind == "queued" and "when the call ends" in text
    assert simulator.get_call(call.ucid).queued == "Interested"

    (message,) = received(page)
    assert message["origin"] == sites.widget
    assert message["data"] == {
        "type": "cloudagent-disposition",
        "version": 1,
        "event": "outcome",
        "outcome": "queued",
        "resultUnknown": False,
        "ucid": call.ucid,
        "disposition": "Interested",
        "recordedDisposition": None,  # queued: CloudAgent records it when the call ends
        "reason": None,
        "callbackTime": None,  # not a disposition with callbacks
        "message": text,
    }
    # A queued save can still be replaced: the form stays live.
    expect(frame.get_by_role("button", name="Save disposition")).to_be_enabled()
    expect(frame.get_by_label("Disposition", exact=True)).to_be_editable()
    assert not page.errors


def test_hang_up_then_save_is_saved_and_the_panel_looks_finished(page, sites, simulator):
    call = simulator.start_call("agent1", DID)
    frame = open_call(page, sites, call.ucid)
    simulator.hang_up(call.ucid)
    choose(frame, "Sale closed")
    frame.get_by_label("Pause after this call").check()
    frame.get_by_label("Pause reason").select_option("Lunch")
    save = frame.get_by_role("button", name="Save disposition")
    save.click()
    assert outcome(frame)[0] == "saved"
    # CloudAgent takes nothing more: a summary of what it holds, and Save cannot be pressed.
    expect(save).to_be_disabled()
    expect(frame.get_by_label("Disposition", exact=True)).to_be_hidden()
    summary = frame.get_by_role("status").get_by_label("What CloudAgent has for this call")
    expect(summary).to_contain_text("Sale closed")
    expect(summary.locator('[data-summary="pause"]')).to_have_text("Lunch")
    (message,) = received(page)
    assert message["data"]["recordedDisposition"] == "Sale closed"
    assert message["data"]["reason"] == "saved"
    # Nothing more to do for the call: the host's late call-ended starts no clock.
    ignored = []
    page.on("console", lambda m: ignored.append(m.text) if "recorded" in m.text else None)
    host_says(page, "call-ended", wrapupSeconds=30)
    for _ in range(1500):  # until the panel says it ignored it (30 s at most: a hung test)
        if ignored:
            break
        page.wait_for_timeout(20)
    assert ignored and "nothing more to do" in ignored[0]
    expect(frame.get_by_role("timer")).to_be_hidden()
    assert not page.errors


def saved_after_the_call(page, sites, simulator, disposition="Sale closed"):
    """A call hung up, then saved from its panel: CloudAgent has `disposition`."""
    call = simulator.start_call("agent1", DID)
    frame = open_call(page, sites, call.ucid)
    simulator.hang_up(call.ucid)
    choose(frame, disposition)
    frame.get_by_role("button", name="Save disposition").click()
    assert outcome(frame)[0] == "saved"
    return call


def test_a_second_panel_for_a_disposed_call_shows_what_cloudagent_kept(page, sites, simulator):
    call = saved_after_the_call(page, sites, simulator)
    frame = open_call(page, sites, call.ucid)  # the CRM shows the call again
    choose(frame, "Wrong number")  # too late to change it
    save = frame.get_by_role("button", name="Save disposition")
    save.click()
    frame.locator('[data-outcome="already_disposed"]').wait_for()
    assert "your earlier save of “Sale closed” went through" in outcome(frame)[1]
    # The screen agrees with CloudAgent: the select is back on what it holds, shown summed up.
    expect(frame.get_by_label("Disposition", exact=True)).to_have_value("Sale closed")
    summary = frame.get_by_role("status").get_by_label("What CloudAgent has for this call")
    expect(summary.locator('[data-summary="disposition"]')).to_have_text("Sale closed")
    expect(save).to_be_disabled()
    (message,) = received(page)
    data = message["data"]
    assert (data["outcome"], data["disposition"]) == ("already_disposed", "Wrong number")
    assert (data["recordedDisposition"], data["reason"]) == ("Sale closed", "earlier_save")
    assert not page.errors


def test_saving_the_same_disposition_again_is_saved_as_a_repeat(page, sites, simulator):
    call = saved_after_the_call(page, sites, simulator)
    frame = open_call(page, sites, call.ucid)
    choose(frame, "Sale closed")
    frame.get_by_role("button", name="Save disposition").click()
    assert outcome(frame)[0] == "saved"
    data = received(page)[0]["data"]
    assert (data["reason"], data["recordedDisposition"]) == ("repeat", "Sale closed")


def test_pausing_without_a_reason_is_blocked_in_the_browser_and_on_the_server(
    page, sites, simulator
):
    call = simulator.start_call("agent1", DID)
    frame = open_call(page, sites, call.ucid)
    saves = []
    page.on("request", lambda r: saves.append(r) if r.url.endswith("/disposition/save") else 0)
    choose(frame)
    reason = frame.get_by_label("Pause reason")
    assert not reason.is_visible()
    frame.get_by_label("Pause after this call").check()
    assert reason.is_visible()
    frame.get_by_role("button", name="Save disposition").click()
    assert reason.evaluate("el => el.matches(':invalid')")
    assert simulator.get_call(call.ucid).attempts == []
    assert frame.get_by_role("status").inner_text() == ""

    # Bypass the browser's check: the server refuses it too, beside the field.
    reason.evaluate("el => el.removeAttribute('required')")
    frame.get_by_role("button", name="Save disposition").click()
    kind, text = outcome(frame)
    assert kind == "invalid" and "pause reason" in text
    assert len(saves) == 1  # this one: the browser never sent the first
    error = frame.locator("#pause_reason-error")
    assert "Choose a pause reason" in error.inner_text()
    assert reason.get_attribute("aria-invalid") == "true"
    assert simulator.get_call(call.ucid).attempts == []

    reason.select_option("Lunch")
    frame.get_by_role("button", name="Save disposition").click()
    frame.locator('[data-outcome="queued"]').wait_for()
    assert error.inner_text() == ""
    assert reason.get_attribute("aria-invalid") is None


def test_an_agent_not_on_the_call_is_rejected(page, sites, simulator):
    call = simulator.start_call("agent1", DID)
    frame = open_call(page, sites, call.ucid, agent="agent2")
    choose(frame)
    frame.get_by_role("button", name="Save disposition").click()
    kind, text = outcome(frame)
    assert kind == "rejected" and "not on this call" in text


def test_upstream_down_is_unavailable_and_the_form_is_kept(page, sites, simulator, monkeypatch):
    call = simulator.start_call("agent1", DID)
    frame = open_call(page, sites, call.ucid)
    choose(frame, "Call back later", comments="Call after 6 pm")
    frame.get_by_role("button", name="In 1 hour").click()
    clock = frame.get_by_label("Time (24-hour)")
    when = (frame.locator("#callback_time").input_value(), clock.input_value())
    monkeypatch.setattr(sites.widget_app.extensions["cloudagent"], "base_url", "http://127.0.0.1:9")
    frame.get_by_role("button", name="Save disposition").click()
    kind, _ = outcome(frame)
    assert kind == "unavailable"
    assert frame.get_by_label("Disposition", exact=True).input_value() == "Call back later"
    assert frame.get_by_label("Comments").input_value() == "Call after 6 pm"
    assert (
        all(when) and (frame.locator("#callback_time").input_value(), clock.input_value()) == when
    )
    assert frame.get_by_role("button", name="Save disposition").is_enabled()


def test_our_server_unreachable_says_the_result_is_unknown(page, sites, simulator):
    call = simulator.start_call("agent1", DID)
    frame = open_call(page, sites, call.ucid)
    choose(frame)
    page.route("**/disposition/save", lambda route: route.abort())
    frame.get_by_role("button", name="Save disposition").click()
    kind, text = outcome(frame)
    assert kind == "unavailable" and "Result unknown" in text
    (message,) = received(page)
    assert (message["data"]["outcome"], message["data"]["resultUnknown"]) == ("unavailable", True)


def test_a_save_whose_answer_the_browser_lost_is_reported_as_saved_on_the_retry(
    page, sites, simulator
):
    """The server saved (CloudAgent has it), then the answer never reached the browser (a
    proxy timeout): the agent saves again and is told the earlier save went through."""
    call = simulator.start_call("agent1", DID)
    frame = open_call(page, sites, call.ucid)
    simulator.hang_up(call.ucid)
    choose(frame, "Sale closed", comments="Paid by card")
    handled = []

    def lose_the_answer(route):
        # The server does all its work (sent from the test: only the browser resolves the
        # sites' test names)...
        url = route.request.url.replace(urlsplit(sites.widget).hostname, "127.0.0.1", 1)
        handled.append(route.fetch(url=url).status)
        route.abort("timedout")  # ...and the browser never sees its answer

    page.route("**/disposition/save", lose_the_answer)
    save = frame.get_by_role("button", name="Save disposition")
    save.click()
    kind, text = outcome(frame)
    assert kind == "unavailable" and "Result unknown" in text
    assert handled == [200] and simulator.get_call(call.ucid).disposition == "Sale closed"
    page.unroute("**/disposition/save")

    save.click()  # the form kept what the agent chose: the same save again
    frame.locator('[data-outcome="saved"]').wait_for()
    assert outcome(frame) == (
        "saved",
        "Saved. Your earlier save went through: CloudAgent already has this disposition.",
    )
    assert [m["data"]["outcome"] for m in received(page, 2)] == ["unavailable", "saved"]


def test_the_button_is_disabled_while_saving(page, sites, simulator, monkeypatch):
    call = simulator.start_call("agent1", DID)
    frame = open_call(page, sites, call.ucid)
    choose(frame)
    # The save waits at a gate until the test opens it, however slow or fast the machine.
    gate = threading.Event()
    client = sites.widget_app.extensions["cloudagent"]
    send = client.set_disposition
    monkeypatch.setattr(client, "set_disposition", lambda **f: gate.wait(120) and send(**f))
    save = frame.get_by_role("button", name="Save disposition")
    save.click()
    expect(save).to_be_disabled(timeout=30_000)
    save.click(force=True, no_wait_after=True)  # a second click does nothing
    gate.set()
    outcome(frame)
    expect(save).to_be_enabled(timeout=30_000)
    assert len(simulator.get_call(call.ucid).attempts) == 1


def test_a_tampered_link_gets_the_403_page(page, sites, simulator):
    call = simulator.start_call("agent1", DID)
    page.goto(f"{sites.crm}/call?ucid={call.ucid}&tamper=1")
    frame = page.frame_locator("#widget")
    frame.get_by_role("heading", name="This link is not valid").wait_for()
    assert simulator.get_call(call.ucid).attempts == []


def test_the_keyboard_path_reaches_every_control_and_enter_saves(page, sites, simulator):
    call = simulator.start_call("agent1", DID)
    frame = open_call(page, sites, call.ucid)
    frame.get_by_label("Disposition", exact=True).focus()
    order = []
    for _ in range(5):
        order.append(frame.locator(":focus").get_attribute("id"))
        if order[-1] == "pause":
            page.keyboard.press("Space")  # tick it: the pause reason joins the path
        page.keyboard.press("Tab")
    assert order == ["disposition", "comments", "pause", "pause_reason", "save"]

    frame.get_by_label("Disposition", exact=True).focus()
    page.keyboard.press("ArrowDown")  # first real disposition
    frame.get_by_label("Pause reason").focus()
    page.keyboard.press("ArrowDown")
    frame.get_by_role("button", name="Save disposition").focus()
    page.keyboard.press("Enter")
    assert outcome(frame)[0] == "queued"
    request = simulator.get_call(call.ucid).attempts[-1].request
    assert (request.disposition, request.pause_reason) == ("Interested", "Break")


def test_ctrl_enter_in_comments_saves(page, sites, simulator):
    call = simulator.start_call("agent1", DID)
    frame = open_call(page, sites, call.ucid)
    choose(frame)
    frame.get_by_label("Comments").press_sequentially("Done")
    frame.get_by_label("Comments").press("Control+Enter")
    assert outcome(frame)[0] == "queued"
    assert simulator.get_call(call.ucid).attempts[-1].request.comments == "Done"


# -- accessibility and screenshots: the panel alone, as wide as a CRM side bar ---------------


@pytest.mark.parametrize("width", [320, 480])
@pytest.mark.parametrize("state", list(PANEL_STATES))
def test_every_state_is_accessible_and_fits_a_narrow_side_bar(
    browser, sites, simulator, monkeypatch, shoot, state, width
):
    with panel_in_state(browser, sites, simulator, monkeypatch, state, width) as frame_element:
        assert_accessible_and_narrow(frame_element, width, shoot, f"panel-{width}-{state}")


def test_try_again_brings_the_list_and_keeps_what_the_agent_typed(
    page, sites, simulator, monkeypatch, retry_lists_at_once
):
    widget = sites.widget_app.extensions
    widget["dispositions"].clear()  # the list must be fetched, and CloudAgent is down
    monkeypatch.setattr(widget["cloudagent"], "base_url", "http://127.0.0.1:9")
    call = simulator.start_call("agent1", DID)
    page.goto(f"{sites.crm}/call?ucid={call.ucid}")
    frame = page.frame_locator("#widget")
    frame.get_by_role("button", name="Try again").wait_for()
    expect(frame.get_by_role("button", name="Save disposition")).to_be_disabled()
    frame.get_by_label("Comments").fill("Typed while the list was down")
    frame.get_by_label("Pause after this call").check()
    frame.get_by_label("Pause reason").select_option("Lunch")

    monkeypatch.setattr(widget["cloudagent"], "base_url", sites.sim.url)  # CloudAgent is back
    frame.get_by_role("button", name="Try again").click()
    save = frame.get_by_role("button", name="Save disposition")
    expect(save).to_be_enabled()
    expect(frame.get_by_label("Comments")).to_have_value("Typed while the list was down")
    expect(frame.get_by_label("Pause after this call")).to_be_checked()
    expect(frame.get_by_label("Pause reason")).to_have_value("Lunch")
    choose(frame)
    save.click()
    assert outcome(frame)[0] == "queued"
    (ready,) = received(page, event="ready")  # once usable, not before
    sent = simulator.get_call(call.ucid).attempts[-1].sent
    assert (sent["comments"], sent["pauseReason"]) == ("Typed while the list was down", "Lunch")
