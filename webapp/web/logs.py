"""Structured logs: one JSON line per record, and one per request with its request id, the
call it was about, its outcome and the CloudAgent calls it made."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from functools import lru_cache, partial
from typing import Any

from flask import Flask, Response, g, has_request_context, request

from ..config import IPNetwork
from .before_send import BEFORE_SEND, BeforeSend, Headers

log = logging.getLogger("webapp.request")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
# The event receivers' path holds a secret (WIDGET_EVENTS_TOKEN): logged masked, whatever
# follows it, and whether or not the token was right.
EVENTS_PREFIX = "/cloudagent/events/"
_EVENTS_TOKEN = re.compile(r"^/cloudagent/events/[^/]*")


def logged_path(path: str) -> str:
    """The request's path as logged: the event receivers' token masked."""
    if path.startswith(EVENTS_PREFIX):
        return _EVENTS_TOKEN.sub("/cloudagent/events/****", path, count=1)
    return path


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

    def line(
        self,
        created: float,
        level: str,
        logger: str,
        message: str,
        fields: dict[str, Any] | None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """A record's JSON object, before its exception (the one place its shape is made);
        the request's id is looked up unless given."""
        data: dict[str, Any] = {
            "time": self._time(created),
            "level": level,
            "logger": logger,
            "message": message,
        }
        if request_id is None and has_request_context():
            request_id = g.get("request_id")
        if request_id is not None:
            data["request_id"] = request_id
        if fields:
            data.update(fields)
        return data

    def format(self, record: logging.LogRecord) -> str:
        data = self.line(
            record.created,
            record.levelname,
            record.name,
            record.getMessage(),
            getattr(record, "fields", None),
        )
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return _ENCODE(data)


_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


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


def trusted_peers(networks: Iterable[IPNetwork]) -> Callable[[str | None], bool]:
    """Whether a peer's address (request.remote_addr) is in `networks`: cached per address,
    for a check on every request."""
    networks = tuple(networks)

    @lru_cache(maxsize=1024)
    def trusted(address: str | None) -> bool:
        if not networks or not address:
            return False
        try:
            peer = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:  # a unix socket's peer, or anything else that is no address
            return False
        if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
            peer = peer.ipv4_mapped
        return any(peer in network for network in networks)

    return trusted


class RandomIds:
    """Request ids: 128 random bits from the OS's generator, as secrets.token_hex(16) gives,
    read 256 ids at a time, each thread its own batch (no lock for threads to queue on).
    One getrandom() per request let go of the GIL on every request, and each time another
    thread was waiting for it, getting it back cost two context switches (docs/benchmarks.md,
    "What a syscall costs in the pool thread")."""

    BATCH = 256
    SIZE = 16  # bytes per id: 32 hex digits

    def __init__(self) -> None:
        self._local = threading.local()
        # A forked worker must not hand out ids its parent already holds.
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._local = threading.local()

    def __call__(self) -> str:
        mine = self._local
        at = getattr(mine, "at", 0)
        batch = getattr(mine, "batch", "")
        if at >= len(batch):
            mine.batch = batch = os.urandom(self.SIZE * self.BATCH).hex()
            at = 0
        mine.at = at + 2 * self.SIZE
        return batch[at : at + 2 * self.SIZE]


new_request_id = RandomIds()


def request_ids(
    incoming: str, peer: str | None, trusted: Callable[[str | None], bool]
) -> tuple[str, str | None]:
    """The request's id, and what the client called it when that is not our id. Only a
    trusted proxy names the request: any other client could reuse an id to make its requests
    look like someone else's in the logs and the audit trail."""
    sane = bool(_REQUEST_ID.fullmatch(incoming))
    request_id = incoming if sane and trusted(peer) else new_request_id()
    return request_id, incoming if sane and incoming != request_id else None


