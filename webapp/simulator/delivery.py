"""The simulator's outgoing HTTP: call events and call summaries POSTed to registered URLs.

One background thread drains a bounded queue, so a slow or dead receiver never holds up the
simulator's request handling (the API answers; the deliveries follow). Each delivery gets
bounded timeouts and a few attempts: a connection failure or a 5xx is tried again after a short
pause, anything else is final (CloudAgent's own retry rules are not documented; its "Call back
hit tries" setting says only that it retries). Redirects are not followed. The last deliveries
are kept for the control API (GET /sim/deliveries) and counted for /sim/stats.
"""

from __future__ import annotations

import itertools
import json
import logging
import queue
import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import requests

log = logging.getLogger("webapp.simulator")

Kind = Literal["call", "summary"]
Encoding = Literal["json", "form"]  # form: one field `data` holding the JSON, as CloudAgent

ATTEMPTS = 3  # per delivery
RETRY_PAUSES = (0.2, 0.5)  # seconds before the 2nd and 3rd attempts
TIMEOUT = (2.0, 5.0)  # connect, read: a receiver must answer fast
QUEUE_SIZE = 1000  # deliveries waiting; more are dropped (and counted), never blocking
KEPT = 50  # deliveries listed by the control API
IDLE_TICK = 0.2  # seconds between `on_idle` calls while nothing is queued


@dataclass
class Delivery:
    id: int
    kind: Kind
    url: str
    payload: dict[str, Any]
    encoding: Encoding = "json"
    attempts: int = 0
    status: int | None = None  # the last HTTP status, None if never answered
    error: str = ""  # the last failure, in a word or two
    outcome: str = "pending"  # pending, delivered, failed
    answers: list[int | None] = field(default_factory=list)  # each attempt's HTTP status

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "url": self.url,
            "encoding": self.encoding,
            "payload": self.payload,
            "attempts": self.attempts,
            "answers": self.answers,
            "status": self.status,
            "error": self.error,
            "outcome": self.outcome,
        }


class Deliverer:
    """A queue of deliveries and the one thread that sends them, started on first use."""

    def __init__(self, on_idle: Callable[[], None] | None = None) -> None:
        self._on_idle = on_idle  # the simulator's sweep for wrap-ups that ran out
        self._queue: queue.Queue[Delivery | None] = queue.Queue(QUEUE_SIZE)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._kept: deque[Delivery] = deque(maxlen=KEPT)
        self._counts: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._session = requests.Session()
        self._session.trust_env = False  # receivers are local: no proxy, no netrc

    def send(
        self, kind: Kind, url: str, payload: dict[str, Any], encoding: Encoding = "json"
    ) -> None:
        """Queue a delivery; returns at once."""
        delivery = Delivery(next(self._ids), kind, url, payload, encoding)
        with self._lock:
            self._kept.append(delivery)
            self._start()
        try:
            self._queue.put_nowait(delivery)
        except queue.Full:
            with self._lock:
                delivery.outcome, delivery.error = "failed", "dropped: queue full"
                self._counts[f"{kind}_dropped"] += 1

    def start(self) -> None:
        """Run the worker now (it also sweeps the simulator's wrap-ups while idle)."""
        with self._lock:
            self._start()

    def _start(self) -> None:
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(target=self._run, name="sim-deliveries", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            self._queue.put(None)  # wakes the worker; it may be sleeping between attempts
            thread.join(timeout)
        self._session.close()

    def clear(self) -> None:
        """Forget what was delivered; what is queued is still sent."""
        with self._lock:
            self._kept.clear()
            self._counts.clear()

    def deliveries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [delivery.to_json() for delivery in self._kept]

    def stats(self) -> dict[str, int]:
        with self._lock:
            counts = dict(self._counts)
        return {
            key: counts.get(key, 0)
            for key in (
                "call_delivered",
                "call_failed",
                "call_dropped",
                "summary_delivered",
                "summary_failed",
                "summary_dropped",
                "attempts",
            )
        } | {"queued": self._queue.qsize()}

    # --- the worker ----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delivery = self._queue.get(timeout=IDLE_TICK)
            except queue.Empty:
                delivery = None
            try:
                if delivery is not None:
                    self._deliver(delivery)
                elif self._on_idle is not None:
                    self._on_idle()
            except Exception:  # a bug here must not silence every later delivery
                log.exception("simulator: delivery worker")

    def _deliver(self, delivery: Delivery) -> None:
        for attempt in range(ATTEMPTS):
            if attempt and self._stop.wait(RETRY_PAUSES[min(attempt, len(RETRY_PAUSES)) - 1]):
                break
            status, error = self._post(delivery)
            with self._lock:
                delivery.attempts += 1
                delivery.answers.append(status)
                delivery.status, delivery.error = status, error
                self._counts["attempts"] += 1
            if status is not None and status < 500:
                break  # answered: a 2xx is delivered, a 3xx or 4xx is final
        with self._lock:
            ok = delivery.status is not None and 200 <= delivery.status < 300
            delivery.outcome = "delivered" if ok else "failed"
            self._counts[f"{delivery.kind}_{delivery.outcome}"] += 1

    def _post(self, delivery: Delivery) -> tuple[int | None, str]:
        if delivery.encoding == "form":
            body = {"data": json.dumps(delivery.payload, separators=(",", ":"))}
            options: dict[str, Any] = {"data": body}
        else:
            options = {"json": delivery.payload}
        try:
            # Streamed and closed unread: only the status matters.
            response = self._session.post(
                delivery.url, timeout=TIMEOUT, allow_redirects=False, stream=True, **options
            )
            response.close()
        except requests.Timeout:
            return None, "timeout"
        except requests.RequestException as error:
            return None, type(error).__name__
        status = response.status_code
        return status, "" if status < 300 else f"HTTP {status}"
