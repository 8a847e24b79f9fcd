"""The go-live check, `flask --app wsgi cloudagent check --did D`, against the simulator on a
loopback port and its faults (and a loopback mock for a proxy): what it prints, its exit
status, what it costs CloudAgent, and that it saves nothing and shows no secret."""

import socket

import pytest
from werkzeug import Response

from tests.helpers import DID, SUPPORT
from webapp.cloudagent.tokens import MINT_BUDGET

KEY = "demo-api-key"


def check(app, did=DID):
    result = app.test_cli_runner().invoke(args=["cloudagent", "check", "--did", did])
    assert KEY not in result.output
    return result.exit_code, result.output


def test_a_working_account_prints_its_list_and_the_token_it_will_use(make_app, simulator):
    app = make_app()
    code, output = check(app)
    assert code == 0, output
    assert "reached 127.0.0.1:" in output and "auth: token" in output
    assert "signed in: minted a token, valid until" in output
    assert f"{MINT_BUDGET - 1} mint(s) left this hour" in output
    assert "5 disposition(s)" in output and "    Interested\n" in output
    assert output.rstrip().endswith("OK: a panel on this DID would load its list and could save.")
    token = app.extensions["cloudagent"].token_store.current(app.extensions["cloudagent"].account)
    assert token.value not in output  # the token is never printed
    code, output = check(make_app())  # another run, another process: the stored token
    assert code == 0 and "signed in: reused the stored token" in output
    assert "the API key itself was not tried" in output  # said, not glossed over
    stats = simulator.stats()
    assert stats["mints"] == {"demo": 1} and stats["requests"]["Set"] == 0  # nothing saved
    assert len(list(app.extensions["audit"].rows())) == 0
    code, output = check(make_app(), SUPPORT)
    assert code == 0 and "60 disposition(s)" in output and "… and 0 more" not in output


def test_apikey_mode_on_a_token_account_says_which_setting_to_change(make_app):
    code, output = check(make_app(WIDGET_CLOUDAGENT_AUTH="apikey"))
    assert code == 1 and "auth: apikey" in output
    assert "FAILED to fetch the list" in output and "TOKEN_AUTH" in output
    assert "WIDGET_CLOUDAGENT_AUTH=token" in output


def test_token_mode_on_a_basic_auth_account_says_which_setting_to_change(make_app, simulator):
    simulator.add_account("basic", "basic-key-0123", "BASIC_AUTH", dids={DID},
                          dispositions=["Sale"])  # fmt: skip
    app = make_app(WIDGET_CLOUDAGENT_USERNAME="basic", WIDGET_CLOUDAGENT_API_KEY="basic-key-0123")
    code, output = check(app)
    assert code == 1 and "BASIC_AUTH" in output and "WIDGET_CLOUDAGENT_AUTH=apikey" in output
    keyed = make_app(WIDGET_CLOUDAGENT_USERNAME="basic", WIDGET_CLOUDAGENT_API_KEY="basic-key-0123",
                     WIDGET_CLOUDAGENT_AUTH="apikey")  # fmt: skip
    code, output = check(keyed)
    assert code == 0 and "1 disposition(s)" in output and "    Sale\n" in output


def test_a_wrong_key_or_user_name_is_named(make_app, simulator):
    code, output = check(make_app(WIDGET_CLOUDAGENT_API_KEY="wrong-key-0123456"))
    assert code == 1 and "FAILED to sign in" in output
    assert "refused the user name or the API key" in output
    assert "wrong-key-0123456" not in output
    code, output = check(make_app(WIDGET_CLOUDAGENT_USERNAME="nobody"))
    assert code == 1 and "refused the user name or the API key" in output
    code, output = check(
        make_app(WIDGET_CLOUDAGENT_USERNAME="nobody", WIDGET_CLOUDAGENT_AUTH="apikey")
    )
    assert code == 1 and "WIDGET_CLOUDAGENT_USERNAME and WIDGET_CLOUDAGENT_API_KEY" in output
    assert simulator.stats()["requests"]["Set"] == 0


def test_a_wrong_host_is_told_by_how_it_fails(make_app, upstream, monkeypatch):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    code, output = check(make_app(WIDGET_CLOUDAGENT_URL=f"http://127.0.0.1:{port}"))
    assert code == 1 and "refused the connection" in output and "in1-ccaas-api" in output
    code, output = check(make_app(WIDGET_CLOUDAGENT_URL=upstream.url + "/not-cloudagent"))
    assert code == 1 and "answered 404: this is not CloudAgent's API host" in output

    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    code, output = check(make_app(WIDGET_CLOUDAGENT_URL="https://in1-ccaas-api.ozonetel.example"))
    assert code == 1 and "does not resolve (DNS)" in output


@pytest.mark.parametrize(
    "kind, said",
    [
        ("not_json", "could not be read (HTTP 200). CloudAgent answered: Service temporarily"),
        ("json_list", "could not be read (HTTP 200). CloudAgent answered: []"),
        ("empty", "(an empty body)"),
        ("http_502", "an HTML page answered (HTTP 502): a proxy"),
        ("status_error", "Unable to Dispose"),
    ],
)
def test_an_unreadable_list_is_shown_clipped(make_app, simulator, kind, said):
    simulator.add_fault("get", kind)
    code, output = check(make_app())
    assert code == 1 and "FAILED to fetch the list" in output and said in output


def test_a_hostile_list_is_printed_safely(make_app, simulator):
    simulator.add_fault("get", "huge_list")
    code, output = check(make_app())
    assert code == 0 and "5005 disposition(s)" in output and "… and 4945 more" in output


def test_a_proxy_in_the_way_is_named(make_app, httpserver, tmp_path):
    page = "<html><head><title>Proxy Authentication Required</title></head></html>"
    httpserver.expect_request("/ca_apis/CAToken/generateToken").respond_with_response(
        Response(page, 407, content_type="text/html")
    )
    httpserver.expect_request("/ca_apis/DispositionAPIV2").respond_with_response(
        Response(page, 407, content_type="text/html")
    )
    url = httpserver.url_for("/").rstrip("/")
    code, output = check(make_app(WIDGET_CLOUDAGENT_URL=url))
    assert code == 1 and "407 Proxy Authentication Required" in output and "HTTPS_PROXY" in output
    code, output = check(make_app(WIDGET_CLOUDAGENT_URL=url, WIDGET_CLOUDAGENT_AUTH="apikey"))
    assert code == 1 and "407 Proxy Authentication Required" in output
    httpserver.clear()
    httpserver.expect_request("/ca_apis/CAToken/generateToken").respond_with_response(
        Response(
            "<html><title>Sign in to the network</title></html>", 200, content_type="text/html"
        )
    )
    fresh = str(tmp_path / "fresh")  # no failed mint of the 407 to hold this one back
    code, output = check(make_app(WIDGET_CLOUDAGENT_URL=url, WIDGET_DATA_DIR=fresh))
    assert code == 1 and "'Sign in to the network'" in output and "proxy" in output


def test_a_spent_mint_budget_is_said_without_minting(make_app, simulator):
    app = make_app(WIDGET_CLOUDAGENT_API_KEY="wrong-key-0123456")
    check(app)  # a refused mint holds the next attempt back a minute
    code, output = check(app)
    assert code == 1 and "no token could be minted now" in output
    assert simulator.stats()["requests"]["generateToken"] == 1
