"""The Subscribe API client against the simulator on a loopback port, and against a loopback
mock for what the simulator never says: each answer read into its result, the raw text kept,
no redirect followed, no answer read past its bound, the key never logged."""

from __future__ import annotations

import logging
import socket

import pytest
from werkzeug import Request, Response
from werkzeug.serving import make_server

from webapp.cloudagent import (
    SUBSCRIBE_PATH,
    SUBSCRIPTIONS_LIST_PATH,
    UNSUBSCRIBE_PATH,
    SubscriptionsClient,
)
from webapp.cloudagent.subscriptions import MAX_ANSWER_BYTES
from webapp.simulator import ServerThread
from webapp.simulator import subscribe as simulated
from webapp.simulator.app import UNDERSCORE_HEADERS
from webapp.simulator.server import RequestHandler

CALL_URL = "https://widget.example.com/cloudagent/events/" + "t" * 40 + "/call"


def client_of(url, username="demo", api_key="demo-api-key", **options):
    options = {"connect_timeout": 30, "read_timeout": 60} | options
    return SubscriptionsClient(base_url=url, username=username, api_key=api_key, **options)


def test_the_paths_are_the_simulator_s():
    assert (SUBSCRIBE_PATH, SUBSCRIPTIONS_LIST_PATH, UNSUBSCRIBE_PATH) == (
        simulated.SUBSCRIBE_PATH, simulated.LIST_PATH, simulated.UNSUBSCRIBE_PATH,
    )  # fmt: skip


def test_subscribe_list_and_unsubscribe_against_the_simulator(upstream):
    client = client_of(upstream.url)
    answer = client.list()
    assert (answer.result, answer.text) == ("none", "Subscription doesnt exists for User: demo")
    answer = client.subscribe(CALL_URL)
    assert answer.ok and answer.text == "Subscription added successfully for User: demo"
    assert answer.http_status == 200
    answer = client.list()
    assert answer.ok and answer.urls == {"callEventsURL": CALL_URL, "agentEventsURL": ""}
    answer = client.subscribe(CALL_URL, CALL_URL.replace("/call", "/agent"))
    assert client.list().urls["agentEventsURL"].endswith("/agent")
    answer = client.unsubscribe("both")
    assert answer.ok and answer.text == "Unsubscribed to both events successfully for User: demo"
    answer = client.unsubscribe("call")
    assert (answer.result, answer.text) == ("none", "Subscription doesn't exists for User: demo")
    assert upstream.simulator.stats()["subscription_requests"] == {
        "subscribe": 2, "list": 3, "unsubscribe": 2,
    }  # fmt: skip


def test_a_wrong_key_or_user_name_is_unauthorized(upstream):
    for client in (client_of(upstream.url, api_key="wrong"), client_of(upstream.url, "nobody")):
        for answer in (client.subscribe(CALL_URL), client.list(), client.unsubscribe()):
            assert (answer.result, answer.text, answer.http_status) == (
                "unauthorized", "Unauthorized", 401,
            )  # fmt: skip
    assert upstream.simulator.events.subscription("demo") is None


def test_an_unknown_kind_is_refused_before_sending(upstream):
    with pytest.raises(ValueError):
        client_of(upstream.url).unsubscribe("all")
    assert upstream.simulator.stats()["subscription_requests"]["unsubscribe"] == 0


def test_the_headers_and_body_are_as_documented():
    seen = []

    @Request.application
    def recorder(request):
        # The headers as sent, `api_key` included (werkzeug's own server would drop it).
        seen.append((request.path, dict(request.environ[UNDERSCORE_HEADERS]), request.headers,
                     request.get_json(silent=True)))  # fmt: skip
        return Response(f"{request.path}: subscribed successfully, Unsubscribed successfully")

    server = ServerThread(make_server("127.0.0.1", 0, recorder, request_handler=RequestHandler))
    try:
        client = client_of(server.url, "acme", "k" * 32)
        client.subscribe(CALL_URL)
        client.unsubscribe()
    finally:
        server.stop()
    (path, underscored, headers, body), (path2, _, _, body2) = seen
    assert (path, path2) == (SUBSCRIBE_PATH, UNSUBSCRIBE_PATH)
    assert underscored == {"api_key": "k" * 32} and headers["username"] == "acme"
    assert headers["Content-Type"] == "application/json"
    assert body == {"callEventsURL": CALL_URL}  # no agentEventsURL
    assert body2 == {"eventType": "call"}


@pytest.mark.parametrize(
    "response, result",
    [
        (Response("Unauthorized", 200), "unauthorized"),  # the words, whatever the status
        (Response("", 401), "unauthorized"),
        (Response("", 302, headers={"Location": "https://elsewhere.example/"}), "unexpected"),
        (Response("<html><title>502 Bad Gateway</title></html>", 502), "unexpected"),
        (Response("Service temporarily unavailable", 200), "unexpected"),
        (Response("", 200), "unexpected"),
        (Response("x" * (MAX_ANSWER_BYTES + 1), 200), "unexpected"),
    ],
)
def test_odd_answers_are_kept_raw_and_never_taken_for_success(httpserver, response, result):
    httpserver.expect_request("/elsewhere").respond_with_data("followed!")
    for path in (SUBSCRIBE_PATH, SUBSCRIPTIONS_LIST_PATH, UNSUBSCRIBE_PATH):
        httpserver.expect_request(path).respond_with_response(response)
    client = client_of(httpserver.url_for("/"))
    for answer in (client.subscribe(CALL_URL), client.list(), client.unsubscribe()):
        assert answer.result == result and answer.http_status == response.status_code
        if len(response.get_data()) <= MAX_ANSWER_BYTES:
            assert answer.text == response.get_data(as_text=True)
        else:
            assert "not read" in answer.text
    assert [request.path for request, _ in httpserver.log if request.path == "/elsewhere"] == []


def test_a_list_in_another_shape_is_unexpected(httpserver):
    httpserver.expect_request(SUBSCRIPTIONS_LIST_PATH).respond_with_data('["https://x/call"]')
    answer = client_of(httpserver.url_for("/")).list()
    assert (answer.result, answer.text) == ("unexpected", '["https://x/call"]')


def test_a_host_that_does_not_listen_is_unreachable_and_a_silent_one_does_not_answer():
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    answer = client_of(f"http://127.0.0.1:{port}").list()
    assert answer.result == "unreachable" and "refused" in answer.text.lower()

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # takes the connection, never answers
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        answer = client_of(url, read_timeout=0.2).subscribe(CALL_URL)
        assert answer.result == "no_answer" and "no answer within 0.2 s" in answer.text
    finally:
        silent.close()


def test_the_key_is_never_logged_or_shown(upstream, caplog):
    caplog.set_level(logging.DEBUG)
    client = client_of(upstream.url, api_key="secret-api-key-0123456789")
    client.subscribe(CALL_URL)
    client.list()
    assert "secret-api-key-0123456789" not in caplog.text + repr(client)
