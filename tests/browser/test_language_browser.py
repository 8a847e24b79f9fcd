"""The panel in another language in a real browser: every state accessible and narrow, the
texts its script writes itself, and the host page's events keyed in English."""

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_skeleton
from playwright.sync_api import expect

from tests.helpers import (
    DID,
    PANEL_STATES,
    ROOT,
    SUPPORT,
    assert_accessible_and_narrow,
    outcome,
    panel_in_state,
    received,
)
from webapp.i18n import catalogue_paths, compile_catalogue

pytestmark = pytest.mark.browser

CATALOGUES = catalogue_paths(ROOT / "translations")
LANGUAGES = sorted(CATALOGUES)  # every one but English
WAIT = 30_000  # ms: what a busy machine may need, never what a fast one waits
DEVANAGARI = re.compile("[\u0900-\u097f]")
IST = ZoneInfo("Asia/Kolkata")


def catalogue(language):
    """The language's own words, to check the page against."""
    return compile_catalogue(CATALOGUES[language], language)


def open_hindi(page, sites, ucid, **query):
    page.goto(
        f"{sites.crm}/call?ucid={ucid}&lang=hi" + "".join(f"&{k}={v}" for k, v in query.items())
    )
    frame = page.frame_locator("#widget")
    frame.get_by_role("button", name="डिस्पोज़िशन सेव करें").wait_for()
    return frame


def host_says(page, event, **fields):
    message = {"type": "cloudagent-disposition-host", "version": 1, "event": event} | fields
    page.evaluate(
        """([message, origin]) =>
            document.getElementById("widget").contentWindow.postMessage(message, origin)""",
        [message, page.evaluate("new URL(document.getElementById('widget').src).origin")],
    )


@pytest.mark.parametrize("width", [320, 480])
@pytest.mark.parametrize("state", list(PANEL_STATES))
@pytest.mark.parametrize("language", LANGUAGES)
def test_every_state_is_accessible_and_fits_a_narrow_side_bar(
    browser, sites, simulator, monkeypatch, shoot, language, state, width
):
    with panel_in_state(
        browser, sites, simulator, monkeypatch, state, width, lang=language
    ) as frame_element:
        widget = frame_element.element_handle().content_frame()
        assert widget.evaluate("document.documentElement.lang") == language
        assert_accessible_and_narrow(
            frame_element, width, shoot, f"panel-{language}-{width}-{state}"
        )


def test_the_font_has_devanagari(page, sites, simulator):
    """Without a font with Devanagari an agent would read boxes: the screenshots need one."""
    call = simulator.start_call("agent1", DID)
    open_hindi(page, sites, call.ucid)
    widget = page.frame_locator("#widget")
    title = widget.locator("#panel-title")
    assert DEVANAGARI.search(title.inner_text())
    # Measured as drawn: a missing glyph is a fixed-width box, the same for every letter.
    widths = title.evaluate(
        """el => ["क", "ख", "ड़", "श्र"].map(t => {
            const c = document.createElement("canvas").getContext("2d");
            c.font = getComputedStyle(el).font;
            return c.measureText(t).width;
        })"""
    )
    assert len(set(widths)) > 1, f"all glyphs {widths[0]} px wide: no Devanagari font installed"


def test_what_the_script_writes_is_in_hindi_too(page, sites, simulator):
    call = simulator.start_call("agent1", SUPPORT)
    frame = open_hindi(page, sites, call.ucid, did=SUPPORT)
    count = frame.locator("#disposition-search-count")
    expect(count).to_have_text("60 डिस्पोज़िशन")
    search = frame.get_by_label("डिस्पोज़िशन खोजें")
    search.press_sequentially("refund")
    expect(count).to_have_text("60 में से 2 मिले")
    search.fill("")
    search.press_sequentially("zzz")
    expect(count).to_have_text("“zzz” से कोई डिस्पोज़िशन नहीं मिला")

    host_says(page, "call-ended", wrapupSeconds=3)
    timer = frame.get_by_role("timer", name=re.compile("^रैप-अप का बचा समय"))
    expect(timer).to_be_visible(timeout=WAIT)
    note = frame.locator("#wrapup-note")
    expect(note).to_have_text("रैप-अप के 3 सेकंड बचे हैं।")
    expect(note).to_contain_text("रैप-अप का समय ख़त्म हो गया।", timeout=WAIT)
    assert not page.errors


