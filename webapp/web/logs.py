"""Structured logs: one JSON line per record, and one per request with its request id, the
call it was about, its outcome and the CloudAgent calls it made."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from typing import Any

from flask import Flask, Response, g, has_request_context, request

log = logging.getLogger("webapp.request")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


class JsonFormatter(logging.Formatter):
    # One line per request on the hot path: keep formatting cheap.
    _second = -1
    _stamp = ""

    def _time(self, created: float) -> str:
        second = int(created)
        if second != self._second:  # strftime once a second, not once a line
            self._second, self._stamp = (
                second,
                time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)),
            )
        return f"{self._stamp}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if has_request_context() and "request_id" in g:
            data["request_id"] = g.request_id
        fields = getattr(record, "fields", None)
        if fields:
            data.update(fields)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (test runners swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure() -> None:
    """Send the service's logs to stderr as JSON lines, once per process."""
    logger = logging.getLogger("webapp")
    if logger.handlers:
        return
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def annotate(**fields: Any) -> None:
    """Add fields (agent, ucid, outcome, ...) to this request's log line."""
    g.log_fields.update(fields)


def record_upstream(
    action: str, milliseconds: float, http_status: int | None, fault: str | None = None
) -> None:
    """The CloudAgent client's hook: tally each upstream call into the request's log line."""
    if has_request_context() and "upstream" in g:
        call = {"action": action, "ms": round(milliseconds, 1), "http": http_status}
        if fault:
            call["fault"] = fault
        g.upstream.append(call)


def _start() -> None:
    incoming = request.environ.get("HTTP_X_REQUEST_ID", "")
    g.request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
    g.started = time.perf_counter()
    g.log_fields = {}
    g.upstream = []


def _finish(response: Response) -> Response:
    if "request_id" not in g:  # a request that failed before before_request ran
        return response
    response.headers["X-Request-ID"] = g.request_id
    fields = {
        "method": request.method,
        "path": request.path,  # never the query: launch links carry a signature
        "status": response.status_code,
        "duration_ms": round((time.perf_counter() - g.started) * 1000, 1),
        **g.log_fields,
    }
    if g.upstream:
        fields["upstream"] = g.upstream
        fields["upstream_ms"] = round(sum(call["ms"] for call in g.upstream), 1)
    log.info("request", extra={"fields": fields})
    return response


def init_app(app: Flask) -> None:
    configure()
    app.before_request(_start)
    app.after_request(_finish)
