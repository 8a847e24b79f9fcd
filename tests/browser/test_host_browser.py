"""The host page and the widget talking both ways, in a real browser, across sites: the
wrap-up clock, prefill, ready and resize, /embed.js in the guide's own host page, another
site's frame that is not listened to, and the dark theme.

Each test works as an agent and DID of its own where it saves (the widget is shared by the
session): agent3 on the support line."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from tests.helpers import (
    DID,
    SUPPORT,
    WRAPUP_TIMER,
    assert_accessible_and_narrow,
    choose,
    host_says,
    open_call,
    outcome,
    received,
)

pytestmark = pytest.mark.browser

WAIT = 30_000  # ms: what a busy machine may need, never what a fast one waits


def debug_lines(page):
    lines = []
    page.on("console", lambda m: lines.append(m.text) if m.type == "debug" else None)
    return lines


def until(page, condition, what=""):
    """Until `condition()` holds, letting the browser's events in meanwhile (time.sleep would
    not). The wait only stops a hung test: it ends as soon as the condition holds."""
    deadline = datetime.now() + timedelta(milliseconds=WAIT)
    while not condition():
        assert datetime.now() < deadline, f"timed out waiting for {what}"
        page.wait_for_timeout(20)


def saves_sent(page):
    requests = []
    page.on("request", lambda r: requests.append(r) if r.url.endswith("/disposition/save") else 0)
    return requests


# -- the wrap-up clock ------------------------------------------------------------------------


def test_call_ended_starts_a_countdown_that_says_when_wrapup_is_over(page, sites, simulator):
    call = simulator.start_call("agent1", DID)
    frame = open_call(page, sites, call.ucid)
    timer = frame.get_by_role("timer", name=WRAPUP_TIMER)
    expect(timer).to_be_hidden()
    host_says(page, "call-ended", wrapupSeconds=3)
    expect(timer).to_be_visible(timeout=WAIT)
    note = frame.locator("#wrapup-note")
    expect(note).to_have_text("3 seconds of wrap-up left.")  # at most ten left: said at once
    expect(note).to_contain_text("Wrap-up is over", timeout=WAIT)
    expect(timer).to_have_accessible_name("Wrap-up time left 0:00")
    assert "already has a disposition" in note.inner_text()
    assert not page.errors


def test_the_last_ten_seconds_are_announced_once_and_a_save_stops_the_clock(page, sites, simulator):
    call = simulator.start_call("agent1", DID)
    simulator.hang_up(call.ucid)
    frame = open_call(page, sites, call.ucid)
    host_says(page, "call-ended", wrapupSeconds=12)
    timer = frame.get_by_role("timer", name=WRAPUP_TIMER)
    expect(timer).to_be_visible(timeout=WAIT)
    note = frame.locator("#wrapup-note")
    assert note.inner_text() == ""  # not every second: nothing to say yet
    expect(note).to_have_text("10 seconds of wrap-up left.", timeout=WAIT)
    choose(frame, "Sale closed")
    frame.get_by_role("button", name="Save disposition").click()
    assert outcome(frame)[0] == "saved"
    expect(timer).to_be_hidden()  # a saved outcome stops the clock


def test_malformed_messages_from_the_host_are_ignored_without_an_error(page, sites, simulator):
    call = simulator.start_call("agent1", DID)
    debug = debug_lines(page)
    frame = open_call(page, sites, call.ucid)
    wrong = [
        {"type": "cloudagent-disposition-host", "version": 2, "event": "call-ended"},
        {"type": "something-else", "version": 1, "event": "call-ended", "wrapupSeconds": 5},
        {"type": "cloudagent-disposition-host", "version": 1, "event": "call-ended",
         "wrapupSeconds": 4000},
        {"type": "cloudagent-disposition-host", "version": 1, "event": "call-ended",
         "wrapupSeconds": 1.5},
        {"type": "cloudagent-disposition-host", "version": 1, "event": "call-ended",
         "wrapupSeconds": "30"},
        {"type": "cloudagent-disposition-host", "version": 1, "event": "save-now"},
    ]  # fmt: skip
    for message in wrong:
        host_says(page, message.pop("event"), **message)
    ignored = lambda: sum("ignored a message" in line for line in debug)  # noqa: E731
    until(page, lambda: ignored() == len(wrong), f"{len(wrong)} messages ignored: {debug}")
    expect(frame.get_by_role("timer", name=WRAPUP_TIMER)).to_be_hidden()
    assert not page.errors


# -- another site's frame ------------------------------------------------------------------


def test_a_frame_from_another_site_is_not_listened_to(page, sites, simulator):
    call = simulator.start_call("agent1", DID)
    debug = debug_lines(page)
    page.goto(f"{sites.crm}/call?ucid={call.ucid}&evil=1")
    frame = page.frame_locator("#widget")
    frame.get_by_role("button", name="Save disposition").wait_for(timeout=WAIT)
    page.frame_locator("#evil").locator("script").wait_for(state="attached", timeout=WAIT)
    attacker = next(f for f in page.frames if f.url.startswith(sites.evil))
    for message in (
        {"type": "cloudagent-disposition-host", "version": 1, "event": "call-ended",
         "wrapupSeconds": 30},
        {"type": "cloudagent-disposition-host", "version": 1, "event": "prefill",
         "comments": "Injected", "disposition": "Sale closed"},
    ):  # fmt: skip
        attacker.evaluate("m => window.attack(m)", message)
    lines = lambda: [line for line in debug if sites.evil in line]  # noqa: E731
    until(page, lambda: len(lines()) == 2, f"both messages ignored: {debug}")
    assert all("not from the page that frames the panel" in line for line in lines())
    expect(frame.get_by_role("timer", name=WRAPUP_TIMER)).to_be_hidden()
    assert frame.get_by_label("Comments").input_value() == ""
    assert frame.get_by_label("Disposition", exact=True).input_value() == ""


# -- prefill ---------------------------------------------------------------------------------


def test_prefill_fills_the_form_without_saving_or_overwriting_the_agent(page, sites, simulator):
    call = simulator.start_call("agent1", DID)
    requests = saves_sent(page)
    frame = open_call(page, sites, call.ucid)
    comments = frame.get_by_label("Comments")
    comments.fill("What the agent wrote")  # the agent's own, before the CRM's prefill
    tomorrow = (datetime.now(ZoneInfo("Asia/Kolkata")) + timedelta(days=1)).strftime(
        "%Y-%m-%d 10:30"
    )
    host_says(page, "prefill", disposition="Call back later", comments="From the CRM",
              pause=True, pauseReason="Lunch", callbackTime=tomorrow)  # fmt: skip
    select = frame.get_by_label("Disposition", exact=True)
    expect(select).to_have_value("Call back later", timeout=WAIT)
    # The callback time in both of its parts, and in what is posted.
    day, clock = frame.get_by_label("Day", exact=True), frame.get_by_label("Time (24-hour)")
    expect(day).to_have_value(tomorrow[:10])
    expect(clock).to_have_value("10:30")
    expect(frame.locator("#callback_time")).to_have_value(tomorrow.replace(" ", "T"))
    expect(frame.get_by_label("Pause after this call")).to_be_checked()
    expect(frame.get_by_label("Pause reason")).to_have_value("Lunch")
    assert comments.input_value() == "What the agent wrote"  # the agent's edit stands
    later = (datetime.now(ZoneInfo("Asia/Kolkata")) + timedelta(days=2)).strftime("%Y-%m-%d")
    host_says(page, "prefill", callbackTime=f"{later}T09:15")  # the other form, still the CRM's
    expect(clock).to_have_value("09:15", timeout=WAIT)
    expect(day).to_have_value(later)
    host_says(page, "prefill", callbackTime="2020-01-01 09:15")  # not a day on the list
    clock.fill("18:00")  # the agent's own time: the CRM's no longer changes either part

    host_says(page, "prefill", disposition="Not on the list", pauseReason="Nap")
    select.select_option("Wrong number")  # the agent chooses: a later prefill leaves it
    host_says(page, "prefill", disposition="Interested", comments="Again",
              callbackTime=tomorrow)  # fmt: skip
    # One more, on a field still the CRM's: once it shows, the panel has read the ones before
    # (messages from one page arrive in order).
    host_says(page, "prefill", pause=False)
    expect(frame.get_by_label("Pause after this call")).not_to_be_checked(timeout=WAIT)
    expect(select).to_have_value("Wrong number")
    expect(frame.get_by_label("Pause reason")).to_have_value("Lunch")
    assert comments.input_value() == "What the agent wrote"
    assert (day.input_value(), clock.input_value()) == (later, "18:00")
    assert requests == [] and simulator.get_call(call.ucid).attempts == []  # never saved


# -- ready and resize --------------------------------------------------------------------------


def test_ready_comes_first_and_before_the_save_button_can_be_used(browser, sites, simulator):
    context = browser.new_context()
    # In every document, before its scripts: when did the Save button become usable?
    context.add_init_script(
        """new MutationObserver((changes, observer) => {
             const save = document.getElementById("save");
             if (save && !save.disabled) {
               window.__usableAt = performance.now();
               observer.disconnect();
             }
           }).observe(document, {subtree: true, childList: true, attributes: true});"""
    )
    page = context.new_page()
    try:
        call = simulator.start_call("agent1", DID)
        frame = open_call(page, sites, call.ucid)
        widget = page.locator("#widget").element_handle().content_frame()
        posted, usable = widget.evaluate(
            """() => [performance.getEntriesByName("ready-posted")[0].startTime,
                      window.__usableAt]"""
        )
        assert posted <= usable  # the host is told first, then the agent can act
        (ready,) = received(page, event="ready")
        assert ready["data"] == {
            "type": "cloudagent-disposition",
            "version": 1,
            "event": "ready",
            "ucid": call.ucid,
        }
        first = page.evaluate("window.received[0].data.event")
        assert first == "ready"
        choose(frame)
        frame.get_by_role("button", name="Save disposition").click()
        assert outcome(frame)[0] == "queued"
        events = page.evaluate("window.received.map((m) => m.data.event)")
        assert events.index("ready") < events.index("outcome")
    finally:
        context.close()


@pytest.mark.parametrize("width", [320, 480])
def test_the_guides_host_page_sizes_the_frame_to_the_panel_as_it_grows(
    browser, sites, simulator, shoot, width
):
    """docs/embedding.md's complete host page, with embed.js: ready, its prefill, resize as
    the callback field and an outcome appear, and no scroll bar inside the frame."""
    context = browser.new_context(viewport={"width": width + 200, "height": 1000})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        call = simulator.start_call("agent3", SUPPORT)
        page.goto(f"{sites.crm}/embed-call?ucid={call.ucid}&agent=agent3&did={SUPPORT}"
                  f"&width={width}")  # fmt: skip
        page.wait_for_function("window.received.length >= 1", timeout=WAIT)  # onReady ran
        iframe = page.locator("#disposition iframe")
        frame = page.frame_locator("#disposition iframe")
        expect(frame.get_by_label("Comments")).to_have_value("Asked about the premium plan")

        def fits():
            """The frame is as tall as the panel: no scroll bar inside."""
            widget = iframe.element_handle().content_frame()
            inner = widget.evaluate(
                "[document.documentElement.scrollHeight, document.documentElement.clientHeight]"
            )
            return inner[0] <= inner[1]

        def height():
            return iframe.evaluate("el => el.getBoundingClientRect().height")

        until(page, fits, "the frame to fit the panel")
        before = height()
        choose(frame, "Callback requested")
        frame.get_by_role("button", name="Tomorrow 10:00").click()
        until(page, lambda: height() > before and fits(), "the frame to grow")
        with_field = height()
        page.get_by_role("button", name="Hang up").click()  # the guide's page: callEnded(45)
        expect(frame.get_by_role("timer", name=WRAPUP_TIMER)).to_be_visible(timeout=WAIT)
        frame.get_by_role("button", name="Save disposition").click()
        assert outcome(frame)[0] == "queued"
        until(page, lambda: height() > with_field and fits(), "the frame to grow again")
        assert_accessible_and_narrow(iframe, width, shoot, f"embed-{width}-queued")
        assert not errors
    finally:
        context.close()


# -- the dark theme and an accent ------------------------------------------------------------

DARK_STATES = ["idle", "callback", "queued", "invalid", "wrapup-over"]


@pytest.mark.parametrize("width", [320, 480])
@pytest.mark.parametrize("how", ["theme=dark", "auto, system dark", "accent=#ffd400"])
@pytest.mark.parametrize("state", DARK_STATES)
def test_the_dark_theme_is_readable_in_every_state(
    browser, sites, simulator, shoot, state, how, width
):
    scheme = "dark" if how != "accent=#ffd400" else "light"
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    try:
        call = simulator.start_call("agent1", DID)
        look = {"theme=dark": "&theme=dark", "accent=#ffd400": "&accent=%23ffd400"}.get(how, "")
        page.goto(f"{sites.crm}/call?ucid={call.ucid}&width={width}{look}")
        frame = page.frame_locator("#widget")
        frame.get_by_role("button", name="Save disposition").wait_for(timeout=WAIT)
        theme = frame.locator("html").get_attribute("data-theme")
        assert theme == ("dark" if how == "theme=dark" else "auto")
        if state == "callback":
            choose(frame, "Call back later")
            frame.get_by_role("button", name="In 1 hour").click()
            expect(frame.locator("#callback_time-when")).to_contain_text("Callback at")
        elif state == "queued":
            choose(frame)
            frame.get_by_role("button", name="Save disposition").click()
            assert outcome(frame)[0] == "queued"
        elif state == "invalid":
            frame.locator("#disposition").evaluate("el => el.removeAttribute('required')")
            frame.get_by_role("button", name="Save disposition").click()
            assert outcome(frame)[0] == "invalid"
        elif state == "wrapup-over":
            host_says(page, "call-ended", wrapupSeconds=0)
            expect(frame.locator("#wrapup-note")).to_contain_text("over", timeout=WAIT)
        background = frame.locator("html").evaluate("el => getComputedStyle(el).backgroundColor")
        assert (background == "rgb(22, 27, 34)") is (scheme == "dark")  # --bg, dark or light
        name = f"panel-{width}-{state}-{how.split('=')[0].split(',')[0]}"
        assert_accessible_and_narrow(page.locator("#widget"), width, shoot, name)
    finally:
        context.close()
