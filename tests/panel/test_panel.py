"""The panel over HTTP (Flask's test client), with CloudAgent as the simulator on loopback."""

import base64
import gzip
import hashlib
import re
from pathlib import Path
from urllib.parse import urlencode

import brotli
import pytest

from tests.helpers import CRM_ORIGIN, DID, LAUNCH_SECRET, launch_path, outcome_of, widget_env
from webapp import create_app
from webapp.panel.launch import signed_query

HTMX_SHA384 = "Qp9rdC8H7EqOoX+nR0P3RPG2Noji+qdwJlGpfzwQJsfOpp3sGwIdSP9xO3+UlEhn"


@pytest.fixture
def panel(web, call, panels):
    return panels.open(call.ucid)


# -- launch ----------------------------------------------------------------------------------


def test_a_signed_link_opens_the_panel_for_the_call(panel, call, simulator):
    assert panel.response.status_code == 200
    html = panel.html
    for label in ("Disposition", "Comments", "Pause after this call", "Pause reason"):
        assert f">{label}</label>" in html
    assert ">Save disposition<" in html
    assert 'role="status"' in html
    assert call.ucid in html and "agent1" in html
    for name in simulator.account("demo").dispositions:
        assert f'<option value="{name}">{name}</option>' in html
    for reason in ("Break", "Lunch"):
        assert f">{reason}</option>" in html


def test_opening_panels_costs_one_upstream_list_fetch(web, simulator, panels):
    for _ in range(5):
        panels.open(simulator.start_call("agent1", DID).ucid)
    assert simulator.stats()["requests"]["get"] == 1


def tamper(path, **changes):
    base, _, query = path.partition("?")
    pairs = dict(p.split("=", 1) for p in query.split("&"))
    return base + "?" + "&".join(f"{k}={v}" for k, v in (pairs | changes).items())


@pytest.mark.parametrize(
    "make",
    [
        lambda ucid: f"/disposition?ucid={ucid}&agentID=agent1&did={DID}",
        lambda ucid: tamper(launch_path(ucid), ucid="1111111111"),
        lambda ucid: tamper(launch_path(ucid), agentID="agent2"),
        lambda ucid: tamper(launch_path(ucid, callerID="1"), callerID="2"),
        lambda ucid: tamper(launch_path(ucid), sig="0" * 64),
        lambda ucid: (
            "/disposition?"
            + urlencode(
                signed_query({"ucid": ucid, "agentID": "agent1", "did": DID}, LAUNCH_SECRET, now=1)
            )
        ),
        lambda ucid: launch_path(ucid) + f"&ucid={ucid}",
        lambda ucid: "/disposition",
    ],
    ids=[
        "unsigned",
        "ucid",
        "agent",
        "extra",
        "sig",
        "stale",
        "doubled",
        "empty",
    ],
)
def test_a_bad_link_gets_a_small_403_and_nothing_goes_upstream(web, call, simulator, make):
    response = web.get(make(call.ucid))
    html = response.get_data(as_text=True)
    assert response.status_code == 403
    assert "This link is not valid" in html
    assert call.ucid not in html and "agent1" not in html  # nothing of the link echoed
    assert "Traceback" not in html
    assert simulator.stats()["requests"] == {"generateToken": 0, "get": 0, "Set": 0, "other": 0}


def test_signing_can_be_switched_off_explicitly(call, caplog, make_app):
    app = make_app(WIDGET_LAUNCH_SIGNING="off")
    assert "launch links are NOT verified" in caplog.text
    response = app.test_client().get(f"/disposition?ucid={call.ucid}&agentID=agent1&did={DID}")
    assert response.status_code == 200


# -- save ------------------------------------------------------------------------------------


def test_save_while_live_is_queued_and_can_be_changed(panel, call, simulator):
    first = panel.save(comments="Wants a brochure")
    assert first.status_code == 200 and outcome_of(first) == "queued"
    assert "when the call ends" in first.get_data(as_text=True)
    assert outcome_of(panel.save(disposition="Sale closed")) == "queued"
    simulator.hang_up(call.ucid)
    assert simulator.get_call(call.ucid).disposition == "Sale closed"


def test_save_after_hang_up_is_saved_then_already_disposed(panel, call, simulator):
    simulator.hang_up(call.ucid)
    assert outcome_of(panel.save()) == "saved"
    assert outcome_of(panel.save(disposition="Wrong number")) == "already_disposed"


