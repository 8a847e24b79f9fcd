"""The client against CloudAgent over real HTTP: the simulator, or a loopback server that
answers with each documented body and each fault."""

import json
import threading
import time

import pytest
import requests
import responses
from werkzeug import Response

from tests.helpers import DID, DOCUMENTED_RESPONSES, READ_TIMEOUT, Clock
from webapp.cloudagent import CloudAgentClient, SqliteTokenStore, Token
from webapp.cloudagent.client import ANSWER_CHUNK, MAX_ANSWER_BYTES

CASES = DOCUMENTED_RESPONSES
EXPECTED_KIND = {
    "token": "unavailable",
    "configuration": "rejected",
    "queued": "queued",
    "saved": "saved",
    "already_disposed": "already_disposed",
    "call_context": "rejected",
    "input": "rejected",
}


def save(client, call, **fields):
    args = dict(agent_id="agent1", did=DID, ucid=call.ucid, disposition="Interested")
    return client.set_disposition(**(args | fields))


# -- against the simulator -------------------------------------------------------------------


def test_the_disposition_list_comes_from_action_get(client, call, simulator):
    result = client.fetch_dispositions("agent1", DID, call.ucid)
    assert result.ok
    assert result.names == tuple(simulator.account("demo").dispositions)


def test_a_save_while_live_is_queued_and_can_be_replaced(client, call, simulator):
    assert save(client, call).kind == "queued"
    assert save(client, call, disposition="Sale closed").kind == "queued"
    simulator.hang_up(call.ucid)
    assert simulator.get_call(call.ucid).disposition == "Sale closed"
    # The queued one was applied at hang-up, so a further save finds the call disposed.
    assert save(client, call).kind == "already_disposed"


def test_a_save_in_wrap_up_is_saved_once(client, call, simulator):
    simulator.hang_up(call.ucid)
    outcome = save(client, call, comments="Wants a brochure")
    assert (outcome.kind, outcome.upstream_text) == ("saved", "Disposition saved successfully")
    assert save(client, call).kind == "already_disposed"


def test_a_save_after_wrap_up_expired_is_already_disposed(client, call, simulator):
    simulator.hang_up(call.ucid)
    simulator.expire_wrapup(call.ucid)
    assert save(client, call).kind == "already_disposed"


@pytest.mark.parametrize(
    "fields, reason, text",
    [
        ({"agent_id": "agent2"}, "call_context", "Agent is not on this call."),
        ({"agent_id": "nobody"}, "call_context", "Invalid agent"),
        ({"ucid": "123456"}, "call_context", f"Invalid ucid [123456] or did [{DID}]"),
        ({"disposition": "Made up"}, "input", "Invalid Disposition"),
        ({"disposition": ""}, "input", "Empty disposition code"),
        ({"pause": True, "pause_reason": ""}, "input", "Provide pause reason"),
    ],
)
def test_refusals_of_the_call_context_and_input(client, call, fields, reason, text):
    outcome = save(client, call, **fields)
    assert (outcome.kind, outcome.reason, outcome.upstream_text) == ("rejected", reason, text)


def test_pausing_sends_the_reason(client, call, simulator):
    assert save(client, call, pause=True, pause_reason="Lunch").kind == "queued"
    request = simulator.get_call(call.ucid).attempts[-1].request
    assert (request.pause_after_dispose, request.pause_reason) == (True, "Lunch")


def test_a_ucid_of_twenty_characters_is_unavailable_not_rejected(client, simulator):
    outcome = save(client, simulator.start_call("agent1", DID, ucid="1" * 20))
    assert (outcome.kind, outcome.reason) == ("unavailable", "busy")


def test_an_account_on_basic_auth_is_a_configuration_refusal_in_token_mode(simulator, make_client):
    simulator.add_account(
        "basic", "basic-key", "BASIC_AUTH", agents={"agent1"}, dids={DID}, dispositions=["A"]
    )
    client = make_client(username="basic", api_key="basic-key")
    outcome = save(client, simulator.start_call("agent1", DID), disposition="A")
    assert (outcome.kind, outcome.reason) == ("rejected", "configuration")