def _sole_handler() -> _StderrHandler | None:
    """Our handler, when it is the only one a request's line would reach, unfiltered: the
    line can then be written without a logging record (a third of its cost, on every
    request). Anything else (a test's capture, an operator's logging config) gets records."""
    if log.disabled or log.filters or log.handlers or not log.isEnabledFor(logging.INFO):
        return None
    parent = log.parent
    if parent is None or parent.filters or len(parent.handlers) != 1 or parent.disabled:
        return None
    handler = parent.handlers[0]
    if (
        not isinstance(handler, _StderrHandler)
        or not isinstance(handler.formatter, JsonFormatter)
        or handler.filters
        or handler.level > logging.INFO
        or (parent.propagate and _reaches_more(parent.parent))
    ):
        return None
    return handler


def _reaches_more(logger: logging.Logger | None) -> bool:
    while logger is not None:
        if logger.handlers:
            return True
        logger = logger.parent if logger.propagate else None
    return False


def log_request(
    fields: dict[str, Any], later: list[BeforeSend] | None = None, request_id: str | None = None
) -> None:
    """Write a request's one line (also for the requests Flask never sees: webapp.push.stream).
    With `later` (the asgi bridge's environ[BEFORE_SEND]), the bridge's loop writes it, just
    before it sends the answer: a write from the pool thread lets go of the GIL. The
    request's id is looked up unless given."""
    handler = _sole_handler()
    if handler is None:
        log.info("request", extra={"fields": fields})
        return
    formatter: JsonFormatter = handler.formatter  # type: ignore[assignment]
    data = formatter.line(time.time(), "INFO", log.name, "request", fields, request_id)
    text = _ENCODE(data) + "\n"
    if later is None:
        _write(handler, text, fields)
        return

    def write_line(_headers: Headers, body: bytes) -> bytes:
        _write(handler, text, fields)
        return body

    later.append(write_line)


def _write(handler: _StderrHandler, text: str, fields: dict[str, Any]) -> None:
    try:
        with handler.lock:  # as the handler's own emit: whole lines, never interleaved
            stream = handler.stream
            stream.write(text)
            stream.flush()
    except Exception:  # a closed or broken stderr: logging's own path reports it, never raises
        log.info("request", extra={"fields": fields})


def _start(trusted: Callable[[str | None], bool]) -> None:
    # Flask's proxies looked through once each: this and _finish run on every request.
    here, asked = g._get_current_object(), request._get_current_object()
    here.request_id, here.client_request_id = request_ids(
        asked.environ.get("HTTP_X_REQUEST_ID", ""), asked.remote_addr, trusted
    )
    here.started = time.perf_counter()
    here.log_fields = {}
    here.upstream = []


def _finish(response: Response) -> Response:
    here = g._get_current_object()
    if "request_id" not in here:  # a request that failed before before_request ran
        return response
    response.headers.add("X-Request-ID", here.request_id)  # ours alone: none to look for
    asked = request._get_current_object()
    fields = {
        "method": asked.method,
        "path": logged_path(asked.path),  # never the query: launch links carry a signature
        "status": response.status_code,
        "duration_ms": round((time.perf_counter() - here.started) * 1000, 1),
        **here.log_fields,
    }
    if here.client_request_id:  # what the client called it: never our id
        fields["client_request_id"] = here.client_request_id
    if here.upstream:
        fields["upstream"] = here.upstream
        fields["upstream_ms"] = round(sum(call["ms"] for call in here.upstream), 1)
    log_request(fields, asked.environ.get(BEFORE_SEND), here.request_id)
    return response


def init_app(app: Flask, trusted_proxies: Iterable[IPNetwork] = ()) -> None:
    """JSON logs, and one line per request; X-Request-ID taken from `trusted_proxies` only."""
    configure()
    app.extensions["trusted_proxy"] = trusted = trusted_peers(trusted_proxies)
    app.before_request(partial(_start, trusted))  # the app's own: not looked up per request
    app.after_request(_finish)
