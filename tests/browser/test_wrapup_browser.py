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
# The callback time is a group named "Callback time (IST)": a day list ("Fri, 4 Dec") and a
# 24-hour time box, written as the outcome writes it, whatever the browser's locale; what is
# posted is #callback_time (YYYY-MM-DDTHH:MM), which the panel keeps in step with them.


def callback_controls(frame):
    return frame.get_by_label("Day", exact=True), frame.get_by_label("Time (24-hour)")


def posted_time(frame):
    return frame.locator("#callback_time").input_value()


def spoken(value):
    """A posted time as the English outcome writes it: 4 Dec, 10:00 IST."""
    at = datetime.strptime(value, "%Y-%m-%dT%H:%M")
    return f"{at.day} {at:%b}, {at:%H:%M} IST"


def test_a_callback_is_saved_with_its_time_as_cloudagent_reads_it(page, sites, simulator):
    call = simulator.start_call("agent3", DID)
    frame = open_call(page, sites, call.ucid, agent="agent3")
    field = frame.get_by_label("Callback time (IST)")  # the name CRMs and tests rely on
    expect(field).to_be_hidden()
    choose(frame, "Call back later")
    expect(field).to_be_visible()
    expect(field).to_have_attribute("role", "group")
    frame.get_by_role("button", name="Tomorrow 10:00").click()
    day, clock = callback_controls(frame)
    expect(clock).to_have_value("10:00")
    value = posted_time(frame)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T10:00", value) and value[:10] == day.input_value()
    at = datetime.strptime(value, "%Y-%m-%dT%H:%M")
    shown = day.evaluate("el => el.selectedOptions[0].text")
    assert shown == f"{at:%a}, {at.day} {at:%b} (tomorrow)"
    readout = f"Callback at {spoken(value)}."
    expect(frame.locator("#callback_time-when")).to_have_text(readout)
    save(frame)
    kind, text = outcome(frame)
    assert kind == "queued" and text.endswith(readout)  # the same words before and after
    expected = value.replace("T", " ")
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
    day, clock = callback_controls(frame)
    value = posted_time(frame)
    assert (day.input_value(), clock.input_value()) == (value[:10], value[11:])
    in_an_hour = page.evaluate(
        """() => new Intl.DateTimeFormat("sv-SE", {timeZone: "Asia/Kolkata", dateStyle: "short",
             timeStyle: "short"}).format(new Date(Date.now() + 3600e3)).replace(" ", "T")"""
    )
    apart = datetime.fromisoformat(in_an_hour) - datetime.fromisoformat(value)
    assert abs(apart.total_seconds()) <= 120  # read a moment after the click
    save(frame)
    assert outcome(frame)[0] == "queued"
    assert sent_sets(simulator, call.ucid)[0]["callBackTime"] == value.replace("T", " ")


def test_an_en_us_browser_reads_the_time_as_the_outcome_writes_it(browser, sites, simulator, shoot):
    """An American Chrome in New York would show a datetime-local as 12/03/2026, 12:12 AM:
    the panel shows the day and a 24-hour time as its outcome writes them."""
    context = browser.new_context(
        locale="en-US", timezone_id="America/New_York", viewport={"width": 320, "height": 900}
    )
    page = context.new_page()
    try:
        call = simulator.start_call("agent3", DID)
        frame = open_call(page, sites, call.ucid, agent="agent3", width="320")
        assert page.evaluate("navigator.language") == "en-US"
        choose(frame, "Call back later")
        day, clock = callback_controls(frame)
        day.focus()
        page.keyboard.press("Tab")  # from the day to the time, by keyboard
        expect(clock).to_be_focused()
        page.keyboard.type("0012")  # as typed on a keypad: HHMM
        page.keyboard.press("Shift+Tab")  # leaving the box writes it HH:MM
        expect(clock).to_have_value("00:12")
        day.select_option(index=2)  # the day after tomorrow: surely ahead, whatever the hour
        value = posted_time(frame)
        at = datetime.strptime(value, "%Y-%m-%dT%H:%M")
        assert value[11:] == "00:12"
        assert day.evaluate("el => el.selectedOptions[0].text") == f"{at:%a}, {at.day} {at:%b}"
        readout = frame.locator("#callback_time-when")
        expect(readout).to_have_text(f"Callback at {at.day} {at:%b}, 00:12 IST.")
        assert "AM" not in readout.inner_text() and "/" not in readout.inner_text()
        assert_accessible_and_narrow(
            page.locator("#widget"), 320, shoot, "panel-320-callback-en-US"
        )
        save(frame)
        kind, text = outcome(frame)
        assert kind == "queued" and text.endswith(readout.inner_text())
        assert sent_sets(simulator, call.ucid)[0]["callBackTime"] == value.replace("T", " ")
        (message,) = received(page)
        assert message["data"]["callbackTime"] == value.replace("T", " ")
    finally:
        context.close()


