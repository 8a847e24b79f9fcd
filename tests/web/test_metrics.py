"""GET /metrics: Prometheus text for the holder of WIDGET_METRICS_TOKEN, counting what the
service did, outcome by outcome; no token, no endpoint."""

import re
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import DID, ROOT, marked_block
from webapp.config import ConfigError
from webapp.panel import context
from webapp.panel.launch import Launch
from webapp.web.metrics import REFUSAL_REASONS

TOKEN = "metrics-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def scrape(web) -> dict[tuple[str, tuple], float]:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    response = web.get("/metrics", headers=AUTH)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    text = response.get_data(as_text=True)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def app(make_app):
    return make_app(WIDGET_METRICS_TOKEN=TOKEN, WIDGET_SAVES_PER_MINUTE="4")


def test_without_a_token_there_is_no_endpoint(make_app):
    web = make_app().test_client()
    assert web.get("/metrics").status_code == 404
    assert web.get("/metrics", headers=AUTH).status_code == 404


@pytest.mark.parametrize(
    "header", [None, "Bearer", "Bearer wrong-token-0123456789", f"Basic {TOKEN}", f"bearer{TOKEN}"]
)
def test_the_endpoint_needs_the_token(web, header):
    response = web.get("/metrics", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "widget_" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "token", ["short", "has a space in it 0123456789", "tab\tin-it-0123456789"]
)
def test_a_weak_or_unsendable_token_refuses_to_start(make_app, token):
    with pytest.raises(ConfigError, match="WIDGET_METRICS_TOKEN"):
        make_app(WIDGET_METRICS_TOKEN=token)


def test_every_metric_is_there_from_the_start(web):
    samples = scrape(web)
    names = {name for name, _labels in samples}
    for name in (
        "widget_saves_total",
        "widget_upstream_request_duration_seconds_count",
        "widget_token_mint_budget_remaining",
        "widget_token_conflict_blocked",
        "widget_dispositions_cache_total",
        "widget_audit_write_duration_seconds_count",
        "widget_requests_refused_total",
    ):
        assert name in names, name
    for outcome in ("queued", "saved", "already_disposed", "rejected", "unavailable", "invalid",
                    "unknown"):  # fmt: skip
        assert value(samples, "widget_saves_total", outcome=outcome) == 0
    assert value(samples, "widget_token_mint_budget_remaining") == 10
    for reason in REFUSAL_REASONS:
        assert ("widget_requests_refused_total", (("reason", reason),)) in samples


def test_saves_and_loads_are_counted_by_outcome(web, panels, simulator):
    calls = [simulator.start_call("agent1", DID) for _ in range(3)]
    opened = [panels.open(call.ucid) for call in calls]
    assert opened[0].save().status_code == 200  # queued (and the first mint)
    simulator.hang_up(calls[1].ucid)
    assert opened[1].save().status_code == 200  # saved
    assert opened[1].save(disposition="Not interested").status_code == 200  # already disposed
    assert opened[2].save(csrf_token="forged").status_code == 403  # refused: csrf
    assert opened[2].save(context="forged").status_code == 403  # refused: context
    assert opened[2].save(disposition="").status_code == 422  # invalid: the agent's form
    simulator.add_fault("Set", "http_502")  # a gateway's page: did the Set go through?
    assert opened[2].save().status_code == 200  # unknown
    assert opened[2].save().status_code == 429  # the fifth save to reach the limit of 4

    samples = scrape(web)
    expected = {"queued": 1, "saved": 1, "already_disposed": 1, "invalid": 1, "unknown": 1,
                "unavailable": 1}  # fmt: skip
    for outcome in ("queued", "saved", "already_disposed", "rejected", "unavailable", "invalid",
                    "unknown"):  # fmt: skip
        got = value(samples, "widget_saves_total", outcome=outcome)
        assert got == expected.get(outcome, 0), (outcome, got)
    assert value(samples, "widget_rate_limited_total") == 1
    assert value(samples, "widget_requests_refused_total", reason="csrf") == 1
    assert value(samples, "widget_requests_refused_total", reason="context") == 1
    assert value(samples, "widget_panel_loads_total") == 3
    assert value(samples, "widget_token_mints_total") == 1
    assert value(samples, "widget_token_mint_attempts_total") == 1
    assert value(samples, "widget_token_mint_budget_remaining") == 9
    # Four Sets were sent, the unanswered one among them; one list was fetched.
    assert value(samples, "widget_upstream_request_duration_seconds_count", action="set") == 4
    assert value(samples, "widget_upstream_request_duration_seconds_count", action="get") == 1
    assert value(samples, "widget_upstream_request_duration_seconds_count", action="token") == 1
    assert value(samples, "widget_upstream_errors_total", action="set", kind="http_5xx") == 1
    # Four saves wrote the audit trail (the refused ones never reach it).
    assert value(samples, "widget_audit_write_duration_seconds_count") == 4
    # The list: loaded once, then served from memory to every other panel and save.
    assert value(samples, "widget_dispositions_cache_total", result="miss") == 1
    assert value(samples, "widget_dispositions_cache_total", result="hit") >= 5
    assert value(samples, "widget_dispositions_cache_total", result="error") == 0


