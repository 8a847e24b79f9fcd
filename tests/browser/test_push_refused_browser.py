"""A panel whose event stream is refused for good (its context expired: 403) stops asking
for it, in a real browser against the production server; a stream refused for a while (a
503 from a proxy during a deploy) is still asked for again with back-off. The panel stays
usable either way: the stream is an extra."""

import time

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from tests.helpers import DID, open_call
from webapp.panel.context import SALT

pytestmark = pytest.mark.browser

SECRET_KEY = "secret-key-for-tests-0123456789"  # tests/helpers.py widget_env
WINDOW = 8.0  # seconds watched: the old back-off (0.5 s, 1 s, 2 s, 4 s) asks 3 times in it


def expired_context(ucid: str) -> str:
    """The panel's own call context, as the server signed it 5 hours ago (max age: 4 h)."""

    class FiveHoursAgo(TimestampSigner):
        def get_timestamp(self):
            return int(time.time()) - 5 * 3600

    serializer = URLSafeTimedSerializer(SECRET_KEY, salt=SALT, signer=FiveHoursAgo)
    return serializer.dumps({"u": ucid, "a": "agent1", "d": DID})


def stream_requests(page):
    """The answers to the panel's requests for its event stream, as (resource type, status)."""
    seen = []

    def answered(response):
        if "/disposition/events" in response.url:
            seen.append((response.request.resource_type, response.status))

    page.on("response", answered)
    return seen


def test_a_panel_whose_context_expired_stops_asking_for_its_stream(page, live_sites):
    call = live_sites.sim.simulator.start_call("agent1", DID)
    old = expired_context(call.ucid)

    def as_expired(route):
        # The panel's stream request as it is once its context has expired.
        url, _, query = route.request.url.partition("?")
        params = [p if not p.startswith("context=") else f"context={old}" for p in query.split("&")]
        route.continue_(url=url + "?" + "&".join(params))

    page.context.route("**/disposition/events?*", as_expired)
    seen = stream_requests(page)
    frame = open_call(page, live_sites, call.ucid)
    deadline = time.monotonic() + 60
    while not any(status == 403 for _, status in seen):
        assert time.monotonic() < deadline, f"the stream was never asked for: {seen}"
        page.wait_for_timeout(100)
    page.wait_for_timeout(WINDOW * 1000)
    streams = [entry for entry in seen if entry[0] == "eventsource"]
    assert streams == [("eventsource", 403)], f"asked again after a 403: {seen}"
    assert [entry for entry in seen if entry[0] == "fetch"] == [("fetch", 403)]
    # Nothing said, nothing broken: the agent can still save.
    assert frame.get_by_role("button", name="Save disposition").is_enabled()
    assert frame.get_by_role("status").inner_text() == ""


def test_a_stream_refused_for_a_while_is_asked_for_again(page, live_sites):
    call = live_sites.sim.simulator.start_call("agent1", DID)
    page.context.route(
        "**/disposition/events?*",
        lambda route: route.fulfill(status=503, body="deploying\n", content_type="text/plain"),
    )
    seen = stream_requests(page)
    open_call(page, live_sites, call.ucid)
    deadline = time.monotonic() + 60
    while len([e for e in seen if e[0] == "eventsource"]) < 3:
        assert time.monotonic() < deadline, f"not asked for again after a 503: {seen}"
        page.wait_for_timeout(100)
