"""The demo of `make run`: a CRM page on localhost framing the widget from 127.0.0.1."""

import os

import pytest
from playwright.sync_api import expect
from werkzeug.serving import make_server

from tests.helpers import WRAPUP_TIMER, GunicornServer
from webapp import create_app
from webapp.simulator import ServerThread

WAIT = 30_000  # ms: what a busy machine may need, never what a fast one waits

pytestmark = pytest.mark.browser


@pytest.fixture
def demo(tmp_path):
    holder = {}
    server = make_server(
        "127.0.0.1", 0, lambda env, start: holder["app"](env, start), threaded=True
    )
    holder["app"] = create_app(
        {"WIDGET_DATA_DIR": str(tmp_path), "WIDGET_BIND": f"127.0.0.1:{server.port}"}
    )
    running = ServerThread(server)
    yield running, holder["app"]
    running.stop()


def test_the_demo_page_frames_the_widget_from_another_site(browser, demo, shoot):
    running, app = demo
    context = browser.new_context(viewport={"width": 1000, "height": 760})
    page = context.new_page()
    try:
        page.goto(running.url + "/")  # 127.0.0.1: redirected to the localhost CRM page
        assert page.url.startswith("http://localhost:")
        widget = page.frame_locator("#widget-slot iframe")
        widget.get_by_label("Disposition", exact=True).select_option("Sale closed")
        widget.get_by_role("button", name="Save disposition").click()
        widget.locator('[data-outcome="queued"]').wait_for()
        events = page.locator("#events li")
        events.first.wait_for()
        assert '"outcome":"queued"' in events.first.inner_text()

        page.get_by_role("button", name="Hang up").click()
        page.locator("#call-state", has_text="wrapup").wait_for()
        assert page.locator("#call-disposition").inner_text() == "Sale closed"
        assert '"event":"ready"' in page.locator("#events").inner_text()
        # The wrap-up clock, from CloudAgent's Disconnect: test_the_demo_as_make_run_serves_it.

        page.get_by_role("button", name="New call").click()
        page.locator("#call-state", has_text="live").wait_for()
        widget.get_by_role("button", name="Save disposition").wait_for()
        assert widget.get_by_role("status").inner_text() == ""
        assert widget.get_by_label("Search dispositions").count() == 0  # 5 dispositions

        # The support line: a long list to search, and callbacks.
        page.get_by_label("Next call on").select_option(label="Support line (60 dispositions)")
        page.get_by_role("button", name="New call").click()
        search = widget.get_by_label("Search dispositions")
        search.wait_for()
        search.press_sequentially("callback")
        search.press("Enter")
        widget.get_by_role("button", name="Tomorrow 10:00").click()
        widget.get_by_role("button", name="Save disposition").click()
        widget.locator('[data-outcome="queued"]').wait_for()
        page.locator("#events li", has_text='"callbackTime":"').first.wait_for()
        shoot(page, "demo-crm-page-support-line")
        ucid = page.locator("#call-ucid").inner_text()
        call = app.extensions["simulator"].get_call(ucid)
        assert call.did == "918069100000" and call.queued == "Callback requested"
    finally:
        context.close()


def test_the_demo_page_switches_the_agent_s_language(browser, demo, shoot):
    running, app = demo
    context = browser.new_context(viewport={"width": 1000, "height": 760})
    page = context.new_page()
    try:
        page.goto(running.url + "/")
        widget = page.frame_locator("#widget-slot iframe")
        widget.get_by_role("button", name="Save disposition").wait_for()
        ucid = page.locator("#call-ucid").inner_text()
        page.get_by_label("Agent's language").select_option(label="हिन्दी")
        # The same call, its panel re-opened from a link signed with lang=hi.
        widget.get_by_role("button", name="डिस्पोज़िशन सेव करें").wait_for()
        assert widget.locator("html").get_attribute("lang") == "hi"
        assert page.locator("#call-ucid").inner_text() == ucid
        widget.get_by_label("डिस्पोज़िशन", exact=True).select_option("Sale closed")
        widget.get_by_role("button", name="डिस्पोज़िशन सेव करें").click()
        widget.locator('[data-outcome="queued"]').wait_for()
        assert '"outcome":"queued"' in page.locator("#events li").first.inner_text()
        # The frame grows to the Hindi outcome's height, as it does to the English one's.
        expect(widget.locator('[data-outcome="queued"]')).to_be_in_viewport()
        shoot(page, "demo-crm-page-hindi")
        assert app.extensions["simulator"].get_call(ucid).queued == "Sale closed"
    finally:
        context.close()