def test_api_key_mode_sends_the_key_and_never_mints(simulator, make_client):
    simulator.add_account(
        "basic", "basic-key", "BASIC_AUTH", agents={"agent1"}, dids={DID}, dispositions=["A"]
    )
    client = make_client(username="basic", api_key="basic-key", auth="apikey", token_store=None)
    assert save(client, simulator.start_call("agent1", DID), disposition="A").kind == "queued"
    assert simulator.stats()["requests"]["generateToken"] == 0


def test_a_wrong_api_key_fails_the_mint_and_sends_nothing(make_client, call, simulator):
    outcome = save(make_client(api_key="wrong"), call)
    assert (outcome.kind, outcome.reason) == ("unavailable", "mint_failed")
    assert simulator.stats()["requests"]["Set"] == 0


def test_an_expired_or_replaced_token_is_renewed_and_the_save_goes_through(client, call, simulator):
    assert save(client, call).kind == "queued"
    simulator.expire_token("demo")
    assert save(client, call).kind == "queued"
    simulator.rotate_token("demo")
    assert save(client, call).kind == "queued"
    assert simulator.stats()["mints"]["demo"] == 4  # ours, ours again, an outsider's, ours


def test_calls_share_one_kept_alive_connection(client, call, upstream):
    for _ in range(5):
        assert save(client, call).kind == "queued"
    assert client.fetch_dispositions("agent1", DID, call.ucid).ok
    pools = client.session.get_adapter(upstream.url).poolmanager.pools
    opened = [pools[key].num_connections for key in pools.keys()]  # noqa: SIM118 (not iterable)
    assert opened == [1]  # mint, five Sets and a get: over one connection


# -- against a loopback server with canned answers -------------------------------------------

TOKEN = {"token": "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjQxMDI0NDQ4MDB9.c2ln", "message": ""}


@pytest.fixture
def canned(httpserver, tmp_path):
    """A client whose CloudAgent is pytest-httpserver; the test says what it answers."""
    httpserver.expect_request("/ca_apis/CAToken/generateToken", method="POST").respond_with_json(
        TOKEN
    )
    return CloudAgentClient(
        base_url=httpserver.url_for("/"),
        username="acme",
        api_key="acme-key",
        token_store=SqliteTokenStore(tmp_path / "tokens.sqlite3"),
        connect_timeout=30,
        read_timeout=READ_TIMEOUT,
    )


def sent(httpserver, path="/ca_apis/DispositionAPIV2"):
    return [json.loads(req.data) for req, _ in httpserver.log if req.path == path]


@pytest.mark.parametrize("case", CASES, ids=[c["when"] for c in CASES])
def test_every_documented_body_over_http(canned, httpserver, case):
    httpserver.expect_request("/ca_apis/DispositionAPIV2").respond_with_json(case["body"])
    outcome = canned.set_disposition(agent_id="a1", did="d1", ucid="u1", disposition="X")
    assert outcome.kind == EXPECTED_KIND[case["kind"]]
    # A refused token is renewed and the save tried once more; nothing else is retried.
    expected_sets = 2 if case["kind"] == "token" else 1
    assert len(sent(httpserver)) == expected_sets


def test_what_a_save_sends(canned, httpserver):
    httpserver.expect_request("/ca_apis/DispositionAPIV2").respond_with_json(CASES[4]["body"])
    canned.set_disposition(agent_id="a1", did="d1", ucid="u1", disposition="X", comments="hi")
    canned.set_disposition(
        agent_id="a1", did="d1", ucid="u1", disposition="X", pause=True, pause_reason="Lunch"
    )
    plain, pausing = sent(httpserver)
    assert plain == {
        "action": "Set",
        "userName": "acme",
        "agentID": "a1",
        "did": "d1",
        "ucid": "u1",
        "autoRelease": "true",
        "disposition": "X",
        "comments": "hi",
        "pauseAfterDispose": "false",
    }
    assert (pausing["pauseAfterDispose"], pausing["pauseReason"]) == ("true", "Lunch")
    mint = next(req for req, _ in httpserver.log if req.path.endswith("generateToken"))
    assert mint.headers["apiKey"] == "acme-key" and json.loads(mint.data) == {"userName": "acme"}
    (req, _) = next(entry for entry in httpserver.log if entry[0].path.endswith("V2"))
    assert req.headers["Authorization"] == f"Bearer {TOKEN['token']}"
    assert "apiKey" not in req.headers


