"""The application object gunicorn serves (`wsgi:app`), under either worker class.

Called with (environ, start_response) it is the Flask app (gthread, the tests' werkzeug);
called with (scope, receive, send) it is ASGI (the `asgi` worker): the events stream is a
coroutine here, everything else goes to Flask in a pool of threads (webapp.push.bridge), the
same WIDGET_THREADS threads per process that gthread gave it, but for the panels the app says
wait for nothing (webapp.panel.onloop), which the bridge runs in the loop. Attributes not its
own are Flask's, so `app.extensions`, `app.config` and the CLI see the app as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from flask import Flask

from ..web.before_send import ON_LOOP
from .bridge import ThreadedWSGI
from .hub import Hub
from .stream import PATH, Channel, Receive, Scope, Send, serve

log = logging.getLogger("webapp.push")

# How often a worker looks whether gunicorn told it to stop (SIGTERM, a restart after
# max_requests): its open streams end within this.
STOP_CHECK_SECONDS = 0.25


class Router:
    def __init__(self, flask_app: Flask, threads: int) -> None:
        self.flask_app = flask_app
        self.threads = threads
        self.settings = flask_app.config["WIDGET"]
        self.hub: Hub | None = None
        self.channel: Channel | None = None
        self._wsgi: ThreadedWSGI | None = None
        self._serving: Callable[[], bool] | None = None
        self._watching: asyncio.Task[None] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.flask_app, name)

    def watch_worker(self, serving: Callable[[], bool]) -> None:
        """gunicorn.conf.py's post_worker_init: `serving()` turns False when the worker is to
        stop. The asgi worker then waits for open connections before it goes (up to
        graceful_timeout); open streams are ended at once so it need not."""
        self._serving = serving

    def __call__(self, *args: Any) -> Any:
        if len(args) == 2:  # WSGI
            return self.flask_app(*args)
        scope, receive, send = args
        if scope["type"] != "http":
            return self._other(scope, receive, send)
        # The stream's or the bridge's own coroutine, not one of ours awaiting it: every
        # resumption of a request (its body, each send) would pass through one more frame.
        if scope["path"] == PATH and self.channel is not None:
            return serve(scope, receive, send, self.channel)
        if self._wsgi is None:
            on_loop = self.flask_app.extensions.get(ON_LOOP)
            self._wsgi = ThreadedWSGI(self.flask_app, self.threads, on_loop)
        return self._wsgi(scope, receive, send)

    async def _other(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._watching is not None:
                    self._watching.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._watching
                if self.channel is not None:
                    self.channel.drain()
                if self.hub is not None:
                    await self.hub.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start(self) -> None:
        # Only with the receivers on is there anything to push; panels ask for the stream
        # only when the page says it is served (templates/panel.html, data-events).
        if not self.settings.events_token:
            return
        hub = Hub(
            self.flask_app.extensions["call_events"],
            self.settings.wrapup_seconds,
            self.settings.redis_url,
        )
        await hub.start()
        self.hub = hub
        self.channel = Channel(
            hub,
            self.settings,
            metrics=self.flask_app.extensions.get("metrics"),
            trusted=self.flask_app.extensions["trusted_proxy"],
        )
        self.flask_app.extensions["push"] = hub
        if self._serving is not None:
            self._watching = asyncio.create_task(self._drain_when_stopping(self._serving))
        log.info("push channel on: %s", "Redis wake-ups" if hub.redis_url else "polling")

    async def _drain_when_stopping(self, serving: Callable[[], bool]) -> None:
        while serving():
            await asyncio.sleep(STOP_CHECK_SECONDS)
        if self.channel is not None:
            self.channel.drain()
