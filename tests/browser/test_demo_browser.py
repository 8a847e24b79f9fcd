"""The demo of `make run`: a CRM page on localhost framing the widget from 127.0.0.1."""

import re

import pytest
from playwright.sync_api import expect
from werkzeug.serving import make_server

from webapp import create_app
from webapp.simulator import ServerThread

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
        # The page passes the campaign's wrap-up time on: the panel counts it down.
        timer = widget.get_by_role("timer", name=re.compile("^Wrap-up time left"))
        timer.wait_for()
        minutes, _, rest = timer.inner_text().split()[-1].partition(":")
        shown = int(minutes) * 60 + int(rest)
        assert 0 <= shown <= app.extensions["simulator"].wrapup_seconds
        assert '"event":"ready"' in page.locator("#events").inner_text()
        shoot(page, "demo-crm-page")

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