def test_an_agent_not_on_the_call_is_rejected(web, call, panels):
    response = panels.open(call.ucid, agent="agent2").save()
    assert outcome_of(response) == "rejected"
    assert "not on this call" in response.get_data(as_text=True)


def test_pausing_sends_the_reason(panel, call, simulator):
    assert outcome_of(panel.save(pause="y", pause_reason="Lunch")) == "queued"
    request = simulator.get_call(call.ucid).attempts[-1].request
    assert (request.pause_after_dispose, request.pause_reason) == (True, "Lunch")


@pytest.mark.parametrize(
    "fields, field, text",
    [
        ({"disposition": ""}, "disposition", "Choose a disposition."),
        ({"disposition": None}, "disposition", "Choose a disposition."),
        ({"disposition": "Made up"}, "disposition", "Choose a disposition from the list."),
        ({"disposition": "x" * 251}, "disposition", "too long"),
        ({"pause": "y", "pause_reason": ""}, "pause_reason", "Choose a pause reason"),
        ({"pause": "y", "pause_reason": "Nap"}, "pause_reason", "from the list"),
        ({"comments": "x" * 501}, "comments", "at most 500 characters"),
    ],
)
def test_our_own_validation_answers_beside_the_field_and_sends_nothing(
    panel, simulator, fields, field, text
):
    response = panel.save(**fields)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert outcome_of(response) == "invalid"
    slot = re.search(rf'<p id="{field}-error"[^>]*hx-swap-oob="true">([^<]*)</p>', html)
    assert text in slot.group(1)
    assert simulator.stats()["requests"]["Set"] == 0


def test_a_pause_reason_without_pausing_is_ignored(panel, call, simulator):
    assert outcome_of(panel.save(pause_reason="Lunch")) == "queued"
    request = simulator.get_call(call.ucid).attempts[-1].request
    assert (request.pause_after_dispose, request.pause_reason) == (False, "")


def test_comments_at_the_limit_are_accepted(panel, call, simulator):
    assert outcome_of(panel.save(comments="é" * 500)) == "queued"
    assert simulator.get_call(call.ucid).attempts[-1].request.comments == "é" * 500


# -- context and CSRF ------------------------------------------------------------------------


def test_missing_or_forged_context_or_csrf_is_refused_before_upstream(web, call, simulator, panels):
    panel = panels.open(call.ucid)
    other = panels.open(simulator.start_call("agent2", DID).ucid, agent="agent2")
    context, csrf = panel.field("context"), panel.field("csrf_token")
    attempts = {
        "no context": {"context": None},
        "forged context": {"context": context[:-4] + "AAAA"},
        "another panel's context": {"context": other.field("context")},
        "no csrf": {"csrf_token": None},
        "forged csrf": {"csrf_token": "0" * 64},
        "another panel's csrf": {"csrf_token": other.field("csrf_token")},
    }
    for name, change in attempts.items():
        response = panel.save(**change)
        assert response.status_code == 403, name
        assert outcome_of(response) == "invalid", name
        assert "Open it again from the CRM" in response.get_data(as_text=True), name
    assert csrf != other.field("csrf_token")
    assert simulator.stats()["requests"]["Set"] == 0


def test_an_expired_context_says_so(call, simulator, monkeypatch, panels, make_app):
    app = make_app(WIDGET_CONTEXT_MAX_AGE="60")
    panel = panels.on(app.test_client()).open(call.ucid)
    import itsdangerous.timed

    real = itsdangerous.timed.time.time
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: real() + 61)
    response = panel.save()
    assert response.status_code == 403
    assert "This panel has expired" in response.get_data(as_text=True)
    assert simulator.stats()["requests"]["Set"] == 0


# -- CloudAgent down -------------------------------------------------------------------------


def test_when_the_list_cannot_load_the_panel_says_so_and_offers_a_retry(
    tmp_path, simulator, panels, retry_lists_at_once
):
    from webapp.simulator import start_server

    app = create_app(widget_env("http://127.0.0.1:9", tmp_path))
    web = app.test_client()
    call = simulator.start_call("agent1", DID)
    panel = panels.on(web).open(call.ucid)
    assert panel.response.status_code == 200
    assert "could not be loaded" in panel.html
    assert ">Try again</button>" in panel.html
    assert re.search(r'<button type="submit" id="save"[^>]*disabled', panel.html)

    # CloudAgent comes back: Try again gets the form with the list.
    running = start_server(simulator)
    try:
        client = app.extensions["cloudagent"]
        client.base_url = running.url
        retry = web.post(
            "/disposition/form",
            data={"context": panel.field("context"), "csrf_token": panel.field("csrf_token")},
        )
        html = retry.get_data(as_text=True)
        assert retry.status_code == 200 and html.startswith("<form")
        assert '<option value="Interested">' in html and "Try again" not in html
    finally:
        running.stop()


