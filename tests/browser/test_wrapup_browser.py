"""The wrap-up at full speed, in a real browser framed by a CRM page on another site: a
callback with its time, searching a long list, the Recent group, and each shortcut.

Each test works as an agent and DID of its own (the widget is shared by the session):
callbacks as agent3 on the sales line, search as agent1 and Recent as agent2 on the
support line, so that what one test saves never heads another's list."""

import re
from datetime import datetime

import pytest
from playwright.sync_api import expect

from tests.helpers import (
    DID,
    SUPPORT,
    assert_accessible_and_narrow,
    choose,
    open_call,
    outcome,
    received,
)

pytestmark = pytest.mark.browser

WAIT = 30_000  # ms: what a busy machine may need, never what a fast one waits


def save(frame):
    frame.get_by_role("button", name="Save disposition").click()


def sent_sets(simulator, ucid):
    return [attempt.sent for attempt in simulator.get_call(ucid).attempts]


# -- callbacks -------------------------------------------------------------------------------


def test_a_callback_is_saved_with_its_time_as_cloudagent_reads_it(page, sites, simulator):
    call = simulator.start_call("agent3", DID)
    frame = open_call(page, sites, call.ucid, agent="agent3")
    field = frame.get_by_label("Callback time (IST)")
    expect(field).to_be_hidden()
    choose(frame, "Call back later")
    expect(field).to_be_visible()
    frame.get_by_role("button", name="Tomorrow 10:00").click()
    value = field.input_value()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T10:00", value)
    save(frame)
    kind, text = outcome(frame)
    expected = value.replace("T", " ")
    at = datetime.strptime(expected, "%Y-%m-%d %H:%M")
    assert kind == "queued" and f"Callback at {at.day} {at:%b}, 10:00 IST" in text
    (sent,) = sent_sets(simulator, call.ucid)
    assert sent["callBackTime"] == expected  # exactly CloudAgent's format, in its zone
    (message,) = received(page)
    assert (message["data"]["disposition"], message["data"]["callbackTime"]) == (
        "Call back later",
        expected,
    )


def test_in_1_hour_is_an_hour_from_now_in_cloudagents_zone(page, sites, simulator):
    call = simulator.start_call("agent3", DID)
    frame = open_call(page, sites, call.ucid, agent="agent3")
    choose(frame, "Call back later")
    frame.get_by_role("button", name="In 1 hour").click()
    value = frame.get_by_label("Callback time").input_value()
    in_an_hour = page.evaluate(
        """() => new Intl.DateTimeFormat("sv-SE", {timeZone: "Asia/Kolkata", dateStyle: "short",
             timeStyle: "short"}).format(new Date(Date.now() + 3600e3)).replace(" ", "T")"""
    )
    apart = datetime.fromisoformat(in_an_hour) - datetime.fromisoformat(value)
    assert abs(apart.total_seconds()) <= 120  # read a moment after the click
    save(frame)
    assert outcome(frame)[0] == "queued"
    assert sent_sets(simulator, call.ucid)[0]["callBackTime"] == value.replace("T", " ")


def test_a_missing_or_past_callback_time_is_refused_and_nothing_is_sent(page, sites, simulator):
    call = simulator.start_call("agent3", DID)
    frame = open_call(page, sites, call.ucid, agent="agent3")
    requests = []
    page.on("request", lambda r: requests.append(r) if r.url.endswith("/disposition/save") else 0)
    choose(frame, "Call back later", comments="Wants a call after the budget meeting")
    field = frame.get_by_label("Callback time")
    save(frame)  # no time: the browser stops it
    assert field.evaluate("el => el.matches(':invalid')")
    field.fill("2020-01-01T10:00")  # in the past: below the field's minimum
    save(frame)
    assert field.evaluate("el => el.validity.rangeUnderflow")
    assert requests == []

    # Without the browser's checks, the server refuses both, beside the field.
    field.evaluate("el => { el.removeAttribute('min'); el.removeAttribute('required'); }")
    save(frame)
    kind, text = outcome(frame)
    assert kind == "invalid" and "has passed" in text
    expect(frame.locator("#callback_time-error")).to_contain_text("has passed")
    assert field.get_attribute("aria-invalid") == "true"
    field.fill("")
    field.evaluate("el => el.removeAttribute('required')")
    save(frame)
    expect(frame.locator("#callback_time-error")).to_contain_text("Choose a callback time")
    assert sent_sets(simulator, call.ucid) == []  # nothing reached CloudAgent
    assert frame.get_by_label("Comments").input_value() == "Wants a call after the budget meeting"