def test_a_list_that_fails_to_load_is_counted_as_an_error(web, panels, simulator):
    simulator.add_fault("get", "http_503", count=1)
    panels.open(simulator.start_call("agent1", DID).ucid)
    samples = scrape(web)
    assert value(samples, "widget_dispositions_cache_total", result="error") == 1
    assert value(samples, "widget_upstream_errors_total", action="get", kind="http_5xx") == 1


def test_a_sign_in_conflict_shows(web, panels, simulator):
    """Another system signs in twice: the conflict counter and the blocked gauge say so."""
    call = simulator.start_call("agent1", DID)
    panel = panels.open(call.ucid)
    assert panel.save().status_code == 200
    for _ in range(2):
        simulator.rotate_token("demo")
        panel.save()
    samples = scrape(web)
    assert value(samples, "widget_token_conflicts_total") == 2
    assert value(samples, "widget_token_conflict_blocked") == 1
    assert value(samples, "widget_token_mint_budget_remaining") == 3 - 2
    assert web.get("/readyz").get_json()["sign_in_conflict"]["until"].endswith("Z")


# -- junk requests are not saves: the saves' alert sees every real failure -----------------------


OPERATIONS = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")


def failing_ratio(samples) -> float:
    """DispositionSavesFailing's ratio, as docs/operations.md writes it, over one scrape's
    totals (every save of the test falls within the rule's window)."""
    rules = marked_block(OPERATIONS, "alert-rules")
    expr = re.search(r"alert: DispositionSavesFailing\n.*?expr: \|\n(.*?)\n\s+for:", rules, re.S)
    expr = " ".join(expr.group(1).split())
    failing = re.fullmatch(
        r'sum\(rate\(widget_saves_total\{outcome=~"([a-z_|]+)"\}\[5m\]\)\) / '
        r"clamp_min\(sum\(rate\(widget_saves_total\[5m\]\)\), 1e-9\) > 0\.05",
        expr,
    )
    assert failing, expr
    saves = {dict(labels)["outcome"]: v for (name, labels), v in samples.items()
             if name == "widget_saves_total"}  # fmt: skip
    bad = sum(v for outcome, v in saves.items() if re.fullmatch(failing.group(1), outcome))
    return bad / max(sum(saves.values()), 1e-9)


def test_junk_posts_are_counted_apart_and_the_alert_still_sees_every_save_failing(
    web, panels, simulator
):
    simulator.add_fault("Set", "status_error", count=-1)  # CloudAgent takes no save at all
    panel = panels.open(simulator.start_call("agent1", DID).ucid)
    junk = [
        {},  # no context at all
        {"context": "forged", "csrf_token": "x"},
        {"context": panel.field("context"), "csrf_token": "0" * 64},
        {"context": panel.field("context"), "csrf_token": panel.field("csrf_token"),
         "disposition": "Interested", "comments": "x" * 20_000},  # 413
    ]  # fmt: skip
    expected = {"context": 0, "csrf": 0, "too_large": 0}
    for i in range(300):
        form = junk[i % len(junk)]
        response = web.post("/disposition/save", data=form, headers={"HX-Request": "true"})
        assert response.status_code in (403, 413)
        reason = ("context", "context", "csrf", "too_large")[i % len(junk)]
        expected[reason] += 1
    for _ in range(3):
        assert panel.save().status_code == 200  # unavailable: "could not take it just now"
    assert simulator.stats()["requests"]["Set"] == 3

    samples = scrape(web)
    assert failing_ratio(samples) == 1.0  # 100 %: the junk does not hide the outage
    assert value(samples, "widget_saves_total", outcome="unavailable") == 3
    assert value(samples, "widget_saves_total", outcome="invalid") == 0
    for reason, count in expected.items():
        assert value(samples, "widget_requests_refused_total", reason=reason) == count, reason


def test_an_expired_panel_and_a_refused_reload_are_counted_as_refused(app, web, monkeypatch):
    secret = app.config["WIDGET"].secret_key
    with monkeypatch.context() as past:
        past.setattr(time, "time", lambda: 0.0 + 1_000_000_000)  # long before any max age
        stale = context.issue(Launch("u1", "agent1", DID), secret)
    response = web.post(
        "/disposition/save", data={"context": stale}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 403
    assert web.post("/disposition/form", data={"context": "forged"}).status_code == 403
    samples = scrape(web)
    assert value(samples, "widget_requests_refused_total", reason="expired") == 1
    assert value(samples, "widget_requests_refused_total", reason="context") == 1
    assert sum(v for (name, _), v in samples.items() if name == "widget_saves_total") == 0


def test_completions_waiting_in_the_audit_journal_are_a_gauge(app, web):
    """An operator who must never lose a disposition is paged while completions wait for
    the database (DispositionAuditJournalWaiting in docs/operations.md)."""
    assert value(scrape(web), "widget_audit_journal_entries") == 0
    audit = app.extensions["audit"]
    audit.journal.add(1, {"finished_at": time.time(), "outcome": "queued", "reason": "queued"})
    audit.journal.add(2, {"finished_at": time.time(), "outcome": "saved", "reason": "saved"})
    assert value(scrape(web), "widget_audit_journal_entries") == 2
    audit.replay_journal()  # no such rows: dropped
    assert value(scrape(web), "widget_audit_journal_entries") == 0
    rules = marked_block(OPERATIONS, "alert-rules")
    assert "max(widget_audit_journal_entries) > 0" in rules
