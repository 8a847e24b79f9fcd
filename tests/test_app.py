"""Start-up: the app factory, demo mode, and a bad configuration refused in one line."""

import os
import subprocess
import sys
from functools import partial

import flask.app
import pytest
from werkzeug.exceptions import HTTPException, SecurityError
from werkzeug.routing import Map
from werkzeug.test import EnvironBuilder

from tests.helpers import ROOT, newest_embed_release
from webapp import create_app


def test_demo_mode_runs_on_the_builtin_simulator(tmp_path):
    app = create_app({"WIDGET_DATA_DIR": str(tmp_path)})
    settings = app.config["WIDGET"]
    assert settings.demo
    assert settings.cloudagent_url.startswith("http://127.0.0.1:")
    client = app.extensions["cloudagent"]
    call = app.extensions["simulator"].start_call("agent1", "914071327663")
    listing = app.extensions["dispositions"].get("agent1", "914071327663", call.ucid)
    assert "Interested" in listing.names
    outcome = client.set_disposition(
        agent_id="agent1", did="914071327663", ucid=call.ucid, disposition="Interested"
    )
    assert outcome.kind == "queued"
    assert (tmp_path / "tokens.sqlite3").exists()


def test_a_configured_account_is_not_demo(tmp_path):
    app = create_app(
        {
            "WIDGET_CLOUDAGENT_USERNAME": "acme",
            "WIDGET_CLOUDAGENT_API_KEY": "k" * 20,
            "WIDGET_SECRET_KEY": "s" * 20,
            "WIDGET_LAUNCH_SECRET": "l" * 20,
            "WIDGET_DATA_DIR": str(tmp_path),
        }
    )
    assert "simulator" not in app.extensions
    assert app.extensions["cloudagent"].base_url == "https://in1-ccaas-api.ozonetel.com"