def test_the_host_page_gets_english_keys_and_the_agent_s_words(page, sites, simulator):
    call = simulator.start_call("agent1", DID)
    frame = open_hindi(page, sites, call.ucid)
    frame.get_by_label("डिस्पोज़िशन", exact=True).select_option("Interested")
    frame.get_by_role("button", name="डिस्पोज़िशन सेव करें").click()
    kind, text = outcome(frame)
    assert kind == "queued" and text.startswith("लंबित।")
    (message,) = received(page)
    assert (message["data"]["event"], message["data"]["outcome"]) == ("outcome", "queued")
    assert message["data"]["message"] == text

    page.route("**/disposition/save", lambda route: route.abort())
    frame.get_by_role("button", name="डिस्पोज़िशन सेव करें").click()
    frame.locator('[data-result-unknown="true"]').wait_for()
    kind, text = outcome(frame)
    assert kind == "unavailable"
    assert text.startswith("नतीजा पता नहीं। डिस्पोज़िशन सेवा ने जवाब नहीं दिया")


def more_state(state, page, frame, words):
    """Drive the panel (by ids, the same in every language) into one of the states that
    issues 11 and 12 added, checking the texts against the language's own catalogue."""
    if state == "callback-refused":
        frame.locator("#disposition").select_option("Call back later")
        frame.locator("#callback_clock").fill("00:00")  # today's first minute: passed
        frame.locator("#panel-form").evaluate("el => el.noValidate = true")  # past the browser
        frame.locator("#save").click()
        assert outcome(frame)[0] == "invalid"
        passed = words.gettext("That callback time has passed. Choose a time in the future.")
        expect(frame.locator("#callback_time-error")).to_have_text(passed)
    elif state == "search":
        frame.locator("#disposition-search").press_sequentially("call")
        found = words.ungettext("%(num)s of %(total)s matches", "%(num)s of %(total)s match", 8)
        expect(frame.locator("#disposition-search-count")).to_have_text(
            found % {"num": 8, "total": 60}
        )
    elif state == "recent":
        group = frame.locator("#disposition optgroup").first
        expect(group).to_have_attribute("label", words.gettext("Recent"))
    elif state == "wrapup":
        host_says(page, "call-ended", wrapupSeconds=600)
        name = re.compile("^" + re.escape(words.gettext("Wrap-up time left")))
        expect(frame.get_by_role("timer")).to_have_accessible_name(name)
    elif state == "wrapup-over":
        host_says(page, "call-ended", wrapupSeconds=0)
        over = words.gettext(
            "Wrap-up is over. CloudAgent may have closed the call; if so, a save now will "
            "say the call already has a disposition."
        )
        expect(frame.locator("#wrapup-note")).to_have_text(over, timeout=WAIT)


MORE_STATES = {  # state: (DID, agent, extra launch query)
    "callback-refused": (DID, "agent3", ""),
    "search": (SUPPORT, "agent3", ""),
    "recent": (SUPPORT, "agent2", ""),
    "wrapup": (DID, "agent3", ""),
    "wrapup-over": (DID, "agent3", ""),
    "forbidden": (DID, "agent3", "&tamper=1"),
}


@pytest.mark.parametrize("width", [320, 480])
@pytest.mark.parametrize("state", list(MORE_STATES))
@pytest.mark.parametrize("language", LANGUAGES)
def test_the_wrap_up_states_and_the_403_page_are_translated_too(
    browser, sites, simulator, shoot, language, state, width
):
    words = catalogue(language)
    did, agent, extra = MORE_STATES[state]
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        query = f"&agent={agent}&did={did}&width={width}&lang={language}"
        if state == "recent":  # a save first, so that the list has its Recent group
            earlier = simulator.start_call(agent, did)
            page.goto(f"{sites.crm}/call?ucid={earlier.ucid}{query}")
            frame = page.frame_locator("#widget")
            frame.locator("#disposition").select_option("Issue resolved")
            frame.locator("#save").click()
            assert outcome(frame)[0] == "queued"
        call = simulator.start_call(agent, did)
        page.goto(f"{sites.crm}/call?ucid={call.ucid}{query}{extra}")
        frame = page.frame_locator("#widget")
        if state == "forbidden":
            heading = frame.locator("h1")
            expect(heading).to_have_text(words.gettext("This link is not valid"), timeout=WAIT)
            assert simulator.get_call(call.ucid).attempts == []
        else:
            frame.locator("#save").wait_for(timeout=WAIT)
            more_state(state, page, frame, words)
        widget = page.locator("#widget").element_handle().content_frame()
        assert widget.evaluate("document.documentElement.lang") == language
        name = f"panel-{language}-{width}-{state}"
        assert_accessible_and_narrow(page.locator("#widget"), width, shoot, name)
    finally:
        context.close()


