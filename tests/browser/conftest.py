"""Real-browser fixtures: Debian's Chromium driven by Playwright, a CRM host page on one site
framing the widget on another (crm.test and widget.test, both mapped to loopback)."""

import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
from flask import Flask, request
from markupsafe import escape
from werkzeug.serving import make_server

from tests.helpers import (
    DID,
    LAUNCH_SECRET,
    ROOT,
    marked_block,
    two_push_instances,
    widget_env,
)
from webapp import create_app
from webapp.panel.launch import sign, signed_query
from webapp.simulator import ServerThread, Simulator, SimulatorServer, start_server

EMBEDDING_GUIDE = (ROOT / "docs" / "embedding.md").read_text(encoding="utf-8")
CHROMIUM = os.environ.get("WIDGET_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
EVENTS_TOKEN = "events-token-for-browser-tests-0123456789"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP crm.test 127.0.0.1, MAP widget.test 127.0.0.1, "
    "MAP evil.test 127.0.0.1",
]


def _browser_missing() -> str | None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (make test installs it)"
    if not shutil.which(CHROMIUM):
        return f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)"
    return None


@pytest.fixture(scope="session")
def browser():
    missing = _browser_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests cannot run under CI: {missing}")
        pytest.skip(f"BROWSER TESTS SKIPPED: {missing}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


def signed_link(sites, args) -> str:
    """What the CRM's server does: the call's launch URL, signed (and the look asked for).
    The mistakes CRM developers make, on request: `tamper` (altered after signing), `age`
    (signed that many seconds ago), `ms` (ts in milliseconds, signed)."""
    params = {"ucid": args["ucid"], "agentID": args.get("agent", "agent1")}
    params |= {"did": args.get("did", DID), "callerID": "+919800000000"}
    params |= {name: args[name] for name in ("theme", "accent", "lang") if name in args}
    query = signed_query(params, LAUNCH_SECRET, now=time.time() - int(args.get("age", 0)))
    if args.get("ms"):
        query = params | {"ts": str(int(time.time() * 1000))}
        query["sig"] = sign(query, LAUNCH_SECRET)
    if args.get("tamper"):
        query["ucid"] = "999" + query["ucid"]
    return f"{sites.widget}{args.get('path', '/disposition')}?{urlencode(query)}"


def embed_host_page(sites, args) -> str:
    """The guide's own host page (docs/embedding.md), with embed.js, for one call. Options a
    test may ask for: `script` (another embed.js URL) with `integrity` ("" for none), and
    `ready_timeout` (ms)."""
    page = marked_block(EMBEDDING_GUIDE, "embed: host page")
    page = page.replace("https://widget.example.com", sites.widget)
    if "script" in args:
        script = re.search(r'<script src="([^"]+)"\s+integrity="([^"]*)"', page)
        page = page.replace(script.group(1), sites.widget + args["script"])
        page = page.replace(script.group(2), args.get("integrity", ""))
    page = page.replace("SIGNED_LAUNCH_URL", signed_link(sites, args))
    page = page.replace("width: 360px", f"width: {int(args.get('width', 360))}px")
    if "ready_timeout" in args:
        timeout = int(args["ready_timeout"])
        page = page.replace('src: "', f'readyTimeout: {timeout},\n      src: "', 1)
    # To read in the tests: what the page's callbacks were given.
    page = page.replace("<body>", "<body><script>window.received = [];</script>")
    page = page.replace("onReady: () =>", "onReady: (m) => window.received.push(m) &&")
    error = "onError: ({ reason }) => {"
    page = page.replace(error, error + " window.received.push({ error: reason });")
    return page


def host_app(sites) -> Flask:
    """The CRM: signs a launch link on its server and frames the widget from the other site;
    with ?evil=1 a third site's frame sits beside it. /embed-call is the guide's own host
    page (docs/embedding.md), with embed.js."""
    app = Flask("crm")

    @app.get("/call")
    def call_page():
        src = signed_link(sites, request.args)
        width = int(request.args.get("width", 360))
        height = int(request.args.get("height", 620))
        evil = (
            f'<iframe id="evil" src="{sites.evil}/evil"></iframe>' if "evil" in request.args else ""
        )
        return f"""<!doctype html><html lang="en">
<head><title>CRM</title><link rel="icon" href="data:,"></head><body>
<iframe id="widget" title="Call disposition" src="{escape(src)}"
        style="width:{width}px;height:{height}px;border:0"></iframe>{evil}
<script>
window.received = [];
window.addEventListener("message", (e) => window.received.push({{origin: e.origin, data: e.data}}));
</script></body></html>"""

    @app.get("/embed-call")
    def embed_page():
        return embed_host_page(sites, request.args)

    return app


def evil_app() -> Flask:
    """Another site's frame on the CRM page: it posts to the widget's window, as any frame
    can (the test calls window.attack(message))."""
    app = Flask("evil")

    @app.get("/evil")
    def evil():
        return """<!doctype html><html lang="en"><head><title>Ad</title></head><body>
<script>window.attack = (m) => window.parent.frames[0].postMessage(m, "*");</script>
</body></html>"""

    return app


class Sites:
    """One loopback server answering as two sites, by Host name."""

    def __init__(self, simulator_server: SimulatorServer, data_dir: Path):
        self.sim = simulator_server
        self.server = make_server("127.0.0.1", 0, self, threaded=True)
        port = self.server.port
        self.crm = f"http://crm.test:{port}"
        self.widget = f"http://widget.test:{port}"
        self.evil = f"http://evil.test:{port}"
        self.widget_app = create_app(
            # One widget serves the whole session, and its three agents save far more often
            # than an agent can: the per-agent limit (tested in tests/web) must not decide
            # a browser test's outcome on a fast machine.
            widget_env(
                simulator_server.url,
                data_dir,
                WIDGET_FRAME_ANCESTORS=self.crm,
                WIDGET_SAVES_PER_MINUTE="600",
                # CloudAgent's events (tests/browser/test_events_browser.py posts them to the
                # receivers): only panels of calls with a stored event see any difference.
                WIDGET_EVENTS_TOKEN=EVENTS_TOKEN,
                WIDGET_WRAPUP_SECONDS="120",
            )
        )
        self.crm_app = host_app(self)
        self.evil_app = evil_app()
        self.running = ServerThread(self.server)

    def __call__(self, environ, start_response):
        host = environ.get("HTTP_HOST", "").partition(":")[0]
        # localhost: the CRM's page under a name WIDGET_FRAME_ANCESTORS does not list.
        apps = {"crm.test": self.crm_app, "localhost": self.crm_app, "evil.test": self.evil_app}
        app = apps.get(host, self.widget_app)
        return app(environ, start_response)


@pytest.fixture(scope="session")
def sites(tmp_path_factory):
    upstream = start_server(Simulator())
    sites = Sites(upstream, tmp_path_factory.mktemp("widget-data"))
    yield sites
    sites.running.stop()
    upstream.stop()


@pytest.fixture
def cloudagent_says(sites):
    """CloudAgent posting to the widget's receivers: ("call" | "summary", payload) -> answer."""
    web = sites.widget_app.test_client()

    def post(kind, payload):
        answer = web.post(f"/cloudagent/events/{EVENTS_TOKEN}/{kind}", json=payload)
        assert answer.status_code == 200 and answer.json["result"] == "accepted", answer.json
        return answer

    return post


@pytest.fixture
def simulator(sites):
    sim = sites.sim.simulator
    sim.set_latency(0)
    return sim


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 480, "height": 720})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if msg.type == "error" else None,
    )
    page.errors = errors
    yield page
    context.close()