def test_a_callback_time_is_sent_only_when_given_and_only_in_cloudagents_form(canned, httpserver):
    httpserver.expect_request("/ca_apis/DispositionAPIV2").respond_with_json(CASES[4]["body"])
    args = dict(agent_id="a1", did="d1", ucid="u1", disposition="Call back later")
    canned.set_disposition(**args, callback_time="2026-11-29 10:30")
    canned.set_disposition(**args)
    with_time, without = sent(httpserver)
    assert with_time["callBackTime"] == "2026-11-29 10:30"
    assert "callBackTime" not in without
    for wrong in ("2026-11-29T10:30", "2026-11-29 10:30:00", "tomorrow", " 2026-11-29 10:30",
                  "٢٠٢٦-11-29 10:30"):  # fmt: skip
        with pytest.raises(ValueError, match="YYYY-MM-DD HH:MM"):
            canned.set_disposition(**args, callback_time=wrong)
    assert len(sent(httpserver)) == 2  # nothing sent for a malformed one


def test_what_a_get_sends(canned, httpserver):
    httpserver.expect_request("/ca_apis/DispositionAPIV2").respond_with_json(
        {"status": "Success", "details": ["A"]}
    )
    assert canned.fetch_dispositions("a1", "d1", "u1").names == ("A",)
    assert sent(httpserver) == [
        {
            "action": "get",
            "userName": "acme",
            "agentID": "a1",
            "did": "d1",
            "ucid": "u1",
            "autoRelease": "true",
        }
    ]


@pytest.mark.parametrize(
    "response, reason",
    [
        (Response("<html><h1>502 Bad Gateway</h1></html>", 502), "bad_response"),
        (Response("<html>oops</html>", 500, content_type="text/html"), "bad_response"),
        (Response("", 200), "bad_response"),
        (Response("{not json", 200), "bad_response"),
        (Response("[]", 200, content_type="application/json"), "bad_response"),
        (Response('{"message": "?"}', 200, content_type="application/json"), "bad_response"),
    ],
)
def test_http_faults_become_unavailable(canned, httpserver, response, reason):
    httpserver.expect_request("/ca_apis/DispositionAPIV2").respond_with_response(response)
    outcome = canned.set_disposition(agent_id="a", did="d", ucid="u", disposition="X")
    assert (outcome.kind, outcome.reason) == ("unavailable", reason)
    listing = canned.fetch_dispositions("a", "d", "u")
    assert listing.error.kind == "unavailable"


def test_an_upstream_5xx_logs_one_warning_a_minute_per_kind_with_the_count_held_back(
    canned, httpserver, caplog
):
    """Like a timeout, an HTTP 5xx is a WARNING (a gateway's page may follow a Set that went
    through); during an outage, one line a minute per action and status, then the count."""
    clock = Clock(1000.0)
    canned.server_errors.clock = clock
    page = "<html><head><title>502 Bad Gateway</title></head></html>"
    httpserver.expect_request("/ca_apis/DispositionAPIV2").respond_with_response(
        Response(page, 502, content_type="text/html")
    )

    def warnings():
        return [
            r.getMessage()
            for r in caplog.records
            if r.levelname == "WARNING" and "answered HTTP" in r.getMessage()
        ]

    caplog.set_level("INFO", logger="webapp.cloudagent")
    for _ in range(3):
        canned.set_disposition(agent_id="a", did="d", ucid="u", disposition="X")
    canned.fetch_dispositions("a", "d", "u")  # another kind: its own line
    (first, listing) = warnings()
    assert first.startswith("cloudagent Set: answered HTTP 502 after ")
    assert "titled '502 Bad Gateway'" in first and "result is unknown" in first
    assert "<html" not in first and listing.startswith("cloudagent get: answered HTTP 502")
    clock.now += 61
    canned.set_disposition(agent_id="a", did="d", ucid="u", disposition="X")
    assert warnings()[-1].endswith("; 2 more like it not logged in the 60 s before")
    assert len(warnings()) == 3


