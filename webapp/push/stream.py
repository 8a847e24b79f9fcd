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
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from ..config import Settings
from ..panel import context
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

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Channel:
    """One worker's event streams: the hub they listen to, and whether the worker is
    stopping."""

    def __init__(self, hub: Hub, settings: Settings) -> None:
        self.hub = hub
        self.settings = settings
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


def event_of(message: dict[str, Any], name: str | None = None) -> bytes:
    name = name or ("confirmed" if message.get("confirmed") else "call-ended")
    data = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    return f"id: {int(message.get('id') or 0)}\nevent: {name}\ndata: {data}\n\n".encode()


def _last_id(scope: Scope, query: dict[str, list[str]]) -> int:
    headers = dict(scope.get("headers") or ())
    raw = headers.get(b"last-event-id", b"").decode("latin-1") or (query.get("last") or [""])[0]
    return int(raw) if raw.isdigit() and len(raw) < 19 else 0


async def _plain(send: Send, status: int, text: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"cache-control", b"no-store"),
                (b"x-content-type-options", b"nosniff"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": text.encode()})


async def serve(scope: Scope, receive: Receive, send: Send, channel: Channel) -> None:
    hub, settings = channel.hub, channel.settings
    if scope["method"] not in ("GET", "HEAD"):
        await _plain(send, 405, "method not allowed\n")
        return
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    try:
        call = context.read(
            (query.get("context") or [""])[0], settings.secret_key, settings.context_max_age
        )
    except context.ContextError as error:
        await _plain(send, 403, f"{error}\n")  # "expired" or "invalid": no stream
        return
    last = _last_id(scope, query)
    # Registered before the state is read: a row stored in between is sent, not missed.
    stream = hub.open(call.ucid)
    gone = asyncio.create_task(_disconnected(receive))
    try:
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await _body(send, f"retry: {RETRY_MS}\n\n".encode())
        current = await hub.state(call.ucid)
        if current is not None and current["id"] > last:
            last = current["id"]
            await _body(send, event_of(current))
        while not gone.done() and not channel.draining:
            getting = asyncio.ensure_future(stream.queue.get())
            done, _ = await asyncio.wait(
                {getting, gone}, timeout=HEARTBEAT_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            if getting not in done:
                getting.cancel()
                if not done:
                    await _body(send, b": ping\n\n")
                continue
            item = getting.result()
            if item == SHUTDOWN:
                break
            if item == RESYNC:
                message = await hub.state(call.ucid)
                if message is not None:
                    last = max(last, message["id"])
                    await _body(send, event_of(message, RESYNC))
            elif isinstance(item, dict) and item["id"] > last:
                last = item["id"]
                await _body(send, event_of(item))
        if not gone.done():  # the worker is stopping: end the response, the panel reconnects
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except OSError:
        pass  # the client went while we wrote
    finally:
        hub.close(stream)
        gone.cancel()


async def _body(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
