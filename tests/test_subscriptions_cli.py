"""`flask cloudagent subscribe|subscriptions|unsubscribe` against the simulator on a loopback
port (and a loopback mock for odd answers): what is registered, what is printed, the exit
status, each refusal in one plain line, and neither the events token nor the key shown."""

import socket

import pytest
from werkzeug import Response

from webapp import create_app
from webapp.cloudagent import SUBSCRIBE_PATH, SUBSCRIPTIONS_LIST_PATH

TOKEN = "Tk" * 20  # 40 characters
KEY = "demo-api-key"
PUBLIC = "https://widget.example.com"
CALL_URL = f"{PUBLIC}/cloudagent/events/{TOKEN}/call"


@pytest.fixture
def events_app(make_app, upstream):
    """make_events_app(**settings): the app subscribing with the simulator, token set."""

    def make(**settings):
        return make_app(
            **{"WIDGET_EVENTS_TOKEN": TOKEN, "WIDGET_CLOUDAGENT_EVENTS_API": upstream.url}
            | settings
        )

    return make


def run(app, *args):
    result = app.test_cli_runner().invoke(args=["cloudagent", *args])
    assert TOKEN not in result.output and KEY not in result.output  # stderr's log lines too
    return result.exit_code, result.stdout


def test_subscribe_registers_the_call_receiver_and_says_what_comes_next(events_app, simulator):
    code, output = run(events_app(), "subscribe", "--public-url", PUBLIC + "/")
    assert code == 0, output
    assert f"Registering {PUBLIC}/cloudagent/events/****/call with http://127.0.0.1:" in output
    assert "OK: CloudAgent said: Subscription added successfully for User: demo" in output
    assert "confirmed: the account's callEventsURL is this service's receiver" in output
    assert f"Callback URL to {PUBLIC}/cloudagent/events/****/summary" in output
    found = simulator.events.subscription("demo")
    assert (found.call_events_url, found.agent_events_url) == (CALL_URL, "")


def test_subscriptions_shows_the_urls_masked_and_whose_token_they_hold(events_app, simulator):
    app = events_app()
    code, output = run(app, "subscriptions")
    assert (code, output.strip()) == (0, "No subscription for 'demo': no events are sent.")
    simulator.events.subscribe("demo", CALL_URL, "https://other.example/hooks/agent")
    code, output = run(app, "subscriptions")
    assert code == 0 and output.splitlines() == [
        f"call events: {PUBLIC}/cloudagent/events/****/call (this service's token)",
        "agent events: https://other.example/hooks/agent",
    ]
    other = "Zz" * 20
    simulator.events.subscribe("demo", CALL_URL.replace(TOKEN, other), "")
    code, output = run(app, "subscriptions")
    assert other not in output and "/events/****/call (not this service's token)" in output
    assert "agent events: (none)" in output


def test_unsubscribe_removes_one_kind_or_both_and_nothing_is_no_failure(events_app, simulator):
    app = events_app()
    simulator.events.subscribe("demo", CALL_URL, "https://other.example/agent")
    code, output = run(app, "unsubscribe")  # --kind call by default
    assert code == 0 and "OK: CloudAgent said: Unsubscribed to call events successfully" in output
    assert simulator.events.subscription("demo").agent_events_url == "https://other.example/agent"
    code, output = run(app, "unsubscribe", "--kind", "both")
    assert code == 0 and simulator.events.subscription("demo") is None
    code, output = run(app, "unsubscribe", "--kind", "agent")
    assert code == 0 and "Nothing to remove: CloudAgent said: Subscription doesn't exists" in output
    code, output = run(app, "unsubscribe", "--kind", "all")
    assert code == 2  # click refuses an unknown choice