def test_another_disposition_hides_the_field_and_sends_no_time(page, sites, simulator):
    call = simulator.start_call("agent3", DID)
    frame = open_call(page, sites, call.ucid, agent="agent3")
    choose(frame, "Call back later")
    frame.get_by_role("button", name="In 1 hour").click()
    choose(frame, "Not interested")
    expect(frame.get_by_label("Callback time")).to_be_hidden()
    save(frame)
    assert outcome(frame)[0] == "queued"
    assert sent_sets(simulator, call.ucid)[0]["callBackTime"] is None
    assert received(page)[0]["data"]["callbackTime"] is None


# -- a long list -----------------------------------------------------------------------------


def test_searching_narrows_the_list_and_the_keyboard_picks_and_saves(page, sites, simulator):
    call = simulator.start_call("agent1", SUPPORT)
    frame = open_call(page, sites, call.ucid, did=SUPPORT)
    search = frame.get_by_label("Search dispositions")
    select = frame.get_by_label("Disposition", exact=True)
    search.press_sequentially("  REFUND   ")
    expect(frame.locator("#disposition-search-count")).to_have_text("2 of 60 match")
    names = select.evaluate("el => Array.from(el.options, o => o.text)")
    assert names == ["Choose a disposition", "Refund initiated", "Refund status shared"]
    search.press("ArrowDown")  # into the list, on the first match
    expect(select).to_be_focused()
    assert select.input_value() == "Refund initiated"
    page.keyboard.press("ArrowDown")
    assert select.input_value() == "Refund status shared"
    page.keyboard.press("Tab")  # on to Comments, as without the search
    expect(frame.get_by_label("Comments")).to_be_focused()
    page.keyboard.press("Control+Enter")
    assert outcome(frame)[0] == "queued"
    assert sent_sets(simulator, call.ucid)[0]["disposition"] == "Refund status shared"


def test_enter_in_the_search_picks_the_first_match_without_saving(page, sites, simulator):
    call = simulator.start_call("agent1", SUPPORT)
    frame = open_call(page, sites, call.ucid, did=SUPPORT)
    search = frame.get_by_label("Search dispositions")
    search.press_sequentially("kyc c")
    search.press("Enter")
    select = frame.get_by_label("Disposition", exact=True)
    assert select.input_value() == "KYC completed"
    expect(select).to_be_focused()
    assert sent_sets(simulator, call.ucid) == []  # Enter picked; it did not save
    search.press_sequentially("no such thing")
    expect(frame.locator("#disposition-search-count")).to_contain_text("No disposition matches")
    # What the agent chose stays chosen while nothing else matches.
    assert select.evaluate("el => Array.from(el.options, o => o.text)")[-1] == "KYC completed"
    assert select.input_value() == "KYC completed"
    search.press("Escape")  # Escape clears the search: the whole list is back
    expect(search).to_have_value("")
    expect(frame.locator("#disposition-search-count")).to_have_text("60 dispositions")
    full_list = "el => el.querySelectorAll(':scope > option, optgroup:last-of-type option').length"
    assert select.evaluate(full_list) == 61  # the placeholder and all 60
    assert select.input_value() == "KYC completed"


# -- recent choices and shortcuts ------------------------------------------------------------