def test_a_slow_answer_is_given_up_and_reported_unknown(canned, httpserver):
    """CloudAgent holds the Set's answer until the client has given up on it (its read
    timeout, shortened for this one call): the save's result is unknown, and it is not sent
    again."""
    expires = time.time() + 3600
    canned.token_store.replace(canned.account, None, lambda: Token(TOKEN["token"], expires))
    received, release, answered = [], threading.Event(), threading.Event()

    def held(request):
        received.append(json.loads(request.data))
        release.wait(120)
        answered.set()
        return Response(json.dumps(CASES[4]["body"]), 200)

    httpserver.expect_request("/ca_apis/DispositionAPIV2").respond_with_handler(held)
    canned.timeout = (30, 0.5)
    try:
        outcome = canned.set_disposition(agent_id="a", did="d", ucid="u", disposition="X")
    finally:
        release.set()
        answered.wait(120)  # the one-threaded loopback server is free for the next test
    assert (outcome.kind, outcome.reason) == ("unavailable", "lost_answer")
    assert "unknown" in outcome.message
    assert len(received) == 1  # never retried


def test_nothing_listening_is_unavailable_and_nothing_was_sent(tmp_path):
    with requests.Session() as probe:
        pass
    client = CloudAgentClient(
        base_url="http://127.0.0.1:9",  # discard port: nothing listens on loopback
        username="acme",
        api_key="k",
        auth="apikey",
        session=probe,
    )
    outcome = client.set_disposition(agent_id="a", did="d", ucid="u", disposition="X")
    assert (outcome.kind, outcome.reason) == ("unavailable", "unreachable")
    assert "Nothing was sent" in outcome.message


@responses.activate
def test_a_connect_timeout_is_unavailable_and_nothing_was_sent():
    responses.add(
        responses.POST,
        "http://ca.test/ca_apis/DispositionAPIV2",
        body=requests.ConnectTimeout("timed out"),
    )
    client = CloudAgentClient(base_url="http://ca.test", username="u", api_key="k", auth="apikey")
    outcome = client.set_disposition(agent_id="a", did="d", ucid="u", disposition="X")
    assert (outcome.kind, outcome.reason) == ("unavailable", "unreachable")


def test_the_session_reads_proxies_once_and_then_ignores_the_environment(monkeypatch):
    from webapp.cloudagent.client import make_session

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    session = make_session("https://in1-ccaas-api.ozonetel.com")
    assert session.proxies.get("https") == "http://proxy.internal:3128"
    assert session.verify == "/etc/ssl/certs/ca-certificates.crt"
    assert session.trust_env is False
    assert session.get_adapter("https://x").poolmanager.connection_pool_kw["maxsize"] == 256


# -- what is sent, and what of an answer is read ---------------------------------------------


