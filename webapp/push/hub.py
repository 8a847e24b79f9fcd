"""One worker's open event streams, and how they learn of new rows in `call_events`.

The table is the source of truth (webapp.events.store); this only says *when* to read it:
- one reader per worker: `events_since(last_id)`, one indexed query per wake-up, not one per
  panel, then one `call_state` per call that has an open stream;
- woken every POLL_SECONDS (receivers on other workers of the host write to the shared
  database), at once by a receiver in this worker (`notify`, from its thread), and with
  WIDGET_REDIS_URL by a pub/sub message any instance's receiver publishes. A lost wake-up
  costs latency, never data: the next poll reads the rows anyway.

Every database call runs in the loop's default executor, and Redis through redis.asyncio: a
blocked loop would stall every stream of the worker and miss gunicorn's heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..events import EventStore
from ..panel.callstate import as_message

log = logging.getLogger("webapp.push")

CHANNEL = "widget:call-events"  # wake-ups only: the rows stay in the database
POLL_SECONDS = 0.5  # without Redis: a Disconnect reaches a panel on another worker within this
POLL_SECONDS_REDIS = 5.0  # with Redis: a safety net for a wake-up lost while it restarted
QUEUE_SIZE = 8  # messages waiting for one slow stream before it is told to resync
RESYNC = "resync"


@dataclass(eq=False)
class Stream:
    """One open panel: the messages it has still to send, newest state last."""

    ucid: str
    queue: asyncio.Queue[dict[str, Any] | str] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_SIZE)
    )

    def offer(self, message: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            # A stream that cannot keep up gets the current state once it can: every message
            # is a whole state, so nothing between matters.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(RESYNC)


class Hub:
    def __init__(
        self,
        store: EventStore,
        wrapup_seconds: int | None,
        redis_url: str = "",
        poll_seconds: float | None = None,
    ) -> None:
        self.store = store
        self.wrapup_seconds = wrapup_seconds
        self.redis_url = redis_url
        self.poll_seconds = poll_seconds or (POLL_SECONDS_REDIS if redis_url else POLL_SECONDS)
        self.streams: dict[str, set[Stream]] = {}
        self.last_id = 0
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- life ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        try:
            self.last_id = await self._run(self.store.latest_id)
        except Exception as error:  # the database away at start: read from the start later
            log.warning("push: newest event id not read (%s); reading from the first", error)
        self._tasks.append(asyncio.create_task(self._read_forever()))
        if self.redis_url:
            self._tasks.append(asyncio.create_task(self._listen_forever()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def notify(self) -> None:
        """A receiver in this process stored a row: read now (safe from any thread)."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    # -- streams ---------------------------------------------------------------------------

    def open(self, ucid: str) -> Stream:
        stream = Stream(ucid)
        self.streams.setdefault(ucid, set()).add(stream)
        return stream

    def close(self, stream: Stream) -> None:
        open_ = self.streams.get(stream.ucid)
        if open_ is not None:
            open_.discard(stream)
            if not open_:
                del self.streams[stream.ucid]

    @property
    def open_streams(self) -> int:
        return sum(len(s) for s in self.streams.values())

    async def state(self, ucid: str) -> dict[str, Any] | None:
        """The call's state as panel.js takes it (webapp.panel.callstate), or None."""
        state = await self._run(self.store.call_state, ucid)
        return as_message(state, self.wrapup_seconds)

    # -- reading ---------------------------------------------------------------------------

    async def _read_forever(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()
            try:
                await self._read_new()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the database away: the next poll tries again
                log.warning("push: new call events not read: %s", error)

    async def _read_new(self) -> None:
        while True:
            rows = await self._run(self.store.events_since, self.last_id)
            if not rows:
                return
            self.last_id = rows[-1]["id"]
            calls = {r["ucid"] for r in rows} | {r["monitor_ucid"] for r in rows}
            for ucid in calls & self.streams.keys():
                message = await self.state(ucid)
                for stream in list(self.streams.get(ucid, ())):
                    if message is not None:
                        stream.offer(message)

    async def _listen_forever(self) -> None:
        """Redis pub/sub wake-ups. redis-py does not resubscribe after a restart by itself
        (redis/redis-py#2089): reconnect with back-off, then read what was missed."""
        import redis.asyncio as aioredis

        delay = 0.5
        while True:
            client = aioredis.Redis.from_url(self.redis_url)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    delay = 0.5
                    self._wake_now()  # rows written while unsubscribed
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._wake_now()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("push: Redis wake-ups lost (%s); resubscribing in %.1f s", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            finally:
                await client.aclose()

    def _wake_now(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _run(self, call: Callable[..., Any], *args: Any) -> Any:
        assert self._loop is not None
        return await self._loop.run_in_executor(None, call, *args)
