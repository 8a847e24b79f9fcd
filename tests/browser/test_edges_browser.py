"""What the CRM page and the agent are told at the edges, in a real browser across sites: a
refused link or a blocked frame reaches the host page (each symptom of docs/embedding.md's
Troubleshooting), embed.js upgrades that break nothing, the outcome in view in a short frame,
and the small ones (callEnded's argument, ↓ from the search box)."""

import re
import shutil
from dataclasses import replace
from urllib.parse import urlencode

import pytest
from playwright.sync_api import expect

from tests.helpers import (
    DID,
    ROOT,
    SUPPORT,
    choose,
    newest_embed_release,
    open_call,
    outcome,
    received,
)
from webapp.web import assets

pytestmark = pytest.mark.browser

WAIT = 30_000  # ms: what a busy machine may need, never what a fast one waits


def script_errors(page):
    """The page's errors, less the browser's own line for the refusal's 403 status."""
    return [e for e in page.errors if not e.startswith("Failed to load resource")]


def embed_page(page, sites, ucid, host=None, **query):
    """The guide's host page for a call (on the CRM's site, or `host`)."""
    params = urlencode({"ucid": ucid} | query)
    origin = sites.crm if host is None else sites.crm.replace("crm.test", host)
    page.goto(f"{origin}/embed-call?{params}")


def host_events(page, what):
    """What the guide's host page's callbacks were given: `ready` messages, or errors."""
    key = "error" if what == "error" else "event"
    page.wait_for_function(f"window.received.some((m) => m && m.{key} !== undefined)")
    found = page.evaluate("window.received")
    return [m["error"] if what == "error" else m for m in found if key in m]


# -- a refused link reaches the host page --------------------------------------------------


@pytest.mark.parametrize(
    ("mistake", "reason"),
    [
        ({"tamper": "1"}, "bad_signature"),  # altered after signing, or the wrong secret
        ({"age": "3600"}, "expired_link"),  # signed long before it was shown
        ({"ms": "1"}, "malformed_link"),  # ts in milliseconds
    ],
)
def test_a_refused_link_tells_the_host_why_then_its_size(page, sites, simulator, mistake, reason):
    call = simulator.start_call("agent1", DID)
    query = "&".join(f"{k}={v}" for k, v in mistake.items())
    page.goto(f"{sites.crm}/call?ucid={call.ucid}&{query}")
    frame = page.frame_locator("#widget")
    expect(frame.get_by_role("heading", name="This link is not valid")).to_be_visible()
    (refused,) = received(page, event="refused")
    assert refused["origin"] == sites.widget
    assert refused["data"] == {
        "type": "cloudagent-disposition",
        "version": 1,
        "event": "refused",
        "reason": reason,
    }
    (resize,) = received(page, event="resize")
    events = [m["data"]["event"] for m in page.evaluate("window.received")]
    assert events.index("refused") < events.index("resize")  # why first, then the size
    assert 0 < resize["data"]["height"] < 400  # the page is short: no white gap in the frame
    assert simulator.get_call(call.ucid).attempts == []
    assert not script_errors(page)


def test_embed_js_calls_on_error_with_the_reason_and_the_page_says_so(page, sites, simulator):
    call = simulator.start_call("agent1", DID)
    embed_page(page, sites, call.ucid, tamper="1")
    assert host_events(page, "error") == ["bad_signature"]
    expect(page.locator("#widget-problem")).to_have_text(
        "The disposition panel could not open (bad_signature)."
    )
    # The frame shrank to the short refusal page instead of keeping 480 px of white.
    expect(page.locator("#disposition iframe")).not_to_have_css("height", "480px")


def test_an_expired_panel_tells_the_host_when_the_agent_saves(page, sites, simulator, monkeypatch):
    call = simulator.start_call("agent1", DID)
    frame = open_call(page, sites, call.ucid)
    expired = replace(sites.widget_app.config["WIDGET"], context_max_age=-1)
    monkeypatch.setitem(sites.widget_app.config, "WIDGET", expired)
    choose(frame)
    frame.get_by_role("button", name="Save disposition").click()
    kind, text = outcome(frame)
    assert kind == "invalid" and "expired" in text
    assert received(page, event="refused")[0]["data"]["reason"] == "panel_expired"


def test_a_wrong_path_in_the_frame_is_not_found_not_silence(page, sites, simulator):
    call = simulator.start_call("agent1", DID)
    embed_page(page, sites, call.ucid, path="/dispositions")
    assert host_events(page, "error") == ["not_found"]


# -- a frame the browser blocks: only the host page can tell -------------------------------


def test_a_page_origin_missing_from_frame_ancestors_gets_a_timeout(page, sites, simulator):
    """The localhost-versus-127.0.0.1 trap: the same page under another host name is another
    origin; the browser blocks the frame and the widget cannot say a word."""
    call = simulator.start_call("agent1", DID)
    embed_page(page, sites, call.ucid, host="localhost", ready_timeout=1000)
    assert host_events(page, "error") == ["timeout"]
    assert not [m for m in page.evaluate("window.received") if "event" in m]  # no ready


def test_a_ready_panel_gets_no_timeout(page, sites, simulator):
    call = simulator.start_call("agent1", DID)
    embed_page(page, sites, call.ucid, ready_timeout=1000)
    assert host_events(page, "ready")[0]["event"] == "ready"
    page.wait_for_timeout(1500)  # past the timeout: it was cleared by ready
    assert not [m for m in page.evaluate("window.received") if "error" in m]


# -- embed.js releases -------------------------------------------------------------------------


