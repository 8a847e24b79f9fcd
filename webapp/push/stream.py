"""`GET /disposition/events?context=<token>`: the panel's call, live, as server-sent events.

A coroutine per open panel (no thread): it verifies the signed call context as every panel
request does (webapp.panel.context; expired or forged: 403, no stream), sends the call's
state when it holds something newer than the panel has (`Last-Event-ID`, or `last` in the
query for a panel's own reconnect), then each new state of the call, a heartbeat comment
every HEARTBEAT_SECONDS, and ends when the client goes, or at once when the worker stops
(Channel.drain: a graceful stop must not wait its graceful_timeout on idle panels, which
reconnect to another worker with back-off and resynchronise).

Each message is the whole state as panel.js's applyCallState takes it (the one the page
carries, webapp.panel.callstate), named after what it brings: `call-ended`, `confirmed`, or
`resync` (a stream that fell behind); its `id` is the newest `call_events` row it reflects.

Flask never sees these requests, so the stream writes its own request log line when it ends,
like every other request's (webapp.web.logs: request id, method, path, status, duration, the
call's agent and ucid; never the context), with the events it sent and why it ended, and
counts itself in the metrics (webapp.web.metrics: open streams, opened, ended by reason,
messages sent).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from ..config import Settings
from ..panel import context
from ..web import logs
from .hub import RESYNC, Hub, Stream

PATH = "/disposition/events"
HEARTBEAT_SECONDS = 15.0  # under the 30 s idle timeout of common load balancers
RETRY_MS = 1000  # the browser's own reconnect delay (panel.js backs off on top of it)
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),  # nginx: pass each message on at once
    (b"x-content-type-options", b"nosniff"),
]

SHUTDOWN = "shutdown"  # put in a stream's queue: the worker is stopping
# Why a stream ended, in its log line (`ended`) and widget_event_streams_ended_total.
CLIENT_GONE = "client_gone"  # the panel closed it (or the network did)
EXPIRED = "expired"  # its context's age passed WIDGET_CONTEXT_MAX_AGE: the panel stops asking

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Channel:
    """One worker's event streams: the hub they listen to, and whether the worker is
    stopping."""

    def __init__(
        self,
        hub: Hub,
        settings: Settings,
        metrics: Any = None,
        trusted: Callable[[str | None], bool] = lambda _peer: False,
    ) -> None:
        self.hub = hub
        self.settings = settings
        self.metrics = metrics  # webapp.web.metrics.Metrics, or None (no WIDGET_METRICS_TOKEN)
        self.trusted = trusted  # whether a peer may name the request (WIDGET_TRUSTED_PROXIES)
        self.draining = False

    def drain(self) -> None:
        """The worker is stopping: end every open stream now, and any opened from here on.
        gunicorn waits for open connections before it lets a worker go (graceful_timeout):
        a panel's stream would otherwise hold the stop until then."""
        self.draining = True
        for streams in list(self.hub.streams.values()):
            for stream in list(streams):
                _wake(stream)


def _wake(stream: Stream) -> None:
    # Whatever it still had to send is moot: its panel reconnects and gets the state.
    while not stream.queue.empty():
        stream.queue.get_nowait()
    stream.queue.put_nowait(SHUTDOWN)


def name_of(message: dict[str, Any]) -> str:
    return "confirmed" if message.get("confirmed") else "call-ended"


def event_of(message: dict[str, Any], name: str | None = None) -> bytes:
    name = name or name_of(message)
    data = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    return f"id: {int(message.get('id') or 0)}\nevent: {name}\ndata: {data}\n\n".encode()


def _last_id(scope: Scope, query: dict[str, list[str]]) -> int:
    headers = dict(scope.get("headers") or ())
    raw = headers.get(b"last-event-id", b"").decode("latin-1") or (query.get("last") or [""])[0]
    return int(raw) if raw.isdigit() and len(raw) < 19 else 0