def test_the_browser_s_own_checks_speak_hindi_and_clear_once_fixed(page, sites, simulator):
    """An English Chrome would say "Please select an item in the list": the panel's words."""
    call = simulator.start_call("agent3", DID)
    frame = open_hindi(page, sites, call.ucid, agent="agent3")
    saves = []
    page.on("request", lambda r: saves.append(r) if r.url.endswith("/disposition/save") else 0)
    hindi = catalogue("hi").gettext
    select, when = frame.locator("#disposition"), frame.locator("#callback_clock")
    reason = frame.locator("#pause_reason")

    def bubble(field):
        return field.evaluate("el => el.validationMessage")

    frame.locator("#save").click()
    assert bubble(select) == hindi("Choose a disposition.")
    select.select_option("Call back later")
    assert bubble(select) == ""  # the choice cleared it
    frame.locator("#save").click()
    assert bubble(when) == hindi("Choose a callback time for this disposition.")
    when.fill("00:00")  # today's first minute
    frame.locator("#save").click()
    assert bubble(when) == hindi("That callback time has passed. Choose a time in the future.")
    when.fill("25:00")
    frame.locator("#save").click()
    assert bubble(when) == hindi("Enter the callback time as a date and a time.")
    frame.locator("#pause").check()
    frame.locator("[data-callback-in]").click()  # In 1 hour: set by the script
    frame.locator("#save").click()
    assert bubble(when) == ""
    assert bubble(reason) == hindi("Choose a pause reason, or untick Pause after this call.")
    assert saves == []  # the browser stopped every one of them
    reason.select_option(index=1)
    frame.locator("#save").click()
    assert outcome(frame)[0] == "queued" and len(saves) == 1


def test_the_callback_time_reads_the_hindi_way_in_an_american_browser(browser, sites, simulator):
    """The day list, the time and the moment written beside them are the Hindi outcome's,
    whatever the browser's own locale: the agent reads the same words before and after."""
    context = browser.new_context(locale="en-US", viewport={"width": 320, "height": 900})
    page = context.new_page()
    try:
        call = simulator.start_call("agent3", DID)
        frame = open_hindi(page, sites, call.ucid, agent="agent3")
        hindi = catalogue("hi").gettext
        frame.locator("#disposition").select_option("Call back later")
        group = frame.get_by_label(hindi("Callback time (%(zone)s)") % {"zone": "IST"})
        expect(group).to_be_visible()
        day = group.get_by_label(hindi("Day"), exact=True)
        clock = group.get_by_label(hindi("Time (24-hour)"))
        frame.get_by_role("button", name=hindi("Tomorrow %(time)s") % {"time": "10:00"}).click()
        value = frame.locator("#callback_time").input_value()
        at = datetime.fromisoformat(value).replace(tzinfo=IST)
        shown = format_skeleton("MMMEd", at, locale="hi")
        assert day.evaluate("el => el.selectedOptions[0].text") == f"{shown} (कल)"
        expect(clock).to_have_value("10:00")
        clock.fill("18:45")
        moment = format_skeleton("MMMd", at, locale="hi") + ", 18:45 IST"
        assert DEVANAGARI.search(moment)  # the month in Hindi
        readout = hindi("Callback at %(when)s.") % {"when": moment}
        expect(frame.locator("#callback_time-when")).to_have_text(readout)
        frame.locator("#save").click()
        kind, text = outcome(frame)
        assert kind == "queued" and text.endswith(readout)
        sent = simulator.get_call(call.ucid).attempts[0].sent
        assert sent["callBackTime"] == value[:10] + " 18:45"
    finally:
        context.close()


def test_an_answer_before_the_context_is_read_speaks_the_panel_s_language(page, sites, simulator):
    """The browser asks in English; the panel's requests ask in its own language."""
    call = simulator.start_call("agent1", DID)
    frame = open_hindi(page, sites, call.ucid)
    hindi = catalogue("hi").gettext
    frame.locator("#disposition").select_option("Interested")
    frame.locator("input[name=context]").evaluate("el => el.value = 'x' + el.value")
    frame.locator("#save").click()
    kind, text = outcome(frame)
    assert kind == "invalid"
    assert hindi("This panel is not valid. Open it again from the CRM; nothing was saved.") in text
    assert simulator.get_call(call.ucid).attempts == []