def test_a_moving_url_pinned_with_integrity_is_blocked_and_says_so(page, sites, simulator):
    """`CloudAgentDisposition is not defined`: a hash that is not the served file's."""
    call = simulator.start_call("agent1", DID)
    old = sites.widget_app.extensions["assets"]["embed/1.0.0.js"].integrity
    embed_page(page, sites, call.ucid, script="/embed/v1.js", integrity=old)
    page.wait_for_function("document.readyState === 'complete'")
    assert any("CloudAgentDisposition is not defined" in e for e in page.errors), page.errors


def _works(page, sites, simulator, **query):
    call = simulator.start_call("agent2", DID)
    embed_page(page, sites, call.ucid, agent="agent2", **query)
    assert host_events(page, "ready")[0]["ucid"] == call.ucid
    frame = page.frame_locator("#disposition iframe")
    frame.get_by_label("Disposition", exact=True).select_option("Interested")
    frame.get_by_role("button", name="Save disposition").click()
    assert outcome(frame)[0] == "queued"
    return page.evaluate("window.CloudAgentDisposition.release || '1.0.0'")


def test_an_upgrade_breaks_no_page_that_followed_the_guide(
    browser, page, sites, simulator, tmp_path
):
    version, integrity = newest_embed_release()
    moving = {"script": "/embed/v1.js", "integrity": ""}
    legacy = {"script": "/embed.js"}
    legacy["integrity"] = sites.widget_app.extensions["assets"]["embed.js"].integrity
    assert _works(page, sites, simulator) == version  # the guide's page: pinned, with integrity
    assert _works(page, sites, simulator, **moving) == version
    assert _works(page, sites, simulator, **legacy) == "1.0.0"

    # The upgrade: a new release, 1.99.0, joins the others.
    static = tmp_path / "static"
    shutil.copytree(ROOT / "static", static)
    newer = (static / "embed" / f"{version}.js").read_text()
    newer = re.sub(r'var VERSION = "[^"]+";', 'var VERSION = "1.99.0";', newer)
    (static / "embed" / "1.99.0.js").write_text(newer)
    kept = sites.widget_app.extensions["assets"]
    sites.widget_app.extensions["assets"] = assets.build_manifest(static)
    releases_url = f"{sites.widget}/embed/releases.json"
    # The agent's browser the next day: v1.js is cached for an hour, the releases for good.
    context = browser.new_context(viewport={"width": 480, "height": 720})
    later = context.new_page()
    later.errors = []
    later.on("pageerror", lambda error: later.errors.append(str(error)))
    try:
        assert _works(later, sites, simulator) == version  # still the release it pinned
        assert _works(later, sites, simulator, **moving) == "1.99.0"  # the newest, by itself
        assert _works(later, sites, simulator, **legacy) == "1.0.0"
        assert not later.errors
        # As a CRM page reads it, across sites.
        listed = later.evaluate("(url) => fetch(url).then((r) => r.json())", releases_url)
        assert listed["latest"] == "1.99.0"
        assert {"version": version, "url": f"/embed/{version}.js", "integrity": integrity} in (
            listed["releases"]
        )
    finally:
        sites.widget_app.extensions["assets"] = kept
        context.close()
    assert not script_errors(page)


# -- the outcome in view, in a short frame -------------------------------------------------


def test_the_outcome_is_in_view_in_a_short_frame_with_every_section_open(page, sites, simulator):
    call = simulator.start_call("agent3", SUPPORT)
    frame = open_call(page, sites, call.ucid, agent="agent3", did=SUPPORT, height=640)
    frame.get_by_label("Search dispositions").fill("call")
    frame.get_by_label("Disposition", exact=True).select_option(index=1)
    callback = frame.get_by_role("button", name="In 1 hour")
    expect(callback).to_be_visible()
    callback.click()
    frame.get_by_label("Comments").fill("Wants a call after the meeting")
    frame.get_by_label("Pause after this call").check()
    frame.get_by_label("Pause reason").select_option("Lunch")
    save = frame.get_by_role("button", name="Save disposition")
    save.click()  # scrolled to it, as the agent does
    shown = frame.locator("#status [data-outcome]")
    expect(shown).to_have_attribute("data-outcome", "queued", timeout=WAIT)
    box, view = shown.bounding_box(), page.locator("#widget").bounding_box()
    assert view["height"] == 640
    # Whole, to the pixel (the browser places boxes at fractions of one).
    assert view["y"] <= box["y"] and box["y"] + box["height"] <= view["y"] + view["height"] + 1


# -- the small ones ------------------------------------------------------------------------------


def test_call_ended_takes_a_number_only(page, sites, simulator):
    call = simulator.start_call("agent1", DID)
    embed_page(page, sites, call.ucid)
    host_events(page, "ready")
    thrown = page.evaluate(
        """() => ["45", null, 4.5, -1, 3601].map((value) => {
            try { panel.callEnded(value); return "accepted"; } catch (e) { return e.name; }
        })"""
    )
    assert thrown == ["TypeError"] * 5
    page.evaluate("panel.callEnded(45)")
    timer = page.frame_locator("#disposition iframe").get_by_role("timer")
    expect(timer).to_be_visible(timeout=WAIT)


def test_arrow_down_from_the_search_box_works_with_a_disposition_chosen(page, sites, simulator):
    call = simulator.start_call("agent1", SUPPORT)
    frame = open_call(page, sites, call.ucid, did=SUPPORT)
    select = frame.get_by_label("Disposition", exact=True)
    first = select.locator("option").nth(1).get_attribute("value")
    select.select_option(first)
    search = frame.get_by_label("Search dispositions")
    search.fill(first[:4])
    search.press("ArrowDown")
    expect(select).to_be_focused()
    expect(select).to_have_value(first)  # it matches: the choice stays
    search.fill("zzzz-no-match")
    search.fill(first[-3:].lower())
    search.press("ArrowDown")
    expect(select).to_be_focused()
    assert not script_errors(page)