@pytest.fixture
def shoot():
    """Save a screenshot under test-artifacts/screenshots, for people to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def shoot(target, name):
        target.screenshot(path=str(SCREENSHOTS / f"{name}.png"))

    return shoot


class LiveSites:
    """The CRM on loopback (werkzeug) and the widget on another site served as in production:
    gunicorn's asgi worker (two workers), so the panel's live event stream is there too.
    With `redis` and `database_url`: two such instances on one Redis and one PostgreSQL, the
    first serving the panels (`widget`), the second (`other_widget_server`) taking what
    CloudAgent posts, as a load balancer may send it."""

    def __init__(self, simulator_server: SimulatorServer, production_server, *, redis=None,
                 database_url=None):  # fmt: skip
        self.sim = simulator_server
        self.server = make_server("127.0.0.1", 0, self, threaded=True)
        self.crm = f"http://crm.test:{self.server.port}"
        self.evil = f"http://evil.test:{self.server.port}"
        if redis is None:
            self.widget_server = production_server(
                simulator_server.url,
                name="live-widget",
                workers=2,
                WIDGET_WORKERS="2",
                WIDGET_FRAME_ANCESTORS=self.crm,
                WIDGET_EVENTS_TOKEN=EVENTS_TOKEN,
                WIDGET_WRAPUP_SECONDS="120",
            )
            self.other_widget_server = None
        else:
            self.widget_server, self.other_widget_server = two_push_instances(
                production_server,
                simulator_server.url,
                redis_url=redis.url,
                database_url=database_url,
                events_token=EVENTS_TOKEN,
                WIDGET_FRAME_ANCESTORS=self.crm,
            )
        self.widget = self.widget_server.url.replace("127.0.0.1", "widget.test")
        self.crm_app = host_app(self)
        self.running = ServerThread(self.server)

    def __call__(self, environ, start_response):
        return self.crm_app(environ, start_response)


@pytest.fixture(scope="module")
def live_sites(production_server):
    upstream = start_server(Simulator())
    sites = LiveSites(upstream, production_server)
    yield sites
    sites.running.stop()
    upstream.stop()


@pytest.fixture(scope="module")
def live_sites_on_redis(production_server, own_redis_server, postgres_server):
    """Two production instances on one Redis and one PostgreSQL (LiveSites)."""
    upstream = start_server(Simulator())
    database = postgres_server.url(postgres_server.create_database())
    sites = LiveSites(upstream, production_server, redis=own_redis_server, database_url=database)
    yield sites
    sites.running.stop()
    upstream.stop()


def _poster(server):
    """CloudAgent posting to a production widget's receivers (any of its workers)."""
    import requests

    def post(kind, payload):
        answer = requests.post(
            f"{server.url}/cloudagent/events/{EVENTS_TOKEN}/{kind}", json=payload, timeout=60
        )
        assert answer.status_code == 200 and answer.json()["result"] == "accepted", answer.text
        return answer

    return post


@pytest.fixture
def cloudagent_says_live(live_sites):
    return _poster(live_sites.widget_server)


@pytest.fixture
def cloudagent_says_to_the_other_instance(live_sites_on_redis):
    """CloudAgent posting to the instance that does not serve the panel."""
    return _poster(live_sites_on_redis.other_widget_server)