def run_wsgi(env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WIDGET_")}
    return subprocess.run(
        [sys.executable, "-c", "import wsgi"],
        cwd=ROOT,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_bad_configuration_stops_start_up_with_one_line(tmp_path):
    result = run_wsgi({"WIDGET_CLOUDAGENT_USERNAME": "acme", "WIDGET_DATA_DIR": str(tmp_path)})
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        "configuration error: WIDGET_CLOUDAGENT_API_KEY: required when "
        "WIDGET_CLOUDAGENT_USERNAME is set"
    ]


def test_wsgi_exposes_the_app(tmp_path):
    result = run_wsgi({"WIDGET_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr


def test_demo_mode_starts_the_wrapup_clock_from_cloudagent_unless_the_operator_set_one(tmp_path):
    # CloudAgent's Disconnect (the simulator's) starts the panel's clock with this time.
    demo = create_app({"WIDGET_DATA_DIR": str(tmp_path / "a")})
    assert demo.config["WIDGET"].wrapup_seconds == demo.extensions["simulator"].wrapup_seconds
    assert demo.config["WIDGET"].wrapup_seconds == 30
    chosen = create_app({"WIDGET_DATA_DIR": str(tmp_path / "b"), "WIDGET_WRAPUP_SECONDS": "45"})
    assert chosen.config["WIDGET"].wrapup_seconds == 45
    none = create_app({"WIDGET_DATA_DIR": str(tmp_path / "c"), "WIDGET_WRAPUP_SECONDS": "0"})
    assert none.config["WIDGET"].wrapup_seconds == 0


def test_the_demo_takes_a_call_on_a_line_in_a_theme_and_says_its_wrapup_time(tmp_path):
    app = create_app({"WIDGET_DATA_DIR": str(tmp_path), "WIDGET_BIND": "127.0.0.1:8123"})
    web = app.test_client()
    made = web.post("/demo/calls", json={"did": "918069100000", "theme": "dark"})
    assert made.status_code == 201
    call = made.get_json()
    assert "theme=dark" in call["launch"] and "did=918069100000" in call["launch"]
    assert call["wrapupSeconds"] == app.extensions["simulator"].wrapup_seconds
    for wrong in ({"did": "123"}, {"theme": "night"}):
        assert web.post("/demo/calls", json=wrong).status_code == 400
    page = web.get("/demo", base_url="http://localhost:8123")
    # As the guide says: the newest release of embed.js, pinned with its integrity.
    version, release = newest_embed_release()
    html = page.get_data(as_text=True)
    assert f'src="http://127.0.0.1:8123/embed/{version}.js" integrity="{release}"' in html
    assert "script-src 'self' http://127.0.0.1:8123" in page.headers["Content-Security-Policy"]


def test_the_demo_page_reuses_its_call_and_new_calls_are_capped_per_minute(tmp_path):
    from webapp import demo

    limit = 30  # demo.CALLS_PER_MINUTE
    app = create_app({"WIDGET_DATA_DIR": str(tmp_path), "WIDGET_BIND": "127.0.0.1:8123"})
    web, simulator = app.test_client(), app.extensions["simulator"]
    for path in ["/", "/demo"] * 25:  # a reload loop
        assert web.get(path, base_url="http://localhost:8123").status_code == 200
    (call,) = simulator.list_calls()  # one call, shown by every load
    simulator.hang_up(call.ucid)  # the demo's call ended: the next load starts another
    web.get("/demo", base_url="http://localhost:8123")
    assert len(simulator.list_calls()) == 2
    made = [web.post("/demo/calls", json={}).status_code for _ in range(limit + 5)]
    assert made.count(201) == limit - 1 and made.count(429) == 6  # 1 of 30 went to the page
    assert len(simulator.list_calls()) == limit + 1  # the first page's call too
    for _ in range(10):  # out of budget: the page shows the newest call, starts none
        simulator.hang_up(simulator.list_calls()[-1].ucid)
        assert web.get("/demo", base_url="http://localhost:8123").status_code == 200
    assert len(simulator.list_calls()) == limit + 1
    assert limit == demo.CALLS_PER_MINUTE


def test_the_demo_subscribes_the_simulator_to_its_own_receivers(tmp_path):
    """As an operator does with `flask cloudagent subscribe` and the Callback URL setting."""
    app = create_app({"WIDGET_DATA_DIR": str(tmp_path)})
    events = app.extensions["simulator"].events
    assert events.subscription("demo") is None  # the widget's address is not known yet
    web = app.test_client()
    assert web.get("/demo", base_url="http://localhost:8123").status_code == 200
    token = app.config["WIDGET"].events_token
    receivers = f"http://127.0.0.1:8123/cloudagent/events/{token}"
    assert len(token) >= 32
    assert events.subscription("demo").call_events_url == f"{receivers}/call"
    assert events.callback_url("demo")[0] == f"{receivers}/summary"


def test_the_app_keeps_ensure_syncs_answer_per_function_and_no_more_than_its_own(
    tmp_path, monkeypatch
):
    app = create_app({"WIDGET_DATA_DIR": str(tmp_path)})
    asked = []
    inspect = flask.app.iscoroutinefunction
    monkeypatch.setattr(flask.app, "iscoroutinefunction", lambda f: asked.append(f) or inspect(f))

    def hook(response):
        return response

    assert app.ensure_sync(hook) is hook and app.ensure_sync(hook) is hook
    assert asked == [hook]  # asked once, then kept

    async def coroutine():
        return "never run here"

    def outcome(ensure_sync):  # wrapped, or refused without Flask's async extra
        try:
            return ensure_sync(coroutine) is not coroutine
        except RuntimeError:
            return "refused"

    assert outcome(app.ensure_sync) == outcome(partial(flask.app.Flask.ensure_sync, app))

    # Functions made per request (Flask's after_this_request) are not kept past the cap.
    made = [lambda response: response for _ in range(1000)]
    assert all(app.ensure_sync(f) is f for f in made)
    assert len(app._sync) <= app._SYNC_MAX


# (path, query, method, headers, base_url): what a URL adapter is made from.
_REQUESTS = [
    ("/disposition", "ucid=1&agentID=a&did=2", "GET", {}, "http://localhost"),
    ("/disposition/save", "", "POST", {}, "http://localhost"),
    ("/healthz", "", "GET", {}, "https://widget.example.in"),
    ("/healthz", "", "GET", {}, "https://widget.example.in:443"),
    ("/healthz", "", "GET", {}, "http://widget.example.in:8080"),
    ("/healthz", "", "HEAD", {}, "http://[::1]:8000"),
    ("/d%C3%A9j%C3%A0", "q=%C3%A9", "GET", {}, "http://localhost"),  # UTF-8 in the path
    ("/healthz", "", "GET", {"Host": "bücher.example"}, "http://localhost"),  # an IDN host
    ("/healthz", "", "GET", {"Host": "bad host\\"}, "http://localhost"),  # a host not taken
    ("/ws", "", "GET", {"Connection": "Upgrade", "Upgrade": "websocket"}, "http://localhost"),
    ("/healthz", "", "GET", {}, "http://localhost/mounted"),  # under a SCRIPT_NAME
    ("/healthz", "", "POST", {}, "http://localhost"),  # 405
    ("/disposition/", "", "GET", {}, "http://localhost"),  # 404
    ("//disposition", "a=1", "GET", {}, "http://localhost"),  # a redirect to /disposition
    ("/assets/0123abcd/widget.css", "", "GET", {}, "http://localhost"),  # values from the path
    ("/assets/4567cdef/widget.css", "", "GET", {}, "http://localhost"),
    ("/disposition", "", "get", {}, "http://localhost"),
    ("/disposition", "", "HEAD", {}, "http://localhost"),
]


def _matched(adapter):
    """What an adapter's match() gives, both ways Flask and werkzeug ask, or raises."""
    answers = []
    for return_rule in (True, False):
        try:
            answers.append(adapter.match(return_rule=return_rule))
        except HTTPException as refused:
            answers.append((type(refused), getattr(refused, "new_url", None)))
    return answers


def _environ(path, query="", method="GET", headers=None, base="http://localhost"):
    return EnvironBuilder(
        path=path, query_string=query, method=method, headers=headers, base_url=base
    ).get_environ()


def test_the_app_keeps_each_hosts_url_adapter_and_makes_flasks_own(tmp_path, monkeypatch):
    """Flask binds the URL map for every request (the host checked twice, IDNA-encoded):
    about a tenth of a hello's CPU. The app keeps what depends on the host, and each
    request's adapter is the one Flask makes, however often its host comes."""
    app = create_app({"WIDGET_DATA_DIR": str(tmp_path)})
    binds = []
    bind = Map.bind_to_environ
    monkeypatch.setattr(Map, "bind_to_environ", lambda *a, **k: binds.append(1) or bind(*a, **k))
    for round_ in range(3):  # made, then from what was kept
        for request_ in _REQUESTS:
            environ = _environ(*request_)
            ours, theirs = app.request_class(dict(environ)), app.request_class(dict(environ))
            adapter = app.create_url_adapter(ours)
            flasks = flask.app.Flask.create_url_adapter(app, theirs)
            assert vars(adapter).keys() - {"matched"} == vars(flasks).keys()
            assert {**vars(adapter), "matched": None} == {**vars(flasks), "matched": None}
            assert ours.host == theirs.host
            assert _matched(adapter) == _matched(flasks), (round_, request_)
        if round_ == 0:
            first = len(binds)
    # Ours bound the map only in the first round (but for the Upgrade, which it leaves to
    # Flask each time): after it, only Flask's own did.
    assert len(binds) == first + 2 * len(_REQUESTS) + 2
    endpoint = app.create_url_adapter(app.request_class(_environ(*_REQUESTS[0])))
    assert endpoint.match()[0] == "panel.launch"


def test_what_the_app_keeps_a_client_cannot_grow_nor_crowd_out(tmp_path):
    """A client chooses its Host, Connection and path: none of them grows what is kept past
    its bound, nor keeps the widget's own host from being kept (the review of a5d839a)."""
    app = create_app({"WIDGET_DATA_DIR": str(tmp_path)})

    def adapter(path="/healthz", **headers):
        environ = _environ("/", headers=headers) | {"PATH_INFO": path}  # as gunicorn gives it
        return app.create_url_adapter(app.request_class(environ))

    for n in range(1, 300):  # werkzeug matches every one of these as /healthz
        assert adapter("/" * n + "healthz").match()[0] == "health.healthz"
    for connection in ("keep-alive", "close", "Keep-Alive", "keep-alive  ", "TE, close"):
        assert adapter(Connection=connection).match()[0] == "health.healthz"
    ((_, kept),) = app._bound.values()  # one host, whatever its Connection
    assert set(kept.matched) == {("/healthz", "GET")}  # the rule's own path only
    for n in range(500):  # a new Host each time
        assert adapter(Host=f"h{n}.example").server_name == f"h{n}.example"
    assert len(app._bound) <= app._BOUND_MAX
    adapter("/disposition")  # the widget's own host, after the flood: kept again
    assert any(key[0] == "localhost" for key in app._bound)


def test_the_app_leaves_the_adapter_to_flask_where_its_settings_bind_it(tmp_path):
    app = create_app({"WIDGET_DATA_DIR": str(tmp_path)})
    app.config["TRUSTED_HOSTS"] = ["widget.example.in"]
    request = app.request_class(_environ("/healthz", base="http://evil.example"))
    with pytest.raises(SecurityError):
        app.create_url_adapter(request)
    assert app._bound == {}