@pytest.fixture
def make_run(tmp_path):
    """The demo as `make run` serves it: gunicorn (its asgi worker, so the panel's live event
    stream is there) with no WIDGET_* variable but a data folder and a port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIDGET_")}
    server = GunicornServer(
        tmp_path, env | {"WIDGET_DATA_DIR": str(tmp_path)}, name="make-run", workers=1
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_the_demo_as_make_run_serves_it_hears_the_call_end_from_cloudagent(
    browser, make_run, shoot
):
    context = browser.new_context(viewport={"width": 1000, "height": 760})
    # In every frame: count the host page's own `call-ended` messages as the widget gets them.
    context.add_init_script(
        """window.hostCallEnded = 0;
        window.addEventListener("message", (e) => {
          if (e.data && e.data.type === "cloudagent-disposition-host"
              && e.data.event === "call-ended") window.hostCallEnded += 1;
        });"""
    )
    page = context.new_page()
    try:
        page.goto(make_run.url + "/")
        widget = page.frame_locator("#widget-slot iframe")
        widget.get_by_role("button", name="Save disposition").wait_for()
        expect(widget.locator("main[data-events]")).to_have_count(1)
        page.wait_for_timeout(500)  # the stream is open by now; an event before it comes anyway

        # Hang up: the page tells the widget nothing; CloudAgent's Disconnect (the simulator
        # posts it to the widget's receivers) starts the clock with the demo's wrap-up time.
        page.get_by_role("button", name="Hang up").click()
        timer = widget.get_by_role("timer", name=WRAPUP_TIMER)
        expect(timer).to_be_visible(timeout=WAIT)
        minutes, _, rest = timer.inner_text().split()[-1].partition(":")
        assert 0 <= int(minutes) * 60 + int(rest) <= 30  # the simulator's wrap-up time
        ended = page.locator("#events li", has_text='"event":"call-ended"')
        expect(ended).to_have_count(1, timeout=WAIT)
        assert '"source":"cloudagent"' in ended.inner_text()
        (panel,) = [frame for frame in page.frames if "/disposition?" in frame.url]
        assert panel.evaluate("window.hostCallEnded") == 0  # the clock is CloudAgent's alone
        shoot(page, "demo-crm-page")

        # Saved in wrap-up: the simulator's call summary confirms it, the clock stops.
        widget.get_by_label("Disposition", exact=True).select_option("Sale closed")
        widget.get_by_role("button", name="Save disposition").click()
        widget.locator('[data-outcome="saved"]').wait_for()
        confirmed = page.locator("#events li", has_text='"event":"confirmed"')
        expect(confirmed).to_have_count(1, timeout=WAIT)
        assert '"disposition":"Sale closed"' in confirmed.inner_text()
        assert '"matches":true' in confirmed.inner_text()
        expect(timer).to_be_hidden(timeout=WAIT)

        # A call left to CloudAgent's automatic disposition: Hang up, let wrap-up expire.
        page.get_by_role("button", name="New call").click()
        page.locator("#call-state", has_text="live").wait_for()
        widget.get_by_role("button", name="Save disposition").wait_for()
        page.wait_for_timeout(500)
        page.get_by_role("button", name="Hang up").click()
        expect(page.locator("#events li", has_text='"event":"call-ended"')).to_have_count(
            2, timeout=WAIT
        )
        page.get_by_role("button", name="Let wrap-up expire").click()
        expect(confirmed).to_have_count(2, timeout=WAIT)
        assert "Wrap up time exceeded" in confirmed.first.inner_text()
    finally:
        context.close()
