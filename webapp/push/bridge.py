"""The Flask app called from the asgi worker's event loop: one hand-off to a thread per request.

The loop reads the request's body, a pool thread runs the app and gathers its whole answer,
and the loop sends it: one trip to the thread and one back. a2wsgi, which this replaces, sent
each piece of the answer (its start, each chunk, its end) and read each piece of the body
through its own trip between the threads, each waking the other: under load those trips cost
the worker more CPU than the panel's own work (docs/benchmarks.md, "Where the time goes").

Whole answers suit this app: none of its answers streams (the one stream, the call's events,
is a coroutine of its own, webapp.push.stream). A body is read up to MAX_BODY bytes (one that
declares more is not read at all) and given to the app with its length, chunked or not; the
app refuses what is over its own limit (16 KiB for agents' forms, 64 KiB for CloudAgent's
events) with its own 413 answer.

A reading request's pool thread makes no system call it can leave to the loop. Each one lets
go of the GIL, and when the loop is waiting for it (another request arrived), getting it back
costs the thread two context switches: a panel's log line, gzip and request id cost more
that way than its whole view (docs/benchmarks.md, "What a syscall costs in the pool
thread"). So the app may leave work for the loop in environ[BEFORE_SEND], offered to GET
requests: each function there is given the answer's headers (a list it may change) and body,
and returns the body to send. The loop runs them in order just before it sends, where
it makes system calls anyway. Where no such list is offered (a save, gthread, the test
client), the app does the work itself.

A request the app says waits for nothing (`on_loop`, webapp.web.before_send.ON_LOOP: a
panel whose reads are all in memory, webapp.panel.onloop) is run in the loop itself, without
the hand-offs: the loop would only have waited for the GIL while a thread held it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import queue
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ..web.before_send import BEFORE_SEND, ON_LOOP, BeforeSend, Headers
from .stream import Receive, Scope, Send

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# The largest body any route takes (CloudAgent's events, webapp.events.parse.MAX_BODY): one
# byte past it is read, so that the route sees a body over its limit and answers 413. Read in
# the loop, so it bounds the memory of a worker's slow uploads: worker_connections x this.
MAX_BODY = 64 * 1024
# Work is left to the loop (above, webapp.web.before_send) by requests that read: their
# thread makes no other system call, and the loop's own are few. A save's thread waits on the
# database and CloudAgent anyway, and under load many such threads wait for the GIL: a write
# in the loop would hand them the GIL and make every connection of the worker wait for it
# back (the 50-agent saves' p99 read 21–26 → 24–31 ms, three alternated runs). Not HEAD:
# werkzeug gives it no body, so the loop would gzip an empty one and state its size.
_READS = frozenset({"GET"})


class Pool:
    """Up to `most` threads, started as the work needs them, running jobs for event loops:
    one queue put to hand a job over and one call_soon_threadsafe to hand its result back.
    run_in_executor's concurrent Future, work item and the callbacks chaining it to the
    loop's future cost twice the CPU per hand-off, on every request."""

    def __init__(self, most: int, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._most = most
        self._name = name
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._threads = 0
        self._unfinished = 0  # jobs queued or running

    def run(self, job: Callable[[Any], Any], argument: Any) -> asyncio.Future[Any]:
        """`job(argument)` in a pool thread; the future of its result, on the running loop."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            self._unfinished += 1
            grow = self._unfinished > self._threads and self._threads < self._most
            if grow:
                self._threads += 1
        if grow:
            name = f"{self._name}_{next(self._numbers)}"
            # A daemon: at exit nothing is left to wait for (the loop waited for its requests).
            threading.Thread(target=self._work, name=name, daemon=True).start()
        self._jobs.put((loop, future, job, argument))
        return future

    def _work(self) -> None:
        while True:
            loop, future, job, argument = self._jobs.get()
            outcome: tuple[Any, BaseException | None] | None = None
            try:
                if not future.cancelled():  # else its request is gone: nobody to answer
                    try:
                        outcome = (job(argument), None)
                    except BaseException as error:  # the awaiting request raises it
                        outcome = (None, error)
            finally:
                # Counted as done before its result is handed back: the request's next job
                # may be asked for at once, and this thread is free to take it.
                with self._lock:
                    self._unfinished -= 1
            if outcome is not None:
                with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                    loop.call_soon_threadsafe(_settle, future, *outcome)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class ThreadedWSGI:
    """ASGI `http` requests to a WSGI app run in a pool of `threads` threads, or in the loop
    for those `on_loop` names."""

    def __init__(
        self, app: WSGIApp, threads: int, on_loop: Callable[[dict[str, Any]], bool] | None = None
    ) -> None:
        self.app = app
        self.pool = Pool(threads, "wsgi")
        # Whether a request may run here in the loop, given its environ (webapp.web.before_send,
        # ON_LOOP): it then waits for nothing, and spares the two hand-offs to a thread.
        self.on_loop = on_loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = _declared_length(scope)
        if declared is not None and declared > MAX_BODY:
            body = b""  # never read: the app refuses it by its Content-Length alone (413)
        else:
            read = await _body(receive)
            if read is None:  # the client went before its request was whole: nobody to answer
                return
            body = read
        environ = _environ(scope, body, declared)
        later = None
        if scope["method"] in _READS:
            later = environ[BEFORE_SEND] = LeftToLoop()
        try:
            if self.on_loop is not None and self.on_loop(environ):
                environ[ON_LOOP] = True  # the app's reads must not wait (before_send.ON_LOOP)
                status, headers, chunks = self._run(environ)
            else:
                status, headers, chunks = await self.pool.run(self._run, environ)
        except asyncio.CancelledError:  # given up: the client gone past the server's grace
            if later is not None and later.give_up():
                later.run_without_answer()
            raise
        answer = b"".join(chunks)
        for work in later or ():
            answer = work(headers, answer)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    def _run(self, environ: dict[str, Any]) -> tuple[int, Headers, list[bytes]]:
        """In a pool thread (or the loop, on_loop): the app's status, headers and body."""
        chunks: list[bytes] = []
        started: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            # Nothing is sent before the app returns, so an error page may always replace
            # what was started (PEP 3333 re-raises only once headers have gone out).
            if exc_info is not None:
                chunks.clear()
            started[:] = [status, headers]
            return chunks.append  # WSGI's write()

        answer = self.app(environ, start_response)
        try:
            chunks.extend(answer)
        finally:
            close = getattr(answer, "close", None)
            if close is not None:
                close()
        status, headers = started
        later = environ.get(BEFORE_SEND)
        if later is not None and later.answered():  # given up meanwhile: nobody else will
            later.run_without_answer()
        return (
            int(status[:3]),
            [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers],
            chunks,
        )


class LeftToLoop(list[BeforeSend]):
    """What the app left for the loop (environ[BEFORE_SEND]). The loop runs it before it
    sends. A request the server gives up while its app runs (its client gone past the grace
    period) has no answer to send, but its log line is still written, once, by whichever
    side comes last: the app's thread when it has answered, or the loop when it gives up."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._answered = self._given_up = False

    def answered(self) -> bool:
        """In the app's thread: whether the loop gave up first (this thread then runs it)."""
        with self._lock:
            self._answered = True
            return self._given_up

    def give_up(self) -> bool:
        """In the loop: whether the app had answered first (the loop then runs it)."""
        with self._lock:
            self._given_up = True
            return self._answered

    def run_without_answer(self) -> None:
        for work in self:
            work([], b"")


async def _body(receive: Receive) -> bytes | None:
    """The request's body, at most MAX_BODY + 1 bytes of it (the rest is never read); None
    when the client went first."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            return None
        part = message.get("body", b"")
        parts.append(part)
        size += len(part)
        if not message.get("more_body", False) or size > MAX_BODY:
            break
    return b"".join(parts)[: MAX_BODY + 1]


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _environ(scope: Scope, body: bytes, declared: int | None) -> dict[str, Any]:
    """PEP 3333's environ for an ASGI http scope, as a WSGI server builds it. The body is
    whole (or cut past MAX_BODY), so its length is stated even when it came chunked: werkzeug
    then holds it to the route's limit and answers 413 past it."""
    script_name = scope.get("root_path", "").encode("utf-8").decode("latin-1")
    path = scope["path"].encode("utf-8").decode("latin-1")
    if script_name and (path == script_name or path.startswith(script_name + "/")):
        path = path[len(script_name) :]
    server = scope.get("server") or ("localhost", 80)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path,
        "QUERY_STRING": scope["query_string"].decode("latin-1"),
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1] or 0),
        "SERVER_PROTOCOL": f"HTTP/{scope['http_version']}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = client[0], str(client[1])
    for raw_name, raw_value in scope.get("headers", ()):
        if raw_name in (b"content-length", b"transfer-encoding"):
            continue  # stated below, from the body read
        if raw_name == b"content-type":
            name = "CONTENT_TYPE"
        else:
            name = "HTTP_" + raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        if name in environ:  # a header sent twice: one value, as WSGI servers join them
            value = environ[name] + ("; " if name == "HTTP_COOKIE" else ",") + value
        environ[name] = value
    if declared is not None and declared > MAX_BODY:
        environ["CONTENT_LENGTH"] = str(declared)
    elif body or declared is not None:
        environ["CONTENT_LENGTH"] = str(len(body))
    return environ