def test_a_save_when_cloudagent_is_down_is_unavailable(call, panels, make_app):
    app = make_app()
    panel = panels.on(app.test_client()).open(call.ucid)
    app.extensions["cloudagent"].base_url = "http://127.0.0.1:9"
    response = panel.save()
    assert response.status_code == 200
    assert outcome_of(response) == "unavailable"
    assert "Nothing was sent" in response.get_data(as_text=True)


# -- headers and assets ----------------------------------------------------------------------


def test_security_headers_on_the_panel(panel):
    headers = panel.response.headers
    csp = headers["Content-Security-Policy"]
    assert f"frame-ancestors {CRM_ORIGIN}" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-store"
    assert "X-Frame-Options" not in headers
    # No inline script at all: every <script> has a src and an integrity hash.
    scripts = re.findall(r"<script[^>]*>", panel.html)
    assert scripts and all(" src=" in s and " integrity=" in s for s in scripts)


def test_assets_have_versioned_immutable_urls(web, panel):
    urls = re.findall(r'(?:src|href)="(/assets/[^"]+)"', panel.html)
    assert len(urls) == 2  # htmx, panel.js (the stylesheet is inline)
    for url in urls:
        response = web.get(url)
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        response.close()
    assert web.get("/assets/000000000000/panel.css").status_code == 404
    assert web.get("/static/panel.css").status_code == 404


def test_the_inline_stylesheet_is_allowed_by_its_hash_and_nothing_else(panel):
    css = re.search(r"<style>(.*?)</style>", panel.html, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    style_src = re.search(r"style-src ([^;]*)", panel.response.headers["Content-Security-Policy"])
    assert style_src.group(1).split() == ["'self'", f"'sha256-{digest}'"]
    assert " style=" not in panel.html


def test_pages_and_assets_are_gzipped_for_browsers_that_take_it(web, call):
    path = launch_path(call.ucid)
    plain = web.get(path)
    packed = web.get(path, headers={"Accept-Encoding": "gzip, br"})
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed.headers["Vary"]
    assert gzip.decompress(packed.data).decode().count("<option") == plain.data.decode().count(
        "<option"
    )
    assert len(packed.data) < len(plain.data) / 2
    htmx = re.search(r'src="(/assets/[^"]+htmx[^"]+)"', plain.data.decode()).group(1)
    asset = web.get(htmx, headers={"Accept-Encoding": "gzip"})
    assert asset.headers["Content-Encoding"] == "gzip"
    assert hashlib.sha384(gzip.decompress(asset.data)).digest() == base64.b64decode(HTMX_SHA384)
    assert len(asset.data) < 15_000


def test_our_scripts_and_styles_are_served_minified_and_brotli_compressed(web, panel):
    """The repo keeps them readable; browsers get them small, and their integrity and CSP
    hashes are over the bytes served."""
    static = Path(__file__).resolve().parents[2] / "static"
    css = re.search(r"<style>(.*?)</style>", panel.html, re.S).group(1)
    assert "/*" not in css and "\n" not in css
    assert len(css) < len((static / "panel.css").read_text()) * 0.9
    url, integrity = re.search(
        r'src="(/assets/[^"]+/panel\.js)"[^>]*integrity="sha384-([^"]+)"', panel.html
    ).groups()
    plain = web.get(url)
    assert len(plain.data) < len((static / "panel.js").read_bytes()) * 0.8
    assert base64.b64encode(hashlib.sha384(plain.data).digest()).decode() == integrity
    packed = web.get(url, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert packed.headers["Content-Encoding"] == "br"
    assert brotli.decompress(packed.data) == plain.data
    assert len(packed.data) < len(gzip.compress(plain.data, 9))
    assert web.get(url, headers={"Accept-Encoding": "gzip"}).headers["Content-Encoding"] == "gzip"


def test_htmx_is_the_exact_vendored_build(panel):
    path = Path(__file__).resolve().parents[2] / "static" / "vendor" / "htmx-4.0.1.min.js"
    digest = base64.b64encode(hashlib.sha384(path.read_bytes()).digest()).decode()
    assert digest == HTMX_SHA384
    assert f'integrity="sha384-{HTMX_SHA384}"' in panel.html