@pytest.mark.parametrize("userinfo", [False, True], ids=["plain_url", "password_in_url"])
@pytest.mark.parametrize("auth", ["token", "apikey"])
def test_each_request_is_what_requests_prepares_from_the_session_and_the_call(
    httpserver, tmp_path, auth, userinfo
):
    """The fixed part of a request (method, URL, the session's headers) is prepared once per
    URL; what goes out is still what PreparedRequest.prepare() makes, header for header, call
    after call, with each call's own token and body (a password in the URL included: requests
    sends it as Basic auth, over the token)."""
    httpserver.expect_request("/ca_apis/CAToken/generateToken").respond_with_json(TOKEN)
    httpserver.expect_request("/ca_apis/DispositionAPIV2").respond_with_json(CASES[4]["body"])
    base_url = httpserver.url_for("/")
    if userinfo:
        base_url = base_url.replace("://", "://acme:s3cret@")
    client = CloudAgentClient(
        base_url=base_url,
        username="acme",
        api_key="acme-key",
        auth=auth,
        token_store=SqliteTokenStore(tmp_path / "tokens.sqlite3") if auth == "token" else None,
    )
    other = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjQxMDI0NDQ4MDF9.b3RoZXI"
    client.set_disposition(agent_id="a1", did="d1", ucid="u1", disposition="X")
    client._token = Token(other, time.time() + 3600)  # renewed since: the next call sends it
    client.set_disposition(agent_id="a1", did="d1", ucid="u2", disposition="Y", comments="é")
    client.fetch_dispositions("a1", "d1", "u3")

    tokens = iter([TOKEN["token"], other, other])
    for received, _ in httpserver.log:
        body = json.loads(received.data)
        own = {"Content-Type": "application/json"}
        if received.path.endswith("generateToken") or auth == "apikey":
            own["apiKey"] = "acme-key"
        else:
            own["Authorization"] = f"Bearer {next(tokens)}"
        expected = requests.PreparedRequest()  # as client.py prepared each call before
        expected.prepare(
            method="POST",
            url=base_url.rstrip("/") + received.path,
            headers={**client.session.headers, **own},
            json=body,
        )
        got = {k.lower(): v for k, v in received.headers.items() if k.lower() != "host"}
        assert got == {k.lower(): v for k, v in expected.headers.items()}
        assert received.data == expected.body
    assert len(httpserver.log) == (4 if auth == "token" else 3)


class _Body:
    """A finite answer body (a transport's), counting what the client pulls from it."""

    def __init__(self, size: int) -> None:
        self.left, self.pulled, self.closed = size, 0, False

    def read(self, amount: int | None = None, **_options: object) -> bytes:
        chunk = b"x" * min(self.left, amount or self.left)
        self.left -= len(chunk)
        self.pulled += len(chunk)
        return chunk

    def close(self) -> None:
        self.closed = True


class _Redirecting(requests.adapters.BaseAdapter):
    """Answers every request with a redirect to `location`, its body `size` bytes long."""

    def __init__(self, location: str, size: int) -> None:
        super().__init__()
        self.location, self.size, self.bodies = location, size, []

    def send(self, request, **_options):
        response = requests.Response()
        response.status_code = 302
        response.headers["Location"] = self.location
        response.raw = _Body(self.size)
        response.request, response.url = request, request.url
        self.bodies.append(response.raw)
        return response

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    "location, size",
    [("https://elsewhere.test/x", 3 * MAX_ANSWER_BYTES), ("http://[not-a-url/", 10)],
    ids=["long_answer", "unparsable_location"],
)
def test_a_redirects_answer_is_read_no_further_than_any_answer_and_never_raises(location, size):
    """Not followed, so nothing of a redirect is prepared: its answer is read only as far as
    any other (session.send() would read all of it) and a Location that requests cannot parse
    is one more unusable answer (session.send() would raise ValueError)."""
    adapter = _Redirecting(location, size)
    session = requests.Session()
    session.mount("https://ca.test", adapter)
    client = CloudAgentClient(
        base_url="https://ca.test", username="u", api_key="k", auth="apikey", session=session
    )
    outcome = client.set_disposition(agent_id="a", did="d", ucid="u", disposition="X")
    assert (outcome.kind, outcome.reason) == ("unavailable", "bad_response")
    assert outcome.http_status == 302
    (body,) = adapter.bodies
    assert body.pulled <= MAX_ANSWER_BYTES + ANSWER_CHUNK
    assert body.closed == (size > MAX_ANSWER_BYTES)  # a long one's connection dropped