async def _plain(send: Send, status: int, text: str, request_id: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"cache-control", b"no-store"),
                (b"x-content-type-options", b"nosniff"),
                (b"x-request-id", request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": text.encode()})


async def serve(scope: Scope, receive: Receive, send: Send, channel: Channel) -> None:
    started = time.perf_counter()
    headers = dict(scope.get("headers") or ())
    peer = (scope.get("client") or (None,))[0]
    request_id, client_request_id = logs.request_ids(
        headers.get(b"x-request-id", b"").decode("latin-1"), peer, channel.trusted
    )
    call_fields: dict[str, Any] = {}

    def done(status: int, **fields: Any) -> None:
        # As webapp.web.logs writes every other request's line; never the query (the context).
        line = {
            "request_id": request_id,
            "method": scope["method"],
            "path": PATH,
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            **call_fields,
            **fields,
        }
        if client_request_id:
            line["client_request_id"] = client_request_id
        logs.log_request(line)

    if scope["method"] not in ("GET", "HEAD"):
        await _plain(send, 405, "method not allowed\n", request_id)
        done(405)
        return
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    settings = channel.settings
    try:
        call, issued = context.read_issued(
            (query.get("context") or [""])[0], settings.secret_key, settings.context_max_age
        )
    except context.ContextError as error:
        await _plain(send, 403, f"{error}\n", request_id)  # "expired" or "invalid": no stream
        reason = "expired" if error.expired else "context"
        done(403, reason=reason)
        if channel.metrics is not None:
            channel.metrics.stream_refused(reason)
        return
    call_fields.update(agent=call.agent_id, ucid=call.ucid)
    counts = {"events": 0}
    try:
        # itsdangerous refuses a context once its age in whole seconds is over the maximum.
        expires = issued + settings.context_max_age + 1
        ended = await _stream(
            scope, receive, send, channel, call.ucid, query, request_id, counts, expires
        )
    except asyncio.CancelledError:  # the worker cut it (quick stop, graceful_timeout passed)
        done(200, events=counts["events"], ended=SHUTDOWN)
        raise
    done(200, events=counts["events"], ended=ended)
    if channel.metrics is not None:
        channel.metrics.stream_ended(ended)


async def _stream(
    scope: Scope,
    receive: Receive,
    send: Send,
    channel: Channel,
    ucid: str,
    query: dict[str, list[str]],
    request_id: str,
    counts: dict[str, int],
    expires: float,
) -> str:
    """The open stream, until it ends: why it ended (CLIENT_GONE, SHUTDOWN, EXPIRED: at
    `expires`, when its context does; the panel's reconnect is then refused and it stops)."""
    hub, metrics = channel.hub, channel.metrics
    last = _last_id(scope, query)

    async def deliver(message: dict[str, Any], name: str | None = None) -> None:
        name = name or name_of(message)
        await _body(send, event_of(message, name))
        counts["events"] += 1
        if metrics is not None:
            metrics.stream_event(name)

    # Registered before the state is read: a row stored in between is sent, not missed.
    stream = hub.open(ucid)
    gone = asyncio.create_task(_disconnected(receive))
    if metrics is not None:
        metrics.stream_opened()
    ended = CLIENT_GONE
    try:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*HEADERS, (b"x-request-id", request_id.encode())],
            }
        )
        await _body(send, f"retry: {RETRY_MS}\n\n".encode())
        current = await hub.state(ucid)
        if current is not None and current["id"] > last:
            last = current["id"]
            await deliver(current)
        while not gone.done() and not channel.draining:
            left = expires - time.time()
            if left <= 0:
                ended = EXPIRED
                break
            getting = asyncio.ensure_future(stream.queue.get())
            done, _ = await asyncio.wait(
                {getting, gone},
                timeout=min(HEARTBEAT_SECONDS, left),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if getting not in done:
                getting.cancel()
                if not done and left > HEARTBEAT_SECONDS:
                    await _body(send, b": ping\n\n")
                continue
            item = getting.result()
            if item == SHUTDOWN:
                break
            if item == RESYNC:
                message = await hub.state(ucid)
                if message is not None:
                    last = max(last, message["id"])
                    await deliver(message, RESYNC)
            elif isinstance(item, dict) and item["id"] > last:
                last = item["id"]
                await deliver(item)
        if not gone.done():  # stopping or expired: end the response, the panel reconnects
            if ended != EXPIRED:
                ended = SHUTDOWN
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except OSError:
        ended = CLIENT_GONE  # the client went while we wrote
    finally:
        hub.close(stream)
        gone.cancel()
        if metrics is not None:
            metrics.stream_closed()
    return ended


async def _body(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