def test_the_recent_group_heads_the_list_after_a_save_and_alt_digits_pick_it(
    page, sites, simulator
):
    for name in ("Issue resolved", "Ticket raised"):
        call = simulator.start_call("agent2", SUPPORT)
        frame = open_call(page, sites, call.ucid, agent="agent2", did=SUPPORT)
        choose(frame, name)
        save(frame)
        assert outcome(frame)[0] == "queued"

    call = simulator.start_call("agent2", SUPPORT)
    frame = open_call(page, sites, call.ucid, agent="agent2", did=SUPPORT)
    select = frame.get_by_label("Disposition", exact=True)
    recent = select.locator('optgroup[label="Recent"] option')
    expect(recent).to_have_text(["Ticket raised", "Issue resolved"])
    expect(frame.locator("#shortcuts")).to_contain_text("Alt+1–2 recent")
    frame.get_by_label("Comments").fill("Second contact about the same issue")
    page.keyboard.press("Alt+2")  # from the comments box: no need to reach the list
    assert select.input_value() == "Issue resolved"
    page.keyboard.press("Alt+1")
    assert select.input_value() == "Ticket raised"
    page.keyboard.press("Alt+5")  # no fifth recent choice: nothing changes
    assert select.input_value() == "Ticket raised"
    frame.get_by_label("Pause after this call").focus()
    page.keyboard.press("Control+Enter")  # saves from anywhere in the form
    assert outcome(frame)[0] == "queued"
    (sent,) = sent_sets(simulator, call.ucid)
    assert (sent["disposition"], sent["comments"]) == (
        "Ticket raised",
        "Second contact about the same issue",
    )


def test_ctrl_enter_from_the_list_saves_after_the_browsers_checks(page, sites, simulator):
    call = simulator.start_call("agent3", DID)
    frame = open_call(page, sites, call.ucid, agent="agent3")
    select = frame.get_by_label("Disposition", exact=True)
    select.focus()
    page.keyboard.press("Control+Enter")  # nothing chosen: the browser says so, nothing sent
    assert select.evaluate("el => el.matches(':invalid')")
    assert sent_sets(simulator, call.ucid) == []
    choose(frame, "Wrong number")
    select.focus()
    page.keyboard.press("Control+Enter")
    assert outcome(frame)[0] == "queued"


# -- accessibility and screenshots of the new states ------------------------------------------


def state_callback(frame, page):
    choose(frame, "Call back later")
    frame.get_by_role("button", name="Tomorrow 10:00").click()


def state_search(frame, page):
    frame.get_by_label("Search dispositions").press_sequentially("call")


def state_callback_refused(frame, page):
    choose(frame, "Call back later")
    field = frame.get_by_label("Callback time")
    field.fill("2020-01-01T10:00")  # then without the browser's check (the panel sets it on focus)
    field.evaluate("el => el.removeAttribute('min')")
    save(frame)
    assert outcome(frame)[0] == "invalid"


STATES = {
    "callback": (DID, state_callback),
    "callback-refused": (DID, state_callback_refused),
    "search": (SUPPORT, state_search),
    "recent": (SUPPORT, None),
}


@pytest.mark.parametrize("width", [320, 480])
@pytest.mark.parametrize("state", list(STATES))
def test_the_new_states_are_accessible_and_fit_a_narrow_side_bar(
    browser, sites, simulator, shoot, state, width
):
    did, act = STATES[state]
    agent = "agent2" if state == "recent" else "agent3"
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        if state == "recent":  # a save first, so that the list has its Recent group
            earlier = simulator.start_call(agent, did)
            frame = open_call(page, sites, earlier.ucid, agent=agent, did=did)
            choose(frame, "Issue resolved")
            save(frame)
            assert outcome(frame)[0] == "queued"
        call = simulator.start_call(agent, did)
        page.goto(f"{sites.crm}/call?ucid={call.ucid}&agent={agent}&did={did}&width={width}")
        frame_element = page.locator("#widget")
        frame = page.frame_locator("#widget")
        frame.get_by_role("button", name="Save disposition").wait_for(timeout=WAIT)
        if act is not None:
            act(frame, page)
        assert_accessible_and_narrow(frame_element, width, shoot, f"panel-{width}-{state}")
    finally:
        context.close()