def test_subscribe_is_refused_without_a_token_or_with_a_bad_public_url(events_app, simulator):
    code, output = run(events_app(WIDGET_EVENTS_TOKEN=""), "subscribe", "--public-url", PUBLIC)
    assert code == 1 and output.startswith("FAILED: WIDGET_EVENTS_TOKEN is not set")
    for bad in ("widget.example.com", "ftp://widget.example.com", f"{PUBLIC}/?x=1"):
        code, output = run(events_app(), "subscribe", "--public-url", bad)
        assert code == 1 and output.startswith("FAILED: --public-url: not a base URL")
    assert simulator.stats()["subscription_requests"]["subscribe"] == 0


def test_a_plain_http_public_url_needs_allow_insecure(make_app, upstream):
    https_only = {
        "WIDGET_ALLOW_INSECURE": "",
        "WIDGET_CLOUDAGENT_URL": "https://in1-ccaas-api.ozonetel.example",
        "WIDGET_CLOUDAGENT_EVENTS_API": "https://subscription.ozonetel.example",
        "WIDGET_EVENTS_TOKEN": TOKEN,
    }
    app = make_app(**https_only)
    code, output = run(app, "subscribe", "--public-url", "http://widget.example.com")
    assert code == 1 and output.startswith("FAILED: --public-url: http:// would carry")
    assert len(output.strip().splitlines()) == 1


def test_a_wrong_key_or_user_name_is_unauthorized(events_app, simulator):
    for app in (
        events_app(WIDGET_CLOUDAGENT_API_KEY="wrong-key-0123456789"),
        events_app(WIDGET_CLOUDAGENT_USERNAME="nobody"),
    ):
        for args in (("subscribe", "--public-url", PUBLIC), ("subscriptions",), ("unsubscribe",)):
            code, output = run(app, *args)
            assert code == 1 and "FAILED: Unauthorized: CloudAgent refused the user name" in output
            assert "wrong-key-0123456789" not in output
    assert simulator.events.subscription("demo") is None


def test_an_unreachable_host_is_named(events_app):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    app = events_app(WIDGET_CLOUDAGENT_EVENTS_API=f"http://127.0.0.1:{port}")
    code, output = run(app, "subscriptions")
    assert code == 1 and output.startswith(f"FAILED: http://127.0.0.1:{port} could not be reached")
    assert "subscription.ccaas.ozonetel.com" in output


def test_an_unexpected_answer_is_shown_clipped_and_made_safe(events_app, httpserver):
    hostile = "<html>\x1b[31mBad Gateway\x07" + "x" * 500 + "</html>"
    httpserver.expect_request(SUBSCRIBE_PATH).respond_with_response(Response(hostile, 502))
    httpserver.expect_request("/moved" + SUBSCRIPTIONS_LIST_PATH).respond_with_response(
        Response("", 301, headers={"Location": "https://elsewhere.example/"})
    )
    app = events_app(WIDGET_CLOUDAGENT_EVENTS_API=httpserver.url_for("/").rstrip("/"))
    code, output = run(app, "subscribe", "--public-url", PUBLIC)
    assert code == 1 and "unexpected answer from http://localhost:" in output
    assert "(HTTP 502): <html>\\u001b[31mBad Gateway\\u0007xxx" in output
    assert "\x1b" not in output and "…" in output and len(output) < 400
    moved = events_app(WIDGET_CLOUDAGENT_EVENTS_API=httpserver.url_for("/moved"))
    code, output = run(moved, "subscriptions")
    assert code == 1 and "answered with a redirect (HTTP 301), not followed" in output


def test_demo_mode_subscribes_with_its_own_simulator(tmp_path):
    app = create_app({"WIDGET_DATA_DIR": str(tmp_path)})
    token = app.config["WIDGET"].events_token
    result = app.test_cli_runner().invoke(
        args=["cloudagent", "subscribe", "--public-url", "http://127.0.0.1:8000"]
    )
    assert result.exit_code == 0, result.output
    assert token not in result.output
    found = app.extensions["simulator"].events.subscription("demo")
    assert found.call_events_url == f"http://127.0.0.1:8000/cloudagent/events/{token}/call"