def test_a_missing_past_far_or_unreadable_time_is_refused_and_nothing_is_sent(
    page, sites, simulator
):
    call = simulator.start_call("agent3", DID)
    frame = open_call(page, sites, call.ucid, agent="agent3")
    requests = []
    page.on("request", lambda r: requests.append(r) if r.url.endswith("/disposition/save") else 0)
    choose(frame, "Call back later", comments="Wants a call after the budget meeting")
    day, clock = callback_controls(frame)
    # The page's clock at noon of the list's first day (today, in IST), so that the last
    # day's 12:01 is always a minute too far.
    today = day.evaluate("el => el.options[0].value")
    page.clock.set_fixed_time(datetime.fromisoformat(f"{today}T12:00:00+05:30"))

    def bubble():
        return clock.evaluate("el => el.validationMessage")

    save(frame)  # no time: the browser stops it
    assert clock.evaluate("el => el.validity.valueMissing")
    assert bubble() == "Choose a callback time for this disposition."
    clock.fill("11:59")  # today, in the past
    save(frame)
    assert bubble() == "That callback time has passed. Choose a time in the future."
    day.select_option(index=30)
    clock.fill("12:01")  # 30 days and a minute ahead
    save(frame)
    assert bubble() == "A callback can be at most 30 days ahead."
    clock.fill("12:00")  # 30 days ahead to the minute: fine
    clock.evaluate("el => el.form.checkValidity()")
    assert bubble() == "" and posted_time(frame) == f"{day.input_value()}T12:00"
    clock.fill("25:00")
    save(frame)
    assert bubble() == "Enter the callback time as a date and a time."
    assert requests == []

    # Without the browser's checks, the server refuses them, beside the field.
    page.clock.resume()
    frame.locator("#panel-form").evaluate("el => el.noValidate = true")
    day.select_option(index=0)
    clock.fill("00:00")  # today's first minute: passed
    save(frame)
    kind, text = outcome(frame)
    assert kind == "invalid" and "has passed" in text
    expect(frame.locator("#callback_time-error")).to_contain_text("has passed")
    assert day.get_attribute("aria-invalid") == "true"  # both parts of the time
    assert clock.get_attribute("aria-invalid") == "true"
    clock.fill("")
    save(frame)
    expect(frame.locator("#callback_time-error")).to_contain_text("Choose a callback time")
    clock.fill("half past ten")
    save(frame)
    expect(frame.locator("#callback_time-error")).to_contain_text("as a date and a time")
    assert sent_sets(simulator, call.ucid) == []  # nothing reached CloudAgent
    assert frame.get_by_label("Comments").input_value() == "Wants a call after the budget meeting"


def test_our_server_unreachable_tells_the_host_the_time_in_cloudagents_form(page, sites, simulator):
    call = simulator.start_call("agent3", DID)
    frame = open_call(page, sites, call.ucid, agent="agent3")
    choose(frame, "Call back later")
    frame.get_by_role("button", name="Tomorrow 10:00").click()
    value = posted_time(frame)
    page.route("**/disposition/save", lambda route: route.abort())
    save(frame)
    (message,) = received(page)
    assert message["data"]["outcome"] == "unavailable" and message["data"]["resultUnknown"]
    assert message["data"]["callbackTime"] == value.replace("T", " ")


def test_another_disposition_hides_the_field_and_sends_no_time(page, sites, simulator):
    call = simulator.start_call("agent3", DID)
    frame = open_call(page, sites, call.ucid, agent="agent3")
    choose(frame, "Call back later")
    frame.get_by_role("button", name="In 1 hour").click()
    choose(frame, "Not interested")
    expect(frame.get_by_label("Callback time (IST)")).to_be_hidden()
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
    frame.get_by_label("Time (24-hour)").fill("00:00")  # today's first minute: passed
    frame.locator("#panel-form").evaluate("el => el.noValidate = true")  # the server's check
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
