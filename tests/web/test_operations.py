"""What operators rely on: probes, one structured log line per request, request ids, limits,
and security headers on every kind of response."""

import json
import logging
import re

from tests.helpers import CRM_ORIGIN, DID, outcome_of


def test_healthz_and_readyz(web):
    assert web.get("/healthz").json == {"status": "ok"}
    ready = web.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["checks"] == {"audit_log": "ok", "rate_limits": "ok", "token_store": "ok"}


def test_readyz_fails_when_a_store_is_unreachable(app, web, simulator):
    (app.config["WIDGET"].data_dir / "tokens.sqlite3").unlink()
    (app.config["WIDGET"].data_dir).chmod(0o500)  # nor can it be made again
    store = app.extensions["cloudagent"].token_store
    store._local.conn.close()
    store._local.conn = None
    try:
        ready = web.get("/readyz")
    finally:
        app.config["WIDGET"].data_dir.chmod(0o700)
    assert ready.status_code == 503
    assert ready.json["checks"]["token_store"] == "failed"
    assert simulator.stats()["requests"]["generateToken"] == 0  # probes never call CloudAgent


def request_lines(caplog):
    return [r.fields for r in caplog.records if r.name == "webapp.request"]


def test_one_structured_line_per_request_with_its_id_and_upstream_calls(web, call, caplog, panels):
    caplog.set_level(logging.INFO)
    panel = panels.open(call.ucid)
    response = panel.save(comments="hello")
    (opened, saved) = request_lines(caplog)
    assert opened["path"] == "/disposition" and opened["status"] == 200
    assert "sig" not in json.dumps(opened)  # the query is never logged
    assert saved["path"] == "/disposition/save"
    assert (saved["agent"], saved["ucid"], saved["outcome"]) == ("agent1", call.ucid, "queued")
    assert [c["action"] for c in opened["upstream"]] == ["generateToken", "get"]
    assert [c["action"] for c in saved["upstream"]] == ["Set"]
    assert saved["upstream_ms"] > 0
    assert 0 < saved["audit_ms"] < saved["duration_ms"]
    assert "audit_ms" not in opened  # only saves write the audit trail
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


def test_a_request_id_from_the_load_balancer_is_kept(make_app, caplog):
    caplog.set_level(logging.INFO)
    web = make_app(WIDGET_TRUSTED_PROXIES="127.0.0.0/8").test_client()
    response = web.get("/healthz", headers={"X-Request-ID": "lb-1234-abcd"})
    assert response.headers["X-Request-ID"] == "lb-1234-abcd"
    bad = web.get("/healthz", headers={"X-Request-ID": "<script>"})
    assert bad.headers["X-Request-ID"] != "<script>"


def test_log_records_are_json_lines(app, call, capfd, panels):
    panels.on(app.test_client()).open(call.ucid).save()
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert any(r["logger"] == "webapp.request" and r.get("request_id") for r in records)


def test_saves_are_rate_limited_per_agent(simulator, panels, make_app):
    app = make_app(WIDGET_SAVES_PER_MINUTE="3")
    web = app.test_client()
    mine = panels.on(web).open(simulator.start_call("agent1", DID).ucid)
    other = panels.on(web).open(simulator.start_call("agent2", DID).ucid, agent="agent2")
    assert [outcome_of(mine.save()) for _ in range(3)] == ["queued"] * 3
    limited = mine.save()
    assert limited.status_code == 429 and outcome_of(limited) == "unavailable"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert "Too many saves" in limited.get_data(as_text=True)
    assert outcome_of(other.save(disposition="Interested")) == "queued"  # per agent
    assert simulator.stats()["requests"]["Set"] == 4


def test_an_oversized_body_is_refused(web, call, panels):
    panel = panels.open(call.ucid)
    response = panel.save(comments="x" * 20_000)
    assert response.status_code == 413
    assert outcome_of(response) == "invalid"


SECURITY = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def test_security_headers_on_every_kind_of_response(web, call, simulator, panels):
    panel = panels.open(call.ucid)
    asset = re.search(r'src="(/assets/[^"]+)"', panel.html).group(1)
    responses = {
        "page": panel.response,
        "fragment": panel.save(),
        "invalid fragment": panel.save(disposition=""),
        "403 page": web.get("/disposition?ucid=1"),
        "403 fragment": panel.save(context="forged"),
        "404": web.get("/nothing-here"),
        "405": web.get("/disposition/save"),
        "413": panel.save(comments="x" * 20_000),
        "static": web.get(asset),
        "probe": web.get("/healthz"),
    }
    for kind, response in responses.items():
        headers = response.headers
        for name, value in SECURITY.items():
            assert headers.get(name) == value, (kind, name)
        csp = headers["Content-Security-Policy"]
        assert f"frame-ancestors {CRM_ORIGIN}" in csp, kind
        assert "script-src 'self'" in csp and "default-src 'none'" in csp, kind
        assert "Set-Cookie" not in headers, kind
        assert "Traceback" not in response.get_data(as_text=True), kind
        if kind != "static":
            assert headers["Cache-Control"] == "no-store", kind
        response.close()


def test_an_unexpected_error_is_a_clean_500_and_logged(app, call, caplog, monkeypatch, panels):
    web = app.test_client()
    panel = panels.on(web).open(call.ucid)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(app.extensions["cloudagent"], "set_disposition", broken)
    response = panel.save()
    assert response.status_code == 500
    assert outcome_of(response) == "unavailable"
    assert "boom" not in response.get_data(as_text=True)
    assert "unhandled error" in caplog.text
