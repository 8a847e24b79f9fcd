"""Log lines of a kind at most once a minute, with a count of those held back.

A CloudAgent outage answers every request with the same fault: a WARNING per request would
bury everything else in the log (the request's own line and the metrics count each one)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

__all__: list[str] = []  # used by the client only


class Throttled:
    """At most one line per `every` seconds per kind; the next line after a quiet spell
    says how many were held back meanwhile."""

    def __init__(
        self,
        logger: logging.Logger,
        every: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.every = every
        self.clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}  # kind -> when its last line was logged
        self._held: dict[str, int] = {}  # kind -> lines held back since

    def warning(self, kind: str, message: str, *args: Any) -> bool:
        """Log `message % args` at WARNING unless a line of `kind` was logged less than
        `every` seconds ago; whether it was logged."""
        now = self.clock()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self.every:
                self._held[kind] = self._held.get(kind, 0) + 1
                return False
            self._last[kind] = now
            held = self._held.pop(kind, 0)
        if held:
            message += "; %d more like it not logged in the %.0f s before"
            args = (*args, held, self.every)
        self.logger.warning(message, *args)
        return True
