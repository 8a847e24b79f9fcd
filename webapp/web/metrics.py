"""Prometheus metrics at GET /metrics, for whoever holds WIDGET_METRICS_TOKEN.

Under gunicorn every worker writes its counts to files in PROMETHEUS_MULTIPROC_DIR (set by
gunicorn.conf.py) and a scrape adds them up, so any worker's answer covers the instance.
Without the variable (a single process) the counts live in memory. Without a token nothing
is counted and /metrics does not exist.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from flask.typing import ResponseReturnValue
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from ..cloudagent import RESULT_UNKNOWN, CloudAgentClient

log = logging.getLogger("webapp")

bp = Blueprint("metrics", __name__)

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
SAVE_OUTCOMES = (
    "queued",
    "saved",
    "already_disposed",
    "rejected",
    "unavailable",
    "invalid",
    "unknown",
)
# Why a panel's request was refused before its context and CSRF token were verified: not a
# save (it never was one), so it never dilutes the saves' failure ratio.
REFUSAL_REASONS = ("context", "expired", "csrf", "too_large", "bad_request")
PANEL_POSTS = ("panel.save", "panel.reload_form")
CACHE_RESULTS = ("hit", "miss", "stale", "error")
ACTIONS = {"get": "get", "Set": "set", "generateToken": "token"}
# What CloudAgent posts to the receivers, and what became of it (webapp.events.receivers).
EVENT_KINDS = ("call", "summary")
EVENT_RESULTS = (
    "accepted",
    "duplicate",
    "stale",
    "ignored",
    "malformed",
    "refused",
    "too_large",
    "rate_limited",
    "unavailable",
)
CONFIRMATIONS = ("match", "mismatch", "no_save")
# The panels' event streams (webapp.push.stream): why one ended, why one was refused, and
# the messages they send.
STREAM_END_REASONS = ("client_gone", "shutdown")
STREAM_REFUSALS = ("context", "expired")
STREAM_EVENTS = ("call-ended", "confirmed", "resync")
UPSTREAM_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 60.0)
AUDIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Metrics:
    """What the service counts. Every method is a hook called on a hot path: cheap."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        self.saves = counter(
            "widget_saves",
            "Saves answered, by outcome (unknown: CloudAgent's answer was lost or unreadable).",
            ("outcome",),
        )
        self.refused = counter(
            "widget_requests_refused",
            "Panel requests (saves, reloads) refused before their context and CSRF token "
            "were verified, by reason.",
            ("reason",),
        )
        self.upstream_seconds = Histogram(
            "widget_upstream_request_duration_seconds",
            "CloudAgent calls, by action (get, set, token), answered or not.",
            ("action",),
            buckets=UPSTREAM_BUCKETS,
            registry=registry,
        )
        self.upstream_errors = counter(
            "widget_upstream_errors",
            "CloudAgent calls that failed, by action and kind of fault.",
            ("action", "kind"),
        )
        self.mints = counter("widget_token_mints", "Tokens minted (Generate Token succeeded).")
        self.mint_attempts = counter(
            "widget_token_mint_attempts", "Generate Token requests sent, successful or not."
        )
        self.conflicts = counter(
            "widget_token_conflicts",
            "Tokens of ours refused as invalid: another system minted for the account.",
        )
        self.panel_loads = counter("widget_panel_loads", "Panels opened from a valid launch link.")
        self.cache = counter(
            "widget_dispositions_cache",
            "Disposition list lookups, by result (hit, miss, stale, error).",
            ("result",),
        )
        self.audit_seconds = Histogram(
            "widget_audit_write_duration_seconds",
            "Time a save spent writing the audit trail (its two writes together).",
            buckets=AUDIT_BUCKETS,
            registry=registry,
        )
        self.rate_limited = counter(
            "widget_rate_limited", "Saves refused by the per-agent save limit (HTTP 429)."
        )
        self.cloudagent_events = counter(
            "widget_cloudagent_events",
            "Call events and call summaries CloudAgent posted, by kind and what became of them.",
            ("kind", "result"),
        )
        self.confirmations = counter(
            "widget_confirmations",
            "Call summaries kept, against the widget's latest queued or saved disposition for "
            "the call: match, mismatch (CloudAgent kept another), no_save (the widget saved none).",
            ("result",),
        )
        # Each worker's own figure: added up across live workers at scrape time (a dead
        # worker's file is dropped by gunicorn.conf.py's child_exit), one sample per pid.
        self.streams_open = Gauge(
            "widget_event_streams_open",
            "Panels' event streams open now, in each worker process.",
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.streams_opened = counter("widget_event_streams_opened", "Event streams opened.")
        self.streams_ended = counter(
            "widget_event_streams_ended",
            "Event streams ended, by reason: client_gone (the panel or the network closed it), "
            "shutdown (the worker was stopping).",
            ("reason",),
        )
        self.streams_refused = counter(
            "widget_event_streams_refused",
            "Event streams refused (403), by reason: context (missing, forged), expired.",
            ("reason",),
        )
        self.stream_events = counter(
            "widget_event_stream_messages",
            "Messages the event streams delivered to panels, by event: call-ended, confirmed, "
            "resync.",
            ("event",),
        )
        for reason in STREAM_END_REASONS:
            self.streams_ended.labels(reason)
        for reason in STREAM_REFUSALS:
            self.streams_refused.labels(reason)
        for event in STREAM_EVENTS:
            self.stream_events.labels(event)
        # Zeros from the start, so rate() and absent() behave before the first event.
        for kind in EVENT_KINDS:
            for result in EVENT_RESULTS:
                self.cloudagent_events.labels(kind, result)
        for result in CONFIRMATIONS:
            self.confirmations.labels(result)
        for outcome in SAVE_OUTCOMES:
            self.saves.labels(outcome)
        for reason in REFUSAL_REASONS:
            self.refused.labels(reason)
        for result in CACHE_RESULTS:
            self.cache.labels(result)
        for action in ACTIONS.values():
            self.upstream_seconds.labels(action)

    def upstream_call(
        self, action: str, milliseconds: float, _status: int | None, fault: str | None
    ) -> None:
        label = ACTIONS.get(action, "other")
        self.upstream_seconds.labels(label).observe(milliseconds / 1000)
        if fault:
            self.upstream_errors.labels(label, fault).inc()
        if label == "token":
            self.mint_attempts.inc()

    def token_minted(self) -> None:
        self.mints.inc()

    def token_conflict(self) -> None:
        self.conflicts.inc()

    def cloudagent_event(self, kind: str, result: str) -> None:
        self.cloudagent_events.labels(kind, result).inc()

    def confirmation(self, result: str) -> None:
        self.confirmations.labels(result).inc()

    def stream_opened(self) -> None:
        self.streams_opened.inc()
        self.streams_open.inc()

    def stream_closed(self) -> None:
        self.streams_open.dec()

    def stream_ended(self, reason: str) -> None:
        self.streams_ended.labels(reason).inc()

    def stream_refused(self, reason: str) -> None:
        self.streams_refused.labels(reason).inc()

    def stream_event(self, event: str) -> None:
        self.stream_events.labels(event).inc()

    def cache_result(self, result: str) -> None:
        self.cache.labels(result).inc()

    def request_done(self, endpoint: str | None, status: int, fields: Mapping[str, Any]) -> None:
        if endpoint in PANEL_POSTS:
            refused = refusal(status, fields)
            if refused is not None:
                self.refused.labels(refused).inc()
                return
        if endpoint == "panel.save":
            self.saves.labels(save_outcome(status, fields)).inc()
            if fields.get("reason") == "rate_limited":
                self.rate_limited.inc()
            if "audit_ms" in fields:
                self.audit_seconds.observe(fields["audit_ms"] / 1000)
        elif endpoint == "panel.launch" and status == 200:
            self.panel_loads.inc()


def refusal(status: int, fields: Mapping[str, Any]) -> str | None:
    """Why a panel's request was refused before its context and CSRF token were verified
    (one of REFUSAL_REASONS), or None for a request from a verified panel."""
    reason = fields.get("reason")
    if reason in ("context", "expired", "csrf"):
        return reason
    if fields.get("outcome") is None and 400 <= status < 500:
        # Refused by werkzeug before the view read the context: a body too large, a
        # malformed form.
        return "too_large" if status == 413 else "bad_request"
    return None


def save_outcome(status: int, fields: Mapping[str, Any]) -> str:
    """A save's outcome as counted: what the agent was told, with a lost result apart."""
    outcome = fields.get("outcome")
    if outcome is None:  # a crash (refusals are counted apart: refusal())
        return "unknown" if status >= 500 else "invalid"
    if fields.get("reason") in RESULT_UNKNOWN or outcome == "unknown":
        return "unknown"
    return outcome if outcome in SAVE_OUTCOMES else "unavailable"


class TokenGauges(Collector):
    """Read from the shared token store at scrape time: the same for every worker."""

    def __init__(self, client: CloudAgentClient) -> None:
        self.client = client

    def collect(self) -> Iterator[GaugeMetricFamily]:
        store = self.client.token_store
        if store is None:  # API-key mode: no tokens
            return
        try:
            left = store.mint_budget_left(self.client.account)
            until = store.conflict_until(self.client.account)
        except Exception as error:  # /readyz reports the store; a scrape still answers
            log.warning("metrics: token store unreadable: %s", error)
            return
        yield GaugeMetricFamily(
            "widget_token_mint_budget_remaining",
            "Generate Token attempts still allowed in the rolling hour.",
            value=left,
        )
        yield GaugeMetricFamily(
            "widget_token_conflict_blocked",
            "1 while a sign-in conflict stops minting (saves are refused), else 0.",
            value=0 if until is None else 1,
        )


class AuditGauges(Collector):
    """Read at scrape time from the instance's audit journal (one file its workers share)."""

    def __init__(self, audit: Any) -> None:
        self.audit = audit

    def collect(self) -> Iterator[GaugeMetricFamily]:
        journal = self.audit.journal
        if journal is None:
            return
        try:
            waiting = journal.count()
        except Exception as error:  # a scrape still answers
            log.warning("metrics: audit journal unreadable: %s", error)
            return
        yield GaugeMetricFamily(
            "widget_audit_journal_entries",
            "Audit completions waiting in this instance's journal for the database.",
            value=waiting,
        )


def init_app(app: Flask, token: str) -> Metrics | None:
    """Count and serve metrics if `token` is set: the Metrics to hook into the client and
    stores, or None."""
    if not token:
        return None
    multiprocess = bool(os.environ.get(MULTIPROC_DIR))
    registry = None if multiprocess else CollectorRegistry()
    metrics = Metrics(registry)
    app.extensions["metrics"] = metrics
    app.extensions["metrics_registry"] = registry
    app.extensions["metrics_token"] = token.encode()
    app.after_request(_count_request)
    app.register_blueprint(bp)
    return metrics


def watch_tokens(app: Flask, client: CloudAgentClient) -> None:
    if "metrics" in app.extensions:
        app.extensions["metrics_tokens"] = TokenGauges(client)
        registry = app.extensions["metrics_registry"]
        if registry is not None:
            registry.register(app.extensions["metrics_tokens"])


def watch_audit(app: Flask, audit: Any) -> None:
    if "metrics" in app.extensions:
        app.extensions["metrics_audit"] = AuditGauges(audit)
        registry = app.extensions["metrics_registry"]
        if registry is not None:
            registry.register(app.extensions["metrics_audit"])


def _count_request(response: Response) -> Response:
    if "log_fields" in g:
        current_app.extensions["metrics"].request_done(
            request.endpoint, response.status_code, g.log_fields
        )
    return response


@bp.get("/metrics")
def metrics() -> ResponseReturnValue:
    given = request.headers.get("Authorization", "").encode()
    expected = b"Bearer " + current_app.extensions["metrics_token"]
    if not hmac.compare_digest(given, expected):
        return Response("unauthorized\n", 401, {"WWW-Authenticate": 'Bearer realm="metrics"'})
    registry = current_app.extensions["metrics_registry"]
    if registry is None:  # one registry per scrape, reading every worker's files
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        for gauges in ("metrics_tokens", "metrics_audit"):
            if gauges in current_app.extensions:
                registry.register(current_app.extensions[gauges])
    return Response(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
