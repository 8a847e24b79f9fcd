"""Real-browser fixtures: Debian's Chromium driven by Playwright, a CRM host page on one site
framing the widget on another (crm.test and widget.test, both mapped to loopback)."""

import os
import shutil
from pathlib import Path
from urllib.parse import urlencode

import pytest
from flask import Flask, request
from markupsafe import escape
from werkzeug.serving import make_server

from tests.helpers import DID, LAUNCH_SECRET, ROOT, widget_env
from webapp import create_app
from webapp.panel.launch import signed_query
from webapp.simulator import ServerThread, Simulator, SimulatorServer, start_server

CHROMIUM = os.environ.get("WIDGET_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP crm.test 127.0.0.1, MAP widget.test 127.0.0.1",
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


def host_app(sites) -> Flask:
    """The CRM: signs a launch link on its server and frames the widget from the other site."""
    app = Flask("crm")

    @app.get("/call")
    def call_page():
        params = {"ucid": request.args["ucid"], "agentID": request.args.get("agent", "agent1")}
        params |= {"did": request.args.get("did", DID), "callerID": "+919800000000"}
        query = signed_query(params, LAUNCH_SECRET)
        if request.args.get("tamper"):
            query["ucid"] = "999" + query["ucid"]
        src = f"{sites.widget}/disposition?{urlencode(query)}"
        width = int(request.args.get("width", 360))
        return f"""<!doctype html><html lang="en">
<head><title>CRM</title><link rel="icon" href="data:,"></head><body>
<iframe id="widget" title="Call disposition" src="{escape(src)}"
        style="width:{width}px;height:620px;border:0"></iframe>
<script>
window.received = [];
window.addEventListener("message", (e) => window.received.push({{origin: e.origin, data: e.data}}));
</script></body></html>"""

    return app


class Sites:
    """One loopback server answering as two sites, by Host name."""

    def __init__(self, simulator_server: SimulatorServer, data_dir: Path):
        self.sim = simulator_server
        self.server = make_server("127.0.0.1", 0, self, threaded=True)
        port = self.server.port
        self.crm = f"http://crm.test:{port}"
        self.widget = f"http://widget.test:{port}"
        self.widget_app = create_app(
            widget_env(simulator_server.url, data_dir, WIDGET_FRAME_ANCESTORS=self.crm)
        )
        self.crm_app = host_app(self)
        self.running = ServerThread(self.server)

    def __call__(self, environ, start_response):
        host = environ.get("HTTP_HOST", "")
        app = self.crm_app if host.startswith("crm.test") else self.widget_app
        return app(environ, start_response)


@pytest.fixture(scope="session")
def sites(tmp_path_factory):
    upstream = start_server(Simulator())
    sites = Sites(upstream, tmp_path_factory.mktemp("widget-data"))
    yield sites
    sites.running.stop()
    upstream.stop()


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
